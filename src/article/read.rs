//! Bytes → text → [`Article`]: encodings and formats.
//!
//! Plain text is read with the same Markdown-lite rules as `.md` files, because news text
//! files carry Markdown links and bold. After the format's reader has produced blocks,
//! one set of rules (see `heuristics`) takes the title, dateline, photo caption and
//! labelled lines out of the body.

mod block;
mod charset;
mod heuristics;
mod html;
mod markdown;

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use charset::{decode, encoding_from_label, Decoded};
pub use html::MAX_HTML_DEPTH;
pub use markdown::render_markdown;

use self::block::Block;
use self::heuristics::LabelKind;
use super::{Article, BlockKind, Metadata};
use crate::util::human_size;
use crate::{Error, Result};

/// Largest input read by default: far above any news page (a long read is under 150 KiB).
pub const DEFAULT_MAX_SIZE: u64 = 8 << 20;

/// How to read an input; `Default` detects both encoding and format and reads at most
/// [`DEFAULT_MAX_SIZE`] bytes.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Decode with this encoding instead of detecting one.
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// Read as this format instead of choosing by extension or content.
    pub format: Option<Format>,
    /// Refuse a file or standard input longer than this many bytes.
    pub max_size: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            encoding: None,
            format: None,
            max_size: DEFAULT_MAX_SIZE,
        }
    }
}

/// The formats an article can be read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain text, read with Markdown-lite rules.
    Text,
    /// Markdown.
    Markdown,
    /// An HTML page.
    Html,
}

impl Format {
    /// The format a file's extension names, if any.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "txt" | "text" => Some(Format::Text),
            "md" | "markdown" => Some(Format::Markdown),
            "html" | "htm" | "xhtml" => Some(Format::Html),
            _ => None,
        }
    }

    /// The format the text looks like: HTML when it opens like a page (after any XML
    /// declaration or comments), else text.
    pub fn sniff(text: &str) -> Format {
        let mut head = text.trim_start();
        // Skip `<?xml ...?>` and `<!-- ... -->` before the first real tag.
        while let Some(rest) = head
            .strip_prefix("<?")
            .and_then(|r| r.split_once("?>"))
            .or_else(|| head.strip_prefix("<!--").and_then(|r| r.split_once("-->")))
            .map(|(_, rest)| rest.trim_start())
        {
            head = rest;
        }
        let opening: String = head.chars().take(14).collect::<String>().to_lowercase();
        let page = ["<!doctype html", "<html", "<head", "<body"]
            .iter()
            .any(|p| opening.starts_with(p));
        if page {
            Format::Html
        } else {
            Format::Text
        }
    }
}

impl std::str::FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Format> {
        match s.trim().to_ascii_lowercase().as_str() {
            "txt" | "text" => Ok(Format::Text),
            "md" | "markdown" => Ok(Format::Markdown),
            "html" | "htm" => Ok(Format::Html),
            _ => Err(Error::Unsupported(format!(
                "unknown input format {s:?}; accepted: text, markdown, html"
            ))),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Html => "html",
        })
    }
}

/// The name errors use for `path`; "-" is standard input.
fn shown_path(path: &Path) -> PathBuf {
    if is_stdin(path) {
        PathBuf::from("<stdin>")
    } else {
        path.to_path_buf()
    }
}

fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Reads an article from bytes; `path` ("-" for stdin) names it in errors and gives the
/// format by its extension.
pub fn read_bytes(bytes: &[u8], path: &Path, opts: &ReadOptions) -> Result<Article> {
    let shown = shown_path(path);
    let decoded = decode(bytes, opts.encoding, &shown)?;
    let format = opts
        .format
        .or_else(|| Format::from_path(path))
        .unwrap_or_else(|| Format::sniff(&decoded.text));
    let article = parse(&decoded.text, format).map_err(|r| Error::bad_input(&shown, r))?;
    if article.title.is_none() && article.paragraphs.is_empty() {
        return Err(Error::bad_input(
            shown,
            format!("has no article text (read as {format})"),
        ));
    }
    Ok(article)
}

