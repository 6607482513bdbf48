//! `svodka summarize`.

use std::io::{IsTerminal, Write};

use clap::{Args, ValueEnum};

use super::{GlobalArgs, Input, InputArgs, LangArg, Outcome};
use crate::engine::extractive::Extractive;
use crate::engine::llm::{GenerateOptions, Sampling};
use crate::engine::{SummaryOptions, SummaryStyle, TextWriter};
use crate::hub::registry::DefaultRole;
use crate::pipeline::summarize::{self as pipe, AbstractiveRun};
use crate::{output, Error};

/// Summarizer engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryEngine {
    /// Sentence ranking over the article itself; needs no model.
    Extractive,
    /// A quantized LLM (GGUF): Qwen, Gemma, Llama.
    Llm,
    /// An mT5/T5 sequence-to-sequence model.
    T5,
}

/// Summary shapes on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StyleArg {
    /// A short paragraph.
    Brief,
    /// Bullet points.
    Bullets,
    /// One headline.
    Headline,
}

/// Text-generation flags shared by the neural engines.
#[derive(Debug, Args)]
pub struct GenerationArgs {
    /// Model: registry name, Hub id (owner/name[@revision]) or a local file or folder.
    #[arg(short, long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Context length in tokens for LLMs (long articles are map-reduced to fit it).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(256..=131072))]
    pub context: u32,
    /// Sampling temperature; 0 (default) is greedy and reproducible.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass.
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Keep only the K most likely tokens when sampling.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 299_792_458)]
    pub seed: u64,
    /// Penalty on repeating recent tokens (1.0 = none).
    #[arg(long, default_value_t = 1.1)]
    pub repetition_penalty: f32,
    /// Most tokens to generate per request (default: from the length asked).
    #[arg(long)]
    pub max_tokens: Option<usize>,
}

impl GenerationArgs {
    /// Checked generation options.
    pub fn generate_options(&self) -> Result<GenerateOptions, Error> {
        if !(0.0..=5.0).contains(&self.temperature) {
            return Err(Error::Unsupported(format!(
                "--temperature {} is out of range 0..5",
                self.temperature
            )));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(Error::Unsupported(format!(
                    "--top-p {p} is out of range (0, 1]"
                )));
            }
        }
        if !(self.repetition_penalty >= 1.0 && self.repetition_penalty <= 3.0) {
            return Err(Error::Unsupported(format!(
                "--repetition-penalty {} is out of range 1..3",
                self.repetition_penalty
            )));
        }
        Ok(GenerateOptions {
            max_new_tokens: self.max_tokens.unwrap_or(256),
            sampling: Sampling {
                temperature: self.temperature,
                top_p: self.top_p,
                top_k: self.top_k,
                seed: self.seed,
            },
            repetition_penalty: self.repetition_penalty,
            ..GenerateOptions::default()
        })
    }
}

/// Arguments of `svodka summarize`.
#[derive(Debug, Args)]
pub struct SummarizeArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Which engine writes the summary.
    #[arg(long, value_enum, default_value_t = SummaryEngine::Llm)]
    pub engine: SummaryEngine,
    /// Number of sentences in the summary.
    #[arg(short = 'n', long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub sentences: u32,
    /// Word budget for the summary, instead of a sentence count.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub words: Option<u32>,
    /// Shape of the summary (neural engines).
    #[arg(long, value_enum, default_value_t = StyleArg::Brief)]
    pub style: StyleArg,
    /// Language of the summary (default: the article's).
    #[arg(long, value_enum)]
    pub lang: Option<LangArg>,
    #[command(flatten)]
    pub generation: GenerationArgs,
}

