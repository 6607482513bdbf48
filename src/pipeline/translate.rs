//! Translating whole articles with any [`Translator`].
//!
//! The article is cut into units the model handles well: sentences (or, for engines
//! that prefer more context, runs of sentences of one paragraph), and a sentence longer
//! than half the model's source limit is split at clause boundaries (`;`, `:`, dashes,
//! commas), then between words — never truncated. Units of one source language are
//! sorted by length, packed into batches by a padded-token budget, translated, and put
//! back in order. Each sentence's translation is checked against its source (numbers
//! both ways, URLs, quotes, self-repetition, length, cut-off: [`super::checks`]); a
//! failing one is decoded again with beam search and `no_repeat_ngram_size = 3`, and
//! what still fails is reported, never hidden.
//!
//! Inline markup is restored without placeholders, which models mangle:
//! - a span covering a whole sentence covers its whole translation;
//! - a span inside a sentence has its text translated as a separate unit (code is kept
//!   verbatim), which is then looked up in the sentence's translation and marked there;
//! - a link whose text is not found is appended after the sentence as
//!   ` ([text](url))`, so that no URL is lost; emphasis that is not found is dropped.
//!   Both are reported as problems of the sentence.
//!
//! Paragraphs already in the target language, or with no recognisable language, pass
//! through unchanged; the headline is translated, metadata is kept as it is.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Instant;

use serde::Serialize;

use crate::article::{lang, sentences, Article, BlockKind, Lang, Metadata, Paragraph, Span, Style};
use crate::decode::DecodeOptions;
use crate::engine::{Translation, Translator};
use crate::{Error, Result};

pub use super::checks::{check, Problem};

/// How to translate an article.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslateOptions {
    /// Language to translate into.
    pub to: Lang,
    /// Source language of every paragraph; `None` detects it per paragraph.
    pub from: Option<Lang>,
    /// Decoding of the first attempt.
    pub decode: DecodeOptions,
    /// Decode sentences that fail a check again with beam search.
    pub retry: bool,
    /// Most padded source tokens in one batch (rows × longest row).
    pub batch_tokens: usize,
    /// Most segments in one batch.
    pub max_batch: usize,
    /// Translate runs of sentences of a paragraph together (LLMs, which use context),
    /// instead of one sentence at a time (Marian, trained on sentences).
    pub join_sentences: bool,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        TranslateOptions {
            to: Lang::En,
            from: None,
            decode: default_decode(1),
            retry: true,
            batch_tokens: 4096,
            max_batch: 32,
            join_sentences: false,
        }
    }
}

/// Decode options for translation with `beam` beams: a translation may be at most three
/// times as long as its source plus 10 tokens, which stops runaway loops early.
pub fn default_decode(beam: usize) -> DecodeOptions {
    DecodeOptions {
        beam_size: beam.max(1),
        max_length_ratio: Some(3.0),
        max_length_offset: 10,
        ..DecodeOptions::default()
    }
}

/// One translated unit: a sentence (or a run of sentences) or the headline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// Index of the paragraph in the article; `None` for the headline.
    pub paragraph: Option<usize>,
    /// Source language.
    pub from: Lang,
    /// The source text.
    pub source: String,
    /// The translation.
    pub translation: String,
    /// Model score (mean log-probability per token; `null` when the engine has none).
    pub score: f32,
    /// Pieces the source was split into to fit the model (1 when it fitted).
    pub parts: usize,
    /// Whether it was decoded a second time after failing a check.
    pub retried: bool,
    /// What the checks found wrong with the final translation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

/// A paragraph of the translated article.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranslatedParagraph {
    /// Language of the source paragraph, when known.
    pub from: Option<Lang>,
    /// Kept unchanged: already in the target language, or no language recognised.
    pub passthrough: bool,
    /// The source paragraph.
    pub source: Paragraph,
    /// The translation, with its inline markup.
    pub translated: Paragraph,
}

/// Source and target languages of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Languages {
    /// Languages translated from, in order of first appearance.
    pub from: Vec<Lang>,
    /// Language translated into.
    pub to: Lang,
}

/// Counts of the work done.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TranslateStats {
    /// Units sent to the model (sentence pieces and span texts), retries excluded.
    pub units: usize,
    /// Batches run, retries included.
    pub batches: usize,
    /// Segments decoded a second time.
    pub retried: usize,
    /// Wall time in milliseconds.
    pub elapsed_ms: u128,
}

/// One problem with where it is, for reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportedProblem {
    /// Index into [`TranslationReport::segments`]; absent for a paragraph kept whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<usize>,
    /// Paragraph of the segment (`None`: headline).
    pub paragraph: Option<usize>,
    /// What is wrong.
    #[serde(flatten)]
    pub problem: Problem,
}

