//! Rules that tell a news text's title, dateline, photo caption, labelled lines and
//! broken paragraphs from its body. Each rule is small and tested on its own.

use std::sync::LazyLock;

use regex::Regex;

use super::block::Block;
use crate::article::{BlockKind, Paragraph, Style};

/// Longest headline, in characters, taken from a plain first line.
const MAX_TITLE_CHARS: usize = 200;
/// Longest photo credit, in characters and words.
const MAX_CREDIT_CHARS: usize = 100;
const MAX_CREDIT_WORDS: usize = 10;
/// Longest labelled line ("Related article: ...") taken out of the body.
const MAX_LABELLED_CHARS: usize = 300;

fn regex(pattern: &str) -> Regex {
    // The patterns are constants of this file; the unit tests run every one of them.
    Regex::new(pattern).unwrap_or_else(|e| panic!("bad built-in pattern {pattern}: {e}"))
}

/// A headline candidate: a single short line, not ending like a sentence or a lead-in,
/// and not a dateline. Headlines may end in `?` or `!`, never in `.`, `,`, `;` or `:`.
pub(super) fn is_title_like(block: &Block) -> bool {
    let text = &block.para.text;
    block.single_line
        && matches!(block.para.kind, BlockKind::Text | BlockKind::Heading)
        && text.chars().count() <= MAX_TITLE_CHARS
        && text.chars().any(char::is_alphabetic)
        && !text.ends_with(['.', ',', ';', ':'])
        && parse_date(text).is_none()
}

/// A stray line left at the end of a text: only a number (a page or counter) or a
/// single character.
pub(super) fn is_stray(text: &str) -> bool {
    text.chars().count() == 1 || text.chars().all(|c| c.is_ascii_digit())
}

/// Whether a paragraph ends without terminal punctuation (closing quotes and brackets
/// are looked through), as when a stray blank line broke a sentence.
pub(super) fn ends_open(text: &str) -> bool {
    let core = text.trim_end_matches(['"', '”', '»', '’', '\'', ')', ']', '*']);
    !core.ends_with(['.', '!', '?', '…', ':', ';'])
}

/// Whether a paragraph starts with a lowercase letter (opening quotes and brackets are
/// looked through).
pub(super) fn starts_lowercase(text: &str) -> bool {
    text.trim_start_matches(['"', '“', '«', '‘', '\'', '(', '['])
        .chars()
        .next()
        .is_some_and(char::is_lowercase)
}

static DATE: LazyLock<Regex> = LazyLock::new(|| {
    let weekday = r"(?:(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)[a-z]*\.?|понедельник|вторник|среда|четверг|пятница|суббота|воскресенье)";
    let time = r"(?:(?:,|\s|\bat\b|\bв\b|T)+\d{1,2}:\d{2}(?::\d{2})?(?:\s*[ap]\.?m\.?)?(?:\s*(?:UTC|GMT|MSK|МСК|Z|[+-]\d{2}:?\d{2}))?)?";
    let date = [
        // September 04, 2020 / Sept. 4, 2020 / Sep 4th 2020
        r"(?P<mon1>[a-z]{3,9})\.?\s+(?P<d1>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<y1>\d{4})",
        // 4 September 2020 / 4 сентября 2020 г. / 4 сентября 2020 года
        r"(?P<d2>\d{1,2})(?:st|nd|rd|th)?\s+(?P<mon2>[a-zа-яё]{3,9})\.?,?\s+(?P<y2>\d{4})(?:\s*(?:г\.?|года))?",
        // 04.09.2020 (day first, as in Russian and European use)
        r"(?P<d3>\d{1,2})\.(?P<m3>\d{1,2})\.(?P<y3>\d{4})(?:\s*(?:г\.?|года))?",
        // 2020-09-04
        r"(?P<y4>\d{4})-(?P<m4>\d{2})-(?P<d4>\d{2})",
    ]
    .join("|");
    regex(&format!(r"(?i)^(?:{weekday},?\s+)?(?:{date}){time}\.?$"))
});

