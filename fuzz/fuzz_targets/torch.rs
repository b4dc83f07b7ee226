//! libFuzzer target: arbitrary bytes through `attend_cli::fuzz_targets::torch`; any panic is a crash.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = attend_cli::fuzz_targets::torch(data);
});
