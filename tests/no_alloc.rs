//! `dense_forward_packed` allocates nothing: a counting global allocator around calls
//! that take every route of the prepared path (the 12×32 and 8×48 AVX-512 tiles, the
//! AVX2+FMA tile, single rows, the tiny route, K = 0, strided and transposed inputs,
//! element-wise and row-wise activations, one thread and several), once every thread of
//! the pool has made its first packed call (which allocates that thread's scratch
//! buffer, kept for the thread's life). `harness = false`
//! (Cargo.toml): a plain `main`, so no test harness thread allocates beside the calls.
//! `.ci/run` runs it once per SIMD path. Where the CPU has neither microkernel, the
//! packed kernel is a row-major copy for matrixmultiply, which allocates its packing
//! buffers on every call: that case is reported and skipped (the docs say so).

use dense_kernel::{dense_forward_packed, Activation, MatMut, MatRef, PackedKernel};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Allocations (and reallocations) since the start, from every thread.
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees are this allocator's; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's contract for `alloc` is `System::alloc`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: `ptr` came from `System` with `layout`; the rest is the caller's
        // contract for `realloc`, which is `System::realloc`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 31 + seed * 17) % 101) as f32 / 50.0 - 1.0)
        .collect()
}

/// Allocations made by three forward calls (after one warm-up call) of an `m × k` input, read with row stride `rs` (≥ k),
/// or transposed (`(k, m)` storage) if `transposed`, against a packed `k × n` weight.
#[allow(clippy::too_many_arguments)]
fn allocs(
    pool: &rayon::ThreadPool,
    m: usize,
    k: usize,
    n: usize,
    rs: usize,
    transposed: bool,
    torch: bool,
    act: Activation,
) -> usize {
    let w = values(k * n, 2);
    let kernel = if torch {
        MatRef::from_slice(&w, n, k).unwrap().t()
    } else {
        MatRef::from_slice(&w, k, n).unwrap()
    };
    let packed = PackedKernel::new(kernel, Some(&values(n, 3))).unwrap();
    let x = values(if transposed { k * m } else { m.max(1) * rs }, 1);
    let input = if transposed {
        MatRef::from_slice(&x, k, m).unwrap().t()
    } else {
        MatRef::from_strided(&x[..(m * rs).min(x.len())], m, k, rs, 1).unwrap()
    };
    let mut out = vec![0.0f32; m * n];
    // Counted inside the pool: a call from outside it would go through rayon's job
    // injector, whose queue allocates a block now and then (rayon's, not this crate's).
    let made = pool.install(|| {
        let mut call = || {
            dense_forward_packed(
                input,
                &packed,
                act,
                MatMut::from_slice(&mut out, m, n).unwrap(),
            )
            .unwrap()
        };
        call();
        let before = ALLOCS.load(Ordering::SeqCst);
        for _ in 0..3 {
            call();
        }
        ALLOCS.load(Ordering::SeqCst) - before
    });
    assert!(out.iter().all(|v| v.is_finite()), "{m}x{k}x{n}: {act}");
    made
}

