//! The run itself: workers take source files in order, read their documents, skip what
//! is already done, hand the rest to the tasks, write outputs and record each result.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::discover::{self, Source};
use super::files::Durability;
use super::manifest::{self, now_ms, Entry, Status, Timings};
use super::progress::Progress;
use super::source::{self, Document, Loaded, RawDoc, Unreadable};
use super::task::{Task, TaskInfo, TaskOutput};
use super::{digest, files, manifest_name, temp_prefix, Config, RunSummary};
use crate::{Error, Result};

/// State the workers share.
struct Shared<'a> {
    config: &'a Config,
    out: &'a Path,
    tasks: &'a [&'a dyn Task],
    sources: &'a [Source],
    previous: HashMap<(String, String), Entry>,
    prefix: String,
    next: AtomicUsize,
    writer: Mutex<manifest::Appender>,
    claims: Mutex<HashSet<String>>,
    finished: Mutex<Vec<Entry>>,
    done: AtomicUsize,
    skipped: AtomicUsize,
    failed: AtomicUsize,
    fatal: Mutex<Option<Error>>,
    cut_short: AtomicBool,
    progress: Progress,
}

/// Runs `tasks` over the documents under `config.input`.
///
/// Per-document problems never stop the run: they are reported on stderr and in the
/// manifest. It fails as a whole only on a bad configuration or when the manifest
/// itself cannot be written.
pub fn run(config: &Config, tasks: &[&dyn Task]) -> Result<RunSummary> {
    let start = Instant::now();
    if config.shard.is_some() && config.digest {
        return Err(Error::Unsupported(
            "--digest with --shard: a shard sees only its share; build the digest when \
             merging: svodka batch --merge-manifests OUT_DIR --digest"
                .into(),
        ));
    }
    if tasks.is_empty() {
        return Err(Error::Unsupported("no task to run".into()));
    }
    let input = std::fs::canonicalize(&config.input).map_err(|e| Error::io(&config.input, e))?;
    if !input.is_dir() {
        return Err(Error::bad_input(&config.input, "is not a folder"));
    }
    let out = files::resolve(&config.out)?;
    files::check_apart(&input, &out)?;

    let found = discover::discover(&input, &config.discover)?;
    let total = found.sources.len();
    let sources: Vec<Source> = match config.shard {
        Some(shard) => found
            .sources
            .into_iter()
            .filter(|s| s.shared_by_record() || shard.owns(&s.rel))
            .collect(),
        None => found.sources,
    };
    let other_shards = total - sources.len();

    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    // Held to the end of the run: a second run into this folder would redo every
    // document beside this one and clear its temporary files.
    let _lock = files::lock_out(&out, config.shard)?;
    // Unsharded, nobody else writes here, so every leftover goes; a shard clears only
    // its own, since its neighbours may be writing into the same folder right now.
    let prefix = temp_prefix(config.shard);
    let clear = if config.shard.is_some() {
        prefix.as_str()
    } else {
        files::TEMP_PREFIX
    };
    files::clean_temps(&out, clear)?;
    let (previous, torn) = manifest::latest_in(&out)?;
    let writer = manifest::Appender::open(&out.join(manifest_name(config.shard)))?;

    // Only a crash of the machine mid-append leaves such a line (its document is simply
    // done again); a shard may also catch a neighbour's line half-written, which is
    // none of its business.
    if torn > 0 && config.shard.is_none() {
        eprintln!(
            "svodka: {torn} unreadable manifest lines in {} passed over",
            out.display()
        );
    }
    let shared = Shared {
        config,
        out: &out,
        tasks,
        sources: &sources,
        previous: previous.into_iter().map(|e| (e.key(), e)).collect(),
        prefix,
        next: AtomicUsize::new(0),
        writer: Mutex::new(writer),
        claims: Mutex::new(HashSet::new()),
        finished: Mutex::new(Vec::new()),
        done: AtomicUsize::new(0),
        skipped: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        fatal: Mutex::new(None),
        cut_short: AtomicBool::new(false),
        progress: Progress::new(sources.len() as u64, config.progress),
    };
    let workers = config.jobs.clamp(1, sources.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| worker(&shared));
        }
    });
    shared.progress.finish();
    if let Some(err) = lock(&shared.fatal).take() {
        return Err(err);
    }
    let interrupted = shared.cut_short.load(Ordering::SeqCst);
    if config.digest {
        let finished = lock(&shared.finished);
        let path = out.join(digest::DIGEST);
        let text = digest::render(&finished);
        files::write_atomic(&path, text.as_bytes(), &shared.prefix, Durability::Synced)?;
    }
    let summary = RunSummary {
        done: shared.done.load(Ordering::SeqCst),
        skipped: shared.skipped.load(Ordering::SeqCst),
        failed: shared.failed.load(Ordering::SeqCst),
        ignored: found.ignored,
        other_shards,
        interrupted,
        elapsed: start.elapsed(),
    };
    if config.summary_line {
        report_end(&summary, &sources, &shared);
    }
    Ok(summary)
}

