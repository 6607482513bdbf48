//! Tests of the sentence splitter, rule by rule: abbreviations, numbers, initials,
//! quotations, dialogue, brackets, URLs, headlines run into the text, Russian tables.

use super::*;

fn check(lang: Option<Lang>, text: &str, expected: &[&str]) {
    assert_eq!(sentences(text, lang), expected, "in {text:?}");
}

fn en(text: &str, expected: &[&str]) {
    check(Some(Lang::En), text, expected);
    check(None, text, expected);
}

fn ru(text: &str, expected: &[&str]) {
    check(Some(Lang::Ru), text, expected);
    check(None, text, expected);
}

#[test]
fn ranges_are_trimmed_and_cover_all_text() {
    let text = "  Первое предложение.\n Second one!\u{a0}\tТретье…  ";
    let ranges = split(text, None);
    assert_eq!(
        sentences(text, None),
        ["Первое предложение.", "Second one!", "Третье…"]
    );
    let covered: String = ranges.iter().map(|r| &text[r.clone()]).collect();
    let all: String = text.split_whitespace().collect();
    assert_eq!(covered.replace(char::is_whitespace, ""), all);
    assert!(split("", None).is_empty());
    assert!(split(" \n\t ", Some(Lang::Ru)).is_empty());
    assert_eq!(split(" Одно ", Some(Lang::Ru)), vec![1.." Одно".len()]);
}

#[test]
fn newlines_are_spaces() {
    en(
        "It rained.\nThen it\nstopped.",
        &["It rained.", "Then it\nstopped."],
    );
}

#[test]
fn english_title_and_month_abbreviations() {
    en(
        "Mr. Smith met Mrs. Jones, Dr. Brown and Gen. Milley at St. Mary's on Sept. 5. \
         Gov. Newsom, Sen. Warren and Rep. Cheney came on Aug. 12 or Jan. 3. They left.",
        &[
            "Mr. Smith met Mrs. Jones, Dr. Brown and Gen. Milley at St. Mary's on Sept. 5.",
            "Gov. Newsom, Sen. Warren and Rep. Cheney came on Aug. 12 or Jan. 3.",
            "They left.",
        ],
    );
}

#[test]
fn english_company_suffixes_end_a_sentence_only_before_a_function_word() {
    en(
        "Apple Inc. and CRRC Co. Ltd. signed it with Foo Corp. The deal is done.",
        &[
            "Apple Inc. and CRRC Co. Ltd. signed it with Foo Corp.",
            "The deal is done.",
        ],
    );
    en(
        "Russia vs. Ukraine talks failed.",
        &["Russia vs. Ukraine talks failed."],
    );
}

#[test]
fn etc_ends_a_sentence_before_a_capital_only() {
    en(
        "Apples, pears, etc. are sold here. We bought apples, pears, etc. Then we left.",
        &[
            "Apples, pears, etc. are sold here.",
            "We bought apples, pears, etc.",
            "Then we left.",
        ],
    );
}

#[test]
fn clock_times_and_dotted_abbreviations() {
    en(
        "It starts at 9 a.m. Moscow time and ends at 5 p.m. The next one is on Monday.",
        &[
            "It starts at 9 a.m. Moscow time and ends at 5 p.m.",
            "The next one is on Monday.",
        ],
    );
    en(
        "Some fruits, e.g. Apples, are red, i.e. Ripe. Others are not.",
        &[
            "Some fruits, e.g. Apples, are red, i.e. Ripe.",
            "Others are not.",
        ],
    );
}

#[test]
fn dotted_country_names() {
    en(
        "The U.S. President met U.K. and U.N. officials. He moved to the U.S. The move \
         was hard.",
        &[
            "The U.S. President met U.K. and U.N. officials.",
            "He moved to the U.S.",
            "The move was hard.",
        ],
    );
}

#[test]
fn numbering_abbreviations_before_a_digit() {
    en(
        "Decree No. 127 was adopted, see p. 12 and Art. 5. No. That is wrong.",
        &[
            "Decree No. 127 was adopted, see p. 12 and Art. 5.",
            "No.",
            "That is wrong.",
        ],
    );
}

#[test]
fn initials_continue_a_name() {
    en(
        "A. Lukashenko met J.R.R. Tolkien fans. Vitamin D. The study says so.",
        &[
            "A. Lukashenko met J.R.R. Tolkien fans.",
            "Vitamin D.",
            "The study says so.",
        ],
    );
    ru(
        "В. В. Путин и В.В. Путин - одно лицо. Премия им. В. К. Арсеньева вручена в НИИ \
         им. Н.И. Пирогова. В корнеплоде есть витамин С. Кроме того, он вкусный.",
        &[
            "В. В. Путин и В.В. Путин - одно лицо.",
            "Премия им. В. К. Арсеньева вручена в НИИ им. Н.И. Пирогова.",
            "В корнеплоде есть витамин С.",
            "Кроме того, он вкусный.",
        ],
    );
}

