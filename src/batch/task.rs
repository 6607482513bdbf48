//! What the batch does to each document. A [`Task`] turns documents into rendered
//! outputs; the runner handles everything around it (reading, skipping, writing,
//! manifest). Tasks that gain from batching across documents (translation batches
//! sentences) ask for several documents at once through [`Task::batch_docs`].

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use super::source::{human_size, Document};
use crate::article::Lang;
use crate::decode::DecodeOptions;
use crate::engine::{Summarizer, SummaryOptions, TextWriter, Translation, Translator};
use crate::output::{self, Format};
use crate::pipeline;
use crate::pipeline::summarize::AbstractiveRun;
use crate::pipeline::translate::{Plan, TranslateOptions, TranslationReport};
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

    /// Translates every source segment the `plans` send on their first attempt, in
    /// batches of one language, longest first, as many rows as `batch_tokens` allows.
    /// A failed batch is left out: its documents then ask the model themselves, so the
    /// error lands on the right document.
    fn translate_all(
        &self,
        translator: &mut dyn Translator,
        plans: &[&Plan<'_>],
    ) -> HashMap<(Lang, String), Translation> {
        let mut wanted = Vec::new();
        for plan in plans {
            let mut recorder = Relay {
                inner: &mut *translator,
                first: &self.opts.decode,
                mode: Mode::Record(&mut wanted),
            };
            // Errors come back in the second pass, where they belong to one document.
            let _ = (*plan).clone().run(Some(&mut recorder));
        }
        let mut sized: Vec<(Lang, String, usize)> = Vec::with_capacity(wanted.len());
        let mut seen = std::collections::HashSet::new();
        for (from, text) in wanted {
            if seen.insert((from, text.clone())) {
                if let Ok(tokens) = translator.count_tokens(&text) {
                    sized.push((from, text, tokens));
                }
            }
        }
        sized.sort_by(|a, b| a.0.code().cmp(b.0.code()).then(b.2.cmp(&a.2)));
        let mut done = HashMap::with_capacity(sized.len());
        let mut start = 0;
        while start < sized.len() {
            let (from, width) = (sized[start].0, sized[start].2.max(1));
            let rows = (self.opts.batch_tokens / width).clamp(1, self.opts.max_batch.max(1));
            let batch: Vec<&(Lang, String, usize)> = sized[start..]
                .iter()
                .take(rows)
                .take_while(|s| s.0 == from)
                .collect();
            let texts: Vec<&str> = batch.iter().map(|s| s.1.as_str()).collect();
            match translator.translate_batch(&texts, from, self.opts.to, &self.opts.decode) {
                Ok(results) if results.len() == batch.len() => {
                    done.extend(batch.iter().map(|s| (s.0, s.1.clone())).zip(results));
                }
                // Its documents ask again in the replay pass and fail there, one by one.
                _ => {}
            }
            start += batch.len();
        }
        done
    }
}

impl Task for TranslateTask {
    fn info(&self) -> &TaskInfo {
        &self.info
    }

    fn run(&self, doc: &Document) -> Result<TaskOutput> {
        let plan = Plan::new(&doc.article, &self.opts)?;
        let report = if plan.sources().is_empty() {
            plan.run(None)?
        } else {
            let mut engine = self.engines.take();
            plan.run(Some(engine.as_mut()))?
        };
        Ok(self.render(doc, report))
    }

    fn batch_docs(&self) -> usize {
        self.batch_docs
    }

    fn run_batch(&self, docs: &[&Document]) -> Vec<Result<TaskOutput>> {
        if docs.len() <= 1 {
            return docs.iter().map(|d| self.run(d)).collect();
        }
        let plans: Vec<Result<Plan<'_>>> = docs
            .iter()
            .map(|d| Plan::new(&d.article, &self.opts))
            .collect();
        let to_translate: Vec<&Plan<'_>> = plans
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .filter(|p| !p.sources().is_empty())
            .collect();
        if to_translate.is_empty() {
            return docs.iter().map(|d| self.run(d)).collect();
        }
        let mut engine = self.engines.take();
        let translator: &mut dyn Translator = engine.as_mut();
        let done = self.translate_all(translator, &to_translate);
        docs.iter()
            .zip(plans)
            .map(|(doc, plan)| {
                let plan = plan?;
                let report = if plan.sources().is_empty() {
                    plan.run(None)?
                } else {
                    let mut replay = Relay {
                        inner: &mut *translator,
                        first: &self.opts.decode,
                        mode: Mode::Replay(&done),
                    };
                    plan.run(Some(&mut replay))?
                };
                Ok(self.render(doc, report))
            })
            .collect()
    }
}

