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

/// A square tile that AVX2 transposes in registers.
#[cfg(target_arch = "x86_64")]
pub(super) trait Avx2Tile: Copy {
    /// The tile's edge: 8 `f32`, 4 `f64` (one 256-bit register a row).
    const W: usize;
    /// `dst[p·ldd + c] = src[c·lds + p]` for `c, p < W`.
    ///
    /// # Safety
    /// Those elements are readable and writable; the CPU supports `avx2`.
    unsafe fn tile(src: *const Self, lds: isize, dst: *mut Self, ldd: usize);
}

#[cfg(target_arch = "x86_64")]
impl Avx2Tile for f32 {
    const W: usize = 8;
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn tile(src: *const f32, lds: isize, dst: *mut f32, ldd: usize) {
        // SAFETY: the caller's.
        unsafe { transpose_8x8(src, lds, dst, ldd) }
    }
}

#[cfg(target_arch = "x86_64")]
impl Avx2Tile for f64 {
    const W: usize = 4;
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn tile(src: *const f64, lds: isize, dst: *mut f64, ldd: usize) {
        // SAFETY: each load reads 4 steps of one of the 4 columns, each store 4 columns
        // of one of the 4 rows (the caller's bounds); the intrinsics need avx, enabled
        // here.
        unsafe {
            let r0 = _mm256_loadu_pd(src);
            let r1 = _mm256_loadu_pd(src.offset(lds));
            let r2 = _mm256_loadu_pd(src.offset(2 * lds));
            let r3 = _mm256_loadu_pd(src.offset(3 * lds));
            let (t0, t1) = (_mm256_unpacklo_pd(r0, r1), _mm256_unpackhi_pd(r0, r1));
            let (t2, t3) = (_mm256_unpacklo_pd(r2, r3), _mm256_unpackhi_pd(r2, r3));
            _mm256_storeu_pd(dst, _mm256_permute2f128_pd::<0x20>(t0, t2));
            _mm256_storeu_pd(dst.add(ldd), _mm256_permute2f128_pd::<0x20>(t1, t3));
            _mm256_storeu_pd(dst.add(2 * ldd), _mm256_permute2f128_pd::<0x31>(t0, t2));
            _mm256_storeu_pd(dst.add(3 * ldd), _mm256_permute2f128_pd::<0x31>(t1, t3));
        }
    }
}

/// [`pack_cols_scalar`] with `ldp == 1`, in `W × W` tiles transposed in registers
/// ([`Avx2Tile`]); the steps and columns past the last whole tile element by element.
///
/// # Safety
/// As [`pack_cols_scalar`] with `ldp == 1`; the CPU supports `avx2`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pack_cols_avx2<T: Avx2Tile>(
    src: *const T,
    lds: isize,
    k: usize,
    cols: usize,
    dst: *mut T,
    ldd: usize,
) {
    let w = T::W;
    let mut c = 0;
    while c + w <= cols {
        // SAFETY: columns c..c+w are readable at every step below k, and the
        // destination rows writable at columns c..c+w (the caller's bounds).
        unsafe {
            let (s, d) = (src.offset(c as isize * lds), dst.add(c));
            let mut p = 0;
            while p + w <= k {
                T::tile(s.add(p), lds, d.add(p * ldd), ldd);
                p += w;
            }
            if p < k {
                pack_cols_scalar(s.add(p), lds, 1, k - p, w, d.add(p * ldd), ldd);
            }
        }
        c += w;
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
                        pack_cols_avx2(src32.as_ptr(), l, k, cols, b32.as_mut_ptr(), ldd);
                        pack_cols_scalar(src64.as_ptr(), l, 1, k, cols, a64.as_mut_ptr(), ldd);
                        pack_cols_avx2(src64.as_ptr(), l, k, cols, b64.as_mut_ptr(), ldd);
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
