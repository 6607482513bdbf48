//! [`MarianTokenizer`]: two SentencePiece models paired with Marian's `vocab.json`, the
//! way transformers' `MarianTokenizer` pairs them (special tokens, language tags, ids).

use std::collections::HashMap;
use std::path::Path;

use super::{parse_model, PieceTable, SpmEncoder, SPACE};
use crate::{Error, Result};

/// One SentencePiece model of a Marian pair: the encoder encodes, the table decodes.
#[derive(Clone)]
struct SpmSide {
    encoder: SpmEncoder,
    table: PieceTable,
}

impl SpmSide {
    fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let name = path.display().to_string();
        let proto = parse_model(&bytes, &name)?;
        Ok(SpmSide {
            encoder: SpmEncoder::from_proto(&proto, &name)?,
            table: PieceTable::new(&proto),
        })
    }
}

/// Marian's special tokens, in the order transformers' `MarianTokenizer` declares them.
const EOS: &str = "</s>";
const UNK: &str = "<unk>";
const PAD: &str = "<pad>";

/// Tokenizer of a Marian (OPUS-MT) model: `source.spm`, `target.spm` and `vocab.json`
/// (plus `target_vocab.json` when the vocabularies are separate), ids as transformers'
/// `MarianTokenizer` produces them.
#[derive(Clone)]
pub struct MarianTokenizer {
    source: SpmSide,
    target: SpmSide,
    encoder: HashMap<String, u32>,
    /// Only with separate vocabularies; otherwise the target side uses `encoder`.
    target_encoder: Option<HashMap<String, u32>>,
    decoder: HashMap<u32, String>,
    eos_id: u32,
    unk_id: u32,
    pad_id: u32,
}

/// A piece of input text: either a special token written out, or text between them.
enum Chunk<'a> {
    Special(&'a str),
    Text(&'a str),
}

impl MarianTokenizer {
    /// Loads `source.spm`, `target.spm`, `vocab.json` and, if present, `target_vocab.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let source = SpmSide::load(&dir.join("source.spm"))?;
        let target = SpmSide::load(&dir.join("target.spm"))?;
        let encoder = load_vocab(&dir.join("vocab.json"))?;
        let target_vocab = dir.join("target_vocab.json");
        let target_encoder = if target_vocab.is_file() {
            Some(load_vocab(&target_vocab)?)
        } else {
            None
        };
        let decoder = target_encoder
            .as_ref()
            .unwrap_or(&encoder)
            .iter()
            .map(|(token, &id)| (id, token.clone()))
            .collect();
        let special = |token: &str| {
            encoder.get(token).copied().ok_or_else(|| {
                Error::Model(format!(
                    "{}: no {token} token in the vocabulary",
                    dir.join("vocab.json").display()
                ))
            })
        };
        Ok(MarianTokenizer {
            eos_id: special(EOS)?,
            unk_id: special(UNK)?,
            pad_id: special(PAD)?,
            source,
            target,
            encoder,
            target_encoder,
            decoder,
        })
    }

    /// Source-side ids, `</s>` appended; a leading `>>xxx<<` language tag becomes its own id.
    pub fn encode_source(&self, text: &str) -> Result<Vec<u32>> {
        self.encode(text, &self.source, &self.encoder)
    }

    /// Target-side ids (labels), `</s>` appended.
    pub fn encode_target(&self, text: &str) -> Result<Vec<u32>> {
        let encoder = self.target_encoder.as_ref().unwrap_or(&self.encoder);
        self.encode(text, &self.target, encoder)
    }

    /// Text of target-side ids; `skip_special` drops `</s>`, `<unk>` and `<pad>`.
    pub fn decode_target(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        // transformers decodes with the source model when the vocabulary is shared.
        let side = if self.target_encoder.is_some() {
            &self.target
        } else {
            &self.source
        };
        let is_special = |id: u32| id == self.eos_id || id == self.unk_id || id == self.pad_id;
        let tokens: Vec<&str> = ids
            .iter()
            .filter(|&&id| !(skip_special && is_special(id)))
            .map(|&id| {
                self.decoder
                    .get(&id)
                    .map(String::as_str)
                    .or_else(|| side.table.piece(id))
                    .unwrap_or(UNK)
            })
            .collect();
        Ok(tokens_to_string(&tokens, &side.table))
    }

    /// Id of `<pad>`, which Marian also uses to start decoding.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Id of `</s>`.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Id of `<unk>`.
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    /// Size of the (source) vocabulary, as `MarianTokenizer.vocab_size`.
    pub fn vocab_size(&self) -> usize {
        self.encoder.len()
    }

    /// Id of a token in `vocab.json`, such as a `>>rus<<` language tag.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.encoder.get(token).copied()
    }

    fn encode(
        &self,
        text: &str,
        side: &SpmSide,
        encoder: &HashMap<String, u32>,
    ) -> Result<Vec<u32>> {
        let lookup = |token: &str| encoder.get(token).copied().unwrap_or(self.unk_id);
        let mut ids = Vec::new();
        for chunk in split_specials(text) {
            let text = match chunk {
                Chunk::Special(token) => {
                    ids.push(lookup(token));
                    continue;
                }
                Chunk::Text(text) => text,
            };
            let (tag, text) = split_language_tag(text);
            if let Some(tag) = tag {
                ids.push(lookup(tag));
            }
            let pieces = side.encoder.pieces(text)?;
            ids.extend(pieces.iter().map(|(_, piece)| lookup(piece)));
        }
        ids.push(self.eos_id);
        Ok(ids)
    }
}

