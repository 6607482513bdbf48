//! Language identification over the 80 news documents of the WMT22 ru-en test set:
//! Russian originals and their English translations, per document, per paragraph
//! (headline and body) and per human-made segment.
//!
//! Run with `cargo test --test lang_wmt22 -- --nocapture` to see the figures.

use std::path::{Path, PathBuf};

use svodka::article::lang::{detect, detect_article};
use svodka::article::{Article, Paragraph};

/// Paragraphs with at least this many letters must never be confused between ru and en.
const MIN_LETTERS: usize = 20;

/// The committed copy of the WMT22 news documents.
fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/news-wmt22")
}

fn documents(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), text)
        })
        .collect()
}

/// Headline, blank line, body: the title and the body paragraphs.
fn article(text: &str) -> Article {
    let mut blocks = text
        .split("\n\n")
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(str::to_string);
    Article {
        title: blocks.next(),
        paragraphs: blocks
            .map(|text| Paragraph {
                text,
                ..Paragraph::default()
            })
            .collect(),
        ..Article::default()
    }
}

fn letters(text: &str) -> usize {
    text.chars().filter(|c| c.is_alphabetic()).count()
}

/// Tally of detections against the expected language.
#[derive(Default)]
struct Tally {
    total: usize,
    correct: usize,
    wrong: Vec<String>,
    crossed: Vec<String>,
}

impl Tally {
    fn add(&mut self, text: &str, expected: &str) {
        let got = detect(text);
        self.total += 1;
        if got.lang == expected {
            self.correct += 1;
            return;
        }
        let line = format!("{expected} → {} ({:.2}): {text}", got.lang, got.confidence);
        let other = if expected == "ru" { "en" } else { "ru" };
        if got.lang == other && letters(text) >= MIN_LETTERS {
            self.crossed.push(line.clone());
        }
        self.wrong.push(line);
    }

    fn report(&self, what: &str) {
        println!(
            "{what}: {}/{} correct ({:.2}%)",
            self.correct,
            self.total,
            100.0 * self.correct as f64 / self.total.max(1) as f64
        );
        for line in &self.wrong {
            println!("  {line}");
        }
    }
}

#[test]
fn wmt22_articles_and_paragraphs() {
    let dir = data_dir();
    for lang in ["ru", "en"] {
        let docs = documents(&dir.join(lang));
        assert_eq!(
            docs.len(),
            80,
            "{lang}: expected the 80 WMT22 news documents"
        );
        let mut paragraphs = Tally::default();
        let mut headlines = Tally::default();
        for (path, text) in &docs {
            let article = article(text);
            let got = detect_article(&article);
            assert_eq!(got.lang, lang, "{path}: {got:?}");
            if let Some(title) = &article.title {
                headlines.add(title, lang);
                paragraphs.add(title, lang);
            }
            for p in &article.paragraphs {
                paragraphs.add(&p.text, lang);
            }
        }
        headlines.report(&format!("{lang} headlines"));
        paragraphs.report(&format!("{lang} paragraphs (headlines included)"));
        assert!(
            paragraphs.crossed.is_empty(),
            "ru/en confused: {:#?}",
            paragraphs.crossed
        );
        assert!(
            paragraphs.correct * 100 >= paragraphs.total * 99,
            "{lang}: paragraph accuracy below 99%"
        );
    }
}

#[test]
fn wmt22_segments() {
    let dir = data_dir().join("segmented");
    for lang in ["ru", "en"] {
        let mut segments = Tally::default();
        for (_, text) in documents(&dir.join(lang)) {
            for line in text.lines().filter(|l| letters(l) > 0) {
                segments.add(line, lang);
            }
        }
        segments.report(&format!("{lang} segments"));
        assert!(
            segments.crossed.is_empty(),
            "ru/en confused: {:#?}",
            segments.crossed
        );
    }
}

/// Every fourth line of the WMT22 general test set (news, social, e-commerce,
/// conversation), one segment per line: tests/fixtures/wmt22.
#[test]
fn wmt22_general_test_set_all_domains() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wmt22");
    let files = [
        ("generaltest2022.ru-en.src.ru", "ru"),
        ("generaltest2022.ru-en.ref.A.en", "en"),
        ("generaltest2022.en-ru.src.en", "en"),
        ("generaltest2022.en-ru.ref.A.ru", "ru"),
    ];
    for (name, lang) in files {
        let text =
            std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut segments = Tally::default();
        for line in text.lines().filter(|l| letters(l) > 0) {
            segments.add(line, lang);
        }
        segments.report(name);
        assert!(
            segments.crossed.is_empty(),
            "ru/en confused: {:#?}",
            segments.crossed
        );
    }
}
