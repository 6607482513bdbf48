//! Sentence splitting for Russian and English (`article::sentences`; "segment" in
//! svodka names the pipeline's translation units, not this).
//!
//! Every run of whitespace is a candidate boundary. The decision looks at the word
//! before the gap (its core, terminal punctuation and closing quotes or brackets) and
//! at the word after it (opening quotes, dialogue dash, first letter), then consults
//! the per-language tables below: abbreviations grouped by how they behave at a
//! sentence end, and the function words that may start a sentence but never continue
//! a name. Those function words also reveal a headline or verse line run into the
//! text without a period ("...during weekends The reason is..."). Gaps inside brackets,
//! or inside a quoted title the sentence goes on after, are never boundaries; a colon
//! before a quotation of several sentences is one. Keeping the knowledge in tables
//! keeps the decision small and each rule testable.

use std::ops::Range;

use super::Lang;

/// Byte ranges of the sentences of `text`, in order, trimmed of surrounding whitespace.
///
/// `text` is one paragraph; line breaks count as spaces. Every non-space character of
/// `text` lies in exactly one range. `lang` picks the rule tables; `None` uses both.
pub fn split(text: &str, lang: Option<Lang>) -> Vec<Range<usize>> {
    let words = words(text);
    let pairs = pairs(text);
    let enclosed = enclosed_after(&words, &pairs);
    let mut cuts = cut_sentences(text, &words, &enclosed, &Rules::new(lang));
    cut_before_quotations(text, &words, &pairs, &enclosed, &mut cuts);
    let mut sentences = Vec::new();
    let mut first = 0;
    for i in 1..words.len() {
        if cuts[i] {
            sentences.push(words[first].start..words[i - 1].end);
            first = i;
        }
    }
    if let Some(last) = words.last() {
        sentences.push(words[first].start..last.end);
    }
    sentences
}

/// `cuts[i]`: a sentence ends after `words[i - 1]` (`cuts[0]` is unused).
fn cut_sentences(
    text: &str,
    words: &[Range<usize>],
    enclosed: &[bool],
    rules: &Rules,
) -> Vec<bool> {
    let mut cuts = vec![false; words.len()];
    for i in 1..words.len() {
        let gap = Gap {
            before: i.checked_sub(2).map(|j| &text[words[j].clone()]),
            left: &text[words[i - 1].clone()],
            right: &text[words[i].clone()],
            after: words.get(i + 1).map(|r| &text[r.clone()]),
        };
        cuts[i] = !enclosed[i - 1] && rules.is_boundary(&gap);
    }
    cuts
}

/// A colon introducing a quotation of several sentences ends a segment of its own:
/// the quotation is a text in itself ("He recalls: "I came late. I slept."").
fn cut_before_quotations(
    text: &str,
    words: &[Range<usize>],
    pairs: &[Pair],
    enclosed: &[bool],
    cuts: &mut [bool],
) {
    for i in 1..words.len() {
        let introduced = text[words[i - 1].clone()].ends_with(':')
            && Right::parse(&text[words[i].clone()], None).start == Start::Upper
            && !enclosed[i - 1];
        if !introduced {
            continue;
        }
        if let Some(quotation) = pairs.iter().find(|p| p.quote && p.open == words[i].start) {
            let inner = (i + 1..words.len())
                .take_while(|&j| words[j - 1].end < quotation.close)
                .any(|j| cuts[j]);
            cuts[i] |= inner;
        }
    }
}

/// The sentences of `text` as string slices (see [`split`]).
pub fn sentences(text: &str, lang: Option<Lang>) -> Vec<&str> {
    split(text, lang).into_iter().map(|r| &text[r]).collect()
}

/// How an abbreviation behaves when its period is followed by a capital or a digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An ordinary word: its period ends the sentence.
    Word,
    /// Stands before a name or number ("Mr.", "ул."): never ends a sentence.
    Prefix,
    /// Stands before a number ("No. 5", "p. 12"); elsewhere an ordinary word.
    Numbering,
    /// Often inside a name ("Co.", "U.S.", initials): ends a sentence only before a
    /// word that cannot continue a name (see `Tables::starters`).
    Weak,
    /// Usually closes a list or an amount ("etc.", "т. д.", "млн"): ends the sentence
    /// before any capital or digit.
    Final,
    /// A unit after an amount ("450 мм.", "2015 г."): ends the sentence before a
    /// capital, but a digit goes on counting ("ст. 5 ч. 1").
    Unit,
}

