//! Model files from the Hub cache (fetched by [`super::fetch`] when missing), offline
//! lookups, local paths.
//!
//! A model spec is a registry alias, a Hub id `owner/name[@revision]`, a local
//! directory, or a single `.gguf` / `.safetensors` file. Hub files land in the standard
//! cache (`models--owner--name/{blobs,snapshots,refs}`), shared with Python tools.
//!
//! Environment, as huggingface_hub reads it: `HF_ENDPOINT` (unless
//! [`FetchOptions::endpoint`] is set), `HF_HUB_CACHE` or `HF_HOME` (`$HF_HOME/hub`),
//! `HF_TOKEN` (else the token file `$HF_HOME/token`; sent as `Authorization: Bearer`,
//! never printed), `HF_HUB_OFFLINE=1`. Proxies: the ureq agent takes the first valid of
//! `ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY` (either case) for every request, http, https
//! and socks5 proxies alike; it does not read `NO_PROXY`. `SVODKA_HUB_TIMEOUT_SECS` and
//! `SVODKA_HUB_RETRIES` set the request timeout and retries.
//!
//! Files already in the cache for the requested revision are used without any request,
//! after a SHA-256 check where the expected hash is known (registry, Hub listing, or
//! the blob's own name for LFS files). A verified file is stamped (size + mtime) so
//! large files are hashed once, not on every run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::fetch::{Listing, Remote};
use super::registry::{is_repo_id, is_sha256, Architecture, FileRole, ModelEntry, Registry};
use super::validate::{check_repo_file, check_revision, is_commit};
use crate::{Error, Result};

const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// Folder, inside a repo's cache folder, that holds svodka's verification stamps.
const STAMP_DIR: &str = ".svodka-verified";

/// How to fetch model files.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Hub cache folder (the one holding `models--*`); default `$HF_HUB_CACHE`,
    /// `$HF_HOME/hub`, `~/.cache/huggingface/hub`.
    pub cache_dir: Option<PathBuf>,
    /// Read only the cache; also on when `HF_HUB_OFFLINE=1`.
    pub offline: bool,
    /// No progress bars.
    pub quiet: bool,
    /// Hub endpoint; default `$HF_ENDPOINT`, then `https://huggingface.co`.
    pub endpoint: Option<String>,
    /// Connect and read timeout of every request; default `$SVODKA_HUB_TIMEOUT_SECS`,
    /// then 10 s (huggingface_hub's).
    pub timeout: Option<Duration>,
    /// Retries of a request that failed transiently; default `$SVODKA_HUB_RETRIES`, then 3.
    pub retries: Option<u32>,
}

impl FetchOptions {
    /// Whether only the cache may be read (the option or `HF_HUB_OFFLINE`).
    pub fn is_offline(&self) -> bool {
        self.offline || env_flag("HF_HUB_OFFLINE")
    }

    /// The endpoint requests go to, without a trailing slash.
    pub fn endpoint_url(&self) -> String {
        let e = self
            .endpoint
            .clone()
            .or_else(|| non_empty_env("HF_ENDPOINT"))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        e.trim_end_matches('/').to_string()
    }

    /// The timeout every request runs under.
    pub fn timeout(&self) -> Duration {
        self.timeout
            .or_else(|| {
                let secs: f64 = non_empty_env("SVODKA_HUB_TIMEOUT_SECS")?
                    .trim()
                    .parse()
                    .ok()?;
                Duration::try_from_secs_f64(secs)
                    .ok()
                    .filter(|d| !d.is_zero())
            })
            .unwrap_or(Duration::from_secs(10))
    }

    /// How often a transiently failed request is tried again.
    pub fn retries(&self) -> u32 {
        self.retries
            .or_else(|| non_empty_env("SVODKA_HUB_RETRIES")?.trim().parse().ok())
            .unwrap_or(3)
    }

    /// The Hub cache folder.
    pub fn cache_root(&self) -> Result<PathBuf> {
        if let Some(dir) = &self.cache_dir {
            return Ok(dir.clone());
        }
        if let Some(dir) = non_empty_env("HF_HUB_CACHE") {
            return Ok(PathBuf::from(dir));
        }
        hf_home().map(|h| h.join("hub")).ok_or_else(|| {
            Error::Model("cannot find the Hub cache: set HF_HOME or pass --cache-dir".into())
        })
    }
}

/// A model's files on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFiles {
    /// Registry alias or the spec as given.
    pub name: String,
    /// Hub repository, for Hub models.
    pub repo: Option<String>,
    /// Revision asked for, for Hub models.
    pub revision: Option<String>,
    /// Snapshot folder, local folder, or the folder of a single file.
    pub root: PathBuf,
    /// File name inside the repository (or folder) → path on disk.
    pub files: BTreeMap<String, PathBuf>,
    /// Loading code the model needs, when known or recognizable.
    pub architecture: Option<Architecture>,
}

impl ModelFiles {
    /// Path of the file called `name` (as in the repository).
    pub fn get(&self, name: &str) -> Option<&Path> {
        self.files.get(name).map(PathBuf::as_path)
    }

