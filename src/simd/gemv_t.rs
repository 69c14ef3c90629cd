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

/// Steps ahead of the loads each column is prefetched (a hint: the address may lie past
/// the weight, which a prefetch never faults on).
const PREFETCH_AHEAD: usize = 64;

/// `out = bias + x·w` in the crate's K-sum order, `w(p, j)` at `w + j·ldw + p`, for the
/// first `8·⌊n/8⌋` columns (the caller handles the rest), at most [`MAX_ROWS`] rows,
/// `x`'s steps contiguous (`s.csx == 1`; `s.add_out` and `s.part` unused).
///
/// # Safety
/// The CPU supports `avx2` and `fma`; `s` describes valid views for its extents (the
/// weight read as above), `out` aliasing neither input; `s.m ≤ MAX_ROWS`, `s.csx == 1`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn skinny_t_f32(s: &Skinny<f32>) {
    debug_assert!(s.m <= MAX_ROWS && s.csx == 1);
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
    // SAFETY: (every call) columns j..j+8·G ≤ full ≤ n, rows below m ≤ MAX_ROWS.
    unsafe {
        while j + 8 * g <= full {
            match (s.m, g) {
                (1, GROUPS_ONE_ROW) => cols::<1, GROUPS_ONE_ROW>(s, j),
                (2, 2) => cols::<2, 2>(s, j),
                (1, _) => cols::<1, 1>(s, j),
                (2, _) => cols::<2, 1>(s, j),
                (3, _) => cols::<3, 1>(s, j),
                _ => cols::<4, 1>(s, j),
            }
            j += 8 * g;
        }
        while j + 8 <= full {
            match s.m {
                1 => cols::<1, 1>(s, j),
                2 => cols::<2, 1>(s, j),
                3 => cols::<3, 1>(s, j),
                _ => cols::<4, 1>(s, j),
            }
            j += 8;
        }
    }
}

/// Output columns `j..j+8·G` of all `R` rows.
///
/// # Safety
/// As [`skinny_t_f32`], with `j + 8·G ≤ n` and `R == s.m`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn cols<const R: usize, const G: usize>(s: &Skinny<f32>, j: usize) {
    let mut total = [[_mm256_setzero_ps(); R]; G];
    let mut b0 = 0;
    while b0 < s.k {
        let b1 = (b0 + super::K_BLOCK).min(s.k);
        // SAFETY: steps b0..b1 ≤ k of columns j..j+8·G, as `block` requires.
        let acc = unsafe { block::<R, G>(s, j, b0, b1) };
        for (g, (tg, ag)) in total.iter_mut().zip(acc).enumerate() {
            // The first block's sums plus the bias (none: alone), later ones' plus the
            // total so far.
            let add = if b0 > 0 {
                None
            } else if s.bias.is_null() {
                Some(None)
            } else {
                // SAFETY: columns j+8g..j+8g+8 ≤ n of the bias (n elements).
                Some(Some(unsafe { _mm256_loadu_ps(s.bias.add(j + 8 * g)) }))
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
            // SAFETY: columns j+8g..j+8g+8 ≤ n of row r < m of `out` are inside the
            // caller's view.
            unsafe { _mm256_storeu_ps(s.out.offset(r as isize * s.ldo).add(j + 8 * g), *a) };
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
unsafe fn block<const R: usize, const G: usize>(
    s: &Skinny<f32>,
    j: usize,
    b0: usize,
    b1: usize,
) -> [[__m256; R]; G] {
    let mut acc = [[_mm256_setzero_ps(); R]; G];
    let ld = s.ldw;
    // SAFETY: steps below b1 ≤ k of columns j..j+8·G ≤ n and of rows < R of `x` (steps
    // contiguous) are inside the views; the intrinsics need avx2 and fma, enabled here.
    unsafe {
        let w0 = s.w.offset(j as isize * ld);
        let mut p = b0;
        while p + 8 <= b1 {
            // The groups' tiles one after another: each group's 8 multiply-adds are one
            // chain, and the next group's loads and transposes overlap it.
            for (g, ag) in acc.iter_mut().enumerate() {
                let wg = w0.offset(8 * g as isize * ld);
                let mut w = [_mm256_setzero_ps(); 8];
                for (c, v) in w.iter_mut().enumerate() {
                    let at = wg.offset(c as isize * ld).add(p);
                    if p.is_multiple_of(16) {
                        _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(PREFETCH_AHEAD).cast());
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
                let wg = w0.offset(8 * g as isize * ld).add(p);
                let wt = _mm256_setr_ps(
                    *wg,
                    *wg.offset(ld),
                    *wg.offset(2 * ld),
                    *wg.offset(3 * ld),
                    *wg.offset(4 * ld),
                    *wg.offset(5 * ld),
                    *wg.offset(6 * ld),
                    *wg.offset(7 * ld),
                );
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
