//! What the batch does to each document. A [`Task`] turns documents into rendered
//! outputs; the runner handles everything around it (reading, skipping, writing,
//! manifest). Tasks that gain from batching across documents (translation batches
//! sentences) ask for several documents at once through [`Task::batch_docs`].

use std::sync::{Condvar, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use super::source::Document;
use crate::article::Lang;
use crate::engine::{Summarizer, SummaryOptions, TextWriter, Translator};
use crate::output::{self, Format};
use crate::pipeline;
use crate::pipeline::summarize::AbstractiveRun;
use crate::pipeline::translate::{translate_plans, Plan, TranslateOptions, TranslationReport};
use crate::util::{hex, human_size};
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
    hex(&h.finalize()[..8])
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

/// The engines a summarize task runs.
pub enum SummaryEngines {
    /// Summarizers that rank the article's sentences; how many there are is how many
    /// documents run at once.
    Rankers(Vec<Box<dyn Summarizer + Send>>),
    /// A neural writer (LLM, T5), loaded once: documents take it in turn.
    Writer(Box<dyn TextWriter + Send>),
}

/// [`SummaryEngines`] lent out to the workers.
enum EnginePool {
    Rankers(Pool<Box<dyn Summarizer + Send>>),
    Writer(Pool<Box<dyn TextWriter + Send>>),
}

/// Summaries with any [`Summarizer`] or neural [`TextWriter`], rendered by
/// [`output::summary`].
pub struct SummarizeTask {
    info: TaskInfo,
    opts: SummaryOptions,
    format: Format,
    max_text: Option<usize>,
    engines: EnginePool,
}

/// How a [`SummarizeTask`] is set up.
pub struct SummarizeSpec {
    /// Engine instances.
    pub engines: SummaryEngines,
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
        let engine = match &spec.engines {
            SummaryEngines::Rankers(all) => all
                .first()
                .map(|e| e.name().to_string())
                .ok_or_else(|| Error::Model("no summarizer instance given".into()))?,
            SummaryEngines::Writer(w) => w.engine_name().to_string(),
        };
        let fp = summary_fingerprint(
            &engine,
            spec.model.as_deref(),
            spec.revision.as_deref(),
            &spec.opts,
            spec.format,
        );
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
            engines: match spec.engines {
                SummaryEngines::Rankers(all) => EnginePool::Rankers(Pool::new(all)),
                SummaryEngines::Writer(w) => EnginePool::Writer(Pool::new(vec![w])),
            },
        })
    }
}

/// The options fingerprint of a summary task: what resuming and record keys compare.
fn summary_fingerprint(
    engine: &str,
    model: Option<&str>,
    revision: Option<&str>,
    opts: &SummaryOptions,
    format: Format,
) -> String {
    fingerprint(&[
        ("task", "summarize".into()),
        ("engine", engine.into()),
        ("model", model.unwrap_or_default().into()),
        ("revision", revision.unwrap_or_default().into()),
        // Every field, so that options added later change the fingerprint too.
        ("options", format!("{opts:?}")),
        ("format", extension(format).into()),
    ])
}

impl SummarizeTask {
    /// The options every document gets unless told otherwise.
    pub fn options(&self) -> &SummaryOptions {
        &self.opts
    }

    /// The task's identity with `opts` in place of its own options (a stream record
    /// may ask for another length or style).
    pub fn info_with(&self, opts: &SummaryOptions) -> TaskInfo {
        TaskInfo {
            fingerprint: summary_fingerprint(
                &self.info.engine,
                self.info.model.as_deref(),
                self.info.revision.as_deref(),
                opts,
                self.format,
            ),
            ..self.info.clone()
        }
    }

