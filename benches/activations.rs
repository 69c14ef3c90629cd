//! The activation kernels alone, in elements/ns (criterion's "elem/s" ÷ 10⁹), per SIMD
//! path this CPU has, side by side with the scalar loop (the f64 definition rounded
//! once) and with `wide` alone (its own `exp`/`tanh`, as the generic build compiles
//! them). Data: 4096 f32 (16 KiB, in L1), inputs spread over [−10, 10] and [−90, 90].
//!
//! `cargo bench --bench activations`; a subset: `cargo bench --bench activations -- sigmoid`.
//!
//! A second group measures what each activation costs inside `dense_forward` at
//! 256×1024×4096 (f32, one thread: a one-thread rayon pool), against `linear`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dense_kernel::{
    apply_activation_on, dense_forward_into, reference, Activation, MatMut, MatRef, SimdPath,
};
use std::hint::black_box;
use std::time::Duration;
use wide::f32x8;

mod common;
use common::data;

const N: usize = 4096;

/// Restores the input before each run. Fixed-size chunk copies compile to vector moves;
/// a plain `copy_from_slice` calls glibc's `memcpy`, which on this VM runs 16 KiB at
/// ~0.5 elements/ns and would swamp what is measured.
#[inline(always)]
fn restore(buf: &mut [f32], input: &[f32]) {
    for (a, b) in buf.chunks_exact_mut(8).zip(input.chunks_exact(8)) {
        let b: &[f32; 8] = b.try_into().unwrap();
        a.copy_from_slice(b);
    }
}

fn spread(range: f32) -> Vec<f32> {
    (0..N)
        .map(|i| {
            let u = ((i as u32).wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 24) as f32;
            range * (2.0 * u - 1.0)
        })
        .collect()
}

/// `wide` alone, for the activations it has building blocks for.
fn wide_alone(act: Activation, data: &mut [f32]) -> bool {
    let f: fn(f32x8) -> f32x8 = match act {
        Activation::Exponential => |x| x.exp(),
        Activation::Sigmoid => |x| f32x8::ONE / (f32x8::ONE + (-x).exp()),
        Activation::Silu => |x| x / (f32x8::ONE + (-x).exp()),
        Activation::Tanh => |x| x.tanh(),
        Activation::Relu => |x| x.fast_max(f32x8::ZERO),
        _ => return false,
    };
    for c in data.chunks_exact_mut(8) {
        let v = f32x8::new(c.try_into().unwrap());
        c.copy_from_slice(&f(v).to_array());
    }
    true
}

fn kernels(c: &mut Criterion) {
    let acts = [
        Activation::Relu,
        Activation::Exponential,
        Activation::Sigmoid,
        Activation::Silu,
        Activation::Elu { alpha: 1.0 },
        Activation::Tanh,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Softplus,
        Activation::Mish,
        Activation::HardSigmoid,
    ];
    for range in [10.0f32, 90.0] {
        let input = spread(range);
        let mut buf = input.clone();
        for act in acts {
            let mut g = c.benchmark_group(format!("act_f32_{act}_pm{range}"));
            g.throughput(Throughput::Elements(N as u64));
            g.warm_up_time(Duration::from_millis(300));
            g.measurement_time(Duration::from_secs(1));
            for path in SimdPath::ALL.into_iter().filter(|p| p.is_available()) {
                g.bench_function(BenchmarkId::new("simd", path), |b| {
                    b.iter(|| {
                        restore(&mut buf, &input);
                        apply_activation_on(path, act, black_box(&mut buf), N)
                    })
                });
            }
            g.bench_function("scalar_f64_definition", |b| {
                b.iter(|| {
                    for (y, &x) in buf.iter_mut().zip(&input) {
                        *y =
                            reference::activation_f64(act, f64::from(black_box(x))).unwrap() as f32;
                    }
                })
            });
            if wide_alone(act, &mut buf) {
                g.bench_function("wide_alone", |b| {
                    b.iter(|| {
                        restore(&mut buf, &input);
                        wide_alone(act, black_box(&mut buf))
                    })
                });
            }
            g.bench_function("copy_only", |b| {
                b.iter(|| restore(&mut buf, black_box(&input)))
            });
            g.finish();
        }
    }
}

fn fused(c: &mut Criterion) {
    let (m, k, n) = (256, 1024, 4096);
    let (x, w, bias) = (data(m * k, 1), data(k * n, 2), data(n, 3));
    let mut out = vec![0.0f32; m * n];
    // One thread, as the epilogue's cost is judged against one thread's GEMM.
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut g = c.benchmark_group(format!("fused_f32_{m}x{k}x{n}"));
    g.throughput(Throughput::Elements((2 * m * k * n) as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    for act in [
        Activation::Linear,
        Activation::Relu,
        Activation::Gelu,
        Activation::Sigmoid,
        Activation::Tanh,
    ] {
        g.bench_function(BenchmarkId::new("dense_forward", act), |b| {
            one.install(|| {
                b.iter(|| {
                    dense_forward_into(
                        MatRef::from_slice(black_box(&x), m, k).unwrap(),
                        MatRef::from_slice(&w, k, n).unwrap(),
                        Some(&bias),
                        act,
                        MatMut::from_slice(&mut out, m, n).unwrap(),
                    )
                    .unwrap()
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, kernels, fused);
criterion_main!(benches);
