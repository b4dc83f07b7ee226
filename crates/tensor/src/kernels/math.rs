//! Fast, vectorizable `exp`, `tanh` and `sigmoid` for f32, their in-place slice versions, and the
//! lane-wise reductions (`dot`, `sum`, `max`, `argmax`, softmax denominators) built on them.
//!
//! libm's `expf`/`tanhf` are scalar calls with branches, which a loop cannot vectorize; these are
//! branch-free polynomials that the compiler turns into SIMD code when called in a loop:
//!
//! - `exp(x)`: `x = n·ln2 + r`, `|r| ≤ ln2/2` (Cody–Waite split of ln2), `eʳ ≈ 1 + r + r²·P(r)` with
//!   Cephes' degree-5 minimax `P`, times `2ⁿ` built in the exponent bits. Relative error ≤ ~2 ulp on
//!   `[−87.3, 88.7]`; below `−87.34` (where `eˣ` leaves the normal range) the result is 0, above 88.72
//!   it is +∞; `exp(−∞) = 0` exactly (masked softmax weights stay exactly 0). `exp_finite(x)`: the
//!   same below 88 without the overflow handling (for softmax arguments, which are ≤ 0).
//! - `tanh(x)`: `|x| < 0.625`: Cephes' odd polynomial `x + x³·Q(x²)`; otherwise
//!   `sign(x)·(1 − 2/(e^{2|x|} + 1))`. Relative error ≤ ~3 ulp; `tanh(±∞) = ±1`.
//! - `sigmoid(x) = 1/(1 + e^{−x})`: relative error ≤ ~3 ulp where the result is a normal float.
//!
//! NaN in gives NaN out. Tests compare against f64 over dense sweeps.

use super::isa::simd_fn;

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `n·LN2_HI` is exact for |n| ≤ 2⁹ (Cody–Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Below this, `eˣ` is not a normal f32 (`ln 2⁻¹²⁶`): the result is 0.
const EXP_MIN: f32 = -87.336_55;
/// Above this, `eˣ` overflows: the result is +∞.
const EXP_MAX: f32 = 88.722_83;
/// 1.5·2²³: adding and subtracting it rounds to the nearest integer (|v| < 2²²).
const ROUND: f32 = 12_582_912.0;

/// `eˣ` (see the module doc for accuracy and the range).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let xc = x.clamp(EXP_MIN, EXP_MAX); // NaN stays NaN
    let shifted = xc * LOG2E + ROUND;
    let n = shifted - ROUND; // round(x / ln 2), in [−126, 128]
    let y = exp_reduced(xc, n);
    // 2ⁿ in two factors so that n = 128 (x near EXP_MAX) does not overflow the exponent field.
    // n as an integer, read from the mantissa of `shifted` (a saturating `as i32` would not vectorize).
    let ni = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let n1 = ni.min(127);
    let scale = f32::from_bits(((n1 + 127) as u32) << 23);
    let extra = (ni - n1) as f32 + 1.0; // 1, or 2 when n = 128
    let out = y * scale * extra;
    if x < EXP_MIN {
        0.0
    } else if x > EXP_MAX {
        f32::INFINITY
    } else {
        out
    }
}

/// Above this, [`exp_finite`] returns `e^EXP_FINITE_MAX`: `n ≤ 127`, one factor `2ⁿ`.
const EXP_FINITE_MAX: f32 = 88.0;

/// `eˣ` for arguments that stay below 88 — a softmax's `x − max ≤ 0` —, equal to [`exp`] there
/// (bit for bit); above 88 it returns `e⁸⁸` (finite) instead of overflowing. It leaves out `exp`'s
/// two-factor `2ⁿ` for `n = 128`: fewer instructions per element (flash attention's portable
/// path).
#[inline(always)]
pub fn exp_finite(x: f32) -> f32 {
    let xc = x.clamp(EXP_MIN, EXP_FINITE_MAX); // NaN stays NaN
    let shifted = xc * LOG2E + ROUND;
    let n = shifted - ROUND; // in [−126, 127]
    let y = exp_reduced(xc, n);
    // 2ⁿ: adding 2²³ + 127 puts the integer n + 127 in the low mantissa bits; shifting by 23 moves
    // it into the exponent field (a float-to-int conversion would not vectorize).
    let scale = f32::from_bits((n + (8_388_608.0 + 127.0)).to_bits() << 23);
    if x < EXP_MIN {
        0.0
    } else {
        y * scale
    }
}

/// `eʳ` for `r = x − n·ln 2` (Cody–Waite), `|r| ≤ ln2/2`: `1 + r + r²·P(r)`, Cephes' `P`.
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' coefficients as published
fn exp_reduced(xc: f32, n: f32) -> f32 {
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5.000_000_1e-1;
    p * (r * r) + r + 1.0
}

