//! The curated model registry (`models/registry.toml`) and user additions.
//!
//! The built-in registry is compiled into the binary. A user file adds entries or
//! replaces whole entries of the same name; it never edits single fields, so what a
//! user wrote is exactly what runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The registry shipped with svodka.
const BUILTIN: &str = include_str!("../../models/registry.toml");

/// Model family as far as loading code is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// Marian encoder-decoder (OPUS-MT).
    Marian,
    /// T5 / mT5 encoder-decoder.
    T5,
    /// A decoder-only LLM in one GGUF file (Qwen2, Qwen3, Gemma 3, Llama...).
    GgufLlm,
}

/// What a model can be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Translate text between languages.
    Translate,
    /// Summarize an article.
    Summarize,
}

/// What one file of a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileRole {
    /// `config.json`.
    Config,
    /// `generation_config.json`.
    GenerationConfig,
    /// Weights: safetensors, pytorch pickle or GGUF.
    Weights,
    /// An index naming the weight shards (`*.index.json`).
    WeightsIndex,
    /// `tokenizer.json`.
    Tokenizer,
    /// `tokenizer_config.json`.
    TokenizerConfig,
    /// `special_tokens_map.json` or `added_tokens.json`.
    SpecialTokens,
    /// Marian source SentencePiece model.
    SourceSpm,
    /// Marian target SentencePiece model.
    TargetSpm,
    /// Marian `vocab.json`.
    Vocab,
    /// T5 `spiece.model`.
    Spiece,
    /// Anything else the model needs.
    Other,
}

impl FileRole {
    /// The role a file of this name has by convention, used for discovered files.
    pub fn infer(name: &str) -> FileRole {
        let base = name.rsplit('/').next().unwrap_or(name);
        match base {
            "config.json" => FileRole::Config,
            "generation_config.json" => FileRole::GenerationConfig,
            "tokenizer.json" => FileRole::Tokenizer,
            "tokenizer_config.json" => FileRole::TokenizerConfig,
            "special_tokens_map.json" | "added_tokens.json" => FileRole::SpecialTokens,
            "source.spm" => FileRole::SourceSpm,
            "target.spm" => FileRole::TargetSpm,
            "vocab.json" => FileRole::Vocab,
            "spiece.model" => FileRole::Spiece,
            b if b.ends_with(".index.json") => FileRole::WeightsIndex,
            b if b.ends_with(".safetensors") || b.ends_with(".gguf") || b.ends_with(".bin") => {
                FileRole::Weights
            }
            _ => FileRole::Other,
        }
    }
}

/// One file of a registry model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path inside the repository.
    pub name: String,
    /// What the file is for.
    pub role: FileRole,
    /// SHA-256 of the content, where the Hub publishes one (LFS files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Size in bytes, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// Where an entry came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// The registry compiled into svodka.
    #[default]
    Builtin,
    /// A user registry file.
    User(PathBuf),
}

/// One curated model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// One line for `svodka models list`.
    #[serde(default)]
    pub description: Option<String>,
    /// Hub repository id, `owner/name`.
    #[serde(default)]
    pub repo: Option<String>,
    /// Pinned commit or branch.
    #[serde(default = "default_revision")]
    pub revision: String,
    /// Which loading code the model needs.
    pub architecture: Architecture,
    /// Finer kind inside the architecture (qwen2, qwen3, gemma3, llama, mt5...).
    #[serde(default)]
    pub family: Option<String>,
    /// What the model is for.
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// `src-tgt` pairs for translation, language codes for summarization.
    #[serde(default)]
    pub languages: Vec<String>,
    /// Licence identifier from the model card.
    #[serde(default)]
    pub license: Option<String>,
    /// Approximate download size in MiB.
    #[serde(default)]
    pub size_mb: Option<u64>,
    /// Files to fetch; empty with `discover` set.
    #[serde(default)]
    pub files: Vec<FileEntry>,
    /// Read the file list from the Hub's listing instead of `files`.
    #[serde(default)]
    pub discover: bool,
    /// GGUF variant to pick when discovering (`Q4_K_M`); a listing without it is an error.
    #[serde(default)]
    pub quant: Option<String>,
    /// Local paths (file or directory) tried before the Hub, relative to the working dir;
    /// a leading `${SVODKA_MODELS_DIR}` is that variable, or `.models` when it is unset.
    #[serde(default)]
    pub local: Vec<String>,
    /// SHA-256 of the local single-file copy, when it differs in provenance from the Hub's.
    #[serde(default)]
    pub local_sha256: Option<String>,
    /// Extra advice shown when the model is missing.
    #[serde(default)]
    pub note: Option<String>,
    /// Token put before every source sentence (multi-target Marian models).
    #[serde(default)]
    pub target_token: Option<String>,
    /// Scores quoted from the model card.
    #[serde(default)]
    pub benchmarks: BTreeMap<String, f64>,
    /// Prompt templates; free-form until the prompt issue defines them.
    #[serde(default)]
    pub prompts: Option<toml::Table>,
    /// Where this entry was read from.
    #[serde(skip)]
    pub origin: Origin,
}

