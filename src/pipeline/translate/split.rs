//! Cutting a sentence too long for the model into pieces that fit, never dropping text.

use crate::Result;

/// Splits `text` into pieces of at most `limit` tokens (by `count`): at the clause
/// boundary nearest the middle (`;`, `:`, dashes, `,` in that preference), else between
/// words, else between characters. Nothing is dropped: the pieces joined by single
/// spaces give the text back up to whitespace.
pub fn split_to_fit(
    text: &str,
    limit: usize,
    count: &dyn Fn(&str) -> Result<usize>,
) -> Result<Vec<String>> {
    let text = text.trim();
    if text.is_empty() || count(text)? <= limit {
        return Ok(vec![text.to_string()]);
    }
    let Some(cut) = best_cut(text) else {
        return Ok(vec![text.to_string()]);
    };
    let mut out = split_to_fit(&text[..cut], limit, count)?;
    out.extend(split_to_fit(&text[cut..], limit, count)?);
    Ok(out)
}

/// Where to cut `text` in two: a byte offset strictly inside it, on a char boundary.
pub(super) fn best_cut(text: &str) -> Option<usize> {
    let mid = text.len() / 2;
    let nearest = |cands: Vec<usize>| -> Option<usize> {
        cands
            .into_iter()
            .filter(|&c| c > 0 && c < text.len())
            .min_by_key(|&c| c.abs_diff(mid))
    };
    let after =
        |pat: &str| -> Vec<usize> { text.match_indices(pat).map(|(i, m)| i + m.len()).collect() };
    let classes: [&[&str]; 4] = [&["; "], &[": "], &[" — ", " – ", " - "], &[", "]];
    for class in classes {
        let cands: Vec<usize> = class.iter().flat_map(|p| after(p)).collect();
        // A boundary near an end gains little: prefer one in the middle half.
        let quarter = text.len() / 4;
        if let Some(c) = nearest(cands).filter(|&c| c >= quarter && c <= text.len() - quarter) {
            return Some(c);
        }
    }
    let spaces: Vec<usize> = text
        .char_indices()
        .filter(|(_, c)| c.is_whitespace())
        .map(|(i, _)| i)
        .collect();
    if let Some(c) = nearest(spaces) {
        return Some(c);
    }
    let chars: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    nearest(chars)
}
