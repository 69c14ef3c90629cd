//! The math bodies of the vector kernels, written once against [`Vector`] and
//! instantiated per instruction set and lane type (coefficients come from [`Real`]).
//!
//! Every function is branch-free over lanes. Conventions shared by all of them:
//! - results whose magnitude is below the smallest normal number are flushed to zero
//!   (keeping the sign): gradual underflow would cost microcode assists on the inputs
//!   that reach it, and XLA flushes the same way;
//! - NaN in gives NaN out, restored with a final select where the range reduction
//!   would lose it;
//! - ±∞ give the mathematical limits.

use super::vector::{Lut, Real, Vector};

/// `log2(e)`.
const LOG2_E: f64 = std::f64::consts::LOG2_E;

/// Horner evaluation of `c[0] + c[1]·x + …`.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn horner<V: Vector>(x: V, c: &[f64]) -> V {
    let mut acc = V::splat(c[c.len() - 1]);
    for &k in c[..c.len() - 1].iter().rev() {
        acc = acc.mul_add(x, V::splat(k));
    }
    acc
}

/// The reduced exponential: `eˣ = 2ⁿ·(1 + em)` with `em = expm1(r)`, `|r| ≲ ln2/2` (`x` clamped to
/// ±`EXP_CLAMP` first, so NaN is lost here: callers restore it). Returns `(n, r, r·q(r))`
/// where `em = r + r·(r·q)`.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn exp_reduce<V: Vector>(x: V) -> (V, V, V) {
    exp_reduce_with(x, V::E::EXP_Q)
}

/// [`exp_reduce`] with the polynomial `q` (fewer terms where less accuracy is needed).
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn exp_reduce_with<V: Vector>(x: V, q: &[f64]) -> (V, V, V) {
    let c = V::E::EXP_CLAMP;
    let x = x.max(V::splat(-c)).min(V::splat(c));
    let n = (x * V::splat(LOG2_E)).round();
    // Cody–Waite: n·LN2_HI is exact, so r carries the reduction error of LN2_LO only.
    let r = n.mul_add(V::splat(-V::E::LN2_HI), x);
    let r = n.mul_add(V::splat(-V::E::LN2_LO), r);
    let rq = r * horner(r, q);
    (n, r, rq)
}

/// `(m, n)` with `eˣ = m·2ⁿ`, `m ∈ [0.7, 1.42]` (for `x` clamped to ±`EXP_CLAMP`).
/// Callers fold other factors into `m` before scaling, so products like `x·eˣ` stay
/// accurate where `eˣ` alone would already have underflowed.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn exp_parts<V: Vector>(x: V) -> (V, V) {
    let (n, r, rq) = exp_reduce(x);
    // 1 + r + r²q as 1 + r·(1 + rq): one rounding at the end.
    let m = r.mul_add(rq + V::splat(1.0), V::splat(1.0));
    (m, n)
}

/// `eˣ`.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn exp<V: Vector>(x: V) -> V {
    let (m, n) = exp_parts(x);
    V::select(x.is_nan(), x, m.ldexp_pos(n))
}

/// `eˣ − 1` for `x ≤ 0` (and NaN); positive `x` is not supported.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn expm1_neg<V: Vector>(x: V) -> V {
    let xc = x.max(V::splat(V::E::EXPM1_FLOOR));
    let (n, r, rq) = exp_reduce(xc);
    let em = r.mul_add(rq, r); // expm1(r), one rounding
                               // eˣ − 1 = 2ⁿ·em + (2ⁿ − 1); 2ⁿ − 1 is exact for the n here, one rounding at the end.
    let s = V::splat(1.0).ldexp_pos(n);
    let y = s.mul_add(em, s - V::splat(1.0));
    V::select(x.is_nan(), x, y)
}

/// `ln(1 + t)` for `t ∈ [0, 1]` (with the rounding of `1 + t` compensated).
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn log1p_unit<V: Vector>(t: V) -> V {
    let one = V::splat(1.0);
    let s = one + t; // in [1, 2]
                     // Rounding of 1 + t, to first order: ln(s + c·s) = ln(s) + c.
    let c = (t - (s - one)) / s;
    let big = s.gt(V::splat(std::f64::consts::SQRT_2));
    let m = V::select(big, s * V::splat(0.5), s); // in [√2/2, √2]
    let k = V::select(big, one, V::splat(0.0));
    let f = m - one; // exact (Sterbenz)
    let z = f / (f + V::splat(2.0));
    let z2 = z * z;
    // ln(1+f) = 2z + z³R(z²)
    let lnm = (z * z2).mul_add(horner(z2, V::E::LOG_R), z + z);
    k.mul_add(V::splat(std::f64::consts::LN_2), lnm + c)
}

