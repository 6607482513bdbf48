//! The extractive engine on real articles and on inputs far larger than any article.
//!
//! `wmt22_selection_is_unchanged` holds the sentences the engine picked on the 160
//! WMT22 articles (80 English, 80 Russian) before its work was bounded by sentences, for
//! four option sets (each sentence by its first 40 characters, which tell the sentences
//! of one article apart); articles under the bound must keep exactly those picks. The
//! fixture was written by `svodka summarize --engine extractive --format json` built
//! before the change; rewrite it with `SVODKA_BLESS=1 cargo test --test extractive` only
//! when a change of the method is meant to change the picks.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use svodka::article::read::{self, ReadOptions};
use svodka::article::Article;
use svodka::engine::extractive::{Extractive, MAX_RANKED};
use svodka::engine::SummaryOptions;
use svodka::pipeline::summarize::summarize;

const SELECTION: &str = "extractive/wmt22-selection.jsonl";

/// Characters of each picked sentence the fixture keeps.
const PREFIX: usize = 40;

/// The option sets the selection fixture covers: name, sentences, word budget.
const OPTION_SETS: [(&str, usize, Option<usize>); 4] = [
    ("n3", 3, None),
    ("n1", 1, None),
    ("n8", 8, None),
    ("words60", 3, Some(60)),
];

fn articles() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["en", "ru"]
        .iter()
        .flat_map(|lang| {
            std::fs::read_dir(common::fixture(&format!("news-wmt22/{lang}")))
                .expect("news-wmt22 fixtures")
                .map(|e| e.expect("directory entry").path())
        })
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
}

fn picks(article: &Article, sentences: usize, words: Option<usize>) -> Vec<String> {
    let opts = SummaryOptions {
        sentences,
        words,
        ..SummaryOptions::default()
    };
    let report = summarize(article, &mut Extractive, &opts).expect("summary");
    report
        .summary
        .sentences
        .into_iter()
        .map(|s| s.text)
        .collect()
}

fn relative(path: &Path) -> String {
    let root = common::fixture("news-wmt22");
    path.strip_prefix(&root)
        .expect("under news-wmt22")
        .to_string_lossy()
        .replace('\\', "/")
}

#[test]
fn wmt22_selection_is_unchanged() {
    let files = articles();
    assert_eq!(files.len(), 160, "the 80 + 80 WMT22 articles");
    let mut lines = Vec::new();
    for path in &files {
        let article = read::read_file(path, &ReadOptions::default()).expect("readable");
        for (name, sentences, words) in OPTION_SETS {
            let prefixes: Vec<String> = picks(&article, sentences, words)
                .iter()
                .map(|s| s.chars().take(PREFIX).collect())
                .collect();
            lines.push(json!({
                "article": relative(path),
                "options": name,
                "sentences": prefixes,
            }));
        }
    }
    let fixture = common::fixture(SELECTION);
    if std::env::var_os("SVODKA_BLESS").is_some() {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::create_dir_all(fixture.parent().expect("parent")).expect("fixture folder");
        std::fs::write(&fixture, text).expect("write the fixture");
        return;
    }
    let expected: Vec<Value> = std::fs::read_to_string(&fixture)
        .expect("the selection fixture")
        .lines()
        .map(|l| serde_json::from_str(l).expect("fixture line"))
        .collect();
    assert_eq!(expected.len(), lines.len());
    let mut differ = Vec::new();
    for (want, got) in expected.iter().zip(&lines) {
        if want != got {
            differ.push(format!(
                "{}\n  before: {}\n  now:    {}",
                want["article"], want, got
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{} picks changed:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

/// A deterministic article of about `bytes` bytes: sentences drawn from the WMT22
/// English articles in a pseudo-random order, in paragraphs of five.
fn generated_article(bytes: usize) -> String {
    let mut pool: Vec<String> = Vec::new();
    for path in articles().iter().filter(|p| relative(p).starts_with("en/")) {
        let article = read::read_file(path, &ReadOptions::default()).expect("readable");
        for p in &article.paragraphs {
            for range in svodka::article::sentences::split(&p.text, None) {
                let s = p.text[range].trim();
                if s.split_whitespace().count() >= 5 {
                    pool.push(s.to_string());
                }
            }
        }
    }
    let mut text = String::from("Generated digest of many stories\n\n");
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut in_paragraph = 0;
    while text.len() < bytes {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        text.push_str(&pool[(state >> 33) as usize % pool.len()]);
        in_paragraph += 1;
        text.push_str(if in_paragraph % 5 == 0 { "\n\n" } else { " " });
    }
    text
}

/// Checks a summary of `text`: `n` distinct sentences of the article, in article order.
fn assert_sane(text: &str, n: usize) {
    let article = read::read_bytes(
        text.as_bytes(),
        Path::new("big.txt"),
        &ReadOptions::default(),
    )
    .expect("readable");
    let picked = picks(&article, n, None);
    assert_eq!(picked.len(), n, "{picked:?}");
    let mut last = 0;
    for s in &picked {
        let at = text[last..].find(s.as_str()).map(|i| i + last);
        let at = at.unwrap_or_else(|| panic!("not in article order or not verbatim: {s}"));
        last = at + s.len();
    }
}

#[test]
fn two_megabyte_article_is_summarized() {
    let text = generated_article(2 << 20);
    let sentences = text.matches(". ").count();
    assert!(sentences > 4 * MAX_RANKED, "{sentences} sentences only");
    assert_sane(&text, 3);
    assert_sane(&text, 10);
}

#[test]
fn many_short_sentences_are_summarized() {
    // 250 KiB of six-word sentences over a vocabulary of 40 words: most pairs of
    // sentences share a word, so the full similarity graph is nearly dense.
    const NOUNS: [&str; 20] = [
        "oil", "gas", "grain", "steel", "coal", "wheat", "copper", "gold", "silver", "sugar",
        "coffee", "cotton", "rice", "tin", "zinc", "nickel", "wool", "corn", "salt", "iron",
    ];
    const VERBS: [&str; 20] = [
        "rose",
        "fell",
        "climbed",
        "dropped",
        "jumped",
        "slid",
        "soared",
        "sank",
        "gained",
        "lost",
        "recovered",
        "stalled",
        "surged",
        "slumped",
        "rallied",
        "eased",
        "dipped",
        "firmed",
        "weakened",
        "steadied",
    ];
    let mut text = String::from("Market news\n\n");
    let mut i = 0usize;
    while text.len() < 250 << 10 {
        let (a, b, c) = (i % 20, (i / 20) % 20, (i / 400) % 20);
        text.push_str(&format!(
            "Prices of {} {} while {} {}. ",
            NOUNS[a],
            VERBS[b],
            NOUNS[(a + c + 1) % 20],
            VERBS[(b + c + 3) % 20]
        ));
        i += 1;
        if i % 40 == 0 {
            text.push_str("\n\n");
        }
    }
    assert_sane(&text, 3);
}
