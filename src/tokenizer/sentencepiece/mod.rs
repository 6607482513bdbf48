//! SentencePiece `.model`/`.spm` files converted to `tokenizers::Tokenizer` in Rust.
//!
//! The conversion follows transformers' `convert_slow_tokenizer.py` (`SpmConverter`):
//! Unigram keeps the piece scores, BPE gets merges derived from the pieces and their
//! scores, byte fallback is kept, the precompiled charsmap becomes a `Precompiled`
//! normalizer, and `▁` handling follows the model's `normalizer_spec`, so that ids
//! match the Python `sentencepiece` package (see `tests/tokenizer_parity.rs`) except
//! on exact score ties of unigram models, where [`SpmEncoder`] is exact.
//!
//! [`MarianTokenizer`] pairs two models with Marian's `vocab.json`, the way
//! transformers' `MarianTokenizer` does.

mod marian;

use std::collections::HashMap;
use std::path::Path;

use sentencepiece_model::{ModelProto, ModelType, NormalizerSpec, SentencePiece, Type};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::models::unigram::Unigram;
use tokenizers::models::ModelWrapper;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{
    NormalizerWrapper, Precompiled, Prepend, Replace, Sequence as NormalizerSequence,
};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::{AddedToken, NormalizedString, Normalizer, Tokenizer};

use crate::{Error, Result};

pub use marian::MarianTokenizer;

/// SentencePiece's whitespace symbol.
const SPACE: char = '\u{2581}';
const SPACE_STR: &str = "\u{2581}";

/// Loads a SentencePiece model file (`spiece.model`, `source.spm`, ...) as a tokenizer.
pub fn from_spm_file(path: &Path) -> Result<Tokenizer> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    from_spm_bytes(&bytes, &path.display().to_string())
}

/// Builds a tokenizer from the bytes of a SentencePiece model; `name` names it in errors.
pub fn from_spm_bytes(bytes: &[u8], name: &str) -> Result<Tokenizer> {
    let proto = parse_model(bytes, name)?;
    build_tokenizer(&proto, name)
}

/// Decodes and sanity-checks the protobuf: protobuf accepts many byte strings that are
/// not models at all, so an empty piece list or a bad unk id counts as "not a model".
fn parse_model(bytes: &[u8], name: &str) -> Result<ModelProto> {
    let not_a_model =
        |why: &str| Error::bad_input(name, format!("not a SentencePiece model ({why})"));
    let model = sentencepiece_model::SentencePieceModel::from_slice(bytes)
        .map_err(|e| not_a_model(&e.to_string()))?;
    let proto = model.model().clone();
    if proto.pieces.is_empty() || proto.pieces.iter().any(|p| p.piece().is_empty()) {
        return Err(not_a_model("no pieces"));
    }
    let trainer = proto
        .trainer_spec
        .as_ref()
        .ok_or_else(|| not_a_model("no trainer spec"))?;
    let unk = usize::try_from(trainer.unk_id())
        .ok()
        .and_then(|id| proto.pieces.get(id))
        .ok_or_else(|| not_a_model("unk id outside the vocabulary"))?;
    if unk.r#type() != Type::Unknown {
        return Err(not_a_model("the piece at unk id is not <unk>"));
    }
    Ok(proto)
}