fn default_revision() -> String {
    "main".to_string()
}

impl ModelEntry {
    /// The `local` candidates with `${SVODKA_MODELS_DIR}` expanded.
    pub fn local_paths(&self) -> Vec<PathBuf> {
        const VAR: &str = "${SVODKA_MODELS_DIR}";
        self.local
            .iter()
            .map(|p| match p.strip_prefix(VAR) {
                Some(rest) => {
                    let base = std::env::var_os("SVODKA_MODELS_DIR")
                        .filter(|v| !v.is_empty())
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from(".models"));
                    base.join(rest.trim_start_matches('/'))
                }
                None => PathBuf::from(p),
            })
            .collect()
    }

    /// The registry file entry called `name`, if any.
    pub fn file(&self, name: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.name == name)
    }

    fn validate(&self, name: &str) -> std::result::Result<(), String> {
        if self.repo.is_none() && self.local.is_empty() {
            return Err(format!("model {name}: needs `repo` or `local`"));
        }
        if let Some(repo) = &self.repo {
            if !is_repo_id(repo) {
                return Err(format!(
                    "model {name}: repo `{repo}` is not of the form owner/name"
                ));
            }
        }
        if let Err(why) = super::validate::check_revision(&self.revision) {
            return Err(format!(
                "model {name}: revision `{}` is not a branch, tag or commit: {why}",
                self.revision
            ));
        }
        if self.repo.is_some() && self.files.is_empty() && !self.discover {
            return Err(format!(
                "model {name}: no `files` and `discover` is not set"
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &self.files {
            if let Err(why) = super::validate::check_repo_file(&f.name) {
                return Err(format!("model {name}: bad file name `{}`: {why}", f.name));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(format!("model {name}: file `{}` listed twice", f.name));
            }
            if let Some(sha) = &f.sha256 {
                if !is_sha256(sha) {
                    return Err(format!(
                        "model {name}: file `{}`: sha256 must be 64 hex digits",
                        f.name
                    ));
                }
            }
        }
        if let Some(sha) = &self.local_sha256 {
            if !is_sha256(sha) {
                return Err(format!("model {name}: local_sha256 must be 64 hex digits"));
            }
        }
        // `svodka translate` runs Marian and GGUF LLMs only: a T5 entry listed for
        // translation would be offered and then fail to load.
        if self.tasks.contains(&Task::Translate) && self.architecture == Architecture::T5 {
            return Err(format!(
                "model {name}: task \"translate\" needs a marian or gguf-llm model; \
                 svodka runs t5 models for summaries only"
            ));
        }
        Ok(())
    }
}

/// True for `owner/name` with no empty part and nothing path-like.
pub fn is_repo_id(s: &str) -> bool {
    let mut parts = s.split('/');
    let ok_part = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if ok_part(a) && ok_part(b))
}

/// True for 64 lowercase or uppercase hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    models: BTreeMap<String, ModelEntry>,
}

/// The models used when none is named (`[defaults]`); a user file may replace any.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// GGUF LLM for `--engine llm` (summaries and translation).
    pub llm: Option<String>,
    /// mT5/T5 summarizer for `--engine t5`.
    pub t5: Option<String>,
    /// Marian model per direction, by "src-tgt" pair ("en-ru").
    #[serde(default)]
    pub marian: BTreeMap<String, String>,
}

/// All known models by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    defaults: Defaults,
    models: BTreeMap<String, ModelEntry>,
}

impl Registry {
    /// The registry compiled into svodka.
    pub fn builtin() -> Result<Registry> {
        let (defaults, models) = parse(
            BUILTIN,
            Path::new("<built-in models/registry.toml>"),
            Origin::Builtin,
        )?;
        Ok(Registry { defaults, models })
    }

