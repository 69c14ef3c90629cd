//! The skinny kernel for a weight whose steps are contiguous (PyTorch's `(units, in)`
//! seen transposed), for the fewest rows: 8 weight columns × 8 steps loaded and
//! transposed in registers, then multiplied and added exactly as the axpy kernel does
//! (one fused multiply-add per step, in `p` order, from zero in each K block), so the
//! results are the Keras layout's, bit for bit, with no packed copy written and read
//! back. More rows amortise a packed copy better (`paths::skinny`).
//!
//! AVX2 only: on AVX-512 CPUs it runs too (a fused multiply-add rounds the same at any
//! vector width), and without FMA the portable path packs instead.

#![cfg(target_arch = "x86_64")]

use super::gemv::Skinny;
use super::pack::transpose8;
use core::arch::x86_64::*;

/// The most rows this kernel takes per call: from 5 rows, packing the weight once
/// (`paths::skinny`) costs less than transposing it again for every 4 rows.
pub(crate) const MAX_ROWS: usize = 4;

/// Column groups of 8 in flight for one row (see [`skinny_t_f32`]) where the weight is
/// small and its columns do not share L1 sets.
const GROUPS_ONE_ROW: usize = 4;

/// Up to this many weight bytes, more than one column group runs at once: larger
/// weights stream from memory, where 8 columns' streams at a time ran fastest.
const GROUPED_MAX_BYTES: usize = 2 << 20;

/// Steps ahead of the loads each column is prefetched (where the column has them).
const PREFETCH_AHEAD: usize = 64;

/// `out = bias + x·w` in the crate's K-sum order, `w(p, j)` at `w + j·ldw + p`, at most
/// [`MAX_ROWS`] rows, `x`'s steps contiguous (`s.csx == 1`; `s.add_out` and `s.part`
/// unused).
///
/// # Safety
/// The CPU supports `avx2` and `fma`; `s` describes valid views for its extents (the
/// weight read as above), `out` aliasing neither input; `s.m ≤ MAX_ROWS`, `s.csx == 1`,
/// `s.k ≥ 1` (an empty sum is the caller's: the bias).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn skinny_t_f32(s: &Skinny<f32>) {
    debug_assert!(s.m <= MAX_ROWS && s.csx == 1 && s.k >= 1);
    // Each output's sum is one chain of fused multiply-adds (4 cycles each), so a row
    // needs several column groups in flight to keep the FMA units busy — except where
    // their columns would crowd one L1 set (a stride that is a multiple of 2 KiB) or
    // the weight streams from memory.
    let bytes = s.k.saturating_mul(s.n).saturating_mul(4);
    let grouped = !(s.ldw.unsigned_abs() * 4).is_multiple_of(2048) && bytes <= GROUPED_MAX_BYTES;
    let g = match (grouped, s.m) {
        (true, 1) => GROUPS_ONE_ROW,
        (true, 2) => 2,
        _ => 1,
    };
    let full = s.n / 8 * 8;
    let mut j = 0;
    // SAFETY: (every call) columns j..j+8·G ≤ n (or, clamped, up to n), rows below
    // m ≤ MAX_ROWS.
    unsafe {
        while j + 8 * g <= full {
            let v = 8 * g;
            match (s.m, g) {
                (1, GROUPS_ONE_ROW) => cols::<1, GROUPS_ONE_ROW, false>(s, j, v),
                (2, 2) => cols::<2, 2, false>(s, j, v),
                (1, _) => cols::<1, 1, false>(s, j, v),
                (2, _) => cols::<2, 1, false>(s, j, v),
                (3, _) => cols::<3, 1, false>(s, j, v),
                _ => cols::<4, 1, false>(s, j, v),
            }
            j += v;
        }
        while j < s.n {
            // Whole groups of 8, then the last few columns (their pointers clamped to
            // the last column, their lanes never stored).
            let v = (s.n - j).min(8);
            match (s.m, v == 8) {
                (1, true) => cols::<1, 1, false>(s, j, v),
                (2, true) => cols::<2, 1, false>(s, j, v),
                (3, true) => cols::<3, 1, false>(s, j, v),
                (_, true) => cols::<4, 1, false>(s, j, v),
                (1, false) => cols::<1, 1, true>(s, j, v),
                (2, false) => cols::<2, 1, true>(s, j, v),
                (3, false) => cols::<3, 1, true>(s, j, v),
                (_, false) => cols::<4, 1, true>(s, j, v),
            }
            j += v;
        }
    }
}

