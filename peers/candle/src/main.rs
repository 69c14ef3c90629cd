//! Peer benchmark: Dense forward with candle, f32, one thread, the way a candle user
//! writes it: `candle_nn::Linear` (PyTorch layout `(out, in)`, forward `x·Wᵀ + b`:
//! a matmul through the `gemm` crate, then a broadcast add), then the activation as a
//! tensor op (`relu`, `gelu_erf`, `candle_nn::ops::sigmoid`). Every step is timed; a
//! fresh output tensor per call is part of candle's API.
//!
//! `peer_candle --shapes "M,K,N;..." --acts relu,gelu,sigmoid --seconds 0.4 [--check]`
//! prints `candle M K N act GFLOP/s` lines, as `peers/gemm` does.
use candle_core::{Device, Module, Tensor};
use candle_nn::Linear;
use std::time::Instant;

// Small deterministic PRNG (xorshift64*), uniform in [-1, 1).
struct Rng(u64);
impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545F4914F6CDD1D);
        ((r >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// x: m×k row-major; w: n×k row-major (PyTorch layout); b: n.
fn inputs(m: usize, k: usize, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut rng = Rng(seed | 1);
    let s = 1.0 / (k as f32).sqrt();
    let x = (0..m * k).map(|_| rng.next_f32()).collect();
    let w = (0..n * k).map(|_| rng.next_f32() * s).collect();
    let b = (0..n).map(|_| rng.next_f32()).collect();
    (x, w, b)
}

fn forward(layer: &Linear, x: &Tensor, act: &str) -> candle_core::Result<Tensor> {
    let y = layer.forward(x)?;
    match act {
        "relu" => y.relu(),
        "gelu" => y.gelu_erf(),
        "sigmoid" => candle_nn::ops::sigmoid(&y),
        _ => panic!("unknown act {act}"),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Largest |candle − f64 reference| over the largest |reference|.
fn check(m: usize, k: usize, n: usize, act: &str) -> f64 {
    let (x, w, b) = inputs(m, k, n, 42);
    let dev = Device::Cpu;
    let layer = Linear::new(
        Tensor::from_slice(&w, (n, k), &dev).unwrap(),
        Some(Tensor::from_slice(&b, n, &dev).unwrap()),
    );
    let xt = Tensor::from_slice(&x, (m, k), &dev).unwrap();
    let y: Vec<f32> = forward(&layer, &xt, act)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let (mut err, mut top) = (0f64, 1e-30f64);
    for i in 0..m {
        for j in 0..n {
            let mut z = b[j] as f64;
            for p in 0..k {
                z += x[i * k + p] as f64 * w[j * k + p] as f64;
            }
            let r = match act {
                "relu" => z.max(0.0),
                "gelu" => 0.5 * z * (1.0 + erf(z / std::f64::consts::SQRT_2)),
                _ => 1.0 / (1.0 + (-z).exp()),
            };
            err = err.max((y[i * n + j] as f64 - r).abs());
            top = top.max(r.abs());
        }
    }
    err / top
}

/// erf to ~1e-7 (Abramowitz–Stegun 7.1.26 is too coarse for a check of f32; this
/// sums the Taylor series near 0 and the continued fraction of erfc beyond).
fn erf(x: f64) -> f64 {
    let a = x.abs();
    let v = if a < 2.5 {
        let (mut term, mut sum, mut k) = (a, a, 0.0f64);
        while term.abs() > 1e-17 * sum.abs() {
            k += 1.0;
            term *= -a * a / k;
            sum += term / (2.0 * k + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc(a) = e^(−a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + …))))
        let mut f = a;
        for i in (1..60).rev() {
            f = a + (i as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
    };
    v.copysign(x)
}

fn main() {
    // One thread: candle's CPU matmul asks for RAYON_NUM_THREADS (else every core).
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let args: Vec<String> = std::env::args().collect();
    let (mut shapes, mut acts, mut seconds, mut do_check) = (
        "32,512,512".to_string(),
        "relu,gelu,sigmoid".to_string(),
        1.0f64,
        false,
    );
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--lib" => i += 1, // compare.sh passes --lib candle
            "--shapes" => {
                i += 1;
                shapes = args[i].clone()
            }
            "--acts" => {
                i += 1;
                acts = args[i].clone()
            }
            "--seconds" => {
                i += 1;
                seconds = args[i].parse().unwrap()
            }
            "--check" => do_check = true,
            a => panic!("unknown arg {a}"),
        }
        i += 1;
    }
    if do_check {
        let mut ok = true;
        for &(m, k, n) in &[(7, 33, 17), (64, 128, 96)] {
            for act in acts.split(',') {
                let rel = check(m, k, n, act);
                println!(
                    "check candle {m} {k} {n} {act} rel={rel:.3e} {}",
                    if rel <= 1e-3 { "OK" } else { "FAIL" }
                );
                ok &= rel <= 1e-3;
            }
        }
        std::process::exit(if ok { 0 } else { 1 });
    }
    let dev = Device::Cpu;
    for shp in shapes.split(';').filter(|s| !s.trim().is_empty()) {
        let d: Vec<usize> = shp.split(',').map(|s| s.trim().parse().unwrap()).collect();
        let (m, k, n) = (d[0], d[1], d[2]);
        let (x, w, b) = inputs(m, k, n, 1234);
        let layer = Linear::new(
            Tensor::from_slice(&w, (n, k), &dev).unwrap(),
            Some(Tensor::from_slice(&b, n, &dev).unwrap()),
        );
        let xt = Tensor::from_slice(&x, (m, k), &dev).unwrap();
        let flops = 2.0 * (m * k * n) as f64;
        for act in acts.split(',').filter(|s| !s.is_empty()) {
            let t0 = Instant::now();
            let mut reps = 0;
            while reps < 3 || t0.elapsed().as_secs_f64() < 0.1 * seconds {
                std::hint::black_box(forward(&layer, &xt, act).unwrap());
                reps += 1;
            }
            let mut times = Vec::new();
            let start = Instant::now();
            while times.len() < 5 || start.elapsed().as_secs_f64() < seconds {
                let t = Instant::now();
                std::hint::black_box(forward(&layer, std::hint::black_box(&xt), act).unwrap());
                times.push(t.elapsed().as_secs_f64());
            }
            println!(
                "candle {m} {k} {n} {act} {:.2}",
                flops / median(&mut times) / 1e9
            );
        }
    }
}
