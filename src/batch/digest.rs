//! `digest.md`: every summary of a run in one Markdown file, newest article first.

use std::cmp::Ordering;

use super::manifest::Entry;

/// The digest's file name in the output folder.
pub const DIGEST: &str = "digest.md";

/// Newest first by article date; undated articles after, by input name.
fn order(a: &Entry, b: &Entry) -> Ordering {
    match (&a.date, &b.date) {
        (Some(x), Some(y)) => y.cmp(x).then_with(|| a.input.cmp(&b.input)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.input.cmp(&b.input),
    }
}

/// Renders the digest of the summaries among `entries` (other tasks and lines without
/// a summary are left out).
pub fn render(entries: &[Entry]) -> String {
    let mut items: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.status.is_done() && e.summary.is_some())
        .collect();
    items.sort_by(|a, b| order(a, b));
    let mut out = format!(
        "# Digest\n\n{} {}, newest first.\n",
        items.len(),
        if items.len() == 1 {
            "summary"
        } else {
            "summaries"
        }
    );
    for e in items {
        let title = e.title.as_deref().unwrap_or(&e.input);
        out.push_str(&format!("\n## {title}\n\n"));
        match &e.date {
            Some(d) => out.push_str(&format!("*{d} · `{}`*\n\n", e.input)),
            None => out.push_str(&format!("*`{}`*\n\n", e.input)),
        }
        out.push_str(e.summary.as_deref().unwrap_or_default());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::manifest::{Status, Timings};
    use super::*;

    fn entry(input: &str, date: Option<&str>, status: Status) -> Entry {
        Entry {
            input: input.into(),
            sha256: None,
            task: "summarize".into(),
            engine: "extractive".into(),
            model: None,
            revision: None,
            fingerprint: String::new(),
            output: None,
            output_sha256: None,
            status,
            error: None,
            timings: Timings::default(),
            finished_at: 0,
            title: Some(format!("Title {input}")),
            date: date.map(Into::into),
            summary: Some(format!("Summary of {input}.")),
        }
    }

    #[test]
    fn newest_first_then_undated() {
        let d = render(&[
            entry("a.txt", None, Status::Done),
            entry("b.txt", Some("2020-09-04"), Status::Skipped),
            entry("c.txt", Some("2021-01-02"), Status::Done),
            entry("d.txt", Some("2022-01-01"), Status::Failed),
        ]);
        let pos = |s: &str| d.find(s).unwrap();
        assert!(d.starts_with("# Digest\n\n3 summaries"));
        assert!(pos("Title c.txt") < pos("Title b.txt"));
        assert!(pos("Title b.txt") < pos("Title a.txt"));
        assert!(!d.contains("d.txt"));
        assert!(d.contains("*2020-09-04 · `b.txt`*\n\nSummary of b.txt.\n"));
    }
}
