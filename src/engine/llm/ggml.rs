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

use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ5K, BlockQ6K, BlockQ8K, BlockQ8_0, GgmlType,
};
use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;

use super::ggml_dots;
use crate::{Error, Result};

const QK8_0: usize = 32;
const QK_K: usize = 256;

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
fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Rounds one row to `Q8_0` blocks as ggml's AVX code does: scale 127/amax, ties to even.
fn quantize_q8_0(x: &[f32], out: &mut [Q8_0]) {
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

/// Activation rows quantized for one weight type.
enum Acts {
    Q8_0(Vec<Q8_0>),
    Q8K(Vec<Q8K>),
}

/// Weight rows in ggml's block layout, typed for candle's dot-product kernels.
enum Blocks {
    Q4_0(Vec<BlockQ4_0>),
    Q8_0(Vec<BlockQ8_0>),
    Q2K(Vec<BlockQ2K>),
    Q3K(Vec<BlockQ3K>),
    Q4K(Vec<BlockQ4K>),
    Q5K(Vec<BlockQ5K>),
    Q6K(Vec<BlockQ6K>),
}

/// Copies raw GGUF bytes into typed blocks.
fn blocks<T: GgmlType>(bytes: &[u8]) -> Result<Vec<T>> {
    let size = std::mem::size_of::<T>();
    if bytes.len() % size != 0 {
        return Err(Error::Model(format!(
            "{:?} tensor of {} bytes is not a whole number of blocks",
            T::DTYPE,
            bytes.len()
        )));
    }
    let n = bytes.len() / size;
    let mut out: Vec<T> = (0..n).map(|_| T::zeros()).collect();
    // SAFETY: candle's block types are `repr(C)` plain data in ggml's on-disk layout
    // (sizes asserted in candle), every bit pattern of which is a valid value, and `out`
    // holds exactly `bytes.len()` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr() as *mut u8, bytes.len());
    }
    Ok(out)
}

/// A quantized weight (`n` rows of `k`) multiplied with ggml's arithmetic on the CPU.
pub struct GgmlMatMul {
    n: usize,
    k: usize,
    w: Blocks,
}

/// Lets the pool's workers write disjoint elements of one output buffer.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every worker writes a disjoint set of elements (its own columns).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The element `i` places on (a method, so closures capture the `Sync` wrapper).
    fn at(self, i: usize) -> *mut f32 {
        // SAFETY: callers stay within the buffer the pointer came from.
        unsafe { self.0.add(i) }
    }
}

/// Columns one task takes at a time: their weight rows stay in cache while every
/// activation row passes over them.
const COLUMN_TILE: usize = 16;

