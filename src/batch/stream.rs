//! `svodka batch --jsonl`: records in, results out, one JSON object per line, for the
//! engines that already split work between machines (Spark, Beam, Flink, a shell
//! pipe). The model is loaded once per process; records are grouped as `batch` groups
//! documents (translation sends the sentences of a group through the model together);
//! results come out in input order, each group as soon as it is done.
//!
//! A bad record (not JSON, no id, an unknown field, an unreadable path, empty text) is
//! answered with an error record and the stream goes on. End of input flushes every
//! result; a closed output ends the run quietly.
//!
//! Every result carries an idempotency key ([`record_key`]) that depends only on the
//! record and the process's settings, so an engine that runs a partition twice (a
//! retried task, a speculative copy) gets the same keys and can keep one of each.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::runner::guarded;
use super::source::{reason, skip_line, Document};
use super::task::{SummarizeTask, Task, TaskInfo, TaskOutput, TranslateTask};
use crate::article::read::{self, ReadOptions};
use crate::article::Lang;
use crate::engine::{SummaryOptions, SummaryStyle};
use crate::util::{human_size, sha256_hex};
use crate::{Error, Result};

/// How long a group waits for more records once it has one: long enough for a writer
/// that is feeding records to fill a batch, short enough to go unnoticed by one that
/// waits for each answer before sending the next record.
const LINGER: Duration = Duration::from_millis(20);

/// Longest id accepted, in bytes: ids are names, not payloads.
const MAX_ID: usize = 1024;

/// Settings of a stream run.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Largest document (a record's text or the file its path names), in bytes.
    pub max_size: u64,
    /// Documents parsed and summarized at once.
    pub jobs: usize,
    /// Print `N records, ... in T` on stderr at the end.
    pub summary_line: bool,
}

/// The tasks a stream runs: a summary, a translation, or both (in that order).
#[derive(Clone, Copy)]
pub struct StreamTasks<'a> {
    /// Summaries, with per-record length, style and language.
    pub summarize: Option<&'a SummarizeTask>,
    /// Translations into the one language the loaded model translates into.
    pub translate: Option<&'a TranslateTask>,
}

/// What a stream run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamSummary {
    /// Input records (non-blank lines) answered.
    pub records: usize,
    /// Result records written (one per record and task).
    pub results: usize,
    /// Of those, error records.
    pub failed: usize,
    /// The reader of the output went away before the end of the input.
    pub closed: bool,
    /// Wall time.
    pub elapsed: Duration,
}

/// A record's text format, as it may name it.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RecordFormat {
    Text,
    Markdown,
    Html,
}

/// A language, as a record names it.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RecordLang {
    Ru,
    En,
}

impl From<RecordLang> for Lang {
    fn from(l: RecordLang) -> Lang {
        match l {
            RecordLang::Ru => Lang::Ru,
            RecordLang::En => Lang::En,
        }
    }
}

/// A summary style, as a record names it.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RecordStyle {
    Brief,
    Bullets,
    Headline,
}

/// One input line, as a record must look besides its `id` (a non-empty string or an
/// integer, checked first so that every error record can carry it). Anything else is
/// an error record.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InRecord {
    /// The article itself...
    text: Option<String>,
    /// ...or a file to read it from (read as `batch` reads files).
    path: Option<String>,
    /// How to read `text` (default text) or `path` (default: by its extension).
    format: Option<RecordFormat>,
    /// Summary length in sentences (clears the process's --words).
    sentences: Option<u32>,
    /// Summary length in words.
    words: Option<u32>,
    /// Summary shape (neural engines).
    style: Option<RecordStyle>,
    /// Summary language (neural engines).
    lang: Option<RecordLang>,
    /// Translation target: must be the process's --to (one model per process).
    to: Option<RecordLang>,
}

/// A record read and checked, its content in hand.
struct Ready {
    /// Name for messages and for the CLI JSON's `source`: the id as text.
    name: String,
    bytes: Vec<u8>,
    sha256: String,
    /// How the content is read: `text`, `markdown`, `html`, or `path:EXT`.
    reading: String,
    format: Option<read::Format>,
    /// Path to tell the format by (path records without a `format`).
    path: Option<String>,
    sentences: Option<u32>,
    words: Option<u32>,
    style: Option<SummaryStyle>,
    lang: Option<Lang>,
    to: Option<Lang>,
}

