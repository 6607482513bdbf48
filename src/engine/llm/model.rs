//! Quantized GGUF language models (Gemma 3, Qwen2/2.5, Qwen3, Llama) on candle ops.
//!
//! One decoder implementation covers the four families; they differ in a handful of
//! switches read from the GGUF metadata ([`LlmConfig`]). We do not use
//! candle-transformers' quantized models because they fall short of llama.cpp parity:
//! its Gemma 3 gates the FFN with SiLU where Gemma 3 uses tanh-GELU, ignores the sliding
//! window once generation passes it, masks out the cache on chunked prefill, returns
//! only the last position's logits, and dequantizes the whole embedding table (670 MB
//! for Gemma's 262k vocabulary) where a row lookup on the quantized table suffices.

use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Module, Tensor, D};
use candle_transformers::quantized_nn::RmsNorm;

use super::config::LlmConfig;
use super::file::GgufFile;
use super::ggml;
use super::proj::GgufProj;
use crate::engine::layers::Activation;
use crate::{Error, Result};

/// Cosine and sine tables of rotary embeddings for one base frequency.
#[derive(Debug, Clone)]
struct Rope {
    cos: Tensor,
    sin: Tensor,
    /// The same tables on the host, for ggml's arithmetic on the CPU.
    host: Option<(Vec<f32>, Vec<f32>)>,
}

impl Rope {
    fn new(
        base: f32,
        scale: f32,
        head_dim: usize,
        factors: Option<&[f32]>,
        max_pos: usize,
        device: &Device,
    ) -> Result<Rope> {
        // The angles as ggml's rope cache computes them: the frequency by repeated f32
        // multiplication, not by powf, which moves late positions by ~1e-4 rad.
        let half = head_dim / 2;
        let theta_scale = base.powf(-2.0 / head_dim as f32);
        let (mut cos, mut sin) = (
            Vec::with_capacity(max_pos * half),
            Vec::with_capacity(max_pos * half),
        );
        for pos in 0..max_pos {
            let mut theta = pos as f32;
            for i in 0..half {
                let t = scale * (theta / factors.map_or(1.0, |fs| fs[i]));
                cos.push(t.cos());
                sin.push(t.sin());
                theta *= theta_scale;
            }
        }
        Ok(Rope {
            cos: Tensor::from_vec(cos.clone(), (max_pos, half), device)?,
            sin: Tensor::from_vec(sin.clone(), (max_pos, half), device)?,
            host: device.is_cpu().then_some((cos, sin)),
        })
    }

    /// Rotates `x` laid out as (batch, seq, heads, head_dim) for positions from `offset`.
    fn apply(&self, x: &Tensor, offset: usize, interleaved: bool) -> Result<Tensor> {
        let seq = x.dim(1)?;
        if let Some((cos, sin)) = &self.host {
            let (_, _, heads, hd) = x.dims4()?;
            let mut data = x.flatten_all()?.to_vec1::<f32>()?;
            ggml::rope(&mut data, heads, hd, offset, cos, sin, interleaved);
            return Ok(Tensor::from_vec(data, x.shape(), x.device())?);
        }
        let cos = self.cos.narrow(0, offset, seq)?;
        let sin = self.sin.narrow(0, offset, seq)?;
        let x = x.contiguous()?;
        Ok(if interleaved {
            // rope_i wants (batch, heads, seq, dim).
            let t = x.transpose(1, 2)?.contiguous()?;
            candle_nn::rotary_emb::rope_i(&t, &cos, &sin)?.transpose(1, 2)?
        } else {
            candle_nn::rotary_emb::rope_thd(&x, &cos, &sin)?
        })
    }
}

#[derive(Debug, Clone)]
struct Layer {
    attn_norm: Norm,
    wq: GgufProj,
    wk: GgufProj,
    wv: GgufProj,
    wo: GgufProj,
    bq: Option<Tensor>,
    bk: Option<Tensor>,
    bv: Option<Tensor>,
    q_norm: Option<Norm>,
    k_norm: Option<Norm>,
    post_attn_norm: Option<Norm>,
    ffn_norm: Norm,
    post_ffn_norm: Option<Norm>,
    gate: GgufProj,
    up: GgufProj,
    down: GgufProj,
    window: Option<usize>,
    rope: Arc<Rope>,
    cache: KvCache,
}