    /// Summarizes one document with `opts` in place of the task's own options.
    pub fn run_with(&self, doc: &Document, opts: &SummaryOptions) -> Result<TaskOutput> {
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
        let report = match &self.engines {
            EnginePool::Rankers(pool) => {
                let mut engine = pool.take();
                pipeline::summarize::summarize(&doc.article, engine.as_mut(), opts)?
            }
            EnginePool::Writer(pool) => {
                let mut writer = pool.take();
                let run = AbstractiveRun {
                    model: self.info.model.clone(),
                    revision: self.info.revision.clone(),
                    ..AbstractiveRun::default()
                };
                pipeline::summarize::summarize_with(&doc.article, writer.as_mut(), opts, run)?
            }
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

impl Task for SummarizeTask {
    fn info(&self) -> &TaskInfo {
        &self.info
    }

    fn run(&self, doc: &Document) -> Result<TaskOutput> {
        self.run_with(doc, &self.opts)
    }
}

/// Translations with one translator shared by all workers, several documents at a
/// time: the sentences of a group of documents go through the model together, in
/// batches as full as the token budget allows.
pub struct TranslateTask {
    info: TaskInfo,
    opts: TranslateOptions,
    format: Format,
    batch_docs: usize,
    engines: Pool<Box<dyn Translator + Send>>,
}

/// How a [`TranslateTask`] is set up.
pub struct TranslateSpec {
    /// The model, loaded once; every worker borrows it in turn.
    pub translator: Box<dyn Translator + Send>,
    /// Model id as given (`--model`, or the default for the direction).
    pub model: Option<String>,
    /// Model revision, when known.
    pub revision: Option<String>,
    /// Target language, decoding and batch sizes.
    pub opts: TranslateOptions,
    /// Output format.
    pub format: Format,
    /// Documents whose sentences are batched together (1: one document at a time).
    pub batch_docs: usize,
}

impl TranslateTask {
    /// A translate task around one loaded translator.
    pub fn new(spec: TranslateSpec) -> TranslateTask {
        let engine = spec.translator.engine_name().to_string();
        let fp = fingerprint(&[
            ("task", "translate".into()),
            ("engine", engine.clone()),
            ("model", spec.model.clone().unwrap_or_default()),
            ("revision", spec.revision.clone().unwrap_or_default()),
            // int8 and f32 weights translate differently.
            ("dtype", spec.translator.dtype().unwrap_or_default().into()),
            // Every field, so that options added later change the fingerprint too.
            ("options", format!("{:?}", spec.opts)),
            ("format", extension(spec.format).into()),
        ]);
        TranslateTask {
            info: TaskInfo {
                name: "translate".into(),
                engine,
                model: spec.model,
                revision: spec.revision,
                fingerprint: fp,
                output_suffix: format!("translation.{}", extension(spec.format)),
            },
            opts: spec.opts,
            format: spec.format,
            batch_docs: spec.batch_docs.max(1),
            engines: Pool::new(vec![spec.translator]),
        }
    }

    /// The language every document is translated into.
    pub fn target(&self) -> Lang {
        self.opts.to
    }

    fn render(&self, doc: &Document, report: TranslationReport) -> TaskOutput {
        TaskOutput {
            rendered: output::translation(&report, &doc.name, self.format, false),
            title: report.title.clone(),
            date: report.metadata.date_iso.clone(),
            summary: None,
        }
    }
}

impl Task for TranslateTask {
    fn info(&self) -> &TaskInfo {
        &self.info
    }

    fn run(&self, doc: &Document) -> Result<TaskOutput> {
        self.run_batch(&[doc])
            .pop()
            .unwrap_or_else(|| Err(Error::Model("no translation came back".into())))
    }

    fn batch_docs(&self) -> usize {
        self.batch_docs
    }

    fn run_batch(&self, docs: &[&Document]) -> Vec<Result<TaskOutput>> {
        let plans: Vec<Result<Plan<'_>>> = docs
            .iter()
            .map(|d| Plan::new(&d.article, &self.opts))
            .collect();
        let reports = if plans
            .iter()
            .all(|p| p.as_ref().map_or(true, |p| p.sources().is_empty()))
        {
            // Nothing to translate: the model is not needed (nor waited for).
            plans.into_iter().map(|p| p?.run(None)).collect()
        } else {
            let mut engine = self.engines.take();
            translate_plans(engine.as_mut(), plans).reports
        };
        docs.iter()
            .zip(reports)
            .map(|(doc, report)| Ok(self.render(doc, report?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Upper;
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

    fn doc(name: &str, text: &str) -> Document {
        Document {
            name: name.into(),
            out_base: name.into(),
            sha256: String::new(),
            article: crate::article::read::parse(text, crate::article::read::Format::Text)
                .expect("text parses"),
            read_ms: 0,
        }
    }

    /// A task around the upper-casing fake, which drops digits when greedy; the fake
    /// reads back the (size, beams) of every batch.
    fn translate_task(batch_docs: usize) -> (TranslateTask, Upper) {
        let mut upper = Upper::new(512);
        upper.drop_digits_when_greedy = true;
        let task = TranslateTask::new(TranslateSpec {
            translator: Box::new(upper.clone()),
            model: Some("upper".into()),
            revision: None,
            opts: TranslateOptions {
                to: Lang::Ru,
                ..TranslateOptions::default()
            },
            format: Format::Text,
            batch_docs,
        });
        (task, upper)
    }

    /// (size, beams) of every batch the fake was given.
    fn calls(upper: &Upper) -> Vec<(usize, usize)> {
        upper
            .batches()
            .iter()
            .map(Vec::len)
            .zip(upper.beams())
            .collect()
    }

    #[test]
    fn documents_batched_together_come_out_as_one_by_one() {
        let docs = [
            doc(
                "a",
                "The first headline\n\nThe weather was fine today. People went out.\n",
            ),
            doc(
                "b",
                "Уже по-русски\n\nЭтот текст написан по-русски и не переводится.\n",
            ),
            doc(
                "c",
                "Numbers matter\n\nThe council met 3 times in 2024. It agreed.\n",
            ),
            doc(
                "d",
                "A last one\n\nShort text here. And another sentence follows.\n",
            ),
        ];
        let refs: Vec<&Document> = docs.iter().collect();
        let (together, calls_of) = translate_task(4);
        let batched = together.run_batch(&refs);
        let (alone, alone_calls) = translate_task(1);
        let single: Vec<Result<TaskOutput>> = refs.iter().map(|d| alone.run(d)).collect();
        for (b, s) in batched.iter().zip(&single) {
            let (b, s) = (b.as_ref().unwrap(), s.as_ref().unwrap());
            assert_eq!(b.rendered, s.rendered);
        }
        let b = batched[1].as_ref().unwrap();
        assert!(
            b.rendered.contains("Этот текст написан по-русски"),
            "{}",
            b.rendered
        );
        assert!(batched[0]
            .as_ref()
            .unwrap()
            .rendered
            .contains("THE WEATHER WAS FINE"));
        // Every first attempt of the three English documents in one batch, then the
        // sentence that lost its numbers once more with beams.
        assert_eq!(calls(&calls_of), [(9, 1), (1, 4)]);
        assert_eq!(calls(&alone_calls).iter().filter(|c| c.1 == 1).count(), 3);
    }

    #[test]
    fn retries_of_several_documents_share_one_batch() {
        let docs = [
            doc("a", "Prices rose by 15 % in 2020. Nothing else happened.\n"),
            doc(
                "b",
                "The council met 3 times. It agreed on nothing at all.\n",
            ),
        ];
        let refs: Vec<&Document> = docs.iter().collect();
        let (task, upper) = translate_task(2);
        let out = task.run_batch(&refs);
        assert!(out.iter().all(Result::is_ok));
        // One retry batch with the numbered sentence of each document.
        assert_eq!(calls(&upper), [(4, 1), (2, 4)]);
        let retried = &upper.batches()[1];
        assert!(
            retried.iter().any(|s| s.starts_with("Prices")),
            "{retried:?}"
        );
        assert!(
            retried.iter().any(|s| s.starts_with("The council")),
            "{retried:?}"
        );
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
