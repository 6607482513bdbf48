//! The Hub cache (`models--owner--name/{blobs,snapshots,refs}`, shared with Python
//! tools): where a repository's files lie, what a registry model has there, removing
//! it, and SHA-256 checks with stamps so large files are hashed once.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use super::select::{select_files, shards_of};
use super::{CacheStatus, CachedFile, FetchOptions};
use crate::hub::registry::{FileRole, ModelEntry};
use crate::hub::validate::{check_revision, is_commit};
use crate::{Error, Result};

/// Folder, inside a repo's cache folder, that holds svodka's verification stamps.
pub(super) const STAMP_DIR: &str = ".svodka-verified";

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

/// Paths of one repository in the Hub cache.
pub(in crate::hub) struct CacheLayout {
    /// `models--owner--name`.
    pub repo_dir: PathBuf,
}

impl CacheLayout {
    /// The layout of `repo`, which must be a checked `owner/name`.
    pub(super) fn new(root: PathBuf, repo: &str) -> Self {
        CacheLayout {
            repo_dir: root.join(format!("models--{}", repo.replace('/', "--"))),
        }
    }

    /// The commit a revision points to: `refs/REV`, or REV itself when it is a commit.
    /// Neither a revision that is not a ref name nor a ref file that does not hold a
    /// commit id is followed.
    pub(super) fn commit_for(&self, revision: &str) -> Option<String> {
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
    pub(super) fn pointer(&self, commit: &str, file: &str) -> Option<PathBuf> {
        let p = self.snapshot(commit).join(file);
        p.is_file().then_some(p)
    }

    pub(super) fn snapshot_files(&self, commit: &str) -> Vec<String> {
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

    pub(super) fn stamp(&self, blob: &Path) -> Option<PathBuf> {
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
pub(super) fn verify_sha256(
    file: &Path,
    expected: &str,
    stamp: Option<PathBuf>,
) -> Result<Option<String>> {
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
pub(super) fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok(crate::util::hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn stamps_spare_rehashing_settled_files_only() {
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
}