/// A layer's keys and values: candle's cache on accelerators; on the CPU llama.cpp's
/// f16 cache, which attention reads in place.
#[derive(Debug, Clone)]
enum KvCache {
    Device(candle_nn::kv_cache::KvCache),
    Host(ggml::HostKv),
}

/// Reads tensors of one GGUF file.
struct Loader<'a> {
    file: &'a GgufFile,
    device: &'a Device,
}

impl Loader<'_> {
    fn has(&self, name: &str) -> bool {
        self.file.content.tensor_infos.contains_key(name)
    }

    fn qtensor(&mut self, name: &str) -> Result<QTensor> {
        self.file.qtensor(name, self.device)
    }

    /// A weight matrix; on the CPU read where it lies in the mapped file when ggml's
    /// arithmetic covers its type.
    fn matmul(&mut self, name: &str) -> Result<GgufProj> {
        let named = |e: Error| Error::Model(format!("GGUF tensor {name}: {e}"));
        if self.device.is_cpu() {
            let info = self.file.info(name)?;
            let (n, k) = info.shape.dims2().map_err(|e| named(e.into()))?;
            let (bytes, range) = self.file.region(name)?;
            if let Some(g) =
                ggml::GgmlMatMul::in_place(info.ggml_dtype, n, k, bytes, range).map_err(named)?
            {
                return Ok(GgufProj::Ggml(Arc::new(g)));
            }
        }
        let t = self.qtensor(name)?;
        GgufProj::new(t, self.device).map_err(named)
    }

    fn norm(&mut self, name: &str, eps: f64) -> Result<Norm> {
        let t = self.qtensor(name)?;
        let weight = if self.device.is_cpu() {
            Some(t.dequantize(self.device)?.flatten_all()?.to_vec1::<f32>()?)
        } else {
            None
        };
        Ok(Norm {
            inner: RmsNorm::from_qtensor(t, eps)?,
            weight,
            eps: eps as f32,
        })
    }

    fn opt_norm(&mut self, name: &str, eps: f64) -> Result<Option<Norm>> {
        if self.has(name) {
            self.norm(name, eps).map(Some)
        } else {
            Ok(None)
        }
    }

    fn opt_dense(&mut self, name: &str) -> Result<Option<Tensor>> {
        if self.has(name) {
            Ok(Some(self.qtensor(name)?.dequantize(self.device)?))
        } else {
            Ok(None)
        }
    }
}

/// RMS norm with its weight: ggml's arithmetic on the CPU, candle's elsewhere.
#[derive(Debug, Clone)]
struct Norm {
    inner: RmsNorm,
    /// The weight on the host, when the model runs on the CPU.
    weight: Option<Vec<f32>>,
    eps: f32,
}

impl Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.weight {
            Some(w) => {
                let data = x.flatten_all()?.to_vec1::<f32>()?;
                let mut out = vec![0f32; data.len()];
                ggml::rms_norm(&data, w, self.eps, &mut out);
                Ok(Tensor::from_vec(out, x.shape(), x.device())?)
            }
            None => Ok(self.inner.forward(x)?),
        }
    }
}

/// A GGUF decoder-only language model with its key/value caches.
pub struct LlmModel {
    config: LlmConfig,
    embeddings: GgufProj,
    layers: Vec<Layer>,
    norm: Norm,
    /// The output projection; `None` when tied to the embeddings.
    output: Option<GgufProj>,
    device: Device,
    /// Positions already in the caches.
    pos: usize,
    /// Longest sequence the rotary tables cover.
    max_pos: usize,
}

