//! Tests of reading articles: the seed and WMT22 fixtures in every format and legacy
//! encoding, header and title rules, front matter, HTML pages, and file errors.

use super::*;
use crate::article::{Paragraph, Style};

/// Text and Markdown always parse.
fn parse(text: &str, format: Format) -> Article {
    super::parse(text, format).expect("text parses")
}

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/articles")
        .join(name)
}

fn seed() -> Article {
    read_file(&fixture_path("seed-article.txt"), &ReadOptions::default()).unwrap()
}

fn spanned(p: &Paragraph) -> Vec<(&str, &Style)> {
    p.spans
        .iter()
        .map(|s| (&p.text[s.start..s.end], &s.style))
        .collect()
}

#[test]
fn seed_article_title_and_metadata() {
    let a = seed();
    assert_eq!(
        a.title.as_deref(),
        Some("Travel Ban, Oil Supplies on Russia-Belarus Agenda")
    );
    let m = &a.metadata;
    assert_eq!(m.date.as_deref(), Some("September 04, 2020"));
    assert_eq!(m.date_iso.as_deref(), Some("2020-09-04"));
    assert_eq!(m.credit.as_deref(), Some("Natalia Fedosenko / TASS"));
    assert_eq!(
        m.caption.as_deref(),
        Some("Belarusians have been protesting since an Aug. 9 presidential elections they say was rigged.")
    );
    assert_eq!(
        m.source_url.as_deref(),
        Some("https://www.themoscowtimes.com/2020/09/04/travel-ban-oil-supplies-on-russia-belarus-agenda-a7134")
    );
    assert_eq!(
        m.other,
        [(
            "Related article".to_string(),
            "Belarus Leader Replaces Security Chiefs as Russian Prime Minister Visits".to_string()
        )]
    );
}

#[test]
fn seed_article_body() {
    let a = seed();
    let texts: Vec<&str> = a.paragraphs.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(texts.len(), 15, "{texts:#?}");
    assert!(texts[0].starts_with("Russia and Belarus are preparing"));
    assert!(texts[14].starts_with("Since the post-election protests"));
    assert!(texts.contains(
        &"Lukashenko noted that “Belarus and Russia have made significant progress in resolving pressing issues.”"
    ));
    assert!(texts
        .iter()
        .any(|t| t.contains("depriving his country of $700 million")));
    assert!(!texts.contains(&"4"));
    assert!(!texts.iter().any(|t| t.contains("Related article")));
    assert!(!texts
        .iter()
        .any(|t| t.contains("Original url") || t.contains("https://")));
    assert!(a.paragraphs.iter().all(|p| p.kind == BlockKind::Text));
    let link = Style::Link { url: "#".into() };
    assert_eq!(spanned(&a.paragraphs[0]), [("outlets reported", &link)]);
}

#[test]
fn seed_paragraphs_round_trip_through_markdown() {
    for p in seed().paragraphs {
        let md = render_markdown(&p.text, &p.spans);
        let back = parse(&format!("{md}\n"), Format::Markdown);
        assert_eq!(back.paragraphs.len(), 1, "{md}");
        assert_eq!(back.paragraphs[0].text, p.text, "{md}");
        assert_eq!(back.paragraphs[0].spans, p.spans, "{md}");
    }
}

#[test]
fn wmt22_russian_article_in_legacy_encodings() {
    let path = fixture_path("wmt22-ru-lenta.ru.89832.txt");
    let utf8 = std::fs::read_to_string(&path).unwrap();
    for enc in [encoding_rs::WINDOWS_1251, encoding_rs::KOI8_R] {
        let (bytes, _, _) = enc.encode(&utf8);
        let a = read_bytes(&bytes, &path, &ReadOptions::default()).unwrap();
        assert_eq!(
            a.title.as_deref(),
            Some("В аэропорту из контейнера сбежали два льва")
        );
        assert_eq!(a.paragraphs.len(), 1);
        assert!(a.paragraphs[0]
            .text
            .starts_with("В сингапурском аэропорту Чанги"));
    }
}

