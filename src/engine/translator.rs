//! Translators: OPUS-MT Marian models and LLM text writers behind [`Translator`].
//!
//! [`MarianTranslator`] pads a batch of sentences into one tensor and decodes it in one
//! go (greedy or beam search, see [`crate::decode`]); multi-target models (OPUS-MT-TC
//! "tc-big") get a `>>rus<<`-style tag before every source. [`LlmTranslator`] sends
//! one prompt per segment to any [`TextWriter`], such as the GGUF LLM engine.

use std::path::Path;

use candle_core::{DType, Device};

use super::llm::GenerateOptions;
use super::marian::{weights_builder, MarianConfig, MarianModel, Quantization};
use super::{SummaryOptions, TextWriter, Translation, Translator, WriteRequest, WriteTask};
use crate::article::Lang;
use crate::decode::DecodeOptions;
use crate::hub::download::ModelFiles;
use crate::tokenizer::sentencepiece::MarianTokenizer;
use crate::{Error, Result};

/// The ISO 639-3 code OPUS-MT target tags use (`>>rus<<`).
fn tag_code(lang: Lang) -> &'static str {
    match lang {
        Lang::Ru => "rus",
        Lang::En => "eng",
    }
}

/// The language of a `>>xxx<<` tag, when svodka knows it.
fn tag_lang(tag: &str) -> Option<Lang> {
    [Lang::Ru, Lang::En]
        .into_iter()
        .find(|&l| tag == format!(">>{}<<", tag_code(l)))
}

/// How to open a Marian model.
#[derive(Debug, Clone)]
pub struct MarianLoadOptions {
    /// Weight type: f32 on CPU, f16 on GPUs.
    pub dtype: DType,
    /// Where the model runs.
    pub device: Device,
    /// How the linear layers' weights are stored (int8: CPU only).
    pub quant: Quantization,
    /// The tag the registry says to put before every source (`>>rus<<`), if any.
    pub target_token: Option<String>,
}

/// The number format a Marian model computes its linear layers in.
fn marian_dtype_name(model: &MarianModel) -> &'static str {
    match (model.quantization(), model.dtype()) {
        (Quantization::Int8, _) => "int8",
        (_, DType::F16) => "f16",
        (_, DType::BF16) => "bf16",
        _ => "f32",
    }
}

/// An OPUS-MT (Marian) model and its tokenizer as a [`Translator`].
pub struct MarianTranslator {
    model: MarianModel,
    tokenizer: MarianTokenizer,
    /// Target-language tags of a multi-target model; empty for single-target models.
    target_tokens: Vec<(Lang, u32)>,
}

impl MarianTranslator {
    /// Pairs a model with its tokenizer; `target_token` is the registry's tag, if any.
    ///
    /// A model whose vocabulary holds two or more `>>xxx<<` tags is multi-target and
    /// gets the tag of the wanted language even without a registry entry; single-target
    /// models never get one, as they were trained without.
    pub fn new(
        model: MarianModel,
        tokenizer: MarianTokenizer,
        target_token: Option<&str>,
    ) -> Result<Self> {
        let model_vocab = model.config().vocab_size;
        if tokenizer.vocab_size() > model_vocab {
            return Err(Error::Model(format!(
                "Marian tokenizer has {} tokens but the model only {model_vocab}: they do not belong together",
                tokenizer.vocab_size()
            )));
        }
        let mut target_tokens: Vec<(Lang, u32)> = [Lang::Ru, Lang::En]
            .into_iter()
            .filter_map(|l| {
                let id = tokenizer.token_id(&format!(">>{}<<", tag_code(l)))?;
                Some((l, id))
            })
            .collect();
        let tags_in_vocab = count_tags(&tokenizer);
        if let Some(tag) = target_token {
            let id = tokenizer.token_id(tag).ok_or_else(|| {
                Error::Model(format!(
                    "the registry's target token {tag} is not in the model's vocabulary"
                ))
            })?;
            match tag_lang(tag) {
                Some(l) => {
                    target_tokens.retain(|(t, _)| *t != l);
                    target_tokens.push((l, id));
                }
                None => {
                    return Err(Error::Unsupported(format!(
                        "target token {tag} is for a language svodka does not translate into"
                    )))
                }
            }
        } else if tags_in_vocab < 2 {
            target_tokens.clear();
        }
        Ok(MarianTranslator {
            model,
            tokenizer,
            target_tokens,
        })
    }

