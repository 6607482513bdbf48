//! Checks on every name that becomes a path in the cache: revisions (from the user or a
//! registry), and the file names, ETags and commits a Hub server sends. A value that
//! fails is refused before any file is opened, so nothing a server or a spec says can
//! reach outside the repository's cache folder.

/// True for a full commit id: 40 hex digits.
pub fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks a revision (branch, tag or commit) by git's `check-ref-format` rules, which
/// the Hub applies to its branch and tag names; `Err` says what is wrong.
pub fn check_revision(rev: &str) -> Result<(), String> {
    if is_commit(rev) {
        return Ok(());
    }
    if rev.is_empty() {
        return Err("it is empty".into());
    }
    // Longer than any file name a file system allows as one component.
    if rev.len() > 255 {
        return Err("it is longer than 255 bytes".into());
    }
    if rev == "@" {
        return Err("`@` alone is not a ref".into());
    }
    if let Some(c) = rev
        .chars()
        .find(|c| c.is_ascii_control() || " ~^:?*[\\".contains(*c))
    {
        return Err(format!("it contains {c:?}"));
    }
    if rev.contains("..") || rev.contains("@{") {
        return Err("it contains `..` or `@{`".into());
    }
    if rev.ends_with('.') {
        return Err("it ends with `.`".into());
    }
    for part in rev.split('/') {
        if part.is_empty() {
            return Err(
                "it has an empty path component (a leading, trailing or double `/`)".into(),
            );
        }
        if part.starts_with('.') || part.ends_with(".lock") {
            return Err(format!(
                "its component `{part}` starts with `.` or ends with `.lock`"
            ));
        }
    }
    Ok(())
}

/// Checks a file name inside a repository by the Hub's rules: relative, `/`-separated,
/// no empty, `.` or `..` component, no backslash or control character.
pub fn check_repo_file(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > 4096 {
        return Err("it is longer than 4096 bytes".into());
    }
    if let Some(c) = name.chars().find(|c| c.is_control() || *c == '\\') {
        return Err(format!("it contains {c:?}"));
    }
    // `C:x` is relative to a drive's current folder on Windows, not to the snapshot.
    if name.as_bytes().get(1) == Some(&b':') {
        return Err("it names a drive".into());
    }
    for part in name.split('/') {
        match part {
            "" => return Err("it is absolute or has an empty path component".into()),
            "." | ".." => return Err(format!("it has a `{part}` component")),
            _ => {}
        }
    }
    Ok(())
}

/// The blob name an ETag stands for: the content's git SHA-1 (40 hex digits) or, for
/// LFS files, its SHA-256 (64), without quotes or a weak `W/` mark; lowercased.
pub fn etag_blob_name(etag: &str) -> Option<String> {
    let e = etag.trim();
    let e = e.strip_prefix("W/").unwrap_or(e).trim_matches('"');
    let ok = (e.len() == 40 || e.len() == 64) && e.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| e.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_follow_git_ref_rules() {
        for good in [
            "main",
            "v1.0",
            "refs/pr/1",
            "release-2024_10",
            "0123456789abcdef0123456789abcdef01234567",
        ] {
            assert_eq!(check_revision(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "../x",
            "../../etc/passwd",
            "a/../b",
            "a..b",
            "/abs",
            "trailing/",
            "a//b",
            ".hidden",
            "a/.b",
            "x.lock",
            "ends.",
            "with space",
            "back\\slash",
            "ctl\u{1}",
            "a@{1}",
            "@",
            "c:x",
            "star*",
            "q?",
            "br[ace",
            "t~1",
            "c^2",
        ] {
            assert!(check_revision(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_revision(&"a".repeat(256)).is_err());
    }

    #[test]
    fn file_names_stay_inside_the_snapshot() {
        for good in [
            "config.json",
            "onnx/model.onnx",
            "a b.txt",
            "..foo",
            "über.json",
        ] {
            assert_eq!(check_repo_file(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            ".",
            "a//b",
            "dir/",
            "a\\b",
            "..\\x",
            "C:x",
            "nul\0",
            "new\nline",
        ] {
            assert!(check_repo_file(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn etags_are_hashes_or_nothing() {
        let sha1 = "0123456789abcdef0123456789abcdef01234567";
        let sha256 = "a".repeat(64);
        assert_eq!(etag_blob_name(&format!("\"{sha1}\"")), Some(sha1.into()));
        assert_eq!(etag_blob_name(&format!("W/\"{sha1}\"")), Some(sha1.into()));
        assert_eq!(
            etag_blob_name(&format!("\"{}\"", sha256.to_uppercase())),
            Some(sha256.clone())
        );
        for bad in [
            "\"../../x\"",
            "\"cdn-etag\"",
            "",
            "\"\"",
            "\"0123\"",
            "\"../0123456789abcdef0123456789abcdef0123\"",
        ] {
            assert_eq!(etag_blob_name(bad), None, "{bad:?} accepted");
        }
    }
}
