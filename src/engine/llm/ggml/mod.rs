//! CPU arithmetic of llama.cpp (ggml), so that a GGUF model gives the logits llama.cpp
//! gives, not merely close ones.
//!
//! A quantized GGUF model was made, and is judged, by llama.cpp. Its CPU backend does
//! not multiply by the dequantized weights: it rounds each activation row to 8 bits
//! first (per 32 values for `Q4_0`/`Q5_0`/`Q8_0` weights, per 256 for the k-quants) and
//! takes integer dot products; it keeps keys and values in f16, rounds queries and
//! attention probabilities to f16 for their products, and looks GELU up in an f16
//! table. Each of these moves a logit by up to a few tenths on Gemma 3 270M, enough to
//! change the greedy token at near-ties. candle's quantized matmul follows ggml's
//! scheme but not its roundings (it rounds ties away from zero and, on AVX-512, feeds
//! `Q8_0` weights 256-value activation blocks), so this module quantizes activations
//! exactly as ggml's x86 code does and uses candle's SIMD block dot products, whose
//! integer sums are exact; only the order of float additions differs from ggml.
//!
//! The folder follows the work: [`blocks`] (ggml's block layouts and the rounding of
//! activations to them), [`matmul`] (the threaded quantized matmul), [`dots`] (portable
//! block and f16 dot products in ggml's summation order), [`avx2`] (the same dots with
//! AVX2 intrinsics, bit for bit), `avx512_*` (Q4_K on weights repacked at load, Q6_K,
//! Q8_0 and attention with AVX-512, bit for bit too), [`f16`] (F16 weights),
//! [`attention`] (softmax, attention, rope and the host KV cache) and [`pointwise`] (GELU
//! and RMS norm). Instruction sets are picked with [`crate::cpu::features`].

mod attention;
#[cfg(target_arch = "x86_64")]
mod avx2;
/// Off x86-64 the AVX2 kernels do not exist; stand-ins keep the dispatch code the same.
#[cfg(not(target_arch = "x86_64"))]
#[path = "no_avx2.rs"]
mod avx2;
// The AVX-512 kernels, where the compiler has AVX-512 intrinsics (Rust 1.89).
/// Attention with AVX-512.
#[cfg(all(target_arch = "x86_64", svodka_avx512))]
mod avx512_attention;
/// The Q4_K matmul with AVX-512 VNNI on weights repacked at load.
#[cfg(all(target_arch = "x86_64", svodka_avx512))]
mod avx512_q4k;
/// The Q6_K matmuls with AVX-512 (VNNI for prompts).
#[cfg(all(target_arch = "x86_64", svodka_avx512))]
mod avx512_q6k;
/// The AVX-512 VNNI Q8_0 matmul (also Q5_0, which is loaded as Q8_0), where the compiler
/// has AVX-512 intrinsics.
#[cfg(all(target_arch = "x86_64", svodka_avx512))]
mod avx512_q8_0;
mod blocks;
mod dots;
mod f16;
mod matmul;
mod pointwise;
#[cfg(test)]
mod tests;

pub use attention::{attention, rope, Attention, HostKv};
pub use f16::F16MatMul;
pub use matmul::GgmlMatMul;
pub use pointwise::{gelu, rms_norm};
