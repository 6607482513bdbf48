//! Language identification per paragraph.
//!
//! Built on `whatlang`, with three corrections that matter for Russian news:
//!
//! 1. **Script first, weighted.** Russian news is full of Latin words (brands, names,
//!    acronyms, product codes), while English news almost never contains Cyrillic. So the
//!    script is chosen by a weighted letter vote in which a Cyrillic letter counts 1, a
//!    Latin letter of an all-lowercase word (running text) counts 0.4, and a Latin letter
//!    of a word with capitals (`Apple`, `iPhone`, `NATO`) counts 0.2. URLs and e-mail
//!    addresses do not vote. Only the words of the chosen script go to the language
//!    step, so a Russian headline about `iPhone 15 Pro` can never be called English.
//! 2. **A short allowlist.** `whatlang` only chooses among [`ALLOWED`]: Russian, English,
//!    Ukrainian, Belarusian and other widely used languages. Rare languages with short
//!    trigram profiles (Esperanto, Javanese, Tagalog, Latin...) are what steal short
//!    headlines from English, so they are left out.
//! 3. **Letters decide among Russian, Ukrainian, Belarusian and Bulgarian.** Trigram
//!    profiles confuse these on short texts, but their alphabets differ: і ї є ґ exist
//!    only in Ukrainian (і also in Belarusian), ў only in Belarusian, ы э ё not in
//!    Ukrainian or Bulgarian, и щ not in Belarusian, ъ is a separating sign before
//!    е ё ю я in Russian but a frequent vowel elsewhere in Bulgarian, ь is frequent
//!    everywhere except Bulgarian. A naive-Bayes score over these letter classes (rates
//!    per language in [`LETTER_RATES`]) is exact evidence where trigrams are guesses,
//!    and it also uses *absence*: і is about 5 % of Ukrainian letters, so forty Cyrillic
//!    letters without any і, ї, є or ґ are already strong evidence against Ukrainian.
//!    `whatlang`'s answer is added as a small vote and Russian gets a prior larger than
//!    that vote (this tool reads Russian news), so a text with no telling letters at
//!    all — a four-word headline — stays Russian, while `whatlang` still settles what
//!    letters leave open (Ukrainian or Belarusian when only і is seen). Texts with
//!    letters of none of these alphabets are Serbian or Macedonian when `whatlang` says
//!    so, else undetermined (Kazakh, Tatar... are unknown to it).
//!
//! Latin-script text goes to `whatlang` over the Latin languages of the allowlist, with
//! capitalised words (names, brands) left out when enough running text remains; an
//! answer other than English needs a confidence above one half, because short English
//! text is what it most often gets wrong.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Serialize;
use whatlang::{Detector, Lang as WLang};

use crate::article::{Article, Lang};

/// The result of language identification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// ISO 639-1 code: "ru", "en", "uk", "be", another code, or "und" when unknown.
    pub lang: String,
    /// How sure the detector is, from 0 to 1.
    pub confidence: f64,
}