    /// Paths of all files whose conventional role is `role`, sorted by name.
    pub fn with_role(&self, role: FileRole) -> Vec<&Path> {
        self.files
            .iter()
            .filter(|(name, _)| FileRole::infer(name) == role)
            .map(|(_, p)| p.as_path())
            .collect()
    }

    /// `config.json`, if present.
    pub fn config(&self) -> Option<&Path> {
        self.get("config.json")
    }

    /// The GGUF file, if the model is one.
    pub fn gguf(&self) -> Option<&Path> {
        self.files
            .iter()
            .find(|(n, _)| n.ends_with(".gguf"))
            .map(|(_, p)| p.as_path())
    }

    /// Sum of the file sizes on disk.
    pub fn total_size(&self) -> u64 {
        self.files
            .values()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// One file of a registry model and whether it is cached.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedFile {
    /// Name inside the repository.
    pub name: String,
    /// Role from the registry (or by convention for discovered files).
    pub role: FileRole,
    /// Path in the cache, when present.
    pub path: Option<PathBuf>,
    /// Size on disk, when present.
    pub size: Option<u64>,
}

/// What the cache holds of a registry model.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheStatus {
    /// The repository's cache folder (`models--owner--name`), if any.
    pub repo_dir: Option<PathBuf>,
    /// Commit the revision resolves to in the cache, if known.
    pub commit: Option<String>,
    /// The files the model needs (those listed, or those seen for `discover` models).
    pub files: Vec<CachedFile>,
    /// True when every needed file is present.
    pub complete: bool,
    /// Bytes on disk of the present files.
    pub total_size: u64,
}

/// Resolves `spec` (alias, `owner/name[@revision]`, folder, or file) into files on
/// disk, downloading what the cache lacks unless offline.
pub fn resolve(spec: &str, registry: &Registry, opts: &FetchOptions) -> Result<ModelFiles> {
    let spec = spec.trim();
    if let Some(entry) = registry.get(spec) {
        return resolve_entry(spec, entry, opts);
    }
    let path = Path::new(spec);
    if path.is_dir() {
        return local_dir(spec, path);
    }
    if path.is_file() {
        return local_file(spec, path);
    }
    let looks_like_file = [".gguf", ".safetensors", ".bin"]
        .iter()
        .any(|ext| spec.ends_with(ext));
    if let Some((repo, revision)) = parse_hub_id(spec).filter(|_| !looks_like_file) {
        check_revision(revision).map_err(|why| {
            Error::Model(format!(
                "model {spec}: `{revision}` is not a branch, tag or commit: {why}"
            ))
        })?;
        let target = Target {
            name: spec.to_string(),
            repo: repo.to_string(),
            revision: revision.to_string(),
        };
        return Fetcher::new(target, opts)?.fetch(Plan::Discover(None), None);
    }
    if looks_like_file || spec.starts_with('.') || spec.starts_with('/') || spec.starts_with('~') {
        return Err(Error::Model(format!(
            "model {spec}: no such file or directory"
        )));
    }
    Err(Error::Model(format!(
        "unknown model `{spec}`: not in the registry (see `svodka models list`), not an existing \
         path, and not a Hub id of the form owner/name[@revision]"
    )))
}

/// Which of a registry model's files are in the cache, and their total size. For
/// `discover` models the needed files are picked from what the cached snapshot holds.
pub fn cached_status(entry: &ModelEntry, opts: &FetchOptions) -> Result<CacheStatus> {
    let Some(repo) = &entry.repo else {
        return Ok(local_status(entry));
    };
    let cache = CacheLayout::new(opts.cache_root()?, repo);
    let commit = cache.commit_for(&entry.revision);
    let mut complete = true;
    let mut needed: Vec<(String, FileRole)> = if entry.discover || entry.files.is_empty() {
        let present = commit
            .as_deref()
            .map(|c| cache.snapshot_files(c))
            .unwrap_or_default();
        match select_files("", &present, entry.quant.as_deref()) {
            Ok(selected) => selected,
            Err(_) => {
                complete = false;
                present
            }
        }
        .into_iter()
        .map(|n| {
            let role = FileRole::infer(&n);
            (n, role)
        })
        .collect()
    } else {
        entry
            .files
            .iter()
            .map(|f| (f.name.clone(), f.role))
            .collect()
    };
    let mut files = Vec::new();
    let mut i = 0;
    while i < needed.len() {
        let (name, role) = needed[i].clone();
        i += 1;
        let path = commit.as_deref().and_then(|c| cache.pointer(c, &name));
        if let (FileRole::WeightsIndex, Some(index)) = (role, &path) {
            let dir = name
                .rsplit_once('/')
                .map(|(d, _)| format!("{d}/"))
                .unwrap_or_default();
            for shard in shards_of(index).unwrap_or_default() {
                let shard = format!("{dir}{shard}");
                if !needed.iter().any(|(n, _)| *n == shard) {
                    needed.push((shard, FileRole::Weights));
                }
            }
        }
        let size = path
            .as_deref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len());
        files.push(CachedFile {
            name,
            role,
            path,
            size,
        });
    }
    let complete = complete && !files.is_empty() && files.iter().all(|f| f.path.is_some());
    let total_size = files.iter().filter_map(|f| f.size).sum();
    let repo_dir = Some(cache.repo_dir.clone()).filter(|d| d.is_dir());
    Ok(CacheStatus {
        repo_dir,
        commit,
        files,
        complete,
        total_size,
    })
}

