//! Decoding with a [`MarianModel`]: the cross-attention state per source, the growing
//! self-attention caches, reordering them in place as beams move, and the decoder step
//! [`crate::decode`] drives.

use candle_core::{CpuStorage, DType, Device, InplaceOp1, Layout, Tensor};

use super::layers::attend;
use super::MarianModel;
use crate::decode::StepModel;
use crate::{Error, Result};

/// Cross-attention keys, values and padding mask for a batch of sources.
#[derive(Debug, Clone)]
pub(super) struct CrossKv {
    pub(super) k: Vec<Tensor>,
    pub(super) v: Vec<Tensor>,
    pub(super) mask: Tensor,
}

impl CrossKv {
    pub(super) fn select(&self, idx: &Tensor) -> Result<CrossKv> {
        let pick = |ts: &[Tensor]| -> Result<Vec<Tensor>> {
            ts.iter().map(|t| Ok(t.index_select(idx, 0)?)).collect()
        };
        Ok(CrossKv {
            k: pick(&self.k)?,
            v: pick(&self.v)?,
            mask: self.mask.index_select(idx, 0)?,
        })
    }
}

/// Self-attention keys and values of one decoder layer, `[rows, heads, capacity, hd]`,
/// of which the first `pos` positions are filled; capacity doubles as needed.
#[derive(Debug, Clone)]
pub(super) struct KvCache {
    pub(super) k: Tensor,
    pub(super) v: Tensor,
}

/// A batch being decoded by a [`MarianModel`]: the encoder's keys and values per source
/// and the decoder's self-attention cache per row.
#[derive(Debug)]
pub struct MarianDecoding<'m> {
    pub(super) model: &'m MarianModel,
    /// Cross-attention state for every source of the batch, as encoded.
    pub(super) all_sources: CrossKv,
    /// Cross-attention state for `sources`, one entry per group of rows.
    pub(super) cross: CrossKv,
    /// Source index of each cross entry.
    pub(super) sources: Vec<u32>,
    /// Source index of each row.
    pub(super) row_source: Vec<u32>,
    pub(super) cache: Vec<Option<KvCache>>,
    pub(super) pos: usize,
}

impl MarianDecoding<'_> {
    /// Writes this step's keys and values `[rows, heads, 1, hd]` of `layer` at the current
    /// position and returns views of all positions so far.
    pub(super) fn append(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let pos = self.pos;
        let rows = k.dim(0)?;
        let cache = match self.cache[layer].take() {
            Some(c) if pos < c.k.dim(2)? => c,
            old => {
                // Doubling keeps the copies (and what a reorder moves) within 2× the
                // filled part.
                let (_, heads, _, hd) = k.dims4()?;
                let cap = match &old {
                    Some(c) => c.k.dim(2)? * 2,
                    None => 16,
                };
                let zeros = || Tensor::zeros((rows, heads, cap, hd), k.dtype(), k.device());
                let grown = KvCache {
                    k: zeros()?,
                    v: zeros()?,
                };
                if let Some(c) = old {
                    grown.k.slice_set(&c.k.narrow(0, 0, rows)?, 2, 0)?;
                    grown.v.slice_set(&c.v.narrow(0, 0, rows)?, 2, 0)?;
                }
                grown
            }
        };
        // The buffers may hold more rows than are live (rows that left the batch).
        let (kb, vb) = (cache.k.narrow(0, 0, rows)?, cache.v.narrow(0, 0, rows)?);
        kb.slice_set(&k.contiguous()?, 2, pos)?;
        vb.slice_set(&v.contiguous()?, 2, pos)?;
        let out = (kb.narrow(2, 0, pos + 1)?, vb.narrow(2, 0, pos + 1)?);
        self.cache[layer] = Some(cache);
        Ok(out)
    }
}

