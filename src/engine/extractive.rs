//! A summarizer that needs no model: sentence ranking over the article itself.
//!
//! The method is biased LexRank (Erkan & Radev 2004; Otterbacher et al. 2005):
//!
//! - **Sentences** come from [`crate::article::sentences::split`] over body paragraphs
//!   (sub-headings are not candidates, nor is the title). An input of more than
//!   [`MAX_RANKED`] sentences (a book, a dump; no news article) is ranked on its first
//!   half of that and an evenly spaced sample of the rest, so that time and memory,
//!   quadratic in sentences, stay bounded whatever the input.
//! - **Terms** are lowercased words, minus the stop-word lists of the `stop-words` crate
//!   (Stopwords ISO), minus pure numbers and one-letter tokens, reduced by the Snowball
//!   stemmer of the language (`rust-stemmers`), so that "Лукашенко"/"Лукашенко" and
//!   "border"/"borders" meet. Russian "ё" is folded to "е" first, as writers do.
//! - **Similarity** is the cosine of TF-IDF vectors, the sentences of the article being
//!   the documents (smoothed IDF, so a word in every sentence still counts a little).
//! - **Ranking** is PageRank over the full similarity graph (continuous LexRank), with a
//!   restart distribution that is not uniform: it favours lead sentences (news puts the
//!   facts first) and sentences close to the headline (the editor's own summary). Both
//!   act only through the restart share [`TELEPORT`], so they tilt the ranking rather
//!   than decide it.
//! - **Selection** is greedy maximal marginal relevance: each pick maximises rank minus
//!   similarity to what is already chosen, near-duplicates are skipped outright, and
//!   sentences shorter than [`MIN_WORDS`] words are only taken when nothing longer is
//!   left. The chosen sentences are returned in article order.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use rust_stemmers::{Algorithm, Stemmer};

use crate::article::{sentences, Article, BlockKind, Lang};
use crate::engine::{Summarizer, Summary, SummaryOptions, SummarySentence};

/// Share of the random walk that restarts by the lead/headline prior instead of
/// following similarity edges. Plain LexRank uses 0.15 with a uniform restart; news
/// needs more, because the sentence that says who met whom is often long and full of
/// names found nowhere else, hence weakly connected, while it is the lead. At 0.5
/// centrality still decides among sentences of similar position (biased LexRank found
/// large bias weights best for query-focused summaries).
const TELEPORT: f64 = 0.5;

/// Restart weight of sentence `i` is `1 + LEAD_WEIGHT * exp(-i / LEAD_DECAY)` plus the
/// headline term: the first sentence five times a late one, the fourth about 2.5 times.
const LEAD_WEIGHT: f64 = 4.0;

/// Sentences over which the lead prior decays by a factor e.
const LEAD_DECAY: f64 = 3.0;

/// Added teleport weight per unit of cosine similarity to the headline.
const TITLE_WEIGHT: f64 = 2.0;

/// Weight of rank against redundancy in maximal marginal relevance.
const MMR_LAMBDA: f64 = 0.7;

/// Cosine similarity at which a sentence repeats one already chosen.
const DUPLICATE_SIMILARITY: f64 = 0.6;

/// Sentences with fewer words are too short to stand for the article.
const MIN_WORDS: usize = 5;

/// PageRank stops when the L1 change of one iteration falls below this.
const CONVERGENCE: f64 = 1e-9;

/// PageRank never runs more iterations than this.
const MAX_ITERATIONS: usize = 200;

/// Most sentences ranked: about 1,500 make a long read, and ranking compares every
/// pair, so beyond this the input is sampled (see the module documentation).
pub const MAX_RANKED: usize = 2000;

/// The model-free summarizer: picks the article's most central sentences.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extractive;

impl Extractive {
    /// A new extractive summarizer.
    pub fn new() -> Self {
        Extractive
    }
}