fn report_end(summary: &RunSummary, sources: &[Source], shared: &Shared) {
    let mut line = format!("svodka: {}", summary.line());
    if summary.ignored > 0 {
        line.push_str(&format!(
            " ({} other files ignored: other extensions, hidden or filtered out)",
            summary.ignored
        ));
    }
    eprintln!("{line}");
    if sources.is_empty() && summary.other_shards == 0 {
        eprintln!(
            "svodka: no {} files found",
            discover::EXTENSIONS
                .iter()
                .map(|e| format!(".{e}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if summary.interrupted {
        let left = sources
            .len()
            .saturating_sub(shared.next.load(Ordering::SeqCst));
        eprintln!(
            "svodka: interrupted with about {left} files not started; finished outputs are \
             kept: run the same command again to do the rest"
        );
    }
}

/// Locks a mutex, going on after a panic elsewhere (the data stay consistent: every
/// critical section here is a single push, insert or write).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether workers should take no more documents: the caller asked (Ctrl-C), or the
/// run cannot go on. The documents in hand are finished either way.
fn stop_requested(sh: &Shared) -> bool {
    sh.config.stop.load(Ordering::SeqCst) || lock(&sh.fatal).is_some()
}

fn worker(sh: &Shared) {
    let group_size = sh
        .tasks
        .iter()
        .map(|t| t.batch_docs())
        .max()
        .unwrap_or(1)
        .max(1);
    let mut feed = Feed { sh, current: None };
    loop {
        if stop_requested(sh) {
            if feed.has_more() {
                sh.cut_short.store(true, Ordering::SeqCst);
            }
            return;
        }
        let group: Vec<Loaded> = feed.by_ref().take(group_size).collect();
        if group.is_empty() {
            return;
        }
        if let Err(e) = process_group(sh, group) {
            lock(&sh.fatal).get_or_insert(e);
            return;
        }
    }
}

/// A worker's stream of documents: those of the source in hand, then of the next
/// source nobody has taken, so that batches span files.
struct Feed<'a> {
    sh: &'a Shared<'a>,
    current: Option<std::iter::Peekable<Box<dyn Iterator<Item = Loaded> + Send + 'a>>>,
}

impl Feed<'_> {
    /// Whether documents are left, in the source in hand or in sources not taken.
    fn has_more(&mut self) -> bool {
        self.current.as_mut().is_some_and(|d| d.peek().is_some())
            || self.sh.next.load(Ordering::SeqCst) < self.sh.sources.len()
    }
}

impl Iterator for Feed<'_> {
    type Item = Loaded;

    fn next(&mut self) -> Option<Loaded> {
        loop {
            if let Some(doc) = self.current.as_mut().and_then(|docs| docs.next()) {
                return Some(doc);
            }
            self.current = None;
            if stop_requested(self.sh) {
                return None;
            }
            let i = self.sh.next.fetch_add(1, Ordering::SeqCst);
            let source = self.sh.sources.get(i)?;
            self.sh.progress.note(&source.rel);
            let mut first = true;
            let progress = self.sh.progress.clone();
            // Each source was counted as one document; records beyond the first add up.
            let docs = source::documents(source, &self.sh.config.load, self.sh.config.shard)
                .inspect(move |_| {
                    if !std::mem::take(&mut first) {
                        progress.more_documents(1);
                    }
                });
            let docs: Box<dyn Iterator<Item = Loaded> + Send + '_> = Box::new(docs);
            self.current = Some(docs.peekable());
        }
    }
}

/// Runs `f`, turning a panic (a bug in a reader or an engine, met on some odd input)
/// into a failure of the documents concerned instead of an end to the run.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        format!("internal error, please report it as a bug: {what}")
    })
}

/// Output file of a document for a task, relative to the output folder.
fn output_rel(out_base: &str, info: &TaskInfo) -> String {
    format!("{out_base}.{}", info.output_suffix)
}

/// A document waiting for its tasks, with which tasks still want it.
struct Pending {
    doc: Document,
    wanted: Vec<bool>,
}

