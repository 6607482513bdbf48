//! Bytes → text → [`Article`]: encodings and formats.
//!
//! Plain text is read with the same Markdown-lite rules as `.md` files, because news text
//! files carry Markdown links and bold. After the format's reader has produced blocks,
//! one set of rules (see `heuristics`) takes the title, dateline, photo caption and
//! labelled lines out of the body.

mod block;
mod decode;
mod heuristics;
mod html;
mod markdown;

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use decode::{decode, encoding_from_label, Decoded};
pub use html::MAX_HTML_DEPTH;
pub use markdown::render_markdown;

use self::block::Block;
use self::heuristics::LabelKind;
use super::{Article, BlockKind, Metadata};
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

/// A size for messages: `4.0 MiB`, `12.5 KiB`.
pub fn human_size(bytes: u64) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / MIB)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
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
mod tests {
    use super::*;
    use crate::article::{Paragraph, Style};

    /// Text and Markdown always parse.
    fn parse(text: &str, format: Format) -> Article {
        super::parse(text, format).expect("text parses")
    }

    fn fixture_path(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/articles")
            .join(name)
    }

    fn seed() -> Article {
        read_file(&fixture_path("seed-article.txt"), &ReadOptions::default()).unwrap()
    }

    fn spanned(p: &Paragraph) -> Vec<(&str, &Style)> {
        p.spans
            .iter()
            .map(|s| (&p.text[s.start..s.end], &s.style))
            .collect()
    }

    #[test]
    fn seed_article_title_and_metadata() {
        let a = seed();
        assert_eq!(
            a.title.as_deref(),
            Some("Travel Ban, Oil Supplies on Russia-Belarus Agenda")
        );
        let m = &a.metadata;
        assert_eq!(m.date.as_deref(), Some("September 04, 2020"));
        assert_eq!(m.date_iso.as_deref(), Some("2020-09-04"));
        assert_eq!(m.credit.as_deref(), Some("Natalia Fedosenko / TASS"));
        assert_eq!(
            m.caption.as_deref(),
            Some("Belarusians have been protesting since an Aug. 9 presidential elections they say was rigged.")
        );
        assert_eq!(
            m.source_url.as_deref(),
            Some("https://www.themoscowtimes.com/2020/09/04/travel-ban-oil-supplies-on-russia-belarus-agenda-a7134")
        );
        assert_eq!(
            m.other,
            [(
                "Related article".to_string(),
                "Belarus Leader Replaces Security Chiefs as Russian Prime Minister Visits"
                    .to_string()
            )]
        );
    }

