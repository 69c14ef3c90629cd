//! Batch, thread, layout and path invariance: for a given build and CPU, row `i` of a
//! Dense layer's output is bitwise a function of row `i` of the input, the weights, the
//! bias and the activation only — never of the batch size `M`, of the other rows, of
//! the thread count, of the weight's layout (Keras `(in, units)` or PyTorch
//! `(units, in)` seen through `.t()`), or of `dense_forward` vs the packed path.
//!
//! Each row of every batch is compared with the same row computed alone (one row, Keras
//! layout, one thread). The default run covers every `M` up to 20, the `M` around the
//! paths' thresholds and block edges up to 300, 1000 and (one layer) 4096, thread
//! counts 1, 2, 3 and 7, and every activation on small batches; `DENSE_KERNEL_INVARIANCE_FULL=1` runs every `M` from 1 to 300 on
//! every thread count and every activation on them all (minutes in a debug build).

use dense_kernel::{
    dense_forward_into, dense_forward_packed, Activation, Element, MatMut, MatRef, PackedKernel,
};

mod common;
use common::Rng;

fn full() -> bool {
    std::env::var("DENSE_KERNEL_INVARIANCE_FULL").is_ok_and(|v| v == "1")
}

/// One layer's data: `rows` input rows, the weight in both storages, a bias.
struct Layer<T> {
    k: usize,
    n: usize,
    x: Vec<T>,
    keras: Vec<T>,
    torch: Vec<T>,
    b: Vec<T>,
}

impl<T: Element> Layer<T> {
    fn new(rows: usize, k: usize, n: usize, seed: u64) -> Self {
        let mut rng = Rng(seed);
        let x = rng.vec(rows * k, 2.0);
        let keras: Vec<T> = rng.vec(k * n, 1.0);
        let torch = common::transposed(&keras, k, n);
        let b = rng.vec(n, 0.5);
        Layer {
            k,
            n,
            x,
            keras,
            torch,
            b,
        }
    }

    fn kernel(&self, torch: bool) -> MatRef<'_, T> {
        if torch {
            MatRef::from_slice(&self.torch, self.n, self.k).unwrap().t()
        } else {
            MatRef::from_slice(&self.keras, self.k, self.n).unwrap()
        }
    }

    /// `dense_forward_into` over the first `m` rows.
    fn forward(&self, m: usize, torch: bool, act: Activation) -> Vec<T> {
        let mut y = vec![T::nan(); m * self.n];
        dense_forward_into(
            MatRef::from_slice(&self.x[..m * self.k], m, self.k).unwrap(),
            self.kernel(torch),
            Some(&self.b),
            act,
            MatMut::from_slice(&mut y, m, self.n).unwrap(),
        )
        .unwrap();
        y
    }
}

fn bits<T: Element>(y: &[T]) -> Vec<u64> {
    y.iter().map(|v| v.widen().to_bits()).collect()
}

/// Whether rows are independent of the batch here: on every path but the portable one
/// forced (`DENSE_KERNEL_SIMD=portable`) on a CPU with FMA, where the crate's kernels
/// multiply and add apart while matrixmultiply's GEMM (batches of more than 16 rows)
/// fuses them. Thread, layout and path invariance hold there too, and are checked.
fn batch_invariant() -> bool {
    let fma = {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    };
    !(dense_kernel::simd_path() == dense_kernel::SimdPath::Portable && fma)
}

fn pools() -> Vec<(usize, rayon::ThreadPool)> {
    [1, 2, 3, 7]
        .into_iter()
        .map(|t| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap();
            (t, pool)
        })
        .collect()
}

