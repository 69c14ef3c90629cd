//! The skinny (GEMV) path and the tiny path's kernels: `out += x·w` with the weight
//! streamed once and nothing packed. The microkernels live in `simd` (`gemv.rs`); this
//! is their driver over one output block, plus a plain loop for layouts they don't take.

use super::block::Block;
use super::Layout;
use crate::matrix::MatRef;
use crate::simd::{Skinny, K_BLOCK};
use crate::{DenseError, Element};

/// Column pieces start on multiples of this (whole cache lines of `f32` and `f64`
/// output, and of the weight rows the axpy kernel streams).
pub(crate) const COL_ALIGN: usize = 64;

/// `block ← bias + input[rows, :]·kernel[:, cols]` for the block's rows and columns
/// (whatever the block held is overwritten, never read), `K` summed in the crate's
/// blocks of [`K_BLOCK`] (except the dot kernel, see [`crate::simd`]'s `gemv`).
///
/// # Errors
/// [`DenseError::ScratchAllocation`] if the axpy kernel's partial sums (`rows × cols`
/// elements, for `K` over one block) cannot be allocated.
pub(crate) fn run_block<T: Element>(
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    bias: Option<&[T]>,
    layout: Layout,
    block: &mut Block<'_, T>,
) -> Result<(), DenseError> {
    let (rows, cols) = (block.rows.clone(), block.cols.clone());
    let k = input.cols();
    if rows.is_empty() || cols.is_empty() {
        return Ok(());
    }
    if k == 0 {
        // An empty sum is the bias. (No view is read: an empty view's strides are
        // never used, see `MatRef`.)
        block.fill_bias(bias);
        return Ok(());
    }
    let (rsx, csx) = input.strides_isize();
    let (rsw, csw) = kernel.strides_isize();
    // SAFETY: rows.start < M and cols.start < N, so both offsets name elements inside the
    // views (whose every offset was checked against their slices when built; K > 0, so
    // the views are not empty).
    let (x, w) = unsafe {
        (
            input.as_ptr().offset(rows.start as isize * rsx),
            kernel.as_ptr().offset(cols.start as isize * csw),
        )
    };
    let ldo = block.ld() as isize;
    let out = block.as_mut_ptr();
    let bias = bias.map(|b| &b[cols.clone()]);
    let (m, n) = (rows.len(), cols.len());
    match layout {
        Layout::Rows | Layout::Cols => {
            let dot = layout == Layout::Cols;
            let s = Skinny {
                m,
                k,
                n,
                x,
                rsx,
                csx,
                w,
                ldw: if dot { csw } else { rsw },
                out,
                ldo,
                bias: bias.map_or(core::ptr::null(), <[T]>::as_ptr),
                part: core::ptr::null_mut(),
            };
            // SAFETY: (both calls) `s` describes sub-views of validated views, the bias
            // columns of the block (N elements checked by the caller) and the exclusively
            // owned output block (which aliases neither input: they are shared borrows
            // while `out` is a unique one). For `Rows` the kernel's column stride is 1
            // (or it has one column); for `Cols` its row stride and the input's column
            // stride are 1 (or `k` is 1), as `layout` checked. `part`, where set, is a
            // separate buffer of m·n elements.
            if dot || k <= K_BLOCK {
                // SAFETY: as above.
                unsafe { T::skinny(&s, dot) };
            } else {
                let len = m
                    .checked_mul(n)
                    .ok_or(DenseError::ScratchAllocation { bytes: usize::MAX })?;
                super::scratch::with_buffer::<T, _>(len, 0, |part| {
                    let s = Skinny {
                        part: part.as_mut_ptr().cast::<T>(),
                        ..s
                    };
                    // SAFETY: as above; `part` is this thread's scratch of `len` =
                    // m·n elements, borrowed for this call only.
                    unsafe { T::skinny(&s, false) }
                })?;
            }
        }
        Layout::Other => {
            let contiguous = csx == 1 && rsw == 1;
            for i in 0..m as isize {
                for j in 0..n as isize {
                    // SAFETY: (i, p) and (p, j) lie inside the views and (i, j) inside
                    // the block, as above; with `contiguous` (both operands unit-stride
                    // along K, the PyTorch layout with a K too short for the dot
                    // kernel), row i of the input and column j of the kernel are K
                    // consecutive elements.
                    unsafe {
                        let xr = x.offset(i * rsx);
                        let wc = w.offset(j * csw);
                        let b = bias.map(|b| b[j as usize]);
                        *out.offset(i * ldo + j) = if contiguous {
                            let xr = core::slice::from_raw_parts(xr, k);
                            let wc = core::slice::from_raw_parts(wc, k);
                            blocked_sum(k, b, |p| (xr[p], wc[p]))
                        } else {
                            blocked_sum(k, b, |p| {
                                let p = p as isize;
                                (*xr.offset(p * csx), *wc.offset(p * rsw))
                            })
                        };
                    }
                }
            }
        }
    }
    Ok(())
}

/// `bias + Σ_p x_p·w_p` for `p < k` in the crate's K-sum order: blocks of
/// [`K_BLOCK`], each summed from zero, the first added to the bias (if any), later ones
/// to the total. (Plain multiplies and adds: the tiny path's loop for layouts the vector
/// kernels do not take.)
#[inline]
fn blocked_sum<T: Element>(k: usize, bias: Option<T>, term: impl Fn(usize) -> (T, T)) -> T {
    let mut total: Option<T> = None;
    let mut b0 = 0;
    while b0 < k {
        let b1 = (b0 + K_BLOCK).min(k);
        let mut s = T::zero();
        for p in b0..b1 {
            let (a, b) = term(p);
            s = a * b + s;
        }
        total = Some(match total {
            None => bias.map_or(s, |b| s + b),
            Some(t) => s + t,
        });
        b0 = b1;
    }
    total.or(bias).unwrap_or_else(T::zero)
}
