//! Which body each activation runs, and the loops that apply it to an output block:
//! whole registers, then one masked (partial) register for the ragged tail, never a
//! per-element scalar loop.
//!
//! Three kinds of body:
//! - *native*: written in the output's own lanes (the piecewise activations, bit-exact
//!   with the scalar formula, the exp/log/tanh family, and the erf gelu for `f32` on
//!   AVX-512: the table form `math::gelu_f32_lut`);
//! - *f64-lane*: the rational and composite activations (hard_sigmoid, softsign,
//!   squareplus, tanh_shrink, gelu_tanh, mish, and gelu for `f32` off AVX-512, …) run in `f64` lanes; for `f32` outputs each
//!   register is widened, evaluated and rounded once, exactly as the scalar path does;
//! - *scalar*: sparsemax, `f64` gelu and celu with `alpha ≤ 0` keep the scalar path.

use super::math::{self, horner};
use super::vector::{Lut, Real, Vector, Widen};
use crate::activation::scalar;
use crate::activation::{Activation, SELU_ALPHA, SELU_SCALE};

/// An element-wise body: one register in, one out.
///
/// Bodies are structs with `#[inline(always)]` methods, not closures: every call from
/// the backend's `#[target_feature]` entry down to the intrinsics must inline, and a
/// closure (or a function passed as `impl Fn`) is compiled as its own function without
/// the entry's features, where the intrinsics become calls.
///
/// The exception is an unoptimised build (`cfg(dense_kernel_unoptimized)`, set by the
/// build script at `OPT_LEVEL` 0): there the loops that apply a body ([`map`],
/// [`map_rows`], `softmax_row`) stay separate functions, one per body, where the
/// intrinsics are calls anyway. Inlined, every activation's temporaries shared one
/// unoptimised frame: about 1 MiB for the AVX-512 `f32` block pass, 0.8 MiB for
/// AVX2+FMA. The CPU check is the entry's either way (the loops run only under it).
pub(crate) trait Body<V: Vector> {
    /// The activation of one register.
    fn eval(&self, x: V) -> V;
}

/// Applies `f` to every element of `data`, in place.
///
/// # Safety
/// Called inside the backend's entry function (see [`super::vector`]).
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) unsafe fn map<V: Vector, B: Body<V>>(data: &mut [V::E], f: &B) {
    let n = data.len();
    let p = data.as_mut_ptr();
    let mut i = 0;
    while i + V::LANES <= n {
        // SAFETY: i + LANES ≤ n, so the register lies inside `data`.
        unsafe { f.eval(V::load(p.add(i))).store(p.add(i)) };
        i += V::LANES;
    }
    if i < n {
        // SAFETY: n − i < LANES elements remain from `p + i`, inside `data`.
        unsafe {
            let v = V::load_part(p.add(i), n - i, V::splat(0.0));
            f.eval(v).store_part(p.add(i), n - i);
        }
    }
}

/// [`map`] over a strided block: `rows` rows of `cols` elements, `ld` apart, from `p`
/// (one call, so the body's constants are set up once for the whole block).
///
/// # Safety
/// Called inside the backend's entry function; every row `r < rows` is readable and
/// writable for `cols` elements from `p + r·ld`.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) unsafe fn map_rows<V: Vector, B: Body<V>>(
    p: *mut V::E,
    rows: usize,
    cols: usize,
    ld: usize,
    f: &B,
) {
    for r in 0..rows {
        // SAFETY: row r is inside the block (contract).
        unsafe {
            let row = p.add(r * ld);
            let mut i = 0;
            while i + V::LANES <= cols {
                f.eval(V::load(row.add(i))).store(row.add(i));
                i += V::LANES;
            }
            if i < cols {
                let v = V::load_part(row.add(i), cols - i, V::splat(0.0));
                f.eval(v).store_part(row.add(i), cols - i);
            }
        }
    }
}

/// Applies `act` to a strided `f32` tile if it is one the packed path applies tile by
/// tile (the erf gelu and sigmoid, in `f32` lanes); `false` (nothing done) otherwise.
///
/// # Safety
/// As [`map_rows`].
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) unsafe fn apply_f32_tile<V: Lut>(
    act: Activation,
    p: *mut f32,
    rows: usize,
    cols: usize,
    ld: usize,
) -> bool {
    // SAFETY: (both arms) forwarded from the caller.
    unsafe {
        match act {
            Activation::Gelu => map_rows::<V, _>(p, rows, cols, ld, &GeluF32),
            Activation::Sigmoid => map_rows::<V, _>(p, rows, cols, ld, &Sigmoid {}),
            _ => return false,
        }
    }
    true
}

