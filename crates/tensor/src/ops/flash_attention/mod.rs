//! Fused scaled-dot-product attention, flash-style (tiled, online softmax), forward and backward.
//!
//! `O = softmax(Q Kᵀ · scale + mask) V` for `Q [B, H, T, d]`, `K, V [B, H, S, d]` → `O [B, H, T, d]`,
//! computed without ever holding the `T × S` score matrix (Dao et al. 2022, *FlashAttention*; the
//! backward follows *FlashAttention-2*, Dao 2023). Masks:
//! - causal: query `i` sees keys `j ≤ i` (top-left aligned, as PyTorch's `is_causal`);
//! - key padding: batch row `b` sees keys `j < len[b]`.
//!
//! A query row that sees no key at all gives a zero output (and zero gradients), like the plain path's
//! all-masked softmax row.
//!
//! Dropout on the probabilities (training, [`AttentionDropout`]): `O = (M ∘ P) V` with `P` the
//! softmax and `M` the inverted-dropout mask (`1/(1−p)` or 0), drawn from the same counter-based
//! stream as [`Var::dropout`](crate::var::Var::dropout) over the `[B, H, T, S]` probabilities, so
//! the fused and the plain path drop the same weights. The forward applies `M` to each probability
//! block after its row sums are taken; the backward regenerates it: `dVⱼ += (M ∘ P)ᵀ dO`,
//! `dS = (M ∘ P ∘ dP̃ − P ∘ D) · scale` with `dP̃ = dO Vᵀ`, and `D = rowsum(dO ∘ O)` unchanged
//! (`Σⱼ Pᵢⱼ Mᵢⱼ dP̃ᵢⱼ = dOᵢ · Oᵢ`; Dao et al. 2022, appendix B).
//!
//! **Forward**, per head and per block of `BR` queries `Qᵢ`, over blocks of `BC` keys `Kⱼ, Vⱼ`:
//! `Sᵢⱼ = Qᵢ Kⱼᵀ · scale`, `mᵢ ← max(mᵢ, rowmax Sᵢⱼ)`, `Pᵢⱼ = exp(Sᵢⱼ − mᵢ)`,
//! `lᵢ ← lᵢ·e^{mᵢ_old − mᵢ} + rowsum Pᵢⱼ`, `Oᵢ ← Oᵢ·e^{mᵢ_old − mᵢ} + Pᵢⱼ Vⱼ`; at the end
//! `Oᵢ /= lᵢ` and the log-sum-exp `Lᵢ = mᵢ + ln lᵢ` is kept for the backward (`[B·H·T]` floats: memory
//! is linear in `T`). Key blocks entirely above the diagonal are skipped when causal, and keys past a
//! row's padding length are never read.
//!
//! **Backward** (given `dO`): `Dᵢ = rowsum(dOᵢ ∘ Oᵢ)`; per key block `j` and query block `i`, the
//! probabilities are recomputed from the log-sum-exp, `Pᵢⱼ = exp(Qᵢ Kⱼᵀ · scale − Lᵢ)`, then
//! `dVⱼ += Pᵢⱼᵀ dOᵢ`, `dPᵢⱼ = dOᵢ Vⱼᵀ`, `dSᵢⱼ = Pᵢⱼ ∘ (dPᵢⱼ − Dᵢ) · scale`,
//! `dQᵢ += dSᵢⱼ Kⱼ`, `dKⱼ += dSᵢⱼᵀ Qᵢ`.
//!
//! Scores and probabilities are kept transposed (`Sᵀ [keys, queries]`), so that the softmax
//! statistics are vector operations across queries and every block product reads its right operand
//! row by row. Block products run on the calling thread: a register-tiled AVX-512 kernel without
//! packing where the CPU has AVX-512 (blocks this small do not repay packing), `gemm` elsewhere;
//! with a causal mask they skip the hidden triangle of diagonal blocks. The forward's score product
//! also takes every query's block maximum from its register tiles as they are stored (hidden
//! entries left out), instead of a separate pass over the block, and its probabilities are taken in
//! registers as `2^(s·scale·log₂e − m·log₂e)` (one FMA for the argument, a degree-6 polynomial,
//! `vscalefps`; hidden entries masked, not filled with `−∞`). The work is spread over (batch·head,
//! query block) in the forward and over batch·head in the backward with rayon. The element-wise
//! loops are compiled for AVX-512 / AVX2 and chosen at run time (`ATTEND_SIMD=avx2|baseline` caps
//! the choice).
//!
//! Files: `forward` (the query-block loop and its online softmax), `backward` (the key-block loop
//! of one head), `block` (the block products and the block exponential, portable and dispatching),
//! `avx512` (the AVX-512 kernels of those), `dropout_mask`.