/// Below this |x|, tanh uses the odd polynomial (no cancellation near 0).
const TANH_SMALL: f32 = 0.625;

/// `tanh(x)` (see the module doc).
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' coefficients as published
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let q = -5.704_988_7e-3;
    let q = q * z + 2.063_908_9e-2;
    let q = q * z - 5.373_971_6e-2;
    let q = q * z + 1.333_144_2e-1;
    let q = q * z - 3.333_328_2e-1;
    let small = q * z * x + x;
    let e = exp(2.0 * a);
    let large = (1.0 - 2.0 / (e + 1.0)).copysign(x);
    if a < TANH_SMALL {
        small
    } else {
        large
    }
}

/// Logistic sigmoid `1 / (1 + e^{−x})`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `Σ aᵢ bᵢ` over the shorter length, with 16 partial sums so that it vectorizes (the same
/// additions in the same order at every instruction set, so the result does not depend on the CPU).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const W: usize = 16;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; W];
    let (ca, cb) = (a.chunks_exact(W), b.chunks_exact(W));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..W {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

simd_fn! {
    /// `x ← eˣ` element-wise.
    pub fn exp_inplace(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            *x = exp(*x);
        }
    }
}

simd_fn! {
    /// `x ← tanh x` element-wise.
    pub fn tanh_inplace(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            *x = tanh(*x);
        }
    }
}

simd_fn! {
    /// `x ← σ(x)` element-wise.
    pub fn sigmoid_inplace(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            *x = sigmoid(*x);
        }
    }
}

/// `Σ xᵢ` with 16 partial sums so that it vectorizes (as [`dot`]).
#[inline(always)]
pub fn sum(xs: &[f32]) -> f32 {
    const W: usize = 16;
    let mut acc = [0.0f32; W];
    let chunks = xs.chunks_exact(W);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest element (−∞ for an empty slice; NaNs are skipped), with 16 partial maxima so that it
/// vectorizes.
#[inline(always)]
pub fn max(xs: &[f32]) -> f32 {
    const W: usize = 16;
    let mut acc = [f32::NEG_INFINITY; W];
    let chunks = xs.chunks_exact(W);
    let mut m = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = a.max(x);
        }
    }
    for a in acc {
        m = m.max(a);
    }
    m
}

simd_fn! {
    /// Index and value of the largest element, the first one on ties (`None` when no element is
    /// larger than −∞: empty, all −∞ or NaN). One pass over 16 lanes, each keeping its largest value
    /// and where it was; NaNs are never chosen.
    pub fn argmax(xs: &[f32]) -> Option<(usize, f32)> {
        const W: usize = 16;
        let mut best = [f32::NEG_INFINITY; W];
        let mut at = [usize::MAX; W];
        let chunks = xs.chunks_exact(W);
        let rest = chunks.remainder();
        for (c, chunk) in chunks.enumerate() {
            for (l, &x) in chunk.iter().enumerate() {
                if x > best[l] {
                    best[l] = x;
                    at[l] = c * W + l;
                }
            }
        }
        let mut found: Option<(usize, f32)> = None;
        let tail = (xs.len() - rest.len()..xs.len()).zip(rest.iter().copied());
        for (i, x) in at.into_iter().zip(best).chain(tail) {
            let better = match found {
                None => x > f32::NEG_INFINITY,
                Some((j, y)) => x > y || (x == y && i < j),
            };
            if better {
                found = Some((i, x));
            }
        }
        found
    }
}

simd_fn! {
    /// `x ← e^{x − shift}` element-wise; returns `Σ e^{x − shift}` (a softmax row's denominator).
    pub fn exp_shifted_sum(xs: &mut [f32], shift: f32) -> f32 {
        let mut acc = [0.0f32; 16];
        let mut chunks = xs.chunks_exact_mut(16);
        for c in &mut chunks {
            for (a, x) in acc.iter_mut().zip(c.iter_mut()) {
                *x = exp(*x - shift);
                *a += *x;
            }
        }
        let mut tail = 0.0;
        for x in chunks.into_remainder() {
            *x = exp(*x - shift);
            tail += *x;
        }
        acc.iter().sum::<f32>() + tail
    }
}

