//! The prepared path against the unpacked one, side by side, one thread, `f32`, with
//! bias: `dense_forward_packed` (weight packed once, outside the timing) vs
//! `dense_forward_into` (matrixmultiply packs the weight on every call), for the shapes
//! of the packed-path issue, and the packing cost on its own. Throughput is counted in
//! FLOPs (`2·M·K·N`), so criterion's "elem/s" reads as FLOP/s.
//!
//! `cargo bench --bench packed`; one shape: `cargo bench --bench packed -- 1024x1024x1024`.
//! The `microkernel` group times the packed path's kernel alone on one L1-resident tile.
//! `DENSE_BENCH_BIG=1` adds 2048³.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dense_kernel::{
    dense_forward_into, dense_forward_packed, microkernel_flops, Activation, MatMut, MatRef,
    PackedKernel,
};
use std::hint::black_box;
use std::time::Duration;

mod common;
use common::data;

fn shape(c: &mut Criterion, (m, k, n): (usize, usize, usize), acts: &[Activation]) {
    let (x, w, b) = (data(m * k, 1), data(k * n, 2), data(n, 3));
    let mut out = vec![0.0f32; m * n];
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let kernel = MatRef::from_slice(&w, k, n).unwrap();
    let packed = PackedKernel::new(kernel, Some(&b)).unwrap();
    let mut g = c.benchmark_group(format!("{m}x{k}x{n}"));
    g.throughput(Throughput::Elements((2 * m * k * n) as u64));
    let big = m * k * n >= 1 << 30;
    g.sample_size(if big { 10 } else { 30 })
        .warm_up_time(Duration::from_millis(if big { 1000 } else { 300 }))
        .measurement_time(Duration::from_secs(if big { 6 } else { 2 }));
    for &act in acts {
        g.bench_function(BenchmarkId::new("unpacked", act), |bch| {
            one.install(|| {
                bch.iter(|| {
                    dense_forward_into(
                        MatRef::from_slice(black_box(&x), m, k).unwrap(),
                        kernel,
                        Some(&b),
                        act,
                        MatMut::from_slice(&mut out, m, n).unwrap(),
                    )
                    .unwrap()
                })
            })
        });
        g.bench_function(BenchmarkId::new("packed", act), |bch| {
            one.install(|| {
                bch.iter(|| {
                    dense_forward_packed(
                        MatRef::from_slice(black_box(&x), m, k).unwrap(),
                        &packed,
                        act,
                        MatMut::from_slice(&mut out, m, n).unwrap(),
                    )
                    .unwrap()
                })
            })
        });
    }
    g.finish();
    // Packing alone, in bytes of weight packed per second.
    let mut g = c.benchmark_group(format!("pack_{k}x{n}"));
    g.throughput(Throughput::Bytes((4 * k * n) as u64));
    g.sample_size(10);
    g.bench_function("PackedKernel::new", |bch| {
        bch.iter(|| PackedKernel::new(black_box(kernel), Some(&b)).unwrap())
    });
    g.finish();
}

/// The microkernel alone, one tile in L1 (`microkernel_flops`): the rate a GEMM can
/// reach on this machine, for the packed groups to be read against.
fn microkernel(c: &mut Criterion) {
    let Some(flops) = microkernel_flops(1) else {
        return;
    };
    let reps = 1000;
    let mut g = c.benchmark_group("microkernel");
    g.throughput(Throughput::Elements((flops * reps as f64) as u64));
    g.sample_size(30).measurement_time(Duration::from_secs(2));
    g.bench_function("one_tile_in_l1", |bch| {
        bch.iter(|| microkernel_flops(black_box(reps)))
    });
    g.finish();
}

fn packed(c: &mut Criterion) {
    use Activation::{Gelu, Relu, Sigmoid};
    microkernel(c);
    shape(c, (32, 512, 512), &[Relu, Gelu, Sigmoid]);
    shape(c, (64, 1024, 1024), &[Relu, Gelu, Sigmoid]);
    shape(c, (256, 1024, 4096), &[Relu, Gelu, Sigmoid]);
    shape(c, (1024, 1024, 1024), &[Relu, Gelu, Sigmoid]);
    // Narrow layers: a last panel of at most 16 columns (one half of a tile), a few
    // panels read in place where the L1d allows it, the 8×48 tile on AMD; and a short
    // sum with a large output (one-tile row blocks on small-L2 cores; see
    // `src/paths/packed.rs`).
    for s in [
        (512, 784, 10),
        (64, 256, 40),
        (512, 784, 40),
        (256, 512, 100),
        (1024, 1024, 48),
        (1000, 100, 1000),
    ] {
        shape(c, s, &[Relu]);
    }
    if std::env::var_os("DENSE_BENCH_BIG").is_some() {
        shape(c, (2048, 2048, 2048), &[Relu]);
    }
}

criterion_group!(benches, packed);
criterion_main!(benches);
