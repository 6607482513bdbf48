//! The model threads: each model is owned by one thread that takes jobs from a bounded
//! queue, so the async side never runs a model and never waits on a lock.
//!
//! A translation thread takes every job waiting (up to a limit) and, when only one is
//! there, gives others a few milliseconds to join; the texts of all of them then go
//! through [`translate_all`] together, so sentences of concurrent requests share model
//! batches, first attempts and retries alike. A full queue refuses at once (the caller
//! answers 503); a job whose client went away is dropped before it reaches the model.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::metrics::Metrics;
use crate::article::{Article, Lang};
use crate::engine::extractive::Extractive;
use crate::engine::{SummaryOptions, TextWriter, Translator};
use crate::pipeline::summarize::{self as pipe, AbstractiveRun, SummaryReport};
use crate::pipeline::translate::{translate_all, TranslateOptions, TranslationReport};
use crate::{Error, Result};

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full: try again later.
    Full,
    /// The model thread is gone (the server is stopping).
    Closed,
}

/// Texts to translate for one request, answered together.
pub struct TranslateJob {
    /// Articles with their options; every one is translated.
    pub items: Vec<(Article, TranslateOptions)>,
    /// Where the reports go, one per item, in order.
    pub reply: oneshot::Sender<Vec<Result<TranslationReport>>>,
}

/// How translation threads gather jobs.
#[derive(Debug, Clone, Copy)]
pub struct Gathering {
    /// Most requests translated in one round; 1 translates one request at a time.
    pub max_requests: usize,
    /// How long a lone job waits for others to join.
    pub wait: Duration,
    /// A pause before every round: a fault-injection switch for tests of a full queue
    /// (`--debug-round-delay-ms`); zero otherwise.
    pub delay: Duration,
}

/// Puts `job` on a lane's bounded queue, counted in the queue depth; a full or closed
/// queue refuses at once.
fn enqueue<J>(
    tx: Option<&SyncSender<J>>,
    metrics: &Metrics,
    job: J,
) -> std::result::Result<(), Refused> {
    let tx = tx.ok_or(Refused::Closed)?;
    metrics.queued(1);
    tx.try_send(job).map_err(|e| {
        metrics.queued(-1);
        match e {
            TrySendError::Full(_) => {
                metrics.rejected();
                Refused::Full
            }
            TrySendError::Disconnected(_) => Refused::Closed,
        }
    })
}

/// A translation model on its own thread, serving some language pairs.
pub struct TranslateLane {
    /// Pairs (from, to) it translates.
    pub pairs: Vec<(Lang, Lang)>,
    /// Model name and revision, for the startup line and logs.
    pub model: String,
    tx: Option<SyncSender<TranslateJob>>,
    thread: Option<JoinHandle<()>>,
    metrics: Arc<Metrics>,
}

impl TranslateLane {
    /// Starts the thread that owns `engine`, with a queue of `capacity` jobs.
    pub fn start(
        engine: Box<dyn Translator + Send>,
        model: String,
        pairs: Vec<(Lang, Lang)>,
        capacity: usize,
        gathering: Gathering,
        metrics: Arc<Metrics>,
    ) -> TranslateLane {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let m = metrics.clone();
        let thread = std::thread::Builder::new()
            .name(format!("translate {model}"))
            .spawn(move || translate_loop(engine, rx, gathering, &m))
            .ok();
        TranslateLane {
            pairs,
            model,
            tx: Some(tx),
            thread,
            metrics,
        }
    }

    /// Queues `job`, or says why not, at once.
    pub fn submit(&self, job: TranslateJob) -> std::result::Result<(), Refused> {
        enqueue(self.tx.as_ref(), &self.metrics, job)
    }
}

