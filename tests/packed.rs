//! The prepared path: `dense_forward_packed` against the reference over shapes that hit
//! every edge of the microkernels (M and N not multiples of the tile, K not a multiple
//! of the `k` block, K = 0, N = 1), both weight layouts, strided inputs, bitwise identity
//! across thread counts, and its errors. `.ci/run` runs this file once per SIMD path, so
//! the AVX-512 kernel, the AVX2+FMA kernel and the matrixmultiply fallback (what CPUs
//! with neither get) are all covered; `paths::packed::tests` also runs every packing
//! this CPU can, in one process.

use dense_kernel::reference::check_dense;
use dense_kernel::{
    dense_forward, dense_forward_into, dense_forward_packed, Activation, DenseError, MatMut,
    MatRef, PackedKernel,
};
use proptest::prelude::*;

fn values(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let h = (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed.wrapping_mul(97));
            ((h >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 4.0
        })
        .collect()
}

/// `dense_forward_packed` into a NaN-filled `M × N` output, returned.
fn packed_out(x: MatRef<'_, f32>, packed: &PackedKernel, act: Activation) -> Vec<f32> {
    let (m, n) = (x.rows(), packed.units());
    let mut out = vec![f32::NAN; m * n];
    dense_forward_packed(x, packed, act, MatMut::from_slice(&mut out, m, n).unwrap()).unwrap();
    out
}

/// One checked call: packs `w` (Keras `(k, n)` or PyTorch `(n, k)` storage), runs on a
/// NaN-filled output, checks against the reference.
fn check(m: usize, k: usize, n: usize, torch: bool, bias: bool, act: Activation) {
    let (x, w, b) = (values(m * k, 1), values(k * n, 2), values(n, 3));
    let kernel = if torch {
        MatRef::from_slice(&w, n, k).unwrap().t()
    } else {
        MatRef::from_slice(&w, k, n).unwrap()
    };
    let bias = bias.then_some(&b[..]);
    let packed = PackedKernel::new(kernel, bias).unwrap();
    assert_eq!((packed.in_features(), packed.units()), (k, n));
    let xv = MatRef::from_slice(&x, m, k).unwrap();
    let out = packed_out(xv, &packed, act);
    check_dense(xv, kernel, bias, act, &out).unwrap_or_else(|e| {
        panic!(
            "{m}x{k}x{n} torch={torch} bias={} {act}: {e}",
            bias.is_some()
        )
    });
}

#[test]
fn kernel_edges() {
    // Tile heights 12 / 6 and widths 32 / 16; k blocks of at most 1024 (1025 is cut in
    // two, 2049 in three); row block 24; column chunk 1024.
    let ms = [1, 5, 6, 7, 12, 13, 23, 24, 25, 47, 49, 121];
    let ks = [0, 1, 3, 17, 255, 257, 1023, 1024, 1025, 2049];
    let ns = [1, 15, 16, 17, 31, 32, 33, 65, 513, 1025];
    for &m in &ms {
        for &k in &ks {
            for &n in &ns {
                if m * k * n > 1 << 21 {
                    continue;
                }
                let torch = (m + k + n) % 2 == 0;
                check(m, k, n, torch, (m + n) % 3 != 0, Activation::Relu);
            }
        }
    }
}

#[test]
fn every_activation_kind() {
    // In-register (relu, linear), per-block element-wise, and row-wise epilogues.
    for act in [
        Activation::Linear,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Gelu,
        Activation::LeakyRelu {
            negative_slope: 0.2,
        },
        Activation::Softmax,
        Activation::LogSoftmax,
    ] {
        check(29, 70, 45, false, true, act);
        check(13, 600, 40, true, false, act);
    }
}

#[test]
fn strided_and_transposed_inputs() {
    let (m, k, n) = (14, 37, 35);
    let w = values(k * n, 5);
    let kernel = MatRef::from_slice(&w, k, n).unwrap();
    let packed = PackedKernel::new(kernel, None).unwrap();
    // The input stored transposed (K, M): columns of the view are not contiguous.
    let xt = values(m * k, 6);
    let x = MatRef::from_slice(&xt, k, m).unwrap().t();
    let mut out = vec![f32::NAN; m * n];
    dense_forward_packed(
        x,
        &packed,
        Activation::Tanh,
        MatMut::from_slice(&mut out, m, n).unwrap(),
    )
    .unwrap();
    check_dense(x, kernel, None, Activation::Tanh, &out).unwrap();
}