fn build_tokenizer(proto: &ModelProto, name: &str) -> Result<Tokenizer> {
    let trainer = proto.trainer_spec.clone().unwrap_or_default();
    let spec = proto.normalizer_spec.clone().unwrap_or_default();
    if !spec.escape_whitespaces() || trainer.treat_whitespace_as_suffix() {
        return Err(Error::Unsupported(format!(
            "{name}: SentencePiece models without escaped whitespace or with whitespace as \
             suffix are not supported"
        )));
    }
    let model = build_model(proto, name)?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_normalizer(build_normalizer(&spec, name)?);
    tokenizer.with_pre_tokenizer(Some(Metaspace::new(
        SPACE,
        PrependScheme::Never,
        trainer.split_by_whitespace(),
    )));
    tokenizer.with_decoder(Some(build_decoder(&spec, name)?));
    // Control symbols (<s>, </s>, ...) are special so decoding can skip them;
    // user-defined symbols are matched whole in the text, as SentencePiece does.
    let added = |kind: Type, special: bool| -> Vec<AddedToken> {
        proto
            .pieces
            .iter()
            .filter(|p| p.r#type() == kind)
            .map(|p| AddedToken::from(p.piece().to_owned(), special).normalized(false))
            .collect()
    };
    tokenizer.add_special_tokens(&added(Type::Control, true));
    tokenizer.add_tokens(&added(Type::UserDefined, false));
    Ok(tokenizer)
}

fn build_model(proto: &ModelProto, name: &str) -> Result<ModelWrapper> {
    let trainer = proto.trainer_spec.clone().unwrap_or_default();
    let model_error = |e: tokenizers::Error| Error::Model(format!("{name}: {e}"));
    match trainer.model_type() {
        ModelType::Unigram => {
            let vocab = proto
                .pieces
                .iter()
                .map(|p| (p.piece().to_owned(), f64::from(p.score())))
                .collect();
            let unk = usize::try_from(trainer.unk_id()).ok();
            let model = Unigram::from(vocab, unk, trainer.byte_fallback()).map_err(model_error)?;
            Ok(model.into())
        }
        ModelType::Bpe => {
            let vocab: tokenizers::models::bpe::Vocab = proto
                .pieces
                .iter()
                .enumerate()
                .map(|(id, p)| (p.piece().to_owned(), id as u32))
                .collect();
            let model = BPE::builder()
                .vocab_and_merges(vocab, bpe_merges(&proto.pieces))
                .unk_token(trainer.unk_piece().to_owned())
                .fuse_unk(true)
                .byte_fallback(trainer.byte_fallback())
                .build()
                .map_err(model_error)?;
            Ok(model.into())
        }
        other => Err(Error::Unsupported(format!(
            "{name}: SentencePiece model type {} is not supported (only unigram and BPE)",
            other.as_str_name()
        ))),
    }
}

/// Merges for a SentencePiece BPE model, as transformers' `generate_merges` derives
/// them: every split of a piece into two pieces, ranked by the merged piece's score
/// (then longer left part first); SentencePiece merges by exactly that score.
fn bpe_merges(pieces: &[SentencePiece]) -> Vec<(String, String)> {
    let mergeable = |p: &SentencePiece| matches!(p.r#type(), Type::Normal | Type::UserDefined);
    let ids: HashMap<&str, usize> = pieces
        .iter()
        .enumerate()
        .filter(|(_, p)| mergeable(p))
        .map(|(id, p)| (p.piece(), id))
        .collect();
    let mut merges: Vec<(&str, &str, f32)> = Vec::new();
    for piece in pieces.iter().filter(|p| mergeable(p)) {
        let text = piece.piece();
        let mut local: Vec<(&str, &str, f32)> = text
            .char_indices()
            .skip(1)
            .map(|(at, _)| text.split_at(at))
            .filter(|(l, r)| ids.contains_key(l) && ids.contains_key(r))
            .map(|(l, r)| (l, r, piece.score()))
            .collect();
        local.sort_by_key(|(l, r, _)| (ids[l], ids[r]));
        merges.extend(local);
    }
    // A stable sort, descending, as Python's `sorted(..., reverse=True)`.
    merges.sort_by(|a, b| {
        b.2.total_cmp(&a.2)
            .then_with(|| b.0.chars().count().cmp(&a.0.chars().count()))
            .then_with(|| b.1.chars().count().cmp(&a.1.chars().count()))
    });
    merges
        .into_iter()
        .map(|(l, r, _)| (l.to_owned(), r.to_owned()))
        .collect()
}

fn replace(pattern: ReplacePattern, content: &str, name: &str) -> Result<NormalizerWrapper> {
    Replace::new(pattern, content)
        .map(NormalizerWrapper::from)
        .map_err(|e| Error::Model(format!("{name}: {e}")))
}

/// SentencePiece's normalizer: charsmap first, then whitespace on its output. It strips
/// leading spaces, collapses runs of spaces, adds the dummy `▁` prefix, and strips
/// trailing whitespace *after* escaping, so a literal trailing `▁` goes too.
fn build_normalizer(spec: &NormalizerSpec, name: &str) -> Result<Option<NormalizerWrapper>> {
    let mut steps: Vec<NormalizerWrapper> = Vec::new();
    let charsmap = spec.precompiled_charsmap();
    if !charsmap.is_empty() {
        let precompiled = Precompiled::from(charsmap).map_err(|e| {
            Error::bad_input(
                name,
                format!("bad precompiled charsmap in SentencePiece model: {e}"),
            )
        })?;
        steps.push(precompiled.into());
    }
    if spec.remove_extra_whitespaces() {
        steps.push(replace(ReplacePattern::Regex(r"\A +".into()), "", name)?);
        steps.push(replace(
            ReplacePattern::Regex("[ \u{2581}]+\\z".into()),
            "",
            name,
        )?);
        steps.push(replace(ReplacePattern::Regex(" {2,}".into()), " ", name)?);
    }
    if spec.add_dummy_prefix() {
        steps.push(Prepend::new(SPACE_STR.to_owned()).into());
    }
    Ok(match steps.len() {
        0 => None,
        1 => steps.pop(),
        _ => Some(NormalizerSequence::new(steps).into()),
    })
}

/// `▁` back to spaces, byte pieces back to UTF-8, and leading space dropped as
/// SentencePiece drops it: every leading `▁` when it removes extra whitespace, else
/// the one dummy prefix.
fn build_decoder(spec: &NormalizerSpec, name: &str) -> Result<DecoderWrapper> {
    let space = Replace::new(SPACE_STR, " ").map_err(|e| Error::Model(format!("{name}: {e}")))?;
    let mut steps: Vec<DecoderWrapper> =
        vec![space.into(), ByteFallback::new().into(), Fuse::new().into()];
    if spec.remove_extra_whitespaces() {
        steps.push(Strip::new(' ', usize::MAX, 0).into());
    } else if spec.add_dummy_prefix() {
        steps.push(Strip::new(' ', 1, 0).into());
    }
    Ok(DecoderSequence::new(steps).into())
}

/// Encoder giving exactly SentencePiece's ids, beside the [`Tokenizer`] it wraps.
///
/// tokenizers' `Unigram` adds scores in f64 where SentencePiece adds them in f32, so
/// where two segmentations tie in exact arithmetic ("000" as "0"+"00" or "00"+"0")
/// SentencePiece's rounding decides and tokenizers takes the first found (2 of 10,274
/// WMT22 lines and documents differ with the fixture model). This runs SentencePiece's own unigram search
/// on the tokenizer's normalized text. It also treats `<s>`/`</s>` written in the text
/// as text, as SentencePiece does. BPE needs neither fix and goes through the tokenizer.
#[derive(Clone)]
pub struct SpmEncoder {
    tokenizer: Tokenizer,
    unigram: Option<UnigramSearch>,
}

impl SpmEncoder {
    /// Loads a SentencePiece model file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Builds the encoder from model bytes; `name` names the model in errors.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self> {
        let proto = parse_model(bytes, name)?;
        Self::from_proto(&proto, name)
    }

    fn from_proto(proto: &ModelProto, name: &str) -> Result<Self> {
        let mut tokenizer = build_tokenizer(proto, name)?;
        let unigram = match proto.trainer_spec.clone().unwrap_or_default().model_type() {
            ModelType::Unigram => Some(UnigramSearch::new(proto)),
            _ => {
                tokenizer.set_encode_special_tokens(true);
                None
            }
        };
        Ok(SpmEncoder { tokenizer, unigram })
    }

    /// Ids of `text`, as `SentencePieceProcessor.encode(text)` gives them.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.pieces(text)?.into_iter().map(|(id, _)| id).collect())
    }

    /// Ids with their pieces, as `encode(text, out_type=str)` writes them: unknown
    /// text as itself, byte-fallback bytes as `<0xNN>`.
    pub fn pieces(&self, text: &str) -> Result<Vec<(u32, String)>> {
        let encode_error =
            |e: tokenizers::Error| Error::Model(format!("SentencePiece encoding failed: {e}"));
        let Some(search) = &self.unigram else {
            let encoding = self.tokenizer.encode(text, false).map_err(encode_error)?;
            let pairs = encoding
                .get_ids()
                .iter()
                .copied()
                .zip(encoding.get_tokens().iter().cloned());
            return Ok(pairs.collect());
        };
        let mut normalized = NormalizedString::from(text);
        if let Some(normalizer) = self.tokenizer.get_normalizer() {
            normalizer
                .normalize(&mut normalized)
                .map_err(encode_error)?;
        }
        Ok(search.encode(&normalized.get().replace(' ', SPACE_STR)))
    }

    /// The tokenizer: for decoding, and for encoding where tokenizers' ties are fine.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
}

