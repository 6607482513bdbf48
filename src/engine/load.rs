//! Opening models: the engine is chosen from what the files are (the registry's
//! architecture, else what the download layer recognised), as text-embeddings-inference
//! picks a backend from a model's config, so that no caller decides engine behaviour
//! from a name. Each function returns the engine with the name and revision it was
//! loaded as, which manifests and server logs record.

use candle_core::{DType, Device};

use super::llm::{LlmEngine, LlmLoadOptions, PromptStyle};
use super::marian::Quantization;
use super::t5::T5Summarizer;
use super::translator::{LlmTranslateSettings, LlmTranslator, MarianLoadOptions, MarianTranslator};
use super::{TextWriter, Translator};
use crate::hub::download::ModelFiles;
use crate::hub::registry::{Architecture, ModelEntry};
use crate::{Error, Result};

/// Number format of a translation model's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// f32 on the CPU, f16 on GPUs.
    #[default]
    Auto,
    /// 32-bit floats.
    F32,
    /// Int8 weights and activations with per-row scales (CPU only).
    Int8,
}

impl WeightFormat {
    /// Weight type and quantization on `device`; int8 off the CPU is refused.
    pub fn resolve(self, device: &Device) -> Result<(DType, Quantization)> {
        match self {
            WeightFormat::Auto if device.is_cpu() => Ok((DType::F32, Quantization::None)),
            WeightFormat::Auto => Ok((DType::F16, Quantization::None)),
            WeightFormat::F32 => Ok((DType::F32, Quantization::None)),
            WeightFormat::Int8 if device.is_cpu() => Ok((DType::F32, Quantization::Int8)),
            WeightFormat::Int8 => Err(Error::Unsupported(
                "--dtype int8 runs on the CPU only; use --device cpu or another --dtype".into(),
            )),
        }
    }
}

/// How to open a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where it runs.
    pub device: Device,
    /// Weight format of translation models (Marian).
    pub weights: WeightFormat,
    /// Context length of LLMs, in tokens.
    pub context: usize,
    /// Print what was loaded, and LLM timings, on stderr.
    pub verbose: bool,
}

/// An engine with the name and revision it was loaded as.
pub struct Loaded<E> {
    /// The engine.
    pub engine: E,
    /// Model name as asked for (registry alias, Hub id or path).
    pub name: String,
    /// Revision, for Hub models.
    pub revision: Option<String>,
}

/// The loading code `files` need: the registry's word, else what was recognised.
pub fn architecture(files: &ModelFiles, entry: Option<&ModelEntry>) -> Result<Architecture> {
    entry
        .map(|e| e.architecture)
        .or(files.architecture)
        .or_else(|| files.gguf().map(|_| Architecture::GgufLlm))
        .ok_or_else(|| {
            Error::Model(format!(
                "model {}: cannot tell what kind of model {} holds (no config.json model_type, no .gguf)",
                files.name,
                files.root.display()
            ))
        })
}

/// A translator for `files`: Marian models translate in padded batches, GGUF LLMs one
/// prompt per run of sentences.
pub fn translator(
    files: &ModelFiles,
    entry: Option<&ModelEntry>,
    opts: &LoadOptions,
) -> Result<Loaded<Box<dyn Translator + Send>>> {
    let engine: Box<dyn Translator + Send> = match architecture(files, entry)? {
        Architecture::Marian => Box::new(marian(files, entry, opts)?),
        Architecture::GgufLlm => {
            let llm = llm(files, entry, opts)?;
            Box::new(LlmTranslator::new(llm, &LlmTranslateSettings::default())?)
        }
        Architecture::T5 => {
            return Err(Error::Unsupported(format!(
                "model {} is a T5 summarization model, not a translation model",
                files.name
            )))
        }
    };
    Ok(Loaded {
        engine,
        name: files.name.clone(),
        revision: files.revision.clone(),
    })
}

/// A neural writer (summaries) for `files`: a GGUF LLM or an mT5/T5 model.
pub fn writer(
    files: &ModelFiles,
    entry: Option<&ModelEntry>,
    opts: &LoadOptions,
) -> Result<Loaded<Box<dyn TextWriter + Send>>> {
    let engine: Box<dyn TextWriter + Send> = match architecture(files, entry)? {
        Architecture::GgufLlm => Box::new(llm(files, entry, opts)?),
        Architecture::T5 => Box::new(t5(files, opts)?),
        Architecture::Marian => {
            return Err(Error::Unsupported(format!(
                "model {} is a Marian translation model, not a summarizer",
                files.name
            )))
        }
    };
    Ok(Loaded {
        engine,
        name: files.name.clone(),
        revision: files.revision.clone(),
    })
}

/// Opens a Marian model (`config.json`, weights, SentencePiece tokenizer).
pub fn marian(
    files: &ModelFiles,
    entry: Option<&ModelEntry>,
    opts: &LoadOptions,
) -> Result<MarianTranslator> {
    let (dtype, quant) = opts.weights.resolve(&opts.device)?;
    let translator = MarianTranslator::load(
        files,
        &MarianLoadOptions {
            dtype,
            device: opts.device.clone(),
            quant,
            target_token: entry.and_then(|e| e.target_token.clone()),
        },
    )?;
    if opts.verbose {
        let c = translator.model().config();
        eprintln!(
            "svodka: model {}: {} ({} encoder / {} decoder layers, d_model {}, vocab {}), {} on {}",
            files.name,
            files.root.display(),
            c.encoder_layers,
            c.decoder_layers,
            c.d_model,
            c.vocab_size,
            translator.dtype_name(),
            device_name(&opts.device)
        );
    }
    Ok(translator)
}

/// Opens a GGUF LLM, with the prompt style the registry asks for.
pub fn llm(
    files: &ModelFiles,
    entry: Option<&ModelEntry>,
    opts: &LoadOptions,
) -> Result<LlmEngine> {
    let gguf = files.gguf().ok_or_else(|| {
        Error::Model(format!(
            "model {} has no .gguf file; the llm engine runs GGUF models",
            files.name
        ))
    })?;
    let style = entry.and_then(prompt_style);
    let start = std::time::Instant::now();
    let mut engine = LlmEngine::load(
        gguf,
        &opts.device,
        &LlmLoadOptions {
            context: opts.context,
            style,
        },
    )?;
    if opts.verbose {
        let c = engine.model().config();
        eprintln!(
            "svodka: model {}: {} ({:?}), {} layers, context {}, {:?} prompts, on {}, loaded in {:.3} s",
            files.name,
            gguf.display(),
            c.family,
            c.n_layer,
            opts.context,
            engine.style(),
            device_name(&opts.device),
            start.elapsed().as_secs_f64()
        );
        engine.set_verbose(true);
    }
    Ok(engine)
}

/// Opens an mT5/T5 summarizer.
pub fn t5(files: &ModelFiles, opts: &LoadOptions) -> Result<T5Summarizer> {
    super::t5::load(files, &opts.device)
}

/// The prompt style a registry entry asks for (`prompts = { style = "completion" }`).
fn prompt_style(entry: &ModelEntry) -> Option<PromptStyle> {
    let style = entry.prompts.as_ref()?.get("style")?.as_str()?;
    match style {
        "chat" => Some(PromptStyle::Chat),
        "completion" => Some(PromptStyle::Completion),
        _ => None,
    }
}

/// A device's name for messages.
pub fn device_name(device: &Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}