impl Detection {
    /// The language as one svodka works with, when it is one.
    pub fn known(&self) -> Option<Lang> {
        match self.lang.as_str() {
            "ru" => Some(Lang::Ru),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// Whether the language could not be told at all (too few letters, an unknown
    /// script), as opposed to a language svodka does not work with.
    pub fn is_undetermined(&self) -> bool {
        self.lang == UNDETERMINED
    }

    fn undetermined() -> Self {
        Detection {
            lang: UNDETERMINED.to_string(),
            confidence: 0.0,
        }
    }
}

/// Code for a text whose language could not be told.
const UNDETERMINED: &str = "und";

/// Fewer letters than this carry no usable evidence.
const MIN_LETTERS: usize = 3;

/// The languages `whatlang` may answer, with their ISO 639-1 codes.
const ALLOWED: &[(WLang, &str)] = &[
    (WLang::Rus, "ru"),
    (WLang::Eng, "en"),
    (WLang::Ukr, "uk"),
    (WLang::Bel, "be"),
    (WLang::Bul, "bg"),
    (WLang::Srp, "sr"),
    (WLang::Mkd, "mk"),
    (WLang::Deu, "de"),
    (WLang::Fra, "fr"),
    (WLang::Spa, "es"),
    (WLang::Ita, "it"),
    (WLang::Por, "pt"),
    (WLang::Nld, "nl"),
    (WLang::Pol, "pl"),
    (WLang::Ces, "cs"),
    (WLang::Slk, "sk"),
    (WLang::Slv, "sl"),
    (WLang::Hrv, "hr"),
    (WLang::Ron, "ro"),
    (WLang::Hun, "hu"),
    (WLang::Fin, "fi"),
    (WLang::Swe, "sv"),
    (WLang::Dan, "da"),
    (WLang::Nob, "nb"),
    (WLang::Est, "et"),
    (WLang::Lav, "lv"),
    (WLang::Lit, "lt"),
    (WLang::Tur, "tr"),
    (WLang::Aze, "az"),
    (WLang::Uzb, "uz"),
    (WLang::Ind, "id"),
    (WLang::Vie, "vi"),
    (WLang::Ell, "el"),
    (WLang::Cmn, "zh"),
    (WLang::Jpn, "ja"),
    (WLang::Kor, "ko"),
    (WLang::Ara, "ar"),
    (WLang::Pes, "fa"),
    (WLang::Heb, "he"),
    (WLang::Hin, "hi"),
    (WLang::Kat, "ka"),
    (WLang::Hye, "hy"),
];

/// Letter classes that tell the Cyrillic languages apart (lowercase), see [`letter_class`].
const CLASSES: usize = 8;

/// Share of Cyrillic letters in each letter class, per language, from published
/// letter-frequency tables (rounded). Classes: і; ї є ґ; ў; ы э ё; ъ before е ё ю я (the
/// Russian separating sign); any other ъ (the Bulgarian vowel); и щ; ь. A letter outside
/// a language's alphabet gets [`F`], not zero: news quotes names in neighbouring
/// languages.
#[rustfmt::skip]
const LETTER_RATES: [(&str, [f64; CLASSES]); 4] = [
    //      і      їєґ    ў     ыэё    ъ+vowel ъ      ищ     ь
    ("ru", [F,     F,     F,    0.025, 0.0008, F,     0.077, 0.017]),
    ("uk", [0.055, 0.012, F,    F,     F,      F,     0.07,  0.017]),
    ("be", [0.06,  F,     0.02, 0.065, F,      F,     F,     0.015]),
    ("bg", [F,     F,     F,    F,     0.0003, 0.025, 0.08,  0.0005]),
];

/// Short name of [`FOREIGN_RATE`] for the table above.
const F: f64 = FOREIGN_RATE;

/// The letter class of lowercase Cyrillic `c` followed by `next`, if it has one.
fn letter_class(c: char, next: Option<char>) -> Option<usize> {
    match c {
        'і' => Some(0),
        'ї' | 'є' | 'ґ' => Some(1),
        'ў' => Some(2),
        'ы' | 'э' | 'ё' => Some(3),
        'ъ' if matches!(next, Some('е' | 'ё' | 'ю' | 'я')) => Some(4),
        'ъ' => Some(5),
        'и' | 'щ' => Some(6),
        'ь' => Some(7),
        _ => None,
    }
}

/// Rate of a letter that a language's alphabet lacks.
const FOREIGN_RATE: f64 = 2e-4;

/// Letters of the Russian, Ukrainian, Belarusian and Bulgarian alphabets together.
const KNOWN_CYRILLIC: &str = "абвгдежзийклмнопрстуфхцчшщъыьэюяёєіїґў";

/// Share of Cyrillic letters outside [`KNOWN_CYRILLIC`] above which the text is in
/// another Cyrillic alphabet (Serbian, Macedonian, Kazakh...).
const OTHER_ALPHABET_SHARE: f64 = 0.02;

/// Weight in nats of `whatlang`'s answer, scaled by its confidence.
const WHATLANG_VOTE: f64 = 1.0;

/// Prior in nats for Russian among the Cyrillic languages: well above [`WHATLANG_VOTE`],
/// so only letters can move a text away from Russian, and below the weight of one
/// telling letter (ln(0.055 / [`FOREIGN_RATE`]) ≈ 5.6 nats for a Ukrainian і).
const RUSSIAN_PRIOR: f64 = 3.0;

/// Confidence above which `whatlang` may call Latin-script text something other than
/// English.
const NON_ENGLISH_MIN_CONFIDENCE: f64 = 0.5;

/// Script weight of a Latin letter in an all-lowercase word.
const LATIN_RUNNING_WEIGHT: f64 = 0.4;

/// Script weight of a Latin letter in a word with capitals (names, brands, acronyms).
const LATIN_NAME_WEIGHT: f64 = 0.2;

/// Lowercase Latin letters enough to identify a language without the capitalised words.
const MIN_RUNNING_LETTERS: usize = 12;

static CYRILLIC_DETECTOR: LazyLock<Detector> = LazyLock::new(|| {
    Detector::with_allowlist(vec![
        WLang::Rus,
        WLang::Ukr,
        WLang::Bel,
        WLang::Bul,
        WLang::Srp,
        WLang::Mkd,
    ])
});

static LATIN_DETECTOR: LazyLock<Detector> = LazyLock::new(|| {
    Detector::with_allowlist(
        ALLOWED
            .iter()
            .map(|(lang, _)| *lang)
            .filter(|lang| !is_cyrillic_lang(*lang))
            .collect(),
    )
});

static ANY_DETECTOR: LazyLock<Detector> =
    LazyLock::new(|| Detector::with_allowlist(ALLOWED.iter().map(|(lang, _)| *lang).collect()));

fn is_cyrillic_lang(lang: WLang) -> bool {
    matches!(
        lang,
        WLang::Rus | WLang::Ukr | WLang::Bel | WLang::Bul | WLang::Srp | WLang::Mkd
    )
}

fn iso_code(lang: WLang) -> &'static str {
    ALLOWED
        .iter()
        .find(|(l, _)| *l == lang)
        .map_or(UNDETERMINED, |(_, code)| code)
}

/// The writing system a text is mostly in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Cyrillic,
    Latin,
    Other,
}

