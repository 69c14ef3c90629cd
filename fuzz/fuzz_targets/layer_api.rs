//! `cargo fuzz run layer_api`: the body is `dense_kernel::reference::fuzz::layer_api`, which the
//! stable test `tests/fuzz_corpus.rs` replays over the committed corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = dense_kernel::reference::fuzz::layer_api(data) {
        panic!("layer_api: {e}");
    }
});
