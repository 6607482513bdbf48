//! Finding the documents of a folder: a sorted, stable list of sources, the problems met
//! on the way, and the share of one shard.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use sha2::{Digest, Sha256};
use walkdir::WalkDir;

use crate::{Error, Result};

/// File extensions svodka reads, lower case.
pub const EXTENSIONS: &[&str] = &["txt", "md", "html", "htm", "json", "jsonl"];

/// How a source file holds its documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// One article per file (txt, md, html, htm).
    Article,
    /// A JSON array of records (or one record), each with a text field.
    Json,
    /// One JSON record per line, each with a text field.
    JsonLines,
}

/// A file found under the input folder, or a problem found in its place.
#[derive(Debug, Clone)]
pub struct Source {
    /// Path relative to the input folder, `/`-separated: the name in the manifest.
    pub rel: String,
    /// Path to open.
    pub path: PathBuf,
    /// How it holds documents.
    pub kind: SourceKind,
    /// File name of outputs without the task suffix, relative to the output folder
    /// (`sub/a` for `sub/a.txt`; the full name `sub/a.txt` when a sibling shares the stem).
    pub out_base: String,
    /// Why this entry cannot be read (a broken link, a loop, a link out of the tree).
    pub problem: Option<String>,
}

/// What to look for.
#[derive(Debug, Clone, Default)]
pub struct DiscoverOptions {
    /// Globs a file's relative path must match (any of them); empty means all.
    pub include: Vec<String>,
    /// Globs that exclude a file or a whole folder by its relative path.
    pub exclude: Vec<String>,
    /// A listing of paths relative to the root (`-`: standard input) that replaces the
    /// walk: made once, handed to every shard.
    pub files_from: Option<PathBuf>,
}

/// Largest listing read by `--files-from` (millions of paths).
pub const MAX_LISTING: u64 = 256 << 20;

/// The result of a walk.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Sources (and problems) sorted by relative path.
    pub sources: Vec<Source>,
    /// Files passed over: other extensions, hidden, or filtered by the globs.
    pub ignored: usize,
}

/// A share of the corpus: shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This process's shard, `0..count`.
    pub index: u32,
    /// How many shards split the corpus.
    pub count: u32,
}

impl Shard {
    /// Parses `I/N`.
    pub fn parse(s: &str) -> Result<Shard> {
        let bad = || Error::Unsupported(format!("--shard {s:?}: expected I/N with 0 <= I < N"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether the source (or record, `file.jsonl#N`) named `rel` belongs to this shard. A hash of the name (not of
    /// the content, not the std hasher) keeps the split stable across machines and runs.
    pub fn owns(&self, rel: &str) -> bool {
        let digest = Sha256::digest(rel.as_bytes());
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(head) % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

fn globset(patterns: &[String], flag: &str) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p)
            .map_err(|e| Error::Unsupported(format!("{flag} {p:?}: not a valid glob: {e}")))?;
        builder.add(glob);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| Error::Unsupported(format!("{flag}: {e}")))
}

/// The kind of source a file name says, if svodka reads it.
pub fn source_kind(path: &Path) -> Option<SourceKind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "json" => Some(SourceKind::Json),
        "jsonl" => Some(SourceKind::JsonLines),
        e if EXTENSIONS.contains(&e) => Some(SourceKind::Article),
        _ => None,
    }
}

fn rel_string(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

impl Source {
    /// Whether the source holds records that shards share out one by one (a JSON or
    /// JSONL file that could be opened), rather than belonging to one shard whole.
    pub fn shared_by_record(&self) -> bool {
        self.kind != SourceKind::Article && self.problem.is_none()
    }
}

/// Walks `root` (which must be canonical) and lists what to process, sorted by
/// relative path, or takes the list from `opts.files_from`. Symbolic links are followed
/// only while they stay inside `root`; links out of the tree, broken links and loops
/// come back as problems.
pub fn discover(root: &Path, opts: &DiscoverOptions) -> Result<Discovery> {
    let include = globset(&opts.include, "--include")?;
    let exclude = globset(&opts.exclude, "--exclude")?;
    if let Some(list) = &opts.files_from {
        let text = read_listing(list)?;
        return Ok(listed(root, &text, include.as_ref(), exclude.as_ref()));
    }
    let mut found = Discovery::default();
    let mut escaped: Vec<(String, PathBuf)> = Vec::new();
    let mut pruned_files = 0;
    let walker = WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            if e.depth() == 0 {
                return true;
            }
            let rel = rel_string(e.path().strip_prefix(root).unwrap_or(e.path()));
            if is_hidden(e.file_name()) || exclude.as_ref().is_some_and(|x| x.is_match(&rel)) {
                // Files count as ignored; a pruned folder's contents are not walked.
                pruned_files += usize::from(e.file_type().is_file());
                return false;
            }
            if e.path_is_symlink() {
                // Canonicalize so that `a -> ../../etc` is caught however it is spelled.
                match std::fs::canonicalize(e.path()) {
                    Ok(target) if !target.starts_with(root) => {
                        escaped.push((rel, target));
                        return false;
                    }
                    _ => {}
                }
            }
            true
        });
    let mut sources = Vec::new();
    for entry in walker {
        match entry {
            Ok(e) if e.file_type().is_dir() => {}
            Ok(e) => {
                let rel_path = e.path().strip_prefix(root).unwrap_or(e.path());
                let rel = rel_string(rel_path);
                let wanted = include.as_ref().is_none_or(|inc| inc.is_match(&rel));
                match source_kind(e.path()).filter(|_| wanted && e.file_type().is_file()) {
                    Some(kind) => sources.push(Source {
                        rel,
                        path: e.path().to_path_buf(),
                        kind,
                        out_base: String::new(),
                        problem: None,
                    }),
                    None => found.ignored += 1,
                }
            }
            Err(err) => {
                let path = err.path().map(Path::to_path_buf).unwrap_or_default();
                let rel = rel_string(path.strip_prefix(root).unwrap_or(&path));
                let reason = if err.loop_ancestor().is_some() {
                    "symbolic link loop, not followed".to_string()
                } else if path.is_symlink() && !path.exists() {
                    "broken symbolic link".to_string()
                } else {
                    match err.io_error() {
                        Some(io) => format!("cannot be read: {io}"),
                        None => err.to_string(),
                    }
                };
                sources.push(problem(rel, path, reason));
            }
        }
    }
    found.ignored += pruned_files;
    for (rel, target) in escaped {
        let reason = format!(
            "symbolic link to {} leads out of the input folder, not followed",
            target.display()
        );
        sources.push(problem(rel.clone(), root.join(&rel), reason));
    }
    sources.sort_by(|a, b| a.rel.cmp(&b.rel));
    assign_out_bases(&mut sources);
    found.sources = sources;
    Ok(found)
}

