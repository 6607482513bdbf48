//! `svodka batch`: a folder of news in, a mirrored folder of results out.
//!
//! The run is built to lose nothing: each output is written to a temporary file and
//! renamed into place, then recorded by one synced line appended to the manifest, with
//! the output's hash. A run killed at any moment leaves whole outputs only, and the next
//! run skips every document whose content, engine and options match a `done` line whose
//! output is still there with that hash (so an output lost to a power cut is redone).
//! `--shard I/N` splits a corpus between processes by a hash of the file names; their
//! manifests are combined by [`merge`].
//!
//! Layout: [`discover`] walks the input, [`source`] reads documents, [`task`] says what
//! is done to them, [`runner`] runs the workers, [`manifest`] records, [`files`] writes,
//! [`digest`] and [`progress`] report.

pub mod digest;
pub mod discover;
pub mod files;
pub mod manifest;
pub mod progress;
pub mod runner;
pub mod source;
pub mod stream;
pub mod task;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

pub use discover::{DiscoverOptions, Shard};
pub use runner::run;
pub use source::LoadOptions;
pub use task::{
    SummarizeSpec, SummarizeTask, SummaryEngines, Task, TaskInfo, TaskOutput, TranslateSpec,
    TranslateTask,
};

use crate::{Error, Result};
use files::Durability;

/// Most article text the extractive summarizer is given: about 2,000 sentences, ranked in
/// about a second (its LexRank compares every pair of sentences, so time grows with the
/// square). A long read is under 150 KiB.
pub const EXTRACTIVE_MAX_TEXT: usize = 256 << 10;

/// Everything a batch run needs besides its tasks, checked by the CLI.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folder of articles.
    pub input: PathBuf,
    /// Folder of results (created when missing).
    pub out: PathBuf,
    /// Which files to take.
    pub discover: DiscoverOptions,
    /// Size limit and JSON field.
    pub load: LoadOptions,
    /// Worker threads reading, parsing and writing documents.
    pub jobs: usize,
    /// This process's share of the corpus, if split.
    pub shard: Option<Shard>,
    /// Redo documents already done.
    pub force: bool,
    /// Also write `digest.md`.
    pub digest: bool,
    /// Show a progress bar (when stderr is a terminal).
    pub progress: bool,
    /// Print the summary line at the end.
    pub summary_line: bool,
    /// Set by the caller (on Ctrl-C, in the binary) to stop the run: workers finish the
    /// documents in hand and take no other, and the summary says `interrupted`. The run
    /// only reads it.
    pub stop: Arc<AtomicBool>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Outputs written in this run.
    pub done: usize,
    /// Outputs already there from earlier runs.
    pub skipped: usize,
    /// Documents (times tasks) that failed.
    pub failed: usize,
    /// Files passed over: other extensions, hidden, or filtered out.
    pub ignored: usize,
    /// Files left to the other shards.
    pub other_shards: usize,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
    /// Wall time.
    pub elapsed: Duration,
}

impl RunSummary {
    /// Whether anything failed or was left undone.
    pub fn is_partial(&self) -> bool {
        self.failed > 0 || self.interrupted
    }

    /// The closing line: `N done, M skipped, K failed in T`.
    pub fn line(&self) -> String {
        format!(
            "{} done, {} skipped, {} failed in {:.1} s",
            self.done,
            self.skipped,
            self.failed,
            self.elapsed.as_secs_f64()
        )
    }
}

/// The manifest a run writes: one per shard, so shards can share an output folder.
pub fn manifest_name(shard: Option<Shard>) -> String {
    match shard {
        None => manifest::MANIFEST.to_string(),
        Some(s) => format!("manifest-shard-{}-of-{}.jsonl", s.index, s.count),
    }
}

/// The temporary-file prefix of a run; a shard only ever clears its own.
pub fn temp_prefix(shard: Option<Shard>) -> String {
    match shard {
        None => format!("{}main-", files::TEMP_PREFIX),
        Some(s) => format!("{}s{}of{}-", files::TEMP_PREFIX, s.index, s.count),
    }
}

/// What [`merge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeSummary {
    /// Lines read from all manifests.
    pub lines: usize,
    /// Lines kept (latest per input and task).
    pub kept: usize,
    /// Lines that did not parse and were passed over.
    pub unreadable: usize,
    /// Where the merged manifest went.
    pub manifest: PathBuf,
    /// Where the digest went, when asked for.
    pub digest: Option<PathBuf>,
}

/// Combines the manifests (`manifest*.jsonl`) of `dirs` into `dest/manifest.jsonl`,
/// keeping the latest line per input and task; output paths of lines from other
/// folders become absolute. With `digest`, also writes `dest/digest.md`.
pub fn merge(dirs: &[PathBuf], dest: &Path, digest: bool) -> Result<MergeSummary> {
    let dest_abs = files::resolve(dest)?;
    std::fs::create_dir_all(&dest_abs).map_err(|e| Error::io(&dest_abs, e))?;
    let _lock = files::lock_out(&dest_abs, None)?;
    let mut all = Vec::new();
    let mut unreadable = 0;
    for dir in dirs {
        let abs = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
        let found = manifest::files_in(&abs)?;
        if found.is_empty() {
            return Err(Error::bad_input(dir, "holds no manifest*.jsonl to merge"));
        }
        for f in found {
            let (entries, bad) = manifest::read(&f)?;
            unreadable += bad;
            all.extend(entries.into_iter().map(|mut e| {
                if abs != dest_abs {
                    e.output = e.output.map(|o| abs.join(o).to_string_lossy().into_owned());
                }
                e
            }));
        }
    }
    let lines = all.len();
    let kept = manifest::latest(all);
    let mut text = String::new();
    for e in &kept {
        let line = serde_json::to_string(e)
            .map_err(|err| Error::Unsupported(format!("manifest line: {err}")))?;
        text.push_str(&line);
        text.push('\n');
    }
    let prefix = temp_prefix(None);
    let manifest_path = dest_abs.join(manifest::MANIFEST);
    files::write_atomic(&manifest_path, text.as_bytes(), &prefix, Durability::Synced)?;
    let digest_path = if digest {
        let p = dest_abs.join(digest::DIGEST);
        files::write_atomic(
            &p,
            digest::render(&kept).as_bytes(),
            &prefix,
            Durability::Synced,
        )?;
        Some(p)
    } else {
        None
    };
    Ok(MergeSummary {
        lines,
        kept: kept.len(),
        unreadable,
        manifest: manifest_path,
        digest: digest_path,
    })
}