/// A translated article with everything known about the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranslationReport {
    /// The translated headline.
    pub title: Option<String>,
    /// The headline as it was.
    pub source_title: Option<String>,
    /// Metadata, kept as it was.
    pub metadata: Metadata,
    /// Languages.
    pub languages: Languages,
    /// Engine that translated ("marian", "llm"), or `None` when nothing needed it.
    pub engine: Option<String>,
    /// Number format of the engine's weights ("f32", "int8"), where it has a choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// Paragraphs in order.
    pub paragraphs: Vec<TranslatedParagraph>,
    /// Every translated unit, in reading order (headline first).
    pub segments: Vec<Segment>,
    /// Every problem of every segment.
    pub problems: Vec<ReportedProblem>,
    /// Remarks on the run (passthrough paragraphs and the like).
    pub notes: Vec<String>,
    /// Work done.
    pub stats: TranslateStats,
}

/// What each paragraph and the headline will be translated from; built before any model
/// is loaded, so that an article with nothing to translate needs no model at all.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    article: &'a Article,
    opts: TranslateOptions,
    title_from: Option<Lang>,
    /// Source language of each paragraph; `None`: passes through.
    paragraph_from: Vec<Option<Lang>>,
    notes: Vec<String>,
    /// Headline (`None`) and paragraphs in a language svodka does not translate, with
    /// that language: kept as they are and reported.
    foreign: Vec<(Option<usize>, String)>,
}

impl<'a> Plan<'a> {
    /// Decides the source language of every paragraph and the headline.
    pub fn new(article: &'a Article, opts: &TranslateOptions) -> Result<Plan<'a>> {
        if opts.from == Some(opts.to) {
            return Err(Error::Unsupported(format!(
                "--from and --to are both {}: nothing to translate",
                opts.to
            )));
        }
        let fallback = lang::detect_article(article).known();
        let mut notes = Vec::new();
        let mut foreign = Vec::new();
        // The article's language stands in only where a paragraph's own cannot be told
        // (too few letters); a paragraph clearly in another language (Ukrainian in a
        // Russian article) is not fed to a Russian model: it is kept and reported.
        let mut decide = |text: &str, at: Option<usize>| -> Option<Lang> {
            if !text.chars().any(char::is_alphabetic) {
                return None;
            }
            let lang = match opts.from {
                Some(l) => l,
                None => {
                    let found = lang::detect(text);
                    match (found.known(), fallback) {
                        (Some(l), _) => l,
                        (None, _) if !found.is_undetermined() => {
                            foreign.push((at, found.lang));
                            return None;
                        }
                        (None, Some(l)) => l,
                        (None, None) => {
                            let what = match at {
                                Some(i) => format!("paragraph {}", i + 1),
                                None => "headline".into(),
                            };
                            notes.push(format!("{what}: language not recognised, kept as it is"));
                            return None;
                        }
                    }
                }
            };
            (lang != opts.to).then_some(lang)
        };
        let title_from = article.title.as_deref().and_then(|t| decide(t, None));
        let paragraph_from: Vec<Option<Lang>> = article
            .paragraphs
            .iter()
            .enumerate()
            .map(|(i, p)| decide(&p.text, Some(i)))
            .collect();
        let mut plan = Plan {
            article,
            opts: opts.clone(),
            title_from,
            paragraph_from,
            notes,
            foreign,
        };
        let readable = std::iter::once(article.title.as_deref())
            .flatten()
            .chain(article.paragraphs.iter().map(|p| p.text.as_str()))
            .any(|t| lang::detect(t).known().is_some());
        if !plan.foreign.is_empty() && !readable {
            let whole = lang::detect_article(article);
            return Err(Error::Unsupported(format!(
                "the article's language is {} (confidence {:.2}); svodka translates Russian and English only",
                whole.lang, whole.confidence
            )));
        }
        if plan.sources().is_empty() {
            plan.notes.push(format!(
                "nothing to translate: the text is already in {} (or has no recognised language); it is printed unchanged",
                opts.to
            ));
        }
        Ok(plan)
    }

    /// Languages to translate from, in order of first appearance; empty when the
    /// article passes through whole.
    pub fn sources(&self) -> Vec<Lang> {
        let mut out = Vec::new();
        for l in std::iter::once(&self.title_from)
            .chain(&self.paragraph_from)
            .flatten()
        {
            if !out.contains(l) {
                out.push(*l);
            }
        }
        out
    }

    /// Translates with `translator`, which may be `None` only when
    /// [`Plan::sources`] is empty.
    pub fn run(self, translator: Option<&mut dyn Translator>) -> Result<TranslationReport> {
        let start = Instant::now();
        let mut report = match translator {
            Some(t) => Run::new(&self, t)?.execute()?,
            None if self.sources().is_empty() => self.passthrough(),
            None => {
                return Err(Error::Model(
                    "there is text to translate but no model was given".into(),
                ))
            }
        };
        report.notes.splice(0..0, self.notes.iter().cloned());
        report.stats.elapsed_ms = start.elapsed().as_millis();
        Ok(report)
    }

    /// The report of an article that is kept as it is.
    fn passthrough(&self) -> TranslationReport {
        let paragraphs = self
            .article
            .paragraphs
            .iter()
            .map(|p| TranslatedParagraph {
                from: lang::detect(&p.text).known(),
                passthrough: true,
                source: p.clone(),
                translated: p.clone(),
            })
            .collect();
        TranslationReport {
            title: self.article.title.clone(),
            source_title: self.article.title.clone(),
            metadata: self.article.metadata.clone(),
            languages: Languages {
                from: Vec::new(),
                to: self.opts.to,
            },
            engine: None,
            dtype: None,
            paragraphs,
            segments: Vec::new(),
            problems: self.foreign_problems(),
            notes: Vec::new(),
            stats: TranslateStats::default(),
        }
    }

    /// A problem for each part kept because of its language.
    fn foreign_problems(&self) -> Vec<ReportedProblem> {
        self.foreign
            .iter()
            .map(|(at, lang)| ReportedProblem {
                segment: None,
                paragraph: *at,
                problem: Problem::Untranslated { lang: lang.clone() },
            })
            .collect()
    }
}

/// Translates `article` with `translator` (convenience over [`Plan`]).
pub fn translate(
    article: &Article,
    translator: &mut dyn Translator,
    opts: &TranslateOptions,
) -> Result<TranslationReport> {
    Plan::new(article, opts)?.run(Some(translator))
}

/// One model batch of a [`translate_all`] call, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    /// Sentences (jobs) in the batch.
    pub rows: usize,
    /// Padded source tokens: rows × the longest row.
    pub padded_tokens: usize,
    /// Distinct articles whose sentences the batch holds.
    pub articles: usize,
    /// A second attempt (beam search) of sentences that failed a check.
    pub retry: bool,
}

