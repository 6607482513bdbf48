//! `svodka batch --shard` shares out the records of one big JSONL file one by one, and
//! `--files-from` hands every shard the same listing instead of a walk of the tree.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use tempfile::TempDir;

fn svodka() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_svodka"));
    cmd.env_remove("SVODKA_OFFLINE")
        .env_remove("HF_HUB_OFFLINE");
    cmd
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn article(n: usize) -> String {
    format!(
        "Report number {n}\n\nThe council met for session {n} on Monday. It approved {n} new \
         projects for the city. Critics said project {n} was too costly. The mayor answered \
         the critics at length.\n"
    )
}

/// `input -> status` from every manifest in `out` (a merged one included when asked).
fn manifest(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn records_of_one_jsonl_file_are_shared_out_and_a_listing_replaces_the_walk() {
    let tmp = TempDir::new().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    let records: String = (1..=60)
        .map(|n| format!("{}\n", json!({"id": n, "text": article(n)})))
        .collect();
    std::fs::write(input.join("big.jsonl"), records).unwrap();
    for n in 0..6 {
        std::fs::write(input.join(format!("sub/{n}.txt")), article(100 + n)).unwrap();
    }
    // Not listed, so never read: the walk is not made.
    std::fs::write(input.join("unlisted.txt"), article(999)).unwrap();
    let mut listing = String::from("big.jsonl\nmissing.txt\n../escape.txt\n");
    for n in 0..6 {
        listing.push_str(&format!("sub/{n}.txt\n"));
    }
    let list = tmp.path().join("list.txt");
    std::fs::write(&list, &listing).unwrap();
    let out = tmp.path().join("out");

    let mut per_shard = Vec::new();
    for i in 0..3 {
        let mut cmd = svodka();
        cmd.args(["batch"])
            .arg(&input)
            .arg("--out")
            .arg(&out)
            .args(["--shard", &format!("{i}/3"), "-j", "2"]);
        // One shard reads the listing from standard input.
        let output = if i == 1 {
            let mut child = cmd
                .args(["--files-from", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(listing.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        } else {
            cmd.arg("--files-from").arg(&list).output().unwrap()
        };
        // Status 1: the missing and the escaping paths fail, in the shard owning them.
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "{}",
            stderr(&output)
        );
        let lines = manifest(&out.join(format!("manifest-shard-{i}-of-3.jsonl")));
        per_shard.push(lines);
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, lines) in per_shard.iter().enumerate() {
        let from_big = lines
            .iter()
            .filter(|l| l["input"].as_str().unwrap().starts_with("big.jsonl#"))
            .count();
        assert!(
            from_big > 5,
            "shard {i} got {from_big} records of big.jsonl"
        );
        for l in lines {
            *seen
                .entry(l["input"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    let mut want: Vec<String> = (1..=60).map(|n| format!("big.jsonl#{n}")).collect();
    want.extend((0..6).map(|n| format!("sub/{n}.txt")));
    want.extend(["missing.txt".to_string(), "../escape.txt".to_string()]);
    want.sort();
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), want);
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    let all: Vec<&Value> = per_shard.iter().flatten().collect();
    let failed: Vec<&str> = all
        .iter()
        .filter(|l| l["status"] == "failed")
        .map(|l| l["input"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(!out.join("unlisted.summary.txt").exists());
    assert!(out.join("big#17.summary.txt").is_file());

    let merged = svodka()
        .args(["--quiet", "batch", "--merge-manifests"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(merged.status.success(), "{}", stderr(&merged));
    assert_eq!(manifest(&out.join("manifest.jsonl")).len(), want.len());
}

#[test]
fn a_bad_listing_is_refused_before_any_work() {
    let tmp = TempDir::new().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let list = tmp.path().join("list.txt");
    std::fs::write(&list, b"a.txt\n\xff\xfe\n").unwrap();
    let out = svodka()
        .args(["batch"])
        .arg(&input)
        .arg("--out")
        .arg(tmp.path().join("out"))
        .arg("--files-from")
        .arg(&list)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("list.txt") && err.contains("not UTF-8"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!tmp.path().join("out").exists());
}