/// A block an `f64`-lane body runs over.
trait F64Body {
    /// The `f64` register the body is evaluated in.
    type W: Vector<E = f64>;
    /// Applies `f` in place.
    ///
    /// # Safety
    /// Called inside the backend's entry function.
    unsafe fn run<B: Body<Self::W>>(self, f: B);
}

/// An `f64` output block: the body maps it directly.
struct F64Block<'a, V>(&'a mut [f64], core::marker::PhantomData<V>);

impl<V: Vector<E = f64>> F64Body for F64Block<'_, V> {
    type W = V;
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn run<B: Body<V>>(self, f: B) {
        // SAFETY: forwarded from the caller.
        unsafe { map::<V, B>(self.0, &f) }
    }
}

/// An `f32` output block: each register is widened, mapped and rounded back once.
struct F32Block<'a, V>(&'a mut [f32], core::marker::PhantomData<V>);

impl<V: Widen> F64Body for F32Block<'_, V> {
    type W = V::W;
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn run<B: Body<V::W>>(self, f: B) {
        // SAFETY: forwarded from the caller.
        unsafe { map::<V, _>(self.0, &Widened(f)) }
    }
}

/// An `f64`-lane body applied to an `f32` register: widen, evaluate, round once.
struct Widened<B>(B);

impl<V: Widen, B: Body<V::W>> Body<V> for Widened<B> {
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn eval(&self, v: V) -> V {
        let (lo, hi) = v.widen();
        V::narrow(self.0.eval(lo), self.0.eval(hi))
    }
}

/// Declares a body struct (fields are the activation's parameters, as `f64`) whose
/// `eval` is the given expression of `x` (and `s`, the struct).
macro_rules! body {
    ($name:ident { $($field:ident: $ty:ty),* }, |$s:ident, $x:ident| $e:expr) => {
        #[derive(Clone, Copy)]
        struct $name {
            $($field: $ty),*
        }
        impl<V: Vector> Body<V> for $name {
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            #[allow(unused_variables)]
            fn eval(&self, $x: V) -> V {
                let $s = self;
                $e
            }
        }
    };
}

body!(Relu {}, |s, x| relu(x));
body!(Relu6 {}, |s, x| relu6(x));
body!(Leaky { slope: f64 }, |s, x| leaky_relu(x, s.slope));
body!(HardTanh {}, |s, x| hard_tanh(x));
body!(SoftShrink { t: f64 }, |s, x| soft_shrink(x, s.t));
body!(HardShrink { t: f64 }, |s, x| hard_shrink(x, s.t));
body!(SparseSigmoid {}, |s, x| sparse_sigmoid(x));
body!(Threshold { t: f64, d: f64 }, |s, x| threshold(x, s.t, s.d));
body!(Exp {}, |s, x| math::exp(x));
body!(Sigmoid {}, |s, x| math::sigmoid(x));
body!(Silu {}, |s, x| math::silu(x));
body!(Tanh {}, |s, x| math::tanh(x));
body!(Softplus {}, |s, x| math::softplus(x));
body!(LogSigmoid {}, |s, x| -math::softplus(-x));
body!(Mish {}, |s, x| math::mish(x));
body!(Elu { alpha: f64 }, |s, x| {
    let a = V::splat(s.alpha);
    let z = V::splat(0.0);
    math::elu_family(x, x, false, z, z, a, z)
});
body!(Celu { alpha: f64 }, |s, x| {
    let a = V::splat(s.alpha);
    let z = V::splat(0.0);
    let t = x / a;
    let y = math::elu_family(x, t, false, z, z, a, z);
    // When x/α falls below the normal range (α > 1, |x| near the smallest normal), the
    // quotient keeps too few bits and α·(x/α) misses x by several ulps (the
    // `activation_values` fuzz target found 4 ulps at celu(alpha=10)(−1.34e−38)). There
    // α·expm1(x/α) = x·(1 + x/2α + …) rounds to x itself.
    V::select(t.abs().lt(V::splat(<V::E as Real>::MIN_NORMAL)), x, y)
});
body!(
    Selu {
        p_hi: f64,
        p_lo: f64,
        n_hi: f64,
        n_lo: f64
    },
    |s, x| {
        math::elu_family(
            x,
            x,
            true,
            V::splat(s.p_hi),
            V::splat(s.p_lo),
            V::splat(s.n_hi),
            V::splat(s.n_lo),
        )
    }
);
body!(HardSigmoid {}, |s, x| hard_sigmoid(x));
body!(HardSilu {}, |s, x| hard_silu(x));
body!(SparsePlus {}, |s, x| sparse_plus(x));
body!(Softsign {}, |s, x| softsign(x));
body!(Squareplus { b: f64 }, |s, x| squareplus(x, s.b));
body!(TanhShrink {}, |s, x| tanh_shrink(x));
body!(GeluTanh {}, |s, x| math::gelu_tanh(x));
body!(ReluWith { slope: f64, max_value: Option<f64>, t: f64 }, |s, x| {
    relu_with(x, s.slope, s.max_value, s.t)
});
body!(ShiftBy { m: f64, lse: f64 }, |s, x| (x - V::splat(s.m))
    - V::splat(s.lse));
