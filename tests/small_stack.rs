//! Every public entry point runs on a thread with a 64 KiB stack (a quarter of musl's
//! 128 KiB default), alone and as the workers of a rayon pool whose threads have 64
//! KiB each: no call into the crate needs more than a few KiB of its caller's stack
//! (the packed path's input block lives in a per-thread heap buffer). A call that
//! overflowed would abort this whole test binary ("has overflowed its stack"). `.ci/run`
//! runs it in debug and release, once per SIMD path.
//!
//! The work on the small stacks returns its findings as a `Result` instead of
//! asserting there: a panic's own machinery is not what is being measured.

use dense_kernel::layer::{
    ActivationLayer, Constraint, Dense, Initializer, Input, Regularizer, Sequential, Tensor,
};
use dense_kernel::{
    dense_forward, dense_forward_into, dense_forward_packed, Activation, Element, MatMut, MatRef,
    PackedKernel,
};

/// 64 KiB unoptimised, 32 KiB optimised. `SMALL_STACK_KIB=n` runs with `n` KiB instead,
/// to find the least that passes (docs/TESTING.md has the measured figures).
fn stack() -> usize {
    let default = if cfg!(debug_assertions) { 64 } else { 32 };
    std::env::var("SMALL_STACK_KIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(default)
        << 10
}

fn values<T: Element>(len: usize, seed: u64) -> Vec<T> {
    (0..len as u64)
        .map(|i| {
            let v = (i.wrapping_mul(2_654_435_761).wrapping_add(seed * 977) >> 7) % 2001;
            T::from(v as f64 / 1000.0 - 1.0).unwrap()
        })
        .collect()
}

/// Every activation, the parameterised ones with non-default parameters.
fn activations() -> Vec<Activation> {
    let mut acts = Activation::all().to_vec();
    acts.extend([
        Activation::ReluWith {
            negative_slope: 0.1,
            max_value: Some(6.0),
            threshold: 0.5,
        },
        Activation::Threshold {
            threshold: 0.1,
            default_value: -1.0,
        },
    ]);
    acts
}

/// `(m, k, n)` shapes that take every route of `dense_forward` and of the packed path:
/// tiny, skinny (one row and a few), the GEMM, narrow layers packed per call, the 1-row
/// 4-panel kernel, several `k` blocks, and the 24×1024 → 64.
const SHAPES: [(usize, usize, usize); 9] = [
    (4, 8, 8),
    (1, 1024, 100),
    (8, 512, 300),
    (64, 256, 130),
    (24, 1024, 64),
    (24, 1024, 10),
    (1, 2100, 40),
    (40, 300, 1000),
    (5, 0, 7),
];

/// `dense_forward` and `dense_forward_into` over `T`, every shape, both weight layouts,
/// plain and transposed inputs; every activation on one shape.
fn unpacked<T: Element>() -> Result<usize, String> {
    let mut calls = 0;
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        let (x, w, b) = (
            values::<T>(m * k, 1),
            values::<T>(k * n, 2),
            values::<T>(n, 3),
        );
        let acts = if i == 2 {
            activations()
        } else {
            vec![Activation::Relu, Activation::Gelu, Activation::Softmax]
        };
        for torch in [false, true] {
            let kernel = if torch {
                MatRef::from_slice(&w, n, k).map_err(|e| e.to_string())?.t()
            } else {
                MatRef::from_slice(&w, k, n).map_err(|e| e.to_string())?
            };
            let input = if torch {
                MatRef::from_slice(&x, k, m).map_err(|e| e.to_string())?.t()
            } else {
                MatRef::from_slice(&x, m, k).map_err(|e| e.to_string())?
            };
            for &act in &acts {
                let y = dense_forward(input, kernel, Some(&b), act)
                    .map_err(|e| format!("dense_forward {m}x{k}x{n} {act}: {e}"))?;
                let mut out = vec![T::zero(); m * n];
                dense_forward_into(
                    input,
                    kernel,
                    None,
                    act,
                    MatMut::from_slice(&mut out, m, n).map_err(|e| e.to_string())?,
                )
                .map_err(|e| format!("dense_forward_into {m}x{k}x{n} {act}: {e}"))?;
                if y.as_slice().len() != m * n {
                    return Err(format!("{m}x{k}x{n}: {} outputs", y.as_slice().len()));
                }
                calls += 2;
            }
        }
    }
    Ok(calls)
}

/// `PackedKernel::new` and `dense_forward_packed`: every shape, both weight layouts,
/// plain, strided and transposed inputs; every activation on one shape.
fn packed() -> Result<usize, String> {
    let mut calls = 0;
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        let (w, b) = (values::<f32>(k * n, 2), values::<f32>(n, 3));
        let x = values::<f32>((m * (k + 3)).max(1), 1);
        let acts = if i == 4 {
            activations()
        } else {
            vec![
                Activation::Relu,
                Activation::Sigmoid,
                Activation::LogSoftmax,
            ]
        };
        for torch in [false, true] {
            let kernel = if torch {
                MatRef::from_slice(&w, n, k).map_err(|e| e.to_string())?.t()
            } else {
                MatRef::from_slice(&w, k, n).map_err(|e| e.to_string())?
            };
            let p = PackedKernel::new(kernel, Some(&b)).map_err(|e| e.to_string())?;
            let inputs = [
                MatRef::from_slice(&x, m, k).map_err(|e| e.to_string())?,
                MatRef::from_strided(&x, m, k, k + 3, 1).map_err(|e| e.to_string())?,
                MatRef::from_slice(&x, k, m).map_err(|e| e.to_string())?.t(),
            ];
            for input in inputs {
                for &act in &acts {
                    let mut out = vec![0.0f32; m * n];
                    dense_forward_packed(
                        input,
                        &p,
                        act,
                        MatMut::from_slice(&mut out, m, n).map_err(|e| e.to_string())?,
                    )
                    .map_err(|e| format!("packed {m}x{k}x{n} {act}: {e}"))?;
                    calls += 1;
                }
            }
        }
    }
    Ok(calls)
}

