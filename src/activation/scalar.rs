//! Scalar definitions of every activation, evaluated in `f64`, and their application to
//! output rows.
//!
//! This is both the crate's scalar epilogue and the yardstick the vector kernels are
//! measured against: each element-wise activation is one small `f64` function written
//! for accuracy over the whole range (overflow-safe forms, limits at ±∞), and
//! [`with_elementwise`] maps an [`Activation`] to that function once, so a slice loop is
//! monomorphised per activation: no per-element dispatch. For `f32` outputs the value
//! is computed in `f64` and rounded once, which makes the scalar `f32` path accurate to
//! about half an ulp.
//!
//! The row-wise activations (softmax, log_softmax, sparsemax) work in place on one
//! output row, accumulating in `f64`, without allocating.

use super::{Activation, SELU_ALPHA, SELU_SCALE};
use crate::Element;
use std::f64::consts::FRAC_1_SQRT_2;

/// `sqrt(2/π)`, the tanh-GELU constant.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn relu(x: f64) -> f64 {
    // `x < 0` is false for NaN, so NaN passes through (as jnp.maximum does).
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn relu6(x: f64) -> f64 {
    x.clamp(0.0, 6.0) // NaN stays NaN
}

/// `slope·x`, with the limit `±0` (the sign `0·x` has for finite `x`) instead of
/// `0·∞ = NaN` when the slope is zero.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn scale_limit(slope: f64, x: f64) -> f64 {
    if slope == 0.0 && x.is_infinite() {
        slope * x.signum()
    } else {
        slope * x
    }
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn leaky_relu(x: f64, negative_slope: f64) -> f64 {
    if x >= 0.0 {
        x
    } else {
        scale_limit(negative_slope, x)
    }
}