/// Month names and abbreviations, English and Russian (nominative and genitive).
const MONTHS: [&[&str]; 12] = [
    &["january", "jan", "январь", "января", "янв"],
    &["february", "feb", "февраль", "февраля", "фев", "февр"],
    &["march", "mar", "март", "марта", "мар"],
    &["april", "apr", "апрель", "апреля", "апр"],
    &["may", "май", "мая"],
    &["june", "jun", "июнь", "июня", "июн"],
    &["july", "jul", "июль", "июля", "июл"],
    &["august", "aug", "август", "августа", "авг"],
    &[
        "september",
        "sep",
        "sept",
        "сентябрь",
        "сентября",
        "сен",
        "сент",
    ],
    &["october", "oct", "октябрь", "октября", "окт"],
    &["november", "nov", "ноябрь", "ноября", "ноя", "нояб"],
    &["december", "dec", "декабрь", "декабря", "дек"],
];

fn month_number(name: &str) -> Option<u32> {
    let name = name.to_lowercase();
    MONTHS
        .iter()
        .position(|forms| forms.contains(&name.as_str()))
        .and_then(|i| u32::try_from(i + 1).ok())
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The ISO date (YYYY-MM-DD) when the whole line is a dateline such as
/// "September 04, 2020", "Sept. 4, 2020", "4 сентября 2020 г.", "04.09.2020" or
/// "2020-09-04" (a weekday before and a time after are allowed). Impossible dates are not
/// datelines.
pub(super) fn parse_date(line: &str) -> Option<String> {
    let caps = DATE.captures(line.trim())?;
    let get = |names: [&str; 4]| names.iter().find_map(|n| caps.name(n)).map(|m| m.as_str());
    let day: u32 = get(["d1", "d2", "d3", "d4"])?.parse().ok()?;
    let year: u32 = get(["y1", "y2", "y3", "y4"])?.parse().ok()?;
    let month = match get(["mon1", "mon2", "m3", "m4"])? {
        m if m.bytes().all(|b| b.is_ascii_digit()) => m.parse().ok()?,
        name => month_number(name)?,
    };
    let valid = (1900..=2100).contains(&year)
        && (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day);
    valid.then(|| format!("{year:04}-{month:02}-{day:02}"))
}

/// An ISO date at the start of a machine date ("2020-09-04T10:00:00Z").
pub(super) fn iso_prefix(value: &str) -> Option<String> {
    value.get(..10).and_then(parse_date)
}

/// "Photo: Credit" at the start, after a sentence, or in parentheses; the credit starts
/// like a name ("Photo: a cat" in a sentence is not a credit).
static PHOTO_CREDIT: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r#"^(?:(?P<caption>.*?[.!?…»”"])\s+|(?P<before_paren>.*?)\s*\()?(?i:photo|photograph|фото|фотография|снимок)\s*:\s*(?P<credit>[\p{Lu}\d@][^:]*?)\)?\.?$"#,
    )
});

/// A photo caption and credit: "Caption. Photo: Credit" / "Фото: Credit" anywhere, and —
/// when `bold_credit` — a caption ending in a short bold credit
/// ("... was rigged. **Natalia Fedosenko / TASS**"), which only the top of an article
/// can be told apart from body text by.
pub(super) fn split_caption(para: &Paragraph, bold_credit: bool) -> Option<(String, String)> {
    let text = &para.text;
    let short = |credit: &str| {
        credit.chars().count() <= MAX_CREDIT_CHARS
            && credit.split_whitespace().count() <= MAX_CREDIT_WORDS
    };
    if let Some(caps) = PHOTO_CREDIT.captures(text) {
        let credit = caps["credit"].trim();
        let caption = caps
            .name("caption")
            .or_else(|| caps.name("before_paren"))
            .map_or("", |m| m.as_str().trim());
        if short(credit) {
            return Some((caption.to_owned(), credit.to_owned()));
        }
    }
    let last = para.spans.iter().rev().find(|s| s.end == text.len())?;
    let credit = text[last.start..].trim();
    let whole_strong = para
        .spans
        .iter()
        .any(|s| s.style == Style::Strong && s.start == last.start && s.end == text.len());
    (bold_credit && whole_strong && short(credit) && last.start > 0)
        .then(|| (text[..last.start].trim().to_owned(), credit.to_owned()))
}

/// What a labelled line ("Label: value") is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LabelKind {
    /// Where the article comes from ("Original url:", "Source:", "Источник:").
    Source,
    /// A pointer to another article ("Related article:", "Читайте также:").
    Related,
    /// The author ("Author:", "Автор:").
    Author,
}

