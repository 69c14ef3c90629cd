//! The roofline report: how close `dense_forward` runs to this machine's limits, judged
//! on a hierarchical (cache-aware) roofline.
//!
//! `cargo run --release --example roofline` measures the compute peak (FMA chains in
//! registers) and the read bandwidth of every level of the memory hierarchy (L1, L2, L3,
//! DRAM; cache sizes from sysfs), each for one thread and for the sweep's threads. It
//! then times `dense_forward` over a set of shapes and activations (with the packed
//! path, `dense_forward_packed`, side by side) and judges each case against the level
//! its working set (input, weight or packed weight, bias, output) fits in:
//! `roof = min(peak, intensity × that level's bandwidth)`, peak and bandwidth for the
//! threads the sweep runs on. It prints a table (or JSON lines) and writes
//! `roofline.svg`. docs/ROOFLINE.md explains the method.
//!
//! Flags: `--threads N`, `--shapes "M,K,N;M,K,N"`, `--layouts keras,torch`, `--quick`,
//! `--json`, `--out PATH`.

use clap::Parser;
use dense_kernel::{
    dense_forward_into, dense_forward_packed, simd_path, Activation, MatMut, MatRef, PackedKernel,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

#[path = "../benches/common/mod.rs"]
mod common;
#[path = "common/memory.rs"]
mod memory;
#[path = "common/peak.rs"]
mod peak;
use common::data;

#[derive(Parser)]
#[command(about = "Hierarchical roofline report for dense_forward on this machine")]
struct Args {
    /// Threads for the sweep and its roofs (default: rayon's default).
    #[arg(long)]
    threads: Option<usize>,
    /// Shapes as "M,K,N;M,K,N" (default: a set from batch 1 to 1024³).
    #[arg(long)]
    shapes: Option<String>,
    /// Weight layouts to sweep: `keras` (in, units) and/or `torch` (units, in), seen
    /// transposed.
    #[arg(long, value_delimiter = ',', default_value = "keras,torch")]
    layouts: Vec<Layout>,
    /// Fewer shapes, shorter timings (seconds instead of a minute).
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

/// This machine's limits for the sweep's thread count.
struct Machine {
    peak: peak::Peak,
    levels: Vec<memory::Level>,
    caches: memory::Caches,
    threads: usize,
}

/// Where a case sits on the roofline.
#[derive(Clone, Copy)]
struct Judged {
    /// FLOPs per byte of the working set.
    intensity: f64,
    /// Index into `Machine::levels`: the innermost level that holds the working set.
    level: usize,
    /// The bandwidth the roof uses: the level's, or the footprint's if higher (B/s).
    bandwidth: f64,
    /// `min(peak, intensity × bandwidth)`, FLOP/s.
    roof: f64,
    /// The compute peak is the lower roof.
    compute_bound: bool,
}

impl Machine {
    fn peak(&self) -> f64 {
        self.peak.for_threads(self.threads)
    }

    /// Judges `flops` over `working_set` bytes: at the innermost level that holds the
    /// set, with that level's bandwidth or, if higher, `footprint_bw` (what the read
    /// loop got from buffers of the set's own size, timed alongside the case).
    fn judge(&self, flops: f64, working_set: usize, footprint_bw: f64) -> Judged {
        let level = self
            .levels
            .iter()
            .position(|l| l.capacity(self.threads) >= working_set)
            .unwrap_or(self.levels.len() - 1);
        let intensity = flops / working_set as f64;
        let bandwidth = self.levels[level].bandwidth(self.threads).max(footprint_bw);
        let memory_roof = intensity * bandwidth;
        Judged {
            intensity,
            level,
            bandwidth,
            roof: memory_roof.min(self.peak()),
            compute_bound: self.peak() <= memory_roof,
        }
    }

    /// Measures again and keeps the better of each limit (the roofs are limits: the best
    /// moment of a run counts).
    fn remeasure(&mut self, pool: &rayon::ThreadPool, trials: usize) -> Result<(), String> {
        let p = peak::measure(pool, trials)?;
        self.peak.one = self.peak.one.max(p.one);
        self.peak.all = self.peak.all.max(p.all);
        let levels = memory::measure(&self.caches, pool, trials, LEVEL_BYTES)?;
        for (l, n) in self.levels.iter_mut().zip(levels) {
            l.bw_one = l.bw_one.max(n.bw_one);
            l.bw_all = l.bw_all.max(n.bw_all);
        }
        Ok(())
    }

    fn bound(&self, j: &Judged) -> &str {
        if j.compute_bound {
            "compute"
        } else {
            &self.levels[j.level].name
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
    flops: f64,
    secs: f64,
    /// Input, weight, bias and output bytes.
    working_set: usize,
    /// Best read bandwidth of buffers as large as the working set, timed alongside.
    footprint_bw: f64,
    speedup: f64,
    /// `dense_forward_packed` on the same case (weight packed once beforehand): its
    /// time, working set (the packed copy instead of the weight) and footprint's
    /// bandwidth.
    packed_secs: f64,
    packed_working_set: usize,
    packed_footprint_bw: f64,
}

/// Per-thread bytes of each level measurement's trial.
const LEVEL_BYTES: usize = 128 << 20;
/// Per-thread bytes of a footprint probe beside a case (at least one pass).
const PROBE_BYTES: usize = 8 << 20;

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

/// Median seconds of one call of each closure. Rounds run them in turn (f, g, h, f, g,
/// h, …), so a slow moment on this shared machine hits them all and their ratios stay
/// fair; within a round each closure runs once untimed, then once timed, so the timed
/// call finds its data where its working set fits (the other closures' calls may have
/// pushed it out), as the roofline assumes. About `budget` per closure.
fn time_all(budget: Duration, fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let once = |h: &mut dyn FnMut()| {
        let t = Instant::now();
        h();
        t.elapsed().as_secs_f64()
    };
    let slowest = fs.iter_mut().map(|f| once(*f)).fold(1e-9, f64::max);
    let rounds = ((budget.as_secs_f64() / (2.0 * slowest)) as usize).clamp(3, 1000);
    let mut t: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); fs.len()];
    for _ in 0..rounds {
        for (f, v) in fs.iter_mut().zip(t.iter_mut()) {
            f();
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
    let budget = Duration::from_millis(if args.quick { 40 } else { 400 });
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

    eprintln!("measuring this machine's limits (1 and {threads} threads) ...");
    let trials = if args.quick { 5 } else { 15 };
    let caches = memory::caches();
    let mut machine = Machine {
        peak: peak::measure(&pool, trials)?,
        levels: memory::measure(&caches, &pool, trials, LEVEL_BYTES)?,
        caches,
        threads,
    };

    let mut layouts = args.layouts.clone();
    layouts.dedup();
    let bar = ProgressBar::new((shapes.len() * acts.len() * layouts.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").map_err(|e| e.to_string())?,
    );
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    }
    let mut rows: Vec<Row> = Vec::new();
    for &(m, k, n) in &shapes {
        let (x, w, b) = (data(m * k, 1), data(k * n, 2), data(n, 3));
        let mut out = vec![0.0f32; m * n];
        let flops = 2.0 * (m * k * n) as f64;
        let working_set = 4 * (m * k + k * n + n + m * n);
        // Read loops over the working set's footprint, split over the threads, run
        // beside each case: the best they get is the case's footprint bandwidth.
        let probe = memory::Reader::new(&pool, working_set.div_ceil(threads));
        // (working set, its probe, the probe's best) per packed working set seen.
        let mut packed_probes: Vec<(usize, memory::Reader, f64)> = Vec::new();
        let first = rows.len();
        let mut probe_bw = 0.0f64;
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
            let packed_working_set = 4 * (m * k + m * n) + packed.packed_bytes();
            let pi = match packed_probes.iter().position(|p| p.0 == packed_working_set) {
                Some(i) => i,
                None => {
                    let r = memory::Reader::new(&pool, packed_working_set.div_ceil(threads));
                    packed_probes.push((packed_working_set, r, 0.0));
                    packed_probes.len() - 1
                }
            };
            let (_, pp, packed_probe_bw) = &mut packed_probes[pi];
            let passes = probe.passes_for(PROBE_BYTES);
            let packed_passes = pp.passes_for(PROBE_BYTES);
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
                        &mut || probe_bw = probe_bw.max(probe.run(&pool, passes)),
                        &mut || {
                            *packed_probe_bw = packed_probe_bw.max(pp.run(&pool, packed_passes))
                        },
                    ],
                )
            });
            rows.push(Row {
                m,
                k,
                n,
                act,
                layout,
                flops,
                secs: t[0],
                working_set,
                footprint_bw: 0.0,
                speedup: t[1] / t[0],
                packed_secs: t[2],
                packed_working_set,
                packed_footprint_bw: 0.0,
            });
            bar.inc(1);
        }
        // Every case of the shape gets the best of all its probes.
        for r in &mut rows[first..] {
            r.footprint_bw = probe_bw;
            r.packed_footprint_bw = packed_probes
                .iter()
                .find(|p| p.0 == r.packed_working_set)
                .map_or(0.0, |p| p.2);
        }
    }
    bar.finish_and_clear();
    // The roofs once more, after the sweep: each limit the best of both measurements.
    machine.remeasure(&pool, trials)?;
    let judged: Vec<Judgement> = rows
        .iter()
        .map(|r| Judgement {
            gflops: r.flops / r.secs / 1e9,
            dense: machine.judge(r.flops, r.working_set, r.footprint_bw),
            packed_gflops: r.flops / r.packed_secs / 1e9,
            packed: machine.judge(r.flops, r.packed_working_set, r.packed_footprint_bw),
        })
        .collect();

    let peak = machine.peak();
    if args.json {
        for (r, j) in rows.iter().zip(&judged) {
            let lv = &machine.levels[j.dense.level];
            let line = serde_json::json!({
                "m": r.m, "k": r.k, "n": r.n,
                "activation": r.act.to_string(),
                "layout": r.layout.name(),
                "threads": threads,
                "seconds": r.secs,
                "gflops": round(j.gflops, 3),
                "pct_peak": round(100.0 * j.gflops * 1e9 / peak, 2),
                "intensity": round(j.dense.intensity, 3),
                "working_set_bytes": r.working_set,
                "level": lv.name,
                "bound": machine.bound(&j.dense),
                "bandwidth_gbs": round(j.dense.bandwidth / 1e9, 2),
                "level_bandwidth_gbs": round(lv.bandwidth(threads) / 1e9, 2),
                "footprint_bandwidth_gbs": round(r.footprint_bw / 1e9, 2),
                "roof_gflops": round(j.dense.roof / 1e9, 3),
                "pct_roof": round(100.0 * j.gflops * 1e9 / j.dense.roof, 2),
                "speedup_vs_unfused": round(r.speedup, 3),
                "packed_seconds": r.packed_secs,
                "packed_gflops": round(j.packed_gflops, 3),
                "packed_working_set_bytes": r.packed_working_set,
                "packed_level": machine.levels[j.packed.level].name,
                "packed_bound": machine.bound(&j.packed),
                "packed_roof_gflops": round(j.packed.roof / 1e9, 3),
                "packed_pct_roof": round(100.0 * j.packed_gflops * 1e9 / j.packed.roof, 2),
                "peak_gflops": round(peak / 1e9, 2),
                "simd_path": simd_path().to_string(),
            });
            println!("{line}");
        }
    } else {
        print_machine(&machine);
        println!(
            "\ncases on {threads} thread{s} against the roofs for {threads} thread{s}; each working set (input, weight or packed weight, bias, output) judged at the innermost level that holds it:",
            s = if threads == 1 { "" } else { "s" }
        );
        println!(
            "{:<14} {:<6} {:<6} {:>9} {:>7} {:>6} {:>6} {:>6} {:>7} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>6}",
            "M×K×N",
            "act",
            "layout",
            "time",
            "GFLOP/s",
            "%peak",
            "flop/B",
            "set",
            "bound",
            "GB/s",
            "roof",
            "%roof",
            "unfused",
            "packed",
            "bound",
            "%roof"
        );
        for (r, j) in rows.iter().zip(&judged) {
            println!(
                "{:<14} {:<6} {:<6} {:>7.1}µs {:>7.1} {:>5.1}% {:>6.2} {:>6} {:>7} {:>6.1} {:>6.1} {:>5.1}% {:>6.2}× {:>7.1} {:>7} {:>5.1}%",
                format!("{}×{}×{}", r.m, r.k, r.n),
                r.act.to_string(),
                r.layout.name(),
                r.secs * 1e6,
                j.gflops,
                100.0 * j.gflops * 1e9 / peak,
                j.dense.intensity,
                bytes(r.working_set as f64),
                machine.bound(&j.dense),
                j.dense.bandwidth / 1e9,
                j.dense.roof / 1e9,
                100.0 * j.gflops * 1e9 / j.dense.roof,
                r.speedup,
                j.packed_gflops,
                machine.bound(&j.packed),
                100.0 * j.packed_gflops * 1e9 / j.packed.roof,
            );
        }
        println!(
            "time, GFLOP/s: dense_forward (median); set: its working set; bound: the lower roof, the peak (compute) or the set's level;\n\
             GB/s: that level's bandwidth, or a read of the set's own footprint beside the case if higher; roof = min(peak, flop/B × GB/s);\n\
             unfused: dense_forward's speedup over bare sgemm + a scalar bias/activation loop; packed: dense_forward_packed (GFLOP/s, bound, %roof)"
        );
    }
    std::fs::write(&args.out, svg(&rows, &judged, &machine))
        .map_err(|e| format!("{}: {e}", args.out))?;
    eprintln!("wrote {}", args.out);
    Ok(())
}

