//! Loads a Keras model file given on the command line (`.keras` or a legacy `.h5`),
//! prints its summary and the time the load took, and runs it on a batch of inputs.
//!
//! ```text
//! cargo run --release --example load_model -- model.keras [batch]
//! ```
//!
//! The input is a fixed pattern in [-1, 1] of the model's input shape; the first rows
//! of the output are printed.

use std::time::Instant;

use dense_kernel::layer::load_model;
use dense_kernel::DenseError;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: load_model <model.keras | model.h5> [batch]")?;
    let batch: usize = args.next().map_or(Ok(4), |b| b.parse())?;

    let t = Instant::now();
    let mut model = load_model::<f32>(&path)?;
    let load = t.elapsed();
    print!("{}", model.summary());
    println!("loaded {path} in {:.2} ms", load.as_secs_f64() * 1e3);

    let per_example = model
        .input_shape()
        .ok_or(DenseError::InvalidConfig {
            what: "the model's input shape is unknown".into(),
        })?
        .to_vec();
    let mut shape = vec![batch];
    shape.extend(&per_example);
    let len: usize = shape.iter().product();
    let x: Vec<f32> = (0..len)
        .map(|i| ((i * 37 % 201) as f32 / 100.0) - 1.0)
        .collect();
    let t = Instant::now();
    let y = model.predict(&x, &shape)?;
    let run = t.elapsed();
    println!(
        "predict on {shape:?} -> {:?} in {:.3} ms",
        y.shape,
        run.as_secs_f64() * 1e3
    );
    let cols = y.shape.last().copied().unwrap_or(1).max(1);
    for (i, row) in y.data.chunks(cols).take(4).enumerate() {
        let shown: Vec<String> = row.iter().take(8).map(|v| format!("{v:.6}")).collect();
        println!(
            "  row {i}: [{}{}]",
            shown.join(", "),
            if cols > 8 { ", …" } else { "" }
        );
    }
    Ok(())
}