fn is_cyrillic(c: char) -> bool {
    matches!(c, '\u{0400}'..='\u{052F}')
}

fn is_latin(c: char) -> bool {
    c.is_ascii_alphabetic() || (matches!(c, '\u{00C0}'..='\u{024F}') && c.is_alphabetic())
}

/// Words of the text that may vote: URLs and e-mail addresses are left out.
fn voting_tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace()
        .filter(|t| !(t.contains("://") || t.starts_with("www.") || t.contains('@')))
}

/// Runs of letters in `text`, skipping URLs and e-mail addresses.
fn words(text: &str) -> impl Iterator<Item = &str> {
    voting_tokens(text)
        .flat_map(|t| t.split(|c: char| !c.is_alphabetic()))
        .filter(|w| !w.is_empty())
}

fn script_of(word: &str) -> Script {
    match word.chars().next() {
        Some(c) if is_cyrillic(c) => Script::Cyrillic,
        Some(c) if is_latin(c) => Script::Latin,
        _ => Script::Other,
    }
}

/// The script with the largest weighted letter vote, and the number of letters.
fn dominant_script(text: &str) -> (Script, usize) {
    let (mut cyrillic, mut latin, mut other) = (0.0, 0.0, 0.0);
    let mut letters = 0;
    for word in words(text) {
        let n = word.chars().count();
        letters += n;
        match script_of(word) {
            Script::Cyrillic => cyrillic += n as f64,
            Script::Latin if word.chars().any(char::is_uppercase) => {
                latin += n as f64 * LATIN_NAME_WEIGHT
            }
            Script::Latin => latin += n as f64 * LATIN_RUNNING_WEIGHT,
            Script::Other => other += n as f64,
        }
    }
    let script = if cyrillic >= latin && cyrillic >= other {
        Script::Cyrillic
    } else if latin >= other {
        Script::Latin
    } else {
        Script::Other
    };
    (script, letters)
}