/// One language's knowledge, as data. Entries are lowercase; dotted abbreviations are
/// written without the final period and without inner spaces ("т.д" for "т. д.").
struct Tables {
    /// Abbreviations of kind [`Kind::Prefix`].
    prefix: &'static [&'static str],
    /// Abbreviations of kind [`Kind::Numbering`], matched as written: "No." numbers,
    /// "no." is a word.
    numbering: &'static [&'static str],
    /// Abbreviations of kind [`Kind::Weak`].
    weak: &'static [&'static str],
    /// Abbreviations of kind [`Kind::Final`].
    final_: &'static [&'static str],
    /// Units written without a period by the norm ("450 мм", "5 km"): after an amount
    /// a period there ends the sentence ([`Kind::Unit`]).
    units: &'static [&'static str],
    /// Abbreviated units of time and money ("2015 г.", "6 тыс. руб.", "5 min."): after
    /// an amount they are [`Kind::Weak`], as the sentence often goes on.
    counted: &'static [&'static str],
    /// Words naming an amount, after which a unit may follow ("3 thousand m.").
    amounts: &'static [&'static str],
    /// Function words that start sentences and lines but never continue a name.
    starters: &'static [&'static str],
    /// Titles capitalize function words ("Gone With the Wind"): a starter before a
    /// capitalized word may be inside one.
    title_case: bool,
}

#[rustfmt::skip]
const RU: Tables = Tables {
    prefix: &[
        "т.е", "т.к", "т.н", "т.ч", "и.о", "ул", "д", "ст", "ч", "см", "рис", "проф", "акад",
        "тов", "г", "гг", "в", "вв", "г-н", "г-жа", "гр", "св", "оз", "р", "пос", "дер", "ген",
        "зам", "нач", "англ", "лат", "нем", "фр", "кв", "корп", "стр", "табл", "гл", "разд",
        "доц", "канд", "докт", "чл", "корр", "мл", "пер", "наб", "пл", "просп", "ш", "с", "п",
        "пп", "т", "м", "напр", "ок", "прим", "изд", "ред", "сокр", "тел", "пгт", "ср", "мин",
    ],
    numbering: &[],
    weak: &[
        "пр", "обл", "им", "янв", "фев", "февр", "мар", "апр", "авг", "сен", "сент", "окт",
        "ноя", "нояб", "дек",
    ],
    final_: &["т.д", "т.п", "др", "н.э", "млн", "млрд", "трлн", "тыс", "руб", "долл", "коп"],
    units: &["мм", "см", "км", "м", "кг", "т", "л", "га", "мг", "мл"],
    counted: &[
        "г", "гг", "в", "вв", "мин", "сек", "ч", "мес", "сут", "млн", "млрд", "трлн", "тыс",
        "руб", "долл", "коп", "шт",
    ],
    amounts: &["тыс", "млн", "млрд", "трлн"],
    starters: &[
        "а", "без", "более", "в", "вместе", "во", "вот", "впрочем", "все", "всего", "всё",
        "вчера", "где", "да", "даже", "для", "до", "его", "ее", "её", "если", "ещё",
        "еще", "за", "завтра", "затем", "здесь", "и", "из", "или", "им", "именно", "их", "к",
        "каждый", "как", "какие", "какой", "когда", "кроме", "кто", "ли", "лишь", "между",
        "многие", "мы", "на", "над", "накануне", "нам", "нас", "не", "некоторые", "несмотря",
        "нет", "ни", "но", "о", "об", "однако", "около", "он", "она", "они", "оно", "от",
        "перед", "по", "под", "позже", "помимо", "после", "почти", "поэтому", "почему", "при",
        "про", "ранее", "с", "сам", "сама", "сами", "сегодня", "сейчас", "со", "согласно",
        "среди", "та", "так", "также", "такая", "такие", "таким", "такого", "такое", "такой",
        "там", "те", "тем", "теперь", "то", "тогда", "той", "только", "тот", "у", "уже",
        "хотя", "через", "что", "чтобы", "это", "этого", "этой", "этом", "этот", "эти", "этим",
        "этих", "эта", "эту", "я",
    ],
    title_case: false,
};

