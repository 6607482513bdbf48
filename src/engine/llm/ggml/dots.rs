//! Portable block and f16 dot products, summed in the order of the kernels llama.cpp
//! runs on x86 (the integer sums are exact, so only the float steps need to match).
//!
//! - Q8_0, Q4_K, Q6_K: as ggml's AVX2 and repacked kernels group their lanes (the
//!   [`super::avx2`] versions equal these bit for bit).
//!
//! - Q4_0: weights whose row count is a multiple of 8 are repacked at load into
//!   `block_q4_0x8`, and both `ggml_gemv_q4_0_8x8_q8_0` and `..._gemm_...` then add each
//!   32-value block to one f32 accumulator: `acc = fma(isum, d_w · d_a, acc)`.
//! - Q5_K: one row goes through `ggml_vec_dot_q5_K_q8_K` (eight i32 lanes, one FMA per
//!   lane and block, `hsum_float_8`, plus the mins summed separately); eight rows or more
//!   through the tiled K-quant kernel (`tiled/`), whose VNNI epilogue computes per block
//!   `d_w · s1 − dmin · s2` and adds it times the activation scale.
//! - f32 rows of f16 values: 16 lanes as ggml's 512-bit registers sum them (attention
//!   scores and the F16 matmul).

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ4_0, BlockQ5K, BlockQ6K, BlockQ8_0};
use half::f16;

use super::blocks::{bytemuck_i8, bytes_of, Q8K, Q8_0};

/// Integer dot product of 32 unsigned and 32 signed bytes.
#[inline(always)]
pub(super) fn idot32(u: &[u8], s: &[i8]) -> i32 {
    u.iter().zip(s).map(|(&a, &b)| a as i32 * b as i32).sum()
}

/// ggml's 6-bit scale and min of sub-block `j` of a Q4_K/Q5_K block.
#[inline(always)]
pub(super) fn scale_min_k4(j: usize, q: &[u8]) -> (i32, i32) {
    if j < 4 {
        ((q[j] & 63) as i32, (q[j + 4] & 63) as i32)
    } else {
        (
            ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4)) as i32,
            ((q[j + 4] >> 4) | ((q[j] >> 6) << 4)) as i32,
        )
    }
}

/// A Q4_K row · a Q8_K row as ggml's repacked x86 kernels (`gemv`/`gemm_q4_K_8x8_q8_K`,
/// what llama.cpp runs for Q4_K on x86) compute it: exact integer sums for the scaled
/// products and for the mins, each added to its own f32 accumulator with one FMA per
/// block (gemv) or per 64 values (`per_64`, gemm); the accumulators subtracted at the end.
#[inline(always)]
pub(super) fn dot_q4k(w: &[BlockQ4K], a: &[Q8K], per_64: bool) -> f32 {
    const SIZE: usize = 144;
    let bytes = bytes_of(w);
    let (mut acc, mut acc_min) = (0f32, 0f32);
    for (b, y) in bytes.chunks_exact(SIZE).zip(a) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let dmin = f16::from_le_bytes([b[2], b[3]]).to_f32();
        let scales = &b[4..16];
        let qs = &b[16..144];
        let (mut isum, mut imin) = (0i32, 0i32);
        let mut lo = [0u8; 32];
        let mut hi = [0u8; 32];
        for j in 0..4 {
            let q = &qs[32 * j..32 * j + 32];
            for e in 0..32 {
                lo[e] = q[e] & 0xF;
                hi[e] = q[e] >> 4;
            }
            let (s0, m0) = scale_min_k4(2 * j, scales);
            let (s1, m1) = scale_min_k4(2 * j + 1, scales);
            isum += s0 * idot32(&lo, &y.qs[64 * j..64 * j + 32])
                + s1 * idot32(&hi, &y.qs[64 * j + 32..64 * j + 64]);
            imin += m0 * (y.bsums[4 * j] as i32 + y.bsums[4 * j + 1] as i32)
                + m1 * (y.bsums[4 * j + 2] as i32 + y.bsums[4 * j + 3] as i32);
            if per_64 {
                acc = (isum as f32).mul_add(d * y.d, acc);
                acc_min = (imin as f32).mul_add(dmin * y.d, acc_min);
                (isum, imin) = (0, 0);
            }
        }
        if !per_64 {
            acc = (isum as f32).mul_add(d * y.d, acc);
            acc_min = (imin as f32).mul_add(dmin * y.d, acc_min);
        }
    }
    acc - acc_min
}

