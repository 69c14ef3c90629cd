//! The AVX2+FMA backend: 8 `f32` / 4 `f64` lanes in ymm registers; masks are
//! all-ones lanes, tails go through `vmaskmov`.
//!
//! Invariant behind every `unsafe` here: the register types are private to `simd`, and
//! their methods run only inside [`apply_f32`] / [`apply_f64`], which are compiled with
//! `avx2` and `fma` enabled and called only after `simd::detect` saw those features on
//! this CPU.

use super::gemv::{self, Skinny};
use super::kernels;
use super::vector::{max_ignoring_nan, Real, Vector, Widen};
use super::SimdPath;
use crate::Activation;
use core::arch::x86_64::*;
use core::ops::{Add, Div, Mul, Neg, Sub};

/// 8 `f32` lanes.
#[derive(Clone, Copy)]
pub(crate) struct F32x8(__m256);

/// 4 `f64` lanes.
#[derive(Clone, Copy)]
pub(crate) struct F64x4(__m256d);

macro_rules! binop {
    ($t:ident, $tr:ident, $m:ident, $f:ident) => {
        impl $tr for $t {
            type Output = Self;
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn $m(self, o: Self) -> Self {
                // SAFETY: module invariant (AVX2 and FMA present and enabled here).
                $t(unsafe { $f(self.0, o.0) })
            }
        }
    };
}

binop!(F32x8, Add, add, _mm256_add_ps);
binop!(F32x8, Sub, sub, _mm256_sub_ps);
binop!(F32x8, Mul, mul, _mm256_mul_ps);
binop!(F32x8, Div, div, _mm256_div_ps);
binop!(F64x4, Add, add, _mm256_add_pd);
binop!(F64x4, Sub, sub, _mm256_sub_pd);
binop!(F64x4, Mul, mul, _mm256_mul_pd);
binop!(F64x4, Div, div, _mm256_div_pd);

impl Neg for F32x8 {
    type Output = Self;
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn neg(self) -> Self {
        // SAFETY: module invariant.
        F32x8(unsafe { _mm256_xor_ps(self.0, _mm256_set1_ps(-0.0)) })
    }
}

impl Neg for F64x4 {
    type Output = Self;
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn neg(self) -> Self {
        // SAFETY: module invariant.
        F64x4(unsafe { _mm256_xor_pd(self.0, _mm256_set1_pd(-0.0)) })
    }
}

/// Hides from LLVM that `m` is a full-lane mask (an empty `asm` block, no instruction).
///
/// `vblendv*` measured ~25 cycles per register on this project's test machine (vs ~1 for
/// the bit ops), and LLVM rewrites `(m & t) | (!m & f)` into `vblendv` whenever it can
/// prove every lane of `m` is all-ones or all-zeros (any compare result). Behind this
/// barrier it cannot, so the three bit ops stay. `#[inline]` with the same features as
/// the entry, so it inlines there.
#[target_feature(enable = "avx")]
#[inline]
unsafe fn opaque(m: __m256i) -> __m256i {
    let mut m = m;
    // SAFETY: an empty template with one register operand: no instruction is emitted, no
    // memory, stack or flags are touched; `m` comes back unchanged.
    unsafe {
        core::arch::asm!("/* {0} */", inout(ymm_reg) m, options(pure, nomem, nostack, preserves_flags));
    }
    m
}

/// `m ? t : f` per lane for full-lane masks, as and/andnot/or (see [`opaque`]).
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
unsafe fn blend_si(m: __m256i, t: __m256i, f: __m256i) -> __m256i {
    // SAFETY: module invariant (AVX2 present and enabled in the entry).
    unsafe {
        let m = opaque(m);
        _mm256_or_si256(_mm256_and_si256(m, t), _mm256_andnot_si256(m, f))
    }
}

/// [`blend_si`] for `f32` lanes.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
unsafe fn blend_ps(m: __m256, t: __m256, f: __m256) -> __m256 {
    // SAFETY: module invariant.
    unsafe {
        let m = _mm256_castsi256_ps(opaque(_mm256_castps_si256(m)));
        _mm256_or_ps(_mm256_and_ps(m, t), _mm256_andnot_ps(m, f))
    }
}

