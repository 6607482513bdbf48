//! HTML pages → headline, metadata and body blocks (with links and emphasis as spans).

use std::cell::Cell;

use html5ever::buffer_queue::BufferQueue;
use html5ever::interface::Tracer;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts};
use html5ever::tree_builder::{TreeBuilder, TreeBuilderOpts, TreeSink};
use html5ever::TokenizerResult;
use scraper::{ElementRef, Html, HtmlTreeSink, Node, Selector};

use super::block::{Block, BlockBuilder};
use super::heuristics::{iso_prefix, parse_date, split_caption};
use crate::article::{BlockKind, Metadata, Style};

/// What an HTML page gives before the shared article rules run.
pub(super) struct HtmlDoc {
    pub title: Option<String>,
    pub metadata: Metadata,
    pub blocks: Vec<Block>,
}

/// Elements whose content is never article text.
const DROPPED: &[&str] = &[
    "script",
    "style",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "noscript",
    "figure",
    "figcaption",
    "template",
    "svg",
    "iframe",
    "button",
    "select",
    "textarea",
    "object",
    "video",
    "audio",
    "canvas",
    "dialog",
    "head",
];

/// Elements whose text becomes a paragraph; text elsewhere (bare `div`s) is page chrome
/// more often than article.
const BLOCKS: &[&str] = &[
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "blockquote",
    "pre",
    "dt",
    "dd",
];

/// Containers that also make paragraphs when a page has no paragraph elements at all
/// (text in bare `div`s, paragraphs split by `<br><br>`).
const LOOSE_BLOCKS: &[&str] = &[
    "div", "section", "article", "main", "body", "table", "tr", "td", "th", "center",
];

fn selector(css: &'static str) -> Selector {
    // Only constant selectors reach here; the unit tests parse every one.
    Selector::parse(css).unwrap_or_else(|e| panic!("bad built-in selector {css}: {e}"))
}

/// Deepest nesting of open elements a page may have. The HTML tree builder searches
/// its stack of open elements for most tags, so parsing time grows with depth times
/// length: 200,000 nested `<div>`s took minutes. Browsers cap the depth too (Blink
/// flattens below 512); real pages stay under a hundred.
pub const MAX_HTML_DEPTH: usize = 512;

/// Reads a page: headline from `<h1>` (else og:title, else `<title>`), body from
/// `<article>` or `<main>` when present (else `<body>`), metadata from meta tags.
/// Fails, with the reason, on a page nested deeper than [`MAX_HTML_DEPTH`].
pub(super) fn read(text: &str) -> Result<HtmlDoc, String> {
    let doc = parse_document(text)?;
    let root = content_root(&doc);
    let title = headline(&doc, root);
    let mut blocks = Walker::default().walk(root);
    if blocks.is_empty() {
        let loose = Walker {
            loose: true,
            ..Walker::default()
        };
        blocks = loose.walk(root);
    }
    // The headline is metadata, not body: drop its `<h1>` block once.
    if let Some(pos) = blocks
        .iter()
        .position(|b| b.level == 1 && Some(&b.para.text) == title.as_ref())
    {
        blocks.remove(pos);
    }
    Ok(HtmlDoc {
        title,
        metadata: metadata(&doc, root),
        blocks,
    })
}

/// `Html::parse_document`, stopped as soon as the page nests deeper than
/// [`MAX_HTML_DEPTH`].
fn parse_document(text: &str) -> Result<Html, String> {
    let builder = TreeBuilder::new(
        HtmlTreeSink::new(Html::new_document()),
        TreeBuilderOpts::default(),
    );
    let tokenizer = Tokenizer::new(DepthGuard::new(builder), TokenizerOpts::default());
    let input = BufferQueue::default();
    // A tendril holds at most 4 GiB; pieces also keep the copies small.
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(1 << 20);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        input.push_back(StrTendril::from_slice(&rest[..cut]));
        rest = &rest[cut..];
    }
    loop {
        match tokenizer.feed(&input) {
            TokenizerResult::Done => break,
            _ if tokenizer.sink.too_deep.get() => {
                return Err(format!(
                    "nests HTML elements more than {MAX_HTML_DEPTH} deep, which svodka does \
                     not read"
                ))
            }
            _ => {}
        }
    }
    tokenizer.end();
    Ok(tokenizer.sink.builder.sink.finish())
}

/// Passes tokens to the tree builder and pauses the tokenizer once the builder holds
/// more than [`MAX_HTML_DEPTH`] open elements.
struct DepthGuard {
    builder: TreeBuilder<Handle, HtmlTreeSink>,
    tags: Cell<u32>,
    too_deep: Cell<bool>,
}

/// The node handle of scraper's tree.
type Handle = <HtmlTreeSink as TreeSink>::Handle;