fn load_vocab(path: &Path) -> Result<HashMap<String, u32>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::bad_input(path, format!("not a Marian vocab.json: {e}")))
}

/// Splits out `</s>`, `<unk>` and `<pad>` written in the text, which transformers
/// matches as special tokens before SentencePiece sees the rest.
fn split_specials(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut rest = text;
    while let Some((at, token)) = [EOS, UNK, PAD]
        .iter()
        .filter_map(|t| rest.find(t).map(|at| (at, *t)))
        .min_by_key(|(at, _)| *at)
    {
        if at > 0 {
            chunks.push(Chunk::Text(&rest[..at]));
        }
        chunks.push(Chunk::Special(token));
        rest = &rest[at + token.len()..];
    }
    if !rest.is_empty() {
        chunks.push(Chunk::Text(rest));
    }
    chunks
}

/// `MarianTokenizer.remove_language_code`: text starting with `>>` up to the first `<<`.
fn split_language_tag(text: &str) -> (Option<&str>, &str) {
    if text.starts_with(">>") {
        if let Some(end) = text.find("<<") {
            return (Some(&text[..end + 2]), &text[end + 2..]);
        }
    }
    (None, text)
}

/// `MarianTokenizer.convert_tokens_to_string`: runs of pieces go through SentencePiece,
/// special tokens are written out followed by a space, `▁` becomes a space, ends trimmed.
fn tokens_to_string(tokens: &[&str], table: &PieceTable) -> String {
    let mut out = String::new();
    let mut run: Vec<&str> = Vec::new();
    for &token in tokens {
        if [EOS, UNK, PAD].contains(&token) {
            out.push_str(&table.decode_pieces(&run));
            out.push_str(token);
            out.push(' ');
            run.clear();
        } else {
            run.push(token);
        }
    }
    out.push_str(&table.decode_pieces(&run));
    // Python's str.strip() also strips the information separators U+001C..U+001F.
    out.replace(SPACE, " ")
        .trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::super::tests::fixture;
    use super::*;

    #[test]
    fn language_tag_only_at_start() {
        assert_eq!(split_language_tag(">>rus<< Hi"), (Some(">>rus<<"), " Hi"));
        assert_eq!(split_language_tag("Hi >>rus<<"), (None, "Hi >>rus<<"));
        assert_eq!(split_language_tag(">>rus Hi"), (None, ">>rus Hi"));
    }

    #[test]
    fn specials_split_out_of_text() {
        let chunks = split_specials("a</s>b<pad>");
        let shown: Vec<String> = chunks
            .iter()
            .map(|c| match c {
                Chunk::Special(t) => format!("[{t}]"),
                Chunk::Text(t) => t.to_string(),
            })
            .collect();
        assert_eq!(shown, ["a", "[</s>]", "b", "[<pad>]"]);
    }

    #[test]
    fn marian_separate_target_vocabulary_decodes_with_target_model() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["source.spm", "target.spm", "vocab.json"] {
            std::fs::copy(fixture("marian").join(name), dir.path().join(name)).unwrap();
        }
        std::fs::copy(
            fixture("marian").join("vocab.json"),
            dir.path().join("target_vocab.json"),
        )
        .unwrap();
        let marian = MarianTokenizer::from_dir(dir.path()).unwrap();
        let ids = marian.encode_target("Новости из Москвы").unwrap();
        assert_eq!(
            marian.decode_target(&ids, true).unwrap(),
            "Новости из Москвы"
        );
        let with_eos = marian.decode_target(&ids, false).unwrap();
        assert_eq!(with_eos, "Новости из Москвы</s>");
    }

    #[test]
    fn marian_dir_without_vocab_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["source.spm", "target.spm"] {
            std::fs::copy(fixture("marian").join(name), dir.path().join(name)).unwrap();
        }
        let message = MarianTokenizer::from_dir(dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(message.contains("vocab.json"), "{message}");
    }

    #[test]
    fn marian_pair_loads_with_language_tags() {
        let marian = MarianTokenizer::from_dir(&fixture("marian")).unwrap();
        let rus = marian.token_id(">>rus<<").unwrap();
        let ids = marian.encode_source(">>rus<< Hello").unwrap();
        assert_eq!(ids.first(), Some(&rus));
        assert_eq!(ids.last(), Some(&marian.eos_id()));
        assert_eq!((marian.eos_id(), marian.unk_id()), (0, 1));
        assert_eq!(marian.pad_id() as usize, marian.vocab_size() - 1);
        let ids = marian.encode_target("Привет, мир").unwrap();
        assert_eq!(marian.decode_target(&ids, true).unwrap(), "Привет, мир");
    }
}
