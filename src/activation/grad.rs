//! The activations' derivatives for the backward pass: `dz = dy · act'(z)` element-wise,
//! and the vector-Jacobian products of the row-wise ones, evaluated in `f64` and
//! rounded once.
//!
//! At a kink the derivative is the one-sided value Keras 3 (jax) gives, measured on real
//! Keras (tests/keras/backward.txt, docs/BACKWARD_NOTES.md): `relu'(0) = 0`,
//! `leaky_relu'(0) = 1`, ties of `max`/`min`/`clip` split in halves (`relu` with a
//! `max_value` other than 6 has `½` there, `sparse_sigmoid` `¼` at ±1, `celu` `1` at
//! 0), and where jax selects a branch with `where`, the other branch is exactly 0
//! whatever `dy` is ([`Grad::Zero`]). Kink tests see the argument rounded as Keras
//! computes it (`hard_sigmoid` compares `fl(z + 3)` with 0 and 6).
//!
//! Departures, on purpose, as in the forward pass: at `z = ±∞` the smooth activations
//! whose formula Keras evaluates to NaN (`gelu`, `silu`, `mish`, `softsign`,
//! `squareplus`, `sparse_plus`) take their limit (0 or 1); subnormal inputs are numbers,
//! not zeros (jitted XLA reads them as 0).

use super::scalar::{sigmoid, softplus};
use super::{Activation, SELU_ALPHA, SELU_SCALE};
use crate::Element;

/// An element-wise activation's derivative at one point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Grad {
    /// A branch jax selects away: `dz = 0` for any `dy` (also ±∞ and NaN).
    Zero,
    /// `dz = dy · f'(z)`, with this `f'(z)` (which may be 0, NaN or ∞ itself).
    Factor(f64),
}

/// `1 − tanh²(u)` without cancellation: `4·σ(2u)·σ(−2u)`.
fn sech2(u: f64) -> f64 {
    4.0 * sigmoid(2.0 * u) * sigmoid(-2.0 * u)
}

/// The tie factor of `max(x, k)` for `x`: 1 above, ½ at, 0 below (and for NaN).
fn above(x: f64, k: f64) -> f64 {
    if x > k {
        1.0
    } else if x == k {
        0.5
    } else {
        0.0
    }
}

/// The tie factor of `min(x, k)` for `x`: 1 below, ½ at, 0 above (and for NaN).
fn below(x: f64, k: f64) -> f64 {
    if x < k {
        1.0
    } else if x == k {
        0.5
    } else {
        0.0
    }
}

fn select(cond: bool, d: f64) -> Grad {
    if cond {
        Grad::Factor(d)
    } else {
        Grad::Zero
    }
}

/// The smooth activations' limits at ±∞ (`f'(+∞)`, `f'(−∞)`), where the formula
/// would meet `∞·0` or `∞/∞`.
fn at_infinity(z: f64, plus: f64, minus: f64) -> Option<f64> {
    if z == f64::INFINITY {
        Some(plus)
    } else if z == f64::NEG_INFINITY {
        Some(minus)
    } else {
        None
    }
}

