//! Quantized GGUF language models (Gemma 3, Qwen2/2.5, Qwen3, Llama) on candle ops.
//!
//! One decoder implementation covers the four families; they differ in a handful of
//! switches read from the GGUF metadata ([`LlmConfig`]). We do not use
//! candle-transformers' quantized models because they fall short of llama.cpp parity:
//! its Gemma 3 gates the FFN with SiLU where Gemma 3 uses tanh-GELU, ignores the sliding
//! window once generation passes it, masks out the cache on chunked prefill, returns
//! only the last position's logits, and dequantizes the whole embedding table (670 MB
//! for Gemma's 262k vocabulary) where a row lookup on the quantized table suffices.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_transformers::quantized_nn::RmsNorm;

use super::ggml::{self, F16MatMul, GgmlMatMul};
use crate::engine::layers::Activation;
use crate::{Error, Result};

/// The model families svodka runs, from `general.architecture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Google Gemma 3 (text).
    Gemma3,
    /// Qwen2 and Qwen2.5.
    Qwen2,
    /// Qwen3 (dense).
    Qwen3,
    /// Llama 2/3 and relatives.
    Llama,
}

impl Family {
    fn from_arch(arch: &str) -> Option<Family> {
        match arch {
            "gemma3" => Some(Family::Gemma3),
            "qwen2" => Some(Family::Qwen2),
            "qwen3" => Some(Family::Qwen3),
            "llama" => Some(Family::Llama),
            _ => None,
        }
    }
}

/// Hyper-parameters read from GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    /// Model family.
    pub family: Family,
    /// The GGUF architecture string (metadata key prefix).
    pub arch: String,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention).
    pub n_kv_head: usize,
    /// Size of one attention head.
    pub head_dim: usize,
    /// RMS norm epsilon.
    pub rms_eps: f64,
    /// RoPE base frequency of global layers.
    pub rope_base: f32,
    /// RoPE base frequency of sliding-window layers.
    pub rope_base_swa: f32,
    /// RoPE position scale of global layers (1 / linear scaling factor).
    pub rope_scale: f32,
    /// Sliding window size and the period of global layers (Gemma 3: every 6th).
    pub sliding_window: Option<(usize, usize)>,
    /// Context length the model was trained for.
    pub context_length: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    activation: Activation,
    attn_scale: f64,
    scale_queries: bool,
    embed_scale: Option<f64>,
    rope_interleaved: bool,
}

fn md<'a>(
    meta: &'a HashMap<String, gguf_file::Value>,
    arch: &str,
    key: &str,
) -> Option<&'a gguf_file::Value> {
    meta.get(&format!("{arch}.{key}"))
}

fn md_usize(meta: &HashMap<String, gguf_file::Value>, arch: &str, key: &str) -> Result<usize> {
    let v = md(meta, arch, key)
        .ok_or_else(|| Error::Model(format!("GGUF metadata lacks {arch}.{key}")))?;
    Ok(v.to_u32().map_err(Error::from)? as usize)
}

fn md_f32(meta: &HashMap<String, gguf_file::Value>, arch: &str, key: &str) -> Option<f32> {
    md(meta, arch, key).and_then(|v| v.to_f32().ok())
}

