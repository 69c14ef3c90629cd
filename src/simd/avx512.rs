//! The AVX-512 backend: 16 `f32` / 8 `f64` lanes in zmm registers, mask registers for
//! selects and the ragged tail.
//!
//! Invariant behind every `unsafe` here: the register types are private to `simd`, and
//! their methods run only inside [`apply_f32`] / [`apply_f64`], which are compiled with
//! `avx512f` (plus `avx2`, `fma`) enabled and called only after `simd::detect` saw
//! those features on this CPU.

use super::gemv::{self, Skinny};
use super::kernels;
use super::vector::{max_ignoring_nan, Lut, Real, Vector, Widen};
use super::SimdPath;
use crate::Activation;
use core::arch::x86_64::*;
use core::ops::{Add, Div, Mul, Neg, Sub};

/// 16 `f32` lanes.
#[derive(Clone, Copy)]
pub(crate) struct F32x16(__m512);

/// 8 `f64` lanes.
#[derive(Clone, Copy)]
pub(crate) struct F64x8(__m512d);

macro_rules! binop {
    ($t:ident, $tr:ident, $m:ident, $f:ident) => {
        impl $tr for $t {
            type Output = Self;
            #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
            #[cfg_attr(dense_kernel_unoptimized, inline(never))]
            fn $m(self, o: Self) -> Self {
                // SAFETY: module invariant (AVX-512F present and enabled here).
                $t(unsafe { $f(self.0, o.0) })
            }
        }
    };
}

binop!(F32x16, Add, add, _mm512_add_ps);
binop!(F32x16, Sub, sub, _mm512_sub_ps);
binop!(F32x16, Mul, mul, _mm512_mul_ps);
binop!(F32x16, Div, div, _mm512_div_ps);
binop!(F64x8, Add, add, _mm512_add_pd);
binop!(F64x8, Sub, sub, _mm512_sub_pd);
binop!(F64x8, Mul, mul, _mm512_mul_pd);
binop!(F64x8, Div, div, _mm512_div_pd);

impl Neg for F32x16 {
    type Output = Self;
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn neg(self) -> Self {
        // SAFETY: module invariant.
        unsafe {
            let s = _mm512_set1_epi32(i32::MIN);
            F32x16(_mm512_castsi512_ps(_mm512_xor_si512(
                _mm512_castps_si512(self.0),
                s,
            )))
        }
    }
}

impl Neg for F64x8 {
    type Output = Self;
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn neg(self) -> Self {
        // SAFETY: module invariant.
        unsafe {
            let s = _mm512_set1_epi64(i64::MIN);
            F64x8(_mm512_castsi512_pd(_mm512_xor_si512(
                _mm512_castpd_si512(self.0),
                s,
            )))
        }
    }
}

const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

