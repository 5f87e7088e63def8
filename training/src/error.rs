//! Errors of the training library. Bad input (unknown config, unreadable data, missing or
//! mismatched checkpoints) is an error value with a message that names the culprit.
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error("config: {0}")]
    Config(String),
    #[error(transparent)]
    Read(#[from] jettag_core::ReadError),
    #[error("no input files match '{0}'")]
    NoFiles(String),
    #[error("no usable jets in the input (every jet failed tokenization or has fewer than 2 tokens)")]
    NoJets,
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Json { path: PathBuf, reason: String },
    #[error("{path}: cannot save or load weights: {reason}")]
    Record { path: PathBuf, reason: String },
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("plot {path}: {reason}")]
    Plot { path: PathBuf, reason: String },
    #[error("training diverged: {0}")]
    Diverged(String),
    #[error("device: {0}")]
    Device(String),
    #[error("ONNX export: {0}")]
    Onnx(#[from] crate::onnx::OnnxError),
    #[error("metrics: {0}")]
    Metrics(#[from] crate::metrics::MetricsError),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
