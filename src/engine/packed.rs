//! Linear layers whose f32 weights are repacked once, at load, for small-batch products.
//!
//! A decoder step multiplies 16–64 rows by every weight matrix, the largest being the
//! 62,518 × 512 output projection. candle's CPU matmul (the `gemm` crate) reaches
//! 40–85 GFLOP/s on those shapes with AVX2 and reads the weight column by column; here
//! the weight is stored as panels of 16 outputs, each panel `in_dim × 16` floats in input
//! order, so that one pass streams it once per call while every row of the batch uses
//! it, with AVX-512 (or AVX2 + FMA) kernels picked at run time. Each output is
//! `bias + Σ_k x[k]·w[k]`, summed in input order with fused multiply-adds.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Storage, Tensor};
use std::sync::Arc;

use super::layers::contiguous_f32;

/// Outputs per panel: one AVX-512 register of f32.
const PANEL: usize = 16;

/// A weight `[out, in]` (and optional bias `[out]`) laid out in panels.
#[derive(Clone)]
pub struct PackedWeight {
    /// `ceil(out / 16)` panels of `in × 16`, the last one padded with zeros.
    panels: Arc<Vec<f32>>,
    bias: Option<Arc<Vec<f32>>>,
    out_dim: usize,
    in_dim: usize,
}

impl std::fmt::Debug for PackedWeight {
    /// The shape only: the panels of an output projection are 32M floats.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedWeight")
            .field("out_dim", &self.out_dim)
            .field("in_dim", &self.in_dim)
            .field("bias", &self.bias.is_some())
            .finish()
    }
}