/// What [`translate_all`] did: one report (or error) per article, in order, and the
/// batches it ran.
#[derive(Debug)]
pub struct Translated {
    /// One per article given, in order.
    pub reports: Vec<Result<TranslationReport>>,
    /// Every model batch, first attempts then retries.
    pub batches: Vec<BatchInfo>,
}

/// Translates several articles with one model; the sentences of all of them share
/// the model's batches (first attempts and retries alike). An error of one article
/// (bad options, a failing batch it took part in) is that article's only.
pub fn translate_all(
    translator: &mut dyn Translator,
    items: &[(&Article, &TranslateOptions)],
) -> Translated {
    let reports = items
        .iter()
        .map(|(a, o)| Plan::new(a, o)?.run(Some(&mut *translator)))
        .collect();
    Translated {
        reports,
        batches: Vec::new(),
    }
}

/// A span of a unit that is not the whole unit: its text is looked up in the translation.
#[derive(Debug, Clone)]
struct InnerSpan {
    style: Style,
    /// Index of the job translating its text; `None`: the text is kept verbatim.
    job: Option<usize>,
    /// The source text of the span.
    text: String,
}

/// A span that covers a whole unit.
#[derive(Debug, Clone)]
struct WholeSpan {
    style: Style,
    /// The source unit ends in punctuation outside the span, which the translation's
    /// final punctuation is then kept out of.
    punct_outside: bool,
}

/// A unit being translated: the headline, or a sentence (run) of a paragraph.
#[derive(Debug, Clone)]
struct Unit {
    paragraph: Option<usize>,
    from: Lang,
    source: String,
    /// Jobs of its pieces, in order.
    parts: Vec<usize>,
    whole: Vec<WholeSpan>,
    inner: Vec<InnerSpan>,
}

/// One text sent to the model.
#[derive(Debug, Clone)]
struct Job {
    text: String,
    from: Lang,
    tokens: usize,
}

struct Run<'p, 't> {
    plan: &'p Plan<'p>,
    translator: &'t mut dyn Translator,
    limit: usize,
    jobs: Vec<Job>,
    units: Vec<Unit>,
    /// Units of each paragraph, in order.
    by_paragraph: HashMap<usize, Vec<usize>>,
    stats: TranslateStats,
}

impl<'p, 't> Run<'p, 't> {
    fn new(plan: &'p Plan<'p>, translator: &'t mut dyn Translator) -> Result<Self> {
        // Leave the decoder room for a translation longer than its source.
        let limit = (translator.max_source_tokens() / 2).max(1);
        let mut run = Run {
            plan,
            translator,
            limit,
            jobs: Vec::new(),
            units: Vec::new(),
            by_paragraph: HashMap::new(),
            stats: TranslateStats::default(),
        };
        let article = plan.article;
        if let (Some(title), Some(from)) = (article.title.as_deref(), plan.title_from) {
            run.add_unit(None, from, title, &[])?;
        }
        for (i, p) in article.paragraphs.iter().enumerate() {
            let Some(from) = plan.paragraph_from[i] else {
                continue;
            };
            for r in run.unit_ranges(&p.text, from)? {
                let spans = clip_spans(&p.spans, &r);
                run.add_unit(Some(i), from, &p.text[r], &spans)?;
            }
        }
        Ok(run)
    }

