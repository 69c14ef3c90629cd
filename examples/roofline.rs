//! The roofline report: how close `dense_forward` runs to this machine's limits.
//!
//! `cargo run --release --example roofline` measures the FMA peak (one thread and all
//! threads, for the instruction set the crate dispatches to) and the memory read
//! bandwidth, sweeps `dense_forward` over a set of shapes and activations (with the
//! packed path, `dense_forward_packed`, side by side), prints a table and writes
//! `roofline.svg`. The packed path's microkernel is timed in the same loops, alone on
//! one L1-resident tile: its rate is what a GEMM can reach here at that moment, and the
//! `%kernel` column sets the packed path against it (this VM's speed drifts by ±30%,
//! which a peak measured once cannot follow).
//!
//! Flags: `--threads N`, `--shapes "M,K,N;M,K,N"`, `--layouts keras,torch`, `--quick`,
//! `--json`, `--out PATH`.

use clap::Parser;
use dense_kernel::{
    dense_forward_into, dense_forward_packed, microkernel_flops, simd_path, Activation, MatMut,
    MatRef, PackedKernel, SimdPath,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

#[path = "../benches/common/mod.rs"]
mod common;
use common::data;

#[derive(Parser)]
#[command(about = "Roofline report for dense_forward on this machine")]
struct Args {
    /// Threads for the sweep and the all-thread peak (default: rayon's default).
    #[arg(long)]
    threads: Option<usize>,
    /// Shapes as "M,K,N;M,K,N" (default: a set from batch 1 to 1024³).
    #[arg(long)]
    shapes: Option<String>,
    /// Weight layouts to sweep: `keras` (in, units) and/or `torch` (units, in), seen
    /// transposed.
    #[arg(long, value_delimiter = ',', default_value = "keras,torch")]
    layouts: Vec<Layout>,
    /// Fewer shapes, shorter timings (seconds instead of tens of seconds).
    #[arg(long)]
    quick: bool,
    /// Print one JSON object per case instead of the table.
    #[arg(long)]
    json: bool,
    /// Where to write the SVG plot.
    #[arg(long, default_value = "roofline.svg")]
    out: String,
}

/// How the weight is stored: Keras `(in, units)` row-major, or PyTorch `(units, in)`
/// row-major, handed in as its transposed view.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Layout {
    Keras,
    Torch,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Keras => "keras",
            Layout::Torch => "torch",
        }
    }
}

/// One measured case.
struct Row {
    m: usize,
    k: usize,
    n: usize,
    act: Activation,
    layout: Layout,
    secs: f64,
    gflops: f64,
    pct_peak: f64,
    intensity: f64,
    bound: &'static str,
    pct_roof: f64,
    speedup: f64,
    /// `dense_forward_packed` on the same case (weight packed once beforehand).
    packed_gflops: f64,
    /// The packed path's microkernel alone (one tile in L1, one thread), timed in the
    /// same loop: 0 without the microkernels.
    kernel_gflops: f64,
}

fn parse_shapes(s: &str) -> Result<Vec<(usize, usize, usize)>, String> {
    s.split(';')
        .filter(|t| !t.trim().is_empty())
        .map(|t| {
            let v: Vec<usize> = t
                .split(',')
                .map(|x| x.trim().parse::<usize>().map_err(|e| format!("{t:?}: {e}")))
                .collect::<Result<_, _>>()?;
            match v[..] {
                [m, k, n] if m > 0 && k > 0 && n > 0 => Ok((m, k, n)),
                _ => Err(format!("{t:?}: want three positive sizes M,K,N")),
            }
        })
        .collect()
}

/// Median seconds of `f` over repetitions filling about `budget`.
fn time(budget: Duration, mut f: impl FnMut()) -> f64 {
    time_all(budget, &mut [&mut f])[0]
}

