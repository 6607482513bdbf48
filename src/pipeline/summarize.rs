//! Summarize an article: with a [`Summarizer`] that takes the whole article, or with a
//! [`TextWriter`] of bounded context through map-reduce over token-budgeted chunks.

use std::time::Instant;

use serde::Serialize;

use crate::article::lang::{self, Detection};
use crate::article::{sentences, Article, Lang, Metadata};
use crate::engine::{
    Summarizer, Summary, SummaryOptions, SummarySentence, TextWriter, WriteRequest, WriteTask,
};
use crate::{Error, Result};

/// How a neural summary was obtained.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MapReduceStats {
    /// Parts the article was cut into for the first pass.
    pub chunks: usize,
    /// Tokens of each first-pass chunk, in article order.
    pub chunk_tokens: Vec<usize>,
    /// Passes over the text (1 when the article fit at once).
    pub passes: usize,
    /// Requests made to the model.
    pub requests: usize,
    /// Tokens read by the model, prompts included.
    pub tokens_in: usize,
    /// Tokens generated.
    pub tokens_out: usize,
}

/// A summary with everything a reader or a script may want to know about it.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryReport {
    /// The article's headline.
    pub title: Option<String>,
    /// The article's detected language.
    pub language: Detection,
    /// Metadata found in the article.
    pub metadata: Metadata,
    /// The summary itself.
    pub summary: Summary,
    /// Engine that wrote it.
    pub engine: String,
    /// Model that wrote it, when the engine uses one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Model revision, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Map-reduce accounting of neural engines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<MapReduceStats>,
    /// Problems met on the way that did not stop the summary (a cut loop...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Wall time of the summarization, in milliseconds.
    pub elapsed_ms: u64,
}

/// The article's language, if svodka can work with it.
pub fn article_language(article: &Article) -> Result<(Lang, Detection)> {
    let detection = lang::detect_article(article);
    match detection.known() {
        Some(l) => Ok((l, detection)),
        None => Err(Error::Unsupported(format!(
            "the article's language is {} (confidence {:.2}); svodka works with Russian and English only",
            detection.lang, detection.confidence
        ))),
    }
}

/// What of an article svodka can summarize, and in which language.
#[derive(Debug, Clone)]
pub struct ReadablePart {
    /// The article without its paragraphs in other languages; `None`: all of it.
    pub article: Option<Article>,
    /// Index in the whole article of each paragraph of `article`.
    pub kept: Vec<usize>,
    /// Language of the summarized text.
    pub lang: Lang,
    /// How it was detected.
    pub detection: Detection,
    /// What was left out, for the report.
    pub warnings: Vec<String>,
}

/// The part of `article` svodka can summarize. An article in Russian or English is taken
/// whole, as it is; one whose main language is another (a Ukrainian article quoting
/// Russian and English) keeps its Russian and English paragraphs, and says which others
/// it left out. With none of them, the article is refused naming its language.
pub fn readable_part(article: &Article) -> Result<ReadablePart> {
    let refusal = match article_language(article) {
        Ok((lang, detection)) => {
            return Ok(ReadablePart {
                article: None,
                kept: (0..article.paragraphs.len()).collect(),
                lang,
                detection,
                warnings: Vec::new(),
            })
        }
        Err(e) => e,
    };
    let mut part = Article {
        paragraphs: Vec::new(),
        ..article.clone()
    };
    let mut kept = Vec::new();
    let mut left: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, p) in article.paragraphs.iter().enumerate() {
        let found = lang::detect(&p.text);
        if found.known().is_some() || found.is_undetermined() {
            part.paragraphs.push(p.clone());
            kept.push(i);
        } else {
            match left.iter_mut().find(|(l, _)| *l == found.lang) {
                Some((_, at)) => at.push(i + 1),
                None => left.push((found.lang, vec![i + 1])),
            }
        }
    }
    if part.title.as_deref().is_some_and(|t| {
        let found = lang::detect(t);
        found.known().is_none() && !found.is_undetermined()
    }) {
        part.title = None;
    }
    let (lang, detection) = match article_language(&part) {
        Ok(found) if !part.paragraphs.is_empty() => found,
        _ => return Err(refusal),
    };
    let warnings = left
        .into_iter()
        .map(|(l, at)| {
            let at: Vec<String> = at.iter().map(usize::to_string).collect();
            format!(
                "paragraph(s) {} in {l} left out: svodka summarizes Russian and English only",
                at.join(", ")
            )
        })
        .collect();
    Ok(ReadablePart {
        article: Some(part),
        kept,
        lang,
        detection,
        warnings,
    })
}

