//! Which body each activation runs, and the loops that apply it to an output block:
//! whole registers, then one masked (partial) register for the ragged tail, never a
//! per-element scalar loop.
//!
//! Three kinds of body:
//! - *native*: written in the output's own lanes (the piecewise activations, bit-exact
//!   with the scalar formula, and the exp/log/tanh family);
//! - *f64-lane*: the rational and composite activations (hard_sigmoid, softsign,
//!   squareplus, tanh_shrink, gelu_tanh, …) run in `f64` lanes; for `f32` outputs each
//!   register is widened, evaluated and rounded once, exactly as the scalar path does;
//! - *scalar*: sparsemax, `f64` gelu and celu with `alpha ≤ 0` keep the scalar path.

use super::math::{self, horner};
use super::vector::{Real, Vector, Widen};
use crate::activation::scalar;
use crate::activation::{Activation, SELU_ALPHA, SELU_SCALE};

/// Applies `f` to every element of `data`, in place.
///
/// # Safety
/// Called inside the backend's entry function (see [`super::vector`]).
#[inline(always)]
pub(crate) unsafe fn map<V: Vector>(data: &mut [V::E], f: impl Fn(V) -> V) {
    let n = data.len();
    let p = data.as_mut_ptr();
    let mut i = 0;
    while i + V::LANES <= n {
        // SAFETY: i + LANES ≤ n, so the register lies inside `data`.
        unsafe { f(V::load(p.add(i))).store(p.add(i)) };
        i += V::LANES;
    }
    if i < n {
        // SAFETY: n − i < LANES elements remain from `p + i`, inside `data`.
        unsafe {
            let v = V::load_part(p.add(i), n - i, V::splat(0.0));
            f(v).store_part(p.add(i), n - i);
        }
    }
}

/// A block an `f64`-lane body runs over.
trait F64Body {
    /// The `f64` register the body is evaluated in.
    type W: Vector<E = f64>;
    /// Applies `f` in place.
    ///
    /// # Safety
    /// Called inside the backend's entry function.
    unsafe fn run(self, f: impl Fn(Self::W) -> Self::W);
}

/// An `f64` output block: the body maps it directly.
struct F64Block<'a, V>(&'a mut [f64], core::marker::PhantomData<V>);

impl<V: Vector<E = f64>> F64Body for F64Block<'_, V> {
    type W = V;
    #[inline(always)]
    unsafe fn run(self, f: impl Fn(V) -> V) {
        // SAFETY: forwarded from the caller.
        unsafe { map::<V>(self.0, f) }
    }
}

/// An `f32` output block: each register is widened, mapped and rounded back once.
struct F32Block<'a, V>(&'a mut [f32], core::marker::PhantomData<V>);

impl<V: Widen> F64Body for F32Block<'_, V> {
    type W = V::W;
    #[inline(always)]
    unsafe fn run(self, f: impl Fn(V::W) -> V::W) {
        // SAFETY: forwarded from the caller.
        unsafe {
            map::<V>(self.0, |v| {
                let (lo, hi) = v.widen();
                V::narrow(f(lo), f(hi))
            })
        }
    }
}

// ---- piecewise bodies: the scalar formula, operation for operation ----

#[inline(always)]
fn relu<V: Vector>(x: V) -> V {
    V::select(x.lt(V::splat(0.0)), V::splat(0.0), x)
}

#[inline(always)]
fn relu6<V: Vector>(x: V) -> V {
    let y = V::select(x.lt(V::splat(0.0)), V::splat(0.0), x);
    V::select(x.gt(V::splat(6.0)), V::splat(6.0), y)
}

#[inline(always)]
fn leaky_relu<V: Vector>(x: V, slope: f64) -> V {
    let mut neg = V::splat(slope) * x;
    if slope == 0.0 {
        // The scalar formula's limit at −∞: slope·sign(x) instead of 0·∞.
        neg = V::select(x.eq(V::splat(f64::NEG_INFINITY)), V::splat(-slope), neg);
    }
    V::select(x.ge(V::splat(0.0)), x, neg)
}

