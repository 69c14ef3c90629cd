//! Reused per-thread scratch buffers, one per element type: the packed path's input
//! block and the skinny path's partial sums live on the heap, so that no call needs more
//! than a few KiB of its caller's stack (a 144 KiB stack buffer overflowed 64 KiB and
//! 128 KiB threads, musl's default among them).
//!
//! A thread's buffer is allocated on its first use, at least as large as any packed call
//! needs (`f32`: `packed::plan::INPUT_BLOCK_FLOATS`), and kept
//! until the thread exits (up to [`RETAIN_BYTES`]; a larger request is served and
//! freed), so a prepared call allocates nothing after its first use on a thread. The
//! buffer is taken out of its thread-local slot while in use and put back after: a
//! nested use on the same thread (rayon may run another piece of work on a thread that
//! is waiting) finds the slot empty and gets a buffer of its own, never the one in use.

use crate::{DenseError, Element};
use core::cell::Cell;
use core::mem::MaybeUninit;
use std::thread::LocalKey;

/// The largest buffer a thread keeps between calls (4 MiB); larger ones are freed after
/// the call that needed them.
pub(crate) const RETAIN_BYTES: usize = 4 << 20;

/// Bytes over the request allocated so that the buffer can start on a 64-byte boundary.
const ALIGN_SLACK_BYTES: usize = 64;

std::thread_local! {
    /// This thread's `f32` buffer (empty until first used, and while in use).
    static F32: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    /// This thread's `f64` buffer.
    static F64: Cell<Vec<f64>> = const { Cell::new(Vec::new()) };
}

/// The thread-local slot of an element type's buffer.
pub trait ScratchSlot: Sized + 'static {
    /// This thread's slot.
    fn slot() -> &'static LocalKey<Cell<Vec<Self>>>;
}

impl ScratchSlot for f32 {
    fn slot() -> &'static LocalKey<Cell<Vec<f32>>> {
        &F32
    }
}

impl ScratchSlot for f64 {
    fn slot() -> &'static LocalKey<Cell<Vec<f64>>> {
        &F64
    }
}

/// Runs `f` on `len` uninitialised elements of this thread's `T` buffer, 64-byte
/// aligned, first growing the buffer to hold at least `max(len, min_len)` (on the
/// thread's first use, or for a larger request).
///
/// # Errors
/// [`DenseError::ScratchAllocation`] if the buffer cannot be grown (nothing runs).
pub(crate) fn with_buffer<T: Element, R>(
    len: usize,
    min_len: usize,
    f: impl FnOnce(&mut [MaybeUninit<T>]) -> R,
) -> Result<R, DenseError> {
    let size = core::mem::size_of::<T>();
    let slack = ALIGN_SLACK_BYTES / size;
    let too_large = || DenseError::ScratchAllocation {
        bytes: len.saturating_mul(size),
    };
    let want = len
        .max(min_len)
        .checked_add(slack)
        .filter(|w| w.checked_mul(size).is_some())
        .ok_or_else(too_large)?;
    let keep = want * size <= RETAIN_BYTES;
    // A request over the retention limit gets a buffer of its own and leaves the
    // thread's where it is; so does any request during thread teardown (no slot).
    let mut buf = if keep {
        T::slot().try_with(Cell::take).unwrap_or_default()
    } else {
        Vec::new()
    };
    if buf.capacity() < want {
        buf = Vec::new();
        buf.try_reserve_exact(want).map_err(|_| too_large())?;
    }
    let spare = buf.spare_capacity_mut();
    let start = (spare.as_ptr() as *const u8).align_offset(64) / size;
    let result = f(&mut spare[start.min(slack)..][..len]);
    if keep {
        // Keep one buffer per thread (after a nested use, the larger of two).
        let _ = T::slot().try_with(|slot| {
            let other = slot.take();
            slot.set(if other.capacity() > buf.capacity() {
                other
            } else {
                core::mem::take(&mut buf)
            });
        });
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr<T: Element>(len: usize, min: usize) -> usize {
        with_buffer::<T, _>(len, min, |b| {
            assert_eq!(b.len(), len);
            b.as_ptr() as usize
        })
        .unwrap()
    }

    #[test]
    fn a_thread_reuses_its_buffer_and_nested_uses_get_their_own() {
        let first = addr::<f32>(1000, 5000);
        assert_eq!(first % 64, 0, "64-byte aligned");
        assert_eq!(
            addr::<f32>(10, 0),
            first,
            "the same buffer on the same thread"
        );
        assert_eq!(addr::<f32>(5000, 0), first, "within the first capacity");
        assert_eq!(
            addr::<f64>(8, 0) % 64,
            0,
            "each type has its own, aligned too"
        );
        // Nested: a different buffer, and one of the two is kept afterwards.
        let (outer, inner) = with_buffer::<f32, _>(100, 0, |b| {
            let o = b.as_ptr() as usize;
            (o, addr::<f32>(100, 0))
        })
        .unwrap();
        assert_ne!(outer, inner);
        let after = addr::<f32>(1, 0);
        assert!(after == outer || after == inner);
        // Another thread has a buffer of its own.
        let other = std::thread::spawn(|| addr::<f32>(1, 0)).join().unwrap();
        assert_ne!(other, after);
        // Requests past the retention limit are served from a buffer of their own; the
        // thread keeps the one it had.
        let big = addr::<f32>(RETAIN_BYTES / 4 + 1, 0);
        assert_ne!(big, after);
        assert_eq!(addr::<f32>(1, 0), after);
    }

    #[test]
    fn an_impossible_request_is_an_error() {
        let e = with_buffer::<f64, _>(usize::MAX / 4, 0, |_| ()).unwrap_err();
        assert!(matches!(e, DenseError::ScratchAllocation { .. }), "{e}");
        let e = with_buffer::<f32, _>(1 << 60, 0, |_| ()).unwrap_err();
        assert!(matches!(e, DenseError::ScratchAllocation { .. }), "{e}");
    }
}