/// Every row of every batch in `ms`, against the rows computed alone.
#[allow(clippy::too_many_arguments)]
fn check<T: Element>(
    layer: &Layer<T>,
    ms: &[usize],
    acts: &[Activation],
    threads: &[usize],
    pools: &[(usize, rayon::ThreadPool)],
    packed: &[(&str, Option<&PackedKernel>)],
    what: &str,
) -> usize {
    let n = layer.n;
    let rows = ms.iter().copied().max().unwrap_or(0);
    let mut checked = 0;
    let batch = batch_invariant();
    for &act in acts {
        let alone: Vec<u64> = pools[0].1.install(|| {
            (0..rows)
                .flat_map(|i| {
                    let row = &layer.x[i * layer.k..(i + 1) * layer.k];
                    let mut y = vec![T::nan(); n];
                    dense_forward_into(
                        MatRef::from_slice(row, 1, layer.k).unwrap(),
                        layer.kernel(false),
                        Some(&layer.b),
                        act,
                        MatMut::from_slice(&mut y, 1, n).unwrap(),
                    )
                    .unwrap();
                    bits(&y)
                })
                .collect()
        });
        for &m in ms {
            for (t, pool) in pools.iter().filter(|(t, _)| threads.contains(t)) {
                let mut runs: Vec<(String, Vec<u64>)> = Vec::new();
                for torch in [false, true] {
                    let y = pool.install(|| layer.forward(m, torch, act));
                    let name = if torch { "torch" } else { "keras" };
                    runs.push((format!("dense_forward, {name} layout"), bits(&y)));
                }
                for &(name, p) in packed {
                    let Some(p) = p else { continue };
                    // (Packed kernels exist for f32 layers only, so this is exact.)
                    let x32: Vec<f32> = layer.x[..m * layer.k]
                        .iter()
                        .map(|v| v.widen() as f32)
                        .collect();
                    let x = MatRef::from_slice(&x32, m, layer.k).unwrap();
                    let mut y = vec![f32::NAN; m * n];
                    pool.install(|| {
                        dense_forward_packed(x, p, act, MatMut::from_slice(&mut y, m, n).unwrap())
                    })
                    .unwrap();
                    runs.push((format!("packed, {name} layout"), bits(&y)));
                }
                // Without batch invariance (see `batch_invariant`), the same batch on
                // one thread in the Keras layout is the reference.
                let same_m;
                let want = if batch {
                    &alone[..]
                } else {
                    same_m = bits(&pools[0].1.install(|| layer.forward(m, false, act)));
                    &same_m[..]
                };
                for (run, y) in runs {
                    if let Some(e) = (0..m * n).find(|&e| y[e] != want[e]) {
                        panic!(
                            "{what} {}: {m}x{}x{n} {act}, {run}, {t} thread(s): row {} column {} \
                             differs from the row computed alone",
                            T::NAME,
                            layer.k,
                            e / n,
                            e % n
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    checked
}

/// The batch sizes of the default run: every `M` to 20, the paths' thresholds (16, 32
/// rows; per-call packing from 2 and 8) and the packed tiles' and row blocks' edges up
/// to 300; then 1000.
fn batch_sizes() -> Vec<usize> {
    if full() {
        return (1..=300).chain([1000, 4096]).collect();
    }
    (1..=20)
        .chain([
            23, 24, 25, 31, 32, 33, 36, 37, 47, 48, 49, 63, 64, 65, 100, 127, 128, 129, 255, 256,
            257, 300, 1000,
        ])
        .collect()
}

fn layer_shapes() -> [(usize, usize, &'static str); 3] {
    [
        (300, 40, "two K blocks"),
        (20, 10, "a narrow layer (packed per call)"),
        (513, 30, "three K blocks, a partial column group"),
    ]
}

fn invariance<T: Element>(pack: impl Fn(MatRef<'_, T>, &[T]) -> Option<PackedKernel>) {
    let pools = pools();
    let ms = batch_sizes();
    let all = Activation::all();
    let small: Vec<usize> = [1, 2, 3, 4, 5, 8, 16, 17, 33, 40].into();
    let mut checked = 0;
    for (i, &(k, n, what)) in layer_shapes().iter().enumerate() {
        let layer = Layer::<T>::new(4096, k, n, 70 + i as u64);
        let pk = pack(layer.kernel(false), &layer.b);
        let pt = pack(layer.kernel(true), &layer.b);
        let packed = [("keras", pk.as_ref()), ("torch", pt.as_ref())];
        let threads: &[usize] = if full() { &[1, 2, 3, 7] } else { &[1, 3] };
        // Every M (of the run) with a linear and a relu layer; on 2 and 7 threads too
        // for a few.
        let lin = [Activation::Linear, Activation::Relu];
        checked += check(&layer, &ms, &lin, threads, &pools, &packed, what);
        let few: &[usize] = if i == 0 {
            &[1, 7, 17, 64, 300, 4096]
        } else {
            &[1, 7, 17, 64]
        };
        checked += check(&layer, few, &lin[..1], &[2, 7], &pools, &packed, what);
        // Every activation on small batches (every M of the run with the full run).
        let acts_ms = if full() { &ms[..] } else { &small[..] };
        let acts_threads: &[usize] = if full() { &[1, 2] } else { &[1] };
        checked += check(&layer, acts_ms, all, acts_threads, &pools, &packed, what);
    }
    assert!(checked > 1000, "{checked} runs");
}

#[test]
fn rows_are_independent_of_batch_threads_layout_and_path_f32() {
    invariance::<f32>(|w, b| {
        let p = PackedKernel::new(w, Some(b)).unwrap();
        Some(p)
    });
}

#[test]
fn rows_are_independent_of_batch_threads_and_layout_f64() {
    invariance::<f64>(|_, _| None);
}