impl Drop for TranslateLane {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has answered what it holds.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn translate_loop(
    mut engine: Box<dyn Translator + Send>,
    rx: Receiver<TranslateJob>,
    gathering: Gathering,
    metrics: &Metrics,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let deadline = Instant::now() + gathering.wait;
        while jobs.len() < gathering.max_requests.max(1) {
            // Whatever is already waiting joins at once; a lone job waits a little.
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) if jobs.len() > 1 => break,
                Err(mpsc::TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(left) {
                        Ok(j) => jobs.push(j),
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
        }
        metrics.queued(-(jobs.len() as i64));
        if !gathering.delay.is_zero() {
            std::thread::sleep(gathering.delay);
        }
        // A client that went away does not cost the others model time.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let start = Instant::now();
        let items: Vec<(&Article, &TranslateOptions)> = jobs
            .iter()
            .flat_map(|j| j.items.iter().map(|(a, o)| (a, o)))
            .collect();
        let outcome = catch_unwind(AssertUnwindSafe(|| translate_all(engine.as_mut(), &items)));
        let mut reports: Vec<Result<TranslationReport>> = match outcome {
            Ok(t) => {
                metrics.translated(jobs.len(), &t.batches, start.elapsed());
                t.reports
            }
            Err(_) => items
                .iter()
                .map(|_| Err(Error::Model("the translation model failed (panic)".into())))
                .collect(),
        };
        drop(items);
        for job in jobs.into_iter().rev() {
            let mine = reports.split_off(reports.len() - job.items.len());
            let _ = job.reply.send(mine);
        }
    }
}

/// What writes summaries.
pub enum SummaryEngine {
    /// Sentence ranking; needs no model.
    Extractive,
    /// A neural writer (GGUF LLM or T5) with the name and revision it was loaded as.
    Writer {
        /// The model.
        writer: Box<dyn TextWriter + Send>,
        /// Model name.
        name: String,
        /// Model revision.
        revision: Option<String>,
    },
}

impl SummaryEngine {
    /// The engine's name as `--summary-engine` takes it.
    pub fn name(&self) -> &'static str {
        match self {
            SummaryEngine::Extractive => "extractive",
            SummaryEngine::Writer { writer, .. } => writer.engine_name(),
        }
    }

    fn summarize(&mut self, article: &Article, opts: &SummaryOptions) -> Result<SummaryReport> {
        match self {
            SummaryEngine::Extractive => pipe::summarize(article, &mut Extractive, opts),
            SummaryEngine::Writer {
                writer,
                name,
                revision,
            } => pipe::summarize_with(
                article,
                writer.as_mut(),
                opts,
                AbstractiveRun {
                    model: Some(name.clone()),
                    revision: revision.clone(),
                    ..AbstractiveRun::default()
                },
            ),
        }
    }
}

/// One article to summarize.
pub struct SummaryJob {
    /// The article.
    pub article: Article,
    /// How.
    pub opts: SummaryOptions,
    /// Where the report goes.
    pub reply: oneshot::Sender<Result<SummaryReport>>,
}

/// The summarizer on its own thread: one article at a time (an LLM summary is one long
/// prompt, which batching would not speed up).
pub struct SummaryLane {
    /// Engine name, for the startup line and `/health`.
    pub engine: &'static str,
    /// Model name, when the engine has one.
    pub model: Option<String>,
    tx: Option<SyncSender<SummaryJob>>,
    thread: Option<JoinHandle<()>>,
    metrics: Arc<Metrics>,
}

impl SummaryLane {
    /// Starts the thread that owns `engine`, with a queue of `capacity` jobs.
    pub fn start(mut engine: SummaryEngine, capacity: usize, metrics: Arc<Metrics>) -> SummaryLane {
        let (tx, rx) = mpsc::sync_channel::<SummaryJob>(capacity.max(1));
        let name = engine.name();
        let model = match &engine {
            SummaryEngine::Extractive => None,
            SummaryEngine::Writer { name, .. } => Some(name.clone()),
        };
        let m = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("summarize".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    m.queued(-1);
                    if job.reply.is_closed() {
                        continue;
                    }
                    let start = Instant::now();
                    let report = catch_unwind(AssertUnwindSafe(|| {
                        engine.summarize(&job.article, &job.opts)
                    }))
                    .unwrap_or_else(|_| Err(Error::Model("the summarizer failed (panic)".into())));
                    m.summarized(start.elapsed());
                    let _ = job.reply.send(report);
                }
            })
            .ok();
        SummaryLane {
            engine: name,
            model,
            tx: Some(tx),
            thread,
            metrics,
        }
    }

    /// Queues `job`, or says why not, at once.
    pub fn submit(&self, job: SummaryJob) -> std::result::Result<(), Refused> {
        enqueue(self.tx.as_ref(), &self.metrics, job)
    }
}

impl Drop for SummaryLane {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::read::{parse, Format};
    use crate::testing::Upper;