/// [`blend_si`] for `f64` lanes.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
unsafe fn blend_pd(m: __m256d, t: __m256d, f: __m256d) -> __m256d {
    // SAFETY: module invariant.
    unsafe {
        let m = _mm256_castsi256_pd(opaque(_mm256_castpd_si256(m)));
        _mm256_or_pd(_mm256_and_pd(m, t), _mm256_andnot_pd(m, f))
    }
}

const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// Lanes `0..n` set, as an integer mask for `vmaskmov`.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn first_lanes_32(n: usize) -> __m256i {
    // SAFETY: module invariant.
    unsafe {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }
}

/// Lanes `0..n` set, 64-bit lanes.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn first_lanes_64(n: usize) -> __m256i {
    // SAFETY: module invariant.
    unsafe { _mm256_cmpgt_epi64(_mm256_set1_epi64x(n as i64), _mm256_setr_epi64x(0, 1, 2, 3)) }
}

impl Vector for F32x8 {
    type E = f32;
    type M = __m256;
    type Acc = (__m256d, __m256d);
    const LANES: usize = 8;

    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 8 readable elements; module invariant.
        F32x8(unsafe { _mm256_loadu_ps(p) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 8 writable elements; module invariant.
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn load_part(p: *const f32, n: usize, fill: Self) -> Self {
        let k = first_lanes_32(n);
        // SAFETY: masked-off lanes are not accessed (no fault); the caller guarantees
        // n readable elements; module invariant.
        unsafe {
            F32x8(blend_ps(
                _mm256_castsi256_ps(k),
                _mm256_maskload_ps(p, k),
                fill.0,
            ))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn store_part(self, p: *mut f32, n: usize) {
        // SAFETY: as for load_part.
        unsafe { _mm256_maskstore_ps(p, first_lanes_32(n), self.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn splat(c: f64) -> Self {
        // SAFETY: module invariant.
        F32x8(unsafe { _mm256_set1_ps(c as f32) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn mul_add(self, m: Self, a: Self) -> Self {
        // SAFETY: module invariant.
        F32x8(unsafe { _mm256_fmadd_ps(self.0, m.0, a.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn sqrt(self) -> Self {
        // SAFETY: module invariant.
        F32x8(unsafe { _mm256_sqrt_ps(self.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn abs(self) -> Self {
        // SAFETY: module invariant.
        F32x8(unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn copysign(self, sign: Self) -> Self {
        // SAFETY: module invariant.
        unsafe {
            let s = _mm256_set1_ps(-0.0);
            F32x8(_mm256_or_ps(
                _mm256_andnot_ps(s, self.0),
                _mm256_and_ps(s, sign.0),
            ))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn round(self) -> Self {
        // SAFETY: module invariant.
        F32x8(unsafe { _mm256_round_ps::<NEAREST>(self.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn lt(self, o: Self) -> __m256 {
        // SAFETY: module invariant.
        unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn le(self, o: Self) -> __m256 {
        // SAFETY: module invariant.
        unsafe { _mm256_cmp_ps::<_CMP_LE_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn gt(self, o: Self) -> __m256 {
        // SAFETY: module invariant.
        unsafe { _mm256_cmp_ps::<_CMP_GT_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn ge(self, o: Self) -> __m256 {
        // SAFETY: module invariant.
        unsafe { _mm256_cmp_ps::<_CMP_GE_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn eq(self, o: Self) -> __m256 {
        // SAFETY: module invariant.
        unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn is_nan(self) -> __m256 {
        // SAFETY: module invariant.
        unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(self.0, self.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn select(m: __m256, t: Self, f: Self) -> Self {
        // SAFETY: module invariant.
        F32x8(unsafe { blend_ps(m, t.0, f.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn min(self, o: Self) -> Self {
        // SAFETY: module invariant. `vminps` returns `o` when either is NaN or both are
        // equal: exactly the trait's `select(self < o, self, o)`.
        F32x8(unsafe { _mm256_min_ps(self.0, o.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn max(self, o: Self) -> Self {
        // SAFETY: as for min.
        F32x8(unsafe { _mm256_max_ps(self.0, o.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn ldexp_pos(self, n: Self) -> Self {
        // SAFETY: module invariant.
        unsafe {
            let bits = _mm256_castps_si256(self.0);
            let field = _mm256_srli_epi32::<23>(bits); // no sign bit: self > 0
            let ni = _mm256_cvtps_epi32(n.0);
            let e = _mm256_add_epi32(field, ni);
            let r = _mm256_add_epi32(bits, _mm256_slli_epi32::<23>(ni));
            // Underflow (e ≤ 0): +0.
            let r = _mm256_and_si256(r, _mm256_cmpgt_epi32(e, _mm256_setzero_si256()));
            // Overflow (e ≥ 255): r is garbage (maybe NaN or negative); vmaxps returns its
            // second operand, +∞, for either. Elsewhere max(r, +0) = r, as r ≥ +0.
            let over = _mm256_cmpgt_epi32(e, _mm256_set1_epi32(0xfe));
            let inf = _mm256_and_si256(over, _mm256_set1_epi32(0x7f80_0000));
            F32x8(_mm256_max_ps(
                _mm256_castsi256_ps(r),
                _mm256_castsi256_ps(inf),
            ))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn ldexp_ftz(self, n: Self) -> Self {
        // SAFETY: module invariant.
        unsafe {
            let bits = _mm256_castps_si256(self.0);
            let ff = _mm256_set1_epi32(0xff);
            let field = _mm256_and_si256(_mm256_srli_epi32::<23>(bits), ff);
            let ni = _mm256_cvtps_epi32(n.0); // n is integral: exact
            let e = _mm256_add_epi32(field, ni);
            let scaled = _mm256_add_epi32(bits, _mm256_slli_epi32::<23>(ni));
            let sign = _mm256_and_si256(bits, _mm256_set1_epi32(i32::MIN));
            let inf = _mm256_or_si256(sign, _mm256_set1_epi32(0x7f80_0000));
            let under = _mm256_cmpgt_epi32(_mm256_set1_epi32(1), e);
            let over = _mm256_cmpgt_epi32(e, _mm256_set1_epi32(0xfe));
            let special = _mm256_or_si256(
                _mm256_cmpeq_epi32(field, _mm256_setzero_si256()),
                _mm256_cmpeq_epi32(field, ff),
            );
            let r = blend_si(under, sign, scaled);
            let r = blend_si(over, inf, r);
            let r = blend_si(special, bits, r);
            F32x8(_mm256_castsi256_ps(r))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn acc_zero() -> Self::Acc {
        // SAFETY: module invariant.
        unsafe { (_mm256_setzero_pd(), _mm256_setzero_pd()) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn acc_add(acc: Self::Acc, v: Self) -> Self::Acc {
        let (lo, hi) = v.widen();
        // SAFETY: module invariant.
        unsafe { (_mm256_add_pd(acc.0, lo.0), _mm256_add_pd(acc.1, hi.0)) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn acc_total(acc: Self::Acc) -> f64 {
        // SAFETY: module invariant.
        unsafe { F64x4::acc_total(_mm256_add_pd(acc.0, acc.1)) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn reduce_max(self) -> f64 {
        let mut buf = [0f32; 8];
        // SAFETY: `buf` holds 8 elements; module invariant.
        unsafe { self.store(buf.as_mut_ptr()) };
        max_ignoring_nan(buf.iter().map(|&v| v.to_f64()))
    }
}

impl Vector for F64x4 {
    type E = f64;
    type M = __m256d;
    type Acc = __m256d;
    const LANES: usize = 4;

    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn load(p: *const f64) -> Self {
        // SAFETY: the caller guarantees 4 readable elements; module invariant.
        F64x4(unsafe { _mm256_loadu_pd(p) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn store(self, p: *mut f64) {
        // SAFETY: the caller guarantees 4 writable elements; module invariant.
        unsafe { _mm256_storeu_pd(p, self.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn load_part(p: *const f64, n: usize, fill: Self) -> Self {
        let k = first_lanes_64(n);
        // SAFETY: masked-off lanes are not accessed; the caller guarantees n readable
        // elements; module invariant.
        unsafe {
            F64x4(blend_pd(
                _mm256_castsi256_pd(k),
                _mm256_maskload_pd(p, k),
                fill.0,
            ))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn store_part(self, p: *mut f64, n: usize) {
        // SAFETY: as for load_part.
        unsafe { _mm256_maskstore_pd(p, first_lanes_64(n), self.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn splat(c: f64) -> Self {
        // SAFETY: module invariant.
        F64x4(unsafe { _mm256_set1_pd(c) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn mul_add(self, m: Self, a: Self) -> Self {
        // SAFETY: module invariant.
        F64x4(unsafe { _mm256_fmadd_pd(self.0, m.0, a.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn sqrt(self) -> Self {
        // SAFETY: module invariant.
        F64x4(unsafe { _mm256_sqrt_pd(self.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn abs(self) -> Self {
        // SAFETY: module invariant.
        F64x4(unsafe { _mm256_andnot_pd(_mm256_set1_pd(-0.0), self.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn copysign(self, sign: Self) -> Self {
        // SAFETY: module invariant.
        unsafe {
            let s = _mm256_set1_pd(-0.0);
            F64x4(_mm256_or_pd(
                _mm256_andnot_pd(s, self.0),
                _mm256_and_pd(s, sign.0),
            ))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn round(self) -> Self {
        // SAFETY: module invariant.
        F64x4(unsafe { _mm256_round_pd::<NEAREST>(self.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn lt(self, o: Self) -> __m256d {
        // SAFETY: module invariant.
        unsafe { _mm256_cmp_pd::<_CMP_LT_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn le(self, o: Self) -> __m256d {
        // SAFETY: module invariant.
        unsafe { _mm256_cmp_pd::<_CMP_LE_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn gt(self, o: Self) -> __m256d {
        // SAFETY: module invariant.
        unsafe { _mm256_cmp_pd::<_CMP_GT_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn ge(self, o: Self) -> __m256d {
        // SAFETY: module invariant.
        unsafe { _mm256_cmp_pd::<_CMP_GE_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn eq(self, o: Self) -> __m256d {
        // SAFETY: module invariant.
        unsafe { _mm256_cmp_pd::<_CMP_EQ_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn is_nan(self) -> __m256d {
        // SAFETY: module invariant.
        unsafe { _mm256_cmp_pd::<_CMP_UNORD_Q>(self.0, self.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn select(m: __m256d, t: Self, f: Self) -> Self {
        // SAFETY: module invariant.
        F64x4(unsafe { blend_pd(m, t.0, f.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn min(self, o: Self) -> Self {
        // SAFETY: module invariant; `vminpd` matches the trait's definition (see F32x8).
        F64x4(unsafe { _mm256_min_pd(self.0, o.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn max(self, o: Self) -> Self {
        // SAFETY: as for min.
        F64x4(unsafe { _mm256_max_pd(self.0, o.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn ldexp_ftz(self, n: Self) -> Self {
        // SAFETY: module invariant.
        unsafe {
            let bits = _mm256_castpd_si256(self.0);
            let mask = _mm256_set1_epi64x(0x7ff);
            let field = _mm256_and_si256(_mm256_srli_epi64::<52>(bits), mask);
            // n (integral, |n| < 2^51) to i64: added to 1.5·2^52 it sits in the low bits.
            let magic = _mm256_set1_pd(6_755_399_441_055_744.0);
            let ni = _mm256_sub_epi64(
                _mm256_castpd_si256(_mm256_add_pd(n.0, magic)),
                _mm256_castpd_si256(magic),
            );
            let e = _mm256_add_epi64(field, ni);
            let scaled = _mm256_add_epi64(bits, _mm256_slli_epi64::<52>(ni));
            let sign = _mm256_and_si256(bits, _mm256_set1_epi64x(i64::MIN));
            let inf = _mm256_or_si256(sign, _mm256_set1_epi64x(0x7ff0_0000_0000_0000));
            let under = _mm256_cmpgt_epi64(_mm256_set1_epi64x(1), e);
            let over = _mm256_cmpgt_epi64(e, _mm256_set1_epi64x(0x7fe));
            let special = _mm256_or_si256(
                _mm256_cmpeq_epi64(field, _mm256_setzero_si256()),
                _mm256_cmpeq_epi64(field, mask),
            );
            let r = blend_si(under, sign, scaled);
            let r = blend_si(over, inf, r);
            let r = blend_si(special, bits, r);
            F64x4(_mm256_castsi256_pd(r))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn acc_zero() -> __m256d {
        // SAFETY: module invariant.
        unsafe { _mm256_setzero_pd() }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn acc_add(acc: __m256d, v: Self) -> __m256d {
        // SAFETY: module invariant.
        unsafe { _mm256_add_pd(acc, v.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn acc_total(acc: __m256d) -> f64 {
        let mut buf = [0f64; 4];
        // SAFETY: `buf` holds 4 elements; module invariant.
        unsafe { _mm256_storeu_pd(buf.as_mut_ptr(), acc) };
        buf.iter().sum()
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn reduce_max(self) -> f64 {
        let mut buf = [0f64; 4];
        // SAFETY: `buf` holds 4 elements; module invariant.
        unsafe { self.store(buf.as_mut_ptr()) };
        max_ignoring_nan(buf.iter().copied())
    }
}

impl Widen for F32x8 {
    type W = F64x4;
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn widen(self) -> (F64x4, F64x4) {
        // SAFETY: module invariant.
        unsafe {
            let lo = _mm256_castps256_ps128(self.0);
            let hi = _mm256_extractf128_ps::<1>(self.0);
            (F64x4(_mm256_cvtps_pd(lo)), F64x4(_mm256_cvtps_pd(hi)))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn narrow(lo: F64x4, hi: F64x4) -> Self {
        // SAFETY: module invariant.
        unsafe {
            F32x8(_mm256_set_m128(
                _mm256_cvtpd_ps(hi.0),
                _mm256_cvtpd_ps(lo.0),
            ))
        }
    }
}

/// Applies `act` to an `f32` block with AVX2+FMA.
///
/// # Safety
/// The CPU supports `avx2` and `fma`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn apply_f32(act: Activation, data: &mut [f32], cols: usize) {
    super::record_run(SimdPath::Avx2Fma);
    // SAFETY: this function's features are enabled, as the kernels require.
    unsafe { kernels::apply_f32::<F32x8>(act, data, cols) }
}

/// Applies `act` to an `f64` block with AVX2+FMA.
///
/// # Safety
/// The CPU supports `avx2` and `fma`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn apply_f64(act: Activation, data: &mut [f64], cols: usize) {
    super::record_run(SimdPath::Avx2Fma);
    // SAFETY: this function's features are enabled, as the kernels require.
    unsafe { kernels::apply_f64::<F64x4>(act, data, cols) }
}

/// `out += x·w` for a skinny product with AVX2+FMA (the axpy kernel of [`gemv`]).
///
/// # Safety
/// The CPU supports `avx2` and `fma`; `s` describes valid, non-aliasing views.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn skinny_f32(s: &Skinny<f32>) {
    // SAFETY: this function's features are enabled, as the kernels require; the views
    // are the caller's promise.
    unsafe { gemv::axpy::<F32x8>(s) }
}

/// `out += x·w` for a skinny product with AVX2+FMA (the axpy kernel of [`gemv`]).
///
/// # Safety
/// The CPU supports `avx2` and `fma`; `s` describes valid, non-aliasing views.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn skinny_f64(s: &Skinny<f64>) {
    // SAFETY: this function's features are enabled, as the kernels require; the views
    // are the caller's promise.
    unsafe { gemv::axpy::<F64x4>(s) }
}
