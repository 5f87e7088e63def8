//! Open-loop and closed-loop runs.
//!
//! A run has a warm-up, then a measurement window of `duration`. Requests are attributed to
//! the window by the time they were *scheduled* (open loop) or sent (closed loop); their
//! latency is measured from that time to the response, so in open loop a queue in the server
//! shows up as latency instead of as a lower send rate. Throughput counts successful responses
//! that *arrive* inside the window. After the window the run sends nothing more, waits at most
//! one request timeout for outstanding responses, and abandons the rest: it always stops.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::latency::LatencyRecorder;
use crate::report::RunReport;
use crate::schedule::{Arrivals, Schedule};
use crate::target::{CallResult, Target};

/// How requests are generated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// `rate` requests per second at scheduled times, whatever the responses do.
    Open { rate: f64, arrivals: Arrivals, seed: u64 },
    /// `concurrency` workers, each with exactly one request in flight.
    Closed { concurrency: usize },
}

/// One run's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSpec {
    pub load: Load,
    /// Requests before the window: sent, not counted.
    pub warmup: Duration,
    /// Length of the measurement window.
    pub duration: Duration,
    /// Longest wait for outstanding responses after the window (use the request timeout).
    pub drain: Duration,
    /// Open loop: most requests in flight at once. A scheduled request that finds the cap
    /// reached is not sent and is counted as `skipped`, so a dead server cannot make the
    /// generator pile up unbounded tasks.
    pub max_inflight: usize,
}

#[derive(Debug, Error, PartialEq)]
pub enum RunError {
    #[error("--rate must be a finite positive number of requests per second, got {0}")]
    Rate(f64),
    #[error("--concurrency must be at least 1")]
    Concurrency,
    #[error("--duration must be positive")]
    Duration,
    #[error("--max-inflight must be at least 1")]
    MaxInflight,
}

impl RunSpec {
    pub fn validate(&self) -> Result<(), RunError> {
        match self.load {
            Load::Open { rate, .. } if !(rate.is_finite() && rate > 0.0) => return Err(RunError::Rate(rate)),
            Load::Closed { concurrency: 0 } => return Err(RunError::Concurrency),
            _ => {}
        }
        if self.duration.is_zero() {
            return Err(RunError::Duration);
        }
        if self.max_inflight == 0 {
            return Err(RunError::MaxInflight);
        }
        Ok(())
    }

    fn window_end(&self) -> Duration {
        self.warmup + self.duration
    }
}

/// One finished request.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    /// Offset of the scheduled (open) or actual (closed) send time from the run's start.
    scheduled: Duration,
    /// Offset of the response (or failure) from the run's start.
    done: Duration,
    result: CallResult,
}

/// Folds outcomes into the window's statistics.
#[derive(Debug, Default)]
struct Tally {
    window: (Duration, Duration),
    sent: u64,
    ok: u64,
    ok_in_window: u64,
    errors: BTreeMap<String, u64>,
    latency: LatencyRecorder,
}

impl Tally {
    fn new(window: (Duration, Duration)) -> Self {
        Self { window, ..Default::default() }
    }

    fn in_window(&self, t: Duration) -> bool {
        t >= self.window.0 && t < self.window.1
    }

    fn add(&mut self, o: Outcome) {
        if o.result.is_ok() && self.in_window(o.done) {
            self.ok_in_window += 1;
        }
        if !self.in_window(o.scheduled) {
            return;
        }
        self.sent += 1;
        match o.result {
            Ok(()) => {
                self.ok += 1;
                self.latency.record(o.done.saturating_sub(o.scheduled));
            }
            Err(f) => *self.errors.entry(f.label()).or_default() += 1,
        }
    }
}

