//! T5 and mT5 encoder-decoder models (mT5_multilingual_XLSum) as a [`TextWriter`] for
//! map-reduce summarization.
//!
//! The configuration is candle-transformers' [`T5Config`]; the forward pass is our own,
//! following transformers' `modeling_t5.py`, because candle's `T5ForConditionalGeneration`
//! (0.11) cannot serve batched beam search with parity: it has no padding masks (padded
//! batches attend to padding), computes decoder position buckets as bidirectional (wrong
//! from distance 8 on), multiplies tied-embedding outputs by `√d_model` instead of
//! `d_model^-0.5`, keeps private self-attention caches that cannot be reordered, recomputes
//! cross-attention keys and values at every step, and returns only the last position's
//! logits. Decoding (greedy, beam search, n-gram bans) is [`crate::decode::generate`].

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Activation, RmsNorm, VarBuilder};
pub use candle_transformers::models::t5::Config as T5Config;
use serde::Deserialize;

use crate::article::Lang;
use crate::decode::{self, DecodeInput, DecodeOptions, EarlyStopping, Hypothesis, StepModel};
use crate::hub::download::ModelFiles;
use crate::hub::registry::FileRole;
use crate::tokenizer::sentencepiece::SpmEncoder;
use crate::{Error, Result};

use super::layers::padding_bias;
use super::{TextWriter, WriteRequest, WriteTask, Written};

/// Added to attention scores of positions that must not be seen (transformers uses the
/// dtype's minimum; a finite value keeps fully masked rows free of NaN).
const MASKED: f32 = f32::MIN;

/// `x @ wᵀ` over the last dimension of `x`, for a `[out, in]` weight.
fn project(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let last = dims.len() - 1;
    let rows: usize = dims[..last].iter().product();
    let y = x.reshape((rows, dims[last]))?.matmul(&w.t()?)?;
    let mut out = dims;
    out[last] = w.dim(0)?;
    Ok(y.reshape(out)?)
}

/// Ids `[b, t]` looked up in an embedding table `[vocab, d]` → `[b, t, d]`.
fn embed(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (b, t) = ids.dims2()?;
    let x = table.index_select(&ids.flatten_all()?, 0)?;
    Ok(x.reshape((b, t, ()))?)
}

fn rms_norm(vb: &VarBuilder, name: &str, cfg: &T5Config) -> Result<RmsNorm> {
    Ok(candle_nn::rms_norm(
        cfg.d_model,
        cfg.layer_norm_epsilon,
        vb.pp(name),
    )?)
}

fn weight(vb: &VarBuilder, name: &str, out_dim: usize, in_dim: usize) -> Result<Tensor> {
    Ok(vb.pp(name).get((out_dim, in_dim), "weight")?)
}

/// transformers' `T5Attention._relative_position_bucket`, in its f32 arithmetic.
/// `relative` is key position minus query position.
pub fn relative_position_bucket(
    relative: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> u32 {
    let mut buckets = num_buckets as i64;
    let mut base = 0i64;
    let n = if bidirectional {
        buckets /= 2;
        if relative > 0 {
            base += buckets;
        }
        relative.abs()
    } else {
        (-relative).max(0)
    };
    let max_exact = buckets / 2;
    if n < max_exact {
        return (base + n) as u32;
    }
    let log_ratio = (max_distance as f64 / max_exact as f64).ln() as f32;
    let scaled = (n as f32 / max_exact as f32).ln() / log_ratio * (buckets - max_exact) as f32;
    (base + (max_exact + scaled as i64).min(buckets - 1)) as u32
}

struct Attention {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    heads: usize,
    d_kv: usize,
}

impl Attention {
    fn load(vb: &VarBuilder, cfg: &T5Config) -> Result<Self> {
        let inner = cfg.num_heads * cfg.d_kv;
        Ok(Attention {
            q: weight(vb, "q", inner, cfg.d_model)?,
            k: weight(vb, "k", inner, cfg.d_model)?,
            v: weight(vb, "v", inner, cfg.d_model)?,
            o: weight(vb, "o", cfg.d_model, inner)?,
            heads: cfg.num_heads,
            d_kv: cfg.d_kv,
        })
    }

    /// `[b, t, heads·d_kv]` → `[b, heads, t, d_kv]`.
    fn heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        Ok(x.reshape((b, t, self.heads, self.d_kv))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    fn keys_values(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.heads(&project(x, &self.k)?)?,
            self.heads(&project(x, &self.v)?)?,
        ))
    }

    /// Attention of queries from `x` over `k`/`v`, with `bias` (position bias plus masks,
    /// broadcastable to `[b, heads, t, keys]`) added to the unscaled scores, as T5 does.
    fn attend(&self, x: &Tensor, k: &Tensor, v: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let q = self.heads(&project(x, &self.q)?)?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(bias)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = weights
            .matmul(v)?
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.d_kv))?;
        project(&out, &self.o)
    }
}