/// `act'(z)` for an element-wise activation whose parameters are already at the
/// layer's precision ([`Activation::params_as`]); `round` rounds to that precision (the
/// kink tests of `hard_sigmoid`, `hard_silu` and `sparse_sigmoid` see `fl(z + c)`).
/// `None` for the row-wise activations.
pub(crate) fn elementwise(act: Activation, z: f64, round: fn(f64) -> f64) -> Option<Grad> {
    use Activation::*;
    const SIXTH: f64 = 1.0 / 6.0;
    let g = match act {
        Linear => Grad::Factor(1.0),
        Relu => select(z > 0.0, 1.0),
        Relu6 => select(z > 0.0 && z < 6.0, 1.0),
        LeakyRelu { negative_slope } => leaky(z, negative_slope),
        ReluWith {
            negative_slope,
            max_value,
            threshold,
        } => relu_with(z, negative_slope, max_value, threshold),
        Elu { alpha } => {
            if z > 0.0 {
                Grad::Factor(1.0)
            } else {
                Grad::Factor(alpha * z.exp())
            }
        }
        Selu => {
            if z > 0.0 {
                Grad::Factor(SELU_SCALE)
            } else {
                Grad::Factor(SELU_SCALE * SELU_ALPHA * z.exp())
            }
        }
        Celu { alpha } => {
            if z.is_nan() {
                Grad::Factor(f64::NAN)
            } else {
                // max(z, 0) + min(0, α·expm1(z/α)): each half with its tie factor.
                let neg = if z < 0.0 { (z / alpha).exp() } else { 1.0 };
                Grad::Factor(above(z, 0.0) + below(z, 0.0) * neg)
            }
        }
        Gelu => Grad::Factor(at_infinity(z, 1.0, 0.0).unwrap_or_else(|| {
            let cdf = 0.5 * libm::erfc(-z * std::f64::consts::FRAC_1_SQRT_2);
            let pdf = (-0.5 * z * z).exp() * 0.398_942_280_401_432_7; // 1/√(2π)
            cdf + z * pdf
        })),
        GeluTanh => Grad::Factor(at_infinity(z, 1.0, 0.0).unwrap_or_else(|| {
            const C: f64 = 0.797_884_560_802_865_4; // √(2/π)
            const A: f64 = 0.044_715;
            if z.abs() > 1e3 {
                return if z > 0.0 { 1.0 } else { 0.0 };
            }
            let u = C * (z + A * z * z * z);
            // ½(1 + tanh u) = σ(2u), exact in the far negative tail.
            sigmoid(2.0 * u) + 0.5 * z * sech2(u) * C * (1.0 + 3.0 * A * z * z)
        })),
        Sigmoid => Grad::Factor(sigmoid(z) * sigmoid(-z)),
        HardSigmoid => {
            let s = round(z + 3.0);
            select(s > 0.0 && s < 6.0, SIXTH)
        }
        Silu => Grad::Factor(at_infinity(z, 1.0, 0.0).unwrap_or_else(|| {
            let s = sigmoid(z);
            s + z * s * sigmoid(-z)
        })),
        HardSilu => {
            let s = round(z + 3.0);
            let hs = s.clamp(0.0, 6.0) * SIXTH; // NaN stays NaN
            let inside = if s > 0.0 && s < 6.0 { z * SIXTH } else { 0.0 };
            Grad::Factor(hs + inside)
        }
        Tanh => Grad::Factor(sech2(z)),
        Softplus => Grad::Factor(sigmoid(z)),
        Softsign => {
            let d = 1.0 + z.abs();
            Grad::Factor(1.0 / (d * d))
        }
        Mish => Grad::Factor(at_infinity(z, 1.0, 0.0).unwrap_or_else(|| {
            let sp = softplus(z);
            sp.tanh() + z * sech2(sp) * sigmoid(z)
        })),
        Exponential => Grad::Factor(z.exp()),
        LogSigmoid => Grad::Factor(sigmoid(-z)),
        // `where(z > 1 or z < −1, 0, dy)`: NaN passes dy (a range test would not).
        #[allow(clippy::manual_range_contains)]
        HardTanh => select(!(z > 1.0 || z < -1.0), 1.0),
        TanhShrink => {
            let t = z.tanh();
            Grad::Factor(t * t)
        }
        Squareplus { b } => Grad::Factor(squareplus(z, b)),
        SparsePlus => {
            if z <= -1.0 {
                Grad::Zero
            } else if z >= 1.0 {
                Grad::Factor(1.0)
            } else {
                Grad::Factor((z + 1.0) * 0.5)
            }
        }
        SoftShrink { threshold } | HardShrink { threshold } => select(z.abs() > threshold, 1.0),
        SparseSigmoid => {
            let s = round(z + 1.0);
            Grad::Factor(0.5 * above(s, 0.0) * below(s, 2.0))
        }
        Threshold { threshold, .. } => select(z > threshold, 1.0),
        Softmax | LogSoftmax | Sparsemax => return None,
    };
    Some(g)
}

fn leaky(z: f64, slope: f64) -> Grad {
    // `where(z >= 0, dy, slope·dy)`: NaN takes the slope.
    Grad::Factor(if z >= 0.0 { 1.0 } else { slope })
}

/// Keras's `ReLU.static_call` differentiated (docs/BACKWARD_NOTES.md §2).
fn relu_with(z: f64, slope: f64, max_value: Option<f64>, threshold: f64) -> Grad {
    if slope != 0.0 && max_value.is_none() && threshold == 0.0 {
        return leaky(z, slope);
    }
    let (gate, clip) = if threshold != 0.0 {
        (z > threshold, max_value)
    } else if max_value == Some(6.0) {
        (z > 0.0 && z < 6.0, None)
    } else {
        (z > 0.0, max_value)
    };
    if gate {
        // The clip to [0, max] of the gated value z, with its tie factors.
        let f = match clip {
            Some(m) => above(z, 0.0) * below(z, m),
            None => 1.0,
        };
        Grad::Factor(f)
    } else if slope != 0.0 && threshold - z > 0.0 {
        Grad::Factor(slope)
    } else {
        Grad::Zero
    }
}

