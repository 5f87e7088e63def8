//! Run results as JSON and as text tables.
use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::latency::LatencySummary;
use crate::schedule::Arrivals;

/// What one run measured (see [`crate::run`] for the exact definitions).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// Filled by the caller: who was measured.
    pub label: String,
    pub addr: String,
    pub model: String,
    pub method: String,
    /// "open" or "closed".
    pub mode: String,
    /// Open loop: scheduled requests per second.
    pub offered_rps: Option<f64>,
    pub offered_jets_per_s: Option<f64>,
    pub arrivals: Option<Arrivals>,
    /// Closed loop: requests in flight.
    pub concurrency: Option<usize>,
    pub jets_per_request: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Wall time of the whole run, warm-up and drain included.
    pub elapsed_s: f64,
    /// Requests scheduled (open) or sent (closed) inside the window.
    pub sent: u64,
    /// Of those, successful.
    pub ok: u64,
    /// Of those, failed, by gRPC status code.
    pub errors: BTreeMap<String, u64>,
    /// Open loop: scheduled inside the window but not sent (in-flight cap reached).
    pub skipped: u64,
    /// Still outstanding when the run gave up waiting (any time, warm-up included).
    pub unfinished: u64,
    /// Successful responses arriving inside the window, per second.
    pub throughput_rps: f64,
    pub throughput_jets_per_s: f64,
    /// Successful requests only, from scheduled (open) or actual (closed) send time.
    pub latency: LatencySummary,
    /// Open loop: how far actual sends fell behind their schedule (timer granularity, or an
    /// overloaded generator). It is part of every latency above, by design.
    pub send_lag: Option<LatencySummary>,
}

fn errors_text(errors: &BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return "-".into();
    }
    errors.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// A fixed-width table of runs.
pub fn runs_table(runs: &[RunReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>6} {:>5} {:>10} {:>9} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}  errors",
        "label", "mode", "jets", "offered/s", "req/s", "jets/s", "p50 ms", "p90 ms", "p99 ms", "p99.9", "max ms", "skipped"
    );
    for r in runs {
        let load = match (r.offered_rps, r.concurrency) {
            (Some(rate), _) => format!("{rate:.0}"),
            (None, Some(c)) => format!("c={c}"),
            _ => "-".into(),
        };
        let l = &r.latency;
        let _ = writeln!(
            out,
            "{:<10} {:>6} {:>5} {:>10} {:>9.1} {:>11.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7}  {}",
            r.label,
            r.mode,
            r.jets_per_request,
            load,
            r.throughput_rps,
            r.throughput_jets_per_s,
            l.p50_ms,
            l.p90_ms,
            l.p99_ms,
            l.p999_ms,
            l.max_ms,
            r.skipped + r.unfinished,
            errors_text(&r.errors)
        );
    }
    out
}
