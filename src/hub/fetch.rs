//! The network side of the Hub: listings and file downloads into the cache, written by
//! svodka itself in the Hub cache layout (`blobs/<etag>`, `snapshots/<commit>/<file>` →
//! the blob, `refs/<revision>` holding the commit) that huggingface_hub shares.
//!
//! Everything a server says is checked before it is used: the ETag must be a git SHA-1
//! or a SHA-256 and the commit 40 hex digits before either names a path, file names in a
//! listing follow the Hub's rules, a listing is read up to [`MAX_LISTING`] bytes, and a
//! download stops at the size the server declared for it. Every request has connect and
//! read timeouts, and transient failures (connection errors, timeouts, 429 and 5xx) are
//! retried with exponential backoff; an interrupted download resumes with a range
//! request from the partial file.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::download::{CacheLayout, Expect, FetchOptions};
use super::registry::is_sha256;
use super::validate::{check_repo_file, etag_blob_name, is_commit};
use crate::{Error, Result};

/// Largest file listing read from a server; the Hub's are kilobytes to a few megabytes.
pub const MAX_LISTING: u64 = 32 << 20;
/// Relative redirects followed while probing a file (the Hub uses them for renamed repos).
const MAX_REDIRECTS: u32 = 5;

/// A repository's listing: its commit and files.
#[derive(Debug, Deserialize)]
pub(super) struct Listing {
    pub sha: Option<String>,
    #[serde(default)]
    pub siblings: Vec<Sibling>,
}

/// One file of a listing.
#[derive(Debug, Deserialize)]
pub(super) struct Sibling {
    pub rfilename: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub lfs: Option<Lfs>,
}

/// The LFS pointer of a listed file.
#[derive(Debug, Deserialize)]
pub(super) struct Lfs {
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
}

/// What a server says about one file before it is downloaded.
struct Probe {
    commit: String,
    blob: String,
    size: u64,
}

/// Why one attempt failed.
enum Fail {
    Http(Box<ureq::Error>),
    /// Connection broke or stalled mid-body: retried, resuming.
    Body(std::io::Error),
    /// The server broke the protocol or sent something unsafe: not retried.
    Hostile(String),
    /// Writing the cache failed.
    Io(PathBuf, std::io::Error),
}

impl From<ureq::Error> for Fail {
    fn from(e: ureq::Error) -> Self {
        Fail::Http(Box::new(e))
    }
}

impl Fail {
    fn is_transient(&self) -> bool {
        match self {
            Fail::Http(e) => match e.as_ref() {
                ureq::Error::Status(code, _) => matches!(code, 429 | 500 | 502 | 503 | 504),
                ureq::Error::Transport(t) => !matches!(
                    t.kind(),
                    ureq::ErrorKind::InvalidUrl
                        | ureq::ErrorKind::UnknownScheme
                        | ureq::ErrorKind::InvalidProxyUrl
                        | ureq::ErrorKind::TooManyRedirects
                        | ureq::ErrorKind::BadStatus
                        | ureq::ErrorKind::BadHeader
                ),
            },
            Fail::Body(_) => true,
            Fail::Hostile(_) | Fail::Io(..) => false,
        }
    }
}

/// One repository at one revision on one endpoint, with the HTTP agents to reach it.
pub(super) struct Remote {
    name: String,
    repo: String,
    revision: String,
    endpoint: String,
    token: Option<String>,
    quiet: bool,
    timeout: Duration,
    retries: u32,
    /// Follows redirects (to the CDN), sending the token to the same host only.
    agent: ureq::Agent,
    /// Follows none, so the Hub's own headers (commit, ETag) are seen.
    probe_agent: ureq::Agent,
}

impl Remote {
    pub fn new(
        name: &str,
        repo: &str,
        revision: &str,
        token: Option<String>,
        opts: &FetchOptions,
    ) -> Remote {
        let timeout = opts.timeout();
        let base = || {
            ureq::AgentBuilder::new()
                .timeout_connect(timeout)
                .timeout_read(timeout)
                .timeout_write(timeout)
                .try_proxy_from_env(true)
                .user_agent(concat!("svodka/", env!("CARGO_PKG_VERSION")))
        };
        Remote {
            name: name.to_string(),
            repo: repo.to_string(),
            revision: revision.to_string(),
            endpoint: opts.endpoint_url(),
            token,
            quiet: opts.quiet,
            timeout,
            retries: opts.retries(),
            agent: base()
                .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
                .build(),
            probe_agent: base().redirects(0).build(),
        }
    }