/// Median seconds of each closure, run in turn (f, g, h, f, g, h, …) over repetitions
/// filling about `budget` each, so a slow moment on this shared machine hits them all
/// and their ratios stay fair.
fn time_all(budget: Duration, fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let once = |h: &mut dyn FnMut()| {
        let t = Instant::now();
        h();
        t.elapsed().as_secs_f64()
    };
    for f in fs.iter_mut() {
        f();
    }
    let slowest = fs.iter_mut().map(|f| once(*f)).fold(1e-9, f64::max);
    let reps = ((budget.as_secs_f64() / slowest) as usize).clamp(3, 1000);
    let mut t: Vec<Vec<f64>> = vec![Vec::with_capacity(reps); fs.len()];
    for _ in 0..reps {
        for (f, v) in fs.iter_mut().zip(t.iter_mut()) {
            v.push(once(*f));
        }
    }
    t.into_iter()
        .map(|mut v| {
            v.sort_by(|x, y| x.total_cmp(y));
            v[v.len() / 2]
        })
        .collect()
}

/// Runs independent FMA chains on the crate's SIMD path (scalar multiply-adds on the
/// portable path) and returns the flops done.
fn fma_work() -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        let iters = 1u64 << 20;
        match simd_path() {
            SimdPath::Avx512 => {
                // 12 chains × 16 lanes × 2 flops per iteration.
                // SAFETY: the AVX-512 path is only chosen when the CPU has avx512f.
                black_box(unsafe { fma_loop_512(iters) });
                return (iters * 12 * 32) as f64;
            }
            SimdPath::Avx2Fma => {
                // 12 chains × 8 lanes × 2 flops per iteration.
                // SAFETY: the AVX2 path is only chosen when the CPU has avx2 and fma.
                black_box(unsafe { fma_loop(iters) });
                return (iters * 12 * 16) as f64;
            }
            _ => {}
        }
    }
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

