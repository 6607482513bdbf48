//! Tokenizer and chat template rebuilt from GGUF metadata (`tokenizer.ggml.*`).
//!
//! The result is a plain `tokenizers::Tokenizer` that reproduces llama.cpp's own
//! tokenization of the same file:
//!
//! - `tokenizer.ggml.model = "llama"` (SentencePiece vocabularies such as Gemma's): llama.cpp
//!   does not run a unigram Viterbi search but greedy merging: start from UTF-8 characters
//!   and repeatedly merge the adjacent pair whose concatenation is a vocabulary entry with
//!   the highest score (leftmost on ties), then fall back to `<0xXX>` byte tokens for what is
//!   left unknown. [`spm`] does exactly that; the `tokenizers::Tokenizer` beside it only
//!   decodes.
//! - `tokenizer.ggml.model = "gpt2"`: byte-level BPE from `tokenizer.ggml.merges`, split
//!   first by the regexes llama.cpp picks for `tokenizer.ggml.pre`, in `tokenizers`.
//!
//! In both, control and unknown tokens are special and user-defined tokens are matched on
//! the raw text before anything else, as llama.cpp does.
//!
//! Special-token texts are control tokens only where a prompt template wrote them: an
//! article holding `<end_of_turn>` or `<|im_end|>` must not end the model's turn, so
//! [`GgufTokenizer::encode_prompt`] matches them in the template's pieces only and
//! tokenizes outside text as text, as llama.cpp does with `parse_special = false`.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab as BpeVocab, BPE};
use tokenizers::normalizers::Replace;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, DecoderWrapper, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer,
};

use crate::{Error, Result};

/// SentencePiece's visible space, which the "llama" vocabularies use in place of ' '.
const SPM_SPACE: &str = "\u{2581}";

/// Token texts llama.cpp treats as end of generation besides the declared EOS/EOT/EOM ids.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
];

// llama.cpp's pre-tokenizer regexes (src/llama-vocab.cpp), by `tokenizer.ggml.pre`.
const GPT2_REGEX: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const DEFAULT_BPE_REGEXES: &[&str] = &[
    r"[\p{P}\$\+<=>\^~\|]+",
    GPT2_REGEX,
    r"\p{N}+",
    r"[0-9][0-9][0-9]",
];

/// One piece of a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptPart<'a> {
    /// Written by the prompt or chat template: its special-token texts are control tokens.
    Template(&'a str),
    /// From outside (an article, a partial summary): special-token texts in it are text.
    Text(&'a str),
}

/// A tokenizer rebuilt from GGUF metadata, with the special-token facts a generator needs.
pub struct GgufTokenizer {
    /// Decodes, and encodes text of byte-level BPE vocabularies (taking special-token
    /// texts as text: the methods of this struct say where they are control tokens).
    tokenizer: Tokenizer,
    /// Encodes text of SentencePiece-style vocabularies.
    spm: Option<spm::Spm>,
    /// Finds the special (control and unknown) token texts, leftmost-longest as the
    /// tokenizer does; `special_ids[pattern]` is each one's id.
    specials: AhoCorasick,
    special_ids: Vec<u32>,
    /// EOS, when the GGUF asks for it at the end of every encoding.
    add_eos_id: Option<u32>,
    /// Beginning-of-sequence token, when the vocabulary declares one.
    pub bos_id: Option<u32>,
    /// Every token that ends generation: EOS first, then EOT/EOM and known end-of-turn tokens.
    pub eos_ids: Vec<u32>,
    /// Whether the model expects BOS at the start of a prompt.
    pub add_bos: bool,
    /// The Jinja chat template (`tokenizer.chat_template`), when the file carries one.
    pub chat_template: Option<String>,
}

impl GgufTokenizer {
    /// Token ids of `text` with its special-token texts as control tokens (llama.cpp's
    /// `parse_special`), for text a template or the caller wrote; with `add_special`, BOS
    /// (and EOS) are added when the model wants them.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let mut ids = self.encode_prompt(&[PromptPart::Template(text)])?;
        if add_special {
            if let (true, Some(bos)) = (self.add_bos, self.bos_id) {
                ids.insert(0, bos);
            }
            ids.extend(self.add_eos_id);
        }
        Ok(ids)
    }

    /// Token ids of `text` from outside a template (an article): special-token texts in
    /// it are tokenized as text, never as control tokens. No BOS.
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(spm) = &self.spm {
            return spm.encode(text);
        }
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Model(format!("GGUF tokenizer failed to encode text: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Token ids of a prompt made of template pieces and outside text (no BOS): the
    /// special-token texts of template pieces are control tokens, those of outside text
    /// are text. Text runs that meet across a piece boundary are tokenized together, so
    /// a prompt whose outside text holds no special-token text gets exactly the ids of
    /// `encode(whole prompt, false)`.
    pub fn encode_prompt(&self, parts: &[PromptPart]) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        let mut run = String::new();
        for part in parts {
            match *part {
                PromptPart::Text(text) => run.push_str(text),
                PromptPart::Template(text) => {
                    let mut at = 0;
                    for m in self.specials.find_iter(text) {
                        run.push_str(&text[at..m.start()]);
                        ids.extend(self.encode_text(&std::mem::take(&mut run))?);
                        ids.push(self.special_ids[m.pattern().as_usize()]);
                        at = m.end();
                    }
                    run.push_str(&text[at..]);
                }
            }
        }
        ids.extend(self.encode_text(&run)?);
        Ok(ids)
    }

    /// The decoding tokenizer (ids to text), for incremental decoding.
    pub fn decoder(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Tokens in the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// The text of token `id`, as the vocabulary writes it.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.tokenizer.id_to_token(id)
    }

    /// Text of `ids`; `skip_special` drops control tokens such as BOS and end-of-turn.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.tokenizer
            .decode(ids, skip_special)
            .map_err(|e| Error::Model(format!("GGUF tokenizer failed to decode ids: {e}")))
    }
}

