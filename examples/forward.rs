//! The main job: what the crate computes and how fast, on this machine, in well under a
//! minute.
//!
//! ```text
//! cargo run --release --example forward                        # the default large layer
//! cargo run --release --example forward -- 64 512 256 softmax  # M K N [activation]
//! ```
//!
//! 1. The Keras tutorial's two models, built with the layer API: their Keras 3
//!    `summary()`, a forward pass, and every Dense layer's output checked against the
//!    `f64` reference (`reference::check_dense`).
//! 2. One large layer, timed on one thread (a one-thread rayon pool) and on all of
//!    them, one-off (`dense_forward`) and with the weight packed once
//!    (`PackedKernel` + `dense_forward_packed`), each as a share of this machine's
//!    measured peak (the same measurement as the roofline report's), and its result
//!    checked against the reference.
//! 3. The same weights in Keras's `(in, units)` layout and in PyTorch's `(units, in)`
//!    layout through `.t()`: where the results are bitwise equal, and where not, by how
//!    much they differ (`tests/layouts.rs`).
//! 4. Where the roofline report is.
//!
//! Every check that fails ends the run with an error.

use dense_kernel::layer::{ActivationLayer, Dense, Input, Layer, Sequential};
use dense_kernel::reference::{check_dense, dense_reference};
use dense_kernel::{
    dense_forward, dense_forward_into, dense_forward_packed, Activation, Mat, MatMut, MatRef,
    PackedKernel,
};
use std::error::Error;
use std::time::{Duration, Instant};

#[path = "common/peak.rs"]
mod peak;

