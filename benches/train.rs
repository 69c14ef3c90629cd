//! Training speed: one `train_on_batch` step (forward, backward, Adam) of the issue's
//! 784 → 512 → 256 → 10 relu/softmax MLP at batch 128, f32, categorical crossentropy,
//! on 1 thread and on 2; and one layer's backward (`dense_backward`: `dz`, `dx`, `dW`,
//! `db`) against its forward (`dense_forward_packed` on a packed weight) per FLOP.
//! Throughput is in FLOPs, so criterion's "elem/s" reads as FLOP/s: a step counts
//! `2·M·K·N` per GEMM it needs (3 forward, 3 for `dW`, 2 for `dx`: the first layer's
//! input needs no gradient).
//!
//! `cargo bench --bench train`; the peers (PyTorch, Keras on jax): `peers/train_step.py`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dense_kernel::layer::{Dense, Sequential};
use dense_kernel::{
    dense_backward, dense_forward_packed, Activation, Gradients, MatMut, MatRef, PackedKernel,
};
use std::hint::black_box;
use std::time::Duration;

mod common;
use common::data;

const M: usize = 128;
const LAYERS: [(usize, usize); 3] = [(784, 512), (512, 256), (256, 10)];

fn step_flops() -> u64 {
    let gemm = |(k, n): (usize, usize)| 2 * M * k * n;
    let fwd: usize = LAYERS.iter().map(|&l| gemm(l)).sum();
    let dx: usize = LAYERS[1..].iter().map(|&l| gemm(l)).sum();
    (2 * fwd + dx) as u64
}

fn mlp() -> Sequential<f32> {
    Sequential::<f32>::new()
        .add(Dense::new(512).activation(Activation::Relu).input_dim(784))
        .unwrap()
        .add(Dense::new(256).activation(Activation::Relu))
        .unwrap()
        .add(Dense::new(10).activation(Activation::Softmax))
        .unwrap()
}

fn train_step(c: &mut Criterion) {
    let x = data(M * 784, 1);
    let mut y = vec![0.0f32; M * 10];
    for r in 0..M {
        y[r * 10 + (r * 7) % 10] = 1.0;
    }
    let mut g = c.benchmark_group("train_step_mlp_784_512_256_10_b128");
    g.throughput(Throughput::Elements(step_flops()))
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut model = mlp();
        model
            .compile(
                "adam".parse().unwrap(),
                "categorical_crossentropy".parse().unwrap(),
            )
            .unwrap();
        g.bench_function(BenchmarkId::new("adam", format!("{threads}t")), |b| {
            pool.install(|| {
                b.iter(|| {
                    model
                        .train_on_batch(black_box(&x), &[M, 784], &y, &[M, 10])
                        .unwrap()
                })
            })
        });
    }
    g.finish();
}

/// One layer, 1 thread: the forward (2·M·K·N) and the backward with `dx` (4·M·K·N).
fn layer_backward(c: &mut Criterion) {
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for (k, n) in [(784, 512), (512, 256)] {
        let (x, w, b, dy) = (data(M * k, 1), data(k * n, 2), data(n, 3), data(M * n, 4));
        let packed = PackedKernel::new(MatRef::from_slice(&w, k, n).unwrap(), Some(&b)).unwrap();
        let mut z = vec![0.0f32; M * n];
        dense_forward_packed(
            MatRef::from_slice(&x, M, k).unwrap(),
            &packed,
            Activation::Linear,
            MatMut::from_slice(&mut z, M, n).unwrap(),
        )
        .unwrap();
        let (mut dz, mut dx, mut dw, mut db) = (
            vec![0.0f32; M * n],
            vec![0.0f32; M * k],
            vec![0.0f32; k * n],
            vec![0.0f32; n],
        );
        let mut out = vec![0.0f32; M * n];
        let mut g = c.benchmark_group(format!("layer_{M}x{k}x{n}_relu"));
        g.sample_size(30)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        g.throughput(Throughput::Elements((2 * M * k * n) as u64));
        g.bench_function("forward_packed", |bch| {
            one.install(|| {
                bch.iter(|| {
                    dense_forward_packed(
                        MatRef::from_slice(black_box(&x), M, k).unwrap(),
                        &packed,
                        Activation::Relu,
                        MatMut::from_slice(&mut out, M, n).unwrap(),
                    )
                    .unwrap()
                })
            })
        });
        g.throughput(Throughput::Elements((4 * M * k * n) as u64));
        g.bench_function("backward", |bch| {
            one.install(|| {
                bch.iter(|| {
                    dense_backward(
                        MatRef::from_slice(black_box(&x), M, k).unwrap(),
                        MatRef::from_slice(&w, k, n).unwrap(),
                        Activation::Relu,
                        MatRef::from_slice(&z, M, n).unwrap(),
                        MatRef::from_slice(&dy, M, n).unwrap(),
                        Gradients {
                            pre_activation: MatMut::from_slice(&mut dz, M, n).unwrap(),
                            input: Some(MatMut::from_slice(&mut dx, M, k).unwrap()),
                            kernel: MatMut::from_slice(&mut dw, k, n).unwrap(),
                            bias: Some(&mut db),
                        },
                    )
                    .unwrap()
                })
            })
        });
        g.finish();
    }
}

criterion_group!(benches, train_step, layer_backward);
criterion_main!(benches);