#[test]
fn decimals_versions_and_dates_stay_whole() {
    en(
        "Growth was 3.5% in version 1.2.3 on 12.05.2021. Then it fell to 2.1.",
        &[
            "Growth was 3.5% in version 1.2.3 on 12.05.2021.",
            "Then it fell to 2.1.",
        ],
    );
}

#[test]
fn a_sentence_may_start_with_a_digit() {
    en(
        "It was reported on December 12. 96.5% of voters said no. $90 billion was spent.",
        &[
            "It was reported on December 12.",
            "96.5% of voters said no.",
            "$90 billion was spent.",
        ],
    );
    ru(
        "Об этом сообщили в пятницу. 6 декабря президент выступил.",
        &[
            "Об этом сообщили в пятницу.",
            "6 декабря президент выступил.",
        ],
    );
}

#[test]
fn ellipses() {
    en(
        "He waited... Then he left. She waited… and waited… Nobody came.",
        &[
            "He waited...",
            "Then he left.",
            "She waited… and waited…",
            "Nobody came.",
        ],
    );
    ru(
        "\"Я думал... может быть, завтра\", - сказал он.",
        &["\"Я думал... может быть, завтра\", - сказал он."],
    );
}

#[test]
fn strong_punctuation() {
    en(
        "Really?! Yes!! Fine? ok.",
        &["Really?!", "Yes!!", "Fine? ok."],
    );
    ru("Правда?.. Да!", &["Правда?..", "Да!"]);
}

#[test]
fn terminal_punctuation_inside_quotes() {
    ru(
        "«Привет!» — сказал он. «Пока!» Потом ушёл.",
        &["«Привет!» — сказал он.", "«Пока!»", "Потом ушёл."],
    );
    ru(
        "Он сказал: „Всё.“ Потом ушёл.",
        &["Он сказал: „Всё.“", "Потом ушёл."],
    );
    en(
        "She called it “the end.” Next came silence. \"Go.\" He went.",
        &[
            "She called it “the end.”",
            "Next came silence.",
            "\"Go.\"",
            "He went.",
        ],
    );
}

#[test]
fn a_quoted_title_is_not_split() {
    ru(
        "Доступен сериал \"Универ. 10 лет спустя\" телеканала ТНТ. Он популярен.",
        &[
            "Доступен сериал \"Универ. 10 лет спустя\" телеканала ТНТ.",
            "Он популярен.",
        ],
    );
    en(
        "He watched «Part one. Part two» yesterday. It was long.",
        &["He watched «Part one. Part two» yesterday.", "It was long."],
    );
}

#[test]
fn a_colon_before_a_quotation_of_several_sentences() {
    ru(
        "Старцев вспоминает: \"Приходил поздно. Спал до обеда\". Президент добавил: \
         \"Франция красива\". Всё.",
        &[
            "Старцев вспоминает:",
            "\"Приходил поздно.",
            "Спал до обеда\".",
            "Президент добавил: \"Франция красива\".",
            "Всё.",
        ],
    );
}

#[test]
fn dialogue_dashes() {
    ru(
        "- Ты придешь? - Да, - ответил он. - Жди меня.",
        &["- Ты придешь?", "- Да, - ответил он.", "- Жди меня."],
    );
    ru(
        "\"Это важно, - пояснила Татьяна Арабаджи. - По темпам роста мы первые\".",
        &[
            "\"Это важно, - пояснила Татьяна Арабаджи.",
            "- По темпам роста мы первые\".",
        ],
    );
    en("— Are you coming? — Yes!", &["— Are you coming?", "— Yes!"]);
}

#[test]
fn brackets() {
    en(
        "He left (for good.) Nobody cried. The fund (about $5 bn. Most of it is private) \
         grew (see above).",
        &[
            "He left (for good.)",
            "Nobody cried.",
            "The fund (about $5 bn. Most of it is private) grew (see above).",
        ],
    );
    ru(
        "Так считают в ФПГ (финансово-промышленных группах. - Ред.). Дальше.",
        &[
            "Так считают в ФПГ (финансово-промышленных группах. - Ред.).",
            "Дальше.",
        ],
    );
}

#[test]
fn urls_and_emails() {
    en(
        "Visit https://example.com/a.b?x=1. Write to info@example.org. See www.example.com \
         for details.",
        &[
            "Visit https://example.com/a.b?x=1.",
            "Write to info@example.org.",
            "See www.example.com for details.",
        ],
    );
}

#[test]
fn headlines_without_a_period() {
    en(
        "Putin meets Biden in Geneva",
        &["Putin meets Biden in Geneva"],
    );
    en(
        "Several factors may cause discomfort during weekends The reason is poor sleep. \
         This was reported by The Guardian newspaper. Immunoglobulins A and G protect us.",
        &[
            "Several factors may cause discomfort during weekends",
            "The reason is poor sleep.",
            "This was reported by The Guardian newspaper.",
            "Immunoglobulins A and G protect us.",
        ],
    );
    ru(
        "Где еще могут быть наемники По данным агентства, их много. В корнеплоде есть \
         витамины группы В, витамин С и калий. ВОЗ сообщила об этом.",
        &[
            "Где еще могут быть наемники",
            "По данным агентства, их много.",
            "В корнеплоде есть витамины группы В, витамин С и калий.",
            "ВОЗ сообщила об этом.",
        ],
    );
    en(
        "It was found in all six WHO regions. He liked the film As Good as It Gets best.",
        &[
            "It was found in all six WHO regions.",
            "He liked the film As Good as It Gets best.",
        ],
    );
    // The polite "Вы" is capitalized anywhere.
    ru(
        "Нет, неграмотный Вы человек.",
        &["Нет, неграмотный Вы человек."],
    );
}

