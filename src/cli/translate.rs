//! `svodka translate`.

use clap::{Args, ValueEnum};

use super::{GlobalArgs, Input, InputArgs, LangArg, Outcome};
use crate::article::Lang;
use crate::engine::load::{self, LoadOptions, Loaded, WeightFormat};
use crate::engine::translator::MarianTranslator;
use crate::engine::Translator;
use crate::hub::download;
use crate::hub::registry::{Architecture, DefaultRole, ModelEntry, Registry};
use crate::pipeline::translate::{default_decode, Plan, TranslateOptions, TranslationReport};
use crate::{output, Error, Result};

/// Source language choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FromLang {
    /// Detect per paragraph.
    Auto,
    Ru,
    En,
}

/// Translation engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TranslateEngine {
    /// OPUS-MT Marian models, sentence by sentence in batches.
    Marian,
    /// A quantized LLM (GGUF), several sentences per request.
    Llm,
}

/// Number format of the Marian weights (`--dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    /// f32 on the CPU, f16 on GPUs.
    Auto,
    /// 32-bit floats.
    F32,
    /// Int8 weights and activations with per-row scales (CPU only): faster and about a
    /// quarter of the memory, at a small cost in fidelity (see README).
    Int8,
}

impl From<DtypeArg> for WeightFormat {
    fn from(d: DtypeArg) -> WeightFormat {
        match d {
            DtypeArg::Auto => WeightFormat::Auto,
            DtypeArg::F32 => WeightFormat::F32,
            DtypeArg::Int8 => WeightFormat::Int8,
        }
    }
}

/// Arguments of `svodka translate`.
#[derive(Debug, Args)]
pub struct TranslateArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Language to translate into.
    #[arg(long, value_enum)]
    pub to: LangArg,
    /// Language to translate from: auto detects it per paragraph and keeps paragraphs
    /// already in the target language; ru or en takes every paragraph to be in it.
    #[arg(long, value_enum, default_value_t = FromLang::Auto)]
    pub from: FromLang,
    /// Which engine translates.
    #[arg(long, value_enum, default_value_t = TranslateEngine::Marian)]
    pub engine: TranslateEngine,
    /// Model: registry name, Hub id (owner/name[@revision]) or a local folder
    /// (default: opus-mt-en-ru or opus-mt-ru-en by direction; qwen2.5-1.5b-instruct for llm).
    #[arg(short, long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Beams for Marian decoding; 1 (greedy) is the fastest. Sentences failing a check
    /// (lost numbers, loops) are decoded again with 4 beams (at least 5 after beam search).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub beam: u32,
    /// Number format of the Marian weights: auto is f32 on the CPU (f16 on GPUs); int8
    /// is faster on the CPU in a quarter of the memory, and picks a different token
    /// than f32 now and then.
    #[arg(long, value_enum, default_value_t = DtypeArg::Auto)]
    pub dtype: DtypeArg,
    /// Print each source paragraph next to its translation.
    #[arg(long)]
    pub side_by_side: bool,
    /// Do not decode failing sentences a second time (they are still reported).
    #[arg(long)]
    pub no_retry: bool,
    /// Most padded source tokens per batch (memory against speed).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    pub batch_tokens: u32,
    /// Context length in tokens for --engine llm.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(256..=131072))]
    pub context: u32,
}

/// Runs `svodka translate`.
pub fn run(global: &GlobalArgs, args: TranslateArgs) -> anyhow::Result<Outcome> {
    let to: Lang = args.to.into();
    let from = match args.from {
        FromLang::Auto => None,
        FromLang::Ru => Some(Lang::Ru),
        FromLang::En => Some(Lang::En),
    };
    if from == Some(to) {
        return Err(Error::Unsupported(format!(
            "--from and --to are both {to}: nothing to translate"
        ))
        .into());
    }
    let input = Input::from_args(&args.input)?;
    let name = input.display();
    let opts = TranslateOptions {
        to,
        from,
        decode: default_decode(args.beam as usize),
        retry: !args.no_retry,
        batch_tokens: args.batch_tokens as usize,
        ..TranslateOptions::default()
    };
    let article = input.read()?;
    let plan = Plan::new(&article, &opts).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let sources = plan.sources();
    let report = match sources.first() {
        None => plan.run(None),
        Some(&first) => {
            if sources.len() > 1 {
                // Only possible with more target languages than svodka has.
                return Err(Error::Unsupported(format!(
                    "{name}: paragraphs in several source languages ({sources:?})"
                ))
                .into());
            }
            let mut translator = load_translator(global, &args, first, to)?;
            plan.run(Some(translator.as_mut()))
        }
    }
    .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    report_messages(global, &name, &report);
    super::print(&output::translation(
        &report,
        &name,
        global.format.into(),
        args.side_by_side,
    ))?;
    Ok(Outcome::Ok)
}

