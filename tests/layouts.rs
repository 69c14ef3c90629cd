//! Keras-layout and PyTorch-layout weights: the same numbers stored `(in, units)`
//! row-major (Keras's kernel) or `(units, in)` row-major and handed in as its `.t()` view
//! (PyTorch's `nn.Linear.weight`).
//!
//! - On the GEMM path (`M > 16` and `M·K·N > 16384`; also `f32` layers of at most 16
//!   units from 2 rows, which `dense_forward` packs per call on CPUs with the packed
//!   microkernels) and the packed path (`PackedKernel` + `dense_forward_packed`, any
//!   `M`), both layouts give **bitwise-equal** results, `f32` and `f64`, for any thread
//!   count: both are copied into the same packed panels before the same kernel runs.
//! - On the tiny (`M·K·N ≤ 16384`) and skinny (`M ≤ 16`; `M ≤ 32` for weights of
//!   `2²²` elements or more) paths with `N > 1`, the PyTorch layout has its own kernel:
//!   a dot product whose lanes (16, 8 or 4) each sum every lane-th term with fused
//!   multiply-adds, 128 terms per lane at a time, the lanes then added in `f64` and the
//!   bias last with one rounding; and below `K = 16` a plain loop that multiplies and
//!   adds without fusing. The Keras layout sums `K` in the crate's blocked order with
//!   fused multiply-adds (docs/ACCURACY.md). The results then differ in the last bits:
//!   on the shapes below (AVX-512), 80% of the outputs, by at most 1.9·u·(Σ|x·w| + |b|)
//!   in `f32` and 2.4·u·(…) in `f64` (`u` = 2⁻²⁴, 2⁻⁵³; printed with `--nocapture`),
//!   the dot kernel being the more accurate of the two; both are held to the
//!   reference's bound here.
//!
//! Neither layout's result depends on the thread count.

use dense_kernel::reference::check_dense;
use dense_kernel::{
    dense_forward_into, dense_forward_packed, Activation, Element, MatMut, MatRef, PackedKernel,
};

mod common;
use common::Rng;

const ACTS: [Activation; 4] = [
    Activation::Linear,
    Activation::Relu,
    Activation::Gelu,
    Activation::Softmax,
];

/// `x` (`m × k`), the weight in both storages (Keras `(k, n)`, PyTorch `(n, k)`) and a
/// bias, inexact values so that every product and sum rounds.
struct Case<T> {
    m: usize,
    k: usize,
    n: usize,
    x: Vec<T>,
    keras: Vec<T>,
    torch: Vec<T>,
    b: Vec<T>,
}

impl<T: Element> Case<T> {
    fn new(m: usize, k: usize, n: usize, seed: u64) -> Self {
        let mut rng = Rng(seed);
        let x = rng.vec::<T>(m * k, 1.0);
        let keras = rng.vec::<T>(k * n, 1.0);
        let b = rng.vec::<T>(n, 0.5);
        let mut torch = vec![T::zero(); k * n];
        for p in 0..k {
            for j in 0..n {
                torch[j * k + p] = keras[p * n + j];
            }
        }
        Case {
            m,
            k,
            n,
            x,
            keras,
            torch,
            b,
        }
    }

    fn x(&self) -> MatRef<'_, T> {
        MatRef::from_slice(&self.x, self.m, self.k).unwrap()
    }

    fn keras(&self) -> MatRef<'_, T> {
        MatRef::from_slice(&self.keras, self.k, self.n).unwrap()
    }

    fn torch(&self) -> MatRef<'_, T> {
        MatRef::from_slice(&self.torch, self.n, self.k).unwrap().t()
    }

    /// `dense_forward_into` on a pool of `threads` threads.
    fn forward(&self, kernel: MatRef<'_, T>, act: Activation, threads: usize) -> Vec<T> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut y = vec![T::nan(); self.m * self.n];
        pool.install(|| {
            dense_forward_into(
                self.x(),
                kernel,
                Some(&self.b),
                act,
                MatMut::from_slice(&mut y, self.m, self.n).unwrap(),
            )
        })
        .unwrap();
        y
    }
}

fn bits<T: Element>(y: &[T]) -> Vec<u64> {
    y.iter().map(|v| v.widen().to_bits()).collect()
}

/// Shapes on the GEMM path (and narrow layers packed per call), `K` inside, at and
/// across the 256-step blocks.
const GEMM_SHAPES: [(usize, usize, usize); 8] = [
    (17, 40, 33),
    (20, 256, 40),
    (33, 257, 64),
    (40, 600, 100),
    (64, 513, 17),
    (24, 1100, 48),
    (100, 300, 10),
    (64, 700, 16),
];

/// Shapes on the tiny and skinny paths.
const SMALL_SHAPES: [(usize, usize, usize); 7] = [
    (32, 4, 7),
    (3, 8, 5),
    (4, 64, 32),
    (2, 300, 20),
    (1, 784, 128),
    (8, 512, 64),
    (16, 600, 40),
];