/// Counts the handles the tree builder holds: its open elements, its active formatting
/// elements (both lists it searches) and a few single ones.
#[derive(Default)]
struct HandleCount(Cell<usize>);

impl Tracer for HandleCount {
    type Handle = Handle;

    fn trace_handle(&self, _node: &Handle) {
        self.0.set(self.0.get() + 1);
    }
}

impl DepthGuard {
    /// Tags between two counts: a count costs about what one tag's stack search does.
    const CHECK_EVERY: u32 = 16;

    fn new(builder: TreeBuilder<Handle, HtmlTreeSink>) -> Self {
        DepthGuard {
            builder,
            tags: Cell::new(0),
            too_deep: Cell::new(false),
        }
    }

    /// Pauses the tokenizer (as a script would; `parse_document` then stops), or, where
    /// it cannot pause, passes over the token.
    fn pause_after(&self, tag: bool) -> TokenSinkResult<Handle> {
        if tag {
            TokenSinkResult::Script(self.builder.sink.get_document())
        } else {
            TokenSinkResult::Continue
        }
    }
}

impl TokenSink for DepthGuard {
    type Handle = Handle;

    fn process_token(&self, token: Token, line_number: u64) -> TokenSinkResult<Handle> {
        // The tokenizer accepts a pause only after a tag (it asserts so for the rest).
        let tag = matches!(token, Token::TagToken(_));
        if self.too_deep.get() {
            return self.pause_after(tag);
        }
        let result = self.builder.process_token(token, line_number);
        if tag {
            let n = self.tags.get().wrapping_add(1);
            self.tags.set(n);
            if n % Self::CHECK_EVERY == 0 {
                let count = HandleCount::default();
                self.builder.trace_handles(&count);
                if count.0.get() > MAX_HTML_DEPTH {
                    self.too_deep.set(true);
                    return self.pause_after(tag);
                }
            }
        }
        result
    }

    fn end(&self) {
        self.builder.end();
    }

    fn adjusted_current_node_present_but_not_in_html_namespace(&self) -> bool {
        self.builder
            .adjusted_current_node_present_but_not_in_html_namespace()
    }
}

/// The `<article>` with the most paragraph text, else `<main>`, else `<body>`.
fn content_root(doc: &Html) -> ElementRef<'_> {
    let p = selector("p");
    let text_len = |el: &ElementRef| {
        el.select(&p)
            .map(|p| p.text().map(str::len).sum::<usize>())
            .sum::<usize>()
    };
    doc.select(&selector("article"))
        .max_by_key(text_len)
        .or_else(|| doc.select(&selector("main")).next())
        .or_else(|| doc.select(&selector("body")).next())
        .unwrap_or_else(|| doc.root_element())
}

fn normalized(text: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let mut b = BlockBuilder::new(BlockKind::Text, 0, true);
    for t in text {
        b.push_text(t.as_ref());
    }
    b.finish().map(|b| b.para.text).unwrap_or_default()
}

fn is_dropped(el: &ElementRef) -> bool {
    DROPPED.contains(&el.value().name()) || el.value().attr("hidden").is_some()
}

fn headline(doc: &Html, root: ElementRef) -> Option<String> {
    let h1 = selector("h1");
    // A page's own header may hold the headline, but never its nav or sidebars.
    let in_chrome = |el: &ElementRef| {
        el.ancestors()
            .filter_map(ElementRef::wrap)
            .any(|a| matches!(a.value().name(), "nav" | "aside" | "footer" | "form"))
    };
    root.select(&h1)
        .chain(doc.select(&h1))
        .filter(|el| !in_chrome(el))
        .map(|el| normalized(el.text()))
        .find(|t| !t.is_empty())
        .or_else(|| {
            meta_content(
                doc,
                &["meta[property='og:title']", "meta[name='twitter:title']"],
            )
        })
        .or_else(|| {
            let title = normalized(doc.select(&selector("title")).next()?.text());
            // "Headline | Site Name": the site name is not part of the headline.
            let head = title.rsplit_once(" | ").map_or(title.as_str(), |(h, _)| h);
            Some(head.trim().to_owned()).filter(|t| !t.is_empty())
        })
}