#[cfg(target_arch = "x86_64")]
mod avx512;
mod backward;
mod block;
mod dropout_mask;
mod forward;

use crate::kernels::isa::{isa, Isa};
use crate::tensor::Tensor;
use crate::var::Var;
use dropout_mask::DropMask;
use std::mem::MaybeUninit;

/// Queries per block.
const BR: usize = 64;
/// Keys per block (large: for `S ≤ BC` one pass needs no rescaling at all).
const BC: usize = 256;

/// Which keys a query may see: the causal flag and the valid key count of every batch row.
#[derive(Clone, Debug)]
struct Visibility {
    causal: bool,
    /// `[B]`: keys `j < valid[b]` are visible to batch row `b`.
    valid: Vec<usize>,
    heads: usize,
}

impl Visibility {
    /// Keys visible to some query of the block `[q0, q0 + br)` of head `bh`: `[0, end)`.
    fn key_end(&self, bh: usize, q0: usize, br: usize) -> usize {
        let valid = self.valid[bh / self.heads];
        if self.causal {
            valid.min(q0 + br)
        } else {
            valid
        }
    }
}

/// Dropout on the attention probabilities: probability `p` and the key of the mask's stream (one
/// draw from the training [`Rng`](crate::rng::Rng), as [`Var::dropout`] takes). `p ∈ [0, 1)`.
#[derive(Clone, Copy, Debug)]
pub struct AttentionDropout {
    pub p: f32,
    pub key: u64,
}

/// Shapes of one call: `B·H` heads, `T` queries, `S` keys, head size `d`.
#[derive(Clone, Copy, Debug)]
struct Dims {
    heads: usize,
    t: usize,
    s: usize,
    d: usize,
}

/// What every block of one call shares: the masks, the dropout, the scale and the instruction set
/// the kernels run on.
struct Setup {
    vis: Visibility,
    drop: Option<DropMask>,
    scale: f32,
    isa: Isa,
}

/// Fused attention on the tape: `softmax(Q Kᵀ · scale + mask) V`.
///
/// - `q [B, H, T, d]`, `k, v [B, H, S, d]` → `[B, H, T, d]`;
/// - `causal`: query `i` sees keys `j ≤ i`;
/// - `key_padding`: `Some(len)` with `len.len() == B`, batch row `b` sees keys `j < len[b]`;
/// - `scale`: usually `1/√d`; must be finite and positive;
/// - `dropout`: `Some` while training with dropout on the probabilities (see the module doc).
///
/// Panics on inconsistent shapes (a programming error, as everywhere in the engine).
pub fn flash_attention(
    q: &Var,
    k: &Var,
    v: &Var,
    causal: bool,
    key_padding: Option<&[usize]>,
    scale: f32,
    dropout: Option<AttentionDropout>,
) -> Var {
    let (qv, kv) = (q.value(), k.value());
    let vis = visibility(&qv, &kv, causal, key_padding);
    let drop = DropMask::new(dropout, dims(&qv, &kv));
    let setup = Setup {
        vis,
        drop,
        scale,
        isa: isa(),
    };
    let (out, lse) = forward::forward(&qv, &kv, &v.value(), &setup);
    Var::from_op(
        out,
        vec![q.clone(), k.clone(), v.clone()],
        Box::new(move |g, o, p| {
            let (dq, dk, dv) = backward::backward(
                &p[0].value(),
                &p[1].value(),
                &p[2].value(),
                o,
                g,
                &lse,
                &setup,
            );
            vec![Some(dq), Some(dk), Some(dv)]
        }),
    )
}

