//! Trains a Keras-style MLP on scikit-learn's 8×8 handwritten digits (1,797 samples,
//! shipped as examples/data/digits.txt) and checks its test accuracy.
//!
//! ```text
//! cargo run --release --example digits            # 30 epochs, Keras-style progress
//! cargo run --release --example digits -- 10 0   # epochs, verbose (0, 1, 2)
//! ```
//!
//! The model and its compile are the Keras tutorial's:
//! `Dense(64, relu) → Dropout(0.1) → Dense(32, relu) → Dense(10, softmax)`,
//! `compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])`,
//! `fit(batch_size=32, validation_split=0.1)`. The samples are shuffled once (seed 0)
//! and split 80/20 into training and test sets, as `train_test_split(test_size=0.2)`
//! would; pixels are scaled to [0, 1]. The run fails if the test accuracy is below 95%.

use dense_kernel::layer::{CompileOptions, Dense, Dropout, FitOptions, Metric, Sequential};
use dense_kernel::Activation::{Relu, Softmax};
use std::error::Error;
use std::time::Instant;

const DIGITS: &str = include_str!("data/digits.txt");

type Res<T> = Result<T, Box<dyn Error>>;

/// `(pixels / 16, one-hot labels, samples)`, row-major, in file order.
fn load() -> Res<(Vec<f32>, Vec<f32>, usize)> {
    let (mut x, mut y, mut n) = (Vec::new(), Vec::new(), 0);
    for line in DIGITS.lines().filter(|l| !l.starts_with('#')) {
        let (pixels, label) = line.split_once(' ').ok_or("a line without a label")?;
        if pixels.len() != 64 {
            return Err(format!("line {n}: {} pixels", pixels.len()).into());
        }
        for c in pixels.chars() {
            x.push(c.to_digit(17).ok_or("a pixel outside 0..=16")? as f32 / 16.0);
        }
        let label: usize = label.trim().parse()?;
        y.extend((0..10).map(|c| if c == label { 1.0 } else { 0.0 }));
        n += 1;
    }
    Ok((x, y, n))
}

/// A fixed permutation of `0..n` (SplitMix64 + Fisher–Yates).
fn permutation(n: usize, mut state: u64) -> Vec<usize> {
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        p.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    p
}

fn rows(data: &[f32], width: usize, idx: &[usize]) -> Vec<f32> {
    idx.iter()
        .flat_map(|&i| data[i * width..(i + 1) * width].iter().copied())
        .collect()
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let epochs: usize = args.first().map_or(Ok(30), |s| s.parse())?;
    let verbose: u8 = args.get(1).map_or(Ok(1), |s| s.parse())?;

    let (x, y, n) = load()?;
    let order = permutation(n, 0);
    let n_test = n / 5;
    let (test, train) = order.split_at(n_test);
    let (xt, yt) = (rows(&x, 64, train), rows(&y, 10, train));
    let (xs, ys) = (rows(&x, 64, test), rows(&y, 10, test));
    let n_train = train.len();
    println!("digits: {n} samples of 8×8 pixels; {n_train} to train on, {n_test} to test");

    let mut model = Sequential::<f32>::new()
        .name("digits")
        .seed(0)
        .add(Dense::new(64).activation(Relu).input_dim(64))?
        .add(Dropout::new(0.1))?
        .add(Dense::new(32).activation(Relu))?
        .add(Dense::new(10).activation(Softmax))?;
    print!("{}", model.summary());
    model.compile_with(
        "adam".parse()?,
        "categorical_crossentropy".parse()?,
        &CompileOptions::new().metrics(&[Metric::Accuracy]),
    )?;
    let t = Instant::now();
    let history = model.fit(
        &xt,
        &[n_train, 64],
        &yt,
        &[n_train, 10],
        &FitOptions::new()
            .batch_size(32)
            .epochs(epochs)
            .validation_split(0.1)
            .verbose(verbose),
    )?;
    let secs = t.elapsed().as_secs_f64();
    let steps = model.iterations();
    println!(
        "trained: {epochs} epochs, {steps} steps in {:.2} s ({:.0} µs per step)",
        secs,
        secs * 1e6 / steps.max(1) as f64
    );
    if let (Some(l), Some(a)) = (history.get("loss"), history.get("val_accuracy")) {
        println!(
            "last epoch: loss {:.4}, validation accuracy {:.4}",
            l[l.len() - 1],
            a[a.len() - 1]
        );
    }
    let test_logs = model.evaluate_with(&xs, &[n_test, 64], &ys, &[n_test, 10], 32)?;
    let accuracy = test_logs
        .iter()
        .find(|(k, _)| k == "accuracy")
        .map_or(0.0, |(_, v)| *v);
    println!(
        "test: loss {:.4}, accuracy {:.4} ({} of {n_test})",
        test_logs[0].1,
        accuracy,
        (accuracy * n_test as f64).round()
    );
    if epochs >= 20 && accuracy < 0.95 {
        return Err(format!("test accuracy {accuracy:.4} is below 0.95").into());
    }
    Ok(())
}
