//! Checks of a translation against its source: what a reader would be misled by.
//!
//! Numbers must agree both ways, up to locale formatting ("1 000,5" = "1,000.5"), scale
//! words ("3 тыс." = "3,000", "1,5 млн" = "1.5 million"), leading zeros, 12- and 24-hour
//! clocks, and numbers the source spells out ("четыре часа" = "4 am"). URLs must be kept,
//! quotations stay quoted, the output must not loop, and its length must be in the range
//! human translations have for the language pair.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::article::Lang;

/// Something wrong with a translation, found by comparing it with its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// A number of the source is not in the translation.
    MissingNumber {
        /// The number as the source writes it.
        number: String,
    },
    /// The translation has a number the source does not have.
    ExtraNumber {
        /// The number as the translation writes it.
        number: String,
    },
    /// A URL of the source is not in the translation.
    MissingUrl {
        /// The URL.
        url: String,
    },
    /// The source quotes something and the translation has no quotation marks.
    LostQuotes,
    /// The translation is empty.
    Empty,
    /// The translation repeats itself.
    Repetition,
    /// The translation is far shorter or longer than translations of the pair are.
    Length {
        /// Characters of the source.
        source_chars: usize,
        /// Characters of the translation.
        output_chars: usize,
    },
    /// Decoding hit its length limit before the sentence ended.
    Cut,
    /// A link's text was not found in the translation; the link follows the sentence.
    LinkMoved {
        /// The translated link text.
        text: String,
    },
    /// Emphasis whose text was not found in the translation was dropped.
    MarkupDropped {
        /// The translated text that was emphasised.
        text: String,
    },
    /// A paragraph in a language svodka does not translate was kept as it is.
    Untranslated {
        /// ISO 639-1 code of the language detected ("uk"), or "und".
        lang: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::MissingNumber { number } => write!(f, "number {number} is missing"),
            Problem::ExtraNumber { number } => {
                write!(f, "number {number} is not in the source")
            }
            Problem::MissingUrl { url } => write!(f, "URL {url} is missing"),
            Problem::LostQuotes => f.write_str("quotation marks are lost"),
            Problem::Empty => f.write_str("the translation is empty"),
            Problem::Repetition => f.write_str("the translation repeats itself"),
            Problem::Length {
                source_chars,
                output_chars,
            } => write!(
                f,
                "the translation has {output_chars} characters for a source of \
                 {source_chars}, outside the range of human translations"
            ),
            Problem::Cut => f.write_str("the translation was cut at the length limit"),
            Problem::LinkMoved { text } => {
                write!(
                    f,
                    "link text {text:?} not found; the link follows the sentence"
                )
            }
            Problem::MarkupDropped { text } => {
                write!(
                    f,
                    "emphasis on {text:?} could not be placed and was dropped"
                )
            }
            Problem::Untranslated { lang } => write!(
                f,
                "the paragraph is in {lang}, which svodka does not translate; kept as it is"
            ),
        }
    }
}

/// Characters added to both lengths before their ratio is taken, so that a one-word
/// segment ("Да." → "Yes.") does not swing it.
const LENGTH_SLACK: usize = 10;

/// Bounds of (translation + 10) / (source + 10) in characters, per direction.
///
/// From the 4,053 human reference translations of the WMT22 general test set
/// (`scripts/length_ratio.py`): ru→en ratios lie in 0.57–1.67 (0.1 % / 99.9 %
/// percentiles 0.63 / 1.61), en→ru in 0.58–1.96 (0.66 / 1.91). The bounds sit beyond
/// every human translation: 0.8 × the 0.1 % percentile below and 1.25 × the 99.9 %
/// percentile above, rounded outwards, so only a translation that lost a clause or looped
/// is outside.
fn length_bounds(from: Lang, to: Lang) -> (f64, f64) {
    match (from, to) {
        (Lang::Ru, Lang::En) => (0.5, 2.0),
        (Lang::En, Lang::Ru) => (0.5, 2.4),
        // Same-language "translation" does not happen (such text passes through).
        _ => (0.5, 2.0),
    }
}

static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:https?://|www\.)[^\s<>()\[\]"«»]+"#).unwrap_or_else(|_| unreachable!())
});

static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b\d{1,3}(?:[ \u{a0}\u{202f}]\d{3})+(?:[.,]\d+)?\b|\d+(?:[.,]\d+)*")
        .unwrap_or_else(|_| unreachable!())
});

const QUOTES: &[char] = &['"', '«', '»', '“', '”', '„'];

