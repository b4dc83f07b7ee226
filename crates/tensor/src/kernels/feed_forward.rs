//! A feed-forward block for the few rows of a decoding step, kept transposed throughout:
//! `y = f(x · W₁ᵀ + b₁) · W₂ᵀ + b₂` for `x [m, d]`, `W₁ [h, d]`, `b₁ [h]`, `W₂ [e, h]`, `b₂ [e]`,
//! `f` element-wise.
//!
//! The few-rows products of [`super::few_rows`] compute `cᵀ` and transpose it back to rows; chained,
//! the hidden layer would go `hᵀ → h` after the first product and `h → hᵀ` before the second
//! (`h = 1024` against `d = 256` in a Transformer: most of a decoding step's transposes). Here it
//! stays `hᵀ [h, m]`, which is the second product's left operand as it is:
//!
//! ```text
//! xᵀ = transpose(x)           [d, m]
//! hᵀ = W₁ · xᵀ + b₁            [h, m]   (b₁[j] down row j), then hᵀ ← f(hᵀ)
//! yᵀ = W₂ · hᵀ + b₂            [e, m]
//! y  = transpose(yᵀ)          [m, e]
//! ```
//!
//! Each product's rows are split over the threads as in the few-rows path; `f` runs on a block
//! right after its product, while it is in the cache.

use super::few_rows::{columns_per_thread, fill_rows, takes_few_rows_path, transposed_product};
use super::gemm::parallelism;
use super::transpose::transpose;
use gemm::Parallelism;
use rayon::prelude::*;

/// `f(x · W₁ᵀ + b₁) · W₂ᵀ + b₂` (see the module doc) where both products take the few-rows path
/// (`8 ≤ m ≤ 128` rows, at least as many and at least 128 outputs); `None` elsewhere, for the
/// caller to compose the ops. Panics if a slice is shorter than its shape.
#[allow(clippy::too_many_arguments)]
pub fn feed_forward(
    x: &[f32],
    w1: &[f32],
    b1: &[f32],
    w2: &[f32],
    b2: &[f32],
    (m, d, h, e): (usize, usize, usize, usize),
    f: fn(&mut [f32]),
) -> Option<Vec<f32>> {
    if !(takes_few_rows_path(m, d, h) && takes_few_rows_path(m, h, e)) {
        return None;
    }
    assert!(
        x.len() >= m * d
            && w1.len() >= h * d
            && b1.len() == h
            && w2.len() >= e * h
            && b2.len() == e,
        "feed_forward: x {} / w1 {} / b1 {} / w2 {} / b2 {} values for m {m}, d {d}, h {h}, e {e}",
        x.len(),
        w1.len(),
        b1.len(),
        w2.len(),
        b2.len()
    );
    let mut xt = vec![0.0f32; d * m];
    transpose(&x[..m * d], d, m, d, &mut xt, m);
    let ht = biased_product(&xt, w1, b1, m, d, Some(f));
    let yt = biased_product(&ht, w2, b2, m, h, None);
    let mut y = vec![0.0f32; m * e];
    transpose(&yt, m, e, m, &mut y, e);
    Some(y)
}

/// `cᵀ = b · aᵀ + bias` (`bias[j]` down row `j` of `cᵀ [n, m]`, `n = bias.len()`) from
/// `at [k, m]`, then `f` element-wise; blocks of rows over the threads.
fn biased_product(
    at: &[f32],
    b: &[f32],
    bias: &[f32],
    m: usize,
    k: usize,
    f: Option<fn(&mut [f32])>,
) -> Vec<f32> {
    let n = bias.len();
    let par = parallelism(m, k, n);
    let per_thread = columns_per_thread(n, par);
    let mut ct = vec![0.0f32; n * m];
    let block = |(t, ct): (usize, &mut [f32])| {
        let (j0, nj) = (t * per_thread, ct.len() / m);
        fill_rows(ct, m, &bias[j0..j0 + nj]);
        transposed_product(ct, at, &b[j0 * k..], m, k, nj, true);
        if let Some(f) = f {
            f(ct);
        }
    };
    if matches!(par, Parallelism::Rayon(_)) {
        ct.par_chunks_mut(per_thread * m)
            .enumerate()
            .for_each(block);
    } else {
        ct.chunks_mut(per_thread * m).enumerate().for_each(block);
    }
    ct
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn relu(xs: &mut [f32]) {
        xs.iter_mut().for_each(|x| *x = x.max(0.0));
    }

    /// Against an f64 loop at decoding-step shapes (odd sizes, one and several threads' worth of
    /// rows per product), and `None` where a product would not take the few-rows path.
    #[test]
    fn feed_forward_matches_f64() {
        let mut rng = Rng::new(3);
        for (m, d, h, e) in [(8, 16, 128, 128), (13, 40, 300, 136), (64, 64, 1030, 256)] {
            let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal()).collect() };
            let (x, w1, b1, w2, b2) = (draw(m * d), draw(h * d), draw(h), draw(e * h), draw(e));
            let y = feed_forward(&x, &w1, &b1, &w2, &b2, (m, d, h, e), relu).expect("few rows");
            for i in 0..m {
                let hidden: Vec<f64> = (0..h)
                    .map(|j| {
                        let s: f64 = (0..d)
                            .map(|p| x[i * d + p] as f64 * w1[j * d + p] as f64)
                            .sum();
                        (s + b1[j] as f64).max(0.0)
                    })
                    .collect();
                for j in 0..e {
                    let want = b2[j] as f64
                        + (0..h)
                            .map(|p| hidden[p] * w2[j * h + p] as f64)
                            .sum::<f64>();
                    let got = y[i * e + j] as f64;
                    assert!(
                        (got - want).abs() < 1e-4 * (1.0 + want.abs()) * (h as f64).sqrt(),
                        "{m}×{d}×{h}×{e}: [{i}, {j}] {got} vs {want}"
                    );
                }
            }
        }
        for (m, d, h, e) in [(4, 16, 128, 128), (200, 16, 256, 256), (16, 16, 256, 64)] {
            let zeros = |n: usize| vec![0.0f32; n];
            let got = feed_forward(
                &zeros(m * d),
                &zeros(h * d),
                &zeros(h),
                &zeros(e * h),
                &zeros(e),
                (m, d, h, e),
                relu,
            );
            assert!(got.is_none(), "{m}×{d}×{h}×{e} is not a few-rows shape");
        }
    }
}
