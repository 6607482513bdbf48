//! Reading a source file into documents: one article per text file, one per record of a
//! JSON or JSONL file. Size limits are checked before anything is read.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::Instant;

use super::discover::{Shard, Source, SourceKind};
use crate::article::read::{self, ReadOptions};
use crate::article::Article;
use crate::util::sha256_hex;
use crate::Error;

/// A JSON file is parsed whole, so it gets a cap of its own; JSONL streams by line.
pub const MAX_JSON_FILE: u64 = 256 << 20;

/// How to turn sources into documents.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Largest document, in bytes (a text file, or one record's text).
    pub max_size: u64,
    /// Name of the text field in JSON and JSONL records.
    pub field: String,
}

/// One document's content, read and hashed but not yet parsed: resuming compares the
/// hash before paying for parsing.
#[derive(Debug)]
pub struct RawDoc {
    /// Its name in the manifest: `sub/a.txt`, or `news.jsonl#3` for a record.
    pub name: String,
    /// Output file name without the task suffix, relative to the output folder.
    pub out_base: String,
    /// Hex SHA-256 of the content (file bytes, or the record's text).
    pub sha256: String,
    bytes: Vec<u8>,
    /// Records are plain text; files are read by their extension.
    format: Option<read::Format>,
    read_ms: u64,
}

/// One document, read and parsed.
#[derive(Debug)]
pub struct Document {
    /// Its name in the manifest.
    pub name: String,
    /// Output file name without the task suffix, relative to the output folder.
    pub out_base: String,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// The parsed article.
    pub article: Article,
    /// Time spent reading and parsing, in milliseconds.
    pub read_ms: u64,
}

/// A document that could not be read, with whatever is known about it.
#[derive(Debug)]
pub struct Unreadable {
    /// Its name in the manifest.
    pub name: String,
    /// Content hash, when the bytes could be read.
    pub sha256: Option<String>,
    /// Why, in words.
    pub reason: String,
}

/// Either outcome of reading one document.
pub type Loaded = std::result::Result<RawDoc, Unreadable>;

impl RawDoc {
    /// Time spent reading and hashing, in milliseconds.
    pub fn read_ms(&self) -> u64 {
        self.read_ms
    }

    /// Decodes and parses the content.
    pub fn parse(self) -> std::result::Result<Document, Unreadable> {
        let start = Instant::now();
        // The bytes were read under the batch's own limit.
        let opts = ReadOptions {
            encoding: None,
            format: self.format,
            max_size: u64::MAX,
        };
        // The relative name keeps the extension (the format is told by it) and keeps
        // absolute paths out of error messages.
        match read::read_bytes(&self.bytes, Path::new(&self.name), &opts) {
            Ok(article) => Ok(Document {
                read_ms: self.read_ms + start.elapsed().as_millis() as u64,
                name: self.name,
                out_base: self.out_base,
                sha256: self.sha256,
                article,
            }),
            Err(e) => Err(Unreadable {
                name: self.name,
                sha256: Some(self.sha256),
                reason: reason(&e),
            }),
        }
    }
}

/// The reason of an error without the path it names (the manifest names it already).
pub fn reason(err: &Error) -> String {
    match err {
        Error::BadInput { reason, .. } => reason.clone(),
        Error::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

use crate::util::human_size;

fn too_large(size: u64, limit: u64, what: &str) -> String {
    format!(
        "{what} is {}, over the per-document limit of {} (raise it with --max-size)",
        human_size(size),
        human_size(limit)
    )
}

/// Reads a whole file after checking its size against `limit`.
fn read_capped(path: &Path, limit: u64, what: &str) -> std::result::Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot be opened: {e}"))?;
    let size = file
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?
        .len();
    if size > limit {
        return Err(too_large(size, limit, what));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // `take` guards against a file that grows between the check and the read.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64, limit, what));
    }
    Ok(bytes)
}

fn unreadable(name: &str, reason: String) -> Unreadable {
    Unreadable {
        name: name.to_string(),
        sha256: None,
        reason,
    }
}

/// The documents of `source`, in order, read one at a time (a JSONL file is streamed).
/// Never fails as a whole: what cannot be read comes out as an [`Unreadable`]. With a
/// `shard`, only the records of a JSON or JSONL file that it owns (by the name
/// `file#N`) come out, and a problem of the whole file only from the file name's owner.
pub fn documents<'a>(
    source: &'a Source,
    opts: &'a LoadOptions,
    shard: Option<Shard>,
) -> Box<dyn Iterator<Item = Loaded> + Send + 'a> {
    if let Some(p) = &source.problem {
        return Box::new(std::iter::once(Err(unreadable(&source.rel, p.clone()))));
    }
    match source.kind {
        SourceKind::Article => Box::new(std::iter::once(load_article(source, opts))),
        SourceKind::Json => {
            let docs = match read_capped(&source.path, MAX_JSON_FILE, "the JSON file") {
                Ok(bytes) => json_records(source, &bytes, opts),
                Err(reason) => vec![Err(unreadable(&source.rel, reason))],
            };
            Box::new(
                docs.into_iter().filter(move |d| {
                    owned(shard, d.as_ref().map_or_else(|u| &u.name, |r| &r.name))
                }),
            )
        }
        SourceKind::JsonLines => match std::fs::File::open(&source.path) {
            Ok(f) => Box::new(JsonLines {
                source,
                opts,
                shard,
                reader: BufReader::new(f),
                line: 0,
                records: 0,
                finished: false,
            }),
            Err(e) => Box::new(std::iter::once(Err(unreadable(
                &source.rel,
                format!("cannot be opened: {e}"),
            )))),
        },
    }
}