/// English abbreviations found inside names, which Russian news quotes as they are.
#[rustfmt::skip]
const EN_NAMES: Tables = Tables {
    prefix: &[
        "mr", "mrs", "ms", "dr", "st", "gen", "gov", "sen", "rep", "prof", "lt", "col", "maj",
        "capt", "sgt", "adm", "rev", "hon", "messrs", "mt", "ft", "vs",
    ],
    numbering: &[],
    weak: &["inc", "ltd", "co", "corp", "jr", "sr", "bros", "plc", "llc"],
    final_: &[],
    units: &[],
    counted: &[],
    amounts: &[],
    starters: &[],
    title_case: true,
};

#[rustfmt::skip]
const EN: Tables = Tables {
    prefix: &["e.g", "i.e", "cf", "approx", "ca", "dept", "est", "viz", "univ", "ave", "blvd"],
    numbering: &["No", "Nos", "Art", "Fig", "Figs", "Vol", "Ch", "Sec", "p", "pp", "ch", "sec"],
    weak: &[
        "a.m", "p.m", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
        "nov", "dec",
    ],
    final_: &["etc"],
    units: &["mm", "cm", "m", "km", "kg", "mg", "ml", "bn", "mln"],
    counted: &["in", "ft", "lb", "lbs", "oz", "min", "sec", "hr", "hrs", "yr", "yrs"],
    amounts: &["hundred", "thousand", "million", "billion", "trillion"],
    starters: &[
        "a", "about", "according", "after", "against", "all", "also", "although", "among",
        "an", "and", "another", "as", "at", "before", "both", "but", "by", "despite", "during",
        "each", "earlier", "either", "even", "every", "for", "from", "furthermore", "he", "her",
        "here", "his", "how", "however", "if", "in", "it", "its", "later", "many",
        "meanwhile", "moreover", "most", "my", "neither", "nevertheless", "nor", "now", "of",
        "on", "only", "or", "our", "over", "several", "she", "since", "so", "some", "such",
        "that", "the", "their", "then", "there", "therefore", "these", "they", "this",
        "those", "though", "thus", "to", "today", "under", "unlike", "until", "we", "what",
        "when", "where", "whether", "which", "while", "who", "why", "with", "without", "yet",
        "yesterday", "you",
    ],
    title_case: true,
};

/// Characters that end a sentence.
const TERMINALS: &[char] = &['.', '!', '?', '…'];
/// Characters that may follow the terminal punctuation and still belong to the sentence.
const CLOSERS: &[char] = &['"', '\'', '»', '”', '“', '’', ')', ']', '}'];
/// Characters that may open a sentence before its first letter.
const OPENERS: &[char] = &['"', '\'', '«', '„', '“', '”', '‘', '(', '[', '{', '¿', '¡'];
/// Dashes that introduce dialogue or resumed speech.
const DASHES: &[char] = &['-', '–', '—', '‒', '―'];
/// Signs that may stand before a number starting a sentence ("$90 billion ...").
const NUMBER_SIGNS: &[char] = &['$', '€', '£', '¥', '₽', '№', '#', '+', '−'];
/// Capital letters that name vitamins, groups and classes ("витамин С", "vitamin A"),
/// so a lone one is no evidence of a new sentence.
const LABEL_LETTERS: &str = "АВСЕКМНОРТХABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The rule tables in force for one call.
struct Rules {
    tables: Vec<&'static Tables>,
}

/// The whitespace gap between two words, with one word of context on each side.
struct Gap<'a> {
    before: Option<&'a str>,
    left: &'a str,
    right: &'a str,
    after: Option<&'a str>,
}

/// How the word before a gap ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// No terminal punctuation.
    Open,
    /// No terminal punctuation but a comma.
    Comma,
    /// A single period.
    Period,
    /// An ellipsis, "…" or "...".
    Ellipsis,
    /// "!" or "?" in any combination ("?!", "!!", "?..").
    Strong,
}

/// The word before a gap.
#[derive(Debug)]
struct Left<'a> {
    /// The word without opening quotes, terminal punctuation and closers.
    core: &'a str,
    end: End,
    /// A closing quote or bracket follows the core.
    closed: bool,
}

/// What the word after a gap starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Upper,
    Lower,
    Digit,
    Other,
}