/// Number words a source may spell out where a translation writes digits, as (word or
/// stem, digits). Russian entries are stems matched at the start of a word of at most
/// three more letters (its case endings: "четырёх", "семерки"); English ones whole.
const NUMBER_WORDS_EN: &[(&str, &str)] = &[
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("dozen", "12"),
    ("thirteen", "13"),
    ("fourteen", "14"),
    ("fifteen", "15"),
    ("sixteen", "16"),
    ("seventeen", "17"),
    ("eighteen", "18"),
    ("nineteen", "19"),
    ("twenty", "20"),
    ("thirty", "30"),
    ("forty", "40"),
    ("fifty", "50"),
    ("sixty", "60"),
    ("seventy", "70"),
    ("eighty", "80"),
    ("ninety", "90"),
    ("hundred", "100"),
    ("thousand", "1000"),
    ("first", "1"),
    ("second", "2"),
    ("third", "3"),
    ("fourth", "4"),
    ("fifth", "5"),
    ("sixth", "6"),
    ("seventh", "7"),
    ("eighth", "8"),
    ("ninth", "9"),
    ("tenth", "10"),
];

const NUMBER_STEMS_RU: &[(&str, &str)] = &[
    ("нол", "0"),
    ("нул", "0"),
    ("один", "1"),
    ("одн", "1"),
    ("перв", "1"),
    ("два", "2"),
    ("две", "2"),
    ("двух", "2"),
    ("двум", "2"),
    ("двое", "2"),
    ("втор", "2"),
    ("три", "3"),
    ("трёх", "3"),
    ("трех", "3"),
    ("трое", "3"),
    ("трет", "3"),
    ("четыр", "4"),
    ("четвер", "4"),
    ("пят", "5"),
    ("шест", "6"),
    ("сем", "7"),
    ("семер", "7"),
    ("семёр", "7"),
    ("седьм", "7"),
    ("восем", "8"),
    ("восьм", "8"),
    ("девят", "9"),
    ("десят", "10"),
    ("одиннадцат", "11"),
    ("двенадцат", "12"),
    ("дюжин", "12"),
    ("тринадцат", "13"),
    ("четырнадцат", "14"),
    ("пятнадцат", "15"),
    ("шестнадцат", "16"),
    ("семнадцат", "17"),
    ("восемнадцат", "18"),
    ("девятнадцат", "19"),
    ("двадцат", "20"),
    ("тридцат", "30"),
    ("сорок", "40"),
    ("пятьдесят", "50"),
    ("шестьдесят", "60"),
    ("семьдесят", "70"),
    ("восемьдесят", "80"),
    ("девяност", "90"),
    ("сто", "100"),
    ("сотн", "100"),
    ("тысяч", "1000"),
    ("сут", "24"),
];

/// URLs of `text`, without trailing sentence punctuation.
fn urls(text: &str) -> Vec<&str> {
    URL.find_iter(text)
        .map(|m| m.as_str().trim_end_matches(['.', ',', ';', ':', '!', '?']))
        .collect()
}

/// Numbers of `text` (URLs left out) as written, with their digits.
fn numbers(text: &str) -> Vec<(String, String)> {
    let without_urls = URL.replace_all(text, " ");
    NUMBER
        .find_iter(&without_urls)
        .map(|m| {
            let digits: String = m.as_str().chars().filter(char::is_ascii_digit).collect();
            (m.as_str().to_string(), digits)
        })
        .collect()
}

/// Digits of the numbers `text` spells out in words; a ten followed by a unit
/// ("twenty-four", "двадцать четыре") also counts as their sum.
fn spelled_numbers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut previous: Vec<u32> = Vec::new();
    for word in words(text) {
        let mut values: Vec<u32> = NUMBER_WORDS_EN
            .iter()
            .filter(|(w, _)| *w == word)
            .map(|(_, d)| *d)
            .chain(
                NUMBER_STEMS_RU
                    .iter()
                    .filter(|(stem, _)| {
                        word.starts_with(stem) && word.chars().count() <= stem.chars().count() + 3
                    })
                    .map(|(_, d)| *d),
            )
            .filter_map(|d| d.parse().ok())
            .collect();
        let sums: Vec<u32> = previous
            .iter()
            .filter(|&&t| (20..100).contains(&t) && t % 10 == 0)
            .flat_map(|&t| values.iter().filter(|&&u| u < 10).map(move |&u| t + u))
            .collect();
        values.extend(sums);
        out.extend(values.iter().map(u32::to_string));
        previous = values;
    }
    out
}

/// `digits` without leading zeros ("09" and "9" are one number); "0" stays.
fn canonical(digits: &str) -> &str {
    let t = digits.trim_start_matches('0');
    if t.is_empty() && !digits.is_empty() {
        "0"
    } else {
        t
    }
}