impl Summarizer for Extractive {
    fn name(&self) -> &'static str {
        "extractive"
    }

    fn summarize(
        &mut self,
        article: &Article,
        lang: Lang,
        opts: &SummaryOptions,
    ) -> crate::Result<Summary> {
        if let Some(wanted) = opts.lang {
            if wanted != lang {
                return Err(crate::Error::Unsupported(format!(
                    "the extractive engine cannot write a summary in {} of {} article; \
                     use a neural engine or omit --lang",
                    wanted.english_name(),
                    with_article(lang)
                )));
            }
        }
        let terms = Terms::new(lang);
        let sentences = candidate_sentences(article, lang, &terms);
        let vectors = TfIdf::new(&sentences);
        let title = article
            .title
            .as_deref()
            .map(|t| vectors.vector(&terms.of(t)))
            .unwrap_or_default();
        let ranks = rank(&vectors, &title);
        let chosen = select(&sentences, &vectors, &ranks, opts);
        Ok(Summary {
            sentences: chosen
                .into_iter()
                .map(|i| SummarySentence {
                    text: sentences[i].text.clone(),
                    paragraph: Some(sentences[i].paragraph),
                    score: Some(ranks[i] as f32),
                })
                .collect(),
            lang,
        })
    }
}

fn with_article(lang: Lang) -> &'static str {
    match lang {
        Lang::Ru => "a Russian",
        Lang::En => "an English",
    }
}

/// A sentence that may go into the summary.
#[derive(Debug, Clone)]
struct Sentence {
    text: String,
    paragraph: usize,
    words: usize,
    terms: Vec<String>,
}

/// The body sentences of `article` that are ranked (all of them up to [`MAX_RANKED`]),
/// in article order.
fn candidate_sentences(article: &Article, lang: Lang, terms: &Terms) -> Vec<Sentence> {
    let mut found: Vec<(&str, usize)> = Vec::new();
    for (index, paragraph) in article.paragraphs.iter().enumerate() {
        if paragraph.kind == BlockKind::Heading {
            continue;
        }
        let ranges: Vec<Range<usize>> = sentences::split(&paragraph.text, Some(lang));
        for range in ranges {
            let Some(text) = paragraph.text.get(range).map(str::trim) else {
                continue;
            };
            if !text.chars().any(char::is_alphabetic) {
                continue;
            }
            found.push((text, index));
        }
    }
    ranked_share(found.len(), MAX_RANKED)
        .map(|i| {
            let (text, paragraph) = found[i];
            Sentence {
                text: text.to_string(),
                paragraph,
                words: word_count(text),
                terms: terms.of(text),
            }
        })
        .collect()
}

/// Indices of the sentences ranked out of `n`, at most `max`, increasing: all of them,
/// else the first `max / 2` and the rest evenly spaced over what follows.
fn ranked_share(n: usize, max: usize) -> impl Iterator<Item = usize> {
    let lead = if n <= max { n } else { max / 2 };
    let sampled = if n <= max { 0 } else { max - lead };
    let rest = n - lead;
    (0..lead).chain((0..sampled).map(move |k| lead + k * rest / sampled))
}

fn word_count(text: &str) -> usize {
    text.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count()
}

/// Turns text into stemmed content terms for one language.
struct Terms {
    stemmer: Stemmer,
    stop: HashSet<&'static str>,
}

impl Terms {
    fn new(lang: Lang) -> Self {
        let algorithm = match lang {
            Lang::Ru => Algorithm::Russian,
            Lang::En => Algorithm::English,
        };
        Terms {
            stemmer: Stemmer::create(algorithm),
            stop: stop_words::lookup(lang.code())
                .unwrap_or_default()
                .iter()
                .copied()
                .collect(),
        }
    }

    fn of(&self, text: &str) -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .map(|w| w.to_lowercase().replace('ё', "е"))
            .filter(|w| w.chars().count() > 1)
            .filter(|w| !w.chars().all(|c| c.is_numeric()))
            .filter(|w| !self.stop.contains(w.as_str()))
            .map(|w| self.stemmer.stem(&w).into_owned())
            .collect()
    }
}

/// TF-IDF vectors of the candidate sentences, L2-normalised, as sparse term maps.
struct TfIdf {
    idf: HashMap<String, f64>,
    rows: Vec<HashMap<String, f64>>,
}

impl TfIdf {
    fn new(sentences: &[Sentence]) -> Self {
        let n = sentences.len() as f64;
        let mut df: HashMap<&str, usize> = HashMap::new();
        for sentence in sentences {
            let unique: HashSet<&str> = sentence.terms.iter().map(String::as_str).collect();
            for term in unique {
                *df.entry(term).or_default() += 1;
            }
        }
        let idf: HashMap<String, f64> = df
            .into_iter()
            .map(|(term, df)| (term.to_string(), ((1.0 + n) / (1.0 + df as f64)).ln() + 1.0))
            .collect();
        let mut vectors = TfIdf {
            idf,
            rows: Vec::new(),
        };
        vectors.rows = sentences.iter().map(|s| vectors.vector(&s.terms)).collect();
        vectors
    }

