//! The skinny (GEMV) path and the tiny path's kernels: `out += x·w` with the weight
//! streamed once and nothing packed. The microkernels live in `simd` (`gemv.rs`); this
//! is their driver over one output block, plus a plain loop for layouts they don't take.

use super::block::Block;
use super::Layout;
use crate::matrix::MatRef;
use crate::simd::Skinny;
use crate::Element;

/// Column pieces start on multiples of this (whole cache lines of `f32` and `f64`
/// output, and of the weight rows the axpy kernel streams).
pub(crate) const COL_ALIGN: usize = 64;

/// `block ← bias + input[rows, :]·kernel[:, cols]` for the block's rows and columns
/// (whatever the block held is overwritten, never read).
pub(crate) fn run_block<T: Element>(
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    bias: Option<&[T]>,
    layout: Layout,
    block: &mut Block<'_, T>,
) {
    let (rows, cols) = (block.rows.clone(), block.cols.clone());
    let k = input.cols();
    if rows.is_empty() || cols.is_empty() {
        return;
    }
    if k == 0 || layout == Layout::Other {
        // The plain loop accumulates onto the bias; an empty sum is the bias.
        block.fill_bias(bias);
        if k == 0 {
            return;
        }
    }
    let (rsx, csx) = input.strides_isize();
    let (rsw, csw) = kernel.strides_isize();
    // SAFETY: rows.start < M and cols.start < N, so both offsets name elements inside the
    // views (whose every offset was checked against their slices when built).
    let (x, w) = unsafe {
        (
            input.as_ptr().offset(rows.start as isize * rsx),
            kernel.as_ptr().offset(cols.start as isize * csw),
        )
    };
    let ldo = block.ld() as isize;
    let out = block.as_mut_ptr();
    match layout {
        Layout::Rows | Layout::Cols => {
            let dot = layout == Layout::Cols;
            let s = Skinny {
                m: rows.len(),
                k,
                n: cols.len(),
                x,
                rsx,
                csx,
                w,
                ldw: if dot { csw } else { rsw },
                out,
                ldo,
                bias: bias.map_or(core::ptr::null(), |b| b[cols.clone()].as_ptr()),
            };
            // SAFETY: `s` describes sub-views of validated views, the bias columns of the
            // block (N elements checked by the caller) and the exclusively owned output
            // block (which aliases neither input: they are shared borrows
            // while `out` is a unique one). For `Rows` the kernel's column stride is 1
            // (or it has one column); for `Cols` its row stride and the input's column
            // stride are 1 (or `k` is 1), as `layout` checked.
            unsafe { T::skinny(&s, dot) }
        }
        Layout::Other if csx == 1 && rsw == 1 => {
            // Both operands contiguous along K (the PyTorch layout with a K too short for
            // the dot kernel): unit-stride dot products that LLVM unrolls and vectorizes.
            for i in 0..rows.len() as isize {
                // SAFETY: row i of the input and column j of the kernel are K contiguous
                // elements inside their views (unit stride along K, checked just above),
                // and (i, j) lies inside the block, as above.
                unsafe {
                    let xr = core::slice::from_raw_parts(x.offset(i * rsx), k);
                    for j in 0..cols.len() as isize {
                        let wc = core::slice::from_raw_parts(w.offset(j * csw), k);
                        let o = out.offset(i * ldo + j);
                        *o = xr.iter().zip(wc).fold(*o, |acc, (&a, &b)| a * b + acc);
                    }
                }
            }
        }
        Layout::Other => {
            for i in 0..rows.len() as isize {
                for j in 0..cols.len() as isize {
                    // SAFETY: (i, p) and (p, j) lie inside the views and (i, j) inside
                    // the block, as above.
                    unsafe {
                        let o = out.offset(i * ldo + j);
                        let mut acc = *o;
                        for p in 0..k as isize {
                            acc = *x.offset(i * rsx + p * csx) * *w.offset(p * rsw + j * csw) + acc;
                        }
                        *o = acc;
                    }
                }
            }
        }
    }
}