/// Whether a document or problem named `name` is this shard's to report.
fn owned(shard: Option<Shard>, name: &str) -> bool {
    shard.is_none_or(|s| s.owns(name))
}

fn load_article(source: &Source, opts: &LoadOptions) -> Loaded {
    let start = Instant::now();
    let bytes = read_capped(&source.path, opts.max_size, "the file")
        .map_err(|r| unreadable(&source.rel, r))?;
    Ok(RawDoc {
        name: source.rel.clone(),
        out_base: source.out_base.clone(),
        sha256: sha256_hex(&bytes),
        bytes,
        format: None,
        read_ms: start.elapsed().as_millis() as u64,
    })
}

/// One record (`value`) of a JSON or JSONL source, numbered `n` from 1.
fn record(source: &Source, n: usize, value: &serde_json::Value, opts: &LoadOptions) -> Loaded {
    let start = Instant::now();
    let name = format!("{}#{n}", source.rel);
    let text = value
        .get(&opts.field)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| {
            unreadable(
                &name,
                format!("record has no string field {:?}", opts.field),
            )
        })?;
    if text.len() as u64 > opts.max_size {
        let reason = too_large(text.len() as u64, opts.max_size, "the text");
        return Err(unreadable(&name, reason));
    }
    Ok(RawDoc {
        out_base: format!("{}#{n}", source.out_base),
        name,
        sha256: sha256_hex(text.as_bytes()),
        bytes: text.as_bytes().to_vec(),
        format: Some(read::Format::Text),
        read_ms: start.elapsed().as_millis() as u64,
    })
}

fn json_records(source: &Source, bytes: &[u8], opts: &LoadOptions) -> Vec<Loaded> {
    let whole = |reason: String| {
        vec![Err(Unreadable {
            name: source.rel.clone(),
            sha256: Some(sha256_hex(bytes)),
            reason,
        })]
    };
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Array(items)) if items.is_empty() => {
            whole("the JSON array holds no records".into())
        }
        Ok(serde_json::Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| record(source, i + 1, v, opts))
            .collect(),
        Ok(v @ serde_json::Value::Object(_)) => vec![record(source, 1, &v, opts)],
        Ok(_) => whole("JSON input must be an object or an array of objects".into()),
        Err(e) => whole(format!("not valid JSON: {e}")),
    }
}

/// Records of a JSONL file, numbered by line so that `#N` points at line N; blank lines
/// are passed over, and a file without records is reported.
struct JsonLines<'a> {
    source: &'a Source,
    opts: &'a LoadOptions,
    shard: Option<Shard>,
    reader: BufReader<std::fs::File>,
    line: usize,
    records: usize,
    finished: bool,
}

impl Iterator for JsonLines<'_> {
    type Item = Loaded;

    fn next(&mut self) -> Option<Loaded> {
        // A line longer than the document limit (plus room for the other fields) is
        // refused without being held whole in memory.
        let cap = self.opts.max_size.saturating_mul(2).saturating_add(1 << 16);
        while !self.finished {
            self.line += 1;
            let name = format!("{}#{}", self.source.rel, self.line);
            let mut line = Vec::new();
            match (&mut self.reader).take(cap).read_until(b'\n', &mut line) {
                Ok(0) => {
                    self.finished = true;
                    if self.records == 0 && owned(self.shard, &self.source.rel) {
                        let reason = "the JSONL file holds no records".to_string();
                        return Some(Err(unreadable(&self.source.rel, reason)));
                    }
                }
                Ok(_) if !line.ends_with(b"\n") && line.len() as u64 >= cap => {
                    self.records += 1;
                    // Pass over the rest of the overlong line, a buffer at a time.
                    if skip_line(&mut self.reader).is_err() {
                        self.finished = true;
                    }
                    if owned(self.shard, &name) {
                        let reason = too_large(cap, self.opts.max_size, "the line");
                        return Some(Err(unreadable(&name, reason)));
                    }
                }
                Ok(_) if line.iter().all(u8::is_ascii_whitespace) => {}
                // Another shard's record: counted, not parsed.
                Ok(_) if !owned(self.shard, &name) => self.records += 1,
                Ok(_) => {
                    self.records += 1;
                    return Some(match serde_json::from_slice::<serde_json::Value>(&line) {
                        Ok(v) => record(self.source, self.line, &v, self.opts),
                        Err(e) => Err(unreadable(&name, format!("not valid JSON: {e}"))),
                    });
                }
                Err(e) => {
                    self.finished = true;
                    return Some(Err(unreadable(&name, format!("cannot be read: {e}"))));
                }
            }
        }
        None
    }
}

