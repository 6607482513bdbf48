//! Counters of the server, rendered in Prometheus' text format at `GET /metrics`.
//!
//! Everything is a counter or a gauge updated with atomics (or one short lock for the
//! per-endpoint table), so recording never waits on a model.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::pipeline::translate::BatchInfo;

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    /// Answers by (route, status).
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    in_flight: AtomicI64,
    queue_depth: AtomicI64,
    rejected: AtomicU64,
    rounds: AtomicU64,
    round_requests: AtomicU64,
    batches: AtomicU64,
    batch_rows: AtomicU64,
    batch_padded_tokens: AtomicU64,
    translate_micros: AtomicU64,
    summaries: AtomicU64,
    summary_micros: AtomicU64,
}

impl Metrics {
    /// One answer of `route` with `status`.
    pub fn answered(&self, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((route.to_string(), status)).or_default() += 1;
    }

    /// A request started (`+1`) or ended (`-1`).
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// Jobs entered (`+n`) or left (`-n`) a model queue.
    pub fn queued(&self, delta: i64) {
        self.queue_depth.fetch_add(delta, Ordering::Relaxed);
    }

    /// A request turned away because a queue was full.
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// One translation round: `requests` jobs whose texts ran as `batches` in `took`.
    pub fn translated(&self, requests: usize, batches: &[BatchInfo], took: Duration) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        self.round_requests
            .fetch_add(requests as u64, Ordering::Relaxed);
        self.batches
            .fetch_add(batches.len() as u64, Ordering::Relaxed);
        let rows: usize = batches.iter().map(|b| b.rows).sum();
        let padded: usize = batches.iter().map(|b| b.padded_tokens).sum();
        self.batch_rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.batch_padded_tokens
            .fetch_add(padded as u64, Ordering::Relaxed);
        self.translate_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// One summary written in `took`.
    pub fn summarized(&self, took: Duration) {
        self.summaries.fetch_add(1, Ordering::Relaxed);
        self.summary_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP svodka_requests_total HTTP answers by route and status.\n");
        out.push_str("# TYPE svodka_requests_total counter\n");
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, status), n) in map.iter() {
            let _ = writeln!(
                out,
                "svodka_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                route.replace('\\', "\\\\").replace('"', "\\\"")
            );
        }
        drop(map);
        let gauges = [
            (
                "svodka_requests_in_flight",
                "Requests being answered now.",
                self.in_flight.load(Ordering::Relaxed),
            ),
            (
                "svodka_queue_depth",
                "Jobs waiting for a model.",
                self.queue_depth.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let counters = [
            (
                "svodka_rejected_total",
                "Requests answered 503 because a queue was full.",
                load(&self.rejected),
            ),
            (
                "svodka_rounds_total",
                "Translation rounds: requests taken from the queue together.",
                load(&self.rounds),
            ),
            (
                "svodka_round_requests_total",
                "Requests translated, summed over rounds.",
                load(&self.round_requests),
            ),
            (
                "svodka_batches_total",
                "Model batches run by translation, retries included.",
                load(&self.batches),
            ),
            (
                "svodka_batch_rows_total",
                "Texts in those batches, summed.",
                load(&self.batch_rows),
            ),
            (
                "svodka_batch_padded_tokens_total",
                "Padded source tokens in those batches (rows x longest row), summed.",
                load(&self.batch_padded_tokens),
            ),
            (
                "svodka_summaries_total",
                "Summaries written.",
                load(&self.summaries),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let seconds = [
            (
                "svodka_translate_seconds_total",
                "Wall time of translation rounds; padded tokens over it give tokens/s.",
                load(&self.translate_micros),
            ),
            (
                "svodka_summary_seconds_total",
                "Wall time of summaries.",
                load(&self.summary_micros),
            ),
        ];
        for (name, help, micros) in seconds {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {:.6}",
                micros as f64 / 1e6
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_routes() {
        let m = Metrics::default();
        m.answered("/translate", 200);
        m.answered("/translate", 200);
        m.answered("/detect", 400);
        m.translated(
            3,
            &[
                BatchInfo {
                    rows: 4,
                    padded_tokens: 40,
                    articles: 3,
                    retry: false,
                },
                BatchInfo {
                    rows: 1,
                    padded_tokens: 12,
                    articles: 1,
                    retry: true,
                },
            ],
            Duration::from_millis(250),
        );
        let text = m.render();
        assert!(text.contains("svodka_requests_total{route=\"/translate\",status=\"200\"} 2\n"));
        assert!(text.contains("svodka_requests_total{route=\"/detect\",status=\"400\"} 1\n"));
        assert!(text.contains("svodka_batches_total 2\n"));
        assert!(text.contains("svodka_batch_rows_total 5\n"));
        assert!(text.contains("svodka_round_requests_total 3\n"));
        assert!(text.contains("svodka_batch_padded_tokens_total 52\n"));
        assert!(text.contains("svodka_translate_seconds_total 0.250000\n"));
    }
}