type Res<T> = Result<T, Box<dyn Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (m, k, n, act) = parse_shape(&args)?;
    let all = rayon::ThreadPoolBuilder::new().build()?;
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let threads = all.current_num_threads();
    println!(
        "dense-kernel on {} ({} logical CPUs); SIMD path {} (cpu features: {})",
        peak::cpu_name(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        dense_kernel::simd_path(),
        dense_kernel::cpu_features()
    );

    println!("\n== 1. The Keras tutorial's two models (layer API)\n");
    seed_models()?;
    println!("\n== 1b. Training the first one: compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])\n");
    seed_training()?;

    println!("\n== 2. One large layer: {m}×{k} · {k}×{n} + bias, {act}, f32\n");
    let x = uniform(m * k, 1, 1.0);
    let w = glorot_uniform(k, n, 2);
    let b = uniform(n, 3, 0.1);
    let (xv, wv) = (MatRef::from_slice(&x, m, k)?, MatRef::from_slice(&w, k, n)?);
    let t = Instant::now();
    let packed = PackedKernel::new(wv, Some(&b))?;
    let pack_secs = t.elapsed().as_secs_f64();
    let pk = peak::measure(&all, 10)?;
    println!(
        "this machine's peak, measured ({}, operands in registers; as the roofline report measures it):",
        pk.fma.name()
    );
    println!(
        "  {:.1} GFLOP/s on 1 thread, {:.1} GFLOP/s on {threads} threads",
        pk.one / 1e9,
        pk.all / 1e9
    );
    if threads > 1 && pk.all < 0.75 * threads as f64 * pk.one {
        println!(
            "  (all {threads} threads together reached only {:.1}× one thread's peak: something else is using this machine's cores\n   right now, so the {threads}-thread timings below understate the crate; run again when it is idle)",
            pk.all / pk.one
        );
    }
    let flops = 2.0 * (m * k * n) as f64;
    let budget = Duration::from_millis(1500);
    let mut y = Mat::<f32>::try_zeros(m, n)?;
    let mut yp = Mat::<f32>::try_zeros(m, n)?;
    let mut rows = Vec::new();
    for (label, pool, peak) in [
        ("1 thread".to_string(), &one, pk.one),
        (format!("{threads} threads"), &all, pk.all),
    ] {
        // One-off and packed alternated, so a slow moment on a shared machine hits both.
        let t = pool.install(|| {
            time_pair(
                budget,
                &mut || {
                    dense_forward_into(xv, wv, Some(&b), act, y.as_mut()).unwrap();
                },
                &mut || {
                    dense_forward_packed(xv, &packed, act, yp.as_mut()).unwrap();
                },
            )
        });
        rows.push((label, peak, t));
    }
    println!(
        "  {:<34} {:>11} {:>16} {:>16}",
        "", "median", "GFLOP/s", "% of peak"
    );
    for (label, peak, (one_off, prepared)) in &rows {
        for (name, secs) in [
            ("dense_forward (one-off)", one_off),
            ("dense_forward_packed", prepared),
        ] {
            let rate = flops / secs;
            println!(
                "  {:<34} {:>8.2} ms {:>16.1} {:>15.0}%",
                format!("{name}, {label}"),
                secs * 1e3,
                rate / 1e9,
                100.0 * rate / peak
            );
        }
    }
    println!(
        "  (packed: PackedKernel::new once, {:.1} ms, then dense_forward_packed per call; one-off: the weight read as it is, every call)",
        pack_secs * 1e3
    );
    let same_bits = y
        .as_slice()
        .iter()
        .zip(yp.as_slice())
        .all(|(a, b)| a.to_bits() == b.to_bits());
    if (m * k * n) as u64 <= 1 << 30 {
        check_dense(xv, wv, Some(&b), act, y.as_slice())?;
        if !same_bits {
            check_dense(xv, wv, Some(&b), act, yp.as_slice())?;
        }
        let r = dense_reference(xv, wv, Some(&b), act)?;
        let dev = y
            .as_slice()
            .iter()
            .zip(r.as_slice())
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0.0, f64::max);
        println!(
            "  checked: {}, within the f64 reference's derived bound (max |y − reference| = {dev:.1e})",
            if same_bits {
                "one-off and packed give the same bits"
            } else {
                "one-off and packed (whose last bits differ here)"
            }
        );
    } else {
        println!(
            "  one-off and packed give {} (the f64 reference is skipped above 2^30 multiply-adds)",
            if same_bits {
                "the same bits"
            } else {
                "results differing in the last bits"
            }
        );
    }

    println!(
        "\n== 3. Keras (in, units) and PyTorch (units, in) weights, the same numbers (pre-activations compared)\n"
    );
    layouts(xv, &w, &b, &packed)?;

    println!("\n== 4. The roofline report\n");
    println!(
        "  cargo run --release --example roofline    (about a minute; --quick: a few seconds)"
    );
    println!(
        "  measures this machine's peak and each memory level's bandwidth (L1, L2, L3, DRAM), judges each shape against"
    );
    println!(
        "  the level its working set fits in, prints the table and writes roofline.svg; docs/ROOFLINE.md explains it."
    );
    Ok(())
}

/// The tutorial's models: `Sequential([Dense(7, input_shape=(4,)), Activation('sigmoid'),
/// Dense(13), Activation('sigmoid'), Dense(5), Activation('softmax')])` and
/// `Model(Input((5,)), Dense(1, activation='softmax'))`.
/// The tutorial's first model: `Dense(7, input 4)`, sigmoid, `Dense(13)`, sigmoid,
/// `Dense(5)`, softmax (seeded).
fn seed_model() -> Res<Sequential<f32>> {
    use Activation::{Sigmoid, Softmax};
    Ok(Sequential::<f32>::new()
        .seed(2024)
        .add(Dense::new(7).input_dim(4))?
        .add(ActivationLayer::new(Sigmoid))?
        .add(Dense::new(13))?
        .add(ActivationLayer::new(Sigmoid))?
        .add(Dense::new(5))?
        .add(ActivationLayer::new(Softmax))?)
}