#[test]
fn header_rules_in_russian() {
    let text = "Заголовок новости\n\n4 сентября 2020 г.\n\nАвтор: Иван Петров\n\n\
                Первый абзац текста.\n\nЧитайте также: [Другая новость](https://ria.ru/2)\n\n\
                Второй абзац без точки\n\nпродолжается здесь.\n\nМитинг в Минске. Фото: ТАСС\n\n\
                Источник: https://ria.ru/1";
    let a = parse(text, Format::Text);
    assert_eq!(a.title.as_deref(), Some("Заголовок новости"));
    assert_eq!(a.metadata.date.as_deref(), Some("4 сентября 2020 г."));
    assert_eq!(a.metadata.date_iso.as_deref(), Some("2020-09-04"));
    assert_eq!(a.metadata.author.as_deref(), Some("Иван Петров"));
    assert_eq!(a.metadata.caption.as_deref(), Some("Митинг в Минске."));
    assert_eq!(a.metadata.credit.as_deref(), Some("ТАСС"));
    assert_eq!(a.metadata.source_url.as_deref(), Some("https://ria.ru/1"));
    assert_eq!(
        a.metadata.other,
        [(
            "Читайте также".to_string(),
            "Другая новость (https://ria.ru/2)".to_string()
        )]
    );
    let texts: Vec<&str> = a.paragraphs.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Первый абзац текста.",
            "Второй абзац без точки продолжается здесь."
        ]
    );
}

#[test]
fn title_rules() {
    // A first line that reads like a sentence is body, not title.
    let a = parse("It rained today.\n\nMore text.", Format::Text);
    assert_eq!(a.title, None);
    assert_eq!(a.paragraphs.len(), 2);
    // A lone short line is text, not a title of nothing.
    let a = parse("Just one line", Format::Text);
    assert_eq!(a.title, None);
    assert_eq!(a.paragraphs[0].text, "Just one line");
    // `#` headings: the first is the title, later ones are sub-headings.
    let a = parse(
        "# Main\n\n2020-09-04\n\nBody.\n\n## Part two\n\nMore.",
        Format::Markdown,
    );
    assert_eq!(a.title.as_deref(), Some("Main"));
    assert_eq!(a.metadata.date_iso.as_deref(), Some("2020-09-04"));
    assert_eq!(a.paragraphs[1].kind, BlockKind::Heading);
    // A first heading after a long lead-in is still the title.
    let a = parse(
        "A long lead-in sentence.\n\n# Headline\n\nBody.",
        Format::Markdown,
    );
    assert_eq!(a.title.as_deref(), Some("Headline"));
    assert_eq!(a.paragraphs.len(), 2);
}

#[test]
fn front_matter_sets_title_and_metadata() {
    let md = "---\ntitle: Headline\ndate: 2020-09-04T10:00:00Z\nurl: https://x.ru/a\n\
              lang: ru\n---\n\nShort line\n\nBody.";
    let a = parse(md, Format::Markdown);
    assert_eq!(a.title.as_deref(), Some("Headline"));
    assert_eq!(a.metadata.date_iso.as_deref(), Some("2020-09-04"));
    assert_eq!(a.metadata.source_url.as_deref(), Some("https://x.ru/a"));
    assert_eq!(a.metadata.other, [("lang".to_string(), "ru".to_string())]);
    // The title came from the front matter, so the short first line stays body.
    assert_eq!(a.paragraphs.len(), 2);
}

#[test]
fn lists_quotes_and_no_join_across_kinds() {
    let a = parse(
        "Title\n\nIntro:\n\n- first\n- second\n\n> a quote\n\nlower start.",
        Format::Text,
    );
    let kinds: Vec<_> = a
        .paragraphs
        .iter()
        .map(|p| (p.text.as_str(), p.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("Intro:", BlockKind::Text),
            ("first", BlockKind::ListItem),
            ("second", BlockKind::ListItem),
            ("a quote", BlockKind::Quote),
            ("lower start.", BlockKind::Text),
        ]
    );
}

#[test]
fn stray_tail_only_at_the_end() {
    let a = parse("Title\n\n5\n\nBody text.\n\nx", Format::Text);
    let texts: Vec<&str> = a.paragraphs.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(texts, ["5", "Body text."]);
}

