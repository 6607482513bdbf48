//! `svodka models`, and model loading shared by the other subcommands.

use std::path::Path;

use clap::{Args, Subcommand};

use super::{GlobalArgs, Outcome};
use crate::engine::llm::LlmEngine;
use crate::engine::load::{self, LoadOptions, Loaded, WeightFormat};
use crate::engine::t5::T5Summarizer;
use crate::hub::download::{self, FetchOptions, ModelFiles};
use crate::hub::registry::{Architecture, DefaultRole, ModelEntry, Registry};
use crate::util::human_size;
use crate::{Error, Result};

/// Arguments of `svodka models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

/// Model management subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the known models and what of them is cached.
    List,
    /// Download a model into the cache.
    Pull {
        /// Registry name or Hub id (owner/name[@revision]).
        name: String,
    },
    /// Show a model's files, revision, architecture and configuration.
    Info {
        /// Registry name, Hub id or local path.
        name: String,
    },
    /// Remove a model from the cache.
    Rm {
        /// Registry name.
        name: String,
    },
}

/// Fetch options from the global flags.
pub fn fetch_options(global: &GlobalArgs) -> FetchOptions {
    FetchOptions {
        cache_dir: global.cache_dir.clone(),
        offline: global.offline,
        quiet: global.quiet,
        endpoint: None,
        timeout: None,
        retries: None,
    }
}

/// The registry: built-in entries plus the user's file.
pub fn registry(global: &GlobalArgs) -> Result<Registry> {
    Registry::load(global.registry.as_deref())
}

/// How the global flags say models are opened (`weights` and `context` as the
/// subcommand asks).
pub fn load_options(
    global: &GlobalArgs,
    weights: WeightFormat,
    context: usize,
) -> Result<LoadOptions> {
    Ok(LoadOptions {
        device: super::select_device(global)?,
        weights,
        context,
        verbose: global.verbose,
    })
}

/// The model `given` on the command line, else the registry's default for `role`.
pub fn model_or_default(
    global: &GlobalArgs,
    given: Option<&str>,
    role: DefaultRole,
) -> Result<String> {
    match given {
        Some(m) => Ok(m.to_string()),
        None => Ok(registry(global)?.default_model(role)?.to_string()),
    }
}

/// Resolves `spec` (registry name, Hub id or path) into files, with its registry entry.
pub fn resolve(global: &GlobalArgs, spec: &str) -> Result<(ModelFiles, Option<ModelEntry>)> {
    let reg = registry(global)?;
    let files = download::resolve(spec, &reg, &fetch_options(global))?;
    Ok((files, reg.get(spec).cloned()))
}

/// Resolves `spec` and opens it as a GGUF LLM.
pub fn load_llm(global: &GlobalArgs, spec: &str, context: usize) -> Result<Loaded<LlmEngine>> {
    let (files, entry) = resolve(global, spec)?;
    let opts = load_options(global, WeightFormat::Auto, context)?;
    Ok(Loaded {
        engine: load::llm(&files, entry.as_ref(), &opts)?,
        name: spec.to_string(),
        revision: files.revision.clone(),
    })
}

/// Resolves `spec` and opens it as an mT5/T5 summarizer.
pub fn load_t5(global: &GlobalArgs, spec: &str) -> Result<Loaded<T5Summarizer>> {
    let (files, _) = resolve(global, spec)?;
    let opts = load_options(global, WeightFormat::Auto, 0)?;
    Ok(Loaded {
        engine: load::t5(&files, &opts)?,
        name: spec.to_string(),
        revision: files.revision.clone(),
    })
}

/// Runs `svodka models`.
pub fn run(global: &GlobalArgs, args: ModelsArgs) -> anyhow::Result<Outcome> {
    let reg = registry(global)?;
    let opts = fetch_options(global);
    match args.command {
        ModelsCommand::List => list(&reg, &opts, global)?,
        ModelsCommand::Pull { name } => {
            let files = download::resolve(&name, &reg, &opts)?;
            if !global.quiet {
                eprintln!(
                    "svodka: {name}: {} file(s), {} in {}",
                    files.files.len(),
                    human_size(files.total_size()),
                    files.root.display()
                );
            }
        }
        ModelsCommand::Info { name } => info(&name, &reg, &opts, global)?,
        ModelsCommand::Rm { name } => {
            let entry = reg.get(&name).ok_or_else(|| {
                Error::Model(format!(
                    "unknown model `{name}`; `svodka models list` shows the known ones"
                ))
            })?;
            let freed = download::remove(entry, &opts)?;
            if !global.quiet {
                eprintln!(
                    "svodka: {name}: removed {} from the cache",
                    human_size(freed)
                );
            }
        }
    }
    Ok(Outcome::Ok)
}