#[test]
fn narrow_layers_read_strided_inputs_in_place() {
    // One panel wide (N ≤ 16): the AVX2+FMA kernel reads the input rows in place, also
    // when they are `row_stride` apart with a gap, start mid-slice, or are all one row
    // (row stride 0, which stays packed).
    for &n in &[1, 7, 10, 16] {
        for &(m, k) in &[(1, 3), (5, 300), (6, 1), (7, 1100), (30, 17), (61, 64)] {
            let w = values(k * n, 11);
            let kernel = MatRef::from_slice(&w, k, n).unwrap();
            let b = values(n, 12);
            let packed = PackedKernel::new(kernel, Some(&b)).unwrap();
            let buf = values(3 + m * (k + 5), 13);
            for (rs, x) in [
                (
                    k + 5,
                    MatRef::from_strided(&buf[3..], m, k, k + 5, 1).unwrap(),
                ),
                (0, MatRef::from_strided(&buf[3..], m, k, 0, 1).unwrap()),
            ] {
                let out = packed_out(x, &packed, Activation::Relu);
                check_dense(x, kernel, Some(&b), Activation::Relu, &out)
                    .unwrap_or_else(|e| panic!("{m}x{k}x{n} row stride {rs}: {e}"));
            }
        }
    }
}

#[test]
fn narrow_dense_forward_is_the_packed_path() {
    // `dense_forward` packs narrow layers (N ≤ 16, M ≥ 2) for the call: the result is
    // the packed path's, bit for bit, and within the reference's bound (both layouts,
    // the GEMM and skinny shapes; every call here is past the tiny path's 2¹⁴ MACs).
    for &(m, k, n) in &[
        (2, 3000, 10),
        (16, 784, 10),
        (100, 300, 10),
        (61, 257, 16),
        (40, 500, 1),
    ] {
        for torch in [false, true] {
            let (x, w, b) = (values(m * k, 21), values(k * n, 22), values(n, 23));
            let kernel = if torch {
                MatRef::from_slice(&w, n, k).unwrap().t()
            } else {
                MatRef::from_slice(&w, k, n).unwrap()
            };
            let xv = MatRef::from_slice(&x, m, k).unwrap();
            let act = Activation::Gelu;
            let mut unpacked = vec![f32::NAN; m * n];
            dense_forward_into(
                xv,
                kernel,
                Some(&b),
                act,
                MatMut::from_slice(&mut unpacked, m, n).unwrap(),
            )
            .unwrap();
            check_dense(xv, kernel, Some(&b), act, &unpacked)
                .unwrap_or_else(|e| panic!("{m}x{k}x{n} torch={torch}: {e}"));
            let packed = PackedKernel::new(kernel, Some(&b)).unwrap();
            let out = packed_out(xv, &packed, act);
            if packed.uses_microkernels() {
                let same = out
                    .iter()
                    .zip(&unpacked)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{m}x{k}x{n} torch={torch}: not the packed path's bits"
                );
            }
        }
    }
}

#[test]
fn a_row_alone_gets_the_bits_it_gets_in_a_batch() {
    // One row runs a 1-row, up-to-4-panel kernel; in a batch, the row tiles. Both sum
    // in the same order, so a row's outputs do not depend on the batch around it.
    for &(k, n) in &[(17, 300), (1100, 129), (2100, 33), (64, 100), (5000, 1)] {
        let m = 5;
        let (x, w, b) = (values(m * k, 31), values(k * n, 32), values(n, 33));
        let kernel = MatRef::from_slice(&w, k, n).unwrap();
        let packed = PackedKernel::new(kernel, Some(&b)).unwrap();
        for act in [Activation::Relu, Activation::Linear, Activation::Gelu] {
            let all = packed_out(MatRef::from_slice(&x, m, k).unwrap(), &packed, act);
            for i in 0..m {
                let xi = MatRef::from_slice(&x[i * k..(i + 1) * k], 1, k).unwrap();
                let one = packed_out(xi, &packed, act);
                check_dense(xi, kernel, Some(&b), act, &one)
                    .unwrap_or_else(|e| panic!("1x{k}x{n} {act}: {e}"));
                if k * n > 4096 {
                    let same = one
                        .iter()
                        .zip(&all[i * n..(i + 1) * n])
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{k}x{n} {act}: row {i} alone differs from its batch");
                    // The same row as views a single row is read through: in place
                    // (mid-slice, with row stride 0 or k), or, its elements m apart
                    // (a column of the transposed storage), packed first.
                    let xt: Vec<f32> = (0..k * m).map(|q| x[(q % m) * k + q / m]).collect();
                    let views = [
                        MatRef::from_strided(&x[i * k..], 1, k, 0, 1).unwrap(),
                        MatRef::from_strided(&x[i * k..], 1, k, k, 1).unwrap(),
                        MatRef::from_strided(&xt[i..], 1, k, 1, m).unwrap(),
                    ];
                    for (v, view) in views.into_iter().enumerate() {
                        let got = packed_out(view, &packed, act);
                        let same = got
                            .iter()
                            .zip(&one)
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{k}x{n} {act}: row {i}, view {v} differs");
                    }
                }
            }
        }
    }
}

