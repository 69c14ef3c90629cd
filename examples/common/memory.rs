//! This machine's memory hierarchy, measured: the data caches' sizes (from
//! `/sys/devices/system/cpu/cpu0/cache/index*/`, or assumed sizes where that is not
//! readable) and the read bandwidth of each level, L1 to DRAM, for one thread and for
//! every thread of a pool at once. The `roofline` example's cache roofs
//! (`#[path]`-included).
#![allow(dead_code)]

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::Instant;

/// One data (or unified) cache level, as CPU 0 sees it.
#[derive(Clone, Debug)]
pub struct Cache {
    /// 1, 2, 3, …
    pub level: u32,
    pub bytes: usize,
    /// How many logical CPUs share one instance (1: private to a core).
    pub shared_by: usize,
}

/// The caches, innermost first, and where their sizes came from.
#[derive(Clone, Debug)]
pub struct Caches {
    pub levels: Vec<Cache>,
    /// `"sysfs"`, or `"assumed"` where sysfs could not be read.
    pub source: &'static str,
}

/// The data caches of CPU 0, from sysfs; where that yields nothing, a common layout
/// (48 KiB L1d and 1 MiB L2 per core, 16 MiB L3 shared), labelled `assumed`.
pub fn caches() -> Caches {
    let mut levels = Vec::new();
    for i in 0..16 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
        let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).ok();
        let Some(kind) = read("type") else {
            if i == 0 {
                continue;
            }
            break;
        };
        if kind.trim() == "Instruction" {
            continue;
        }
        let (Some(level), Some(size)) = (
            read("level").and_then(|s| s.trim().parse::<u32>().ok()),
            read("size").and_then(|s| parse_size(s.trim())),
        ) else {
            continue;
        };
        let shared_by = read("shared_cpu_list")
            .map(|s| cpu_list_len(s.trim()))
            .unwrap_or(1)
            .max(1);
        levels.push(Cache {
            level,
            bytes: size,
            shared_by,
        });
    }
    levels.sort_by_key(|c| c.level);
    levels.dedup_by_key(|c| c.level);
    if levels.is_empty() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        return Caches {
            levels: vec![
                Cache {
                    level: 1,
                    bytes: 48 << 10,
                    shared_by: 1,
                },
                Cache {
                    level: 2,
                    bytes: 1 << 20,
                    shared_by: 1,
                },
                Cache {
                    level: 3,
                    bytes: 16 << 20,
                    shared_by: cpus,
                },
            ],
            source: "assumed",
        };
    }
    Caches {
        levels,
        source: "sysfs",
    }
}

/// `"48K"`, `"1280K"`, `"32M"`, `"1G"` or plain bytes.
fn parse_size(s: &str) -> Option<usize> {
    let (num, mul) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<usize>().ok().map(|n| n * mul)
}

/// The number of CPUs in a list such as `"0-3,8,10-11"`.
fn cpu_list_len(s: &str) -> usize {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum()
}

/// A level of the hierarchy with its measured read bandwidth.
#[derive(Clone, Debug)]
pub struct Level {
    /// `"L1"`, `"L2"`, `"L3"`, …, `"DRAM"`.
    pub name: String,
    /// The cache's size (one instance); `None` for DRAM.
    pub bytes: Option<usize>,
    /// How many logical CPUs share one instance.
    pub shared_by: usize,
    /// Bytes each thread read in the measurement (its buffer).
    pub buffer_one: usize,
    pub buffer_all: usize,
    /// Read bandwidth in bytes/s: one thread, and all the pool's threads together.
    pub bw_one: f64,
    pub bw_all: f64,
}

impl Level {
    /// How much of a working set this level holds for `threads` threads working
    /// together: one instance of a cache shared by them all, one per core of a
    /// private one (each core's share of the working set in its own); unbounded for DRAM.
    pub fn capacity(&self, threads: usize) -> usize {
        match self.bytes {
            Some(b) => b * threads.max(1).div_ceil(self.shared_by),
            None => usize::MAX,
        }
    }

    /// The bandwidth for `threads` threads (`bw_one` for 1, else `bw_all`).
    pub fn bandwidth(&self, threads: usize) -> f64 {
        if threads <= 1 {
            self.bw_one
        } else {
            self.bw_all
        }
    }
}

/// The buffer each of `threads` threads reads to measure level `i` of `caches` (the
/// last index, `caches.len()`, being DRAM): half of L1; for an outer cache the geometric
/// mean of the level within's size and this level's share per thread (at most half of
/// that share), so that the buffer is several times the inner level and well inside this
/// one; for DRAM, four times the outermost cache, split over the threads.
pub fn buffer_bytes(caches: &[Cache], i: usize, threads: usize) -> usize {
    let threads = threads.max(1);
    let share = |c: &Cache| c.bytes / threads.min(c.shared_by).max(1);
    let b = if i == 0 {
        caches[0].bytes / 2
    } else if i < caches.len() {
        let inner = share(&caches[i - 1]) as f64;
        let this = share(&caches[i]) as f64;
        ((inner * this).sqrt()).min(this / 2.0) as usize
    } else {
        let last = caches.last().expect("at least one cache level");
        4 * last.bytes * threads.div_ceil(last.shared_by) / threads
    };
    // Whole steps of the read kernel (one line per stream).
    (b / (64 * STEP_LINES)).max(1) * 64 * STEP_LINES
}

