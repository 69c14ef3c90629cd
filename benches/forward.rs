//! The shape sweep: `dense_forward` side by side with bare matrixmultiply GEMM, the
//! unfused composition a user would write (GEMM, then a scalar bias + activation loop)
//! and, for small shapes, the naive `f64` reference, on one thread.
//!
//! Shapes: `M ∈ {1, 8, 32, 256, 1024}` at `K = N = 1024`, plus 1×784×128, 1×4096×4096,
//! 8×4096×4096, 32×4×7, 32×512×512, 64×1024×1024, 256×1024×4096 and 2048³; activations
//! linear, relu, gelu, sigmoid, softmax; `f32` and `f64`; the weight in Keras layout
//! `(in, units)` and in PyTorch layout `(units, in)` seen transposed. Throughput is
//! counted in FLOPs (`2·M·K·N`), so criterion's "elem/s" reads as FLOP/s.
//!
//! Groups are named `{dtype}_{M}x{K}x{N}_{layout}`; inside, `bare_gemm`,
//! `dense_forward/{act}`, `unfused/{act}` and `naive_f64/{act}`. The whole sweep takes
//! about an hour; pick parts with criterion's filter:
//!
//! ```sh
//! cargo bench --bench forward                                   # everything
//! cargo bench --bench forward -- 'f32_32x512x512_keras'         # one group
//! cargo bench --bench forward -- 'f32_.*_keras/(bare|dense_forward/relu)'
//! ```
//!
//! `DENSE_BENCH_QUICK=1` shortens every measurement (a smoke run, not for figures).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dense_kernel::{dense_forward_into, reference, Activation, MatMut, MatRef};
use std::hint::black_box;
use std::time::Duration;

mod common;
use common::{data_as, unfused, BenchFloat};

/// The issue's sweep: the M sweep at 1024×1024, then the named shapes.
const SHAPES: [(usize, usize, usize); 13] = [
    (1, 1024, 1024),
    (8, 1024, 1024),
    (32, 1024, 1024),
    (256, 1024, 1024),
    (1024, 1024, 1024),
    (1, 784, 128),
    (1, 4096, 4096),
    (8, 4096, 4096),
    (32, 4, 7),
    (32, 512, 512),
    (64, 1024, 1024),
    (256, 1024, 4096),
    (2048, 2048, 2048),
];

const ACTS: [Activation; 5] = [
    Activation::Linear,
    Activation::Relu,
    Activation::Gelu,
    Activation::Sigmoid,
    Activation::Softmax,
];

/// The naive reference runs only where one call stays around ten milliseconds.
const NAIVE_MAX_MACS: usize = 1 << 23;

fn group<T: BenchFloat>(c: &mut Criterion, (m, k, n): (usize, usize, usize), torch: bool) {
    let (x, w, b) = (
        data_as::<T>(m * k, 1),
        data_as::<T>(k * n, 2),
        data_as::<T>(n, 3),
    );
    let mut out = vec![T::zero(); m * n];
    // The same storage seen either as Keras (K, N) row-major or as PyTorch (N, K)
    // row-major transposed: the element strides of the K × N view.
    let (rsw, csw) = if torch {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    let kernel = || {
        if torch {
            MatRef::from_slice(&w, n, k).unwrap().t()
        } else {
            MatRef::from_slice(&w, k, n).unwrap()
        }
    };
    let layout = if torch { "torch" } else { "keras" };
    let macs = m * k * n;
    let quick = std::env::var_os("DENSE_BENCH_QUICK").is_some();
    let mut g = c.benchmark_group(format!("{}_{m}x{k}x{n}_{layout}", T::NAME));
    g.throughput(Throughput::Elements(2 * macs as u64));
    if quick {
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(20))
            .measurement_time(Duration::from_millis(50));
    } else if macs >= 1 << 30 {
        g.sample_size(10)
            .sampling_mode(criterion::SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(8));
    } else {
        g.sample_size(20)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
    }
    // One thread for every contender: matrixmultiply's GEMM is single-threaded here.
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    g.bench_function("bare_gemm", |bch| {
        bch.iter(|| {
            T::bare_gemm(
                (m, k, n),
                black_box(&x),
                &w,
                (rsw, csw),
                T::zero(),
                &mut out,
            )
        })
    });
    for act in ACTS {
        g.bench_function(BenchmarkId::new("dense_forward", act), |bch| {
            one.install(|| {
                bch.iter(|| {
                    dense_forward_into(
                        MatRef::from_slice(black_box(&x), m, k).unwrap(),
                        kernel(),
                        Some(&b),
                        act,
                        MatMut::from_slice(&mut out, m, n).unwrap(),
                    )
                    .unwrap()
                })
            })
        });
        g.bench_function(BenchmarkId::new("unfused", act), |bch| {
            bch.iter(|| unfused((m, k, n), black_box(&x), &w, (rsw, csw), &b, act, &mut out))
        });
        if macs <= NAIVE_MAX_MACS {
            g.bench_function(BenchmarkId::new("naive_f64", act), |bch| {
                bch.iter(|| {
                    reference::dense_reference(
                        MatRef::from_slice(black_box(&x), m, k).unwrap(),
                        kernel(),
                        Some(&b),
                        act,
                    )
                    .unwrap()
                })
            });
        }
    }
    g.finish();
}

fn sweep(c: &mut Criterion) {
    for shape in SHAPES {
        for torch in [false, true] {
            group::<f32>(c, shape, torch);
            group::<f64>(c, shape, torch);
        }
    }
}

criterion_group!(benches, sweep);
criterion_main!(benches);
