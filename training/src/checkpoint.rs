//! Files of a pre-training run directory:
//!
//! ```text
//! DIR/config.json                 PretrainConfig: model + tokenizer + masking + training settings
//! DIR/encoder.mpk                 final target (EMA) encoder: the pre-trained backbone
//! DIR/metrics.jsonl               one JSON object per step
//! DIR/loss.png                    loss curve
//! DIR/summary.json                steps, epochs, seconds and jets/s of the last invocation
//! DIR/checkpoints/epoch-NNNN/     after each epoch: jepa.mpk (context encoder + predictor),
//!                                 target.mpk (EMA encoder), optimizer.mpk (AdamW moments),
//!                                 state.json (epochs done, step)
//! ```
//!
//! Weights use burn's named MessagePack recorder at full precision (`.mpk`), which stores
//! every parameter by its field path, so a file loads only into the same module structure.
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Record, Recorder};
use jettag_core::TokenizerConfig;
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::error::TrainError;
use crate::jepa::MaskingConfig;
use crate::model::Encoder;

/// The recorder used for every weight file.
pub type WeightRecorder = NamedMpkFileRecorder<FullPrecisionSettings>;

pub const CONFIG_FILE: &str = "config.json";
pub const ENCODER_FILE: &str = "encoder.mpk";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const LOSS_PLOT_FILE: &str = "loss.png";
pub const CHECKPOINT_DIR: &str = "checkpoints";

/// Training settings that are not part of the model's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub lr: f64,
    pub final_lr_ratio: f64,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub grad_clip_norm: Option<f64>,
    pub ema_start: f64,
    pub ema_end: f64,
    /// Steps the schedules were planned for.
    pub total_steps: usize,
    /// Input files, as resolved at the start.
    pub data: Vec<String>,
    pub max_jets: Option<usize>,
}

/// Everything needed to rebuild and reuse a pre-trained model (`DIR/config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    pub model: ModelConfig,
    pub tokenizer: TokenizerConfig,
    pub masking: MaskingConfig,
    pub training: TrainSettings,
}

/// Progress saved with each checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: usize,
}

fn json_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Json { path: path.to_path_buf(), reason: e.to_string() }
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| json_err(path, e))?;
    std::fs::write(path, text + "\n").map_err(|e| TrainError::io(path, e))
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| json_err(path, e))
}

/// Saves a record (module or optimizer state); `path` is given without the `.mpk` extension.
pub fn save_record<B: Backend, R: Record<B>>(record: R, path: &Path) -> Result<(), TrainError> {
    WeightRecorder::new()
        .record(record, path.to_path_buf())
        .map_err(|e| TrainError::Record { path: path.with_extension("mpk"), reason: e.to_string() })
}

pub fn load_record<B: Backend, R: Record<B>>(path: &Path, device: &B::Device) -> Result<R, TrainError> {
    let file = path.with_extension("mpk");
    if !file.is_file() {
        return Err(TrainError::Record { path: file, reason: "file not found".into() });
    }
    WeightRecorder::new()
        .load(path.to_path_buf(), device)
        .map_err(|e| TrainError::Record { path: file, reason: e.to_string() })
}

/// Loads a module's weights into `module` (which fixes the structure).
pub fn load_module<B: Backend, M: Module<B>>(module: M, path: &Path, device: &B::Device) -> Result<M, TrainError> {
    Ok(module.load_record(load_record::<B, M::Record>(path, device)?))
}

/// `DIR/checkpoints/epoch-NNNN`.
pub fn checkpoint_dir(out: &Path, epoch: usize) -> PathBuf {
    out.join(CHECKPOINT_DIR).join(format!("epoch-{epoch:04}"))
}

/// Checkpoint directories in `out`, oldest first (only complete ones: with `state.json`).
pub fn list_checkpoints(out: &Path) -> Result<Vec<(usize, PathBuf)>, TrainError> {
    let dir = out.join(CHECKPOINT_DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| TrainError::io(&dir, e))? {
        let path = entry.map_err(|e| TrainError::io(&dir, e))?.path();
        let epoch = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("epoch-"))
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(epoch) = epoch {
            if path.join("state.json").is_file() {
                found.push((epoch, path));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Loads the pre-trained backbone of a run directory: its config and the EMA target encoder
/// (`encoder.mpk`). Fine-tuning, evaluation and export start here.
pub fn load_pretrained<B: Backend>(dir: &Path, device: &B::Device) -> Result<(PretrainConfig, Encoder<B>), TrainError> {
    let cfg: PretrainConfig = read_json(&dir.join(CONFIG_FILE))?;
    cfg.model.validate()?;
    let encoder = load_module(Encoder::new(&cfg.model.encoder, device), &dir.join(ENCODER_FILE), device)?;
    Ok((cfg, encoder))
}
