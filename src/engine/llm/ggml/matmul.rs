//! The quantized matmul: weights kept in ggml's block layout, activations rounded to
//! 8-bit blocks, and the block dots of [`super::dots`] (or [`super::avx2`]) run over
//! column tiles on candle's thread pool.

use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ5K, BlockQ6K, BlockQ8_0, GgmlType,
};
use std::marker::PhantomData;
use std::ops::Range;

use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;

use super::avx2;
use super::blocks::{
    as_blocks_q8_0, as_blocks_q8k, bytes_of, quantize_q8_0, quantize_q8k, Q8K, Q8_0, QK8_0, QK_K,
};
use super::dots::{self, dot_q4k, dot_q6k, dot_q6k_tiled, dot_q8_0};
use crate::engine::llm::file::GgufBytes;
use crate::{Error, Result};

/// Activation rows quantized for one weight type.
pub(super) enum Acts {
    Q8_0(Vec<Q8_0>),
    Q8K(Vec<Q8K>),
}

/// Weight rows in ggml's block layout, typed for candle's dot-product kernels.
pub(super) enum Blocks {
    Q4_0(Store<BlockQ4_0>),
    Q8_0(Store<BlockQ8_0>),
    Q2K(Store<BlockQ2K>),
    Q3K(Store<BlockQ3K>),
    Q4K(Store<BlockQ4K>),
    Q5K(Store<BlockQ5K>),
    Q6K(Store<BlockQ6K>),
}

/// A weight's blocks where they lie in the GGUF file's bytes (the memory map), or a
/// copy when the bytes are not aligned for the block type.
pub(super) enum Store<T> {
    InPlace {
        bytes: GgufBytes,
        start: usize,
        len: usize,
        _type: PhantomData<T>,
    },
    Copied(Vec<T>),
}

impl<T: GgmlType> Store<T> {
    /// The blocks in `bytes[range]`.
    fn new(bytes: &GgufBytes, range: Range<usize>) -> Result<Store<T>> {
        let size = std::mem::size_of::<T>();
        let src = bytes
            .as_slice()
            .get(range.clone())
            .ok_or_else(|| Error::Model("weight runs past the end of the file".into()))?;
        if src.len() % size != 0 {
            return Err(Error::Model(format!(
                "{:?} tensor of {} bytes is not a whole number of blocks",
                T::DTYPE,
                src.len()
            )));
        }
        let len = src.len() / size;
        if (src.as_ptr() as usize) % std::mem::align_of::<T>() == 0 {
            return Ok(Store::InPlace {
                bytes: bytes.clone(),
                start: range.start,
                len,
                _type: PhantomData,
            });
        }
        let mut out: Vec<T> = (0..len).map(|_| T::zeros()).collect();
        // SAFETY: candle's block types are `repr(C)` plain data in ggml's on-disk layout
        // (sizes asserted in candle), every bit pattern of which is a valid value, and
        // `out` holds exactly `src.len()` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), out.as_mut_ptr() as *mut u8, src.len());
        }
        Ok(Store::Copied(out))
    }
}

impl<T> std::ops::Deref for Store<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            // SAFETY: `new` checked that these `len` blocks lie inside the bytes and
            // that their start is aligned for `T`; the bytes are immutable and live as
            // long as `self` holds them; block types are plain data valid for every bit
            // pattern.
            Store::InPlace {
                bytes, start, len, ..
            } => unsafe {
                std::slice::from_raw_parts(bytes.as_slice().as_ptr().add(*start) as *const T, *len)
            },
            Store::Copied(v) => v,
        }
    }
}

/// A quantized weight (`n` rows of `k`) multiplied with ggml's arithmetic on the CPU.
pub struct GgmlMatMul {
    n: usize,
    k: usize,
    pub(super) w: Blocks,
    /// Q4_K repacked at load for the AVX-512 VNNI kernel, on CPUs that have it.
    #[cfg(all(target_arch = "x86_64", svodka_avx512))]
    q4k: Option<super::avx512_q4k::Q4kPacked>,
}

/// Lets the pool's workers write disjoint elements of one output buffer (f32 outputs,
/// quantized activation rows, repacked weight groups).
pub(super) struct OutPtr<T = f32>(pub(super) *mut T);
// SAFETY: every worker writes a disjoint set of elements (its own columns or rows).
unsafe impl<T: Send> Send for OutPtr<T> {}
unsafe impl<T: Send> Sync for OutPtr<T> {}