impl GgmlMatMul {
    /// Wraps a GGUF weight of shape (n, k), or `None` for a type this module does not
    /// cover (the caller falls back to candle's matmul).
    pub fn new(t: &QTensor) -> Result<Option<GgmlMatMul>> {
        let (n, k) = t.shape().dims2()?;
        let bytes = t.data()?;
        let w = match t.dtype() {
            GgmlDType::Q4_0 => Blocks::Q4_0(blocks(&bytes)?),
            GgmlDType::Q8_0 => Blocks::Q8_0(blocks(&bytes)?),
            GgmlDType::Q2K => Blocks::Q2K(blocks(&bytes)?),
            GgmlDType::Q3K => Blocks::Q3K(blocks(&bytes)?),
            GgmlDType::Q4K => Blocks::Q4K(blocks(&bytes)?),
            GgmlDType::Q5K => Blocks::Q5K(blocks(&bytes)?),
            GgmlDType::Q6K => Blocks::Q6K(blocks(&bytes)?),
            _ => return Ok(None),
        };
        let block = t.dtype().block_size();
        if k % block != 0 {
            return Ok(None);
        }
        Ok(Some(GgmlMatMul { n, k, w }))
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Row `i`, dequantized (an embedding lookup).
    pub fn row(&self, i: usize) -> Vec<f32> {
        fn deq<T: GgmlType>(w: &[T], i: usize, k: usize) -> Vec<f32> {
            let per = k / T::BLCK_SIZE;
            let mut out = vec![0f32; k];
            T::to_float(&w[i * per..(i + 1) * per], &mut out);
            out
        }
        fn deq_k4<T>(row: &[T], five_bit: bool) -> Vec<f32> {
            let mut out = vec![0f32; row.len() * QK_K];
            ggml_dots::dequantize_k4(bytes_of(row), five_bit, &mut out);
            out
        }
        let k = self.k;
        match &self.w {
            Blocks::Q4_0(w) => deq(w, i, k),
            Blocks::Q8_0(w) => deq(w, i, k),
            Blocks::Q2K(w) => deq(w, i, k),
            Blocks::Q3K(w) => deq(w, i, k),
            Blocks::Q4K(w) => deq_k4(&w[i * (k / QK_K)..(i + 1) * (k / QK_K)], false),
            Blocks::Q5K(w) => deq_k4(&w[i * (k / QK_K)..(i + 1) * (k / QK_K)], true),
            Blocks::Q6K(w) => deq(w, i, k),
        }
    }

    fn quantize(&self, x: &[f32], m: usize) -> Acts {
        let k = self.k;
        match self.w {
            Blocks::Q4_0(_) | Blocks::Q8_0(_) => {
                let per = k / QK8_0;
                let mut a = vec![
                    Q8_0 {
                        d: f16::ZERO,
                        qs: [0; QK8_0]
                    };
                    m * per
                ];
                for (row, out) in x.chunks_exact(k).zip(a.chunks_exact_mut(per)) {
                    quantize_q8_0(row, out);
                }
                Acts::Q8_0(a)
            }
            _ => {
                let per = k / QK_K;
                let mut a = vec![
                    Q8K {
                        d: 0.0,
                        qs: [0; QK_K],
                        bsums: [0; QK_K / 16]
                    };
                    m * per
                ];
                for (row, out) in x.chunks_exact(k).zip(a.chunks_exact_mut(per)) {
                    quantize_q8k(row, out);
                }
                Acts::Q8K(a)
            }
        }
    }

    /// `x · wᵀ` for `m` rows of `x` (row-major, `m × k`), into `m × n`.
    pub fn forward(&self, x: &[f32], m: usize) -> Vec<f32> {
        debug_assert_eq!(x.len(), m * self.k);
        let acts = self.quantize(x, m);
        let mut out = vec![0f32; m * self.n];
        let ptr = OutPtr(out.as_mut_ptr());
        match (&self.w, &acts) {
            (Blocks::Q4_0(w), Acts::Q8_0(a)) if self.n % 8 == 0 => {
                // ggml repacks these (rows a multiple of 8) for its 8×8 x86 kernels.
                self.run_with(w, a, m, ptr, |w, a, _| ggml_dots::dot_q4_0(w, a))
            }
            (Blocks::Q4_0(w), Acts::Q8_0(a)) => self.run(w, as_blocks_q8_0(a), m, ptr),
            (Blocks::Q8_0(w), Acts::Q8_0(a)) => {
                if simd() {
                    let (n, per) = (self.n, self.k / QK8_0);
                    let work = |tiles: std::ops::Range<usize>| {
                        let cols = tiles.start * COLUMN_TILE..(tiles.end * COLUMN_TILE).min(n);
                        // SAFETY: the CPU has AVX2, FMA and F16C; the tiles' columns are
                        // this worker's alone.
                        unsafe { simd::tile_q8_0(w, a, per, m, n, cols, ptr) };
                    };
                    self.parallel(m, work);
                } else {
                    self.run_with(w, a, m, ptr, |w, a, _| dot_q8_0(w, a))
                }
            }
            (Blocks::Q2K(w), Acts::Q8K(a)) => self.run(w, as_blocks_q8k(a), m, ptr),
            (Blocks::Q3K(w), Acts::Q8K(a)) => self.run(w, as_blocks_q8k(a), m, ptr),
            (Blocks::Q4K(w), Acts::Q8K(a)) => {
                // ggml runs rows in fours through its gemm kernel, which rounds per 64
                // values, and the rest through gemv, which rounds per block.
                let gemm_rows = m - m % 4;
                if simd() {
                    // SAFETY: the CPU has AVX2 and FMA.
                    self.run_with(w, a, m, ptr, |w, a, row| unsafe {
                        simd::dot_q4k(w, a, row < gemm_rows)
                    })
                } else {
                    self.run_with(w, a, m, ptr, |w, a, row| dot_q4k(w, a, row < gemm_rows))
                }
            }
            (Blocks::Q5K(w), Acts::Q8K(a)) => {
                // From eight rows on, ggml takes Q5_K through its tiled kernel.
                if m >= 8 {
                    self.run_with(w, a, m, ptr, |w, a, _| ggml_dots::dot_q5k_tiled(w, a))
                } else {
                    self.run_with(w, a, m, ptr, |w, a, _| ggml_dots::dot_q5k(w, a))
                }
            }
            (Blocks::Q6K(w), Acts::Q8K(a)) => {
                // From eight rows on, ggml takes Q6_K through its tiled kernel.
                // SAFETY (simd): the CPU has AVX2 and FMA.
                match (m >= 8, simd()) {
                    (true, true) => {
                        self.run_with(w, a, m, ptr, |w, a, _| unsafe { simd::dot_q6k_tiled(w, a) })
                    }
                    (true, false) => self.run_with(w, a, m, ptr, |w, a, _| dot_q6k_tiled(w, a)),
                    (false, true) => {
                        self.run_with(w, a, m, ptr, |w, a, _| unsafe { simd::dot_q6k(w, a) })
                    }
                    (false, false) => self.run_with(w, a, m, ptr, |w, a, _| dot_q6k(w, a)),
                }
            }
            _ => unreachable!("activations are quantized for the weight's type"),
        }
        out
    }

    fn run<T: GgmlType>(&self, w: &[T], a: &[T::VecDotType], m: usize, out: OutPtr) {
        let k = self.k;
        self.run_with(w, a, m, out, |w, a, _| T::vec_dot(k, w, a))
    }

    /// Runs `dot(weight row, activation row)` over the output, tiled and in parallel.
    fn run_with<W: Sync, A: Sync>(
        &self,
        w: &[W],
        a: &[A],
        m: usize,
        out: OutPtr,
        dot: impl Fn(&[W], &[A], usize) -> f32 + Sync,
    ) {
        let n = self.n;
        let per = w.len() / n;
        let job = Tiles {
            w,
            a,
            m,
            n,
            per,
            out,
            dot: &dot,
        };
        let work = |range: std::ops::Range<usize>| job.run(range);
        self.parallel(m, work);
    }

    /// Runs `work` over all column tiles, on the thread pool when the product is big.
    fn parallel(&self, m: usize, work: impl Fn(std::ops::Range<usize>) + Sync) {
        let tiles = self.n.div_ceil(COLUMN_TILE);
        if self.n * m * self.k < 1 << 16 {
            work(0..tiles);
        } else {
            candle_core::utils::barrier_pool().execute_chunked(tiles, work);
        }
    }
}

pub(super) fn bytes_of<T>(blocks: &[T]) -> &[u8] {
    // SAFETY: plain-data blocks viewed as their bytes.
    unsafe {
        std::slice::from_raw_parts(blocks.as_ptr() as *const u8, std::mem::size_of_val(blocks))
    }
}

/// Integer dot product of 32 unsigned and 32 signed bytes.
#[inline(always)]
fn idot32(u: &[u8], s: &[i8]) -> i32 {
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
fn dot_q4k(w: &[BlockQ4K], a: &[Q8K], per_64: bool) -> f32 {
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
fn dot_q8_0(w: &[BlockQ8_0], a: &[Q8_0]) -> f32 {
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
fn dot_q6k(w: &[BlockQ6K], a: &[Q8K]) -> f32 {
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
fn dot_q6k_tiled(w: &[BlockQ6K], a: &[Q8K]) -> f32 {
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
fn unpack_q6(ql: &[u8], qh: &[u8], q6: &mut [u8; 256]) {
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

fn bytemuck_i8(b: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size and alignment.
    unsafe { std::slice::from_raw_parts(b.as_ptr() as *const i8, b.len()) }
}

/// One matmul's column tiles, for the workers.
struct Tiles<'a, W, A, F> {
    w: &'a [W],
    a: &'a [A],
    m: usize,
    n: usize,
    per: usize,
    out: OutPtr,
    dot: &'a F,
}

impl<W, A, F: Fn(&[W], &[A], usize) -> f32> Tiles<'_, W, A, F> {
    #[inline(always)]
    fn run(&self, tiles: std::ops::Range<usize>) {
        let (m, n, per) = (self.m, self.n, self.per);
        for tile in tiles {
            let cols = tile * COLUMN_TILE..((tile + 1) * COLUMN_TILE).min(n);
            for row in 0..m {
                let a = &self.a[row * per..(row + 1) * per];
                for col in cols.clone() {
                    let v = (self.dot)(&self.w[col * per..(col + 1) * per], a, row);
                    // SAFETY: (row, col) lies inside the m × n buffer and belongs to this
                    // tile only.
                    unsafe { *self.out.0.add(row * n + col) = v };
                }
            }
        }
    }
}

fn as_blocks_q8_0(a: &[Q8_0]) -> &[BlockQ8_0] {
    // SAFETY: same size, alignment and field layout (asserted above).
    unsafe { std::slice::from_raw_parts(a.as_ptr() as *const BlockQ8_0, a.len()) }
}

fn as_blocks_q8k(a: &[Q8K]) -> &[BlockQ8K] {
    // SAFETY: same size, alignment and field layout (asserted above).
    unsafe { std::slice::from_raw_parts(a.as_ptr() as *const BlockQ8K, a.len()) }
}

/// ggml's GELU (tanh form) as its CPU backend computes it by default: the input is
/// rounded to f16 and looked up in a table of f16 results; beyond ±10 it is 0 or x.
pub fn gelu(x: f32) -> f32 {
    static TABLE: std::sync::OnceLock<Vec<f16>> = std::sync::OnceLock::new();
    if x <= -10.0 {
        return 0.0;
    }
    if x >= 10.0 {
        return x;
    }
    let table = TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| {
                let v = f16::from_bits(bits).to_f32();
                const SQRT_2_OVER_PI: f32 = 0.797_884_6;
                const COEF_A: f32 = 0.044_715;
                // GCC contracts `1 + a·x·x` into an FMA when building ggml.
                let inner = (COEF_A * v).mul_add(v, 1.0);
                f16::from_f32(0.5 * v * (1.0 + (SQRT_2_OVER_PI * v * inner).tanh()))
            })
            .collect()
    });
    table[f16::from_f32(x).to_bits() as usize].to_f32()
}

/// Whether the AVX2 kernels of [`simd`] can run here.
fn simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// AVX2 versions of the block dot products: the same integer sums, grouped into the
/// same lanes, and the same float operations in the same order as the portable ones
/// (tests check them bit for bit).
#[cfg(target_arch = "x86_64")]
// Lane and register indices read more plainly than iterator chains in this code.
#[allow(clippy::needless_range_loop)]
mod simd {
    use super::{bytes_of, hsum8, scale_min_k4, Q8K, Q8_0};
    use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K, BlockQ8_0};
    use half::f16;
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn hsum_ps(x: __m256) -> f32 {
        let mut l = [0f32; 8];
        _mm256_storeu_ps(l.as_mut_ptr(), x);
        hsum8(l)
    }

    #[inline(always)]
    unsafe fn hsum_epi32(x: __m256i) -> i32 {
        let mut l = [0i32; 8];
        _mm256_storeu_si256(l.as_mut_ptr() as *mut __m256i, x);
        l.iter().sum()
    }

    #[inline(always)]
    unsafe fn half(bits: u16) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }

