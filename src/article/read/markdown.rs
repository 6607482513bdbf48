//! Markdown (and plain text read as Markdown-lite) → blocks with inline spans, and spans
//! back to Markdown.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::block::{Block, BlockBuilder};
use crate::article::{BlockKind, Span, Style};

/// A Markdown document as blocks, plus its YAML front matter as (key, value) pairs.
pub(super) struct MarkdownDoc {
    pub blocks: Vec<Block>,
    pub front_matter: Vec<(String, String)>,
}

/// Reads a Markdown document. With `plain`, leading indentation is removed first:
/// plain text often indents paragraphs, which Markdown would read as code blocks.
pub(super) fn read(text: &str, plain: bool) -> MarkdownDoc {
    let dedented;
    let src = if plain {
        dedented = text
            .lines()
            .map(str::trim_start)
            .collect::<Vec<_>>()
            .join("\n");
        dedented.as_str()
    } else {
        text
    };
    let mut walker = Walker::default();
    let options = Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    for (event, range) in Parser::new_ext(src, options).into_offset_iter() {
        let single_line = !src[range].trim_end().contains('\n');
        walker.event(event, single_line);
    }
    walker.flush();
    MarkdownDoc {
        blocks: walker.blocks,
        front_matter: walker
            .front_matter
            .as_deref()
            .map(key_values)
            .unwrap_or_default(),
    }
}

/// `key: value` lines of simple YAML front matter; quotes around values are dropped and
/// anything more complex (lists, nesting) is skipped.
fn key_values(yaml: &str) -> Vec<(String, String)> {
    yaml.lines()
        .filter(|line| !line.starts_with([' ', '\t', '-', '#']))
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_owned(), unquoted.trim().to_owned())
        })
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .collect()
}

/// State while walking pulldown-cmark events.
#[derive(Default)]
struct Walker {
    blocks: Vec<Block>,
    cur: Option<BlockBuilder>,
    quote_depth: usize,
    item_depth: usize,
    image_depth: usize,
    /// Open inline markup: style and where it started in the current block.
    inline: Vec<(Style, usize)>,
    /// YAML front matter text, once its block has started.
    front_matter: Option<String>,
    in_front_matter: bool,
}

impl Walker {
    fn context_kind(&self) -> BlockKind {
        if self.quote_depth > 0 {
            BlockKind::Quote
        } else if self.item_depth > 0 {
            BlockKind::ListItem
        } else {
            BlockKind::Text
        }
    }

    fn flush(&mut self) {
        if let Some(block) = self.cur.take().and_then(BlockBuilder::finish) {
            self.blocks.push(block);
        }
        self.inline.clear();
    }

    fn start_block(&mut self, kind: BlockKind, level: u8, single_line: bool) {
        self.flush();
        self.cur = Some(BlockBuilder::new(kind, level, single_line));
    }

    /// The open block; text outside any (tight list items) opens one.
    fn cur(&mut self) -> &mut BlockBuilder {
        let kind = self.context_kind();
        self.cur
            .get_or_insert_with(|| BlockBuilder::new(kind, 0, false))
    }

    fn push_text(&mut self, text: &str) {
        if self.image_depth == 0 {
            self.cur().push_text(text);
        }
    }

    fn open_inline(&mut self, style: Style) {
        let start = self.cur().mark();
        self.inline.push((style, start));
    }

    fn close_inline(&mut self) {
        if let Some((style, start)) = self.inline.pop() {
            self.cur().add_span(start, style);
        }
    }