/// Whether digit strings `a` and `b` are the same number up to locale formatting, leading
/// zeros and a scale word ("3 тыс." = "3,000", "1,5 млн" = "1.5 million" = "1 500 000").
fn same_number(a: &str, b: &str) -> bool {
    let (a, b) = (canonical(a), canonical(b));
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    long.starts_with(short) && long[short.len()..].chars().all(|c| c == '0')
}

/// Whether `a` and `b` are one hour on 12- and 24-hour clocks ("5.30pm" = "17:30").
fn same_hour(a: &str, b: &str) -> bool {
    match (canonical(a).parse::<u32>(), canonical(b).parse::<u32>()) {
        (Ok(x), Ok(y)) => x.max(y) <= 24 && x.abs_diff(y) == 12,
        _ => false,
    }
}

/// Lowercase words of `text`.
pub(super) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether `text` repeats itself: a word three times in a row, a word trigram three
/// times, or a 4-gram twice.
fn repeats(text: &str) -> bool {
    let w = words(text);
    if w.windows(3).any(|g| g[0] == g[1] && g[1] == g[2]) {
        return true;
    }
    let mut counts: HashMap<&[String], usize> = HashMap::new();
    for n in [3usize, 4] {
        counts.clear();
        for g in w.windows(n) {
            let c = counts.entry(g).or_default();
            *c += 1;
            if (n == 3 && *c >= 3) || (n == 4 && *c >= 2) {
                return true;
            }
        }
    }
    false
}

/// The digit groups of a number written with separators ("5.30" → 5, 30), which may be
/// a time or a date rather than a decimal; empty for a plain number.
fn parts(written: &str) -> Vec<String> {
    let groups: Vec<String> = written
        .split(['.', ',', ':'])
        .map(|g| g.chars().filter(char::is_ascii_digit).collect::<String>())
        .filter(|g| !g.is_empty())
        .collect();
    if groups.len() > 1 {
        groups
    } else {
        Vec::new()
    }
}

/// Whether digits `a` and `b` name one number (or one hour).
fn matches(a: &str, b: &str) -> bool {
    same_number(a, b) || same_hour(a, b)
}

/// The number problems of `output` against `source`, both ways.
fn number_problems(source: &str, output: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let in_source = numbers(source);
    let in_output = numbers(output);
    // Every number of a side and every digit group of its dates and times.
    let pool = |nums: &[(String, String)]| -> Vec<String> {
        nums.iter()
            .flat_map(|(w, d)| std::iter::once(d.clone()).chain(parts(w)))
            .collect()
    };
    // A number is accounted for by the other side when it is there whole, or each of its
    // groups is ("05.09.2020" and "5.9.2020", "5.30pm" and "17:30").
    let accounted = |written: &str, digits: &str, other: &[String]| {
        let found = |d: &str| other.iter().any(|o| matches(d, o));
        let groups = parts(written);
        found(digits) || (!groups.is_empty() && groups.iter().all(|g| found(g)))
    };
    let in_output_pool = pool(&in_output);
    let mut seen: Vec<&str> = Vec::new();
    for (written, digits) in &in_source {
        if seen.contains(&digits.as_str()) {
            continue;
        }
        if !accounted(written, digits, &in_output_pool) {
            problems.push(Problem::MissingNumber {
                number: written.clone(),
            });
        }
        seen.push(digits);
    }
    let mut known = pool(&in_source);
    known.extend(spelled_numbers(source));
    let mut seen: Vec<&str> = Vec::new();
    for (written, digits) in &in_output {
        // A lone zero ("12:00" from "12.00", "01:00" from "1am") misleads nobody.
        if canonical(digits) == "0" || seen.contains(&digits.as_str()) {
            continue;
        }
        if !accounted(written, digits, &known) {
            problems.push(Problem::ExtraNumber {
                number: written.clone(),
            });
        }
        seen.push(digits);
    }
    problems
}

/// The length problem of `output` against `source` translated `from` → `to`, if any.
fn length_problem(source: &str, output: &str, from: Lang, to: Lang) -> Option<Problem> {
    let (s, o) = (source.trim().chars().count(), output.trim().chars().count());
    if o == 0 {
        return None; // reported as empty
    }
    let ratio = (o + LENGTH_SLACK) as f64 / (s + LENGTH_SLACK) as f64;
    let (lo, hi) = length_bounds(from, to);
    (ratio < lo || ratio > hi).then_some(Problem::Length {
        source_chars: s,
        output_chars: o,
    })
}

