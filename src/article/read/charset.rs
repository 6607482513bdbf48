//! Bytes → text by charset: BOMs, UTF-8, legacy Cyrillic encodings, binary and empty
//! input. (Token ids → text is [`crate::decode`]'s job, not this module's.)

use std::path::Path;

use chardetng::{EncodingDetector, Iso2022JpDetection, Utf8Detection};
use encoding_rs::{
    DecoderResult, Encoding, IBM866, ISO_8859_5, KOI8_R, KOI8_U, UTF_16BE, UTF_16LE, UTF_8,
    WINDOWS_1251, WINDOWS_1252, X_MAC_CYRILLIC,
};

use crate::{Error, Result};

/// Text decoded from bytes, with the encoding it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text, line endings normalized to `\n`, without BOM.
    pub text: String,
    /// The encoding the bytes were in.
    pub encoding: &'static Encoding,
}

/// Encodings a user may name; the rest of WHATWG's list is not news text in our languages.
fn accepted() -> [&'static Encoding; 10] {
    [
        UTF_8,
        UTF_16LE,
        UTF_16BE,
        WINDOWS_1251,
        KOI8_R,
        KOI8_U,
        IBM866,
        ISO_8859_5,
        X_MAC_CYRILLIC,
        WINDOWS_1252,
    ]
}

/// The labels shown when a label is not accepted.
const ACCEPTED_LABELS: &str = "utf-8, utf-16le, utf-16be, windows-1251 (cp1251), koi8-r, \
     koi8-u, ibm866 (cp866), iso-8859-5, x-mac-cyrillic, windows-1252 (cp1252, latin1)";

/// Encodings that chardetng may answer for Russian text in a legacy encoding.
fn cyrillic() -> [&'static Encoding; 6] {
    [
        WINDOWS_1251,
        KOI8_R,
        KOI8_U,
        IBM866,
        ISO_8859_5,
        X_MAC_CYRILLIC,
    ]
}

/// File signatures of formats that are never text (checked before any decoding).
const MAGIC: &[(&[u8], &str)] = &[
    (b"%PDF-", "PDF"),
    (b"PK\x03\x04", "ZIP (or DOCX/ODT)"),
    (b"\x89PNG", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"\xFF\xD8\xFF", "JPEG"),
    (b"\x7FELF", "ELF"),
    (b"\x1F\x8B", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xFD7zXZ\x00", "xz"),
    (b"\x28\xB5\x2F\xFD", "zstd"),
    (b"7z\xBC\xAF\x27\x1C", "7-Zip"),
    (b"Rar!\x1A\x07", "RAR"),
    (b"GGUF", "GGUF"),
    (b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", "OLE (old Word/Excel)"),
    (b"SQLite format 3\x00", "SQLite"),
    (b"OggS", "Ogg"),
    (b"ID3", "MP3"),
    (b"\x00asm", "WebAssembly"),
];

/// Control characters allowed in text: tab, line feed, vertical tab, form feed, carriage return.
fn is_text_control(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r')
}

/// The encoding named by `label` ("cp1251", "windows-1251", "koi8-r", "utf-8"...).
pub fn encoding_from_label(label: &str) -> Result<&'static Encoding> {
    let wanted = label.trim().to_ascii_lowercase();
    // Common spellings that WHATWG's label list lacks.
    let canonical = match wanted.as_str() {
        "win1251" | "win-1251" | "windows1251" | "cp-1251" => "windows-1251",
        "koi8r" => "koi8-r",
        "koi8u" => "koi8-u",
        "win1252" | "windows1252" | "cp-1252" => "windows-1252",
        "utf16le" => "utf-16le",
        "utf16be" => "utf-16be",
        other => other,
    };
    Encoding::for_label(canonical.as_bytes())
        .filter(|enc| accepted().contains(enc))
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "unknown or unsupported encoding {label:?}; accepted: {ACCEPTED_LABELS}"
            ))
        })
}

/// Decodes `bytes` into text: the BOM or `forced` when given, else UTF-8, else a detected
/// Cyrillic encoding. `path` names the input in errors.
pub fn decode(bytes: &[u8], forced: Option<&'static Encoding>, path: &Path) -> Result<Decoded> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::bad_input(path, "is empty"));
    }
    check_magic(bytes, path)?;
    let bom = Encoding::for_bom(bytes);
    // UTF-16 legitimately holds NUL bytes; everything else with a NUL is binary.
    let utf16 = matches!(bom, Some((enc, _)) if enc != UTF_8)
        || forced.is_some_and(|enc| enc == UTF_16LE || enc == UTF_16BE);
    if !utf16 && bytes.contains(&0) {
        return Err(binary(path));
    }
    let (text, encoding) = match (forced, bom) {
        (Some(enc), Some((bom_enc, len))) if enc == bom_enc => {
            (decode_strict(&bytes[len..], enc, len, path)?, enc)
        }
        (Some(enc), _) => (decode_strict(bytes, enc, 0, path)?, enc),
        (None, Some((enc, len))) => (decode_strict(&bytes[len..], enc, len, path)?, enc),
        (None, None) => detect(bytes, path)?,
    };
    let text = clean_text(&text, path)?;
    Ok(Decoded { text, encoding })
}

