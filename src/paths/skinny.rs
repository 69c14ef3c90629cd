//! The skinny (GEMV) path and the tiny path's kernels: `out += x·w` with the weight
//! streamed once. The microkernel lives in `simd` (`gemv.rs`) and reads the Keras
//! layout; this is its driver over one output block, which packs a weight in any other
//! layout into that one, [`pack_cols`] columns at a time, as it goes.

use super::block::Block;
use super::Layout;
use crate::matrix::MatRef;
use crate::simd::{Skinny, K_BLOCK};
use crate::{DenseError, Element};

/// Column pieces start on multiples of this (whole cache lines of `f32` and `f64`
/// output, and of the weight rows the axpy kernel streams).
pub(crate) const COL_ALIGN: usize = 64;

/// Columns of a non-Keras-layout weight packed at a time: as many as the skinny kernel
/// keeps in registers, up to two 64-byte lines per step (32 `f32`, 16 `f64`): four
/// independent sums per row for the FMA latency to overlap, and one K block of them
/// (256 × 32 `f32`, 32 KiB) in L1 or close to it.
pub(crate) fn pack_cols<T: Element>() -> usize {
    T::skinny_narrow_cols().min(128 / core::mem::size_of::<T>())
}

/// `block ← bias + input[rows, :]·kernel[:, cols]` for the block's rows and columns
/// (whatever the block held is overwritten, never read), `K` summed in the crate's
/// blocks of [`K_BLOCK`], whatever the weight's layout.
///
/// # Errors
/// [`DenseError::ScratchAllocation`] if the axpy kernel's partial sums (`rows × cols`
/// elements, for `K` over one block) or the packed columns (`K ×` [`pack_cols`]
/// elements) cannot be allocated.
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
    let s = Skinny {
        m,
        k,
        n,
        x,
        rsx,
        csx,
        w,
        ldw: rsw,
        out,
        ldo,
        bias: bias.map_or(core::ptr::null(), <[T]>::as_ptr),
        add_out: false,
        part: core::ptr::null_mut(),
    };
    if layout == Layout::Rows {
        // SAFETY: `s` describes sub-views of validated views (the kernel's column stride
        // is 1, or it has one column, as `layout` checked), the bias columns of the
        // block (N elements checked by the caller) and the exclusively owned output
        // block (which aliases neither input: they are shared borrows while `out` is a
        // unique one).
        if k <= K_BLOCK {
            // SAFETY: as above; one K block needs no partial sums.
            unsafe { T::skinny(&s) };
        } else {
            let len = m
                .checked_mul(n)
                .ok_or(DenseError::ScratchAllocation { bytes: usize::MAX })?;
            super::scratch::with_buffer::<T, _>(len, 0, |part| {
                let s = Skinny {
                    part: part.as_mut_ptr().cast::<T>(),
                    ..s
                };
                // SAFETY: as above; `part` is this thread's scratch of `len` = m·n
                // elements, borrowed for this call only.
                unsafe { T::skinny(&s) }
            })?;
        }
        return Ok(());
    }
    // Any other layout. A few rows of a PyTorch-layout weight: straight from the
    // weight where the CPU has that kernel (transposed in registers).
    let done = if layout == Layout::Cols {
        let direct = Skinny { w, ldw: csw, ..s };
        // SAFETY: `direct` reads the kernel block as it is: column j at `w + j·csw`,
        // its steps contiguous (`rsw` is 1, or K is 1, as `layout` checked); the rest
        // as above.
        unsafe { T::skinny_t(&direct) }
    } else {
        0
    };
    if done == n {
        return Ok(());
    }
    // Else `cw` columns and one K block at a time packed into rows of steps (this
    // thread's reused buffer, L1- or L2-sized), then the axpy kernel's register variant
    // over them: the block's sums from zero, added to the bias (first block) or to the
    // total in `out` (later ones). Transposing moves values only, so each output's sum
    // is the Keras layout's, bit for bit.
    let cw = pack_cols::<T>();
    super::scratch::with_buffer::<T, _>(K_BLOCK.min(k) * cw, 0, |buf| {
        let buf = buf.as_mut_ptr().cast::<T>();
        let mut c0 = done;
        while c0 < n {
            let cols = cw.min(n - c0);
            let mut p0 = 0;
            while p0 < k {
                let kb = K_BLOCK.min(k - p0);
                // SAFETY: columns c0..c0+cols < n of the kernel block are readable at
                // steps p0..p0+kb ≤ k (strides `csw`, `rsw` of the validated view);
                // `buf` holds K_BLOCK·cw ≥ (kb−1)·cw + cols elements, this thread's
                // own, aliasing nothing. The kernel then reads those packed columns
                // (row stride cw; cols ≤ the register kernel's width, so `add_out` is
                // allowed and no partial sums are needed), input steps p0..p0+kb of the
                // block's rows, and writes output columns c0..c0+cols of the
                // exclusively owned block (read back only after the first K block
                // wrote them).
                unsafe {
                    T::pack_cols(
                        w.offset(c0 as isize * csw + p0 as isize * rsw),
                        csw,
                        rsw,
                        kb,
                        cols,
                        buf,
                        cw,
                    );
                    let first = p0 == 0;
                    let s = Skinny {
                        k: kb,
                        n: cols,
                        x: x.offset(p0 as isize * csx),
                        w: buf,
                        ldw: cw as isize,
                        out: out.add(c0),
                        bias: if s.bias.is_null() || !first {
                            core::ptr::null()
                        } else {
                            s.bias.add(c0)
                        },
                        add_out: !first,
                        ..s
                    };
                    T::skinny(&s);
                }
                p0 += kb;
            }
            c0 += cols;
        }
    })?;
    Ok(())
}
