//! `jettag-train finetune`: a classification head on the pooled encoder tokens (DESIGN.md
//! section 5), trained with cross-entropy from a pre-trained encoder or from scratch, full or
//! with the backbone frozen, with early stopping on the validation loss.
//!
//! Run directory:
//!
//! ```text
//! DIR/config.json               FinetuneConfig: model, tokenizer, labels, init, settings, data
//! DIR/classifier.mpk            the best classifier (lowest validation loss)
//! DIR/metrics.jsonl             one JSON object per epoch (train/val loss, val accuracy/AUC)
//! DIR/summary.json              best epoch, its validation metrics, time, jets per second
//! DIR/checkpoints/epoch-NNNN/   the last two epochs: classifier.mpk, optimizer.mpk, state.json
//! ```
//!
//! With `--freeze-backbone` the encoder never changes, so the pooled features the head reads
//! (`concat(mean, max)` over real tokens) are computed once per jet and only the head's MLP
//! is trained on them: the same model and loss as running the frozen encoder every step, at a
//! fraction of the cost.
pub mod data;
pub mod infer;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{AutodiffModule, Module};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::TensorData;
use indicatif::{ProgressBar, ProgressStyle};
use jettag_core::{LabelSet, TokenizerConfig};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backend::DeviceKind;
use crate::checkpoint::{self, TrainSettings};
use crate::config::ModelConfig;
use crate::error::TrainError;
use crate::metrics;
use crate::model::{Classifier, ClassifierHead, Encoder, ModelInput};
use crate::schedule::LrSchedule;
use data::{FileOrder, LabeledJets};
use infer::Pooling;

pub const CLASSIFIER_FILE: &str = "classifier.mpk";
pub const SUMMARY_FILE: &str = "summary.json";
/// The `kind` of a fine-tuned run's `config.json`.
pub const KIND_CLASSIFIER: &str = "classifier";

/// Command-line options of `jettag-train finetune`.
#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("start").required(true).args(["init", "scratch"])))]
pub struct FinetuneArgs {
    /// Labelled training jets: ROOT files, directories or glob patterns.
    #[arg(long, required = true, num_args = 1..)]
    pub train: Vec<String>,
    /// Validation jets; without it, --val-fraction of the training jets is held out.
    #[arg(long, num_args = 1..)]
    pub val: Vec<String>,
    /// Fraction of the training jets held out for validation when --val is not given.
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Comma-separated label branches in class order, e.g. label_QCD,label_Tbqq (the last
    /// class of a binary task is the signal).
    #[arg(long)]
    pub labels: String,
    /// Comma-separated class names for model.toml [default: the label branches without
    /// `label_`].
    #[arg(long)]
    pub class_names: Option<String>,
    /// Pre-training run directory whose encoder initialises the backbone.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Start from random weights (with --config).
    #[arg(long)]
    pub scratch: bool,
    /// Model size for --scratch: tiny, small or paper.
    #[arg(long, default_value = "small")]
    pub config: String,
    /// Train only the head; the pre-trained encoder stays fixed.
    #[arg(long)]
    pub freeze_backbone: bool,
    /// Fraction of the (non-validation) training jets whose labels are used, drawn balanced
    /// by class with --seed.
    #[arg(long, default_value_t = 1.0)]
    pub label_fraction: f64,
    /// Most epochs (early stopping may end sooner).
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Jets per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Peak learning rate (warm-up, then cosine decay).
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// The backbone's learning rate relative to the head's (full fine-tuning only).
    #[arg(long, default_value_t = 1.0)]
    pub backbone_lr_scale: f64,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Stop after this many epochs without a lower validation loss.
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Read at most this many training jets (interleaved over the files).
    #[arg(long)]
    pub max_jets: Option<usize>,
    /// Read at most this many validation jets (with --val).
    #[arg(long)]
    pub max_val_jets: Option<usize>,
    /// An epoch covers at least this many jets, cycling through reshuffled passes of a small
    /// labelled set, so that tiny label fractions still get enough optimiser steps.
    #[arg(long, default_value_t = 0)]
    pub min_epoch_jets: usize,
    /// Run directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the last checkpoint in --out (same settings required).
    #[arg(long)]
    pub resume: bool,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Where the backbone's weights came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Init {
    Pretrained { dir: String },
    Scratch,
}

/// Optimisation settings of a fine-tuning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub backbone_lr_scale: f64,
    pub weight_decay: f64,
    pub warmup_steps: usize,
    pub final_lr_ratio: f64,
    pub grad_clip_norm: Option<f64>,
    pub patience: usize,
    pub seed: u64,
    /// Jets per epoch (at least the labelled set, see `--min-epoch-jets`).
    pub epoch_jets: usize,
    pub steps_per_epoch: usize,
    pub total_steps: usize,
}