fn binary(path: &Path) -> Error {
    Error::bad_input(path, "looks like a binary file, not text")
}

fn check_magic(bytes: &[u8], path: &Path) -> Result<()> {
    match MAGIC.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        Some((_, kind)) => Err(Error::bad_input(
            path,
            format!("looks like a binary file, not text ({kind} data)"),
        )),
        None => Ok(()),
    }
}

/// Decodes without replacement characters; the error names the encoding and byte offset
/// (`base` is where `bytes` starts in the input, after a BOM).
fn decode_strict(
    bytes: &[u8],
    encoding: &'static Encoding,
    base: usize,
    path: &Path,
) -> Result<String> {
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let capacity = decoder
        .max_utf8_buffer_length_without_replacement(bytes.len())
        .unwrap_or(bytes.len().saturating_mul(3));
    let mut out = String::with_capacity(capacity);
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut out, true);
    match result {
        DecoderResult::InputEmpty => Ok(out),
        DecoderResult::Malformed(bad, after) => {
            let offset = base + read - after as usize - bad as usize;
            Err(Error::bad_input(
                path,
                format!(
                    "is not valid {}: undecodable byte 0x{:02X} at byte offset {offset}",
                    encoding.name(),
                    bytes[offset - base]
                ),
            ))
        }
        // The buffer was sized by the decoder's own worst case, so this means a bug.
        DecoderResult::OutputFull => Err(Error::bad_input(
            path,
            format!("could not be decoded as {}", encoding.name()),
        )),
    }
}

/// UTF-8 when valid; otherwise the encoding an HTML page declares, or a Cyrillic legacy
/// encoding when chardetng finds one.
fn detect(bytes: &[u8], path: &Path) -> Result<(String, &'static Encoding)> {
    let bad_at = match std::str::from_utf8(bytes) {
        Ok(text) => return Ok((text.to_owned(), UTF_8)),
        Err(e) => e.valid_up_to(),
    };
    if let Some(declared) = declared_charset(bytes) {
        if let Ok(text) = decode_strict(bytes, declared, 0, path) {
            return Ok((text, declared));
        }
    }
    let not_utf8 = |why: &str| {
        Error::bad_input(
            path,
            format!("is not valid UTF-8 (bad byte at offset {bad_at}) {why}; name its encoding"),
        )
    };
    if mostly_utf8(bytes) {
        // A damaged UTF-8 file; a legacy decoding would only produce mojibake.
        return Err(not_utf8("but is mostly UTF-8"));
    }
    let mut detector = EncodingDetector::new(Iso2022JpDetection::Deny);
    detector.feed(bytes, true);
    let guess = detector.guess(None, Utf8Detection::Deny);
    if !cyrillic().contains(&guess) {
        return Err(not_utf8("and does not look like Windows-1251 or KOI8-R"));
    }
    let (text, _) = guess.decode_without_bom_handling(bytes);
    // chardetng answers KOI8-U for the whole KOI8 family; say KOI8-R when the
    // Ukrainian-only letters are absent, since both decode the text the same.
    if guess == KOI8_U && KOI8_R.decode_without_bom_handling(bytes).0 == text {
        return Ok((text.into_owned(), KOI8_R));
    }
    Ok((text.into_owned(), guess))
}

/// The accepted encoding a page declares in its first 1024 bytes
/// (`<meta charset="windows-1251">` or `content="text/html; charset=koi8-r"`).
fn declared_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).to_ascii_lowercase();
    let at = head.find("charset=")? + "charset=".len();
    let label: String = head[at..]
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
        .collect();
    let encoding = Encoding::for_label(label.as_bytes())?;
    // A page saved as UTF-8 may still say so; that was already tried and failed.
    (encoding != UTF_8 && accepted().contains(&encoding)).then_some(encoding)
}

/// True when valid multi-byte UTF-8 sequences clearly outnumber invalid bytes, as in a
/// UTF-8 file with some damage; text in a legacy encoding forms few such sequences by chance.
fn mostly_utf8(bytes: &[u8]) -> bool {
    let (mut valid, mut invalid) = (0usize, 0usize);
    for chunk in bytes.utf8_chunks() {
        valid += chunk.valid().chars().filter(|c| !c.is_ascii()).count();
        invalid += usize::from(!chunk.invalid().is_empty());
    }
    valid > invalid * 4
}