/// Builds the tokenizer described by a GGUF file's metadata.
pub fn from_gguf(content: &Content) -> Result<GgufTokenizer> {
    let vocab = GgufVocab::read(&content.metadata)?;
    let (mut tokenizer, spm) = match vocab.model.as_str() {
        "llama" => (spm_decoder(&vocab)?, Some(spm_encoder(&vocab)?)),
        "gpt2" => (bpe_tokenizer(&vocab)?, None),
        other => {
            return Err(Error::Unsupported(format!(
                "GGUF tokenizer model {other:?} is not supported (only \"llama\" and \"gpt2\")"
            )))
        }
    };
    add_vocab_tokens(&mut tokenizer, &vocab);
    if let Some(processor) = bos_eos_processor(&vocab)? {
        tokenizer.with_post_processor(Some(processor));
    }
    tokenizer.set_encode_special_tokens(true);
    // One id per text, the one the tokenizer itself gives it, in a stable order.
    let mut specials: Vec<(String, u32)> = tokenizer
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(_, t)| t.special && !t.content.is_empty())
        .map(|(id, t)| {
            let id = tokenizer.token_to_id(&t.content).unwrap_or(id);
            (t.content, id)
        })
        .collect();
    specials.sort_by_key(|&(_, id)| id);
    specials.dedup();
    let (texts, special_ids): (Vec<String>, Vec<u32>) = specials.into_iter().unzip();
    let specials = AhoCorasickBuilder::new()
        .match_kind(MatchKind::LeftmostLongest)
        .build(&texts)
        .map_err(|e| bad_meta(format!("cannot index the special tokens: {e}")))?;
    Ok(GgufTokenizer {
        tokenizer,
        spm,
        specials,
        special_ids,
        add_eos_id: vocab.eos.filter(|_| vocab.add_eos),
        bos_id: vocab.bos,
        eos_ids: vocab.eog_ids(),
        add_bos: vocab.add_bos,
        chat_template: vocab.chat_template.clone(),
    })
}

/// Reads only a GGUF file's header and metadata (not its tensors) and builds its tokenizer.
pub fn from_gguf_file(path: &Path) -> Result<GgufTokenizer> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let content = Content::read(&mut BufReader::new(file))
        .map_err(|e| Error::Model(format!("{}: not a readable GGUF file: {e}", path.display())))?;
    from_gguf(&content)
}

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_code(code: i64) -> Result<Self> {
        Ok(match code {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            other => return Err(bad_meta(format!("unknown token type {other}"))),
        })
    }
}

/// The `tokenizer.*` metadata, checked for consistency.
struct GgufVocab {
    model: String,
    pre: Option<String>,
    tokens: Vec<String>,
    scores: Vec<f32>,
    types: Vec<TokenType>,
    merges: Vec<String>,
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    chat_template: Option<String>,
}

