//! Packing a weight's columns into the layout the skinny kernel reads: rows of `k`
//! steps, each a short run of contiguous columns.
//!
//! `dst[p·ldd + c] = src[c·lds + p·ldp]` for `c < cols`, `p < k`: a transpose when the
//! weight's steps are contiguous (`ldp == 1`, a PyTorch `(units, in)` weight seen
//! transposed), a gather otherwise. Packing moves values and computes nothing, so the
//! result of the product never depends on which routine packed it; AVX2 transposes 8×8
//! (`f32`) or 4×4 (`f64`) tiles where the CPU has it, whatever path the product runs on.

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// The portable packing, any strides.
///
/// # Safety
/// `src + c·lds + p·ldp` is readable for `c < cols`, `p < k`; `dst + p·ldd + c` is
/// writable for the same `c`, `p` and aliases no source element.
// (Never inlined: inlined into the AVX2 routines' tails, its loop versions crowded their
// tile loops into spilling every pointer, at a third of the speed.)
#[inline(never)]
pub(super) unsafe fn pack_cols_scalar<T: Copy>(
    src: *const T,
    lds: isize,
    ldp: isize,
    k: usize,
    cols: usize,
    dst: *mut T,
    ldd: usize,
) {
    for c in 0..cols {
        // SAFETY: column c < cols is readable, step by step, and its destination
        // elements writable (the caller's bounds).
        unsafe {
            let col = src.offset(c as isize * lds);
            for p in 0..k {
                *dst.add(p * ldd + c) = *col.offset(p as isize * ldp);
            }
        }
    }
}

/// [`pack_cols_scalar`] for `f32` with `ldp == 1`, 8×8 tiles transposed in registers:
/// eight columns at a time, 16 steps (one cache line of each column) per round.
///
/// # Safety
/// As [`pack_cols_scalar`] with `ldp == 1`; the CPU supports `avx2`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pack_cols_f32_avx2(
    src: *const f32,
    lds: isize,
    k: usize,
    cols: usize,
    dst: *mut f32,
    ldd: usize,
) {
    let mut c = 0;
    while c + 8 <= cols {
        let mut p = 0;
        while p + 8 <= k {
            // SAFETY: columns c..c+8 are readable at steps p..p+8 and the destination
            // rows p..p+8 writable at columns c..c+8 (the caller's bounds).
            unsafe {
                transpose_8x8(
                    src.offset(c as isize * lds).add(p),
                    lds,
                    dst.add(p * ldd + c),
                    ldd,
                )
            };
            p += 8;
        }
        if p < k {
            // SAFETY: the tail steps of the same columns, as above.
            unsafe {
                pack_cols_scalar(
                    src.offset(c as isize * lds).add(p),
                    lds,
                    1,
                    k - p,
                    8,
                    dst.add(p * ldd + c),
                    ldd,
                )
            };
        }
        c += 8;
    }
    if c < cols {
        // SAFETY: the last columns, as above.
        unsafe {
            pack_cols_scalar(
                src.offset(c as isize * lds),
                lds,
                1,
                k,
                cols - c,
                dst.add(c),
                ldd,
            )
        };
    }
}

/// `dst[p·ldd + c] = src[c·lds + p]` for `c, p < 8`.
///
/// # Safety
/// Those elements are readable and writable; the CPU supports `avx2`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn transpose_8x8(src: *const f32, lds: isize, dst: *mut f32, ldd: usize) {
    // SAFETY: each load reads 8 steps of one of the 8 columns, each store 8 columns of
    // one of the 8 rows (the caller's bounds); the intrinsics need avx, enabled here.
    unsafe {
        let mut r = [_mm256_setzero_ps(); 8];
        for (c, v) in r.iter_mut().enumerate() {
            *v = _mm256_loadu_ps(src.offset(c as isize * lds));
        }
        transpose8(&mut r);
        for (p, v) in r.iter().enumerate() {
            _mm256_storeu_ps(dst.add(p * ldd), *v);
        }
    }
}

/// Transposes 8 vectors of 8 lanes in registers: lane `p` of vector `c` becomes lane `c`
/// of vector `p`.
///
/// # Safety
/// The CPU supports `avx2`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn transpose8(r: &mut [__m256; 8]) {
    // Pairs of rows interleaved: (r0 r1) at lanes 0,1 | 4,5 and 2,3 | 6,7.
    let (t0, t1) = (
        _mm256_unpacklo_ps(r[0], r[1]),
        _mm256_unpackhi_ps(r[0], r[1]),
    );
    let (t2, t3) = (
        _mm256_unpacklo_ps(r[2], r[3]),
        _mm256_unpackhi_ps(r[2], r[3]),
    );
    let (t4, t5) = (
        _mm256_unpacklo_ps(r[4], r[5]),
        _mm256_unpackhi_ps(r[4], r[5]),
    );
    let (t6, t7) = (
        _mm256_unpacklo_ps(r[6], r[7]),
        _mm256_unpackhi_ps(r[6], r[7]),
    );
    // Four rows at one lane per 128-bit half: lanes 0|4, 1|5, 2|6, 3|7.
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    // Rows 0–3 and 4–7 of one lane joined.
    r[0] = _mm256_permute2f128_ps::<0x20>(u0, u4);
    r[1] = _mm256_permute2f128_ps::<0x20>(u1, u5);
    r[2] = _mm256_permute2f128_ps::<0x20>(u2, u6);
    r[3] = _mm256_permute2f128_ps::<0x20>(u3, u7);
    r[4] = _mm256_permute2f128_ps::<0x31>(u0, u4);
    r[5] = _mm256_permute2f128_ps::<0x31>(u1, u5);
    r[6] = _mm256_permute2f128_ps::<0x31>(u2, u6);
    r[7] = _mm256_permute2f128_ps::<0x31>(u3, u7);
}