/// Reads an article from a file, or from standard input when `path` is "-"; more than
/// `opts.max_size` bytes is refused, reading no more than one byte past the limit (a
/// device or a pipe may never end).
pub fn read_file(path: &Path, opts: &ReadOptions) -> Result<Article> {
    let limit = opts.max_size;
    let bytes = if is_stdin(path) {
        read_capped(std::io::stdin().lock(), limit, &shown_path(path))?
    } else {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Err(Error::bad_input(path, "is a directory, not a file"));
        }
        if meta.is_file() && meta.len() > limit {
            return Err(too_large(path, Some(meta.len()), limit));
        }
        read_capped(file, limit, path)?
    };
    read_bytes(&bytes, path, opts)
}

/// All of `reader`, unless it holds more than `limit` bytes.
fn read_capped(reader: impl Read, limit: u64, shown: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(shown, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(shown, None, limit));
    }
    Ok(bytes)
}

fn too_large(shown: &Path, size: Option<u64>, limit: u64) -> Error {
    let size = size.map_or_else(String::new, |s| format!(" {},", human_size(s)));
    let limit = human_size(limit);
    Error::bad_input(
        shown,
        format!("is{size} over the input limit of {limit} (raise it with --max-size)"),
    )
}

/// Parses decoded text in `format` into an article; fails, with the reason, only on an
/// HTML page nested deeper than [`MAX_HTML_DEPTH`].
pub fn parse(text: &str, format: Format) -> std::result::Result<Article, String> {
    let text: Cow<str> = if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(text)
    };
    match format {
        Format::Text | Format::Markdown => {
            let doc = markdown::read(&text, format == Format::Text);
            let (title, meta) = front_matter(doc.front_matter);
            Ok(assemble(doc.blocks, title, meta, TEXT))
        }
        Format::Html => {
            let doc = html::read(&text)?;
            Ok(assemble(doc.blocks, doc.title, doc.metadata, HTML))
        }
    }
}

/// Title and metadata from YAML front matter keys; unknown keys go to `other`.
fn front_matter(pairs: Vec<(String, String)>) -> (Option<String>, Metadata) {
    let mut title = None;
    let mut meta = Metadata::default();
    for (key, value) in pairs {
        let slot = match key.to_lowercase().as_str() {
            "title" | "headline" => &mut title,
            "date" | "published" | "pubdate" | "published_time" => {
                meta.date_iso =
                    heuristics::parse_date(&value).or_else(|| heuristics::iso_prefix(&value));
                &mut meta.date
            }
            "author" | "byline" => &mut meta.author,
            "url" | "source" | "source_url" | "canonical" | "link" => &mut meta.source_url,
            "caption" => &mut meta.caption,
            "credit" => &mut meta.credit,
            _ => {
                meta.other.push((key, value));
                continue;
            }
        };
        *slot = Some(value);
    }
    (title, meta)
}

/// Which article rules apply to a format's blocks.
#[derive(Debug, Clone, Copy)]
struct Rules {
    /// A short first line may be the title (HTML has `<h1>` and `<title>` instead).
    title_from_first_line: bool,
    /// Join paragraphs broken by a stray blank line (a plain-text accident).
    join_broken: bool,
    /// Drop a trailing line that is only a number or one character.
    drop_stray_tail: bool,
}

const TEXT: Rules = Rules {
    title_from_first_line: true,
    join_broken: true,
    drop_stray_tail: true,
};

const HTML: Rules = Rules {
    title_from_first_line: false,
    join_broken: false,
    drop_stray_tail: false,
};

/// Applies the article rules, in this order:
/// 1. a trailing stray line (only a number, or one character) is dropped;
/// 2. the first block is the title when it is a heading or a title-like line
///    (single short line without a final period) and more text follows;
/// 3. right after it, a header zone of dateline / photo caption / byline blocks is taken
///    into metadata, up to the first block that is none of these;
/// 4. without a title so far, the first `#` heading anywhere is the title;
/// 5. labelled lines anywhere ("Original url:" + URL, "Related article: ...",
///    "Photo: ...", "Автор: ...") leave the body for metadata;
/// 6. a paragraph ending without terminal punctuation is joined with a following one
///    that starts in lowercase (a sentence cut by a stray blank line).
fn assemble(blocks: Vec<Block>, title: Option<String>, meta: Metadata, rules: Rules) -> Article {
    let mut blocks = blocks;
    let mut title = title;
    let mut meta = meta;
    if rules.drop_stray_tail {
        while blocks.len() > 1
            && blocks
                .last()
                .is_some_and(|b| heuristics::is_stray(&b.para.text))
        {
            blocks.pop();
        }
    }
    let mut header_end = 0;
    if title.is_none() && rules.title_from_first_line && blocks.len() > 1 {
        let first = &blocks[0];
        if first.level > 0 || heuristics::is_title_like(first) {
            title = Some(first.para.text.clone());
            header_end = 1;
        }
    }
    while header_end < blocks.len() && take_header_block(&blocks[header_end], &mut meta) {
        header_end += 1;
    }
    blocks.drain(..header_end);
    if title.is_none() {
        if let Some(pos) = blocks.iter().position(|b| b.level == 1) {
            title = Some(blocks.remove(pos).para.text);
        }
    }
    let mut body = take_labelled_blocks(blocks, &mut meta);
    if rules.join_broken {
        body = join_broken(body);
    }
    Article {
        title,
        metadata: meta,
        paragraphs: body.into_iter().map(|b| b.para).collect(),
    }
}