/// A labelled line: its kind, the label as written, and where the value starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Labelled {
    pub kind: LabelKind,
    pub label: String,
    pub value_start: usize,
}

static LABEL: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(?P<label>[^:.!?]{2,40}?)\s*:\s*(?P<value>.*)$"));

/// Recognises "Label: value" lines by their label; the value may be empty (the source
/// URL often sits on the next line).
pub(super) fn labelled(para: &Paragraph) -> Option<Labelled> {
    if para.kind != BlockKind::Text || para.text.chars().count() > MAX_LABELLED_CHARS {
        return None;
    }
    let caps = LABEL.captures(&para.text)?;
    let label = caps.name("label")?;
    let kind = match label.as_str().to_lowercase().as_str() {
        "original url"
        | "original"
        | "original article"
        | "source"
        | "source url"
        | "источник"
        | "оригинал"
        | "первоисточник" => LabelKind::Source,
        "related article"
        | "related articles"
        | "related"
        | "read also"
        | "read more"
        | "see also"
        | "also read"
        | "читайте также"
        | "смотрите также"
        | "читайте еще"
        | "читайте ещё"
        | "также читайте"
        | "по теме" => LabelKind::Related,
        "author" | "автор" | "by" => LabelKind::Author,
        _ => return None,
    };
    Some(Labelled {
        kind,
        label: label.as_str().to_owned(),
        value_start: caps.name("value")?.start(),
    })
}

/// A byline at the top of an article: "By Jane Doe" (a few capitalised words).
pub(super) fn byline(text: &str) -> Option<String> {
    let name = text.strip_prefix("By ")?.trim();
    let words: Vec<&str> = name.split_whitespace().collect();
    let capitalised = words
        .iter()
        .all(|w| w.chars().next().is_some_and(|c| c.is_uppercase()) || *w == "and");
    ((1..=6).contains(&words.len()) && capitalised && !name.ends_with('.')).then(|| name.to_owned())
}

/// An absolute URL that is the whole of `para.text[from..]`, as text or as one link.
pub(super) fn url_value(para: &Paragraph, from: usize) -> Option<String> {
    let value = para.text.get(from..)?.trim();
    let absolute =
        |u: &str| u.starts_with("http://") || u.starts_with("https://") || u.starts_with("www.");
    if absolute(value) && !value.contains(char::is_whitespace) {
        return Some(value.to_owned());
    }
    let start = from + (para.text[from..].len() - para.text[from..].trim_start().len());
    para.spans.iter().find_map(|s| match &s.style {
        Style::Link { url } if s.start == start && s.end == para.text.len() && absolute(url) => {
            Some(url.clone())
        }
        _ => None,
    })
}