impl ReadablePart {
    /// The text to summarize: the part, or `whole` when nothing was left out.
    pub fn text<'a>(&'a self, whole: &'a Article) -> &'a Article {
        self.article.as_ref().unwrap_or(whole)
    }

    /// Points the summary's sentences at paragraphs of the whole article.
    fn map_back(&self, summary: &mut Summary) {
        for s in &mut summary.sentences {
            s.paragraph = s.paragraph.and_then(|i| self.kept.get(i).copied());
        }
    }
}

fn require_body(article: &Article) -> Result<()> {
    if article.paragraphs.is_empty() {
        return Err(Error::Unsupported(
            "the article has a headline but no body text to summarize".into(),
        ));
    }
    Ok(())
}

fn report(
    article: &Article,
    detection: Detection,
    summary: Summary,
    engine: &str,
) -> SummaryReport {
    SummaryReport {
        title: article.title.clone(),
        language: detection,
        metadata: article.metadata.clone(),
        summary,
        engine: engine.to_string(),
        model: None,
        revision: None,
        stats: None,
        warnings: Vec::new(),
        elapsed_ms: 0,
    }
}

/// Summarizes `article` with an engine that reads the whole article.
pub fn summarize(
    article: &Article,
    engine: &mut dyn Summarizer,
    opts: &SummaryOptions,
) -> Result<SummaryReport> {
    require_body(article)?;
    let part = readable_part(article)?;
    let start = Instant::now();
    let mut summary = engine.summarize(part.text(article), part.lang, opts)?;
    part.map_back(&mut summary);
    let mut r = report(article, part.detection.clone(), summary, engine.name());
    r.warnings = part.warnings;
    r.elapsed_ms = start.elapsed().as_millis() as u64;
    Ok(r)
}