/// Reads a `--files-from` listing (at most [`MAX_LISTING`] bytes of UTF-8).
fn read_listing(list: &Path) -> Result<String> {
    use std::io::Read;
    let from_stdin = list.as_os_str() == "-";
    let shown = if from_stdin {
        Path::new("<stdin>")
    } else {
        list
    };
    let mut bytes = Vec::new();
    let read = if from_stdin {
        std::io::stdin()
            .lock()
            .take(MAX_LISTING + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(list).and_then(|f| f.take(MAX_LISTING + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| Error::io(shown, e))?;
    if bytes.len() as u64 > MAX_LISTING {
        return Err(Error::bad_input(
            shown,
            format!("the listing is over {} MiB", MAX_LISTING >> 20),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|e| Error::bad_input(shown, format!("the listing is not UTF-8: {e}")))
}

/// The sources a listing names, one path relative to `root` per line (blank lines
/// passed over, duplicates taken once). A path that climbs out of the root, is absolute,
/// is missing or leads out through a link is a problem of its own; other extensions and
/// paths the globs leave out are ignored, as in a walk.
fn listed(
    root: &Path,
    text: &str,
    include: Option<&GlobSet>,
    exclude: Option<&GlobSet>,
) -> Discovery {
    let mut found = Discovery::default();
    let mut seen = std::collections::HashSet::new();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let given = Path::new(line);
        let parts: Vec<_> = given
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        let outside = parts
            .iter()
            .any(|c| !matches!(c, std::path::Component::Normal(_)));
        let rel = if outside {
            line.to_string()
        } else {
            rel_string(&parts.iter().collect::<PathBuf>())
        };
        if rel.is_empty() || !seen.insert(rel.clone()) {
            continue;
        }
        let path = root.join(&rel);
        if outside {
            let reason = "listed path is absolute or climbs out of the input folder".into();
            found.sources.push(problem(rel, path, reason));
            continue;
        }
        let filtered = include.is_some_and(|inc| !inc.is_match(&rel))
            || exclude.is_some_and(|exc| exc.is_match(&rel));
        if filtered || source_kind(&path).is_none() {
            found.ignored += 1;
            continue;
        }
        let reason = match std::fs::canonicalize(&path) {
            Err(e) => Some(format!("listed, but cannot be read: {e}")),
            Ok(target) if !target.starts_with(root) => Some(format!(
                "symbolic link to {} leads out of the input folder, not followed",
                target.display()
            )),
            Ok(target) if !target.is_file() => Some("listed, but not a file".into()),
            Ok(_) => None,
        };
        match reason {
            Some(reason) => found.sources.push(problem(rel, path, reason)),
            None => found.sources.push(Source {
                kind: source_kind(&path).unwrap_or(SourceKind::Article),
                rel,
                path,
                out_base: String::new(),
                problem: None,
            }),
        }
    }
    found.sources.sort_by(|a, b| a.rel.cmp(&b.rel));
    assign_out_bases(&mut found.sources);
    found
}

fn problem(rel: String, path: PathBuf, reason: String) -> Source {
    Source {
        kind: source_kind(&path).unwrap_or(SourceKind::Article),
        out_base: rel.clone(),
        rel,
        path,
        problem: Some(reason),
    }
}

/// Output names drop the input extension (`a.txt` → `a.summary.md`) unless two sources
/// in one folder share a stem (`a.txt`, `a.md`): then both keep their full name.
fn assign_out_bases(sources: &mut [Source]) {
    let stem_of = |rel: &str| match rel.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() && !stem.ends_with('/') => stem.to_string(),
        _ => rel.to_string(),
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for s in sources.iter() {
        *seen.entry(stem_of(&s.rel)).or_default() += 1;
    }
    for s in sources.iter_mut() {
        let stem = stem_of(&s.rel);
        s.out_base = if seen.get(&stem).copied().unwrap_or(0) > 1 {
            s.rel.clone()
        } else {
            stem
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "x").unwrap();
    }

    fn rels(d: &Discovery) -> Vec<&str> {
        d.sources.iter().map(|s| s.rel.as_str()).collect()
    }

    #[test]
    fn finds_known_extensions_sorted_and_skips_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for f in [
            "b.txt",
            "a/z.md",
            "a/y.HTML",
            "c.pdf",
            ".hidden.txt",
            "d.jsonl",
        ] {
            touch(&root, f);
        }
        let d = discover(&root, &DiscoverOptions::default()).unwrap();
        assert_eq!(rels(&d), ["a/y.HTML", "a/z.md", "b.txt", "d.jsonl"]);
        assert_eq!(d.ignored, 2);
        assert_eq!(d.sources[3].kind, SourceKind::JsonLines);
        assert_eq!(d.sources[0].out_base, "a/y");
    }

    #[test]
    fn include_and_exclude_globs() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for f in ["keep/a.txt", "keep/b.md", "drafts/c.txt"] {
            touch(&root, f);
        }
        let opts = DiscoverOptions {
            include: vec!["*.txt".into()],
            exclude: vec!["drafts".into()],
            ..Default::default()
        };
        let d = discover(&root, &opts).unwrap();
        assert_eq!(rels(&d), ["keep/a.txt"]);
        let bad = DiscoverOptions {
            include: vec!["a[".into()],
            ..Default::default()
        };
        assert!(discover(&root, &bad).is_err());
    }

    #[test]
    fn shared_stems_keep_full_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for f in ["a.txt", "a.md", "b.txt"] {
            touch(&root, f);
        }
        let d = discover(&root, &DiscoverOptions::default()).unwrap();
        let bases: Vec<&str> = d.sources.iter().map(|s| s.out_base.as_str()).collect();
        assert_eq!(bases, ["a.md", "a.txt", "b"]);
    }

    #[cfg(unix)]
    #[test]
    fn links_out_of_tree_broken_and_looping_are_problems() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        touch(outside.path(), "secret.txt");
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        touch(&root, "sub/a.txt");
        symlink(outside.path(), root.join("out-link")).unwrap();
        symlink(root.join("nowhere.txt"), root.join("broken.txt")).unwrap();
        symlink(&root, root.join("sub/loop")).unwrap();
        symlink(root.join("sub/a.txt"), root.join("inside.txt")).unwrap();
        let d = discover(&root, &DiscoverOptions::default()).unwrap();
        let problems: Vec<(&str, &str)> = d
            .sources
            .iter()
            .filter_map(|s| s.problem.as_deref().map(|p| (s.rel.as_str(), p)))
            .collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].0 == "broken.txt" && problems[0].1.contains("broken"));
        assert!(problems[1].0 == "out-link" && problems[1].1.contains("out of the input"));
        assert!(problems[2].0 == "sub/loop" && problems[2].1.contains("loop"));
        let ok: Vec<&str> = d
            .sources
            .iter()
            .filter(|s| s.problem.is_none())
            .map(|s| s.rel.as_str())
            .collect();
        assert_eq!(ok, ["inside.txt", "sub/a.txt"]);
    }

    #[test]
    fn a_listing_replaces_the_walk() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for f in ["a.txt", "sub/b.md", "sub/c.txt", "d.pdf", "unlisted.txt"] {
            touch(&root, f);
        }
        let list =
            "sub/c.txt\n./sub/b.md\n\na.txt\r\na.txt\n../x.txt\n/etc/passwd\nmissing.txt\nd.pdf\n";
        let exclude = globset(&["sub/b.md".into()], "--exclude").unwrap();
        let d = listed(&root, list, None, exclude.as_ref());
        let found: Vec<(&str, bool)> = d
            .sources
            .iter()
            .map(|s| (s.rel.as_str(), s.problem.is_none()))
            .collect();
        assert_eq!(
            found,
            [
                ("../x.txt", false),
                ("/etc/passwd", false),
                ("a.txt", true),
                ("missing.txt", false),
                ("sub/c.txt", true)
            ]
        );
        assert_eq!(d.ignored, 2);
        assert_eq!(d.sources[4].out_base, "sub/c");
    }

    #[test]
    fn shards_split_names_exactly_once() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        let mut sizes = [0usize; 3];
        for n in 0..300 {
            let name = format!("dir/{n}.txt");
            let owners: Vec<usize> = (0..3).filter(|&i| shards[i].owns(&name)).collect();
            assert_eq!(owners.len(), 1);
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|&s| s > 60), "{sizes:?}");
        assert_eq!(Shard::parse("1/3").unwrap(), shards[1]);
        for bad in ["3/3", "1", "a/3", "0/0"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}
