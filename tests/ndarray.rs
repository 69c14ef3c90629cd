//! The `ndarray` feature: views borrowed without copies where their layout allows,
//! refused with a layout error where it does not, and `dense_forward_array` /
//! the layer's `*_array` methods bit for bit equal to the slice API on every layout.
#![cfg(feature = "ndarray")]

use dense_kernel::layer::{Dense, Sequential};
use dense_kernel::{dense_forward, dense_forward_array, Activation, DenseError, MatMut, MatRef};
use ndarray::{s, Array, Array2, Array3, ArrayD, ArrayView1, IxDyn};

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn array2(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    Array2::from_shape_vec((rows, cols), values(rows * cols, seed)).unwrap()
}

fn bits(a: &[f32]) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

/// The slice API on row-major copies: what every layout must reproduce.
fn expected(x: &Array2<f32>, w: &Array2<f32>, b: &[f32], act: Activation) -> Vec<f32> {
    let (xs, ws) = (x.as_standard_layout(), w.as_standard_layout());
    let xv = MatRef::from_slice(xs.as_slice().unwrap(), x.nrows(), x.ncols()).unwrap();
    let wv = MatRef::from_slice(ws.as_slice().unwrap(), w.nrows(), w.ncols()).unwrap();
    dense_forward(xv, wv, Some(b), act).unwrap().into_vec()
}

#[test]
fn views_without_gaps_are_borrowed_in_place() {
    let a = array2(6, 5, 1);
    // Row-major, its transpose, a range of rows, a range of columns of the transpose.
    let cases = [
        a.view(),
        a.t(),
        a.slice(s![2..5, ..]),
        a.slice(s![1..4, ..]).reversed_axes(),
    ];
    for v in cases {
        let m = MatRef::try_from(v).unwrap();
        assert_eq!((m.rows(), m.cols()), v.dim());
        for ((i, j), &e) in v.indexed_iter() {
            assert_eq!(m.get(i, j), Some(e), "({i}, {j}) of {:?}", v.strides());
        }
    }
}

#[test]
fn views_with_gaps_or_negative_strides_are_layout_errors() {
    let a = array2(6, 5, 2);
    let gaps = a.slice(s![.., 1..3]);
    let stepped = a.slice(s![..;2, ..]);
    let reversed = a.slice(s![..;-1, ..]);
    for v in [gaps, stepped, reversed] {
        match MatRef::try_from(v) {
            Err(DenseError::UnsupportedLayout { shape, strides, .. }) => {
                assert_eq!(shape, v.shape());
                assert_eq!(strides, v.strides());
            }
            other => panic!("{:?}: {other:?}", v.strides()),
        }
        let msg = MatRef::try_from(v).unwrap_err().to_string();
        assert!(msg.contains(&format!("{:?}", v.shape())), "{msg}");
    }
    // An output must be row-major contiguous.
    let mut out = Array2::<f32>::zeros((3, 4));
    assert!(matches!(
        MatMut::try_from(out.view_mut().reversed_axes()),
        Err(DenseError::UnsupportedLayout { .. })
    ));
    assert!(MatMut::try_from(out.view_mut()).is_ok());
}

#[test]
fn dense_forward_array_matches_the_slice_api_on_every_layout() {
    let act = Activation::Gelu;
    let (m, k, n) = (7, 300, 9);
    let x = array2(m, k, 3);
    let w_keras = array2(k, n, 4);
    let w_torch = w_keras.t().as_standard_layout().into_owned(); // (units, in)
    let b: Vec<f32> = values(n, 5);
    let bias = Array::from(b.clone());
    let want = bits(&expected(&x, &w_keras, &b, act));

    // A bigger array whose interior slices are the same x and w (gaps, negative strides).
    let mut wide_x = Array2::<f32>::zeros((m, k + 3));
    wide_x.slice_mut(s![.., 1..k + 1]).assign(&x);
    // Rows stored in reverse: read back through a negative row stride, it is x.
    let reversed_rows = x.slice(s![..;-1, ..]).to_owned();
    let mut wide_w = Array2::<f32>::zeros((k, 2 * n));
    wide_w.slice_mut(s![.., ..;2]).assign(&w_keras);

    let xs = [
        x.view(),
        wide_x.slice(s![.., 1..k + 1]),
        reversed_rows.slice(s![..;-1, ..]),
    ];
    let ws = [w_keras.view(), w_torch.t(), wide_w.slice(s![.., ..;2])];
    for xv in xs {
        for wv in ws {
            let y = dense_forward_array(xv.into_dyn(), wv, Some(bias.view()), act).unwrap();
            assert_eq!(y.shape(), &[m, n]);
            assert_eq!(
                bits(y.as_slice().unwrap()),
                want,
                "x strides {:?}, w strides {:?}",
                xv.strides(),
                wv.strides()
            );
        }
    }
}