/// The value of a labelled line as plain text, with the target of a real link kept in
/// parentheses (links to "#" carry nothing).
pub(super) fn value_text(para: &Paragraph, from: usize) -> String {
    let value = para.text.get(from..).unwrap_or_default().trim();
    let url = para.spans.iter().find_map(|s| match &s.style {
        Style::Link { url } if s.start >= from && url != "#" && !url.is_empty() => Some(url),
        _ => None,
    });
    match url {
        Some(url) if url != value => format!("{value} ({url})"),
        _ => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::Span;

    fn block(text: &str, single_line: bool) -> Block {
        Block {
            para: Paragraph {
                text: text.into(),
                spans: vec![],
                kind: BlockKind::Text,
            },
            level: 0,
            single_line,
        }
    }

    #[test]
    fn title_like_lines() {
        assert!(is_title_like(&block(
            "Travel Ban, Oil Supplies on Russia-Belarus Agenda",
            true
        )));
        assert!(is_title_like(&block("Что будет с ценами?", true)));
        assert!(!is_title_like(&block("A sentence that ends.", true)));
        assert!(!is_title_like(&block("Two lines of source", false)));
        assert!(!is_title_like(&block("September 04, 2020", true)));
        assert!(!is_title_like(&block(&"word ".repeat(50), true)));
    }

    #[test]
    fn datelines() {
        for (line, iso) in [
            ("September 04, 2020", "2020-09-04"),
            ("Sept. 4, 2020", "2020-09-04"),
            ("Sep 4th 2020", "2020-09-04"),
            ("4 September 2020", "2020-09-04"),
            ("4 сентября 2020", "2020-09-04"),
            ("4 сентября 2020 г.", "2020-09-04"),
            ("4 Сентября 2020 года, 12:30", "2020-09-04"),
            ("04.09.2020", "2020-09-04"),
            ("2020-09-04", "2020-09-04"),
            ("Friday, September 4, 2020 10:15 am", "2020-09-04"),
            ("29.02.2020", "2020-02-29"),
            ("1 мая 2021", "2021-05-01"),
        ] {
            assert_eq!(parse_date(line).as_deref(), Some(iso), "{line}");
        }
        for line in [
            "30.02.2021",
            "2020-13-01",
            "September 04, 2020 was a Friday",
            "Mayday 4, 2020",
            "In 2020",
            "4 сентяб 2020",
        ] {
            assert_eq!(parse_date(line), None, "{line}");
        }
        assert_eq!(
            iso_prefix("2020-09-04T10:00:00+03:00").as_deref(),
            Some("2020-09-04")
        );
    }

    fn para(text: &str, spans: Vec<Span>) -> Paragraph {
        Paragraph {
            text: text.into(),
            spans,
            kind: BlockKind::Text,
        }
    }

    #[test]
    fn captions() {
        let text = "Belarusians protest. Natalia Fedosenko / TASS";
        let bold = para(
            text,
            vec![Span {
                start: 21,
                end: text.len(),
                style: Style::Strong,
            }],
        );
        let want = Some((
            "Belarusians protest.".into(),
            "Natalia Fedosenko / TASS".into(),
        ));
        assert_eq!(split_caption(&bold, true), want);
        assert_eq!(split_caption(&bold, false), None);
        assert_eq!(
            split_caption(
                &para("Митинг в Минске. Фото: Наталья Федосенко / ТАСС", vec![]),
                false
            ),
            Some(("Митинг в Минске.".into(), "Наталья Федосенко / ТАСС".into()))
        );
        assert_eq!(
            split_caption(&para("Photo: Reuters", vec![]), false),
            Some((String::new(), "Reuters".into()))
        );
        assert_eq!(
            split_caption(&para("Protesters (Photo: AP)", vec![]), false),
            Some(("Protesters".into(), "AP".into()))
        );
        assert_eq!(
            split_caption(&para("A plain sentence.", vec![]), true),
            None
        );
    }

    #[test]
    fn labels() {
        let kind = |t: &str| labelled(&para(t, vec![])).map(|l| l.kind);
        assert_eq!(kind("Original url:"), Some(LabelKind::Source));
        assert_eq!(kind("Источник: https://ria.ru/1"), Some(LabelKind::Source));
        assert_eq!(kind("Related article: Something"), Some(LabelKind::Related));
        assert_eq!(kind("Читайте также: Другое"), Some(LabelKind::Related));
        assert_eq!(kind("Автор: Иван Петров"), Some(LabelKind::Author));
        assert_eq!(kind("He said: the source is fine"), None);
        assert_eq!(kind("Sources said: nothing"), None);
        let p = para("Source: https://x.ru/a", vec![]);
        let l = labelled(&p).unwrap();
        assert_eq!(
            url_value(&p, l.value_start).as_deref(),
            Some("https://x.ru/a")
        );
        let text = "Related article: Belarus Leader";
        let p = para(
            text,
            vec![Span {
                start: 17,
                end: text.len(),
                style: Style::Link { url: "#".into() },
            }],
        );
        assert_eq!(value_text(&p, 17), "Belarus Leader");
        assert_eq!(url_value(&p, 17), None);
    }

    #[test]
    fn broken_paragraph_predicates() {
        assert!(ends_open("made significant progress in resolving"));
        assert!(ends_open("called it “progress”"));
        assert!(!ends_open("in resolving pressing issues.”"));
        assert!(!ends_open("the list:"));
        assert!(starts_lowercase("pressing issues.”"));
        assert!(starts_lowercase("«что-то"));
        assert!(!starts_lowercase("Pressing"));
        assert!(is_stray("4") && is_stray("123") && is_stray("*"));
        assert!(!is_stray("42 people"));
    }

    #[test]
    fn bylines() {
        assert_eq!(byline("By Jane Doe").as_deref(), Some("Jane Doe"));
        assert_eq!(byline("By the way, it rained."), None);
    }
}