impl<T> Clone for OutPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for OutPtr<T> {}

impl<T> OutPtr<T> {
    /// The element `i` places on (a method, so closures capture the `Sync` wrapper).
    pub(super) fn at(self, i: usize) -> *mut T {
        // SAFETY: callers stay within the buffer the pointer came from.
        unsafe { self.0.add(i) }
    }

    /// Elements `start..start + len`, for one worker alone.
    ///
    /// # Safety
    /// They lie within the buffer, and no other worker touches them while borrowed.
    pub(super) unsafe fn slice<'a>(self, start: usize, len: usize) -> &'a mut [T] {
        std::slice::from_raw_parts_mut(self.at(start), len)
    }
}

/// `m` rows of `x` (`k` values each) rounded to `per` blocks each by `round`, the rows
/// shared among the pool's threads: one row at a time, the other threads would wait.
fn quantize_rows<B: Copy + Send>(
    x: &[f32],
    k: usize,
    m: usize,
    zero: B,
    per: usize,
    round: impl Fn(&[f32], &mut [B]) + Sync,
) -> Vec<B> {
    let mut blocks = vec![zero; m * per];
    let rows = OutPtr(blocks.as_mut_ptr());
    let work = |range: std::ops::Range<usize>| {
        for row in range {
            // SAFETY: row < m, and each row goes to one worker.
            round(&x[row * k..(row + 1) * k], unsafe {
                rows.slice(row * per, per)
            });
        }
    };
    if m < 16 {
        work(0..m);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(m, work);
    }
    blocks
}

/// Columns one task takes at a time: their weight rows stay in cache while every
/// activation row passes over them.
const COLUMN_TILE: usize = 16;

impl GgmlMatMul {
    /// Wraps a GGUF weight of shape (n, k), or `None` for a type this module does not
    /// cover (the caller falls back to candle's matmul).
    pub fn new(t: &QTensor) -> Result<Option<GgmlMatMul>> {
        let (n, k) = t.shape().dims2()?;
        let bytes = GgufBytes::from(t.data()?.into_owned());
        let all = 0..bytes.as_slice().len();
        GgmlMatMul::in_place(t.dtype(), n, k, &bytes, all)
    }

