//! Peer benchmark: Dense forward out = act(x @ W + b) using the `gemm` crate,
//! f32, single-threaded (Parallelism::None).
//! dst is pre-filled with the bias (broadcast over rows); then
//! gemm computes dst = alpha*dst + beta*(x@W) with alpha=1, beta=1, read_dst=true;
//! then the activation is applied in a plain loop. All of this is timed.
use gemm::{gemm, Parallelism};
use std::time::Instant;

#[derive(Clone, Copy, Debug)]
enum Act {
    Relu,
    Gelu,
    Sigmoid,
}

impl Act {
    fn parse(s: &str) -> Act {
        match s {
            "relu" => Act::Relu,
            "gelu" => Act::Gelu,
            "sigmoid" => Act::Sigmoid,
            _ => panic!("unknown act {s}"),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Act::Relu => "relu",
            Act::Gelu => "gelu",
            Act::Sigmoid => "sigmoid",
        }
    }
}

#[inline(never)]
fn apply_act(out: &mut [f32], act: Act) {
    match act {
        Act::Relu => {
            for v in out.iter_mut() {
                *v = v.max(0.0)
            }
        }
        Act::Gelu => {
            const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
            for v in out.iter_mut() {
                let x = *v;
                *v = 0.5 * x * (1.0 + libm::erff(x * FRAC_1_SQRT_2));
            }
        }
        Act::Sigmoid => {
            for v in out.iter_mut() {
                *v = 1.0 / (1.0 + (-*v).exp())
            }
        }
    }
}

/// The timed call: out = act(x @ w + b). x: m×k, w: k×n, out: m×n, all row-major.
#[inline(never)]
fn dense(m: usize, k: usize, n: usize, x: &[f32], w: &[f32], b: &[f32], out: &mut [f32], act: Act) {
    for row in out.chunks_exact_mut(n) {
        row.copy_from_slice(b);
    }
    unsafe {
        gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize, // dst, col stride, row stride
            true,       // read_dst
            x.as_ptr(),
            1,
            k as isize, // lhs m×k row-major
            w.as_ptr(),
            1,
            n as isize, // rhs k×n row-major
            1.0f32,
            1.0f32, // alpha (dst), beta (product)
            false,
            false,
            false,
            Parallelism::None,
        );
    }
    apply_act(out, act);
}

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

fn make_inputs(m: usize, k: usize, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut rng = Rng(seed | 1);
    let s = 1.0 / (k as f32).sqrt();
    let x: Vec<f32> = (0..m * k).map(|_| rng.next_f32()).collect();
    let w: Vec<f32> = (0..k * n).map(|_| rng.next_f32() * s).collect();
    let b: Vec<f32> = (0..n).map(|_| rng.next_f32()).collect();
    (x, w, b)
}

fn reference(m: usize, k: usize, n: usize, x: &[f32], w: &[f32], b: &[f32], act: Act) -> Vec<f64> {
    let mut r = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = b[j] as f64;
            for p in 0..k {
                acc += x[i * k + p] as f64 * w[p * n + j] as f64;
            }
            r[i * n + j] = match act {
                Act::Relu => acc.max(0.0),
                Act::Gelu => 0.5 * acc * (1.0 + libm::erf(acc / std::f64::consts::SQRT_2)),
                Act::Sigmoid => 1.0 / (1.0 + (-acc).exp()),
            };
        }
    }
    r
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut lib = "gemm".to_string();
    let mut shapes = "32,512,512;64,1024,1024".to_string();
    let mut acts = "relu,gelu,sigmoid".to_string();
    let mut seconds = 1.0f64;
    let mut check = false;
    let mut i = 1;
    while i < args.len() {
        let a = args[i].as_str();
        let (key, inline_val) = match a.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (a, None),
        };
        let mut val = || -> String {
            if let Some(v) = inline_val.clone() {
                v
            } else {
                i += 1;
                args[i].clone()
            }
        };
        match key {
            "--lib" => lib = val(),
            "--shapes" => shapes = val(),
            "--acts" => acts = val(),
            "--seconds" => seconds = val().parse().unwrap(),
            "--check" => check = true,
            "-h" | "--help" => {
                println!("peer_gemm --lib gemm --shapes \"M,K,N;...\" --acts relu,gelu,sigmoid --seconds 1.0 [--check]");
                return;
            }
            _ => panic!("unknown arg {a}"),
        }
        i += 1;
    }
    assert_eq!(lib, "gemm", "this binary only implements --lib gemm");
    let acts: Vec<Act> = acts
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Act::parse(s.trim()))
        .collect();

    if check {
        let avx512 = cfg!(feature = "avx512") && std::is_x86_feature_detected!("avx512f");
        eprintln!("# gemm 0.19.0, x86-v4 feature compiled: {}, avx512f detected: {} => AVX-512 kernels {}",
            cfg!(feature = "avx512"), std::is_x86_feature_detected!("avx512f"),
            if avx512 { "ACTIVE" } else { "inactive (AVX2/FMA)" });
        let mut all_ok = true;
        for &(m, k, n) in &[(7usize, 33usize, 17usize), (64, 128, 96)] {
            let (x, w, b) = make_inputs(m, k, n, 42);
            for &act in &acts {
                let mut out = vec![0f32; m * n];
                // run twice to make sure results don't accumulate into stale dst
                dense(m, k, n, &x, &w, &b, &mut out, act);
                dense(m, k, n, &x, &w, &b, &mut out, act);
                let r = reference(m, k, n, &x, &w, &b, act);
                let maxref = r.iter().fold(0f64, |a, v| a.max(v.abs())).max(1e-30);
                let maxerr = out
                    .iter()
                    .zip(&r)
                    .fold(0f64, |a, (o, r)| a.max((*o as f64 - r).abs()));
                let rel = maxerr / maxref;
                let ok = rel <= 1e-3;
                all_ok &= ok;
                println!(
                    "check {lib} {m} {k} {n} {} max_abs_err={maxerr:.3e} rel={rel:.3e} {}",
                    act.name(),
                    if ok { "OK" } else { "FAIL" }
                );
            }
        }
        if !all_ok {
            std::process::exit(1);
        }
        return;
    }

    for shp in shapes.split(';').filter(|s| !s.trim().is_empty()) {
        let d: Vec<usize> = shp.split(',').map(|s| s.trim().parse().unwrap()).collect();
        let (m, k, n) = (d[0], d[1], d[2]);
        let (x, w, b) = make_inputs(m, k, n, 1234);
        let flops = 2.0 * m as f64 * k as f64 * n as f64;
        for &act in &acts {
            let mut out = vec![0f32; m * n];
            // warm-up: at least 3 calls and ~10% of the budget
            let t0 = Instant::now();
            let mut w_reps = 0;
            while w_reps < 3 || t0.elapsed().as_secs_f64() < 0.1 * seconds {
                dense(m, k, n, &x, &w, &b, &mut out, act);
                w_reps += 1;
            }
            let mut times = Vec::new();
            let start = Instant::now();
            while times.len() < 5 || start.elapsed().as_secs_f64() < seconds {
                let t = Instant::now();
                dense(m, k, n, &x, &w, &b, std::hint::black_box(&mut out), act);
                times.push(t.elapsed().as_secs_f64());
            }
            std::hint::black_box(&out);
            let med = median(&mut times);
            println!("{lib} {m} {k} {n} {} {:.2}", act.name(), flops / med / 1e9);
        }
    }
}