enum FeedForward {
    Plain {
        wi: Tensor,
        wo: Tensor,
    },
    Gated {
        wi_0: Tensor,
        wi_1: Tensor,
        wo: Tensor,
    },
}

struct Ff {
    norm: RmsNorm,
    kind: FeedForward,
    act: Activation,
}

impl Ff {
    fn load(vb: &VarBuilder, cfg: &T5Config) -> Result<Self> {
        let d = vb.pp("DenseReluDense");
        let kind = if cfg.feed_forward_proj.gated {
            FeedForward::Gated {
                wi_0: weight(&d, "wi_0", cfg.d_ff, cfg.d_model)?,
                wi_1: weight(&d, "wi_1", cfg.d_ff, cfg.d_model)?,
                wo: weight(&d, "wo", cfg.d_model, cfg.d_ff)?,
            }
        } else {
            FeedForward::Plain {
                wi: weight(&d, "wi", cfg.d_ff, cfg.d_model)?,
                wo: weight(&d, "wo", cfg.d_model, cfg.d_ff)?,
            }
        };
        Ok(Ff {
            norm: rms_norm(vb, "layer_norm", cfg)?,
            kind,
            act: cfg.feed_forward_proj.activation,
        })
    }

    /// `x + FF(norm(x))`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.norm.forward(x)?;
        let y = match &self.kind {
            FeedForward::Plain { wi, wo } => project(&self.act.forward(&project(&h, wi)?)?, wo)?,
            FeedForward::Gated { wi_0, wi_1, wo } => {
                let gate = self.act.forward(&project(&h, wi_0)?)?;
                project(&(gate * project(&h, wi_1)?)?, wo)?
            }
        };
        Ok((x + y)?)
    }
}

struct EncoderLayer {
    norm: RmsNorm,
    attn: Attention,
    ff: Ff,
}

struct DecoderLayer {
    self_norm: RmsNorm,
    self_attn: Attention,
    cross_norm: RmsNorm,
    cross_attn: Attention,
    ff: Ff,
}

/// Relative position bias table `[buckets, heads]` with its bucketing.
struct PositionBias {
    table: Tensor,
    bidirectional: bool,
    buckets: usize,
    max_distance: usize,
}

impl PositionBias {
    fn load(vb: &VarBuilder, cfg: &T5Config, bidirectional: bool) -> Result<Self> {
        Ok(PositionBias {
            table: vb.pp("relative_attention_bias").get(
                (cfg.relative_attention_num_buckets, cfg.num_heads),
                "weight",
            )?,
            bidirectional,
            buckets: cfg.relative_attention_num_buckets,
            max_distance: cfg.relative_attention_max_distance,
        })
    }

    /// Bias `[1, heads, queries, keys]` for queries at positions `start..start+queries`
    /// over keys at `0..keys`; keys after a query are masked when `causal`.
    fn compute(&self, start: usize, queries: usize, keys: usize, causal: bool) -> Result<Tensor> {
        let mut ids = Vec::with_capacity(queries * keys);
        let mut mask = Vec::with_capacity(queries * keys);
        for i in start..start + queries {
            for j in 0..keys {
                let rel = j as i64 - i as i64;
                ids.push(relative_position_bucket(
                    rel,
                    self.bidirectional,
                    self.buckets,
                    self.max_distance,
                ));
                mask.push(if causal && j > i { MASKED } else { 0.0 });
            }
        }
        let device = self.table.device();
        let ids = Tensor::from_vec(ids, queries * keys, device)?;
        let bias = self
            .table
            .index_select(&ids, 0)?
            .reshape((queries, keys, ()))?
            .permute((2, 0, 1))?;
        let mask = Tensor::from_vec(mask, (1, queries, keys), device)?.to_dtype(bias.dtype())?;
        Ok(bias.broadcast_add(&mask)?.unsqueeze(0)?)
    }
}