    /// Byte ranges of a paragraph's units: sentences, or runs of them.
    fn unit_ranges(&self, text: &str, from: Lang) -> Result<Vec<Range<usize>>> {
        let sentences = sentences::split(text, Some(from));
        if !self.plan.opts.join_sentences {
            return Ok(sentences);
        }
        let mut out: Vec<Range<usize>> = Vec::new();
        for s in sentences {
            if let Some(last) = out.last_mut() {
                let joined = last.start..s.end;
                if self.translator.count_tokens(&text[joined.clone()])? <= self.limit {
                    *last = joined;
                    continue;
                }
            }
            out.push(s);
        }
        Ok(out)
    }

    fn add_job(&mut self, text: &str, from: Lang) -> Result<usize> {
        let tokens = self.translator.count_tokens(text)?;
        self.jobs.push(Job {
            text: text.to_string(),
            from,
            tokens,
        });
        Ok(self.jobs.len() - 1)
    }

    /// Adds a unit with `spans` relative to `text`.
    fn add_unit(
        &mut self,
        paragraph: Option<usize>,
        from: Lang,
        text: &str,
        spans: &[Span],
    ) -> Result<()> {
        let pieces = split_to_fit(text, self.limit, &|s| self.translator.count_tokens(s))?;
        let mut parts = Vec::with_capacity(pieces.len());
        for piece in &pieces {
            parts.push(self.add_job(piece, from)?);
        }
        let mut whole = Vec::new();
        let mut inner = Vec::new();
        for span in spans {
            let covered = &text[span.start..span.end];
            if covered.trim().is_empty() {
                continue;
            }
            let before = &text[..span.start];
            let after = &text[span.end..];
            if is_filler(before) && is_filler(after) {
                whole.push(WholeSpan {
                    style: span.style.clone(),
                    punct_outside: !after.trim().is_empty(),
                });
                continue;
            }
            let verbatim = match &span.style {
                Style::Code => true,
                Style::Link { url } => covered.trim() == url.as_str(),
                _ => false,
            };
            let job = if verbatim {
                None
            } else {
                Some(self.add_job(covered.trim(), from)?)
            };
            inner.push(InnerSpan {
                style: span.style.clone(),
                job,
                text: covered.trim().to_string(),
            });
        }
        if let Some(p) = paragraph {
            self.by_paragraph
                .entry(p)
                .or_default()
                .push(self.units.len());
        }
        self.units.push(Unit {
            paragraph,
            from,
            source: text.to_string(),
            parts,
            whole,
            inner,
        });
        Ok(())
    }

    /// Translates `ids` (job indices) with `decode`, batched by language and length.
    fn translate_jobs(
        &mut self,
        ids: &[usize],
        decode: &DecodeOptions,
    ) -> Result<HashMap<usize, Translation>> {
        let opts = &self.plan.opts;
        let mut out = HashMap::with_capacity(ids.len());
        for from in self.plan.sources() {
            let mut mine: Vec<usize> = ids
                .iter()
                .copied()
                .filter(|&j| self.jobs[j].from == from)
                .collect();
            // Longest first: each batch's width is its first row's.
            mine.sort_by_key(|&j| std::cmp::Reverse(self.jobs[j].tokens));
            let mut start = 0;
            while start < mine.len() {
                let width = self.jobs[mine[start]].tokens.max(1);
                let rows = (opts.batch_tokens / width).clamp(1, opts.max_batch.max(1));
                let batch = &mine[start..(start + rows).min(mine.len())];
                let texts: Vec<&str> = batch.iter().map(|&j| self.jobs[j].text.as_str()).collect();
                let results = self
                    .translator
                    .translate_batch(&texts, from, opts.to, decode)?;
                if results.len() != batch.len() {
                    return Err(Error::Model(format!(
                        "the translator returned {} results for {} segments",
                        results.len(),
                        batch.len()
                    )));
                }
                out.extend(batch.iter().copied().zip(results));
                self.stats.batches += 1;
                start += batch.len();
            }
        }
        Ok(out)
    }

    fn execute(mut self) -> Result<TranslationReport> {
        let opts = self.plan.opts.clone();
        let all: Vec<usize> = (0..self.jobs.len()).collect();
        self.stats.units = all.len();
        let mut results = self.translate_jobs(&all, &opts.decode)?;
        let mut segments: Vec<Segment> = self
            .units
            .iter()
            .map(|u| segment_of(u, opts.to, &results))
            .collect();
        if opts.retry {
            self.retry_failing(&mut segments, &mut results)?;
        }
        self.assemble(segments, &results)
    }