fn process_group(sh: &Shared, group: Vec<Loaded>) -> Result<()> {
    let count = group.len() as u64;
    let mut pending = Vec::new();
    for loaded in group {
        match loaded {
            Err(bad) => {
                for task in sh.tasks {
                    record_failure(sh, task.info(), &bad, Timings::default())?;
                }
            }
            Ok(raw) => {
                let mut wanted = Vec::with_capacity(sh.tasks.len());
                for task in sh.tasks {
                    wanted.push(!try_skip(sh, &raw, task.info())?);
                }
                if !wanted.contains(&true) {
                    continue;
                }
                let (name, sha256) = (raw.name.clone(), raw.sha256.clone());
                let parsed = guarded(|| raw.parse()).unwrap_or_else(|reason| {
                    Err(Unreadable {
                        name,
                        sha256: Some(sha256),
                        reason,
                    })
                });
                match parsed {
                    Ok(doc) => pending.push(Pending { doc, wanted }),
                    Err(bad) => {
                        for (task, _) in sh.tasks.iter().zip(&wanted).filter(|(_, w)| **w) {
                            record_failure(sh, task.info(), &bad, Timings::default())?;
                        }
                    }
                }
            }
        }
    }
    for (t, task) in sh.tasks.iter().enumerate() {
        let docs: Vec<&Document> = pending
            .iter()
            .filter(|p| p.wanted[t])
            .map(|p| &p.doc)
            .collect();
        if docs.is_empty() {
            continue;
        }
        let start = Instant::now();
        let results = guarded(|| task.run_batch(&docs)).unwrap_or_else(|reason| {
            let failed = || Err(Error::Unsupported(reason.clone()));
            docs.iter().map(|_| failed()).collect()
        });
        let mut results = results.into_iter();
        let run_ms = start.elapsed().as_millis() as u64 / docs.len() as u64;
        for doc in docs {
            let timings = Timings {
                read_ms: doc.read_ms,
                run_ms,
                write_ms: 0,
            };
            match results.next() {
                Some(Ok(output)) => write_output(sh, task.info(), doc, output, timings)?,
                Some(Err(e)) => {
                    let bad = Unreadable {
                        name: doc.name.clone(),
                        sha256: Some(doc.sha256.clone()),
                        reason: source::reason(&e),
                    };
                    record_failure(sh, task.info(), &bad, timings)?;
                }
                None => {
                    let bad = Unreadable {
                        name: doc.name.clone(),
                        sha256: Some(doc.sha256.clone()),
                        reason: format!("the {} engine returned no result", task.info().engine),
                    };
                    record_failure(sh, task.info(), &bad, timings)?;
                }
            }
        }
    }
    for _ in 0..count {
        sh.progress.advance();
    }
    Ok(())
}

/// A manifest line for `info` with everything but the outcome filled in.
fn entry(info: &TaskInfo, name: &str, sha256: Option<String>, status: Status) -> Entry {
    Entry {
        input: name.to_string(),
        sha256,
        task: info.name.clone(),
        engine: info.engine.clone(),
        model: info.model.clone(),
        revision: info.revision.clone(),
        fingerprint: info.fingerprint.clone(),
        output: None,
        output_sha256: None,
        status,
        error: None,
        timings: Timings::default(),
        finished_at: now_ms(),
        title: None,
        date: None,
        summary: None,
    }
}

fn append(sh: &Shared, entry: Entry) -> Result<()> {
    lock(&sh.writer).append(&entry)?;
    if entry.status.is_done() {
        lock(&sh.finished).push(entry);
    }
    Ok(())
}

/// Claims an output path for one document of this run; a second claim is a clash.
fn claim(sh: &Shared, rel: &str) -> bool {
    lock(&sh.claims).insert(rel.to_string())
}

/// Whether the output a manifest line names is still there as written.
fn output_intact(path: &Path, line: &Entry) -> bool {
    // A link where the output was is not the output (and is replaced, not followed).
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    match &line.output_sha256 {
        Some(hash) => std::fs::read(path).is_ok_and(|b| crate::util::sha256_hex(&b) == *hash),
        None => true,
    }
}

