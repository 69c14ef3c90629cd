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

#[inline(always)]
fn relu(x: f64) -> f64 {
    // `x < 0` is false for NaN, so NaN passes through (as jnp.maximum does).
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

#[inline(always)]
fn relu6(x: f64) -> f64 {
    x.clamp(0.0, 6.0) // NaN stays NaN
}

/// `slope·x`, with the limit `0` instead of `0·∞ = NaN` when the slope is zero.
#[inline(always)]
fn scale_limit(slope: f64, x: f64) -> f64 {
    if slope == 0.0 && x.is_infinite() {
        0.0
    } else {
        slope * x
    }
}

#[inline(always)]
fn leaky_relu(x: f64, negative_slope: f64) -> f64 {
    if x >= 0.0 {
        x
    } else {
        scale_limit(negative_slope, x)
    }
}

/// Keras 3's `ReLU.static_call`, operation for operation.
#[inline(always)]
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

#[inline(always)]
fn elu(x: f64, alpha: f64) -> f64 {
    if x > 0.0 {
        x
    } else {
        alpha * x.exp_m1()
    }
}

#[inline(always)]
fn celu(x: f64, alpha: f64) -> f64 {
    if x > 0.0 {
        x
    } else {
        alpha * (x / alpha).exp_m1()
    }
}

#[inline(always)]
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        // Also NaN: e^NaN/(1 + e^NaN) = NaN.
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[inline(always)]
fn gelu(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        return -0.0; // the limit; the formula gives -∞·0
    }
    // erfc keeps relative accuracy in the far negative tail, where 1 + erf cancels.
    0.5 * x * libm::erfc(-x * FRAC_1_SQRT_2)
}

#[inline(always)]
fn gelu_tanh(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        return -0.0;
    }
    // (1 + tanh(u))/2 = sigmoid(2u): the same function without 1 + tanh cancelling.
    let u = SQRT_2_OVER_PI * (x + 0.044_715 * (x * x * x));
    x * sigmoid(2.0 * u)
}

#[inline(always)]
fn hard_sigmoid(x: f64) -> f64 {
    relu6(x + 3.0) / 6.0
}

#[inline(always)]
fn silu(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        return -0.0;
    }
    x * sigmoid(x)
}

#[inline(always)]
fn hard_silu(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        return -0.0;
    }
    x * hard_sigmoid(x)
}

/// `ln(1 + eˣ)` as `max(x, 0) + ln(1 + e^−|x|)`: no overflow, no cancellation.
#[inline(always)]
fn softplus(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    relu(x) + (-x.abs()).exp().ln_1p()
}

#[inline(always)]
fn softsign(x: f64) -> f64 {
    if x.is_infinite() {
        return x.signum(); // the limit; the formula gives ∞/∞
    }
    x / (1.0 + x.abs())
}

#[inline(always)]
fn mish(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        return -0.0;
    }
    x * softplus(x).tanh()
}

#[inline(always)]
fn hard_tanh(x: f64) -> f64 {
    x.clamp(-1.0, 1.0)
}

#[inline(always)]
fn squareplus(x: f64, b: f64) -> f64 {
    // hypot avoids x² overflowing; for x < 0 the conjugate b/(2(s − x)) avoids the
    // cancellation in x + s (and gives the limit 0 at −∞).
    let s = x.hypot(b.sqrt());
    if x >= 0.0 {
        0.5 * (x + s)
    } else {
        b / (2.0 * (s - x))
    }
}

#[inline(always)]
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

#[inline(always)]
fn soft_shrink(x: f64, threshold: f64) -> f64 {
    if x > threshold {
        x - threshold
    } else if x < -threshold {
        x + threshold
    } else {
        0.0 // also NaN, as Keras's `where` gives
    }
}

#[inline(always)]
fn hard_shrink(x: f64, threshold: f64) -> f64 {
    if x.abs() > threshold {
        x
    } else {
        0.0 // also NaN
    }
}

#[inline(always)]
fn sparse_sigmoid(x: f64) -> f64 {
    0.5 * (x + 1.0).clamp(0.0, 2.0)
}

#[inline(always)]
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
        TanhShrink => v.visit(|x| x - x.tanh()),
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
    #[inline(always)]
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
    #[inline(always)]
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