/// One input record: its line, its id when it has one, and its content or the reason
/// it has none.
struct Item {
    line: usize,
    id: Value,
    ready: std::result::Result<Ready, String>,
}

/// What the reader thread sends.
enum Msg {
    Item(Item),
    /// The input could not be read any further.
    Fatal(String),
}

/// One output line.
#[derive(Debug, Serialize)]
struct OutRecord {
    line: usize,
    id: Value,
    task: String,
    engine: String,
    model: Option<String>,
    revision: Option<String>,
    fingerprint: String,
    sha256: Option<String>,
    key: Option<String>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The CLI's JSON, compacted, appended as `result` by [`write_line`]: kept as text,
    /// since a trip through `Value` may change the last digit of a float.
    #[serde(skip)]
    result: Option<String>,
}

/// The idempotency key of a result: SHA-256 (hex) over the record's id (as compact
/// JSON), the content's SHA-256, how the content is read, and the task's name, engine,
/// model, revision and options fingerprint (which covers every option that shapes the
/// output, the format included). Two runs of the same record with the same settings
/// give the same key, whatever the process, machine, batch or order.
pub fn record_key(id: &Value, sha256: &str, reading: &str, info: &TaskInfo) -> String {
    let parts = [
        ("svodka-record-key", "1".to_string()),
        ("id", id.to_string()),
        ("sha256", sha256.to_string()),
        ("reading", reading.to_string()),
        ("task", info.name.clone()),
        ("engine", info.engine.clone()),
        ("model", info.model.clone().unwrap_or_default()),
        ("revision", info.revision.clone().unwrap_or_default()),
        ("fingerprint", info.fingerprint.clone()),
    ];
    let mut text = String::new();
    for (k, v) in parts {
        text.push_str(k);
        text.push('=');
        text.push_str(&v);
        text.push('\n');
    }
    sha256_hex(text.as_bytes())
}

/// Runs the stream: records from `input` until its end, results to `output`.
///
/// Fails only when the input cannot be read or the output fails other than by being
/// closed; results already written stay written.
pub fn run(
    input: Box<dyn Read + Send>,
    output: &mut dyn Write,
    tasks: StreamTasks<'_>,
    config: &StreamConfig,
) -> Result<StreamSummary> {
    let start = Instant::now();
    if tasks.summarize.is_none() && tasks.translate.is_none() {
        return Err(Error::Unsupported("no task to run".into()));
    }
    let group_size = tasks
        .translate
        .map_or(1, |t| t.batch_docs())
        .max(config.jobs)
        .max(1);
    let (tx, rx) = sync_channel::<Msg>(group_size * 2);
    let max_size = config.max_size;
    // Not scoped: when the output closes, the run returns without waiting for an input
    // that may never end; the thread goes with the process.
    std::thread::spawn(move || read_records(input, max_size, |m| tx.send(m).is_ok()));
    let mut summary = StreamSummary::default();
    let mut fatal = None;
    let mut out = std::io::BufWriter::new(output);
    loop {
        let (group, end) = next_group(&rx, group_size);
        let (items, stop) = match end {
            GroupEnd::Fatal(e) => {
                fatal = Some(e);
                (group, true)
            }
            GroupEnd::Eof => (group, true),
            GroupEnd::More => (group, false),
        };
        summary.records += items.len();
        for rec in answer(items, tasks, config) {
            summary.results += 1;
            summary.failed += usize::from(rec.status == "failed");
            if !write_line(&mut out, &rec)? {
                summary.closed = true;
                break;
            }
        }
        if !summary.closed {
            match out.flush() {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => summary.closed = true,
                Err(e) => return Err(Error::io("<stdout>", e)),
            }
        }
        if summary.closed || stop {
            break;
        }
    }
    summary.elapsed = start.elapsed();
    if config.summary_line {
        eprintln!(
            "svodka: {} records, {} results, {} failed in {:.1} s{}",
            summary.records,
            summary.results,
            summary.failed,
            summary.elapsed.as_secs_f64(),
            if summary.closed {
                " (output closed before the end of the input)"
            } else {
                ""
            }
        );
    }
    if let Some(reason) = fatal {
        return Err(Error::bad_input("<input>", reason));
    }
    Ok(summary)
}