/// Measures every level's read bandwidth, for one thread and for all of `pool`'s threads
/// at once: each thread sums its own buffer (`buffer_bytes`) over and over, `trials`
/// times, and the best trial counts (bandwidth is a limit: a moment when this shared
/// machine's other tenants hold a core or the memory bus must not set it). Every pass is
/// timed from a barrier that all threads leave together to the last thread's finish.
pub fn measure(
    caches: &Caches,
    pool: &rayon::ThreadPool,
    trials: usize,
    bytes_per_trial: usize,
) -> Result<Vec<Level>, String> {
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| e.to_string())?;
    let threads = pool.current_num_threads();
    let c = &caches.levels;
    let mut out = Vec::new();
    for i in 0..=c.len() {
        let (name, bytes, shared_by) = match c.get(i) {
            Some(c) => (format!("L{}", c.level), Some(c.bytes), c.shared_by),
            None => ("DRAM".to_string(), None, usize::MAX),
        };
        let buffer_one = buffer_bytes(c, i, 1);
        let buffer_all = buffer_bytes(c, i, threads);
        let bw_one = read_bandwidth(&one, buffer_one, trials, bytes_per_trial);
        let bw_all = if threads == 1 {
            bw_one
        } else {
            read_bandwidth(pool, buffer_all, trials, bytes_per_trial)
        };
        out.push(Level {
            name,
            bytes,
            shared_by,
            buffer_one,
            buffer_all,
            bw_one,
            bw_all,
        });
    }
    Ok(out)
}

/// 64 bytes, aligned to a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u32; 16]);

/// Bytes/s that `pool`'s threads read together, each from its own `bytes`-long buffer:
/// best of `trials` runs of each read loop, each run `bytes_per_trial` per thread (at
/// least one pass).
pub fn read_bandwidth(
    pool: &rayon::ThreadPool,
    bytes: usize,
    trials: usize,
    bytes_per_trial: usize,
) -> f64 {
    let r = Reader::new(pool, bytes);
    r.run(pool, 1); // warm: each buffer into its level
    let passes = r.passes_for(bytes_per_trial);
    (0..2 * trials.max(1))
        .map(|_| r.run(pool, passes))
        .fold(0.0, f64::max)
}

/// One buffer per thread of a pool (allocated and first touched by that thread), read by
/// all of them at once.
pub struct Reader {
    bufs: Vec<Vec<Line>>,
    barrier: Barrier,
    /// Runs so far: even ones read [`STREAMS`] streams, odd ones twice as many.
    runs: AtomicUsize,
}

impl Reader {
    /// `bytes` (rounded to whole steps of the read kernel) for each of `pool`'s threads.
    pub fn new(pool: &rayon::ThreadPool, bytes: usize) -> Reader {
        let lines = (bytes / 64 / STEP_LINES).max(1) * STEP_LINES;
        let bufs = pool.broadcast(|ctx| {
            let seed = ctx.index() as u32;
            (0..lines as u32)
                .map(|l| {
                    Line(std::array::from_fn(|j| {
                        l.wrapping_mul(31) ^ j as u32 ^ seed
                    }))
                })
                .collect::<Vec<Line>>()
        });
        Reader {
            bufs,
            barrier: Barrier::new(pool.current_num_threads()),
            runs: AtomicUsize::new(0),
        }
    }

    /// Bytes per thread.
    pub fn bytes(&self) -> usize {
        self.bufs.first().map_or(0, |b| b.len() * 64)
    }

    /// Passes over the buffers that read at least `bytes` per thread (at least one).
    pub fn passes_for(&self, bytes: usize) -> usize {
        bytes.div_ceil(self.bytes().max(1)).max(1)
    }

    /// Bytes/s of `passes` passes, every thread of `pool` (the pool the buffers were
    /// made on; callable from inside it) over its own buffer, timed from a barrier
    /// that all leave together to the last one's finish. Successive runs alternate
    /// between the two read loops ([`STREAMS`] streams or twice as many).
    pub fn run(&self, pool: &rayon::ThreadPool, passes: usize) -> f64 {
        let wide = self.runs.fetch_add(1, Ordering::Relaxed) % 2 == 1;
        let secs = pool.broadcast(|ctx| {
            let buf = &self.bufs[ctx.index()];
            self.barrier.wait();
            let t = Instant::now();
            for _ in 0..passes {
                if wide {
                    black_box(read_sum::<{ 2 * STREAMS }>(black_box(buf)));
                } else {
                    black_box(read_sum::<STREAMS>(black_box(buf)));
                }
            }
            t.elapsed().as_secs_f64()
        });
        let total = (self.bufs.len() * passes * self.bytes()) as f64;
        total / secs.into_iter().fold(1e-12, f64::max)
    }
}