simd_fn! {
    /// `Σ e^{x − shift}`, leaving `xs` as it is (a log-softmax row's denominator).
    pub fn sum_exp_shifted(xs: &[f32], shift: f32) -> f32 {
        let mut acc = [0.0f32; 16];
        let chunks = xs.chunks_exact(16);
        let mut tail = 0.0;
        for &x in chunks.remainder() {
            tail += exp(x - shift);
        }
        for c in chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a += exp(x - shift);
            }
        }
        acc.iter().sum::<f32>() + tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error against an f64 reference, in units of f32 epsilon.
    fn ulps(got: f32, want: f64) -> f64 {
        if want == 0.0 {
            return if got == 0.0 { 0.0 } else { f64::INFINITY };
        }
        ((got as f64 - want) / want).abs() / f32::EPSILON as f64
    }

    /// `n` points evenly over `[lo, hi]`, plus every representable float near 0 worth checking.
    fn sweep(lo: f32, hi: f32, n: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..=n)
            .map(|i| lo + (hi - lo) * (i as f32 / n as f32))
            .collect();
        v.extend([1e-30, -1e-30, 1e-7, -1e-7, 1e-3, -1e-3, 0.0, -0.0]);
        v
    }

    #[test]
    fn exp_is_within_two_ulp_over_the_normal_range() {
        let mut worst = 0.0f64;
        for x in sweep(-87.3, 88.7, 2_000_000) {
            let e = ulps(exp(x), (x as f64).exp());
            worst = worst.max(e);
        }
        assert!(worst <= 2.0, "exp: worst relative error {worst} ulp");
    }

    #[test]
    fn exp_finite_is_exp_below_88_and_finite_above() {
        for x in sweep(-100.0, 88.0, 1_000_000) {
            assert_eq!(exp_finite(x).to_bits(), exp(x).to_bits(), "exp_finite({x})");
        }
        assert_eq!(exp_finite(f32::NEG_INFINITY), 0.0);
        assert!(exp_finite(f32::NAN).is_nan());
        for x in [88.5f32, 1e3, f32::INFINITY] {
            assert_eq!(exp_finite(x), exp(88.0), "exp_finite({x})");
        }
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(89.0), f32::INFINITY);
        // Just inside both ends of the range.
        for x in [88.72f32, -87.33] {
            assert!(ulps(exp(x), (x as f64).exp()) <= 2.0, "exp({x})");
        }
    }

    #[test]
    fn tanh_is_within_three_ulp() {
        let mut worst = 0.0f64;
        for x in sweep(-20.0, 20.0, 2_000_000) {
            let e = ulps(tanh(x), (x as f64).tanh());
            worst = worst.max(e);
        }
        assert!(worst <= 3.0, "tanh: worst relative error {worst} ulp");
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh(0.0), 0.0);
        assert!(tanh(f32::NAN).is_nan());
    }

    #[test]
    fn sigmoid_is_within_three_ulp() {
        let mut worst = 0.0f64;
        for x in sweep(-80.0, 40.0, 2_000_000) {
            let want = 1.0 / (1.0 + (-(x as f64)).exp());
            worst = worst.max(ulps(sigmoid(x), want));
        }
        assert!(worst <= 3.0, "sigmoid: worst relative error {worst} ulp");
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
        assert!(sigmoid(f32::NAN).is_nan());
    }

    #[test]
    fn dot_matches_f64() {
        for n in [0, 1, 5, 16, 17, 40, 513] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).cos()).collect();
            let b: Vec<f32> = (0..n + 3).map(|i| (i as f32 * 0.3).sin()).collect();
            let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            assert!((dot(&a, &b) as f64 - want).abs() < 1e-5 * (n as f64).max(1.0));
        }
    }

    #[test]
    fn slice_versions_equal_the_scalar_functions() {
        // Lengths around the vector widths, so that remainders are exercised.
        for n in [0, 1, 7, 8, 15, 16, 17, 33, 257] {
            let xs: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 9.0).collect();
            let mut e = xs.clone();
            exp_inplace(&mut e);
            let mut t = xs.clone();
            tanh_inplace(&mut t);
            let mut s = xs.clone();
            sigmoid_inplace(&mut s);
            let mut sh = xs.clone();
            let sum = exp_shifted_sum(&mut sh, 2.0);
            let sum_ro = sum_exp_shifted(&xs, 2.0);
            assert_eq!(sum, sum_ro);
            let want_max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&xs), want_max);
            let mut want_sum = 0.0f64;
            for (i, &x) in xs.iter().enumerate() {
                assert_eq!(e[i], exp(x));
                assert_eq!(t[i], tanh(x));
                assert_eq!(s[i], sigmoid(x));
                assert_eq!(sh[i], exp(x - 2.0));
                want_sum += ((x - 2.0) as f64).exp();
            }
            assert!((sum as f64 - want_sum).abs() <= 1e-5 * want_sum.max(1.0));
        }
    }
}