/// [`pack_cols_scalar`] for `f64` with `ldp == 1`, 4×4 tiles transposed in registers.
///
/// # Safety
/// As [`pack_cols_scalar`] with `ldp == 1`; the CPU supports `avx2`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pack_cols_f64_avx2(
    src: *const f64,
    lds: isize,
    k: usize,
    cols: usize,
    dst: *mut f64,
    ldd: usize,
) {
    let mut c = 0;
    while c + 4 <= cols {
        let mut p = 0;
        while p + 4 <= k {
            // SAFETY: columns c..c+4 are readable at steps p..p+4 and the destination
            // rows p..p+4 writable at columns c..c+4 (the caller's bounds); the
            // intrinsics need avx, enabled here.
            unsafe {
                let s = src.offset(c as isize * lds).add(p);
                let r0 = _mm256_loadu_pd(s);
                let r1 = _mm256_loadu_pd(s.offset(lds));
                let r2 = _mm256_loadu_pd(s.offset(2 * lds));
                let r3 = _mm256_loadu_pd(s.offset(3 * lds));
                let (t0, t1) = (_mm256_unpacklo_pd(r0, r1), _mm256_unpackhi_pd(r0, r1));
                let (t2, t3) = (_mm256_unpacklo_pd(r2, r3), _mm256_unpackhi_pd(r2, r3));
                let d = dst.add(p * ldd + c);
                _mm256_storeu_pd(d, _mm256_permute2f128_pd::<0x20>(t0, t2));
                _mm256_storeu_pd(d.add(ldd), _mm256_permute2f128_pd::<0x20>(t1, t3));
                _mm256_storeu_pd(d.add(2 * ldd), _mm256_permute2f128_pd::<0x31>(t0, t2));
                _mm256_storeu_pd(d.add(3 * ldd), _mm256_permute2f128_pd::<0x31>(t1, t3));
            }
            p += 4;
        }
        if p < k {
            // SAFETY: the tail steps of the same columns, as above.
            unsafe {
                pack_cols_scalar(
                    src.offset(c as isize * lds).add(p),
                    lds,
                    1,
                    k - p,
                    4,
                    dst.add(p * ldd + c),
                    ldd,
                )
            };
        }
        c += 4;
    }
    if c < cols {
        // SAFETY: the last columns, as above.
        unsafe {
            pack_cols_scalar(
                src.offset(c as isize * lds),
                lds,
                1,
                k,
                cols - c,
                dst.add(c),
                ldd,
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every column count and step count around the tile edges, odd strides, against
    /// the scalar packing; distinct values so any misplaced element shows.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_avx2_transposes_equal_the_scalar_packing() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        for cols in 0..=19 {
            for k in 0..=21 {
                for extra in [0, 3] {
                    let lds = k + extra;
                    let ldd = cols + 1;
                    let src32: Vec<f32> = (0..cols * lds + 1).map(|i| i as f32 + 0.5).collect();
                    let src64: Vec<f64> = src32.iter().map(|&v| f64::from(v) * 3.0).collect();
                    let (mut a32, mut b32) =
                        (vec![-1.0f32; k * ldd + 1], vec![-1.0f32; k * ldd + 1]);
                    let (mut a64, mut b64) =
                        (vec![-1.0f64; k * ldd + 1], vec![-1.0f64; k * ldd + 1]);
                    let l = lds as isize;
                    // SAFETY: the buffers hold cols·lds and k·ldd elements; avx2 is present.
                    unsafe {
                        pack_cols_scalar(src32.as_ptr(), l, 1, k, cols, a32.as_mut_ptr(), ldd);
                        pack_cols_f32_avx2(src32.as_ptr(), l, k, cols, b32.as_mut_ptr(), ldd);
                        pack_cols_scalar(src64.as_ptr(), l, 1, k, cols, a64.as_mut_ptr(), ldd);
                        pack_cols_f64_avx2(src64.as_ptr(), l, k, cols, b64.as_mut_ptr(), ldd);
                    }
                    assert_eq!(a32, b32, "f32 cols {cols} k {k} lds {lds}");
                    assert_eq!(a64, b64, "f64 cols {cols} k {k} lds {lds}");
                    for c in 0..cols {
                        for p in 0..k {
                            assert_eq!(a32[p * ldd + c], src32[c * lds + p]);
                        }
                    }
                }
            }
        }
    }
}
