//! llama.cpp's tokenizer of SentencePiece vocabularies (`llm_tokenizer_spm` in
//! `src/llama-vocab.cpp`), written out rather than emulated with a BPE merge table.
//!
//! llama.cpp does not run SentencePiece's unigram search: it starts from the UTF-8
//! characters and repeatedly merges the adjacent pair whose concatenation is in the
//! vocabulary with the highest score (leftmost on ties), then writes what is left unknown
//! as `<0xXX>` byte tokens. A BPE merge table listing every split of every token (half a
//! million pairs for Gemma 3's 262,144 tokens) gives the same result but takes over half a
//! second to build at every load; this needs only the text-to-id map.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::{Error, Result};

/// SentencePiece's visible space, which these vocabularies use in place of ' '.
const SPACE: char = '\u{2581}';

/// The encoder of one SentencePiece-style GGUF vocabulary.
pub(super) struct Spm {
    /// Token text to id; a text listed twice maps to its last id, as in llama.cpp.
    ids: HashMap<String, u32>,
    scores: Vec<f32>,
    /// The `<0xXX>` token of each byte, for text the vocabulary cannot spell.
    bytes: [Option<u32>; 256],
    unk: Option<u32>,
    /// User-defined tokens, matched on the raw text before anything else (leftmost-
    /// longest); `user_ids[pattern]` is each one's id. Control tokens are not matched:
    /// in text they are text (llama.cpp's `parse_special = false`).
    user: Option<AhoCorasick>,
    user_ids: Vec<u32>,
    add_space_prefix: bool,
}

impl Spm {
    /// The encoder of `tokens` (with their `scores`); `user` lists the user-defined
    /// tokens' ids.
    pub(super) fn new(
        tokens: &[String],
        scores: &[f32],
        user: &[u32],
        unk: Option<u32>,
        add_space_prefix: bool,
    ) -> Result<Spm> {
        let mut ids = HashMap::with_capacity(tokens.len());
        for (id, text) in (0u32..).zip(tokens) {
            ids.insert(text.clone(), id);
        }
        let mut bytes = [None; 256];
        for (b, slot) in bytes.iter_mut().enumerate() {
            *slot = ids.get(&format!("<0x{b:02X}>")).copied();
        }
        let user_ids: Vec<u32> = user
            .iter()
            .copied()
            .filter(|&id| !tokens[id as usize].is_empty())
            .collect();
        let user = if user_ids.is_empty() {
            None
        } else {
            let texts = user_ids.iter().map(|&id| tokens[id as usize].as_str());
            Some(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(texts)
                    .map_err(|e| {
                        Error::Model(format!(
                            "GGUF tokenizer: cannot index the user-defined tokens: {e}"
                        ))
                    })?,
            )
        };
        Ok(Spm {
            ids,
            scores: scores.to_vec(),
            bytes,
            unk,
            user,
            user_ids,
            add_space_prefix,
        })
    }

    /// Token ids of `text` (no BOS/EOS).
    pub(super) fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        // llama.cpp puts the space prefix before text that starts the input or follows
        // a token matched as a whole.
        let mut after_token = true;
        let mut at = 0;
        if let Some(user) = &self.user {
            for m in user.find_iter(text) {
                if m.start() > at {
                    self.fragment(&text[at..m.start()], after_token, &mut out)?;
                }
                out.push(self.user_ids[m.pattern().as_usize()]);
                after_token = true;
                at = m.end();
            }
        }
        if at < text.len() {
            self.fragment(&text[at..], after_token, &mut out)?;
        }
        Ok(out)
    }

    /// One run of raw text between whole-token matches.
    fn fragment(&self, raw: &str, after_token: bool, out: &mut Vec<u32>) -> Result<()> {
        let mut text = String::with_capacity(raw.len() + 3);
        if self.add_space_prefix && after_token {
            text.push(SPACE);
        }
        text.extend(raw.chars().map(|c| if c == ' ' { SPACE } else { c }));
        self.merge(&text, out)
    }

    /// The greedy best-score merging of llama.cpp's `llm_tokenizer_spm_session`.
    fn merge(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        let mut symbols: Vec<Symbol> = text
            .char_indices()
            .map(|(start, c)| Symbol {
                start,
                len: c.len_utf8(),
                prev: None,
                next: None,
            })
            .collect();
        let n = symbols.len();
        for (i, s) in symbols.iter_mut().enumerate() {
            s.prev = i.checked_sub(1);
            s.next = (i + 1 < n).then_some(i + 1);
        }
        let mut queue = BinaryHeap::new();
        for i in 1..n {
            self.push_pair(text, &symbols, i - 1, i, &mut queue);
        }
        while let Some(pair) = queue.pop() {
            let (l, r) = (symbols[pair.left].len, symbols[pair.right].len);
            // A pair whose symbols have changed since it was queued is stale.
            if l == 0 || r == 0 || l + r != pair.len {
                continue;
            }
            symbols[pair.left].len += r;
            symbols[pair.right].len = 0;
            let next = symbols[pair.right].next;
            symbols[pair.left].next = next;
            if let Some(next) = next {
                symbols[next].prev = Some(pair.left);
            }
            if let Some(prev) = symbols[pair.left].prev {
                self.push_pair(text, &symbols, prev, pair.left, &mut queue);
            }
            if let Some(next) = next {
                self.push_pair(text, &symbols, pair.left, next, &mut queue);
            }
        }
        let mut at = (n > 0).then_some(0);
        while let Some(i) = at {
            let s = &symbols[i];
            let piece = &text[s.start..s.start + s.len];
            match self.ids.get(piece) {
                Some(&id) => out.push(id),
                None => self.spell(piece, out)?,
            }
            at = s.next;
        }
        Ok(())
    }

    /// Queues the merge of adjacent symbols `left` and `right` when the vocabulary has
    /// their concatenation.
    fn push_pair(
        &self,
        text: &str,
        symbols: &[Symbol],
        left: usize,
        right: usize,
        queue: &mut BinaryHeap<Pair>,
    ) {
        let (l, r) = (&symbols[left], &symbols[right]);
        let piece = &text[l.start..r.start + r.len];
        if let Some(&id) = self.ids.get(piece) {
            queue.push(Pair {
                score: self.scores[id as usize],
                left,
                right,
                len: piece.len(),
            });
        }
    }

    /// A piece the vocabulary lacks, as byte tokens (or the unknown token).
    fn spell(&self, piece: &str, out: &mut Vec<u32>) -> Result<()> {
        let bytes: Option<Vec<u32>> = piece.bytes().map(|b| self.bytes[b as usize]).collect();
        match (bytes, self.unk) {
            (Some(ids), _) => out.extend(ids),
            (None, Some(unk)) => out.push(unk),
            (None, None) => {
                return Err(Error::Model(format!(
                    "GGUF tokenizer: {piece:?} is not in the vocabulary, which has neither \
                     byte tokens nor an unknown token"
                )))
            }
        }
        Ok(())
    }
}

/// A run of the text being tokenized; `len` 0 once merged into its left neighbour.
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge: the best score first, the leftmost on ties (llama.cpp's
/// `llm_bigram_spm::comparator`).
struct Pair {
    score: f32,
    left: usize,
    right: usize,
    /// Bytes of the merged text, to recognise stale pairs.
    len: usize,
}

impl Ord for Pair {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.left.cmp(&self.left))
    }
}

impl PartialOrd for Pair {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pair {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pair {}