impl LlmModel {
    /// Builds the model from an opened GGUF `file`. `max_pos` bounds the sequence
    /// length (prompt + generation).
    pub fn from_gguf(file: &GgufFile, device: &Device, max_pos: usize) -> Result<LlmModel> {
        let config = LlmConfig::from_gguf(&file.content)?;
        let max_pos = max_pos.min(config.context_length).max(1);
        if device.is_cpu() {
            crate::util::keep_freed_memory();
        }
        let mut ld = Loader { file, device };
        let eps = config.rms_eps;
        let factors = if ld.has("rope_freqs.weight") {
            Some(
                ld.qtensor("rope_freqs.weight")?
                    .dequantize(device)?
                    .to_vec1::<f32>()?,
            )
        } else {
            None
        };
        let hd = config.head_dim;
        let global = Arc::new(Rope::new(
            config.rope_base,
            config.rope_scale,
            hd,
            factors.as_deref(),
            max_pos,
            device,
        )?);
        let local = if config.sliding_window.is_some() {
            Arc::new(Rope::new(
                config.rope_base_swa,
                1.0,
                hd,
                None,
                max_pos,
                device,
            )?)
        } else {
            global.clone()
        };
        let embeddings = ld.matmul("token_embd.weight")?;
        let output = if ld.has("output.weight") {
            Some(ld.matmul("output.weight")?)
        } else {
            None
        };
        let norm = ld.norm("output_norm.weight", eps)?;
        let mut layers = Vec::with_capacity(config.n_layer);
        for il in 0..config.n_layer {
            let p = format!("blk.{il}");
            let window = config.window_of(il);
            layers.push(Layer {
                attn_norm: ld.norm(&format!("{p}.attn_norm.weight"), eps)?,
                wq: ld.matmul(&format!("{p}.attn_q.weight"))?,
                wk: ld.matmul(&format!("{p}.attn_k.weight"))?,
                wv: ld.matmul(&format!("{p}.attn_v.weight"))?,
                wo: ld.matmul(&format!("{p}.attn_output.weight"))?,
                bq: ld.opt_dense(&format!("{p}.attn_q.bias"))?,
                bk: ld.opt_dense(&format!("{p}.attn_k.bias"))?,
                bv: ld.opt_dense(&format!("{p}.attn_v.bias"))?,
                q_norm: ld.opt_norm(&format!("{p}.attn_q_norm.weight"), eps)?,
                k_norm: ld.opt_norm(&format!("{p}.attn_k_norm.weight"), eps)?,
                post_attn_norm: ld.opt_norm(&format!("{p}.post_attention_norm.weight"), eps)?,
                ffn_norm: ld.norm(&format!("{p}.ffn_norm.weight"), eps)?,
                post_ffn_norm: ld.opt_norm(&format!("{p}.post_ffw_norm.weight"), eps)?,
                gate: ld.matmul(&format!("{p}.ffn_gate.weight"))?,
                up: ld.matmul(&format!("{p}.ffn_up.weight"))?,
                down: ld.matmul(&format!("{p}.ffn_down.weight"))?,
                rope: if window.is_some() {
                    local.clone()
                } else {
                    global.clone()
                },
                window,
                cache: if device.is_cpu() {
                    KvCache::Host(ggml::HostKv::new(config.n_kv_head, config.head_dim))
                } else {
                    KvCache::Device(candle_nn::kv_cache::KvCache::new(2, max_pos))
                },
            });
        }
        Ok(LlmModel {
            config,
            embeddings,
            layers,
            norm,
            output,
            device: device.clone(),
            pos: 0,
            max_pos,
        })
    }

    /// Opens a `.gguf` file and builds the model on `device`.
    pub fn load(path: &Path, device: &Device, max_pos: usize) -> Result<LlmModel> {
        let file = GgufFile::open(path)?;
        LlmModel::from_gguf(&file, device, max_pos)
            .map_err(|e| crate::engine::check::in_file(path, e))
    }

    /// The model's hyper-parameters.
    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// Positions already processed (the cache length).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Longest sequence this instance can hold.
    pub fn max_positions(&self) -> usize {
        self.max_pos
    }

    /// Forgets everything processed so far.
    pub fn reset(&mut self) {
        self.pos = 0;
        for l in &mut self.layers {
            match &mut l.cache {
                KvCache::Host(c) => c.clear(),
                KvCache::Device(c) => c.reset(),
            }
        }
    }