fn seed_models() -> Res<()> {
    use Activation::Softmax;
    let mut model = seed_model()?;
    print!("{}", model.summary());
    let x = [
        0.1f32, 0.2, 0.3, 0.4, //
        -1.0, 0.5, 2.0, 0.0, //
        3.0, -2.0, 1.0, -0.5,
    ];
    let (y, shape) = model.forward(&x, &[3, 4])?;
    println!("forward on a batch of 3: output shape {shape:?}");
    for row in y.chunks(shape[1]) {
        let sum: f32 = row.iter().sum();
        println!("  {row:.4?}  (sum {sum:.6})");
    }
    let y = y.to_vec();
    check_chain(&model, &x, 3, &y)?;

    let mut model2 =
        Sequential::<f32>::functional(Input::new(&[5])).add(Dense::new(1).activation(Softmax))?;
    println!();
    print!("{}", model2.summary());
    let x2 = [0.3f32, -1.2, 0.8, 2.0, -0.1, 1.0, 1.0, 1.0, 1.0, 1.0];
    let (y2, shape2) = model2.forward(&x2, &[2, 5])?;
    println!(
        "forward on a batch of 2: output shape {shape2:?}, values {y2:?} (a softmax over one unit is always 1; Keras warns about this model)"
    );
    let y2 = y2.to_vec();
    check_chain(&model2, &x2, 2, &y2)
}

/// Re-runs `model`'s chain layer by layer with `dense_forward` (each Dense layer with
/// the Activation layer after it, if any, fused), checks each step's output against the
/// `f64` reference given that step's input, and checks that the model's output is the
/// chain's, bit for bit.
/// The tutorial's first model trained as its `compile` asks, on 200 samples of a
/// rule it can learn (the class is the quadrant of (x0 + x1, x2 − x3), or 4 near the
/// origin); the run fails if the loss does not fall or the accuracy stays at chance.
fn seed_training() -> Res<()> {
    use dense_kernel::layer::{CompileOptions, FitOptions, Metric};
    let mut model = seed_model()?;
    let n = 200;
    let x = uniform(n * 4, 7, 2.0);
    let mut y = vec![0.0f32; n * 5];
    for (r, row) in x.chunks(4).enumerate() {
        let (u, v) = (row[0] + row[1], row[2] - row[3]);
        let class = if u * u + v * v < 0.5 {
            4
        } else {
            usize::from(u < 0.0) + 2 * usize::from(v < 0.0)
        };
        y[r * 5 + class] = 1.0;
    }
    model.compile_with(
        "adam".parse()?,
        "categorical_crossentropy".parse()?,
        &CompileOptions::new().metrics(&[Metric::Accuracy]),
    )?;
    let epochs = 40;
    let t = Instant::now();
    let h = model.fit(
        &x,
        &[n, 4],
        &y,
        &[n, 5],
        &FitOptions::new().batch_size(16).epochs(epochs).verbose(0),
    )?;
    let secs = t.elapsed().as_secs_f64();
    let (loss, acc) = (
        h.get("loss").ok_or("no loss")?,
        h.get("accuracy").ok_or("no accuracy")?,
    );
    for e in [0, 1, 9, 19, epochs - 1] {
        println!(
            "  epoch {:>2}/{epochs}: loss {:.4} - accuracy {:.4}",
            e + 1,
            loss[e],
            acc[e]
        );
    }
    println!(
        "  {} Adam steps in {:.1} ms ({:.0} µs per step of 16 samples); (fit(verbose=1) prints Keras's progress bar)",
        model.iterations(),
        secs * 1e3,
        secs * 1e6 / model.iterations().max(1) as f64
    );
    let learned = loss[epochs - 1] < 0.8 * loss[0] && acc[epochs - 1] >= 0.4;
    if !learned {
        return Err(format!(
            "training did not learn: loss {} -> {}, accuracy {}",
            loss[0],
            loss[epochs - 1],
            acc[epochs - 1]
        )
        .into());
    }
    Ok(())
}