    /// Opens a resolved model: `config.json`, safetensors or PyTorch weights, and the
    /// `source.spm`/`target.spm`/`vocab.json` tokenizer next to them.
    pub fn load(files: &ModelFiles, opts: &MarianLoadOptions) -> Result<Self> {
        let config = files.config().ok_or_else(|| {
            Error::Model(format!(
                "model {}: no config.json in {}",
                files.name,
                files.root.display()
            ))
        })?;
        let cfg = MarianConfig::from_file(config)?;
        let vb = match crate::hub::weights::weights_format(files)? {
            crate::hub::weights::WeightsFormat::Safetensors(paths)
                if opts.quant == Quantization::Int8 =>
            {
                weights_builder(&paths, opts.dtype, &opts.device, opts.quant)?
            }
            _ => crate::hub::weights::var_builder(files, opts.dtype, &opts.device)?,
        };
        let model = MarianModel::new_quantized(&cfg, vb, opts.quant).map_err(|e| {
            match super::check::weights_of(files) {
                Some(weights) => super::check::in_file(&weights, e),
                None => e,
            }
        })?;
        let dir = tokenizer_dir(files);
        let tokenizer = MarianTokenizer::from_dir(&dir).map_err(|e| {
            Error::Model(format!(
                "model {}: not a Marian tokenizer in {}: {e}",
                files.name,
                dir.display()
            ))
        })?;
        Self::new(model, tokenizer, opts.target_token.as_deref())
    }

    /// Opens a model directory (`config.json`, `model.safetensors`, tokenizer files).
    pub fn from_dir(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let model = MarianModel::load(dir, dtype, device)?;
        let tokenizer = MarianTokenizer::from_dir(dir)?;
        Self::new(model, tokenizer, None)
    }

    /// The weights' number format: "int8", "f32", "f16" or "bf16".
    pub fn dtype_name(&self) -> &'static str {
        marian_dtype_name(&self.model)
    }

    /// The model.
    pub fn model(&self) -> &MarianModel {
        &self.model
    }

    /// The tag put before sources translated into `to`, if the model needs one.
    pub fn target_token(&self, to: Lang) -> Result<Option<u32>> {
        if self.target_tokens.is_empty() {
            return Ok(None);
        }
        self.target_tokens
            .iter()
            .find(|(l, _)| *l == to)
            .map(|(_, id)| Some(*id))
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "this multi-target model has no >>{}<< tag: it cannot translate into {to}",
                    tag_code(to)
                ))
            })
    }

    /// Source ids for `text` going into `to`: tag (if any), pieces, `</s>`.
    fn source_ids(&self, text: &str, to: Lang) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        if let Some(tag) = self.target_token(to)? {
            ids.push(tag);
        }
        ids.extend(self.tokenizer.encode_source(text)?);
        Ok(ids)
    }
}

/// Number of `>>xxx<<` language tags in the vocabulary (known languages only, which is
/// all that the multi-target test needs).
fn count_tags(tokenizer: &MarianTokenizer) -> usize {
    [
        "rus", "eng", "ukr", "bel", "deu", "fra", "spa", "pol", "ces", "bul",
    ]
    .iter()
    .filter(|c| tokenizer.token_id(&format!(">>{c}<<")).is_some())
    .count()
}

/// The directory holding `source.spm` (the snapshot root for Hub models).
fn tokenizer_dir(files: &ModelFiles) -> std::path::PathBuf {
    files
        .get("source.spm")
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| files.root.clone())
}

impl Translator for MarianTranslator {
    fn engine_name(&self) -> &'static str {
        "marian"
    }

    fn dtype(&self) -> Option<&'static str> {
        Some(self.dtype_name())
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        let tag = usize::from(!self.target_tokens.is_empty());
        Ok(self.tokenizer.encode_source(text)?.len() + tag)
    }

    fn can_retry_with_beams(&self) -> bool {
        true
    }

    fn max_source_tokens(&self) -> usize {
        self.model.config().max_position_embeddings
    }

    fn translate_batch(
        &mut self,
        segments: &[&str],
        _from: Lang,
        to: Lang,
        opts: &DecodeOptions,
    ) -> Result<Vec<Translation>> {
        let max = self.max_source_tokens();
        let sources = segments
            .iter()
            .map(|s| {
                let ids = self.source_ids(s, to)?;
                if ids.len() > max {
                    return Err(Error::Unsupported(format!(
                        "a segment of {} tokens exceeds the model's {max} positions",
                        ids.len()
                    )));
                }
                Ok(ids)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut opts = opts.clone();
        if opts.eos_token_ids.is_empty() {
            opts.eos_token_ids.push(self.tokenizer.eos_id());
        }
        let hyps = self.model.translate_ids(&sources, &opts)?;
        hyps.into_iter()
            .map(|h| {
                Ok(Translation {
                    text: self
                        .tokenizer
                        .decode_target(&h.tokens, true)?
                        .trim()
                        .to_string(),
                    score: Some(h.score),
                    tokens: h.tokens.len(),
                    cut: !h.ended,
                })
            })
            .collect()
    }
}

/// How an LLM translates: the settings of a writer that apply to translation.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmTranslateSettings {
    /// Sampling and repetition penalty; `max_new_tokens` is set per segment from its
    /// length. The default has no repetition penalty: translation wants the sentence as
    /// it is, names and numbers repeated from the source included.
    pub generation: GenerateOptions,
    /// Cap on the tokens generated for one segment; `None`: about twice the source's.
    pub max_tokens: Option<usize>,
}