/// A T5 / mT5 model for conditional generation.
pub struct T5Model {
    cfg: T5Config,
    shared: Tensor,
    encoder: Vec<EncoderLayer>,
    encoder_bias: PositionBias,
    encoder_norm: RmsNorm,
    decoder: Vec<DecoderLayer>,
    decoder_bias: PositionBias,
    decoder_norm: RmsNorm,
    lm_head: Tensor,
    /// `d_model^-0.5` for tied embeddings (original T5), else 1.
    output_scale: f64,
    device: Device,
    dtype: DType,
}

impl T5Model {
    /// Builds the model from transformers' weight names (`shared`, `encoder.block.N...`).
    pub fn new(cfg: &T5Config, vb: VarBuilder) -> Result<Self> {
        let shared_name = ["shared", "encoder.embed_tokens", "decoder.embed_tokens"]
            .into_iter()
            .find(|n| vb.contains_tensor(&format!("{n}.weight")))
            .unwrap_or("shared");
        let shared = weight(&vb, shared_name, cfg.vocab_size, cfg.d_model)?;
        let mut encoder = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let b = vb.pp(format!("encoder.block.{i}.layer"));
            encoder.push(EncoderLayer {
                norm: rms_norm(&b.pp("0"), "layer_norm", cfg)?,
                attn: Attention::load(&b.pp("0.SelfAttention"), cfg)?,
                ff: Ff::load(&b.pp("1"), cfg)?,
            });
        }
        let n_dec = cfg.num_decoder_layers.unwrap_or(cfg.num_layers);
        let mut decoder = Vec::with_capacity(n_dec);
        for i in 0..n_dec {
            let b = vb.pp(format!("decoder.block.{i}.layer"));
            decoder.push(DecoderLayer {
                self_norm: rms_norm(&b.pp("0"), "layer_norm", cfg)?,
                self_attn: Attention::load(&b.pp("0.SelfAttention"), cfg)?,
                cross_norm: rms_norm(&b.pp("1"), "layer_norm", cfg)?,
                cross_attn: Attention::load(&b.pp("1.EncDecAttention"), cfg)?,
                ff: Ff::load(&b.pp("2"), cfg)?,
            });
        }
        // transformers rescales only tied outputs (`tie_word_embeddings`, default true);
        // mT5 and T5 v1.1 checkpoints say false and carry their own `lm_head`.
        let (lm_head, output_scale) = if cfg.tie_word_embeddings {
            (shared.clone(), (cfg.d_model as f64).powf(-0.5))
        } else {
            (weight(&vb, "lm_head", cfg.vocab_size, cfg.d_model)?, 1.0)
        };
        Ok(T5Model {
            cfg: cfg.clone(),
            encoder_bias: PositionBias::load(
                &vb.pp("encoder.block.0.layer.0.SelfAttention"),
                cfg,
                true,
            )?,
            encoder_norm: rms_norm(&vb.pp("encoder"), "final_layer_norm", cfg)?,
            decoder_bias: PositionBias::load(
                &vb.pp("decoder.block.0.layer.0.SelfAttention"),
                cfg,
                false,
            )?,
            decoder_norm: rms_norm(&vb.pp("decoder"), "final_layer_norm", cfg)?,
            shared,
            encoder,
            decoder,
            lm_head,
            output_scale,
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }

    /// Loads `config.json` and the weights (safetensors or `pytorch_model.bin`) of `files`.
    pub fn load(files: &ModelFiles, dtype: DType, device: &Device) -> Result<Self> {
        let path = files
            .config()
            .ok_or_else(|| Error::Model(format!("model {}: no config.json", files.name)))?;
        let cfg = read_config(path)?;
        let vb = crate::hub::var_builder(files, dtype, device)?;
        Self::new(&cfg, vb).map_err(|e| match super::check::weights_of(files) {
            Some(weights) => super::check::in_file(&weights, e),
            None => e,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &T5Config {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The token the decoder starts from (the padding token in T5).
    pub fn decoder_start_token(&self) -> u32 {
        self.cfg
            .decoder_start_token_id
            .unwrap_or(self.cfg.pad_token_id) as u32
    }

    /// Additive padding bias `[b, 1, 1, src]` from a 0/1 mask `[b, src]`.
    fn padding_bias(&self, mask: &Tensor) -> Result<Tensor> {
        padding_bias(mask, MASKED as f64, self.dtype)
    }

    /// Encoder output `[b, src, d_model]` for ids `[b, src]` and a 0/1 padding mask
    /// (1 = token), as transformers' `last_hidden_state`.
    pub fn encode(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let s = ids.dim(1)?;
        let bias = self
            .encoder_bias
            .compute(0, s, s, false)?
            .broadcast_add(&self.padding_bias(mask)?)?;
        let mut x = embed(&self.shared, ids)?;
        for layer in &self.encoder {
            let h = layer.norm.forward(&x)?;
            let (k, v) = layer.attn.keys_values(&h)?;
            x = (&x + layer.attn.attend(&h, &k, &v, &bias)?)?;
            x = layer.ff.forward(&x)?;
        }
        Ok(self.encoder_norm.forward(&x)?)
    }

    /// Decoder caches for `encoded` (`[b, src, d]`) and its padding mask `[b, src]`:
    /// cross-attention keys and values computed once, empty self-attention caches.
    pub fn start_decoding(&self, encoded: &Tensor, mask: &Tensor) -> Result<DecoderState> {
        let mut cross = Vec::with_capacity(self.decoder.len());
        for layer in &self.decoder {
            cross.push(layer.cross_attn.keys_values(encoded)?);
        }
        Ok(DecoderState {
            cross,
            own: vec![None; self.decoder.len()],
            padding: self.padding_bias(mask)?,
            past: 0,
        })
    }

    /// Runs the decoder on `ids` `[rows, t]` after what `state` holds, extending its
    /// caches; returns logits `[rows, t, vocab]`.
    pub fn decode(&self, state: &mut DecoderState, ids: &Tensor) -> Result<Tensor> {
        let t = ids.dim(1)?;
        let keys = state.past + t;
        let bias = self.decoder_bias.compute(state.past, t, keys, true)?;
        let mut x = embed(&self.shared, ids)?;
        for (i, layer) in self.decoder.iter().enumerate() {
            let h = layer.self_norm.forward(&x)?;
            let (k, v) = layer.self_attn.keys_values(&h)?;
            let (k, v) = match &state.own[i] {
                Some((pk, pv)) => (Tensor::cat(&[pk, &k], 2)?, Tensor::cat(&[pv, &v], 2)?),
                None => (k, v),
            };
            x = (&x + layer.self_attn.attend(&h, &k, &v, &bias)?)?;
            state.own[i] = Some((k, v));
            let h = layer.cross_norm.forward(&x)?;
            let (ck, cv) = &state.cross[i];
            x = (&x + layer.cross_attn.attend(&h, ck, cv, &state.padding)?)?;
            x = layer.ff.forward(&x)?;
        }
        state.past = keys;
        let x = (self.decoder_norm.forward(&x)? * self.output_scale)?;
        project(&x, &self.lm_head)
    }

    /// Teacher-forced logits `[b, tgt, vocab]` for decoder inputs `tgt` (start token
    /// first), as transformers' `forward(...).logits`.
    pub fn forward(&self, src: &Tensor, mask: &Tensor, tgt: &Tensor) -> Result<Tensor> {
        let encoded = self.encode(src, mask)?;
        let mut state = self.start_decoding(&encoded, mask)?;
        self.decode(&mut state, tgt)
    }

    /// Right-padded ids `[b, longest]` and their 0/1 mask for `sources`.
    pub fn batch(&self, sources: &[Vec<u32>]) -> Result<(Tensor, Tensor)> {
        let longest = sources.iter().map(Vec::len).max().unwrap_or(0);
        if longest == 0 {
            return Err(Error::Unsupported("T5: empty source".into()));
        }
        let pad = self.cfg.pad_token_id as u32;
        let mut ids = Vec::with_capacity(sources.len() * longest);
        let mut mask = Vec::with_capacity(sources.len() * longest);
        for s in sources {
            ids.extend(
                s.iter()
                    .copied()
                    .chain(std::iter::repeat(pad))
                    .take(longest),
            );
            mask.extend((0..longest).map(|i| u32::from(i < s.len())));
        }
        let shape = (sources.len(), longest);
        Ok((
            Tensor::from_vec(ids, shape, &self.device)?,
            Tensor::from_vec(mask, shape, &self.device)?,
        ))
    }

    /// Encodes `sources` (ids, `</s>` included) as one padded batch and decodes them with
    /// `opts` (greedy or beam search); one hypothesis per source, in order.
    pub fn generate(&self, sources: &[Vec<u32>], opts: &DecodeOptions) -> Result<Vec<Hypothesis>> {
        if sources.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, mask) = self.batch(sources)?;
        let encoded = self.encode(&ids, &mask)?;
        let mut stepper = T5Stepper {
            model: self,
            state: self.start_decoding(&encoded, &mask)?,
        };
        let mut opts = opts.clone();
        if opts.eos_token_ids.is_empty() {
            opts.eos_token_ids = vec![self.cfg.eos_token_id as u32];
        }
        let input = DecodeInput {
            start_token: self.decoder_start_token(),
            source_lens: sources.iter().map(Vec::len).collect(),
        };
        decode::generate(&mut stepper, &input, &opts)
    }
}

/// Reads a T5 `config.json` (candle-transformers' [`T5Config`]).
pub fn read_config(path: &Path) -> Result<T5Config> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let cfg = serde_json::from_str(&text)
        .map_err(|e| Error::bad_input(path, format!("not a T5 config: {e}")))?;
    super::check::t5_config(path, &cfg)?;
    Ok(cfg)
}

/// Decoder caches of a batch of rows.
pub struct DecoderState {
    /// Cross-attention keys and values per layer, `[rows, heads, src, d_kv]`.
    cross: Vec<(Tensor, Tensor)>,
    /// Self-attention keys and values per layer, `[rows, heads, past, d_kv]`.
    own: Vec<Option<(Tensor, Tensor)>>,
    /// Additive source padding bias `[rows, 1, 1, src]`.
    padding: Tensor,
    /// Decoder positions already fed.
    past: usize,
}

impl DecoderState {
    /// Keeps the rows at `rows` (repeats allowed), in that order, in every cache.
    pub fn reorder(&mut self, rows: &[u32]) -> Result<()> {
        let idx = Tensor::from_slice(rows, rows.len(), self.padding.device())?;
        let pick = |t: &Tensor| t.index_select(&idx, 0);
        for (k, v) in self.cross.iter_mut() {
            *k = pick(k)?;
            *v = pick(v)?;
        }
        for (k, v) in self.own.iter_mut().flatten() {
            *k = pick(k)?;
            *v = pick(v)?;
        }
        self.padding = pick(&self.padding)?;
        Ok(())
    }
}

/// A [`T5Model`] decoding a batch, as [`crate::decode`] drives it.
pub struct T5Stepper<'a> {
    /// The model.
    pub model: &'a T5Model,
    /// Its caches for the rows being decoded.
    pub state: DecoderState,
}

impl StepModel for T5Stepper<'_> {
    fn step(&mut self, last_tokens: &[u32]) -> Result<Tensor> {
        let ids = Tensor::from_slice(last_tokens, (last_tokens.len(), 1), self.model.device())?;
        let logits = self.model.decode(&mut self.state, &ids)?;
        Ok(logits.squeeze(1)?)
    }

    fn reorder(&mut self, rows: &[u32]) -> Result<()> {
        self.state.reorder(rows)
    }
}

/// How a T5 summarizer reads and writes.
#[derive(Debug, Clone, PartialEq)]
pub struct T5Options {
    /// Longest input the model was trained on, in tokens, `</s>` included.
    pub max_input_tokens: usize,
    /// Text put before every input ("summarize: " for the original T5; none for XL-Sum).
    pub prefix: String,
    /// Decoding; `max_new_tokens` is the summary cap unless the request sets one.
    pub decode: DecodeOptions,
}

impl Default for T5Options {
    /// mT5_multilingual_XLSum's model card: inputs up to 512 tokens, `max_length=84`
    /// (83 tokens after the start token), 4 beams, `no_repeat_ngram_size=2`.
    fn default() -> Self {
        T5Options {
            max_input_tokens: 512,
            prefix: String::new(),
            decode: DecodeOptions {
                beam_size: 4,
                max_new_tokens: 83,
                no_repeat_ngram_size: 2,
                length_penalty: 1.0,
                ..DecodeOptions::default()
            },
        }
    }
}

/// An encoder-decoder summarizer (mT5-XLSum) behind the map-reduce pipeline.
pub struct T5Summarizer {
    model: T5Model,
    tokenizer: SpmEncoder,
    opts: T5Options,
    prefix_ids: Vec<u32>,
}

impl T5Summarizer {
    /// Pairs a model with its `spiece.model` tokenizer.
    pub fn new(model: T5Model, tokenizer: SpmEncoder, opts: T5Options) -> Result<Self> {
        let prefix_ids = if opts.prefix.is_empty() {
            Vec::new()
        } else {
            tokenizer.encode(&opts.prefix)?
        };
        if prefix_ids.len() + 2 > opts.max_input_tokens {
            return Err(Error::Unsupported(format!(
                "T5 prefix of {} tokens leaves no room in {} input tokens",
                prefix_ids.len(),
                opts.max_input_tokens
            )));
        }
        Ok(T5Summarizer {
            model,
            tokenizer,
            opts,
            prefix_ids,
        })
    }