/// Deletes a registry model's repository from the cache (every cached revision);
/// returns the bytes freed. Local copies listed under `local` are left alone.
pub fn remove(entry: &ModelEntry, opts: &FetchOptions) -> Result<u64> {
    let Some(repo) = &entry.repo else {
        return Ok(0);
    };
    let cache = CacheLayout::new(opts.cache_root()?, repo);
    if !cache.repo_dir.exists() {
        return Ok(0);
    }
    let freed = walkdir::WalkDir::new(&cache.repo_dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    std::fs::remove_dir_all(&cache.repo_dir).map_err(|e| Error::io(&cache.repo_dir, e))?;
    Ok(freed)
}

fn resolve_entry(name: &str, entry: &ModelEntry, opts: &FetchOptions) -> Result<ModelFiles> {
    if let Some(found) = resolve_local_candidates(name, entry, opts)? {
        return Ok(found);
    }
    let Some(repo) = &entry.repo else {
        return Err(Error::Model(format!(
            "model {name}: none of its local paths exists ({}){}",
            entry.local.join(", "),
            entry
                .note
                .as_ref()
                .map(|n| format!("; {n}"))
                .unwrap_or_default()
        )));
    };
    let target = Target {
        name: name.to_string(),
        repo: repo.clone(),
        revision: entry.revision.clone(),
    };
    let plan = if entry.discover || entry.files.is_empty() {
        Plan::Discover(entry.quant.clone())
    } else {
        Plan::Listed(
            entry
                .files
                .iter()
                .map(|f| (f.name.clone(), f.sha256.clone(), f.size))
                .collect(),
        )
    };
    let mut files = Fetcher::new(target, opts)?.fetch(plan, entry.note.as_deref())?;
    files.architecture = Some(entry.architecture);
    Ok(files)
}

fn resolve_local_candidates(
    name: &str,
    entry: &ModelEntry,
    opts: &FetchOptions,
) -> Result<Option<ModelFiles>> {
    for candidate in entry.local_paths() {
        let path = candidate.as_path();
        if !path.exists() {
            continue;
        }
        let mut files = if path.is_dir() {
            local_dir(name, path)?
        } else {
            local_file(name, path)?
        };
        if let (Some(expected), true) = (&entry.local_sha256, path.is_file()) {
            let expected = expected.to_ascii_lowercase();
            // Stamps for local copies live in the cache, keyed by the file's full path.
            let stamp = opts.cache_root().ok().and_then(|root| {
                let full = std::fs::canonicalize(path).ok()?;
                let key = format!("{:x}", Sha256::digest(full.to_string_lossy().as_bytes()));
                Some(root.join(STAMP_DIR).join(format!("local-{}", &key[..32])))
            });
            if let Some(actual) = verify_sha256(path, &expected, stamp)? {
                return Err(Error::Model(format!(
                    "model {name}: {} is corrupt (sha256 {actual}, expected {expected}); delete it and \
                     fetch it again",
                    path.display()
                )));
            }
        }
        files.architecture = Some(entry.architecture);
        return Ok(Some(files));
    }
    Ok(None)
}

fn local_status(entry: &ModelEntry) -> CacheStatus {
    let found = entry.local_paths().into_iter().find(|p| p.exists());
    let files: Vec<CachedFile> = found
        .iter()
        .map(|p| CachedFile {
            name: p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            role: FileRole::Weights,
            size: std::fs::metadata(p).ok().map(|m| m.len()),
            path: Some(p.clone()),
        })
        .collect();
    CacheStatus {
        repo_dir: None,
        commit: None,
        complete: !files.is_empty(),
        total_size: files.iter().filter_map(|f| f.size).sum(),
        files,
    }
}

/// `owner/name` or `owner/name@revision`.
fn parse_hub_id(spec: &str) -> Option<(&str, &str)> {
    let (repo, revision) = match spec.split_once('@') {
        Some((r, rev)) if !rev.is_empty() => (r, rev),
        Some(_) => return None,
        None => (spec, "main"),
    };
    is_repo_id(repo).then_some((repo, revision))
}

// ---------------------------------------------------------------- local paths

fn local_dir(name: &str, dir: &Path) -> Result<ModelFiles> {
    let names = list_dir_files(dir);
    let mut selected = select_files(name, &names, None)?;
    let mut files = BTreeMap::new();
    while let Some(file) = selected.pop() {
        let path = dir.join(&file);
        if !path.is_file() {
            return Err(Error::Model(format!(
                "model {name}: {} is missing",
                path.display()
            )));
        }
        if FileRole::infer(&file) == FileRole::WeightsIndex {
            selected.extend(
                shards_of(&path)?
                    .into_iter()
                    .filter(|s| !files.contains_key(s)),
            );
        }
        files.insert(file, path);
    }
    let architecture = infer_architecture(&files);
    Ok(ModelFiles {
        name: name.to_string(),
        repo: None,
        revision: None,
        root: dir.to_path_buf(),
        files,
        architecture,
    })
}

fn local_file(name: &str, path: &Path) -> Result<ModelFiles> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::Model(format!("model {name}: {} is not a file", path.display())))?;
    let is_gguf = file_name.ends_with(".gguf");
    if !is_gguf && !file_name.ends_with(".safetensors") {
        return Err(Error::Model(format!(
            "model {name}: a single model file must be .gguf or .safetensors (got {file_name}); \
             pass the folder for other layouts"
        )));
    }
    let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut files = BTreeMap::from([(file_name, path.to_path_buf())]);
    if !is_gguf {
        // Config and tokenizer usually sit beside a bare safetensors file.
        for sibling in list_dir_files(&root) {
            let role = FileRole::infer(&sibling);
            if !matches!(
                role,
                FileRole::Weights | FileRole::WeightsIndex | FileRole::Other
            ) {
                files.insert(sibling.clone(), root.join(&sibling));
            }
        }
    }
    let architecture = infer_architecture(&files);
    Ok(ModelFiles {
        name: name.to_string(),
        repo: None,
        revision: None,
        root,
        files,
        architecture,
    })
}

