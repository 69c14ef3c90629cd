//! This crate's side of the peer comparison (`peers/compare.sh`): one thread, `f32`,
//! Keras layout, bias included, for the packed path (`dense_forward_packed`, weight
//! packed once beforehand) and the unpacked one (`dense_forward_into`), each timed in
//! its own loop for half the given seconds.
//! Prints `packed M K N act GFLOPs` and `unpacked M K N act GFLOPs` lines (medians),
//! the format of `peers/peer.py`.
//!
//! `cargo run --release --example peer_ours -- "32,512,512;1024,1024,1024" relu,gelu 0.5`

use dense_kernel::{
    dense_forward_into, dense_forward_packed, Activation, MatMut, MatRef, PackedKernel,
};
use std::hint::black_box;
use std::time::Instant;

#[path = "../benches/common/mod.rs"]
mod common;
use common::data;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let shapes = args.get(1).map_or("32,512,512", |s| s.as_str());
    let acts = args.get(2).map_or("relu,gelu,sigmoid", |s| s.as_str());
    let seconds: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0.5);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| e.to_string())?;
    for shape in shapes.split(';').filter(|s| !s.trim().is_empty()) {
        let v: Vec<usize> = shape
            .split(',')
            .map(|x| x.trim().parse().map_err(|_| format!("bad shape {shape}")))
            .collect::<Result<_, _>>()?;
        let [m, k, n] = v[..] else {
            return Err(format!("bad shape {shape}"));
        };
        let (x, w, b) = (data(m * k, 1), data(k * n, 2), data(n, 3));
        let kernel = MatRef::from_slice(&w, k, n).map_err(|e| e.to_string())?;
        let packed = PackedKernel::new(kernel, Some(&b)).map_err(|e| e.to_string())?;
        let mut out = vec![0.0f32; m * n];
        let flops = 2.0 * (m * k * n) as f64;
        for act in acts.split(',') {
            let act: Activation = act.trim().parse().map_err(|e| format!("{e}"))?;
            let mut run = |packed_path: bool| {
                let xv = MatRef::from_slice(black_box(&x), m, k).unwrap();
                let ov = MatMut::from_slice(&mut out, m, n).unwrap();
                let t = Instant::now();
                if packed_path {
                    dense_forward_packed(xv, &packed, act, ov).unwrap();
                } else {
                    dense_forward_into(xv, kernel, Some(&b), act, ov).unwrap();
                }
                t.elapsed().as_secs_f64()
            };
            let (mut tp, mut tu) = (Vec::new(), Vec::new());
            // Each path in its own loop, as every peer runs: alternating calls would
            // have each one start with the other's weight in the caches (on Zen 4,
            // 1024×1024×48 relu read 89 GFLOP/s packed alternated, ~100 alone).
            one.install(|| {
                for (path, times) in [(true, &mut tp), (false, &mut tu)] {
                    run(path);
                    let start = Instant::now();
                    while start.elapsed().as_secs_f64() < seconds / 2.0 || times.len() < 5 {
                        times.push(run(path));
                    }
                }
            });
            println!("packed {m} {k} {n} {act} {:.1}", flops / median(tp) / 1e9);
            println!("unpacked {m} {k} {n} {act} {:.1}", flops / median(tu) / 1e9);
        }
    }
    Ok(())
}