impl LlmConfig {
    /// Reads and checks the hyper-parameters of a GGUF model.
    pub fn from_gguf(content: &gguf_file::Content) -> Result<LlmConfig> {
        let meta = &content.metadata;
        let arch = meta
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| Error::Model("GGUF metadata lacks general.architecture".into()))?;
        let family = Family::from_arch(&arch).ok_or_else(|| {
            Error::Unsupported(format!(
                "GGUF architecture {arch:?} is not supported (supported: gemma3, qwen2, qwen3, llama)"
            ))
        })?;
        let n_layer = md_usize(meta, &arch, "block_count")?;
        let n_embd = md_usize(meta, &arch, "embedding_length")?;
        let n_head = md_usize(meta, &arch, "attention.head_count")?;
        let n_kv_head = md_usize(meta, &arch, "attention.head_count_kv").unwrap_or(n_head);
        let head_dim = md_usize(meta, &arch, "attention.key_length").unwrap_or(n_embd / n_head);
        let rot = md_usize(meta, &arch, "rope.dimension_count").unwrap_or(head_dim);
        if rot != head_dim || n_head % n_kv_head != 0 {
            return Err(Error::Unsupported(format!(
                "GGUF model with partial rotary embeddings ({rot} of {head_dim}) or {n_head} heads over {n_kv_head} kv heads is not supported"
            )));
        }
        let rms_eps =
            md_f32(meta, &arch, "attention.layer_norm_rms_epsilon").unwrap_or(1e-6) as f64;
        let rope_base = md_f32(meta, &arch, "rope.freq_base").unwrap_or(10_000.0);
        let linear_scaling = md(meta, &arch, "rope.scaling.type")
            .and_then(|v| v.to_string().ok())
            .is_some_and(|t| t == "linear");
        let rope_scale = match md_f32(meta, &arch, "rope.scaling.factor") {
            Some(f) if linear_scaling && f > 0.0 => 1.0 / f,
            _ => 1.0,
        };
        let context_length = md_usize(meta, &arch, "context_length").unwrap_or(4096);
        let vocab_size = content
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims()[0])
            .ok_or_else(|| Error::Model("GGUF file has no token_embd.weight".into()))?;
        let gemma = family == Family::Gemma3;
        let sliding_window = if gemma {
            let window = md_usize(meta, &arch, "attention.sliding_window")?;
            let period = md_usize(meta, &arch, "attention.sliding_window_pattern").unwrap_or(6);
            Some((window, period))
        } else {
            None
        };
        // llama.cpp: Gemma 3 27B scales queries by 1/sqrt(n_embd / n_head), the others by
        // 1/sqrt(head_dim); it recognises the 27B by its 62 layers.
        let attn_scale = if gemma && n_layer == 62 {
            1.0 / ((n_embd / n_head) as f64).sqrt()
        } else {
            1.0 / (head_dim as f64).sqrt()
        };
        Ok(LlmConfig {
            family,
            n_layer,
            n_embd,
            n_head,
            n_kv_head,
            head_dim,
            rms_eps,
            rope_base,
            rope_base_swa: if gemma {
                // llama.cpp's key for the windowed layers' base; 10,000 when absent.
                md_f32(meta, &arch, "rope.freq_base_swa").unwrap_or(10_000.0)
            } else {
                rope_base
            },
            rope_scale,
            sliding_window,
            context_length,
            vocab_size,
            activation: if gemma {
                Activation::GeluTanh
            } else {
                Activation::Silu
            },
            attn_scale,
            scale_queries: gemma,
            embed_scale: gemma.then(|| (n_embd as f64).sqrt()),
            rope_interleaved: family == Family::Llama,
            arch,
        })
    }

    /// Whether layer `il` attends only within the sliding window.
    fn window_of(&self, il: usize) -> Option<usize> {
        self.sliding_window
            .and_then(|(w, period)| ((il + 1) % period != 0).then_some(w))
    }
}

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
    cache: candle_nn::kv_cache::KvCache,
}

/// Reads tensors of one GGUF file.
struct Loader<'a, R> {
    content: &'a gguf_file::Content,
    reader: &'a mut R,
    device: &'a Device,
}