fn list_dir_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Architecture from `config.json`'s `model_type`, or GGUF for a `.gguf` file.
fn infer_architecture(files: &BTreeMap<String, PathBuf>) -> Option<Architecture> {
    if files.keys().any(|n| n.ends_with(".gguf")) {
        return Some(Architecture::GgufLlm);
    }
    #[derive(Deserialize)]
    struct ModelType {
        model_type: Option<String>,
    }
    let text = std::fs::read_to_string(files.get("config.json")?).ok()?;
    let config: ModelType = serde_json::from_str(&text).ok()?;
    match config.model_type?.as_str() {
        "marian" => Some(Architecture::Marian),
        "t5" | "mt5" => Some(Architecture::T5),
        _ => None,
    }
}

/// Files a model needs, picked from a repository or folder listing. `quant` (e.g.
/// `Q4_K_M`) names the GGUF variant to take when the listing has GGUF files; without it
/// a lone GGUF is taken, or the Q4_K_M one among several.
fn select_files(name: &str, available: &[String], quant: Option<&str>) -> Result<Vec<String>> {
    let ggufs: Vec<&String> = available.iter().filter(|n| n.ends_with(".gguf")).collect();
    if !ggufs.is_empty() {
        let wanted = quant.unwrap_or("q4_k_m").to_ascii_lowercase();
        let matching: Vec<&&String> = ggufs
            .iter()
            .filter(|n| n.to_ascii_lowercase().contains(&wanted))
            .collect();
        let chosen = match (ggufs.as_slice(), matching.as_slice(), quant) {
            (_, [one], _) => (**one).clone(),
            ([one], _, None) => (*one).clone(),
            _ => {
                return Err(Error::Model(format!(
                    "model {name}: no single GGUF file matching {} among: {}",
                    wanted.to_ascii_uppercase(),
                    ggufs
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        };
        return Ok(vec![chosen]);
    }
    let has = |f: &str| available.iter().any(|n| n == f);
    if !has("config.json") {
        return Err(Error::Model(format!(
            "model {name}: neither config.json nor a .gguf file found"
        )));
    }
    let weights = [
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
    ]
    .into_iter()
    .find(|w| has(w))
    .ok_or_else(|| {
        Error::Model(format!(
            "model {name}: no weights found (model.safetensors, model.safetensors.index.json or pytorch_model.bin)"
        ))
    })?;
    let mut out = vec!["config.json".to_string(), weights.to_string()];
    for extra in [
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "source.spm",
        "target.spm",
        "vocab.json",
        "spiece.model",
    ] {
        if has(extra) {
            out.push(extra.to_string());
        }
    }
    Ok(out)
}

/// Shard file names listed in a `*.index.json` weight map, in first-seen order.
pub(crate) fn shards_of(index: &Path) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let parsed: Index = serde_json::from_str(&text)
        .map_err(|e| Error::bad_input(index, format!("not a weights index: {e}")))?;
    let mut shards: Vec<String> = parsed.weight_map.into_values().collect();
    shards.sort();
    shards.dedup();
    for shard in &shards {
        check_repo_file(shard).map_err(|why| {
            Error::bad_input(index, format!("unusable shard name {shard:?}: {why}"))
        })?;
    }
    Ok(shards)
}

// ---------------------------------------------------------------- the cache

/// Paths of one repository in the Hub cache.
pub(super) struct CacheLayout {
    /// `models--owner--name`.
    pub repo_dir: PathBuf,
}

impl CacheLayout {
    /// The layout of `repo`, which must be a checked `owner/name`.
    fn new(root: PathBuf, repo: &str) -> Self {
        CacheLayout {
            repo_dir: root.join(format!("models--{}", repo.replace('/', "--"))),
        }
    }

    /// The commit a revision points to: `refs/REV`, or REV itself when it is a commit.
    /// Neither a revision that is not a ref name nor a ref file that does not hold a
    /// commit id is followed.
    fn commit_for(&self, revision: &str) -> Option<String> {
        check_revision(revision).ok()?;
        let from_ref = std::fs::read_to_string(self.repo_dir.join("refs").join(revision))
            .ok()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| is_commit(s));
        from_ref.or_else(|| is_commit(revision).then(|| revision.to_ascii_lowercase()))
    }

    /// `snapshots/<commit>`; `commit` is always a checked commit id.
    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.repo_dir.join("snapshots").join(commit)
    }

    /// The snapshot entry for `file`, when it resolves to an existing file.
    fn pointer(&self, commit: &str, file: &str) -> Option<PathBuf> {
        let p = self.snapshot(commit).join(file);
        p.is_file().then_some(p)
    }

    fn snapshot_files(&self, commit: &str) -> Vec<String> {
        let root = self.snapshot(commit);
        let mut names: Vec<String> = walkdir::WalkDir::new(&root)
            .follow_links(true)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| {
                e.path()
                    .strip_prefix(&root)
                    .ok()
                    .map(|p| p.to_string_lossy().into_owned())
            })
            .collect();
        names.sort();
        names
    }

    fn stamp(&self, blob: &Path) -> Option<PathBuf> {
        Some(self.repo_dir.join(STAMP_DIR).join(blob.file_name()?))
    }
}

