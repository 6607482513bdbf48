//! Build script. Only the `cuda` feature needs it: candle links the CUDA libraries
//! (cuBLAS, cuRAND, cudart, NVRTC) dynamically, and NVIDIA's images keep them in
//! /usr/local/cuda/lib64, which is not on the loader's default path. A run path lets the
//! binaries, tests and benches start there without LD_LIBRARY_PATH. The driver's
//! libcuda.so.1 is found by the loader as usual.

/// Where NVIDIA's CUDA images install the toolkit libraries.
const CUDA_RPATH: &str = "/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        // Every linked target (bins, tests, benches, examples): all of them load CUDA.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{CUDA_RPATH}");
    }
}
