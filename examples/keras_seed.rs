//! The Keras Dense tutorial's two models, built with the crate's layer API: their
//! summaries (as Keras 3 prints them) and a forward pass.
//!
//! `cargo run --release --example keras_seed`
//!
//! In Keras:
//! ```python
//! model = Sequential([Dense(7, input_shape=(4,)), Activation('sigmoid'),
//!                     Dense(13), Activation('sigmoid'), Dense(5), Activation('softmax')])
//! inputs = Input((5,)); outputs = Dense(1, activation='softmax')(inputs)
//! model2 = Model(inputs, outputs)
//! ```

use dense_kernel::layer::{ActivationLayer, Dense, Input, Sequential};
use dense_kernel::{Activation, DenseError};

fn main() -> Result<(), DenseError> {
    use Activation::{Sigmoid, Softmax};
    let mut model = Sequential::<f32>::new()
        .seed(2024)
        .add(Dense::new(7).input_dim(4))?
        .add(ActivationLayer::new(Sigmoid))?
        .add(Dense::new(13))?
        .add(ActivationLayer::new(Sigmoid))?
        .add(Dense::new(5))?
        .add(ActivationLayer::new(Softmax))?;
    print!("{}", model.summary());
    let x = [
        0.1f32, 0.2, 0.3, 0.4, //
        -1.0, 0.5, 2.0, 0.0, //
        3.0, -2.0, 1.0, -0.5,
    ];
    let (y, shape) = model.forward(&x, &[3, 4])?;
    println!(
        "\nforward on a batch of {}: output shape {shape:?}",
        shape[0]
    );
    for row in y.chunks(shape[1]) {
        let sum: f32 = row.iter().sum();
        println!("  {row:.4?}  (sum {sum:.6})");
    }

    let mut model2 =
        Sequential::<f32>::functional(Input::new(&[5])).add(Dense::new(1).activation(Softmax))?;
    println!();
    print!("{}", model2.summary());
    let (y2, shape2) = model2.forward(
        &[0.3, -1.2, 0.8, 2.0, -0.1, 1.0, 1.0, 1.0, 1.0, 1.0],
        &[2, 5],
    )?;
    println!("\nforward: output shape {shape2:?}, values {y2:?}");
    println!("(softmax over a single unit is always 1: Keras warns about this model)");
    Ok(())
}
