//! `jettag`: the HEP-JEPA jet tagging server and the offline tagger (DESIGN.md section 6).
//!
//! The server follows the shape of Hugging Face's text-embeddings-inference: request handlers
//! validate and preprocess jets on a blocking pool, hand them to a per-model batching task that
//! owns the queue, and await a oneshot reply; worker threads, each owning one ONNX Runtime
//! session, compute the batches. Every stage is measured.
//!
//! Modules, one job each:
//! - [`config`]: flags, `JETTAG_*` environment variables and the TOML file → effective config.
//! - [`repository`]: the model repository layout, `model.toml` and its validation.
//! - [`runtime`]: ONNX Runtime environment, sessions (device choice, contract check, warm-up)
//!   and the pool of worker threads that own them.
//! - [`batcher`]: the bounded per-model queue and the batching task.
//! - [`preprocess`]: columnar jets → validated, tokenized jets, off the async runtime.
//! - [`models`]: the served models (name, version → batcher) and their lookup.
//! - [`grpc`]: the `jettag.v1.JetTagger` service.
//! - [`http`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`metrics`]: the Prometheus metrics of DESIGN.md section 6.
//! - [`lifecycle`]: readiness, health status, in-flight tracking and draining on SIGTERM.
//! - [`server`]: wires the above together (`jettag serve`).
//! - [`offline`]: `jettag tag`, the same runtime and batcher without a network.
pub mod batcher;
pub mod config;
pub mod duration;
pub mod grpc;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod models;
pub mod offline;
pub mod preprocess;
pub mod proto;
pub mod repository;
pub mod runtime;
pub mod server;

/// Sets up logging to stderr (`RUST_LOG`, default `info`); a no-op if a subscriber exists.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ort=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
