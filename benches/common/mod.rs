//! Helpers shared by the benches and the roofline example (`#[path]`-included there):
//! deterministic data, bare sgemm, and a memory-bound read loop.
#![allow(dead_code)]

use std::hint::black_box;

/// `len` values in [−0.5, 0.5), deterministic per `seed`.
pub fn data(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32
                / (1u32 << 24) as f32
                - 0.5
        })
        .collect()
}

/// Bare matrixmultiply sgemm: `out ← x·w + beta·out`, `x` row-major `m×k`, `w` a `k×n`
/// view with strides `(rsw, csw)`, `out` row-major `m×n`.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    (m, k, n): (usize, usize, usize),
    x: &[f32],
    w: &[f32],
    (rsw, csw): (isize, isize),
    beta: f32,
    out: &mut [f32],
) {
    assert!(x.len() >= m * k && w.len() >= k * n && out.len() >= m * n);
    // SAFETY: x is m×k row-major, w a k×n view whose strides the callers derive from its
    // own row-major storage (so every offset is inside it), out m×n row-major; the
    // slices are distinct borrows, so nothing aliases.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            x.as_ptr(),
            k as isize,
            1,
            w.as_ptr(),
            rsw,
            csw,
            beta,
            out.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// Reads `v` as four sequential streams at once (the skinny kernels read four weight
/// rows side by side; one stream alone measured ~25% less here), summing integers
/// (one-cycle adds, many in flight) so the loop waits on memory, not on the adder.
pub fn sum_four_streams(v: &[u32]) -> u32 {
    let q = v.len() / 4;
    let v = black_box(v);
    let (a, r) = v.split_at(q);
    let (b, r) = r.split_at(q);
    let (c, d) = r.split_at(q);
    let mut acc = [0u32; 16];
    for (((a, b), c), d) in a
        .chunks_exact(4)
        .zip(b.chunks_exact(4))
        .zip(c.chunks_exact(4))
        .zip(d.chunks_exact(4))
    {
        for i in 0..4 {
            acc[i] = acc[i].wrapping_add(a[i]);
            acc[4 + i] = acc[4 + i].wrapping_add(b[i]);
            acc[8 + i] = acc[8 + i].wrapping_add(c[i]);
            acc[12 + i] = acc[12 + i].wrapping_add(d[i]);
        }
    }
    acc.iter().fold(0u32, |s, &a| s.wrapping_add(a))
}
