//! The vector interface the math bodies are written against, once, and instantiated
//! per instruction set (AVX-512, AVX2+FMA, portable `wide`).
//!
//! A backend type wraps one register of lanes. Its methods are `#[inline(always)]` and
//! are only ever called from inside a backend's entry function, which is compiled with
//! the backend's `#[target_feature]` set and entered only after run-time detection: that
//! is the invariant every backend's `unsafe` relies on. (In unoptimised builds the loops
//! of `kernels` are functions of their own, called from the entry: still only after
//! that detection; the intrinsics are calls there, and the Rust ABI passes their
//! vector arguments in memory whatever the caller's features.)

use super::coeffs;
use core::ops::{Add, Div, Mul, Neg, Sub};

/// A lane type with the constants its math needs.
pub(crate) trait Real: Copy + PartialOrd + 'static {
    /// `(e^r − 1 − r)/r²` on `|r| ≤ ln2/2`.
    const EXP_Q: &'static [f64];
    /// `ln(1+f) = 2z + z³·R(z²)`, `z = f/(2+f)`.
    const LOG_R: &'static [f64];
    /// `tanh(x) = x + x³·T(x²)` on `|x| < TANH_SMALL`.
    const TANH_T: &'static [f64];
    /// `ln 2` split so that `n·LN2_HI` is exact for the `n` the reduction sees.
    const LN2_HI: f64;
    /// `ln 2 − LN2_HI`.
    const LN2_LO: f64;
    /// The exp argument is clamped to ±this before reduction: far enough out that the
    /// result has overflowed or flushed, close enough that `n` stays a small integer.
    const EXP_CLAMP: f64;
    /// Below this `expm1(x)` rounds to −1.
    const EXPM1_FLOOR: f64;
    /// `|x|` from which `tanh(x)` rounds to ±1.
    const TANH_ONE: f64;
    /// The largest finite number.
    const MAX: f64;
    /// The smallest positive normal number.
    const MIN_NORMAL: f64;
    /// Exact conversion to `f64`.
    fn to_f64(self) -> f64;
}

impl Real for f32 {
    const EXP_Q: &'static [f64] = &coeffs::EXP_Q_F32;
    const LOG_R: &'static [f64] = &coeffs::LOG_R_F32;
    const TANH_T: &'static [f64] = &coeffs::TANH_T_F32;
    // 355/512: 9 significant bits, so n·LN2_HI is exact for |n| < 2^15.
    const LN2_HI: f64 = 0.693_359_375;
    const LN2_LO: f64 = -2.121_944_400_546_905_8e-4;
    const EXP_CLAMP: f64 = 200.0;
    const EXPM1_FLOOR: f64 = -30.0;
    const TANH_ONE: f64 = 9.5;
    const MAX: f64 = f32::MAX as f64;
    const MIN_NORMAL: f64 = f32::MIN_POSITIVE as f64;
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Real for f64 {
    const EXP_Q: &'static [f64] = &coeffs::EXP_Q_F64;
    const LOG_R: &'static [f64] = &coeffs::LOG_R_F64;
    const TANH_T: &'static [f64] = &coeffs::TANH_T_F64;
    // ln 2 with its last 21 bits zero (n·LN2_HI exact for |n| < 2^21), and the rest.
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const EXP_CLAMP: f64 = 1500.0;
    const EXPM1_FLOOR: f64 = -40.0;
    const TANH_ONE: f64 = 20.0;
    const MAX: f64 = f64::MAX;
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn to_f64(self) -> f64 {
        self
    }
}

/// One register of lanes. Arithmetic is IEEE per lane; comparisons are ordered (false
/// when either side is NaN).
pub(crate) trait Vector:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// The lane type.
    type E: Real;
    /// A per-lane boolean.
    type M: Copy;
    /// An `f64` accumulator for sums of this vector's lanes.
    type Acc: Copy;
    /// Lanes per register.
    const LANES: usize;
    /// The widest output row, in vectors, that the skinny axpy kernel keeps in
    /// registers for a whole sum (two rows at a time, beside the weight vectors): 4
    /// where there are 16 or 32 full-width registers. `wide`'s 8-lane vectors are two
    /// SSE registers each on x86-64's baseline, where 4 spilled (1×784×32 ran 0.82×
    /// the sweep through memory): 2 there.
    const AXPY_NARROW: usize = 4;

