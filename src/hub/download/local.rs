//! Models in local folders and single local files: which files they hold, and the
//! architecture their config (or GGUF ending) names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::select::{select_files, shards_of};
use super::ModelFiles;
use crate::hub::registry::{Architecture, FileRole};
use crate::{Error, Result};

pub(super) fn local_dir(name: &str, dir: &Path) -> Result<ModelFiles> {
    let names = list_dir_files(dir);
    let mut selected = select_files(name, &names, None)?;
    let mut files = BTreeMap::new();
    while let Some(file) = selected.pop() {
        let path = dir.join(&file);
        if !path.is_file() {
            return Err(Error::Model(format!(
                "model {name}: {} is missing",
                path.display()
            )));
        }
        if FileRole::infer(&file) == FileRole::WeightsIndex {
            selected.extend(
                shards_of(&path)?
                    .into_iter()
                    .filter(|s| !files.contains_key(s)),
            );
        }
        files.insert(file, path);
    }
    let architecture = infer_architecture(&files);
    Ok(ModelFiles {
        name: name.to_string(),
        repo: None,
        revision: None,
        root: dir.to_path_buf(),
        files,
        architecture,
    })
}

pub(super) fn local_file(name: &str, path: &Path) -> Result<ModelFiles> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::Model(format!("model {name}: {} is not a file", path.display())))?;
    let is_gguf = file_name.ends_with(".gguf");
    if !is_gguf && !file_name.ends_with(".safetensors") {
        return Err(Error::Model(format!(
            "model {name}: a single model file must be .gguf or .safetensors (got {file_name}); \
             pass the folder for other layouts"
        )));
    }
    let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut files = BTreeMap::from([(file_name, path.to_path_buf())]);
    if !is_gguf {
        // Config and tokenizer usually sit beside a bare safetensors file.
        for sibling in list_dir_files(&root) {
            let role = FileRole::infer(&sibling);
            if !matches!(
                role,
                FileRole::Weights | FileRole::WeightsIndex | FileRole::Other
            ) {
                files.insert(sibling.clone(), root.join(&sibling));
            }
        }
    }
    let architecture = infer_architecture(&files);
    Ok(ModelFiles {
        name: name.to_string(),
        repo: None,
        revision: None,
        root,
        files,
        architecture,
    })
}

fn list_dir_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Architecture from `config.json`'s `model_type`, or GGUF for a `.gguf` file.
pub(super) fn infer_architecture(files: &BTreeMap<String, PathBuf>) -> Option<Architecture> {
    if files.keys().any(|n| n.ends_with(".gguf")) {
        return Some(Architecture::GgufLlm);
    }
    #[derive(Deserialize)]
    struct ModelType {
        model_type: Option<String>,
    }
    let text = std::fs::read_to_string(files.get("config.json")?).ok()?;
    let config: ModelType = serde_json::from_str(&text).ok()?;
    match config.model_type?.as_str() {
        "marian" => Some(Architecture::Marian),
        "t5" | "mt5" => Some(Architecture::T5),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::download::{resolve, FetchOptions};
    use crate::hub::registry::Registry;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn local_folder_with_shards_and_single_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("config.json"), r#"{"model_type":"marian"}"#).unwrap();
        std::fs::write(
            d.join("model.safetensors.index.json"),
            r#"{"weight_map":{"a":"model-1.safetensors","b":"model-2.safetensors","c":"model-1.safetensors"}}"#,
        )
        .unwrap();
        std::fs::write(d.join("model-1.safetensors"), b"x").unwrap();
        std::fs::write(d.join("model-2.safetensors"), b"y").unwrap();
        std::fs::write(d.join("vocab.json"), b"{}").unwrap();
        let files = resolve(
            d.to_str().unwrap(),
            &Registry::default(),
            &FetchOptions::default(),
        )
        .unwrap();
        assert_eq!(files.architecture, Some(Architecture::Marian));
        assert_eq!(
            files.files.keys().cloned().collect::<Vec<_>>(),
            names(&[
                "config.json",
                "model-1.safetensors",
                "model-2.safetensors",
                "model.safetensors.index.json",
                "vocab.json"
            ])
        );
        assert_eq!(files.with_role(FileRole::Weights).len(), 2);

        std::fs::remove_file(d.join("model-2.safetensors")).unwrap();
        let err = resolve(
            d.to_str().unwrap(),
            &Registry::default(),
            &FetchOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("model-2.safetensors is missing"), "{err}");

        let single = resolve(
            d.join("model-1.safetensors").to_str().unwrap(),
            &Registry::default(),
            &FetchOptions::default(),
        )
        .unwrap();
        assert!(single.files.contains_key("model-1.safetensors"));
        assert!(single.files.contains_key("config.json"));
        assert!(!single.files.contains_key("model.safetensors.index.json"));

        std::fs::write(d.join("m.gguf"), b"GGUF").unwrap();
        let g = resolve(
            d.join("m.gguf").to_str().unwrap(),
            &Registry::default(),
            &FetchOptions::default(),
        )
        .unwrap();
        assert_eq!(g.architecture, Some(Architecture::GgufLlm));
        assert_eq!(g.gguf(), Some(d.join("m.gguf").as_path()));
    }
}
