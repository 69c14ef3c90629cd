//! Helpers shared by the benches and the roofline example (`#[path]`-included there):
//! deterministic data, bare sgemm, and a memory-bound read loop.
#![allow(dead_code)]

use dense_kernel::{Activation, Element};
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

/// What the sweep needs of a float type beyond [`Element`]: its bare matrixmultiply GEMM
/// and the `erf` a user's own gelu loop would call (`libm`, as `std` has none).
pub trait BenchFloat: Element {
    /// Bare GEMM, as [`sgemm`] (`dgemm` for `f64`).
    fn bare_gemm(
        mkn: (usize, usize, usize),
        x: &[Self],
        w: &[Self],
        w_strides: (isize, isize),
        beta: Self,
        out: &mut [Self],
    );
    fn erf(self) -> Self;
    fn from_f32(v: f32) -> Self;
}

impl BenchFloat for f32 {
    fn bare_gemm(
        mkn: (usize, usize, usize),
        x: &[f32],
        w: &[f32],
        ws: (isize, isize),
        beta: f32,
        out: &mut [f32],
    ) {
        sgemm(mkn, x, w, ws, beta, out)
    }
    fn erf(self) -> f32 {
        libm::erff(self)
    }
    fn from_f32(v: f32) -> f32 {
        v
    }
}

impl BenchFloat for f64 {
    fn bare_gemm(
        (m, k, n): (usize, usize, usize),
        x: &[f64],
        w: &[f64],
        (rsw, csw): (isize, isize),
        beta: f64,
        out: &mut [f64],
    ) {
        assert!(x.len() >= m * k && w.len() >= k * n && out.len() >= m * n);
        // SAFETY: as in `sgemm`: x is m×k row-major, w a k×n view whose strides the
        // callers derive from its own row-major storage, out m×n row-major, no aliasing.
        unsafe {
            matrixmultiply::dgemm(
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
    fn erf(self) -> f64 {
        libm::erf(self)
    }
    fn from_f32(v: f32) -> f64 {
        f64::from(v)
    }
}

/// [`data`] converted to `T`.
pub fn data_as<T: BenchFloat>(len: usize, seed: u32) -> Vec<T> {
    data(len, seed).into_iter().map(T::from_f32).collect()
}

/// The plain alternative a user would write: bare GEMM, then one scalar loop adding the
/// bias and applying the activation in `T` with the textbook formula (`std`/`libm`
/// functions). Covers the sweep's activations: linear, relu, gelu, sigmoid, softmax.
pub fn unfused<T: BenchFloat>(
    (m, k, n): (usize, usize, usize),
    x: &[T],
    w: &[T],
    w_strides: (isize, isize),
    b: &[T],
    act: Activation,
    out: &mut [T],
) {
    T::bare_gemm((m, k, n), x, w, w_strides, T::zero(), out);
    if n == 0 {
        return;
    }
    let half = T::from_f32(0.5);
    let one = T::one();
    let frac_1_sqrt_2 = T::from_f32(std::f32::consts::FRAC_1_SQRT_2);
    for row in out.chunks_exact_mut(n) {
        for (v, &bj) in row.iter_mut().zip(b) {
            let z = *v + bj;
            *v = match act {
                Activation::Relu => z.max(T::zero()),
                Activation::Gelu => half * z * (one + (z * frac_1_sqrt_2).erf()),
                Activation::Sigmoid => one / (one + (-z).exp()),
                _ => z,
            };
        }
        if act == Activation::Softmax {
            let mx = row.iter().fold(T::neg_infinity(), |a, &v| a.max(v));
            let mut sum = T::zero();
            for v in row.iter_mut() {
                *v = (*v - mx).exp();
                sum = sum + *v;
            }
            for v in row.iter_mut() {
                *v = *v / sum;
            }
        }
    }
}