/// The FMA peak of `pool`'s threads all running at once (each thread exactly once, via
/// `broadcast`): the best of several trials, so a moment when this shared machine's
/// other tenants hold a core does not set the roof.
fn fma_peak(pool: &rayon::ThreadPool, trials: usize) -> f64 {
    (0..trials)
        .map(|_| {
            let t = Instant::now();
            let flops: f64 = pool.broadcast(|_| fma_work()).iter().sum();
            flops / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

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
unsafe fn fma_loop(iters: u64) -> f32 {
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

/// Bytes/s one thread reads from memory, four sequential streams at once.
fn read_bandwidth(bytes: usize, budget: Duration) -> f64 {
    let v: Vec<u32> = (0..(bytes / 4) as u32).collect();
    let secs = time(budget, || {
        black_box(common::sum_four_streams(&v));
    });
    (v.len() / 16 * 16 * 4) as f64 / secs
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let pool = {
        let mut b = rayon::ThreadPoolBuilder::new();
        if let Some(t) = args.threads {
            b = b.num_threads(t.max(1));
        }
        b.build().map_err(|e| e.to_string())?
    };
    let threads = pool.current_num_threads();
    let budget = Duration::from_millis(if args.quick { 40 } else { 500 });
    let shapes = match &args.shapes {
        Some(s) => parse_shapes(s)?,
        None if args.quick => vec![(1, 784, 128), (32, 4, 7), (8, 1024, 1024), (128, 512, 512)],
        None => vec![
            (1, 784, 128),
            (1, 4096, 4096),
            (8, 4096, 4096),
            (32, 4, 7),
            (32, 512, 512),
            (64, 1024, 1024),
            (256, 1024, 4096),
            (1024, 1024, 1024),
        ],
    };
    let acts = [Activation::Linear, Activation::Relu, Activation::Gelu];

    eprintln!(
        "measuring this machine's limits ({} path, {threads} threads) ...",
        simd_path()
    );
    let trials = if args.quick { 5 } else { 15 };
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| e.to_string())?;
    let peak1 = fma_peak(&one, trials);
    let peak_all = fma_peak(&pool, trials).max(peak1);
    let bw = read_bandwidth(if args.quick { 64 << 20 } else { 256 << 20 }, budget);
    let peak = if threads == 1 { peak1 } else { peak_all };
    // The microkernel alone against the FMA loop, in turn: how much of the peak a GEMM
    // can reach here at all (its loads included). One thread.
    let kernel_reps = 2000;
    let kernel_alone = microkernel_flops(0).map(|_| {
        let (mut fl, mut kfl) = (0.0, 0.0);
        let t = time_all(
            budget,
            &mut [&mut || fl = fma_work(), &mut || {
                kfl = microkernel_flops(kernel_reps).unwrap_or(0.0)
            }],
        );
        (kfl / t[1], fl / t[0])
    });

    let mut layouts = args.layouts.clone();
    layouts.dedup();
    let bar = ProgressBar::new((shapes.len() * acts.len() * layouts.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").map_err(|e| e.to_string())?,
    );
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    }
    let mut rows = Vec::new();
    for &(m, k, n) in &shapes {
        let (x, w, b) = (data(m * k, 1), data(k * n, 2), data(n, 3));
        let mut out = vec![0.0f32; m * n];
        let flops = 2.0 * (m * k * n) as f64;
        let bytes = 4.0 * (m * k + k * n + m * n + n) as f64;
        let intensity = flops / bytes;
        let roof = peak.min(intensity * bw);
        let bound = if intensity * bw < peak {
            "memory"
        } else {
            "compute"
        };
        for (&layout, act) in layouts
            .iter()
            .flat_map(|l| acts.iter().map(move |&a| (l, a)))
        {
            bar.set_message(format!("{m}x{k}x{n} {act} {}", layout.name()));
            // The same storage is a Keras (K, N) matrix or a PyTorch (N, K) one.
            let (kernel, strides) = match layout {
                Layout::Keras => (MatRef::from_slice(&w, k, n).unwrap(), (n as isize, 1)),
                Layout::Torch => (MatRef::from_slice(&w, n, k).unwrap().t(), (1, k as isize)),
            };
            let mut out2 = out.clone();
            let mut out3 = out.clone();
            // Packing is a one-time cost, outside the timing (`cargo bench --bench
            // packed` measures it).
            let packed = PackedKernel::new(kernel, Some(&b)).map_err(|e| e.to_string())?;
            // Kernel repetitions lasting about as long as one packed call (≥ 1).
            let kreps = ((flops / 2.0 / (256.0 * 12.0 * 32.0)) as usize).clamp(1, 20_000);
            let mut kflops = 0.0;
            let t = pool.install(|| {
                time_all(
                    budget,
                    &mut [
                        &mut || {
                            dense_forward_into(
                                MatRef::from_slice(&x, m, k).unwrap(),
                                kernel,
                                Some(&b),
                                act,
                                MatMut::from_slice(&mut out, m, n).unwrap(),
                            )
                            .unwrap()
                        },
                        // The unfused loop is single-threaded whatever the pool.
                        &mut || common::unfused((m, k, n), &x, &w, strides, &b, act, &mut out2),
                        &mut || {
                            dense_forward_packed(
                                MatRef::from_slice(&x, m, k).unwrap(),
                                &packed,
                                act,
                                MatMut::from_slice(&mut out3, m, n).unwrap(),
                            )
                            .unwrap()
                        },
                        // The microkernel's own rate at this moment (the machine's speed
                        // drifts): the packed path is best judged against it.
                        &mut || kflops = microkernel_flops(kreps).unwrap_or(0.0),
                    ],
                )
            });
            let (secs, base, psecs) = (t[0], t[1], t[2]);
            let kernel_gflops = kflops / t[3] / 1e9;
            let gflops = flops / secs / 1e9;
            rows.push(Row {
                m,
                k,
                n,
                act,
                layout,
                secs,
                gflops,
                pct_peak: 100.0 * flops / secs / peak,
                intensity,
                bound,
                pct_roof: 100.0 * flops / secs / roof,
                speedup: base / secs,
                packed_gflops: flops / psecs / 1e9,
                kernel_gflops,
            });
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    if args.json {
        for r in &rows {
            println!(
                "{{\"m\":{},\"k\":{},\"n\":{},\"activation\":\"{}\",\"layout\":\"{}\",\"threads\":{threads},\"seconds\":{:e},\"gflops\":{:.3},\"pct_peak\":{:.2},\"intensity\":{:.3},\"bound\":\"{}\",\"pct_roof\":{:.2},\"speedup_vs_unfused\":{:.3},\"packed_gflops\":{:.3},\"kernel_gflops\":{:.3},\"packed_pct_kernel\":{:.2},\"peak_gflops\":{:.2},\"bandwidth_gbs\":{:.2},\"simd_path\":\"{}\"}}",
                r.m, r.k, r.n, r.act, r.layout.name(), r.secs, r.gflops, r.pct_peak, r.intensity, r.bound,
                r.pct_roof, r.speedup, r.packed_gflops, r.kernel_gflops, pct_kernel(r, threads), peak / 1e9, bw / 1e9, simd_path()
            );
        }
    } else {
        println!(
            "machine: {} path; FMA peak {:.1} GFLOP/s (1 thread), {:.1} GFLOP/s ({threads} thread{}); read bandwidth {:.1} GB/s (1 thread)",
            simd_path(),
            peak1 / 1e9,
            peak_all / 1e9,
            if threads == 1 { "" } else { "s" },
            bw / 1e9
        );
        if let Some((kernel, fma)) = kernel_alone {
            println!(
                "packed microkernel alone (one tile in L1, 1 thread): {:.1} GFLOP/s, {:.1}% of the FMA loop timed beside it",
                kernel / 1e9,
                100.0 * kernel / fma
            );
        }
        println!(
            "{:<16} {:<8} {:<6} {:>10} {:>8} {:>7} {:>8} {:>8} {:>7} {:>8} {:>8} {:>7}",
            "M×K×N",
            "act",
            "layout",
            "time",
            "GFLOP/s",
            "%peak",
            "flop/B",
            "bound",
            "%roof",
            "vs unfused",
            "packed",
            "%kernel"
        );
        for r in &rows {
            println!(
                "{:<16} {:<8} {:<6} {:>8.1}µs {:>8.1} {:>6.1}% {:>8.2} {:>8} {:>6.1}% {:>7.2}× {:>8.1} {:>6.1}%",
                format!("{}×{}×{}", r.m, r.k, r.n),
                r.act.to_string(),
                r.layout.name(),
                r.secs * 1e6,
                r.gflops,
                r.pct_peak,
                r.intensity,
                r.bound,
                r.pct_roof,
                r.speedup,
                r.packed_gflops,
                pct_kernel(r, threads)
            );
        }
    }
    std::fs::write(&args.out, svg(&rows, peak, bw)).map_err(|e| format!("{}: {e}", args.out))?;
    eprintln!("wrote {}", args.out);
    Ok(())
}

/// The packed path as a percentage of `threads` microkernels running at the rate the
/// lone kernel showed in the same timing loop (0 without the microkernels).
fn pct_kernel(r: &Row, threads: usize) -> f64 {
    if r.kernel_gflops > 0.0 {
        100.0 * r.packed_gflops / (r.kernel_gflops * threads as f64)
    } else {
        0.0
    }
}

/// A log-log roofline: the memory roof (slope = bandwidth), the compute roof, and one
/// labelled point per case.
fn svg(rows: &[Row], peak: f64, bw: f64) -> String {
    let (w, h, l, r, t, b) = (900.0, 600.0, 80.0, 30.0, 40.0, 60.0);
    let (x0, x1) = (0.1f64.log10(), 1000f64.log10());
    let ymax = (peak / 1e9 * 2.0).log10().ceil();
    let (y0, y1) = (ymax - 4.0, ymax);
    let px = |ai: f64| l + (ai.log10() - x0) / (x1 - x0) * (w - l - r);
    let py = |g: f64| h - b - (g.log10() - y0) / (y1 - y0) * (h - t - b);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"22\" font-size=\"15\">dense_forward roofline ({} path)</text>",
        l,
        simd_path()
    );
    // Grid and axes.
    for e in (x0 as i32)..=(x1 as i32) {
        let x = px(10f64.powi(e));
        let _ = writeln!(s, "<line x1=\"{x}\" y1=\"{t}\" x2=\"{x}\" y2=\"{}\" stroke=\"#ddd\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>", h - b, h - b + 16.0, 10f64.powi(e));
    }
    for e in (y0 as i32)..=(y1 as i32) {
        let y = py(10f64.powi(e));
        let _ = writeln!(s, "<line x1=\"{l}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", w - r, l - 6.0, y + 4.0, 10f64.powi(e));
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">arithmetic intensity (FLOP/byte)</text>",
        (l + w - r) / 2.0,
        h - 15.0
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate(18,{}) rotate(-90)\" text-anchor=\"middle\">GFLOP/s</text>",
        (t + h - b) / 2.0
    );
    // Roofs.
    let ridge = peak / bw;
    let g = |ai: f64| (ai * bw).min(peak) / 1e9;
    let _ =
        writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"#c00\" stroke-width=\"2\" points=\"{},{} {},{} {},{}\"/>",
        px(0.1), py(g(0.1)), px(ridge), py(g(ridge)), px(1000.0), py(g(1000.0))
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" fill=\"#c00\">FMA peak {:.0} GFLOP/s</text>",
        px(ridge) + 6.0,
        py(peak / 1e9) - 6.0,
        peak / 1e9
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" fill=\"#c00\">memory {:.1} GB/s</text>",
        px(0.15),
        py(g(0.15)) - 8.0,
        bw / 1e9
    );
    // Points: one colour per activation (legend top left), each shape labelled once.
    let colour = |a: &Activation| match a {
        Activation::Linear => "#555",
        Activation::Relu => "#06c",
        _ => "#e80",
    };
    let mut seen: Vec<(usize, usize, usize)> = Vec::new();
    let mut legend: Vec<Activation> = Vec::new();
    for r in rows {
        let (x, y) = (
            px(r.intensity.clamp(0.1, 1000.0)),
            py(r.gflops.max(10f64.powf(y0))),
        );
        // Keras-layout points filled, PyTorch-layout ones as rings.
        let paint = match r.layout {
            Layout::Keras => format!("fill=\"{}\"", colour(&r.act)),
            Layout::Torch => format!(
                "fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"",
                colour(&r.act)
            ),
        };
        let _ = writeln!(
            s,
            "<circle class=\"case\" cx=\"{x}\" cy=\"{y}\" r=\"4\" {paint}/>"
        );
        // The same case on the packed path: a small square on the same vertical.
        let yp = py(r.packed_gflops.max(10f64.powf(y0)));
        let _ = writeln!(
            s,
            "<rect class=\"packed\" x=\"{}\" y=\"{}\" width=\"6\" height=\"6\" fill=\"none\" stroke=\"{}\"/>",
            x - 3.0,
            yp - 3.0,
            colour(&r.act)
        );
        if !seen.contains(&(r.m, r.k, r.n)) {
            seen.push((r.m, r.k, r.n));
            // Alternate labels below and above their point, so neighbours along the
            // intensity axis don't overwrite each other.
            let dy = if seen.len().is_multiple_of(2) {
                -10.0
            } else {
                14.0
            };
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\">{}×{}×{}</text>",
                x + 7.0,
                y + dy,
                r.m,
                r.k,
                r.n
            );
        }
        if !legend.contains(&r.act) {
            legend.push(r.act);
        }
    }
    let y = t + 16.0 + 16.0 * legend.len() as f64;
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{y}\">filled: Keras (in, units); ring: PyTorch (units, in); square: packed (dense_forward_packed)</text>",
        l + 10.0
    );
    for (i, a) in legend.iter().enumerate() {
        let y = t + 16.0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            "<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{a}</text>",
            l + 14.0,
            y - 4.0,
            colour(a),
            l + 24.0,
            y
        );
    }
    s.push_str("</svg>\n");
    s
}
