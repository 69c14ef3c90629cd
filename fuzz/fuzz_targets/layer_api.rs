//! `cargo fuzz run layer_api`: the body is `decode::layer_api`, which the
//! stable test `tests/fuzz_corpus.rs` replays over the committed corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../decode.rs"]
mod decode;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = decode::layer_api(data) {
        panic!("layer_api: {e}");
    }
});