/// The first non-empty `content` of the meta tags matched by `selectors`.
fn meta_content(doc: &Html, selectors: &[&'static str]) -> Option<String> {
    selectors.iter().find_map(|css| {
        doc.select(&selector(css))
            .filter_map(|el| el.value().attr("content"))
            .map(|c| normalized([c]))
            .find(|c| !c.is_empty())
    })
}

fn metadata(doc: &Html, root: ElementRef) -> Metadata {
    let mut meta = Metadata::default();
    let published = meta_content(
        doc,
        &[
            "meta[property='article:published_time']",
            "meta[name='article:published_time']",
            "meta[itemprop='datePublished']",
            "meta[name='pubdate']",
            "meta[name='publish-date']",
            "meta[name='date']",
        ],
    );
    if let Some(value) = published {
        meta.date_iso = iso_prefix(&value);
        meta.date = Some(value);
    } else {
        let time = selector("time[datetime]");
        if let Some(el) = root.select(&time).chain(doc.select(&time)).next() {
            let machine = el.value().attr("datetime").unwrap_or_default();
            let shown = normalized(el.text());
            meta.date_iso = iso_prefix(machine).or_else(|| parse_date(&shown));
            meta.date = Some(if shown.is_empty() {
                machine.trim().to_owned()
            } else {
                shown
            });
        }
    }
    meta.author = meta_content(
        doc,
        &["meta[name='author']", "meta[property='article:author']"],
    )
    .filter(|a| !a.starts_with("http"))
    .or_else(|| {
        doc.select(&selector("[rel='author'], [itemprop='author']"))
            .map(|el| normalized(el.text()))
            .find(|t| !t.is_empty())
    });
    meta.source_url = doc
        .select(&selector("link[rel='canonical']"))
        .filter_map(|el| el.value().attr("href"))
        .map(str::trim)
        .find(|h| !h.is_empty())
        .map(str::to_owned)
        .or_else(|| meta_content(doc, &["meta[property='og:url']"]));
    let figcaption = selector("figcaption");
    if let Some(el) = root
        .select(&figcaption)
        .chain(doc.select(&figcaption))
        .next()
    {
        let walker = Walker {
            caption_mode: true,
            ..Walker::default()
        };
        if let Some(block) = walker.walk(el).into_iter().next() {
            match split_caption(&block.para, true) {
                Some((caption, credit)) => {
                    meta.caption = Some(caption).filter(|c| !c.is_empty());
                    meta.credit = Some(credit);
                }
                None => meta.caption = Some(block.para.text),
            }
        }
    }
    meta
}

/// Turns an element's subtree into blocks.
#[derive(Default)]
struct Walker {
    blocks: Vec<Block>,
    cur: Option<BlockBuilder>,
    /// How many paragraph-making elements enclose the current node.
    block_depth: usize,
    quote_depth: usize,
    item_depth: usize,
    heading: u8,
    /// Open inline markup: style, start, and the block it started in.
    inline: Vec<(Style, usize, usize)>,
    /// Counts finished blocks, so a span never crosses into another block.
    generation: usize,
    /// Inside a `<figcaption>`: all text counts, and credit markup reads as bold.
    caption_mode: bool,
    /// Containers make paragraphs too, and `<br><br>` ends one (see [`LOOSE_BLOCKS`]).
    loose: bool,
    /// The last thing seen was a `<br>`.
    after_br: bool,
}

impl Walker {
    fn walk(mut self, root: ElementRef) -> Vec<Block> {
        if self.caption_mode || self.loose {
            self.block_depth = 1;
        }
        // Iterative, so deeply nested pages cannot overflow the stack.
        let mut stack = vec![(*root, false)];
        while let Some((node, leaving)) = stack.pop() {
            match node.value() {
                Node::Text(text) if self.block_depth > 0 => self.push_text(text),
                Node::Element(_) => {
                    let Some(el) = ElementRef::wrap(node) else {
                        continue;
                    };
                    if leaving {
                        self.close(el);
                    } else if node.id() == root.id() || !is_dropped(&el) {
                        self.open(el);
                        stack.push((node, true));
                        stack.extend(node.children().rev().map(|c| (c, false)));
                    }
                }
                _ => {}
            }
        }
        self.flush();
        self.blocks
    }

    fn kind(&self) -> BlockKind {
        if self.heading > 0 {
            BlockKind::Heading
        } else if self.quote_depth > 0 {
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
        self.generation += 1;
    }

    fn cur(&mut self) -> &mut BlockBuilder {
        let (kind, level) = (self.kind(), self.heading);
        self.cur
            .get_or_insert_with(|| BlockBuilder::new(kind, level, true))
    }

    fn push_text(&mut self, text: &str) {
        if !text.trim().is_empty() {
            self.after_br = false;
        }
        self.cur().push_text(text);
    }

    fn is_block(&self, name: &str) -> bool {
        BLOCKS.contains(&name) || (self.loose && LOOSE_BLOCKS.contains(&name))
    }

    fn style(&self, el: &ElementRef) -> Option<Style> {
        let credit = |el: &ElementRef| {
            el.value()
                .attr("class")
                .is_some_and(|c| c.contains("credit") || c.contains("copyright"))
        };
        match el.value().name() {
            "a" => el.value().attr("href").map(|href| Style::Link {
                url: href.trim().to_owned(),
            }),
            "strong" | "b" => Some(Style::Strong),
            "em" | "i" => Some(Style::Emphasis),
            "code" | "kbd" | "samp" | "tt" => Some(Style::Code),
            "cite" | "small" if self.caption_mode => Some(Style::Strong),
            _ if self.caption_mode && credit(el) => Some(Style::Strong),
            _ => None,
        }
    }

    fn open(&mut self, el: ElementRef) {
        let name = el.value().name();
        if self.is_block(name) {
            self.flush();
            self.block_depth += 1;
            match name {
                "blockquote" => self.quote_depth += 1,
                "li" => self.item_depth += 1,
                _ => {}
            }
            if let Some(level) = heading_level(name) {
                self.heading = level;
            }
        } else if name == "br" {
            if self.loose && self.after_br {
                self.flush();
            } else if let Some(cur) = self.cur.as_mut() {
                cur.push_text(" ");
            }
            self.after_br = true;
        } else if let Some(style) = self.style(&el) {
            let start = self.cur.as_ref().map_or(0, BlockBuilder::mark);
            self.inline.push((style, start, self.generation));
        }
    }

    fn close(&mut self, el: ElementRef) {
        let name = el.value().name();
        if self.is_block(name) {
            self.flush();
            self.block_depth = self.block_depth.saturating_sub(1);
            match name {
                "blockquote" => self.quote_depth = self.quote_depth.saturating_sub(1),
                "li" => self.item_depth = self.item_depth.saturating_sub(1),
                _ => {}
            }
            if heading_level(name).is_some() {
                self.heading = 0;
            }
        } else if self.style(&el).is_some() {
            if let Some((style, start, generation)) = self.inline.pop() {
                if generation == self.generation {
                    if let Some(cur) = self.cur.as_mut() {
                        cur.add_span(start, style);
                    }
                }
            }
        }
    }
}

fn heading_level(name: &str) -> Option<u8> {
    match name.as_bytes() {
        [b'h', d @ b'1'..=b'6'] => Some(d - b'0'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_selector_parses() {
        for css in [
            "p",
            "article",
            "main",
            "body",
            "h1",
            "title",
            "time[datetime]",
            "figcaption",
            "[rel='author'], [itemprop='author']",
            "link[rel='canonical']",
            "meta[property='og:title']",
            "meta[name='twitter:title']",
            "meta[property='article:published_time']",
        ] {
            assert!(Selector::parse(css).is_ok(), "{css}");
        }
    }

    #[test]
    fn body_falls_back_when_no_article() {
        let doc = read(
            "<html><head><title>Page | Site</title></head><body><div>chrome</div>\
             <p>One <b>two</b>.</p><ul><li>item</li></ul><script>x()</script></body></html>",
        )
        .expect("reads");
        assert_eq!(doc.title.as_deref(), Some("Page"));
        let texts: Vec<_> = doc.blocks.iter().map(|b| b.para.text.as_str()).collect();
        assert_eq!(texts, ["One two.", "item"]);
        assert_eq!(doc.blocks[1].para.kind, BlockKind::ListItem);
    }

    #[test]
    fn pages_without_paragraph_elements_read_loosely() {
        let doc = read(
            "<html><body><nav>Menu</nav><div>First <i>line</i>.<br><br>Second\n<br>part.</div>\
             <div>Third.</div></body></html>",
        )
        .expect("reads");
        let texts: Vec<_> = doc.blocks.iter().map(|b| b.para.text.as_str()).collect();
        assert_eq!(texts, ["First line.", "Second part.", "Third."]);
        assert_eq!(doc.blocks[0].para.spans.len(), 1);
    }

    fn nested(tag: &str, depth: usize) -> String {
        format!(
            "<p>{}deep{}</p>",
            format!("<{tag}>").repeat(depth),
            format!("</{tag}>").repeat(depth)
        )
    }

    #[test]
    fn nesting_up_to_the_limit_is_read() {
        for tag in ["span", "div", "blockquote", "b"] {
            let doc =
                read(&nested(tag, MAX_HTML_DEPTH - 20)).unwrap_or_else(|e| panic!("{tag}: {e}"));
            assert_eq!(
                doc.blocks.last().map(|b| b.para.text.as_str()),
                Some("deep")
            );
        }
    }

    #[test]
    fn deeper_nesting_is_refused() {
        for tag in ["span", "div", "blockquote", "b", "ul", "section"] {
            for depth in [MAX_HTML_DEPTH + 20, 200_000] {
                let err = read(&nested(tag, depth)).err();
                assert_eq!(
                    err.as_deref(),
                    Some("nests HTML elements more than 512 deep, which svodka does not read"),
                    "{tag} x {depth}"
                );
            }
        }
    }
}