body!(DivBy { d: f64 }, |s, x| x / V::splat(s.d));

/// The erf GELU for `f32` outputs in `f32` lanes: the table form, on backends with a
/// one-instruction lookup ([`Lut`], AVX-512).
#[derive(Clone, Copy)]
struct GeluF32;

impl<V: Lut> Body<V> for GeluF32 {
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn eval(&self, x: V) -> V {
        math::gelu_f32_lut(x)
    }
}

/// The erf GELU over an `f32` block in `f32` lanes with the table form (the AVX-512
/// entry takes this for `Activation::Gelu`; other backends take [`apply_f32`]'s `f64`
/// lanes).
///
/// # Safety
/// Called inside the backend's entry function.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) unsafe fn gelu_f32_lut<V: Lut>(data: &mut [f32]) {
    // SAFETY: forwarded from the caller.
    unsafe { map::<V, _>(data, &GeluF32) }
}

/// The erf GELU for `f32` outputs in `f64` lanes (the others).
#[derive(Clone, Copy)]
struct GeluForF32;

impl<W: Vector<E = f64>> Body<W> for GeluForF32 {
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn eval(&self, x: W) -> W {
        math::gelu_for_f32(x)
    }
}

// ---- piecewise bodies: the scalar formula, operation for operation ----

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn relu<V: Vector>(x: V) -> V {
    V::select(x.lt(V::splat(0.0)), V::splat(0.0), x)
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn relu6<V: Vector>(x: V) -> V {
    let y = V::select(x.lt(V::splat(0.0)), V::splat(0.0), x);
    V::select(x.gt(V::splat(6.0)), V::splat(6.0), y)
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn leaky_relu<V: Vector>(x: V, slope: f64) -> V {
    let mut neg = V::splat(slope) * x;
    if slope == 0.0 {
        // The scalar formula's limit at −∞: slope·sign(x) instead of 0·∞.
        neg = V::select(x.eq(V::splat(f64::NEG_INFINITY)), V::splat(-slope), neg);
    }
    V::select(x.ge(V::splat(0.0)), x, neg)
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
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

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn hard_tanh<V: Vector>(x: V) -> V {
    let y = V::select(x.lt(V::splat(-1.0)), V::splat(-1.0), x);
    V::select(x.gt(V::splat(1.0)), V::splat(1.0), y)
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn soft_shrink<V: Vector>(x: V, t: f64) -> V {
    let tv = V::splat(t);
    let y = V::select(x.lt(-tv), x + tv, V::splat(0.0));
    V::select(x.gt(tv), x - tv, y)
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn hard_shrink<V: Vector>(x: V, t: f64) -> V {
    V::select(x.abs().gt(V::splat(t)), x, V::splat(0.0))
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn sparse_sigmoid<V: Vector>(x: V) -> V {
    let y = x + V::splat(1.0);
    let y = V::select(y.lt(V::splat(0.0)), V::splat(0.0), y);
    let y = V::select(y.gt(V::splat(2.0)), V::splat(2.0), y);
    V::splat(0.5) * y
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn threshold<V: Vector>(x: V, t: f64, default_value: f64) -> V {
    V::select(x.gt(V::splat(t)), x, V::splat(default_value))
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn hard_sigmoid<V: Vector>(x: V) -> V {
    relu6(x + V::splat(3.0)) / V::splat(6.0)
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn hard_silu<V: Vector>(x: V) -> V {
    let y = x * hard_sigmoid(x);
    V::select(x.eq(V::splat(f64::NEG_INFINITY)), V::splat(-0.0), y)
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn sparse_plus<V: Vector>(x: V) -> V {
    let t = x + V::splat(1.0);
    let mid = V::splat(0.25) * t * t;
    let y = V::select(x.ge(V::splat(1.0)), x, mid);
    V::select(x.le(V::splat(-1.0)), V::splat(0.0), y)
}

// ---- f64-lane bodies ----

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn softsign<V: Vector>(x: V) -> V {
    let y = x / (V::splat(1.0) + x.abs());
    let inf = x.abs().eq(V::splat(f64::INFINITY));
    V::select(inf, V::splat(1.0).copysign(x), y)
}

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn squareplus<V: Vector>(x: V, b: f64) -> V {
    let bv = V::splat(b);
    if !b.is_finite() {
        // As the scalar definition: s = ∞ for b = +∞; NaN for b = −∞ (x² + b < 0 for
        // every x, ∞ − ∞ at x = ±∞) and for b = NaN. (The scaled form below would give
        // s = ∞ at x = ±∞ whatever b: found by the fuzzer's parameters.)
        let s = V::splat(if b == f64::INFINITY {
            f64::INFINITY
        } else {
            f64::NAN
        });
        let neg = bv / (V::splat(2.0) * (s - x));
        return V::select(x.ge(V::splat(0.0)), V::splat(0.5) * (x + s), neg);
    }
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

#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
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
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
unsafe fn native<V: Vector>(act: Activation, data: &mut [V::E], round: fn(f64) -> f64) -> bool {
    use Activation as A;
    // SAFETY: (every arm) forwarded from the caller.
    unsafe {
        match act {
            A::Relu => map::<V, _>(data, &Relu {}),
            A::Relu6 => map::<V, _>(data, &Relu6 {}),
            A::LeakyRelu { negative_slope } => map::<V, _>(
                data,
                &Leaky {
                    slope: negative_slope,
                },
            ),
            A::HardTanh => map::<V, _>(data, &HardTanh {}),
            A::SoftShrink { threshold: t } => map::<V, _>(data, &SoftShrink { t }),
            A::HardShrink { threshold: t } => map::<V, _>(data, &HardShrink { t }),
            A::SparseSigmoid => map::<V, _>(data, &SparseSigmoid {}),
            A::Threshold {
                threshold: t,
                default_value: d,
            } => map::<V, _>(data, &Threshold { t, d }),
            A::Exponential => map::<V, _>(data, &Exp {}),
            A::Sigmoid => map::<V, _>(data, &Sigmoid {}),
            A::Silu => map::<V, _>(data, &Silu {}),
            A::Tanh => map::<V, _>(data, &Tanh {}),
            A::Softplus => map::<V, _>(data, &Softplus {}),
            A::LogSigmoid => map::<V, _>(data, &LogSigmoid {}),
            A::Mish => map::<V, _>(data, &Mish {}),
            A::Elu { alpha } => map::<V, _>(data, &Elu { alpha }),
            A::Selu => {
                let (p_hi, p_lo) = math::split(SELU_SCALE, round);
                let (n_hi, n_lo) = math::split(SELU_SCALE * SELU_ALPHA, round);
                map::<V, _>(
                    data,
                    &Selu {
                        p_hi,
                        p_lo,
                        n_hi,
                        n_lo,
                    },
                )
            }
            A::Celu { alpha } if alpha > 0.0 && alpha.is_finite() => {
                map::<V, _>(data, &Celu { alpha })
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
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
unsafe fn f64_lanes<B: F64Body>(act: Activation, block: B) -> bool {
    use Activation as A;
    // SAFETY: (every arm) forwarded from the caller.
    unsafe {
        match act {
            A::HardSigmoid => block.run(HardSigmoid {}),
            A::HardSilu => block.run(HardSilu {}),
            A::SparsePlus => block.run(SparsePlus {}),
            A::Softsign => block.run(Softsign {}),
            A::Squareplus { b } => block.run(Squareplus { b }),
            A::TanhShrink => block.run(TanhShrink {}),
            A::GeluTanh => block.run(GeluTanh {}),
            A::ReluWith {
                negative_slope,
                max_value,
                threshold,
            } => block.run(ReluWith {
                slope: negative_slope,
                max_value,
                t: threshold,
            }),
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
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
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
        let mf = mv.reduce_max();
        let m = V::splat(mf);
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
            map::<V, _>(
                row,
                &ShiftBy {
                    m: mf,
                    lse: sum.ln(),
                },
            );
        } else {
            map::<V, _>(row, &DivBy { d: sum });
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
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) unsafe fn apply_f32<V: Widen>(act: Activation, data: &mut [f32], cols: usize) {
    // SAFETY: (every call) forwarded from the caller.
    unsafe {
        match act {
            Activation::Linear => {}
            // In f64 lanes, rounded once (0.52 ulps): an f32-lane rational form reached
            // 3.56 ulps; AVX-512 takes its table form (`gelu_f32_lut`) before coming here.
            Activation::Gelu => F32Block::<V>(data, core::marker::PhantomData).run(GeluForF32),
            // In f32 lanes mish's six roundings (e, e + 2, e(e + 2) + 2, the quotient, x·m,
            // the product) reached 4.14 ulps on the exhaustive sweep, past its bound of 4;
            // in f64 lanes, rounded once, it is within ~0.5.
            Activation::Mish => F32Block::<V>(data, core::marker::PhantomData).run(Mish {}),
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
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) unsafe fn apply_f64<V: Vector<E = f64>>(act: Activation, data: &mut [f64], cols: usize) {
    // SAFETY: (every call) forwarded from the caller.
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
