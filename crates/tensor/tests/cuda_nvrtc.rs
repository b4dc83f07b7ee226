//! The device's kernel sources through NVRTC, without a GPU: every source compiles to PTX, the PTX defines exactly the kernels the source
//! list names, and NVRTC's built-in ptxas assembles each source to machine code (cubin) for sm_80
//! (A100) and sm_90 (H100), reporting registers and spills.
//!
//! Needs `libnvrtc.so` on the loader path (no driver, no GPU); skips with a printed reason otherwise:
//! `LD_LIBRARY_PATH=/opt/peers/lib/python3.11/site-packages/nvidia/cu13/lib cargo test -p attend-tensor --features cuda --test cuda_nvrtc -- --nocapture`
#![cfg(feature = "cuda")]

use cudarc::nvrtc::{result, sys};
use std::collections::BTreeSet;
use std::ffi::{CStr, CString};
use tensor::cuda::compile::compile_ptx;
use tensor::cuda::kernels::{KernelSource, SOURCES};
use tensor::cuda::library;

fn nvrtc_or_skip() -> bool {
    match library::nvrtc() {
        Ok(()) => true,
        Err(e) => {
            println!("SKIPPED: {e}");
            false
        }
    }
}

/// The names after `.entry` in a PTX text.
fn entries(ptx: &str) -> BTreeSet<String> {
    ptx.lines()
        .filter_map(|l| l.trim_start().strip_prefix(".visible .entry "))
        .map(|rest| rest.split('(').next().unwrap_or("").trim().to_string())
        .collect()
}

#[test]
fn every_source_compiles_to_ptx_with_exactly_its_kernels() {
    if !nvrtc_or_skip() {
        return;
    }
    // The architecture a device asks for is its own (`compute_XY`); sm_80 and sm_90 code is checked
    // by the assembly test below, which goes through the same PTX.
    for src in SOURCES {
        let ptx = compile_ptx(src, Some("compute_80"))
            .unwrap_or_else(|e| panic!("{}: {e}", src.name))
            .to_src();
        let found = entries(&ptx);
        let listed: BTreeSet<String> = src.functions.iter().map(|f| f.to_string()).collect();
        assert_eq!(
            found, listed,
            "{}: PTX entries vs kernels::SOURCES",
            src.name
        );
    }
}

#[test]
fn a_broken_source_is_an_error_with_the_compiler_log() {
    if !nvrtc_or_skip() {
        return;
    }
    let bad = KernelSource {
        name: "broken",
        source: "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }",
        functions: &["k"],
    };
    let Err(err) = compile_ptx(&bad, None) else {
        panic!("a broken source must not compile");
    };
    let msg = err.to_string();
    assert!(
        msg.contains("broken") && msg.contains("undefined_name"),
        "{msg}"
    );
}

/// Compiles `src` to machine code for `sm` with ptxas's verbose report; returns (cubin bytes, log).
fn cubin(src: &KernelSource, sm: &str) -> (usize, String) {
    let code = CString::new(src.full_source()).unwrap();
    let prog = result::create_program(&code, None).expect("nvrtcCreateProgram");
    let opts = [
        "--std=c++17".to_string(),
        format!("--gpu-architecture={sm}"),
        "--ptxas-options=-v".to_string(),
    ];
    // SAFETY: `prog` is a live program; the log and cubin buffers are sized by NVRTC's own queries.
    unsafe {
        let compiled = result::compile_program(prog, &opts);
        let log = result::get_program_log(prog).expect("nvrtcGetProgramLog");
        let log = CStr::from_ptr(log.as_ptr()).to_string_lossy().into_owned();
        compiled.unwrap_or_else(|e| panic!("{} for {sm}: {e}\n{log}", src.name));
        let mut size = 0usize;
        sys::nvrtcGetCUBINSize(prog, &mut size as *mut usize)
            .result()
            .expect("nvrtcGetCUBINSize");
        result::destroy_program(prog).expect("nvrtcDestroyProgram");
        (size, log)
    }
}

#[test]
fn every_source_assembles_to_machine_code_for_a100_and_h100() {
    if !nvrtc_or_skip() {
        return;
    }
    for sm in ["sm_80", "sm_90"] {
        for src in SOURCES {
            let (bytes, log) = cubin(src, sm);
            assert!(bytes > 0, "{} for {sm}: empty cubin", src.name);
            // ptxas reports every kernel it assembled ("Compiling entry function 'name' for 'sm_90'").
            for f in src.functions {
                assert!(
                    log.contains(&format!("'{f}'")),
                    "{} for {sm}: ptxas did not report {f}\n{log}",
                    src.name
                );
            }
            println!("== {} for {sm}: {bytes} bytes of cubin\n{log}", src.name);
        }
    }
}