fn gemm_path_is_bitwise_equal<T: Element>() {
    let mut checked = 0;
    for (i, &(m, k, n)) in GEMM_SHAPES.iter().enumerate() {
        let c = Case::<T>::new(m, k, n, 100 + i as u64);
        for act in ACTS {
            let want = c.forward(c.keras(), act, 1);
            check_dense(c.x(), c.keras(), Some(&c.b), act, &want)
                .unwrap_or_else(|e| panic!("{}: {m}x{k}x{n} {act}: {e}", T::NAME));
            for threads in [1, 2] {
                for (name, kernel) in [("keras", c.keras()), ("torch", c.torch())] {
                    let y = c.forward(kernel, act, threads);
                    assert!(
                        bits(&y) == bits(&want),
                        "{}: {m}x{k}x{n} {act}, {name} layout on {threads} thread(s): not the Keras layout's bits on 1",
                        T::NAME
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, GEMM_SHAPES.len() * ACTS.len() * 4);
}

#[test]
fn gemm_path_keras_and_torch_layouts_are_bitwise_equal_f32() {
    gemm_path_is_bitwise_equal::<f32>();
}

#[test]
fn gemm_path_keras_and_torch_layouts_are_bitwise_equal_f64() {
    gemm_path_is_bitwise_equal::<f64>();
}

#[test]
fn packed_path_keras_and_torch_layouts_are_bitwise_equal() {
    // Every M, the skinny paths' included: the packed path has one kernel for both.
    for (i, &(m, k, n)) in SMALL_SHAPES.iter().chain(&GEMM_SHAPES).enumerate() {
        let c = Case::<f32>::new(m, k, n, 200 + i as u64);
        let pk = PackedKernel::new(c.keras(), Some(&c.b)).unwrap();
        let pt = PackedKernel::new(c.torch(), Some(&c.b)).unwrap();
        for act in ACTS {
            let mut want = vec![f32::NAN; m * n];
            dense_forward_packed(
                c.x(),
                &pk,
                act,
                MatMut::from_slice(&mut want, m, n).unwrap(),
            )
            .unwrap();
            check_dense(c.x(), c.keras(), Some(&c.b), act, &want)
                .unwrap_or_else(|e| panic!("packed {m}x{k}x{n} {act}: {e}"));
            for threads in [1, 2] {
                for (name, p) in [("keras", &pk), ("torch", &pt)] {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let mut y = vec![f32::NAN; m * n];
                    pool.install(|| {
                        dense_forward_packed(
                            c.x(),
                            p,
                            act,
                            MatMut::from_slice(&mut y, m, n).unwrap(),
                        )
                    })
                    .unwrap();
                    assert!(
                        bits(&y) == bits(&want),
                        "packed {m}x{k}x{n} {act}, {name} layout on {threads} thread(s)"
                    );
                }
            }
        }
    }
}

/// The tiny and skinny paths: each layout the same bits on 1 and 2 threads, both within
/// the reference's bound (their bits may differ from each other: see the module docs;
/// the largest difference of the pre-activations, in units of `u·(Σ|x·w| + |b|)`, is
/// printed).
fn small_paths_agree_within_bound<T: Element>() {
    let u = T::epsilon().widen() / 2.0;
    let (mut differ, mut total, mut worst) = (0, 0, 0.0f64);
    for (i, &(m, k, n)) in SMALL_SHAPES.iter().enumerate() {
        let c = Case::<T>::new(m, k, n, 300 + i as u64);
        let (a, b) = (
            c.forward(c.keras(), Activation::Linear, 1),
            c.forward(c.torch(), Activation::Linear, 1),
        );
        for e in 0..m * n {
            let (r, j) = (e / n, e % n);
            let s = (0..k).fold(c.b[j].widen().abs(), |s, p| {
                s + (c.x[r * k + p].widen() * c.keras[p * n + j].widen()).abs()
            });
            let d = (a[e].widen() - b[e].widen()).abs() / (u * s);
            worst = worst.max(d);
            differ += usize::from(d > 0.0);
            total += 1;
        }
        for act in ACTS {
            for (name, kernel) in [("keras", c.keras()), ("torch", c.torch())] {
                let one = c.forward(kernel, act, 1);
                let two = c.forward(kernel, act, 2);
                assert!(
                    bits(&one) == bits(&two),
                    "{}: {m}x{k}x{n} {act}, {name} layout: 1 and 2 threads differ",
                    T::NAME
                );
                check_dense(c.x(), kernel, Some(&c.b), act, &one)
                    .unwrap_or_else(|e| panic!("{}: {m}x{k}x{n} {act} {name}: {e}", T::NAME));
            }
        }
    }
    println!(
        "{}, tiny and skinny shapes, linear: {differ} of {total} outputs differ between the layouts, by at most {worst:.2}·u·(Σ|x·w| + |b|)",
        T::NAME
    );
}

#[test]
fn tiny_and_skinny_paths_both_layouts_within_bound_f32() {
    small_paths_agree_within_bound::<f32>();
}

#[test]
fn tiny_and_skinny_paths_both_layouts_within_bound_f64() {
    small_paths_agree_within_bound::<f64>();
}

/// A single unit (`N = 1`): both storages are the same contiguous column, one kernel.
#[test]
fn single_unit_layers_are_bitwise_equal_on_every_path() {
    for (i, &(m, k)) in [(1, 5), (4, 300), (16, 1000), (40, 600), (300, 70)]
        .iter()
        .enumerate()
    {
        let c = Case::<f32>::new(m, k, 1, 400 + i as u64);
        for threads in [1, 2] {
            let (a, b) = (
                c.forward(c.keras(), Activation::Sigmoid, threads),
                c.forward(c.torch(), Activation::Sigmoid, threads),
            );
            assert!(bits(&a) == bits(&b), "{m}x{k}x1 on {threads} thread(s)");
        }
    }
}
