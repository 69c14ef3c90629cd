//! Every computational path (tiny, skinny/GEMV, GEMM), forced, against the naive f64
//! reference (`reference::check_dense`, tolerance from the K-sum bound), over shapes that
//! hit every edge of the kernels; and results bitwise identical for any thread count.
//!
//! `PROPTEST_CASES=N` raises the number of random cases (default 64 per path).

mod common;

use common::{randomize, Layout, Rng, Stored, LAYOUTS};
use dense_kernel::reference::check_dense;
use dense_kernel::{dense_forward_into_on, Activation, Element, ForwardPath, MatMut};
use proptest::prelude::*;

const PATHS: [ForwardPath; 4] = [
    ForwardPath::Tiny,
    ForwardPath::Skinny,
    ForwardPath::Gemm,
    ForwardPath::Auto,
];

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[allow(clippy::too_many_arguments)]
fn run_case<T: Element>(
    path: ForwardPath,
    (m, k, n): (usize, usize, usize),
    il: Layout,
    kl: Layout,
    bias: bool,
    act: Activation,
    seed: u64,
) -> Result<Vec<T>, String> {
    let mut rng = Rng(seed);
    let w_scale = 3.0 / (k.max(1) as f64).sqrt();
    let x = Stored::new(&rng.vec::<T>(m * k, 1.0), m, k, il);
    let w = Stored::new(&rng.vec::<T>(k * n, w_scale), k, n, kl);
    let b: Vec<T> = rng.vec(n, 1.5);
    let bias = bias.then_some(b.as_slice());
    // NaN-filled: no path may read the output before writing it.
    let mut out = vec![T::nan(); m * n];
    dense_forward_into_on(
        path,
        x.view(),
        w.view(),
        bias,
        act,
        MatMut::from_slice(&mut out, m, n).unwrap(),
    )
    .map_err(|e| e.to_string())?;
    check_dense(x.view(), w.view(), bias, act, &out)
        .map_err(|e| format!("{path:?} {m}x{k}x{n} {il:?}/{kl:?} {act}: {e}"))?;
    Ok(out)
}

