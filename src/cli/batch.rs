//! `svodka batch`: summarize and/or translate a folder of articles into a mirrored
//! folder, resumably, optionally as one shard of many; `--merge-manifests` combines the
//! shards' records.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use super::summarize::SummaryEngine;
use super::translate::{check_marian, DtypeArg, MarianChoice};
use super::{GlobalArgs, LangArg, Outcome};
use crate::article::Lang;
use crate::batch::stream::{self, StreamConfig, StreamTasks};
use crate::batch::{
    self, Config, DiscoverOptions, LoadOptions, Shard, SummarizeSpec, SummarizeTask,
    SummaryEngines, Task, TranslateSpec, TranslateTask,
};
use crate::engine::extractive::Extractive;
use crate::engine::{Summarizer, SummaryOptions};
use crate::hub::registry::DefaultRole;
use crate::output::Format;
use crate::pipeline::translate::{default_decode, TranslateOptions};
use crate::{Error, Result};

/// What to do to every document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BatchTask {
    /// Write a summary of each article.
    Summarize,
    /// Write a translation of each article (needs --to).
    Translate,
    /// Both a summary and a translation.
    Both,
}

/// Arguments of `svodka batch`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  svodka batch news/ --out briefs/ --digest
  svodka batch news/ --out briefs/ --include '*.html' --exclude 'drafts' -n 5 --format markdown
  svodka batch news/ --out ru/ --task translate --to ru  (Marian model loaded once)
  svodka batch news/ --out both/ --task both --to en --batch-docs 16
  svodka batch news/ --out briefs/ --engine llm --summary-model qwen2.5-1.5b-instruct
  svodka batch dump/ --out briefs/ --field body          (JSON/JSONL records, text in \"body\")
  svodka batch news/ --out /shared/briefs --shard 2/8    (one of 8 processes)
  svodka batch --merge-manifests /shared/briefs --digest

Outputs mirror the input tree: news/sub/a.txt gives briefs/sub/a.summary.txt and, when
translating, briefs/sub/a.translation.txt (.md, .json with --format). Translation runs one
model for the whole process; the sentences of --batch-docs documents are translated
together, while reading and writing go on in --jobs threads. Documents already in the
target language are written unchanged, with a note in the JSON output.
briefs/manifest.jsonl gets one line per document and task done or failed: input, content
sha256, task, engine, model, revision, options fingerprint, output, status (done, failed),
error and timings. A run that is stopped or killed keeps what it finished; the
same command again skips every document whose content and options are unchanged and whose
output is intact (--force redoes them), counting them in its last line without adding
manifest lines. Documents that failed are tried again. One run at a time writes into an
output folder (it holds OUT/.svodka.lock); a second is refused.

Exit status: 0 all done or skipped, 1 some documents failed (or Ctrl-C stopped the run),
2 bad arguments. With --shard, each shard writes manifest-shard-I-of-N.jsonl and only
clears its own temporary files, so shards may share one --out folder.")]
pub struct BatchArgs {
    /// Folder of articles (.txt .md .html .htm, and .json/.jsonl records).
    #[arg(
        value_name = "DIR",
        required_unless_present_any = ["merge_manifests", "jsonl"],
        conflicts_with_all = ["merge_manifests", "jsonl"]
    )]
    pub dir: Option<PathBuf>,
    /// Folder to write the results into (must not be inside DIR, nor hold it).
    #[arg(
        long,
        value_name = "OUT_DIR",
        required_unless_present_any = ["merge_manifests", "jsonl"],
        conflicts_with = "jsonl"
    )]
    pub out: Option<PathBuf>,
    /// What to do to each document.
    #[arg(long, value_enum, default_value_t = BatchTask::Summarize)]
    pub task: BatchTask,
    /// Target language of translations.
    #[arg(long, value_enum)]
    pub to: Option<LangArg>,
    /// Translation model: registry name, Hub id (owner/name[@revision]) or a local
    /// Marian folder (default: opus-mt-en-ru or opus-mt-ru-en by --to). Loaded once.
    #[arg(short, long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Beams for Marian decoding; 1 (greedy) is the fastest.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub beam: u32,
    /// Number format of the Marian weights (see `svodka translate --help`).
    #[arg(long, value_enum, default_value_t = DtypeArg::Auto)]
    pub dtype: DtypeArg,
    /// Do not decode failing sentences a second time with beams (they are still
    /// reported in the JSON output).
    #[arg(long)]
    pub no_retry: bool,
    /// Documents whose sentences are translated together in full batches; 1 translates
    /// one document at a time.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub batch_docs: u32,
    /// Which engine writes the summaries.
    #[arg(long, value_enum, default_value_t = SummaryEngine::Extractive)]
    pub engine: SummaryEngine,
    /// Summarizer model for --engine llm or t5: registry name, Hub id or local path
    /// (default: qwen2.5-1.5b-instruct, mt5-xlsum). Loaded once.
    #[arg(long, value_name = "MODEL")]
    pub summary_model: Option<String>,
    /// Context length in tokens for --engine llm (long articles are map-reduced to fit).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(256..=131072))]
    pub context: u32,
    /// Number of sentences in each summary.
    #[arg(short = 'n', long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub sentences: u32,
    /// Word budget for each summary, instead of a sentence count.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub words: Option<u32>,
    /// Language of the summaries (default: each article's).
    #[arg(long, value_enum)]
    pub lang: Option<LangArg>,
    /// Take only files whose path (relative to DIR) matches this glob; repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out files and folders whose relative path matches this glob; repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Field holding the article text in .json and .jsonl records.
    #[arg(long, value_name = "NAME", default_value = "text")]
    pub field: String,
    /// Largest document file to read (bytes; K, M, G suffixes): bigger ones fail with a
    /// clear reason, unread. The default is far above any news page; the extractive
    /// summarizer also refuses articles of more than 256 KiB of text.
    #[arg(long, value_name = "SIZE", default_value = "8M", value_parser = parse_size)]
    pub max_size: u64,
    /// Documents read, summarized and written at once (default: the number of CPUs);
    /// translation uses one model, which takes its documents in turn.
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,
    /// Process only shard I of N (0-based), chosen by a hash of each file's path.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Redo documents that are already done.
    #[arg(long)]
    pub force: bool,
    /// Also write OUT_DIR/digest.md: every summary, newest article first.
    #[arg(long)]
    pub digest: bool,
    /// Stream mode: read JSON records, one per line, from FILE (`-`: standard input) and
    /// write one JSON result per record and task to standard output, in input order.
    /// A record is {"id", "text" or "path", and optionally "format", "sentences",
    /// "words", "style", "lang", "to"}; a bad record gets an error record.
    #[arg(
        long,
        value_name = "FILE|-",
        conflicts_with_all = ["merge_manifests", "shard", "force", "digest", "include", "exclude", "files_from"]
    )]
    pub jsonl: Option<PathBuf>,
    /// Take the files to process from LIST (`-`: standard input), one path relative to
    /// DIR per line, instead of walking DIR: list once, hand the same list to every shard.
    #[arg(long, value_name = "LIST|-")]
    pub files_from: Option<PathBuf>,
    /// Merge the manifests of these output folders (of shards) into --out (default: the
    /// first folder), keeping the latest line per document and task; processes nothing.
    #[arg(long, value_name = "OUT_DIR", num_args = 1..)]
    pub merge_manifests: Vec<PathBuf>,
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    Shard::parse(s).map_err(|e| e.to_string())
}