/// The data a run used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneData {
    pub train: Vec<String>,
    /// Validation files; empty when the validation set was held out of `train`.
    pub val: Vec<String>,
    pub val_fraction: Option<f64>,
    pub max_jets: Option<usize>,
    pub label_fraction: f64,
    /// Training jets available before the label fraction (after the validation hold-out).
    pub n_available: usize,
    /// Labelled jets trained on, per class.
    pub train_class_counts: Vec<usize>,
    pub n_val: usize,
    /// Jets refused by tokenization.
    pub n_invalid: usize,
}

/// Everything needed to rebuild a fine-tuned model (`DIR/config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneConfig {
    /// Always [`KIND_CLASSIFIER`]; tells a fine-tuned run directory from a pre-training one.
    pub kind: String,
    pub model: ModelConfig,
    pub tokenizer: TokenizerConfig,
    /// Label branches in class order.
    pub labels: Vec<String>,
    pub class_names: Vec<String>,
    pub init: Init,
    /// Settings and data of the pre-training run, when the backbone came from one.
    pub pretrain: Option<TrainSettings>,
    pub freeze_backbone: bool,
    pub training: FinetuneSettings,
    pub data: FinetuneData,
}

impl FinetuneConfig {
    pub fn n_classes(&self) -> usize {
        self.labels.len()
    }

    pub fn label_set(&self) -> LabelSet {
        LabelSet { branches: self.labels.clone() }
    }
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epochs completed (1-based).
    pub epoch: usize,
    /// Optimiser steps taken so far.
    pub step: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    /// Binary tasks: ROC AUC; multi-class: the macro-averaged one-vs-rest AUC.
    pub val_auc: Option<f64>,
    /// Seconds since the start of this invocation.
    pub seconds: f64,
}

/// Progress saved with each checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneState {
    pub epoch: usize,
    pub step: usize,
    pub best_val_loss: f64,
    pub best_epoch: usize,
    /// Epochs since the best one.
    pub bad_epochs: usize,
}

/// What a run did (`DIR/summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneSummary {
    pub out: PathBuf,
    pub epochs_run: usize,
    pub steps: usize,
    pub stopped_early: bool,
    pub best_epoch: usize,
    pub best_val_loss: f64,
    pub best_val_accuracy: f64,
    pub best_val_auc: Option<f64>,
    pub n_train: usize,
    pub n_val: usize,
    pub trainable_params: usize,
    pub total_params: usize,
    /// Wall time of this invocation, including feature caching and validation.
    pub seconds: f64,
    /// Training jets per second over the optimiser steps.
    pub jets_per_second: f64,
}

/// The labelled sets a run trains and validates on.
pub struct Splits {
    pub train: LabeledJets,
    pub val: LabeledJets,
    /// Training jets before the label fraction.
    pub n_available: usize,
    pub n_invalid: usize,
}