/// Runs `svodka summarize`.
pub fn run(global: &GlobalArgs, args: SummarizeArgs) -> anyhow::Result<Outcome> {
    let input = Input::from_args(&args.input)?;
    let opts = SummaryOptions {
        sentences: args.sentences as usize,
        words: args.words.map(|w| w as usize),
        lang: args.lang.map(Into::into),
        style: match args.style {
            StyleArg::Brief => SummaryStyle::Brief,
            StyleArg::Bullets => SummaryStyle::Bullets,
            StyleArg::Headline => SummaryStyle::Headline,
        },
        generation: args.generation.generate_options()?,
        max_tokens: args.generation.max_tokens,
    };
    let name = input.display();
    let format = global.format.into();
    let report = match args.engine {
        SummaryEngine::Extractive => {
            if args.generation.model.is_some() {
                return Err(Error::Unsupported(
                    "--model has no meaning for --engine extractive, which needs no model".into(),
                )
                .into());
            }
            let article = input.read()?;
            pipe::summarize(&article, &mut Extractive, &opts)
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?
        }
        SummaryEngine::Llm | SummaryEngine::T5 => {
            // Check the input before the (slow) model load.
            let article = input.read()?;
            let source_lang = pipe::readable_part(&article)
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?
                .lang;
            let loaded = if args.engine == SummaryEngine::Llm {
                let spec = super::models::model_or_default(
                    global,
                    args.generation.model.as_deref(),
                    DefaultRole::Llm,
                )?;
                let l = super::models::load_llm(global, &spec, args.generation.context as usize)?;
                Loaded {
                    writer: Box::new(l.engine),
                    name: l.name,
                    revision: l.revision,
                }
            } else {
                if opts.lang.is_some_and(|l| l != source_lang) {
                    return Err(anyhow::anyhow!(
                        "{name}: the t5 engine writes summaries in the article's own language ({source_lang}); use --engine llm for --lang"
                    ));
                }
                let spec = super::models::model_or_default(
                    global,
                    args.generation.model.as_deref(),
                    DefaultRole::T5,
                )?;
                let l = super::models::load_t5(global, &spec)?;
                Loaded {
                    writer: Box::new(l.engine),
                    name: l.name,
                    revision: l.revision,
                }
            };
            match run_writer(global, &name, &article, loaded, &opts, format)? {
                Some(report) => report,
                None => return Ok(Outcome::Ok),
            }
        }
    };
    if global.verbose {
        eprintln!(
            "svodka: {name}: language {} ({:.2}), engine {}{}, {} ms",
            report.language.lang,
            report.language.confidence,
            report.engine,
            report
                .stats
                .as_ref()
                .map(|s| format!(
                    ", {} chunk(s), {} pass(es), {} tokens in, {} out",
                    s.chunks, s.passes, s.tokens_in, s.tokens_out
                ))
                .unwrap_or_default(),
            report.elapsed_ms
        );
    }
    report_warnings(global, &name, &report);
    super::print(&output::summary(&report, &name, format))?;
    Ok(Outcome::Ok)
}

/// A loaded neural writer and what it was loaded as.
struct Loaded {
    writer: Box<dyn TextWriter>,
    name: String,
    revision: Option<String>,
}

/// Summarizes with a neural writer, streaming to a terminal; returns the report unless
/// it was already streamed out.
fn run_writer(
    global: &GlobalArgs,
    name: &str,
    article: &crate::article::Article,
    mut loaded: Loaded,
    opts: &SummaryOptions,
    format: output::Format,
) -> anyhow::Result<Option<pipe::SummaryReport>> {
    let stream = format == output::Format::Text && std::io::stdout().is_terminal();
    let mut streamed = false;
    let mut on_text = |t: &str| {
        streamed = true;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(t.as_bytes());
        let _ = out.flush();
    };
    let mut on_progress = |l: &str| eprintln!("svodka: {name}: {l}");
    let run = AbstractiveRun {
        model: Some(loaded.name),
        revision: loaded.revision,
        on_text: if stream { Some(&mut on_text) } else { None },
        on_progress: if global.verbose {
            Some(&mut on_progress)
        } else {
            None
        },
    };
    let report = pipe::summarize_with(article, loaded.writer.as_mut(), opts, run)
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    if streamed {
        super::print("\n")?;
        report_warnings(global, name, &report);
        return Ok(None);
    }
    Ok(Some(report))
}

fn report_warnings(global: &GlobalArgs, name: &str, report: &pipe::SummaryReport) {
    if !global.quiet {
        for w in &report.warnings {
            eprintln!("svodka: {name}: warning: {w}");
        }
    }
}