/// Shapes around every kernel edge: the axpy kernel's 4-row k groups and row pairs, its
/// register-resident form for outputs of up to four vectors (whole and partial last
/// vectors of 4, 8 and 16 lanes: N = 16, 32, 40, 64), the dot kernel's 4-column groups
/// and lane tails (8 and 16 lanes), the skinny/GEMM threshold (M = 16), on the three
/// weight layouts the kernels tell apart.
#[test]
fn kernel_edges_every_path() {
    let ms = [1, 2, 3, 16, 17];
    let ks = [0, 1, 3, 4, 5, 8, 9, 17, 33];
    let ns = [1, 3, 8, 9, 16, 17, 32, 40, 64, 65];
    let layouts = [
        (Layout::RowMajor, Layout::RowMajor),
        (Layout::RowMajor, Layout::Transposed),
        (Layout::ColStep(2), Layout::Transposed),
        (Layout::Padded(3), Layout::ColStep(2)),
    ];
    let mut seed = 0;
    for path in PATHS {
        for &m in &ms {
            for &k in &ks {
                for &n in &ns {
                    for &(il, kl) in &layouts {
                        seed += 1;
                        let act = [Activation::Linear, Activation::Relu, Activation::Softmax]
                            [seed as usize % 3];
                        run_case::<f32>(path, (m, k, n), il, kl, seed % 2 == 0, act, seed).unwrap();
                        run_case::<f64>(path, (m, k, n), il, kl, seed % 2 == 1, act, seed).unwrap();
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    #[test]
    fn random_cases_every_path(
        pi in 0..PATHS.len(),
        m in 0usize..40,
        k in 0usize..80,
        n in 0usize..80,
        li in 0..LAYOUTS.len(),
        lk in 0..LAYOUTS.len(),
        bias in any::<bool>(),
        ai in 0..Activation::all().len(),
        seed in any::<u64>(),
        f64_ in any::<bool>(),
    ) {
        let act = randomize(Activation::all()[ai], &mut Rng(seed));
        let (il, kl) = (LAYOUTS[li], LAYOUTS[lk]);
        let r = if f64_ {
            run_case::<f64>(PATHS[pi], (m, k, n), il, kl, bias, act, seed).map(|_| ())
        } else {
            run_case::<f32>(PATHS[pi], (m, k, n), il, kl, bias, act, seed).map(|_| ())
        };
        r.map_err(TestCaseError::fail)?;
    }
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn same_bits<T: Element>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.widen().to_bits() == y.widen().to_bits())
}

/// Shapes large enough to be split, per path and split direction, run in pools of 1, 2,
/// 3 and 7 threads: every result bit the same (threads never split K).
#[test]
fn bitwise_identical_for_any_thread_count() {
    let shapes = [
        // (path, (m, k, n), kernel layout)
        // (at least 2²⁰ multiply-adds per piece: up to 7 pieces need ~7.3·10⁶)
        (ForwardPath::Skinny, (1, 1024, 8200), Layout::RowMajor),
        (ForwardPath::Skinny, (5, 700, 2100), Layout::Transposed),
        (ForwardPath::Gemm, (800, 100, 93), Layout::RowMajor), // rows split
        (ForwardPath::Gemm, (40, 200, 1000), Layout::Transposed), // columns split
        (ForwardPath::Auto, (9, 333, 2500), Layout::RowMajor),
    ];
    for (path, shape, kl) in shapes {
        for act in [Activation::Gelu, Activation::Softmax] {
            let run = || run_case::<f32>(path, shape, Layout::RowMajor, kl, true, act, 42).unwrap();
            let one = pool(1).install(run);
            for t in [2, 3, 7] {
                let many = pool(t).install(run);
                assert!(
                    same_bits(&one, &many),
                    "{path:?} {shape:?} {act}: {t} threads differ"
                );
            }
            let run64 =
                || run_case::<f64>(path, shape, Layout::RowMajor, kl, false, act, 43).unwrap();
            let one = pool(1).install(run64);
            let many = pool(3).install(run64);
            assert!(
                same_bits(&one, &many),
                "{path:?} {shape:?} {act} f64: threads differ"
            );
        }
    }
}

/// A call from inside a parallel iterator of the same pool neither deadlocks nor changes
/// a bit.
#[test]
fn nested_in_a_par_iter() {
    use rayon::prelude::*;
    let shape = (4, 400, 2000);
    let alone = run_case::<f32>(
        ForwardPath::Auto,
        shape,
        Layout::RowMajor,
        Layout::RowMajor,
        true,
        Activation::Relu,
        9,
    )
    .unwrap();
    let nested: Vec<Vec<f32>> = pool(2).install(|| {
        (0..6)
            .into_par_iter()
            .map(|_| {
                run_case::<f32>(
                    ForwardPath::Auto,
                    shape,
                    Layout::RowMajor,
                    Layout::RowMajor,
                    true,
                    Activation::Relu,
                    9,
                )
                .unwrap()
            })
            .collect()
    });
    for r in nested {
        assert!(same_bits(&alone, &r));
    }
}

/// The checker must see a broken path: a wrong result is rejected (so the tests above
/// can fail).
#[test]
fn checker_sees_a_wrong_skinny_result() {
    let mut rng = Rng(5);
    let (m, k, n) = (3, 40, 20);
    let x = Stored::new(&rng.vec::<f32>(m * k, 1.0), m, k, Layout::RowMajor);
    let w = Stored::new(&rng.vec::<f32>(k * n, 0.3), k, n, Layout::RowMajor);
    let mut out = vec![0.0f32; m * n];
    dense_forward_into_on(
        ForwardPath::Skinny,
        x.view(),
        w.view(),
        None,
        Activation::Linear,
        MatMut::from_slice(&mut out, m, n).unwrap(),
    )
    .unwrap();
    assert!(check_dense(x.view(), w.view(), None, Activation::Linear, &out).is_ok());
    out[n + 7] += 1e-3;
    assert!(check_dense(x.view(), w.view(), None, Activation::Linear, &out).is_err());
}