/// Passes over the rest of a line without holding it, a buffer at a time.
pub fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn source(rel: &str, path: PathBuf, kind: SourceKind) -> Source {
        Source {
            rel: rel.into(),
            path,
            kind,
            out_base: rel.rsplit_once('.').map(|(s, _)| s.to_string()).unwrap(),
            problem: None,
        }
    }

    fn opts() -> LoadOptions {
        LoadOptions {
            max_size: 1 << 20,
            field: "text".into(),
        }
    }

    fn names(docs: &[Loaded]) -> Vec<String> {
        docs.iter()
            .map(|d| match d {
                Ok(d) => d.name.clone(),
                Err(u) => format!("!{}", u.name),
            })
            .collect()
    }

    const BODY: &str = "The council met on Monday to discuss the budget. \
        It approved new spending on schools and roads. Critics said the plan was too costly.";

    #[test]
    fn jsonl_records_are_numbered_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("n.jsonl");
        let good = serde_json::json!({ "text": BODY }).to_string();
        std::fs::write(&p, format!("{good}\n\n{{\"body\": 1}}\nnot json\n{good}")).unwrap();
        let src = source("d/n.jsonl", p, SourceKind::JsonLines);
        let o = opts();
        let docs: Vec<Loaded> = documents(&src, &o, None).collect();
        assert_eq!(
            names(&docs),
            ["d/n.jsonl#1", "!d/n.jsonl#3", "!d/n.jsonl#4", "d/n.jsonl#5"]
        );
        assert!(docs[1].as_ref().unwrap_err().reason.contains("\"text\""));
        let mut docs = docs.into_iter();
        let first = docs.next().unwrap().unwrap();
        assert_eq!(first.out_base, "d/n#1");
        assert_eq!(first.sha256, sha256_hex(BODY.as_bytes()));
        let doc = first.parse().unwrap();
        assert!(!doc.article.paragraphs.is_empty());
    }

    #[test]
    fn shards_share_out_jsonl_records_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("n.jsonl");
        let good = serde_json::json!({ "text": BODY }).to_string();
        let lines: Vec<String> = (0..40).map(|_| good.clone()).collect();
        std::fs::write(&p, lines.join("\n")).unwrap();
        let src = source("n.jsonl", p, SourceKind::JsonLines);
        let o = opts();
        let mut all = Vec::new();
        for index in 0..3 {
            let shard = Shard { index, count: 3 };
            let got = names(&documents(&src, &o, Some(shard)).collect::<Vec<_>>());
            assert!(got.len() > 3 && got.len() < 30, "{got:?}");
            all.extend(got);
        }
        all.sort();
        let mut want: Vec<String> = (1..=40).map(|n| format!("n.jsonl#{n}")).collect();
        want.sort();
        assert_eq!(all, want);
    }

    #[test]
    fn empty_jsonl_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.jsonl");
        std::fs::write(&p, "\n\n").unwrap();
        let src = source("e.jsonl", p, SourceKind::JsonLines);
        let o = opts();
        let docs: Vec<Loaded> = documents(&src, &o, None).collect();
        assert_eq!(names(&docs), ["!e.jsonl"]);
    }

    #[test]
    fn json_array_and_oversized_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        let big = "word ".repeat(300);
        let v = serde_json::json!([{ "text": BODY }, { "text": big }]);
        std::fs::write(&p, v.to_string()).unwrap();
        let small = LoadOptions {
            max_size: 1000,
            ..opts()
        };
        let src = source("a.json", p, SourceKind::Json);
        let docs: Vec<Loaded> = documents(&src, &small, None).collect();
        assert_eq!(names(&docs), ["a.json#1", "!a.json#2"]);
        let err = docs[1].as_ref().unwrap_err();
        assert!(err.reason.contains("--max-size"), "{}", err.reason);
    }

    #[test]
    fn oversized_file_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.txt");
        std::fs::write(&p, "x".repeat(5000)).unwrap();
        let small = LoadOptions {
            max_size: 4096,
            ..opts()
        };
        let src = source("big.txt", p, SourceKind::Article);
        let docs: Vec<Loaded> = documents(&src, &small, None).collect();
        let err = docs[0].as_ref().unwrap_err();
        assert!(err.reason.contains("4.9 KiB") && err.reason.contains("4.0 KiB"));
    }
}
