//! Stand-ins for the AVX2 kernels off x86-64, where [`crate::cpu::features`] never
//! reports AVX2: they keep the dispatch code of [`super::matmul`] the same there.

use super::blocks::{Q8K, Q8_0};
use super::matmul::OutPtr;
use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K, BlockQ8_0};

const NEVER: &str = "the AVX2 kernels run only where the CPU has AVX2 (x86-64)";

pub unsafe fn tile_q8_0(
    _: &[BlockQ8_0],
    _: &[Q8_0],
    _: usize,
    _: usize,
    _: usize,
    _: std::ops::Range<usize>,
    _: OutPtr,
) {
    unreachable!("{NEVER}")
}
pub unsafe fn dot_q4k(_: &[BlockQ4K], _: &[Q8K], _: bool) -> f32 {
    unreachable!("{NEVER}")
}
pub unsafe fn dot_q6k(_: &[BlockQ6K], _: &[Q8K]) -> f32 {
    unreachable!("{NEVER}")
}
pub unsafe fn dot_q6k_tiled(_: &[BlockQ6K], _: &[Q8K]) -> f32 {
    unreachable!("{NEVER}")
}
