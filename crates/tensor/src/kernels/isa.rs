//! The widest SIMD instruction set of this CPU, detected once at run time: the hand-written and
//! the multiversioned kernels (flash attention, transposes) dispatch on it.

use std::sync::OnceLock;

/// The widest vector instructions of this CPU that the row loops are compiled for.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    Baseline,
    Avx2,
    Avx512,
}

/// The instruction set of this CPU, detected once. `ATTEND_SIMD=avx2` or `ATTEND_SIMD=baseline`
/// caps it (to compare the kernels, or to test the fallbacks on an AVX-512 machine).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let cap = match std::env::var("ATTEND_SIMD").as_deref() {
            Ok("baseline") => Isa::Baseline,
            Ok("avx2") => Isa::Avx2,
            _ => Isa::Avx512,
        };
        detect().min(cap)
    })
}

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx512vl") && has!("avx512dq") && has!("avx512bw") {
            return Isa::Avx512;
        }
        if has!("avx2") && has!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Baseline
}