/// Size and modification time, the cheap fingerprint a stamp records.
fn fingerprint(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(format!("{} {}", meta.len(), mtime))
}

/// Checks `file` against `expected` (lowercase hex); `None` when it matches, else the
/// actual hash. A stamp holding the hash and the file's size and mtime spares re-hashing
/// a file that has not changed since it was last verified.
fn verify_sha256(file: &Path, expected: &str, stamp: Option<PathBuf>) -> Result<Option<String>> {
    let record = fingerprint(file).map(|print| format!("{expected} {print}"));
    if let (Some(stamp), Some(record)) = (&stamp, &record) {
        if std::fs::read_to_string(stamp).ok().as_deref() == Some(record.as_str()) {
            return Ok(None);
        }
    }
    let actual = sha256_file(file)?;
    if actual != expected {
        return Ok(Some(actual));
    }
    // Like git's "racily clean" rule: a file modified within the timestamp granularity
    // of the check could change again unseen, so only settled files get a stamp.
    let settled = std::fs::metadata(file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() >= 2);
    if let (Some(stamp), Some(record), true) = (stamp, record, settled) {
        // A missing stamp only costs a re-hash next time.
        if let Some(dir) = stamp.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(stamp, record);
    }
    Ok(None)
}

/// SHA-256 of a file, lowercase hex.
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok(format!("{:x}", hasher.finalize()))
}

// ---------------------------------------------------------------- fetching

struct Target {
    name: String,
    repo: String,
    revision: String,
}

enum Plan {
    /// Files named by the registry: (name, sha256, size).
    Listed(Vec<(String, Option<String>, Option<u64>)>),
    /// Files picked from the Hub listing (or the cached snapshot), with the GGUF quant.
    Discover(Option<String>),
}

/// What is expected of one file.
#[derive(Debug, Clone, Default)]
pub(super) struct Expect {
    /// SHA-256 of the content.
    pub sha256: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
}

struct Fetcher {
    target: Target,
    offline: bool,
    endpoint: String,
    cache: CacheLayout,
    cache_root: PathBuf,
    remote: Remote,
    /// Commit of the snapshot the files were found in or written to.
    commit: Option<String>,
}

impl Fetcher {
    fn new(target: Target, opts: &FetchOptions) -> Result<Self> {
        check_revision(&target.revision).map_err(|why| {
            Error::Model(format!(
                "model {}: revision `{}` is not a branch, tag or commit: {why}",
                target.name, target.revision
            ))
        })?;
        let cache_root = opts.cache_root()?;
        // Only agents are built here; nothing is sent before the cache is missed.
        let remote = Remote::new(
            &target.name,
            &target.repo,
            &target.revision,
            hf_token(),
            opts,
        );
        Ok(Fetcher {
            cache: CacheLayout::new(cache_root.clone(), &target.repo),
            cache_root,
            offline: opts.is_offline(),
            endpoint: opts.endpoint_url(),
            target,
            remote,
            commit: None,
        })
    }