impl Default for LlmTranslateSettings {
    fn default() -> Self {
        LlmTranslateSettings {
            generation: GenerateOptions {
                repetition_penalty: 1.0,
                ..GenerateOptions::default()
            },
            max_tokens: None,
        }
    }
}

impl LlmTranslateSettings {
    /// The options of a writer's request these settings make: the summary-only fields
    /// (length, style, language), which translation prompts do not use, at their
    /// defaults.
    fn request_options(&self) -> SummaryOptions {
        SummaryOptions {
            generation: self.generation.clone(),
            max_tokens: self.max_tokens,
            ..SummaryOptions::default()
        }
    }
}

/// A [`TextWriter`] (the GGUF LLM engine) asked to translate one segment per request.
///
/// Decode options other than the length limit do not apply: its
/// [`LlmTranslateSettings`] do. It has no model score: `score` is `None`, which JSON
/// output shows as `null`.
pub struct LlmTranslator<W: TextWriter> {
    writer: W,
    /// What every request carries, made once from the settings.
    opts: SummaryOptions,
    budget: usize,
}

impl<W: TextWriter> LlmTranslator<W> {
    /// Wraps `writer`, to generate as `settings` say.
    pub fn new(writer: W, settings: &LlmTranslateSettings) -> Result<Self> {
        let opts = settings.request_options();
        let mut budget = usize::MAX;
        for (from, to) in [(Lang::Ru, Lang::En), (Lang::En, Lang::Ru)] {
            let req = WriteRequest {
                task: WriteTask::Translate,
                text: "",
                lang: to,
                source_lang: from,
                opts: &opts,
            };
            budget = budget.min(writer.input_budget(&req)?);
        }
        if budget == 0 {
            return Err(Error::Unsupported(
                "the model's context leaves no room for text to translate; give a larger --context"
                    .into(),
            ));
        }
        Ok(LlmTranslator {
            writer,
            opts,
            budget,
        })
    }

    /// The wrapped writer.
    pub fn writer(&self) -> &W {
        &self.writer
    }
}

