//! Int8 linear layers for the Marian engine on the CPU.
//!
//! Each weight row (one output) is quantized once, at load, to symmetric int8 with its
//! own scale (`w ≈ q_w · s_w`, `q_w ∈ [-127, 127]`); each input row is quantized the same
//! way at run time. The products are integer dot products accumulated exactly in i32,
//! then `y = dot · (s_x · s_w) + bias` in f32. The weights sit in panels of 16 outputs
//! whose inputs come in groups of 4 bytes per output, the operand layout of AVX-512
//! VNNI's `vpdpbusd` (16 lanes × 4 products) and of AVX2's `vpmaddubsw` + `vpmaddwd`.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, so the VNNI kernel feeds it
//! `q_x + 128` and subtracts `128 · Σ q_w` per output afterwards (a column sum kept with
//! the weight), as intgemm and oneDNN do. AVX2 has no such instruction and
//! `vpmaddubsw` saturates its 16-bit pair sums for `255 · 127 · 2`; it multiplies
//! `|q_w|` by `q_x` carrying the sign of `q_w` instead (ggml's trick), whose pair sums stay
//! within `2 · 127²`. Both give the exact integer dot product, and the float epilogue is
//! the same three roundings in the same order everywhere, so every kernel returns the
//! portable code's bits (tested).

use crate::engine::packed::{by_panels, linear_fwd, row_tiles, SendPtr};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Storage, Tensor};
use std::sync::Arc;

pub mod reader;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Outputs per panel: one AVX-512 register of i32.
const PANEL: usize = 16;
/// Inputs summed into one i32 lane per instruction.
const GROUP: usize = 4;
/// Rows of a block: its quantized inputs stay in the L2 cache while every panel of a
/// thread's share streams past them (the encoder multiplies hundreds of rows).
const BLOCK_ROWS: usize = 96;

/// A weight `[out, in]` quantized per output row, with its bias, laid out in panels.
#[derive(Clone)]
pub struct Int8Weight {
    /// Panel `p`, input group `g`, lane `l`, byte `j` at `((p · groups + g) · 16 + l) · 4 + j`;
    /// inputs past `in_dim` and outputs past `out_dim` are zeros.
    panels: Arc<Vec<i8>>,
    /// `s_w` per output, padded to whole panels with zeros.
    scales: Arc<Vec<f32>>,
    /// `128 · Σ_k q_w[o, k]` per output (padded): what the VNNI kernel's offset adds.
    col_sums: Arc<Vec<i32>>,
    /// Bias per output (zeros when the layer has none), padded.
    bias: Arc<Vec<f32>>,
    out_dim: usize,
    in_dim: usize,
    /// `ceil(in_dim / 4)`.
    groups: usize,
}

impl std::fmt::Debug for Int8Weight {
    /// The shape only: an output projection holds 32M bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Int8Weight")
            .field("out_dim", &self.out_dim)
            .field("in_dim", &self.in_dim)
            .finish()
    }
}

/// Symmetric int8 of `src` into `dst` (same length); returns the scale `s` with
/// `src ≈ dst · s`. Rounds half to even through the 1.5·2²³ trick, which vectorizes
/// where `f32::round` is a library call; all-zero rows get scale 0.
fn quantize_row(src: &[f32], dst: &mut [i8]) -> f32 {
    let amax = src.iter().fold(0f32, |m, &v| m.max(v.abs()));
    let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    const MAGIC: f32 = 12_582_912.0;
    for (d, &v) in dst.iter_mut().zip(src) {
        let r = (v * inv + MAGIC) - MAGIC;
        *d = r.clamp(-127.0, 127.0) as i8;
    }
    amax / 127.0
}