impl PackedWeight {
    /// Packs a contiguous-or-not f32 CPU weight `[out, in]` and bias `[out]`.
    pub fn new(weight: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Self> {
        let (out_dim, in_dim) = weight.dims2()?;
        let weight = weight.to_dtype(DType::F32)?.contiguous()?;
        let n_panels = out_dim.div_ceil(PANEL);
        let mut panels = vec![0f32; n_panels * in_dim * PANEL];
        let mut pack = |w: &[f32]| {
            for (o, row) in w.chunks_exact(in_dim.max(1)).enumerate() {
                let base = (o / PANEL) * in_dim * PANEL + o % PANEL;
                for (k, &x) in row.iter().enumerate() {
                    panels[base + k * PANEL] = x;
                }
            }
        };
        // Read in place: a copy of a 62,518 × 512 table would raise the peak memory.
        let (storage, layout) = weight.storage_and_layout();
        match (&*storage, layout.contiguous_offsets()) {
            (Storage::Cpu(cpu), Some((start, end))) => pack(&cpu.as_slice::<f32>()?[start..end]),
            _ => {
                drop(storage);
                pack(&weight.flatten_all()?.to_vec1::<f32>()?)
            }
        }
        let bias = match bias {
            Some(b) => {
                let b: Vec<f32> = b.to_dtype(DType::F32)?.to_vec1()?;
                if b.len() != out_dim {
                    candle_core::bail!("packed linear: bias of {} for {out_dim} outputs", b.len());
                }
                Some(Arc::new(b))
            }
            None => None,
        };
        Ok(PackedWeight {
            panels: Arc::new(panels),
            bias,
            out_dim,
            in_dim,
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

    /// Row `o` of the original weight (an embedding lookup when the table is packed).
    pub fn row_into(&self, o: usize, dst: &mut [f32]) {
        let base = (o / PANEL) * self.in_dim * PANEL + o % PANEL;
        for (k, d) in dst.iter_mut().enumerate().take(self.in_dim) {
            *d = self.panels[base + k * PANEL];
        }
    }

    /// `xs [.., in]` (f32, CPU) → `[.., out]`.
    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        xs.contiguous()?.apply_op1_no_bwd(self)
    }

    /// `dst[r, o] = bias[o] + Σ_k x[r, k] · w[o, k]` for `rows` rows of `x`.
    ///
    /// # Safety
    /// `dst` points to room for `rows × out_dim` floats, every one of which is written.
    unsafe fn compute(&self, x: &[f32], rows: usize, dst: *mut f32) {
        self.compute_with(Isa::detect(), x, rows, dst);
    }

    /// [`PackedWeight::compute`] with the kernels of `isa`, which the CPU must have.
    ///
    /// # Safety
    /// As for [`PackedWeight::compute`].
    unsafe fn compute_with(&self, isa: Isa, x: &[f32], rows: usize, dst: *mut f32) {
        let tiles = row_tiles(rows, isa.max_tile_rows());
        let xp = if isa == Isa::Portable {
            Vec::new()
        } else {
            pack_rows(x, self.in_dim, &tiles)
        };
        let dst_ptr = SendPtr(dst);
        let work = rows * self.out_dim * self.in_dim;
        by_panels(self.out_dim.div_ceil(PANEL), work, 1 << 20, |p0, p1| {
            let dst = dst_ptr.get();
            // SAFETY: threads write disjoint output columns of `dst`, which outlives them;
            // the kernels run only where `Isa::detect` found their instructions.
            unsafe {
                match isa {
                    #[cfg(all(target_arch = "x86_64", svodka_avx512))]
                    Isa::Avx512 => x86::panels_avx512(self, &xp, &tiles, dst, p0, p1),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => x86::panels_avx2(self, &xp, &tiles, dst, p0, p1),
                    Isa::Portable => self.panels_scalar(x, rows, dst, p0, p1),
                }
            }
        });
    }

    /// Output columns of panels `[p0, p1)` for every row, without SIMD kernels.
    ///
    /// # Safety
    /// `dst` points to `rows × out_dim` floats; no other thread writes these columns.
    unsafe fn panels_scalar(&self, x: &[f32], rows: usize, dst: *mut f32, p0: usize, p1: usize) {
        let k = self.in_dim;
        for p in p0..p1 {
            let w = &self.panels[p * k * PANEL..(p + 1) * k * PANEL];
            let lanes = (self.out_dim - p * PANEL).min(PANEL);
            for r in 0..rows {
                let xr = &x[r * k..(r + 1) * k];
                let mut acc = [0f32; PANEL];
                for (kk, &xv) in xr.iter().enumerate() {
                    let wk = &w[kk * PANEL..(kk + 1) * PANEL];
                    for (a, &wv) in acc.iter_mut().zip(wk) {
                        *a = xv.mul_add(wv, *a);
                    }
                }
                for (l, &a) in acc.iter().enumerate().take(lanes) {
                    let o = p * PANEL + l;
                    *dst.add(r * self.out_dim + o) = a + self.bias_at(o);
                }
            }
        }
    }

    #[inline(always)]
    fn bias_at(&self, o: usize) -> f32 {
        self.bias.as_ref().map_or(0.0, |b| b[o])
    }
}

impl CustomOp1 for PackedWeight {
    fn name(&self) -> &'static str {
        "packed-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = (self.in_dim, self.out_dim);
        // SAFETY: `compute` writes every one of the `rows × out_dim` outputs.
        unsafe {
            linear_fwd(self.name(), dims, storage, layout, |x, rows, dst| {
                self.compute(x, rows, dst)
            })
        }
    }
}

/// The kernels this CPU can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    #[cfg(all(target_arch = "x86_64", svodka_avx512))]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Isa {
    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            let cpu = crate::cpu::features();
            #[cfg(svodka_avx512)]
            if cpu.avx512f {
                return Isa::Avx512;
            }
            if cpu.avx2_fma() {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Rows one kernel call multiplies at once.
    fn max_tile_rows(self) -> usize {
        match self {
            #[cfg(all(target_arch = "x86_64", svodka_avx512))]
            Isa::Avx512 => 12,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => 6,
            Isa::Portable => 1,
        }
    }
}

/// `(first row, rows)` of `ceil(rows / max)` tiles of near-equal size (64 rows in tiles
/// of at most 12: 11, 11, 11, 11, 10, 10, not five of 12 and one of 4).
pub(crate) fn row_tiles(rows: usize, max: usize) -> Vec<(usize, usize)> {
    let n = rows.div_ceil(max.max(1));
    let mut tiles = Vec::with_capacity(n);
    let mut r0 = 0;
    for t in 0..n {
        let len = rows / n + usize::from(t < rows % n);
        tiles.push((r0, len));
        r0 += len;
    }
    tiles
}

/// `x [rows, k]` with each tile `(r0, n)` rewritten input-major (`[k, n]`, at `r0 × k`),
/// so that a kernel reads the tile's inputs for one `k` from one place.
fn pack_rows(x: &[f32], k: usize, tiles: &[(usize, usize)]) -> Vec<f32> {
    let mut xp = vec![0f32; x.len()];
    for &(r0, n) in tiles {
        let src = &x[r0 * k..(r0 + n) * k];
        let dst = &mut xp[r0 * k..(r0 + n) * k];
        for (r, row) in src.chunks_exact(k).enumerate() {
            for (kk, &v) in row.iter().enumerate() {
                dst[kk * n + r] = v;
            }
        }
    }
    xp
}

/// Runs `run(p0, p1)` over the output panels `[0, n_panels)`: at once on this thread
/// when `work` (multiply-adds) is under `min_work`, else in panel pairs split evenly
/// between up to rayon's threads, one range each, this thread taking the first. Each
/// output is computed by one thread whatever the split, so results do not depend on it.
pub(crate) fn by_panels(
    n_panels: usize,
    work: usize,
    min_work: usize,
    run: impl Fn(usize, usize) + Sync,
) {
    let threads = if work < min_work {
        1
    } else {
        rayon::current_num_threads().clamp(1, n_panels.div_ceil(2))
    };
    let range = |t: usize| {
        let pairs = n_panels.div_ceil(2);
        let p0 = (pairs * t / threads * 2).min(n_panels);
        let p1 = (pairs * (t + 1) / threads * 2).min(n_panels);
        run(p0, p1)
    };
    if threads == 1 {
        range(0);
    } else {
        rayon::scope(|s| {
            for t in 1..threads {
                let range = &range;
                s.spawn(move |_| range(t));
            }
            range(0);
        });
    }
}

/// The `cpu_fwd` of a linear layer `in_dim → out_dim` (`dims`): contiguous f32 input
/// `[.., in_dim]` to `[.., out_dim]`, which `compute(x, rows, dst)` writes into memory
/// left unset (zeroing it first cost a 16 MB memset per decoder step for the
/// vocabulary).
///
/// # Safety
/// `compute` writes every one of the `rows × out_dim` floats at `dst`.
pub(crate) unsafe fn linear_fwd(
    op: &'static str,
    (in_dim, out_dim): (usize, usize),
    storage: &CpuStorage,
    layout: &Layout,
    compute: impl FnOnce(&[f32], usize, *mut f32),
) -> candle_core::Result<(CpuStorage, Shape)> {
    let x = contiguous_f32(op, storage, layout)?;
    let dims = layout.shape().dims();
    if dims.last() != Some(&in_dim) {
        candle_core::bail!("{op}: input {dims:?} for {in_dim} inputs");
    }
    let rows = x.len() / in_dim;
    let n = rows * out_dim;
    let mut out: Vec<f32> = Vec::with_capacity(n);
    compute(x, rows, out.as_mut_ptr());
    // SAFETY: `compute` wrote all `n` (the caller's promise).
    out.set_len(n);
    let mut shape = dims.to_vec();
    *shape.last_mut().expect("checked above") = out_dim;
    Ok((CpuStorage::F32(out), Shape::from(shape)))
}

/// Calls the kernel `$f::<R>` made for tiles of `R = $n` rows (1 to 12, at most `$max`),
/// so that the tile height is a constant and its accumulators stay in registers.
#[cfg(target_arch = "x86_64")]
macro_rules! by_rows {
    ($max:expr, $n:expr, $f:ident, $($arg:expr),*) => {
        match $n {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 if $max >= 5 => $f::<5>($($arg),*),
            6 if $max >= 6 => $f::<6>($($arg),*),
            7 if $max >= 7 => $f::<7>($($arg),*),
            8 if $max >= 8 => $f::<8>($($arg),*),
            9 if $max >= 9 => $f::<9>($($arg),*),
            10 if $max >= 10 => $f::<10>($($arg),*),
            11 if $max >= 11 => $f::<11>($($arg),*),
            12 if $max >= 12 => $f::<12>($($arg),*),
            _ => unreachable!("tile of {} rows", $n),
        }
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use by_rows;

/// An output pointer handed to scoped worker threads that write disjoint parts of it.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: used only to hand disjoint output columns to scoped worker threads.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{PackedWeight, PANEL};
    use std::arch::x86_64::*;

    #[cfg(svodka_avx512)]
    #[allow(clippy::incompatible_msrv)] // only built by Rust >= 1.89, see build.rs
    /// Rows per AVX-512 tile: 2 panels × 12 rows = 24 accumulators of the 32 registers.
    const R512: usize = 12;
    /// Rows per AVX2 tile: 1 panel (2 registers) × 6 rows = 12 of the 16 registers.
    const R256: usize = 6;

    #[cfg(svodka_avx512)]
    #[allow(clippy::incompatible_msrv)] // only built by Rust >= 1.89, see build.rs
    /// Stores one panel's accumulators: `dst[r, o0 + l] = acc[l] + bias[o0 + l]` for the
    /// panel's `lanes` valid outputs.
    #[inline(always)]
    unsafe fn store512(w: &PackedWeight, acc: __m512, dst: *mut f32, o0: usize) {
        let lanes = (w.out_dim - o0).min(PANEL);
        let mask: __mmask16 = if lanes == PANEL {
            0xffff
        } else {
            ((1u32 << lanes) - 1) as __mmask16
        };
        let bias = match &w.bias {
            Some(b) => _mm512_maskz_loadu_ps(mask, b.as_ptr().add(o0)),
            None => _mm512_setzero_ps(),
        };
        _mm512_mask_storeu_ps(dst.add(o0), mask, _mm512_add_ps(acc, bias));
    }

    /// Prefetches, spread over the `k` steps of a tile, `lines` cache lines from `from`:
    /// the share of the next panels this tile brings in while it works on its own.
    struct Prefetch {
        from: *const i8,
        lines: usize,
    }

    impl Prefetch {
        /// The lines of panels `[p, p + n)` that tile `t` of `tiles` prefetches.
        unsafe fn share(w: &PackedWeight, p: usize, n: usize, t: usize, tiles: usize) -> Self {
            let k = w.in_dim;
            let total = n * k;
            let first = total * t / tiles;
            let last = total * (t + 1) / tiles;
            Prefetch {
                from: w.panels.as_ptr().add(p * k * PANEL + first * PANEL) as *const i8,
                lines: last - first,
            }
        }
    }

    macro_rules! prefetch_step {
        ($pf:expr, $line:ident, $owed:ident, $k:expr) => {
            $owed += $pf.lines;
            while $owed >= $k {
                _mm_prefetch::<_MM_HINT_T0>($line);
                $line = $line.wrapping_add(64);
                $owed -= $k;
            }
        };
    }

    #[cfg(svodka_avx512)]
    #[allow(clippy::incompatible_msrv)] // only built by Rust >= 1.89, see build.rs
    #[target_feature(enable = "avx512f")]
    unsafe fn tile512_pair<const R: usize>(
        w: &PackedWeight,
        x: *const f32,
        dst: *mut f32,
        p: usize,
        pf: Prefetch,
    ) {
        let k = w.in_dim;
        let w0 = w.panels.as_ptr().add(p * k * PANEL);
        let w1 = w0.add(k * PANEL);
        let mut acc0 = [_mm512_setzero_ps(); R];
        let mut acc1 = [_mm512_setzero_ps(); R];
        let (mut line, mut owed) = (pf.from, 0usize);
        for kk in 0..k {
            prefetch_step!(pf, line, owed, k);
            let a = _mm512_loadu_ps(w0.add(kk * PANEL));
            let b = _mm512_loadu_ps(w1.add(kk * PANEL));
            let xk = x.add(kk * R);
            for r in 0..R {
                let xv = _mm512_set1_ps(*xk.add(r));
                acc0[r] = _mm512_fmadd_ps(xv, a, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(xv, b, acc1[r]);
            }
        }
        for r in 0..R {
            let row = dst.add(r * w.out_dim);
            store512(w, acc0[r], row, p * PANEL);
            store512(w, acc1[r], row, (p + 1) * PANEL);
        }
    }

    #[cfg(svodka_avx512)]
    #[allow(clippy::incompatible_msrv)] // only built by Rust >= 1.89, see build.rs
    #[target_feature(enable = "avx512f")]
    unsafe fn tile512_single<const R: usize>(
        w: &PackedWeight,
        x: *const f32,
        dst: *mut f32,
        p: usize,
        pf: Prefetch,
    ) {
        let k = w.in_dim;
        let w0 = w.panels.as_ptr().add(p * k * PANEL);
        let mut acc = [_mm512_setzero_ps(); R];
        let (mut line, mut owed) = (pf.from, 0usize);
        for kk in 0..k {
            prefetch_step!(pf, line, owed, k);
            let a = _mm512_loadu_ps(w0.add(kk * PANEL));
            let xk = x.add(kk * R);
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(*xk.add(r));
                *acc = _mm512_fmadd_ps(xv, a, *acc);
            }
        }
        for (r, &acc) in acc.iter().enumerate() {
            store512(w, acc, dst.add(r * w.out_dim), p * PANEL);
        }
    }

    #[cfg(svodka_avx512)]
    #[allow(clippy::incompatible_msrv)] // only built by Rust >= 1.89, see build.rs
    /// Panels `[p0, p1)`, two at a time, for every tile of the tile-packed rows `xp`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn panels_avx512(
        w: &PackedWeight,
        xp: &[f32],
        tiles: &[(usize, usize)],
        dst: *mut f32,
        p0: usize,
        p1: usize,
    ) {
        let k = w.in_dim;
        let mut p = p0;
        while p < p1 {
            let step = if p + 1 < p1 { 2 } else { 1 };
            let next = (p1 - (p + step)).min(2);
            for (t, &(r0, n)) in tiles.iter().enumerate() {
                let xr = xp.as_ptr().add(r0 * k);
                let dr = dst.add(r0 * w.out_dim);
                let pf = Prefetch::share(w, p + step, next, t, tiles.len());
                if step == 2 {
                    by_rows!(R512, n, tile512_pair, w, xr, dr, p, pf);
                } else {
                    by_rows!(R512, n, tile512_single, w, xr, dr, p, pf);
                }
            }
            p += step;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile256<const R: usize>(
        w: &PackedWeight,
        x: *const f32,
        dst: *mut f32,
        p: usize,
        pf: Prefetch,
    ) {
        let k = w.in_dim;
        let w0 = w.panels.as_ptr().add(p * k * PANEL);
        let mut lo = [_mm256_setzero_ps(); R];
        let mut hi = [_mm256_setzero_ps(); R];
        let (mut line, mut owed) = (pf.from, 0usize);
        for kk in 0..k {
            prefetch_step!(pf, line, owed, k);
            let a = _mm256_loadu_ps(w0.add(kk * PANEL));
            let b = _mm256_loadu_ps(w0.add(kk * PANEL + 8));
            let xk = x.add(kk * R);
            for r in 0..R {
                let xv = _mm256_broadcast_ss(&*xk.add(r));
                lo[r] = _mm256_fmadd_ps(xv, a, lo[r]);
                hi[r] = _mm256_fmadd_ps(xv, b, hi[r]);
            }
        }
        let o0 = p * PANEL;
        let lanes = (w.out_dim - o0).min(PANEL);
        for r in 0..R {
            let mut buf = [0f32; PANEL];
            _mm256_storeu_ps(buf.as_mut_ptr(), lo[r]);
            _mm256_storeu_ps(buf.as_mut_ptr().add(8), hi[r]);
            let row = dst.add(r * w.out_dim);
            for (l, &v) in buf.iter().enumerate().take(lanes) {
                *row.add(o0 + l) = v + w.bias_at(o0 + l);
            }
        }
    }

    /// Panels `[p0, p1)`, one at a time, for every tile of the tile-packed rows `xp`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn panels_avx2(
        w: &PackedWeight,
        xp: &[f32],
        tiles: &[(usize, usize)],
        dst: *mut f32,
        p0: usize,
        p1: usize,
    ) {
        let k = w.in_dim;
        for p in p0..p1 {
            let next = usize::from(p + 1 < p1);
            for (t, &(r0, n)) in tiles.iter().enumerate() {
                let xr = xp.as_ptr().add(r0 * k);
                let dr = dst.add(r0 * w.out_dim);
                let pf = Prefetch::share(w, p + 1, next, t, tiles.len());
                by_rows!(R256, n, tile256, w, xr, dr, p, pf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn reference(x: &[f32], rows: usize, w: &[f32], b: &[f32], out: usize, k: usize) -> Vec<f32> {
        let mut y = vec![0f32; rows * out];
        for r in 0..rows {
            for o in 0..out {
                let s: f64 = (0..k)
                    .map(|i| x[r * k + i] as f64 * w[o * k + i] as f64)
                    .sum();
                y[r * out + o] = (s + b[o] as f64) as f32;
            }
        }
        y
    }

    fn data(n: usize, seed: u64) -> Vec<f32> {
        crate::testing::Lcg::new(seed).values(n)
    }

    /// Every tile shape (pairs, single panels, partial panels, row remainders) and the
    /// threaded split must give the plain product.
    #[test]
    fn matches_plain_product() {
        let dev = Device::Cpu;
        for &(rows, out, k) in &[
            (1, 1, 1),
            (3, 17, 5),
            (13, 40, 33),
            (25, 70, 64),
            (64, 1000, 512),
            (30, 2100, 300),
        ] {
            let w = data(out * k, 1 + out as u64);
            let b = data(out, 7);
            let x = data(rows * k, 3 + rows as u64);
            let wt = Tensor::from_vec(w.clone(), (out, k), &dev).unwrap();
            let bt = Tensor::from_vec(b.clone(), out, &dev).unwrap();
            let xt = Tensor::from_vec(x.clone(), (1, rows, k), &dev).unwrap();
            let packed = PackedWeight::new(&wt, Some(&bt)).unwrap();
            let y = packed.forward(&xt).unwrap();
            assert_eq!(y.dims(), &[1, rows, out]);
            let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
            let want = reference(&x, rows, &w, &b, out, k);
            for (a, e) in y.iter().zip(&want) {
                assert!((a - e).abs() < 1e-4, "{rows}×{out}×{k}: {a} vs {e}");
            }
            let mut row = vec![0f32; k];
            packed.row_into(out - 1, &mut row);
            assert_eq!(row, w[(out - 1) * k..]);
            // Every kernel the machine has agrees with the portable one.
            let mut portable = vec![0f32; rows * out];
            unsafe { packed.compute_with(Isa::Portable, &x, rows, portable.as_mut_ptr()) };
            for (a, e) in y.iter().zip(&portable) {
                assert!((a - e).abs() < 1e-5, "{rows}×{out}×{k}: {a} vs {e}");
            }
            #[cfg(target_arch = "x86_64")]
            if crate::cpu::features().avx2_fma() {
                let mut avx2 = vec![0f32; rows * out];
                unsafe { packed.compute_with(Isa::Avx2, &x, rows, avx2.as_mut_ptr()) };
                assert_eq!(avx2, portable, "{rows}×{out}×{k}");
            }
        }
    }
}