/// Reads the training (and validation) files and applies the validation hold-out and the
/// label fraction.
pub fn load_splits(args: &FinetuneArgs, tokenizer: &TokenizerConfig) -> Result<Splits, TrainError> {
    let labels = LabelSet::parse(&args.labels);
    let train_files = data::expand("--train", &args.train)?;
    let all = data::load_labeled(&train_files, &labels, tokenizer, args.max_jets, FileOrder::Interleaved)?;
    let mut n_invalid = all.n_invalid;
    if let Some(example) = &all.invalid_example {
        eprintln!("training data: skipped {} jets that failed tokenization (e.g. {example})", all.n_invalid);
    }
    let (pool, val) = if args.val.is_empty() {
        let (kept, held) = data::stratified_holdout(&all.labels, all.n_classes, args.val_fraction, args.seed)?;
        (all.subset(&kept), all.subset(&held))
    } else {
        let val_files = data::expand("--val", &args.val)?;
        let val = data::load_labeled(&val_files, &labels, tokenizer, args.max_val_jets, FileOrder::Interleaved)?;
        n_invalid += val.n_invalid;
        (all, val)
    };
    if val.is_empty() {
        return Err(TrainError::Config(
            "the validation set is empty: pass --val FILES or a positive --val-fraction".into(),
        ));
    }
    let chosen = data::label_fraction_subset(&pool.labels, pool.n_classes, args.label_fraction, args.seed)?;
    let n_available = pool.len();
    let train = pool.subset(&chosen);
    Ok(Splits { train, val, n_available, n_invalid })
}

/// The run configuration for `args` on `splits` (model shapes from the pre-training run or the
/// named config).
pub fn config_from_args(args: &FinetuneArgs, splits: &Splits) -> Result<FinetuneConfig, TrainError> {
    let labels = LabelSet::parse(&args.labels);
    let class_names = match &args.class_names {
        Some(names) => LabelSet::parse(names).branches,
        None => data::default_class_names(&labels),
    };
    if class_names.len() != labels.branches.len() {
        return Err(TrainError::Config(format!(
            "{} class names for {} label branches",
            class_names.len(),
            labels.branches.len()
        )));
    }
    let (model, tokenizer, init, pretrain) = match (&args.init, args.scratch) {
        (Some(dir), false) => {
            let cfg: checkpoint::PretrainConfig = checkpoint::read_json(&dir.join(checkpoint::CONFIG_FILE))?;
            (cfg.model, cfg.tokenizer, Init::Pretrained { dir: dir.display().to_string() }, Some(cfg.training))
        }
        (None, true) => (ModelConfig::by_name(&args.config)?, TokenizerConfig::default(), Init::Scratch, None),
        _ => return Err(TrainError::Config("pass exactly one of --init PRETRAIN_DIR and --scratch".into())),
    };
    model.validate()?;
    if args.freeze_backbone && init == Init::Scratch {
        return Err(TrainError::Config(
            "--freeze-backbone with --scratch would train a head on random features; use --init".into(),
        ));
    }
    if args.batch == 0 || args.epochs == 0 {
        return Err(TrainError::Config("--batch and --epochs must be positive".into()));
    }
    if !(args.lr > 0.0 && args.backbone_lr_scale >= 0.0) {
        return Err(TrainError::Config("--lr must be positive and --backbone-lr-scale non-negative".into()));
    }
    let epoch_jets = splits.train.len().max(args.min_epoch_jets);
    let steps_per_epoch = epoch_jets.div_ceil(args.batch);
    let total_steps = steps_per_epoch * args.epochs;
    Ok(FinetuneConfig {
        kind: KIND_CLASSIFIER.into(),
        model,
        tokenizer,
        labels: labels.branches.clone(),
        class_names,
        init,
        pretrain,
        freeze_backbone: args.freeze_backbone,
        training: FinetuneSettings {
            epochs: args.epochs,
            batch_size: args.batch,
            lr: args.lr,
            backbone_lr_scale: args.backbone_lr_scale,
            weight_decay: args.weight_decay,
            warmup_steps: (total_steps / 20).max(1),
            final_lr_ratio: 0.01,
            grad_clip_norm: Some(1.0),
            patience: args.patience.max(1),
            seed: args.seed,
            epoch_jets,
            steps_per_epoch,
            total_steps,
        },
        data: FinetuneData {
            train: args.train.clone(),
            val: args.val.clone(),
            val_fraction: args.val.is_empty().then_some(args.val_fraction),
            max_jets: args.max_jets,
            label_fraction: args.label_fraction,
            n_available: splits.n_available,
            train_class_counts: splits.train.class_counts(),
            n_val: splits.val.len(),
            n_invalid: splits.n_invalid,
        },
    })
}

