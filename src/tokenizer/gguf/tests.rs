//! Tests of the GGUF tokenizer on crafted metadata: SentencePiece-style merges, byte
//! fallback, special tokens, byte-level pre-tokenizers, and errors on bad metadata.

use super::*;
use candle_core::quantized::gguf_file::VersionedMagic;

/// (text, score, token type) of a small SentencePiece-style vocabulary.
const SPM: &[(&str, f32, i32)] = &[
    ("<pad>", -1000.0, 3),
    ("<eos>", -1000.0, 3),
    ("<bos>", -1000.0, 3),
    ("<unk>", -1000.0, 2),
    ("<0x0A>", 0.0, 6),
    ("<0x7A>", 0.0, 6),
    ("\n", -1000.0, 4),
    ("\u{2581}", -1.0, 1),
    ("a", -2.0, 1),
    ("b", -3.0, 1),
    ("c", -4.0, 1),
    ("bc", -5.0, 1),
    ("\u{2581}a", -6.0, 1),
    ("aa", -7.0, 1),
    ("ab", -10.0, 1),
    ("<start_of_turn>", -1000.0, 3),
    ("<end_of_turn>", -1000.0, 3),
];

fn content(entries: Vec<(&str, Value)>) -> Content {
    Content {
        magic: VersionedMagic::GgufV3,
        metadata: entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        tensor_infos: HashMap::new(),
        tensor_data_offset: 0,
    }
}

fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
    Value::Array(
        items
            .into_iter()
            .map(|s| Value::String(s.to_owned()))
            .collect(),
    )
}