    /// `C` weight rows · `R` activation rows of Q8_0 blocks, each dot as [`super::dot_q8_0`]
    /// (constant sizes keep the accumulators in registers).
    #[inline(always)]
    unsafe fn q8_0_block<const C: usize, const R: usize>(
        wb: &[u8],
        a: &[Q8_0],
        per: usize,
        col: usize,
        row: usize,
    ) -> [[f32; R]; C] {
        const SIZE: usize = 34;
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_ps(); R]; C];
        for bi in 0..per {
            let mut ay = [_mm256_setzero_si256(); R];
            let mut dy = [0f32; R];
            for r in 0..R {
                let y = a.get_unchecked((row + r) * per + bi);
                ay[r] = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
                dy[r] = half(y.d.to_bits());
            }
            for c in 0..C {
                let blk = wb.as_ptr().add(((col + c) * per + bi) * SIZE);
                let dw = half(u16::from_le_bytes([*blk, *blk.add(1)]));
                let qx = _mm256_loadu_si256(blk.add(2) as *const __m256i);
                let ax = _mm256_sign_epi8(qx, qx);
                for r in 0..R {
                    let sy = _mm256_sign_epi8(ay[r], qx);
                    let q =
                        _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), ones));
                    acc[c][r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dy[r]), q, acc[c][r]);
                }
            }
        }
        let mut out = [[0f32; R]; C];
        for c in 0..C {
            for r in 0..R {
                out[c][r] = hsum_ps(acc[c][r]);
            }
        }
        out
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn q8_0_store<const C: usize, const R: usize>(
        wb: &[u8],
        a: &[Q8_0],
        per: usize,
        n: usize,
        col: usize,
        row: usize,
        out: super::OutPtr,
    ) {
        let v = q8_0_block::<C, R>(wb, a, per, col, row);
        for c in 0..C {
            for r in 0..R {
                *out.at((row + r) * n + col + c) = v[c][r];
            }
        }
    }

    /// [`super::dot_q8_0`] for columns `cols` of an m × n product: four weight rows at
    /// a time for one activation row, else two weight rows by four activation rows.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn tile_q8_0(
        w: &[BlockQ8_0],
        a: &[Q8_0],
        per: usize,
        m: usize,
        n: usize,
        cols: std::ops::Range<usize>,
        out: super::OutPtr,
    ) {
        let wb = bytes_of(w);
        let mut col = cols.start;
        if m == 1 {
            while col < cols.end {
                q8_0_store::<1, 1>(wb, a, per, n, col, 0, out);
                col += 1;
            }
            return;
        }
        // One weight row at a time: interleaving several rows' blocks halves the
        // bandwidth here (measured), while four activation rows share each weight load.
        while col < cols.end {
            let mut row = 0;
            while row + 4 <= m {
                q8_0_store::<1, 4>(wb, a, per, n, col, row, out);
                row += 4;
            }
            while row < m {
                q8_0_store::<1, 1>(wb, a, per, n, col, row, out);
                row += 1;
            }
            col += 1;
        }
    }

    /// See [`super::dot_q4k`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q4k(w: &[BlockQ4K], a: &[Q8K], per_64: bool) -> f32 {
        const SIZE: usize = 144;
        let m4 = _mm256_set1_epi8(0x0F);
        let (mut acc, mut acc_min) = (0f32, 0f32);
        for (b, y) in bytes_of(w).chunks_exact(SIZE).zip(a) {
            let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
            let dmin = f16::from_le_bytes([b[2], b[3]]).to_f32();
            let scales = &b[4..16];
            let (mut vsum, mut imin) = (_mm256_setzero_si256(), 0i32);
            for j in 0..4 {
                let q = _mm256_loadu_si256(b.as_ptr().add(16 + 32 * j) as *const __m256i);
                let lo = _mm256_and_si256(q, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                let y0 = _mm256_loadu_si256(y.qs.as_ptr().add(64 * j) as *const __m256i);
                let y1 = _mm256_loadu_si256(y.qs.as_ptr().add(64 * j + 32) as *const __m256i);
                let (s0, m0) = scale_min_k4(2 * j, scales);
                let (s1, m1) = scale_min_k4(2 * j + 1, scales);
                // Integer sums are exact in any grouping.
                let p = _mm256_add_epi32(
                    _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), _mm256_set1_epi16(s0 as i16)),
                    _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), _mm256_set1_epi16(s1 as i16)),
                );
                vsum = _mm256_add_epi32(vsum, p);
                imin += m0 * (y.bsums[4 * j] as i32 + y.bsums[4 * j + 1] as i32)
                    + m1 * (y.bsums[4 * j + 2] as i32 + y.bsums[4 * j + 3] as i32);
                if per_64 {
                    acc = (hsum_epi32(vsum) as f32).mul_add(d * y.d, acc);
                    acc_min = (imin as f32).mul_add(dmin * y.d, acc_min);
                    (vsum, imin) = (_mm256_setzero_si256(), 0);
                }
            }
            if !per_64 {
                acc = (hsum_epi32(vsum) as f32).mul_add(d * y.d, acc);
                acc_min = (imin as f32).mul_add(dmin * y.d, acc_min);
            }
        }
        acc - acc_min
    }

    /// The eight i32 lanes of ggml's AVX2 Q6_K kernel for one block (see
    /// [`super::dot_q6k`]), scales applied and the -32 offset taken out.
    #[inline(always)]
    unsafe fn q6k_lanes(b: &[u8], y: &Q8K) -> __m256i {
        let m3 = _mm256_set1_epi8(3);
        let m15 = _mm256_set1_epi8(15);
        let ql = b.as_ptr();
        let qh = b.as_ptr().add(128);
        let sc = b.as_ptr().add(192) as *const i8;
        let q8sums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
        let scales = _mm_loadu_si128(sc as *const __m128i);
        let scales16 = _mm256_cvtepi8_epi16(scales);
        let sclsub = _mm256_slli_epi32(_mm256_madd_epi16(q8sums, scales16), 5);
        let mut sumi = _mm256_setzero_si256();
        for j in 0..2 {
            let q4a = _mm256_loadu_si256(ql.add(64 * j) as *const __m256i);
            let q4b = _mm256_loadu_si256(ql.add(64 * j + 32) as *const __m256i);
            let h = _mm256_loadu_si256(qh.add(32 * j) as *const __m256i);
            let h0 = _mm256_slli_epi16(_mm256_and_si256(h, m3), 4);
            let h1 = _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(12)), 2);
            let h2 = _mm256_and_si256(h, _mm256_set1_epi8(48));
            let h3 = _mm256_srli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(-64)), 2);
            let q = [
                _mm256_or_si256(_mm256_and_si256(q4a, m15), h0),
                _mm256_or_si256(_mm256_and_si256(q4b, m15), h1),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4a, 4), m15), h2),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4b, 4), m15), h3),
            ];
            for (c, qc) in q.iter().enumerate() {
                let chunk = 4 * j + c;
                let y8 = _mm256_loadu_si256(y.qs.as_ptr().add(32 * chunk) as *const __m256i);
                let p16 = _mm256_maddubs_epi16(*qc, y8);
                // Scales of the chunk's two 16-value halves, one per i16 lane.
                let s_lo = _mm_set1_epi16(*sc.add(2 * chunk) as i16);
                let s_hi = _mm_set1_epi16(*sc.add(2 * chunk + 1) as i16);
                let s16 = _mm256_set_m128i(s_hi, s_lo);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(s16, p16));
            }
        }
        _mm256_sub_epi32(sumi, sclsub)
    }

    /// See [`super::dot_q6k`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q6k(w: &[BlockQ6K], a: &[Q8K]) -> f32 {
        const SIZE: usize = 210;
        let mut acc = _mm256_setzero_ps();
        for (b, y) in bytes_of(w).chunks_exact(SIZE).zip(a) {
            let d = y.d * f16::from_le_bytes([b[208], b[209]]).to_f32();
            let lanes = q6k_lanes(b, y);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
        }
        hsum_ps(acc)
    }

    /// See [`super::dot_q6k_tiled`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q6k_tiled(w: &[BlockQ6K], a: &[Q8K]) -> f32 {
        const SIZE: usize = 210;
        let mut acc = 0f32;
        for (b, y) in bytes_of(w).chunks_exact(SIZE).zip(a) {
            let dw = f16::from_le_bytes([b[208], b[209]]).to_f32();
            let s1 = hsum_epi32(q6k_lanes(b, y));
            acc = (s1 as f32 * dw).mul_add(y.d, acc);
        }
        acc
    }
}