/// Writes one record and a newline; `false` when the reader went away.
fn write_line(out: &mut impl Write, rec: &OutRecord) -> Result<bool> {
    let mut line =
        serde_json::to_vec(rec).map_err(|e| Error::Unsupported(format!("result record: {e}")))?;
    if let Some(result) = &rec.result {
        // `to_vec` of a struct ends with its closing brace.
        line.pop();
        line.extend_from_slice(b",\"result\":");
        line.extend_from_slice(result.as_bytes());
        line.push(b'}');
    }
    line.push(b'\n');
    match out.write_all(&line) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::io("<stdout>", e)),
    }
}

/// Why a group ended.
enum GroupEnd {
    /// Full, or no record came within [`LINGER`]: more may follow.
    More,
    /// The input ended.
    Eof,
    /// The input could not be read.
    Fatal(String),
}

/// Waits for one record, then takes more while they come quickly, up to `size`.
fn next_group(rx: &Receiver<Msg>, size: usize) -> (Vec<Item>, GroupEnd) {
    let mut group = Vec::with_capacity(size);
    let mut first = true;
    while group.len() < size {
        let msg = if first {
            first = false;
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(LINGER)
        };
        match msg {
            Ok(Msg::Item(item)) => group.push(item),
            Ok(Msg::Fatal(e)) => return (group, GroupEnd::Fatal(e)),
            Err(RecvTimeoutError::Timeout) => break,
            Err(RecvTimeoutError::Disconnected) => return (group, GroupEnd::Eof),
        }
    }
    (group, GroupEnd::More)
}

/// Reads lines from `input` and hands each record to `send` until the input ends or
/// `send` says nobody listens. A line longer than a document may be (plus room for the
/// other fields and JSON escapes) is answered without being held in memory.
fn read_records(input: Box<dyn Read + Send>, max_size: u64, mut send: impl FnMut(Msg) -> bool) {
    let cap = max_size.saturating_mul(2).saturating_add(1 << 16);
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut line_no = 0;
    loop {
        line_no += 1;
        let mut line = Vec::new();
        let read = (&mut reader).take(cap).read_until(b'\n', &mut line);
        let item = match read {
            Ok(0) => return,
            Ok(_) if !line.ends_with(b"\n") && line.len() as u64 >= cap => {
                if let Err(e) = skip_line(&mut reader) {
                    send(Msg::Fatal(format!("line {line_no}: cannot be read: {e}")));
                    return;
                }
                Item {
                    line: line_no,
                    id: Value::Null,
                    ready: Err(format!(
                        "the line is over {}, longer than a document may be (raise --max-size)",
                        human_size(cap)
                    )),
                }
            }
            Ok(_) if line.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(_) => parse_record(line_no, &line, max_size),
            Err(e) => {
                send(Msg::Fatal(format!("line {line_no}: cannot be read: {e}")));
                return;
            }
        };
        if !send(Msg::Item(item)) {
            return;
        }
    }
}

/// Checks one line and reads what it points at.
fn parse_record(line: usize, bytes: &[u8], max_size: u64) -> Item {
    let mut value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return Item {
                line,
                id: Value::Null,
                ready: Err(format!("not valid JSON: {e}")),
            }
        }
    };
    // Taken before the full check, so that a record with a bad field still gets its id.
    let id = match value.as_object_mut() {
        Some(fields) => fields.remove("id").unwrap_or(Value::Null),
        None => {
            return Item {
                line,
                id: Value::Null,
                ready: Err("a record must be a JSON object".into()),
            }
        }
    };
    let ready = check_id(&id).and_then(|name| {
        let rec: InRecord =
            serde_json::from_value(value).map_err(|e| format!("not a valid record: {e}"))?;
        ready(rec, name, max_size)
    });
    let id = if ready.is_err() && check_id(&id).is_err() {
        Value::Null
    } else {
        id
    };
    Item { line, id, ready }
}

