//! This machine's compute peak, measured: independent chains of fused multiply-adds on
//! the widest vectors the CPU has (AVX-512, else AVX2+FMA, else scalar multiply-adds),
//! with every operand in registers. Shared by the `forward` and `roofline` examples
//! (`#[path]`-included), so that both quote the same peak.
#![allow(dead_code)]

use std::hint::black_box;
use std::time::Instant;

/// The widest FMA this CPU runs (what the peak is measured with).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fma {
    /// 16 `f32` lanes per instruction.
    Avx512,
    /// 8 `f32` lanes per instruction.
    Avx2,
    /// Scalar multiply-adds (no vector FMA detected).
    Scalar,
}

impl Fma {
    pub fn detect() -> Fma {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Fma::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Fma::Avx2;
            }
        }
        Fma::Scalar
    }

    pub fn name(self) -> &'static str {
        match self {
            Fma::Avx512 => "AVX-512 FMA",
            Fma::Avx2 => "AVX2 FMA",
            Fma::Scalar => "scalar multiply-add",
        }
    }
}

/// The measured peak, `f32` FLOP/s.
#[derive(Clone, Copy, Debug)]
pub struct Peak {
    /// One thread.
    pub one: f64,
    /// Every thread of the pool it was measured on, running at once.
    pub all: f64,
    /// The pool's thread count.
    pub threads: usize,
    pub fma: Fma,
}

impl Peak {
    /// The peak for `threads` threads (`one` for 1, else `all`).
    pub fn for_threads(&self, threads: usize) -> f64 {
        if threads <= 1 {
            self.one
        } else {
            self.all
        }
    }
}

/// Measures the peak for one thread and for all of `pool`'s threads at once: the best of
/// `trials` runs each (a moment when this shared machine's other tenants hold a core
/// must not set the roof).
pub fn measure(pool: &rayon::ThreadPool, trials: usize) -> Result<Peak, String> {
    let fma = Fma::detect();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| e.to_string())?;
    let p1 = fma_peak(&one, fma, trials);
    let threads = pool.current_num_threads();
    let all = if threads == 1 {
        p1
    } else {
        fma_peak(pool, fma, trials).max(p1)
    };
    Ok(Peak {
        one: p1,
        all,
        threads,
        fma,
    })
}

/// The FMA rate of `pool`'s threads all running at once (each thread exactly once, via
/// `broadcast`), best of `trials`.
fn fma_peak(pool: &rayon::ThreadPool, fma: Fma, trials: usize) -> f64 {
    (0..trials.max(1))
        .map(|_| {
            let t = Instant::now();
            let flops: f64 = pool.broadcast(|_| fma_work(fma)).iter().sum();
            flops / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// Runs independent FMA chains and returns the flops done (a few milliseconds' worth).
pub fn fma_work(fma: Fma) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        let iters = 1u64 << 20;
        match fma {
            Fma::Avx512 => {
                // SAFETY: `Fma::Avx512` is only detected on CPUs with avx512f.
                black_box(unsafe { fma_loop_512(iters) });
                // 12 chains × 16 lanes × 2 flops per iteration.
                return (iters * 12 * 32) as f64;
            }
            Fma::Avx2 => {
                // SAFETY: `Fma::Avx2` is only detected on CPUs with avx2 and fma.
                black_box(unsafe { fma_loop_256(iters) });
                // 12 chains × 8 lanes × 2 flops per iteration.
                return (iters * 12 * 16) as f64;
            }
            Fma::Scalar => {}
        }
    }
    let _ = fma;
    let iters = 1u64 << 22;
    let mut a = [1.0f32; 8];
    for _ in 0..iters {
        for x in a.iter_mut() {
            *x = *x * 0.999_999 + 1e-7;
        }
    }
    black_box(a);
    (iters * 8 * 2) as f64
}

/// 12 independent chains: enough to cover the FMA latency (4 cycles) on two ports.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop_512(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let m = _mm512_set1_ps(0.999_999);
    let c = _mm512_set1_ps(1e-7);
    let mut acc = [_mm512_set1_ps(1.0); 12];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, m, c);
        }
    }
    let mut s = _mm512_setzero_ps();
    for a in acc {
        s = _mm512_add_ps(s, a);
    }
    _mm512_reduce_add_ps(s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_256(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let m = _mm256_set1_ps(0.999_999);
    let c = _mm256_set1_ps(1e-7);
    let mut acc = [_mm256_set1_ps(1.0); 12];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, m, c);
        }
    }
    let mut s = _mm256_setzero_ps();
    for a in acc {
        s = _mm256_add_ps(s, a);
    }
    _mm256_cvtss_f32(s)
}

/// The CPU's model name (`/proc/cpuinfo`), or `"unknown CPU"`.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}