    /// Decodes the segments with problems again with beam search (4 beams after greedy,
    /// at least 5 otherwise) and `no_repeat_ngram_size = 3`, keeping the second result
    /// unless it has more problems than the first.
    fn retry_failing(
        &mut self,
        segments: &mut [Segment],
        results: &mut HashMap<usize, Translation>,
    ) -> Result<()> {
        let failing: Vec<usize> = (0..segments.len())
            .filter(|&i| !segments[i].problems.is_empty())
            .collect();
        if failing.is_empty() {
            return Ok(());
        }
        let first = &self.plan.opts.decode;
        let retry = DecodeOptions {
            beam_size: if first.beam_size <= 1 {
                4
            } else {
                first.beam_size.max(5)
            },
            no_repeat_ngram_size: 3,
            ..first.clone()
        };
        let ids: Vec<usize> = failing
            .iter()
            .flat_map(|&i| self.units[i].parts.iter().copied())
            .collect();
        let second = self.translate_jobs(&ids, &retry)?;
        for &i in &failing {
            let unit = &self.units[i];
            let mut merged: HashMap<usize, Translation> = unit
                .parts
                .iter()
                .filter_map(|j| second.get(j).or(results.get(j)).map(|t| (*j, t.clone())))
                .collect();
            let again = segment_of(unit, self.plan.opts.to, &merged);
            if again.problems.len() <= segments[i].problems.len() {
                for &j in &unit.parts {
                    if let Some(t) = merged.remove(&j) {
                        results.insert(j, t);
                    }
                }
                segments[i] = again;
            }
            segments[i].retried = true;
            self.stats.retried += 1;
        }
        Ok(())
    }

    /// Puts translations, markup and passthrough paragraphs together.
    fn assemble(
        self,
        mut segments: Vec<Segment>,
        results: &HashMap<usize, Translation>,
    ) -> Result<TranslationReport> {
        let plan = self.plan;
        let article = plan.article;
        let mut placed: Vec<(String, Vec<Span>)> = Vec::with_capacity(self.units.len());
        for (unit, seg) in self.units.iter().zip(segments.iter_mut()) {
            let (text, spans, problems) = place_spans(&seg.translation, unit, results);
            seg.problems.extend(problems);
            placed.push((text, spans));
        }
        let mut title = article.title.clone();
        if plan.title_from.is_some() {
            if let Some(i) = self.units.iter().position(|u| u.paragraph.is_none()) {
                title = Some(placed[i].0.clone());
            }
        }
        let mut paragraphs = Vec::with_capacity(article.paragraphs.len());
        for (i, p) in article.paragraphs.iter().enumerate() {
            let from = plan.paragraph_from[i];
            let units = self.by_paragraph.get(&i);
            let translated = match units {
                Some(units) if from.is_some() => {
                    join_units(units.iter().map(|&u| &placed[u]), p.kind)
                }
                _ => p.clone(),
            };
            paragraphs.push(TranslatedParagraph {
                from: from.or_else(|| lang::detect(&p.text).known()),
                passthrough: from.is_none() || units.is_none(),
                source: p.clone(),
                translated,
            });
        }
        let mut problems: Vec<ReportedProblem> = segments
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.problems.iter().map(move |p| ReportedProblem {
                    segment: Some(i),
                    paragraph: s.paragraph,
                    problem: p.clone(),
                })
            })
            .collect();
        // In reading order: the headline's first, then by paragraph.
        problems.extend(plan.foreign_problems());
        problems.sort_by_key(|p| p.paragraph.map_or(0, |i| i + 1));
        Ok(TranslationReport {
            title,
            source_title: article.title.clone(),
            metadata: article.metadata.clone(),
            languages: Languages {
                from: plan.sources(),
                to: plan.opts.to,
            },
            engine: Some(self.translator.engine_name().to_string()),
            dtype: self.translator.dtype().map(str::to_string),
            paragraphs,
            segments,
            problems,
            notes: Vec::new(),
            stats: self.stats,
        })
    }
}

/// The segment of `unit` from the translations of its parts, checked.
fn segment_of(unit: &Unit, to: Lang, results: &HashMap<usize, Translation>) -> Segment {
    let parts: Vec<&Translation> = unit.parts.iter().filter_map(|j| results.get(j)).collect();
    let translation = parts
        .iter()
        .map(|t| t.text.as_str())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let tokens: usize = parts.iter().map(|t| t.tokens.max(1)).sum();
    let score = parts
        .iter()
        .map(|t| t.score * t.tokens.max(1) as f32)
        .sum::<f32>()
        / tokens.max(1) as f32;
    let mut problems = check(&unit.source, &translation, unit.from, to);
    if parts.iter().any(|t| t.cut) {
        problems.push(Problem::Cut);
    }
    Segment {
        paragraph: unit.paragraph,
        from: unit.from,
        source: unit.source.clone(),
        translation,
        score,
        parts: unit.parts.len(),
        retried: false,
        problems,
    }
}