    fn fetch(mut self, plan: Plan, note: Option<&str>) -> Result<ModelFiles> {
        self.commit = self.cache.commit_for(&self.target.revision);
        let (mut queue, mut expect) = match plan {
            Plan::Listed(list) => {
                let expect: BTreeMap<String, Expect> = list
                    .iter()
                    .map(|(n, sha, size)| {
                        (
                            n.clone(),
                            Expect {
                                sha256: sha.clone(),
                                size: *size,
                            },
                        )
                    })
                    .collect();
                (
                    list.into_iter().map(|(n, _, _)| n).collect::<Vec<_>>(),
                    expect,
                )
            }
            Plan::Discover(quant) => self.discover(quant.as_deref(), note)?,
        };
        queue.reverse();
        let mut files = BTreeMap::new();
        while let Some(name) = queue.pop() {
            if files.contains_key(&name) {
                continue;
            }
            let want = expect.remove(&name).unwrap_or_default();
            let path = self.get_file(&name, &want, note)?;
            if FileRole::infer(&name) == FileRole::WeightsIndex {
                let dir = name
                    .rsplit_once('/')
                    .map(|(d, _)| format!("{d}/"))
                    .unwrap_or_default();
                for shard in shards_of(&path)?.into_iter().rev() {
                    queue.push(format!("{dir}{shard}"));
                }
            }
            files.insert(name, path);
        }
        let root = match &self.commit {
            Some(c) => self.cache.snapshot(c),
            None => self.cache.repo_dir.clone(),
        };
        let architecture = infer_architecture(&files);
        Ok(ModelFiles {
            name: self.target.name.clone(),
            repo: Some(self.target.repo.clone()),
            revision: Some(self.target.revision.clone()),
            root,
            files,
            architecture,
        })
    }

    /// Picks files from the cached snapshot when it holds a complete model, else from
    /// the Hub listing (with sizes and LFS hashes).
    fn discover(
        &mut self,
        quant: Option<&str>,
        note: Option<&str>,
    ) -> Result<(Vec<String>, BTreeMap<String, Expect>)> {
        if let Some(commit) = &self.commit {
            let cached = self.cache.snapshot_files(commit);
            if let Ok(selected) = select_files(&self.target.name, &cached, quant) {
                return Ok((selected, BTreeMap::new()));
            }
        }
        if self.offline {
            return Err(self.missing_offline("its file list", note));
        }
        let listing = self.listing()?;
        let names: Vec<String> = listing
            .siblings
            .iter()
            .map(|s| s.rfilename.clone())
            .collect();
        let selected = select_files(&self.target.name, &names, quant)?;
        let expect = listing
            .siblings
            .into_iter()
            .map(|s| {
                let (sha256, lfs_size) = s.lfs.map(|l| (l.sha256, l.size)).unwrap_or((None, None));
                (
                    s.rfilename,
                    Expect {
                        sha256,
                        size: lfs_size.or(s.size),
                    },
                )
            })
            .collect();
        if let Some(sha) = listing.sha.filter(|s| is_commit(s)) {
            self.commit.get_or_insert(sha);
        }
        Ok((selected, expect))
    }

    fn listing(&mut self) -> Result<Listing> {
        self.remote.listing()
    }

    /// A file from the cache (checked) or downloaded (checked), re-fetched once when corrupt.
    fn get_file(&mut self, name: &str, want: &Expect, note: Option<&str>) -> Result<PathBuf> {
        if let Some(commit) = self.commit.clone() {
            if let Some(pointer) = self.cache.pointer(&commit, name) {
                match self.check(name, &pointer, want)? {
                    Check::Good => return Ok(pointer),
                    Check::Bad(reason) if self.offline => {
                        return Err(Error::Model(format!(
                            "model {}: cached file {name} is corrupt ({reason}); run `svodka models pull {}` \
                             with network access",
                            self.target.name, self.target.name
                        )))
                    }
                    Check::Bad(_) => self.discard(&pointer),
                }
            }
        }
        if self.offline {
            return Err(self.missing_offline(name, note));
        }
        let pointer = self.download(name, want)?;
        match self.check(name, &pointer, want)? {
            Check::Good => Ok(pointer),
            Check::Bad(_) => {
                self.discard(&pointer);
                let pointer = self.download(name, want)?;
                match self.check(name, &pointer, want)? {
                    Check::Good => Ok(pointer),
                    Check::Bad(reason) => {
                        self.discard(&pointer);
                        Err(Error::Model(format!(
                            "model {}: file {name} from {} failed its check twice ({reason}); the copy was \
                             deleted",
                            self.target.name, self.endpoint
                        )))
                    }
                }
            }
        }
    }

    /// Size and SHA-256 checks; a stamp spares re-hashing an unchanged, verified blob.
    fn check(&self, name: &str, pointer: &Path, want: &Expect) -> Result<Check> {
        let blob = std::fs::canonicalize(pointer).map_err(|e| Error::io(pointer, e))?;
        let blob_name = blob
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let expected = want
            .sha256
            .clone()
            .or_else(|| is_sha256(&blob_name).then(|| blob_name.clone()))
            .map(|s| s.to_ascii_lowercase());
        let len = std::fs::metadata(&blob)
            .map_err(|e| Error::io(&blob, e))?
            .len();
        if let Some(size) = want.size {
            if len != size {
                return Ok(Check::Bad(format!("{len} bytes, expected {size}")));
            }
        }
        let Some(expected) = expected else {
            return Ok(Check::Good);
        };
        match verify_sha256(&blob, &expected, self.cache.stamp(&blob))? {
            None => Ok(Check::Good),
            Some(actual) => Ok(Check::Bad(format!(
                "sha256 {actual}, expected {expected} for {name}"
            ))),
        }
    }