/// A Q8_0 row · a Q8_0 row as ggml's AVX2 kernels (`ggml_vec_dot_q8_0_q8_0`, and
/// tinyBLAS for batches) compute it: eight i32 lanes of four products each per block,
/// one FMA per lane with the product of the two scales, then `hsum_float_8`.
#[inline(always)]
pub(super) fn dot_q8_0(w: &[BlockQ8_0], a: &[Q8_0]) -> f32 {
    const SIZE: usize = 34;
    let mut acc = [0f32; 8];
    for (b, y) in bytes_of(w).chunks_exact(SIZE).zip(a) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32() * y.d.to_f32();
        let x = bytemuck_i8(&b[2..SIZE]);
        for (l, acc) in acc.iter_mut().enumerate() {
            let s: i32 = (4 * l..4 * l + 4)
                .map(|e| x[e] as i32 * y.qs[e] as i32)
                .sum();
            *acc = d.mul_add(s as f32, *acc);
        }
    }
    hsum8(acc)
}

/// ggml's `hsum_float_8`: the upper four lanes added to the lower four, then pairwise.
#[inline(always)]
pub(super) fn hsum8(x: [f32; 8]) -> f32 {
    let r = [x[0] + x[4], x[1] + x[5], x[2] + x[6], x[3] + x[7]];
    (r[0] + r[2]) + (r[1] + r[3])
}

/// A Q6_K row · a Q8_K row as ggml's AVX2 `ggml_vec_dot_q6_K_q8_K` computes it: eight
/// i32 lanes (lane l holds bytes 4l..4l+3 of every 32-value chunk, less 32 × the
/// scaled sums of the activations' 32 values from 32l), one FMA per lane and block,
/// then `hsum_float_8`.
#[inline(always)]
pub(super) fn dot_q6k(w: &[BlockQ6K], a: &[Q8K]) -> f32 {
    const SIZE: usize = 210;
    let bytes = bytes_of(w);
    let mut acc = [0f32; 8];
    let mut q6 = [0u8; 256];
    for (b, y) in bytes.chunks_exact(SIZE).zip(a) {
        let ql = &b[0..128];
        let qh = &b[128..192];
        let sc: &[i8] = bytemuck_i8(&b[192..208]);
        let d = y.d * f16::from_le_bytes([b[208], b[209]]).to_f32();
        unpack_q6(ql, qh, &mut q6);
        let mut lanes = [0i32; 8];
        for c in 0..8 {
            for (l, lane) in lanes.iter_mut().enumerate() {
                let e0 = 32 * c + 4 * l;
                let s = sc[e0 / 16] as i32;
                let p: i32 = (0..4)
                    .map(|e| q6[e0 + e] as i32 * y.qs[e0 + e] as i32)
                    .sum();
                *lane += s * p;
            }
        }
        for (l, lane) in lanes.iter_mut().enumerate() {
            *lane -= 32
                * (y.bsums[2 * l] as i32 * sc[2 * l] as i32
                    + y.bsums[2 * l + 1] as i32 * sc[2 * l + 1] as i32);
        }
        for (acc, &lane) in acc.iter_mut().zip(&lanes) {
            *acc = d.mul_add(lane as f32, *acc);
        }
    }
    hsum8(acc)
}