impl<R: Read + Seek> Loader<'_, R> {
    fn has(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    fn qtensor(&mut self, name: &str) -> Result<QTensor> {
        self.content
            .tensor(self.reader, name, self.device)
            .map_err(|e| Error::Model(format!("GGUF tensor {name}: {e}")))
    }

    fn matmul(&mut self, name: &str) -> Result<GgufProj> {
        let t = self.qtensor(name)?;
        GgufProj::new(t, self.device).map_err(|e| Error::Model(format!("GGUF tensor {name}: {e}")))
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

/// A GGUF weight matrix (block-quantized or F16, no bias): ggml's arithmetic on the CPU,
/// candle's kernels on accelerators. Unlike Marian's `DenseProj` it never holds f32
/// safetensors weights.
#[derive(Clone)]
enum GgufProj {
    Ggml(Arc<GgmlMatMul>),
    F16(Arc<F16MatMul>),
    Candle(QMatMul),
}

impl std::fmt::Debug for GgufProj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GgufProj::Ggml(g) => write!(f, "GgmlMatMul({} rows)", g.rows()),
            GgufProj::F16(g) => write!(f, "F16MatMul({} rows)", g.rows()),
            GgufProj::Candle(q) => write!(f, "{q:?}"),
        }
    }
}

impl GgufProj {
    fn new(t: QTensor, device: &Device) -> Result<GgufProj> {
        if device.is_cpu() {
            // Q5_0 products equal Q8_0 products (both take Q8_0 activations), and the
            // Q8_0 kernel is SIMD where candle's Q5_0 one is scalar.
            let t = if t.dtype() == GgmlDType::Q5_0 {
                q5_0_as_q8_0(&t)?
            } else {
                t
            };
            if let Some(g) = GgmlMatMul::new(&t)? {
                return Ok(GgufProj::Ggml(Arc::new(g)));
            }
            if t.dtype() == GgmlDType::F16 {
                let (n, k) = t.shape().dims2()?;
                return Ok(GgufProj::F16(Arc::new(F16MatMul::new(&t.data()?, n, k)?)));
            }
            return Ok(GgufProj::Candle(QMatMul::from_qtensor(t)?));
        }
        Ok(GgufProj::Candle(QMatMul::from_qtensor(t)?))
    }

    /// `x · wᵀ` over the last dimension of `x`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            GgufProj::Ggml(g) => host_matmul(x, g.rows(), |data, m| g.forward(data, m)),
            GgufProj::F16(g) => host_matmul(x, g.rows(), |data, m| g.forward(data, m)),
            GgufProj::Candle(q) => qmatmul(q, x),
        }
    }

    /// Rows `ids` of the matrix, dequantized (the embedding lookup).
    fn rows(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        match self {
            GgufProj::Ggml(g) => host_rows(ids, g.rows(), g.cols(), |i| g.row(i), device),
            GgufProj::F16(g) => host_rows(ids, g.rows(), g.cols(), |i| g.row(i), device),
            GgufProj::Candle(QMatMul::QTensor(q)) => Ok(q.embedding(&Tensor::new(ids, device)?)?),
            GgufProj::Candle(QMatMul::Tensor(t) | QMatMul::TensorF16(t)) => Ok(t
                .embedding(&Tensor::new(ids, device)?)?
                .to_dtype(DType::F32)?),
        }
    }
}

/// `x · wᵀ` by a host kernel `f(rows of x, number of rows)` with `n` outputs.
fn host_matmul(x: &Tensor, n: usize, f: impl Fn(&[f32], usize) -> Vec<f32>) -> Result<Tensor> {
    let mut dims = x.dims().to_vec();
    let k = *dims.last().expect("matmul input has a dimension");
    let m = x.elem_count() / k;
    let out = f(&x.flatten_all()?.to_vec1::<f32>()?, m);
    *dims.last_mut().expect("non-empty") = n;
    Ok(Tensor::from_vec(out, dims, x.device())?)
}

/// Rows `ids` of a host matrix of `n` rows of `k`, each given by `row`.
fn host_rows(
    ids: &[u32],
    n: usize,
    k: usize,
    row: impl Fn(usize) -> Vec<f32>,
    device: &Device,
) -> Result<Tensor> {
    let mut data = Vec::with_capacity(ids.len() * k);
    for &id in ids {
        if id as usize >= n {
            return Err(Error::Model(format!(
                "token id {id} is outside the vocabulary"
            )));
        }
        data.extend(row(id as usize));
    }
    Ok(Tensor::from_vec(data, (ids.len(), k), device)?)
}