/// Parses `4M`, `512k`, `1GiB`, `1000` into bytes (binary multiples).
pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected a size such as 4M, 512K or 1000000"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => return Err(format!("{s:?}: unknown unit {other:?}; use K, M or G")),
    };
    n.checked_mul(1 << shift)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("{s:?}: size must be above zero and fit in 64 bits"))
}

/// Runs `svodka batch`; `watch_ctrl_c` (see [`super::run`]) is called once the models
/// are loaded, when the folder's documents are about to be processed.
pub fn run(
    global: &GlobalArgs,
    args: BatchArgs,
    watch_ctrl_c: impl FnOnce() -> Arc<AtomicBool>,
) -> anyhow::Result<Outcome> {
    if !args.merge_manifests.is_empty() {
        return merge(global, &args);
    }
    if let Some(input) = &args.jsonl {
        return run_stream(global, &args, input);
    }
    let (Some(input), Some(out)) = (args.dir.clone(), args.out.clone()) else {
        return Err(Error::Unsupported("give a DIR to process and --out OUT_DIR".into()).into());
    };
    let jobs = jobs(&args);
    let (summarize, translate) =
        Settings::check(global, &args)?.load(global, jobs, global.format.into())?;
    let mut tasks: Vec<&dyn Task> = Vec::new();
    if let Some(t) = &summarize {
        tasks.push(t);
    }
    if let Some(t) = &translate {
        tasks.push(t);
    }
    let config = Config {
        input,
        out,
        discover: DiscoverOptions {
            include: args.include,
            exclude: args.exclude,
            files_from: args.files_from,
        },
        load: LoadOptions {
            max_size: args.max_size,
            field: args.field,
        },
        jobs,
        shard: args.shard,
        force: args.force,
        digest: args.digest,
        progress: !global.quiet,
        summary_line: !global.quiet,
        stop: watch_ctrl_c(),
    };
    let summary = batch::run(&config, &tasks)?;
    Ok(if summary.is_partial() {
        Outcome::Partial
    } else {
        Outcome::Ok
    })
}

