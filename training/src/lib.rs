//! `jettag-train`: the HEP-JEPA model in burn, its self-supervised pre-training, and (in
//! later modules) fine-tuning, evaluation and ONNX export.
//!
//! Layout: [`config`] (named sizes), [`model`] (tokenizer, attention, blocks, encoder,
//! predictor, classifier head), [`jepa`] (masking, EMA, loss, the JEPA model), [`data`]
//! (files → tokenized jets → batches), [`pretrain`] (the training loop and its CLI options),
//! [`checkpoint`] (run-directory files), [`schedule`], [`plot`], [`backend`].
pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod eval;
pub mod export;
pub mod fewshot;
pub mod finetune;
pub mod jepa;
pub mod metrics;
pub mod model;
pub mod onnx;
pub mod plot;
pub mod pretrain;
pub mod schedule;

pub use config::ModelConfig;
pub use error::TrainError;