#[test]
fn verse_lines_after_a_comma() {
    ru(
        "Друг мой, друг мой, Я очень и очень болен.",
        &["Друг мой, друг мой,", "Я очень и очень болен."],
    );
    en(
        "Москва, Россия, Europe, Asia.",
        &["Москва, Россия, Europe, Asia."],
    );
}

#[test]
fn russian_list_abbreviations() {
    ru(
        "Это сахар, мёд и т.д. Это фрукты и т. д. Это суды и т. п. Это вузы и др. Все \
         они, т. е. все, т.е. каждый, здесь.",
        &[
            "Это сахар, мёд и т.д.",
            "Это фрукты и т. д.",
            "Это суды и т. п.",
            "Это вузы и др.",
            "Все они, т. е. все, т.е. каждый, здесь.",
        ],
    );
}

#[test]
fn russian_amounts_and_units() {
    ru(
        "Цена - от 3 до 6 тыс. руб. При этом спрос растет. Выручка - $90 млрд. Это \
         рекорд. Высота достигает 3 тыс. м. Осадков выпало 450 мм. В 2015 г. В Москве \
         было 5 млн жителей. Их стало больше, чем в 1990-1995 гг. Это рост.",
        &[
            "Цена - от 3 до 6 тыс. руб.",
            "При этом спрос растет.",
            "Выручка - $90 млрд.",
            "Это рекорд.",
            "Высота достигает 3 тыс. м.",
            "Осадков выпало 450 мм.",
            "В 2015 г.",
            "В Москве было 5 млн жителей.",
            "Их стало больше, чем в 1990-1995 гг.",
            "Это рост.",
        ],
    );
    ru(
        "В 2015 г. правообладатели составили список. Это ст. 5 ч. 1 УК РФ.",
        &[
            "В 2015 г. правообладатели составили список.",
            "Это ст. 5 ч. 1 УК РФ.",
        ],
    );
    ru(
        "В 2015 г. Россия ввела санкции, а в XX в. Турция - нет. Это было в XIX в. В те годы.",
        &[
            "В 2015 г. Россия ввела санкции, а в XX в. Турция - нет.",
            "Это было в XIX в.",
            "В те годы.",
        ],
    );
    en(
        "It rained 450 mm. A state of emergency was declared. It lasted 5 min. Moscow \
         time is used.",
        &[
            "It rained 450 mm.",
            "A state of emergency was declared.",
            "It lasted 5 min. Moscow time is used.",
        ],
    );
}

#[test]
fn russian_prefix_abbreviations() {
    ru(
        "Он живет в г. Москва на ул. Ленина, д. 5 (см. рис. 3). Проф. Иванов, акад. \
         Сахаров, тов. Сталин и г-н Петров пришли в 10 ч. Это было утро. Прошло 5 мин. \
         Все ушли.",
        &[
            "Он живет в г. Москва на ул. Ленина, д. 5 (см. рис. 3).",
            "Проф. Иванов, акад. Сахаров, тов. Сталин и г-н Петров пришли в 10 ч.",
            "Это было утро.",
            "Прошло 5 мин.",
            "Все ушли.",
        ],
    );
    ru(
        "Им помогли пр. Мира и ст. Москва-Товарная. Мы отдали книги им. Они рады.",
        &[
            "Им помогли пр. Мира и ст. Москва-Товарная.",
            "Мы отдали книги им.",
            "Они рады.",
        ],
    );
}

#[test]
fn russian_sentence_starts() {
    ru(
        "Компания выпустила новый iPhone. Apple довольна. «Ничего не будет», — сказал он. \
         - Правда? \"Да\".",
        &[
            "Компания выпустила новый iPhone.",
            "Apple довольна.",
            "«Ничего не будет», — сказал он.",
            "- Правда?",
            "\"Да\".",
        ],
    );
    ru(
        "Иммуноглобулины А. При введении вакцины их нет. Получите A и G. Но решения нет.",
        &[
            "Иммуноглобулины А.",
            "При введении вакцины их нет.",
            "Получите A и G.",
            "Но решения нет.",
        ],
    );
}

#[test]
fn english_abbreviations_inside_russian_text() {
    check(
        Some(Lang::Ru),
        "Их разработала CRRC Zhuzhou Locomotive Co. Ltd. в Китае. Mr. Smith согласен.",
        &[
            "Их разработала CRRC Zhuzhou Locomotive Co. Ltd. в Китае.",
            "Mr. Smith согласен.",
        ],
    );
}