    /// Runs `tokens` after what is already cached. Returns the logits of every new
    /// position as (tokens, vocab) when `all_logits`, else of the last one as (1, vocab).
    pub fn forward(&mut self, tokens: &[u32], all_logits: bool) -> Result<Tensor> {
        let seq = tokens.len();
        if seq == 0 {
            return Err(Error::Model("forward called with no tokens".into()));
        }
        if self.pos + seq > self.max_pos {
            return Err(Error::Model(format!(
                "sequence of {} tokens exceeds the context of {} this model was opened with",
                self.pos + seq,
                self.max_pos
            )));
        }
        if seq <= UBATCH {
            let x = self.run_ubatch(tokens)?;
            return self.logits(&x, all_logits);
        }
        // A long prompt goes through in llama.cpp's ubatches: ggml's kernels choose
        // their summation by the number of rows (fours for Q4_K, eight or more for
        // Q6_K, one for attention), so the same split gives the same logits.
        let mut parts = Vec::new();
        let last = (seq - 1) / UBATCH;
        for (i, chunk) in tokens.chunks(UBATCH).enumerate() {
            let x = self.run_ubatch(chunk)?;
            // Logits nobody reads are not computed (a vocabulary-wide matmul each).
            if all_logits || i == last {
                parts.push(self.logits(&x, all_logits)?);
            }
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// The layers over at most one ubatch: the hidden states (1, tokens, dim).
    fn run_ubatch(&mut self, tokens: &[u32]) -> Result<Tensor> {
        let seq = tokens.len();
        let mut x = self.embeddings.rows(tokens, &self.device)?.unsqueeze(0)?;
        if let Some(s) = self.config.embed_scale {
            x = (x * s)?;
        }
        let offset = self.pos;
        // Layers share masks: one per (first visible key, window) pair.
        let mut masks = Vec::new();
        for layer in &mut self.layers {
            x = layer_forward(layer, &self.config, &x, offset, &mut masks)?;
        }
        self.pos += seq;
        Ok(x)
    }

    /// Logits of every position of `x` (from [`LlmModel::run_ubatch`]) when
    /// `all_logits`, else of the last one.
    fn logits(&self, x: &Tensor, all_logits: bool) -> Result<Tensor> {
        let seq = x.dim(1)?;
        let x = x.squeeze(0)?;
        let x = if all_logits {
            x
        } else {
            x.narrow(0, seq - 1, 1)?
        };
        let x = self.norm.forward(&x)?;
        self.output.as_ref().unwrap_or(&self.embeddings).forward(&x)
    }
}

/// Tokens per forward pass: llama.cpp's default (and svodka's) `n_ubatch`.
const UBATCH: usize = 512;

/// Additive attention mask (0 or -inf) for `seq` new queries after `offset` cached
/// positions, with keys from `start` to `offset + seq`, repeated `rep` times over rows.
fn attention_mask(
    seq: usize,
    offset: usize,
    start: usize,
    window: Option<usize>,
    rep: usize,
    device: &Device,
) -> Result<Tensor> {
    let kv_len = offset + seq - start;
    let mut data = Vec::with_capacity(rep * seq * kv_len);
    for _ in 0..rep {
        for i in 0..seq {
            let qpos = offset + i;
            data.extend((start..offset + seq).map(|kpos| {
                let visible = kpos <= qpos && window.is_none_or(|w| qpos - kpos < w);
                if visible {
                    0f32
                } else {
                    f32::NEG_INFINITY
                }
            }));
        }
    }
    Ok(Tensor::from_vec(data, (rep * seq, kv_len), device)?)
}

fn linear(w: &GgufProj, b: Option<&Tensor>, x: &Tensor) -> Result<Tensor> {
    let y = w.forward(x)?;
    Ok(match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// Masks already built in this forward pass, by (first key, window).
type MaskCache = Vec<((usize, Option<usize>), Tensor)>;

fn layer_forward(
    layer: &mut Layer,
    cfg: &LlmConfig,
    x: &Tensor,
    offset: usize,
    masks: &mut MaskCache,
) -> Result<Tensor> {
    let (b, seq, _) = x.dims3()?;
    let (nh, nkv, hd) = (cfg.n_head, cfg.n_kv_head, cfg.head_dim);

    let h = layer.attn_norm.forward(x)?;
    let q = linear(&layer.wq, layer.bq.as_ref(), &h)?.reshape((b, seq, nh, hd))?;
    let k = linear(&layer.wk, layer.bk.as_ref(), &h)?.reshape((b, seq, nkv, hd))?;
    let v = linear(&layer.wv, layer.bv.as_ref(), &h)?.reshape((b, seq, nkv, hd))?;
    let q = match &layer.q_norm {
        Some(n) => n.forward(&q.contiguous()?)?,
        None => q,
    };
    let k = match &layer.k_norm {
        Some(n) => n.forward(&k.contiguous()?)?,
        None => k,
    };
    let q = layer.rope.apply(&q, offset, cfg.rope_interleaved)?;
    let k = layer.rope.apply(&k, offset, cfg.rope_interleaved)?;
    // Keys older than every query's window are never visible: leave them out.
    let start = match layer.window {
        Some(w) if offset + 1 > w => offset + 1 - w,
        _ => 0,
    };
    // llama.cpp scales Gemma's queries before the product and the others' scores after.
    let q = if cfg.scale_queries {
        (q * cfg.attn_scale)?
    } else {
        q
    };
    let out = match &mut layer.cache {
        KvCache::Host(cache) => {
            // llama.cpp's f16 cache; the queries are rounded to f16 for their products.
            let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
            cache.append(&flat(&k)?, &flat(&v)?);
            let q = q.to_dtype(DType::F16)?.to_dtype(DType::F32)?;
            host_attention(layer.window, cfg, &q, cache, seq, offset, start)?
        }
        KvCache::Device(cache) => {
            // Cache layout (batch, kv_heads, positions, head_dim).
            let k = k.transpose(1, 2)?.contiguous()?;
            let v = v.transpose(1, 2)?.contiguous()?;
            let (k, v) = cache.append(&k, &v)?;
            let total = offset + seq;
            let (k, v) = if start > 0 {
                (
                    k.narrow(2, start, total - start)?,
                    v.narrow(2, start, total - start)?,
                )
            } else {
                (k, v)
            };
            device_attention(layer.window, cfg, &q, &k, &v, (offset, start), masks)?
        }
    };
    let mut attn = layer.wo.forward(&out)?;
    if let Some(n) = &layer.post_attn_norm {
        attn = n.forward(&attn)?;
    }
    ffn_forward(layer, cfg, &(x + attn)?)
}

/// Attention with candle's ops (accelerators); arguments as [`host_attention`]'s,
/// `span` = (offset, start).
fn device_attention(
    window: Option<usize>,
    cfg: &LlmConfig,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    (offset, start): (usize, usize),
    masks: &mut MaskCache,
) -> Result<Tensor> {
    let (b, seq, _, _) = q.dims4()?;
    let (nh, nkv, hd) = (cfg.n_head, cfg.n_kv_head, cfg.head_dim);
    let rep = nh / nkv;
    let total = offset + seq;
    // Grouped-query attention without copying keys: the `rep` query heads that share a
    // kv head become extra rows of one matmul.
    let q = q
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, nkv, rep * seq, hd))?;
    let mut att = q.matmul(&k.t()?)?;
    if !cfg.scale_queries {
        att = (att * cfg.attn_scale)?;
    }
    let needs_mask = seq > 1 || window.is_some_and(|w| total - start > w);
    if needs_mask {
        let key = (start, window);
        let mask = match masks.iter().find(|(k, _)| *k == key) {
            Some((_, m)) => m.clone(),
            None => {
                let m = attention_mask(seq, offset, start, window, rep, q.device())?;
                masks.push((key, m.clone()));
                m
            }
        };
        att = att.broadcast_add(&mask)?;
    }
    let att = candle_nn::ops::softmax_last_dim(&att)?;
    let out = att.matmul(&v.contiguous()?)?;
    Ok(out
        .reshape((b, nh, seq, hd))?
        .transpose(1, 2)?
        .reshape((b, seq, nh * hd))?)
}

/// Attention on the host with llama.cpp's arithmetic; `q` is (1, seq, heads, head_dim),
/// rounded to f16; `cache` holds the keys and values up to the new positions. Returns
/// (1, seq, heads × head_dim).
fn host_attention(
    window: Option<usize>,
    cfg: &LlmConfig,
    q: &Tensor,
    cache: &ggml::HostKv,
    seq: usize,
    offset: usize,
    start: usize,
) -> Result<Tensor> {
    let (nh, nkv, hd) = (cfg.n_head, cfg.n_kv_head, cfg.head_dim);
    let rep = nh / nkv;
    // (kv heads, rep × seq, head_dim): the query heads of a group, each over the new
    // positions.
    let qg = q
        .transpose(1, 2)?
        .contiguous()?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let per_q = rep * seq * hd;
    let mut out = Vec::with_capacity(nh * seq * hd);
    for g in 0..nkv {
        out.extend(ggml::attention(&ggml::Attention {
            q: &qg[g * per_q..(g + 1) * per_q],
            k: cache.keys(g, start),
            v: cache.values(g, start),
            head_dim: hd,
            seq,
            offset,
            start,
            window,
            scale: if cfg.scale_queries {
                1.0
            } else {
                cfg.attn_scale as f32
            },
        }));
    }
    // (heads, seq, hd) → (1, seq, heads × hd)
    Ok(Tensor::from_vec(out, (1, nh, seq, hd), q.device())?
        .transpose(1, 2)?
        .reshape((1, seq, nh * hd))?)
}

fn ffn_forward(layer: &Layer, cfg: &LlmConfig, x: &Tensor) -> Result<Tensor> {
    let ggml = x.device().is_cpu();
    let h = layer.ffn_norm.forward(x)?;
    let gate = layer.gate.forward(&h)?;
    let up = layer.up.forward(&h)?;
    let act = match cfg.activation {
        Activation::Silu => (candle_nn::ops::silu(&gate)? * up)?,
        // ggml looks GELU up in its f16 table; candle computes it elsewhere.
        Activation::GeluTanh if ggml => {
            let g = gate.flatten_all()?.to_vec1::<f32>()?;
            let u = up.flatten_all()?.to_vec1::<f32>()?;
            let y: Vec<f32> = g.iter().zip(&u).map(|(&g, &u)| ggml::gelu(g) * u).collect();
            Tensor::from_vec(y, gate.shape(), gate.device())?
        }
        other => (other.apply(&gate)? * up)?,
    };
    let mut ffn = layer.down.forward(&act)?;
    if let Some(n) = &layer.post_ffn_norm {
        ffn = n.forward(&ffn)?;
    }
    let x = (x + ffn)?;
    Ok(x)
}

/// The index of the largest value of a logits row (greedy choice).
pub fn argmax(logits: &Tensor) -> Result<u32> {
    Ok(logits
        .flatten_all()?
        .argmax(D::Minus1)?
        .to_scalar::<u32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_is_causal_and_windowed() {
        let m = attention_mask(3, 2, 0, Some(2), 1, &Device::Cpu).unwrap();
        let m = m.to_vec2::<f32>().unwrap();
        let vis: Vec<Vec<bool>> = m
            .iter()
            .map(|r| r.iter().map(|x| *x == 0.0).collect())
            .collect();
        // Query at position 2 sees 1 and 2; at 3 sees 2, 3; at 4 sees 3, 4.
        assert_eq!(vis[0], vec![false, true, true, false, false]);
        assert_eq!(vis[1], vec![false, false, true, true, false]);
        assert_eq!(vis[2], vec![false, false, false, true, true]);
    }

    #[test]
    fn mask_rows_repeat_for_grouped_heads() {
        let m = attention_mask(2, 0, 0, None, 2, &Device::Cpu).unwrap();
        let m = m.to_vec2::<f32>().unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0], m[2]);
        assert_eq!(m[1], m[3]);
        assert!(m[0][1].is_infinite() && m[1][1] == 0.0);
    }
}
