//! `dense_forward` against bare matrixmultiply `sgemm` and the unfused composition a user
//! would write (sgemm, then a scalar bias + activation loop), f32, one thread.
//! Throughput is counted in FLOPs (2·M·K·N), so criterion's "elem/s" reads as FLOP/s.
//!
//! `cargo bench --bench forward` (the shape sweep and roofline report come later).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dense_kernel::{dense_forward_into, Activation, MatMut, MatRef};
use std::hint::black_box;

mod common;
use common::data;

fn sgemm(m: usize, k: usize, n: usize, x: &[f32], w: &[f32], beta: f32, out: &mut [f32]) {
    common::sgemm((m, k, n), x, w, (n as isize, 1), beta, out)
}

fn bench(c: &mut Criterion) {
    let shapes = [(32, 4, 7), (1, 784, 128), (32, 512, 512), (256, 1024, 1024)];
    for (m, k, n) in shapes {
        let (x, w, b) = (data(m * k, 1), data(k * n, 2), data(n, 3));
        let mut out = vec![0.0f32; m * n];
        let mut g = c.benchmark_group(format!("f32_{m}x{k}x{n}"));
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        g.bench_function("bare_sgemm", |bch| {
            bch.iter(|| sgemm(m, k, n, black_box(&x), &w, 0.0, &mut out))
        });
        for act in [
            Activation::Linear,
            Activation::Relu,
            Activation::Gelu,
            Activation::Softmax,
        ] {
            g.bench_function(BenchmarkId::new("dense_forward", act), |bch| {
                bch.iter(|| {
                    dense_forward_into(
                        MatRef::from_slice(black_box(&x), m, k).unwrap(),
                        MatRef::from_slice(&w, k, n).unwrap(),
                        Some(&b),
                        act,
                        MatMut::from_slice(&mut out, m, n).unwrap(),
                    )
                    .unwrap()
                })
            });
        }
        g.bench_function("unfused_sgemm_then_relu_loop", |bch| {
            bch.iter(|| {
                sgemm(m, k, n, black_box(&x), &w, 0.0, &mut out);
                for row in out.chunks_exact_mut(n) {
                    for (v, bj) in row.iter_mut().zip(&b) {
                        *v = (*v + bj).max(0.0);
                    }
                }
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
