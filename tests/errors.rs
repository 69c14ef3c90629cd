//! One test per `DenseError` variant: each bad call is refused with the right variant and
//! a message naming the shapes, and nothing panics.

use dense_kernel::{
    dense_forward, dense_forward_into, Activation, DenseError, Mat, MatMut, MatRef,
};

fn ok_input() -> (Vec<f32>, Vec<f32>) {
    (vec![1.0; 6], vec![1.0; 12]) // x: 2x3, w: 3x4
}

#[test]
fn inner_dimension_mismatch() {
    let (x, w) = ok_input();
    let err = dense_forward(
        MatRef::from_slice(&x, 2, 3).unwrap(),
        MatRef::from_slice(&w, 4, 3).unwrap(),
        None,
        Activation::Relu,
    )
    .unwrap_err();
    assert_eq!(
        err,
        DenseError::InnerDimMismatch {
            input: (2, 3),
            kernel: (4, 3)
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("2x3") && msg.contains("4x3"), "{msg}");
}

#[test]
fn bias_length() {
    let (x, w) = ok_input();
    let err = dense_forward(
        MatRef::from_slice(&x, 2, 3).unwrap(),
        MatRef::from_slice(&w, 3, 4).unwrap(),
        Some(&[0.0; 3]),
        Activation::Linear,
    )
    .unwrap_err();
    assert_eq!(err, DenseError::BiasLength { len: 3, units: 4 });
    assert!(err.to_string().contains("3 elements") && err.to_string().contains("4 units"));
}

#[test]
fn output_shape() {
    let (x, w) = ok_input();
    let mut out = vec![0.0f32; 8];
    let err = dense_forward_into(
        MatRef::from_slice(&x, 2, 3).unwrap(),
        MatRef::from_slice(&w, 3, 4).unwrap(),
        None,
        Activation::Linear,
        MatMut::from_slice(&mut out, 4, 2).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        DenseError::OutputShape {
            expected: (2, 4),
            actual: (4, 2)
        }
    );
    assert!(err.to_string().contains("4x2") && err.to_string().contains("2x4"));
    // The refused call did not write.
    assert!(out.iter().all(|&v| v == 0.0));
}

#[test]
fn slice_too_short() {
    let data = [0.0f64; 10];
    let err = MatRef::from_slice(&data, 3, 4).unwrap_err();
    assert_eq!(
        err,
        DenseError::SliceTooShort {
            rows: 3,
            cols: 4,
            row_stride: 4,
            col_stride: 1,
            required: 12,
            len: 10
        }
    );
    assert!(err.to_string().contains("3x4") && err.to_string().contains("12"));
    // Strided: the last element is at 2*5 + 1*2 = 12.
    assert!(matches!(
        MatRef::from_strided(&data, 3, 2, 5, 2),
        Err(DenseError::SliceTooShort {
            required: 13,
            len: 10,
            ..
        })
    ));
    let mut out = [0.0f64; 5];
    assert!(matches!(
        MatMut::from_slice(&mut out, 2, 3),
        Err(DenseError::SliceTooShort { .. })
    ));
    // Exactly long enough is fine, and longer slices are allowed.
    assert!(MatRef::from_strided(&data, 2, 2, 8, 1).is_ok());
    assert!(MatRef::from_slice(&data, 3, 3).is_ok());
}

#[test]
fn size_overflow() {
    let data = [0.0f32; 4];
    // Element count overflows usize.
    let err = MatRef::from_strided(&data, usize::MAX, 2, 0, 0).unwrap_err();
    assert!(
        matches!(
            err,
            DenseError::SizeOverflow {
                rows: usize::MAX,
                cols: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("overflows"));
    // Furthest offset overflows.
    assert!(matches!(
        MatRef::from_strided(&data, 3, 3, usize::MAX / 2, 1),
        Err(DenseError::SizeOverflow { .. })
    ));
    // A stride beyond isize::MAX.
    assert!(matches!(
        MatRef::from_strided(&data, 2, 1, isize::MAX as usize + 1, 1),
        Err(DenseError::SizeOverflow { .. })
    ));
    // Broadcast views are fine, but their M x N output would overflow usize.
    let x = MatRef::from_strided(&data, usize::MAX / 2, 1, 0, 0).unwrap();
    let w = MatRef::from_strided(&data, 1, 4, 0, 0).unwrap();
    assert!(matches!(
        dense_forward(x, w, None, Activation::Relu),
        Err(DenseError::SizeOverflow { .. })
    ));
    // Mat::try_zeros refuses sizes past isize::MAX bytes.
    assert!(matches!(
        Mat::<f64>::try_zeros(1 << 61, 1),
        Err(DenseError::SizeOverflow { .. })
    ));
}

#[test]
fn empty_views_take_any_shape_but_no_stride_past_isize() {
    // An empty view's strides are still pointer offsets' kind: above isize::MAX they
    // are refused like anyone else's (they used to be accepted unchecked).
    let none: [f32; 0] = [];
    for (rows, cols) in [(0, 5), (5, 0), (0, 0), (1 << 62, 0)] {
        for (rs, cs) in [(isize::MAX as usize + 1, 1), (1, usize::MAX)] {
            let err = MatRef::from_strided(&none, rows, cols, rs, cs).unwrap_err();
            assert!(
                matches!(err, DenseError::SizeOverflow { .. }),
                "{rows}x{cols} ({rs}, {cs}): {err:?}"
            );
        }
    }
    // Within it, any strides: an empty view reaches nothing. K = 0 through huge strides
    // gives the bias (or zeros), M = 0 or N = 0 an empty result, on every path.
    let big = isize::MAX as usize;
    let x = MatRef::from_strided(&none, 3, 0, big, big).unwrap();
    let w = MatRef::from_strided(&none, 0, 4, big, big).unwrap();
    let b = [1.0f32, -2.0, 0.5, 0.0];
    let y = dense_forward(x, w, Some(&b), Activation::Relu).unwrap();
    assert_eq!(y.as_slice(), [1.0, 0.0, 0.5, 0.0].repeat(3));
    let y = dense_forward(x, w, None, Activation::Sigmoid).unwrap();
    assert_eq!(y.as_slice(), [0.5; 12]);
    let packed = dense_kernel::PackedKernel::new(w, Some(&b)).unwrap();
    let mut out = [f32::NAN; 12];
    dense_kernel::dense_forward_packed(
        x,
        &packed,
        Activation::Linear,
        MatMut::from_slice(&mut out, 3, 4).unwrap(),
    )
    .unwrap();
    assert_eq!(
        out,
        [1.0, -2.0, 0.5, 0.0, 1.0, -2.0, 0.5, 0.0, 1.0, -2.0, 0.5, 0.0]
    );
    let tall = MatRef::from_strided(&none, 1 << 40, 0, big, big).unwrap();
    let wide = MatRef::from_strided(&none, 0, 0, big, big).unwrap();
    let y = dense_forward(tall, wide, None, Activation::Relu).unwrap();
    assert_eq!((y.rows(), y.cols()), (1 << 40, 0));
    let no_rows = MatRef::from_strided(&none, 0, 7, big, big).unwrap();
    let w7 = MatRef::from_strided(&none, 7, 2, big, big);
    assert!(w7.is_err(), "a non-empty view must fit its slice");
    let w7 = MatRef::from_slice(&[0.0f32; 14], 7, 2).unwrap();
    let y = dense_forward(no_rows, w7, None, Activation::Relu).unwrap();
    assert_eq!((y.rows(), y.cols()), (0, 2));
}

#[test]
fn data_length() {
    let err = Mat::from_vec(vec![0.0f32; 7], 2, 3).unwrap_err();
    assert_eq!(
        err,
        DenseError::DataLength {
            rows: 2,
            cols: 3,
            len: 7
        }
    );
    assert!(err.to_string().contains("2x3") && err.to_string().contains('7'));
    assert!(Mat::from_vec(vec![0.0f32; 6], 2, 3).is_ok());
}

#[cfg(target_pointer_width = "64")]
#[test]
fn allocation_failed() {
    // 2^60 bytes fits isize but no machine has it: an error, not an abort.
    let err = Mat::<f32>::try_zeros(1 << 29, 1 << 29).unwrap_err();
    assert_eq!(
        err,
        DenseError::AllocationFailed {
            rows: 1 << 29,
            cols: 1 << 29
        }
    );
    assert!(err
        .to_string()
        .contains(&format!("{}x{}", 1 << 29, 1 << 29)));
    // The same through dense_forward, with broadcast (stride-0) views of a tiny slice.
    let data = [1.0f32];
    let x = MatRef::from_strided(&data, 1 << 29, 0, 0, 0).unwrap();
    let w = MatRef::from_strided(&data, 0, 1 << 29, 0, 0).unwrap();
    assert!(matches!(
        dense_forward(x, w, None, Activation::Linear),
        Err(DenseError::AllocationFailed { .. })
    ));
}

#[test]
fn unknown_activation() {
    for bad in [
        "",
        "ReLU",
        "relu ",
        "gelu_tanh",
        "leaky_relu(0.1)",
        "softmax2",
        "none",
    ] {
        let err = bad.parse::<Activation>().unwrap_err();
        assert_eq!(
            err,
            DenseError::UnknownActivation {
                name: bad.to_owned()
            }
        );
        assert!(err.to_string().contains(&format!("{bad:?}")));
    }
}

#[test]
fn unsupported_activation() {
    for name in ["threshold", "glu"] {
        let err = name.parse::<Activation>().unwrap_err();
        assert!(
            matches!(&err, DenseError::UnsupportedActivation { name: n, .. } if n == name),
            "{err:?}"
        );
        assert!(err.to_string().contains(name));
    }
}

#[test]
fn errors_are_std_errors() {
    let e: Box<dyn std::error::Error + Send + Sync> =
        Box::new(DenseError::BiasLength { len: 1, units: 2 });
    assert!(!e.to_string().is_empty());
}
