//! `cargo fuzz run activation_names`: the body is `decode::activation_names`, which the
//! stable test `tests/fuzz_corpus.rs` replays over the committed corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../decode.rs"]
mod decode;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = decode::activation_names(data) {
        panic!("activation_names: {e}");
    }
});