impl GgufVocab {
    fn read(meta: &HashMap<String, Value>) -> Result<Self> {
        let model = meta_string(meta, "tokenizer.ggml.model")?
            .ok_or_else(|| bad_meta("tokenizer.ggml.model is missing".into()))?;
        let tokens = meta_array(meta, "tokenizer.ggml.tokens")?
            .ok_or_else(|| bad_meta("tokenizer.ggml.tokens is missing".into()))?
            .iter()
            .map(|v| value_string(v).map(str::to_owned))
            .collect::<Result<Vec<_>>>()?;
        ensure(!tokens.is_empty(), "tokenizer.ggml.tokens is empty")?;
        let n = tokens.len();

        let scores = match meta_array(meta, "tokenizer.ggml.scores")? {
            Some(values) => values.iter().map(value_f32).collect::<Result<Vec<_>>>()?,
            None => vec![0.0; n],
        };
        let types = match meta_array(meta, "tokenizer.ggml.token_type")? {
            Some(values) => values
                .iter()
                .map(|v| value_int(v).and_then(TokenType::from_code))
                .collect::<Result<Vec<_>>>()?,
            None => vec![TokenType::Normal; n],
        };
        ensure(
            scores.len() == n,
            "tokenizer.ggml.scores and tokens differ in length",
        )?;
        ensure(
            types.len() == n,
            "tokenizer.ggml.token_type and tokens differ in length",
        )?;
        let merges = match meta_array(meta, "tokenizer.ggml.merges")? {
            Some(values) => values
                .iter()
                .map(|v| value_string(v).map(str::to_owned))
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };

        let id = |key: &str| token_id(meta, key, n);
        let pre = meta_string(meta, "tokenizer.ggml.pre")?;
        let is_spm = model == "llama";
        // Defaults as in llama.cpp: SentencePiece vocabularies add BOS and a space prefix.
        let llama3_pre = pre.as_deref().is_some_and(is_llama3_pre);
        let add_bos =
            meta_bool(meta, "tokenizer.ggml.add_bos_token")?.unwrap_or(is_spm || llama3_pre);
        let vocab = Self {
            pre,
            tokens,
            scores,
            types,
            merges,
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            eot: id("tokenizer.ggml.eot_token_id")?,
            eom: id("tokenizer.ggml.eom_token_id")?,
            add_bos,
            add_eos: meta_bool(meta, "tokenizer.ggml.add_eos_token")?.unwrap_or(false),
            add_space_prefix: meta_bool(meta, "tokenizer.ggml.add_space_prefix")?.unwrap_or(is_spm),
            chat_template: meta_string(meta, "tokenizer.chat_template")?,
            model,
        };
        ensure(
            !vocab.add_bos || vocab.bos.is_some(),
            "the GGUF asks for a BOS token but declares no tokenizer.ggml.bos_token_id",
        )?;
        ensure(
            !vocab.add_eos || vocab.eos.is_some(),
            "the GGUF asks for an EOS token but declares no tokenizer.ggml.eos_token_id",
        )?;
        Ok(vocab)
    }

    /// Token text to id; a text listed twice maps to its last id, as in llama.cpp.
    fn text_to_id(&self) -> BpeVocab {
        let mut map = BpeVocab::default();
        for (id, text) in (0u32..).zip(&self.tokens) {
            map.insert(text.clone(), id);
        }
        map
    }

    fn unk_text(&self) -> Option<String> {
        let unk = self.unk.or_else(|| {
            (0u32..)
                .zip(&self.types)
                .find_map(|(id, t)| (*t == TokenType::Unknown).then_some(id))
        })?;
        self.tokens.get(unk as usize).cloned()
    }

    fn eog_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = [self.eos, self.eot, self.eom]
            .into_iter()
            .flatten()
            .collect();
        for (id, text) in (0u32..).zip(&self.tokens) {
            if EOG_TEXTS.contains(&text.as_str()) && !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }
}

/// The decoder of a SentencePiece-style vocabulary: ids to pieces, `▁` to spaces, byte
/// tokens to bytes. It has no merges: [`spm::Spm`] encodes.
fn spm_decoder(vocab: &GgufVocab) -> Result<Tokenizer> {
    let has_byte_tokens = vocab.types.contains(&TokenType::Byte);
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab.text_to_id(), Vec::new())
        .byte_fallback(has_byte_tokens);
    if let Some(unk) = vocab.unk_text() {
        builder = builder.unk_token(unk);
    }
    let model = builder
        .build()
        .map_err(|e| bad_meta(format!("cannot build the SentencePiece vocabulary: {e}")))?;
    let mut tokenizer = Tokenizer::new(model);
    let mut decoders: Vec<DecoderWrapper> = vec![
        replace(SPM_SPACE, " ")?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if vocab.add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tokenizer)
}

