//! Runs real Dense forward passes and prints what they computed.
//!
//! ```text
//! cargo run --release --example forward                 # the seed layer + a timed 256x1024x1024 gelu
//! cargo run --release --example forward -- 64 512 256 softmax   # M K N activation
//! ```
//!
//! 1. The Keras tutorial's first layer, `Dense(7, input_shape=(4,), activation='sigmoid')`,
//!    on a batch of 32, with glorot-uniform weights and zero bias (Keras's defaults).
//! 2. The same weights in PyTorch's `(units, in)` layout through a transposed view: the
//!    results are bit-identical.
//! 3. A larger layer, timed (median of several runs), with its max deviation from the
//!    naive f64 reference.

use dense_kernel::reference::{check_dense, dense_reference};
use dense_kernel::{dense_forward, Activation, MatRef};
use std::time::Instant;

/// A small deterministic generator for the example's data (SplitMix64).
struct Rng(u64);

impl Rng {
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let u = ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    /// Keras's glorot_uniform for a `(fan_in, fan_out)` kernel: U(±sqrt(6/(in+out))).
    fn glorot_uniform(&mut self, fan_in: usize, fan_out: usize) -> Vec<f32> {
        let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
        (0..fan_in * fan_out)
            .map(|_| self.uniform(-limit, limit))
            .collect()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut rng = Rng(2024);
    println!(
        "activation kernels: {} (cpu features: {})",
        dense_kernel::simd_path(),
        dense_kernel::cpu_features()
    );

    // 1. The seed layer: Dense(7) on inputs of 4 features, sigmoid.
    let (batch, inp, units) = (32, 4, 7);
    let x: Vec<f32> = (0..batch * inp).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let w = rng.glorot_uniform(inp, units);
    let b = vec![0.0f32; units];
    let act: Activation = "sigmoid".parse()?;
    let xv = MatRef::from_slice(&x, batch, inp)?;
    let wv = MatRef::from_slice(&w, inp, units)?;
    let y = dense_forward(xv, wv, Some(&b), act)?;
    println!(
        "Dense({units}, activation='{act}') on a ({batch}, {inp}) batch -> ({}, {})",
        y.rows(),
        y.cols()
    );
    println!(
        "params: {} (kernel {inp}x{units} + bias {units})",
        inp * units + units
    );
    for i in 0..3 {
        let row: Vec<String> = (0..units)
            .map(|j| format!("{:.5}", y.get(i, j).unwrap()))
            .collect();
        println!("  y[{i}] = [{}]", row.join(", "));
    }
    println!("  ...");
    check_dense(xv, wv, Some(&b), act, y.as_slice())?;
    println!("  matches the naive f64 reference within the derived tolerance");

    // 2. PyTorch layout: the weight stored (units, in), used through a transposed view.
    let mut w_torch = vec![0.0f32; units * inp];
    for k in 0..inp {
        for j in 0..units {
            w_torch[j * inp + k] = w[k * units + j];
        }
    }
    let y_torch = dense_forward(
        xv,
        MatRef::from_slice(&w_torch, units, inp)?.t(),
        Some(&b),
        act,
    )?;
    println!(
        "PyTorch (units, in) weight via .t(): {}",
        if y_torch == y {
            "bit-identical"
        } else {
            "DIFFERENT"
        }
    );

    // 3. A larger layer, timed.
    let (m, k, n, act) = parse_shape(&args)?;
    let x: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let w = rng.glorot_uniform(k, n);
    let b: Vec<f32> = (0..n).map(|_| rng.uniform(-0.1, 0.1)).collect();
    let (xv, wv) = (MatRef::from_slice(&x, m, k)?, MatRef::from_slice(&w, k, n)?);
    let runs = (2e9 / (2.0 * (m * k * n) as f64)).clamp(3.0, 50.0) as usize;
    let mut times = Vec::with_capacity(runs);
    let mut y = dense_forward(xv, wv, Some(&b), act)?;
    for _ in 0..runs {
        let t = Instant::now();
        y = dense_forward(xv, wv, Some(&b), act)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[runs / 2];
    let gflops = 2.0 * (m * k * n) as f64 / median / 1e9;
    println!(
        "{m}x{k} . {k}x{n} + bias, {act}: median {:.3} ms over {runs} runs, {gflops:.1} GFLOP/s (f32, 1 thread)",
        median * 1e3
    );
    if m * k * n <= 1 << 28 {
        let r = dense_reference(xv, wv, Some(&b), act)?;
        let dev = y
            .as_slice()
            .iter()
            .zip(r.as_slice())
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0.0, f64::max);
        check_dense(xv, wv, Some(&b), act, y.as_slice())?;
        println!("  max |y - reference| = {dev:.2e}, within the derived tolerance");
    }
    Ok(())
}

/// `M K N [activation]` from the command line, or the default 256 1024 1024 gelu.
fn parse_shape(
    args: &[String],
) -> Result<(usize, usize, usize, Activation), Box<dyn std::error::Error>> {
    if args.is_empty() {
        return Ok((256, 1024, 1024, Activation::Gelu));
    }
    if args.len() < 3 {
        return Err("usage: forward [M K N [activation]]".into());
    }
    let dim = |s: &String| {
        s.parse::<usize>()
            .map_err(|e| format!("bad dimension {s:?}: {e}"))
    };
    let act = match args.get(3) {
        Some(a) => a.parse::<Activation>()?,
        None => Activation::Relu,
    };
    Ok((dim(&args[0])?, dim(&args[1])?, dim(&args[2])?, act))
}