/// Off x86-64 [`simd`] is never true; these keep the dispatch code the same there.
#[cfg(not(target_arch = "x86_64"))]
mod simd {
    use super::{OutPtr, Q8K, Q8_0};
    use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K, BlockQ8_0};

    const NEVER: &str = "the AVX2 kernels run only where simd() is true (x86-64)";

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
}

/// ggml's RMS norm followed by its weight: the squares summed in f64, the scale
/// applied, then the weight, each product rounded to f32 as ggml rounds it.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let n = weight.len();
    for (xs, ys) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let sum: f64 = xs.iter().map(|&v| (v * v) as f64).sum();
        let mean = (sum / n as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((y, &v), &w) in ys.iter_mut().zip(xs).zip(weight) {
            *y = (v * scale) * w;
        }
    }
}

/// ggml's vectorised `expf` (AVX-512 build, "adapted from arm limited optimized
/// routine"), one lane at a time: within 1.5 ulp of `expf` but not equal to it, and
/// softmax probabilities are later rounded to f16, so the difference shows.
#[inline(always)]
fn v_expf(x: f32) -> f32 {
    let r = f32::from_bits(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), r); // 0x1.715476p+0
    let n = z - r;
    let b = (-n).mul_add(
        f32::from_bits(0x35bf_be8e),                  // 0x1.7f7d1cp-20
        (-n).mul_add(f32::from_bits(0x3f31_7200), x), // 0x1.62e4p-1
    );
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    let u = b * b;
    let j = f32::from_bits(0x3c07_2010) // 0x1.0e4020p-7
        .mul_add(b, f32::from_bits(0x3d2b_9f17)) // 0x1.573e2ep-5
        .mul_add(
            u,
            f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb)), // 0x1.555e66p-3, 0x1.fffdb6p-2
        )
        .mul_add(u, f32::from_bits(0x3f7f_fff6).mul_add(b, 1.0)); // 0x1.ffffecp-1
                                                                  // scalef: exact in f64, one rounding to f32.
    (j as f64 * f64::from_bits(((n as i64 + 1023) as u64) << 52)) as f32
}

