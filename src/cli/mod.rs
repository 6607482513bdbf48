//! Command-line interface: clap definitions, checked configuration, dispatch.
//!
//! Raw flags become a typed configuration before any work starts (ripgrep's habit);
//! each subcommand lives in its own file.

mod batch;
mod models;
mod segment;
mod serve;
mod summarize;
mod translate;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::article::read::{self, Format, ReadOptions};
use crate::article::{Article, Lang};
use crate::{Error, Result};

/// svodka — news briefs: summarize and translate Russian and English articles locally.
#[derive(Debug, Parser)]
#[command(
    name = "svodka",
    version,
    about = "Summarize and translate Russian and English news articles with local models",
    long_about = "svodka (Russian \"сводка\", a news brief) reads news articles — plain text, \
Markdown or HTML, in UTF-8, Windows-1251 or KOI8-R — and summarizes or translates them \
between Russian and English with open-weight models that run on your machine.\n\n\
Input is a FILE or standard input (`-` or nothing). Output goes to standard output.",
    after_help = "Examples:\n  svodka summarize article.txt\n  svodka summarize --sentences 5 --format json article.html\n  svodka segment article.txt | head\n  echo \"Привет, мир\" | svodka translate --to en\n  svodka completions bash > ~/.local/share/bash-completion/completions/svodka"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Where models run: auto picks a GPU when this build has one and it is present.
    #[arg(long, global = true, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Never touch the network: use only models already in the cache.
    #[arg(long, global = true, env = "SVODKA_OFFLINE")]
    pub offline: bool,
    /// Model cache directory (default: the Hugging Face cache, $HF_HOME/hub).
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Print nothing but results and errors (no progress bars).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Say more about what is being done (on stderr).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// A registry file whose models add to (or override) the built-in ones.
    #[arg(long, global = true, value_name = "FILE", env = "SVODKA_REGISTRY")]
    pub registry: Option<PathBuf>,
    /// CPU threads for model computation (default: all cores).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
}

/// Device choice as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
    Metal,
}

/// Output format as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Plain text.
    Text,
    /// Markdown with the headline and metadata.
    Markdown,
    /// One JSON object with everything known.
    Json,
}

/// Language flag values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LangArg {
    Ru,
    En,
}

impl From<LangArg> for Lang {
    fn from(l: LangArg) -> Lang {
        match l {
            LangArg::Ru => Lang::Ru,
            LangArg::En => Lang::En,
        }
    }
}

/// Input format flag values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// Decide from the file extension or the content.
    Auto,
    /// Plain text (light Markdown such as links and bold is understood).
    Text,
    /// Markdown.
    Markdown,
    /// HTML page.
    Html,
}

/// Where an article comes from and how to read it.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Article to read; `-` or nothing reads standard input.
    #[arg(value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Force the text encoding (utf-8, windows-1251/cp1251, koi8-r, ...) instead of detecting it.
    #[arg(long, value_name = "LABEL")]
    pub encoding: Option<String>,
    /// Input format.
    #[arg(long = "input-format", value_enum, default_value_t = InputFormat::Auto)]
    pub input_format: InputFormat,
    /// Largest input to read, from a file or standard input (bytes; K, M, G suffixes):
    /// more fails with a clear reason. The default is far above any news page.
    #[arg(long, value_name = "SIZE", default_value = "8M", value_parser = batch::parse_size)]
    pub max_size: u64,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Summarize an article.
    Summarize(summarize::SummarizeArgs),
    /// Translate an article between Russian and English.
    Translate(translate::TranslateArgs),
    /// Print an article's sentences, one per line, a blank line between paragraphs.
    Segment(segment::SegmentArgs),
    /// Process a folder of articles into a digest.
    Batch(batch::BatchArgs),
    /// List, download, inspect and remove models.
    Models(models::ModelsArgs),
    /// Serve translation and summaries over HTTP: LibreTranslate's API, a JSON API and
    /// a web page.
    Serve(serve::ServeArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// An input source that has been checked and named.
#[derive(Debug, Clone)]
pub struct Input {
    /// The file, or `None` for standard input.
    pub path: Option<PathBuf>,
    /// How to decode and parse it.
    pub read: ReadOptions,
}

impl Input {
    /// Checks the input flags; fails on an unknown encoding or a terminal as stdin.
    pub fn from_args(args: &InputArgs) -> Result<Input> {
        let encoding = args
            .encoding
            .as_deref()
            .map(read::encoding_from_label)
            .transpose()?;
        let format = match args.input_format {
            InputFormat::Auto => None,
            InputFormat::Text => Some(Format::Text),
            InputFormat::Markdown => Some(Format::Markdown),
            InputFormat::Html => Some(Format::Html),
        };
        let path = args.input.clone().filter(|p| p.as_os_str() != "-");
        if path.is_none() && std::io::stdin().is_terminal() {
            return Err(Error::Unsupported(
                "no input: give a FILE, or pipe text into standard input".into(),
            ));
        }
        Ok(Input {
            path,
            read: ReadOptions {
                encoding,
                format,
                max_size: args.max_size,
            },
        })
    }

    /// The name used in messages: the path, or `<stdin>`.
    pub fn display(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "<stdin>".to_string(),
        }
    }

    /// Reads and parses the article.
    pub fn read(&self) -> Result<Article> {
        read::read_file(self.path.as_deref().unwrap_or(Path::new("-")), &self.read)
    }
}