/// `jettag-train finetune`: reads the data, builds the config and trains on backend `B`.
pub fn run_finetune<B: AutodiffBackend>(args: &FinetuneArgs, device: &B::Device) -> Result<FinetuneSummary, TrainError> {
    // The tokenizer must be the pre-training run's, so read it before the data.
    let tokenizer = match &args.init {
        Some(dir) => checkpoint::read_json::<checkpoint::PretrainConfig>(&dir.join(checkpoint::CONFIG_FILE))?.tokenizer,
        None => TokenizerConfig::default(),
    };
    let t0 = Instant::now();
    let splits = load_splits(args, &tokenizer)?;
    let cfg = config_from_args(args, &splits)?;
    eprintln!(
        "data: {} labelled training jets {:?} (of {} available, label fraction {}), {} validation jets; read in {:.1} s",
        splits.train.len(),
        cfg.data.train_class_counts,
        splits.n_available,
        args.label_fraction,
        splits.val.len(),
        t0.elapsed().as_secs_f64()
    );
    let opts = RunOptions { resume: args.resume, progress: !args.quiet };
    train::<B>(&cfg, &splits.train, &splits.val, &args.out, &opts, device)
}

/// Options that do not change what is trained.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub resume: bool,
    pub progress: bool,
}

/// The classifier of `cfg` with random weights (head always; encoder too for `--scratch`),
/// initialised under the same lock and seed discipline as pre-training, so a seed fixes it.
pub fn init_classifier<B: Backend>(cfg: &FinetuneConfig, device: &B::Device) -> Result<Classifier<B>, TrainError> {
    let pretrained = match &cfg.init {
        Init::Pretrained { dir } => Some(checkpoint::load_pretrained::<B>(Path::new(dir), device)?.1),
        Init::Scratch => None,
    };
    let _guard = crate::pretrain::INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    B::seed(device, cfg.training.seed);
    let encoder = pretrained.unwrap_or_else(|| Encoder::new(&cfg.model.encoder, device));
    let head = ClassifierHead::new(cfg.model.encoder.d_model, cfg.n_classes(), device);
    let model = Classifier { encoder, head };
    crate::jepa::materialize(&model);
    Ok(model)
}

/// An empty classifier of `cfg`'s shapes, to load weights into.
pub fn classifier_shell<B: Backend>(cfg: &FinetuneConfig, device: &B::Device) -> Classifier<B> {
    Classifier {
        encoder: Encoder::new(&cfg.model.encoder, device),
        head: ClassifierHead::new(cfg.model.encoder.d_model, cfg.n_classes(), device),
    }
}

/// Loads a fine-tuned run directory: its config and best classifier.
pub fn load_classifier<B: Backend>(dir: &Path, device: &B::Device) -> Result<(FinetuneConfig, Classifier<B>), TrainError> {
    let cfg: FinetuneConfig = checkpoint::read_json(&dir.join(checkpoint::CONFIG_FILE))?;
    if cfg.kind != KIND_CLASSIFIER {
        return Err(TrainError::Checkpoint(format!("{}: kind '{}' is not a fine-tuned classifier", dir.display(), cfg.kind)));
    }
    cfg.model.validate()?;
    let model = checkpoint::load_module(classifier_shell::<B>(&cfg, device), &dir.join(CLASSIFIER_FILE), device)?;
    Ok((cfg, model))
}

/// Whether `dir` holds a fine-tuned classifier (rather than a pre-trained encoder).
pub fn is_finetuned_dir(dir: &Path) -> bool {
    dir.join(CLASSIFIER_FILE).is_file()
}

/// Validation results of one epoch.
#[derive(Debug, Clone)]
pub struct ValStats {
    pub loss: f64,
    pub accuracy: f64,
    pub auc: Option<f64>,
}