impl Lut for F32x16 {
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn lut32(self, table: &[f32; 32]) -> Self {
        // vpermt2ps overwrites its first table register, so a table kept in registers
        // costs a register copy per lookup (the loop holds 12 such registers); hiding
        // the address from the optimiser (an empty asm, not `pure`, so it is not
        // hoisted) makes it load the table from L1 at each lookup instead, as part of the
        // permute.
        let base = table.as_ptr();
        let mut addr = base.addr();
        // SAFETY: an empty template with one register operand: no instruction is
        // emitted, no memory, stack or flags are touched; `addr` comes back unchanged.
        unsafe {
            core::arch::asm!("/* {0} */", inout(reg) addr, options(nomem, nostack, preserves_flags));
        }
        let p = base.with_addr(addr);
        // SAFETY: module invariant; `p` is `table` (same address and provenance), which
        // holds the 32 floats loaded (16 at `p`, 16 at `p + 16`). vpermt2ps reads only
        // the low 5 bits of each index lane.
        unsafe {
            let i = _mm512_srli_epi32::<20>(_mm512_castps_si512(self.0));
            let (lo, hi) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
            F32x16(_mm512_permutex2var_ps(lo, i, hi))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn lut16_low(self, table: &[f32; 16]) -> Self {
        // SAFETY: module invariant; `table` holds the 16 floats loaded. vpermps reads
        // only the low 4 bits of each index lane.
        unsafe {
            let i = _mm512_castps_si512(self.0);
            F32x16(_mm512_permutexvar_ps(i, _mm512_loadu_ps(table.as_ptr())))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn ldexp_gradual(self, n: Self) -> Self {
        // SAFETY: module invariant. vscalefps scales by 2^⌊n⌋ and rounds once,
        // subnormal results included.
        F32x16(unsafe { _mm512_scalef_ps(self.0, n.0) })
    }
}

impl Vector for F32x16 {
    type E = f32;
    type M = __mmask16;
    type Acc = (__m512d, __m512d);
    const LANES: usize = 16;

    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 16 readable elements; module invariant.
        F32x16(unsafe { _mm512_loadu_ps(p) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 16 writable elements; module invariant.
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn load_part(p: *const f32, n: usize, fill: Self) -> Self {
        let k = ((1u32 << n) - 1) as __mmask16;
        // SAFETY: masked-off lanes are not accessed (no fault); the caller guarantees
        // n readable elements; module invariant.
        F32x16(unsafe { _mm512_mask_loadu_ps(fill.0, k, p) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn store_part(self, p: *mut f32, n: usize) {
        let k = ((1u32 << n) - 1) as __mmask16;
        // SAFETY: as for load_part.
        unsafe { _mm512_mask_storeu_ps(p, k, self.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn splat(c: f64) -> Self {
        // SAFETY: module invariant.
        F32x16(unsafe { _mm512_set1_ps(c as f32) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn mul_add(self, m: Self, a: Self) -> Self {
        // SAFETY: module invariant.
        F32x16(unsafe { _mm512_fmadd_ps(self.0, m.0, a.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn sqrt(self) -> Self {
        // SAFETY: module invariant.
        F32x16(unsafe { _mm512_sqrt_ps(self.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn abs(self) -> Self {
        // SAFETY: module invariant.
        F32x16(unsafe { _mm512_abs_ps(self.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn copysign(self, sign: Self) -> Self {
        // SAFETY: module invariant.
        unsafe {
            let s = _mm512_set1_epi32(i32::MIN);
            let mag = _mm512_andnot_si512(s, _mm512_castps_si512(self.0));
            let sg = _mm512_and_si512(s, _mm512_castps_si512(sign.0));
            F32x16(_mm512_castsi512_ps(_mm512_or_si512(mag, sg)))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn round(self) -> Self {
        // SAFETY: module invariant.
        F32x16(unsafe { _mm512_roundscale_ps::<NEAREST>(self.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn lt(self, o: Self) -> __mmask16 {
        // SAFETY: module invariant.
        unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn le(self, o: Self) -> __mmask16 {
        // SAFETY: module invariant.
        unsafe { _mm512_cmp_ps_mask::<_CMP_LE_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn gt(self, o: Self) -> __mmask16 {
        // SAFETY: module invariant.
        unsafe { _mm512_cmp_ps_mask::<_CMP_GT_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn ge(self, o: Self) -> __mmask16 {
        // SAFETY: module invariant.
        unsafe { _mm512_cmp_ps_mask::<_CMP_GE_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn eq(self, o: Self) -> __mmask16 {
        // SAFETY: module invariant.
        unsafe { _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn is_nan(self) -> __mmask16 {
        // SAFETY: module invariant.
        unsafe { _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(self.0, self.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn select(m: __mmask16, t: Self, f: Self) -> Self {
        // SAFETY: module invariant.
        F32x16(unsafe { _mm512_mask_blend_ps(m, f.0, t.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn ldexp_pos(self, n: Self) -> Self {
        // vscalefps alone: exact in the normal range, subnormal results kept (rounded
        // once) rather than flushed, as the trait allows.
        // SAFETY: module invariant.
        F32x16(unsafe { _mm512_scalef_ps(self.0, n.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn ldexp_ftz(self, n: Self) -> Self {
        // SAFETY: module invariant.
        unsafe {
            // vscalefps is exact in the normal range and takes zeros, infinities and NaN
            // through unchanged; results that land below the normal range come back
            // subnormal, and are flushed to zero of their sign here.
            // (AVX-512F only: no fpclass, which needs DQ.)
            let r = _mm512_scalef_ps(self.0, n.0);
            let sub = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(
                _mm512_abs_ps(r),
                _mm512_set1_ps(f32::MIN_POSITIVE),
            );
            let ri = _mm512_castps_si512(r);
            let sign = _mm512_set1_epi32(i32::MIN);
            F32x16(_mm512_castsi512_ps(_mm512_mask_and_epi32(
                ri, sub, ri, sign,
            )))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn recip_approx(self) -> Self {
        // SAFETY: module invariant.
        unsafe {
            // vrcp14ps (relative error < 2⁻¹⁴) and one Newton step r + r·(1 − d·r): the
            // error squares to < 2⁻²⁸, and the step's last rounding adds half an ulp.
            let r = _mm512_rcp14_ps(self.0);
            let e = _mm512_fnmadd_ps(self.0, r, _mm512_set1_ps(1.0));
            F32x16(_mm512_fmadd_ps(r, e, r))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn min(self, o: Self) -> Self {
        // vminps(a, b) is exactly `a < b ? a : b` (NaN or equal: b), the trait's rule.
        // SAFETY: module invariant.
        F32x16(unsafe { _mm512_min_ps(self.0, o.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn max(self, o: Self) -> Self {
        // vmaxps(a, b) is exactly `a > b ? a : b`.
        // SAFETY: module invariant.
        F32x16(unsafe { _mm512_max_ps(self.0, o.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn acc_zero() -> Self::Acc {
        // SAFETY: module invariant.
        unsafe { (_mm512_setzero_pd(), _mm512_setzero_pd()) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn acc_add(acc: Self::Acc, v: Self) -> Self::Acc {
        let (lo, hi) = v.widen();
        // SAFETY: module invariant.
        unsafe { (_mm512_add_pd(acc.0, lo.0), _mm512_add_pd(acc.1, hi.0)) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn acc_total(acc: Self::Acc) -> f64 {
        // SAFETY: module invariant.
        unsafe { F64x8::acc_total(_mm512_add_pd(acc.0, acc.1)) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn reduce_max(self) -> f64 {
        let mut buf = [0f32; 16];
        // SAFETY: `buf` holds 16 elements; module invariant.
        unsafe { self.store(buf.as_mut_ptr()) };
        max_ignoring_nan(buf.iter().map(|&v| v.to_f64()))
    }
}

impl Vector for F64x8 {
    type E = f64;
    type M = __mmask8;
    type Acc = __m512d;
    const LANES: usize = 8;

    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn load(p: *const f64) -> Self {
        // SAFETY: the caller guarantees 8 readable elements; module invariant.
        F64x8(unsafe { _mm512_loadu_pd(p) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn store(self, p: *mut f64) {
        // SAFETY: the caller guarantees 8 writable elements; module invariant.
        unsafe { _mm512_storeu_pd(p, self.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn load_part(p: *const f64, n: usize, fill: Self) -> Self {
        let k = ((1u32 << n) - 1) as __mmask8;
        // SAFETY: masked-off lanes are not accessed; the caller guarantees n readable
        // elements; module invariant.
        F64x8(unsafe { _mm512_mask_loadu_pd(fill.0, k, p) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn store_part(self, p: *mut f64, n: usize) {
        let k = ((1u32 << n) - 1) as __mmask8;
        // SAFETY: as for load_part.
        unsafe { _mm512_mask_storeu_pd(p, k, self.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn splat(c: f64) -> Self {
        // SAFETY: module invariant.
        F64x8(unsafe { _mm512_set1_pd(c) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn mul_add(self, m: Self, a: Self) -> Self {
        // SAFETY: module invariant.
        F64x8(unsafe { _mm512_fmadd_pd(self.0, m.0, a.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn sqrt(self) -> Self {
        // SAFETY: module invariant.
        F64x8(unsafe { _mm512_sqrt_pd(self.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn abs(self) -> Self {
        // SAFETY: module invariant.
        F64x8(unsafe { _mm512_abs_pd(self.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn copysign(self, sign: Self) -> Self {
        // SAFETY: module invariant.
        unsafe {
            let s = _mm512_set1_epi64(i64::MIN);
            let mag = _mm512_andnot_si512(s, _mm512_castpd_si512(self.0));
            let sg = _mm512_and_si512(s, _mm512_castpd_si512(sign.0));
            F64x8(_mm512_castsi512_pd(_mm512_or_si512(mag, sg)))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn round(self) -> Self {
        // SAFETY: module invariant.
        F64x8(unsafe { _mm512_roundscale_pd::<NEAREST>(self.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn lt(self, o: Self) -> __mmask8 {
        // SAFETY: module invariant.
        unsafe { _mm512_cmp_pd_mask::<_CMP_LT_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn le(self, o: Self) -> __mmask8 {
        // SAFETY: module invariant.
        unsafe { _mm512_cmp_pd_mask::<_CMP_LE_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn gt(self, o: Self) -> __mmask8 {
        // SAFETY: module invariant.
        unsafe { _mm512_cmp_pd_mask::<_CMP_GT_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn ge(self, o: Self) -> __mmask8 {
        // SAFETY: module invariant.
        unsafe { _mm512_cmp_pd_mask::<_CMP_GE_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn eq(self, o: Self) -> __mmask8 {
        // SAFETY: module invariant.
        unsafe { _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(self.0, o.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn is_nan(self) -> __mmask8 {
        // SAFETY: module invariant.
        unsafe { _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(self.0, self.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn select(m: __mmask8, t: Self, f: Self) -> Self {
        // SAFETY: module invariant.
        F64x8(unsafe { _mm512_mask_blend_pd(m, f.0, t.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn ldexp_pos(self, n: Self) -> Self {
        // vscalefpd alone: exact in the normal range, subnormal results kept (rounded
        // once) rather than flushed, as the trait allows.
        // SAFETY: module invariant.
        F64x8(unsafe { _mm512_scalef_pd(self.0, n.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn ldexp_ftz(self, n: Self) -> Self {
        // SAFETY: module invariant.
        unsafe {
            // As for f32: vscalefpd, then subnormal results flushed to signed zero.
            let r = _mm512_scalef_pd(self.0, n.0);
            let sub = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(
                _mm512_abs_pd(r),
                _mm512_set1_pd(f64::MIN_POSITIVE),
            );
            let ri = _mm512_castpd_si512(r);
            let sign = _mm512_set1_epi64(i64::MIN);
            F64x8(_mm512_castsi512_pd(_mm512_mask_and_epi64(
                ri, sub, ri, sign,
            )))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn recip_approx(self) -> Self {
        // SAFETY: module invariant.
        unsafe {
            // vrcp14pd (relative error < 2⁻¹⁴) and one Newton step r + r·(1 − d·r): the
            // error squares to < 2⁻²⁸, for a fraction of vdivpd's throughput cost.
            let r = _mm512_rcp14_pd(self.0);
            let e = _mm512_fnmadd_pd(self.0, r, _mm512_set1_pd(1.0));
            F64x8(_mm512_fmadd_pd(r, e, r))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn min(self, o: Self) -> Self {
        // vminpd(a, b) is exactly `a < b ? a : b`.
        // SAFETY: module invariant.
        F64x8(unsafe { _mm512_min_pd(self.0, o.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn max(self, o: Self) -> Self {
        // vmaxpd(a, b) is exactly `a > b ? a : b`.
        // SAFETY: module invariant.
        F64x8(unsafe { _mm512_max_pd(self.0, o.0) })
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn acc_zero() -> __m512d {
        // SAFETY: module invariant.
        unsafe { _mm512_setzero_pd() }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn acc_add(acc: __m512d, v: Self) -> __m512d {
        // SAFETY: module invariant.
        unsafe { _mm512_add_pd(acc, v.0) }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn acc_total(acc: __m512d) -> f64 {
        let mut buf = [0f64; 8];
        // SAFETY: `buf` holds 8 elements; module invariant.
        unsafe { _mm512_storeu_pd(buf.as_mut_ptr(), acc) };
        buf.iter().sum()
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn reduce_max(self) -> f64 {
        let mut buf = [0f64; 8];
        // SAFETY: `buf` holds 8 elements; module invariant.
        unsafe { self.store(buf.as_mut_ptr()) };
        max_ignoring_nan(buf.iter().copied())
    }
}

impl Widen for F32x16 {
    type W = F64x8;
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn widen(self) -> (F64x8, F64x8) {
        // SAFETY: module invariant.
        unsafe {
            let lo = _mm512_castps512_ps256(self.0);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self.0)));
            (F64x8(_mm512_cvtps_pd(lo)), F64x8(_mm512_cvtps_pd(hi)))
        }
    }
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn narrow(lo: F64x8, hi: F64x8) -> Self {
        // SAFETY: module invariant.
        unsafe {
            let lo = _mm256_castps_pd(_mm512_cvtpd_ps(lo.0));
            let hi = _mm256_castps_pd(_mm512_cvtpd_ps(hi.0));
            let both = _mm512_insertf64x4::<1>(_mm512_castpd256_pd512(lo), hi);
            F32x16(_mm512_castpd_ps(both))
        }
    }
}

/// Applies `act` to an `f32` block with AVX-512.
///
/// # Safety
/// The CPU supports `avx512f`, `avx2` and `fma`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn apply_f32(act: Activation, data: &mut [f32], cols: usize) {
    super::record_run(SimdPath::Avx512);
    // SAFETY: this function's features are enabled, as the kernels require.
    unsafe {
        if act == Activation::Gelu {
            // The table form (`Lut`): in f32 lanes, within 2 ulps.
            kernels::gelu_f32_lut::<F32x16>(data)
        } else {
            kernels::apply_f32::<F32x16>(act, data, cols)
        }
    }
}

/// Applies `act` to a strided `f32` tile with AVX-512, if it is one the packed path
/// applies tile by tile ([`kernels::apply_f32_tile`]).
///
/// # Safety
/// The CPU supports `avx512f`, `avx2` and `fma`; every row `r < rows` is readable and
/// writable for `cols` floats from `p + r·ld`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn apply_f32_tile(
    act: Activation,
    p: *mut f32,
    rows: usize,
    cols: usize,
    ld: usize,
) -> bool {
    super::record_run(SimdPath::Avx512);
    // SAFETY: this function's features are enabled, as the kernels require; the rows
    // are the caller's promise.
    unsafe { kernels::apply_f32_tile::<F32x16>(act, p, rows, cols, ld) }
}

/// Applies `act` to an `f64` block with AVX-512.
///
/// # Safety
/// The CPU supports `avx512f`, `avx2` and `fma`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn apply_f64(act: Activation, data: &mut [f64], cols: usize) {
    super::record_run(SimdPath::Avx512);
    // SAFETY: this function's features are enabled, as the kernels require.
    unsafe { kernels::apply_f64::<F64x8>(act, data, cols) }
}

/// `out += x·w` for a skinny product with AVX-512 (the axpy kernel of [`gemv`]).
///
/// # Safety
/// The CPU supports `avx512f`, `avx2` and `fma`; `s` describes valid, non-aliasing views.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn skinny_f32(s: &Skinny<f32>) {
    // SAFETY: this function's features are enabled, as the kernels require; the views
    // are the caller's promise.
    unsafe { gemv::axpy::<F32x16>(s) }
}

/// `out += x·w` for a skinny product with AVX-512 (the axpy kernel of [`gemv`]).
///
/// # Safety
/// The CPU supports `avx512f`, `avx2` and `fma`; `s` describes valid, non-aliasing views.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn skinny_f64(s: &Skinny<f64>) {
    // SAFETY: this function's features are enabled, as the kernels require; the views
    // are the caller's promise.
    unsafe { gemv::axpy::<F64x8>(s) }
}