fn check_chain(model: &Sequential<f32>, x: &[f32], batch: usize, y: &[f32]) -> Res<()> {
    let layers: Vec<&Layer<f32>> = model.layers().map(|(_, l)| l).collect();
    let mut cur = x.to_vec();
    let mut checked = 0;
    let mut i = 0;
    while i < layers.len() {
        let Layer::Dense(d) = layers[i] else {
            return Err("the example's models start each step with a Dense layer".into());
        };
        let mut act = d.get_activation();
        if let Some(Layer::Activation(a)) = layers.get(i + 1) {
            if act != Activation::Linear {
                return Err("a Dense activation followed by an Activation layer".into());
            }
            act = a.activation();
            i += 1;
        }
        let kernel = d.kernel().ok_or("an unbuilt Dense layer")?;
        let xin = MatRef::from_slice(&cur, batch, kernel.rows())?;
        let out = dense_forward(xin, kernel, d.bias(), act)?;
        check_dense(xin, kernel, d.bias(), act, out.as_slice())?;
        cur = out.as_slice().to_vec();
        checked += 1;
        i += 1;
    }
    if cur.iter().zip(y).any(|(a, b)| a.to_bits() != b.to_bits()) || cur.len() != y.len() {
        return Err("the model's output is not its layers' chain".into());
    }
    println!(
        "checked: {} (with its activation) within the f64 reference's derived bound (reference::check_dense),",
        if checked == 1 {
            "the Dense layer".to_string()
        } else {
            format!("each of the {checked} Dense layers")
        }
    );
    println!("         and model.forward's output is the layers' chain, bit for bit");
    Ok(())
}

/// Keras-layout against PyTorch-layout weights, pre-activations (linear) compared: the
/// large layer's shape on `dense_forward` and on the packed path, and the seed layer's.
fn layouts(xv: MatRef<'_, f32>, w: &[f32], b: &[f32], packed: &PackedKernel) -> Res<()> {
    let lin = Activation::Linear;
    let (m, k, n) = (xv.rows(), xv.cols(), packed.units());
    let keras = MatRef::from_slice(w, k, n)?;
    let w_torch = transpose(w, k, n);
    let torch = MatRef::from_slice(&w_torch, n, k)?.t();
    let (yk, yt) = (
        dense_forward(xv, keras, Some(b), lin)?,
        dense_forward(xv, torch, Some(b), lin)?,
    );
    check_dense(xv, torch, Some(b), lin, yt.as_slice())?;
    println!(
        "  {:<52} {}",
        format!("{m}×{k}×{n}, dense_forward:"),
        compare(xv, keras, Some(b), yk.as_slice(), yt.as_slice())
    );
    let packed_torch = PackedKernel::new(torch, Some(b))?;
    let (mut pk, mut pt) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
    dense_forward_packed(xv, packed, lin, MatMut::from_slice(&mut pk, m, n)?)?;
    dense_forward_packed(xv, &packed_torch, lin, MatMut::from_slice(&mut pt, m, n)?)?;
    println!(
        "  {:<52} {}",
        format!("{m}×{k}×{n}, PackedKernel + dense_forward_packed:"),
        compare(xv, keras, Some(b), &pk, &pt)
    );
    // The seed layer's shape: Dense(7) on a batch of 32 inputs of 4 features.
    let (m, k, n) = (32, 4, 7);
    let (x, w, b) = (
        uniform(m * k, 4, 1.0),
        glorot_uniform(k, n, 5),
        vec![0.0f32; n],
    );
    let w_torch = transpose(&w, k, n);
    let (xv, wv) = (MatRef::from_slice(&x, m, k)?, MatRef::from_slice(&w, k, n)?);
    let yk = dense_forward(xv, wv, Some(&b), Activation::Linear)?;
    let yt = dense_forward(
        xv,
        MatRef::from_slice(&w_torch, n, k)?.t(),
        Some(&b),
        Activation::Linear,
    )?;
    check_dense(xv, wv, Some(&b), Activation::Linear, yt.as_slice())?;
    println!(
        "  {:<52} {}",
        format!("{m}×{k}×{n} (the seed layer's shape), dense_forward:"),
        compare(xv, wv, Some(&b), yk.as_slice(), yt.as_slice())
    );
    println!(
        "  Bitwise equal on the GEMM and packed paths (both layouts are copied into the same panels); on the tiny and"
    );
    println!(
        "  skinny paths (M·K·N ≤ 16384, or M ≤ 16) the PyTorch layout runs its own kernel, a dot product whose lanes are"
    );
    println!(
        "  summed in f64 (below K = 16 a loop without fused multiply-adds), so the last bits may differ; both layouts"
    );
    println!("  stay within the reference's bound (tests/layouts.rs).");
    Ok(())
}

