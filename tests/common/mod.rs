//! Helpers shared by the integration tests: a tiny seeded RNG and matrix layouts.
#![allow(dead_code)]

use dense_kernel::{Activation, Element, MatRef};

/// SplitMix64: a few lines, deterministic, good enough to fill test matrices.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-1, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    pub fn vec<T: Element>(&mut self, len: usize, scale: f64) -> Vec<T> {
        (0..len)
            .map(|_| T::narrow(scale * self.uniform()))
            .collect()
    }
}

/// The row-major `cols × rows` transpose of a row-major `rows × cols` matrix (a Keras
/// `(in, units)` kernel stored as PyTorch's `(units, in)` weight).
pub fn transposed<T: Copy>(data: &[T], rows: usize, cols: usize) -> Vec<T> {
    (0..rows * cols)
        .map(|e| data[(e % rows) * cols + e / rows])
        .collect()
}

/// How a logical `rows × cols` matrix is laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Row-major, rows packed.
    RowMajor,
    /// Row-major with padding after each row.
    Padded(usize),
    /// Stored as the row-major transpose, viewed through `.t()`.
    Transposed,
    /// Columns `step` elements apart (row stride `cols * step`).
    ColStep(usize),
    /// Row stride 0: every row is the same stored row (the last one written wins, and
    /// the reference reads through the same view).
    RowBroadcast,
}

pub const LAYOUTS: [Layout; 6] = [
    Layout::RowMajor,
    Layout::Padded(3),
    Layout::Transposed,
    Layout::ColStep(2),
    Layout::Padded(17),
    Layout::RowBroadcast,
];

/// A matrix's storage plus how to view it.
pub struct Stored<T> {
    pub data: Vec<T>,
    pub rows: usize,
    pub cols: usize,
    pub layout: Layout,
}

impl<T: Element> Stored<T> {
    /// Fills storage for a `rows × cols` matrix in `layout` with `values` (row-major,
    /// `rows * cols` of them); padding holds NaN, which must never be read.
    pub fn new(values: &[T], rows: usize, cols: usize, layout: Layout) -> Self {
        assert_eq!(values.len(), rows * cols);
        let (rs, cs, len) = Self::geometry(rows, cols, layout);
        let mut data = vec![T::nan(); len];
        for i in 0..rows {
            for j in 0..cols {
                data[i * rs + j * cs] = values[i * cols + j];
            }
        }
        Stored {
            data,
            rows,
            cols,
            layout,
        }
    }

    /// `(row_stride, col_stride, len)` of the logical matrix in storage.
    fn geometry(rows: usize, cols: usize, layout: Layout) -> (usize, usize, usize) {
        let (rs, cs) = match layout {
            Layout::RowMajor => (cols, 1),
            Layout::Padded(p) => (cols + p, 1),
            Layout::Transposed => (1, rows),
            Layout::ColStep(s) => (cols * s, s),
            Layout::RowBroadcast => (0, 1),
        };
        let len = if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        };
        (rs, cs, len)
    }

    pub fn view(&self) -> MatRef<'_, T> {
        match self.layout {
            Layout::RowMajor => MatRef::from_slice(&self.data, self.rows, self.cols).unwrap(),
            Layout::Transposed => MatRef::from_slice(&self.data, self.cols, self.rows)
                .unwrap()
                .t(),
            _ => {
                let (rs, cs, _) = Self::geometry(self.rows, self.cols, self.layout);
                MatRef::from_strided(&self.data, self.rows, self.cols, rs, cs).unwrap()
            }
        }
    }
}

/// The activation of `template`'s variant with random parameters.
pub fn randomize(template: Activation, rng: &mut Rng) -> Activation {
    use Activation::*;
    let mut r = |lo: f64, hi: f64| lo + (hi - lo) * (rng.uniform() + 1.0) / 2.0;
    match template {
        LeakyRelu { .. } => LeakyRelu {
            negative_slope: r(-0.5, 1.5),
        },
        Elu { .. } => Elu {
            alpha: r(0.05, 3.0),
        },
        Celu { .. } => Celu {
            alpha: r(0.05, 3.0),
        },
        Squareplus { .. } => Squareplus { b: r(0.0, 10.0) },
        SoftShrink { .. } => SoftShrink {
            threshold: r(0.0, 3.0),
        },
        HardShrink { .. } => HardShrink {
            threshold: r(0.0, 3.0),
        },
        Threshold { .. } => Threshold {
            threshold: r(-3.0, 3.0),
            default_value: r(-3.0, 3.0),
        },
        ReluWith { .. } => {
            let max_value = if r(0.0, 1.0) < 0.5 {
                None
            } else {
                Some(r(0.5, 8.0))
            };
            let threshold = if r(0.0, 1.0) < 0.3 { 0.0 } else { r(-2.0, 3.0) };
            let negative_slope = if r(0.0, 1.0) < 0.3 { 0.0 } else { r(-0.5, 1.0) };
            ReluWith {
                negative_slope,
                max_value,
                threshold,
            }
        }
        other => other,
    }
}