const PAGE: &str = r##"<!DOCTYPE html>
<html><head>
<title>Travel Ban | The Moscow Times</title>
<meta property="og:title" content="OG title">
<meta property="article:published_time" content="2020-09-04T10:00:00+03:00">
<meta name="author" content="Staff Writer">
<link rel="canonical" href="https://www.themoscowtimes.com/2020/09/04/a7134">
<style>p { color: red }</style>
</head><body>
<header><nav><a href="/">Home</a></nav><p>Subscribe now</p></header>
<article>
  <h1>Travel Ban, Oil Supplies on Russia-Belarus Agenda</h1>
  <figure><img src="x.jpg"><figcaption>Protests in Minsk. <span class="credit">Natalia Fedosenko / TASS</span></figcaption></figure>
  <p>Russia and Belarus are <em>preparing</em> to reopen, news
 <a href="https://example.com/r">outlets reported</a> &amp; <strong>more</strong>.</p>
  <h2>Oil</h2>
  <p>Second<br>line.</p>
  <ul><li>item <b>one</b></li></ul>
  <blockquote><p>A quote.</p></blockquote>
  <aside><p>Related junk</p></aside>
  <script>var x = "<p>not text</p>";</script>
  <p>Related article: <a href="#">Other story</a></p>
</article>
<footer><p>© 2020</p></footer>
</body></html>"##;