/// What is wrong with `output` as a translation of `source` from `from` into `to`.
pub fn check(source: &str, output: &str, from: Lang, to: Lang) -> Vec<Problem> {
    let mut problems = Vec::new();
    if output.trim().is_empty() && source.chars().any(char::is_alphanumeric) {
        problems.push(Problem::Empty);
    }
    problems.extend(number_problems(source, output));
    for url in urls(source) {
        if !output.contains(url) {
            problems.push(Problem::MissingUrl {
                url: url.to_string(),
            });
        }
    }
    let quotes = |s: &str| s.chars().filter(|c| QUOTES.contains(c)).count();
    if quotes(source) >= 2 && quotes(output) < 2 {
        problems.push(Problem::LostQuotes);
    }
    if repeats(output) && !repeats(source) {
        problems.push(Problem::Repetition);
    }
    problems.extend(length_problem(source, output, from, to));
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ru_en(source: &str, output: &str) -> Vec<Problem> {
        check(source, output, Lang::Ru, Lang::En)
    }

    fn en_ru(source: &str, output: &str) -> Vec<Problem> {
        check(source, output, Lang::En, Lang::Ru)
    }

    #[test]
    fn checks_find_lost_numbers_urls_quotes_and_loops() {
        assert!(ru_en("Рост 1,5 % за 10 000 лет", "Growth 1.5% over 10,000 years").is_empty());
        assert!(ru_en(
            "Цены выросли на 3 тыс. рублей",
            "Prices rose by 3,000 rubles"
        )
        .is_empty());
        assert_eq!(
            en_ru("In 2020, 15 people came", "В 2020 году люди пришли"),
            vec![Problem::MissingNumber {
                number: "15".into()
            }]
        );
        assert_eq!(
            en_ru("See https://a.ru/x.", "Смотрите сайт."),
            vec![Problem::MissingUrl {
                url: "https://a.ru/x".into()
            }]
        );
        assert_eq!(
            en_ru("He said «yes».", "Он сказал да."),
            vec![Problem::LostQuotes]
        );
        assert_eq!(
            en_ru("Hello, hello.", "привет привет привет"),
            vec![Problem::Repetition]
        );
        assert!(en_ru("Hello there.", "Привет там.").is_empty());
        assert_eq!(en_ru("Hello there.", " "), vec![Problem::Empty]);
        assert!(en_ru("…", "").is_empty());
    }

    #[test]
    fn numbers_the_source_does_not_have_are_problems() {
        assert_eq!(
            ru_en("Цены выросли на 15 %.", "Prices rose by 15% in 2021."),
            vec![Problem::ExtraNumber {
                number: "2021".into()
            }]
        );
        assert_eq!(
            ru_en("Погибли 12 человек.", "13 people died."),
            vec![
                Problem::MissingNumber {
                    number: "12".into()
                },
                Problem::ExtraNumber {
                    number: "13".into()
                }
            ]
        );
        // Up to locale formatting, scale words, leading zeros and spelled-out numbers.
        for (source, output) in [
            (
                "Бюджет 1 000,5 млн рублей.",
                "A budget of 1,000.5 million rubles.",
            ),
            ("Рост на 1,5 млн.", "Growth of 1,500,000."),
            (
                "Встреча 05.09.2020 в 9:05.",
                "The meeting on 5.9.2020 at 09:05.",
            ),
            ("Он вернулся в четыре часа утра.", "He came back at 4 am."),
            (
                "Страны «Большой семерки» против.",
                "The \"G7\" countries are against.",
            ),
            (
                "Двадцать человек умерли за сутки.",
                "Twenty died in 24 hours.",
            ),
        ] {
            assert!(ru_en(source, output).is_empty(), "{source} → {output}");
        }
        for (source, output) in [
            (
                "It closes at 5.30pm on Friday.",
                "Закрывается в 17:30 в пятницу.",
            ),
            ("We worked till past 1am.", "Мы работали до 01:00."),
            ("Twenty-four people came.", "Пришли 24 человека."),
        ] {
            assert!(en_ru(source, output).is_empty(), "{source} → {output}");
        }
    }

    #[test]
    fn lengths_far_outside_human_translations_are_problems() {
        let source = "Правительство объявило о новых мерах поддержки малого бизнеса.";
        assert!(ru_en(
            source,
            "The government announced new support measures for small businesses."
        )
        .is_empty());
        // A lost clause...
        assert_eq!(
            ru_en(source, "The government."),
            vec![Problem::Length {
                source_chars: 62,
                output_chars: 15
            }]
        );
        // ...and a loop (each sentence new, so no n-gram repeats).
        let long = "The government announced measures. It will support small firms. \
                    Banks will lend at lower rates. Taxes will fall next year. Exporters \
                    will get subsidies. Regions will share the costs.";
        assert!(matches!(ru_en(source, long)[..], [Problem::Length { .. }]));
        // One-word segments do not trip it.
        assert!(ru_en("Да.", "Yes.").is_empty());
        assert!(en_ru("Tap Sign out.", "Нажмите «Выйти из учетной записи».").is_empty());
    }
}
