//! The manifest: one JSON line per document and task, appended whole and synced, so
//! that a run killed at any moment leaves a record of everything it finished.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The manifest of an unsharded run, and the name merges write.
pub const MANIFEST: &str = "manifest.jsonl";

/// What happened to one document for one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Output written in this run.
    Done,
    /// Output written by an earlier run with the same content and options, and present
    /// (written by earlier versions on every re-run; a run now only counts these).
    Skipped,
    /// Not done; `error` says why.
    Failed,
}

impl Status {
    /// Whether the output exists for this line (done now or earlier).
    pub fn is_done(self) -> bool {
        matches!(self, Status::Done | Status::Skipped)
    }
}

/// Wall times of one document, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// Reading and parsing.
    pub read_ms: u64,
    /// The task itself (summarizing, translating).
    pub run_ms: u64,
    /// Writing the output.
    pub write_ms: u64,
}

/// One manifest line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Input name relative to the input folder (`sub/a.txt`, `news.jsonl#3`).
    pub input: String,
    /// Hex SHA-256 of the content, when it could be read.
    pub sha256: Option<String>,
    /// Task name (`summarize`).
    pub task: String,
    /// Engine name (`extractive`).
    pub engine: String,
    /// Model id, for engines that load one.
    pub model: Option<String>,
    /// Model revision, or svodka's version for built-in engines.
    pub revision: Option<String>,
    /// Hash of every option that shapes the output.
    pub fingerprint: String,
    /// Output path relative to the folder holding this manifest (absolute after a merge
    /// from another folder).
    pub output: Option<String>,
    /// Hex SHA-256 of the output file, checked before a later run skips the document.
    #[serde(default)]
    pub output_sha256: Option<String>,
    /// What happened.
    pub status: Status,
    /// Why it failed.
    pub error: Option<String>,
    /// Where the time went.
    pub timings: Timings,
    /// When the line was written, milliseconds since the Unix epoch ("latest wins").
    pub finished_at: u64,
    /// The article's headline (kept for the digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The article's date as YYYY-MM-DD, when known (digest order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// The summary as plain text (summaries only; the digest is built from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

impl Entry {
    /// The identity merges and resumes go by.
    pub fn key(&self) -> (String, String) {
        (self.input.clone(), self.task.clone())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An open manifest, appended to line by line.
#[derive(Debug)]
pub struct Appender {
    file: File,
    path: PathBuf,
}

impl Appender {
    /// Opens (creating) `path` for appending; a symbolic link there is refused, not
    /// followed, so that a link planted in the output folder cannot make svodka append
    /// to a file elsewhere.
    pub fn open(path: &Path) -> Result<Appender> {
        let existed = std::fs::symlink_metadata(path).is_ok();
        let file = super::files::open_append_nofollow(path)?;
        if !existed {
            // A synced line is only safe once the file's name is on disk too.
            super::files::sync_dir(path.parent().unwrap_or(Path::new(".")))?;
        }
        Ok(Appender {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends one line with a single write (O_APPEND keeps it whole) and syncs it.
    pub fn append(&mut self, entry: &Entry) -> Result<()> {
        let mut line = serde_json::to_vec(entry)
            .map_err(|e| Error::Unsupported(format!("manifest line: {e}")))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// Reads a manifest's lines, in file order. A line that does not parse (a file cut short
/// by a crash of the machine) is counted and passed over.
pub fn read(path: &Path) -> Result<(Vec<Entry>, usize)> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(super::files::link_refused(path));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut bad = 0;
    let entries = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let parsed = serde_json::from_str(l).ok();
            bad += usize::from(parsed.is_none());
            parsed
        })
        .collect();
    Ok((entries, bad))
}

/// Every manifest file in `dir` (`manifest.jsonl` and the shards' `manifest-*.jsonl`),
/// sorted by name.
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let listing = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut files: Vec<PathBuf> = listing
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| {
                n == MANIFEST || (n.starts_with("manifest-") && n.ends_with(".jsonl"))
            })
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Keeps the latest line per (input, task): by `finished_at`, ties going to the later
/// line. Returns them sorted by input, then task.
pub fn latest(entries: impl IntoIterator<Item = Entry>) -> Vec<Entry> {
    let mut by_key: HashMap<(String, String), Entry> = HashMap::new();
    for e in entries {
        match by_key.get(&e.key()) {
            Some(old) if old.finished_at > e.finished_at => {}
            _ => {
                by_key.insert(e.key(), e);
            }
        }
    }
    let mut out: Vec<Entry> = by_key.into_values().collect();
    out.sort_by_key(Entry::key);
    out
}

/// The latest lines of every manifest in `dir`, and the count of unreadable lines.
pub fn latest_in(dir: &Path) -> Result<(Vec<Entry>, usize)> {
    let mut all = Vec::new();
    let mut bad = 0;
    for f in files_in(dir)? {
        let (entries, b) = read(&f)?;
        all.extend(entries);
        bad += b;
    }
    Ok((latest(all), bad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    pub(crate) fn entry(input: &str, status: Status, at: u64) -> Entry {
        Entry {
            input: input.into(),
            sha256: Some("ab".into()),
            task: "summarize".into(),
            engine: "extractive".into(),
            model: None,
            revision: Some("0.1.0".into()),
            fingerprint: "f".into(),
            output: Some(format!("{input}.summary.txt")),
            output_sha256: None,
            status,
            error: None,
            timings: Timings::default(),
            finished_at: at,
            title: None,
            date: None,
            summary: None,
        }
    }

    #[test]
    fn appends_whole_lines_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST);
        let mut w = Appender::open(&path).unwrap();
        w.append(&entry("a.txt", Status::Failed, 1)).unwrap();
        w.append(&entry("a.txt", Status::Done, 2)).unwrap();
        drop(w);
        // A torn last line, as a crash of the machine could leave.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"input\":\"b.t").unwrap();
        let (entries, bad) = read(&path).unwrap();
        assert_eq!((entries.len(), bad), (2, 1));
        let (latest, _) = latest_in(dir.path()).unwrap();
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].status, Status::Done);
    }

    #[test]
    fn latest_wins_by_time_not_by_order() {
        let lines = vec![
            entry("b.txt", Status::Done, 5),
            entry("a.txt", Status::Done, 9),
            entry("a.txt", Status::Failed, 3),
            entry("b.txt", Status::Skipped, 5),
        ];
        let l = latest(lines);
        assert_eq!(l.len(), 2);
        assert_eq!((l[0].input.as_str(), l[0].status), ("a.txt", Status::Done));
        assert_eq!(
            (l[1].input.as_str(), l[1].status),
            ("b.txt", Status::Skipped)
        );
    }

    #[test]
    fn finds_shard_manifests() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            MANIFEST,
            "manifest-shard-0-of-2.jsonl",
            "notes.jsonl",
            "digest.md",
        ] {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        let names: Vec<String> = files_in(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["manifest-shard-0-of-2.jsonl", MANIFEST]);
    }
}
