//! Tells the crate whether it is being compiled without optimisation (`OPT_LEVEL` 0, as
//! in a default debug build), where the vector kernels' per-activation loops are kept
//! as separate functions rather than inlined into their backend's entry: unoptimised,
//! the one inlined entry kept every activation body's temporaries in one frame (about
//! 1 MiB for the AVX-512 block pass), enough to overflow a 1 MiB thread stack.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(dense_kernel_unoptimized)");
    // Set by cargo-fuzz (fuzz/): small calls split across threads (`parallel`).
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("OPT_LEVEL").as_deref() == Ok("0") {
        println!("cargo::rustc-cfg=dense_kernel_unoptimized");
    }
}