    /// The built-in registry merged with a user file: `user_file` when given (it must
    /// exist), else the first existing of `$XDG_CONFIG_HOME/svodka/registry.toml` and
    /// `~/.config/svodka/registry.toml`. User entries replace built-in ones by name.
    pub fn load(user_file: Option<&Path>) -> Result<Registry> {
        let mut registry = Registry::builtin()?;
        let path = match user_file {
            Some(p) => Some(p.to_path_buf()),
            None => default_user_file().filter(|p| p.is_file()),
        };
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            registry.merge_str(&text, &path)?;
        }
        Ok(registry)
    }

    /// Adds the entries of a registry text (read from `path`, named in errors).
    pub fn merge_str(&mut self, text: &str, path: &Path) -> Result<()> {
        let (defaults, models) = parse(text, path, Origin::User(path.to_path_buf()))?;
        self.models.extend(models);
        if defaults.llm.is_some() {
            self.defaults.llm = defaults.llm;
        }
        if defaults.t5.is_some() {
            self.defaults.t5 = defaults.t5;
        }
        self.defaults.marian.extend(defaults.marian);
        Ok(())
    }

    /// The model to use when the user names none, for `role`: `llm`, `t5`, or a Marian
    /// "src-tgt" pair.
    pub fn default_model(&self, role: DefaultRole) -> Result<&str> {
        let (found, what) = match role {
            DefaultRole::Llm => (self.defaults.llm.as_deref(), "llm".to_string()),
            DefaultRole::T5 => (self.defaults.t5.as_deref(), "t5".to_string()),
            DefaultRole::Marian(from, to) => {
                let pair = format!("{from}-{to}");
                (
                    self.defaults.marian.get(&pair).map(String::as_str),
                    format!("marian.{pair}"),
                )
            }
        };
        found.ok_or_else(|| {
            Error::Model(format!(
                "the model registry names no default model for {what}; give one with --model (or [defaults] in a registry file)"
            ))
        })
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.models.get(name)
    }

    /// All entries, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ModelEntry)> {
        self.models.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// What a default model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultRole {
    /// The GGUF LLM.
    Llm,
    /// The mT5/T5 summarizer.
    T5,
    /// The Marian model for a direction.
    Marian(crate::article::Lang, crate::article::Lang),
}

fn parse(
    text: &str,
    path: &Path,
    origin: Origin,
) -> Result<(Defaults, BTreeMap<String, ModelEntry>)> {
    let file: RegistryFile = toml::from_str(text)
        .map_err(|e| Error::bad_input(path, format!("invalid model registry: {e}")))?;
    let mut models = file.models;
    for (name, entry) in models.iter_mut() {
        entry.validate(name).map_err(|reason| {
            Error::bad_input(path, format!("invalid model registry: {reason}"))
        })?;
        entry.origin = origin.clone();
    }
    Ok((file.defaults, models))
}