/// Rearranges the rows of a self-attention cache `[buffer rows, heads, capacity, hd]` in
/// place: row `i` becomes old row `rows[i]`, for the first `filled` positions only, and
/// rows that keep their place are not touched (beams mostly do).
pub(super) struct ReorderRows<'a> {
    pub(super) rows: &'a [u32],
    pub(super) filled: usize,
}

impl InplaceOp1 for ReorderRows<'_> {
    fn name(&self) -> &'static str {
        "marian-reorder-rows"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or(candle_core::Error::RequiresContiguous { op: "reorder-rows" })?;
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("reorder-rows: f32 only");
        };
        let data = &mut data[start..end];
        let (buffer_rows, heads, cap, hd) = layout.shape().dims4()?;
        if self.rows.len() > buffer_rows
            || self.filled > cap
            || self.rows.iter().any(|&r| r as usize >= buffer_rows)
        {
            candle_core::bail!("reorder-rows: {:?} of {buffer_rows} rows", self.rows);
        }
        let (row_len, head_len, seg) = (heads * cap * hd, cap * hd, self.filled * hd);
        let moved: Vec<(usize, usize)> = self
            .rows
            .iter()
            .enumerate()
            .filter(|&(i, &r)| r as usize != i)
            .map(|(i, &r)| (i, r as usize))
            .collect();
        // Sources first, then destinations: a destination may be another's source.
        let mut held = Vec::with_capacity(moved.len() * heads * seg);
        for &(_, from) in &moved {
            for h in 0..heads {
                let at = from * row_len + h * head_len;
                held.extend_from_slice(&data[at..at + seg]);
            }
        }
        for (chunk, &(to, _)) in held.chunks_exact(heads * seg.max(1)).zip(&moved) {
            for (h, part) in chunk.chunks_exact(seg.max(1)).enumerate() {
                let at = to * row_len + h * head_len;
                data[at..at + part.len()].copy_from_slice(part);
            }
        }
        Ok(())
    }
}

/// Runs `f` on a thread of rayon's pool when the model computes on the CPU, so that the
/// parallel operations inside it (candle's and the packed products, dozens per decoder
/// step) start from a pool thread rather than each handing its work over to the pool
/// and putting the caller to sleep until it is done.
pub(super) fn on_pool<T: Send>(device: &Device, f: impl FnOnce() -> T + Send) -> T {
    if device.is_cpu() && rayon::current_thread_index().is_none() {
        rayon::scope(|_| f())
    } else {
        f()
    }
}

impl StepModel for MarianDecoding<'_> {
    fn step(&mut self, last_tokens: &[u32]) -> Result<Tensor> {
        on_pool(&self.model.device, || self.step_here(last_tokens))
    }

    fn reorder(&mut self, rows: &[u32]) -> Result<()> {
        self.reorder_here(rows)
    }
}