/// A Q6_K row · a Q8_K row as ggml's tiled K-quant kernel (`tiled/`, taken for batches
/// of eight rows or more) computes it: the block's exact integer sum times the weight
/// scale, then one FMA with the activation scale into the running sum.
#[inline(always)]
pub(super) fn dot_q6k_tiled(w: &[BlockQ6K], a: &[Q8K]) -> f32 {
    const SIZE: usize = 210;
    let bytes = bytes_of(w);
    let mut acc = 0f32;
    let mut q6 = [0u8; 256];
    for (b, y) in bytes.chunks_exact(SIZE).zip(a) {
        let ql = &b[0..128];
        let qh = &b[128..192];
        let sc: &[i8] = bytemuck_i8(&b[192..208]);
        let dw = f16::from_le_bytes([b[208], b[209]]).to_f32();
        unpack_q6(ql, qh, &mut q6);
        let mut s1 = 0i32;
        for (s, (&scale, &bsum)) in sc.iter().zip(&y.bsums).enumerate() {
            let raw: i32 = (16 * s..16 * s + 16)
                .map(|e| q6[e] as i32 * y.qs[e] as i32)
                .sum();
            s1 += scale as i32 * (raw - 32 * bsum as i32);
        }
        // GCC contracts the kernel's `buf + result * d1` into an FMA.
        acc = (s1 as f32 * dw).mul_add(y.d, acc);
    }
    acc
}