#[inline(always)]
fn relu_with<V: Vector>(x: V, slope: f64, max_value: Option<f64>, threshold: f64) -> V {
    if slope != 0.0 && max_value.is_none() && threshold == 0.0 {
        return leaky_relu(x, slope);
    }
    let zero = V::splat(0.0);
    let mut clip_max = max_value;
    let mut y = if threshold != 0.0 {
        V::select(x.gt(V::splat(threshold)), x, zero)
    } else if max_value == Some(6.0) {
        clip_max = None;
        relu6(x)
    } else {
        relu(x)
    };
    if let Some(m) = clip_max {
        y = V::select(y.lt(zero), zero, y);
        y = V::select(y.gt(V::splat(m)), V::splat(m), y);
    }
    if slope != 0.0 {
        y = y - V::splat(slope) * relu(V::splat(threshold) - x);
    }
    y
}

#[inline(always)]
fn hard_tanh<V: Vector>(x: V) -> V {
    let y = V::select(x.lt(V::splat(-1.0)), V::splat(-1.0), x);
    V::select(x.gt(V::splat(1.0)), V::splat(1.0), y)
}

#[inline(always)]
fn soft_shrink<V: Vector>(x: V, t: f64) -> V {
    let tv = V::splat(t);
    let y = V::select(x.lt(-tv), x + tv, V::splat(0.0));
    V::select(x.gt(tv), x - tv, y)
}

#[inline(always)]
fn hard_shrink<V: Vector>(x: V, t: f64) -> V {
    V::select(x.abs().gt(V::splat(t)), x, V::splat(0.0))
}

#[inline(always)]
fn sparse_sigmoid<V: Vector>(x: V) -> V {
    let y = x + V::splat(1.0);
    let y = V::select(y.lt(V::splat(0.0)), V::splat(0.0), y);
    let y = V::select(y.gt(V::splat(2.0)), V::splat(2.0), y);
    V::splat(0.5) * y
}

#[inline(always)]
fn threshold<V: Vector>(x: V, t: f64, default_value: f64) -> V {
    V::select(x.gt(V::splat(t)), x, V::splat(default_value))
}

#[inline(always)]
fn hard_sigmoid<V: Vector>(x: V) -> V {
    relu6(x + V::splat(3.0)) / V::splat(6.0)
}

#[inline(always)]
fn hard_silu<V: Vector>(x: V) -> V {
    let y = x * hard_sigmoid(x);
    V::select(x.eq(V::splat(f64::NEG_INFINITY)), V::splat(-0.0), y)
}

#[inline(always)]
fn sparse_plus<V: Vector>(x: V) -> V {
    let t = x + V::splat(1.0);
    let mid = V::splat(0.25) * t * t;
    let y = V::select(x.ge(V::splat(1.0)), x, mid);
    V::select(x.le(V::splat(-1.0)), V::splat(0.0), y)
}

// ---- f64-lane bodies ----

#[inline(always)]
fn softsign<V: Vector>(x: V) -> V {
    let y = x / (V::splat(1.0) + x.abs());
    let inf = x.abs().eq(V::splat(f64::INFINITY));
    V::select(inf, V::splat(1.0).copysign(x), y)
}

#[inline(always)]
fn squareplus<V: Vector>(x: V, b: f64) -> V {
    let bv = V::splat(b);
    // s = √(x² + b): one rounding of x² + b (FMA) where x² is in range, else at the
    // scale g = max(|x|, √|b|), where nothing overflows or underflows.
    let a = x.abs();
    let g = a.max(V::splat(b.abs().sqrt()));
    let xg = x / g;
    let scaled = g * xg.mul_add(xg, bv / g / g).sqrt();
    let scaled = V::select(g.eq(V::splat(0.0)), V::splat(0.0), scaled);
    let scaled = V::select(a.eq(V::splat(f64::INFINITY)), a, scaled);
    let s = V::select(a.gt(V::splat(1e-150)), x.mul_add(x, bv).sqrt(), scaled);
    let s = V::select(a.lt(V::splat(1e150)), s, scaled);
    // x < 0: the conjugate b/(2(s − x)), no cancellation.
    let neg = bv / (V::splat(2.0) * (s - x));
    V::select(x.ge(V::splat(0.0)), V::splat(0.5) * (x + s), neg)
}

