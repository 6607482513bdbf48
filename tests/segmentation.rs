//! Sentence segmentation measured against human segmentation of WMT22 news.
//!
//! `tests/fixtures/news-wmt22/{ru,en}/DOC.txt` hold 80 articles per language (headline,
//! blank line, body); `segmented/{ru,en}/DOC.txt` the same text, one human segment per
//! line. Both sides contain exactly the same non-space characters in the same order, so
//! a boundary is a position in the article with all whitespace removed. A boundary is
//! then identified by the number of letters and digits before it: a dash or quote put
//! on one side of the cut by the annotator and on the other by us ("сказал он. - Да" vs
//! "сказал он. -" + "Да") is the same cut, not two errors. Paragraph ends are given to
//! the splitter, so they are left out of the count.
//!
//! Run `cargo test --test segmentation -- --nocapture` to see the figures; set
//! `SEGMENT_ERRORS=1` to list every disagreement with its context.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use svodka::article::sentences::split;
use svodka::article::Lang;

const DATA: &str = "tests/fixtures/news-wmt22";

/// Boundary counts for one language.
#[derive(Default)]
struct Score {
    ours: usize,
    human: usize,
    agreed: usize,
    strict_agreed: usize,
    strict_ours: usize,
    strict_human: usize,
}

impl Score {
    fn precision(&self) -> f64 {
        self.agreed as f64 / self.ours.max(1) as f64
    }
    fn recall(&self) -> f64 {
        self.agreed as f64 / self.human.max(1) as f64
    }
}

/// One article: its paragraphs and the human segments.
struct Doc {
    name: String,
    paragraphs: Vec<String>,
    segments: Vec<String>,
}

fn non_space(s: &str) -> usize {
    s.chars().filter(|c| !c.is_whitespace()).count()
}

fn load(lang: &str) -> Vec<Doc> {
    let dir = Path::new(DATA).join(lang);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    let lines = |path: &Path| -> Vec<String> {
        fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    names
        .into_iter()
        .map(|name| Doc {
            paragraphs: lines(&dir.join(&name)),
            segments: lines(&Path::new(DATA).join("segmented").join(lang).join(&name)),
            name,
        })
        .collect()
}

/// Checks the ranges of one paragraph: trimmed, in order, covering all non-space text.
fn check_ranges(text: &str, ranges: &[std::ops::Range<usize>]) {
    let mut last = 0;
    for r in ranges {
        let gap = &text[last..r.start];
        assert!(gap.chars().all(char::is_whitespace), "text lost: {gap:?}");
        let s = &text[r.clone()];
        assert!(!s.is_empty() && s.trim() == s, "untrimmed sentence {s:?}");
        last = r.end;
    }
    assert!(text[last..].chars().all(char::is_whitespace), "tail lost");
}

/// Shows the text around a non-space offset of `flat`.
fn context(flat: &[char], at: usize) -> String {
    let from = at.saturating_sub(45);
    let to = (at + 30).min(flat.len());
    let left: String = flat[from..at].iter().collect();
    let right: String = flat[at..to].iter().collect();
    format!("…{left} ‖ {right}…")
}

/// One article's boundaries as offsets into its text with whitespace removed, the
/// given paragraph ends left out.
struct Boundaries {
    flat: Vec<char>,
    ours: BTreeSet<usize>,
    human: BTreeSet<usize>,
}

fn boundaries(doc: &Doc, lang: Option<Lang>) -> Boundaries {
    let flat: Vec<char> = doc
        .paragraphs
        .iter()
        .flat_map(|p| p.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let human_flat: Vec<char> = doc
        .segments
        .iter()
        .flat_map(|s| s.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    assert_eq!(flat, human_flat, "{}: texts differ", doc.name);

    let mut given = BTreeSet::new();
    let mut ours = BTreeSet::new();
    let mut base = 0;
    for p in &doc.paragraphs {
        let ranges = split(p, lang);
        check_ranges(p, &ranges);
        ours.extend(ranges.iter().map(|r| base + non_space(&p[..r.end])));
        base += non_space(p);
        given.insert(base);
    }
    let human: BTreeSet<usize> = doc
        .segments
        .iter()
        .scan(0, |at, s| {
            *at += non_space(s);
            Some(*at)
        })
        .collect();
    Boundaries {
        flat,
        ours: ours.difference(&given).copied().collect(),
        human: human.difference(&given).copied().collect(),
    }
}

fn score(lang: Option<Lang>, code: &str) -> Score {
    let show = std::env::var_os("SEGMENT_ERRORS").is_some();
    let mut total = Score::default();
    for doc in load(code) {
        let Boundaries { flat, ours, human } = boundaries(&doc, lang);
        total.strict_ours += ours.len();
        total.strict_human += human.len();
        total.strict_agreed += ours.intersection(&human).count();

        // Snap to letters and digits so punctuation at the cut may fall on either side.
        let mut alnum = vec![0; flat.len() + 1];
        for (i, c) in flat.iter().enumerate() {
            alnum[i + 1] = alnum[i] + usize::from(c.is_alphanumeric());
        }
        let snap =
            |set: &BTreeSet<usize>| -> BTreeSet<usize> { set.iter().map(|&b| alnum[b]).collect() };
        let (ours_a, human_a) = (snap(&ours), snap(&human));
        total.ours += ours_a.len();
        total.human += human_a.len();
        total.agreed += ours_a.intersection(&human_a).count();
        if show {
            for (label, set, other) in [("extra ", &ours, &human_a), ("missed", &human, &ours_a)] {
                for &b in set.iter().filter(|&&b| !other.contains(&alnum[b])) {
                    println!("{code} {label} {:<28} {}", doc.name, context(&flat, b));
                }
            }
        }
    }
    let rules = lang.map_or("both", Lang::code);
    println!(
        "{code} text, {rules} rules: boundaries ours {} human {} agreed {}: P {:.4} R {:.4} \
         (strict, punctuation side counted: P {:.4} R {:.4})",
        total.ours,
        total.human,
        total.agreed,
        total.precision(),
        total.recall(),
        total.strict_agreed as f64 / total.strict_ours.max(1) as f64,
        total.strict_agreed as f64 / total.strict_human.max(1) as f64,
    );
    total
}

fn assert_quality(lang: Lang, code: &str) {
    let s = score(Some(lang), code);
    assert!(s.human > 800, "{code}: only {} human boundaries", s.human);
    assert!(
        s.precision() >= 0.98,
        "{code}: precision {:.4} < 0.98",
        s.precision()
    );
    assert!(
        s.recall() >= 0.985,
        "{code}: recall {:.4} < 0.985",
        s.recall()
    );
}

/// Without a language both rule sets apply; they are written not to collide.
#[test]
fn rules_of_both_languages_do_as_well() {
    for (lang, code) in [(Lang::Ru, "ru"), (Lang::En, "en")] {
        let (one, both) = (score(Some(lang), code), score(None, code));
        assert!(
            both.precision() >= one.precision() - 0.005,
            "{code}: precision drops"
        );
        assert!(
            both.recall() >= one.recall() - 0.005,
            "{code}: recall drops"
        );
    }
}

#[test]
fn russian_news_matches_human_segmentation() {
    assert_quality(Lang::Ru, "ru");
}

#[test]
fn english_news_matches_human_segmentation() {
    assert_quality(Lang::En, "en");
}