/// Column `c` of a group's (relative to its first), clamped to `last` where `CLAMP`.
#[inline(always)]
fn column<const CLAMP: bool>(c: usize, last: usize) -> isize {
    (if CLAMP { c.min(last) } else { c }) as isize
}

/// Output columns `j..j+valid` of all `R` rows, in `G` groups of 8 (the last group
/// partial where `CLAMP`: `valid < 8·G`, its missing columns read as the last one and
/// never stored).
///
/// # Safety
/// As [`skinny_t_f32`], with `j + valid ≤ n`, `valid ≥ 1`, `R == s.m`, and `valid` =
/// `8·G` unless `CLAMP`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn cols<const R: usize, const G: usize, const CLAMP: bool>(
    s: &Skinny<f32>,
    j: usize,
    valid: usize,
) {
    // Lanes of group g that hold output columns (all 8 but in a last, partial group).
    let mask = |g: usize| {
        let v = valid.saturating_sub(8 * g).min(8) as i32;
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(v),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    };
    let mut total = [[_mm256_setzero_ps(); R]; G];
    let mut b0 = 0;
    while b0 < s.k {
        let b1 = (b0 + super::K_BLOCK).min(s.k);
        // SAFETY: steps b0..b1 ≤ k of columns j..j+8·G, as `block` requires.
        let acc = unsafe { block::<R, G, CLAMP>(s, j, valid - 1, b0, b1) };
        for (g, (tg, ag)) in total.iter_mut().zip(acc).enumerate() {
            // The first block's sums plus the bias (none: alone), later ones' plus the
            // total so far.
            let add = if b0 > 0 {
                None
            } else if s.bias.is_null() {
                Some(None)
            } else {
                // SAFETY: the valid columns from j+8g of the bias (n elements).
                Some(Some(unsafe {
                    _mm256_maskload_ps(s.bias.add(j + 8 * g), mask(g))
                }))
            };
            for (t, a) in tg.iter_mut().zip(ag) {
                *t = match add {
                    None => _mm256_add_ps(a, *t),
                    Some(None) => a,
                    Some(Some(b)) => _mm256_add_ps(a, b),
                };
            }
        }
        b0 = b1;
    }
    for (g, tg) in total.iter().enumerate() {
        for (r, a) in tg.iter().enumerate() {
            // SAFETY: the valid columns from j+8g of row r < m of `out` are inside the
            // caller's view; the masked store touches no other lane.
            unsafe {
                let o = s.out.offset(r as isize * s.ldo).add(j + 8 * g);
                if valid >= 8 * (g + 1) {
                    _mm256_storeu_ps(o, *a);
                } else {
                    _mm256_maskstore_ps(o, mask(g), *a);
                }
            }
        }
    }
}

