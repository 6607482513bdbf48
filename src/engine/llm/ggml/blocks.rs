//! ggml's activation blocks (`block_q8_0`, `block_q8_K`) and the rounding of f32
//! activation rows to them, exactly as ggml's x86 code rounds; byte views of blocks.

use candle_core::quantized::k_quants::{BlockQ8K, BlockQ8_0};
use half::f16;

pub(super) const QK8_0: usize = 32;
pub(super) const QK_K: usize = 256;

/// ggml's `block_q8_0`, the layout of candle's [`BlockQ8_0`] (whose fields are private).
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct Q8_0 {
    pub(super) d: f16,
    pub(super) qs: [i8; QK8_0],
}

/// ggml's `block_q8_K`, the layout of candle's [`BlockQ8K`].
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct Q8K {
    pub(super) d: f32,
    pub(super) qs: [i8; QK_K],
    pub(super) bsums: [i16; QK_K / 16],
}

const _: () = assert!(std::mem::size_of::<Q8_0>() == std::mem::size_of::<BlockQ8_0>());
const _: () = assert!(std::mem::align_of::<Q8_0>() == std::mem::align_of::<BlockQ8_0>());
const _: () = assert!(std::mem::size_of::<Q8K>() == std::mem::size_of::<BlockQ8K>());
const _: () = assert!(std::mem::align_of::<Q8K>() == std::mem::align_of::<BlockQ8K>());

/// ggml's `nearest_int`: round half to even by the 1.5 × 2²³ trick (|x| < 2²²).
#[inline(always)]
pub(super) fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Rounds one row to `Q8_0` blocks as ggml's AVX code does: scale 127/amax, ties to even.
pub(super) fn quantize_q8_0(x: &[f32], out: &mut [Q8_0]) {
    for (xs, y) in x.chunks_exact(QK8_0).zip(out.iter_mut()) {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        y.d = f16::from_f32(amax / 127.0);
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        for (q, &v) in y.qs.iter_mut().zip(xs) {
            *q = nearest_int(v * id) as i8;
        }
    }
}

/// Rounds one row to `Q8_K` blocks as ggml's `quantize_row_q8_K_ref` does: the scale is
/// -127 over the signed value of largest magnitude, ties to even, at most 127.
pub(super) fn quantize_q8k(x: &[f32], out: &mut [Q8K]) {
    for (xs, y) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let (mut max, mut amax) = (0f32, 0f32);
        for &v in xs {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            y.d = 0.0;
            y.qs = [0; QK_K];
            y.bsums = [0; QK_K / 16];
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in y.qs.iter_mut().zip(xs) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (s, qs) in y.bsums.iter_mut().zip(y.qs.chunks_exact(16)) {
            *s = qs.iter().map(|&q| q as i16).sum();
        }
        y.d = 1.0 / iscale;
    }
}

pub(super) fn bytes_of<T>(blocks: &[T]) -> &[u8] {
    // SAFETY: plain-data blocks viewed as their bytes.
    unsafe {
        std::slice::from_raw_parts(blocks.as_ptr() as *const u8, std::mem::size_of_val(blocks))
    }
}

pub(super) fn bytemuck_i8(b: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size and alignment.
    unsafe { std::slice::from_raw_parts(b.as_ptr() as *const i8, b.len()) }
}

pub(super) fn as_blocks_q8_0(a: &[Q8_0]) -> &[BlockQ8_0] {
    // SAFETY: same size, alignment and field layout (asserted above).
    unsafe { std::slice::from_raw_parts(a.as_ptr() as *const BlockQ8_0, a.len()) }
}

pub(super) fn as_blocks_q8k(a: &[Q8K]) -> &[BlockQ8K] {
    // SAFETY: same size, alignment and field layout (asserted above).
    unsafe { std::slice::from_raw_parts(a.as_ptr() as *const BlockQ8K, a.len()) }
}