fn default_user_file() -> Option<PathBuf> {
    let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(config.join("svodka").join("registry.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::Lang;

    #[test]
    fn defaults_are_registry_data_and_a_user_file_replaces_them() {
        let mut r = Registry::builtin().unwrap();
        // Every default names a curated model of the right kind.
        for (role, arch) in [
            (DefaultRole::Llm, Architecture::GgufLlm),
            (DefaultRole::T5, Architecture::T5),
            (
                DefaultRole::Marian(Lang::En, Lang::Ru),
                Architecture::Marian,
            ),
            (
                DefaultRole::Marian(Lang::Ru, Lang::En),
                Architecture::Marian,
            ),
        ] {
            let name = r.default_model(role).unwrap().to_string();
            assert_eq!(r.get(&name).map(|e| e.architecture), Some(arch), "{name}");
        }
        r.merge_str(
            "[defaults]\nmarian = { \"en-ru\" = \"opus-mt-tc-big-en-zle\" }\n",
            Path::new("user.toml"),
        )
        .unwrap();
        assert_eq!(
            r.default_model(DefaultRole::Marian(Lang::En, Lang::Ru))
                .unwrap(),
            "opus-mt-tc-big-en-zle"
        );
        assert_eq!(
            r.default_model(DefaultRole::Llm).unwrap(),
            "qwen2.5-1.5b-instruct"
        );
        let empty = Registry::default();
        let err = empty
            .default_model(DefaultRole::T5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--model"), "{err}");
        assert!(r
            .merge_str("[defaults]\nbogus = 1\n", Path::new("user.toml"))
            .is_err());
    }

    #[test]
    fn builtin_parses_and_has_the_curated_models() {
        let r = Registry::builtin().unwrap();
        for name in [
            "opus-mt-en-ru",
            "opus-mt-ru-en",
            "opus-mt-tc-big-en-zle",
            "opus-mt-tc-big-zle-en",
            "qwen2.5-1.5b-instruct",
            "qwen3-1.7b",
            "gemma-3-270m",
            "mt5-xlsum",
        ] {
            assert!(r.get(name).is_some(), "missing {name}");
        }
        let big = r.get("opus-mt-tc-big-en-zle").unwrap();
        assert_eq!(big.target_token.as_deref(), Some(">>rus<<"));
        assert_eq!(big.benchmarks.get("newstest2020.en-ru.bleu"), Some(&25.5));
        let qwen = r.get("qwen2.5-1.5b-instruct").unwrap();
        assert_eq!(qwen.architecture, Architecture::GgufLlm);
        assert_eq!(qwen.files[0].name, "qwen2.5-1.5b-instruct-q4_k_m.gguf");
        assert_eq!(r.get("mt5-xlsum").unwrap().architecture, Architecture::T5);
        assert!(r.iter().all(|(_, e)| e.origin == Origin::Builtin));
    }

    #[test]
    fn user_entries_add_and_replace() {
        let mut r = Registry::builtin().unwrap();
        let before = r.len();
        let user = r#"
            [models.opus-mt-en-ru]
            repo = "me/my-en-ru"
            architecture = "marian"
            files = [{ name = "model.safetensors", role = "weights" }]

            [models.mine]
            repo = "me/other"
            revision = "0123456789abcdef0123456789abcdef01234567"
            architecture = "gguf-llm"
            files = [{ name = "m.gguf", role = "weights" }]
        "#;
        r.merge_str(user, Path::new("/u/registry.toml")).unwrap();
        assert_eq!(r.len(), before + 1);
        let e = r.get("opus-mt-en-ru").unwrap();
        assert_eq!(e.repo.as_deref(), Some("me/my-en-ru"));
        assert_eq!(e.revision, "main");
        assert_eq!(e.origin, Origin::User(PathBuf::from("/u/registry.toml")));
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let mut r = Registry::default();
        let err = r
            .merge_str(
                "[models.x]\nrepo = \"a/b\"\narchitecture = \"lstm\"\n",
                Path::new("/tmp/reg.toml"),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("/tmp/reg.toml"), "{err}");
        assert!(err.contains("lstm"), "{err}");
        assert!(err.contains("line 3"), "{err}");

        let err = r
            .merge_str(
                "[models.x]\nrepo = \"a/b\"\narchitecture = \"t5\"\nfiles = [{ name = \"w\", role = \"weights\", sha256 = \"abc\" }]\n",
                Path::new("/tmp/reg.toml"),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("sha256 must be 64 hex digits"), "{err}");

        let err = r
            .merge_str(
                "[models.x]\nrepo = \"nope\"\narchitecture = \"t5\"\ndiscover = true\n",
                Path::new("/r.toml"),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("owner/name"), "{err}");

        let err = r
            .merge_str(
                "[models.x]\nrepo = \"a/b\"\narchitecture = \"t5\"\ntasks = [\"translate\"]\ndiscover = true\n",
                Path::new("/r.toml"),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("summaries only"), "{err}");
    }

    #[test]
    fn load_reads_an_explicit_file_and_fails_when_it_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(
            &path,
            "[models.z]\nrepo = \"o/z\"\narchitecture = \"t5\"\ndiscover = true\n",
        )
        .unwrap();
        let r = Registry::load(Some(&path)).unwrap();
        assert!(r.get("z").is_some());
        assert!(r.get("opus-mt-en-ru").is_some());
        let err = Registry::load(Some(&dir.path().join("absent.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.toml"), "{err}");
    }

    #[test]
    fn local_paths_expand_the_models_dir() {
        let gemma = Registry::builtin()
            .unwrap()
            .get("gemma-3-270m")
            .unwrap()
            .clone();
        let base = std::env::var_os("SVODKA_MODELS_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".models"));
        assert_eq!(
            gemma.local_paths(),
            vec![base.join("gemma-3-270m/gemma-3-270m-Q4_K_M.gguf")]
        );
        let plain = ModelEntry {
            local: vec!["a/b.gguf".into()],
            ..gemma
        };
        assert_eq!(plain.local_paths(), vec![PathBuf::from("a/b.gguf")]);
    }

    #[test]
    fn roles_and_ids() {
        assert_eq!(
            FileRole::infer("model.safetensors.index.json"),
            FileRole::WeightsIndex
        );
        assert_eq!(
            FileRole::infer("model-00001-of-00002.safetensors"),
            FileRole::Weights
        );
        assert_eq!(FileRole::infer("source.spm"), FileRole::SourceSpm);
        assert_eq!(FileRole::infer("README.md"), FileRole::Other);
        assert!(is_repo_id("Helsinki-NLP/opus-mt-en-ru"));
        assert!(!is_repo_id("a/b/c"));
        assert!(!is_repo_id("./x"));
        assert!(!is_repo_id("plain"));
    }
}