/// Loss, accuracy and AUC (binary) or macro one-vs-rest AUC (multi-class) from logits.
pub fn score_logits(logits: &[f32], labels: &[usize], n_classes: usize) -> Result<ValStats, TrainError> {
    let loss = infer::cross_entropy(logits, labels, n_classes);
    let probs = infer::softmax_rows(logits, n_classes);
    let predicted = metrics::argmax_rows(&probs, n_classes)?;
    let accuracy = metrics::accuracy(&predicted, labels)?;
    let auc = if n_classes == 2 {
        let scores: Vec<f32> = probs.iter().skip(1).step_by(2).copied().collect();
        let signal: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
        metrics::roc_auc(&scores, &signal).ok()
    } else {
        metrics::macro_average(&metrics::one_vs_rest_auc(&probs, labels, n_classes)?)
    };
    Ok(ValStats { loss, accuracy, auc })
}

/// Cached inputs of the head's MLP for frozen-backbone training.
struct FrozenFeatures {
    width: usize,
    train: Vec<f32>,
    val: Vec<f32>,
}

/// Model, optimiser and (for a frozen backbone) the cached head inputs.
pub struct Finetuner<B: AutodiffBackend> {
    pub model: Classifier<B>,
    optim: OptimizerAdaptor<AdamW, Classifier<B>, B>,
    cfg: FinetuneConfig,
    device: B::Device,
    frozen: Option<FrozenFeatures>,
}

fn float_tensor<B: Backend, const D: usize>(data: Vec<f32>, shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(data, shape.to_vec()), device)
}

fn label_tensor<B: Backend>(labels: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let v: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::from_data(TensorData::new(v, vec![labels.len()]), device)
}

impl<B: AutodiffBackend> Finetuner<B> {
    pub fn new(cfg: FinetuneConfig, device: &B::Device) -> Result<Self, TrainError> {
        let mut model = init_classifier::<B>(&cfg, device)?;
        if cfg.freeze_backbone {
            model.encoder = model.encoder.no_grad();
        }
        let t = &cfg.training;
        let optim = AdamWConfig::new()
            .with_weight_decay(t.weight_decay as f32)
            .with_grad_clipping(t.grad_clip_norm.map(|c| GradientClippingConfig::Norm(c as f32)))
            .init::<B, Classifier<B>>();
        Ok(Self { model, optim, cfg, device: device.clone(), frozen: None })
    }

    pub fn lr_schedule(&self) -> LrSchedule {
        let t = &self.cfg.training;
        LrSchedule { peak: t.lr, warmup: t.warmup_steps, total: t.total_steps, final_ratio: t.final_lr_ratio }
    }

    /// Parameters the optimiser updates.
    pub fn trainable_params(&self) -> usize {
        if self.cfg.freeze_backbone {
            self.model.head.num_params()
        } else {
            self.model.num_params()
        }
    }

    /// Frozen backbone: computes the head's inputs for both sets once.
    fn cache_features(&mut self, train: &LabeledJets, val: &LabeledJets) -> Result<(), TrainError> {
        if !self.cfg.freeze_backbone || self.frozen.is_some() {
            return Ok(());
        }
        let encoder = self.model.encoder.valid();
        let k = self.cfg.tokenizer.k;
        let f = |set| infer::pooled_features(&encoder, set, Pooling::MeanMax, 256, k, &self.device);
        self.frozen = Some(FrozenFeatures { width: 2 * encoder.d_model, train: f(train)?, val: f(val)? });
        Ok(())
    }