/// The read loop reads its buffer as this many sequential streams side by side, or
/// `2 ×` as many, alternately (`Reader::run`; the better counts): DRAM serves one core
/// more when it reads several streams at once, the caches do not mind. Measured here
/// (one thread, GB/s, best of 8): 256 MiB: 1 stream 11.5, 4 streams 14.1, 8 15.6, 16
/// 17.0, 32 14.5; 1 MiB (in L2): 8 streams 98, 16 streams 80.
const STREAMS: usize = 8;

/// Lines of every buffer are a multiple of this (whole steps of both read loops).
const STEP_LINES: usize = 2 * STREAMS;

/// Sums the buffer as 32-bit integers (one-cycle adds into one accumulator per stream,
/// so the loop waits on the loads alone), read as `S` sequential streams side by side
/// (the buffer cut into `S` parts, one line of each per step), in the widest vectors
/// the CPU has.
fn read_sum<const S: usize>(buf: &[Line]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has avx512f, checked just above.
            return unsafe { read_sum_avx512::<S>(buf) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has avx2, checked just above.
            return unsafe { read_sum_avx2::<S>(buf) };
        }
    }
    read_sum_portable::<S>(buf)
}

/// The buffer's first `S · len` lines as `S` parts of `len` lines, and the lines left
/// over.
fn parts<const S: usize>(buf: &[Line]) -> ([&[Line]; S], &[Line]) {
    let len = buf.len() / S;
    let (body, rest) = buf.split_at(len * S);
    (std::array::from_fn(|s| &body[s * len..(s + 1) * len]), rest)
}

fn sum_lines(lines: &[Line]) -> u32 {
    lines.iter().flat_map(|l| l.0).fold(0u32, u32::wrapping_add)
}

fn read_sum_portable<const S: usize>(buf: &[Line]) -> u32 {
    let (p, rest) = parts::<S>(buf);
    let mut acc = [[0u32; 16]; S];
    for i in 0..p[0].len() {
        for (a, part) in acc.iter_mut().zip(&p) {
            for (a, v) in a.iter_mut().zip(&part[i].0) {
                *a = a.wrapping_add(*v);
            }
        }
    }
    acc.iter()
        .flatten()
        .fold(sum_lines(rest), |t, &v| t.wrapping_add(v))
}

/// One 64-byte load per stream per step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn read_sum_avx512<const S: usize>(buf: &[Line]) -> u32 {
    use std::arch::x86_64::*;
    let (p, rest) = parts::<S>(buf);
    let ptrs: [*const Line; S] = std::array::from_fn(|s| p[s].as_ptr());
    let mut acc = [_mm512_setzero_si512(); S];
    for i in 0..p[0].len() {
        for s in 0..S {
            // SAFETY: i < the parts' common length; `Line` is 64 bytes and 64-aligned,
            // so this is one aligned vector inside part `s`.
            let v = unsafe { _mm512_load_si512(ptrs[s].add(i).cast()) };
            acc[s] = _mm512_add_epi32(acc[s], v);
        }
    }
    let mut t = _mm512_setzero_si512();
    for v in acc {
        t = _mm512_add_epi32(t, v);
    }
    (_mm512_reduce_add_epi32(t) as u32).wrapping_add(sum_lines(rest))
}

/// Two 32-byte loads per stream per step (16 vector registers: one accumulator per
/// stream).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn read_sum_avx2<const S: usize>(buf: &[Line]) -> u32 {
    use std::arch::x86_64::*;
    let (p, rest) = parts::<S>(buf);
    let ptrs: [*const Line; S] = std::array::from_fn(|s| p[s].as_ptr());
    let mut acc = [_mm256_setzero_si256(); S];
    for i in 0..p[0].len() {
        for s in 0..S {
            // SAFETY: i < the parts' common length; each 64-byte, 64-aligned `Line` of
            // part `s` is read as two aligned 32-byte vectors inside it.
            let (v0, v1) = unsafe {
                let l = ptrs[s].add(i).cast::<__m256i>();
                (_mm256_load_si256(l), _mm256_load_si256(l.add(1)))
            };
            acc[s] = _mm256_add_epi32(_mm256_add_epi32(acc[s], v0), v1);
        }
    }
    let mut t = _mm256_setzero_si256();
    for v in acc {
        t = _mm256_add_epi32(t, v);
    }
    let mut lanes = [0u32; 8];
    // SAFETY: `lanes` is 32 bytes, an unaligned store's width.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), t) };
    lanes
        .iter()
        .fold(sum_lines(rest), |t, &v| t.wrapping_add(v))
}
