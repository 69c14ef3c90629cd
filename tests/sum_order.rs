//! Every path sums `K` in the crate's one order, bit for bit: blocks of 256 steps at
//! fixed offsets, each block's sum started from zero with one fused multiply-add per
//! step in `p` order, the first block's sum added to the bias (or standing alone), each
//! later one to the running total (`simd::K_BLOCK`, docs/ACCURACY.md). A scalar
//! emulation of that order (`f32::mul_add` is the correctly rounded fused multiply-add)
//! is checked against the tiny and skinny paths (the Keras layout), the GEMM path
//! (matrixmultiply, whose `kc` is 256 and which adds to a bias-filled output) and the
//! packed path, on inexact data, for sums that end inside, at and past block edges and
//! past the packed path's `k` blocks. The paths fuse their multiply-adds where the CPU
//! has FMA; the portable path without it (and matrixmultiply without it) multiplies and
//! adds, and is held to the derived bound only (by the other tests).
//!
//! Each path is run on the weight in three storages: Keras's `(in, units)`, PyTorch's
//! `(units, in)` seen transposed, and a strided view with neither dimension contiguous;
//! all three must give the order's bits.

use dense_kernel::{
    dense_forward_into_on, dense_forward_packed, simd_path, Activation, ForwardPath, MatMut,
    MatRef, PackedKernel, SimdPath,
};

const K_BLOCK: usize = 256;

/// Inexact values in [−1, 1): every product and sum rounds.
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u32 << 24) as f32) * 2.0 - 1.0 + 1e-3
        })
        .collect()
}

/// The crate's order for output `(i, j)`.
fn emulate(x: &[f32], w: &[f32], b: Option<&[f32]>, k: usize, n: usize, i: usize, j: usize) -> f32 {
    let mut total: Option<f32> = None;
    for b0 in (0..k).step_by(K_BLOCK) {
        let mut s = 0.0f32;
        for p in b0..(b0 + K_BLOCK).min(k) {
            s = x[i * k + p].mul_add(w[p * n + j], s);
        }
        total = Some(match (total, b) {
            (None, Some(b)) => s + b[j],
            (None, None) => s,
            (Some(t), _) => s + t,
        });
    }
    total.unwrap_or_else(|| b.map_or(0.0, |b| b[j]))
}

#[test]
fn every_path_sums_k_in_the_one_blocked_order() {
    let fused = matches!(simd_path(), SimdPath::Avx512 | SimdPath::Avx2Fma);
    let mm_fused = cfg!(target_arch = "x86_64") && {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    };
    if !fused {
        println!(
            "{}: no fused multiply-add on this path: skipped",
            simd_path()
        );
        return;
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for &k in &[1, 5, 255, 256, 257, 300, 600, 1100, 2049, 4096] {
        for &(m, n) in &[(1, 7), (3, 33), (17, 100), (40, 10), (5, 200)] {
            let (x, w, b) = (values(m * k, 1), values(k * n, 2), values(n, 3));
            let xv = MatRef::from_slice(&x, m, k).unwrap();
            let wv = MatRef::from_slice(&w, k, n).unwrap();
            let mut wt = vec![0.0f32; k * n];
            let mut ws = vec![0.0f32; k * (2 * n + 1)];
            for p in 0..k {
                for j in 0..n {
                    wt[j * k + p] = w[p * n + j];
                    ws[p * (2 * n + 1) + 2 * j] = w[p * n + j];
                }
            }
            let storages = [
                ("keras", wv),
                ("torch", MatRef::from_slice(&wt, n, k).unwrap().t()),
                (
                    "strided",
                    MatRef::from_strided(&ws, k, n, 2 * n + 1, 2).unwrap(),
                ),
            ];
            for bias in [Some(&b[..]), None] {
                let want: Vec<u32> = (0..m * n)
                    .map(|e| emulate(&x, &w, bias, k, n, e / n, e % n).to_bits())
                    .collect();
                let mut runs: Vec<(String, Vec<f32>)> = Vec::new();
                for (name, path) in [
                    ("tiny", ForwardPath::Tiny),
                    ("skinny", ForwardPath::Skinny),
                    ("gemm", ForwardPath::Gemm),
                ] {
                    if path == ForwardPath::Gemm && !mm_fused {
                        continue;
                    }
                    for (layout, kernel) in storages {
                        let mut y = vec![f32::NAN; m * n];
                        dense_forward_into_on(
                            path,
                            xv,
                            kernel,
                            bias,
                            Activation::Linear,
                            MatMut::from_slice(&mut y, m, n).unwrap(),
                        )
                        .unwrap();
                        runs.push((format!("{name} ({layout})"), y));
                    }
                }
                let p = PackedKernel::new(wv, bias).unwrap();
                if p.uses_microkernels() {
                    let mut y = vec![f32::NAN; m * n];
                    dense_forward_packed(
                        xv,
                        &p,
                        Activation::Linear,
                        MatMut::from_slice(&mut y, m, n).unwrap(),
                    )
                    .unwrap();
                    runs.push(("packed".into(), y));
                }
                for (name, y) in runs {
                    checked += 1;
                    let bits: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
                    if bits != want {
                        let e = bits.iter().zip(&want).position(|(a, b)| a != b).unwrap();
                        failures.push(format!(
                            "{name} {m}x{k}x{n} bias {}: entry {e} {} vs the order's {}",
                            bias.is_some(),
                            f32::from_bits(bits[e]),
                            f32::from_bits(want[e])
                        ));
                    }
                }
            }
        }
    }
    assert!(checked >= 900, "{checked} runs");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