impl MarianDecoding<'_> {
    pub(super) fn step_here(&mut self, last_tokens: &[u32]) -> Result<Tensor> {
        let model = self.model;
        let rows = last_tokens.len();
        if rows != self.row_source.len() {
            return Err(Error::Model(format!(
                "decoder step got {rows} tokens for {} rows",
                self.row_source.len()
            )));
        }
        let ids = Tensor::from_vec(last_tokens.to_vec(), (rows, 1), &model.device)?;
        let mut xs = model.embed(&model.dec_embed, &ids, self.pos)?;
        let d = model.cfg.d_model;
        for (i, layer) in model.decoder.iter().enumerate() {
            let (q, k, v) = layer.self_attn.project(&xs)?;
            let (kc, vc) = self.append(i, &k, &v)?;
            // One query position: [rows, heads, 1, hd] is already [rows, 1, d] in memory.
            let ctx = attend(&q, &kc, &vc, None)?.reshape((rows, 1, d))?;
            let attn = layer.self_attn.out.forward(&ctx)?;
            xs = layer.finish(&xs, &attn, &self.cross, i)?;
        }
        self.pos += 1;
        Ok(model.logits(&xs)?.squeeze(1)?)
    }

    pub(super) fn reorder_here(&mut self, rows: &[u32]) -> Result<()> {
        let row_source = rows
            .iter()
            .map(|&r| {
                self.row_source.get(r as usize).copied().ok_or_else(|| {
                    Error::Model(format!("reorder: row {r} of {}", self.row_source.len()))
                })
            })
            .collect::<Result<Vec<u32>>>()?;
        let dev = &self.model.device;
        let idx = Tensor::from_vec(rows.to_vec(), rows.len(), dev)?;
        let live = self.row_source.len();
        for entry in self.cache.iter_mut().flatten() {
            let in_place = entry.k.device().is_cpu()
                && entry.k.dtype() == DType::F32
                && rows.len() <= entry.k.dim(0)?;
            if in_place {
                let op = ReorderRows {
                    rows,
                    filled: self.pos,
                };
                entry.k.inplace_op1(&op)?;
                entry.v.inplace_op1(&op)?;
            } else {
                entry.k = entry.k.narrow(0, 0, live)?.index_select(&idx, 0)?;
                entry.v = entry.v.narrow(0, 0, live)?.index_select(&idx, 0)?;
            }
        }
        let sources = group_sources(&row_source);
        if sources != self.sources {
            let idx = Tensor::from_vec(sources.clone(), sources.len(), dev)?;
            self.cross = self.all_sources.select(&idx)?;
            self.sources = sources;
        }
        self.row_source = row_source;
        Ok(())
    }
}

/// The cross-attention entries rows need: one per run of equal sources when every run
/// has the same length (beams of a sentence sit together), else one per row.
pub(super) fn group_sources(row_source: &[u32]) -> Vec<u32> {
    let mut runs: Vec<(u32, usize)> = Vec::new();
    for &s in row_source {
        match runs.last_mut() {
            Some((last, n)) if *last == s => *n += 1,
            _ => runs.push((s, 1)),
        }
    }
    let uniform = runs.windows(2).all(|w| w[0].1 == w[1].1);
    let mut distinct: Vec<u32> = runs.iter().map(|r| r.0).collect();
    distinct.sort_unstable();
    distinct.dedup();
    if uniform && distinct.len() == runs.len() {
        runs.into_iter().map(|r| r.0).collect()
    } else {
        row_source.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reorder_rows_in_place_moves_only_filled_positions() {
        // 3 rows × 2 heads × capacity 3 × hd 2; value = 100·row + 10·head + position.
        let data: Vec<f32> = (0..3 * 2 * 3 * 2)
            .map(|i| {
                let (row, head, pos) = (i / 12, (i / 6) % 2, (i / 2) % 3);
                (100 * row + 10 * head + pos) as f32
            })
            .collect();
        let t = Tensor::from_vec(data, (3, 2, 3, 2), &Device::Cpu).unwrap();
        t.inplace_op1(&ReorderRows {
            rows: &[2, 2, 0],
            filled: 2,
        })
        .unwrap();
        let got: Vec<Vec<Vec<Vec<f32>>>> = (0..3)
            .map(|r| t.get(r).unwrap().to_vec3::<f32>().unwrap())
            .collect();
        for (row, from) in [(0usize, 2usize), (1, 2), (2, 0)] {
            for (head, positions) in got[row].iter().enumerate() {
                for (pos, values) in positions.iter().enumerate() {
                    // Unfilled positions keep what they had.
                    let src = if pos < 2 { from } else { row };
                    let want = (100 * src + 10 * head + pos) as f32;
                    assert_eq!(values, &vec![want; 2], "{row} {head} {pos}");
                }
            }
        }
    }

    #[test]
    fn group_sources_finds_uniform_runs() {
        assert_eq!(group_sources(&[0, 0, 2, 2]), vec![0, 2]);
        assert_eq!(group_sources(&[1, 0]), vec![1, 0]);
        assert_eq!(group_sources(&[0, 0, 1]), vec![0, 0, 1]);
        assert_eq!(group_sources(&[0, 1, 0, 1]), vec![0, 1, 0, 1]);
    }
}