/// Bytes of one ggml Q5_0 block (f16 scale, 32 high bits, 16 bytes of low nibbles) and
/// of one Q8_0 block (f16 scale, 32 signed bytes); both cover 32 weights.
const Q5_0_BLOCK: usize = 22;
const Q8_0_BLOCK: usize = 34;

/// Rewrites a Q5_0 tensor as Q8_0 with the same values: candle has no SIMD kernel for
/// Q5_0 (it falls back to scalar code, several times slower on the matmuls Q4_K_M
/// files keep in Q5_0), while its Q8_0 kernel uses AVX2. The 5-bit values fit a byte
/// and the block scale is kept, so every product is the same as llama.cpp's (both
/// quantize activations to Q8_0 for either weight type); the weight takes 1.5× the
/// memory.
fn q5_0_as_q8_0(t: &QTensor) -> Result<QTensor> {
    let src = t.data()?;
    if src.len() % Q5_0_BLOCK != 0 {
        return Err(Error::Model("malformed Q5_0 tensor".into()));
    }
    let mut out = Vec::with_capacity(src.len() / Q5_0_BLOCK * Q8_0_BLOCK);
    for block in src.chunks_exact(Q5_0_BLOCK) {
        let (d, rest) = block.split_at(2);
        let (qh, qs) = rest.split_at(4);
        let qh = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
        out.extend_from_slice(d);
        let value = |low: u8, bit: u32| ((low | (((qh >> bit) & 1) as u8) << 4) as i8 - 16) as u8;
        out.extend(
            qs.iter()
                .enumerate()
                .map(|(j, q)| value(q & 0x0F, j as u32)),
        );
        out.extend(
            qs.iter()
                .enumerate()
                .map(|(j, q)| value(q >> 4, j as u32 + 16)),
        );
    }
    let storage = candle_core::quantized::QStorage::from_data(
        std::borrow::Cow::Owned(out),
        &t.device(),
        GgmlDType::Q8_0,
    )?;
    Ok(QTensor::new(storage, t.shape().clone())?)
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
    /// Builds the model from parsed GGUF `content`, reading tensors from `reader`.
    /// `max_pos` bounds the sequence length (prompt + generation).
    pub fn from_gguf<R: Read + Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
        device: &Device,
        max_pos: usize,
    ) -> Result<LlmModel> {
        let config = LlmConfig::from_gguf(content)?;
        let max_pos = max_pos.min(config.context_length).max(1);
        let mut ld = Loader {
            content,
            reader,
            device,
        };
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
                cache: candle_nn::kv_cache::KvCache::new(2, max_pos),
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
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| Error::bad_input(path, format!("not a readable GGUF file: {e}")))?;
        crate::engine::check::gguf(path, &content, crate::engine::check::file_len(path, &file)?)?;
        LlmModel::from_gguf(&content, &mut file, device, max_pos)
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
            l.cache.reset();
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
            return self.forward_ubatch(tokens, all_logits);
        }
        // A long prompt goes through in llama.cpp's ubatches: ggml's kernels choose
        // their summation by the number of rows (fours for Q4_K, eight or more for
        // Q6_K, one for attention), so the same split gives the same logits.
        let mut parts = Vec::new();
        let last = (seq - 1) / UBATCH;
        for (i, chunk) in tokens.chunks(UBATCH).enumerate() {
            let logits = self.forward_ubatch(chunk, all_logits)?;
            if all_logits || i == last {
                parts.push(logits);
            }
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// [`LlmModel::forward`] for at most one ubatch.
    fn forward_ubatch(&mut self, tokens: &[u32], all_logits: bool) -> Result<Tensor> {
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

/// Rows from which a CPU matmul dequantizes the weight and runs a dense GEMM.
///
/// candle's quantized CPU matmul is a row-by-row dot product that streams the whole
/// weight once per row: right for generation (one row), slow for a prompt of hundreds
/// of tokens, where dequantizing the layer's weight once and using the tiled f32 GEMM
/// is several times faster (and exact, where the quantized path rounds activations to
/// 8 bits).
const DENSE_ROWS: usize = 16;

/// `x · wᵀ` for a quantized weight, choosing the faster kernel for the batch size.
fn qmatmul(w: &QMatMul, x: &Tensor) -> Result<Tensor> {
    let rows = x.elem_count() / x.dim(candle_core::D::Minus1)?;
    match w {
        QMatMul::QTensor(q) if rows >= DENSE_ROWS && x.device().is_cpu() => {
            Ok(QMatMul::Tensor(q.dequantize(x.device())?).forward(x)?)
        }
        _ => Ok(w.forward(x)?),
    }
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
    // On the CPU, keys, values, queries and attention weights are rounded to f16 where
    // llama.cpp stores or multiplies them in f16 (its default KV cache type).
    let ggml = x.device().is_cpu();
    let f16 = |t: Tensor| -> Result<Tensor> {
        Ok(if ggml {
            t.to_dtype(DType::F16)?.to_dtype(DType::F32)?
        } else {
            t
        })
    };
    // llama.cpp scales Gemma's queries before the product and the others' scores after.
    let q = if cfg.scale_queries {
        f16((q * cfg.attn_scale)?)?
    } else {
        f16(q)?
    };
    let (k, v) = (f16(k)?, f16(v)?);

    // Cache layout (batch, kv_heads, positions, head_dim).
    let k = k.transpose(1, 2)?.contiguous()?;
    let v = v.transpose(1, 2)?.contiguous()?;
    let (k, v) = layer.cache.append(&k, &v)?;
    let total = offset + seq;
    // Keys older than every query's window are never visible: leave them out.
    let start = match layer.window {
        Some(w) if offset + 1 > w => offset + 1 - w,
        _ => 0,
    };
    let (k, v) = if start > 0 {
        (
            k.narrow(2, start, total - start)?,
            v.narrow(2, start, total - start)?,
        )
    } else {
        (k, v)
    };

    let out = if ggml {
        host_attention(layer, cfg, &q, &k, &v, seq, offset, start)?
    } else {
        device_attention(layer, cfg, &q, &k, &v, (offset, start), masks)?
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
    layer: &Layer,
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
    let needs_mask = seq > 1 || layer.window.is_some_and(|w| total - start > w);
    if needs_mask {
        let key = (start, layer.window);
        let mask = match masks.iter().find(|(k, _)| *k == key) {
            Some((_, m)) => m.clone(),
            None => {
                let m = attention_mask(seq, offset, start, layer.window, rep, q.device())?;
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
/// `k` and `v` the caches (1, kv heads, positions from `start`, head_dim). Returns
/// (1, seq, heads × head_dim).
#[allow(clippy::too_many_arguments)]
fn host_attention(
    layer: &Layer,
    cfg: &LlmConfig,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
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
    let kd = k.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let vd = v.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let per_q = rep * seq * hd;
    let per_kv = kd.len() / nkv;
    let mut out = Vec::with_capacity(nh * seq * hd);
    for g in 0..nkv {
        out.extend(ggml::attention(&ggml::Attention {
            q: &qg[g * per_q..(g + 1) * per_q],
            k: &kd[g * per_kv..(g + 1) * per_kv],
            v: &vd[g * per_kv..(g + 1) * per_kv],
            head_dim: hd,
            seq,
            offset,
            start,
            window: layer.window,
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
    fn q5_0_becomes_q8_0_with_identical_values() {
        let w = Tensor::randn(0f32, 1.0, (8, 64), &Device::Cpu).unwrap();
        let q5 = QTensor::quantize(&w, GgmlDType::Q5_0).unwrap();
        let q8 = q5_0_as_q8_0(&q5).unwrap();
        assert_eq!(q8.dtype(), GgmlDType::Q8_0);
        let a = q5.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
        let b = q8.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
        assert_eq!(a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
    }

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