/// Lanes of ggml's 512-bit registers (softmax, f16 dot products, tinyBLAS).
const LANES: usize = 16;

/// `_mm512_reduce_add_ps` as GCC expands it: halves added pairwise (8, 4, 2, 1).
#[inline(always)]
fn reduce16(mut lanes: [f32; LANES]) -> f32 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    lanes[0]
}

/// Softmax of one attention row as ggml computes it, in place. The row holds the keys
/// from absolute position `first` on; ggml's row starts at cache cell 0 with the
/// invisible cells at -inf, and sums the exponentials 16 lanes at a time (lanes
/// reduced in f32, pairwise, then added in f64), so the lanes are aligned to absolute
/// positions here.
#[inline(always)]
fn softmax_row_impl(row: &mut [f32], first: usize) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for v in row.iter_mut() {
        *v = v_expf(*v - max);
    }
    let mut sum = 0f64;
    let mut lanes = [0f32; LANES];
    let mut pos = first;
    let end = first + row.len();
    while pos < end {
        let chunk_end = (pos / LANES + 1) * LANES;
        lanes.fill(0.0);
        for p in pos..chunk_end.min(end) {
            lanes[p % LANES] = row[p - first];
        }
        sum += reduce16(lanes) as f64;
        pos = chunk_end;
    }
    let inv = (1.0 / sum) as f32;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// One attention problem on the host: queries of one kv head group against its keys.
