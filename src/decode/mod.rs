//! Decoding shared by all engines: greedy and beam search, logits processors, stop
//! rules.
//!
//! An engine exposes its decoder as a [`StepModel`]: one call per step that returns the
//! next-token logits of every live row, and one that keeps, repeats or drops rows. Rows
//! that finish (greedy) and sources whose beams are done (beam search) leave the batch,
//! so later steps only pay for the rows still running. The token choice itself happens
//! on the host, following transformers' `generate` so that outputs can be compared
//! token for token.

mod beam;
mod greedy;
pub mod processors;

use crate::{Error, Result};
use candle_core::{DType, Storage, Tensor};
use serde_json::Value;
use std::path::Path;

/// A decoder that advances a batch of rows by one token at a time.
///
/// At the start the rows are the sources given to [`generate`], one row each, in order.
pub trait StepModel {
    /// Feeds each row's last token; returns next-token logits `[rows, vocab]`.
    fn step(&mut self, last_tokens: &[u32]) -> Result<Tensor>;
    /// Keeps the rows at `rows` (indices into the current rows, repeats allowed) in that
    /// order, with all their caches; the next [`StepModel::step`] sees `rows.len()` rows.
    fn reorder(&mut self, rows: &[u32]) -> Result<()>;
}

/// When beam search stops working on a source (transformers' `early_stopping`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EarlyStopping {
    /// `False`: stop once the best running beam, scored at its current length, cannot
    /// beat the worst of `beam_size` finished hypotheses.
    #[default]
    Heuristic,
    /// `True`: stop as soon as `beam_size` hypotheses have finished.
    Always,
    /// `"never"`: like `Heuristic`, but with a positive length penalty the running beam
    /// is scored at the maximum length (the canonical beam search bound).
    Never,
}

/// How to decode; the defaults are OPUS-MT's (beam 4, length penalty 1).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// Number of beams; 1 means greedy decoding.
    pub beam_size: usize,
    /// Exponent of the generated length that divides a finished hypothesis' log-prob sum.
    pub length_penalty: f32,
    /// When a source's beam search is over.
    pub early_stopping: EarlyStopping,
    /// Maximum generated tokens as a multiple of the source length (plus the offset).
    pub max_length_ratio: Option<f32>,
    /// Added to `ratio × source length`.
    pub max_length_offset: usize,
    /// Hard cap on generated tokens, end-of-sequence included.
    pub max_new_tokens: usize,
    /// End-of-sequence is forbidden until this many tokens have been generated.
    pub min_length: usize,
    /// Forbid repeating any n-gram of this size (0: off).
    pub no_repeat_ngram_size: usize,
    /// Repetition penalty (1.0: off).
    pub repetition_penalty: f32,
    /// Tokens never generated (engines add their padding token).
    pub suppress_tokens: Vec<u32>,
    /// Tokens that end a sequence (engines fill in their own when empty).
    pub eos_token_ids: Vec<u32>,
    /// Log-softmax again after the processors (transformers' `renormalize_logits`).
    pub renormalize_logits: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            beam_size: 4,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            max_length_ratio: None,
            max_length_offset: 0,
            max_new_tokens: 512,
            min_length: 0,
            no_repeat_ngram_size: 0,
            repetition_penalty: 1.0,
            suppress_tokens: Vec::new(),
            eos_token_ids: Vec::new(),
            renormalize_logits: false,
        }
    }
}