/// The word after a gap.
#[derive(Debug)]
struct Right<'a> {
    start: Start,
    /// The leading run of letters.
    word: &'a str,
    /// The word is the whole chunk: no punctuation or digits attached.
    bare: bool,
    /// The word is an initial: one letter and a period.
    initial: bool,
    /// Opening quotes or brackets stand before the word.
    opened: bool,
    /// A dialogue dash stands before the word.
    dashed: bool,
}

impl Rules {
    fn new(lang: Option<Lang>) -> Self {
        let tables = match lang {
            Some(Lang::Ru) => vec![&RU, &EN_NAMES],
            Some(Lang::En) => vec![&EN, &EN_NAMES],
            None => vec![&RU, &EN, &EN_NAMES],
        };
        Rules { tables }
    }

    fn is_boundary(&self, gap: &Gap) -> bool {
        let left = Left::parse(gap.left);
        let right = Right::parse(gap.right, gap.after);
        match left.end {
            End::Open | End::Comma => self.starts_line(&left, &right, gap),
            End::Strong | End::Ellipsis => right.begins_sentence(),
            End::Period => self.ends_at_period(&left, &right, gap),
        }
    }

    /// A period ends the sentence unless the word before it is an abbreviation that
    /// the next word continues.
    fn ends_at_period(&self, left: &Left, right: &Right, gap: &Gap) -> bool {
        if !right.begins_sentence() {
            return false;
        }
        match self.kind(left.core, gap.before) {
            Kind::Word | Kind::Final => true,
            Kind::Unit => right.start == Start::Upper,
            Kind::Prefix => false,
            Kind::Numbering => right.start != Start::Digit,
            Kind::Weak => right.dashed || self.is_starter(right),
        }
    }

    /// A headline or verse line run on without a period: a lowercase word, perhaps
    /// with a comma, then a capitalized function word, which only a new sentence or
    /// line starts with.
    fn starts_line(&self, left: &Left, right: &Right, gap: &Gap) -> bool {
        let lower_word = left.core.chars().next().is_some_and(char::is_lowercase)
            && left.core.chars().last().is_some_and(char::is_lowercase);
        if !lower_word
            || right.dashed
            || !right.bare
            || (right.opened && !left.closed)
            || !self.is_starter(right)
        {
            return false;
        }
        let next = gap.after.map(|w| Right::parse(w, None).start);
        if is_label(right.word) {
            matches!(next, Some(Start::Upper | Start::Digit))
        } else if self.starter_table(right).is_some_and(|t| t.title_case) {
            matches!(next, Some(Start::Lower | Start::Digit))
        } else {
            true
        }
    }

    /// The behaviour of `core` as an abbreviation; `before` is the previous word.
    fn kind(&self, core: &str, before: Option<&str>) -> Kind {
        // Case matters for a lone letter: "С." is an initial, "с." an abbreviation.
        let key = match joined_abbreviation(core, before) {
            Some(joined) => joined,
            None if core.chars().count() == 1 => core.to_string(),
            None => core.to_lowercase(),
        };
        let key = key.as_str();
        if before.is_some_and(|w| self.is_amount(w)) {
            if self.any(|t| t.units.contains(&key)) {
                return Kind::Unit;
            }
            if self.any(|t| t.counted.contains(&key)) {
                return Kind::Weak;
            }
        }
        if self.any(|t| t.numbering.contains(&core)) {
            return Kind::Numbering;
        }
        for table in &self.tables {
            let lists = [
                (table.prefix, Kind::Prefix),
                (table.weak, Kind::Weak),
                (table.final_, Kind::Final),
            ];
            if let Some((_, kind)) = lists.iter().find(|(list, _)| list.contains(&key)) {
                return *kind;
            }
        }
        shape_kind(core)
    }

    /// A number ("450", "$90", "XX") or an amount word ("тыс.", "thousand").
    fn is_amount(&self, word: &str) -> bool {
        let word = word.trim_matches(|c: char| OPENERS.contains(&c) || CLOSERS.contains(&c));
        let bare = word.trim_end_matches(['.', ',']);
        let digits = bare.trim_start_matches(NUMBER_SIGNS);
        let arabic = digits.starts_with(|c: char| c.is_ascii_digit())
            && digits
                .chars()
                .all(|c| c.is_ascii_digit() || ".,-–%".contains(c));
        let roman = !digits.is_empty() && digits.chars().all(|c| "IVXLCDM".contains(c));
        let lower = bare.to_lowercase();
        arabic || roman || self.any(|t| t.amounts.contains(&lower.as_str()))
    }