/// Whether `s` holds nothing but whitespace and punctuation.
fn is_filler(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_whitespace() || c.is_ascii_punctuation() || "…»«“”„–—".contains(c))
}

/// The spans of a paragraph inside `range`, clipped to it and made relative to it.
fn clip_spans(spans: &[Span], range: &Range<usize>) -> Vec<Span> {
    spans
        .iter()
        .filter_map(|s| {
            let start = s.start.max(range.start);
            let end = s.end.min(range.end);
            (start < end).then(|| Span {
                start: start - range.start,
                end: end - range.start,
                style: s.style.clone(),
            })
        })
        .collect()
}

/// The translated unit text with its markup, and the markup problems.
fn place_spans(
    translation: &str,
    unit: &Unit,
    results: &HashMap<usize, Translation>,
) -> (String, Vec<Span>, Vec<Problem>) {
    let mut text = translation.to_string();
    let mut spans = Vec::new();
    let mut problems = Vec::new();
    for w in &unit.whole {
        let body = text.trim_end();
        let end = if w.punct_outside {
            body.trim_end_matches(['.', '!', '?', '…', ';', ':', ','])
                .len()
        } else {
            body.len()
        };
        if end > 0 {
            spans.push(Span {
                start: 0,
                end,
                style: w.style.clone(),
            });
        }
    }
    for s in &unit.inner {
        let needle = match s.job.and_then(|j| results.get(&j)) {
            Some(t) => t
                .text
                .trim()
                .trim_end_matches(['.', '!', '?', '…'])
                .to_string(),
            None => s.text.clone(),
        };
        if needle.is_empty() {
            continue;
        }
        if let Some(r) = find_text(&text, &needle) {
            spans.push(Span {
                start: r.start,
                end: r.end,
                style: s.style.clone(),
            });
            continue;
        }
        match &s.style {
            Style::Link { .. } | Style::Code => {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push('(');
                let start = text.len();
                text.push_str(&needle);
                spans.push(Span {
                    start,
                    end: text.len(),
                    style: s.style.clone(),
                });
                text.push(')');
                if matches!(s.style, Style::Link { .. }) {
                    problems.push(Problem::LinkMoved { text: needle });
                }
            }
            Style::Strong | Style::Emphasis => {
                problems.push(Problem::MarkupDropped { text: needle })
            }
        }
    }
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    (text, spans, problems)
}

/// Byte range of `needle` in `hay` as whole words: exact first, then ignoring case
/// where lowercasing keeps byte offsets.
fn find_text(hay: &str, needle: &str) -> Option<Range<usize>> {
    let whole_words = |h: &str, n: &str| -> Option<Range<usize>> {
        h.match_indices(n).map(|(i, _)| i..i + n.len()).find(|r| {
            let before = h[..r.start].chars().next_back();
            let after = h[r.end..].chars().next();
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
        })
    };
    if let Some(r) = whole_words(hay, needle) {
        return Some(r);
    }
    let (lh, ln) = (hay.to_lowercase(), needle.to_lowercase());
    if lh.len() != hay.len() || ln.len() != needle.len() {
        return None;
    }
    whole_words(&lh, &ln)
}

/// A paragraph from translated units, joined by spaces, spans shifted.
fn join_units<'a>(
    units: impl Iterator<Item = &'a (String, Vec<Span>)>,
    kind: BlockKind,
) -> Paragraph {
    let mut text = String::new();
    let mut spans = Vec::new();
    for (t, ss) in units {
        if t.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        let offset = text.len();
        text.push_str(t);
        spans.extend(ss.iter().map(|s| Span {
            start: s.start + offset,
            end: s.end + offset,
            style: s.style.clone(),
        }));
    }
    Paragraph { text, spans, kind }
}

/// Splits `text` into pieces of at most `limit` tokens (by `count`): at the clause
/// boundary nearest the middle (`;`, `:`, dashes, `,` in that preference), else between
/// words, else between characters. Nothing is dropped: the pieces joined by single
/// spaces give the text back up to whitespace.
pub fn split_to_fit(
    text: &str,
    limit: usize,
    count: &dyn Fn(&str) -> Result<usize>,
) -> Result<Vec<String>> {
    let text = text.trim();
    if text.is_empty() || count(text)? <= limit {
        return Ok(vec![text.to_string()]);
    }
    let Some(cut) = best_cut(text) else {
        return Ok(vec![text.to_string()]);
    };
    let mut out = split_to_fit(&text[..cut], limit, count)?;
    out.extend(split_to_fit(&text[cut..], limit, count)?);
    Ok(out)
}

