//! Output blocks that threads write side by side: a raw handle on the row-major output,
//! cut into disjoint row or column ranges, one per piece of work.

use crate::Element;
use core::marker::PhantomData;
use core::ops::Range;

/// The row-major `m × n` output, shared by the pieces of one call.
pub(crate) struct SharedOut<'a, T> {
    ptr: *mut T,
    m: usize,
    n: usize,
    _out: PhantomData<&'a mut [T]>,
}

// SAFETY: the handle only hands out blocks through `block`, whose callers promise the
// blocks are disjoint; `T` (f32/f64) is Send + Sync.
unsafe impl<T: Send> Send for SharedOut<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedOut<'_, T> {}

impl<'a, T: Element> SharedOut<'a, T> {
    /// Borrows `out` (exactly `m·n` elements, row-major) for the pieces of one call.
    pub(crate) fn new(out: &'a mut [T], m: usize, n: usize) -> Self {
        assert_eq!(out.len(), m * n, "output length is m·n");
        SharedOut {
            ptr: out.as_mut_ptr(),
            m,
            n,
            _out: PhantomData,
        }
    }

    /// The block `rows × cols`.
    ///
    /// # Safety
    /// Blocks alive at the same time must not overlap. The ranges must lie within
    /// `m × n` (checked).
    pub(crate) unsafe fn block(&self, rows: Range<usize>, cols: Range<usize>) -> Block<'_, T> {
        assert!(
            rows.start <= rows.end && rows.end <= self.m,
            "rows in range"
        );
        assert!(
            cols.start <= cols.end && cols.end <= self.n,
            "cols in range"
        );
        // An empty block touches nothing: it keeps the output's first address rather
        // than forming one that may lie past the output's end.
        let ptr = if rows.is_empty() || cols.is_empty() {
            self.ptr
        } else {
            // SAFETY: (rows.start, cols.start) is an element of the m·n output.
            unsafe { self.ptr.add(rows.start * self.n + cols.start) }
        };
        Block {
            ptr,
            rows: rows.clone(),
            cols: cols.clone(),
            ld: self.n,
            _out: PhantomData,
        }
    }
}

/// One piece's block of the output: rows `rows`, columns `cols`, row stride `ld`.
pub(crate) struct Block<'a, T> {
    ptr: *mut T,
    /// The block's rows in the whole output.
    pub rows: Range<usize>,
    /// The block's columns in the whole output.
    pub cols: Range<usize>,
    ld: usize,
    _out: PhantomData<&'a mut [T]>,
}

impl<T: Element> Block<'_, T> {
    /// The block's first element.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut T {
        self.ptr
    }

    /// The output's row stride.
    pub(crate) fn ld(&self) -> usize {
        self.ld
    }

    /// The part of this block at rows `rows` and columns `cols` (absolute indices in the
    /// whole output, inside this block's ranges: checked).
    ///
    /// # Safety
    /// While the sub-block lives, nothing else may write its elements (the `&mut self`
    /// borrow keeps this block itself from being used meanwhile).
    pub(crate) unsafe fn sub(&mut self, rows: Range<usize>, cols: Range<usize>) -> Block<'_, T> {
        assert!(
            self.rows.start <= rows.start && rows.start <= rows.end && rows.end <= self.rows.end,
            "sub-block rows in range"
        );
        assert!(
            self.cols.start <= cols.start && cols.start <= cols.end && cols.end <= self.cols.end,
            "sub-block cols in range"
        );
        let ptr = if rows.is_empty() || cols.is_empty() {
            // As in `SharedOut::block`: no address past the output for an empty block.
            self.ptr
        } else {
            // SAFETY: the sub-block's first element is an element of this block.
            unsafe {
                self.ptr
                    .add((rows.start - self.rows.start) * self.ld + (cols.start - self.cols.start))
            }
        };
        Block {
            ptr,
            rows,
            cols,
            ld: self.ld,
            _out: PhantomData,
        }
    }

    /// Calls `f` on each row of the block, in order.
    pub(crate) fn for_rows(&mut self, mut f: impl FnMut(&mut [T])) {
        let w = self.cols.len();
        for i in 0..self.rows.len() {
            // SAFETY: row i of the block is `w` elements at `ptr + i·ld`, inside the
            // output, and this block is the only one covering them (`block`'s
            // contract); `&mut self` keeps the slice exclusive while `f` runs.
            let row = unsafe { core::slice::from_raw_parts_mut(self.ptr.add(i * self.ld), w) };
            f(row);
        }
    }

    /// Applies an element-wise activation to the block: in one call when the block
    /// spans whole rows (it is then contiguous), else row by row.
    pub(crate) fn apply_elementwise(&mut self, act: crate::Activation) {
        let w = self.cols.len();
        if w == self.ld {
            let len = self.rows.len() * w;
            // SAFETY: a block spanning whole rows is the contiguous run of `len`
            // elements from `ptr`, inside the output and covered by no other block.
            let all = unsafe { core::slice::from_raw_parts_mut(self.ptr, len) };
            crate::simd::apply(act, all, w);
        } else {
            self.for_rows(|row| crate::simd::apply(act, row, w));
        }
    }

    /// Writes the bias's columns (or zeros) into every row.
    pub(crate) fn fill_bias(&mut self, bias: Option<&[T]>) {
        let cols = self.cols.clone();
        self.for_rows(|row| match bias {
            Some(b) => copy_small(row, &b[cols.clone()]),
            None => row.fill(T::zero()),
        });
    }
}

/// `dst.copy_from_slice(src)` as inline vector moves. `copy_from_slice` calls the C
/// library's `memcpy`, which measured ~25 ns per call for a 7-element row and ~0.5
/// elements/ns for 16 KiB rows on the project's test machine: more than the tiny path's
/// whole product, and ~5% of a 256×1024×4096 GEMM. Fixed-size chunk copies compile to
/// plain loads and stores.
#[inline]
pub(crate) fn copy_small<T: Element>(dst: &mut [T], src: &[T]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let s: &[T; 8] = s.try_into().expect("chunks of 8");
        let d: &mut [T; 8] = d.try_into().expect("chunks of 8");
        *d = *s;
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}