/// The id as a name: a non-empty string (at most [`MAX_ID`] bytes) or an integer.
fn check_id(id: &Value) -> std::result::Result<String, String> {
    match id {
        Value::Null => Err("the record has no \"id\"".into()),
        Value::String(s) if s.trim().is_empty() => Err("the record's \"id\" is empty".into()),
        Value::String(s) if s.len() > MAX_ID => Err(format!(
            "the record's \"id\" is {} bytes long, over {MAX_ID}",
            s.len()
        )),
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        _ => Err("the record's \"id\" must be a string or an integer".into()),
    }
}

fn ready(rec: InRecord, name: String, max_size: u64) -> std::result::Result<Ready, String> {
    if rec.sentences.is_some_and(|n| !(1..=100).contains(&n)) {
        return Err("\"sentences\" must be between 1 and 100".into());
    }
    if rec.words == Some(0) {
        return Err("\"words\" must be above zero".into());
    }
    let format = rec.format.map(|f| match f {
        RecordFormat::Text => read::Format::Text,
        RecordFormat::Markdown => read::Format::Markdown,
        RecordFormat::Html => read::Format::Html,
    });
    let (bytes, reading, format, path) = match (rec.text, rec.path) {
        (Some(_), Some(_)) => return Err("give \"text\" or \"path\", not both".into()),
        (None, None) => return Err("the record has neither \"text\" nor \"path\"".into()),
        (Some(text), None) => {
            if text.trim().is_empty() {
                return Err("the record's text is empty".into());
            }
            if text.len() as u64 > max_size {
                return Err(format!(
                    "the text is {}, over the per-document limit of {} (raise it with --max-size)",
                    human_size(text.len() as u64),
                    human_size(max_size)
                ));
            }
            let format = format.unwrap_or(read::Format::Text);
            (text.into_bytes(), format_name(format), Some(format), None)
        }
        (None, Some(path)) => {
            let bytes = read_path(&path, max_size).map_err(|e| format!("{path}: {e}"))?;
            let reading = match format {
                Some(f) => format_name(f),
                None => {
                    let ext = Path::new(&path)
                        .extension()
                        .map(|e| e.to_string_lossy().to_ascii_lowercase())
                        .unwrap_or_default();
                    format!("path:{ext}")
                }
            };
            (bytes, reading, format, Some(path))
        }
    };
    Ok(Ready {
        name,
        sha256: sha256_hex(&bytes),
        bytes,
        reading,
        format,
        path,
        sentences: rec.sentences,
        words: rec.words,
        style: rec.style.map(|s| match s {
            RecordStyle::Brief => SummaryStyle::Brief,
            RecordStyle::Bullets => SummaryStyle::Bullets,
            RecordStyle::Headline => SummaryStyle::Headline,
        }),
        lang: rec.lang.map(Into::into),
        to: rec.to.map(Into::into),
    })
}

fn format_name(f: read::Format) -> String {
    match f {
        read::Format::Text => "text",
        read::Format::Markdown => "markdown",
        read::Format::Html => "html",
    }
    .into()
}