    /// One optimiser step on the training jets at `positions`; returns the batch loss.
    pub fn step(&mut self, train: &LabeledJets, positions: &[usize], step: usize) -> Result<f64, TrainError> {
        let labels: Vec<usize> = positions.iter().map(|&i| train.labels[i]).collect();
        let targets = label_tensor::<B>(&labels, &self.device);
        let logits = match &self.frozen {
            Some(f) => {
                let mut x = Vec::with_capacity(positions.len() * f.width);
                for &i in positions {
                    x.extend_from_slice(&f.train[i * f.width..(i + 1) * f.width]);
                }
                let x = float_tensor::<B, 2>(x, [positions.len(), f.width], &self.device);
                self.model.head.mlp.forward(x)
            }
            None => {
                let (batch, _) = train.batch(positions, self.cfg.tokenizer.k);
                let input = ModelInput::<B>::from_batch(&batch, &self.device)?;
                self.model.forward(&input).logits
            }
        };
        let loss = CrossEntropyLossConfig::new().init(&self.device).forward(logits, targets);
        let loss_value: f64 = loss.clone().into_scalar().elem();
        if !loss_value.is_finite() {
            return Err(TrainError::Diverged(format!("loss is {loss_value} at step {step}")));
        }
        let lr = self.lr_schedule().at(step);
        let mut grads = loss.backward();
        let scale = self.cfg.training.backbone_lr_scale;
        if self.frozen.is_none() && !self.cfg.freeze_backbone && scale != 1.0 {
            let head = GradientsParams::from_module(&mut grads, &self.model.head);
            let backbone = GradientsParams::from_module(&mut grads, &self.model.encoder);
            self.model = self.optim.step(lr, self.model.clone(), head);
            if scale > 0.0 {
                self.model = self.optim.step(lr * scale, self.model.clone(), backbone);
            }
        } else {
            let grads = GradientsParams::from_grads(grads, &self.model);
            self.model = self.optim.step(lr, self.model.clone(), grads);
        }
        Ok(loss_value)
    }

    /// Validation logits of every jet of `val`.
    pub fn val_logits(&self, val: &LabeledJets) -> Result<Vec<f32>, TrainError> {
        let model = self.model.valid();
        match &self.frozen {
            Some(f) => {
                let mut out = Vec::with_capacity(val.len() * self.cfg.n_classes());
                for start in (0..val.len()).step_by(1024) {
                    let end = (start + 1024).min(val.len());
                    let x = float_tensor::<B::InnerBackend, 2>(
                        f.val[start * f.width..end * f.width].to_vec(),
                        [end - start, f.width],
                        &self.device,
                    );
                    let logits = model.head.mlp.forward(x);
                    out.extend(logits.into_data().convert::<f32>().iter::<f32>());
                }
                Ok(out)
            }
            None => Ok(infer::classify(&model, val, 256, self.cfg.tokenizer.k, &self.device)?.logits),
        }
    }

    /// Writes `dir/{classifier,optimizer}.mpk` and `dir/state.json` (last, marking it complete).
    pub fn save(&self, dir: &Path, state: &FinetuneState) -> Result<(), TrainError> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        checkpoint::save_record::<B, _>(self.model.clone().into_record(), &dir.join("classifier"))?;
        checkpoint::save_record::<B, _>(self.optim.to_record(), &dir.join("optimizer"))?;
        checkpoint::write_json(&dir.join("state.json"), state)
    }

    /// Restores what [`Finetuner::save`] wrote.
    pub fn load(mut self, dir: &Path) -> Result<(Self, FinetuneState), TrainError> {
        let state: FinetuneState = checkpoint::read_json(&dir.join("state.json"))?;
        self.model = checkpoint::load_module(self.model, &dir.join("classifier"), &self.device)?;
        if self.cfg.freeze_backbone {
            self.model.encoder = self.model.encoder.no_grad();
        }
        let record = checkpoint::load_record::<B, _>(&dir.join("optimizer"), &self.device)?;
        self.optim = self.optim.load_record(record);
        Ok((self, state))
    }
}

/// The training positions of one epoch: reshuffled passes over `n` jets, concatenated until
/// `epoch_jets` are reached, seeded by (seed, epoch).
pub fn epoch_order(n: usize, epoch_jets: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut out = Vec::with_capacity(epoch_jets);
    while out.len() < epoch_jets {
        let mut pass: Vec<usize> = (0..n).collect();
        pass.shuffle(&mut rng);
        let need = epoch_jets - out.len();
        out.extend_from_slice(&pass[..need.min(n)]);
    }
    out
}

fn read_records(path: &Path) -> Result<Vec<EpochRecord>, TrainError> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| TrainError::Json { path: path.to_path_buf(), reason: e.to_string() }))
        .collect()
}