#[inline(always)]
fn tanh_shrink<V: Vector>(x: V) -> V {
    let x2 = x * x;
    let series = (x * x2) * horner(x2, &scalar::TANH_SHRINK_SERIES);
    let y = x - math::tanh(x);
    V::select(x.abs().lt(V::splat(0.4)), series, y)
}

// ---- dispatch ----

/// Runs the native body of `act` over `data`; `false` if `act` has none.
///
/// # Safety
/// Called inside the backend's entry function.
#[inline(always)]
unsafe fn native<V: Vector>(act: Activation, data: &mut [V::E], round: fn(f64) -> f64) -> bool {
    use Activation::*;
    // SAFETY (every arm): forwarded from the caller.
    unsafe {
        match act {
            Relu => map::<V>(data, relu),
            Relu6 => map::<V>(data, relu6),
            LeakyRelu { negative_slope } => map::<V>(data, |x| leaky_relu(x, negative_slope)),
            HardTanh => map::<V>(data, hard_tanh),
            SoftShrink { threshold: t } => map::<V>(data, |x| soft_shrink(x, t)),
            HardShrink { threshold: t } => map::<V>(data, |x| hard_shrink(x, t)),
            SparseSigmoid => map::<V>(data, sparse_sigmoid),
            Threshold {
                threshold: t,
                default_value,
            } => map::<V>(data, |x| threshold(x, t, default_value)),
            Exponential => map::<V>(data, math::exp),
            Sigmoid => map::<V>(data, math::sigmoid),
            Silu => map::<V>(data, math::silu),
            Tanh => map::<V>(data, math::tanh),
            Softplus => map::<V>(data, math::softplus),
            LogSigmoid => map::<V>(data, |x| -math::softplus(-x)),
            Mish => map::<V>(data, math::mish),
            Elu { alpha } => {
                let a = V::splat(alpha);
                map::<V>(data, |x| math::elu_family(x, x, |x| x, a, V::splat(0.0)))
            }
            Selu => {
                let (s_hi, s_lo) = math::split::<V>(SELU_SCALE, round);
                let (n_hi, n_lo) = math::split::<V>(SELU_SCALE * SELU_ALPHA, round);
                let pos = |x: V| {
                    let y = s_hi.mul_add(x, s_lo * x);
                    V::select(x.gt(V::splat(<V::E as Real>::MAX)), x, y)
                };
                map::<V>(data, |x| math::elu_family(x, x, pos, n_hi, n_lo))
            }
            Celu { alpha } if alpha > 0.0 && alpha.is_finite() => {
                let a = V::splat(alpha);
                map::<V>(data, |x| {
                    math::elu_family(x, x / a, |x| x, a, V::splat(0.0))
                })
            }
            _ => return false,
        }
    }
    true
}

/// Runs the `f64`-lane body of `act` over `block`; `false` if `act` has none.
///
/// # Safety
/// Called inside the backend's entry function.
#[inline(always)]
unsafe fn f64_lanes<B: F64Body>(act: Activation, block: B) -> bool {
    use Activation::*;
    // SAFETY (every arm): forwarded from the caller.
    unsafe {
        match act {
            HardSigmoid => block.run(hard_sigmoid),
            HardSilu => block.run(hard_silu),
            SparsePlus => block.run(sparse_plus),
            Softsign => block.run(softsign),
            Squareplus { b } => block.run(|x| squareplus(x, b)),
            TanhShrink => block.run(tanh_shrink),
            GeluTanh => block.run(math::gelu_tanh),
            ReluWith {
                negative_slope,
                max_value,
                threshold,
            } => block.run(|x| relu_with(x, negative_slope, max_value, threshold)),
            _ => return false,
        }
    }
    true
}