/// Loads the engine for `from` → `to`.
fn load_translator(
    global: &GlobalArgs,
    args: &TranslateArgs,
    from: Lang,
    to: Lang,
) -> Result<Box<dyn Translator>> {
    match args.engine {
        TranslateEngine::Marian => {
            let spec = super::models::model_or_default(
                global,
                args.model.as_deref(),
                DefaultRole::Marian(from, to),
            )?;
            let marian = check_marian(global, &spec, from, to, args.dtype)?;
            Ok(Box::new(marian.load(global)?.engine))
        }
        TranslateEngine::Llm => {
            if args.beam != 1 {
                return Err(Error::Unsupported(
                    "--beam applies to --engine marian; the llm engine decodes greedily".into(),
                ));
            }
            let spec =
                super::models::model_or_default(global, args.model.as_deref(), DefaultRole::Llm)?;
            let (files, entry) = super::models::resolve(global, &spec)?;
            let arch = load::architecture(&files, entry.as_ref())?;
            if arch != Architecture::GgufLlm {
                return Err(Error::Unsupported(format!(
                    "model {spec} is a {arch:?} model, not a GGUF LLM; use --engine marian for Marian models"
                )));
            }
            let opts =
                super::models::load_options(global, WeightFormat::Auto, args.context as usize)?;
            Ok(load::translator(&files, entry.as_ref(), &opts)?.engine)
        }
    }
}

/// A Marian model for one direction whose flags and registry entry have been checked,
/// not yet downloaded or loaded.
pub struct MarianChoice {
    spec: String,
    entry: Option<ModelEntry>,
    registry: Registry,
    opts: LoadOptions,
}

/// Checks `spec` as a Marian model for `from` → `to` in the number format `dtype_arg`
/// on the chosen device, before anything is downloaded or loaded: an impossible
/// combination fails at once.
pub fn check_marian(
    global: &GlobalArgs,
    spec: &str,
    from: Lang,
    to: Lang,
    dtype_arg: DtypeArg,
) -> Result<MarianChoice> {
    let opts = super::models::load_options(global, dtype_arg.into(), 0)?;
    opts.weights.resolve(&opts.device)?;
    let registry = super::models::registry(global)?;
    let entry = registry.get(spec).cloned();
    check_marian_entry(spec, entry.as_ref(), from, to)?;
    Ok(MarianChoice {
        spec: spec.to_string(),
        entry,
        registry,
        opts,
    })
}

impl MarianChoice {
    /// Resolves the model (downloading it unless `--offline`) and opens it.
    pub fn load(&self, global: &GlobalArgs) -> Result<Loaded<MarianTranslator>> {
        let spec = &self.spec;
        let files = download::resolve(spec, &self.registry, &super::models::fetch_options(global))?;
        if let Some(arch) = files.architecture.filter(|a| *a != Architecture::Marian) {
            return Err(Error::Unsupported(format!(
                "model {spec} is a {arch:?} model, not a Marian translation model"
            )));
        }
        Ok(Loaded {
            engine: load::marian(&files, self.entry.as_ref(), &self.opts)?,
            name: spec.clone(),
            revision: files.revision.clone(),
        })
    }
}

/// Refuses a registry model that is not Marian or does not translate `from` → `to`:
/// checked before anything is downloaded or loaded.
pub fn check_marian_entry(
    spec: &str,
    entry: Option<&ModelEntry>,
    from: Lang,
    to: Lang,
) -> Result<()> {
    if let Some(e) = entry {
        if e.architecture != Architecture::Marian {
            return Err(Error::Unsupported(format!(
                "model {spec} is not a Marian translation model; use --engine llm for LLMs"
            )));
        }
        let pair = format!("{from}-{to}");
        if !e.languages.is_empty() && !e.languages.contains(&pair) {
            return Err(Error::Unsupported(format!(
                "model {spec} translates {}, not {pair}",
                e.languages.join(", ")
            )));
        }
    }
    Ok(())
}

/// Notes and problems on stderr (unless `--quiet`), and run figures with `--verbose`.
fn report_messages(global: &GlobalArgs, name: &str, report: &TranslationReport) {
    if global.quiet {
        return;
    }
    for n in &report.notes {
        eprintln!("svodka: {name}: note: {n}");
    }
    for p in &report.problems {
        let where_ = match p.paragraph {
            Some(i) => format!("paragraph {}", i + 1),
            None => "headline".to_string(),
        };
        let source = match p.segment {
            Some(i) => report.segments.get(i).map(|s| short(&s.source)),
            None => match p.paragraph {
                Some(i) => report.paragraphs.get(i).map(|t| short(&t.source.text)),
                None => report.source_title.as_deref().map(short),
            },
        }
        .unwrap_or_default();
        eprintln!(
            "svodka: {name}: warning: {where_}, {source:?}: {}",
            p.problem
        );
    }
    if global.verbose {
        let s = &report.stats;
        eprintln!(
            "svodka: {name}: {} segment(s), {} unit(s) in {} batch(es), {} retried, {} problem(s), {} ms",
            report.segments.len(),
            s.units,
            s.batches,
            s.retried,
            report.problems.len(),
            s.elapsed_ms
        );
    }
}

/// The first 60 characters of `s`, with an ellipsis when cut.
fn short(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}