/// One K block's sums (steps `b0..b1`, from zero) of columns `j..j+8·G` for the `R`
/// rows: 8 steps of each group of 8 columns at a time through the transpose, the last
/// steps gathered.
///
/// # Safety
/// As [`cols`], with `b1 ≤ k` and `b1 − b0` a multiple of 8 unless `b1 == k`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block<const R: usize, const G: usize, const CLAMP: bool>(
    s: &Skinny<f32>,
    j: usize,
    last: usize,
    b0: usize,
    b1: usize,
) -> [[__m256; R]; G] {
    let mut acc = [[_mm256_setzero_ps(); R]; G];
    let ld = s.ldw;
    // SAFETY: steps below b1 ≤ k of columns j..j+8·G ≤ n (clamped to the last column
    // where `CLAMP`) and of rows < R of `x` (steps contiguous) are inside the views, as
    // are the prefetched steps (below k); the intrinsics need avx2 and fma, enabled here.
    unsafe {
        let w0 = s.w.offset(j as isize * ld);
        let mut p = b0;
        while p + 8 <= b1 {
            // The groups' tiles one after another: each group's 8 multiply-adds are one
            // chain, and the next group's loads and transposes overlap it.
            for (g, ag) in acc.iter_mut().enumerate() {
                let mut w = [_mm256_setzero_ps(); 8];
                for (c, v) in w.iter_mut().enumerate() {
                    let at = w0.offset(column::<CLAMP>(8 * g + c, last) * ld).add(p);
                    if p.is_multiple_of(16) && p + PREFETCH_AHEAD < s.k {
                        // (Only inside the column: the address stays in the weight.)
                        _mm_prefetch::<_MM_HINT_T0>(at.add(PREFETCH_AHEAD).cast());
                    }
                    *v = _mm256_loadu_ps(at);
                }
                transpose8(&mut w);
                for (t, wt) in w.iter().enumerate() {
                    for (r, a) in ag.iter_mut().enumerate() {
                        let x = *s.x.offset(r as isize * s.rsx).add(p + t);
                        *a = _mm256_fmadd_ps(_mm256_set1_ps(x), *wt, *a);
                    }
                }
            }
            p += 8;
        }
        while p < b1 {
            for (g, ag) in acc.iter_mut().enumerate() {
                let at = |c: usize| *w0.offset(column::<CLAMP>(8 * g + c, last) * ld).add(p);
                let wt = _mm256_setr_ps(at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7));
                for (r, a) in ag.iter_mut().enumerate() {
                    let x = *s.x.offset(r as isize * s.rsx).add(p);
                    *a = _mm256_fmadd_ps(_mm256_set1_ps(x), wt, *a);
                }
            }
            p += 1;
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crate's order for one output, scalar: blocks of `K_BLOCK` fused steps from
    /// zero, the first plus the bias, each later one plus the total.
    fn order(x: &[f32], col: &[f32], bias: Option<f32>) -> f32 {
        let mut total: Option<f32> = None;
        for (xb, wb) in x
            .chunks(crate::simd::K_BLOCK)
            .zip(col.chunks(crate::simd::K_BLOCK))
        {
            let s = xb.iter().zip(wb).fold(0.0f32, |s, (a, b)| a.mul_add(*b, s));
            total = Some(match (total, bias) {
                (None, Some(b)) => s + b,
                (None, None) => s,
                (Some(t), _) => s + t,
            });
        }
        total.unwrap()
    }

    /// Every row count, column counts across whole groups, grouped rounds and partial
    /// tails, step counts around the 8-step tiles and the K blocks, strides that do and
    /// do not trigger the grouping, with and without a bias; output padding untouched.
    #[test]
    fn matches_the_scalar_order_at_every_edge() {
        if !(std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"))
        {
            return;
        }
        let mut checked = 0;
        for m in 1..=MAX_ROWS {
            for n in [1, 5, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 64, 71] {
                for k in [1usize, 2, 3, 7, 8, 9, 16, 17, 255, 256, 257, 300, 513] {
                    for ldw in [k, k + 3, k.next_multiple_of(512usize)] {
                        let w: Vec<f32> = (0..n * ldw)
                            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 33.0)
                            .collect();
                        let x: Vec<f32> = (0..m * (k + 1))
                            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 29.0)
                            .collect();
                        let b: Vec<f32> = (0..n).map(|j| j as f32 * 0.37 - 1.1).collect();
                        for bias in [true, false] {
                            let ldo = n + 2;
                            let mut out = vec![f32::NAN; m * ldo];
                            let s = Skinny {
                                m,
                                k,
                                n,
                                x: x.as_ptr(),
                                rsx: (k + 1) as isize,
                                csx: 1,
                                w: w.as_ptr(),
                                ldw: ldw as isize,
                                out: out.as_mut_ptr(),
                                ldo: ldo as isize,
                                bias: if bias { b.as_ptr() } else { core::ptr::null() },
                                add_out: false,
                                part: core::ptr::null_mut(),
                            };
                            // SAFETY: the CPU has avx2 and fma; the buffers hold the
                            // extents `s` describes.
                            unsafe { skinny_t_f32(&s) };
                            for i in 0..m {
                                for j in 0..n {
                                    let want = order(
                                        &x[i * (k + 1)..i * (k + 1) + k],
                                        &w[j * ldw..j * ldw + k],
                                        bias.then(|| b[j]),
                                    );
                                    let got = out[i * ldo + j];
                                    assert_eq!(
                                        got.to_bits(),
                                        want.to_bits(),
                                        "m {m} n {n} k {k} ldw {ldw} bias {bias}: ({i}, {j}) {got} vs {want}"
                                    );
                                }
                                assert!(out[i * ldo + n].is_nan() && out[i * ldo + n + 1].is_nan());
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 1000);
    }
}
