//! `cargo fuzz run model_files`: the body is `decode::model_files` (Keras `.keras`,
//! legacy `.h5`, `.weights.h5` and safetensors readers), which the stable test
//! `tests/fuzz_corpus.rs` replays over the committed corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../decode.rs"]
mod decode;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = decode::model_files(data) {
        panic!("model_files: {e}");
    }
});
