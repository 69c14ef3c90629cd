//! Keras-layout and PyTorch-layout weights: the same numbers stored `(in, units)`
//! row-major (Keras's kernel) or `(units, in)` row-major and handed in as its `.t()` view
//! (PyTorch's `nn.Linear.weight`).
//!
//! Every path gives both layouts **bitwise-equal** results, `f32` and `f64`, for any
//! thread count:
//! - the GEMM path (`M > 16` and `M·K·N > 16384`; also `f32` layers of at most 16 units
//!   from 2 rows, which `dense_forward` packs per call on CPUs with the packed
//!   microkernels) and the packed path (`PackedKernel` + `dense_forward_packed`) copy
//!   both into the same packed panels before the same kernel runs;
//! - the tiny (`M·K·N ≤ 16384`) and skinny (`M ≤ 16`; `M ≤ 32` for weights of `2²²`
//!   elements or more) paths pack a PyTorch-layout weight a few columns at a time into
//!   the Keras layout their kernel reads (a transpose moves values, it computes
//!   nothing).
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
        let torch = common::transposed(&keras, k, n);
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

/// Every shape, activation and thread count: both layouts the Keras layout's bits on
/// one thread, within the reference's bound. Returns the runs compared.
fn layouts_are_bitwise_equal<T: Element>(
    shapes: &[(usize, usize, usize)],
    seed: u64,
    threads: &[usize],
) -> usize {
    let mut checked = 0;
    for (i, &(m, k, n)) in shapes.iter().enumerate() {
        let c = Case::<T>::new(m, k, n, seed + i as u64);
        for act in ACTS {
            let want = c.forward(c.keras(), act, 1);
            check_dense(c.x(), c.keras(), Some(&c.b), act, &want)
                .unwrap_or_else(|e| panic!("{}: {m}x{k}x{n} {act}: {e}", T::NAME));
            for &t in threads {
                for (name, kernel) in [("keras", c.keras()), ("torch", c.torch())] {
                    let y = c.forward(kernel, act, t);
                    assert!(
                        bits(&y) == bits(&want),
                        "{}: {m}x{k}x{n} {act}, {name} layout on {t} thread(s): not the Keras layout's bits on 1",
                        T::NAME
                    );
                    checked += 1;
                }
            }
        }
    }
    checked
}

fn gemm_path_is_bitwise_equal<T: Element>() {
    let checked = layouts_are_bitwise_equal::<T>(&GEMM_SHAPES, 100, &[1, 2]);
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

/// The tiny and skinny paths, on 1, 2 and 3 threads. (Until the skinny path read the
/// PyTorch layout through a transpose, its dot kernel summed lanes apart: 80% of these
/// outputs differed in their last bits.)
fn small_paths_are_bitwise_equal<T: Element>() {
    let checked = layouts_are_bitwise_equal::<T>(&SMALL_SHAPES, 300, &[1, 2, 3]);
    assert_eq!(checked, SMALL_SHAPES.len() * ACTS.len() * 6);
}

#[test]
fn tiny_and_skinny_paths_keras_and_torch_layouts_are_bitwise_equal_f32() {
    small_paths_are_bitwise_equal::<f32>();
}

#[test]
fn tiny_and_skinny_paths_keras_and_torch_layouts_are_bitwise_equal_f64() {
    small_paths_are_bitwise_equal::<f64>();
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