/// Takes a dateline, photo caption or byline at the top of an article into `meta`.
fn take_header_block(block: &Block, meta: &mut Metadata) -> bool {
    let text = &block.para.text;
    if block.para.kind != BlockKind::Text {
        return false;
    }
    if meta.date.is_none() {
        if let Some(iso) = heuristics::parse_date(text) {
            meta.date = Some(text.clone());
            meta.date_iso = Some(iso);
            return true;
        }
    }
    if meta.caption.is_none() && meta.credit.is_none() {
        if let Some((caption, credit)) = heuristics::split_caption(&block.para, true) {
            meta.caption = Some(caption).filter(|c| !c.is_empty());
            meta.credit = Some(credit);
            return true;
        }
    }
    if meta.author.is_none() {
        if let Some(name) = heuristics::byline(text) {
            meta.author = Some(name);
            return true;
        }
    }
    false
}

/// Moves labelled lines and photo credits out of the body into `meta`.
fn take_labelled_blocks(blocks: Vec<Block>, meta: &mut Metadata) -> Vec<Block> {
    let mut body = Vec::with_capacity(blocks.len());
    let mut iter = blocks.into_iter().peekable();
    while let Some(block) = iter.next() {
        let para = &block.para;
        if let Some(label) = heuristics::labelled(para) {
            let from = label.value_start;
            match label.kind {
                LabelKind::Source => {
                    // The URL is on the same line, or alone on the next one.
                    let url = match heuristics::url_value(para, from) {
                        Some(url) => Some(url),
                        None if para.text[from..].trim().is_empty() => iter
                            .next_if(|next| heuristics::url_value(&next.para, 0).is_some())
                            .and_then(|next| heuristics::url_value(&next.para, 0)),
                        None => None,
                    };
                    if let Some(url) = url {
                        match meta.source_url {
                            None => meta.source_url = Some(url),
                            Some(_) => meta.other.push((label.label, url)),
                        }
                        continue;
                    }
                }
                LabelKind::Related => {
                    meta.other
                        .push((label.label, heuristics::value_text(para, from)));
                    continue;
                }
                LabelKind::Author if meta.author.is_none() => {
                    let name = heuristics::value_text(para, from);
                    if !name.is_empty() {
                        meta.author = Some(name);
                        continue;
                    }
                }
                LabelKind::Author => {}
            }
        } else if para.kind == BlockKind::Text {
            if let Some((caption, credit)) = heuristics::split_caption(para, false) {
                if meta.caption.is_none() && meta.credit.is_none() {
                    meta.caption = Some(caption).filter(|c| !c.is_empty());
                    meta.credit = Some(credit);
                } else {
                    meta.other.push(("photo".into(), para.text.clone()));
                }
                continue;
            }
        }
        body.push(block);
    }
    body
}

/// Joins each paragraph that ends without terminal punctuation with a next one that
/// starts in lowercase: one paragraph broken by a stray blank line.
fn join_broken(blocks: Vec<Block>) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::with_capacity(blocks.len());
    for b in blocks {
        if let Some(prev) = out.last_mut() {
            let plain = |b: &Block| b.para.kind == BlockKind::Text && b.level == 0;
            if plain(prev)
                && plain(&b)
                && heuristics::ends_open(&prev.para.text)
                && heuristics::starts_lowercase(&b.para.text)
            {
                block::join(prev, b);
                continue;
            }
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests;