fn arch_name(a: Architecture) -> &'static str {
    match a {
        Architecture::Marian => "marian",
        Architecture::T5 => "t5",
        Architecture::GgufLlm => "gguf-llm",
    }
}

fn list(reg: &Registry, opts: &FetchOptions, global: &GlobalArgs) -> Result<()> {
    let mut rows = Vec::new();
    for (name, entry) in reg.iter() {
        let status = download::cached_status(entry, opts)?;
        // A local copy (e.g. the Gemma GGUF assembled from PyPI) counts as present.
        let local = if status.complete || entry.local.is_empty() {
            None
        } else {
            let offline = FetchOptions {
                offline: true,
                quiet: true,
                ..opts.clone()
            };
            download::resolve(name, reg, &offline).ok()
        };
        let cached = if let Some(files) = &local {
            format!("local {}", human_size(files.total_size()))
        } else if status.complete {
            human_size(status.total_size)
        } else if status.total_size > 0 {
            format!("partial {}", human_size(status.total_size))
        } else {
            "-".to_string()
        };
        let tasks: Vec<String> = entry
            .tasks
            .iter()
            .map(|t| format!("{t:?}").to_lowercase())
            .collect();
        rows.push(serde_json::json!({
            "name": name,
            "repo": entry.repo,
            "revision": entry.revision,
            "architecture": arch_name(entry.architecture),
            "tasks": tasks,
            "languages": entry.languages,
            "size_mb": entry.size_mb,
            "cached": status.complete || local.is_some(),
            "cached_bytes": local.as_ref().map_or(status.total_size, |f| f.total_size()),
            "cached_display": cached,
        }));
    }
    let text = if global.format == super::OutputFormat::Json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        )
    } else {
        let mut out = format!(
            "{:<24} {:<9} {:<20} {:<16} {}\n",
            "NAME", "ARCH", "TASKS", "CACHED", "REPO"
        );
        for r in &rows {
            let tasks: Vec<&str> = r["tasks"]
                .as_array()
                .map(|a| a.iter().filter_map(|t| t.as_str()).collect())
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<24} {:<9} {:<20} {:<16} {}\n",
                r["name"].as_str().unwrap_or_default(),
                r["architecture"].as_str().unwrap_or_default(),
                tasks.join(","),
                r["cached_display"].as_str().unwrap_or_default(),
                r["repo"].as_str().unwrap_or("(local)"),
            ));
        }
        out
    };
    super::print(&text).map_err(|e| Error::io("<stdout>", e))
}

fn info(spec: &str, reg: &Registry, opts: &FetchOptions, global: &GlobalArgs) -> Result<()> {
    // Information about what is there: never download for it.
    let offline = FetchOptions {
        offline: true,
        ..opts.clone()
    };
    let entry = reg.get(spec);
    // Files that are there but unusable are an error, not "not cached": a path given,
    // or a registry model the cache holds in full.
    let present = Path::new(spec).exists()
        || entry.is_some_and(|e| download::cached_status(e, opts).is_ok_and(|s| s.complete));
    let files: Option<ModelFiles> = match download::resolve(spec, reg, &offline) {
        Ok(files) => Some(files),
        Err(e) if present => return Err(e),
        Err(_) => None,
    };
    let config = match files.as_ref() {
        Some(f) => checked_config(f)?,
        None => None,
    };
    let gguf = match files.as_ref().and_then(|f| f.gguf()) {
        Some(path) => Some(gguf_summary(path)?),
        None => None,
    };
    if entry.is_none() && files.is_none() {
        return Err(Error::Model(format!(
            "unknown model `{spec}`: not in the registry and not in the cache or on disk"
        )));
    }
    let value = serde_json::json!({
        "name": spec,
        "repo": entry.and_then(|e| e.repo.clone()).or(files.as_ref().and_then(|f| f.repo.clone())),
        "revision": entry.map(|e| e.revision.clone()).or(files.as_ref().and_then(|f| f.revision.clone())),
        "architecture": entry.map(|e| arch_name(e.architecture)),
        "family": entry.and_then(|e| e.family.clone()),
        "tasks": entry.map(|e| e.tasks.iter().map(|t| format!("{t:?}").to_lowercase()).collect::<Vec<_>>()),
        "languages": entry.map(|e| e.languages.clone()),
        "license": entry.and_then(|e| e.license.clone()),
        "target_token": entry.and_then(|e| e.target_token.clone()),
        "cached": files.is_some(),
        "root": files.as_ref().map(|f| f.root.display().to_string()),
        "files": files.as_ref().map(|f| f.files.iter().map(|(n, p)| serde_json::json!({
            "name": n,
            "path": p.display().to_string(),
            "size": std::fs::metadata(p).map(|m| m.len()).ok(),
        })).collect::<Vec<_>>()).unwrap_or_else(|| entry.map(|e| e.files.iter().map(|f| serde_json::json!({
            "name": f.name, "size": f.size, "sha256": f.sha256,
        })).collect()).unwrap_or_default()),
        "config": config.map(config_summary),
        "gguf": gguf,
        "note": entry.and_then(|e| e.note.clone()),
    });
    let text = if global.format == super::OutputFormat::Json {
        serde_json::to_string_pretty(&value).unwrap_or_default()
    } else {
        render_info(&value)
    };
    super::print(&format!("{text}\n")).map_err(|e| Error::io("<stdout>", e))
}