/// `tanh(x)`: an odd polynomial below [`TANH_SMALL`], else `1 − 2t/(1 + t)` with
/// `t = e^(−2|x|) ≤ 0.18` (the subtracted term is small, so its rounding errors shrink).
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn tanh<V: Vector>(x: V) -> V {
    let a = x.abs();
    let a2 = a * a;
    let small = (a * a2).mul_add(horner(a2, V::E::TANH_T), a);
    let (m, n) = exp_parts(-(a.min(V::splat(V::E::TANH_ONE)) * V::splat(2.0)));
    let t = m.ldexp_pos(n);
    let large = V::splat(1.0) - (t + t) / (t + V::splat(1.0));
    let y = V::select(a.lt(V::splat(TANH_SMALL)), small, large);
    V::select(x.is_nan(), x, y.copysign(x))
}

/// Where tanh switches from its odd polynomial to the exponential form.
pub(crate) const TANH_SMALL: f64 = 0.875;

/// Past this, `σ(x)` rounds to 1 and `x·σ(x)` to `x`, in both lane types.
const SIGMOID_ONE: f64 = 40.0;

/// `(d, n)` with `1 + e^(−x) = d·2ⁿ` (`x ≤ SIGMOID_ONE`; below `−EXP_CLAMP` it is
/// clamped): the sum is formed at `e^(−x)`'s scale, so nothing underflows or overflows
/// and quotients by it round once.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
fn one_plus_exp_neg<V: Vector>(x: V) -> (V, V) {
    let (m, n) = exp_parts(-x);
    (m + V::splat(1.0).ldexp_pos(-n), n)
}

/// `1/(1 + e⁻ˣ)`: one division of a once-rounded sum (≤ ~1.6 ulps).
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn sigmoid<V: Vector>(x: V) -> V {
    let (d, n) = one_plus_exp_neg(x.min(V::splat(SIGMOID_ONE)));
    let y = (V::splat(1.0) / d).ldexp_pos(-n);
    V::select(x.is_nan(), x, y)
}

/// `x·σ(x) = x/(1 + e⁻ˣ)`: one division, scaled last so `x·eˣ` stays exact past `eˣ`'s
/// underflow; `x` is clamped so `−∞` gives the limit `−0`.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn silu<V: Vector>(x: V) -> V {
    let xc = x.min(V::splat(SIGMOID_ONE));
    let (d, n) = one_plus_exp_neg(xc);
    let xc = xc.max(V::splat(-V::E::EXP_CLAMP));
    let y = (xc / d).ldexp_ftz(-n);
    let y = V::select(x.gt(V::splat(SIGMOID_ONE)), x, y);
    V::select(x.is_nan(), x, y)
}

/// The ELU family: for `x > 0`, `x` (or `pos_hi·x + pos_lo·x` when `scaled`), else
/// `α·(e^arg − 1)` with `arg = x/α ≤ 0` (`arg = x` for elu and selu) and `α` given as a
/// head and a tail.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn elu_family<V: Vector>(
    x: V,
    arg: V,
    scaled: bool,
    pos_hi: V,
    pos_lo: V,
    neg_hi: V,
    neg_lo: V,
) -> V {
    let em = expm1_neg(arg.min(V::splat(0.0)));
    let neg = neg_hi.mul_add(em, neg_lo * em);
    let pos = if scaled {
        // +∞ stays +∞ (the tail term would make ∞ − ∞).
        let p = pos_hi.mul_add(x, pos_lo * x);
        V::select(x.gt(V::splat(V::E::MAX)), x, p)
    } else {
        x
    };
    let y = V::select(x.gt(V::splat(0.0)), pos, neg);
    // ±0 keep their sign (α·(±0)); NaN stays NaN.
    let y = V::select(x.eq(V::splat(0.0)), x * neg_hi, y);
    V::select(x.is_nan(), x, y)
}

/// `ln(1 + eˣ) = max(x, 0) + ln(1 + e^−|x|)`.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn softplus<V: Vector>(x: V) -> V {
    let (m, n) = exp_parts(-x.abs());
    let t = m.ldexp_pos(n);
    let relu = V::select(x.gt(V::splat(0.0)), x, V::splat(0.0));
    let y = relu + log1p_unit(t);
    V::select(x.is_nan(), x, y)
}

/// `x·tanh(softplus(x))`, as `x·N/(N + 2)` with `N = eˣ(eˣ + 2)`.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn mish<V: Vector>(x: V) -> V {
    let big = V::splat(20.0); // beyond, tanh(softplus(x)) rounds to 1 in f32 and f64
    let (m, n) = exp_parts(x.min(big));
    let e = m.ldexp_pos(n);
    let two = V::splat(2.0);
    let e2 = e + two;
    let g = e2 / e.mul_add(e2, two);
    // x·e·g with e's scale applied last (x·eˣ stays exact past eˣ's underflow).
    let xc = x.max(V::splat(-V::E::EXP_CLAMP));
    let y = ((xc * m) * g).ldexp_ftz(n);
    let y = V::select(x.gt(big), x, y);
    V::select(x.is_nan(), x, y)
}