    #[test]
    fn seed_article_body() {
        let a = seed();
        let texts: Vec<&str> = a.paragraphs.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts.len(), 15, "{texts:#?}");
        assert!(texts[0].starts_with("Russia and Belarus are preparing"));
        assert!(texts[14].starts_with("Since the post-election protests"));
        assert!(texts.contains(
            &"Lukashenko noted that “Belarus and Russia have made significant progress in resolving pressing issues.”"
        ));
        assert!(texts
            .iter()
            .any(|t| t.contains("depriving his country of $700 million")));
        assert!(!texts.contains(&"4"));
        assert!(!texts.iter().any(|t| t.contains("Related article")));
        assert!(!texts
            .iter()
            .any(|t| t.contains("Original url") || t.contains("https://")));
        assert!(a.paragraphs.iter().all(|p| p.kind == BlockKind::Text));
        let link = Style::Link { url: "#".into() };
        assert_eq!(spanned(&a.paragraphs[0]), [("outlets reported", &link)]);
    }

    #[test]
    fn seed_paragraphs_round_trip_through_markdown() {
        for p in seed().paragraphs {
            let md = render_markdown(&p.text, &p.spans);
            let back = parse(&format!("{md}\n"), Format::Markdown);
            assert_eq!(back.paragraphs.len(), 1, "{md}");
            assert_eq!(back.paragraphs[0].text, p.text, "{md}");
            assert_eq!(back.paragraphs[0].spans, p.spans, "{md}");
        }
    }

    #[test]
    fn wmt22_russian_article_in_legacy_encodings() {
        let path = fixture_path("wmt22-ru-lenta.ru.89832.txt");
        let utf8 = std::fs::read_to_string(&path).unwrap();
        for enc in [encoding_rs::WINDOWS_1251, encoding_rs::KOI8_R] {
            let (bytes, _, _) = enc.encode(&utf8);
            let a = read_bytes(&bytes, &path, &ReadOptions::default()).unwrap();
            assert_eq!(
                a.title.as_deref(),
                Some("В аэропорту из контейнера сбежали два льва")
            );
            assert_eq!(a.paragraphs.len(), 1);
            assert!(a.paragraphs[0]
                .text
                .starts_with("В сингапурском аэропорту Чанги"));
        }
    }

    #[test]
    fn header_rules_in_russian() {
        let text = "Заголовок новости\n\n4 сентября 2020 г.\n\nАвтор: Иван Петров\n\n\
                    Первый абзац текста.\n\nЧитайте также: [Другая новость](https://ria.ru/2)\n\n\
                    Второй абзац без точки\n\nпродолжается здесь.\n\nМитинг в Минске. Фото: ТАСС\n\n\
                    Источник: https://ria.ru/1";
        let a = parse(text, Format::Text);
        assert_eq!(a.title.as_deref(), Some("Заголовок новости"));
        assert_eq!(a.metadata.date.as_deref(), Some("4 сентября 2020 г."));
        assert_eq!(a.metadata.date_iso.as_deref(), Some("2020-09-04"));
        assert_eq!(a.metadata.author.as_deref(), Some("Иван Петров"));
        assert_eq!(a.metadata.caption.as_deref(), Some("Митинг в Минске."));
        assert_eq!(a.metadata.credit.as_deref(), Some("ТАСС"));
        assert_eq!(a.metadata.source_url.as_deref(), Some("https://ria.ru/1"));
        assert_eq!(
            a.metadata.other,
            [(
                "Читайте также".to_string(),
                "Другая новость (https://ria.ru/2)".to_string()
            )]
        );
        let texts: Vec<&str> = a.paragraphs.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Первый абзац текста.",
                "Второй абзац без точки продолжается здесь."
            ]
        );
    }

    #[test]
    fn title_rules() {
        // A first line that reads like a sentence is body, not title.
        let a = parse("It rained today.\n\nMore text.", Format::Text);
        assert_eq!(a.title, None);
        assert_eq!(a.paragraphs.len(), 2);
        // A lone short line is text, not a title of nothing.
        let a = parse("Just one line", Format::Text);
        assert_eq!(a.title, None);
        assert_eq!(a.paragraphs[0].text, "Just one line");
        // `#` headings: the first is the title, later ones are sub-headings.
        let a = parse(
            "# Main\n\n2020-09-04\n\nBody.\n\n## Part two\n\nMore.",
            Format::Markdown,
        );
        assert_eq!(a.title.as_deref(), Some("Main"));
        assert_eq!(a.metadata.date_iso.as_deref(), Some("2020-09-04"));
        assert_eq!(a.paragraphs[1].kind, BlockKind::Heading);
        // A first heading after a long lead-in is still the title.
        let a = parse(
            "A long lead-in sentence.\n\n# Headline\n\nBody.",
            Format::Markdown,
        );
        assert_eq!(a.title.as_deref(), Some("Headline"));
        assert_eq!(a.paragraphs.len(), 2);
    }

    #[test]
    fn front_matter_sets_title_and_metadata() {
        let md = "---\ntitle: Headline\ndate: 2020-09-04T10:00:00Z\nurl: https://x.ru/a\n\
                  lang: ru\n---\n\nShort line\n\nBody.";
        let a = parse(md, Format::Markdown);
        assert_eq!(a.title.as_deref(), Some("Headline"));
        assert_eq!(a.metadata.date_iso.as_deref(), Some("2020-09-04"));
        assert_eq!(a.metadata.source_url.as_deref(), Some("https://x.ru/a"));
        assert_eq!(a.metadata.other, [("lang".to_string(), "ru".to_string())]);
        // The title came from the front matter, so the short first line stays body.
        assert_eq!(a.paragraphs.len(), 2);
    }

    #[test]
    fn lists_quotes_and_no_join_across_kinds() {
        let a = parse(
            "Title\n\nIntro:\n\n- first\n- second\n\n> a quote\n\nlower start.",
            Format::Text,
        );
        let kinds: Vec<_> = a
            .paragraphs
            .iter()
            .map(|p| (p.text.as_str(), p.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("Intro:", BlockKind::Text),
                ("first", BlockKind::ListItem),
                ("second", BlockKind::ListItem),
                ("a quote", BlockKind::Quote),
                ("lower start.", BlockKind::Text),
            ]
        );
    }

    #[test]
    fn stray_tail_only_at_the_end() {
        let a = parse("Title\n\n5\n\nBody text.\n\nx", Format::Text);
        let texts: Vec<&str> = a.paragraphs.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, ["5", "Body text."]);
    }

    const PAGE: &str = r##"<!DOCTYPE html>