pub struct Attention<'a> {
    /// Queries, (rows, head_dim); row `r * seq + i` is query head `r` of the group at
    /// new position `i`. Already rounded to f16 (and scaled, for Gemma).
    pub q: &'a [f32],
    /// Keys and values of positions `start..total`, (total - start, head_dim), f16-rounded.
    pub k: &'a [f32],
    /// See `k`.
    pub v: &'a [f32],
    /// Size of one head.
    pub head_dim: usize,
    /// New positions (queries per head).
    pub seq: usize,
    /// Absolute position of the first new query.
    pub offset: usize,
    /// Absolute position of the first key held.
    pub start: usize,
    /// Sliding window, if the layer has one.
    pub window: Option<usize>,
    /// Scale applied to the scores before the softmax (1 when the queries carry it).
    pub scale: f32,
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

/// `Σ_t p[t]·v[t][d]` for every `d` at once, in the order ggml sums each: cache cell
/// `t` (an absolute position) feeds accumulator slot `t % slots` by FMA, in increasing
/// `t`. tinyBLAS (several new tokens) has 16 slots, added pairwise; `ggml_vec_dot_f16`
/// (one new token) has 64, four 16-lane registers folded (0+2, 1+3, 0+1) and then
/// added pairwise. Cells whose weight is 0 add nothing and are skipped.
#[inline(always)]
fn weighted_values(
    p: &[f32],
    v: &[f32],
    hd: usize,
    first: usize,
    slots: usize,
    acc: &mut Vec<f32>,
    out: &mut [f32],
) {
    acc.clear();
    acc.resize(slots * hd, 0.0);
    for (t, &w) in p.iter().enumerate() {
        if w == 0.0 {
            continue;
        }
        let slot = (first + t) % slots;
        let row = &v[t * hd..(t + 1) * hd];
        for (a, &x) in acc[slot * hd..(slot + 1) * hd].iter_mut().zip(row) {
            *a = w.mul_add(x, *a);
        }
    }
    if slots == 64 {
        // Fold the four registers: 0 += 2, 1 += 3, 0 += 1.
        for j in 0..2 {
            for l in 0..LANES {
                for d in 0..hd {
                    acc[(16 * j + l) * hd + d] += acc[(16 * (j + 2) + l) * hd + d];
                }
            }
        }
        for l in 0..LANES {
            for d in 0..hd {
                acc[l * hd + d] += acc[(16 + l) * hd + d];
            }
        }
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            for d in 0..hd {
                acc[l * hd + d] += acc[(l + width) * hd + d];
            }
        }
    }
    out.copy_from_slice(&acc[..hd]);
}