/// The words of `text` written in `script`, joined by spaces.
fn words_in(text: &str, script: Script) -> String {
    words(text)
        .filter(|w| script_of(w) == script)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The Latin words of `text` for the language step: names, brands and acronyms (words
/// with capitals) mislead trigram models, so they are left out when enough lowercase
/// running text remains.
fn running_latin(text: &str) -> String {
    let lowercase: Vec<&str> = words(text)
        .filter(|w| script_of(w) == Script::Latin && !w.chars().any(char::is_uppercase))
        .collect();
    if lowercase.iter().map(|w| w.chars().count()).sum::<usize>() >= MIN_RUNNING_LETTERS {
        lowercase.join(" ")
    } else {
        words_in(text, Script::Latin)
    }
}

/// Identifies the language of one paragraph (or any short text).
pub fn detect(text: &str) -> Detection {
    let (script, letters) = dominant_script(text);
    if letters < MIN_LETTERS {
        return Detection::undetermined();
    }
    match script {
        Script::Cyrillic => detect_cyrillic(&words_in(text, Script::Cyrillic)),
        Script::Latin => detect_latin(&running_latin(text)),
        Script::Other => match ANY_DETECTOR.detect(text) {
            Some(info) => Detection {
                lang: iso_code(info.lang()).to_string(),
                confidence: info.confidence(),
            },
            None => Detection::undetermined(),
        },
    }
}

fn detect_latin(text: &str) -> Detection {
    let Some(info) = LATIN_DETECTOR.detect(text) else {
        return Detection::undetermined();
    };
    let (lang, confidence) = match info.lang() {
        WLang::Eng => ("en", info.confidence()),
        other if info.confidence() > NON_ENGLISH_MIN_CONFIDENCE => {
            (iso_code(other), info.confidence())
        }
        // English by default, not by evidence: never reported as sure.
        _ => ("en", (1.0 - info.confidence()).min(0.5)),
    };
    Detection {
        lang: lang.to_string(),
        confidence,
    }
}

/// Counts of Cyrillic letters per letter class, plus the total and the letters outside
/// [`KNOWN_CYRILLIC`].
struct LetterCounts {
    classes: [usize; CLASSES],
    total: usize,
    unknown: usize,
}

fn count_letters(text: &str) -> LetterCounts {
    let mut counts = LetterCounts {
        classes: [0; CLASSES],
        total: 0,
        unknown: 0,
    };
    let lowercase: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    for (i, &c) in lowercase.iter().enumerate() {
        if !is_cyrillic(c) {
            continue;
        }
        counts.total += 1;
        if !KNOWN_CYRILLIC.contains(c) {
            counts.unknown += 1;
        } else if let Some(class) = letter_class(c, lowercase.get(i + 1).copied()) {
            counts.classes[class] += 1;
        }
    }
    counts
}

/// Log-likelihood of the letter counts under one language's class rates.
fn log_likelihood(counts: &LetterCounts, rates: &[f64; CLASSES]) -> f64 {
    let classified: usize = counts.classes.iter().sum();
    let rest_rate = 1.0 - rates.iter().sum::<f64>();
    let rest = counts.total - counts.unknown - classified;
    counts
        .classes
        .iter()
        .zip(rates)
        .map(|(&n, &rate)| n as f64 * rate.ln())
        .sum::<f64>()
        + rest as f64 * rest_rate.ln()
}

fn detect_cyrillic(text: &str) -> Detection {
    let counts = count_letters(text);
    let vote = CYRILLIC_DETECTOR.detect(text);
    if counts.unknown as f64 > OTHER_ALPHABET_SHARE * counts.total as f64 {
        // Letters of none of the four alphabets: trust whatlang only where it knows that
        // alphabet (Serbian, Macedonian); Kazakh, Tatar and the like are unknown to it.
        return match vote {
            Some(info) if matches!(info.lang(), WLang::Srp | WLang::Mkd) => Detection {
                lang: iso_code(info.lang()).to_string(),
                confidence: info.confidence(),
            },
            _ => Detection::undetermined(),
        };
    }
    let scores: Vec<(&str, f64)> = LETTER_RATES
        .iter()
        .map(|(code, rates)| {
            let mut score = log_likelihood(&counts, rates);
            if let Some(info) = &vote {
                if iso_code(info.lang()) == *code {
                    score += WHATLANG_VOTE * info.confidence();
                }
            }
            if *code == "ru" {
                score += RUSSIAN_PRIOR;
            }
            (*code, score)
        })
        .collect();
    let (lang, best) = scores
        .iter()
        .copied()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or(("ru", 0.0));
    // Posterior probability of the winner among the four.
    let norm: f64 = scores.iter().map(|(_, s)| (s - best).exp()).sum();
    Detection {
        lang: lang.to_string(),
        confidence: 1.0 / norm,
    }
}

/// Number of letters in `text` (what weighs a paragraph in [`detect_article`]).
fn letter_count(text: &str) -> usize {
    text.chars().filter(|c| c.is_alphabetic()).count()
}

/// The dominant language of an article: paragraph detections (title included) weighted
/// by paragraph length in letters and by confidence.
///
/// The confidence is the share of the article's letters that vote for the winner, so an
/// article half in Russian and half in English gets about 0.5.
pub fn detect_article(article: &Article) -> Detection {
    let texts = article
        .title
        .iter()
        .map(String::as_str)
        .chain(article.paragraphs.iter().map(|p| p.text.as_str()));
    let mut weights: HashMap<String, f64> = HashMap::new();
    let mut total = 0.0;
    for text in texts {
        let letters = letter_count(text) as f64;
        total += letters;
        let detection = detect(text);
        if detection.lang != UNDETERMINED {
            *weights.entry(detection.lang).or_default() += letters * detection.confidence;
        }
    }
    let best = weights
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(&a.0)));
    match best {
        Some((lang, weight)) if total > 0.0 && weight > 0.0 => Detection {
            lang,
            confidence: (weight / total).clamp(0.0, 1.0),
        },
        _ => Detection::undetermined(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::Paragraph;

    fn lang(text: &str) -> String {
        detect(text).lang
    }

    #[test]
    fn short_russian_headlines_are_russian() {
        for headline in [
            "Путин приехал в Минск",
            "Курс доллара вырос",
            "Apple представила iPhone 15 Pro и Apple Watch Ultra 2",
            "Samsung Galaxy S24 Ultra: обзор",
            "МИД РФ вызвал посла",
            "Новый закон о СМИ",
            "NASA запустило Artemis I",
            "ВТБ и Сбербанк снизили ставки",
            "Турнир UFC 300 в Лас-Вегасе",
            "Продажи Lada Vesta выросли на 20%",
            "Шойгу",
        ] {
            let d = detect(headline);
            assert_eq!(d.lang, "ru", "{headline}: {d:?}");
            assert_eq!(d.known(), Some(Lang::Ru));
        }
    }

    #[test]
    fn english_with_russian_words_stays_english() {
        for text in [
            "Travel Ban, Oil Supplies on Russia-Belarus Agenda",
            "Mishustin said in televised remarks that Moscow supports Minsk",
            "The word «спасибо» means thank you",
            "Protesters chanted «Уходи!» in front of the government building",
            "Rossiya 24 reported the news",
        ] {
            assert_eq!(lang(text), "en", "{text}");
        }
    }

    #[test]
    fn ukrainian_is_not_russian() {
        for text in [
            "Київ готується до опалювального сезону",
            "Президент України провів зустріч з міністрами у Львові.",
            "У Києві відбулася акція на підтримку політичних в'язнів.",
            "Уряд ухвалив рішення про підвищення мінімальної заробітної плати з першого січня.",
            "Дуже цікаво",
        ] {
            assert_eq!(lang(text), "uk", "{text}: {:?}", detect(text));
        }
    }

    #[test]
    fn belarusian_is_not_russian() {
        for text in [
            "Мінск і Масква дамовіліся аб адкрыцці мяжы.",
            "Беларускія студэнты выйшлі на вуліцы горада.",
            "Урад зацвердзіў новую праграму падтрымкі сельскай гаспадаркі.",
            "Сёння ў Мінску прайшоў канцэрт.",
        ] {
            assert_eq!(lang(text), "be", "{text}: {:?}", detect(text));
        }
    }

    #[test]
    fn russian_with_a_ukrainian_name_stays_russian() {
        let text = "Власти сообщили, что в Києве и Харькове объявлена воздушная тревога, \
                    жители были эвакуированы в убежища.";
        assert_eq!(lang(text), "ru");
    }

    #[test]
    fn other_languages_keep_their_code() {
        assert_eq!(
            lang("Die Bundesregierung hat am Mittwoch neue Maßnahmen gegen die Inflation beschlossen."),
            "de"
        );
        assert_eq!(
            lang("Le gouvernement a annoncé mercredi de nouvelles mesures contre l'inflation."),
            "fr"
        );
        assert_eq!(
            lang(
                "България и Румъния подписаха споразумение за съвместно развитие на пристанищата."
            ),
            "bg"
        );
        assert_eq!(
            lang("Влада Србије је усвојила нови закон о јавним набавкама."),
            "sr"
        );
        assert_eq!(
            detect("Қазақстан Республикасының Үкіметі жаңа бағдарламаны бекітті").lang,
            "und"
        );
    }

    #[test]
    fn too_little_text_is_undetermined() {
        for text in ["", "  ", "42", "—", "ok"] {
            let d = detect(text);
            assert_eq!(d.lang, "und", "{text:?}");
            assert_eq!(d.known(), None);
        }
    }

    #[test]
    fn confidence_is_a_probability() {
        for text in [
            "Путин приехал в Минск",
            "Дуже цікаво",
            "Hello world, how are you",
        ] {
            let c = detect(text).confidence;
            assert!((0.0..=1.0).contains(&c), "{text}: {c}");
        }
    }

    #[test]
    fn article_language_is_weighted_by_length() {
        let para = |text: &str| Paragraph {
            text: text.to_string(),
            ..Paragraph::default()
        };
        let article = Article {
            title: Some("Apple iPhone 15 Pro".to_string()),
            paragraphs: vec![
                para("Компания Apple представила новые смартфоны на ежегодной презентации в Купертино."),
                para("Продажи начнутся в конце сентября, цены пока не объявлены."),
                para("Source: Reuters"),
            ],
            ..Article::default()
        };
        let d = detect_article(&article);
        assert_eq!(d.lang, "ru");
        assert!(d.confidence > 0.7, "{d:?}");
        assert_eq!(detect_article(&Article::default()).lang, "und");
    }
}
