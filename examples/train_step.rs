//! One training step of the issue's MLP, timed the way `peers/train_step.py` times
//! PyTorch and Keras: 784 → 512 → 256 → 10 (relu, relu, softmax), batch 128, `f32`,
//! categorical crossentropy, Adam; warm-up, then about `seconds` of steps; prints
//! `ours <threads> <median ms per step> <GFLOP/s>` (the GEMMs a step needs: 0.308 GFLOP).
//!
//! ```text
//! taskset -c 0 cargo run --release --example train_step -- 1
//! taskset -c 0,1 cargo run --release --example train_step -- 2
//! ```

use dense_kernel::layer::{Dense, Sequential};
use dense_kernel::Activation::{Relu, Softmax};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads: usize = args.first().map_or(Ok(1), |s| s.parse())?;
    let seconds: f64 = args.get(1).map_or(Ok(1.5), |s| s.parse())?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let (m, flops) = (128usize, 308_150_272f64);
    let mut state = 1u64;
    let mut uniform = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let x: Vec<f32> = (0..m * 784).map(|_| uniform()).collect();
    let mut y = vec![0.0f32; m * 10];
    for r in 0..m {
        y[r * 10 + (r * 7) % 10] = 1.0;
    }
    let mut model = Sequential::<f32>::new()
        .add(Dense::new(512).activation(Relu).input_dim(784))?
        .add(Dense::new(256).activation(Relu))?
        .add(Dense::new(10).activation(Softmax))?;
    model.compile("adam".parse()?, "categorical_crossentropy".parse()?)?;
    let mut times = Vec::new();
    pool.install(|| -> Result<(), dense_kernel::DenseError> {
        for _ in 0..10 {
            model.train_on_batch(&x, &[m, 784], &y, &[m, 10])?;
        }
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < seconds {
            let t = Instant::now();
            model.train_on_batch(&x, &[m, 784], &y, &[m, 10])?;
            times.push(t.elapsed().as_secs_f64());
        }
        Ok(())
    })?;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "ours {threads} {:.3} {:.2}",
        median * 1e3,
        flops / median / 1e9
    );
    Ok(())
}
