//! The settings a Hub lookup runs under, read as huggingface_hub reads them: options
//! first, then `HF_*` and `SVODKA_HUB_*` variables, then the defaults.

use std::path::PathBuf;
use std::time::Duration;

use crate::{Error, Result};

const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

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
pub(super) fn hf_token() -> Option<String> {
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
