//! Unit tests of article translation, with a fake model that upper-cases.

use super::super::checks::words;
use super::markup::{place_spans, InnerSpan};
use super::split::best_cut;
use super::work::Unit;
use super::*;
use crate::article::read::Format;
use crate::article::Style;
use crate::engine::Translation;
use crate::testing::Upper;
use std::collections::HashMap;

/// Text and Markdown always parse.
fn parse(text: &str, format: Format) -> Article {
    crate::article::read::parse(text, format).expect("text parses")
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
    assert_eq!(t.batches().len(), 2);
    assert_eq!(t.batches()[0].len(), 1);
    assert!(t.batches()[0][0].starts_with("This sentence"));
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
        score: Some(0.0),
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
    assert_eq!(t.beams(), vec![1, 4]);
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

#[test]
fn sentences_of_several_articles_share_batches_retries_included() {
    let a = parse(
        "Prices rose by 15 % in 2020. Nothing else happened.",
        Format::Text,
    );
    let b = parse(
        "The council met 3 times. It agreed on nothing at all.",
        Format::Text,
    );
    let c = parse(
        "Всё уже написано по-русски, переводить нечего.",
        Format::Text,
    );
    let mut t = Upper::new(100);
    t.drop_digits_when_greedy = true;
    let opts = to_ru();
    let done = translate_all(&mut t, &[(&a, &opts), (&c, &opts), (&b, &opts)]);
    // One first-attempt batch of the four English sentences, then one retry batch
    // holding the sentence of each article that lost its number.
    assert_eq!(
        done.batches,
        vec![
            BatchInfo {
                rows: 4,
                padded_tokens: 4 * 8,
                articles: 2,
                retry: false
            },
            BatchInfo {
                rows: 2,
                padded_tokens: 2 * 8,
                articles: 2,
                retry: true
            }
        ]
    );
    assert_eq!(t.beams(), vec![1, 4]);
    let reports: Vec<TranslationReport> = done.reports.into_iter().map(|r| r.unwrap()).collect();
    assert!(reports[1].paragraphs[0].passthrough);
    // Each comes out as it would alone.
    for (article, report) in [(&a, &reports[0]), (&b, &reports[2])] {
        let mut alone = Upper::new(100);
        alone.drop_digits_when_greedy = true;
        let single = translate(article, &mut alone, &opts).unwrap();
        assert_eq!(single.segments, report.segments);
        assert_eq!(single.paragraphs, report.paragraphs);
        assert_eq!(report.stats.batches, 2);
        assert_eq!(report.stats.retried, 1);
    }
}

#[test]
fn a_failing_batch_fails_only_the_articles_whose_text_failed() {
    /// Fails on any batch holding the word "poison".
    struct Picky(Upper);
    impl Translator for Picky {
        fn engine_name(&self) -> &'static str {
            "picky"
        }
        fn count_tokens(&self, text: &str) -> Result<usize> {
            self.0.count_tokens(text)
        }
        fn max_source_tokens(&self) -> usize {
            self.0.max_source_tokens()
        }
        fn translate_batch(
            &mut self,
            segments: &[&str],
            from: Lang,
            to: Lang,
            opts: &DecodeOptions,
        ) -> Result<Vec<Translation>> {
            if segments.iter().any(|s| s.contains("poison")) {
                return Err(Error::Model("the model choked".into()));
            }
            self.0.translate_batch(segments, from, to, opts)
        }
    }
    let good = parse("A fine sentence here. Another fine one.", Format::Text);
    let bad = parse(
        "This one holds poison inside. And a fine one.",
        Format::Text,
    );
    let opts = to_ru();
    let mut t = Picky(Upper::new(100));
    let done = translate_all(&mut t, &[(&good, &opts), (&bad, &opts)]);
    assert!(done.reports[0].is_ok());
    let err = done.reports[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("choked"), "{err}");
}

#[test]
fn scores_are_numbers_or_null_in_json() {
    let article = parse("Head\n\nOne sentence here.\n", Format::Text);
    let mut t = Upper::new(100);
    let mut r = translate(&article, &mut t, &to_ru()).unwrap();
    let json = |r: &TranslationReport| serde_json::to_value(&r.segments[1]).unwrap();
    assert_eq!(r.segments[1].score, Some(-0.5));
    assert_eq!(json(&r)["score"], -0.5);
    // An engine without scores (the LLM translator): the key stays, as null.
    r.segments[1].score = None;
    assert!(json(&r).as_object().unwrap()["score"].is_null());
}
