//! The output folder: where it may be, atomic writes, and clearing what a killed run
//! left behind.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

/// Every temporary file svodka writes starts with this, so a later run can find them.
pub const TEMP_PREFIX: &str = ".svodka-tmp-";

/// `path` made absolute with symbolic links resolved, also when its tail does not exist
/// yet (the longest existing ancestor is canonicalized, the rest appended).
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let absolute = cwd.join(path);
    let parts: Vec<Component> = absolute.components().collect();
    for known in (1..=parts.len()).rev() {
        let head: PathBuf = parts[..known].iter().collect();
        if let Ok(mut base) = std::fs::canonicalize(&head) {
            for part in &parts[known..] {
                match part {
                    Component::ParentDir => {
                        base.pop();
                    }
                    Component::Normal(name) => base.push(name),
                    _ => {}
                }
            }
            return Ok(base);
        }
    }
    Err(Error::io(
        path,
        std::io::Error::new(std::io::ErrorKind::NotFound, "no part of it exists"),
    ))
}

/// Refuses an output folder that is, holds, or sits inside the input folder (both
/// already resolved): outputs must never land on inputs or be read back as inputs.
pub fn check_apart(input: &Path, out: &Path) -> Result<()> {
    let refuse = |why: &str| {
        Err(Error::Unsupported(format!(
            "--out {} {why} the input folder {}; choose an output folder outside it",
            out.display(),
            input.display()
        )))
    };
    if out == input {
        refuse("is")
    } else if out.starts_with(input) {
        refuse("is inside")
    } else if input.starts_with(out) {
        refuse("contains")
    } else {
        Ok(())
    }
}

/// How far a write must be on disk before it counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Synced before the rename: survives a power cut.
    Synced,
    /// Left to the page cache: survives a killed process, not a power cut. For outputs
    /// whose hash the manifest keeps, so that a later run notices a lost one.
    Cached,
}

/// Writes `content` to `path` through a temporary file in the same folder, renamed into
/// place: a reader (or a later run) sees the old file or the whole new one.
pub fn write_atomic(
    path: &Path,
    content: &[u8],
    prefix: &str,
    durability: Durability,
) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(content)
        .and_then(|()| match durability {
            Durability::Synced => tmp.as_file().sync_all(),
            Durability::Cached => Ok(()),
        })
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Removes the temporary files starting with `prefix` under `dir` (a killed run's
/// leftovers); returns how many there were.
pub fn clean_temps(dir: &Path, prefix: &str) -> Result<usize> {
    let mut removed = 0;
    for entry in walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        let is_temp =
            entry.file_type().is_file() && entry.file_name().to_string_lossy().starts_with(prefix);
        if is_temp {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_handles_missing_tails() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let r = resolve(&dir.path().join("a/b/../c")).unwrap();
        assert_eq!(r, base.join("a/c"));
    }

    #[test]
    fn out_must_be_apart_from_input() {
        let i = Path::new("/data/news");
        assert!(check_apart(i, Path::new("/data/news")).is_err());
        assert!(check_apart(i, Path::new("/data/news/out")).is_err());
        assert!(check_apart(i, Path::new("/data")).is_err());
        assert!(check_apart(i, Path::new("/data/news-out")).is_ok());
    }

    #[test]
    fn atomic_write_leaves_no_temp_and_cleaning_finds_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/a.summary.txt");
        write_atomic(&target, b"one", ".svodka-tmp-main-", Durability::Synced).unwrap();
        write_atomic(&target, b"two", ".svodka-tmp-main-", Durability::Cached).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1
        );
        std::fs::write(dir.path().join("sub/.svodka-tmp-main-x1"), "partial").unwrap();
        std::fs::write(dir.path().join("sub/.svodka-tmp-s1of2-x2"), "other").unwrap();
        assert_eq!(clean_temps(dir.path(), ".svodka-tmp-main-").unwrap(), 1);
        assert_eq!(clean_temps(dir.path(), TEMP_PREFIX).unwrap(), 1);
        assert!(target.exists());
    }
}
