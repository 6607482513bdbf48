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

mod cache;
mod env;
mod fetcher;
mod local;
mod resolve;
mod select;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::registry::{Architecture, FileRole};

pub(super) use cache::CacheLayout;
pub use cache::{cached_status, remove};
pub use env::FetchOptions;
pub(super) use fetcher::Expect;
pub use resolve::resolve;
pub(crate) use select::shards_of;

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