// The Keras layer API in three functions, each with only a few locals: an unoptimised
// build gives every temporary of a function its own stack slot, and the test's own
// frame should not eat the budget that it checks the crate against.

/// `Dense`: built, called, called into, packed on its second call, weights got and set,
/// constraints, penalties.
fn dense_layer<T: Element>() -> Result<usize, String> {
    let e = |e: dense_kernel::DenseError| e.to_string();
    let mut calls = 0;
    let x = values::<T>(32 * 784, 5);
    let mut d = Box::new(
        Dense::<T>::new(128)
            .activation(Activation::Relu)
            .kernel_initializer(Initializer::Orthogonal { gain: 1.0 })
            .kernel_regularizer(Regularizer::l1_l2(0.01, 0.01))
            .kernel_constraint(Constraint::MaxNorm {
                max_value: 2.0,
                axis: 0,
            })
            .bias_constraint(Constraint::NonNeg),
    );
    for _ in 0..3 {
        let y = d.call(&x, &[32, 784]).map_err(e)?;
        let mut out = vec![T::zero(); y.data.len()];
        d.call_into(&x, &[32, 784], &mut out).map_err(e)?;
        calls += 2;
    }
    let w = d.get_weights().map_err(e)?;
    d.set_weights(&w).map_err(e)?;
    d.apply_constraints().map_err(e)?;
    let _ = d.losses();
    let _ = d.call(&x[..2 * 784], &[1, 2, 784]).map_err(e)?;
    for init in [
        Initializer::GlorotUniform,
        Initializer::HeNormal,
        Initializer::Orthogonal { gain: 1.0 },
    ] {
        let w: Vec<T> = init.sample(&[300, 200], 7).map_err(e)?;
        let _ = Tensor {
            shape: vec![300, 200],
            data: w,
        };
    }
    Ok(calls)
}

/// A four-layer model, Sequential or functional, boxed.
fn model<T: Element>(functional: bool) -> Result<Box<Sequential<T>>, String> {
    let e = |e: dense_kernel::DenseError| e.to_string();
    let model = if functional {
        Sequential::<T>::functional(Input::new(&[784]))
    } else {
        Sequential::<T>::new()
    };
    let first = if functional {
        Dense::new(256)
    } else {
        Dense::new(256).input_dim(784)
    };
    let model = model
        .add(first.activation(Activation::Gelu))
        .map_err(e)?
        .add(Dense::new(64))
        .map_err(e)?
        .add(ActivationLayer::new(Activation::Tanh))
        .map_err(e)?
        .add(Dense::new(10).activation(Activation::Softmax))
        .map_err(e)?;
    Ok(Box::new(model))
}

/// `Sequential` and the functional chain: forward, predict, summary.
fn models<T: Element>() -> Result<usize, String> {
    let e = |e: dense_kernel::DenseError| e.to_string();
    let mut calls = 0;
    let x = values::<T>(32 * 784, 5);
    for functional in [false, true] {
        let mut model = model::<T>(functional)?;
        for rows in [1, 3, 32] {
            for _ in 0..2 {
                let (y, shape) = model.forward(&x[..rows * 784], &[rows, 784]).map_err(e)?;
                if shape != [rows, 10] || y.len() != rows * 10 {
                    return Err(format!("forward: shape {shape:?}"));
                }
                let _ = model.predict(&x[..rows * 784], &[rows, 784]).map_err(e)?;
                calls += 2;
            }
        }
        let _ = model.summary();
        let _ = model.count_params().map_err(e)?;
        let _ = model.losses();
    }
    Ok(calls)
}

fn layers<T: Element>() -> Result<usize, String> {
    Ok(dense_layer::<T>()? + models::<T>()?)
}

fn all() -> Result<usize, String> {
    Ok(unpacked::<f32>()? + unpacked::<f64>()? + packed()? + layers::<f32>()? + layers::<f64>()?)
}

#[test]
fn every_entry_point_runs_on_a_64_kib_thread() {
    let calls = std::thread::Builder::new()
        .stack_size(stack())
        .spawn(all)
        .expect("spawn")
        .join()
        .expect("the small-stack thread panicked");
    let calls = calls.unwrap_or_else(|e| panic!("{e}"));
    assert!(calls > 500, "{calls} calls");
}

#[test]
fn every_entry_point_runs_in_a_pool_of_64_kib_threads() {
    // Several threads, so that calls split into pieces that run on the small stacks.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .stack_size(stack())
        .build()
        .expect("pool");
    let calls = pool.install(all).unwrap_or_else(|e| panic!("{e}"));
    assert!(calls > 500, "{calls} calls");
}