#[test]
fn html_page() {
    let a = read_bytes(
        PAGE.as_bytes(),
        Path::new("page.html"),
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(
        a.title.as_deref(),
        Some("Travel Ban, Oil Supplies on Russia-Belarus Agenda")
    );
    let m = &a.metadata;
    assert_eq!(m.date.as_deref(), Some("2020-09-04T10:00:00+03:00"));
    assert_eq!(m.date_iso.as_deref(), Some("2020-09-04"));
    assert_eq!(m.author.as_deref(), Some("Staff Writer"));
    assert_eq!(
        m.source_url.as_deref(),
        Some("https://www.themoscowtimes.com/2020/09/04/a7134")
    );
    assert_eq!(m.caption.as_deref(), Some("Protests in Minsk."));
    assert_eq!(m.credit.as_deref(), Some("Natalia Fedosenko / TASS"));
    assert_eq!(
        m.other,
        [("Related article".to_string(), "Other story".to_string())]
    );
    let got: Vec<_> = a
        .paragraphs
        .iter()
        .map(|p| (p.text.as_str(), p.kind))
        .collect();
    assert_eq!(
        got,
        [
            (
                "Russia and Belarus are preparing to reopen, news outlets reported & more.",
                BlockKind::Text
            ),
            ("Oil", BlockKind::Heading),
            ("Second line.", BlockKind::Text),
            ("item one", BlockKind::ListItem),
            ("A quote.", BlockKind::Quote),
        ]
    );
    let link = Style::Link {
        url: "https://example.com/r".into(),
    };
    assert_eq!(
        spanned(&a.paragraphs[0]),
        [
            ("preparing", &Style::Emphasis),
            ("outlets reported", &link),
            ("more", &Style::Strong)
        ]
    );
    assert_eq!(spanned(&a.paragraphs[3]), [("one", &Style::Strong)]);
}

#[test]
fn html_title_fallbacks_and_sniffing() {
    let og = "<html><head><meta property=\"og:title\" content=\"OG  title\"></head>\
              <body><p>Text.</p><time datetime=\"2021-05-01\">1 мая 2021</time></body></html>";
    let a = read_bytes(og.as_bytes(), Path::new("-"), &ReadOptions::default()).unwrap();
    assert_eq!(a.title.as_deref(), Some("OG title"));
    assert_eq!(a.metadata.date.as_deref(), Some("1 мая 2021"));
    assert_eq!(a.metadata.date_iso.as_deref(), Some("2021-05-01"));
    assert_eq!(Format::sniff("  <!DOCTYPE html><p>x"), Format::Html);
    assert_eq!(
        Format::sniff("<?xml version=\"1.0\"?>\n<!-- saved -->\n<HTML lang=ru>"),
        Format::Html
    );
    assert_eq!(Format::sniff("About the <html> tag"), Format::Text);
    assert_eq!(Format::sniff("Title\n\n<b>bold</b> text"), Format::Text);
    assert_eq!(Format::from_path(Path::new("a/b.HTM")), Some(Format::Html));
    assert_eq!(
        Format::from_path(Path::new("a/b.markdown")),
        Some(Format::Markdown)
    );
    assert_eq!(Format::from_path(Path::new("a/b.text")), Some(Format::Text));
    assert_eq!(Format::from_path(Path::new("-")), None);
    assert_eq!("md".parse::<Format>().unwrap(), Format::Markdown);
    assert!("pdf".parse::<Format>().is_err());
    // A forced format wins over the extension.
    let opts = ReadOptions {
        format: Some(Format::Text),
        ..ReadOptions::default()
    };
    let a = read_bytes(
        b"<p>Not parsed as HTML</p>\n\nSecond.",
        Path::new("x.html"),
        &opts,
    )
    .unwrap();
    assert_eq!(a.paragraphs[0].text, "Not parsed as HTML");
}

fn bad_input(err: Error) -> (PathBuf, String) {
    match err {
        Error::BadInput { path, reason } => (path, reason),
        other => panic!("expected BadInput, got {other:?}"),
    }
}

#[test]
fn file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.txt");
    match read_file(&missing, &ReadOptions::default()) {
        Err(Error::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected Io error, got {other:?}"),
    }
    let (path, why) = bad_input(read_file(dir.path(), &ReadOptions::default()).unwrap_err());
    assert_eq!(
        (path.as_path(), why.as_str()),
        (dir.path(), "is a directory, not a file")
    );
    let empty = dir.path().join("empty.md");
    std::fs::write(&empty, "\n \n").unwrap();
    let (path, why) = bad_input(read_file(&empty, &ReadOptions::default()).unwrap_err());
    assert_eq!((path, why.as_str()), (empty, "is empty"));
    let (path, why) = bad_input(
        read_bytes(b"\0\x01binary", Path::new("-"), &ReadOptions::default()).unwrap_err(),
    );
    assert_eq!(path, PathBuf::from("<stdin>"));
    assert_eq!(why, "looks like a binary file, not text");
    let no_text = b"<html><body><nav>Menu</nav><script>x()</script></body></html>";
    let (_, why) =
        bad_input(read_bytes(no_text, Path::new("p.html"), &ReadOptions::default()).unwrap_err());
    assert_eq!(why, "has no article text (read as html)");
}

#[test]
fn crlf_text_parses_like_lf() {
    let lf = std::fs::read_to_string(fixture_path("seed-article.txt")).unwrap();
    assert_eq!(parse(&lf.replace('\n', "\r\n"), Format::Text), seed());
}

/// All 80 WMT22 news documents in each language (headline, blank line, body lines),
/// from tests/fixtures/news-wmt22: the headline is the title, every body line a
/// paragraph, no metadata invented; the Russian ones also read back from cp1251
/// and KOI8-R.
#[test]
fn wmt22_corpus_structure_and_encodings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/news-wmt22");
    let mut docs = 0;
    for lang in ["ru", "en"] {
        for entry in std::fs::read_dir(root.join(lang)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let headline = text.lines().next().unwrap().trim();
            let body_lines = text
                .lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .count();
            let mut inputs = vec![(text.clone().into_bytes(), encoding_rs::UTF_8)];
            if lang == "ru" {
                for enc in [encoding_rs::WINDOWS_1251, encoding_rs::KOI8_R] {
                    inputs.push((enc.encode(&text).0.into_owned(), enc));
                }
            }
            for (bytes, enc) in inputs {
                let decoded = decode(&bytes, None, &path).unwrap();
                assert_eq!(decoded.encoding, enc, "{}", path.display());
                let a = parse(&decoded.text, Format::Text);
                assert_eq!(a.title.as_deref(), Some(headline), "{}", path.display());
                assert_eq!(a.paragraphs.len(), body_lines, "{}", path.display());
                assert_eq!(a.metadata, Metadata::default(), "{}", path.display());
            }
            docs += 1;
        }
    }
    assert_eq!(docs, 160);
}
