//! Every layer entry point answers a shape it cannot hold with a `DenseError`: element
//! counts that overflow `usize` (`[2⁶², 0]` into a `Dense(8)`: 2⁶⁵ outputs; `[2⁶², 2⁶²,
//! 0]`: the batch axes alone overflow) and buffers that cannot be allocated (`[2⁴⁰, 0]`:
//! 8 TiB of outputs), never a panic (debug builds check integer overflow) or an abort
//! (a failed infallible allocation ends the process, which would end this test binary).

use dense_kernel::layer::{fans, ActivationLayer, Constraint, Dense, Initializer, Sequential};
use dense_kernel::{Activation, DenseError};

/// Inputs with no elements whose outputs are too large to exist.
fn huge_shapes() -> Vec<Vec<usize>> {
    vec![
        vec![1 << 40, 0],
        vec![1 << 62, 0],
        vec![usize::MAX, 0],
        vec![1 << 62, 1 << 62, 0],
        vec![3, 1 << 61, 0],
    ]
}

fn is_size_error(e: &DenseError) -> bool {
    matches!(
        e,
        DenseError::AllocationFailed { .. }
            | DenseError::ShapeOverflow { .. }
            | DenseError::InputShape { .. }
            | DenseError::OutputShape { .. }
    )
}

#[test]
fn dense_call_and_call_into_refuse_outputs_too_large_to_exist() {
    for shape in huge_shapes() {
        for units in [1usize, 8] {
            let mut d = Dense::<f32>::new(units);
            let e = d.call(&[], &shape).unwrap_err();
            assert!(is_size_error(&e), "call {shape:?}: {e}");
            let e = d.call_into(&[], &shape, &mut []).unwrap_err();
            assert!(is_size_error(&e), "call_into {shape:?}: {e}");
            let mut d64 = Dense::<f64>::new(units).input_dim(0);
            let e = d64.call(&[], &shape).unwrap_err();
            assert!(is_size_error(&e), "f64 call {shape:?}: {e}");
        }
    }
    // A last axis too large for the weight: the build refuses it.
    let mut d = Dense::<f32>::new(8);
    let e = d.call(&[], &[0, 1 << 62]).unwrap_err();
    assert!(matches!(e, DenseError::InvalidConfig { .. }), "{e}");
    let e = d.call(&[], &[0, 1 << 40]).unwrap_err();
    assert!(matches!(e, DenseError::InvalidConfig { .. }), "{e}");
}

#[test]
fn sequential_forward_and_predict_refuse_them_too() {
    for shape in huge_shapes() {
        for first_activation in [false, true] {
            let mut m = Sequential::<f32>::new();
            if first_activation {
                m = m.add(ActivationLayer::new(Activation::Relu)).unwrap();
            }
            let mut m = m.add(Dense::new(8)).unwrap().add(Dense::new(3)).unwrap();
            let e = m.forward(&[], &shape).unwrap_err();
            assert!(is_size_error(&e), "forward {shape:?}: {e}");
            let e = m.predict(&[], &shape).unwrap_err();
            assert!(is_size_error(&e), "predict {shape:?}: {e}");
            // The model still works afterwards.
            let (y, s) = m.forward(&[], &[2, 0]).unwrap();
            assert_eq!((y.len(), s), (6, &[2usize, 3][..]));
        }
        // An activation-only model copies its input: no element, so an empty output.
        let mut a = Sequential::<f64>::new()
            .add(ActivationLayer::new(Activation::Softmax))
            .unwrap();
        match a.forward(&[], &shape) {
            Ok((y, s)) => assert!(y.is_empty() && s == shape),
            Err(e) => assert!(is_size_error(&e), "{shape:?}: {e}"),
        }
        let e = ActivationLayer::new(Activation::Tanh).call_in_place::<f32>(&mut [], &[1 << 62, 8]);
        assert!(e.is_err());
    }
}

#[test]
fn constraints_and_initializers_take_any_shape() {
    for shape in [
        vec![0, 1 << 40, 1 << 40],
        vec![1 << 40, 1 << 40, 0],
        vec![usize::MAX, 0, usize::MAX],
    ] {
        for c in [
            Constraint::MaxNorm {
                max_value: 2.0,
                axis: 1,
            },
            Constraint::UnitNorm { axis: 0 },
            Constraint::MinMaxNorm {
                min_value: 0.0,
                max_value: 1.0,
                rate: 1.0,
                axis: 2,
            },
            Constraint::NonNeg,
        ] {
            // No element: nothing to constrain.
            c.apply::<f32>(&mut [], &shape)
                .unwrap_or_else(|e| panic!("{c:?} {shape:?}: {e}"));
        }
    }
    for shape in [
        vec![1 << 40, 1 << 40],
        vec![1 << 31, 1 << 31],
        vec![usize::MAX, 2],
        vec![1 << 20, 1 << 20, 1 << 20, 1 << 20],
    ] {
        for init in [
            Initializer::GlorotUniform,
            Initializer::HeNormal,
            Initializer::Orthogonal { gain: 1.0 },
            Initializer::Zeros,
        ] {
            let e = init.sample::<f32>(&shape, 1).unwrap_err();
            assert!(
                matches!(e, DenseError::InvalidConfig { .. }),
                "{init:?} {shape:?}: {e}"
            );
        }
        let _ = fans(&shape);
    }
    // The fan counts saturate rather than overflow.
    assert_eq!(fans(&[1 << 40, 1 << 40, 1 << 40, 2]).0, usize::MAX);
}