#[test]
fn special_values_propagate() {
    let (m, k, n) = (3, 4, 33);
    let mut x = values(m * k, 7);
    x[0] = f32::NAN;
    x[5] = f32::INFINITY;
    let w = values(k * n, 8);
    let kernel = MatRef::from_slice(&w, k, n).unwrap();
    let packed = PackedKernel::new(kernel, None).unwrap();
    let xv = MatRef::from_slice(&x, m, k).unwrap();
    for act in [Activation::Relu, Activation::Linear, Activation::Sigmoid] {
        let mut out = vec![0.0f32; m * n];
        dense_forward_packed(
            xv,
            &packed,
            act,
            MatMut::from_slice(&mut out, m, n).unwrap(),
        )
        .unwrap();
        check_dense(xv, kernel, None, act, &out).unwrap();
        assert!(
            out[..n].iter().all(|v| v.is_nan()),
            "{act}: a NaN input row is NaN"
        );
    }
}

#[test]
fn same_bits_for_any_thread_count() {
    for &(m, k, n) in &[(200, 300, 70), (30, 300, 700)] {
        let (x, w, b) = (values(m * k, 9), values(k * n, 10), values(n, 11));
        let packed = PackedKernel::new(MatRef::from_slice(&w, k, n).unwrap(), Some(&b)).unwrap();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![0.0f32; m * n];
            pool.install(|| {
                dense_forward_packed(
                    MatRef::from_slice(&x, m, k).unwrap(),
                    &packed,
                    Activation::Gelu,
                    MatMut::from_slice(&mut out, m, n).unwrap(),
                )
                .unwrap()
            });
            out
        };
        let one = run(1);
        for t in [2, 3, 7] {
            let o = run(t);
            assert!(
                one.iter().zip(&o).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{m}x{k}x{n}: {t} threads differ from 1"
            );
        }
    }
}

/// Documented: calls of at most 4096 multiply-adds (with `K·N ≤ 4096`) run the unpacked
/// paths on a row-major copy, so they are bitwise `dense_forward`'s; larger ones are
/// only within the bound (checked everywhere else here). (The unpacked tiny and GEMV
/// paths happen to sum in the microkernels' order too, bias first, so this holds with
/// or without the routing: what it pins down is the documented result.)
#[test]
fn tiny_calls_are_bitwise_the_unpacked_path() {
    use dense_kernel::dense_forward_into;
    for &(m, k, n) in &[
        (32, 4, 7),
        (1, 16, 16),
        (4, 32, 32),
        (64, 8, 8),
        (1, 64, 64),
    ] {
        let (x, w, b) = (values(m * k, 4), values(k * n, 5), values(n, 6));
        let kernel = MatRef::from_slice(&w, k, n).unwrap();
        let packed = PackedKernel::new(kernel, Some(&b)).unwrap();
        for act in [Activation::Relu, Activation::Gelu, Activation::Softmax] {
            let xv = MatRef::from_slice(&x, m, k).unwrap();
            let (mut p, mut u) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
            dense_forward_packed(xv, &packed, act, MatMut::from_slice(&mut p, m, n).unwrap())
                .unwrap();
            dense_forward_into(
                xv,
                kernel,
                Some(&b),
                act,
                MatMut::from_slice(&mut u, m, n).unwrap(),
            )
            .unwrap();
            assert!(
                p.iter().zip(&u).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{m}x{k}x{n} {act}: packed differs from unpacked"
            );
        }
    }
}

/// An empty weight may claim any number of rows (found by the `dense_shapes` fuzz
/// target: `(usize::MAX, 0)` looped over every row at packing time).
#[test]
fn empty_weights_with_huge_claimed_sizes_pack_at_once() {
    let empty: [f32; 0] = [];
    for (k, n) in [(usize::MAX, 0), (0, usize::MAX), (1 << 40, 0)] {
        let w = MatRef::from_strided(&empty, k, n, 3, 1).unwrap();
        let p = match PackedKernel::new(w, None) {
            Ok(p) => p,
            // Whole panels of usize::MAX columns do not fit in usize: a clear error.
            Err(DenseError::AllocationFailed { .. }) if n == usize::MAX => continue,
            Err(e) => panic!("{k}x{n}: {e}"),
        };
        assert_eq!((p.in_features(), p.units()), (k, n));
        if n == 0 && k < usize::MAX / 8 {
            // Five rows of a broadcast input against no columns: accepted, nothing to write.
            let x = MatRef::from_strided(&[1.0f32], 5, k, 0, 0).unwrap();
            let mut out: [f32; 0] = [];
            dense_forward_packed(
                x,
                &p,
                Activation::Relu,
                MatMut::from_slice(&mut out, 5, 0).unwrap(),
            )
            .unwrap();
        }
    }
}