/// Where to cut `text` in two: a byte offset strictly inside it, on a char boundary.
fn best_cut(text: &str) -> Option<usize> {
    let mid = text.len() / 2;
    let nearest = |cands: Vec<usize>| -> Option<usize> {
        cands
            .into_iter()
            .filter(|&c| c > 0 && c < text.len())
            .min_by_key(|&c| c.abs_diff(mid))
    };
    let after =
        |pat: &str| -> Vec<usize> { text.match_indices(pat).map(|(i, m)| i + m.len()).collect() };
    let classes: [&[&str]; 4] = [&["; "], &[": "], &[" — ", " – ", " - "], &[", "]];
    for class in classes {
        let cands: Vec<usize> = class.iter().flat_map(|p| after(p)).collect();
        // A boundary near an end gains little: prefer one in the middle half.
        let quarter = text.len() / 4;
        if let Some(c) = nearest(cands).filter(|&c| c >= quarter && c <= text.len() - quarter) {
            return Some(c);
        }
    }
    let spaces: Vec<usize> = text
        .char_indices()
        .filter(|(_, c)| c.is_whitespace())
        .map(|(i, _)| i)
        .collect();
    if let Some(c) = nearest(spaces) {
        return Some(c);
    }
    let chars: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    nearest(chars)
}

#[cfg(test)]
mod tests {
    use super::super::checks::words;
    use super::*;
    use crate::article::read::Format;

    /// Text and Markdown always parse.
    fn parse(text: &str, format: Format) -> Article {
        crate::article::read::parse(text, format).expect("text parses")
    }

    /// A fake model: "translates" by upper-casing, counts one token per word plus one,
    /// accepts `max` tokens, and records every batch.
    struct Upper {
        max: usize,
        batches: Vec<Vec<String>>,
        beams: Vec<usize>,
        /// Drops digits from its output on the first (greedy) attempt.
        drop_digits_when_greedy: bool,
    }

    impl Upper {
        fn new(max: usize) -> Self {
            Upper {
                max,
                batches: Vec::new(),
                beams: Vec::new(),
                drop_digits_when_greedy: false,
            }
        }
    }