fn main() {
    let probe = PackedKernel::new(MatRef::from_slice(&[1.0f32; 4], 2, 2).unwrap(), None).unwrap();
    if !probe.uses_microkernels() {
        println!("no_alloc: no packed microkernel on this CPU / SIMD path: skipped");
        return;
    }
    let pools: Vec<rayon::ThreadPool> = [1, 2, 3]
        .iter()
        .map(|&t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        })
        .collect();
    // Each thread's first call that packs its input allocates the thread's scratch
    // buffer: one such call on every thread of every pool, before anything is counted
    // (a transposed input is always packed; one piece, so it runs on the calling thread).
    for pool in &pools {
        pool.broadcast(|_| {
            let w = values(64 * 64, 2);
            let packed = PackedKernel::new(MatRef::from_slice(&w, 64, 64).unwrap(), None).unwrap();
            let x = values(64 * 12, 1);
            let mut out = vec![0.0f32; 12 * 64];
            let input = MatRef::from_slice(&x, 64, 12).unwrap().t();
            dense_forward_packed(
                input,
                &packed,
                Activation::Relu,
                MatMut::from_slice(&mut out, 12, 64).unwrap(),
            )
            .unwrap();
        });
    }
    // (m, k, n): the 12×32 tile (M, N off the tile), the 8×48 tile (N ≤ 192 on AMD),
    // single rows, the tiny route (M·K·N ≤ 4096), K = 0, M = 0, several k blocks.
    let shapes = [
        (32, 512, 512),
        (37, 300, 250),
        (64, 256, 40),
        (100, 300, 10),
        (1, 784, 128),
        (3, 64, 100),
        (4, 4, 4),
        (5, 0, 7),
        (0, 16, 16),
        (24, 2100, 70),
    ];
    let acts = [
        Activation::Linear,
        Activation::Relu,
        Activation::Gelu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Softmax,
    ];
    let mut failures = Vec::new();
    let mut cases = 0;
    for pool in &pools {
        for &(m, k, n) in &shapes {
            for (i, &act) in acts.iter().enumerate() {
                // Rotate the input forms and weight layouts over the activations.
                let (rs, transposed, torch) = match i % 3 {
                    0 => (k, false, false),
                    1 => (k + 5, false, true),
                    _ => (k, true, false),
                };
                let made = allocs(pool, m, k, n, rs, transposed, torch, act);
                cases += 1;
                if made != 0 {
                    failures.push(format!(
                        "{m}x{k}x{n} {act} threads={} rs={rs} transposed={transposed} torch={torch}: {made} allocations in 3 calls",
                        pool.current_num_threads()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "allocating calls:\n{}",
        failures.join("\n")
    );
    println!("no_alloc: {cases} cases, no allocation in any prepared call");
    for pool in &pools {
        let (steps, per_fit) = training_allocs(pool);
        assert_eq!(
            steps,
            0,
            "{} threads: train_on_batch allocated",
            pool.current_num_threads()
        );
        assert_eq!(
            per_fit.0,
            per_fit.1,
            "{} threads: fit over 8 and over 16 steps per epoch allocated differently",
            pool.current_num_threads()
        );
    }
    println!("no_alloc: training steps allocate nothing (1, 2, 3 threads)");
}

/// Allocations in three `train_on_batch` steps after warm-up, and in one-epoch `fit`
/// calls of 8 and of 16 steps (shuffled, with validation): equal if a step allocates
/// nothing (the per-epoch history is the same in both).
fn training_allocs(pool: &rayon::ThreadPool) -> (usize, (usize, usize)) {
    use dense_kernel::layer::{CompileOptions, Dense, Dropout, FitOptions, Metric, Sequential};
    pool.install(|| {
        let mut m = Sequential::<f32>::new()
            .add(Dense::new(40).activation(Activation::Relu).input_dim(30))
            .unwrap()
            .add(Dropout::new(0.25))
            .unwrap()
            .add(Dense::new(20).activation(Activation::Gelu))
            .unwrap()
            .add(Dense::new(6).activation(Activation::Softmax))
            .unwrap();
        m.compile_with(
            "adam".parse().unwrap(),
            "categorical_crossentropy".parse().unwrap(),
            &CompileOptions::new()
                .metrics(&[Metric::Accuracy])
                .global_clipnorm(1.0),
        )
        .unwrap();
        let x = values(160 * 30, 3);
        let mut y = vec![0.0f32; 160 * 6];
        for r in 0..160 {
            y[r * 6 + r % 6] = 1.0;
        }
        let opts = FitOptions::new()
            .batch_size(8)
            .epochs(1)
            .verbose(0)
            .validation_split(0.2);
        let mut fit = |n: usize| {
            let before = ALLOCS.load(Ordering::SeqCst);
            m.fit(&x[..n * 30], &[n, 30], &y[..n * 6], &[n, 6], &opts)
                .unwrap();
            ALLOCS.load(Ordering::SeqCst) - before
        };
        fit(160); // warm-up: buffers reach their size
        let per_fit = (fit(80), fit(160));
        // Inference through the layer API allocates nothing once the layers are packed
        // (a `Dense::call_into` made an error message on every packed call).
        m.forward(&x[..8 * 30], &[8, 30]).unwrap();
        m.forward(&x[..8 * 30], &[8, 30]).unwrap();
        let before = ALLOCS.load(Ordering::SeqCst);
        for _ in 0..3 {
            m.forward(&x[..8 * 30], &[8, 30]).unwrap();
        }
        assert_eq!(
            ALLOCS.load(Ordering::SeqCst) - before,
            0,
            "Sequential::forward allocated"
        );
        let before = ALLOCS.load(Ordering::SeqCst);
        for _ in 0..3 {
            m.train_on_batch(&x[..8 * 30], &[8, 30], &y[..8 * 6], &[8, 6])
                .unwrap();
        }
        (ALLOCS.load(Ordering::SeqCst) - before, per_fit)
    })
}