/// Worker threads: --jobs, else one per CPU.
fn jobs(args: &BatchArgs) -> usize {
    match args.jobs {
        Some(j) => j as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// `svodka batch --jsonl FILE|-`: records in, one JSON result per record and task out.
fn run_stream(global: &GlobalArgs, args: &BatchArgs, input: &Path) -> anyhow::Result<Outcome> {
    let reader: Box<dyn Read + Send> = if input.as_os_str() == "-" {
        if std::io::stdin().is_terminal() {
            return Err(Error::Unsupported(
                "--jsonl -: standard input is a terminal; pipe JSON records into it".into(),
            )
            .into());
        }
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(input).map_err(|e| Error::io(input, e))?)
    };
    let jobs = jobs(args);
    // Results carry the CLI's JSON output, whatever --format says.
    let (summarize, translate) = Settings::check(global, args)?.load(global, jobs, Format::Json)?;
    let config = StreamConfig {
        max_size: args.max_size,
        jobs,
        summary_line: !global.quiet,
    };
    let tasks = StreamTasks {
        summarize: summarize.as_ref(),
        translate: translate.as_ref(),
    };
    let mut stdout = std::io::stdout().lock();
    let done = stream::run(reader, &mut stdout, tasks, &config)?;
    Ok(if done.failed > 0 {
        Outcome::Partial
    } else {
        Outcome::Ok
    })
}

/// The task flags checked (ripgrep's low-level arguments made high-level): every flag
/// combination, model name, registry entry, device and number format that can be
/// refused without loading a model has been, so that `--task both` with a wrong
/// translation model fails before the summarizer has spent minutes loading.
/// [`Settings::load`] then loads the models.
struct Settings {
    summarize: Option<SummarizeSettings>,
    translate: Option<TranslateSettings>,
}

/// The summarizer to load and what it is asked for.
struct SummarizeSettings {
    engine: SummaryChoice,
    opts: SummaryOptions,
}

/// A summarizer engine with its model: as given, else the registry's default.
enum SummaryChoice {
    Extractive,
    Llm { model: String, context: usize },
    T5 { model: String },
}

/// The translator to load, checked for its direction, and how it translates.
struct TranslateSettings {
    marian: MarianChoice,
    opts: TranslateOptions,
    batch_docs: usize,
}

impl Settings {
    /// Checks the task flags; loads nothing.
    fn check(global: &GlobalArgs, args: &BatchArgs) -> Result<Settings> {
        if args.task == BatchTask::Summarize && args.model.is_some() {
            return Err(Error::Unsupported(
                "--model names the translation model: add --task translate or both".into(),
            ));
        }
        let to = match (args.task, args.to) {
            (BatchTask::Summarize, _) => None,
            (_, Some(to)) => Some(Lang::from(to)),
            (_, None) => {
                return Err(Error::Unsupported(format!(
                    "--task {} needs --to ru or --to en",
                    format!("{:?}", args.task).to_lowercase()
                )))
            }
        };
        let summarize = match args.task {
            BatchTask::Translate => None,
            _ => Some(SummarizeSettings::check(global, args)?),
        };
        let translate = match to {
            Some(to) => Some(TranslateSettings::check(global, args, to)?),
            None => None,
        };
        Ok(Settings {
            summarize,
            translate,
        })
    }

    /// Loads the models into the tasks, their outputs rendered in `format`.
    fn load(
        self,
        global: &GlobalArgs,
        jobs: usize,
        format: Format,
    ) -> Result<(Option<SummarizeTask>, Option<TranslateTask>)> {
        let summarize = match self.summarize {
            Some(s) => Some(s.load(global, jobs, format)?),
            None => None,
        };
        let translate = match self.translate {
            Some(t) => Some(t.load(global, format)?),
            None => None,
        };
        Ok((summarize, translate))
    }
}

impl SummarizeSettings {
    fn check(global: &GlobalArgs, args: &BatchArgs) -> Result<SummarizeSettings> {
        let model =
            |role| super::models::model_or_default(global, args.summary_model.as_deref(), role);
        let engine = match args.engine {
            SummaryEngine::Extractive => {
                if args.summary_model.is_some() {
                    return Err(Error::Unsupported(
                        "--summary-model has no meaning for --engine extractive, which needs no model"
                            .into(),
                    ));
                }
                SummaryChoice::Extractive
            }
            SummaryEngine::Llm => SummaryChoice::Llm {
                model: model(DefaultRole::Llm)?,
                context: args.context as usize,
            },
            SummaryEngine::T5 => SummaryChoice::T5 {
                model: model(DefaultRole::T5)?,
            },
        };
        Ok(SummarizeSettings {
            engine,
            opts: SummaryOptions {
                sentences: args.sentences as usize,
                words: args.words.map(|w| w as usize),
                lang: args.lang.map(Into::into),
                ..SummaryOptions::default()
            },
        })
    }

    /// The summaries: extractive with one engine per worker, or one neural model loaded
    /// once.
    fn load(self, global: &GlobalArgs, jobs: usize, format: Format) -> Result<SummarizeTask> {
        // Neural engines map-reduce long articles; ranking is quadratic in sentences.
        let max_text =
            matches!(self.engine, SummaryChoice::Extractive).then_some(batch::EXTRACTIVE_MAX_TEXT);
        let (engines, model, revision) = self.engine.load(global, jobs)?;
        SummarizeTask::new(SummarizeSpec {
            engines,
            model,
            revision,
            opts: self.opts,
            format,
            max_text,
        })
    }
}

impl SummaryChoice {
    /// The engines with the model id and revision the manifest keeps: one extractive
    /// ranker per worker (cheap, sharing nothing), or one neural model that uses every
    /// core by itself.
    fn load(
        &self,
        global: &GlobalArgs,
        jobs: usize,
    ) -> Result<(SummaryEngines, Option<String>, Option<String>)> {
        match self {
            SummaryChoice::Extractive => {
                let all = (0..jobs)
                    .map(|_| Box::new(Extractive) as Box<dyn Summarizer + Send>)
                    .collect();
                Ok((
                    SummaryEngines::Rankers(all),
                    None,
                    Some(env!("CARGO_PKG_VERSION").to_string()),
                ))
            }
            SummaryChoice::Llm { model, context } => {
                let l = super::models::load_llm(global, model, *context)?;
                Ok((
                    SummaryEngines::Writer(Box::new(l.engine)),
                    Some(l.name),
                    l.revision,
                ))
            }
            SummaryChoice::T5 { model } => {
                let l = super::models::load_t5(global, model)?;
                Ok((
                    SummaryEngines::Writer(Box::new(l.engine)),
                    Some(l.name),
                    l.revision,
                ))
            }
        }
    }
}

impl TranslateSettings {
    /// Checks the translation model for the direction into `to`: its registry entry must
    /// translate that pair, and its number format run on the device.
    fn check(global: &GlobalArgs, args: &BatchArgs, to: Lang) -> Result<TranslateSettings> {
        let from = match to {
            Lang::Ru => Lang::En,
            Lang::En => Lang::Ru,
        };
        let spec = super::models::model_or_default(
            global,
            args.model.as_deref(),
            DefaultRole::Marian(from, to),
        )?;
        Ok(TranslateSettings {
            marian: check_marian(global, &spec, from, to, args.dtype)?,
            opts: TranslateOptions {
                to,
                decode: default_decode(args.beam as usize),
                retry: !args.no_retry,
                ..TranslateOptions::default()
            },
            batch_docs: args.batch_docs as usize,
        })
    }

    /// Loads the Marian model once.
    fn load(self, global: &GlobalArgs, format: Format) -> Result<TranslateTask> {
        let l = self.marian.load(global)?;
        Ok(TranslateTask::new(TranslateSpec {
            translator: Box::new(l.engine),
            model: Some(l.name),
            revision: l.revision,
            opts: self.opts,
            format,
            batch_docs: self.batch_docs,
        }))
    }
}

fn merge(global: &GlobalArgs, args: &BatchArgs) -> anyhow::Result<Outcome> {
    let dest = args
        .out
        .clone()
        .or_else(|| args.merge_manifests.first().cloned())
        .ok_or_else(|| Error::Unsupported("--merge-manifests needs a folder".into()))?;
    let done = batch::merge(&args.merge_manifests, &dest, args.digest)?;
    if !global.quiet {
        eprintln!(
            "svodka: merged {} manifest lines from {} folder(s) into {} ({} documents and tasks{})",
            done.lines,
            args.merge_manifests.len(),
            done.manifest.display(),
            done.kept,
            if done.unreadable > 0 {
                format!(", {} unreadable lines passed over", done.unreadable)
            } else {
                String::new()
            }
        );
        if let Some(d) = &done.digest {
            eprintln!("svodka: digest written to {}", d.display());
        }
    }
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("4X").is_err());
        assert!(parse_size("M").is_err());
    }
}
