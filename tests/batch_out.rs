//! `svodka batch` and its output folder: one run at a time, no manifest growth on no-op
//! re-runs, the umask honoured, and no writing through symbolic links planted there.

#![cfg(unix)]

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

fn svodka() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_svodka"));
    cmd.stdin(Stdio::null());
    cmd
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Three small articles under `dir/in` (one in a subfolder).
fn corpus(dir: &Path) -> std::path::PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    for (name, body) in [
        (
            "a.txt",
            "Prices rose again in March. Shops raised them by ten percent.",
        ),
        (
            "b.txt",
            "The river flooded the town. Nobody was hurt, officials said.",
        ),
        (
            "sub/c.txt",
            "A new bridge opened on Monday. It took three years to build.",
        ),
    ] {
        std::fs::write(input.join(name), format!("Headline\n\n{body}\n")).unwrap();
    }
    input
}

fn batch(input: &Path, out: &Path) -> Output {
    svodka()
        .args(["batch", s(input), "--out", s(out)])
        .output()
        .unwrap()
}

#[test]
fn a_second_run_into_the_same_folder_is_refused_while_the_first_holds_it() {
    let tmp = TempDir::new().unwrap();
    let input = corpus(tmp.path());
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // Stands for a run in progress: the lock every run takes, held by this process.
    let held = File::create(out.join(".svodka.lock")).unwrap();
    held.lock().unwrap();
    let o = batch(&input, &out);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("already writing into this folder"), "{err}");
    assert!(!out.join("manifest.jsonl").exists());
    // A shard cannot slip in beside a whole run either.
    let o = svodka()
        .args(["batch", s(&input), "--out", s(&out), "--shard", "0/2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    drop(held);
    let o = batch(&input, &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn shards_share_the_folder_but_not_their_own_lock() {
    let tmp = TempDir::new().unwrap();
    let input = corpus(tmp.path());
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let other_shard = File::create(out.join(".svodka.lock")).unwrap();
    other_shard.lock_shared().unwrap();
    let o = svodka()
        .args(["batch", s(&input), "--out", s(&out), "--shard", "1/2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let same_shard = File::create(out.join(".svodka-shard-1-of-2.lock")).unwrap();
    same_shard.lock().unwrap();
    let o = svodka()
        .args(["batch", s(&input), "--out", s(&out), "--shard", "1/2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("shard 1/2"), "{}", stderr(&o));
}

#[test]
fn a_no_op_rerun_adds_no_manifest_lines_and_counts_skips_once() {
    let tmp = TempDir::new().unwrap();
    let input = corpus(tmp.path());
    let out = tmp.path().join("out");
    assert!(batch(&input, &out).status.success());
    let manifest = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    assert_eq!(manifest.lines().count(), 3);
    for _ in 0..2 {
        let o = batch(&input, &out);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("0 done, 3 skipped, 0 failed"),
            "{}",
            stderr(&o)
        );
        assert_eq!(
            std::fs::read_to_string(out.join("manifest.jsonl")).unwrap(),
            manifest
        );
    }
    // Resuming still works from the lines of the first run: a changed input is redone.
    std::fs::write(
        input.join("a.txt"),
        "Other\n\nSomething else happened today.\n",
    )
    .unwrap();
    let o = batch(&input, &out);
    assert!(stderr(&o).contains("1 done, 2 skipped"), "{}", stderr(&o));
}

/// Runs `svodka batch` under `umask`.
fn batch_with_umask(umask: &str, input: &Path, out: &Path) -> Output {
    Command::new("sh")
        .args([
            "-c",
            &format!("umask {umask} && exec \"$0\" batch \"$1\" --out \"$2\" --digest"),
            env!("CARGO_BIN_EXE_svodka"),
            s(input),
            s(out),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn outputs_get_the_permissions_the_umask_gives() {
    let tmp = TempDir::new().unwrap();
    let input = corpus(tmp.path());
    for (umask, want) in [("022", 0o644), ("077", 0o600), ("002", 0o664)] {
        let out = tmp.path().join(format!("out{umask}"));
        let o = batch_with_umask(umask, &input, &out);
        assert!(o.status.success(), "{}", stderr(&o));
        for f in [
            "a.summary.txt",
            "sub/c.summary.txt",
            "digest.md",
            "manifest.jsonl",
        ] {
            assert_eq!(mode(&out.join(f)), want, "umask {umask}: {f}");
        }
    }
}

#[test]
fn symbolic_links_planted_in_the_output_folder_are_not_followed() {
    let tmp = TempDir::new().unwrap();
    let input = corpus(tmp.path());
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let victim = outside.join("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();

    // The manifest: the run is refused before any work, the file outside untouched.
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("manifest.jsonl")).unwrap();
    let o = batch(&input, &out);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("manifest.jsonl") && err.contains("symbolic link"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(!out.join("a.summary.txt").exists());

    // A subfolder: its documents fail, naming the link; nothing lands outside.
    let out = tmp.path().join("out2");
    std::fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("sub")).unwrap();
    let o = batch(&input, &out);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("sub/c.txt") && err.contains("symbolic link"),
        "{err}"
    );
    assert!(out.join("a.summary.txt").is_file());
    let names: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    assert_eq!(names.len(), 1, "only victim.txt outside: {names:?}");
}
