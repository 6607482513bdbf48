//! Getting a Hub model's files: each from the cache when it is there and passes its
//! checks, else downloaded through [`crate::hub::fetch`] and checked, re-fetched once
//! when corrupt; offline, a clear error instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::cache::{verify_sha256, CacheLayout};
use super::env::hf_token;
use super::local::infer_architecture;
use super::select::{select_files, shards_of};
use super::{FetchOptions, ModelFiles};
use crate::hub::fetch::{Listing, Remote};
use crate::hub::registry::{is_sha256, FileRole};
use crate::hub::validate::{check_revision, is_commit};
use crate::{Error, Result};

/// The model asked for: its name (for messages), repository and revision.
pub(super) struct Target {
    pub name: String,
    pub repo: String,
    pub revision: String,
}

/// Which files of a Hub repository a model needs.
pub(super) enum WantedFiles {
    /// Files named by the registry: (name, sha256, size).
    Listed(Vec<(String, Option<String>, Option<u64>)>),
    /// Files picked from the Hub listing (or the cached snapshot), with the GGUF quant.
    Discover(Option<String>),
}

/// What is expected of one file.
#[derive(Debug, Clone, Default)]
pub(in crate::hub) struct Expect {
    /// SHA-256 of the content.
    pub sha256: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
}

/// Gets one model's files from the cache or the Hub.
pub(super) struct Fetcher {
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
    pub(super) fn new(target: Target, opts: &FetchOptions) -> Result<Self> {
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

    pub(super) fn fetch(mut self, wanted: WantedFiles, note: Option<&str>) -> Result<ModelFiles> {
        self.commit = self.cache.commit_for(&self.target.revision);
        let (mut queue, mut expect) = match wanted {
            WantedFiles::Listed(list) => {
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
            WantedFiles::Discover(quant) => self.discover(quant.as_deref(), note)?,
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