impl DecodeOptions {
    /// Checks the values that would make decoding meaningless.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Unsupported(format!("decode options: {what}")));
        if self.beam_size == 0 {
            return bad("beam size must be at least 1");
        }
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens must be at least 1");
        }
        if self.eos_token_ids.is_empty() {
            return bad("no end-of-sequence token given");
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad("repetition penalty must be a positive number");
        }
        if !self.length_penalty.is_finite() {
            return bad("length penalty must be finite");
        }
        if let Some(r) = self.max_length_ratio {
            if !(r > 0.0 && r.is_finite()) {
                return bad("max length ratio must be a positive number");
            }
        }
        Ok(())
    }

    /// Maximum number of generated tokens for a source of `source_len` tokens (at least 1).
    pub fn max_length_for(&self, source_len: usize) -> usize {
        let by_ratio = self
            .max_length_ratio
            .map(|r| (r * source_len as f32).ceil() as usize + self.max_length_offset)
            .unwrap_or(usize::MAX);
        by_ratio.min(self.max_new_tokens).max(1)
    }

    /// Options from a transformers `generation_config.json`; fields it lacks keep
    /// [`DecodeOptions::default`]. Single-token `bad_words_ids` become suppressed tokens;
    /// `forced_eos_token_id` is ignored (nothing is forced), and `max_length`, which
    /// counts the decoder start token, becomes `max_new_tokens = max_length - 1`.
    pub fn from_generation_config(path: &Path) -> Result<DecodeOptions> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad = |why: String| Error::Model(format!("{}: {why}", path.display()));
        let v: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut o = DecodeOptions::default();
        let uint = |key: &str| -> Result<Option<usize>> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_u64()
                    .map(|n| Some(n as usize))
                    .ok_or_else(|| bad(format!("{key} is not a non-negative integer"))),
            }
        };
        let float = |key: &str| -> Result<Option<f32>> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_f64()
                    .map(|n| Some(n as f32))
                    .ok_or_else(|| bad(format!("{key} is not a number"))),
            }
        };
        let token = |x: &Value| -> Result<u32> {
            x.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad(format!("{x} is not a token id")))
        };
        if let Some(n) = uint("num_beams")? {
            o.beam_size = n.max(1);
        }
        if let Some(lp) = float("length_penalty")? {
            o.length_penalty = lp;
        }
        o.early_stopping = match v.get("early_stopping") {
            Some(Value::Bool(true)) => EarlyStopping::Always,
            Some(Value::String(s)) if s == "never" => EarlyStopping::Never,
            _ => EarlyStopping::Heuristic,
        };
        if let Some(n) = uint("max_new_tokens")? {
            o.max_new_tokens = n;
        } else if let Some(n) = uint("max_length")? {
            o.max_new_tokens = n.saturating_sub(1).max(1);
        }
        if let Some(n) = uint("min_new_tokens")? {
            o.min_length = n;
        } else if let Some(n) = uint("min_length")? {
            o.min_length = n.saturating_sub(1);
        }
        if let Some(n) = uint("no_repeat_ngram_size")? {
            o.no_repeat_ngram_size = n;
        }
        if let Some(p) = float("repetition_penalty")? {
            o.repetition_penalty = p;
        }
        o.renormalize_logits = v.get("renormalize_logits") == Some(&Value::Bool(true));
        match v.get("eos_token_id") {
            None | Some(Value::Null) => {}
            Some(Value::Array(ids)) => {
                o.eos_token_ids = ids.iter().map(token).collect::<Result<_>>()?;
            }
            Some(x) => o.eos_token_ids = vec![token(x)?],
        }
        if let Some(Value::Array(seqs)) = v.get("bad_words_ids") {
            for seq in seqs {
                if let Some([one]) = seq.as_array().map(Vec::as_slice) {
                    o.suppress_tokens.push(token(one)?);
                }
            }
        }
        if let Some(Value::Array(ids)) = v.get("suppress_tokens") {
            for id in ids {
                o.suppress_tokens.push(token(id)?);
            }
        }
        Ok(o)
    }

    fn is_eos(&self, token: u32) -> bool {
        self.eos_token_ids.contains(&token)
    }
}

/// What to decode: the decoder's first input and each source's length (in tokens).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeInput {
    /// Token fed at the first step (Marian: the padding token).
    pub start_token: u32,
    /// Length of each source, in the model's initial row order.
    pub source_lens: Vec<usize>,
}

/// One decoded sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Generated tokens, without the start token and without the final end-of-sequence.
    pub tokens: Vec<u32>,
    /// Whether it ended with an end-of-sequence token (false: cut by a length limit).
    pub ended: bool,
    /// Sum of token log-probabilities divided by `generated length ^ length_penalty`;
    /// beam search sums them after the logits processors (as transformers scores
    /// beams), greedy sums the model's own.
    pub score: f32,
}

/// Decodes every source of `input` with `model`, greedy when `beam_size == 1`;
/// returns one hypothesis per source, in order.
pub fn generate<M: StepModel + ?Sized>(
    model: &mut M,
    input: &DecodeInput,
    opts: &DecodeOptions,
) -> Result<Vec<Hypothesis>> {
    opts.validate()?;
    if input.source_lens.is_empty() {
        return Ok(Vec::new());
    }
    if opts.beam_size == 1 {
        greedy::run(model, input, opts)
    } else {
        beam::run(model, input, opts)
    }
}