    /// A capitalized (not all-caps) function word that is not an initial.
    fn is_starter(&self, right: &Right) -> bool {
        self.starter_table(right).is_some()
    }

    /// The tables that know `right` as a starter.
    fn starter_table(&self, right: &Right) -> Option<&'static Tables> {
        let mut chars = right.word.chars();
        let capitalized =
            chars.next().is_some_and(char::is_uppercase) && chars.all(char::is_lowercase);
        if !capitalized || right.initial {
            return None;
        }
        let word = right.word.to_lowercase();
        self.tables
            .iter()
            .copied()
            .find(|t| t.starters.contains(&word.as_str()))
    }

    fn any(&self, pred: impl Fn(&Tables) -> bool) -> bool {
        self.tables.iter().any(|t| pred(t))
    }
}

impl<'a> Left<'a> {
    fn parse(word: &'a str) -> Self {
        let body = word.trim_end_matches(|c| TERMINALS.contains(&c) || CLOSERS.contains(&c));
        let tail = &word[body.len()..];
        let end = if tail.contains(['!', '?']) {
            End::Strong
        } else if tail.contains('…') || tail.matches('.').count() > 1 {
            End::Ellipsis
        } else if tail.contains('.') {
            End::Period
        } else if tail.is_empty() && body.ends_with(',') {
            End::Comma
        } else {
            End::Open
        };
        let core = body.trim_start_matches(OPENERS);
        Left {
            core: if end == End::Comma {
                &core[..core.len() - 1]
            } else {
                core
            },
            end,
            closed: tail.contains(CLOSERS),
        }
    }
}

impl<'a> Right<'a> {
    /// Parses `word`; a dash standing alone is skipped and `after` parsed instead.
    fn parse(word: &'a str, after: Option<&'a str>) -> Self {
        let mut dashed = false;
        let mut word = word;
        if !word.is_empty() && word.chars().all(|c| DASHES.contains(&c)) {
            dashed = true;
            word = after.unwrap_or("");
        }
        let undashed = word.trim_start_matches(DASHES);
        dashed |= undashed.len() != word.len();
        let rest = undashed.trim_start_matches(|c| OPENERS.contains(&c) || c == '…' || c == '.');
        let letters = rest
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(rest.len());
        let start = match rest.chars().next() {
            Some(c) if c.is_uppercase() => Start::Upper,
            Some(c) if c.is_lowercase() => Start::Lower,
            Some(c) if c.is_ascii_digit() => Start::Digit,
            Some(c)
                if NUMBER_SIGNS.contains(&c)
                    && rest[c.len_utf8()..].starts_with(|d: char| d.is_ascii_digit()) =>
            {
                Start::Digit
            }
            _ => Start::Other,
        };
        let word_part = &rest[..letters];
        Right {
            start,
            word: word_part,
            bare: letters == rest.len(),
            initial: word_part.chars().count() == 1 && rest[letters..].starts_with('.'),
            opened: rest.len() != undashed.len(),
            dashed,
        }
    }

    fn begins_sentence(&self) -> bool {
        matches!(self.start, Start::Upper | Start::Digit)
    }
}

/// Non-space chunks of `text` as byte ranges.
fn words(text: &str) -> Vec<Range<usize>> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                words.push(s..i);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push(s..text.len());
    }
    words
}

/// "т. д." written with a space: the letter and the "т." before it, as "т.д".
fn joined_abbreviation(core: &str, before: Option<&str>) -> Option<String> {
    let mut chars = core.chars();
    let (Some(letter), None) = (chars.next(), chars.next()) else {
        return None;
    };
    let mut prev = before?.trim_start_matches(OPENERS).chars();
    match (prev.next(), prev.next(), prev.next()) {
        (Some(p), Some('.'), None) if p.is_lowercase() && letter.is_lowercase() => {
            Some(format!("{p}.{letter}"))
        }
        _ => None,
    }
}

/// A lone capital that may name a vitamin, a group or a class.
fn is_label(word: &str) -> bool {
    let mut chars = word.chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if LABEL_LETTERS.contains(c))
}

