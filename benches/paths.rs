//! The shape-aware paths side by side (f32, FLOPs = 2·M·K·N, so criterion's "elem/s"
//! reads as FLOP/s): each path forced (tiny, skinny, gemm), the automatic choice, and
//! bare matrixmultiply `sgemm`, at one thread; then the automatic path on 1 and 2 threads.
//! A `read_bandwidth` group measures what one core streams from memory (bytes/s), the
//! roof for `M = 1` shapes whose weights exceed the caches.
//!
//! `cargo bench --bench paths`; one group: `cargo bench --bench paths -- 1x4096x4096`.
//! `DENSE_BENCH_BIG=1` adds 2048³.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dense_kernel::{dense_forward_into_on, Activation, ForwardPath, MatMut, MatRef};
use std::hint::black_box;
use std::time::Duration;

mod common;
use common::{data, sgemm, sum_four_streams};

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// One shape: forced paths, auto, bare sgemm; `torch` views the weight as `(N, K)`
/// row-major transposed.
fn shape(c: &mut Criterion, (m, k, n): (usize, usize, usize), torch: bool, acts: &[Activation]) {
    let (x, w, b) = (data(m * k, 1), data(k * n, 2), data(n, 3));
    let mut out = vec![0.0f32; m * n];
    let kernel = || {
        if torch {
            MatRef::from_slice(&w, n, k).unwrap().t()
        } else {
            MatRef::from_slice(&w, k, n).unwrap()
        }
    };
    let (rsw, csw) = if torch {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    let one = pool(1);
    let layout = if torch { "torch" } else { "keras" };
    let mut g = c.benchmark_group(format!("{m}x{k}x{n}_{layout}"));
    g.throughput(Throughput::Elements((2 * m * k * n) as u64));
    let big = m * k * n > 1 << 26;
    g.sample_size(if big { 10 } else { 30 });
    g.warm_up_time(Duration::from_millis(if big { 1000 } else { 300 }));
    g.measurement_time(Duration::from_secs(if big { 4 } else { 2 }));
    g.bench_function("bare_sgemm", |bch| {
        bch.iter(|| sgemm((m, k, n), black_box(&x), &w, (rsw, csw), 0.0, &mut out))
    });
    for &act in acts {
        let paths: &[ForwardPath] = if m <= 32 {
            &[
                ForwardPath::Auto,
                ForwardPath::Tiny,
                ForwardPath::Skinny,
                ForwardPath::Gemm,
            ]
        } else {
            &[ForwardPath::Auto]
        };
        for &path in paths {
            let id = BenchmarkId::new(format!("{path:?}").to_lowercase(), act);
            g.bench_function(id, |bch| {
                one.install(|| {
                    bch.iter(|| {
                        dense_forward_into_on(
                            path,
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
        }
    }
    // The automatic path on two threads (meaningful only on an idle machine).
    let two = pool(2);
    g.bench_function(BenchmarkId::new("auto_2_threads", acts[0]), |bch| {
        two.install(|| {
            bch.iter(|| {
                dense_forward_into_on(
                    ForwardPath::Auto,
                    MatRef::from_slice(black_box(&x), m, k).unwrap(),
                    kernel(),
                    Some(&b),
                    acts[0],
                    MatMut::from_slice(&mut out, m, n).unwrap(),
                )
                .unwrap()
            })
        })
    });
    g.finish();
}

fn read_bandwidth(c: &mut Criterion) {
    let v: Vec<u32> = (0..64u32 << 20).collect(); // 256 MiB
    let mut g = c.benchmark_group("read_bandwidth");
    g.throughput(Throughput::Bytes((v.len() * 4) as u64));
    g.sample_size(10);
    g.bench_function("sum_256MiB_1_thread_4_streams", |bch| {
        bch.iter(|| sum_four_streams(&v))
    });
    g.finish();
}

fn paths(c: &mut Criterion) {
    use Activation::{Gelu, Linear, Relu};
    read_bandwidth(c);
    for torch in [false, true] {
        shape(c, (1, 4096, 4096), torch, &[Linear]);
        shape(c, (1, 784, 128), torch, &[Linear]);
        shape(c, (8, 4096, 4096), torch, &[Linear]);
    }
    for torch in [false, true] {
        shape(c, (16, 4096, 4096), torch, &[Linear]);
        shape(c, (32, 4096, 4096), torch, &[Linear]);
        shape(c, (64, 1024, 1024), torch, &[Linear]);
    }
    shape(c, (32, 4, 7), false, &[Relu]);
    shape(c, (16, 512, 512), false, &[Relu]);
    shape(c, (32, 512, 512), false, &[Relu]);
    shape(c, (256, 1024, 4096), false, &[Relu, Gelu]);
    shape(c, (1024, 1024, 1024), false, &[Relu, Gelu]);
    if std::env::var_os("DENSE_BENCH_BIG").is_some() {
        shape(c, (2048, 2048, 2048), false, &[Relu, Gelu]);
    }
}

criterion_group!(benches, paths);
criterion_main!(benches);