/// The encoder of a SentencePiece-style vocabulary, as llama.cpp tokenizes it.
fn spm_encoder(vocab: &GgufVocab) -> Result<spm::Spm> {
    let user: Vec<u32> = (0u32..)
        .zip(&vocab.types)
        .filter(|(_, t)| **t == TokenType::UserDefined)
        .map(|(id, _)| id)
        .collect();
    let unk = vocab.unk.or_else(|| {
        (0u32..)
            .zip(&vocab.types)
            .find_map(|(id, t)| (*t == TokenType::Unknown).then_some(id))
    });
    spm::Spm::new(
        &vocab.tokens,
        &vocab.scores,
        &user,
        unk,
        vocab.add_space_prefix,
    )
}

/// Byte-level BPE vocabulary (GPT-2 style) with llama.cpp's pre-tokenizer for its `pre`.
fn bpe_tokenizer(vocab: &GgufVocab) -> Result<Tokenizer> {
    let pre = vocab.pre.as_deref().unwrap_or("default");
    let regexes = bpe_regexes(pre)?;
    let merges = vocab
        .merges
        .iter()
        .map(|line| split_merge(line))
        .collect::<Result<Vec<_>>>()?;
    ensure(
        !merges.is_empty(),
        "a \"gpt2\" GGUF tokenizer needs tokenizer.ggml.merges",
    )?;
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab.text_to_id(), merges)
        .ignore_merges(is_llama3_pre(pre));
    if let Some(unk) = vocab.unk.and_then(|id| vocab.tokens.get(id as usize)) {
        builder = builder.unk_token(unk.clone());
    }
    let model = builder
        .build()
        .map_err(|e| bad_meta(format!("cannot build the BPE merge table: {e}")))?;

    let mut tokenizer = Tokenizer::new(model);
    let mut pre_tokenizers = regexes
        .iter()
        .map(|regex| {
            Split::new(
                SplitPattern::Regex((*regex).to_owned()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map(PreTokenizerWrapper::from)
            .map_err(|e| Error::Model(format!("bad pre-tokenizer regex for {pre:?}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    pre_tokenizers.push(ByteLevel::new(false, false, false).into());
    tokenizer.with_pre_tokenizer(Some(PreTokenizerSequence::new(pre_tokenizers)));
    tokenizer.with_decoder(Some(ByteLevel::new(false, false, false)));
    Ok(tokenizer)
}

fn is_llama3_pre(pre: &str) -> bool {
    matches!(
        pre,
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral"
    )
}

/// The regexes llama.cpp splits text with before byte-level BPE, applied in sequence.
fn bpe_regexes(pre: &str) -> Result<&'static [&'static str]> {
    Ok(match pre {
        p if is_llama3_pre(p) => &[LLAMA3_REGEX],
        "qwen2" | "stablelm2" | "hunyuan" => &[QWEN2_REGEX],
        "gpt-2" | "gpt2" | "mpt" | "olmo" | "jais" => &[GPT2_REGEX],
        "default" => DEFAULT_BPE_REGEXES,
        other => {
            return Err(Error::Unsupported(format!(
                "GGUF pre-tokenizer {other:?} is not supported \
                 (supported: llama3/llama-bpe, qwen2, gpt2, default)"
            )))
        }
    })
}

/// "left right" as llama.cpp splits it: at the first space after the first byte.
fn split_merge(line: &str) -> Result<(String, String)> {
    line.char_indices()
        .skip(1)
        .find(|(_, c)| *c == ' ')
        .map(|(at, _)| (line[..at].to_owned(), line[at + 1..].to_owned()))
        .ok_or_else(|| bad_meta(format!("malformed merge {line:?} in tokenizer.ggml.merges")))
}

/// Control/unknown tokens as special added tokens, user-defined ones as plain added tokens.
fn add_vocab_tokens(tokenizer: &mut Tokenizer, vocab: &GgufVocab) {
    let mut special = Vec::new();
    let mut user = Vec::new();
    for (text, kind) in vocab.tokens.iter().zip(&vocab.types) {
        if text.is_empty() {
            continue;
        }
        match kind {
            TokenType::Control | TokenType::Unknown => {
                special.push(AddedToken::from(text.clone(), true).normalized(false));
            }
            TokenType::UserDefined => {
                user.push(AddedToken::from(text.clone(), false).normalized(false));
            }
            TokenType::Normal | TokenType::Unused | TokenType::Byte => {}
        }
    }
    tokenizer.add_special_tokens(&special);
    tokenizer.add_tokens(&user);
}

/// The post-processor that adds BOS/EOS when the GGUF asks for them.
fn bos_eos_processor(vocab: &GgufVocab) -> Result<Option<TemplateProcessing>> {
    let mut special_tokens = Vec::new();
    let (mut head, mut tail) = ("", "");
    if vocab.add_bos {
        special_tokens.push(("bos".to_owned(), required_id(vocab.bos, "BOS")?));
        head = "bos ";
    }
    if vocab.add_eos {
        special_tokens.push(("eos".to_owned(), required_id(vocab.eos, "EOS")?));
        tail = " eos";
    }
    if special_tokens.is_empty() {
        return Ok(None);
    }
    let single = format!("{head}$A{tail}");
    let pair = format!("{single} $B:1");
    let template_error = |e| bad_meta(format!("bad BOS/EOS template: {e}"));
    let processor = TemplateProcessing::builder()
        .try_single(single)
        .map_err(template_error)?
        .try_pair(pair)
        .map_err(template_error)?
        .special_tokens(special_tokens)
        .build()
        .map_err(|e| bad_meta(format!("bad BOS/EOS template: {e}")))?;
    Ok(Some(processor))
}

fn required_id(id: Option<u32>, name: &str) -> Result<u32> {
    id.ok_or_else(|| bad_meta(format!("the {name} token id is missing")))
}

fn replace(from: &str, to: &str) -> Result<Replace> {
    Replace::new(from, to).map_err(|e| Error::Model(format!("bad replace pattern {from:?}: {e}")))
}

fn bad_meta(reason: String) -> Error {
    Error::Model(format!("GGUF tokenizer metadata: {reason}"))
}

fn ensure(condition: bool, reason: &str) -> Result<()> {
    if condition {
        Ok(())
    } else {
        Err(bad_meta(reason.to_owned()))
    }
}

fn meta_array<'a>(meta: &'a HashMap<String, Value>, key: &str) -> Result<Option<&'a [Value]>> {
    match meta.get(key) {
        None => Ok(None),
        Some(Value::Array(values)) => Ok(Some(values)),
        Some(_) => Err(bad_meta(format!("{key} is not an array"))),
    }
}

fn meta_string(meta: &HashMap<String, Value>, key: &str) -> Result<Option<String>> {
    meta.get(key)
        .map(|v| value_string(v).map(str::to_owned))
        .transpose()
        .map_err(|_| bad_meta(format!("{key} is not a string")))
}

fn meta_bool(meta: &HashMap<String, Value>, key: &str) -> Result<Option<bool>> {
    match meta.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => value_int(other)
            .map(|i| Some(i != 0))
            .map_err(|_| bad_meta(format!("{key} is not a boolean"))),
    }
}

/// A token id from `key`, checked against the vocabulary size; llama.cpp writes -1 for none.
fn token_id(meta: &HashMap<String, Value>, key: &str, n_tokens: usize) -> Result<Option<u32>> {
    let Some(value) = meta.get(key) else {
        return Ok(None);
    };
    let id = value_int(value).map_err(|_| bad_meta(format!("{key} is not an integer")))?;
    if id < 0 {
        return Ok(None);
    }
    match u32::try_from(id) {
        Ok(id) if (id as usize) < n_tokens => Ok(Some(id)),
        _ => Err(bad_meta(format!(
            "{key} = {id} is outside the vocabulary of {n_tokens}"
        ))),
    }
}

fn value_string(value: &Value) -> Result<&str> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(bad_meta("expected a string value".into())),
    }
}

fn value_f32(value: &Value) -> Result<f32> {
    match value {
        Value::F32(f) => Ok(*f),
        Value::F64(f) => Ok(*f as f32),
        other => value_int(other).map(|i| i as f32),
    }
}

fn value_int(value: &Value) -> Result<i64> {
    Ok(match value {
        Value::U8(v) => i64::from(*v),
        Value::I8(v) => i64::from(*v),
        Value::U16(v) => i64::from(*v),
        Value::I16(v) => i64::from(*v),
        Value::U32(v) => i64::from(*v),
        Value::I32(v) => i64::from(*v),
        Value::I64(v) => *v,
        Value::U64(v) => {
            i64::try_from(*v).map_err(|_| bad_meta(format!("integer {v} is out of range")))?
        }
        _ => return Err(bad_meta("expected an integer value".into())),
    })
}

mod spm;
#[cfg(test)]
mod tests;