/// Splits `c` into a head rounded to the lane type and the tail `c − head`, so
/// `head·x + tail·x` carries `c` to about twice the lane precision.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn split(c: f64, round: fn(f64) -> f64) -> (f64, f64) {
    let hi = round(c);
    (hi, c - hi)
}

/// The tanh-GELU constant `√(2/π)`.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

/// The erf GELU for `f32` lanes with one-instruction table lookups (AVX-512), within 2
/// ulps (1.58 over all 2³² inputs): `x·Φ(x)` from `a·Φ(−a)` (`a = |x|`), with
/// `a·Φ(−a) = e^(−a²/2)·P(a)`, `P(a) ≈ γ·a·e^(a²/2)·Φ(−a)·e^(κa²)` (smooth, slowly
/// varying) a degree-5 polynomial in `a − mid` picked from 32 intervals of `[0, 14.4]` by
/// the bits of `a + 1` (`GELU_LUT`: 0.125 wide near 0, 1 wide near 14; each `mid` chosen
/// so that `P(mid)` is within a few thousandths of an ulp of an `f32`, the polynomial's
/// constant term; on `[0, 1/8)` `mid = 0` and `P = a·(γ/2 + …)`, accurate down to the
/// subnormals), and `e^(−a²/2) = 2^nf·2^(j/16)·e^(−s·ln 2/H)·e^(−κa²)`:
/// `N = a²/H` rounded to sixteenths (`H` = 2 ln 2 cut to 12 bits, `κ = (2 ln 2 − H)/2H`,
/// the rest of 2 ln 2, whose factor the polynomials carry), `s = a² − N·H/16` formed by
/// two FMAs with one rounding (no rounding of `a²`, which would cost up to ~100 ulps at
/// `a = 13`), `2^(j/16)` (`j = −N mod 16`) from a 16-entry table (divided by `γ`, and
/// halved where `⌊nf⌋` carries), `e^(−s·ln 2/H)`, `|s| ≤ H/32`, a degree-3 polynomial.
/// The polynomial folds in the factor `a`, where an earlier form multiplied by it
/// (2.80 ulps): one rounding fewer. `γ = 2^−0.05` and the offset 7/16 in `nf` move the
/// two last roundings' worst alignment (a result just above a power of two from a
/// polynomial just below one) out of reach. 32 vector instructions, 9 of them table
/// lookups; no reciprocal, no rounding instruction, no separate series near 0
/// (`tools/fit_gelu.py` makes the tables; docs/ACCURACY.md the measurements).
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn gelu_f32_lut<V: Lut>(x: V) -> V {
    use super::coeffs::GELU_EXP_G;
    let tab = &GELU_TABLES;
    // Past 14.4 the f32 result is x, or rounds to −0 (14.4·Φ(−14.4) = 3.7e-46 is a
    // quarter of the smallest subnormal). NaN: `min` gives the clamp, and the NaN comes
    // back through `max(−0, x) − t` below.
    let a = x.abs().min(V::splat(14.4));
    // t = M − N/16 on the grid of sixteenths (ulp of M = 1.5·2¹⁹), N = a²/H rounded, so
    // t's low 4 bits are −N mod 16, and nf = −N/16 + 7/16 exactly (Sterbenz).
    const M: f64 = 786_432.0;
    // 2 ln 2 cut to 12 bits: nf·H and M·H are exact, so s = a² − N·H/16 rounds once.
    const H: f64 = 1.386_230_468_75;
    let t = (a * a).mul_add(V::splat(-1.0 / H), V::splat(M));
    let nf = t - V::splat(M - 7.0 / 16.0);
    // −N·H/16 formed from t, as t·H − M·H (the FMA rounds only the exact difference), so
    // it need not wait for nf.
    let nf_hi = t.mul_add(V::splat(H), V::splat(-M * H));
    let s = a.mul_add(a, nf_hi);
    // 2^(j/16)/γ·e^(−s·ln2/H) − 1 = (2^(j/16)/γ − 1) + 2^(j/16)/γ·(e^(−s·ln2/H) − 1).
    let em = s * horner(s, &GELU_EXP_G);
    let ee = t
        .lut16_low(&tab.exp2)
        .mul_add(em, t.lut16_low(&tab.exp2_m1));
    // The table index: bits of a + 1 ∈ [1, 15.4]; u = a − mid exactly (u = a near 0).
    let key = a + V::splat(1.0);
    let u = a - key.lut32(&tab.mid);
    let last = tab.lut.len() - 1;
    let mut p = key.lut32(&tab.lut[last]);
    for c in tab.lut[..last].iter().rev() {
        p = p.mul_add(u, key.lut32(c));
    }
    // a·Φ(−a) = P·(1 + ee)·2^⌊nf⌋, the last step rounded once (subnormal results kept,
    // which the crate allows and which is closer to exact than flushing). x < 0: its
    // negation, as −0 − t (−0 where t underflows to 0); otherwise x − t. max(−0, x) is
    // x for x ≥ +0, ±0 and NaN (the trait's `a > b ? a : b`) and −0 for x < 0: one
    // instruction for the compare, negation and blend.
    let t = p.mul_add(ee, p).ldexp_gradual(nf);
    V::splat(-0.0).max(x) - t
}