#[test]
fn errors() {
    let w = values(12, 1);
    let kernel = MatRef::from_slice(&w, 4, 3).unwrap();
    assert!(matches!(
        PackedKernel::new(kernel, Some(&[1.0, 2.0])),
        Err(DenseError::BiasLength { len: 2, units: 3 })
    ));
    let packed = PackedKernel::new(kernel, None).unwrap();
    let x = values(10, 2);
    let mut out = vec![0.0f32; 6];
    // K mismatch.
    assert!(matches!(
        dense_forward_packed(
            MatRef::from_slice(&x, 2, 5).unwrap(),
            &packed,
            Activation::Relu,
            MatMut::from_slice(&mut out, 2, 3).unwrap()
        ),
        Err(DenseError::InnerDimMismatch { .. })
    ));
    // Output shape.
    assert!(matches!(
        dense_forward_packed(
            MatRef::from_slice(&x[..8], 2, 4).unwrap(),
            &packed,
            Activation::Relu,
            MatMut::from_slice(&mut out, 3, 2).unwrap()
        ),
        Err(DenseError::OutputShape { .. })
    ));
    // M = 0 and N = 0 are fine.
    let empty = PackedKernel::new(MatRef::from_slice(&[], 4, 0).unwrap(), Some(&[])).unwrap();
    dense_forward_packed(
        MatRef::from_slice(&x[..8], 2, 4).unwrap(),
        &empty,
        Activation::Softmax,
        MatMut::from_slice(&mut [], 2, 0).unwrap(),
    )
    .unwrap();
    // Send + Sync, for sharing across threads.
    fn shareable<T: Send + Sync>(_: &T) {}
    shareable(&packed);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
    ))]
    #[test]
    fn packed_vs_reference(
        m in 0usize..40,
        // Up to two k blocks and a bit (blocks of at most 1024).
        k in prop_oneof![0usize..300, 900usize..2200],
        // Up to two 48-column panels, and around 192 units, where AMD AVX-512 CPUs
        // switch from the 8×48 tile to the 12×32 one.
        n in prop_oneof![1usize..80, 180usize..260],
        torch in any::<bool>(),
        bias in any::<bool>(),
        act in prop::sample::select(vec![
            Activation::Linear, Activation::Relu, Activation::Sigmoid, Activation::Softmax,
            Activation::Elu { alpha: 1.0 }, Activation::HardSigmoid,
        ]),
    ) {
        check(m, k, n, torch, bias, act);
    }
}

/// The forward pass packs its input on the calling thread's stack (144 KiB): a thread
/// with 256 KiB of stack runs it, optimised or not, in the shapes that fill that
/// buffer (a 36-row block of 1024-step sums; 24 rows; 40; one row), with element-wise
/// and row-wise epilogues, and so does the unpacked path. (Unoptimised builds once kept
/// every inlined activation body's temporaries in one frame, about 1 MiB on AVX-512.)
#[test]
fn runs_on_a_thread_with_256_kib_of_stack() {
    let (k, n) = (2048, 100);
    let (x, w, b) = (values(40 * k, 41), values(k * n, 42), values(n, 43));
    let kernel = MatRef::from_slice(&w, k, n).unwrap();
    let packed = PackedKernel::new(kernel, Some(&b)).unwrap();
    let on_small_stack = |f: &(dyn Fn() -> Vec<f32> + Sync)| {
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn_scoped(s, f)
                .unwrap()
                .join()
                .unwrap()
        })
    };
    for m in [36, 24, 40, 1] {
        let xv = MatRef::from_slice(&x[..m * k], m, k).unwrap();
        for act in [
            Activation::Gelu,
            Activation::Mish,
            Activation::Tanh,
            Activation::Softmax,
        ] {
            let packed_y = on_small_stack(&|| packed_out(xv, &packed, act));
            check_dense(xv, kernel, Some(&b), act, &packed_y)
                .unwrap_or_else(|e| panic!("packed {m}x{k}x{n} {act}: {e}"));
            let y =
                on_small_stack(&|| dense_forward(xv, kernel, Some(&b), act).unwrap().into_vec());
            check_dense(xv, kernel, Some(&b), act, &y)
                .unwrap_or_else(|e| panic!("{m}x{k}x{n} {act}: {e}"));
        }
    }
}