/// Cuts `blocks` (paragraphs, or partial summaries) into chunks of at most `budget`
/// tokens, joined by blank lines, at block boundaries where possible; a block too long
/// is cut between sentences, a sentence too long between words. Nothing is dropped.
pub fn chunk_blocks(
    blocks: &[String],
    budget: usize,
    count: &dyn Fn(&str) -> Result<usize>,
) -> Result<Vec<String>> {
    if budget == 0 {
        return Err(Error::Model(
            "the model's context leaves no room for article text; raise --context".into(),
        ));
    }
    // Pieces no longer than the budget each, in order.
    let mut pieces: Vec<(String, usize, bool)> = Vec::new(); // (text, tokens, starts a block)
    for block in blocks {
        let n = count(block)?;
        if n <= budget {
            pieces.push((block.clone(), n, true));
            continue;
        }
        let mut first = true;
        for r in sentences::split(block, None) {
            let sentence = &block[r];
            for part in split_words(sentence, budget, count)? {
                let n = count(&part)?;
                pieces.push((part, n, first));
                first = false;
            }
        }
    }
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    for (text, _, starts_block) in pieces {
        let sep = if starts_block { "\n\n" } else { " " };
        let candidate = if current.is_empty() {
            text.clone()
        } else {
            format!("{current}{sep}{text}")
        };
        // Token counts are not additive across a join; measure the joined text.
        if current.is_empty() || count(&candidate)? <= budget {
            current = candidate;
        } else {
            chunks.push(std::mem::take(&mut current));
            current = text;
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    Ok(chunks)
}

/// Cuts one sentence into runs of words that fit `budget` tokens.
fn split_words(
    sentence: &str,
    budget: usize,
    count: &dyn Fn(&str) -> Result<usize>,
) -> Result<Vec<String>> {
    if count(sentence)? <= budget {
        return Ok(vec![sentence.to_string()]);
    }
    let mut parts = Vec::new();
    let mut current = String::new();
    for word in sentence.split_whitespace() {
        let candidate = if current.is_empty() {
            word.to_string()
        } else {
            format!("{current} {word}")
        };
        if current.is_empty() || count(&candidate)? <= budget {
            current = candidate;
        } else {
            parts.push(std::mem::replace(&mut current, word.to_string()));
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    Ok(parts)
}

/// Options of an abstractive summary beyond [`SummaryOptions`].
#[derive(Default)]
pub struct AbstractiveRun<'a> {
    /// Model name and revision for the report.
    pub model: Option<String>,
    /// Model revision for the report.
    pub revision: Option<String>,
    /// Receives the final answer as it is generated (streaming).
    pub on_text: Option<&'a mut dyn FnMut(&str)>,
    /// Receives progress lines (`--verbose`).
    pub on_progress: Option<&'a mut dyn FnMut(&str)>,
}

/// Summarizes `article` with a neural writer: one request when the article fits its
/// context, else map-reduce — each chunk summarized, the partial summaries merged in
/// further passes until one summary remains.
pub fn summarize_with(
    article: &Article,
    writer: &mut dyn TextWriter,
    opts: &SummaryOptions,
    mut run: AbstractiveRun,
) -> Result<SummaryReport> {
    require_body(article)?;
    let part = readable_part(article)?;
    let (source_lang, detection) = (part.lang, part.detection.clone());
    let lang = opts.lang.unwrap_or(source_lang);
    let start = Instant::now();
    let mut stats = MapReduceStats::default();
    let mut warnings = part.warnings.clone();

    let text = part.text(article);
    let mut blocks: Vec<String> = Vec::new();
    if let Some(t) = &text.title {
        blocks.push(t.clone());
    }
    blocks.extend(text.paragraphs.iter().map(|p| p.text.clone()));

    let mut task = WriteTask::Summarize;
    let final_text = loop {
        let req = WriteRequest {
            task,
            text: "",
            lang,
            source_lang,
            opts,
        };
        let budget = writer.input_budget(&req)?;
        let chunks = chunk_blocks(&blocks, budget, &|t| writer.count_tokens(t))?;
        stats.passes += 1;
        if stats.passes == 1 {
            stats.chunks = chunks.len();
            stats.chunk_tokens = chunks
                .iter()
                .map(|c| writer.count_tokens(c))
                .collect::<Result<_>>()?;
        } else if chunks.len() >= blocks.len() {
            return Err(Error::Model(format!(
                "map-reduce does not converge: {} partial summaries do not fit the context together; raise --context or ask for a shorter summary",
                blocks.len()
            )));
        }
        if let Some(p) = run.on_progress.as_mut() {
            p(&format!(
                "pass {}: {} chunk(s) of at most {budget} tokens",
                stats.passes,
                chunks.len()
            ));
        }
        let last = chunks.len() == 1;
        let mut outputs = Vec::with_capacity(chunks.len());
        for (i, chunk) in chunks.iter().enumerate() {
            let req = WriteRequest { text: chunk, ..req };
            let mut sink = |_: &str| {};
            let on_text: &mut dyn FnMut(&str) = match (last, run.on_text.as_mut()) {
                (true, Some(f)) => &mut **f,
                _ => &mut sink,
            };
            let w = writer.write(&req, on_text)?;
            stats.requests += 1;
            stats.tokens_in += w.tokens_in;
            stats.tokens_out += w.tokens_out;
            if w.looped {
                warnings.push(format!(
                    "pass {} chunk {}: the model repeated itself; the repetition was cut",
                    stats.passes,
                    i + 1
                ));
            }
            if w.text.trim().is_empty() {
                if last {
                    return Err(Error::Model("the model wrote an empty summary".to_string()));
                }
                warnings.push(format!(
                    "pass {} chunk {}: the model wrote nothing for this part",
                    stats.passes,
                    i + 1
                ));
            }
            outputs.push(w.text);
        }
        if last {
            break outputs.remove(0);
        }
        blocks = outputs
            .into_iter()
            .filter(|t| !t.trim().is_empty())
            .collect();
        if blocks.is_empty() {
            return Err(Error::Model("the model wrote an empty summary".to_string()));
        }
        task = WriteTask::Reduce;
    };

    let summary = Summary {
        sentences: summary_sentences(&final_text, lang),
        lang,
    };
    let mut r = report(article, detection, summary, writer.engine_name());
    r.model = run.model;
    r.revision = run.revision;
    r.stats = Some(stats);
    r.warnings = warnings;
    r.elapsed_ms = start.elapsed().as_millis() as u64;
    Ok(r)
}

/// Splits generated text into sentences (bullet lines stay whole).
fn summary_sentences(text: &str, lang: Lang) -> Vec<SummarySentence> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let bullet = line.starts_with("- ") || line.starts_with("* ") || line.starts_with("• ");
        let parts: Vec<&str> = if bullet {
            vec![line]
        } else {
            sentences::split(line, Some(lang))
                .into_iter()
                .map(|r| &line[r])
                .collect()
        };
        out.extend(parts.into_iter().map(|s| SummarySentence {
            text: s.to_string(),
            paragraph: None,
            score: None,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::{BlockKind, Paragraph};
    use crate::engine::Written;

    fn words(t: &str) -> Result<usize> {
        Ok(t.split_whitespace().count())
    }

    #[test]
    fn chunks_respect_the_budget_and_keep_every_word() {
        let blocks: Vec<String> = (0..10)
            .map(|i| format!("Paragraph {i} has exactly seven words here."))
            .collect();
        let chunks = chunk_blocks(&blocks, 20, &words).unwrap();
        assert_eq!(chunks.len(), 5); // 2 paragraphs (14 words) per chunk
        assert!(chunks.iter().all(|c| words(c).unwrap() <= 20));
        let joined: usize = chunks.iter().map(|c| words(c).unwrap()).sum();
        assert_eq!(joined, 70);
    }

    #[test]
    fn long_paragraphs_are_cut_between_sentences_then_words() {
        let long = "One two three. Four five six seven eight nine ten eleven twelve thirteen.";
        let chunks = chunk_blocks(&[long.to_string()], 4, &words).unwrap();
        assert!(chunks.iter().all(|c| words(c).unwrap() <= 4), "{chunks:?}");
        assert_eq!(chunks.join(" "), long);
        assert!(chunk_blocks(&[long.to_string()], 0, &words).is_err());
    }

    /// A writer whose "summary" is the first three words of each input, and whose
    /// context takes 30 words of input.
    struct FirstWords {
        seen: Vec<(WriteTask, String)>,
    }

    impl TextWriter for FirstWords {
        fn engine_name(&self) -> &'static str {
            "fake"
        }
        fn count_tokens(&self, text: &str) -> Result<usize> {
            words(text)
        }
        fn input_budget(&self, _: &WriteRequest) -> Result<usize> {
            Ok(30)
        }
        fn write(&mut self, req: &WriteRequest, on_text: &mut dyn FnMut(&str)) -> Result<Written> {
            self.seen.push((req.task, req.text.to_string()));
            let text: Vec<&str> = req.text.split_whitespace().take(3).collect();
            let text = format!("{}.", text.join(" "));
            on_text(&text);
            Ok(Written {
                text,
                tokens_in: words(req.text)?,
                tokens_out: 3,
                looped: false,
            })
        }
    }

    fn article(paragraphs: usize) -> Article {
        Article {
            title: Some("Заголовок статьи о погоде".into()),
            paragraphs: (0..paragraphs)
                .map(|i| Paragraph {
                    text: format!(
                        "Абзац номер {i} рассказывает о погоде в Москве и области сегодня."
                    ),
                    spans: vec![],
                    kind: BlockKind::Text,
                })
                .collect(),
            ..Article::default()
        }
    }

    #[test]
    fn short_article_takes_one_request() {
        let mut w = FirstWords { seen: vec![] };
        let mut streamed = String::new();
        let mut on_text = |t: &str| streamed.push_str(t);
        let run = AbstractiveRun {
            on_text: Some(&mut on_text),
            ..Default::default()
        };
        let r = summarize_with(&article(2), &mut w, &SummaryOptions::default(), run).unwrap();
        let s = r.stats.unwrap();
        assert_eq!((s.chunks, s.passes, s.requests), (1, 1, 1));
        assert_eq!(streamed, "Заголовок статьи о.");
    }

    #[test]
    fn long_article_goes_through_map_reduce_covering_every_chunk() {
        let a = article(40); // 40 × 11 words + title: far more than 30 per request
        let mut w = FirstWords { seen: vec![] };
        let r = summarize_with(
            &a,
            &mut w,
            &SummaryOptions::default(),
            AbstractiveRun::default(),
        )
        .unwrap();
        let s = r.stats.unwrap();
        assert!(s.chunks > 10, "{s:?}");
        assert!(s.passes >= 2, "{s:?}");
        // First pass: every paragraph is in exactly one chunk.
        let first: Vec<&String> = w
            .seen
            .iter()
            .filter(|(t, _)| *t == WriteTask::Summarize)
            .map(|(_, x)| x)
            .collect();
        assert_eq!(first.len(), s.chunks);
        for p in &a.paragraphs {
            assert_eq!(first.iter().filter(|c| c.contains(&p.text)).count(), 1);
        }
        assert!(w.seen.iter().any(|(t, _)| *t == WriteTask::Reduce));
        assert_eq!(s.requests, w.seen.len());
        assert!(!r.summary.sentences.is_empty());
    }
}
