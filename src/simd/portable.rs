//! The portable backend, written with `wide` (8 `f32` / 4 `f64` lanes): NEON on
//! aarch64, simd128 on wasm, and whatever `target-cpu` allows on x86 (SSE2 in a generic
//! build, where `mul_add` is an unfused multiply and add). The bit-level exponent
//! scaling and the ragged tail go through small arrays.

use super::gemv::{self, Skinny};
use super::kernels;
use super::vector::{ldexp_ftz_f32, ldexp_ftz_f64, max_ignoring_nan, Vector, Widen};
use super::SimdPath;
use crate::Activation;
use core::ops::{Add, Div, Mul, Neg, Sub};
use wide::{f32x8, f64x4};

/// 8 `f32` lanes.
#[derive(Clone, Copy)]
pub(crate) struct P32(f32x8);

/// 4 `f64` lanes.
#[derive(Clone, Copy)]
pub(crate) struct P64(f64x4);

macro_rules! ops {
    ($t:ident) => {
        impl Add for $t {
            type Output = Self;
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn add(self, o: Self) -> Self {
                $t(self.0 + o.0)
            }
        }
        impl Sub for $t {
            type Output = Self;
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn sub(self, o: Self) -> Self {
                $t(self.0 - o.0)
            }
        }
        impl Mul for $t {
            type Output = Self;
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn mul(self, o: Self) -> Self {
                $t(self.0 * o.0)
            }
        }
        impl Div for $t {
            type Output = Self;
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn div(self, o: Self) -> Self {
                $t(self.0 / o.0)
            }
        }
        impl Neg for $t {
            type Output = Self;
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn neg(self) -> Self {
                $t(-self.0)
            }
        }
    };
}

ops!(P32);
ops!(P64);