    /// The model.
    pub fn model(&self) -> &T5Model {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &SpmEncoder {
        &self.tokenizer
    }

    /// Model input ids for `text`: prefix, text with whitespace runs collapsed (as the
    /// XL-Sum card prepares inputs), `</s>`.
    pub fn encode_input(&self, text: &str) -> Result<Vec<u32>> {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut ids = self.prefix_ids.clone();
        ids.extend(self.tokenizer.encode(&text)?);
        ids.push(self.model.cfg.eos_token_id as u32);
        Ok(ids)
    }

    /// Text of generated ids, special and out-of-vocabulary ids left out.
    pub fn decode_output(&self, ids: &[u32]) -> Result<String> {
        let cfg = &self.model.cfg;
        let pieces = self.tokenizer.tokenizer().get_vocab_size(true) as u32;
        // transformers' `skip_special_tokens` drops <unk> too.
        let unk = self.tokenizer.tokenizer().token_to_id("<unk>");
        let specials = [
            Some(cfg.pad_token_id as u32),
            Some(cfg.eos_token_id as u32),
            unk,
        ];
        let kept: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&id| id < pieces && !specials.contains(&Some(id)))
            .collect();
        self.tokenizer
            .tokenizer()
            .decode(&kept, true)
            .map_err(|e| Error::Model(format!("T5 output decoding failed: {e}")))
    }
}

impl TextWriter for T5Summarizer {
    fn engine_name(&self) -> &'static str {
        "t5"
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.tokenizer.encode(text)?.len())
    }

    fn input_budget(&self, _req: &WriteRequest) -> Result<usize> {
        Ok(self.opts.max_input_tokens - self.prefix_ids.len() - 1)
    }

    fn write(&mut self, req: &WriteRequest, on_text: &mut dyn FnMut(&str)) -> Result<Written> {
        if req.task == WriteTask::Translate {
            return Err(Error::Unsupported(
                "the t5 engine summarizes; it does not translate".into(),
            ));
        }
        if req.lang != req.source_lang {
            return Err(Error::Unsupported(format!(
                "the t5 engine writes in the language of its input ({}); it cannot write {}",
                lang_code(req.source_lang),
                lang_code(req.lang)
            )));
        }
        let ids = self.encode_input(req.text)?;
        if ids.len() > self.opts.max_input_tokens {
            return Err(Error::Unsupported(format!(
                "T5 input of {} tokens exceeds the model's {}",
                ids.len(),
                self.opts.max_input_tokens
            )));
        }
        let mut decode = self.opts.decode.clone();
        if let Some(m) = req.opts.max_tokens {
            decode.max_new_tokens = m.max(1);
        }
        let tokens_in = ids.len();
        let hyp = self
            .model
            .generate(&[ids], &decode)?
            .pop()
            .ok_or_else(|| Error::Model("T5: no hypothesis".into()))?;
        let text = self.decode_output(&hyp.tokens)?;
        on_text(&text);
        Ok(Written {
            text,
            tokens_in,
            tokens_out: hyp.tokens.len() + usize::from(hyp.ended),
            looped: false,
        })
    }
}