/// Calls `f` with the `[rows, vocab]` logits as f32 on the host, row-major, and the
/// vocabulary size; contiguous f32 CPU logits are read in place, others copied once.
fn with_host_rows<T>(
    logits: &Tensor,
    rows: usize,
    f: impl FnOnce(&[f32], usize) -> Result<T>,
) -> Result<T> {
    let (n, vocab) = logits.dims2()?;
    if n != rows {
        return Err(Error::Model(format!(
            "decoder returned {n} rows of logits, expected {rows}"
        )));
    }
    if logits.dtype() == DType::F32 {
        let (storage, layout) = logits.storage_and_layout();
        if let (Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) {
            return f(&cpu.as_slice::<f32>()?[start..end], vocab);
        }
    }
    let flat = logits
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    f(&flat, vocab)
}

/// `f(row index, row)` for every `width`-wide row of `flat`, results in row order; rows
/// are split over the machine's cores when there are enough of them (the per-row work,
/// a pass over a ~60k vocabulary, is the host's share of every decoding step).
fn par_rows<T, F>(flat: &[f32], width: usize, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize, &[f32]) -> T + Sync,
{
    let rows = flat.len() / width.max(1);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(rows / 4)
        .max(1);
    if threads == 1 {
        return flat
            .chunks(width)
            .enumerate()
            .map(|(i, r)| f(i, r))
            .collect();
    }
    let per = rows.div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = flat
            .chunks(per * width)
            .enumerate()
            .map(|(c, chunk)| {
                scope.spawn(move || {
                    chunk
                        .chunks(width)
                        .enumerate()
                        .map(|(i, r)| f(c * per + i, r))
                        .collect::<Vec<T>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// The length-normalized score transformers gives a finished hypothesis.
fn normalized(sum_logprob: f32, generated: usize, length_penalty: f32) -> f32 {
    sum_logprob / (generated as f32).powf(length_penalty)
}

#[cfg(test)]
pub(crate) mod toy {
    //! A fake decoder whose next-token logits depend only on the row's history.

    use super::*;
    use candle_core::Device;
    use std::collections::HashMap;

    /// Logits from a table keyed by the row's history (start token included), with a
    /// default row for histories not in the table; records every reorder call.
    pub struct ToyModel {
        pub vocab: usize,
        pub table: HashMap<Vec<u32>, Vec<f32>>,
        pub default: Vec<f32>,
        pub rows: Vec<Vec<u32>>,
        pub steps: usize,
        pub row_counts: Vec<usize>,
    }

    impl ToyModel {
        /// `default_probs`: next-token probabilities for histories not in the table.
        pub fn new(vocab: usize, sources: usize, start: u32, default_probs: Vec<f32>) -> Self {
            ToyModel {
                vocab,
                table: HashMap::new(),
                default: ln_probs(&default_probs),
                rows: vec![vec![start]; sources],
                steps: 0,
                row_counts: Vec::new(),
            }
        }

        /// Next-token probabilities after `history` (start token included).
        pub fn set(&mut self, history: &[u32], probs: &[f32]) {
            assert_eq!(probs.len(), self.vocab);
            self.table.insert(history.to_vec(), ln_probs(probs));
        }
    }

    /// Probabilities → logits (log-probabilities; -1e9 for zero).
    pub fn ln_probs(probs: &[f32]) -> Vec<f32> {
        probs
            .iter()
            .map(|&p| if p > 0.0 { p.ln() } else { -1e9 })
            .collect()
    }

    impl StepModel for ToyModel {
        fn step(&mut self, last_tokens: &[u32]) -> Result<Tensor> {
            assert_eq!(last_tokens.len(), self.rows.len());
            self.steps += 1;
            self.row_counts.push(self.rows.len());
            let mut out = Vec::with_capacity(self.rows.len() * self.vocab);
            for (row, &t) in self.rows.iter_mut().zip(last_tokens) {
                if self.steps > 1 {
                    row.push(t);
                }
                let logits = self.table.get(row.as_slice()).unwrap_or(&self.default);
                out.extend_from_slice(logits);
            }
            Ok(Tensor::from_vec(
                out,
                (self.rows.len(), self.vocab),
                &Device::Cpu,
            )?)
        }

        fn reorder(&mut self, rows: &[u32]) -> Result<()> {
            self.rows = rows
                .iter()
                .map(|&r| self.rows[r as usize].clone())
                .collect();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_rows_keeps_row_order() {
        let flat: Vec<f32> = (0..64 * 3).map(|i| i as f32).collect();
        let out = par_rows(&flat, 3, |i, row| (i, row[1]));
        assert_eq!(out.len(), 64);
        for (i, &(j, v)) in out.iter().enumerate() {
            assert_eq!((i, v), (j, (3 * i + 1) as f32));
        }
    }

    #[test]
    fn validate_rejects_nonsense() {
        let ok = DecodeOptions {
            eos_token_ids: vec![0],
            ..DecodeOptions::default()
        };
        assert!(ok.validate().is_ok());
        for bad in [
            DecodeOptions {
                beam_size: 0,
                ..ok.clone()
            },
            DecodeOptions {
                eos_token_ids: vec![],
                ..ok.clone()
            },
            DecodeOptions {
                repetition_penalty: 0.0,
                ..ok.clone()
            },
            DecodeOptions {
                max_new_tokens: 0,
                ..ok.clone()
            },
            DecodeOptions {
                max_length_ratio: Some(-1.0),
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn max_length_uses_ratio_offset_and_cap() {
        let opts = DecodeOptions {
            max_length_ratio: Some(1.5),
            max_length_offset: 2,
            max_new_tokens: 20,
            ..DecodeOptions::default()
        };
        assert_eq!(opts.max_length_for(4), 8);
        assert_eq!(opts.max_length_for(100), 20);
        assert_eq!(opts.max_length_for(0), 2);
        let uncapped = DecodeOptions::default();
        assert_eq!(uncapped.max_length_for(3), 512);
    }

    #[test]
    fn reads_opus_mt_generation_configs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("generation_config.json");
        // opus-mt-tc-big-en-zle's, as published.
        std::fs::write(
            &path,
            r#"{"bad_words_ids": [[61576]], "bos_token_id": 0, "decoder_start_token_id": 61576,
                "eos_token_id": 25539, "forced_eos_token_id": 25539, "max_length": 512,
                "num_beams": 4, "pad_token_id": 61576, "renormalize_logits": true,
                "transformers_version": "4.34.0.dev0"}"#,
        )
        .unwrap();
        let o = DecodeOptions::from_generation_config(&path).unwrap();
        assert_eq!(o.beam_size, 4);
        assert_eq!(o.eos_token_ids, vec![25539]);
        assert_eq!(o.suppress_tokens, vec![61576]);
        assert_eq!(o.max_new_tokens, 511);
        assert!(o.renormalize_logits);
        assert_eq!(o.early_stopping, EarlyStopping::Heuristic);
        std::fs::write(
            &path,
            r#"{"eos_token_id": [0, 3], "early_stopping": "never", "num_beams": 6,
                "no_repeat_ngram_size": 3, "repetition_penalty": 1.2, "min_length": 5}"#,
        )
        .unwrap();
        let o = DecodeOptions::from_generation_config(&path).unwrap();
        assert_eq!(o.eos_token_ids, vec![0, 3]);
        assert_eq!(o.early_stopping, EarlyStopping::Never);
        assert_eq!(
            (o.beam_size, o.no_repeat_ngram_size, o.min_length),
            (6, 3, 4)
        );
        assert!((o.repetition_penalty - 1.2).abs() < 1e-6);
        std::fs::write(&path, r#"{"num_beams": "four"}"#).unwrap();
        assert!(DecodeOptions::from_generation_config(&path).is_err());
        assert!(DecodeOptions::from_generation_config(&dir.path().join("none.json")).is_err());
    }

    #[test]
    fn empty_input_gives_no_hypotheses() {
        let mut model = toy::ToyModel::new(3, 0, 2, vec![0.0; 3]);
        let input = DecodeInput {
            start_token: 2,
            source_lens: vec![],
        };
        let opts = DecodeOptions {
            eos_token_ids: vec![0],
            ..DecodeOptions::default()
        };
        assert!(generate(&mut model, &input, &opts).unwrap().is_empty());
        assert_eq!(model.steps, 0);
    }
}