/// [`gelu_f32_lut`]'s tables, each starting on a 64-byte boundary: a 32-entry lookup
/// loads two 64-byte halves, and a half that straddled two lines would cost two loads
/// (on Zen 5, lookups with a table off the boundary ran at half the rate).
#[repr(C, align(64))]
pub(crate) struct GeluTables {
    mid: [f32; 32],
    lut: [[f32; 32]; 6],
    exp2: [f32; 16],
    exp2_m1: [f32; 16],
}

pub(crate) static GELU_TABLES: GeluTables = GeluTables {
    mid: super::coeffs::GELU_LUT_MID,
    lut: super::coeffs::GELU_LUT,
    exp2: super::coeffs::GELU_EXP2,
    exp2_m1: super::coeffs::GELU_EXP2_M1,
};

/// The erf GELU in `f64` lanes, for `f32` outputs off AVX-512 (0.52 ulps over all 2³²
/// inputs), `x·Φ(x)` from `Φ(−a) = e^(−a²/2)·Q(w)/(a + C)`, `a = |x|`,
/// `w = (a − C)/(a + C)`: `x²` is exact in `f64`, the polynomial (in `f64` coefficients)
/// and the exponential's are good to ~10⁻⁹ (an `f32` result needs no more), and the only
/// rounding that matters is the final one to `f32`.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn gelu_for_f32<W: Vector<E = f64>>(x: W) -> W {
    use super::coeffs::{EXP_Q_F32, GELU_C, GELU_Q};
    let cut = W::splat(13.25);
    let xc = x.max(-cut).min(cut);
    let a = xc.abs();
    // −x²/2 ≥ −88 is inside the clamp, and exact for an f32 x.
    let (n, r, rq) = exp_reduce_with(a * a * W::splat(-0.5), &EXP_Q_F32);
    let em = r.mul_add(rq, r);
    let c = W::splat(GELU_C);
    let rho = (a + c).recip_approx();
    let q = horner((a - c) * rho, &GELU_Q);
    // x·Φ(−a) = x·e^r·Q·ρ·2ⁿ ≥ e^(−88)/17 is a normal f64: it rounds to f32 once.
    let t = (xc * q.mul_add(em, q) * rho).ldexp_ftz(n);
    // Past −cut the limit −0 (at −cut itself t is still an f32 subnormal).
    let t = W::select(x.lt(-cut), W::splat(-0.0), t);
    let y = W::select(x.le(W::splat(0.0)), t, x - t);
    W::select(x.is_nan(), x, y)
}

/// `x·σ(2u)`, `u = √(2/π)·(x + 0.044715x³)`: the tanh-GELU without `1 + tanh`
/// cancelling, as `x/(1 + e^(−2u))` formed like [`silu`] (scaled last, so it stays
/// accurate where `e^(2u)` alone has underflowed).
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) fn gelu_tanh<V: Vector>(x: V) -> V {
    let u = V::splat(SQRT_2_OVER_PI) * (x + V::splat(0.044_715) * (x * x * x));
    let z = (u + u)
        .max(V::splat(-V::E::EXP_CLAMP))
        .min(V::splat(SIGMOID_ONE));
    let (d, n) = one_plus_exp_neg(z);
    let xc = x.max(V::splat(-V::E::EXP_CLAMP));
    let y = (xc / d).ldexp_ftz(-n);
    let y = V::select(x.gt(V::splat(SIGMOID_ONE)), x, y);
    V::select(x.is_nan(), x, y)
}

#[cfg(test)]
mod tests {
    use super::GELU_TABLES;

    #[test]
    fn the_gelu_tables_start_on_cache_lines() {
        let t = &GELU_TABLES;
        let mut starts = vec![t.mid.as_ptr(), t.exp2.as_ptr(), t.exp2_m1.as_ptr()];
        starts.extend(t.lut.iter().map(|c| c.as_ptr()));
        for p in starts {
            assert_eq!(p as usize % 64, 0, "{p:p}");
        }
    }
}