<html><head>
<title>Travel Ban | The Moscow Times</title>
<meta property="og:title" content="OG title">
<meta property="article:published_time" content="2020-09-04T10:00:00+03:00">
<meta name="author" content="Staff Writer">
<link rel="canonical" href="https://www.themoscowtimes.com/2020/09/04/a7134">
<style>p { color: red }</style>
</head><body>
<header><nav><a href="/">Home</a></nav><p>Subscribe now</p></header>
<article>
  <h1>Travel Ban, Oil Supplies on Russia-Belarus Agenda</h1>
  <figure><img src="x.jpg"><figcaption>Protests in Minsk. <span class="credit">Natalia Fedosenko / TASS</span></figcaption></figure>
  <p>Russia and Belarus are <em>preparing</em> to reopen, news
     <a href="https://example.com/r">outlets reported</a> &amp; <strong>more</strong>.</p>
  <h2>Oil</h2>
  <p>Second<br>line.</p>
  <ul><li>item <b>one</b></li></ul>
  <blockquote><p>A quote.</p></blockquote>
  <aside><p>Related junk</p></aside>
  <script>var x = "<p>not text</p>";</script>
  <p>Related article: <a href="#">Other story</a></p>
</article>
<footer><p>© 2020</p></footer>
</body></html>"##;

    #[test]
    fn html_page() {
        let a = read_bytes(
            PAGE.as_bytes(),
            Path::new("page.html"),
            &ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(
            a.title.as_deref(),
            Some("Travel Ban, Oil Supplies on Russia-Belarus Agenda")
        );
        let m = &a.metadata;
        assert_eq!(m.date.as_deref(), Some("2020-09-04T10:00:00+03:00"));
        assert_eq!(m.date_iso.as_deref(), Some("2020-09-04"));
        assert_eq!(m.author.as_deref(), Some("Staff Writer"));
        assert_eq!(
            m.source_url.as_deref(),
            Some("https://www.themoscowtimes.com/2020/09/04/a7134")
        );
        assert_eq!(m.caption.as_deref(), Some("Protests in Minsk."));
        assert_eq!(m.credit.as_deref(), Some("Natalia Fedosenko / TASS"));
        assert_eq!(
            m.other,
            [("Related article".to_string(), "Other story".to_string())]
        );
        let got: Vec<_> = a
            .paragraphs
            .iter()
            .map(|p| (p.text.as_str(), p.kind))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "Russia and Belarus are preparing to reopen, news outlets reported & more.",
                    BlockKind::Text
                ),
                ("Oil", BlockKind::Heading),
                ("Second line.", BlockKind::Text),
                ("item one", BlockKind::ListItem),
                ("A quote.", BlockKind::Quote),
            ]
        );
        let link = Style::Link {
            url: "https://example.com/r".into(),
        };
        assert_eq!(
            spanned(&a.paragraphs[0]),
            [
                ("preparing", &Style::Emphasis),
                ("outlets reported", &link),
                ("more", &Style::Strong)
            ]
        );
        assert_eq!(spanned(&a.paragraphs[3]), [("one", &Style::Strong)]);
    }

    #[test]
    fn html_title_fallbacks_and_sniffing() {
        let og = "<html><head><meta property=\"og:title\" content=\"OG  title\"></head>\
                  <body><p>Text.</p><time datetime=\"2021-05-01\">1 мая 2021</time></body></html>";
        let a = read_bytes(og.as_bytes(), Path::new("-"), &ReadOptions::default()).unwrap();
        assert_eq!(a.title.as_deref(), Some("OG title"));
        assert_eq!(a.metadata.date.as_deref(), Some("1 мая 2021"));
        assert_eq!(a.metadata.date_iso.as_deref(), Some("2021-05-01"));
        assert_eq!(Format::sniff("  <!DOCTYPE html><p>x"), Format::Html);
        assert_eq!(
            Format::sniff("<?xml version=\"1.0\"?>\n<!-- saved -->\n<HTML lang=ru>"),
            Format::Html
        );
        assert_eq!(Format::sniff("About the <html> tag"), Format::Text);
        assert_eq!(Format::sniff("Title\n\n<b>bold</b> text"), Format::Text);
        assert_eq!(Format::from_path(Path::new("a/b.HTM")), Some(Format::Html));
        assert_eq!(
            Format::from_path(Path::new("a/b.markdown")),
            Some(Format::Markdown)
        );
        assert_eq!(Format::from_path(Path::new("a/b.text")), Some(Format::Text));
        assert_eq!(Format::from_path(Path::new("-")), None);
        assert_eq!("md".parse::<Format>().unwrap(), Format::Markdown);
        assert!("pdf".parse::<Format>().is_err());
        // A forced format wins over the extension.
        let opts = ReadOptions {
            format: Some(Format::Text),
            ..ReadOptions::default()
        };
        let a = read_bytes(
            b"<p>Not parsed as HTML</p>\n\nSecond.",
            Path::new("x.html"),
            &opts,
        )
        .unwrap();
        assert_eq!(a.paragraphs[0].text, "Not parsed as HTML");
    }

    fn bad_input(err: Error) -> (PathBuf, String) {
        match err {
            Error::BadInput { path, reason } => (path, reason),
            other => panic!("expected BadInput, got {other:?}"),
        }
    }

    #[test]
    fn file_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.txt");
        match read_file(&missing, &ReadOptions::default()) {
            Err(Error::Io { path, .. }) => assert_eq!(path, missing),
            other => panic!("expected Io error, got {other:?}"),
        }
        let (path, why) = bad_input(read_file(dir.path(), &ReadOptions::default()).unwrap_err());
        assert_eq!(
            (path.as_path(), why.as_str()),
            (dir.path(), "is a directory, not a file")
        );
        let empty = dir.path().join("empty.md");
        std::fs::write(&empty, "\n \n").unwrap();
        let (path, why) = bad_input(read_file(&empty, &ReadOptions::default()).unwrap_err());
        assert_eq!((path, why.as_str()), (empty, "is empty"));
        let (path, why) = bad_input(
            read_bytes(b"\0\x01binary", Path::new("-"), &ReadOptions::default()).unwrap_err(),
        );
        assert_eq!(path, PathBuf::from("<stdin>"));
        assert_eq!(why, "looks like a binary file, not text");
        let no_text = b"<html><body><nav>Menu</nav><script>x()</script></body></html>";
        let (_, why) = bad_input(
            read_bytes(no_text, Path::new("p.html"), &ReadOptions::default()).unwrap_err(),
        );
        assert_eq!(why, "has no article text (read as html)");
    }

    #[test]
    fn crlf_text_parses_like_lf() {
        let lf = std::fs::read_to_string(fixture_path("seed-article.txt")).unwrap();
        assert_eq!(parse(&lf.replace('\n', "\r\n"), Format::Text), seed());
    }

    /// All 80 WMT22 news documents in each language (headline, blank line, body lines),
    /// from tests/fixtures/news-wmt22: the headline is the title, every body line a
    /// paragraph, no metadata invented; the Russian ones also read back from cp1251
    /// and KOI8-R.
    #[test]
    fn wmt22_corpus_structure_and_encodings() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/news-wmt22");
        let mut docs = 0;
        for lang in ["ru", "en"] {
            for entry in std::fs::read_dir(root.join(lang)).unwrap() {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                let headline = text.lines().next().unwrap().trim();
                let body_lines = text
                    .lines()
                    .skip(1)
                    .filter(|l| !l.trim().is_empty())
                    .count();
                let mut inputs = vec![(text.clone().into_bytes(), encoding_rs::UTF_8)];
                if lang == "ru" {
                    for enc in [encoding_rs::WINDOWS_1251, encoding_rs::KOI8_R] {
                        inputs.push((enc.encode(&text).0.into_owned(), enc));
                    }
                }
                for (bytes, enc) in inputs {
                    let decoded = decode(&bytes, None, &path).unwrap();
                    assert_eq!(decoded.encoding, enc, "{}", path.display());
                    let a = parse(&decoded.text, Format::Text);
                    assert_eq!(a.title.as_deref(), Some(headline), "{}", path.display());
                    assert_eq!(a.paragraphs.len(), body_lines, "{}", path.display());
                    assert_eq!(a.metadata, Metadata::default(), "{}", path.display());
                }
                docs += 1;
            }
        }
        assert_eq!(docs, 160);
    }
}
