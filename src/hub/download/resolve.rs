//! A model spec → files on disk: a registry alias (its local copies first, then the
//! Hub), an existing folder or file, or a Hub id `owner/name[@revision]`.

use std::path::Path;

use super::cache::{verify_sha256, STAMP_DIR};
use super::fetcher::{Fetcher, Target, WantedFiles};
use super::local::{local_dir, local_file};
use super::{FetchOptions, ModelFiles};
use crate::hub::registry::{is_repo_id, ModelEntry, Registry};
use crate::hub::validate::check_revision;
use crate::{Error, Result};

/// Resolves `spec` (alias, `owner/name[@revision]`, folder, or file) into files on
/// disk, downloading what the cache lacks unless offline.
pub fn resolve(spec: &str, registry: &Registry, opts: &FetchOptions) -> Result<ModelFiles> {
    let spec = spec.trim();
    if let Some(entry) = registry.get(spec) {
        return resolve_entry(spec, entry, opts);
    }
    let path = Path::new(spec);
    if path.is_dir() {
        return local_dir(spec, path);
    }
    if path.is_file() {
        return local_file(spec, path);
    }
    let looks_like_file = [".gguf", ".safetensors", ".bin"]
        .iter()
        .any(|ext| spec.ends_with(ext));
    if let Some((repo, revision)) = parse_hub_id(spec).filter(|_| !looks_like_file) {
        check_revision(revision).map_err(|why| {
            Error::Model(format!(
                "model {spec}: `{revision}` is not a branch, tag or commit: {why}"
            ))
        })?;
        let target = Target {
            name: spec.to_string(),
            repo: repo.to_string(),
            revision: revision.to_string(),
        };
        return Fetcher::new(target, opts)?.fetch(WantedFiles::Discover(None), None);
    }
    if looks_like_file || spec.starts_with('.') || spec.starts_with('/') || spec.starts_with('~') {
        return Err(Error::Model(format!(
            "model {spec}: no such file or directory"
        )));
    }
    Err(Error::Model(format!(
        "unknown model `{spec}`: not in the registry (see `svodka models list`), not an existing \
         path, and not a Hub id of the form owner/name[@revision]"
    )))
}

fn resolve_entry(name: &str, entry: &ModelEntry, opts: &FetchOptions) -> Result<ModelFiles> {
    if let Some(found) = resolve_local_candidates(name, entry, opts)? {
        return Ok(found);
    }
    let Some(repo) = &entry.repo else {
        return Err(Error::Model(format!(
            "model {name}: none of its local paths exists ({}){}",
            entry.local.join(", "),
            entry
                .note
                .as_ref()
                .map(|n| format!("; {n}"))
                .unwrap_or_default()
        )));
    };
    let target = Target {
        name: name.to_string(),
        repo: repo.clone(),
        revision: entry.revision.clone(),
    };
    let wanted = if entry.discover || entry.files.is_empty() {
        WantedFiles::Discover(entry.quant.clone())
    } else {
        WantedFiles::Listed(
            entry
                .files
                .iter()
                .map(|f| (f.name.clone(), f.sha256.clone(), f.size))
                .collect(),
        )
    };
    let mut files = Fetcher::new(target, opts)?.fetch(wanted, entry.note.as_deref())?;
    files.architecture = Some(entry.architecture);
    Ok(files)
}

fn resolve_local_candidates(
    name: &str,
    entry: &ModelEntry,
    opts: &FetchOptions,
) -> Result<Option<ModelFiles>> {
    for candidate in entry.local_paths() {
        let path = candidate.as_path();
        if !path.exists() {
            continue;
        }
        let mut files = if path.is_dir() {
            local_dir(name, path)?
        } else {
            local_file(name, path)?
        };
        if let (Some(expected), true) = (&entry.local_sha256, path.is_file()) {
            let expected = expected.to_ascii_lowercase();
            // Stamps for local copies live in the cache, keyed by the file's full path.
            let stamp = opts.cache_root().ok().and_then(|root| {
                let full = std::fs::canonicalize(path).ok()?;
                let key = crate::util::sha256_hex(full.to_string_lossy().as_bytes());
                Some(root.join(STAMP_DIR).join(format!("local-{}", &key[..32])))
            });
            if let Some(actual) = verify_sha256(path, &expected, stamp)? {
                return Err(Error::Model(format!(
                    "model {name}: {} is corrupt (sha256 {actual}, expected {expected}); delete it and \
                     fetch it again",
                    path.display()
                )));
            }
        }
        files.architecture = Some(entry.architecture);
        return Ok(Some(files));
    }
    Ok(None)
}

/// `owner/name` or `owner/name@revision`.
fn parse_hub_id(spec: &str) -> Option<(&str, &str)> {
    let (repo, revision) = match spec.split_once('@') {
        Some((r, rev)) if !rev.is_empty() => (r, rev),
        Some(_) => return None,
        None => (spec, "main"),
    };
    is_repo_id(repo).then_some((repo, revision))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::download::cache::sha256_file;

    #[test]
    fn hub_ids_parse_with_and_without_revision() {
        assert_eq!(parse_hub_id("a/b"), Some(("a/b", "main")));
        assert_eq!(parse_hub_id("a/b@v1.0"), Some(("a/b", "v1.0")));
        assert_eq!(parse_hub_id("a/b@"), None);
        assert_eq!(parse_hub_id("a"), None);
        assert_eq!(parse_hub_id("./a/b"), None);
    }

    #[test]
    fn unknown_specs_explain_themselves() {
        let r = Registry::default();
        let o = FetchOptions {
            offline: true,
            ..Default::default()
        };
        let err = resolve("nonsense", &r, &o).unwrap_err().to_string();
        assert!(err.contains("not in the registry"), "{err}");
        let err = resolve("/no/such/model.gguf", &r, &o)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such file"), "{err}");
    }

    #[test]
    fn registry_entry_prefers_an_existing_local_copy_and_checks_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tiny.gguf");
        std::fs::write(&file, b"GGUF tiny").unwrap();
        let sha = sha256_file(&file).unwrap();
        let mut r = Registry::default();
        let text = format!(
            "[models.t]\nrepo = \"o/t\"\narchitecture = \"gguf-llm\"\nlocal = [\"{}\"]\nlocal_sha256 = \"{sha}\"\nfiles = [{{ name = \"tiny.gguf\", role = \"weights\" }}]\n",
            file.display()
        );
        r.merge_str(&text, Path::new("r.toml")).unwrap();
        let o = FetchOptions {
            offline: true,
            cache_dir: Some(dir.path().join("cache")),
            ..Default::default()
        };
        let got = resolve("t", &r, &o).unwrap();
        assert_eq!(got.gguf(), Some(file.as_path()));
        std::fs::write(&file, b"GGUF tampered").unwrap();
        let err = resolve("t", &r, &o).unwrap_err().to_string();
        assert!(err.contains("corrupt"), "{err}");
    }
}