/// A case's rates and where they sit.
struct Judgement {
    gflops: f64,
    dense: Judged,
    packed_gflops: f64,
    packed: Judged,
}

fn round(v: f64, digits: i32) -> f64 {
    let s = 10f64.powi(digits);
    (v * s).round() / s
}

/// `1.5 MiB`, `48 KiB`, `300 B`.
fn bytes(b: f64) -> String {
    if b >= (1 << 20) as f64 {
        format!("{:.1}M", b / (1 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.0}K", b / 1024.0)
    } else {
        format!("{b:.0}B")
    }
}

fn print_machine(mc: &Machine) {
    let t = mc.threads;
    println!(
        "machine: {} ({} logical CPUs); dense_kernel's SIMD path: {}",
        peak::cpu_name(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        simd_path()
    );
    println!(
        "peak ({}, operands in registers): {:.1} GFLOP/s on 1 thread, {:.1} GFLOP/s on {t}",
        mc.peak.fma.name(),
        mc.peak.one / 1e9,
        mc.peak.all / 1e9
    );
    println!(
        "read bandwidth, best of several runs (cache sizes: {}):",
        mc.caches.source
    );
    println!(
        "  {:<5} {:>10} {:>12}  {:>10} {:>11}  {:>10} {:>11}",
        "level",
        "size",
        "shared by",
        "buffer",
        "1 thread",
        "buffer",
        format!("{t} threads")
    );
    for l in &mc.levels {
        println!(
            "  {:<5} {:>10} {:>12}  {:>10} {:>6.1} GB/s  {:>10} {:>6.1} GB/s",
            l.name,
            l.bytes.map_or("-".to_string(), |b| bytes(b as f64)),
            match (l.bytes, l.shared_by) {
                (None, _) => "-".to_string(),
                (_, 1) => "1 CPU".to_string(),
                (_, s) => format!("{s} CPUs"),
            },
            bytes(l.buffer_one as f64),
            l.bw_one / 1e9,
            format!("{t}×{}", bytes(l.buffer_all as f64)),
            l.bw_all / 1e9
        );
    }
}

/// A log-log roofline: one roof per memory level (slope = that level's bandwidth, for the
/// sweep's threads), the compute roof, and a point per case (filled: Keras layout; ring:
/// PyTorch layout) and per packed case (square), each at its own intensity.
fn svg(rows: &[Row], judged: &[Judgement], mc: &Machine) -> String {
    let peak = mc.peak();
    let (w, h, l, r, t, b) = (900.0, 600.0, 80.0, 30.0, 40.0, 60.0);
    let (x0, x1) = (0.1f64.log10(), 1000f64.log10());
    let ymax = (peak / 1e9 * 2.0).log10().ceil();
    let (y0, y1) = (ymax - 4.0, ymax);
    let px = |ai: f64| l + (ai.clamp(0.1, 1000.0).log10() - x0) / (x1 - x0) * (w - l - r);
    let py = |g: f64| h - b - (g.max(10f64.powf(y0)).log10() - y0) / (y1 - y0) * (h - t - b);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"22\" font-size=\"15\">dense_forward, hierarchical roofline ({}, {} thread{})</text>",
        l,
        peak::cpu_name(),
        mc.threads,
        if mc.threads == 1 { "" } else { "s" }
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
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">arithmetic intensity (FLOP per byte of the working set)</text>",
        (l + w - r) / 2.0,
        h - 15.0
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate(18,{}) rotate(-90)\" text-anchor=\"middle\">GFLOP/s</text>",
        (t + h - b) / 2.0
    );
    // Roofs: one line per level, from the left edge to where it meets the peak; the
    // peak from the innermost level's ridge on.
    let shades = ["#c00", "#d60", "#a80", "#080", "#068", "#60a"];
    let mut label_y = Vec::new();
    for (i, lv) in mc.levels.iter().enumerate() {
        let bw = lv.bandwidth(mc.threads);
        let ridge = (peak / bw).clamp(0.1, 1000.0);
        let colour = shades[i.min(shades.len() - 1)];
        let _ = writeln!(
            s,
            "<polyline class=\"roof\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{},{} {},{}\"/>",
            px(0.1),
            py((0.1 * bw).min(peak) / 1e9),
            px(ridge),
            py((ridge * bw).min(peak) / 1e9)
        );
        let y = py(0.1 * bw / 1e9) - 4.0;
        label_y.push(y);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{y}\" fill=\"{colour}\">{} {:.0} GB/s</text>",
            l + 4.0,
            lv.name,
            bw / 1e9
        );
    }
    let first_ridge = mc
        .levels
        .iter()
        .map(|lv| peak / lv.bandwidth(mc.threads))
        .fold(1000.0, f64::min)
        .max(0.1);
    let _ = writeln!(
        s,
        "<polyline class=\"roof\" fill=\"none\" stroke=\"#000\" stroke-width=\"2\" points=\"{},{} {},{}\"/>",
        px(first_ridge),
        py(peak / 1e9),
        px(1000.0),
        py(peak / 1e9)
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">peak {:.0} GFLOP/s ({})</text>",
        w - r - 4.0,
        py(peak / 1e9) - 6.0,
        peak / 1e9,
        mc.peak.fma.name()
    );
    // Points: one colour per activation (legend top left), each shape labelled once.
    let colour = |a: &Activation| match a {
        Activation::Linear => "#555",
        Activation::Relu => "#06c",
        _ => "#e80",
    };
    let mut seen: Vec<(usize, usize, usize)> = Vec::new();
    let mut legend: Vec<Activation> = Vec::new();
    for (r, j) in rows.iter().zip(judged) {
        let (x, y) = (px(j.dense.intensity), py(j.gflops));
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
            "<circle class=\"case\" cx=\"{x}\" cy=\"{y}\" r=\"4\" {paint}><title>{}×{}×{} {} {}: {:.1} GFLOP/s, {} bound, {:.0}% of roof</title></circle>",
            r.m,
            r.k,
            r.n,
            r.act,
            r.layout.name(),
            j.gflops,
            mc.bound(&j.dense),
            100.0 * j.gflops * 1e9 / j.dense.roof
        );
        // The case's own roof: a short dash above (or through) its point.
        let _ = writeln!(
            s,
            "<line class=\"case-roof\" x1=\"{}\" y1=\"{yr}\" x2=\"{}\" y2=\"{yr}\" stroke=\"{}\" stroke-width=\"1\"/>",
            x - 5.0,
            x + 5.0,
            colour(&r.act),
            yr = py(j.dense.roof / 1e9)
        );
        // The same case on the packed path: a small square at its own intensity.
        let _ = writeln!(
            s,
            "<rect class=\"packed\" x=\"{}\" y=\"{}\" width=\"6\" height=\"6\" fill=\"none\" stroke=\"{}\"/>",
            px(j.packed.intensity) - 3.0,
            py(j.packed_gflops) - 3.0,
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
    // The legend, bottom right (below the roofs, right of the data).
    let lx = px(15.0);
    let y0 = h - b - 16.0 * (legend.len() as f64 + 1.0) - 4.0;
    for (i, a) in legend.iter().enumerate() {
        let y = y0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            "<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{a}</text>",
            lx + 4.0,
            y - 4.0,
            colour(a),
            lx + 14.0,
            y
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{lx}\" y=\"{}\">filled: Keras (in, units); ring: PyTorch (units, in)</text>\n<text x=\"{lx}\" y=\"{}\">square: packed (dense_forward_packed); dash: the case's roof</text>",
        y0 + 16.0 * legend.len() as f64,
        y0 + 16.0 * legend.len() as f64 + 14.0,
    );
    s.push_str("</svg>\n");
    s
}