fn lang_code(lang: Lang) -> &'static str {
    match lang {
        Lang::Ru => "ru",
        Lang::En => "en",
    }
}

/// Generation settings a checkpoint may carry in `config.json` or
/// `generation_config.json`, which transformers' `generate` applies unless the caller
/// passes its own (the XL-Sum card passes beams, n-gram size and max length only).
#[derive(Debug, Default, Deserialize)]
struct GenerationDefaults {
    length_penalty: Option<f32>,
    min_length: Option<usize>,
    early_stopping: Option<bool>,
}

impl GenerationDefaults {
    fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::bad_input(path, e.to_string()))
    }

    fn apply(&self, opts: &mut DecodeOptions) {
        if let Some(lp) = self.length_penalty {
            opts.length_penalty = lp;
        }
        if let Some(min) = self.min_length {
            // transformers counts the decoder start token in `min_length`.
            opts.min_length = min.saturating_sub(1);
        }
        if let Some(es) = self.early_stopping {
            opts.early_stopping = if es {
                EarlyStopping::Always
            } else {
                EarlyStopping::Heuristic
            };
        }
    }
}

/// [`T5Options::default`] with the generation settings the checkpoint's own files give
/// (`generation_config.json` over `config.json`).
pub fn options_for(files: &ModelFiles) -> Result<T5Options> {
    let mut opts = T5Options::default();
    for name in ["config.json", "generation_config.json"] {
        if let Some(path) = files.get(name) {
            GenerationDefaults::read(path)?.apply(&mut opts.decode);
        }
    }
    Ok(opts)
}