    fn get(&self, agent: &ureq::Agent, url: &str) -> ureq::Request {
        let req = agent.get(url);
        match &self.token {
            Some(t) => req.set("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are spent.
    fn with_retries<T>(&self, mut attempt: impl FnMut() -> Result<T, Fail>) -> Result<T, Fail> {
        let mut tries = 0;
        loop {
            match attempt() {
                Err(e) if e.is_transient() && tries < self.retries => {
                    // 0.5 s, 1 s, 2 s, ... up to 8 s between tries.
                    let wait = Duration::from_millis(500 << tries.min(4));
                    std::thread::sleep(wait);
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    /// The repository's file listing at the revision, with sizes and LFS hashes.
    pub fn listing(&self) -> Result<Listing> {
        let url = format!(
            "{}/api/models/{}/revision/{}?blobs=true",
            self.endpoint,
            self.repo,
            quote(&self.revision, false)
        );
        let body = self
            .with_retries(|| {
                let resp = self
                    .get(&self.agent, &url)
                    .timeout(self.timeout * 6)
                    .call()?;
                let mut body = Vec::new();
                resp.into_reader()
                    .take(MAX_LISTING + 1)
                    .read_to_end(&mut body)
                    .map_err(Fail::Body)?;
                if body.len() as u64 > MAX_LISTING {
                    return Err(Fail::Hostile(format!(
                        "its file listing is larger than {} MiB",
                        MAX_LISTING >> 20
                    )));
                }
                Ok(body)
            })
            .map_err(|f| self.error(f, None))?;
        let listing: Listing = serde_json::from_slice(&body).map_err(|e| {
            Error::Model(format!(
                "model {}: unreadable file listing from {}: {e}",
                self.name, self.endpoint
            ))
        })?;
        for s in &listing.siblings {
            let hostile = |why: String| {
                Error::Model(format!(
                    "model {}: the file listing from {} is unusable: {why}",
                    self.name, self.endpoint
                ))
            };
            check_repo_file(&s.rfilename)
                .map_err(|e| hostile(format!("file name {:?}: {e}", s.rfilename)))?;
            if let Some(sha) = s.lfs.as_ref().and_then(|l| l.sha256.as_ref()) {
                if !is_sha256(sha) {
                    return Err(hostile(format!("sha256 {sha:?} of {}", s.rfilename)));
                }
            }
        }
        Ok(listing)
    }

    /// Downloads `file` into the cache (unless its blob is there already), links it
    /// into the snapshot of the commit the server names, and points `refs/<revision>`
    /// at that commit. Returns the snapshot path and the commit.
    pub fn download(
        &self,
        cache: &CacheLayout,
        file: &str,
        want: &Expect,
    ) -> Result<(PathBuf, String)> {
        check_repo_file(file)
            .map_err(|e| Error::Model(format!("model {}: file name {file:?}: {e}", self.name)))?;
        let url = format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint,
            self.repo,
            quote(&self.revision, false),
            quote(file, true)
        );
        let probe = self
            .with_retries(|| self.probe(&url))
            .map_err(|f| self.error(f, Some(file)))?;
        if let Some(expected) = want.size.filter(|&s| s != probe.size) {
            return Err(Error::Model(format!(
                "model {}: {} declares {} bytes for {file}, expected {expected}",
                self.name, self.endpoint, probe.size
            )));
        }
        let blobs = cache.repo_dir.join("blobs");
        create_dir(&blobs)?;
        let blob = blobs.join(&probe.blob);
        if !blob.is_file() {
            let _lock = FileLock::acquire(&blobs.join(format!("{}.lock", probe.blob)))
                .map_err(|why| Error::Model(format!("model {}: {file}: {why}", self.name)))?;
            if !blob.is_file() {
                let part = blobs.join(format!("{}.part", probe.blob));
                let bar = Bar::new(self.quiet, file, probe.size);
                let got = self.with_retries(|| self.download_to(&url, &part, probe.size, &bar));
                if let Err(f) = got {
                    bar.0.abandon();
                    if matches!(f, Fail::Hostile(_)) {
                        let _ = std::fs::remove_file(&part);
                    }
                    return Err(self.error(f, Some(file)));
                }
                bar.0.finish();
                std::fs::rename(&part, &blob).map_err(|e| Error::io(&blob, e))?;
            }
        }
        let pointer = cache.snapshot(&probe.commit).join(file);
        link_pointer(&blob, &pointer, file)?;
        if self.revision != probe.commit {
            write_ref(
                &cache.repo_dir.join("refs").join(&self.revision),
                &probe.commit,
            )?;
        }
        Ok((pointer, probe.commit))
    }

    /// A one-byte request that yields the commit, the blob name and the size.
    fn probe(&self, url: &str) -> Result<Probe, Fail> {
        let mut url = url.to_string();
        let mut resp = None;
        for _ in 0..=MAX_REDIRECTS {
            let r = self
                .get(&self.probe_agent, &url)
                .set("Range", "bytes=0-0")
                .set("Accept-Encoding", "identity")
                .timeout(self.timeout * 6)
                .call()?;
            match relative_redirect(&r, &url) {
                Some(next) => url = next,
                None => {
                    resp = Some(r);
                    break;
                }
            }
        }
        let resp = resp.ok_or_else(|| Fail::Hostile("too many redirects".into()))?;
        let etag = resp
            .header("x-linked-etag")
            .or_else(|| resp.header("etag"))
            .ok_or_else(|| Fail::Hostile("it sent no ETag".into()))?;
        let blob = etag_blob_name(etag)
            .ok_or_else(|| Fail::Hostile(format!("its ETag {etag:?} is not a content hash")))?;
        let commit = resp
            .header("x-repo-commit")
            .ok_or_else(|| Fail::Hostile("it sent no X-Repo-Commit".into()))?
            .trim();
        if !is_commit(commit) {
            return Err(Fail::Hostile(format!(
                "its X-Repo-Commit {commit:?} is not a commit id"
            )));
        }
        let commit = commit.to_ascii_lowercase();
        let mut size = resp
            .header("x-linked-size")
            .map(|s| s.trim().parse::<u64>())
            .transpose()
            .map_err(|_| Fail::Hostile("its X-Linked-Size is not a number".into()))?;
        if size.is_none() {
            size = match resp.status() {
                300..=399 => {
                    let location = resp
                        .header("location")
                        .ok_or_else(|| Fail::Hostile("a redirect without Location".into()))?;
                    let r = self
                        .get(&self.agent, location)
                        .set("Range", "bytes=0-0")
                        .set("Accept-Encoding", "identity")
                        .timeout(self.timeout * 6)
                        .call()?;
                    declared_size(&r)
                }
                _ => declared_size(&resp),
            };
        }
        let size = size.ok_or_else(|| Fail::Hostile("it declared no size".into()))?;
        Ok(Probe { commit, blob, size })
    }

    /// Fills `part` up to `size` bytes, resuming from what it holds.
    fn download_to(&self, url: &str, part: &Path, size: u64, bar: &Bar) -> Result<(), Fail> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(part)
            .map_err(|e| Fail::Io(part.to_path_buf(), e))?;
        let io = |e: std::io::Error| Fail::Io(part.to_path_buf(), e);
        let mut start = file.metadata().map_err(io)?.len();
        if start > size {
            file.set_len(0).map_err(io)?;
            start = 0;
        }
        bar.0.set_position(start);
        if start == size {
            return Ok(());
        }
        let resp = match self
            .get(&self.agent, url)
            .set("Range", &format!("bytes={start}-"))
            .set("Accept-Encoding", "identity")
            .call()
        {
            // The partial file does not fit what the server has: start over.
            Err(ureq::Error::Status(416, _)) => {
                file.set_len(0).map_err(io)?;
                start = 0;
                bar.0.set_position(0);
                self.get(&self.agent, url)
                    .set("Accept-Encoding", "identity")
                    .call()?
            }
            other => other?,
        };
        if resp.status() == 206 {
            let range = resp.header("content-range").unwrap_or_default();
            let from = range
                .strip_prefix("bytes ")
                .and_then(|r| r.split_once('-'))
                .and_then(|(a, _)| a.trim().parse::<u64>().ok());
            if from != Some(start) {
                return Err(Fail::Hostile(format!(
                    "it answered a request from byte {start} with {range:?}"
                )));
            }
        } else {
            // A whole body: the range was ignored.
            file.set_len(0).map_err(io)?;
            start = 0;
            bar.0.set_position(0);
        }
        let mut reader = resp.into_reader();
        let mut left = size - start;
        let mut buf = vec![0u8; 1 << 16];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match reader.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(Fail::Body(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the connection closed {left} bytes short"),
                    )))
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Fail::Body(e)),
            };
            file.write_all(&buf[..n]).map_err(io)?;
            left -= n as u64;
            bar.0.inc(n as u64);
        }
        let mut extra = [0u8; 1];
        if matches!(reader.read(&mut extra), Ok(n) if n > 0) {
            return Err(Fail::Hostile(format!(
                "it sent more than the {size} bytes it declared"
            )));
        }
        file.sync_all().map_err(io)?;
        Ok(())
    }

    /// One line for a failed request; never the token.
    fn error(&self, fail: Fail, file: Option<&str>) -> Error {
        let name = &self.name;
        let rev = &self.revision;
        let ep = &self.endpoint;
        let what = file
            .map(|f| format!("file {f}"))
            .unwrap_or_else(|| "file listing".to_string());
        let msg = match fail {
            Fail::Hostile(why) => {
                format!("model {name}: {ep} is not a usable Hub endpoint for {what}: {why}")
            }
            Fail::Io(path, e) => format!(
                "model {name}: cannot write {} into the cache: {e}",
                path.display()
            ),
            Fail::Body(e) if is_timeout(&e) => format!(
                "model {name}: {ep} stopped sending {what} for {} s (after {} retries)",
                self.timeout.as_secs_f32(),
                self.retries
            ),
            Fail::Body(e) => format!(
                "model {name}: {what} from {ep} broke off: {e} (after {} retries)",
                self.retries
            ),
            Fail::Http(e) => match *e {
                ureq::Error::Status(404, _) => match file {
                    Some(f) => {
                        format!("model {name}: file {f} not found at revision {rev} on {ep}")
                    }
                    None => format!(
                        "model {name}: repository {} (revision {rev}) not found on {ep}",
                        self.repo
                    ),
                },
                ureq::Error::Status(code @ (401 | 403), _) => format!(
                    "model {name}: access denied ({code}) to {what} on {ep}; the repository may be \
                     gated or private: set HF_TOKEN"
                ),
                ureq::Error::Status(code, _) if code >= 500 => {
                    format!("model {name}: server error {code} from {ep} while fetching {what}")
                }
                ureq::Error::Status(code, _) => {
                    format!("model {name}: HTTP {code} from {ep} while fetching {what}")
                }
                ureq::Error::Transport(t) => {
                    let timed_out = std::error::Error::source(&t)
                        .and_then(|s| s.downcast_ref::<std::io::Error>())
                        .is_some_and(is_timeout);
                    if timed_out {
                        format!(
                            "model {name}: no answer from {ep} within {} s while fetching {what} \
                             (after {} retries); check the network or HTTPS_PROXY, or use --offline \
                             with a filled cache",
                            self.timeout.as_secs_f32(),
                            self.retries
                        )
                    } else {
                        let mut detail = t.kind().to_string();
                        if let Some(m) = t.message() {
                            detail.push_str(": ");
                            detail.push_str(m);
                        }
                        if let Some(src) = std::error::Error::source(&t) {
                            detail.push_str(": ");
                            detail.push_str(&src.to_string());
                        }
                        format!(
                            "cannot reach {ep} ({detail}) while fetching {what} of model {name}; check \
                             the network or HTTPS_PROXY, or use --offline with a filled cache"
                        )
                    }
                }
            },
        };
        Error::Model(self.redact(msg).replace(['\n', '\r'], " "))
    }

    fn redact(&self, text: String) -> String {
        match &self.token {
            Some(t) if !t.is_empty() => text.replace(t.as_str(), "***"),
            _ => text,
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

/// The next URL of a redirect to the same server (a relative `Location`), if any.
fn relative_redirect(resp: &ureq::Response, url: &str) -> Option<String> {
    if !(300..400).contains(&resp.status()) {
        return None;
    }
    let location = resp.header("location")?;
    if !location.starts_with('/') || location.starts_with("//") {
        return None;
    }
    let scheme_end = url.find("://")? + 3;
    let host_end = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    Some(format!("{}{location}", &url[..host_end]))
}

/// The total size in a `Content-Range: bytes a-b/total`, or a whole body's length.
fn declared_size(resp: &ureq::Response) -> Option<u64> {
    match resp.header("content-range") {
        Some(range) => range.rsplit_once('/')?.1.trim().parse().ok(),
        None if resp.status() == 200 => resp.header("content-length")?.trim().parse().ok(),
        None => None,
    }
}

/// Percent-encodes everything but unreserved characters (and `/` when `keep_slash`).
fn quote(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Points the snapshot entry at its blob: a relative symlink as huggingface_hub makes
/// it, or a copy where symlinks are not allowed.
fn link_pointer(blob: &Path, pointer: &Path, file: &str) -> Result<()> {
    let parent = pointer
        .parent()
        .ok_or_else(|| Error::Model(format!("{} has no folder", pointer.display())))?;
    create_dir(parent)?;
    if std::fs::symlink_metadata(pointer).is_ok() {
        std::fs::remove_file(pointer).map_err(|e| Error::io(pointer, e))?;
    }
    // snapshots/<commit>/<file>: up one folder per component of `file`, plus two.
    let mut target = PathBuf::new();
    for _ in 0..file.split('/').count() + 1 {
        target.push("..");
    }
    target.push("blobs");
    target.push(blob.file_name().unwrap_or_default());
    #[cfg(unix)]
    let linked = std::os::unix::fs::symlink(&target, pointer);
    #[cfg(windows)]
    let linked = std::os::windows::fs::symlink_file(&target, pointer);
    #[cfg(not(any(unix, windows)))]
    let linked: std::io::Result<()> = Err(std::io::ErrorKind::Unsupported.into());
    if linked.is_err() {
        std::fs::copy(blob, pointer).map_err(|e| Error::io(pointer, e))?;
    }
    Ok(())
}

/// Writes `refs/<revision>` by rename, so a reader never sees half a commit id.
fn write_ref(path: &Path, commit: &str) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::Model(format!("{} has no folder", path.display())))?;
    create_dir(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(commit.as_bytes())
        .map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// An exclusive lock on a blob's download, so two processes do not write one `.part`.
struct FileLock(#[allow(dead_code)] std::fs::File);

impl FileLock {
    fn acquire(path: &Path) -> std::result::Result<FileLock, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot open the lock {}: {e}", path.display()))?;
        for _ in 0..5 {
            if try_lock(&file) {
                return Ok(FileLock(file));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        Err(format!(
            "being downloaded by another process (lock {})",
            path.display()
        ))
    }
}

#[cfg(unix)]
fn try_lock(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this process owns; released when the file closes.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(not(unix))]
fn try_lock(_file: &std::fs::File) -> bool {
    true
}

const BAR_TEMPLATE: &str = "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})";

/// One progress bar per file on stderr; hidden when quiet or stderr is not a terminal.
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new(quiet: bool, file: &str, size: u64) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return Bar(indicatif::ProgressBar::hidden());
        }
        let bar = indicatif::ProgressBar::new(size);
        if let Ok(style) = indicatif::ProgressStyle::with_template(BAR_TEMPLATE) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(file.to_string());
        Bar(bar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_template_is_valid() {
        assert!(indicatif::ProgressStyle::with_template(BAR_TEMPLATE).is_ok());
    }

    #[test]
    fn urls_quote_revisions_and_file_names() {
        assert_eq!(quote("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(quote("onnx/a b.json", true), "onnx/a%20b.json");
        assert_eq!(quote("v1.0~x", false), "v1.0~x");
    }
}