/// The configuration keys a reader wants to see of a transformers config.json.
fn config_summary(c: serde_json::Value) -> serde_json::Value {
    const KEYS: [&str; 14] = [
        "model_type",
        "d_model",
        "encoder_layers",
        "decoder_layers",
        "encoder_attention_heads",
        "decoder_ffn_dim",
        "activation_function",
        "vocab_size",
        "max_position_embeddings",
        "num_layers",
        "num_heads",
        "d_ff",
        "feed_forward_proj",
        "tie_word_embeddings",
    ];
    let mut out = serde_json::Map::new();
    for k in KEYS {
        if let Some(v) = c.get(k) {
            out.insert(k.to_string(), v.clone());
        }
    }
    serde_json::Value::Object(out)
}

/// `config.json` as JSON, after the checks its engine makes at load.
fn checked_config(files: &ModelFiles) -> Result<Option<serde_json::Value>> {
    let Some(path) = files.config() else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let value = serde_json::from_str(&text)
        .map_err(|e| Error::bad_input(path, format!("not a JSON config: {e}")))?;
    match files.architecture {
        Some(Architecture::Marian) => {
            crate::engine::marian::MarianConfig::from_file(path)?;
        }
        Some(Architecture::T5) => {
            crate::engine::t5::read_config(path)?;
        }
        _ => {}
    }
    Ok(Some(value))
}

/// Architecture and shape of a GGUF file, read from its header and checked as the
/// engine checks it at load.
fn gguf_summary(path: &Path) -> Result<serde_json::Value> {
    let content = crate::engine::llm::GgufFile::open(path)?.content;
    let c = crate::engine::llm::LlmConfig::from_gguf(&content)
        .map_err(|e| crate::engine::check::in_file(path, e))?;
    Ok(serde_json::json!({
        "architecture": c.arch,
        "layers": c.n_layer,
        "hidden": c.n_embd,
        "heads": c.n_head,
        "kv_heads": c.n_kv_head,
        "context_length": c.context_length,
        "vocab_size": c.vocab_size,
        "chat_template": content.metadata.contains_key("tokenizer.chat_template"),
    }))
}

fn render_info(v: &serde_json::Value) -> String {
    let mut out = String::new();
    let line = |out: &mut String, k: &str, val: &serde_json::Value| {
        let s = match val {
            serde_json::Value::Null => return,
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("{k:<13} {s}\n"));
    };
    for k in [
        "name",
        "repo",
        "revision",
        "architecture",
        "family",
        "tasks",
        "languages",
        "license",
        "target_token",
        "cached",
        "root",
        "config",
        "gguf",
        "note",
    ] {
        line(&mut out, k, &v[k]);
    }
    if let Some(files) = v["files"].as_array() {
        out.push_str("files\n");
        for f in files {
            let size = f["size"]
                .as_u64()
                .map(human_size)
                .unwrap_or_else(|| "-".into());
            out.push_str(&format!(
                "  {:<40} {:>10}\n",
                f["name"].as_str().unwrap_or_default(),
                size
            ));
        }
    }
    out.trim_end().to_string()
}
