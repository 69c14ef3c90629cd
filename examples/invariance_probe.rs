//! Batch and layout invariance, as it stands: for a layer `K → N`, row 0 of the result
//! computed inside batches of `M` rows, from Keras-layout `(K, N)` and PyTorch-layout
//! `(N, K)` weights, one-off (`dense_forward`) and packed (`dense_forward_packed`), on
//! 1, 2 and 3 threads, against row 0 of a one-row, one-thread, Keras-layout
//! `dense_forward` call. Prints, per case, how many of the `N` outputs differ in any
//! bit: zero everywhere since issue 31 (`tests/invariance.rs` asserts it).
//!
//! ```text
//! cargo run --release --example invariance_probe -- [K N]     # default 512 256
//! ```

use dense_kernel::{
    dense_forward, dense_forward_packed, simd_path, Activation, DenseError, MatMut, MatRef,
    PackedKernel,
};

fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i.wrapping_mul(2_654_435_761).wrapping_add(seed * 977) >> 7) % 2001) as f32 / 1000.0
                - 1.0
        })
        .collect()
}

fn main() -> Result<(), DenseError> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (k, n) = match args[..] {
        [k, n, ..] => (k, n),
        _ => (512, 256),
    };
    let w = values(k * n, 1);
    // The same kernel in PyTorch's layout: (N, K), row j holding column j of `w`.
    let w_torch = MatRef::from_slice(&w, k, n)?.t().to_mat()?.into_vec();
    let b = values(n, 2);
    let x = values(4096 * k, 3);
    let keras = MatRef::from_slice(&w, k, n)?;
    let torch = MatRef::from_slice(&w_torch, n, k)?.t();
    let act = Activation::Relu;
    let one = |m: usize, kern: MatRef<'_, f32>| -> Result<Vec<f32>, DenseError> {
        let y = dense_forward(MatRef::from_slice(&x[..m * k], m, k)?, kern, Some(&b), act)?;
        Ok(y.as_slice()[..n].to_vec())
    };
    let reference = one(1, keras)?;
    let packed_keras = PackedKernel::new(keras, Some(&b))?;
    let packed_torch = PackedKernel::new(torch, Some(&b))?;
    let packed = |m: usize, p: &PackedKernel| -> Result<Vec<f32>, DenseError> {
        let mut out = vec![0.0f32; m * n];
        dense_forward_packed(
            MatRef::from_slice(&x[..m * k], m, k)?,
            p,
            act,
            MatMut::from_slice(&mut out, m, n)?,
        )?;
        Ok(out[..n].to_vec())
    };
    let differ = |y: &[f32]| {
        y.iter()
            .zip(&reference)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count()
    };
    println!(
        "{k} → {n}, relu, f32, SIMD path {}; outputs of row 0 (of {n}) that differ from",
        simd_path()
    );
    println!("a 1-row, 1-thread, Keras-layout dense_forward:");
    println!(
        "{:>6} {:>8} | {:>12} {:>12} {:>12} {:>12}",
        "M", "threads", "keras", "torch", "packed keras", "packed torch"
    );
    for threads in [1usize, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| DenseError::InvalidConfig {
                what: e.to_string(),
            })?;
        for m in [1usize, 2, 8, 16, 17, 32, 64, 100, 256, 300, 1024, 4096] {
            let row = pool.install(|| -> Result<[usize; 4], DenseError> {
                Ok([
                    differ(&one(m, keras)?),
                    differ(&one(m, torch)?),
                    differ(&packed(m, &packed_keras)?),
                    differ(&packed(m, &packed_torch)?),
                ])
            })?;
            println!(
                "{m:>6} {threads:>8} | {:>12} {:>12} {:>12} {:>12}",
                row[0], row[1], row[2], row[3]
            );
        }
    }
    Ok(())
}