    /// A weight of type `dtype` and shape (n, k) read where it lies: `bytes[range]`, or
    /// `None` for a type this module does not cover.
    pub fn in_place(
        dtype: GgmlDType,
        n: usize,
        k: usize,
        bytes: &GgufBytes,
        range: Range<usize>,
    ) -> Result<Option<GgmlMatMul>> {
        let block = dtype.block_size();
        let covered = matches!(
            dtype,
            GgmlDType::Q4_0
                | GgmlDType::Q8_0
                | GgmlDType::Q2K
                | GgmlDType::Q3K
                | GgmlDType::Q4K
                | GgmlDType::Q5K
                | GgmlDType::Q6K
        );
        if !covered || k % block != 0 {
            return Ok(None);
        }
        if range.len() != n * k / block * dtype.type_size() {
            return Err(Error::Model(format!(
                "{dtype:?} weight of {} bytes does not hold {n} rows of {k}",
                range.len()
            )));
        }
        #[cfg(all(target_arch = "x86_64", svodka_avx512))]
        let whole = range.clone();
        let w = match dtype {
            GgmlDType::Q4_0 => Blocks::Q4_0(Store::new(bytes, range)?),
            GgmlDType::Q8_0 => Blocks::Q8_0(Store::new(bytes, range)?),
            GgmlDType::Q2K => Blocks::Q2K(Store::new(bytes, range)?),
            GgmlDType::Q3K => Blocks::Q3K(Store::new(bytes, range)?),
            GgmlDType::Q4K => Blocks::Q4K(Store::new(bytes, range)?),
            GgmlDType::Q5K => Blocks::Q5K(Store::new(bytes, range)?),
            _ => Blocks::Q6K(Store::new(bytes, range)?),
        };
        #[cfg(all(target_arch = "x86_64", svodka_avx512))]
        let q4k = match &w {
            Blocks::Q4K(b) if crate::cpu::features().avx512_vnni_f16c() => {
                let packed = super::avx512_q4k::Q4kPacked::new(bytes_of(b), n, k / QK_K);
                // The matmuls read the repacked copy; the file's blocks are left for
                // embedding rows, read back from the page cache if ever needed.
                bytes.release(whole);
                Some(packed)
            }
            _ => None,
        };
        Ok(Some(GgmlMatMul {
            n,
            k,
            w,
            #[cfg(all(target_arch = "x86_64", svodka_avx512))]
            q4k,
        }))
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
            dots::dequantize_k4(bytes_of(row), five_bit, &mut out);
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

    pub(super) fn quantize(&self, x: &[f32], m: usize) -> Acts {
        let k = self.k;
        match self.w {
            Blocks::Q4_0(_) | Blocks::Q8_0(_) => {
                let zero = Q8_0 {
                    d: f16::ZERO,
                    qs: [0; QK8_0],
                };
                Acts::Q8_0(quantize_rows(x, k, m, zero, k / QK8_0, quantize_q8_0))
            }
            _ => {
                let zero = Q8K {
                    d: 0.0,
                    qs: [0; QK_K],
                    bsums: [0; QK_K / 16],
                };
                Acts::Q8K(quantize_rows(x, k, m, zero, k / QK_K, quantize_q8k))
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
                self.run_with(w, a, m, ptr, |w, a, _| dots::dot_q4_0(w, a))
            }
            (Blocks::Q4_0(w), Acts::Q8_0(a)) => self.run(w, as_blocks_q8_0(a), m, ptr),
            (Blocks::Q8_0(w), Acts::Q8_0(a)) => {
                #[cfg(all(target_arch = "x86_64", svodka_avx512))]
                if crate::cpu::features().avx512_vnni_f16c() {
                    let (n, per) = (self.n, self.k / QK8_0);
                    let work = |tiles: std::ops::Range<usize>| {
                        let cols = tiles.start * COLUMN_TILE..(tiles.end * COLUMN_TILE).min(n);
                        // SAFETY: the CPU has AVX-512 F, BW and VNNI, FMA and F16C; the
                        // tiles' columns are this worker's alone.
                        unsafe { super::avx512_q8_0::tile_q8_0(w, a, per, m, n, cols, ptr) };
                    };
                    self.parallel(m, work);
                    return out;
                }
                if crate::cpu::features().avx2_fma_f16c() {
                    let (n, per) = (self.n, self.k / QK8_0);
                    let work = |tiles: std::ops::Range<usize>| {
                        let cols = tiles.start * COLUMN_TILE..(tiles.end * COLUMN_TILE).min(n);
                        // SAFETY: the CPU has AVX2, FMA and F16C; the tiles' columns are
                        // this worker's alone.
                        unsafe { avx2::tile_q8_0(w, a, per, m, n, cols, ptr) };
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
                #[cfg(all(target_arch = "x86_64", svodka_avx512))]
                if let Some(packed) = &self.q4k {
                    self.q4k_packed(packed, a, m, ptr);
                    return out;
                }
                if crate::cpu::features().avx2_fma_f16c() {
                    // SAFETY: the CPU has AVX2 and FMA.
                    self.run_with(w, a, m, ptr, |w, a, row| unsafe {
                        avx2::dot_q4k(w, a, row < gemm_rows)
                    })
                } else {
                    self.run_with(w, a, m, ptr, |w, a, row| dot_q4k(w, a, row < gemm_rows))
                }
            }
            (Blocks::Q5K(w), Acts::Q8K(a)) => {
                // From eight rows on, ggml takes Q5_K through its tiled kernel.
                if m >= 8 {
                    self.run_with(w, a, m, ptr, |w, a, _| dots::dot_q5k_tiled(w, a))
                } else {
                    self.run_with(w, a, m, ptr, |w, a, _| dots::dot_q5k(w, a))
                }
            }
            (Blocks::Q6K(w), Acts::Q8K(a)) => {
                #[cfg(all(target_arch = "x86_64", svodka_avx512))]
                if crate::cpu::features().avx512_vnni_f16c() {
                    if m < 8 {
                        self.q6k_pairs(w, a, m, ptr);
                    } else {
                        self.q6k_gemm(w, a, m, ptr);
                    }
                    return out;
                }
                // From eight rows on, ggml takes Q6_K through its tiled kernel.
                // SAFETY (simd): the CPU has AVX2 and FMA.
                match (m >= 8, crate::cpu::features().avx2_fma_f16c()) {
                    (true, true) => {
                        self.run_with(w, a, m, ptr, |w, a, _| unsafe { avx2::dot_q6k_tiled(w, a) })
                    }
                    (true, false) => self.run_with(w, a, m, ptr, |w, a, _| dot_q6k_tiled(w, a)),
                    (false, true) => {
                        self.run_with(w, a, m, ptr, |w, a, _| unsafe { avx2::dot_q6k(w, a) })
                    }
                    (false, false) => self.run_with(w, a, m, ptr, |w, a, _| dot_q6k(w, a)),
                }
            }
            _ => unreachable!("activations are quantized for the weight's type"),
        }
        out
    }

    /// Q4_K with AVX-512 VNNI on the weights repacked at load.
    #[cfg(all(target_arch = "x86_64", svodka_avx512))]
    fn q4k_packed(&self, w: &super::avx512_q4k::Q4kPacked, a: &[Q8K], m: usize, out: OutPtr) {
        const _: () = assert!(COLUMN_TILE == 16);
        let n = self.n;
        let work = |tiles: std::ops::Range<usize>| {
            // Tiles are the kernel's groups of sixteen rows.
            let cols = tiles.start * COLUMN_TILE..(tiles.end * COLUMN_TILE).min(n);
            // SAFETY: the packing checked AVX-512 F/BW/VNNI, FMA and F16C; `a`
            // has m rows of the weight's blocks; these columns are this worker's alone.
            unsafe { super::avx512_q4k::matmul(w, a, m, n, cols, out) };
        };
        self.parallel(m, work);
    }

    /// Q6_K from eight rows on (ggml's tiled order) with AVX-512 VNNI, sixteen weight rows
    /// at a time; the last few columns by the AVX2 per-pair kernel.
    #[cfg(all(target_arch = "x86_64", svodka_avx512))]
    fn q6k_gemm(&self, w: &[BlockQ6K], a: &[Q8K], m: usize, out: OutPtr) {
        const _: () = assert!(COLUMN_TILE % 16 == 0);
        let (n, per) = (self.n, self.k / QK_K);
        let work = |tiles: std::ops::Range<usize>| {
            // Tiles are whole groups of the gemm's sixteen, so no group spans two workers.
            let cols = tiles.start * COLUMN_TILE..(tiles.end * COLUMN_TILE).min(n);
            // SAFETY: the caller checked AVX-512 F/BW/VNNI (which imply AVX2 and FMA);
            // `w` has n rows and `a` m rows of `per` blocks; these columns are this
            // worker's alone.
            unsafe {
                let done = super::avx512_q6k::gemm_q6k(w, a, per, m, n, cols.clone(), out);
                for row in 0..m {
                    let ar = &a[row * per..(row + 1) * per];
                    for col in done..cols.end {
                        let v = avx2::dot_q6k_tiled(&w[col * per..(col + 1) * per], ar);
                        *out.at(row * n + col) = v;
                    }
                }
            }
        };
        self.parallel(m, work);
    }

    /// Q6_K below eight rows (ggml's `vec_dot` order) two weight rows per AVX-512 pass.
    #[cfg(all(target_arch = "x86_64", svodka_avx512))]
    fn q6k_pairs(&self, w: &[BlockQ6K], a: &[Q8K], m: usize, out: OutPtr) {
        let (n, per) = (self.n, self.k / QK_K);
        let work = |tiles: std::ops::Range<usize>| {
            let cols = tiles.start * COLUMN_TILE..(tiles.end * COLUMN_TILE).min(n);
            let row_of = |c: usize| &w[c * per..(c + 1) * per];
            for row in 0..m {
                let ar = &a[row * per..(row + 1) * per];
                let mut col = cols.start;
                // SAFETY: the caller checked AVX-512 F/BW (which imply AVX2 and FMA); these
                // columns are this worker's alone.
                unsafe {
                    while col + 2 <= cols.end {
                        let (x, y) =
                            super::avx512_q6k::dot_q6k_pair(row_of(col), row_of(col + 1), ar);
                        *out.at(row * n + col) = x;
                        *out.at(row * n + col + 1) = y;
                        col += 2;
                    }
                    if col < cols.end {
                        *out.at(row * n + col) = avx2::dot_q6k(row_of(col), ar);
                    }
                }
            }
        };
        self.parallel(m, work);
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