impl<W: TextWriter> Translator for LlmTranslator<W> {
    fn engine_name(&self) -> &'static str {
        "llm"
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        self.writer.count_tokens(text)
    }

    fn prefers_context(&self) -> bool {
        true
    }

    fn max_source_tokens(&self) -> usize {
        self.budget
    }

    fn translate_batch(
        &mut self,
        segments: &[&str],
        from: Lang,
        to: Lang,
        _opts: &DecodeOptions,
    ) -> Result<Vec<Translation>> {
        segments
            .iter()
            .map(|text| {
                let req = WriteRequest {
                    task: WriteTask::Translate,
                    text,
                    lang: to,
                    source_lang: from,
                    opts: &self.opts,
                };
                let written = self.writer.write(&req, &mut |_| {})?;
                Ok(Translation {
                    text: written.text.trim().to_string(),
                    score: None,
                    tokens: written.tokens_out,
                    cut: written.looped,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Written;

    /// Writes the input back in capitals; budget 50 tokens of one word each.
    struct Shout;

    impl TextWriter for Shout {
        fn engine_name(&self) -> &'static str {
            "shout"
        }
        fn count_tokens(&self, text: &str) -> Result<usize> {
            Ok(text.split_whitespace().count())
        }
        fn input_budget(&self, req: &WriteRequest) -> Result<usize> {
            Ok(if req.lang == Lang::Ru { 50 } else { 60 })
        }
        fn write(&mut self, req: &WriteRequest, _: &mut dyn FnMut(&str)) -> Result<Written> {
            Ok(Written {
                text: format!(" {} ", req.text.to_uppercase()),
                tokens_in: 1,
                // As many tokens as the cap, when there is one.
                tokens_out: req.opts.max_tokens.unwrap_or(2),
                looped: false,
            })
        }
    }

    #[test]
    fn llm_translator_sends_one_request_per_segment() {
        let mut t = LlmTranslator::new(Shout, &LlmTranslateSettings::default()).unwrap();
        assert_eq!(t.max_source_tokens(), 50);
        assert_eq!(t.engine_name(), "llm");
        let out = t
            .translate_batch(
                &["привет", "мир"],
                Lang::Ru,
                Lang::En,
                &DecodeOptions::default(),
            )
            .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].text, "ПРИВЕТ");
        assert_eq!(out[1].score, None);
        assert_eq!(out[1].tokens, 2);
        // The settings reach every request.
        let capped = LlmTranslateSettings {
            max_tokens: Some(7),
            ..LlmTranslateSettings::default()
        };
        let mut t = LlmTranslator::new(Shout, &capped).unwrap();
        let out = t
            .translate_batch(&["мир"], Lang::Ru, Lang::En, &DecodeOptions::default())
            .unwrap();
        assert_eq!(out[0].tokens, 7);
    }

    #[test]
    fn tags_map_to_languages() {
        assert_eq!(tag_lang(">>rus<<"), Some(Lang::Ru));
        assert_eq!(tag_lang(">>eng<<"), Some(Lang::En));
        assert_eq!(tag_lang(">>ukr<<"), None);
    }

    fn fixture_translator(target_token: Option<&str>) -> Option<MarianTranslator> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let tokenizer = MarianTokenizer::from_dir(&root.join("spm/marian")).ok()?;
        let mut cfg = MarianConfig::from_file(&root.join("marian/base/config.json")).ok()?;
        // A model as large as the tokenizer's vocabulary, random weights: plumbing only.
        cfg.vocab_size = tokenizer.vocab_size();
        cfg.decoder_vocab_size = Some(cfg.vocab_size);
        cfg.pad_token_id = tokenizer.pad_id();
        cfg.decoder_start_token_id = tokenizer.pad_id();
        cfg.eos_token_id = tokenizer.eos_id();
        let mut ws = candle_core::safetensors::load(
            root.join("marian/base/model.safetensors"),
            &Device::Cpu,
        )
        .ok()?;
        let wide = |rows: usize, cols: usize| {
            // Deterministic pseudo-random values in (-0.5, 0.5).
            let data: Vec<f32> = (0..rows * cols)
                .map(|i| ((i as f32 * 12.9898).sin() * 43758.547).fract() * 0.5)
                .collect();
            candle_core::Tensor::from_vec(data, (rows, cols), &Device::Cpu)
        };
        ws.insert(
            "model.shared.weight".into(),
            wide(cfg.vocab_size, cfg.d_model).ok()?,
        );
        ws.insert("final_logits_bias".into(), wide(1, cfg.vocab_size).ok()?);
        let vb = candle_nn::VarBuilder::from_tensors(ws, DType::F32, &Device::Cpu);
        let model = MarianModel::new(&cfg, vb).ok()?;
        MarianTranslator::new(model, tokenizer, target_token).ok()
    }

    #[test]
    fn a_sentence_translates_to_the_same_bits_whatever_shares_its_batch() {
        let mut t = fixture_translator(None).expect("fixture model builds");
        let short = "The council met.";
        let others = [
            "A much longer sentence, with many more words than the first one has, follows here.",
            "Another one.",
        ];
        let beams = DecodeOptions {
            beam_size: 3,
            ..DecodeOptions::default()
        };
        for opts in [DecodeOptions::default(), beams] {
            let alone = t
                .translate_batch(&[short], Lang::En, Lang::Ru, &opts)
                .unwrap();
            let mixed = t
                .translate_batch(&[others[0], short, others[1]], Lang::En, Lang::Ru, &opts)
                .unwrap();
            assert_eq!(alone[0].text, mixed[1].text);
            assert_eq!(alone[0].tokens, mixed[1].tokens);
            let bits = |t: &Translation| t.score.map(f32::to_bits);
            assert!(bits(&alone[0]).is_some());
            assert_eq!(bits(&alone[0]), bits(&mixed[1]));
        }
    }

    #[test]
    fn marian_translator_tags_multi_target_models() {
        let Some(mut t) = fixture_translator(None) else {
            panic!("fixture model could not be built");
        };
        // The fixture vocabulary has >>rus<<, >>eng<< and >>ukr<<: multi-target.
        assert!(t.target_token(Lang::Ru).unwrap().is_some());
        let plain = t.tokenizer.encode_source("Hello world.").unwrap().len();
        assert_eq!(t.count_tokens("Hello world.").unwrap(), plain + 1);
        let opts = DecodeOptions {
            beam_size: 1,
            max_new_tokens: 5,
            ..DecodeOptions::default()
        };
        let out = t
            .translate_batch(
                &["Hello world.", "A longer one, here."],
                Lang::En,
                Lang::Ru,
                &opts,
            )
            .unwrap();
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|o| o.tokens <= 5));
        let long = "word ".repeat(200);
        assert!(t
            .translate_batch(&[long.as_str()], Lang::En, Lang::Ru, &opts)
            .is_err());
        assert!(fixture_translator(Some(">>xyz<<")).is_none());
    }
}