    fn event(&mut self, event: Event<'_>, single_line: bool) {
        match event {
            Event::Start(tag) => self.start(tag, single_line),
            Event::End(tag) => self.end(tag),
            Event::Text(text) if self.in_front_matter => {
                self.front_matter.get_or_insert_default().push_str(&text)
            }
            Event::Text(text) => self.push_text(&text),
            Event::Code(code) => {
                let start = self.cur().mark();
                self.push_text(&code);
                self.cur().add_span(start, Style::Code);
            }
            Event::SoftBreak | Event::HardBreak => self.push_text(" "),
            // Block HTML keeps its text, without tags.
            Event::Html(html) => self.push_text(&strip_tags(&html)),
            Event::InlineHtml(tag) if is_line_break(&tag) => self.push_text(" "),
            Event::Rule => self.flush(),
            _ => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>, single_line: bool) {
        match tag {
            Tag::Paragraph => self.start_block(self.context_kind(), 0, single_line),
            Tag::Heading { level, .. } => {
                self.start_block(BlockKind::Heading, heading_level(level), single_line)
            }
            Tag::CodeBlock(_) => self.start_block(self.context_kind(), 0, false),
            Tag::MetadataBlock(_) => {
                self.flush();
                self.in_front_matter = true;
            }
            Tag::HtmlBlock => self.start_block(self.context_kind(), 0, false),
            Tag::BlockQuote(_) => {
                self.flush();
                self.quote_depth += 1;
            }
            Tag::Item => {
                self.flush();
                self.item_depth += 1;
            }
            Tag::List(_) => self.flush(),
            Tag::Emphasis => self.open_inline(Style::Emphasis),
            Tag::Strong => self.open_inline(Style::Strong),
            Tag::Link { dest_url, .. } => self.open_inline(Style::Link {
                url: dest_url.into_string(),
            }),
            Tag::Image { .. } => self.image_depth += 1,
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::Heading(_) | TagEnd::HtmlBlock | TagEnd::List(_) => {
                self.flush()
            }
            TagEnd::CodeBlock => {
                // Code is never translated: the whole block is one code span.
                if let Some(cur) = self.cur.as_mut() {
                    cur.add_span(0, Style::Code);
                }
                self.flush();
            }
            TagEnd::BlockQuote(_) => {
                self.flush();
                self.quote_depth = self.quote_depth.saturating_sub(1);
            }
            TagEnd::Item => {
                self.flush();
                self.item_depth = self.item_depth.saturating_sub(1);
            }
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Link => self.close_inline(),
            TagEnd::Image => self.image_depth = self.image_depth.saturating_sub(1),
            TagEnd::MetadataBlock(_) => self.in_front_matter = false,
            _ => {}
        }
    }
}

fn heading_level(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

fn is_line_break(tag: &str) -> bool {
    let name = tag.trim_start_matches('<').trim_start();
    name.len() >= 2 && name[..2].eq_ignore_ascii_case("br")
}

/// Text of an HTML fragment with its tags replaced by spaces.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// `text` with its spans put back as Markdown, escaped so that reading it back gives the
/// same text and spans. Spans should nest as [`parse`](super::parse) makes them; a span
/// crossing the end of an enclosing one is cut at that end.
pub fn render_markdown(text: &str, spans: &[Span]) -> String {
    let order = Span::in_nesting_order(text, spans);
    let mut out = String::with_capacity(text.len() + 16);
    // Open spans: the Markdown that closes each, and where it ends.
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut next = 0;
    let mut pos = 0;
    loop {
        while open.last().is_some_and(|(_, end)| *end <= pos) {
            if let Some((close, _)) = open.pop() {
                out.push_str(&close);
            }
        }
        if let Some(span) = order.get(next).filter(|s| s.start <= pos) {
            next += 1;
            if span.start < pos {
                continue; // started inside a code span, which cannot hold markup
            }
            let end = open.last().map_or(span.end, |(_, e)| span.end.min(*e));
            match &span.style {
                Style::Code => {
                    out.push_str(&code_span(&text[pos..end]));
                    pos = end;
                }
                Style::Link { url } if is_autolink(&text[pos..end], url) => {
                    out.push('<');
                    out.push_str(url);
                    out.push('>');
                    pos = end;
                }
                Style::Link { url } => {
                    out.push('[');
                    open.push((format!("]({})", link_destination(url)), end));
                }
                Style::Strong => {
                    out.push_str("**");
                    open.push(("**".into(), end));
                }
                Style::Emphasis => {
                    out.push('*');
                    open.push(("*".into(), end));
                }
            }
            continue;
        }
        if pos >= text.len() {
            break;
        }
        let boundary = order[next..]
            .iter()
            .map(|s| s.start)
            .chain(open.iter().map(|(_, end)| *end))
            .filter(|&b| b > pos)
            .min()
            .unwrap_or(text.len())
            .min(text.len());
        let link_follows = order[next..]
            .iter()
            .any(|s| s.start == boundary && matches!(s.style, Style::Link { .. }));
        escape_into(&mut out, text, (pos, boundary), link_follows);
        pos = boundary;
    }
    out
}

/// A link whose text is its own absolute http(s) URL reads back from `<url>`.
fn is_autolink(text: &str, url: &str) -> bool {
    text == url
        && (url.starts_with("http://") || url.starts_with("https://"))
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
}

fn link_destination(url: &str) -> String {
    if url
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '(' | ')' | '<' | '>'))
        || url.is_empty()
    {
        let mut out = String::from("<");
        for c in url.chars() {
            if matches!(c, '<' | '>' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('>');
        out
    } else {
        url.replace('\\', "\\\\")
    }
}

/// A code span whose fence is longer than any backtick run inside it.
fn code_span(code: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in code.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    // CommonMark strips one space from each side when both are there, and a backtick at
    // either edge would join the fence: pad in those cases.
    let pad = code.starts_with('`')
        || code.ends_with('`')
        || (code.starts_with(' ') && code.ends_with(' ') && !code.trim().is_empty());
    let pad = if pad { " " } else { "" };
    format!("{fence}{pad}{code}{pad}{fence}")
}

/// Escapes `text[from..to]` so Markdown reads it as plain text; `link_follows` says a
/// link opens right after, so a final `!` would make it an image.
fn escape_into(out: &mut String, text: &str, (from, to): (usize, usize), link_follows: bool) {
    let prev_char = |i: usize| text[..i].chars().next_back();
    // "2020. Text" at the start would read as an ordered list item.
    let list_number_end = {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let marker = matches!(text.as_bytes().get(digits), Some(b'.' | b')'))
            && matches!(text.as_bytes().get(digits + 1), None | Some(b' '));
        ((1..=9).contains(&digits) && marker).then_some(digits)
    };
    for (offset, c) in text[from..to].char_indices() {
        let i = from + offset;
        let next = text[i + c.len_utf8()..].chars().next();
        let escape = match c {
            '\\' | '`' | '*' | '[' | ']' | '<' => true,
            // Only at a word edge can `_` open or close emphasis.
            '_' => {
                !prev_char(i).is_some_and(char::is_alphanumeric)
                    || !next.is_some_and(char::is_alphanumeric)
            }
            '!' => next == Some('[') || (i + 1 == to && link_follows),
            '&' => looks_like_entity(&text[i..]),
            '#' | '>' => i == 0,
            '-' | '+' => i == 0 && next.is_none_or(|n| n == ' '),
            '.' | ')' => list_number_end == Some(i),
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
}

/// `&name;` or `&#123;`, which Markdown would turn into a character.
fn looks_like_entity(s: &str) -> bool {
    let body: String = s[1..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '#')
        .collect();
    !body.is_empty() && s[1 + body.len()..].starts_with(';')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> Block {
        let mut b = read(src, false).blocks;
        assert_eq!(b.len(), 1, "{src:?} → {b:?}");
        b.remove(0)
    }

    fn spanned(block: &Block) -> Vec<(&str, &Style)> {
        let t = &block.para.text;
        block
            .para
            .spans
            .iter()
            .map(|s| (&t[s.start..s.end], &s.style))
            .collect()
    }

    fn link(url: &str) -> Style {
        Style::Link { url: url.into() }
    }

    #[test]
    fn inline_markup_becomes_spans() {
        let b = one("News [outlets reported](#) **bold *both*** `a*b` <https://x.ru/a> \\$700");
        assert_eq!(
            b.para.text,
            "News outlets reported bold both a*b https://x.ru/a $700"
        );
        assert_eq!(
            spanned(&b),
            vec![
                ("outlets reported", &link("#")),
                ("bold both", &Style::Strong),
                ("both", &Style::Emphasis),
                ("a*b", &Style::Code),
                ("https://x.ru/a", &link("https://x.ru/a")),
            ]
        );
    }

    #[test]
    fn block_kinds() {
        let src = "# Title\n\n## Sub\n\n- one\n- two\n\n> quoted\n> text\n\n1. first\n\n   second para\n\nAfter.\n\n    code  block\n\nplain <br> text";
        let got: Vec<_> = read(src, false)
            .blocks
            .into_iter()
            .map(|b| (b.para.text, b.para.kind, b.level))
            .collect();
        use BlockKind::*;
        let want = [
            ("Title", Heading, 1),
            ("Sub", Heading, 2),
            ("one", ListItem, 0),
            ("two", ListItem, 0),
            ("quoted text", Quote, 0),
            ("first", ListItem, 0),
            ("second para", ListItem, 0),
            ("After.", Text, 0),
            ("code block", Text, 0),
            ("plain text", Text, 0),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(t, k, l)| (t.to_string(), *k, *l))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn plain_text_indentation_is_not_code() {
        let b = read("    Indented paragraph\n    goes on.", true).blocks;
        assert_eq!(b[0].para.text, "Indented paragraph goes on.");
        assert!(b[0].para.spans.is_empty());
        assert!(!b[0].single_line);
    }

    #[test]
    fn front_matter_is_key_values() {
        let doc = read(
            "---\ntitle: \"A: headline\"\ndate: 2020-09-04\ntags:\n  - x\n---\n\nBody.",
            false,
        );
        assert_eq!(
            doc.front_matter,
            [
                ("title".to_string(), "A: headline".to_string()),
                ("date".to_string(), "2020-09-04".to_string())
            ]
        );
        assert_eq!(doc.blocks.len(), 1);
        assert_eq!(doc.blocks[0].para.text, "Body.");
    }

    #[test]
    fn images_are_dropped() {
        let b = one("Before ![a photo](p.jpg) after");
        assert_eq!(b.para.text, "Before after");
    }

    fn round_trip(text: &str, spans: &[Span]) {
        let md = render_markdown(text, spans);
        let back = one(&md);
        assert_eq!(back.para.text, text, "via {md:?}");
        assert_eq!(back.para.spans, spans, "via {md:?}");
    }

    fn span(start: usize, end: usize, style: Style) -> Span {
        Span { start, end, style }
    }

    #[test]
    fn render_round_trips_markup_and_escapes() {
        let text = "Prices: $700 *not* [bracketed] snake_case _x_ a\\b <tag> & &amp; `tick` Wow!";
        round_trip(text, &[]);
        round_trip("# not a heading", &[]);
        round_trip("- not a list", &[]);
        round_trip("2020. Not a list", &[]);
        round_trip("> not a quote", &[]);
        let t = "news outlets reported a x* b c https://x.ru/a d";
        let at = |needle: &str| {
            let start = t.find(needle).unwrap();
            (start, start + needle.len())
        };
        let with = |(start, end): (usize, usize), style: Style| span(start, end, style);
        round_trip(
            t,
            &[
                with(at("outlets reported"), link("#")),
                with(at("outlets"), Style::Strong),
                with(at("reported"), Style::Emphasis),
                with(at("x*"), Style::Code),
                with(at("https://x.ru/a"), link("https://x.ru/a")),
                span(t.len() - 1, t.len(), link("https://e.com/a b(c)")),
            ],
        );
    }

    #[test]
    fn render_seed_style_paragraph() {
        let b = one("Mishustin [said](#) in **televised** remarks, \\$700.");
        assert_eq!(
            render_markdown(&b.para.text, &b.para.spans),
            "Mishustin [said](#) in **televised** remarks, $700."
        );
    }
}
