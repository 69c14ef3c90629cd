//! `cargo fuzz run dense_shapes`: the body is `decode::dense_shapes`, which the
//! stable test `tests/fuzz_corpus.rs` replays over the committed corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../decode.rs"]
mod decode;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = decode::dense_shapes(data) {
        panic!("dense_shapes: {e}");
    }
});