/// Softmax over one row: max-shifted exponentials, summed in `f64`, each divided by
/// the sum (rounded to the lane type: at most 1 ulp from the exp, ½ from the sum's
/// rounding, ½ from the division).
///
/// # Safety
/// Called inside the backend's entry function.
#[inline(always)]
unsafe fn softmax_row<V: Vector>(row: &mut [V::E], log: bool) {
    let n = row.len();
    let p = row.as_mut_ptr();
    let ninf = V::splat(f64::NEG_INFINITY);
    // SAFETY: every access below is a whole register at i with i + LANES ≤ n, or a
    // partial one of n − i < LANES elements at i: all inside `row`.
    unsafe {
        let mut mv = ninf;
        let mut i = 0;
        while i + V::LANES <= n {
            mv = V::load(p.add(i)).max(mv);
            i += V::LANES;
        }
        if i < n {
            mv = V::load_part(p.add(i), n - i, ninf).max(mv);
        }
        let m = V::splat(mv.reduce_max());
        // NaN entries were skipped by the max; they poison the sum below, as in the
        // scalar path (and Keras).
        let mut acc = V::acc_zero();
        let mut i = 0;
        while i + V::LANES <= n {
            let e = math::exp(V::load(p.add(i)) - m);
            if !log {
                e.store(p.add(i));
            }
            acc = V::acc_add(acc, e);
            i += V::LANES;
        }
        if i < n {
            // The fill −∞ gives e = 0 (or NaN if the row is all −∞ and poisoned anyway).
            let e = math::exp(V::load_part(p.add(i), n - i, ninf) - m);
            if !log {
                e.store_part(p.add(i), n - i);
            }
            acc = V::acc_add(acc, e);
        }
        let sum = V::acc_total(acc);
        if log {
            let lse = V::splat(sum.ln());
            map::<V>(row, |x| (x - m) - lse);
        } else {
            let s = V::splat(sum);
            map::<V>(row, |e| e / s);
        }
    }
}

/// Rounds an `f64` to `f32` and back.
fn round_f32(x: f64) -> f64 {
    f64::from(x as f32)
}

/// Rounding to `f64` (the identity).
fn round_f64(x: f64) -> f64 {
    x
}

/// Applies `act` (parameters already rounded to `f32`) to a row-major `f32` block whose
/// rows have `cols` elements.
///
/// # Safety
/// Called inside the backend's entry function.
#[inline(always)]
pub(crate) unsafe fn apply_f32<V: Widen>(act: Activation, data: &mut [f32], cols: usize) {
    // SAFETY (every call): forwarded from the caller.
    unsafe {
        match act {
            Activation::Linear => {}
            Activation::Gelu => {
                F32Block::<V>(data, core::marker::PhantomData).run(math::gelu_for_f32)
            }
            Activation::Softmax | Activation::LogSoftmax => {
                let log = act == Activation::LogSoftmax;
                for row in data.chunks_exact_mut(cols) {
                    softmax_row::<V>(row, log);
                }
            }
            _ if native::<V>(act, data, round_f32) => {}
            _ if f64_lanes(act, F32Block::<V>(data, core::marker::PhantomData)) => {}
            _ => scalar::apply(act, data, cols),
        }
    }
}

/// Applies `act` to a row-major `f64` block whose rows have `cols` elements.
///
/// # Safety
/// Called inside the backend's entry function.
#[inline(always)]
pub(crate) unsafe fn apply_f64<V: Vector<E = f64>>(act: Activation, data: &mut [f64], cols: usize) {
    // SAFETY (every call): forwarded from the caller.
    unsafe {
        match act {
            Activation::Linear => {}
            Activation::Softmax | Activation::LogSoftmax => {
                let log = act == Activation::LogSoftmax;
                for row in data.chunks_exact_mut(cols) {
                    softmax_row::<V>(row, log);
                }
            }
            _ if native::<V>(act, data, round_f64) => {}
            _ if f64_lanes(act, F64Block::<V>(data, core::marker::PhantomData)) => {}
            _ => scalar::apply(act, data, cols),
        }
    }
}
