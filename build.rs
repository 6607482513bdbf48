//! Build script. Only the `cuda` feature needs it: candle links the CUDA libraries
//! (cuBLAS, cuRAND, cudart, NVRTC) dynamically, and NVIDIA's images keep them in
//! /usr/local/cuda/lib64, which is not on the loader's default path. A run path lets the
//! binaries, tests and benches start there without LD_LIBRARY_PATH. The driver's
//! libcuda.so.1 is found by the loader as usual.
//!
//! It also sets `svodka_avx512` when the compiler has stable AVX-512 intrinsics (Rust
//! 1.89), so that the packed Marian kernels use them while older compilers within the
//! declared `rust-version` still build the AVX2 ones.

/// Where NVIDIA's CUDA images install the toolkit libraries.
const CUDA_RPATH: &str = "/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-check-cfg=cfg(svodka_avx512)");
    if rustc_minor().is_some_and(|minor| minor >= 89) {
        println!("cargo:rustc-cfg=svodka_avx512");
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        // Every linked target (bins, tests, benches, examples): all of them load CUDA.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{CUDA_RPATH}");
    }
}

/// The minor version of the compiler cargo builds with (`rustc 1.95.0 (...)` → 95).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var_os("RUSTC")?;
    let out = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.split_whitespace().nth(1)?;
    version.split('.').nth(1)?.parse().ok()
}
