//! The CUDA C sources of the device's kernels, compiled at run time with NVRTC (no CUDA toolkit at
//! build time). Each `.cu` file beside this one holds one op family with its formulas in comments;
//! [`COMMON`] (warp/block reductions, the stable sigmoid) is prepended to each before compiling.

/// Helpers prepended to every source.
pub const COMMON: &str = include_str!("common.cuh");

/// One compilation unit: a name, its CUDA C source (without [`COMMON`]) and the `extern "C"` kernels
/// it defines.
#[derive(Clone, Copy, Debug)]
pub struct KernelSource {
    pub name: &'static str,
    pub source: &'static str,
    pub functions: &'static [&'static str],
}

impl KernelSource {
    /// The full text handed to NVRTC: [`COMMON`] followed by the source.
    pub fn full_source(&self) -> String {
        format!("{COMMON}\n{}", self.source)
    }
}

/// Every kernel of the device.
pub const SOURCES: &[KernelSource] = &[
    KernelSource {
        name: "elementwise",
        source: include_str!("elementwise.cu"),
        functions: &[
            "unary_forward",
            "unary_backward",
            "binary_forward",
            "binary_backward",
            "reduce_axis_forward",
            "reduce_axis_backward",
        ],
    },
    KernelSource {
        name: "softmax",
        source: include_str!("softmax.cu"),
        functions: &["softmax_forward", "softmax_backward"],
    },
    KernelSource {
        name: "layer_norm",
        source: include_str!("layer_norm.cu"),
        functions: &[
            "layer_norm_forward",
            "layer_norm_backward_x",
            "layer_norm_backward_params",
        ],
    },
    KernelSource {
        name: "embedding",
        source: include_str!("embedding.cu"),
        functions: &["gather_rows", "scatter_add_rows"],
    },
    KernelSource {
        name: "cross_entropy",
        source: include_str!("cross_entropy.cu"),
        functions: &["cross_entropy_forward", "cross_entropy_backward"],
    },
    KernelSource {
        name: "recurrence",
        source: include_str!("recurrence.cu"),
        functions: &[
            "gru_step_forward",
            "lstm_step_forward",
            "gru_step_backward",
            "lstm_step_backward",
            "recurrence_state_copy",
        ],
    },
    KernelSource {
        name: "adam",
        source: include_str!("adam.cu"),
        functions: &["adam_step"],
    },
    KernelSource {
        name: "flash_attention",
        source: include_str!("flash_attention.cu"),
        functions: &[
            "flash_backward_delta",
            "flash_forward_d16",
            "flash_backward_dq_d16",
            "flash_backward_dkdv_d16",
            "flash_forward_d32",
            "flash_backward_dq_d32",
            "flash_backward_dkdv_d32",
            "flash_forward_d64",
            "flash_backward_dq_d64",
            "flash_backward_dkdv_d64",
            "flash_forward_d128",
            "flash_backward_dq_d128",
            "flash_backward_dkdv_d128",
        ],
    },
];
