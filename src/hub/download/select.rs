//! Which files of a repository or folder listing a model needs: the GGUF of the wanted
//! quant, or config, weights (or their index) and tokenizer files; the shards an index
//! names.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::hub::validate::check_repo_file;
use crate::{Error, Result};

/// Files a model needs, picked from a repository or folder listing. `quant` (e.g.
/// `Q4_K_M`) names the GGUF variant to take when the listing has GGUF files; without it
/// a lone GGUF is taken, or the Q4_K_M one among several.
pub(super) fn select_files(
    name: &str,
    available: &[String],
    quant: Option<&str>,
) -> Result<Vec<String>> {
    let ggufs: Vec<&String> = available.iter().filter(|n| n.ends_with(".gguf")).collect();
    if !ggufs.is_empty() {
        let wanted = quant.unwrap_or("q4_k_m").to_ascii_lowercase();
        let matching: Vec<&&String> = ggufs
            .iter()
            .filter(|n| n.to_ascii_lowercase().contains(&wanted))
            .collect();
        let chosen = match (ggufs.as_slice(), matching.as_slice(), quant) {
            (_, [one], _) => (**one).clone(),
            ([one], _, None) => (*one).clone(),
            _ => {
                return Err(Error::Model(format!(
                    "model {name}: no single GGUF file matching {} among: {}",
                    wanted.to_ascii_uppercase(),
                    ggufs
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        };
        return Ok(vec![chosen]);
    }
    let has = |f: &str| available.iter().any(|n| n == f);
    if !has("config.json") {
        return Err(Error::Model(format!(
            "model {name}: neither config.json nor a .gguf file found"
        )));
    }
    let weights = [
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
    ]
    .into_iter()
    .find(|w| has(w))
    .ok_or_else(|| {
        Error::Model(format!(
            "model {name}: no weights found (model.safetensors, model.safetensors.index.json or pytorch_model.bin)"
        ))
    })?;
    let mut out = vec!["config.json".to_string(), weights.to_string()];
    for extra in [
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "source.spm",
        "target.spm",
        "vocab.json",
        "spiece.model",
    ] {
        if has(extra) {
            out.push(extra.to_string());
        }
    }
    Ok(out)
}

/// Shard file names listed in a `*.index.json` weight map, in first-seen order.
pub(crate) fn shards_of(index: &Path) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let parsed: Index = serde_json::from_str(&text)
        .map_err(|e| Error::bad_input(index, format!("not a weights index: {e}")))?;
    let mut shards: Vec<String> = parsed.weight_map.into_values().collect();
    shards.sort();
    shards.dedup();
    for shard in &shards {
        check_repo_file(shard).map_err(|why| {
            Error::bad_input(index, format!("unusable shard name {shard:?}: {why}"))
        })?;
    }
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn selection_prefers_safetensors_and_takes_tokenizers() {
        let all = names(&[
            "config.json",
            "pytorch_model.bin",
            "model.safetensors",
            "source.spm",
            "target.spm",
            "vocab.json",
            "README.md",
            "tf_model.h5",
        ]);
        let want = names(&[
            "config.json",
            "model.safetensors",
            "source.spm",
            "target.spm",
            "vocab.json",
        ]);
        assert_eq!(select_files("m", &all, None).unwrap(), want);
        let t5 = names(&["config.json", "pytorch_model.bin", "spiece.model"]);
        assert_eq!(select_files("m", &t5, None).unwrap(), t5);
        let sharded = names(&[
            "config.json",
            "model.safetensors.index.json",
            "model-00001-of-00002.safetensors",
        ]);
        let want = names(&["config.json", "model.safetensors.index.json"]);
        assert_eq!(select_files("m", &sharded, None).unwrap(), want);
    }

    #[test]
    fn selection_of_gguf_and_failures() {
        let three = names(&["a-Q8_0.gguf", "a-Q4_K_M.gguf", "README.md"]);
        assert_eq!(
            select_files("m", &three, None).unwrap(),
            names(&["a-Q4_K_M.gguf"])
        );
        assert_eq!(
            select_files("m", &three, Some("Q8_0")).unwrap(),
            names(&["a-Q8_0.gguf"])
        );
        let two = names(&["a-Q8_0.gguf", "a-Q6_K.gguf"]);
        let err = select_files("m", &two, None).unwrap_err().to_string();
        assert!(
            err.contains("a-Q8_0.gguf") && err.contains("a-Q6_K.gguf"),
            "{err}"
        );
        // A lone file of another quant is not taken silently when one was asked for.
        let lone = names(&["a-Q8_0.gguf"]);
        assert_eq!(select_files("m", &lone, None).unwrap(), lone);
        let err = select_files("m", &lone, Some("Q4_K_M"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Q4_K_M") && err.contains("a-Q8_0.gguf"),
            "{err}"
        );
        let err = select_files("m", &names(&["README.md"]), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.json"), "{err}");
        let err = select_files("m", &names(&["config.json", "tf_model.h5"]), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no weights"), "{err}");
    }
}