/// Normalizes line endings, strips a DOS end-of-file mark, and rejects text that is
/// empty or full of control characters. A few stray control characters are dropped.
fn clean_text(text: &str, path: &Path) -> Result<String> {
    let text = text.trim_end_matches('\u{1A}');
    let mut controls = 0usize;
    for c in text.chars() {
        if c == '\0' {
            return Err(binary(path));
        }
        if c.is_ascii_control() && !is_text_control(c) {
            controls += 1;
        }
    }
    // More than 1% control characters is data, not prose.
    if controls > 0 && controls * 100 > text.chars().count() {
        return Err(binary(path));
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push('\n');
            }
            c if c.is_ascii_control() && !is_text_control(c) => {}
            c => out.push(c),
        }
    }
    if out.trim().is_empty() {
        return Err(Error::bad_input(path, "is empty"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/articles/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    const RU_FIXTURES: &[&str] = &["wmt22-ru-belta.by.15655.txt", "wmt22-ru-lenta.ru.89832.txt"];

    fn p() -> &'static Path {
        Path::new("in.txt")
    }

    fn reason(err: Error) -> String {
        match err {
            Error::BadInput { path, reason } => {
                assert_eq!(path, p());
                reason
            }
            other => panic!("expected BadInput, got {other:?}"),
        }
    }

    fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
        let mut out = if big_endian {
            vec![0xFE, 0xFF]
        } else {
            vec![0xFF, 0xFE]
        };
        for unit in text.encode_utf16() {
            let b = if big_endian {
                unit.to_be_bytes()
            } else {
                unit.to_le_bytes()
            };
            out.extend_from_slice(&b);
        }
        out
    }

    #[test]
    fn detects_cp1251_and_koi8r_on_real_russian_articles() {
        for name in RU_FIXTURES {
            let text = fixture(name);
            for enc in [WINDOWS_1251, KOI8_R] {
                let (bytes, _, unmappable) = enc.encode(&text);
                assert!(!unmappable, "{name} fits {}", enc.name());
                let got = decode(&bytes, None, p()).unwrap();
                assert_eq!(got.encoding, enc, "{name} in {}", enc.name());
                assert_eq!(got.text, text, "{name} in {}", enc.name());
            }
        }
    }

    #[test]
    fn detects_cp1251_and_koi8r_on_a_headline_alone() {
        for name in RU_FIXTURES {
            let text = fixture(name);
            let headline = text.lines().next().unwrap();
            for enc in [WINDOWS_1251, KOI8_R] {
                let (bytes, _, _) = enc.encode(headline);
                let got = decode(&bytes, None, p()).unwrap();
                assert_eq!(got.encoding, enc, "{headline:?} in {}", enc.name());
                assert_eq!(got.text, headline);
            }
        }
    }

    #[test]
    fn honours_a_declared_html_charset() {
        let page = "<html><head><meta charset=\"windows-1252\"></head><body><p>Café crème, déjà vu.</p></body></html>";
        let (bytes, _, _) = WINDOWS_1252.encode(page);
        let got = decode(&bytes, None, p()).unwrap();
        assert_eq!((got.text.as_str(), got.encoding), (page, WINDOWS_1252));
        let page =
            "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=koi8-r\"><p>Привет</p>";
        let (bytes, _, _) = KOI8_R.encode(page);
        assert_eq!(decode(&bytes, None, p()).unwrap().text, page);
    }

    #[test]
    fn reads_utf8_with_and_without_bom_and_utf16_with_bom() {
        let text = fixture(RU_FIXTURES[0]);
        let plain = decode(text.as_bytes(), None, p()).unwrap();
        assert_eq!(
            (plain.text.as_str(), plain.encoding),
            (text.as_str(), UTF_8)
        );
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(text.as_bytes());
        let got = decode(&bom, None, p()).unwrap();
        assert_eq!((got.text.as_str(), got.encoding), (text.as_str(), UTF_8));
        for (big, enc) in [(false, UTF_16LE), (true, UTF_16BE)] {
            let got = decode(&utf16(&text, big), None, p()).unwrap();
            assert_eq!((got.text.as_str(), got.encoding), (text.as_str(), enc));
            // A forced encoding that agrees with the BOM drops the BOM too.
            let got = decode(&utf16(&text, big), Some(enc), p()).unwrap();
            assert_eq!(got.text, text);
        }
    }

    #[test]
    fn normalizes_crlf_and_lone_cr() {
        let text = fixture(RU_FIXTURES[1]);
        let crlf = text.replace('\n', "\r\n");
        let (bytes, _, _) = WINDOWS_1251.encode(&crlf);
        let got = decode(&bytes, None, p()).unwrap();
        assert_eq!(got.text, text);
        assert_eq!(got.encoding, WINDOWS_1251);
        let got = decode(b"one\rtwo\r\nthree\n\rfour", None, p()).unwrap();
        assert_eq!(got.text, "one\ntwo\nthree\n\nfour");
    }

    #[test]
    fn forced_encoding_wins_over_detection() {
        let text = fixture(RU_FIXTURES[0]);
        let (bytes, _, _) = WINDOWS_1251.encode(&text);
        let got = decode(&bytes, Some(KOI8_R), p()).unwrap();
        assert_eq!(got.encoding, KOI8_R);
        assert_ne!(got.text, text);
        let got = decode(&bytes, Some(WINDOWS_1251), p()).unwrap();
        assert_eq!(got.text, text);
    }

    #[test]
    fn forced_encoding_reports_the_bad_byte_offset() {
        let err = decode(b"abc\xFFdef", Some(UTF_8), p()).unwrap_err();
        assert_eq!(
            reason(err),
            "is not valid UTF-8: undecodable byte 0xFF at byte offset 3"
        );
        // Offsets count the BOM: they are offsets in the file.
        let err = decode(b"\xEF\xBB\xBFok \xC3(", Some(UTF_8), p()).unwrap_err();
        assert_eq!(
            reason(err),
            "is not valid UTF-8: undecodable byte 0xC3 at byte offset 6"
        );
        // An unpaired surrogate in UTF-16.
        let err = decode(b"\xFF\xFEa\x00\x00\xD8b\x00", None, p()).unwrap_err();
        assert!(reason(err).starts_with("is not valid UTF-16LE: undecodable byte"));
    }

    #[test]
    fn rejects_empty_and_whitespace_only() {
        for input in [&b""[..], b"  \n\r\n\t ", b"\xEF\xBB\xBF\n  \n"] {
            assert_eq!(reason(decode(input, None, p()).unwrap_err()), "is empty");
        }
    }

    #[test]
    fn rejects_binary_input() {
        let cases: [&[u8]; 5] = [
            b"%PDF-1.7\n%...",
            b"\x89PNG\r\n\x1A\n\0\0\0\rIHDR",
            b"PK\x03\x04\x14\0\0\0",
            b"hello\0world",
            b"\x01\x02\x03\x04\x05 some bytes \x06\x07\x08",
        ];
        for input in cases {
            let why = reason(decode(input, None, p()).unwrap_err());
            assert!(
                why.starts_with("looks like a binary file, not text"),
                "{why}"
            );
        }
        // A DOS end-of-file mark and a rare stray control character are not binary.
        let text = "A bell\x07 in text. ".to_owned() + &"And more plain text here. ".repeat(5);
        let got = decode(format!("{text}\x1A").as_bytes(), None, p()).unwrap();
        assert_eq!(got.text, text.replace('\x07', ""));
    }

    #[test]
    fn rejects_invalid_utf8_that_no_cyrillic_encoding_explains() {
        let latin1 = b"Caf\xE9 cr\xE8me br\xFBl\xE9e, na\xEFve fa\xE7ade, d\xE9j\xE0 vu.";
        let why = reason(decode(latin1, None, p()).unwrap_err());
        assert!(
            why.starts_with("is not valid UTF-8 (bad byte at offset 3)"),
            "{why}"
        );
        let mut damaged = "Привет, мир! Это текст в UTF-8. ".repeat(4).into_bytes();
        damaged.insert(10, 0xFF);
        let why = reason(decode(&damaged, None, p()).unwrap_err());
        assert!(why.contains("mostly UTF-8"), "{why}");
    }

    #[test]
    fn encoding_labels() {
        for (label, enc) in [
            ("cp1251", WINDOWS_1251),
            ("Windows-1251", WINDOWS_1251),
            ("win1251", WINDOWS_1251),
            ("koi8-r", KOI8_R),
            ("KOI8R", KOI8_R),
            ("utf-8", UTF_8),
            ("utf8", UTF_8),
            ("utf-16be", UTF_16BE),
            ("latin1", WINDOWS_1252),
            ("cp866", IBM866),
        ] {
            assert_eq!(encoding_from_label(label).unwrap(), enc, "{label}");
        }
        for label in ["shift_jis", "nonsense", "iso-2022-kr"] {
            let msg = encoding_from_label(label).unwrap_err().to_string();
            assert!(
                msg.contains(label) && msg.contains("windows-1251 (cp1251)"),
                "{msg}"
            );
        }
        assert_eq!(ISO_8859_5.name(), "ISO-8859-5");
    }
}
