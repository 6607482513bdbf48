//! `svodka serve`: flags checked and models loaded here, then [`crate::server::serve`].

use std::time::Duration;

use clap::Args;

use super::summarize::SummaryEngine as SummaryEngineArg;
use super::translate::{check_marian_entry, DtypeArg, TranslateEngine};
use super::{models, GlobalArgs, Outcome};
use crate::article::Lang;
use crate::engine::load::{self, device_name, WeightFormat};
use crate::engine::SummaryOptions;
use crate::hub::download;
use crate::hub::registry::{Architecture, DefaultRole, Registry};
use crate::pipeline::translate::{default_decode, TranslateOptions};
use crate::server::workers::{Gathering, SummaryEngine};
use crate::server::{ServeConfig, TranslationModel};
use crate::{Error, Result};

/// Arguments of `svodka serve`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  svodka serve                                   (Marian both ways, extractive summaries)
  svodka serve --port 8080 --api-key \"$KEY\"
  svodka serve --engine llm -m qwen2.5-1.5b-instruct --summary-engine llm
  curl -s localhost:5000/translate -H 'Content-Type: application/json' \\
       -d '{\"q\": \"Привет, мир!\", \"source\": \"auto\", \"target\": \"en\"}'

Endpoints: LibreTranslate's API (POST /translate, /detect, /translate_file; GET
/languages, /frontend/settings), svodka's own (POST /v1/translate, /v1/summarize),
GET /health, GET /metrics (Prometheus), and a web page at /. Models load once, at
start. SIGTERM or Ctrl-C answers the requests in flight, then exits.")]
pub struct ServeArgs {
    /// Address to listen on; the default takes connections from this machine only.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the startup line says which).
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
    /// Require this key (`api_key` parameter or `Authorization: Bearer`) on every API
    /// request; others get 403.
    #[arg(
        long,
        value_name = "KEY",
        env = "SVODKA_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Which engine translates.
    #[arg(long, value_enum, default_value_t = TranslateEngine::Marian)]
    pub engine: TranslateEngine,
    /// Translation model: registry name, Hub id or local path; repeat for one Marian
    /// model per direction (default: opus-mt-en-ru and opus-mt-ru-en; for --engine llm
    /// qwen2.5-1.5b-instruct, which translates both ways). A Marian model the registry
    /// does not know serves the directions no other model serves.
    #[arg(short, long = "model", value_name = "MODEL")]
    pub models: Vec<String>,
    /// Beams for Marian decoding (a request may ask for others in /v1/translate).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub beam: u32,
    /// Number format of the Marian weights (see `svodka translate --help`).
    #[arg(long, value_enum, default_value_t = DtypeArg::Auto)]
    pub dtype: DtypeArg,
    /// Do not decode sentences failing a check a second time.
    #[arg(long)]
    pub no_retry: bool,
    /// Most padded source tokens per model batch.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    pub batch_tokens: u32,
    /// Context length in tokens for LLMs.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(256..=131072))]
    pub context: u32,
    /// Which engine writes summaries.
    #[arg(long, value_enum, default_value_t = SummaryEngineArg::Extractive)]
    pub summary_engine: SummaryEngineArg,
    /// Summarizer model for --summary-engine llm or t5 (default: qwen2.5-1.5b-instruct,
    /// mt5-xlsum).
    #[arg(long, value_name = "MODEL")]
    pub summary_model: Option<String>,
    /// Sentences in a summary when the request does not say.
    #[arg(short = 'n', long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub sentences: u32,
    /// Most requests translated together in one model round; 1 translates one request
    /// at a time.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_requests: u32,
    /// How long a lone request waits for others to join its round (milliseconds).
    #[arg(long, value_name = "MS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub gather_ms: u32,
    /// Requests each model queue holds; more are answered 503 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub queue: u32,
    /// Largest request body (bytes; K, M, G suffixes); larger ones are answered 413.
    #[arg(long, value_name = "SIZE", default_value = "2M", value_parser = super::batch::parse_size)]
    pub max_body: u64,
    /// Pause every translation round this long (testing a full queue).
    #[arg(long, hide = true, default_value_t = 0)]
    pub debug_round_delay_ms: u64,
}