/// The kind of a word not in the tables, judged by its shape: initials ("A", "J.R.R",
/// "U.S") may continue a name; lone lowercase letters and dotted ones ("т.е", "e.g")
/// are abbreviations that do not end a sentence by themselves.
fn shape_kind(core: &str) -> Kind {
    let single_letters = |case: fn(char) -> bool| {
        !core.is_empty()
            && core.split('.').all(|part| {
                let mut chars = part.chars();
                matches!((chars.next(), chars.next()), (Some(c), None) if case(c))
            })
    };
    if single_letters(char::is_uppercase) {
        Kind::Weak
    } else if single_letters(char::is_lowercase) {
        Kind::Prefix
    } else {
        Kind::Word
    }
}

/// A matched pair of brackets or quotation marks, as byte offsets of the two marks.
struct Pair {
    open: usize,
    close: usize,
    /// Quotation marks rather than brackets.
    quote: bool,
    /// The sentence goes on in lowercase after the closing mark of a quotation that
    /// ends in a letter or digit: a title or a cited phrase («"Универ. 10 лет спустя"
    /// канала»), not a quoted sentence.
    runs_on: bool,
}

impl Pair {
    /// No boundary may fall inside: the inside of brackets, or of a title.
    fn encloses(&self) -> bool {
        !self.quote || self.runs_on
    }
}

/// The matched brackets and quotation marks of `text`. Straight quotes open after a
/// space and close before one; an unmatched mark is ignored.
fn pairs(text: &str) -> Vec<Pair> {
    let mut pairs = Vec::new();
    let mut stack: Vec<(char, usize)> = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        let prev = k.checked_sub(1).map(|j| chars[j].1);
        let next = chars.get(k + 1).map(|&(_, n)| n);
        if let Some(open) = closing_pair(c, prev, next) {
            if let Some(depth) = stack.iter().rposition(|&(o, _)| o == open) {
                let start = stack[depth].1;
                stack.truncate(depth);
                let quote = !matches!(open, '(' | '[');
                let title_end = prev.is_some_and(char::is_alphanumeric);
                pairs.push(Pair {
                    open: start,
                    close: i,
                    quote,
                    runs_on: quote && title_end && runs_on(&text[i + c.len_utf8()..]),
                });
                continue;
            }
        }
        if opens(c, prev, next) {
            stack.push((c, i));
        }
    }
    pairs
}

/// `enclosed[i]`: the gap after `words[i]` lies inside brackets or a quoted title.
fn enclosed_after(words: &[Range<usize>], pairs: &[Pair]) -> Vec<bool> {
    let mut enclosed = vec![false; words.len()];
    for pair in pairs.iter().filter(|p| p.encloses()) {
        let first = words.partition_point(|w| w.end <= pair.open);
        for (i, word) in words.iter().enumerate().skip(first) {
            if word.end >= pair.close {
                break;
            }
            enclosed[i] = true;
        }
    }
    enclosed
}

/// The opening mark that `c` closes here, if it can close one.
fn closing_pair(c: char, prev: Option<char>, next: Option<char>) -> Option<char> {
    match c {
        ')' => Some('('),
        ']' => Some('['),
        '»' => Some('«'),
        '”' => Some('“'),
        '“' => Some('„'),
        '"' if prev.is_some_and(|p| !p.is_whitespace())
            && next.is_none_or(|n| n.is_whitespace() || !n.is_alphanumeric()) =>
        {
            Some('"')
        }
        _ => None,
    }
}

/// Whether `c` opens a quotation or bracket here.
fn opens(c: char, prev: Option<char>, next: Option<char>) -> bool {
    match c {
        '(' | '[' | '«' | '„' | '“' => true,
        '"' => {
            prev.is_none_or(|p| p.is_whitespace() || OPENERS.contains(&p) || DASHES.contains(&p))
                && next.is_some_and(|n| !n.is_whitespace())
        }
        _ => false,
    }
}

/// The text after a closing quote continues the sentence in lowercase.
fn runs_on(after: &str) -> bool {
    let mut chars = after.chars();
    chars.next().is_some_and(char::is_whitespace)
        && after
            .trim_start()
            .chars()
            .next()
            .is_some_and(char::is_lowercase)
}

#[cfg(test)]
mod tests;