/// "bitwise equal", or how many outputs differ and by how much, in units of
/// `u·(Σ|x·w| + |b|)` (`u` = 2⁻²⁴, the pre-activation's scale).
fn compare(
    x: MatRef<'_, f32>,
    w: MatRef<'_, f32>,
    b: Option<&[f32]>,
    keras: &[f32],
    torch: &[f32],
) -> String {
    let n = w.cols();
    let mut differ = 0;
    let mut worst = 0.0f64;
    for (e, (a, t)) in keras.iter().zip(torch).enumerate() {
        if a.to_bits() == t.to_bits() {
            continue;
        }
        differ += 1;
        let (i, j) = (e / n, e % n);
        let scale = (0..x.cols()).fold(b.map_or(0.0, |b| f64::from(b[j].abs())), |s, p| {
            s + f64::from((x.get(i, p).unwrap() * w.get(p, j).unwrap()).abs())
        });
        worst = worst.max((f64::from(*a) - f64::from(*t)).abs() / (scale * 2f64.powi(-24)));
    }
    if differ == 0 {
        "bitwise equal".to_string()
    } else {
        format!(
            "{differ} of {} outputs differ in the last bits, by at most {worst:.1}·u·(Σ|x·w| + |b|)",
            keras.len()
        )
    }
}

/// The `(units, in)` row-major copy of a `(in, units)` row-major weight.
fn transpose(w: &[f32], k: usize, n: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; k * n];
    for p in 0..k {
        for j in 0..n {
            t[j * k + p] = w[p * n + j];
        }
    }
    t
}

/// Median seconds of `f` and of `g`, run in turn for about `budget` each.
fn time_pair(budget: Duration, f: &mut dyn FnMut(), g: &mut dyn FnMut()) -> (f64, f64) {
    let once = |h: &mut dyn FnMut()| {
        let t = Instant::now();
        h();
        t.elapsed().as_secs_f64()
    };
    // Warm: buffers allocated, caches and the pool's threads awake.
    let slowest = once(f).max(once(g)).max(1e-9);
    let reps = ((budget.as_secs_f64() / slowest) as usize).clamp(5, 500);
    let (mut a, mut b) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for _ in 0..reps {
        a.push(once(f));
        b.push(once(g));
    }
    (median(a), median(b))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `len` values uniform in `[−scale, scale)`, deterministic per `seed` (SplitMix64).
fn uniform(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            let u = ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32;
            scale * (2.0 * u - 1.0)
        })
        .collect()
}

/// Keras's glorot_uniform for a `(fan_in, fan_out)` kernel: U(±sqrt(6/(in+out))).
fn glorot_uniform(fan_in: usize, fan_out: usize, seed: u64) -> Vec<f32> {
    uniform(
        fan_in * fan_out,
        seed,
        (6.0 / (fan_in + fan_out) as f32).sqrt(),
    )
}

/// `M K N [activation]` from the command line, or the default large layer.
fn parse_shape(args: &[String]) -> Res<(usize, usize, usize, Activation)> {
    if args.is_empty() {
        return Ok((512, 1024, 1024, Activation::Relu));
    }
    if args.len() < 3 {
        return Err("usage: forward [M K N [activation]]".into());
    }
    let dim = |s: &String| {
        s.parse::<usize>()
            .ok()
            .filter(|&d| d > 0)
            .ok_or_else(|| format!("bad dimension {s:?}: want a positive integer"))
    };
    let act = match args.get(3) {
        Some(a) => a.parse::<Activation>()?,
        None => Activation::Relu,
    };
    Ok((dim(&args[0])?, dim(&args[1])?, dim(&args[2])?, act))
}
