//! `dense_forward` on the skinny and tiny paths with a Keras-layout `(in, units)` weight
//! and the same weight in PyTorch's `(units, in)` layout seen through `.t()`: GFLOP/s,
//! median of 7 timings, on 1 and 2 threads (linear, `f32`). docs/PERFORMANCE.md, "The
//! PyTorch layout on the skinny path", compares two builds with it, alternated.
//!
//! ```text
//! cargo run --release --example layout_timing              # every shape, both layouts
//! LT_TORCH=1 cargo run --release --example layout_timing   # the PyTorch layout only
//! ```

use dense_kernel::{dense_forward_into, Activation, MatMut, MatRef};
use std::time::Instant;

const SHAPES: [(usize, usize, usize); 10] = [
    (1, 4096, 4096),
    (8, 4096, 4096),
    (16, 4096, 4096),
    (32, 4096, 4096),
    (1, 784, 128),
    (4, 512, 256),
    (16, 512, 256),
    (2, 300, 20),
    (32, 4, 7),
    (1, 1024, 1024),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let torch_only = std::env::var("LT_TORCH").is_ok();
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        for &(m, k, n) in &SHAPES {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
                .collect();
            let w: Vec<f32> = (0..k * n)
                .map(|i| ((i * 104_729) % 997) as f32 / 997.0 - 0.5)
                .collect();
            let b = vec![0.1f32; n];
            let mut line = format!("{threads}T {m}x{k}x{n}");
            for torch in [false, true] {
                if torch_only && !torch {
                    continue;
                }
                let wv = if torch {
                    MatRef::from_slice(&w, n, k)?.t()
                } else {
                    MatRef::from_slice(&w, k, n)?
                };
                let xv = MatRef::from_slice(&x, m, k)?;
                let mut y = vec![0f32; m * n];
                let flops = 2.0 * (m * k * n) as f64;
                let reps = ((2e8 / flops) as usize).clamp(3, 100_000);
                let mut times = Vec::new();
                for _ in 0..7 {
                    let t = Instant::now();
                    pool.install(|| {
                        for _ in 0..reps {
                            let out = MatMut::from_slice(&mut y, m, n)?;
                            dense_forward_into(xv, wv, Some(&b), Activation::Linear, out)?;
                        }
                        Ok::<_, dense_kernel::DenseError>(())
                    })?;
                    times.push(t.elapsed().as_secs_f64() / reps as f64);
                }
                times.sort_by(f64::total_cmp);
                let name = if torch { "torch" } else { "keras" };
                line += &format!("  {name}: {:.1} GF/s", flops / times[3] / 1e9);
            }
            println!("{line}");
        }
    }
    Ok(())
}