/// The unsigned 6-bit codes of one Q6_K block, in element order.
#[inline(always)]
pub(super) fn unpack_q6(ql: &[u8], qh: &[u8], q6: &mut [u8; 256]) {
    for h in 0..2 {
        let (ql, qh, q) = (
            &ql[64 * h..64 * h + 64],
            &qh[32 * h..32 * h + 32],
            &mut q6[128 * h..128 * h + 128],
        );
        for l in 0..32 {
            q[l] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
            q[l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
            q[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            q[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
    }
}

/// Lanes of ggml's 512-bit registers (softmax, f16 dot products, tinyBLAS).
pub(super) const LANES: usize = 16;

/// `_mm512_reduce_add_ps` as GCC expands it: halves added pairwise (8, 4, 2, 1).
#[inline(always)]
pub(super) fn reduce16(mut lanes: [f32; LANES]) -> f32 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    lanes[0]
}

/// Dense 16-lane dot product of two contiguous rows (indices from 0).
#[inline(always)]
pub(super) fn dot_rows(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    for (ca, cb) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for l in 0..LANES {
            lanes[l] = ca[l].mul_add(cb[l], lanes[l]);
        }
    }
    reduce16(lanes)
}

/// `Σ x·y` as ggml's AVX-512 `ggml_vec_dot_f16` sums it (its path for a single new
/// token, where llamafile's tinyBLAS declines): four 16-lane FMA accumulators over
/// 64-value steps, folded pairwise, lanes added pairwise; a tail in f64.
#[inline(always)]
pub(super) fn dot_vec_f16(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len();
    let np = n - n % 64;
    let mut acc = [[0f32; LANES]; 4];
    for i in (0..np).step_by(64) {
        for (j, a) in acc.iter_mut().enumerate() {
            let (xs, ys) = (
                &x[i + 16 * j..i + 16 * j + 16],
                &y[i + 16 * j..i + 16 * j + 16],
            );
            for l in 0..LANES {
                a[l] = xs[l].mul_add(ys[l], a[l]);
            }
        }
    }
    let mut lanes = [0f32; LANES];
    for (l, lane) in lanes.iter_mut().enumerate() {
        *lane = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    }
    let mut sum = reduce16(lanes) as f64;
    for i in np..n {
        sum += (x[i] * y[i]) as f64;
    }
    sum as f32
}

/// Public entry `$name` for the portable `$imp`, compiled a second time with FMA
/// enabled (`mul_add` is then one instruction, not a libm call) and picked at run time.
macro_rules! fma_dispatch {
    ($(#[$doc:meta])* $name:ident, $fma:ident, $imp:ident, $w:ty, $a:ty) => {
        $(#[$doc])*
        pub(super) fn $name(w: &[$w], a: &[$a]) -> f32 {
            #[cfg(target_arch = "x86_64")]
            if crate::cpu::features().fma {
                // SAFETY: the CPU has FMA.
                return unsafe { $fma(w, a) };
            }
            $imp(w, a)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "fma")]
        unsafe fn $fma(w: &[$w], a: &[$a]) -> f32 {
            $imp(w, a)
        }
    };
}

fma_dispatch!(
    /// A Q4_0 row · a Q8_0 row as the repacked 8×8 gemv/gemm kernels compute it.
    dot_q4_0, dot_q4_0_fma, dot_q4_0_impl, BlockQ4_0, Q8_0
);
fma_dispatch!(
    /// A Q5_K row · a Q8_K row as `ggml_vec_dot_q5_K_q8_K` computes it.
    dot_q5k, dot_q5k_fma, dot_q5k_impl, BlockQ5K, Q8K
);
fma_dispatch!(
    /// A Q5_K row · a Q8_K row as the tiled K-quant kernel computes it.
    dot_q5k_tiled, dot_q5k_tiled_fma, dot_q5k_tiled_impl, BlockQ5K, Q8K
);

/// Bytes of one Q4_0 block (f16 scale, 16 bytes of nibbles) and one Q5_K block.
const Q4_0_SIZE: usize = 18;
const Q5K_SIZE: usize = 176;

/// A Q4_0 row · a Q8_0 row as the repacked 8×8 gemv/gemm kernels compute it.
#[inline(always)]
fn dot_q4_0_impl(w: &[BlockQ4_0], a: &[Q8_0]) -> f32 {
    let mut acc = 0f32;
    for (b, y) in bytes_of(w).chunks_exact(Q4_0_SIZE).zip(a) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32() * y.d.to_f32();
        let qs = &b[2..];
        let mut isum = 0i32;
        for (j, &q) in qs.iter().enumerate() {
            isum += ((q & 0xF) as i32 - 8) * y.qs[j] as i32;
            isum += ((q >> 4) as i32 - 8) * y.qs[j + 16] as i32;
        }
        acc = (isum as f32).mul_add(d, acc);
    }
    acc
}

/// The 5-bit codes of one Q5_K block, in element order.
#[inline(always)]
fn unpack_q5(b: &[u8], q5: &mut [u8; 256]) {
    let qh = &b[16..48];
    let qs = &b[48..176];
    for j in 0..4 {
        let q = &qs[32 * j..32 * j + 32];
        for e in 0..32 {
            q5[64 * j + e] = (q[e] & 0xF) | (((qh[e] >> (2 * j)) & 1) << 4);
            q5[64 * j + 32 + e] = (q[e] >> 4) | (((qh[e] >> (2 * j + 1)) & 1) << 4);
        }
    }
}

/// The exact sums of one Q5_K block: Σ scale·(codes·acts) per 32 values and
/// Σ min·(sum of acts) per 32 values.
#[inline(always)]
fn q5k_block_sums(scales: &[u8], q5: &[u8; 256], y: &Q8K) -> (i32, i32) {
    let (mut s1, mut s2) = (0i32, 0i32);
    for s in 0..8 {
        let (sc, m) = scale_min_k4(s, scales);
        let raw: i32 = (32 * s..32 * s + 32)
            .map(|e| q5[e] as i32 * y.qs[e] as i32)
            .sum();
        s1 += sc * raw;
        s2 += m * (y.bsums[2 * s] as i32 + y.bsums[2 * s + 1] as i32);
    }
    (s1, s2)
}

/// A Q5_K row · a Q8_K row as ggml's AVX2 `ggml_vec_dot_q5_K_q8_K` computes it: lane
/// `l` of eight holds bytes 4l..4l+3 of every 32-value chunk times the chunk's scale,
/// one FMA per lane and block; the mins go to a scalar sum (contracted into an FMA by
/// GCC) added after `hsum_float_8`.
#[inline(always)]
fn dot_q5k_impl(w: &[BlockQ5K], a: &[Q8K]) -> f32 {
    let mut acc = [0f32; 8];
    let mut summs = 0f32;
    let mut q5 = [0u8; 256];
    for (b, y) in bytes_of(w).chunks_exact(Q5K_SIZE).zip(a) {
        let d = y.d * f16::from_le_bytes([b[0], b[1]]).to_f32();
        let dmin = -y.d * f16::from_le_bytes([b[2], b[3]]).to_f32();
        let scales = &b[4..16];
        unpack_q5(b, &mut q5);
        let mut mins = 0i32;
        let mut lanes = [0i32; 8];
        for c in 0..8 {
            let (sc, m) = scale_min_k4(c, scales);
            mins += m * (y.bsums[2 * c] as i32 + y.bsums[2 * c + 1] as i32);
            for (l, lane) in lanes.iter_mut().enumerate() {
                let e0 = 32 * c + 4 * l;
                let p: i32 = (0..4)
                    .map(|e| q5[e0 + e] as i32 * y.qs[e0 + e] as i32)
                    .sum();
                *lane += sc * p;
            }
        }
        summs = dmin.mul_add(mins as f32, summs);
        for (acc, &lane) in acc.iter_mut().zip(&lanes) {
            *acc = d.mul_add(lane as f32, *acc);
        }
    }
    hsum8(acc) + summs
}

/// A Q5_K row · a Q8_K row as the tiled kernel's VNNI epilogue computes it per block:
/// `fma(−dmin, s2, s1 · d)`, then `fma(that, d_a, acc)` (GCC contracts the kernel's
/// `buf + result * d1`).
#[inline(always)]
fn dot_q5k_tiled_impl(w: &[BlockQ5K], a: &[Q8K]) -> f32 {
    let mut acc = 0f32;
    let mut q5 = [0u8; 256];
    for (b, y) in bytes_of(w).chunks_exact(Q5K_SIZE).zip(a) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let dmin = f16::from_le_bytes([b[2], b[3]]).to_f32();
        unpack_q5(b, &mut q5);
        let (s1, s2) = q5k_block_sums(&b[4..16], &q5, y);
        let result = (-dmin).mul_add(s2 as f32, s1 as f32 * d);
        acc = result.mul_add(y.d, acc);
    }
    acc
}

/// Q4_K or Q5_K rows dequantized as ggml's `dequantize_row_q4_K`/`_q5_K` (its embedding
/// lookup) compute them: GCC contracts `d1 * q - m1` into one FMA, so a plain multiply
/// and subtract (candle's `to_float`) can differ in the last bit.
pub(super) fn dequantize_k4(bytes: &[u8], five_bit: bool, out: &mut [f32]) {
    let size = if five_bit { Q5K_SIZE } else { 144 };
    let mut q = [0u8; 256];
    for (b, y) in bytes.chunks_exact(size).zip(out.chunks_exact_mut(256)) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let min = f16::from_le_bytes([b[2], b[3]]).to_f32();
        if five_bit {
            unpack_q5(b, &mut q);
        } else {
            let qs = &b[16..144];
            for j in 0..4 {
                for e in 0..32 {
                    q[64 * j + e] = qs[32 * j + e] & 0xF;
                    q[64 * j + 32 + e] = qs[32 * j + e] >> 4;
                }
            }
        }
        for (s, y) in y.chunks_exact_mut(32).enumerate() {
            let (sc, m) = scale_min_k4(s, &b[4..16]);
            let (d1, m1) = (d * sc as f32, min * m as f32);
            for (y, &q) in y.iter_mut().zip(&q[32 * s..32 * s + 32]) {
                *y = d1.mul_add(q as f32, -m1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::blocks::quantize_q8k;
    use super::*;
    use candle_core::quantized::k_quants::GgmlType;

    fn q8k(x: &[f32]) -> Vec<Q8K> {
        let zero = Q8K {
            d: 0.0,
            qs: [0; 256],
            bsums: [0; 16],
        };
        let mut blocks = vec![zero; x.len() / 256];
        quantize_q8k(x, &mut blocks);
        blocks
    }

    /// Each kernel's integer sums, checked against the dequantized weights.
    #[test]
    fn q5k_dots_equal_the_dequantized_product() {
        let k = 512;
        let w: Vec<f32> = (0..k)
            .map(|i| ((i * 7919 % 263) as f32 / 131.0) - 1.0)
            .collect();
        let x: Vec<f32> = (0..k).map(|i| ((i as f32) * 0.37).sin()).collect();
        let mut blocks = vec![BlockQ5K::zeros(); k / 256];
        BlockQ5K::from_float(&w, &mut blocks);
        let mut deq = vec![0f32; k];
        BlockQ5K::to_float(&blocks, &mut deq);
        let a = q8k(&x);
        let mut xq = vec![0f32; k];
        for (blk, out) in a.iter().zip(xq.chunks_exact_mut(256)) {
            for (o, &q) in out.iter_mut().zip(&blk.qs) {
                *o = q as f32 * blk.d;
            }
        }
        let exact: f32 = deq.iter().zip(&xq).map(|(a, b)| a * b).sum();
        for got in [dot_q5k(&blocks, &a), dot_q5k_tiled(&blocks, &a)] {
            assert!(
                (got - exact).abs() < 1e-3 * exact.abs().max(1.0),
                "{got} vs {exact}"
            );
        }
    }

    #[test]
    fn k4_rows_dequantize_as_candle_up_to_rounding() {
        let k = 512;
        let w: Vec<f32> = (0..k)
            .map(|i| ((i * 7919 % 263) as f32 / 131.0) - 1.0)
            .collect();
        let mut q5 = vec![BlockQ5K::zeros(); k / 256];
        BlockQ5K::from_float(&w, &mut q5);
        let mut q4 = vec![candle_core::quantized::k_quants::BlockQ4K::zeros(); k / 256];
        candle_core::quantized::k_quants::BlockQ4K::from_float(&w, &mut q4);
        for (bytes, five) in [(bytes_of(&q5), true), (bytes_of(&q4), false)] {
            let mut ours = vec![0f32; k];
            dequantize_k4(bytes, five, &mut ours);
            let mut theirs = vec![0f32; k];
            if five {
                BlockQ5K::to_float(&q5, &mut theirs);
            } else {
                candle_core::quantized::k_quants::BlockQ4K::to_float(&q4, &mut theirs);
            }
            for (a, b) in ours.iter().zip(&theirs) {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn q4_0_dot_equals_the_dequantized_product() {
        let k = 64;
        let w: Vec<f32> = (0..k).map(|i| ((i * 31 % 17) as f32 / 8.0) - 1.0).collect();
        let mut blocks = vec![BlockQ4_0::zeros(); k / 32];
        BlockQ4_0::from_float(&w, &mut blocks);
        let mut deq = vec![0f32; k];
        BlockQ4_0::to_float(&blocks, &mut deq);
        let a: Vec<Q8_0> = (0..k / 32)
            .map(|b| Q8_0 {
                d: f16::from_f32(0.5),
                qs: std::array::from_fn(|i| ((b * 32 + i) % 11) as i8 - 5),
            })
            .collect();
        let exact: f32 = (0..k)
            .map(|i| deq[i] * 0.5 * (a[i / 32].qs[i % 32] as f32))
            .sum();
        let got = dot_q4_0(&blocks, &a);
        assert!((got - exact).abs() < 1e-4, "{got} vs {exact}");
    }
}