/// SentencePiece's `EncodeOptimized` for unigram models, f32 scores and all.
#[derive(Debug, Clone)]
struct UnigramSearch {
    /// The pieces SentencePiece can match in text: normal, user-defined, unused.
    ids: HashMap<String, u32>,
    kinds: Vec<Type>,
    scores: Vec<f32>,
    pieces: Vec<String>,
    longest: usize,
    unk_id: u32,
    min_score: f32,
    max_score: f32,
    /// Id of `<0xNN>` for each byte, when the model falls back to bytes.
    byte_ids: Option<Vec<Option<u32>>>,
}

/// SentencePiece's penalty for an unknown character below the lowest piece score.
const UNK_PENALTY: f32 = 10.0;

/// Best path ending at a byte offset: its score, where its last piece starts, its id.
#[derive(Debug, Clone, Copy)]
struct PathEnd {
    score: f32,
    start: Option<usize>,
    id: u32,
}

impl UnigramSearch {
    fn new(proto: &ModelProto) -> Self {
        let trainer = proto.trainer_spec.clone().unwrap_or_default();
        let matchable = |t: Type| matches!(t, Type::Normal | Type::UserDefined | Type::Unused);
        let normal_scores = || {
            proto
                .pieces
                .iter()
                .filter(|p| p.r#type() == Type::Normal)
                .map(|p| p.score())
        };
        let byte_ids = trainer.byte_fallback().then(|| {
            let by_piece: HashMap<&str, u32> = proto
                .pieces
                .iter()
                .enumerate()
                .filter(|(_, p)| p.r#type() == Type::Byte)
                .map(|(id, p)| (p.piece(), id as u32))
                .collect();
            (0..=255u8)
                .map(|b| by_piece.get(format!("<0x{b:02X}>").as_str()).copied())
                .collect()
        });
        UnigramSearch {
            ids: proto
                .pieces
                .iter()
                .enumerate()
                .filter(|(_, p)| matchable(p.r#type()))
                .map(|(id, p)| (p.piece().to_owned(), id as u32))
                .collect(),
            kinds: proto.pieces.iter().map(|p| p.r#type()).collect(),
            scores: proto.pieces.iter().map(|p| p.score()).collect(),
            pieces: proto.pieces.iter().map(|p| p.piece().to_owned()).collect(),
            longest: proto
                .pieces
                .iter()
                .map(|p| p.piece().len())
                .max()
                .unwrap_or(0),
            // parse_model checked that unk_id is a valid index.
            unk_id: u32::try_from(trainer.unk_id()).unwrap_or(0),
            min_score: normal_scores().fold(f32::MAX, f32::min),
            max_score: normal_scores().fold(f32::MIN, f32::max),
            byte_ids,
        }
    }

    fn encode(&self, text: &str) -> Vec<(u32, String)> {
        let path = self.best_path(text);
        let mut spans = Vec::new();
        let mut end = text.len();
        while end > 0 {
            let Some(start) = path[end].start else { break };
            spans.push((path[end].id, &text[start..end]));
            end = start;
        }
        spans.reverse();
        let mut out: Vec<(u32, String)> = Vec::with_capacity(spans.len());
        for (id, surface) in spans {
            if id != self.unk_id {
                out.push((id, self.pieces[id as usize].clone()));
            } else if let Some(byte_ids) = &self.byte_ids {
                for &b in surface.as_bytes() {
                    let id = byte_ids[b as usize].unwrap_or(self.unk_id);
                    out.push((id, format!("<0x{b:02X}>")));
                }
            } else if let Some((_, run)) = out.last_mut().filter(|(last, _)| *last == self.unk_id) {
                // SentencePiece merges a run of unknown pieces into one.
                run.push_str(surface);
            } else {
                out.push((id, surface.to_owned()));
            }
        }
        out
    }

    fn best_path(&self, text: &str) -> Vec<PathEnd> {
        let unk_score = self.min_score - UNK_PENALTY;
        let empty = PathEnd {
            score: 0.0,
            start: None,
            id: self.unk_id,
        };
        let mut path = vec![empty; text.len() + 1];
        for (start, ch) in text.char_indices() {
            let base = path[start].score;
            let mut has_single = false;
            let limit = text.len().min(start + self.longest);
            for end in (start + 1..=limit).filter(|&e| text.is_char_boundary(e)) {
                let Some(&id) = self.ids.get(&text[start..end]) else {
                    continue;
                };
                let kind = self.kinds[id as usize];
                if kind == Type::Unused {
                    continue;
                }
                // User-defined pieces get a bonus so they always win; SentencePiece
                // computes it in double.
                let candidate = if kind == Type::UserDefined {
                    ((end - start) as f32 * self.max_score) as f64 - 0.1 + f64::from(base)
                } else {
                    f64::from(self.scores[id as usize] + base)
                };
                update(&mut path[end], candidate, start, id);
                has_single |= end - start == ch.len_utf8();
            }
            if !has_single {
                let end = start + ch.len_utf8();
                update(
                    &mut path[end],
                    f64::from(unk_score + base),
                    start,
                    self.unk_id,
                );
            }
        }
        path
    }
}

fn update(node: &mut PathEnd, candidate: f64, start: usize, id: u32) {
    if node.start.is_none() || candidate > f64::from(node.score) {
        *node = PathEnd {
            score: candidate as f32,
            start: Some(start),
            id,
        };
    }
}

/// The part of a SentencePiece model that `SentencePieceProcessor.decode_pieces` uses:
/// needed for Marian, whose decode goes through SentencePiece piece by piece.
#[derive(Debug, Clone)]
struct PieceTable {
    ids: HashMap<String, usize>,
    pieces: Vec<(String, Type)>,
    unk_id: usize,
    unk_surface: String,
    strip_bos_space: bool,
    remove_extra_whitespaces: bool,
}

impl PieceTable {
    fn new(proto: &ModelProto) -> Self {
        let trainer = proto.trainer_spec.clone().unwrap_or_default();
        let spec = proto.normalizer_spec.clone().unwrap_or_default();
        PieceTable {
            ids: proto
                .pieces
                .iter()
                .enumerate()
                .map(|(id, p)| (p.piece().to_owned(), id))
                .collect(),
            pieces: proto
                .pieces
                .iter()
                .map(|p| (p.piece().to_owned(), p.r#type()))
                .collect(),
            // parse_model checked that unk_id is a valid index.
            unk_id: usize::try_from(trainer.unk_id()).unwrap_or(0),
            unk_surface: trainer.unk_surface().to_owned(),
            strip_bos_space: spec.add_dummy_prefix() || spec.remove_extra_whitespaces(),
            remove_extra_whitespaces: spec.remove_extra_whitespaces(),
        }
    }

    fn piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(|(p, _)| p.as_str())
    }

    /// `SentencePieceProcessor::Decode(pieces)`: control pieces vanish, unknown pieces
    /// are kept as written, byte pieces are joined into UTF-8 (U+FFFD per bad byte),
    /// and the first `▁` of the text is dropped.
    fn decode_pieces(&self, pieces: &[&str]) -> String {
        let mut text = String::new();
        let mut bytes: Vec<u8> = Vec::new();
        let mut is_bos_ws = true;
        let mut bos_ws_seen = false;
        for &piece in pieces {
            let id = self.ids.get(piece).copied().unwrap_or(self.unk_id);
            let kind = self.pieces.get(id).map_or(Type::Unknown, |(_, t)| *t);
            if kind == Type::Byte {
                if let Some(byte) = byte_piece(piece) {
                    bytes.push(byte);
                    continue;
                }
            }
            flush_bytes(&mut bytes, &mut text);
            if bos_ws_seen || !text.is_empty() {
                is_bos_ws = false;
            }
            let (surface, seen) = self.decode_piece(piece, id, kind, is_bos_ws);
            bos_ws_seen = seen;
            text.push_str(&surface);
        }
        flush_bytes(&mut bytes, &mut text);
        text
    }

    fn decode_piece(&self, piece: &str, id: usize, kind: Type, is_bos_ws: bool) -> (String, bool) {
        match kind {
            Type::Control => return (String::new(), false),
            Type::Unknown if self.piece(id as u32) == Some(piece) => {
                return (self.unk_surface.clone(), false)
            }
            Type::Unknown => return (piece.to_owned(), false),
            _ => {}
        }
        let mut piece = piece;
        let mut seen = false;
        if is_bos_ws && self.strip_bos_space {
            if let Some(rest) = piece.strip_prefix(SPACE) {
                piece = rest;
                seen = !self.remove_extra_whitespaces;
            }
        }
        (piece.replace(SPACE, " "), seen)
    }
}

/// `<0x41>` → 0x41.
fn byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// Appends buffered bytes as UTF-8, one U+FFFD per byte that starts no valid character.
fn flush_bytes(bytes: &mut Vec<u8>, text: &mut String) {
    let mut rest = bytes.as_slice();
    while let Some(&first) = rest.first() {
        let len = match first {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => 1,
        };
        match rest.get(..len).map(std::str::from_utf8) {
            Some(Ok(ch)) => {
                text.push_str(ch);
                rest = &rest[len..];
            }
            _ => {
                text.push('\u{fffd}');
                rest = &rest[1..];
            }
        }
    }
    bytes.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A file of the SentencePiece fixtures (`tests/fixtures/spm`).
    pub(super) fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/spm")
            .join(name)
    }

    #[test]
    fn non_model_file_is_one_line_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "this is not a model\n").unwrap();
        let message = from_spm_file(&path).unwrap_err().to_string();
        assert!(message.contains("notes.txt"), "{message}");
        assert!(message.contains("not a SentencePiece model"), "{message}");
        assert!(!message.contains('\n'), "{message}");
        let message = from_spm_bytes(&[], "empty.model").unwrap_err().to_string();
        assert!(message.starts_with("empty.model: "), "{message}");
    }

    #[test]
    fn missing_file_names_it() {
        let message = from_spm_file(Path::new("/nonexistent/x.spm"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("/nonexistent/x.spm"), "{message}");
    }

    #[test]
    fn unigram_round_trip_and_specials() {
        let tok = from_spm_file(&fixture("unigram.model")).unwrap();
        let ids = tok
            .encode("Привет, мир! 👋", false)
            .unwrap()
            .get_ids()
            .to_vec();
        assert_eq!(tok.decode(&ids, true).unwrap(), "Привет, мир! 👋");
        assert_eq!(tok.token_to_id("</s>"), Some(2));
        assert_eq!(tok.decode(&[2], true).unwrap(), "");
    }

    #[test]
    fn bpe_merges_rank_by_score_then_longer_left() {
        let piece = |text: &str, score: f32| SentencePiece {
            piece: Some(text.into()),
            score: Some(score),
            r#type: Some(Type::Normal as i32),
        };
        let pieces = [
            piece("a", 0.0),
            piece("b", -1.0),
            piece("c", -2.0),
            piece("ab", -3.0),
            piece("bc", -4.0),
            piece("abc", -5.0),
        ];
        let merges = bpe_merges(&pieces);
        let expected = [("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")];
        let got: Vec<(&str, &str)> = merges
            .iter()
            .map(|(l, r)| (l.as_str(), r.as_str()))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn byte_pieces_join_and_bad_bytes_become_replacement() {
        let mut text = String::new();
        flush_bytes(&mut vec![0xf0, 0x9f, 0x98, 0x80, 0x41], &mut text);
        assert_eq!(text, "😀A");
        let mut text = String::new();
        flush_bytes(&mut vec![0xf0, 0x9f, 0x41], &mut text);
        assert_eq!(text, "\u{fffd}\u{fffd}A");
        assert_eq!(byte_piece("<0x0A>"), Some(10));
        assert_eq!(byte_piece("<0x0>"), None);
    }
}