    fn job(
        text: &str,
    ) -> (
        TranslateJob,
        oneshot::Receiver<Vec<Result<TranslationReport>>>,
    ) {
        let (tx, rx) = oneshot::channel();
        let opts = TranslateOptions {
            to: Lang::En,
            from: Some(Lang::Ru),
            ..TranslateOptions::default()
        };
        let article = parse(text, Format::Text).unwrap();
        (
            TranslateJob {
                items: vec![(article, opts)],
                reply: tx,
            },
            rx,
        )
    }

    /// A translator that blocks each batch until told (or until the sender is gone), so
    /// jobs queue up behind it.
    struct Blocking(std::sync::Mutex<std::sync::mpsc::Receiver<()>>, Upper);
    impl Translator for Blocking {
        fn engine_name(&self) -> &'static str {
            "blocking"
        }
        fn count_tokens(&self, text: &str) -> Result<usize> {
            self.1.count_tokens(text)
        }
        fn max_source_tokens(&self) -> usize {
            self.1.max_source_tokens()
        }
        fn translate_batch(
            &mut self,
            segments: &[&str],
            from: Lang,
            to: Lang,
            opts: &crate::decode::DecodeOptions,
        ) -> Result<Vec<crate::engine::Translation>> {
            let _ = self.0.lock().unwrap().recv();
            self.1.translate_batch(segments, from, to, opts)
        }
    }

    #[test]
    fn jobs_waiting_together_share_a_round_and_each_gets_its_own_report() {
        let metrics = Arc::new(Metrics::default());
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let lane = TranslateLane::start(
            Box::new(Blocking(std::sync::Mutex::new(hold_rx), Upper::new(512))),
            "blocking".into(),
            vec![(Lang::Ru, Lang::En)],
            16,
            Gathering {
                max_requests: 16,
                wait: Duration::from_millis(200),
                delay: Duration::ZERO,
            },
            metrics.clone(),
        );
        // A first job holds the model while the three others queue up behind it.
        let (j0, r0) = job("Ноль.");
        lane.submit(j0).unwrap();
        while metrics.render().contains("svodka_queue_depth 1\n") {
            std::thread::sleep(Duration::from_millis(5));
        }
        let texts = ["Первое предложение.", "Второе предложение тут.", "Третье."];
        let receivers: Vec<_> = texts
            .iter()
            .map(|t| {
                let (j, rx) = job(t);
                lane.submit(j).unwrap();
                rx
            })
            .collect();
        drop(hold_tx);
        assert!(r0.blocking_recv().unwrap()[0].is_ok());
        for (t, rx) in texts.iter().zip(receivers) {
            let reports = rx.blocking_recv().unwrap();
            assert_eq!(reports.len(), 1);
            let r = reports[0].as_ref().unwrap();
            assert_eq!(r.segments[0].translation, t.to_uppercase());
        }
        drop(lane);
        let text = metrics.render();
        // The first job's round, then one round for the three that were waiting.
        assert!(text.contains("svodka_rounds_total 2\n"), "{text}");
        assert!(text.contains("svodka_round_requests_total 4\n"), "{text}");
        assert!(text.contains("svodka_queue_depth 0\n"), "{text}");
    }

    #[test]
    fn a_full_queue_refuses_at_once() {
        let metrics = Arc::new(Metrics::default());
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let lane = TranslateLane::start(
            Box::new(Blocking(std::sync::Mutex::new(hold_rx), Upper::new(512))),
            "blocking".into(),
            vec![(Lang::Ru, Lang::En)],
            1,
            Gathering {
                max_requests: 1,
                wait: Duration::ZERO,
                delay: Duration::ZERO,
            },
            metrics.clone(),
        );
        let (j1, r1) = job("Один.");
        lane.submit(j1).unwrap();
        // Wait until the thread holds the first job, so the queue is empty again.
        while metrics.render().contains("svodka_queue_depth 1\n") {
            std::thread::sleep(Duration::from_millis(5));
        }
        let (j2, r2) = job("Два.");
        lane.submit(j2).unwrap();
        let (j3, _r3) = job("Три.");
        assert_eq!(lane.submit(j3).err(), Some(Refused::Full));
        hold_tx.send(()).unwrap();
        hold_tx.send(()).unwrap();
        assert!(r1.blocking_recv().unwrap()[0].is_ok());
        assert!(r2.blocking_recv().unwrap()[0].is_ok());
        drop(lane);
        assert!(metrics.render().contains("svodka_rejected_total 1\n"));
    }
}