    impl Translator for Upper {
        fn engine_name(&self) -> &'static str {
            "upper"
        }
        fn count_tokens(&self, text: &str) -> Result<usize> {
            Ok(text.split_whitespace().count() + 1)
        }
        fn max_source_tokens(&self) -> usize {
            self.max
        }
        fn translate_batch(
            &mut self,
            segments: &[&str],
            _from: Lang,
            _to: Lang,
            opts: &DecodeOptions,
        ) -> Result<Vec<Translation>> {
            for s in segments {
                assert!(self.count_tokens(s)? <= self.max, "too long: {s}");
            }
            self.batches
                .push(segments.iter().map(|s| s.to_string()).collect());
            self.beams.push(opts.beam_size);
            Ok(segments
                .iter()
                .map(|s| {
                    let mut text = s.to_uppercase();
                    if self.drop_digits_when_greedy && opts.beam_size == 1 {
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

    fn to_ru() -> TranslateOptions {
        TranslateOptions {
            to: Lang::Ru,
            ..TranslateOptions::default()
        }
    }

    #[test]
    fn every_sentence_becomes_a_segment_in_order() {
        let article = parse(
            "The headline here\n\nFirst sentence is here. Second one follows it.\n\nThird is alone in its paragraph.\n",
            Format::Text,
        );
        let mut t = Upper::new(100);
        let r = translate(&article, &mut t, &to_ru()).unwrap();
        let sources: Vec<&str> = r.segments.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(
            sources[1..],
            [
                "First sentence is here.",
                "Second one follows it.",
                "Third is alone in its paragraph."
            ]
        );
        assert_eq!(r.segments[0].paragraph, None);
        assert_eq!(r.title.as_deref(), Some("THE HEADLINE HERE"));
        assert_eq!(r.paragraphs.len(), 2);
        assert_eq!(
            r.paragraphs[0].translated.text,
            "FIRST SENTENCE IS HERE. SECOND ONE FOLLOWS IT."
        );
        assert_eq!(r.languages.from, vec![Lang::En]);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
    }

    #[test]
    fn batches_are_sorted_by_length_and_bounded() {
        let text = "Short one here. This sentence is rather longer than the first one was. Mid length sentence now.";
        let article = parse(text, Format::Text);
        let mut t = Upper::new(100);
        let opts = TranslateOptions {
            batch_tokens: 20,
            ..to_ru()
        };
        let r = translate(&article, &mut t, &opts).unwrap();
        // Longest (11 tokens) alone: 20 / 11 = 1 row; then the two shorter together.
        assert_eq!(t.batches.len(), 2);
        assert_eq!(t.batches[0].len(), 1);
        assert!(t.batches[0][0].starts_with("This sentence"));
        assert_eq!(r.paragraphs[0].translated.text, text.to_uppercase());
    }

    #[test]
    fn long_sentences_are_split_never_truncated() {
        let sentence = "One two three four five six, seven eight nine ten eleven twelve; thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty.";
        let article = parse(sentence, Format::Text);
        let mut t = Upper::new(12);
        let r = translate(&article, &mut t, &to_ru()).unwrap();
        assert_eq!(r.segments.len(), 1);
        assert!(r.segments[0].parts > 1);
        assert_eq!(
            words(&r.segments[0].translation),
            words(&sentence.to_uppercase())
        );
        // A word longer than the limit in characters still comes through whole.
        let pieces = split_to_fit("abcdefghij", 1, &|s| Ok(s.len())).unwrap();
        assert_eq!(pieces.concat(), "abcdefghij");
    }

    #[test]
    fn target_language_paragraphs_pass_through() {
        let article = parse(
            "Первый абзац написан по-русски и остаётся как есть.\n\nThe second paragraph is written in English and gets translated.\n",
            Format::Text,
        );
        let plan = Plan::new(&article, &to_ru()).unwrap();
        assert_eq!(plan.sources(), vec![Lang::En]);
        let mut t = Upper::new(100);
        let r = plan.run(Some(&mut t)).unwrap();
        assert!(r.paragraphs[0].passthrough);
        assert_eq!(r.paragraphs[0].translated, article.paragraphs[0]);
        assert!(!r.paragraphs[1].passthrough);
        assert_eq!(r.segments.len(), 1);
        // All in the target language: no model needed, a note says so.
        let ru = parse(
            "Всё уже написано по-русски, переводить нечего.",
            Format::Text,
        );
        let plan = Plan::new(&ru, &to_ru()).unwrap();
        assert!(plan.sources().is_empty());
        let r = plan.run(None).unwrap();
        assert_eq!(r.paragraphs[0].translated, ru.paragraphs[0]);
        assert!(r.notes.iter().any(|n| n.contains("nothing to translate")));
        assert!(Plan::new(
            &ru,
            &TranslateOptions {
                from: Some(Lang::Ru),
                ..to_ru()
            }
        )
        .is_err());
    }

    #[test]
    fn spans_are_put_back() {
        let article = parse(
            "Read [the report](https://example.com/r) now. **A whole bold sentence.** Some *stress* here and `code` too.",
            Format::Markdown,
        );
        let mut t = Upper::new(100);
        let r = translate(&article, &mut t, &to_ru()).unwrap();
        let p = &r.paragraphs[0].translated;
        let md = crate::article::read::render_markdown(&p.text, &p.spans);
        assert!(md.contains("[THE REPORT](https://example.com/r)"), "{md}");
        assert!(md.contains("**A WHOLE BOLD SENTENCE.**"), "{md}");
        assert!(md.contains("*STRESS*"), "{md}");
        assert!(md.contains("`CODE`"), "{md}");
        assert!(r.problems.is_empty(), "{:?}", r.problems);
    }

    #[test]
    fn unplaceable_links_follow_the_sentence() {
        let unit = Unit {
            paragraph: Some(0),
            from: Lang::En,
            source: "See the site.".into(),
            parts: vec![0],
            whole: vec![],
            inner: vec![
                InnerSpan {
                    style: Style::Link {
                        url: "https://x.org".into(),
                    },
                    job: Some(1),
                    text: "the site".into(),
                },
                InnerSpan {
                    style: Style::Emphasis,
                    job: Some(2),
                    text: "See".into(),
                },
            ],
        };
        let tr = |t: &str| Translation {
            text: t.into(),
            score: 0.0,
            tokens: 1,
            cut: false,
        };
        let results: HashMap<usize, Translation> =
            [(1, tr("сайт")), (2, tr("Смотри"))].into_iter().collect();
        let (text, spans, problems) = place_spans("Посмотрите веб-страницу.", &unit, &results);
        assert_eq!(text, "Посмотрите веб-страницу. (сайт)");
        assert_eq!(&text[spans[0].start..spans[0].end], "сайт");
        assert_eq!(problems.len(), 2);
    }

    #[test]
    fn failing_sentences_are_retried_with_beams_and_reported() {
        let article = parse(
            "Prices rose by 15 % in 2020. Nothing else happened.",
            Format::Text,
        );
        let mut t = Upper::new(100);
        t.drop_digits_when_greedy = true;
        let r = translate(&article, &mut t, &to_ru()).unwrap();
        assert_eq!(t.beams, vec![1, 4]);
        assert!(r.segments[0].retried && r.segments[0].problems.is_empty());
        assert!(!r.segments[1].retried);
        // Without retries the problem is reported.
        let mut t = Upper::new(100);
        t.drop_digits_when_greedy = true;
        let opts = TranslateOptions {
            retry: false,
            ..to_ru()
        };
        let r = translate(&article, &mut t, &opts).unwrap();
        assert_eq!(r.problems.len(), 2);
        assert_eq!(r.problems[0].segment, Some(0));
    }

    #[test]
    fn cuts_prefer_clause_boundaries_near_the_middle() {
        let t = "aaaa bbbb, cccc dddd; eeee ffff gggg";
        assert_eq!(&t[..best_cut(t).unwrap()], "aaaa bbbb, cccc dddd; ");
        assert_eq!(best_cut("x"), None);
    }
}