/// What a subcommand run ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything done.
    Ok,
    /// Some items of a batch failed; the rest was done.
    Partial,
}

/// Runs a parsed command line.
///
/// `watch_ctrl_c` is the binary's: called by `svodka batch` (over a folder) just before
/// it starts on the documents, it installs the process's Ctrl-C handler and returns
/// the flag the handler sets, which the run reads to stop after the documents in hand.
/// The other commands never call it, so Ctrl-C keeps its default meaning for them, or
/// theirs when they handle the signal themselves.
pub fn run(cli: Cli, watch_ctrl_c: impl FnOnce() -> Arc<AtomicBool>) -> anyhow::Result<Outcome> {
    check_device(cli.global.device)?;
    if let Some(n) = cli.global.threads {
        use_threads(n as usize)?;
    }
    match cli.command {
        Command::Summarize(args) => summarize::run(&cli.global, args),
        Command::Translate(args) => translate::run(&cli.global, args),
        Command::Segment(args) => segment::run(&cli.global, args),
        Command::Batch(args) => batch::run(&cli.global, args, watch_ctrl_c),
        Command::Models(args) => models::run(&cli.global, args),
        Command::Serve(args) => serve::run(&cli.global, args),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut out = std::io::stdout().lock();
            clap_complete::generate(shell, &mut cmd, "svodka", &mut out);
            out.flush()?;
            Ok(Outcome::Ok)
        }
    }
}

/// Makes model computation use `n` CPU threads (`--threads`), before any is started.
///
/// svodka's own kernels and candle's CPU operations, its matrix products included, run
/// on rayon's global pool, which is built here with `n` threads. candle 0.11.1 has one
/// more pool, the barrier pool behind its quantized matrix products and the GGUF LLM's
/// kernels, and no API to size it: it reads `CANDLE_NUM_THREADS` (else
/// `RAYON_NUM_THREADS`) when the pool is first used, after this point. So that
/// variable, candle's own, is still set here, while no other thread runs. candle's
/// `get_num_threads` (`RAYON_NUM_THREADS` on every call, else the physical cores) is
/// left alone: it only says into how many pieces a matrix product is cut, and the pieces
/// run on the global pool, `n` at a time.
fn use_threads(n: usize) -> Result<()> {
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| Error::Unsupported(format!("--threads {n}: {e}")))
}

/// Refuses a device this build cannot use, before any work starts.
fn check_device(device: DeviceArg) -> Result<()> {
    let built = match device {
        DeviceArg::Auto | DeviceArg::Cpu => true,
        DeviceArg::Cuda => cfg!(feature = "cuda"),
        DeviceArg::Metal => cfg!(feature = "metal"),
    };
    if built {
        Ok(())
    } else {
        let name = format!("{device:?}").to_lowercase();
        Err(Error::Unsupported(format!(
            "this svodka was built without {name} support; rebuild with `cargo install svodka --features {name}` or use --device cpu"
        )))
    }
}

/// The device models run on, from `--device`.
pub fn select_device(global: &GlobalArgs) -> Result<candle_core::Device> {
    use candle_core::Device;
    let cuda = |strict: bool| -> Result<Option<Device>> {
        if !cfg!(feature = "cuda") {
            return Ok(None);
        }
        match Device::new_cuda(0) {
            Ok(d) => Ok(Some(d)),
            Err(e) if strict => Err(Error::Unsupported(format!("cannot use CUDA: {e}"))),
            Err(_) => Ok(None),
        }
    };
    let metal = |strict: bool| -> Result<Option<Device>> {
        if !cfg!(feature = "metal") {
            return Ok(None);
        }
        match Device::new_metal(0) {
            Ok(d) => Ok(Some(d)),
            Err(e) if strict => Err(Error::Unsupported(format!("cannot use Metal: {e}"))),
            Err(_) => Ok(None),
        }
    };
    let device = match global.device {
        DeviceArg::Cpu => Device::Cpu,
        DeviceArg::Cuda => cuda(true)?.unwrap_or(Device::Cpu),
        DeviceArg::Metal => metal(true)?.unwrap_or(Device::Cpu),
        DeviceArg::Auto => match cuda(false)? {
            Some(d) => d,
            None => metal(false)?.unwrap_or(Device::Cpu),
        },
    };
    Ok(device)
}

pub use crate::engine::load::device_name;

/// Writes `text` to stdout as a whole.
pub(crate) fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

impl From<OutputFormat> for crate::output::Format {
    fn from(f: OutputFormat) -> Self {
        match f {
            OutputFormat::Text => crate::output::Format::Text,
            OutputFormat::Markdown => crate::output::Format::Markdown,
            OutputFormat::Json => crate::output::Format::Json,
        }
    }
}