fn spm_metadata(add_space_prefix: bool) -> Vec<(&'static str, Value)> {
    vec![
        ("tokenizer.ggml.model", Value::String("llama".into())),
        ("tokenizer.ggml.pre", Value::String("default".into())),
        ("tokenizer.ggml.tokens", strings(SPM.iter().map(|t| t.0))),
        (
            "tokenizer.ggml.scores",
            Value::Array(SPM.iter().map(|t| Value::F32(t.1)).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(SPM.iter().map(|t| Value::I32(t.2)).collect()),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(2)),
        ("tokenizer.ggml.eos_token_id", Value::U32(1)),
        ("tokenizer.ggml.unknown_token_id", Value::U32(3)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(true)),
        (
            "tokenizer.ggml.add_space_prefix",
            Value::Bool(add_space_prefix),
        ),
        (
            "tokenizer.chat_template",
            Value::String("{{ messages }}".into()),
        ),
    ]
}

fn spm(add_space_prefix: bool) -> GgufTokenizer {
    from_gguf(&content(spm_metadata(add_space_prefix))).expect("valid test vocabulary")
}

fn id(text: &str) -> u32 {
    SPM.iter().position(|t| t.0 == text).expect("token in SPM") as u32
}

fn tokens(t: &GgufTokenizer, text: &str) -> Vec<u32> {
    t.encode(text, false).expect("encodes")
}

#[test]
fn merges_the_best_scoring_pair_first_not_viterbi() {
    let t = spm(false);
    // "bc" outscores "ab", so "abc" becomes a + bc although ab + c is also a cover.
    assert_eq!(tokens(&t, "abc"), vec![id("a"), id("bc")]);
    // Equal candidates: the leftmost pair merges first.
    assert_eq!(tokens(&t, "aaa"), vec![id("aa"), id("a")]);
}

#[test]
fn unknown_characters_fall_back_to_bytes() {
    let t = spm(false);
    assert_eq!(tokens(&t, "abz"), vec![id("ab"), id("<0x7A>")]);
    assert_eq!(t.decode(&tokens(&t, "abz"), false).expect("decodes"), "abz");
}

#[test]
fn spaces_become_the_visible_space_and_prefix_follows_metadata() {
    let t = spm(false);
    assert_eq!(tokens(&t, "b a"), vec![id("b"), id("\u{2581}a")]);
    let prefixed = spm(true);
    let ids = tokens(&prefixed, "a b");
    assert_eq!(ids, vec![id("\u{2581}a"), id("\u{2581}"), id("b")]);
    assert_eq!(prefixed.decode(&ids, false).expect("decodes"), "a b");
}

#[test]
fn control_and_user_defined_tokens_are_single_ids() {
    let t = spm(false);
    let ids = tokens(&t, "<start_of_turn>a\n<end_of_turn>");
    assert_eq!(
        ids,
        vec![
            id("<start_of_turn>"),
            id("a"),
            id("\n"),
            id("<end_of_turn>")
        ]
    );
    assert_eq!(t.decode(&ids, true).expect("decodes"), "a\n");
}

#[test]
fn special_token_texts_outside_the_template_are_text() {
    let t = spm(false);
    let (sot, eot) = (id("<start_of_turn>"), id("<end_of_turn>"));
    // The caller's own text: a control token, as llama.cpp's parse_special.
    assert_eq!(tokens(&t, "a<end_of_turn>"), vec![id("a"), eot]);
    // An article's: text (here unknown characters), never the control token.
    let text = t.encode_text("a<end_of_turn>").expect("encodes");
    assert_eq!(text[0], id("a"));
    assert!(!text.contains(&eot) && text.len() > 2, "{text:?}");
    let ids = t
        .encode_prompt(&[
            PromptPart::Template("<start_of_turn>"),
            PromptPart::Text("a<end_of_turn><start_of_turn>"),
            PromptPart::Template("<end_of_turn>"),
        ])
        .expect("encodes");
    assert_eq!(ids.iter().filter(|&&i| i == eot).count(), 1, "{ids:?}");
    assert_eq!(ids.iter().filter(|&&i| i == sot).count(), 1, "{ids:?}");
    // (This vocabulary spells the text with unknown tokens; tests/llm_prompt.rs
    // decodes it back on the real Gemma.)
    assert_eq!((ids[0], ids[ids.len() - 1]), (sot, eot));
}

#[test]
fn a_prompt_of_parts_tokenizes_as_its_whole_text_when_the_text_is_plain() {
    let t = spm(false);
    // "b " + "ab" meet across the boundary: "\u{2581}a" merges over it, as in one string.
    let parts = [
        PromptPart::Template("<start_of_turn>b "),
        PromptPart::Text("ab"),
        PromptPart::Template("\n<end_of_turn>"),
    ];
    assert_eq!(
        t.encode_prompt(&parts).expect("encodes"),
        tokens(&t, "<start_of_turn>b ab\n<end_of_turn>")
    );
    assert_eq!(tokens(&t, "b ab"), vec![id("b"), id("\u{2581}a"), id("b")]);
}

#[test]
fn bos_is_added_only_with_special_tokens() {
    let t = spm(false);
    assert_eq!(t.encode("a", true).expect("encodes"), vec![2, id("a")]);
    assert_eq!(t.encode("a", false).expect("encodes"), vec![id("a")]);
    assert!(t.add_bos);
    assert_eq!(t.bos_id, Some(2));
    assert_eq!(t.eos_ids, vec![1, id("<end_of_turn>")]);
    assert_eq!(t.chat_template.as_deref(), Some("{{ messages }}"));
}

#[test]
fn rejects_inconsistent_or_unknown_metadata() {
    let mut meta = spm_metadata(false);
    meta[3].1 = Value::Array(vec![Value::F32(0.0)]);
    let err = from_gguf(&content(meta))
        .err()
        .expect("length mismatch is an error");
    assert!(err.to_string().contains("differ in length"), "{err}");

    let mut meta = spm_metadata(false);
    meta[0].1 = Value::String("bert".into());
    assert!(matches!(
        from_gguf(&content(meta)),
        Err(Error::Unsupported(_))
    ));

    let mut meta = spm_metadata(false);
    meta[5].1 = Value::U32(999);
    let err = from_gguf(&content(meta))
        .err()
        .expect("bad BOS id is an error");
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
}

fn byte_level(pre: &str) -> GgufTokenizer {
    let vocab = ["1", "2", "3", "12", "123", "a", "\u{120}", "\u{120}a"];
    let merges = ["1 2", "12 3", "\u{120} a"];
    let meta = vec![
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String(pre.into())),
        ("tokenizer.ggml.tokens", strings(vocab)),
        ("tokenizer.ggml.merges", strings(merges)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
    ];
    from_gguf(&content(meta)).expect("valid byte-level vocabulary")
}

#[test]
fn byte_level_pre_tokenizers_follow_llama_cpp() {
    // qwen2 isolates every digit; llama3 keeps runs of up to three together.
    assert_eq!(tokens(&byte_level("qwen2"), "123 a"), vec![0, 1, 2, 7]);
    assert_eq!(tokens(&byte_level("llama-bpe"), "123 a"), vec![4, 7]);
    assert_eq!(
        byte_level("qwen2").decode(&[4, 7], false).expect("decodes"),
        "123 a"
    );
    let meta = vec![
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("mystery".into())),
        ("tokenizer.ggml.tokens", strings(["a"])),
        ("tokenizer.ggml.merges", strings(["a a"])),
    ];
    assert!(matches!(
        from_gguf(&content(meta)),
        Err(Error::Unsupported(_))
    ));
}

#[test]
fn reads_metadata_from_a_gguf_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tiny.gguf");
    let meta = spm_metadata(false);
    let refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let mut file = File::create(&path).expect("create");
    candle_core::quantized::gguf_file::write(&mut file, &refs, &[]).expect("write gguf");
    drop(file);
    let t = from_gguf_file(&path).expect("reads");
    assert_eq!(tokens(&t, "abc"), vec![id("a"), id("bc")]);

    std::fs::write(&path, b"not a gguf").expect("write");
    assert!(from_gguf_file(&path).is_err());
    assert!(matches!(
        from_gguf_file(&dir.path().join("missing.gguf")),
        Err(Error::Io { .. })
    ));
}