#[test]
fn higher_rank_inputs_apply_to_the_last_axis() {
    let act = Activation::Relu;
    let (b0, t, k, n) = (2, 3, 17, 5);
    let x3 = Array3::from_shape_vec((b0, t, k), values(b0 * t * k, 6)).unwrap();
    let w = array2(k, n, 7);
    let bias: Vec<f32> = values(n, 8);
    let y = dense_forward_array(
        x3.view().into_dyn(),
        w.view(),
        Some(ArrayView1::from(&bias[..])),
        act,
    )
    .unwrap();
    assert_eq!(y.shape(), &[b0, t, n]);
    let flat = Array2::from_shape_vec((b0 * t, k), x3.as_slice().unwrap().to_vec()).unwrap();
    assert_eq!(
        bits(y.as_slice().unwrap()),
        bits(&expected(&flat, &w, &bias, act))
    );

    // A permuted (non-standard) rank-3 input gives the same as its standard copy.
    let xp = x3.view().permuted_axes([1, 0, 2]);
    let yp = dense_forward_array(
        xp.into_dyn(),
        w.view(),
        Some(ArrayView1::from(&bias[..])),
        act,
    )
    .unwrap();
    let xs = xp.as_standard_layout().into_owned().into_dyn();
    let ys =
        dense_forward_array(xs.view(), w.view(), Some(ArrayView1::from(&bias[..])), act).unwrap();
    assert_eq!(yp.shape(), &[t, b0, n]);
    assert_eq!(yp, ys);

    // Rank 1: (in,) -> (units,); rank 0 is an error naming the shape.
    let x1 = Array::from(values(k, 9));
    let y1 = dense_forward_array(x1.view().into_dyn(), w.view(), None, act).unwrap();
    assert_eq!(y1.shape(), &[n]);
    let x0 = ArrayD::<f32>::zeros(IxDyn(&[]));
    assert!(matches!(
        dense_forward_array(x0.view(), w.view(), None, act),
        Err(DenseError::InputShape { .. })
    ));
    // A last axis other than the kernel's rows.
    let bad = Array2::<f32>::zeros((2, k + 1));
    assert!(matches!(
        dense_forward_array(bad.view().into_dyn(), w.view(), None, act),
        Err(DenseError::InnerDimMismatch { .. })
    ));
}

#[test]
fn empty_arrays_give_empty_or_bias_only_results() {
    let w = array2(0, 3, 10);
    let x = Array2::<f32>::zeros((4, 0));
    let bias = Array::from(vec![1.0f32, -2.0, 0.5]);
    let y = dense_forward_array(
        x.view().into_dyn(),
        w.view(),
        Some(bias.view()),
        Activation::Relu,
    )
    .unwrap();
    assert_eq!(y.shape(), &[4, 3]);
    assert!(y
        .outer_iter()
        .all(|r| r.iter().copied().eq([1.0, 0.0, 0.5])));
    let x = Array2::<f32>::zeros((0, 5));
    let w = array2(5, 3, 11);
    let y = dense_forward_array(x.view().into_dyn(), w.view(), None, Activation::Relu).unwrap();
    assert_eq!(y.shape(), &[0, 3]);
}

#[test]
fn the_layer_api_takes_and_returns_arrays() {
    let x = Array3::from_shape_vec((2, 4, 6), values(48, 12)).unwrap();
    let mut layer = Dense::<f32>::new(3).activation(Activation::Tanh).seed(5);
    let y = layer.call_array(x.view().into_dyn()).unwrap();
    assert_eq!(y.shape(), &[2, 4, 3]);
    let t = layer.call(x.as_slice().unwrap(), x.shape()).unwrap();
    assert_eq!(y, t.clone().into_array().unwrap());
    assert_eq!(bits(y.as_slice().unwrap()), bits(&t.data));

    let mut model = Sequential::<f32>::new()
        .add(Dense::new(5).activation(Activation::Relu).seed(1))
        .unwrap()
        .add(Dense::new(2).seed(2))
        .unwrap();
    let x2 = array2(3, 6, 13);
    let p = model.predict_array(x2.view().into_dyn()).unwrap();
    let q = model.predict(x2.as_slice().unwrap(), &[3, 6]).unwrap();
    assert_eq!(p.shape(), &[3, 2]);
    assert_eq!(bits(p.as_slice().unwrap()), bits(&q.data));
    // A transposed input is read through a copy, with the same result.
    let x2t = x2.t().as_standard_layout().into_owned();
    let pt = model.predict_array(x2t.t().into_dyn()).unwrap();
    assert_eq!(p, pt);
}

#[test]
fn matrices_and_tensors_move_into_arrays() {
    let x = array2(3, 4, 14);
    let w = array2(4, 2, 15);
    let y = dense_forward(
        MatRef::try_from(x.view()).unwrap(),
        MatRef::try_from(w.view()).unwrap(),
        None,
        Activation::Linear,
    )
    .unwrap();
    let flat = y.as_slice().to_vec();
    let arr = y.into_array();
    assert_eq!(arr.dim(), (3, 2));
    assert_eq!(arr.as_slice().unwrap(), &flat[..]);
    // An inconsistent tensor (public fields) is an error, not a panic.
    let t = dense_kernel::layer::Tensor {
        shape: vec![2, 3],
        data: vec![0.0f32; 5],
    };
    assert!(matches!(t.into_array(), Err(DenseError::InputShape { .. })));
}

#[test]
fn an_output_view_is_written_in_place() {
    let x = array2(5, 8, 16);
    let w = array2(8, 3, 17);
    let mut out = Array2::<f32>::zeros((5, 3));
    dense_kernel::dense_forward_into(
        MatRef::try_from(x.view()).unwrap(),
        MatRef::try_from(w.view()).unwrap(),
        None,
        Activation::Sigmoid,
        MatMut::try_from(out.view_mut()).unwrap(),
    )
    .unwrap();
    // The same bits as the call that allocates its output.
    let y = dense_forward(
        MatRef::try_from(x.view()).unwrap(),
        MatRef::try_from(w.view()).unwrap(),
        None,
        Activation::Sigmoid,
    )
    .unwrap();
    assert_eq!(bits(out.as_slice().unwrap()), bits(y.as_slice()));
    assert!(out.iter().all(|&v| v > 0.0 && v < 1.0));
}