#[inline(always)]
fn attention_rows_impl(a: &Attention, rows: std::ops::Range<usize>, out: &mut [f32]) {
    let hd = a.head_dim;
    let n = a.k.len() / hd;
    let mut p = vec![0f32; n];
    let mut acc = Vec::new();
    // One new token: ggml's plain f16 dot products (llamafile takes two or more).
    let single = a.seq == 1;
    for (row, out) in rows.zip(out.chunks_exact_mut(hd)) {
        let qpos = a.offset + row % a.seq;
        let q = &a.q[row * hd..(row + 1) * hd];
        for (t, s) in p.iter_mut().enumerate() {
            let kpos = a.start + t;
            let visible = kpos <= qpos && a.window.is_none_or(|w| qpos - kpos < w);
            *s = if visible {
                let k = &a.k[t * hd..(t + 1) * hd];
                (if single {
                    dot_vec_f16(k, q)
                } else {
                    dot_rows(k, q)
                }) * a.scale
            } else {
                f32::NEG_INFINITY
            };
        }
        softmax_row_impl(&mut p, a.start);
        for x in p.iter_mut() {
            *x = f16::from_f32(*x).to_f32();
        }
        let slots = if single { 64 } else { LANES };
        weighted_values(&p, a.v, hd, a.start, slots, &mut acc, out);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attention_rows_fma(a: &Attention, rows: std::ops::Range<usize>, out: &mut [f32]) {
    attention_rows_impl(a, rows, out)
}

/// Attention of one kv head group as llama.cpp computes it without flash attention:
/// scores of f16 operands summed as tinyBLAS sums them, ggml's softmax, probabilities
/// rounded to f16, and their product with the f16 values summed the same way.
/// Returns (rows, head_dim).
pub fn attention(a: &Attention) -> Vec<f32> {
    let hd = a.head_dim;
    let rows = a.q.len() / hd;
    let mut out = vec![0f32; rows * hd];
    let ptr = OutPtr(out.as_mut_ptr());
    let work = |range: std::ops::Range<usize>| {
        // SAFETY: each range of rows owns its slice of `out`.
        let out =
            unsafe { std::slice::from_raw_parts_mut(ptr.at(range.start * hd), range.len() * hd) };
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked).
            unsafe { attention_rows_fma(a, range, out) };
            return;
        }
        attention_rows_impl(a, range, out);
    };
    if rows * a.k.len() < 1 << 15 {
        work(0..rows);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(rows, work);
    }
    out
}