/// Skips the document when an earlier run already did it for this task with the same
/// content, engine and options, and its output is still there.
fn try_skip(sh: &Shared, raw: &RawDoc, info: &TaskInfo) -> Result<bool> {
    if sh.config.force {
        return Ok(false);
    }
    let Some(prev) = sh.previous.get(&(raw.name.clone(), info.name.clone())) else {
        return Ok(false);
    };
    let expected = output_rel(&raw.out_base, info);
    let same = prev.status.is_done()
        && prev.sha256.as_deref() == Some(raw.sha256.as_str())
        && prev.engine == info.engine
        && prev.model == info.model
        && prev.revision == info.revision
        && prev.fingerprint == info.fingerprint
        && prev.output.as_deref() == Some(expected.as_str());
    if !same || !output_intact(&sh.out.join(&expected), prev) || !claim(sh, &expected) {
        return Ok(false);
    }
    // No manifest line: the earlier one still says it all, and a line per document on
    // every no-op re-run would grow the manifest without end. The count goes into the
    // closing line; the digest still covers the document.
    lock(&sh.finished).push(prev.clone());
    sh.skipped.fetch_add(1, Ordering::SeqCst);
    Ok(true)
}

fn record_failure(sh: &Shared, info: &TaskInfo, bad: &Unreadable, timings: Timings) -> Result<()> {
    let what = if sh.tasks.len() > 1 {
        format!("{} ({})", bad.name, info.name)
    } else {
        bad.name.clone()
    };
    sh.progress
        .line(&format!("svodka: failed: {what}: {}", bad.reason));
    let mut e = entry(info, &bad.name, bad.sha256.clone(), Status::Failed);
    e.error = Some(bad.reason.clone());
    e.timings = timings;
    append(sh, e)?;
    sh.failed.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

fn write_output(
    sh: &Shared,
    info: &TaskInfo,
    doc: &Document,
    output: TaskOutput,
    mut timings: Timings,
) -> Result<()> {
    let rel = output_rel(&doc.out_base, info);
    let fail = |reason: String, timings| {
        let bad = Unreadable {
            name: doc.name.clone(),
            sha256: Some(doc.sha256.clone()),
            reason,
        };
        record_failure(sh, info, &bad, timings)
    };
    if !claim(sh, &rel) {
        return fail(
            format!("its output {rel} is also another document's output in this run"),
            timings,
        );
    }
    let start = Instant::now();
    let path: PathBuf = sh.out.join(&rel);
    // Not synced: the manifest keeps the output's hash, so an output lost to a power cut
    // is noticed and redone by the next run, and a run does half the fsyncs.
    let bytes = output.rendered.as_bytes();
    let written = files::check_no_links(sh.out, Path::new(&rel))
        .and_then(|()| files::write_atomic(&path, bytes, &sh.prefix, Durability::Cached));
    if let Err(e) = written {
        return fail(format!("output not written: {e}"), timings);
    }
    timings.write_ms = start.elapsed().as_millis() as u64;
    let mut e = entry(info, &doc.name, Some(doc.sha256.clone()), Status::Done);
    e.output = Some(rel);
    e.output_sha256 = Some(crate::util::sha256_hex(bytes));
    e.timings = timings;
    e.title = output.title;
    e.date = output.date;
    e.summary = output.summary;
    append(sh, e)?;
    sh.done.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{DiscoverOptions, LoadOptions};
    use std::sync::Arc;

    /// Writes each article's first paragraph; records how documents were batched.
    struct Echo {
        info: TaskInfo,
        batch: usize,
        sizes: Mutex<Vec<usize>>,
    }

    impl Task for Echo {
        fn info(&self) -> &TaskInfo {
            &self.info
        }
        fn run(&self, doc: &Document) -> Result<TaskOutput> {
            let text = doc.article.paragraphs[0].text.clone();
            assert!(!text.contains("PANIC"), "engine bug");
            if text.contains("FAIL") {
                return Err(Error::Unsupported("asked to fail".into()));
            }
            Ok(TaskOutput {
                rendered: text.clone(),
                title: doc.article.title.clone(),
                date: None,
                summary: Some(text),
            })
        }
        fn batch_docs(&self) -> usize {
            self.batch
        }
        fn run_batch(&self, docs: &[&Document]) -> Vec<Result<TaskOutput>> {
            lock(&self.sizes).push(docs.len());
            docs.iter().map(|d| self.run(d)).collect()
        }
    }

    fn echo(batch: usize) -> Echo {
        Echo {
            info: TaskInfo {
                name: "echo".into(),
                engine: "echo".into(),
                model: None,
                revision: None,
                fingerprint: "0".into(),
                output_suffix: "echo.txt".into(),
            },
            batch,
            sizes: Mutex::new(Vec::new()),
        }
    }

    fn config(input: &Path, out: &Path) -> Config {
        Config {
            input: input.to_path_buf(),
            out: out.to_path_buf(),
            discover: DiscoverOptions::default(),
            load: LoadOptions {
                max_size: 1 << 20,
                field: "text".into(),
            },
            jobs: 1,
            shard: None,
            force: false,
            digest: true,
            progress: false,
            summary_line: false,
            stop: Arc::default(),
        }
    }

    #[test]
    fn batches_span_files_and_reruns_redo_only_failures() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::create_dir_all(input.join("sub")).unwrap();
        for (i, name) in ["a", "b", "c", "d", "sub/e", "sub/f", "sub/g"]
            .iter()
            .enumerate()
        {
            let body = if *name == "c" {
                "FAIL here."
            } else {
                "Fine text."
            };
            let text = format!("Headline {i}\n\n{body} Number {i}.\n");
            std::fs::write(input.join(format!("{name}.txt")), text).unwrap();
        }
        let out = dir.path().join("out");
        let task = echo(3);
        let first = run(&config(&input, &out), &[&task]).unwrap();
        assert_eq!((first.done, first.skipped, first.failed), (6, 0, 1));
        assert!(first.is_partial() && !first.interrupted);
        assert_eq!(*lock(&task.sizes), [3, 3, 1]);
        let e = std::fs::read_to_string(out.join("sub/e.echo.txt")).unwrap();
        assert_eq!(e, "Fine text. Number 4.");
        let digest = std::fs::read_to_string(out.join("digest.md")).unwrap();
        assert!(digest.contains("6 summaries") && digest.contains("## Headline 6"));

        let again = echo(3);
        let second = run(&config(&input, &out), &[&again]).unwrap();
        assert_eq!((second.done, second.skipped, second.failed), (0, 6, 1));
        assert_eq!(*lock(&again.sizes), [1]);
        // The digest covers skipped documents too.
        let digest = std::fs::read_to_string(out.join("digest.md")).unwrap();
        assert!(digest.contains("6 summaries"));

        // A changed input is redone; a deleted or damaged output is written again.
        std::fs::write(input.join("a.txt"), "New headline\n\nChanged text.\n").unwrap();
        std::fs::remove_file(out.join("b.echo.txt")).unwrap();
        std::fs::write(out.join("d.echo.txt"), "").unwrap();
        let third = run(&config(&input, &out), &[&echo(1)]).unwrap();
        assert_eq!((third.done, third.skipped, third.failed), (3, 3, 1));
        let d = std::fs::read_to_string(out.join("d.echo.txt")).unwrap();
        assert_eq!(d, "Fine text. Number 3.");
        let a = std::fs::read_to_string(out.join("a.echo.txt")).unwrap();
        assert_eq!(a, "Changed text.");
    }

    #[test]
    fn a_panicking_engine_fails_only_its_document() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::create_dir_all(&input).unwrap();
        std::fs::write(input.join("a.txt"), "Title\n\nPANIC now.\n").unwrap();
        std::fs::write(input.join("b.txt"), "Title\n\nCalm text.\n").unwrap();
        let out = dir.path().join("out");
        let summary = run(&config(&input, &out), &[&echo(1)]).unwrap();
        assert_eq!((summary.done, summary.failed), (1, 1));
        let manifest = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
        assert!(manifest.contains("internal error, please report it as a bug: engine bug"));
    }

    #[test]
    fn a_stop_request_leaves_the_documents_not_started_for_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::create_dir_all(&input).unwrap();
        for name in ["a", "b"] {
            std::fs::write(input.join(format!("{name}.txt")), "Title\n\nSome text.\n").unwrap();
        }
        let out = dir.path().join("out");
        let stopped = Config {
            stop: Arc::new(AtomicBool::new(true)),
            ..config(&input, &out)
        };
        let first = run(&stopped, &[&echo(1)]).unwrap();
        assert!(first.interrupted && first.is_partial());
        assert_eq!((first.done, first.failed), (0, 0));
        // The run only reads the flag: it is the caller's to clear.
        assert!(stopped.stop.load(Ordering::SeqCst));
        let second = run(&config(&input, &out), &[&echo(1)]).unwrap();
        assert!(!second.interrupted);
        assert_eq!(second.done, 2);
    }

    #[test]
    fn leftover_temp_files_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::create_dir_all(&input).unwrap();
        std::fs::write(input.join("a.txt"), "Title\n\nSome text.\n").unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir_all(out.join("deep")).unwrap();
        let leftover = out.join("deep/.svodka-tmp-main-abc");
        std::fs::write(&leftover, "half").unwrap();
        run(&config(&input, &out), &[&echo(1)]).unwrap();
        assert!(!leftover.exists());
    }
}
