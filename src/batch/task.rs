//! What the batch does to each document. A [`Task`] turns documents into rendered
//! outputs; the runner handles everything around it (reading, skipping, writing,
//! manifest). Tasks that gain from batching across documents (translation batches
//! sentences) ask for several documents at once through [`Task::batch_docs`].

use std::sync::{Condvar, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use super::source::{human_size, Document};
use crate::engine::{Summarizer, SummaryOptions};
use crate::output::{self, Format};
use crate::pipeline;
use crate::{Error, Result};

/// Who made an output and with what settings: what the manifest records and resuming
/// compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// Task name (`summarize`), also the manifest's `task`.
    pub name: String,
    /// Engine name.
    pub engine: String,
    /// Model id, for engines that load one.
    pub model: Option<String>,
    /// Model revision, or svodka's version for built-in engines.
    pub revision: Option<String>,
    /// Hash of every option that shapes the output.
    pub fingerprint: String,
    /// Appended to a document's output base: `summary.md` gives `sub/a.summary.md`.
    pub output_suffix: String,
}

/// A task's result for one document.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutput {
    /// The file content, already rendered in the chosen format.
    pub rendered: String,
    /// Headline, date and plain summary for the manifest and the digest.
    pub title: Option<String>,
    /// The article's date as YYYY-MM-DD, when known.
    pub date: Option<String>,
    /// Plain-text summary, for tasks that write one.
    pub summary: Option<String>,
}

/// Something done to every document of a batch.
pub trait Task: Sync {
    /// Identity and settings, for the manifest.
    fn info(&self) -> &TaskInfo;
    /// Processes one document.
    fn run(&self, doc: &Document) -> Result<TaskOutput>;
    /// How many documents the task wants handed over at once (1: no batching).
    fn batch_docs(&self) -> usize {
        1
    }
    /// Processes several documents, one result each, in order. Engines that batch
    /// across documents override this; the default runs them one by one.
    fn run_batch(&self, docs: &[&Document]) -> Vec<Result<TaskOutput>> {
        docs.iter().map(|d| self.run(d)).collect()
    }
}

/// Hex SHA-256 (first 16 digits) of `parts` joined: an options fingerprint.
pub fn fingerprint(parts: &[(&str, String)]) -> String {
    let mut h = Sha256::new();
    for (k, v) in parts {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// File extension of a format.
pub fn extension(format: Format) -> &'static str {
    match format {
        Format::Text => "txt",
        Format::Markdown => "md",
        Format::Json => "json",
    }
}

/// A fixed set of engine instances shared by the workers. Its size is the number of
/// documents an engine may run at once: one per worker for light engines, one for a
/// model that uses every core by itself (more would only oversubscribe them).
pub struct Pool<T> {
    items: Mutex<Vec<T>>,
    returned: Condvar,
}

/// An item lent by a [`Pool`]; it goes back when dropped, even on a panic.
pub struct Lent<'a, T> {
    pool: &'a Pool<T>,
    item: Option<T>,
}

impl<T> Pool<T> {
    /// A pool of `items` (at least one).
    pub fn new(items: Vec<T>) -> Pool<T> {
        Pool {
            items: Mutex::new(items),
            returned: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        // A panic elsewhere cannot leave the Vec itself inconsistent.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes an item, waiting while all are lent.
    pub fn take(&self) -> Lent<'_, T> {
        let mut items = self.lock();
        loop {
            if let Some(item) = items.pop() {
                return Lent {
                    pool: self,
                    item: Some(item),
                };
            }
            items = self.returned.wait(items).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl<T> std::ops::Deref for Lent<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // `item` is only None during drop.
        self.item.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl<T> std::ops::DerefMut for Lent<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.item.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl<T> Drop for Lent<'_, T> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            self.pool.lock().push(item);
            self.pool.returned.notify_one();
        }
    }
}

/// Summaries with any [`Summarizer`], rendered by [`output::summary`].
pub struct SummarizeTask {
    info: TaskInfo,
    opts: SummaryOptions,
    format: Format,
    max_text: Option<usize>,
    engines: Pool<Box<dyn Summarizer + Send>>,
}

/// How a [`SummarizeTask`] is set up.
pub struct SummarizeSpec {
    /// Engine instances; how many there are is how many documents run at once.
    pub engines: Vec<Box<dyn Summarizer + Send>>,
    /// Model id, for engines that load one.
    pub model: Option<String>,
    /// Model revision (svodka's version for built-in engines).
    pub revision: Option<String>,
    /// Summary length and language.
    pub opts: SummaryOptions,
    /// Output format.
    pub format: Format,
    /// Most article text (bytes) the engine is given; longer articles fail with a clear
    /// reason instead of running for minutes (extractive ranking is quadratic in
    /// sentences).
    pub max_text: Option<usize>,
}

impl SummarizeTask {
    /// A summarize task; fails when `spec.engines` is empty.
    pub fn new(spec: SummarizeSpec) -> Result<SummarizeTask> {
        let engine = spec
            .engines
            .first()
            .map(|e| e.name().to_string())
            .ok_or_else(|| Error::Model("no summarizer instance given".into()))?;
        let fp = fingerprint(&[
            ("task", "summarize".into()),
            ("engine", engine.clone()),
            ("model", spec.model.clone().unwrap_or_default()),
            ("revision", spec.revision.clone().unwrap_or_default()),
            // Every field, so that options added later change the fingerprint too.
            ("options", format!("{:?}", spec.opts)),
            ("format", extension(spec.format).into()),
        ]);
        Ok(SummarizeTask {
            info: TaskInfo {
                name: "summarize".into(),
                engine,
                model: spec.model,
                revision: spec.revision,
                fingerprint: fp,
                output_suffix: format!("summary.{}", extension(spec.format)),
            },
            opts: spec.opts,
            format: spec.format,
            max_text: spec.max_text,
            engines: Pool::new(spec.engines),
        })
    }
}

impl Task for SummarizeTask {
    fn info(&self) -> &TaskInfo {
        &self.info
    }

    fn run(&self, doc: &Document) -> Result<TaskOutput> {
        if let Some(cap) = self.max_text {
            let article = &doc.article;
            let text = article.title.as_ref().map_or(0, String::len)
                + article
                    .paragraphs
                    .iter()
                    .map(|p| p.text.len())
                    .sum::<usize>();
            if text > cap {
                return Err(Error::Unsupported(format!(
                    "the article has {} of text, more than the {} summarizer takes ({}); \
                     split it into articles",
                    human_size(text as u64),
                    self.info.engine,
                    human_size(cap as u64)
                )));
            }
        }
        let report = {
            let mut engine = self.engines.take();
            pipeline::summarize::summarize(&doc.article, engine.as_mut(), &self.opts)?
        };
        let summary = report.summary.text();
        Ok(TaskOutput {
            rendered: output::summary(&report, &doc.name, self.format),
            title: report.title.clone(),
            date: report.metadata.date_iso.clone(),
            summary: Some(summary),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn pool_never_lends_more_than_it_has() {
        let pool = Pool::new(vec![(), ()]);
        let busy = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    for _ in 0..20 {
                        let _lent = pool.take();
                        let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        busy.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(pool.lock().len(), 2);
    }

    #[test]
    fn fingerprint_changes_with_any_option() {
        let a = fingerprint(&[("sentences", "3".into()), ("format", "md".into())]);
        let b = fingerprint(&[("sentences", "4".into()), ("format", "md".into())]);
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        assert_eq!(
            a,
            fingerprint(&[("sentences", "3".into()), ("format", "md".into())])
        );
    }
}
