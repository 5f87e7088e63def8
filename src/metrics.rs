//! Prometheus metrics (DESIGN.md section 6), in the classic text format on HTTP `/metrics`.
//!
//! Histogram buckets are explicit: latency buckets span 0.5 ms to 10 s (a single CPU jet takes
//! about a millisecond, a large request or a GPU cold start seconds), batch sizes go in powers
//! of two up to 1024 jets.
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets, in seconds.
pub const DURATION_BUCKETS: [f64; 15] =
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0];
/// Batch size buckets, in jets.
pub const BATCH_BUCKETS: [f64; 11] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// All metrics of one server process; cheap to share behind an `Arc`.
pub struct Metrics {
    registry: Registry,
    /// Finished requests by model, gRPC method and status code ("OK", "INVALID_ARGUMENT", ...).
    pub requests: IntCounterVec,
    /// Jets computed by the model.
    pub jets: IntCounterVec,
    /// Time from receiving a request to sending its reply.
    pub request_duration: HistogramVec,
    /// Time a request (or a part of a split request) waited in the batch queue.
    pub queue_duration: HistogramVec,
    /// Time to validate and tokenize one request's jets.
    pub preprocess_duration: HistogramVec,
    /// Time to collate and run one batch through ONNX Runtime.
    pub compute_duration: HistogramVec,
    /// Jets per computed batch.
    pub batch_jets: HistogramVec,
    /// Jets waiting in the queue now.
    pub queue_jets: IntGaugeVec,
    /// Requests being processed now (stream messages count one each).
    pub inflight: IntGauge,
    /// 1 for each served model version, with the device it runs on.
    pub model_info: IntGaugeVec,
    /// Jets dropped before compute because the caller left or the deadline passed.
    pub dropped_jets: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("jettag_requests_total", "Finished requests by model, method and gRPC status code."),
            &["model", "method", "code"],
        )
        .expect("valid metric");
        let jets = IntCounterVec::new(Opts::new("jettag_jets_total", "Jets computed by the model."), &["model"])
            .expect("valid metric");
        let hist = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels).expect("valid metric")
        };
        let request_duration = hist(
            "jettag_request_duration_seconds",
            "Time from receiving a request to replying.",
            &["model", "method"],
            &DURATION_BUCKETS,
        );
        let queue_duration = hist(
            "jettag_queue_duration_seconds",
            "Time jets of a request waited in the batch queue.",
            &["model"],
            &DURATION_BUCKETS,
        );
        let preprocess_duration = hist(
            "jettag_preprocess_duration_seconds",
            "Time to validate and tokenize the jets of one request.",
            &["model"],
            &DURATION_BUCKETS,
        );
        let compute_duration = hist(
            "jettag_compute_duration_seconds",
            "Time to collate and run one batch with ONNX Runtime.",
            &["model"],
            &DURATION_BUCKETS,
        );
        let batch_jets = hist("jettag_batch_jets", "Jets per computed batch.", &["model"], &BATCH_BUCKETS);
        let queue_jets =
            IntGaugeVec::new(Opts::new("jettag_queue_jets", "Jets waiting in the batch queue."), &["model"])
                .expect("valid metric");
        let inflight = IntGauge::new("jettag_inflight_requests", "Requests being processed.").expect("valid metric");
        let model_info = IntGaugeVec::new(
            Opts::new("jettag_model_info", "Served model versions (value 1) and their device."),
            &["model", "version", "device"],
        )
        .expect("valid metric");
        let dropped_jets = IntCounterVec::new(
            Opts::new(
                "jettag_dropped_jets_total",
                "Jets dropped before compute: reason=deadline (deadline passed) or cancelled (caller left).",
            ),
            &["model", "reason"],
        )
        .expect("valid metric");
        let m = Metrics {
            registry,
            requests,
            jets,
            request_duration,
            queue_duration,
            preprocess_duration,
            compute_duration,
            batch_jets,
            queue_jets,
            inflight,
            model_info,
            dropped_jets,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.requests.clone()),
            Box::new(m.jets.clone()),
            Box::new(m.request_duration.clone()),
            Box::new(m.queue_duration.clone()),
            Box::new(m.preprocess_duration.clone()),
            Box::new(m.compute_duration.clone()),
            Box::new(m.batch_jets.clone()),
            Box::new(m.queue_jets.clone()),
            Box::new(m.inflight.clone()),
            Box::new(m.model_info.clone()),
            Box::new(m.dropped_jets.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        m
    }

    /// Makes per-model series exist (at zero) from the start, so dashboards and alerts see
    /// them before the first request.
    pub fn register_model(&self, model: &str, version: u64, device: &str) {
        self.model_info.with_label_values(&[model, &version.to_string(), device]).set(1);
        self.jets.with_label_values(&[model]);
        self.queue_jets.with_label_values(&[model]);
        for h in [&self.queue_duration, &self.preprocess_duration, &self.compute_duration, &self.batch_jets] {
            h.with_label_values(&[model]);
        }
        for method in ["Tag", "Embed", "TagStream"] {
            self.request_duration.with_label_values(&[model, method]);
        }
        for reason in ["deadline", "cancelled"] {
            self.dropped_jets.with_label_values(&[model, reason]);
        }
    }

    /// The text exposition format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("encoding to memory");
        String::from_utf8(buf).expect("metrics are UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The canonical upper-case name of a gRPC status code, as the `code` label uses it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_design_names() {
        let m = Metrics::new();
        m.register_model("tiny", 1, "cpu");
        m.requests.with_label_values(&["tiny", "Tag", "OK"]).inc();
        m.request_duration.with_label_values(&["tiny", "Tag"]).observe(0.003);
        m.queue_duration.with_label_values(&["tiny"]).observe(0.001);
        m.preprocess_duration.with_label_values(&["tiny"]).observe(0.001);
        m.compute_duration.with_label_values(&["tiny"]).observe(0.001);
        m.batch_jets.with_label_values(&["tiny"]).observe(3.0);
        let text = m.encode();
        for name in [
            "jettag_requests_total{",
            "jettag_jets_total{",
            "jettag_request_duration_seconds_bucket{",
            "jettag_queue_duration_seconds_bucket{",
            "jettag_preprocess_duration_seconds_bucket{",
            "jettag_compute_duration_seconds_bucket{",
            "jettag_batch_jets_bucket{",
            "jettag_queue_jets{",
            "jettag_inflight_requests ",
            "jettag_model_info{",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        assert!(text.contains(r#"jettag_requests_total{code="OK",method="Tag",model="tiny"} 1"#), "{text}");
        assert!(text.contains(r#"jettag_batch_jets_bucket{model="tiny",le="4"} 1"#), "{text}");
        assert!(text.contains(r#"jettag_batch_jets_bucket{model="tiny",le="2"} 0"#), "{text}");
    }

    #[test]
    fn code_names_are_canonical() {
        assert_eq!(code_name(tonic::Code::ResourceExhausted), "RESOURCE_EXHAUSTED");
        assert_eq!(code_name(tonic::Code::Ok), "OK");
    }
}