impl Int8Weight {
    /// Quantizes an f32 CPU weight `[out, in]` and its bias `[out]`.
    pub fn new(weight: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Self> {
        let (out_dim, in_dim) = weight.dims2()?;
        let weight = weight.to_dtype(DType::F32)?.contiguous()?;
        let bias = match bias {
            Some(b) => {
                let b: Vec<f32> = b.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
                if b.len() != out_dim {
                    candle_core::bail!("int8 linear: bias of {} for {out_dim} outputs", b.len());
                }
                Some(b)
            }
            None => None,
        };
        // Read in place: a copy of a 62,518 × 512 table would raise the peak memory.
        let (storage, layout) = weight.storage_and_layout();
        match (&*storage, layout.contiguous_offsets()) {
            (Storage::Cpu(cpu), Some((start, end))) => Self::from_rows(
                &cpu.as_slice::<f32>()?[start..end],
                out_dim,
                in_dim,
                bias.as_deref(),
            ),
            _ => {
                drop(storage);
                let w: Vec<f32> = weight.flatten_all()?.to_vec1()?;
                Self::from_rows(&w, out_dim, in_dim, bias.as_deref())
            }
        }
    }

    /// Quantizes a row-major `[out_dim, in_dim]` weight.
    pub fn from_rows(
        w: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
    ) -> candle_core::Result<Self> {
        if in_dim == 0 || out_dim == 0 {
            candle_core::bail!("int8 linear: empty weight {out_dim} × {in_dim}");
        }
        if w.len() != out_dim * in_dim {
            candle_core::bail!("int8 linear: {} values for {out_dim} × {in_dim}", w.len());
        }
        if let Some(bad) = w.iter().position(|v| !v.is_finite()) {
            candle_core::bail!("int8 linear: weight value {bad} is not finite");
        }
        let groups = in_dim.div_ceil(GROUP);
        let n_panels = out_dim.div_ceil(PANEL);
        let padded = n_panels * PANEL;
        let mut panels = vec![0i8; n_panels * groups * PANEL * GROUP];
        let mut scales = vec![0f32; padded];
        let mut col_sums = vec![0i32; padded];
        let mut q = vec![0i8; in_dim];
        for o in 0..out_dim {
            scales[o] = quantize_row(&w[o * in_dim..(o + 1) * in_dim], &mut q);
            col_sums[o] = 128 * q.iter().map(|&v| v as i32).sum::<i32>();
            let (p, l) = (o / PANEL, o % PANEL);
            for (k, &v) in q.iter().enumerate() {
                let (g, j) = (k / GROUP, k % GROUP);
                panels[((p * groups + g) * PANEL + l) * GROUP + j] = v;
            }
        }
        let mut b = vec![0f32; padded];
        if let Some(src) = bias {
            b[..out_dim].copy_from_slice(src);
        }
        Ok(Int8Weight {
            panels: Arc::new(panels),
            scales: Arc::new(scales),
            col_sums: Arc::new(col_sums),
            bias: Arc::new(b),
            out_dim,
            in_dim,
            groups,
        })
    }

    /// Number of outputs.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Number of inputs.
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Bytes the quantized weight holds (panels, scales, column sums, bias).
    pub fn bytes(&self) -> usize {
        self.panels.len() + 12 * self.scales.len()
    }

    /// Row `o` of the weight as quantized, `q_w · s_w` (an embedding lookup when the
    /// table is tied to this projection).
    pub fn row_into(&self, o: usize, dst: &mut [f32]) {
        let (p, l) = (o / PANEL, o % PANEL);
        let s = self.scales[o];
        for (k, d) in dst.iter_mut().enumerate().take(self.in_dim) {
            let (g, j) = (k / GROUP, k % GROUP);
            *d = self.panels[((p * self.groups + g) * PANEL + l) * GROUP + j] as f32 * s;
        }
    }

    /// `xs [.., in]` (f32, CPU) → `[.., out]`.
    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        xs.contiguous()?.apply_op1_no_bwd(self)
    }

    /// `dst[r, o] = dot(q_x[r], q_w[o]) · (s_x[r] · s_w[o]) + bias[o]` for `rows` rows.
    ///
    /// # Safety
    /// `dst` points to room for `rows × out_dim` floats, every one of which is written;
    /// the CPU has the instructions of `isa`.
    unsafe fn compute_with(&self, isa: Isa, x: &[f32], rows: usize, dst: *mut f32) {
        let kp = self.groups * GROUP;
        let mut q = vec![0i8; rows * kp];
        let mut sx = vec![0f32; rows];
        let rows_in = x.chunks_exact(self.in_dim).zip(q.chunks_exact_mut(kp));
        for (s, (xr, qr)) in sx.iter_mut().zip(rows_in) {
            *s = quantize_row(xr, &mut qr[..self.in_dim]);
        }
        let tiles = row_tiles(rows, isa.max_tile_rows());
        let xp = isa.pack(&q, kp, &tiles);
        // Tiles grouped into blocks of about BLOCK_ROWS rows.
        let mut blocks: Vec<&[(usize, usize)]> = Vec::new();
        let mut start = 0;
        let mut rows_in = 0;
        for (i, &(_, n)) in tiles.iter().enumerate() {
            rows_in += n;
            if rows_in >= BLOCK_ROWS || i + 1 == tiles.len() {
                blocks.push(&tiles[start..=i]);
                start = i + 1;
                rows_in = 0;
            }
        }
        let dst_ptr = SendPtr(dst);
        let macs = rows * self.out_dim * self.in_dim;
        by_panels(self.out_dim.div_ceil(PANEL), macs, 1 << 21, |p0, p1| {
            let dst = dst_ptr.get();
            for block in &blocks {
                // SAFETY: threads write disjoint output columns of `dst`, which outlives
                // them; the kernels run only where `Isa::detect` found their instructions.
                unsafe {
                    match isa {
                        #[cfg(all(target_arch = "x86_64", svodka_avx512))]
                        Isa::Vnni => x86::panels_vnni(self, &xp, &sx, block, dst, p0, p1),
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx2 => x86::panels_avx2(self, &xp, &sx, block, dst, p0, p1),
                        Isa::Portable => self.panels_portable(&q, &sx, block, dst, p0, p1),
                    }
                }
            }
        });
    }

