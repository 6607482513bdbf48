//! Incremental detokenization: text pieces as tokens arrive, for streaming output.
//!
//! Modelled on candle-examples' `TokenOutputStream`: decode a window of tokens that
//! starts one emitted chunk back (so a word's leading `▁` still decodes as a space)
//! and emit what grew. That version emits only when the text ends in an alphanumeric,
//! so punctuation, emoji and other byte-fallback characters wait for the next word,
//! and it cuts at a byte length without checking that the window extends what was
//! emitted. Here text goes out as soon as it does not end in an unfinished character
//! (U+FFFD from a partial byte sequence), and is cut only where it extends the
//! emitted part.

use tokenizers::Tokenizer;

use crate::{Error, Result};

/// What the byte-fallback decoder writes for bytes that form no character (yet).
const REPLACEMENT: char = '\u{fffd}';

/// Turns token ids, pushed one at a time, into text pieces whose concatenation is the
/// decode of all ids (special tokens skipped).
pub struct TokenStream<'a> {
    tokenizer: &'a Tokenizer,
    ids: Vec<u32>,
    /// Start of the decode window: the tokens before `read` give the context that keeps
    /// the leading `▁` of the next token a space instead of a stripped prefix.
    prefix: usize,
    /// Tokens before this one have been emitted.
    read: usize,
}

impl<'a> TokenStream<'a> {
    /// A stream over `tokenizer`, with no tokens yet.
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        TokenStream {
            tokenizer,
            ids: Vec::new(),
            prefix: 0,
            read: 0,
        }
    }

    /// Adds one id; returns the text it completes, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let fresh = self.pending()?;
        if fresh.is_empty() || fresh.ends_with(REPLACEMENT) {
            return Ok(None);
        }
        self.prefix = self.read;
        self.read = self.ids.len();
        Ok(Some(fresh))
    }

    /// Returns whatever is still held back (an unfinished character decodes as U+FFFD).
    pub fn finish(&mut self) -> Result<Option<String>> {
        let fresh = self.pending()?;
        if fresh.is_empty() {
            return Ok(None);
        }
        self.prefix = self.read;
        self.read = self.ids.len();
        Ok(Some(fresh))
    }

    /// All ids pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Text of the tokens not emitted yet, decoded after the window's context. Should a
    /// decoder ever rewrite the emitted part, they are decoded on their own instead,
    /// since emitted text cannot be taken back.
    fn pending(&self) -> Result<String> {
        let emitted = self.decode(self.prefix, self.read)?;
        let window = self.decode(self.prefix, self.ids.len())?;
        match window.strip_prefix(&emitted) {
            Some(fresh) => Ok(fresh.to_owned()),
            None => self.decode(self.read, self.ids.len()),
        }
    }

    fn decode(&self, from: usize, to: usize) -> Result<String> {
        self.tokenizer
            .decode(&self.ids[from..to], true)
            .map_err(|e| Error::Model(format!("decoding tokens failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::sentencepiece::from_spm_file;
    use std::path::Path;

    fn bpe() -> Tokenizer {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spm/bpe.model");
        from_spm_file(&path).unwrap()
    }

    /// Streams `text` token by token; returns the pieces and the full decode.
    fn stream(tokenizer: &Tokenizer, text: &str) -> (Vec<String>, String) {
        let ids = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
        let full = tokenizer.decode(&ids, true).unwrap();
        let mut stream = TokenStream::new(tokenizer);
        let mut pieces = Vec::new();
        for &id in &ids {
            pieces.extend(stream.push(id).unwrap());
        }
        pieces.extend(stream.finish().unwrap());
        assert_eq!(stream.ids(), ids.as_slice());
        (pieces, full)
    }

    #[test]
    fn pieces_concatenate_to_full_decode() {
        let tokenizer = bpe();
        for text in [
            "Москва, 4 сентября — «Ёлочки» и ёжики 🎄 в тумане.",
            "Emoji 👨‍👩‍👧‍👦 family, flags 🇷🇺🇬🇧 and 日本語.",
            "  spaced   out  ",
            "😀",
        ] {
            let (pieces, full) = stream(&tokenizer, text);
            assert_eq!(pieces.concat(), full, "{text:?}");
            assert!(
                pieces.iter().all(|p| !p.contains(REPLACEMENT)),
                "{text:?}: {pieces:?}"
            );
        }
    }

    #[test]
    fn multi_token_character_arrives_whole_and_spaces_survive() {
        let tokenizer = bpe();
        let ids = tokenizer
            .encode("мир 🎄", false)
            .unwrap()
            .get_ids()
            .to_vec();
        let bytes = ids
            .iter()
            .filter(|&&id| {
                tokenizer
                    .id_to_token(id)
                    .is_some_and(|t| t.starts_with("<0x"))
            })
            .count();
        assert_eq!(bytes, 4, "the emoji should fall back to four byte pieces");
        let mut stream = TokenStream::new(&tokenizer);
        let pieces: Vec<String> = ids
            .iter()
            .filter_map(|&id| stream.push(id).unwrap())
            .collect();
        // Out on its last byte, not held for a following word or for finish().
        assert_eq!(pieces.last().map(String::as_str), Some("🎄"), "{pieces:?}");
        assert_eq!(pieces.concat(), "мир 🎄");
        assert_eq!(stream.finish().unwrap(), None);
    }

    #[test]
    fn unfinished_character_comes_out_at_finish() {
        let tokenizer = bpe();
        let first_byte = tokenizer.token_to_id("<0xF0>").unwrap();
        let mut stream = TokenStream::new(&tokenizer);
        assert_eq!(stream.push(first_byte).unwrap(), None);
        assert_eq!(stream.finish().unwrap().as_deref(), Some("\u{fffd}"));
        assert_eq!(stream.finish().unwrap(), None);
    }
}