/// Reads a regular file of at most `limit` bytes (checked before reading; a device or
/// a pipe is refused rather than read forever).
fn read_path(path: &str, limit: u64) -> std::result::Result<Vec<u8>, String> {
    if path.is_empty() || path.contains('\0') {
        return Err("not a usable path".into());
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.len() > limit {
        return Err(format!(
            "the file is {}, over the per-document limit of {} (raise it with --max-size)",
            human_size(meta.len()),
            human_size(limit)
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot be opened: {e}"))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err("the file grew past the per-document limit while being read".into());
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("the file is empty".into());
    }
    Ok(bytes)
}

/// Parses a record's content into a document.
fn parse_doc(ready: &Ready) -> std::result::Result<Document, String> {
    let start = Instant::now();
    let opts = ReadOptions {
        encoding: None,
        format: ready.format,
        // The stream has already bounded the record's bytes (its per-document limit).
        max_size: u64::MAX,
    };
    // Path records are told by their extension; text records always have a format.
    let shown = ready.path.as_deref().unwrap_or(&ready.name);
    let article = guarded(|| read::read_bytes(&ready.bytes, Path::new(shown), &opts))?
        .map_err(|e| reason(&e))?;
    Ok(Document {
        name: ready.name.clone(),
        out_base: ready.name.clone(),
        sha256: ready.sha256.clone(),
        article,
        read_ms: start.elapsed().as_millis() as u64,
    })
}

/// `f` over `items` on up to `jobs` threads, results in order.
fn par_map<T: Sync, U: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    if jobs <= 1 || items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|s| {
        for _ in 0..jobs.min(items.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { return };
                let u = f(item);
                done.lock().unwrap_or_else(|e| e.into_inner()).push((i, u));
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, u)| u).collect()
}

/// The summary options a record asks for, on top of the process's.
fn summary_options(base: &SummaryOptions, r: &Ready) -> SummaryOptions {
    let mut opts = base.clone();
    if let Some(n) = r.sentences {
        opts.sentences = n as usize;
        opts.words = None;
    }
    if let Some(w) = r.words {
        opts.words = Some(w as usize);
    }
    if let Some(s) = r.style {
        opts.style = s;
    }
    if let Some(l) = r.lang {
        opts.lang = Some(l);
    }
    opts
}

/// A task's result for one record, or why there is none.
type Outcome = std::result::Result<TaskOutput, String>;

/// A record's content parsed, or why it could not be; `None` for a bad record.
type Parsed = Option<std::result::Result<Document, String>>;

/// Answers a group: one result record per record and task, in input order.
fn answer(items: Vec<Item>, tasks: StreamTasks<'_>, config: &StreamConfig) -> Vec<OutRecord> {
    let docs: Vec<Parsed> = par_map(&items, config.jobs, |item| {
        item.ready.as_ref().ok().map(parse_doc)
    });
    let summaries: Vec<Option<(TaskInfo, Outcome)>> = match tasks.summarize {
        None => Vec::new(),
        Some(task) => {
            let pairs: Vec<(&Item, &Parsed)> = items.iter().zip(&docs).collect();
            par_map(&pairs, config.jobs, |(item, doc)| {
                let ready = item.ready.as_ref().ok()?;
                let opts = summary_options(task.options(), ready);
                let info = task.info_with(&opts);
                let outcome = match doc {
                    Some(Ok(doc)) => guarded(|| task.run_with(doc, &opts))
                        .and_then(|r| r.map_err(|e| reason(&e))),
                    Some(Err(e)) => Err(e.clone()),
                    None => return None,
                };
                Some((info, outcome))
            })
        }
    };
    let translations: Vec<Option<Outcome>> = match tasks.translate {
        None => Vec::new(),
        Some(task) => translate_group(task, &items, &docs),
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(task) = tasks.summarize {
            let (info, outcome) = match summaries.get(i).cloned().flatten() {
                Some((info, o)) => (info, Some(o)),
                None => (task.info().clone(), None),
            };
            out.push(result_record(item, &info, outcome));
        }
        if let Some(task) = tasks.translate {
            let outcome = translations.get(i).cloned().flatten();
            out.push(result_record(item, task.info(), outcome));
        }
    }
    out
}

/// Translates every document of the group that can be, in one call so that their
/// sentences share the model's batches.
fn translate_group(task: &TranslateTask, items: &[Item], docs: &[Parsed]) -> Vec<Option<Outcome>> {
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(items.len());
    let mut wanted = Vec::new();
    for (i, (item, doc)) in items.iter().zip(docs).enumerate() {
        let outcome = match (&item.ready, doc) {
            (Ok(r), _) if r.to.is_some_and(|to| to != task.target()) => Some(Err(format!(
                "\"to\": {} asks for another language than this process translates into \
                 ({}); send it to a process started with --to {0}",
                r.to.map_or("", Lang::code),
                task.target()
            ))),
            (_, Some(Err(e))) => Some(Err(e.clone())),
            (_, Some(Ok(d))) => {
                wanted.push((i, d));
                None
            }
            (_, None) => None,
        };
        outcomes.push(outcome);
    }
    let refs: Vec<&Document> = wanted.iter().map(|(_, d)| *d).collect();
    if refs.is_empty() {
        return outcomes;
    }
    let results = guarded(|| task.run_batch(&refs)).unwrap_or_else(|reason| {
        refs.iter()
            .map(|_| Err(Error::Unsupported(reason.clone())))
            .collect()
    });
    let mut results = results.into_iter();
    for (i, _) in wanted {
        outcomes[i] = Some(match results.next() {
            Some(r) => r.map_err(|e| reason(&e)),
            None => Err(format!(
                "the {} engine returned no result",
                task.info().engine
            )),
        });
    }
    outcomes
}

/// JSON text without the whitespace between tokens, strings untouched.
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

/// The output record of one record and task: `outcome` is `None` when the record itself
/// was bad (its reason is then the error).
fn result_record(item: &Item, info: &TaskInfo, outcome: Option<Outcome>) -> OutRecord {
    let ready = item.ready.as_ref().ok();
    let (status, result, error) = match (outcome, &item.ready) {
        (Some(Ok(output)), _) => ("done", Some(compact(&output.rendered)), None),
        (Some(Err(e)), _) => ("failed", None, Some(e)),
        (None, Err(e)) => ("failed", None, Some(e.clone())),
        (None, Ok(_)) => ("failed", None, Some("no result".to_string())),
    };
    OutRecord {
        line: item.line,
        id: item.id.clone(),
        task: info.name.clone(),
        engine: info.engine.clone(),
        model: info.model.clone(),
        revision: info.revision.clone(),
        fingerprint: info.fingerprint.clone(),
        sha256: ready.map(|r| r.sha256.clone()),
        key: ready.map(|r| record_key(&item.id, &r.sha256, &r.reading, info)),
        status,
        result,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_documented_hash() {
        let info = TaskInfo {
            name: "summarize".into(),
            engine: "extractive".into(),
            model: None,
            revision: Some("0.1.0".into()),
            fingerprint: "00ff".into(),
            output_suffix: "summary.json".into(),
        };
        let text = "svodka-record-key=1\nid=\"a/b.txt\"\nsha256=abc\nreading=text\n\
                    task=summarize\nengine=extractive\nmodel=\nrevision=0.1.0\nfingerprint=00ff\n";
        let id = Value::String("a/b.txt".into());
        assert_eq!(
            record_key(&id, "abc", "text", &info),
            sha256_hex(text.as_bytes())
        );
        assert_ne!(
            record_key(&Value::from(7), "abc", "text", &info),
            record_key(&Value::String("7".into()), "abc", "text", &info)
        );
    }

    #[test]
    fn compacting_keeps_strings_and_numbers_as_written() {
        let pretty = "{\n  \"a b\": \"x \\\" y\",\n  \"n\": 0.9999933786744761\n}\n";
        assert_eq!(
            compact(pretty),
            r#"{"a b":"x \" y","n":0.9999933786744761}"#
        );
    }

    #[test]
    fn records_are_checked_field_by_field() {
        let item = parse_record(
            3,
            br#"{"id": "x", "text": "Some text.", "style": "bullets"}"#,
            1000,
        );
        let ready = item.ready.unwrap();
        assert_eq!((item.line, ready.name.as_str()), (3, "x"));
        assert_eq!(ready.style, Some(SummaryStyle::Bullets));
        assert_eq!(ready.reading, "text");
        let big = parse_record(
            1,
            br#"{"id": "x", "text": "far too long for the limit"}"#,
            10,
        );
        assert!(big.ready.err().unwrap().contains("--max-size"));
        let bad = parse_record(1, br#"{"id": "x", "text": "t", "style": "poem"}"#, 1000);
        assert_eq!(bad.id, Value::String("x".into()));
        assert!(bad.ready.err().unwrap().contains("unknown variant `poem`"));
        let no_id = parse_record(1, br#"{"id": "", "text": "t"}"#, 1000);
        assert_eq!(no_id.id, Value::Null);
    }
}
