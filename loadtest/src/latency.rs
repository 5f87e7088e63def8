//! Latency histograms (HDR, microsecond resolution) and their percentile summary.
//!
//! An HDR histogram keeps every value to three significant figures in fixed memory, so tail
//! percentiles (p99.9) stay exact to 0.1 % however many requests a run makes, and histograms
//! from several tasks merge without losing anything.
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency kept exactly: an hour. Longer values are clamped to it (a run never lasts
/// that long, so a clamped value would mean a broken clock, not a slow server).
const MAX_MICROS: u64 = 3_600_000_000;
/// Significant decimal figures kept per value.
const SIG_FIGS: u8 = 3;

/// Percentiles reported for every run.
pub const PERCENTILES: [(&str, f64); 4] = [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)];

/// Records latencies in microseconds.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    hist: Histogram<u64>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    pub fn new() -> Self {
        Self { hist: Histogram::new_with_bounds(1, MAX_MICROS, SIG_FIGS).expect("valid HDR bounds") }
    }

    /// Records one latency; below 1 µs counts as 1 µs, above an hour as an hour.
    pub fn record(&mut self, latency: Duration) {
        let us = (latency.as_micros().min(MAX_MICROS as u128) as u64).max(1);
        self.hist.saturating_record(us);
    }

    /// Adds another recorder's values.
    pub fn merge(&mut self, other: &LatencyRecorder) {
        // Both have the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Latency at percentile `q` (0..=100) in microseconds: the smallest recorded value (to
    /// the histogram's precision) that at least `q` % of values do not exceed.
    pub fn percentile_us(&self, q: f64) -> u64 {
        self.hist.value_at_quantile(q / 100.0)
    }

    /// The summary of everything recorded.
    pub fn summary(&self) -> LatencySummary {
        let ms = |us: u64| us as f64 / 1000.0;
        if self.hist.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.hist.len(),
            min_ms: ms(self.hist.min()),
            mean_ms: self.hist.mean() / 1000.0,
            p50_ms: ms(self.percentile_us(50.0)),
            p90_ms: ms(self.percentile_us(90.0)),
            p99_ms: ms(self.percentile_us(99.0)),
            p999_ms: ms(self.percentile_us(99.9)),
            max_ms: ms(self.hist.max()),
        }
    }
}

/// Latency percentiles in milliseconds (all zero when nothing was recorded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    #[serde(rename = "p99.9_ms")]
    pub p999_ms: f64,
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nearest-rank percentile of a sorted series, the textbook definition the histogram must
    /// agree with (to its 3 significant figures).
    fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
        sorted[rank - 1]
    }

    fn assert_close(got: u64, want: u64) {
        let tol = (want as f64 * 1e-3).max(1.0);
        assert!((got as f64 - want as f64).abs() <= tol, "got {got} µs, want {want} µs (±{tol})");
    }

    #[test]
    fn percentiles_of_a_uniform_series() {
        // 1 ms, 2 ms, ..., 10 s: p50 = 5 s, p90 = 9 s, p99 = 9.9 s, p99.9 = 9.99 s.
        let mut rec = LatencyRecorder::new();
        for i in 1..=10_000u64 {
            rec.record(Duration::from_millis(i));
        }
        let s = rec.summary();
        assert_eq!(s.count, 10_000);
        for (value_ms, want_ms) in
            [(s.p50_ms, 5000.0), (s.p90_ms, 9000.0), (s.p99_ms, 9900.0), (s.p999_ms, 9990.0), (s.max_ms, 10000.0)]
        {
            assert!((value_ms - want_ms).abs() <= want_ms * 1e-3, "{value_ms} ms vs {want_ms} ms");
        }
        assert!((s.mean_ms - 5000.5).abs() < 5000.5 * 1e-3, "{}", s.mean_ms);
        assert!((s.min_ms - 1.0).abs() < 1e-3);
    }

    #[test]
    fn percentiles_of_a_skewed_series_match_nearest_rank() {
        // A heavy tail: most requests fast, a few very slow (what a queue produces).
        let mut values: Vec<u64> = Vec::new();
        let mut x: u64 = 12345;
        for i in 0..20_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let base = 200 + (x >> 33) % 800; // 0.2-1 ms
            values.push(if i % 97 == 0 { base * 150 } else { base });
        }
        let mut rec = LatencyRecorder::new();
        for &v in &values {
            rec.record(Duration::from_micros(v));
        }
        values.sort_unstable();
        for (_, q) in PERCENTILES {
            assert_close(rec.percentile_us(q), nearest_rank(&values, q));
        }
    }

    #[test]
    fn merged_equals_recorded_together() {
        let (mut a, mut b, mut all) = (LatencyRecorder::new(), LatencyRecorder::new(), LatencyRecorder::new());
        for i in 1..=1000u64 {
            let d = Duration::from_micros(i * 37 % 5000 + 1);
            if i % 3 == 0 { a.record(d) } else { b.record(d) }
            all.record(d);
        }
        a.merge(&b);
        assert_eq!(a.summary(), all.summary());
    }

    #[test]
    fn empty_and_out_of_range() {
        assert_eq!(LatencyRecorder::new().summary(), LatencySummary::default());
        let mut rec = LatencyRecorder::new();
        rec.record(Duration::ZERO);
        rec.record(Duration::from_secs(10 * 3600));
        let s = rec.summary();
        assert_eq!(s.count, 2);
        assert!((s.min_ms - 0.001).abs() < 1e-9);
        assert!((s.max_ms - 3_600_000.0).abs() <= 3_600_000.0 * 1e-3);
    }
}