fn write_records(path: &Path, records: &[EpochRecord]) -> Result<(), TrainError> {
    let text: String = records
        .iter()
        .map(|r| serde_json::to_string(r).expect("plain struct serialises") + "\n")
        .collect();
    std::fs::write(path, text).map_err(|e| TrainError::io(path, e))
}

/// Trains `cfg` on `train`, validating on `val` after every epoch; writes the run directory
/// `out` (see the module docs) and returns the summary.
pub fn train<B: AutodiffBackend>(
    cfg: &FinetuneConfig,
    train: &LabeledJets,
    val: &LabeledJets,
    out: &Path,
    opts: &RunOptions,
    device: &B::Device,
) -> Result<FinetuneSummary, TrainError> {
    if train.is_empty() || val.is_empty() {
        return Err(TrainError::NoJets);
    }
    if train.n_classes != cfg.n_classes() || val.n_classes != cfg.n_classes() {
        return Err(TrainError::Config("the data's classes do not match the config's labels".into()));
    }
    let start = Instant::now();
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let config_path = out.join(checkpoint::CONFIG_FILE);
    let checkpoints = checkpoint::list_checkpoints(out)?;
    if opts.resume {
        let stored: FinetuneConfig = checkpoint::read_json(&config_path)?;
        if &stored != cfg {
            return Err(TrainError::Checkpoint(format!(
                "{} was written with different settings or data; resume with the same arguments",
                config_path.display()
            )));
        }
    } else if !checkpoints.is_empty() || config_path.exists() {
        return Err(TrainError::Checkpoint(format!(
            "{} already holds a run; pass --resume to continue it or choose another --out",
            out.display()
        )));
    } else {
        checkpoint::write_json(&config_path, cfg)?;
    }

    let mut tuner = Finetuner::<B>::new(cfg.clone(), device)?;
    let mut state = FinetuneState { epoch: 0, step: 0, best_val_loss: f64::INFINITY, best_epoch: 0, bad_epochs: 0 };
    let metrics_path = out.join(checkpoint::METRICS_FILE);
    let mut records = Vec::new();
    if opts.resume {
        if let Some((_, dir)) = checkpoints.last() {
            let (t, s) = tuner.load(dir)?;
            tuner = t;
            state = s;
            eprintln!("resuming from {} (epoch {}, step {})", dir.display(), state.epoch, state.step);
        }
        records = read_records(&metrics_path)?;
        records.retain(|r| r.epoch <= state.epoch);
    }
    write_records(&metrics_path, &records)?;
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&metrics_path)
        .map_err(|e| TrainError::io(&metrics_path, e))?;
    eprintln!(
        "model '{}': {} parameters, {} trainable ({}; init {})",
        cfg.model.name,
        tuner.model.num_params(),
        tuner.trainable_params(),
        if cfg.freeze_backbone { "frozen backbone" } else { "full fine-tuning" },
        match &cfg.init {
            Init::Pretrained { dir } => dir.as_str(),
            Init::Scratch => "random",
        }
    );
    tuner.cache_features(train, val)?;

    let t = &cfg.training;
    let bar = if opts.progress { ProgressBar::new(t.total_steps as u64) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}").expect("valid template"));
    bar.set_position(state.step as u64);
    let best_path = out.join("classifier");
    let train_start = Instant::now();
    let mut jets_trained = 0usize;
    let mut stopped_early = state.bad_epochs >= t.patience;
    while state.epoch < t.epochs && !stopped_early {
        let epoch = state.epoch;
        let order = epoch_order(train.len(), t.epoch_jets, t.seed, epoch);
        let mut loss_sum = 0.0;
        let mut batches = 0usize;
        for positions in order.chunks(t.batch_size) {
            let loss = tuner.step(train, positions, state.step)?;
            loss_sum += loss;
            batches += 1;
            state.step += 1;
            jets_trained += positions.len();
            bar.set_position(state.step as u64);
            let rate = jets_trained as f64 / train_start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("epoch {} loss {loss:.4} {rate:.0} jets/s", epoch + 1));
        }
        let logits = tuner.val_logits(val)?;
        let stats = score_logits(&logits, &val.labels, cfg.n_classes())?;
        state.epoch += 1;
        let record = EpochRecord {
            epoch: state.epoch,
            step: state.step,
            lr: tuner.lr_schedule().at(state.step.saturating_sub(1)),
            train_loss: loss_sum / batches.max(1) as f64,
            val_loss: stats.loss,
            val_accuracy: stats.accuracy,
            val_auc: stats.auc,
            seconds: start.elapsed().as_secs_f64(),
        };
        writeln!(log, "{}", serde_json::to_string(&record).expect("plain struct serialises"))
            .map_err(|e| TrainError::io(&metrics_path, e))?;
        bar.println(format!(
            "epoch {}: train loss {:.4}, val loss {:.4}, val accuracy {:.4}, val AUC {}",
            record.epoch,
            record.train_loss,
            record.val_loss,
            record.val_accuracy,
            record.val_auc.map_or("-".into(), |a| format!("{a:.4}"))
        ));
        records.push(record);
        if stats.loss < state.best_val_loss {
            state.best_val_loss = stats.loss;
            state.best_epoch = state.epoch;
            state.bad_epochs = 0;
            checkpoint::save_record::<B::InnerBackend, _>(tuner.model.valid().into_record(), &best_path)?;
        } else {
            state.bad_epochs += 1;
        }
        stopped_early = state.bad_epochs >= t.patience && state.epoch < t.epochs;
        tuner.save(&checkpoint::checkpoint_dir(out, state.epoch), &state)?;
        prune_checkpoints(out, 2)?;
    }
    bar.finish_and_clear();
    let best = records
        .iter()
        .find(|r| r.epoch == state.best_epoch)
        .ok_or_else(|| TrainError::Checkpoint("no epoch finished, so there is no best model".into()))?;
    let summary = FinetuneSummary {
        out: out.to_path_buf(),
        epochs_run: state.epoch,
        steps: state.step,
        stopped_early,
        best_epoch: state.best_epoch,
        best_val_loss: best.val_loss,
        best_val_accuracy: best.val_accuracy,
        best_val_auc: best.val_auc,
        n_train: train.len(),
        n_val: val.len(),
        trainable_params: tuner.trainable_params(),
        total_params: tuner.model.num_params(),
        seconds: start.elapsed().as_secs_f64(),
        jets_per_second: jets_trained as f64 / train_start.elapsed().as_secs_f64().max(1e-9),
    };
    checkpoint::write_json(&out.join(SUMMARY_FILE), &summary)?;
    Ok(summary)
}