/// Runs `svodka serve`.
pub fn run(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<Outcome> {
    if args.api_key.as_deref().is_some_and(str::is_empty) {
        return Err(Error::Unsupported("--api-key is empty".into()).into());
    }
    let max_body = usize::try_from(args.max_body)
        .ok()
        .filter(|&n| n >= 1024)
        .ok_or_else(|| Error::Unsupported("--max-body must be at least 1K".into()))?;
    if args.summary_engine == SummaryEngineArg::Extractive && args.summary_model.is_some() {
        return Err(Error::Unsupported(
            "--summary-model has no meaning for --summary-engine extractive, which needs no model"
                .into(),
        )
        .into());
    }
    let reg = models::registry(global)?;
    // Every flag and model choice is checked before the first (slow) load.
    let translation_specs = translation_specs(global, &args, &reg)?;
    let device = models::load_options(global, WeightFormat::Auto, 0)?.device;
    let translation = load_translation(global, &args, &reg, translation_specs)?;
    let summary = load_summarizer(global, &args)?;
    let config = ServeConfig {
        host: args.host.clone(),
        port: args.port,
        api_key: args.api_key.clone(),
        max_body,
        queue: args.queue as usize,
        gathering: Gathering {
            max_requests: args.batch_requests as usize,
            wait: Duration::from_millis(args.gather_ms.into()),
            delay: Duration::from_millis(args.debug_round_delay_ms),
        },
        translate: TranslateOptions {
            decode: default_decode(args.beam as usize),
            retry: !args.no_retry,
            batch_tokens: args.batch_tokens as usize,
            ..TranslateOptions::default()
        },
        summary: SummaryOptions {
            sentences: args.sentences as usize,
            ..SummaryOptions::default()
        },
        device: device_name(&device).to_string(),
    };
    crate::server::serve(config, translation, summary)?;
    Ok(Outcome::Ok)
}

/// A model to load and the pairs (from, to) it serves.
type ModelPairs = (String, Vec<(Lang, Lang)>);

/// Both directions svodka translates.
const PAIRS: [(Lang, Lang); 2] = [(Lang::En, Lang::Ru), (Lang::Ru, Lang::En)];

/// The models to load and the pairs each serves.
fn translation_specs(
    global: &GlobalArgs,
    args: &ServeArgs,
    reg: &Registry,
) -> Result<Vec<ModelPairs>> {
    match args.engine {
        TranslateEngine::Llm => {
            if args.models.len() > 1 {
                return Err(Error::Unsupported(
                    "--engine llm serves both directions with one model; give -m once".into(),
                ));
            }
            let spec = models::model_or_default(
                global,
                args.models.first().map(String::as_str),
                DefaultRole::Llm,
            )?;
            if let Some(e) = reg.get(&spec) {
                if e.architecture != Architecture::GgufLlm {
                    return Err(Error::Unsupported(format!(
                        "model {spec} is not a GGUF LLM; use --engine marian for Marian models"
                    )));
                }
            }
            Ok(vec![(spec, PAIRS.to_vec())])
        }
        TranslateEngine::Marian => {
            let specs: Vec<String> = if args.models.is_empty() {
                PAIRS
                    .iter()
                    .map(|&(f, t)| {
                        reg.default_model(DefaultRole::Marian(f, t))
                            .map(str::to_string)
                    })
                    .collect::<Result<_>>()?
            } else {
                args.models.clone()
            };
            // Models the registry knows serve their pairs; the others share the rest.
            let mut known: Vec<ModelPairs> = Vec::new();
            let mut unknown: Vec<String> = Vec::new();
            for spec in specs {
                let entry = reg.get(&spec);
                let pairs: Vec<(Lang, Lang)> = PAIRS
                    .iter()
                    .copied()
                    .filter(|&(f, t)| {
                        entry.is_some_and(|e| e.languages.contains(&format!("{f}-{t}")))
                    })
                    .collect();
                if let Some(&(f, t)) = pairs.first() {
                    check_marian_entry(&spec, entry, f, t)?;
                    if let Some((other, &(f, t))) = known
                        .iter()
                        .find_map(|(o, ps)| Some((o, pairs.iter().find(|p| ps.contains(p))?)))
                    {
                        return Err(Error::Unsupported(format!(
                            "models {other} and {spec} both translate {f}-{t}; give one model per direction"
                        )));
                    }
                    known.push((spec, pairs));
                } else if let Some(e) = entry.filter(|e| !e.languages.is_empty()) {
                    return Err(Error::Unsupported(format!(
                        "model {spec} translates {}, which svodka does not serve",
                        e.languages.join(", ")
                    )));
                } else {
                    check_marian_entry(&spec, entry, Lang::En, Lang::Ru)?;
                    unknown.push(spec);
                }
            }
            let served: Vec<(Lang, Lang)> = known.iter().flat_map(|k| k.1.clone()).collect();
            let rest: Vec<(Lang, Lang)> = PAIRS
                .iter()
                .copied()
                .filter(|p| !served.contains(p))
                .collect();
            match unknown.len() {
                0 => {}
                1 if !rest.is_empty() => known.push((unknown.remove(0), rest)),
                1 => {
                    return Err(Error::Unsupported(format!(
                        "model {} has nothing to serve: other models serve both directions",
                        unknown[0]
                    )))
                }
                _ => {
                    return Err(Error::Unsupported(format!(
                        "cannot tell which direction each of {} translates (they are not in the registry); give one of them, or add them to a --registry file with `languages`",
                        unknown.join(", ")
                    )))
                }
            }
            Ok(known)
        }
    }
}

/// Loads each translation model.
fn load_translation(
    global: &GlobalArgs,
    args: &ServeArgs,
    reg: &Registry,
    specs: Vec<ModelPairs>,
) -> Result<Vec<TranslationModel>> {
    let weights = match args.engine {
        TranslateEngine::Marian => args.dtype.into(),
        TranslateEngine::Llm => WeightFormat::Auto,
    };
    let opts = models::load_options(global, weights, args.context as usize)?;
    opts.weights.resolve(&opts.device)?;
    specs
        .into_iter()
        .map(|(spec, pairs)| {
            let files = download::resolve(&spec, reg, &models::fetch_options(global))?;
            let entry = reg.get(&spec);
            let arch = load::architecture(&files, entry)?;
            let wanted = match args.engine {
                TranslateEngine::Marian => Architecture::Marian,
                TranslateEngine::Llm => Architecture::GgufLlm,
            };
            if arch != wanted {
                return Err(Error::Unsupported(format!(
                    "model {spec} is a {arch:?} model, not what --engine {} runs",
                    format!("{:?}", args.engine).to_lowercase()
                )));
            }
            let loaded = load::translator(&files, entry, &opts)?;
            let name = match &loaded.revision {
                Some(r) => format!("{}@{}", loaded.name, &r[..r.len().min(7)]),
                None => loaded.name.clone(),
            };
            Ok(TranslationModel {
                engine: loaded.engine,
                name,
                pairs,
            })
        })
        .collect()
}

/// Loads the summarizer the flags ask for.
fn load_summarizer(global: &GlobalArgs, args: &ServeArgs) -> Result<SummaryEngine> {
    let role = match args.summary_engine {
        SummaryEngineArg::Extractive => return Ok(SummaryEngine::Extractive),
        SummaryEngineArg::Llm => DefaultRole::Llm,
        SummaryEngineArg::T5 => DefaultRole::T5,
    };
    let spec = models::model_or_default(global, args.summary_model.as_deref(), role)?;
    let (files, entry) = models::resolve(global, &spec)?;
    let opts = models::load_options(global, WeightFormat::Auto, args.context as usize)?;
    let loaded = load::writer(&files, entry.as_ref(), &opts)?;
    let wanted = match args.summary_engine {
        SummaryEngineArg::Llm => "llm",
        _ => "t5",
    };
    if loaded.engine.engine_name() != wanted {
        return Err(Error::Unsupported(format!(
            "model {spec} is a {} model, not what --summary-engine {wanted} runs",
            loaded.engine.engine_name()
        )));
    }
    Ok(SummaryEngine::Writer {
        writer: loaded.engine,
        name: loaded.name,
        revision: loaded.revision,
    })
}