/// What a [`Relay`] does with first-attempt segments.
enum Mode<'a> {
    /// Notes them and answers with the sources themselves (the answers are dropped).
    Record(&'a mut Vec<(Lang, String)>),
    /// Answers from these results, asking the model only for what is missing.
    Replay(&'a HashMap<(Lang, String), Translation>),
}

/// Stands in for the model while a plan runs, so that [`Plan::run`] (which translates
/// one article) can take part in a batch across documents: a recording pass gathers
/// every document's segments, the batch translates them, and a replay pass hands each
/// plan its results. Retries (other decode options) always go to the model.
struct Relay<'a, 'm> {
    inner: &'m mut dyn Translator,
    first: &'a DecodeOptions,
    mode: Mode<'a>,
}

impl Translator for Relay<'_, '_> {
    fn engine_name(&self) -> &'static str {
        self.inner.engine_name()
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        self.inner.count_tokens(text)
    }

    fn max_source_tokens(&self) -> usize {
        self.inner.max_source_tokens()
    }

    fn translate_batch(
        &mut self,
        segments: &[&str],
        from: Lang,
        to: Lang,
        opts: &DecodeOptions,
    ) -> Result<Vec<Translation>> {
        let first = opts == self.first;
        match &mut self.mode {
            Mode::Record(wanted) => {
                if first {
                    wanted.extend(segments.iter().map(|s| (from, s.to_string())));
                }
                Ok(segments
                    .iter()
                    .map(|s| Translation {
                        text: s.to_string(),
                        score: 0.0,
                        tokens: 1,
                        cut: false,
                    })
                    .collect())
            }
            Mode::Replay(done) => {
                if !first {
                    return self.inner.translate_batch(segments, from, to, opts);
                }
                let key = |s: &str| (from, s.to_string());
                let missing: Vec<&str> = segments
                    .iter()
                    .copied()
                    .filter(|s| !done.contains_key(&key(s)))
                    .collect();
                let mut fresh = if missing.is_empty() {
                    Vec::new()
                } else {
                    self.inner.translate_batch(&missing, from, to, opts)?
                }
                .into_iter();
                segments
                    .iter()
                    .map(|s| match done.get(&key(s)) {
                        Some(t) => Ok(t.clone()),
                        None => fresh.next().ok_or_else(|| {
                            Error::Model("the translator returned too few results".into())
                        }),
                    })
                    .collect()
            }
        }
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

    /// Upper-cases; drops digits when greedy (so those sentences are retried with
    /// beams); records the size and beam count of every batch.
    struct Upper(Calls);

    /// Size and beam count of each batch the translator was given.
    type Calls = std::sync::Arc<Mutex<Vec<(usize, usize)>>>;

    impl Translator for Upper {
        fn engine_name(&self) -> &'static str {
            "upper"
        }
        fn count_tokens(&self, text: &str) -> Result<usize> {
            Ok(text.split_whitespace().count() + 1)
        }
        fn max_source_tokens(&self) -> usize {
            512
        }
        fn translate_batch(
            &mut self,
            segments: &[&str],
            _from: Lang,
            _to: Lang,
            opts: &DecodeOptions,
        ) -> Result<Vec<Translation>> {
            let mut calls = self.0.lock().unwrap_or_else(|e| e.into_inner());
            calls.push((segments.len(), opts.beam_size));
            Ok(segments
                .iter()
                .map(|s| {
                    let mut text = s.to_uppercase();
                    if opts.beam_size == 1 {
                        text.retain(|c| !c.is_ascii_digit());
                    }
                    Translation {
                        text,
                        score: -0.5,
                        tokens: 3,
                        cut: false,
                    }
                })
                .collect())
        }
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

    fn translate_task(batch_docs: usize) -> (TranslateTask, Calls) {
        let calls = std::sync::Arc::new(Mutex::new(Vec::new()));
        let task = TranslateTask::new(TranslateSpec {
            translator: Box::new(Upper(calls.clone())),
            model: Some("upper".into()),
            revision: None,
            opts: TranslateOptions {
                to: Lang::Ru,
                ..TranslateOptions::default()
            },
            format: Format::Text,
            batch_docs,
        });
        (task, calls)
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
        let (together, calls) = translate_task(4);
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
        let calls = calls.lock().unwrap().clone();
        // Every first attempt of the three English documents in one batch, then the
        // sentence that lost its numbers once more with beams.
        assert_eq!(calls, [(9, 1), (1, 4)]);
        let alone_calls = alone_calls.lock().unwrap().clone();
        assert_eq!(alone_calls.iter().filter(|c| c.1 == 1).count(), 3);
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