macro_rules! vector_impl {
    ($t:ident, $w:ident, $e:ty, $lanes:expr, $acc:ty, $ldexp:ident) => {
        impl Vector for $t {
            type E = $e;
            type M = $w;
            type Acc = $acc;
            const LANES: usize = $lanes;
            // wide fuses only where the compile target has FMA (not the x86-64
            // baseline), so nothing here relies on it.
            const AXPY_NARROW: usize = 2;

            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            unsafe fn load(p: *const $e) -> Self {
                // SAFETY: the caller guarantees LANES readable elements.
                $t($w::new(unsafe { p.cast::<[$e; $lanes]>().read_unaligned() }))
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            unsafe fn store(self, p: *mut $e) {
                // SAFETY: the caller guarantees LANES writable elements.
                unsafe { p.cast::<[$e; $lanes]>().write_unaligned(self.0.to_array()) }
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            unsafe fn load_part(p: *const $e, n: usize, fill: Self) -> Self {
                let mut buf = fill.0.to_array();
                // SAFETY: the caller guarantees n readable elements; n < LANES.
                unsafe { core::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n) };
                $t($w::new(buf))
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            unsafe fn store_part(self, p: *mut $e, n: usize) {
                let buf = self.0.to_array();
                // SAFETY: the caller guarantees n writable elements; n < LANES.
                unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), p, n) };
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn splat(c: f64) -> Self {
                $t($w::splat(c as $e))
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn mul_add(self, m: Self, a: Self) -> Self {
                $t(self.0.mul_add(m.0, a.0))
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn sqrt(self) -> Self {
                $t(self.0.sqrt())
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn abs(self) -> Self {
                $t(self.0.abs())
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn copysign(self, sign: Self) -> Self {
                $t(self.0.copysign(sign.0))
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn round(self) -> Self {
                $t(self.0.round())
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn lt(self, o: Self) -> $w {
                self.0.simd_lt(o.0)
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn le(self, o: Self) -> $w {
                self.0.simd_le(o.0)
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn gt(self, o: Self) -> $w {
                self.0.simd_gt(o.0)
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn ge(self, o: Self) -> $w {
                self.0.simd_ge(o.0)
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn eq(self, o: Self) -> $w {
                self.0.simd_eq(o.0)
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn is_nan(self) -> $w {
                self.0.is_nan()
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn select(m: $w, t: Self, f: Self) -> Self {
                $t(wide::Select::select(m, t.0, f.0))
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn ldexp_ftz(self, n: Self) -> Self {
                let m = self.0.to_array();
                let n = n.0.to_array();
                $t($w::new(core::array::from_fn(|i| $ldexp(m[i], n[i]))))
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn acc_zero() -> $acc {
                Default::default()
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn acc_add(acc: $acc, v: Self) -> $acc {
                acc_add(acc, v)
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            unsafe fn acc_total(acc: $acc) -> f64 {
                acc_total(acc)
            }
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            unsafe fn reduce_max(self) -> f64 {
                max_ignoring_nan(self.0.to_array().iter().map(|&v| f64::from(v)))
            }
        }
    };
}

vector_impl!(P32, f32x8, f32, 8, (f64x4, f64x4), ldexp_ftz_f32);
vector_impl!(P64, f64x4, f64, 4, f64x4, ldexp_ftz_f64);

/// Adds an `f32` register's lanes into two `f64` accumulators.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn acc_add<T: AccLanes>(acc: T, v: T::V) -> T {
    T::add(acc, v)
}

/// The sum of an accumulator.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn acc_total<T: AccLanes>(acc: T) -> f64 {
    T::total(acc)
}

/// Accumulators of the two register types.
trait AccLanes: Sized {
    type V;
    fn add(acc: Self, v: Self::V) -> Self;
    fn total(acc: Self) -> f64;
}

impl AccLanes for (f64x4, f64x4) {
    type V = P32;
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn add(acc: Self, v: P32) -> Self {
        let (lo, hi) = v.widen();
        (acc.0 + lo.0, acc.1 + hi.0)
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn total(acc: Self) -> f64 {
        (acc.0 + acc.1).to_array().iter().sum()
    }
}

impl AccLanes for f64x4 {
    type V = P64;
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn add(acc: Self, v: P64) -> Self {
        acc + v.0
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn total(acc: Self) -> f64 {
        acc.to_array().iter().sum()
    }
}

impl Widen for P32 {
    type W = P64;
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn widen(self) -> (P64, P64) {
        let a = self.0.to_array();
        (
            P64(f64x4::new(core::array::from_fn(|i| f64::from(a[i])))),
            P64(f64x4::new(core::array::from_fn(|i| f64::from(a[i + 4])))),
        )
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn narrow(lo: P64, hi: P64) -> Self {
        let (lo, hi) = (lo.0.to_array(), hi.0.to_array());
        P32(f32x8::new(core::array::from_fn(|i| {
            if i < 4 {
                lo[i] as f32
            } else {
                hi[i - 4] as f32
            }
        })))
    }
}

/// Applies `act` to an `f32` block with the portable kernels.
pub(crate) fn apply_f32(act: Activation, data: &mut [f32], cols: usize) {
    super::record_run(SimdPath::Portable);
    // SAFETY: the portable backend needs no CPU feature beyond the build's.
    unsafe { kernels::apply_f32::<P32>(act, data, cols) }
}

/// Applies `act` to an `f64` block with the portable kernels.
pub(crate) fn apply_f64(act: Activation, data: &mut [f64], cols: usize) {
    super::record_run(SimdPath::Portable);
    // SAFETY: the portable backend needs no CPU feature beyond the build's.
    unsafe { kernels::apply_f64::<P64>(act, data, cols) }
}

/// `out += x·w` for a skinny product with the portable kernels (the axpy kernel of [`gemv`]).
///
/// # Safety
/// None beyond the build's target; `s` describes valid, non-aliasing views.
pub(crate) unsafe fn skinny_f32(s: &Skinny<f32>) {
    // SAFETY: this function's features are enabled, as the kernels require; the views
    // are the caller's promise.
    unsafe { gemv::axpy::<P32>(s) }
}

/// `out += x·w` for a skinny product with the portable kernels (the axpy kernel of [`gemv`]).
///
/// # Safety
/// None beyond the build's target; `s` describes valid, non-aliasing views.
pub(crate) unsafe fn skinny_f64(s: &Skinny<f64>) {
    // SAFETY: this function's features are enabled, as the kernels require; the views
    // are the caller's promise.
    unsafe { gemv::axpy::<P64>(s) }
}
