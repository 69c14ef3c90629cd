//! `cargo fuzz run dense_shapes`: the body is `dense_kernel::reference::fuzz::dense_shapes`, which the
//! stable test `tests/fuzz_corpus.rs` replays over the committed corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = dense_kernel::reference::fuzz::dense_shapes(data) {
        panic!("dense_shapes: {e}");
    }
});