/// Forward kernel on tensors: the output `[B, H, T, d]` and the log-sum-exp of every query row
/// `[B·H·T]` (`+∞` for a row that sees no key). Arguments as [`flash_attention`].
pub fn flash_attention_forward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    causal: bool,
    key_padding: Option<&[usize]>,
    scale: f32,
) -> (Tensor, Vec<f32>) {
    let setup = Setup {
        vis: visibility(q, k, causal, key_padding),
        drop: None,
        scale,
        isa: isa(),
    };
    forward::forward(q, k, v, &setup)
}
/// Checks the shapes and the padding lengths; builds the key visibility.
fn visibility(q: &Tensor, k: &Tensor, causal: bool, key_padding: Option<&[usize]>) -> Visibility {
    let Dims { s, .. } = dims(q, k);
    let (b, h) = (q.shape()[0], q.shape()[1]);
    let valid = match key_padding {
        Some(len) => {
            assert_eq!(
                len.len(),
                b,
                "flash_attention: {} key-padding lengths for a batch of {b}",
                len.len()
            );
            assert!(
                len.iter().all(|&l| l <= s),
                "flash_attention: key-padding lengths {len:?} exceed the {s} keys"
            );
            len.to_vec()
        }
        None => vec![s; b],
    };
    Visibility {
        causal,
        valid,
        heads: h,
    }
}

fn dims(q: &Tensor, k: &Tensor) -> Dims {
    assert!(
        q.rank() == 4 && k.rank() == 4,
        "flash_attention: q {:?} and k {:?} must be [B, H, T, d] and [B, H, S, d]",
        q.shape(),
        k.shape()
    );
    let (qs, ks) = (q.shape(), k.shape());
    assert!(
        qs[0] == ks[0] && qs[1] == ks[1] && qs[3] == ks[3],
        "flash_attention: q {qs:?} and k {ks:?} differ in batch, heads or head size"
    );
    Dims {
        heads: qs[0] * qs[1],
        t: qs[2],
        s: ks[2],
        d: qs[3],
    }
}

/// A task's chunk of an output buffer, not yet initialized.
type Uninit<'a> = &'a mut [MaybeUninit<f32>];

/// Zeroes a task's chunk of an output buffer and hands it out initialized: each task zeroes its own
/// chunk, in its cache and in parallel, instead of one `memset` of the whole output up front.
fn zeroed(chunk: Uninit<'_>) -> &mut [f32] {
    chunk.fill(MaybeUninit::new(0.0));
    // SAFETY: every element was just initialized, and `MaybeUninit<f32>` has the layout of `f32`.
    unsafe { &mut *(chunk as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Defines `fn $name($arg: $ty, …)` that calls `$kernel($arg, …)` compiled for the instruction set
/// `$isa` names: the kernel's row loops are plain Rust that the compiler vectorizes once AVX-512 (or
/// AVX2 + FMA) may be used. `$kernel` is `#[inline(always)]`, so each copy is compiled at its width.
macro_rules! compiled_for_isa {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),*) = $kernel:ident on $isa:expr) => {
        $(#[$meta])*
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                use crate::kernels::isa::Isa;
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) {
                    $kernel($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    $kernel($($arg),*)
                }
                match $isa {
                    // SAFETY: `isa()` found every feature these functions are compiled for.
                    Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    Isa::Baseline => {}
                }
            }
            $kernel($($arg),*)
        }
    };
}
use compiled_for_isa;