    /// Output columns of panels `[p0, p1)` for the rows of `tiles`, in plain Rust.
    ///
    /// # Safety
    /// `dst` points to `rows × out_dim` floats; no other thread writes these columns.
    unsafe fn panels_portable(
        &self,
        q: &[i8],
        sx: &[f32],
        tiles: &[(usize, usize)],
        dst: *mut f32,
        p0: usize,
        p1: usize,
    ) {
        let kp = self.groups * GROUP;
        let stride = self.groups * PANEL * GROUP;
        for p in p0..p1 {
            let w = &self.panels[p * stride..(p + 1) * stride];
            let lanes = (self.out_dim - p * PANEL).min(PANEL);
            for &(r0, n) in tiles {
                for r in r0..r0 + n {
                    let xr = &q[r * kp..(r + 1) * kp];
                    let mut acc = [0i32; PANEL];
                    for (g, xg) in xr.chunks_exact(GROUP).enumerate() {
                        let wg = &w[g * PANEL * GROUP..(g + 1) * PANEL * GROUP];
                        for (a, wl) in acc.iter_mut().zip(wg.chunks_exact(GROUP)) {
                            *a += xg
                                .iter()
                                .zip(wl)
                                .map(|(&x, &w)| x as i32 * w as i32)
                                .sum::<i32>();
                        }
                    }
                    for (l, &a) in acc.iter().enumerate().take(lanes) {
                        let o = p * PANEL + l;
                        *dst.add(r * self.out_dim + o) =
                            epilogue(a, sx[r], self.scales[o], self.bias[o]);
                    }
                }
            }
        }
    }
}

/// The float epilogue every kernel repeats in this order: `dot · (s_x · s_w) + bias`.
#[inline(always)]
fn epilogue(dot: i32, sx: f32, sw: f32, bias: f32) -> f32 {
    dot as f32 * (sx * sw) + bias
}

impl CustomOp1 for Int8Weight {
    fn name(&self) -> &'static str {
        "int8-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = (self.in_dim, self.out_dim);
        // SAFETY: `compute_with` writes every one of the `rows × out_dim` outputs, with
        // the kernels `Isa::detect` found on this CPU.
        unsafe {
            linear_fwd(self.name(), dims, storage, layout, |x, rows, dst| {
                self.compute_with(Isa::detect(), x, rows, dst)
            })
        }
    }
}

/// The kernels this CPU can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    #[cfg(all(target_arch = "x86_64", svodka_avx512))]
    Vnni,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Isa {
    /// The best kernels of this CPU, looked up once.
    fn detect() -> Isa {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                let cpu = crate::cpu::features();
                #[cfg(svodka_avx512)]
                if cpu.avx512_vnni() {
                    return Isa::Vnni;
                }
                if cpu.avx2 {
                    return Isa::Avx2;
                }
            }
            Isa::Portable
        })
    }

    /// Every kernel set this CPU can run (for tests).
    #[cfg(test)]
    fn available() -> Vec<Isa> {
        let mut v = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::features().avx2 {
                v.push(Isa::Avx2);
            }
            #[cfg(svodka_avx512)]
            if Isa::detect() == Isa::Vnni {
                v.push(Isa::Vnni);
            }
        }
        v
    }

    /// Rows one kernel call multiplies at once.
    fn max_tile_rows(self) -> usize {
        match self {
            #[cfg(all(target_arch = "x86_64", svodka_avx512))]
            Isa::Vnni => x86::VNNI_ROWS,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::AVX2_ROWS,
            Isa::Portable => 1,
        }
    }

    /// The quantized rows `q [rows, kp]` as the kernels read them: each tile `(r0, n)`
    /// group-major at `r0 · kp` (`[kp / 4][n][4]`), offset to unsigned for VNNI; the
    /// portable kernel reads `q` itself.
    fn pack(self, q: &[i8], kp: usize, tiles: &[(usize, usize)]) -> Vec<u8> {
        let flip = match self {
            Isa::Portable => return Vec::new(),
            #[cfg(all(target_arch = "x86_64", svodka_avx512))]
            Isa::Vnni => 0x80u8,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => 0,
        };
        let mut xp = vec![0u8; q.len()];
        for &(r0, n) in tiles {
            let dst = &mut xp[r0 * kp..(r0 + n) * kp];
            for r in 0..n {
                let row = &q[(r0 + r) * kp..(r0 + r + 1) * kp];
                for (g, xg) in row.chunks_exact(GROUP).enumerate() {
                    let at = (g * n + r) * GROUP;
                    for (d, &v) in dst[at..at + GROUP].iter_mut().zip(xg) {
                        *d = (v as u8) ^ flip;
                    }
                }
            }
        }
        xp
    }
}

#[cfg(test)]
mod tests;