    /// Deletes a snapshot entry and the blob behind it, so the next download starts clean.
    fn discard(&self, pointer: &Path) {
        if let Ok(blob) = std::fs::canonicalize(pointer) {
            if let Some(stamp) = self.cache.stamp(&blob) {
                let _ = std::fs::remove_file(stamp);
            }
            let _ = std::fs::remove_file(&blob);
        }
        let _ = std::fs::remove_file(pointer);
    }

    fn download(&mut self, name: &str, want: &Expect) -> Result<PathBuf> {
        let (pointer, commit) = self.remote.download(&self.cache, name, want)?;
        // Later files are looked up in the snapshot of the commit the server named.
        self.commit = Some(commit);
        Ok(pointer)
    }

    fn missing_offline(&self, what: &str, note: Option<&str>) -> Error {
        Error::Model(format!(
            "model {}: {what} is not in the cache ({}) and offline mode is on; run `svodka models pull {}` \
             with network access{}",
            self.target.name,
            self.cache_root.display(),
            self.target.name,
            note.map(|n| format!(" ({n})")).unwrap_or_default()
        ))
    }
}

enum Check {
    Good,
    Bad(String),
}

// ---------------------------------------------------------------- environment

fn non_empty_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

fn env_flag(key: &str) -> bool {
    non_empty_env(key).is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

fn hf_home() -> Option<PathBuf> {
    non_empty_env("HF_HOME").map(PathBuf::from).or_else(|| {
        let base = non_empty_env("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| non_empty_env("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("huggingface"))
    })
}

/// `HF_TOKEN`, else the token file huggingface-cli writes.
fn hf_token() -> Option<String> {
    if let Some(t) = non_empty_env("HF_TOKEN") {
        return Some(t.trim().to_string());
    }
    let path = non_empty_env("HF_TOKEN_PATH")
        .map(PathBuf::from)
        .or_else(|| hf_home().map(|h| h.join("token")))?;
    std::fs::read_to_string(path)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn stamps_spare_rehashing_settled_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("blob");
        std::fs::write(&file, b"weights").unwrap();
        let good = sha256_file(&file).unwrap();
        let stamp = dir.path().join("stamps/blob");
        // Fresh file: verified but not stamped (its mtime may not have settled).
        assert_eq!(
            verify_sha256(&file, &good, Some(stamp.clone())).unwrap(),
            None
        );
        assert!(!stamp.exists());
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let set_old = |f: &Path| {
            std::fs::File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_modified(old)
                .unwrap();
        };
        set_old(&file);
        assert_eq!(
            verify_sha256(&file, &good, Some(stamp.clone())).unwrap(),
            None
        );
        assert!(stamp.exists());
        // Same size and mtime: the stamp is trusted (this is what saves the re-hash).
        std::fs::write(&file, b"WEIGHTS").unwrap();
        set_old(&file);
        assert_eq!(
            verify_sha256(&file, &good, Some(stamp.clone())).unwrap(),
            None
        );
        // Any change of mtime: hashed again and caught.
        std::fs::write(&file, b"WEIGHTS").unwrap();
        let bad = verify_sha256(&file, &good, Some(stamp)).unwrap();
        assert_eq!(bad, Some(sha256_file(&file).unwrap()));
    }

    #[test]
    fn hub_ids_parse_with_and_without_revision() {
        assert_eq!(parse_hub_id("a/b"), Some(("a/b", "main")));
        assert_eq!(parse_hub_id("a/b@v1.0"), Some(("a/b", "v1.0")));
        assert_eq!(parse_hub_id("a/b@"), None);
        assert_eq!(parse_hub_id("a"), None);
        assert_eq!(parse_hub_id("./a/b"), None);
    }

    #[test]
    fn selection_prefers_safetensors_and_takes_tokenizers() {
        let all = names(&[
            "config.json",
            "pytorch_model.bin",
            "model.safetensors",
            "source.spm",
            "target.spm",
            "vocab.json",
            "README.md",
            "tf_model.h5",
        ]);
        let want = names(&[
            "config.json",
            "model.safetensors",
            "source.spm",
            "target.spm",
            "vocab.json",
        ]);
        assert_eq!(select_files("m", &all, None).unwrap(), want);
        let t5 = names(&["config.json", "pytorch_model.bin", "spiece.model"]);
        assert_eq!(select_files("m", &t5, None).unwrap(), t5);
        let sharded = names(&[
            "config.json",
            "model.safetensors.index.json",
            "model-00001-of-00002.safetensors",
        ]);
        let want = names(&["config.json", "model.safetensors.index.json"]);
        assert_eq!(select_files("m", &sharded, None).unwrap(), want);
    }

    #[test]
    fn selection_of_gguf_and_failures() {
        let three = names(&["a-Q8_0.gguf", "a-Q4_K_M.gguf", "README.md"]);
        assert_eq!(
            select_files("m", &three, None).unwrap(),
            names(&["a-Q4_K_M.gguf"])
        );
        assert_eq!(
            select_files("m", &three, Some("Q8_0")).unwrap(),
            names(&["a-Q8_0.gguf"])
        );
        let two = names(&["a-Q8_0.gguf", "a-Q6_K.gguf"]);
        let err = select_files("m", &two, None).unwrap_err().to_string();
        assert!(
            err.contains("a-Q8_0.gguf") && err.contains("a-Q6_K.gguf"),
            "{err}"
        );
        // A lone file of another quant is not taken silently when one was asked for.
        let lone = names(&["a-Q8_0.gguf"]);
        assert_eq!(select_files("m", &lone, None).unwrap(), lone);
        let err = select_files("m", &lone, Some("Q4_K_M"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Q4_K_M") && err.contains("a-Q8_0.gguf"),
            "{err}"
        );
        let err = select_files("m", &names(&["README.md"]), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.json"), "{err}");
        let err = select_files("m", &names(&["config.json", "tf_model.h5"]), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no weights"), "{err}");
    }

    #[test]
    fn local_folder_with_shards_and_single_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("config.json"), r#"{"model_type":"marian"}"#).unwrap();
        std::fs::write(
            d.join("model.safetensors.index.json"),
            r#"{"weight_map":{"a":"model-1.safetensors","b":"model-2.safetensors","c":"model-1.safetensors"}}"#,
        )
        .unwrap();
        std::fs::write(d.join("model-1.safetensors"), b"x").unwrap();
        std::fs::write(d.join("model-2.safetensors"), b"y").unwrap();
        std::fs::write(d.join("vocab.json"), b"{}").unwrap();
        let files = resolve(
            d.to_str().unwrap(),
            &Registry::default(),
            &FetchOptions::default(),
        )
        .unwrap();
        assert_eq!(files.architecture, Some(Architecture::Marian));
        assert_eq!(
            files.files.keys().cloned().collect::<Vec<_>>(),
            names(&[
                "config.json",
                "model-1.safetensors",
                "model-2.safetensors",
                "model.safetensors.index.json",
                "vocab.json"
            ])
        );
        assert_eq!(files.with_role(FileRole::Weights).len(), 2);

        std::fs::remove_file(d.join("model-2.safetensors")).unwrap();
        let err = resolve(
            d.to_str().unwrap(),
            &Registry::default(),
            &FetchOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("model-2.safetensors is missing"), "{err}");

        let single = resolve(
            d.join("model-1.safetensors").to_str().unwrap(),
            &Registry::default(),
            &FetchOptions::default(),
        )
        .unwrap();
        assert!(single.files.contains_key("model-1.safetensors"));
        assert!(single.files.contains_key("config.json"));
        assert!(!single.files.contains_key("model.safetensors.index.json"));

        std::fs::write(d.join("m.gguf"), b"GGUF").unwrap();
        let g = resolve(
            d.join("m.gguf").to_str().unwrap(),
            &Registry::default(),
            &FetchOptions::default(),
        )
        .unwrap();
        assert_eq!(g.architecture, Some(Architecture::GgufLlm));
        assert_eq!(g.gguf(), Some(d.join("m.gguf").as_path()));
    }

    #[test]
    fn unknown_specs_explain_themselves() {
        let r = Registry::default();
        let o = FetchOptions {
            offline: true,
            ..Default::default()
        };
        let err = resolve("nonsense", &r, &o).unwrap_err().to_string();
        assert!(err.contains("not in the registry"), "{err}");
        let err = resolve("/no/such/model.gguf", &r, &o)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such file"), "{err}");
    }

    #[test]
    fn registry_entry_prefers_an_existing_local_copy_and_checks_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tiny.gguf");
        std::fs::write(&file, b"GGUF tiny").unwrap();
        let sha = sha256_file(&file).unwrap();
        let mut r = Registry::default();
        let text = format!(
            "[models.t]\nrepo = \"o/t\"\narchitecture = \"gguf-llm\"\nlocal = [\"{}\"]\nlocal_sha256 = \"{sha}\"\nfiles = [{{ name = \"tiny.gguf\", role = \"weights\" }}]\n",
            file.display()
        );
        r.merge_str(&text, Path::new("r.toml")).unwrap();
        let o = FetchOptions {
            offline: true,
            cache_dir: Some(dir.path().join("cache")),
            ..Default::default()
        };
        let got = resolve("t", &r, &o).unwrap();
        assert_eq!(got.gguf(), Some(file.as_path()));
        std::fs::write(&file, b"GGUF tampered").unwrap();
        let err = resolve("t", &r, &o).unwrap_err().to_string();
        assert!(err.contains("corrupt"), "{err}");
    }
}
