//! An article as sentences: paragraphs, their language, their sentences.

use serde::Serialize;

use crate::article::lang::{self, Detection};
use crate::article::{sentences, Article, Metadata};

/// One paragraph split into sentences.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentedParagraph {
    /// Detected language of the paragraph.
    pub language: Detection,
    /// The paragraph's sentences in order.
    pub sentences: Vec<String>,
}

/// An article split into sentences.
#[derive(Debug, Clone, Serialize)]
pub struct Segmented {
    /// The headline, when there is one.
    pub title: Option<String>,
    /// Metadata found in the article.
    pub metadata: Metadata,
    /// Body paragraphs, split.
    pub paragraphs: Vec<SegmentedParagraph>,
}

/// Splits every paragraph of `article` with the rules of its detected language.
pub fn segment_article(article: &Article) -> Segmented {
    let paragraphs = article
        .paragraphs
        .iter()
        .map(|p| {
            let language = lang::detect(&p.text);
            let sentences = sentences::split(&p.text, language.known())
                .into_iter()
                .map(|r| p.text[r].to_string())
                .collect();
            SegmentedParagraph {
                language,
                sentences,
            }
        })
        .collect();
    Segmented {
        title: article.title.clone(),
        metadata: article.metadata.clone(),
        paragraphs,
    }
}