    /// The normalised vector of any bag of terms; terms unseen in the article are dropped.
    fn vector(&self, terms: &[String]) -> HashMap<String, f64> {
        let mut v: HashMap<String, f64> = HashMap::new();
        for term in terms {
            if let Some(idf) = self.idf.get(term) {
                *v.entry(term.clone()).or_default() += idf;
            }
        }
        let norm = v.values().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            v.values_mut().for_each(|x| *x /= norm);
        }
        v
    }

    fn similarity(&self, i: usize, j: usize) -> f64 {
        cosine(&self.rows[i], &self.rows[j])
    }

    fn len(&self) -> usize {
        self.rows.len()
    }
}

/// Cosine of two normalised sparse vectors.
fn cosine(a: &HashMap<String, f64>, b: &HashMap<String, f64>) -> f64 {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    small
        .iter()
        .filter_map(|(term, x)| large.get(term).map(|y| x * y))
        .sum()
}

/// Biased LexRank scores, scaled so that the best sentence has 1.
fn rank(vectors: &TfIdf, title: &HashMap<String, f64>) -> Vec<f64> {
    let n = vectors.len();
    if n == 0 {
        return Vec::new();
    }
    let weights: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    if i == j {
                        0.0
                    } else {
                        vectors.similarity(i, j)
                    }
                })
                .collect()
        })
        .collect();
    let out_weight: Vec<f64> = weights.iter().map(|row| row.iter().sum()).collect();
    let mut prior: Vec<f64> = (0..n)
        .map(|i| {
            1.0 + LEAD_WEIGHT * (-(i as f64) / LEAD_DECAY).exp()
                + TITLE_WEIGHT * cosine(&vectors.rows[i], title)
        })
        .collect();
    let total: f64 = prior.iter().sum();
    prior.iter_mut().for_each(|p| *p /= total);

    let mut scores = prior.clone();
    for _ in 0..MAX_ITERATIONS {
        // A sentence sharing no term with any other spreads its mass by the prior.
        let dangling: f64 = (0..n)
            .filter(|&j| out_weight[j] == 0.0)
            .map(|j| scores[j])
            .sum();
        let next: Vec<f64> = (0..n)
            .map(|i| {
                let walked: f64 = (0..n)
                    .filter(|&j| out_weight[j] > 0.0)
                    .map(|j| scores[j] * weights[j][i] / out_weight[j])
                    .sum();
                TELEPORT * prior[i] + (1.0 - TELEPORT) * (walked + dangling * prior[i])
            })
            .collect();
        let change: f64 = next.iter().zip(&scores).map(|(a, b)| (a - b).abs()).sum();
        scores = next;
        if change < CONVERGENCE {
            break;
        }
    }
    let best = scores.iter().copied().fold(0.0, f64::max);
    if best > 0.0 {
        scores.iter_mut().for_each(|s| *s /= best);
    }
    scores
}

