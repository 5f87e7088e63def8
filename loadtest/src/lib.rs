//! `jettag-loadtest`: the load generator and the benchmark baselines for the jettag server
//! (DESIGN.md section 7).
//!
//! A performance figure means something only next to its limit, so the crate measures three
//! things the same way: the server over gRPC ([`run`]), the same model run in-process through
//! the server's own ONNX Runtime code ([`direct`]), and, through the same gRPC client, the
//! plain Python server in `loadtest/baseline/`.
//!
//! Modules, one job each:
//! - [`proto`]: the generated `jettag.v1` client (and server, for tests).
//! - [`requests`]: jets from ROOT files → pre-built columnar requests.
//! - [`latency`]: HDR latency histograms and their percentile summary.
//! - [`schedule`]: open-loop arrival times (constant or Poisson).
//! - [`target`]: one call to the server, its outcome reduced to a status code.
//! - [`run`]: open-loop and closed-loop runs with warm-up, a hard stop and error counting.
//! - [`report`]: run results as JSON and as a text table.
//! - [`direct`]: the in-process ONNX Runtime baseline.
pub mod direct;
pub mod latency;
pub mod proto;
pub mod report;
pub mod requests;
pub mod run;
pub mod schedule;
pub mod target;
