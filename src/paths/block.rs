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
        Block {
            // SAFETY: (rows.start, cols.start) is within the m·n elements (or one past
            // the end for an empty block), so the offset stays in the allocation.
            ptr: unsafe { self.ptr.add(rows.start * self.n + cols.start) },
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

    /// Writes the bias's columns (or zeros) into every row.
    pub(crate) fn fill_bias(&mut self, bias: Option<&[T]>) {
        let cols = self.cols.clone();
        self.for_rows(|row| match bias {
            Some(b) => row.copy_from_slice(&b[cols.clone()]),
            None => row.fill(T::zero()),
        });
    }
}