/// Rotary embedding in place, as ggml's CPU rope rotates: `x` is (positions, heads,
/// head_dim) for positions from `offset`; `cos`/`sin` are (positions, head_dim / 2)
/// tables built the way ggml builds its cache. Pairs are (j, j + head_dim/2), or
/// (2j, 2j + 1) when `interleaved`. GCC contracts ggml's `x0*c - x1*s` into an FMA on
/// the first product, and Rust does not contract, so the FMA is spelled out.
#[allow(clippy::too_many_arguments)]
pub fn rope(
    x: &mut [f32],
    heads: usize,
    head_dim: usize,
    offset: usize,
    cos: &[f32],
    sin: &[f32],
    interleaved: bool,
) {
    let half = head_dim / 2;
    for (i, pos_rows) in x.chunks_exact_mut(heads * head_dim).enumerate() {
        let c = &cos[(offset + i) * half..(offset + i + 1) * half];
        let s = &sin[(offset + i) * half..(offset + i + 1) * half];
        for head in pos_rows.chunks_exact_mut(head_dim) {
            for j in 0..half {
                let (a, b) = if interleaved {
                    (2 * j, 2 * j + 1)
                } else {
                    (j, j + half)
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0.mul_add(c[j], -(x1 * s[j]));
                head[b] = x0.mul_add(s[j], x1 * c[j]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Values in [-2, 2).
    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut v = crate::testing::Lcg::new(seed).values(n);
        v.iter_mut().for_each(|x| *x *= 4.0);
        v
    }

    #[test]
    fn q8_0_rounds_ties_to_even_and_scales_by_127_over_amax() {
        let mut x = vec![0f32; 32];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        x[3] = 0.5;
        let mut out = [Q8_0 {
            d: f16::ZERO,
            qs: [0; 32],
        }];
        quantize_q8_0(&x, &mut out);
        assert_eq!(out[0].d.to_f32(), 1.0);
        assert_eq!(&out[0].qs[..4], &[127, 2, -4, 0]);
    }

    #[test]
    fn q8k_scale_follows_the_signed_maximum() {
        let mut x = random(256, 1);
        x[7] = -9.0;
        let mut out = [Q8K {
            d: 0.0,
            qs: [0; 256],
            bsums: [0; 16],
        }];
        quantize_q8k(&x, &mut out);
        // The largest magnitude is negative, so the scale is positive and it maps to -127.
        assert_eq!(out[0].qs[7], -127);
        assert!((out[0].d - 9.0 / 127.0).abs() < 1e-7);
        let s: i16 = out[0].qs[..16].iter().map(|&q| q as i16).sum();
        assert_eq!(out[0].bsums[0], s);
    }

    /// Every supported type against the dequantized weight times the dequantized
    /// activations: the integer products must agree up to float rounding.
    #[test]
    fn matmul_equals_dequantized_product_of_quantized_operands() {
        let (m, n, k) = (3, 40, 512);
        let w = Tensor::from_vec(random(n * k, 2), (n, k), &Device::Cpu).unwrap();
        let x = random(m * k, 3);
        for dtype in [
            GgmlDType::Q4_0,
            GgmlDType::Q8_0,
            GgmlDType::Q2K,
            GgmlDType::Q3K,
            GgmlDType::Q4K,
            GgmlDType::Q5K,
            GgmlDType::Q6K,
        ] {
            let q = QTensor::quantize(&w, dtype).unwrap();
            let mm = GgmlMatMul::new(&q).unwrap().unwrap();
            let got = mm.forward(&x, m);
            let wd = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            // The activations as the kernel sees them.
            let xq: Vec<f32> = match mm.quantize(&x, m) {
                Acts::Q8_0(a) => a
                    .iter()
                    .flat_map(|b| b.qs.iter().map(move |&q| q as f32 * b.d.to_f32()))
                    .collect(),
                Acts::Q8K(a) => a
                    .iter()
                    .flat_map(|b| b.qs.iter().map(move |&q| q as f32 * b.d))
                    .collect(),
            };
            for r in 0..m {
                for c in 0..n {
                    let want: f64 = (0..k).map(|i| wd[c][i] as f64 * xq[r * k + i] as f64).sum();
                    let g = got[r * n + c] as f64;
                    assert!(
                        (g - want).abs() <= 1e-3 * want.abs().max(1.0),
                        "{dtype:?} ({r},{c}): {g} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn v_expf_is_within_two_ulp_of_exp() {
        for i in -2000..=800 {
            let x = i as f32 * 0.05;
            let (a, b) = (v_expf(x), x.exp());
            assert!(
                (a - b).abs() <= 2.0 * f32::EPSILON * b.max(f32::MIN_POSITIVE),
                "{x}: {a} vs {b}"
            );
        }
        assert_eq!(v_expf(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn softmax_sums_to_one_and_ignores_alignment() {
        let mut a = vec![0.5f32, -1.0, 2.0, 3.0, -50.0, f32::NEG_INFINITY, 1.0];
        let mut b = a.clone();
        softmax_row_impl(&mut a, 0);
        softmax_row_impl(&mut b, 13);
        let s: f32 = a.iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        assert_eq!(a[5], 0.0);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-7);
        }
    }

    /// The AVX2 kernels give the portable kernels' results bit for bit.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_kernels_equal_portable_ones_bit_for_bit() {
        if !simd() {
            eprintln!("skipped: no AVX2/FMA on this CPU");
            return;
        }
        let (n, k) = (8, 1024);
        let w = Tensor::from_vec(random(n * k, 7), (n, k), &Device::Cpu).unwrap();
        let x = random(k, 8);
        // The Q8_0 tile kernel over a 5 × 7 product (4-row and 1-row blocks, a lone
        // column) against the portable dot product.
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let mm = GgmlMatMul::new(&q).unwrap().unwrap();
        let xs = random(5 * k, 9);
        if let (Blocks::Q8_0(wb), Acts::Q8_0(a)) = (&mm.w, mm.quantize(&xs, 5)) {
            let per = k / 32;
            let mut out = vec![0f32; 5 * 7];
            unsafe { simd::tile_q8_0(wb, &a, per, 5, 7, 0..7, OutPtr(out.as_mut_ptr())) };
            for r in 0..5 {
                for c in 0..7 {
                    let want = dot_q8_0(&wb[c * per..(c + 1) * per], &a[r * per..(r + 1) * per]);
                    assert_eq!(out[r * 7 + c].to_bits(), want.to_bits(), "Q8_0 ({r},{c})");
                }
            }
        }
        for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
            let q = QTensor::quantize(&w, dtype).unwrap();
            let mm = GgmlMatMul::new(&q).unwrap().unwrap();
            let acts = mm.quantize(&x, 1);
            for col in 0..n {
                let (fast, slow): (Vec<f32>, Vec<f32>) = match (&mm.w, &acts) {
                    (Blocks::Q4K(w), Acts::Q8K(a)) => {
                        let r = &w[col * k / 256..(col + 1) * k / 256];
                        let f =
                            unsafe { vec![simd::dot_q4k(r, a, false), simd::dot_q4k(r, a, true)] };
                        (f, vec![dot_q4k(r, a, false), dot_q4k(r, a, true)])
                    }
                    (Blocks::Q6K(w), Acts::Q8K(a)) => {
                        let r = &w[col * k / 256..(col + 1) * k / 256];
                        let f = unsafe { vec![simd::dot_q6k(r, a), simd::dot_q6k_tiled(r, a)] };
                        (f, vec![dot_q6k(r, a), dot_q6k_tiled(r, a)])
                    }
                    _ => unreachable!(),
                };
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast), bits(&slow), "{dtype:?} column {col}");
            }
        }
    }

    #[test]
    fn gelu_table_matches_the_formula_at_f16_precision() {
        for &x in &[-12.0f32, -3.0, -0.5, 0.0, 0.3, 1.0, 2.5, 9.9, 11.0] {
            let exact = 0.5 * x * (1.0 + (0.797_884_6 * x * (1.0 + 0.044_715 * x * x)).tanh());
            assert!(
                (gelu(x) - exact).abs() <= 0.01 * exact.abs().max(0.01),
                "{x}"
            );
        }
        assert_eq!(gelu(-10.5), 0.0);
        assert_eq!(gelu(10.5), 10.5);
    }
}
