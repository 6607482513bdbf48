//! Which parts of an article are translated, and from which language: decided from
//! the text alone, before any model is loaded, so that an article with nothing to
//! translate needs no model at all.

use super::{
    Languages, ReportedProblem, TranslateOptions, TranslateStats, TranslatedParagraph,
    TranslationReport,
};
use crate::article::{lang, Article, Lang};
use crate::pipeline::checks::Problem;
use crate::{Error, Result};

/// What each paragraph and the headline will be translated from; built before any model
/// is loaded, so that an article with nothing to translate needs no model at all.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    pub(super) article: &'a Article,
    pub(super) opts: TranslateOptions,
    pub(super) title_from: Option<Lang>,
    /// Source language of each paragraph; `None`: passes through.
    pub(super) paragraph_from: Vec<Option<Lang>>,
    pub(super) notes: Vec<String>,
    /// Headline (`None`) and paragraphs in a language svodka does not translate, with
    /// that language: kept as they are and reported.
    pub(super) foreign: Vec<(Option<usize>, String)>,
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

    /// The report of an article that is kept as it is.
    pub(super) fn passthrough(&self) -> TranslationReport {
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
            notes: self.notes.clone(),
            stats: TranslateStats::default(),
        }
    }

    /// A problem for each part kept because of its language.
    pub(super) fn foreign_problems(&self) -> Vec<ReportedProblem> {
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