    /// Loads `LANES` elements.
    ///
    /// # Safety
    /// `p` is valid for reading `LANES` elements.
    unsafe fn load(p: *const Self::E) -> Self;
    /// Stores `LANES` elements.
    ///
    /// # Safety
    /// `p` is valid for writing `LANES` elements.
    unsafe fn store(self, p: *mut Self::E);
    /// Loads the first `n < LANES` elements; the other lanes hold `fill`'s.
    ///
    /// # Safety
    /// `p` is valid for reading `n` elements.
    unsafe fn load_part(p: *const Self::E, n: usize, fill: Self) -> Self;
    /// Stores the first `n < LANES` lanes.
    ///
    /// # Safety
    /// `p` is valid for writing `n` elements.
    unsafe fn store_part(self, p: *mut Self::E, n: usize);

    /// Every lane `c`, rounded to the lane type.
    fn splat(c: f64) -> Self;
    /// `self·m + a`, fused where the instruction set has FMA.
    fn mul_add(self, m: Self, a: Self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// `|self|` (clears the sign bit).
    fn abs(self) -> Self;
    /// `|self|` with the sign bit of `sign`.
    fn copysign(self, sign: Self) -> Self;
    /// Rounds to an integer (nearest; ties either way).
    fn round(self) -> Self;
    /// `self < o`.
    fn lt(self, o: Self) -> Self::M;
    /// `self <= o`.
    fn le(self, o: Self) -> Self::M;
    /// `self > o`.
    fn gt(self, o: Self) -> Self::M;
    /// `self >= o`.
    fn ge(self, o: Self) -> Self::M;
    /// `self == o`.
    fn eq(self, o: Self) -> Self::M;
    /// `self` is NaN.
    fn is_nan(self) -> Self::M;
    /// `m ? t : f` per lane.
    fn select(m: Self::M, t: Self, f: Self) -> Self;
    /// `self·2ⁿ` for integral `n` (|n| < 2¹⁵), with results below the smallest normal
    /// flushed to zero of `self`'s sign and results past the largest finite value going
    /// to ±∞. Zero, infinite and NaN `self` come back unchanged; a subnormal `self`
    /// comes back unchanged or scaled, depending on the backend (AVX-512's `vscalef`
    /// scales it).
    fn ldexp_ftz(self, n: Self) -> Self;

    /// [`ldexp_ftz`](Vector::ldexp_ftz) for `self` positive and normal (`2ⁿ`-scaled
    /// parts of exponentials, reciprocals of sums ≥ 1): no sign, zero or special-value
    /// handling, so backends can do it in fewer instructions. Other `self` give an
    /// unspecified (but non-UB) value. Results below the smallest normal are flushed to
    /// +0 or kept subnormal (rounded once), by backend: AVX-512 keeps them (one
    /// `vscalef`), which the crate's accuracy contract allows and which is closer to exact.
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn ldexp_pos(self, n: Self) -> Self {
        self.ldexp_ftz(n)
    }

    /// An empty accumulator.
    fn acc_zero() -> Self::Acc;
    /// Adds the lanes into the accumulator (in `f64`).
    fn acc_add(acc: Self::Acc, v: Self) -> Self::Acc;
    /// The accumulated sum.
    ///
    /// # Safety
    /// Called inside the backend's entry function (as every method is).
    unsafe fn acc_total(acc: Self::Acc) -> f64;
    /// The largest lane, ignoring NaN lanes (−∞ if all are NaN).
    ///
    /// # Safety
    /// Called inside the backend's entry function (as every method is).
    unsafe fn reduce_max(self) -> f64;

    /// `1/self` for finite `self > 0`: the exact quotient by default; backends with a
    /// reciprocal estimate refine it by one Newton step, to within 2⁻²⁸ relative before
    /// the step's final rounding (so within about one ulp of the lane type).
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn recip_approx(self) -> Self {
        Self::splat(1.0) / self
    }

    /// `min(self, o)`; NaN in `self` gives `o`.
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn min(self, o: Self) -> Self {
        Self::select(self.lt(o), self, o)
    }
    /// `max(self, o)`; NaN in `self` gives `o`.
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn max(self, o: Self) -> Self {
        Self::select(self.gt(o), self, o)
    }
}

/// An `f32` register that converts to and from two `f64` registers (for the kernels that
/// evaluate `f32` outputs in `f64`).
pub(crate) trait Widen: Vector<E = f32> {
    /// The `f64` register with half the lanes.
    type W: Vector<E = f64>;
    /// Exact widening: low lanes, high lanes.
    fn widen(self) -> (Self::W, Self::W);
    /// Rounds both halves back to `f32`.
    fn narrow(lo: Self::W, hi: Self::W) -> Self;
}

/// [`Vector::ldexp_ftz`] for one `f32` lane (the portable backend's building block).
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn ldexp_ftz_f32(m: f32, n: f32) -> f32 {
    let b = m.to_bits();
    let field = ((b >> 23) & 0xff) as i32;
    let sign = b & 0x8000_0000;
    if field == 0 || field == 0xff {
        return m;
    }
    let n = n as i32;
    let e = field + n;
    if e <= 0 {
        f32::from_bits(sign)
    } else if e >= 0xff {
        f32::from_bits(sign | 0x7f80_0000)
    } else {
        f32::from_bits(b.wrapping_add((n as u32) << 23))
    }
}

/// [`Vector::ldexp_ftz`] for one `f64` lane.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn ldexp_ftz_f64(m: f64, n: f64) -> f64 {
    let b = m.to_bits();
    let field = ((b >> 52) & 0x7ff) as i64;
    let sign = b & (1 << 63);
    if field == 0 || field == 0x7ff {
        return m;
    }
    let n = n as i64;
    let e = field + n;
    if e <= 0 {
        f64::from_bits(sign)
    } else if e >= 0x7ff {
        f64::from_bits(sign | 0x7ff0_0000_0000_0000)
    } else {
        f64::from_bits(b.wrapping_add((n as u64) << 52))
    }
}

/// The largest value, NaN skipped (−∞ if none).
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn max_ignoring_nan(v: impl Iterator<Item = f64>) -> f64 {
    v.fold(f64::NEG_INFINITY, |m, x| if x > m { x } else { m })
}

/// `f32` lanes that look a value up in a 16- or 32-entry table with one instruction
/// (AVX-512's `vpermps`, `vpermt2ps`), for [`math::gelu_f32_lut`](super::math::gelu_f32_lut).
pub(crate) trait Lut: Vector<E = f32> {
    /// Per lane, `table[i]` with `i` bits 20..24 of the lane's bit pattern: for a lane in
    /// `[1, 16)`, `(24 + 8e + m) mod 32` with `e` its binade (0..3) and `m` the top three
    /// bits of its mantissa.
    fn lut32(self, table: &[f32; 32]) -> Self;
    /// Per lane, `table[i]` with `i` the low 4 bits of the lane's bit pattern.
    fn lut16_low(self, table: &[f32; 16]) -> Self;
    /// `self·2^⌊n⌋`, rounded once: results below the smallest normal stay subnormal
    /// (unlike [`Vector::ldexp_ftz`]).
    fn ldexp_gradual(self, n: Self) -> Self;
}