/// Runs one load against `target` and reports on the measurement window.
pub async fn run<T: Target>(target: T, spec: RunSpec) -> Result<RunReport, RunError> {
    spec.validate()?;
    let start = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
    let window = (spec.warmup, spec.window_end());
    let collector = tokio::spawn(async move {
        let mut tally = Tally::new(window);
        while let Some(o) = rx.recv().await {
            tally.add(o);
        }
        tally
    });

    let mut tasks = JoinSet::new();
    let mut skipped = 0u64;
    let mut send_lag = LatencyRecorder::new();
    match spec.load {
        Load::Open { rate, arrivals, seed } => {
            // The dispatcher is an OS thread, not a task: `std::thread::sleep` wakes within
            // tens of microseconds, while tokio's timer rounds every sleep up to its next
            // millisecond tick, which would add about 1 ms to every measured latency.
            let handle = tokio::runtime::Handle::current();
            let (target, tx) = (target.clone(), tx.clone());
            let dispatched = tokio::task::spawn_blocking(move || {
                let mut tasks = JoinSet::new();
                let (mut skipped, mut send_lag) = (0u64, LatencyRecorder::new());
                let inflight = Arc::new(AtomicUsize::new(0));
                for (seq, offset) in Schedule::new(arrivals, rate, seed).enumerate() {
                    if offset >= spec.window_end() {
                        break;
                    }
                    if let Some(wait) = offset.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                    if offset >= spec.warmup {
                        send_lag.record(start.elapsed().saturating_sub(offset));
                    }
                    // Reap finished tasks so the set holds only what is in flight.
                    while tasks.try_join_next().is_some() {}
                    if inflight.load(Ordering::Relaxed) >= spec.max_inflight {
                        if offset >= spec.warmup {
                            skipped += 1;
                        }
                        continue;
                    }
                    inflight.fetch_add(1, Ordering::Relaxed);
                    let call = target.call(seq as u64);
                    let (tx, inflight) = (tx.clone(), Arc::clone(&inflight));
                    tasks.spawn_on(
                        async move {
                            let result = call.await;
                            let _ = tx.send(Outcome { scheduled: offset, done: start.elapsed(), result });
                            inflight.fetch_sub(1, Ordering::Relaxed);
                        },
                        &handle,
                    );
                }
                (tasks, skipped, send_lag)
            })
            .await;
            match dispatched {
                Ok(d) => (tasks, skipped, send_lag) = d,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        Load::Closed { concurrency } => {
            let next_seq = Arc::new(AtomicU64::new(0));
            let end = spec.window_end();
            for _ in 0..concurrency {
                let (target, tx, next_seq) = (target.clone(), tx.clone(), Arc::clone(&next_seq));
                tasks.spawn(async move {
                    loop {
                        let sent = start.elapsed();
                        if sent >= end {
                            break;
                        }
                        let seq = next_seq.fetch_add(1, Ordering::Relaxed);
                        let result = target.call(seq).await;
                        let _ = tx.send(Outcome { scheduled: sent, done: start.elapsed(), result });
                    }
                });
            }
        }
    }
    drop(tx);

    // Nothing new is sent after the window; wait for what is outstanding, within limits.
    let deadline = start + spec.window_end().max(start.elapsed()) + spec.drain + Duration::from_millis(250);
    let _ = tokio::time::timeout_at(deadline.into(), async { while tasks.join_next().await.is_some() {} }).await;
    let unfinished = tasks.len() as u64;
    tasks.shutdown().await;
    let elapsed = start.elapsed();
    let tally = collector.await.unwrap_or_else(|_| Tally::new(window));

    let duration_s = spec.duration.as_secs_f64();
    let jets = target.jets_per_request() as f64;
    let throughput_rps = tally.ok_in_window as f64 / duration_s;
    let (mode, offered, arrivals, concurrency) = match spec.load {
        Load::Open { rate, arrivals, .. } => ("open", Some(rate), Some(arrivals), None),
        Load::Closed { concurrency } => ("closed", None, None, Some(concurrency)),
    };
    Ok(RunReport {
        mode: mode.to_string(),
        offered_rps: offered,
        offered_jets_per_s: offered.map(|r| r * jets),
        arrivals,
        concurrency,
        jets_per_request: target.jets_per_request(),
        warmup_s: spec.warmup.as_secs_f64(),
        duration_s,
        elapsed_s: elapsed.as_secs_f64(),
        sent: tally.sent,
        ok: tally.ok,
        errors: tally.errors,
        skipped,
        unfinished,
        throughput_rps,
        throughput_jets_per_s: throughput_rps * jets,
        latency: tally.latency.summary(),
        send_lag: (send_lag.count() > 0).then(|| send_lag.summary()),
        ..RunReport::default()
    })
}

/// Whether a sweep should stop after this run: p99 above `stop_p99_ms`, or more than 1 % of
/// the window's requests failed or were skipped (the server is past saturation).
pub fn saturated(report: &RunReport, stop_p99_ms: f64) -> bool {
    let failed = report.errors.values().sum::<u64>() + report.skipped + report.unfinished;
    let attempted = report.sent + report.skipped;
    report.latency.p99_ms > stop_p99_ms || (attempted > 0 && failed as f64 > 0.01 * attempted as f64) || report.ok == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(load: Load) -> RunSpec {
        RunSpec {
            load,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            drain: Duration::from_secs(1),
            max_inflight: 10,
        }
    }

    #[test]
    fn rejects_unusable_specs() {
        let open = |rate| Load::Open { rate, arrivals: Arrivals::Poisson, seed: 0 };
        assert_eq!(spec(open(0.0)).validate(), Err(RunError::Rate(0.0)));
        assert!(matches!(spec(open(f64::NAN)).validate(), Err(RunError::Rate(_))));
        assert_eq!(spec(Load::Closed { concurrency: 0 }).validate(), Err(RunError::Concurrency));
        let mut s = spec(open(10.0));
        assert_eq!(s.validate(), Ok(()));
        s.duration = Duration::ZERO;
        assert_eq!(s.validate(), Err(RunError::Duration));
        let mut s = spec(Load::Closed { concurrency: 2 });
        s.max_inflight = 0;
        assert_eq!(s.validate(), Err(RunError::MaxInflight));
    }

    #[test]
    fn saturation_criteria() {
        let mut r = RunReport { sent: 1000, ok: 1000, ..RunReport::default() };
        r.latency.p99_ms = 49.0;
        assert!(!saturated(&r, 50.0));
        r.latency.p99_ms = 51.0;
        assert!(saturated(&r, 50.0));
        r.latency.p99_ms = 10.0;
        r.errors.insert("RESOURCE_EXHAUSTED".into(), 11);
        r.ok = 989;
        assert!(saturated(&r, 50.0), "1.1 % failures");
        r.errors.insert("RESOURCE_EXHAUSTED".into(), 5);
        r.ok = 995;
        assert!(!saturated(&r, 50.0), "0.5 % failures");
        r.skipped = 20;
        assert!(saturated(&r, 50.0), "skipped sends count as failures");
    }
}