/// Indices of the chosen sentences, in article order.
fn select(
    sentences: &[Sentence],
    vectors: &TfIdf,
    ranks: &[f64],
    opts: &SummaryOptions,
) -> Vec<usize> {
    let long_enough = sentences.iter().any(|s| s.words >= MIN_WORDS);
    let mut candidates: Vec<usize> = (0..sentences.len())
        .filter(|&i| !long_enough || sentences[i].words >= MIN_WORDS)
        .collect();
    // A word budget replaces the sentence count (see `SummaryOptions::words`).
    let max_sentences = match opts.words {
        Some(_) => usize::MAX,
        None => opts.sentences.max(1),
    };
    let mut chosen: Vec<usize> = Vec::new();
    // Similarity of each sentence to the closest one chosen so far, kept up to date as
    // sentences are chosen, so that a long word budget costs no more than n per pick.
    let mut redundancy = vec![0.0f64; sentences.len()];
    let mut words = 0;
    while chosen.len() < max_sentences {
        if let Some(&last) = chosen.last() {
            for &i in &candidates {
                redundancy[i] = redundancy[i].max(vectors.similarity(i, last));
            }
            candidates.retain(|&i| redundancy[i] < DUPLICATE_SIMILARITY);
        }
        let mmr = |i: usize| MMR_LAMBDA * ranks[i] - (1.0 - MMR_LAMBDA) * redundancy[i];
        let best = candidates
            .iter()
            .copied()
            .max_by(|&a, &b| mmr(a).total_cmp(&mmr(b)).then(b.cmp(&a)));
        let Some(best) = best else { break };
        if let Some(budget) = opts.words {
            if !chosen.is_empty() && words + sentences[best].words > budget {
                break;
            }
        }
        words += sentences[best].words;
        chosen.push(best);
        candidates.retain(|&i| i != best);
    }
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::Paragraph;

    fn article(title: &str, paragraphs: &[&str]) -> Article {
        Article {
            title: Some(title.to_string()),
            paragraphs: paragraphs
                .iter()
                .map(|text| Paragraph {
                    text: text.to_string(),
                    ..Paragraph::default()
                })
                .collect(),
            ..Article::default()
        }
    }

    fn summarize(article: &Article, lang: Lang, opts: &SummaryOptions) -> Summary {
        match Extractive::new().summarize(article, lang, opts) {
            Ok(summary) => summary,
            Err(e) => panic!("summarize failed: {e}"),
        }
    }

    const RU: &[&str] = &[
        "Правительство России утвердило новую программу поддержки малого бизнеса. \
         Программа рассчитана на три года и охватит все регионы страны.",
        "По словам министра экономики, поддержка малого бизнеса станет приоритетом \
         правительства. Малый бизнес получит льготные кредиты и налоговые каникулы.",
        "Да. Нет.",
        "Эксперты считают, что программа поддержки поможет малому бизнесу пережить кризис. \
         Погода в Москве в выходные будет солнечной.",
    ];

    #[test]
    fn picks_central_sentences_in_article_order() {
        let a = article("Правительство поддержит малый бизнес", RU);
        let s = summarize(&a, Lang::Ru, &SummaryOptions::default());
        assert_eq!(s.sentences.len(), 3);
        assert_eq!(s.lang, Lang::Ru);
        let paragraphs: Vec<usize> = s.sentences.iter().filter_map(|x| x.paragraph).collect();
        let mut sorted = paragraphs.clone();
        sorted.sort_unstable();
        assert_eq!(paragraphs, sorted);
        let text: String = s.sentences.iter().map(|x| x.text.as_str()).collect();
        assert!(!text.contains("Погода"), "{text}");
        assert!(!text.contains("Да."), "{text}");
        assert!(s.sentences.iter().all(|x| x.score.is_some()));
    }

    #[test]
    fn sentence_count_larger_than_article_returns_all_long_sentences() {
        let a = article(
            "Title",
            &[
                "Belarus will reroute its oil exports through Russian ports. \
               The border between the two countries reopens next week.",
            ],
        );
        let opts = SummaryOptions {
            sentences: 10,
            ..SummaryOptions::default()
        };
        let s = summarize(&a, Lang::En, &opts);
        assert_eq!(s.sentences.len(), 2);
    }

    #[test]
    fn word_budget_is_honoured_but_one_sentence_always_comes() {
        let a = article("Правительство поддержит малый бизнес", RU);
        for budget in [1, 15, 25, 40] {
            let opts = SummaryOptions {
                words: Some(budget),
                ..SummaryOptions::default()
            };
            let s = summarize(&a, Lang::Ru, &opts);
            let words: usize = s.sentences.iter().map(|x| word_count(&x.text)).sum();
            assert!(!s.sentences.is_empty());
            assert!(
                s.sentences.len() == 1 || words <= budget,
                "{budget}: {words}"
            );
        }
    }

    #[test]
    fn near_duplicates_are_skipped() {
        let a = article(
            "Oil exports",
            &[
                "Belarus will reroute its oil exports through Russian ports next year.",
                "Belarus will reroute its oil exports through Russian ports next year, officials said.",
                "The talks in Minsk also covered reopening the border closed by the pandemic.",
            ],
        );
        let opts = SummaryOptions {
            sentences: 2,
            ..SummaryOptions::default()
        };
        let s = summarize(&a, Lang::En, &opts);
        assert_eq!(s.sentences.len(), 2);
        assert!(s.sentences.iter().any(|x| x.text.contains("border")));
    }

    #[test]
    fn short_sentences_only_when_nothing_else() {
        let a = article("Short", &["Yes. No. Maybe."]);
        let s = summarize(&a, Lang::En, &SummaryOptions::default());
        assert_eq!(s.sentences.len(), 3);
    }

    #[test]
    fn other_summary_language_is_refused() {
        let a = article("Правительство поддержит малый бизнес", RU);
        let opts = SummaryOptions {
            lang: Some(Lang::En),
            ..SummaryOptions::default()
        };
        let err = Extractive::new().summarize(&a, Lang::Ru, &opts);
        match err {
            Err(crate::Error::Unsupported(msg)) => assert_eq!(
                msg,
                "the extractive engine cannot write a summary in English of a Russian \
                 article; use a neural engine or omit --lang"
            ),
            other => panic!("expected Unsupported, got {other:?}"),
        }
        let same = SummaryOptions {
            lang: Some(Lang::Ru),
            ..SummaryOptions::default()
        };
        assert!(Extractive::new().summarize(&a, Lang::Ru, &same).is_ok());
    }

    #[test]
    fn empty_article_gives_empty_summary() {
        let s = summarize(&Article::default(), Lang::En, &SummaryOptions::default());
        assert!(s.sentences.is_empty());
    }

    /// A file under tests/fixtures.
    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The seed article as the reader would give it: headline as title, the body
    /// paragraphs without dateline, photo caption, "Related article" and source lines,
    /// and Markdown links reduced to their text.
    fn seed_article(text: &str) -> Article {
        let blocks: Vec<&str> = text
            .split("\n\n")
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .collect();
        let body = blocks
            .iter()
            .skip_while(|b| !b.starts_with("Russia and Belarus"))
            .take_while(|b| !b.starts_with("Original url"))
            .filter(|b| !b.starts_with("Related article"))
            .map(|b| b.replace("](#)", "").replace('[', "").replace("\\$", "$"))
            .collect::<Vec<_>>();
        let body: Vec<&str> = body.iter().map(String::as_str).collect();
        article(blocks[0], &body)
    }

    #[test]
    fn seed_article_summary_names_the_meeting_and_its_topics() {
        let text = fixture("articles/seed-article.txt");
        let a = seed_article(&text);
        assert_eq!(
            a.title.as_deref(),
            Some("Travel Ban, Oil Supplies on Russia-Belarus Agenda")
        );
        let s = summarize(&a, Lang::En, &SummaryOptions::default());
        let joined: Vec<&str> = s.sentences.iter().map(|x| x.text.as_str()).collect();
        let joined = joined.join(" ");
        println!("{joined}");
        assert_eq!(s.sentences.len(), 3);
        for word in ["Mishustin", "Lukashenko", "met"] {
            assert!(joined.contains(word), "{word} missing: {joined}");
        }
        assert!(
            ["border", "travel", "oil"]
                .iter()
                .any(|w| joined.contains(w)),
            "no border/travel/oil topic: {joined}"
        );
    }

    #[test]
    fn russian_wmt22_article_gives_three_sentences_in_order() {
        let text = fixture("news-wmt22/ru/lenta.ru.89832.txt");
        let (title, body) = text.split_once("\n\n").unwrap_or(("", &text));
        let a = article(title.trim(), &[body.trim()]);
        let s = summarize(&a, Lang::Ru, &SummaryOptions::default());
        for x in &s.sentences {
            println!("{:.3} {}", x.score.unwrap_or_default(), x.text);
        }
        assert_eq!(s.sentences.len(), 3);
        let positions: Vec<usize> = s
            .sentences
            .iter()
            .map(|x| body.find(&x.text).unwrap_or(usize::MAX))
            .collect();
        assert!(positions.iter().all(|&p| p != usize::MAX), "not verbatim");
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }

    #[test]
    fn ranked_share_is_everything_up_to_the_bound_then_lead_and_sample() {
        assert!(ranked_share(5, 10).eq(0..5));
        assert!(ranked_share(10, 10).eq(0..10));
        let share: Vec<usize> = ranked_share(1_000_003, 2000).collect();
        assert_eq!(share.len(), 2000);
        assert!(share[..1000].iter().copied().eq(0..1000));
        assert!(share.windows(2).all(|w| w[0] < w[1]));
        assert!(share[1999] > 990_000 && share[1999] < 1_000_003);
    }

    #[test]
    fn terms_are_stemmed_without_stop_words() {
        let en = Terms::new(Lang::En);
        assert_eq!(
            en.of("The borders were reopened in 2020"),
            ["border", "reopen"]
        );
        let ru = Terms::new(Lang::Ru);
        let terms = ru.of("Границы открыли ещё в 2020 году");
        assert!(terms.contains(&"границ".to_string()), "{terms:?}");
        assert!(!terms.iter().any(|t| t == "2020"));
    }
}