/// Loads a T5/mT5 summarizer from resolved model files (`config.json`, weights,
/// `spiece.model`) with mT5-XLSum's settings, in f32 (mT5 overflows in f16).
pub fn load(files: &ModelFiles, device: &Device) -> Result<T5Summarizer> {
    let spiece = files
        .get("spiece.model")
        .or_else(|| files.with_role(FileRole::Spiece).into_iter().next())
        .ok_or_else(|| {
            Error::Model(format!(
                "model {}: no spiece.model; the t5 engine needs the SentencePiece model",
                files.name
            ))
        })?;
    let tokenizer = SpmEncoder::from_file(spiece)?;
    let model = T5Model::load(files, DType::F32, device)?;
    T5Summarizer::new(model, tokenizer, options_for(files)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_transformers() {
        // Values from transformers' _relative_position_bucket (32 buckets, distance 128).
        let bi = |r| relative_position_bucket(r, true, 32, 128);
        let uni = |r| relative_position_bucket(r, false, 32, 128);
        assert_eq!(
            [0, -1, 1, -7, 7, -8, 8, -20, 20, -127, 200].map(bi),
            [0, 1, 17, 7, 23, 8, 24, 10, 26, 15, 31]
        );
        assert_eq!(
            [0, 1, 5, -1, -15, -16, -40, -127, -500].map(uni),
            [0, 0, 0, 1, 15, 16, 23, 31, 31]
        );
    }

    #[test]
    fn checkpoint_generation_settings_apply() {
        let d: GenerationDefaults = serde_json::from_str(
            r#"{"length_penalty": 0.6, "min_length": 10, "early_stopping": true, "d_model": 8}"#,
        )
        .unwrap();
        let mut o = T5Options::default().decode;
        d.apply(&mut o);
        assert_eq!(o.length_penalty, 0.6);
        assert_eq!(o.min_length, 9);
        assert_eq!(o.early_stopping, EarlyStopping::Always);
        let mut plain = T5Options::default().decode;
        GenerationDefaults::default().apply(&mut plain);
        assert_eq!(plain, T5Options::default().decode);
    }

    #[test]
    fn default_options_are_xlsum_card() {
        let o = T5Options::default();
        assert_eq!(o.max_input_tokens, 512);
        assert_eq!(o.decode.beam_size, 4);
        assert_eq!(o.decode.max_new_tokens, 83);
        assert_eq!(o.decode.no_repeat_ngram_size, 2);
    }
}