fn squareplus(z: f64, b: f64) -> f64 {
    if let Some(l) = at_infinity(z, 1.0, 0.0) {
        return l;
    }
    if z == 0.0 {
        return 0.5;
    }
    if b >= 0.0 {
        let r = z.hypot(b.sqrt());
        if z < 0.0 {
            // ½ − ½|z|/r = ½·b/((r + |z|)·r), without the cancellation.
            0.5 * b / ((r + z.abs()) * r)
        } else {
            0.5 + 0.5 * z / r
        }
    } else {
        0.5 + 0.5 * z / (z * z + b).sqrt()
    }
}

/// `dy · act'(z)` for an element-wise activation (parameters at `T`'s precision), in
/// `f64`, rounded once.
#[inline]
pub(crate) fn vjp_elementwise<T: Element>(g: Grad, dy: T) -> T {
    match g {
        Grad::Zero => T::narrow(0.0),
        Grad::Factor(d) => T::narrow(dy.widen() * d),
    }
}

/// The vector-Jacobian product of a row-wise activation over one row: `dz` from the
/// row's pre-activations `z` and `dy`, in `f64` (`buf` holds the row's outputs), each
/// element rounded once. A row that holds NaN or `+∞`, or only `−∞`, is NaN (as its
/// forward is).
pub(crate) fn vjp_row<T: Element>(
    act: Activation,
    z: impl Iterator<Item = T> + Clone,
    dy: &[T],
    dz: &mut [T],
    buf: &mut Vec<f64>,
) {
    buf.clear();
    buf.extend(z.map(|v| v.widen()));
    let bad = buf.iter().any(|v| v.is_nan() || *v == f64::INFINITY)
        || buf.iter().all(|v| *v == f64::NEG_INFINITY);
    if bad {
        dz.iter_mut().for_each(|d| *d = T::narrow(f64::NAN));
        return;
    }
    match act {
        Activation::Softmax | Activation::LogSoftmax => {
            let m = buf.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut q = 0.0;
            for v in buf.iter_mut() {
                *v = (*v - m).exp();
                q += *v;
            }
            buf.iter_mut().for_each(|v| *v /= q); // y = softmax(z)
            if act == Activation::Softmax {
                // dz_i = y_i·(dy_i − Σ_j y_j·dy_j)
                let s: f64 = buf.iter().zip(dy).map(|(y, d)| y * d.widen()).sum();
                for ((d, y), g) in dz.iter_mut().zip(buf.iter()).zip(dy) {
                    *d = T::narrow(y * (g.widen() - s));
                }
            } else {
                // dz_i = dy_i − y_i·Σ_j dy_j
                let s: f64 = dy.iter().map(|d| d.widen()).sum();
                for ((d, y), g) in dz.iter_mut().zip(buf.iter()).zip(dy) {
                    *d = T::narrow(g.widen() - y * s);
                }
            }
        }
        Activation::Sparsemax => {
            // The support S = {i : z_i > τ} of the paper's sparsemax; dz_i = dy_i −
            // mean_S(dy) on S, 0 elsewhere.
            // On the row shifted by its maximum, as the forward computes it.
            let m = buf.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            buf.iter_mut().for_each(|v| *v -= m);
            let tau = sparsemax_threshold(buf);
            buf.truncate(dz.len());
            let (mut cnt, mut sum) = (0usize, 0.0);
            for (v, d) in buf.iter().zip(dy) {
                if *v > tau {
                    cnt += 1;
                    sum += d.widen();
                }
            }
            let mean = sum / cnt.max(1) as f64;
            for ((d, v), g) in dz.iter_mut().zip(buf.iter()).zip(dy) {
                *d = T::narrow(if *v > tau { g.widen() - mean } else { 0.0 });
            }
        }
        _ => unreachable!("vjp_row is for the row-wise activations"),
    }
}

/// The paper's sparsemax threshold τ of the row `z` (finite maximum), by sorting a
/// copy appended to `z` (the caller truncates it again).
fn sparsemax_threshold(z: &mut Vec<f64>) -> f64 {
    let n = z.len();
    z.extend_from_within(..n);
    let s = &mut z[n..];
    s.sort_by(|a, b| b.total_cmp(a));
    let (mut cum, mut tau) = (0.0, s[0] - 1.0);
    for (k, &v) in s.iter().enumerate() {
        cum += v;
        let t = (cum - 1.0) / (k + 1) as f64;
        if v > t {
            tau = t;
        } else {
            break;
        }
    }
    tau
}
