//! The output folder: where it may be, who may write into it, atomic writes, and
//! clearing what a killed run left behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use super::Shard;
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
/// place: a reader (or a later run) sees the old file or the whole new one. The file gets
/// the permissions any tool's new file gets (0666 less the umask), not the temporary
/// file's private 0600; a symbolic link at `path` is replaced, never followed.
pub fn write_atomic(
    path: &Path,
    content: &[u8],
    prefix: &str,
    durability: Durability,
) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Passed to open(2), which takes the umask off as for any new file.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(content)
        .and_then(|()| match durability {
            Durability::Synced => tmp.as_file().sync_all(),
            Durability::Cached => Ok(()),
        })
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    if durability == Durability::Synced {
        // The rename lives in the folder: until the folder is synced, a power cut can
        // bring back the old file (or none).
        sync_dir(dir)?;
    }
    Ok(())
}

/// Flushes a folder's entries (new names, renames) to disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Refuses to write `rel` under `out` when a folder on the way is a symbolic link: a link
/// planted in the output folder must not send outputs elsewhere. Folders not there yet
/// are fine (they are created as real folders).
pub fn check_no_links(out: &Path, rel: &Path) -> Result<()> {
    let mut at = out.to_path_buf();
    let parent = rel.parent().unwrap_or(Path::new(""));
    for part in parent.components() {
        let Component::Normal(name) = part else {
            return Err(Error::bad_input(
                out.join(rel),
                "output path leaves the output folder",
            ));
        };
        at.push(name);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Err(link_refused(&at)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&at, e)),
        }
    }
    Ok(())
}

/// The error for a symbolic link found where svodka writes.
pub fn link_refused(path: &Path) -> Error {
    Error::bad_input(
        path,
        "is a symbolic link inside the output folder; svodka does not write through links \
         there (remove it or choose another --out)",
    )
}

/// Opens `path` for appending, creating it, refusing a symbolic link at `path`.
pub fn open_append_nofollow(path: &Path) -> Result<File> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(link_refused(path));
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// Name of the lock file every run into a folder takes.
pub const LOCK: &str = ".svodka.lock";

/// The locks a run holds on its output folder, released when dropped (or when the
/// process dies, however it dies: they are flock(2) locks, not files that must be
/// cleaned up).
#[derive(Debug)]
pub struct OutLock {
    _files: Vec<File>,
}

/// Locks the output folder `out` for one run: a whole run (or a merge) holds
/// [`LOCK`] alone; shards share it, each holding its own shard's lock alone, since
/// shards of one corpus write into one folder by design. A second run into the same
/// folder is refused with one line saying so.
// `File::try_lock` is stable since Rust 1.89: building svodka with an older toolchain
// than that needs this lock rewritten (flock through libc); tracked in the closing note.
#[allow(clippy::incompatible_msrv)]
pub fn lock_out(out: &Path, shard: Option<Shard>) -> Result<OutLock> {
    let main = open_append_nofollow(&out.join(LOCK))?;
    let busy = |who: &str| {
        Error::bad_input(
            out,
            format!(
                "{who} is already writing into this folder (it holds {LOCK}); wait for it \
                 to finish or choose another --out"
            ),
        )
    };
    let locked = |r: std::result::Result<(), TryLockError>, path: &Path, who: &str| match r {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(busy(who)),
        Err(TryLockError::Error(e)) => Err(Error::io(path, e)),
    };
    match shard {
        None => {
            locked(main.try_lock(), &out.join(LOCK), "another svodka run")?;
            Ok(OutLock { _files: vec![main] })
        }
        Some(Shard { index, count }) => {
            locked(
                main.try_lock_shared(),
                &out.join(LOCK),
                "an unsharded svodka run",
            )?;
            let name = format!(".svodka-shard-{index}-of-{count}.lock");
            let own = open_append_nofollow(&out.join(&name))?;
            locked(
                own.try_lock(),
                &out.join(&name),
                &format!("another svodka run of shard {index}/{count}"),
            )?;
            Ok(OutLock {
                _files: vec![main, own],
            })
        }
    }
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
