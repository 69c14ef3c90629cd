//! What the element-wise epilogue costs on the packed path, as ratios timed side by
//! side: relu (applied in registers), gelu, sigmoid and linear take turns in one process,
//! round after round, so the VM's drift hits them alike; each round's time of an
//! activation is divided by that round's relu time, and the medians are printed.
//! (Criterion times one activation after another, seconds apart, so its ratios carry
//! the drift between them.)
//!
//! `cargo run --release --example epilogue_ratio -- 32 512 512` (`M K N`, default
//! 32×512×512; one thread, as the packed-path issue's targets are stated:
//! `taskset -c 1` pins it to one CPU as well).

use dense_kernel::{dense_forward_packed, Activation, MatMut, MatRef, PackedKernel};
use std::hint::black_box;
use std::time::Instant;

#[path = "../benches/common/mod.rs"]
mod common;
use common::data;

const ROUNDS: usize = 41;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let (m, k, n) = match args[..] {
        [] => (32, 512, 512),
        [m, k, n] => (m, k, n),
        _ => return Err("usage: epilogue_ratio [M K N]".into()),
    };
    let (x, w, b) = (data(m * k, 1), data(k * n, 2), data(n, 3));
    let mut out = vec![0.0f32; m * n];
    let packed = PackedKernel::new(MatRef::from_slice(&w, k, n)?, Some(&b))?;
    let acts = [
        Activation::Relu,
        Activation::Gelu,
        Activation::Sigmoid,
        Activation::Linear,
    ];
    let flops = 2.0 * (m * k * n) as f64;
    // About 20 ms per activation and round.
    let reps = ((2e-2 * 1e11 / flops) as usize).max(1);
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let mut secs = vec![Vec::with_capacity(ROUNDS); acts.len()];
    one.install(|| -> Result<(), dense_kernel::DenseError> {
        for round in 0..=ROUNDS {
            for (a, &act) in acts.iter().enumerate() {
                let t = Instant::now();
                for _ in 0..reps {
                    dense_forward_packed(
                        MatRef::from_slice(black_box(&x), m, k)?,
                        &packed,
                        act,
                        MatMut::from_slice(&mut out, m, n)?,
                    )?;
                    black_box(&mut out);
                }
                // Round 0 warms up.
                if round > 0 {
                    secs[a].push(t.elapsed().as_secs_f64() / reps as f64);
                }
            }
        }
        Ok(())
    })?;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("{m}x{k}x{n}, packed, f32 with bias, one thread, {ROUNDS} alternating rounds");
    println!("activation   median µs   GFLOP/s   time / relu (median of rounds)");
    for (a, act) in acts.iter().enumerate() {
        let ratio = median(secs[a].iter().zip(&secs[0]).map(|(t, r)| t / r).collect());
        let t = median(secs[a].clone());
        println!(
            "{:<10} {:>11.2} {:>9.1} {:>10.3}",
            act.to_string(),
            t * 1e6,
            flops / t / 1e9,
            ratio
        );
    }
    Ok(())
}