/// Keras 3's `ReLU.static_call`, operation for operation.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn relu_with(x: f64, negative_slope: f64, max_value: Option<f64>, threshold: f64) -> f64 {
    if negative_slope != 0.0 && max_value.is_none() && threshold == 0.0 {
        return leaky_relu(x, negative_slope);
    }
    let mut clip_max = max_value;
    let mut y = if threshold != 0.0 {
        // `where(x > threshold, x, 0)`: NaN and everything at or below go to 0.
        if x > threshold {
            x
        } else {
            0.0
        }
    } else if max_value == Some(6.0) {
        clip_max = None;
        relu6(x)
    } else {
        relu(x)
    };
    if let Some(m) = clip_max {
        // `clip(y, 0, m)` = `minimum(maximum(y, 0), m)`, NaN-propagating.
        y = if y < 0.0 { 0.0 } else { y };
        y = if y > m { m } else { y };
    }
    if negative_slope != 0.0 {
        y -= negative_slope * relu(threshold - x);
    }
    y
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn elu(x: f64, alpha: f64) -> f64 {
    if x > 0.0 {
        x
    } else {
        alpha * x.exp_m1()
    }
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn celu(x: f64, alpha: f64) -> f64 {
    if x > 0.0 {
        return x;
    }
    let t = x / alpha;
    if t.abs() < f64::EPSILON {
        // α·expm1(t) = x·(1 + t/2 + …) is x to within half an ulp; computed, it lost x's
        // bits wherever t fell below the normal range (x = −2.5e−308, α = 10³⁰⁰ gave
        // −0: found by the fuzzer's huge parameters).
        x
    } else {
        alpha * t.exp_m1()
    }
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        // Also NaN: e^NaN/(1 + e^NaN) = NaN.
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn gelu(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        return -0.0; // the limit; the formula gives -∞·0
    }
    // erfc keeps relative accuracy in the far negative tail, where 1 + erf cancels.
    let a = -x * FRAC_1_SQRT_2;
    let y = 0.5 * x * libm::erfc(a);
    if a <= 1.0 || y == 0.0 {
        return y;
    }
    // In the tail erfc(a) falls like e^(−a²), so the rounding error `da` of the argument
    // costs a relative error of about 2a·da (700 ulps at x = −30). Correct to first
    // order: erfc(a + da) ≈ erfc(a)·(1 − L·da), L = −erfc'(a)/erfc(a).
    let da = (-x).mul_add(FRAC_1_SQRT_2, -a) + (-x) * FRAC_1_SQRT_2_LO;
    y * (1.0 - erfc_log_slope(a) * da)
}

/// The low part of 1/√2: `FRAC_1_SQRT_2 + FRAC_1_SQRT_2_LO` is 1/√2 to about 2⁻¹⁰⁶.
const FRAC_1_SQRT_2_LO: f64 = -4.833_646_656_726_457e-17;

/// `−erfc'(a)/erfc(a) = 2e^(−a²)/(√π·erfc(a))` for `a > 1`; from the asymptotic series
/// for large `a`, where `e^(−a²)` and `erfc(a)` both underflow.
fn erfc_log_slope(a: f64) -> f64 {
    if a < 5.0 {
        2.0 * (-a * a).exp() / (std::f64::consts::PI.sqrt() * libm::erfc(a))
    } else {
        // erfc(a) = e^(−a²)/(a√π)·(1 − 1/(2a²) + 3/(4a⁴) − 15/(8a⁶) + …)
        let t = 1.0 / (a * a);
        2.0 * a / (1.0 - 0.5 * t + 0.75 * t * t - 1.875 * t * t * t)
    }
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn gelu_tanh(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        return -0.0;
    }
    // (1 + tanh(u))/2 = sigmoid(2u): the same function without 1 + tanh cancelling.
    let u = SQRT_2_OVER_PI * (x + 0.044_715 * (x * x * x));
    x * sigmoid(2.0 * u)
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn hard_sigmoid(x: f64) -> f64 {
    relu6(x + 3.0) / 6.0
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn silu(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        return -0.0;
    }
    x * sigmoid(x)
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn hard_silu(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        return -0.0;
    }
    x * hard_sigmoid(x)
}

/// `ln(1 + eˣ)` as `max(x, 0) + ln(1 + e^−|x|)`: no overflow, no cancellation.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn softplus(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    relu(x) + (-x.abs()).exp().ln_1p()
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn softsign(x: f64) -> f64 {
    if x.is_infinite() {
        return x.signum(); // the limit; the formula gives ∞/∞
    }
    x / (1.0 + x.abs())
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn mish(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        return -0.0;
    }
    x * softplus(x).tanh()
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn hard_tanh(x: f64) -> f64 {
    x.clamp(-1.0, 1.0)
}

/// Taylor coefficients of `x − tanh(x)` in `x³, x⁵, …, x²⁹` (from the Bernoulli numbers:
/// `−2²ⁿ(2²ⁿ − 1)B₂ₙ/(2n)!`).
pub(crate) const TANH_SHRINK_SERIES: [f64; 14] = [
    0.333_333_333_333_333_3,
    -0.133_333_333_333_333_33,
    0.053_968_253_968_253_97,
    -0.021_869_488_536_155_203,
    0.008_863_235_529_902_197,
    -0.003_592_128_036_572_481,
    0.001_455_834_387_051_318_3,
    -0.000_590_027_440_945_586,
    0.000_239_129_114_243_552_48,
    -9.691_537_956_929_451e-5,
    3.927_832_388_331_683e-5,
    -1.591_890_506_932_896_4e-5,
    6.451_689_215_655_431e-6,
    -2.614_771_151_290_754_6e-6,
];

/// `x − tanh(x)`. Near 0 the subtraction cancels (`x³/3` left of `x`), so |x| < 0.4
/// uses the series (14 terms: truncation < 3e-17 relative); beyond, the difference
/// keeps all but a few bits.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn tanh_shrink(x: f64) -> f64 {
    if x.abs() < 0.4 {
        let x2 = x * x;
        let p = TANH_SHRINK_SERIES
            .iter()
            .rev()
            .fold(0.0f64, |acc, &c| acc.mul_add(x2, c));
        x * x2 * p
    } else {
        x - x.tanh()
    }
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn squareplus(x: f64, b: f64) -> f64 {
    // s = √(x² + b) without x² overflowing (hypot for b ≥ 0; for b < 0, NaN where
    // x² + b < 0, as in Keras). For x < 0 the conjugate b/(2(s − x)) avoids the
    // cancellation in x + s (and gives the limit 0 at −∞).
    let s = if b >= 0.0 {
        x.hypot(b.sqrt())
    } else if x.abs() < 1e150 {
        // One rounding of x² + b: no cancellation error where x² ≈ −b.
        x.mul_add(x, b).sqrt()
    } else {
        x.abs() * (1.0 + b / (x * x)).sqrt()
    };
    if x >= 0.0 {
        0.5 * (x + s)
    } else {
        b / (2.0 * (s - x))
    }
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn sparse_plus(x: f64) -> f64 {
    if x <= -1.0 {
        0.0
    } else if x >= 1.0 {
        x
    } else {
        let t = x + 1.0;
        0.25 * t * t
    }
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn soft_shrink(x: f64, threshold: f64) -> f64 {
    if x > threshold {
        x - threshold
    } else if x < -threshold {
        x + threshold
    } else {
        0.0 // also NaN, as Keras's `where` gives
    }
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn hard_shrink(x: f64, threshold: f64) -> f64 {
    if x.abs() > threshold {
        x
    } else {
        0.0 // also NaN
    }
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn sparse_sigmoid(x: f64) -> f64 {
    0.5 * (x + 1.0).clamp(0.0, 2.0)
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn threshold(x: f64, threshold: f64, default_value: f64) -> f64 {
    if x > threshold {
        x
    } else {
        default_value // also NaN
    }
}

/// Receives the `f64` function of an element-wise activation, monomorphised per
/// activation (see [`with_elementwise`]).
pub(crate) trait ElementwiseVisitor {
    /// What the visit returns.
    type Output;
    /// Called once with the activation's function.
    fn visit<F: Fn(f64) -> f64>(self, f: F) -> Self::Output;
}

/// Calls `v.visit` with the scalar function of `act`, or returns `None` for the
/// row-wise activations. The one place that maps variants to definitions.
#[inline]
pub(crate) fn with_elementwise<V: ElementwiseVisitor>(act: Activation, v: V) -> Option<V::Output> {
    use Activation::*;
    Some(match act {
        Linear => v.visit(|x| x),
        Relu => v.visit(relu),
        Relu6 => v.visit(relu6),
        LeakyRelu { negative_slope } => v.visit(move |x| leaky_relu(x, negative_slope)),
        ReluWith {
            negative_slope,
            max_value,
            threshold,
        } => v.visit(move |x| relu_with(x, negative_slope, max_value, threshold)),
        Elu { alpha } => v.visit(move |x| elu(x, alpha)),
        Selu => v.visit(|x| SELU_SCALE * elu(x, SELU_ALPHA)),
        Celu { alpha } => v.visit(move |x| celu(x, alpha)),
        Gelu => v.visit(gelu),
        GeluTanh => v.visit(gelu_tanh),
        Sigmoid => v.visit(sigmoid),
        HardSigmoid => v.visit(hard_sigmoid),
        Silu => v.visit(silu),
        HardSilu => v.visit(hard_silu),
        Tanh => v.visit(f64::tanh),
        Softplus => v.visit(softplus),
        Softsign => v.visit(softsign),
        Mish => v.visit(mish),
        Exponential => v.visit(f64::exp),
        LogSigmoid => v.visit(|x| -softplus(-x)),
        HardTanh => v.visit(hard_tanh),
        TanhShrink => v.visit(tanh_shrink),
        Squareplus { b } => v.visit(move |x| squareplus(x, b)),
        SparsePlus => v.visit(sparse_plus),
        SoftShrink { threshold: t } => v.visit(move |x| soft_shrink(x, t)),
        HardShrink { threshold: t } => v.visit(move |x| hard_shrink(x, t)),
        SparseSigmoid => v.visit(sparse_sigmoid),
        Threshold {
            threshold: t,
            default_value,
        } => v.visit(move |x| threshold(x, t, default_value)),
        Softmax | LogSoftmax | Sparsemax => return None,
    })
}

struct EvalAt(f64);

impl ElementwiseVisitor for EvalAt {
    type Output = f64;
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn visit<F: Fn(f64) -> f64>(self, f: F) -> f64 {
        f(self.0)
    }
}

/// The element-wise activation `act` at `x`, in `f64`; `None` for the row-wise ones.
pub fn eval(act: Activation, x: f64) -> Option<f64> {
    with_elementwise(act, EvalAt(x))
}

struct MapSlice<'a, T>(&'a mut [T]);

impl<T: Element> ElementwiseVisitor for MapSlice<'_, T> {
    type Output = ();
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn visit<F: Fn(f64) -> f64>(self, f: F) {
        for v in self.0.iter_mut() {
            *v = T::narrow(f(v.widen()));
        }
    }
}

/// Applies `act` in place to a row-major block whose rows have `cols` elements.
pub(crate) fn apply<T: Element>(act: Activation, data: &mut [T], cols: usize) {
    if act == Activation::Linear || data.is_empty() {
        return;
    }
    let act = act.params_as::<T>();
    if with_elementwise(act, MapSlice(&mut *data)).is_some() {
        return;
    }
    for row in data.chunks_exact_mut(cols) {
        match act {
            Activation::Softmax => softmax_row(row),
            Activation::LogSoftmax => log_softmax_row(row),
            Activation::Sparsemax => sparsemax_row(row),
            _ => unreachable!("with_elementwise covers every other activation"),
        }
    }
}

/// The row's maximum, ignoring NaN (NaN then poisons the sums that follow).
fn row_max<T: Element>(row: &[T]) -> f64 {
    row.iter()
        .map(|v| v.widen())
        .fold(f64::NEG_INFINITY, |m, v| if v > m { v } else { m })
}

/// `e^(x − max) / Σ e^(x − max)`: a row holding NaN or +∞ (∞ − ∞), or all −∞, becomes
/// NaN, as in Keras; −∞ entries become 0.
fn softmax_row<T: Element>(row: &mut [T]) {
    let m = row_max(row);
    let mut sum = 0.0f64;
    for v in row.iter_mut() {
        let e = (v.widen() - m).exp();
        sum += e;
        *v = T::narrow(e);
    }
    // Dividing the stored e (exact for f64, one rounding for f32) keeps the error near
    // one ulp without evaluating exp twice.
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v = T::narrow(v.widen() * inv);
    }
}

/// `x − max − ln Σ e^(x − max)`.
fn log_softmax_row<T: Element>(row: &mut [T]) {
    let m = row_max(row);
    let sum: f64 = row.iter().map(|v| (v.widen() - m).exp()).sum();
    let lse = sum.ln();
    for v in row.iter_mut() {
        *v = T::narrow((v.widen() - m) - lse);
    }
}

/// Sparsemax by Michelot's pivoting (no sort, no allocation): the threshold `τ` solves
/// `Σ max(x − τ, 0) = 1`; starting from the whole row, keep the entries above the current
/// `τ` and recompute `τ = (Σ kept − 1)/|kept|` until the kept set stops shrinking. The
/// row is shifted by its maximum first (sparsemax is shift-equivariant), so entries near
/// the top keep full precision whatever the magnitude.
fn sparsemax_row<T: Element>(row: &mut [T]) {
    let m = row_max(row);
    if row.iter().any(|v| v.is_nan()) || m == f64::INFINITY || m == f64::NEG_INFINITY {
        // NaN anywhere, +∞ (∞ − ∞ in the threshold) or nothing finite: undefined.
        row.fill(T::nan());
        return;
    }
    let mut tau = f64::NEG_INFINITY;
    let mut kept = usize::MAX;
    // Each pass either shrinks the kept set or stops; the top entry is always kept.
    for _ in 0..=row.len() {
        let (mut sum, mut count) = (0.0f64, 0usize);
        for v in row.iter() {
            let x = v.widen() - m;
            if x > tau {
                sum += x;
                count += 1;
            }
        }
        if count == kept || count == 0 {
            break;
        }
        kept = count;
        // Never let rounding move τ backwards: keeps the kept sets nested.
        tau = tau.max((sum - 1.0) / count as f64);
    }
    for v in row.iter_mut() {
        let y = v.widen() - m - tau;
        *v = T::narrow(if y > 0.0 { y } else { 0.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units of the last place between two f64 values of the same sign.
    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    /// Against mpmath (60 digits, correctly rounded to f64), where the naive formulas
    /// lose: gelu's far negative tail, tanh_shrink near 0.
    #[test]
    fn accurate_where_naive_forms_cancel() {
        let gelu_truth = [
            (-3.0, -0.004_049_694_094_890_283_5),
            (-10.0, -7.619_853_024_160_526e-23),
            (-20.0, -5.507_248_237_212_468e-88),
            (-30.0, -1.472_014_178_144_456e-196),
            (-37.0, -2.118_461_352_334_093_5e-298),
        ];
        for (x, t) in gelu_truth {
            assert!(
                ulps(gelu(x), t) <= 4,
                "gelu({x}) = {:e}, truth {t:e}",
                gelu(x)
            );
        }
        let tanh_shrink_truth = [
            (1e-5, 3.333_333_333_200_001e-16),
            (0.1, 0.000_332_005_375_044_182_96),
            (0.3, 0.008_687_387_548_409_094),
            (0.39, 0.018_639_772_123_492_32),
            (-0.25, -0.005_081_337_596_290_871),
        ];
        for (x, t) in tanh_shrink_truth {
            let y = tanh_shrink(x);
            assert!(ulps(y, t) <= 2, "tanh_shrink({x}) = {y:e}, truth {t:e}");
        }
        // Beyond the series the subtraction loses a few bits only.
        for (x, t) in [
            (0.41, 0.021_527_319_783_938_98),
            (0.7, 0.095_632_222_882_836_49),
        ] {
            let y = tanh_shrink(x);
            assert!(ulps(y, t) <= 32, "tanh_shrink({x}) = {y:e}, truth {t:e}");
        }
    }

    #[test]
    fn squareplus_negative_b_is_nan_only_where_keras_is() {
        assert!(squareplus(0.5, -1.0).is_nan());
        assert_eq!(squareplus(1.0, -1.0), 0.5);
        let y = squareplus(-2.0, -1.0); // (−2 + √3)/2
        assert!((y - (-2.0 + 3f64.sqrt()) / 2.0).abs() < 1e-15);
        assert!((squareplus(3e200, -1.0) - 3e200).abs() <= 3e200 * f64::EPSILON);
    }

    #[test]
    fn zero_slope_limits_keep_the_sign_of_zero() {
        assert!(leaky_relu(f64::NEG_INFINITY, 0.0) == 0.0);
        assert!(leaky_relu(f64::NEG_INFINITY, 0.0).is_sign_negative());
        assert!(leaky_relu(-3.0, 0.0).is_sign_negative());
    }
}