fn prune_checkpoints(out: &Path, keep: usize) -> Result<(), TrainError> {
    let all = checkpoint::list_checkpoints(out)?;
    for (_, dir) in all.iter().take(all.len().saturating_sub(keep)) {
        std::fs::remove_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_order_cycles_small_sets_and_is_seeded() {
        let o = epoch_order(5, 12, 1, 0);
        assert_eq!(o.len(), 12);
        // The first pass is a permutation of all five jets.
        let mut first: Vec<usize> = o[..5].to_vec();
        first.sort_unstable();
        assert_eq!(first, vec![0, 1, 2, 3, 4]);
        assert_eq!(o, epoch_order(5, 12, 1, 0));
        assert_ne!(o, epoch_order(5, 12, 1, 1), "each epoch reshuffles");
        assert_eq!(epoch_order(7, 3, 0, 0).len(), 3);
    }

    #[test]
    fn score_logits_binary_and_multiclass() {
        // Perfectly separated: AUC 1, accuracy 1.
        let logits = [1.0, 0.0, 0.0, 1.0, 2.0, -1.0, -1.0, 3.0];
        let s = score_logits(&logits, &[0, 1, 0, 1], 2).unwrap();
        assert_eq!((s.accuracy, s.auc), (1.0, Some(1.0)));
        let s = score_logits(&logits, &[1, 0, 1, 0], 2).unwrap();
        assert_eq!((s.accuracy, s.auc), (0.0, Some(0.0)));
        let three = [3.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 3.0];
        let s = score_logits(&three, &[0, 1, 2], 3).unwrap();
        assert_eq!((s.accuracy, s.auc), (1.0, Some(1.0)));
    }
}
