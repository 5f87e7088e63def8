//! `jettag-train pretrain`: the JEPA training loop (AdamW with warm-up and cosine decay, EMA
//! target, per-epoch checkpoints, metrics log, loss plot).
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::grad_clipping::GradientClippingConfig;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::TensorData;
use indicatif::{ProgressBar, ProgressStyle};
use jettag_core::TokenizerConfig;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, PretrainConfig, TrainSettings, TrainState};
use crate::config::ModelConfig;
use crate::data::{self, BatchMsg, JetSource, PretrainBatch, RootJets, SkipCounts};
use crate::error::TrainError;
use crate::jepa::{
    ema_update, materialize, mean_channel_std, momentum_at, smooth_l1_masked, target_embeddings, BatchMasks,
    JepaModel, MaskTensors, MaskingConfig, MaskingStrategy,
};
use crate::model::{Encoder, ModelInput};
use crate::schedule::LrSchedule;
use crate::backend::DeviceKind;

/// Command-line options of `jettag-train pretrain`.
#[derive(clap::Args, Debug, Clone)]
pub struct PretrainArgs {
    /// Input ROOT files, directories or glob patterns (labels are ignored).
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<String>,
    /// Model size: tiny, small or paper.
    #[arg(long, default_value = "small")]
    pub config: String,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Jets per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Run directory (config, checkpoints, metrics, plot, final encoder).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Peak learning rate.
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// Linear warm-up steps [default: 5 % of all steps].
    #[arg(long)]
    pub warmup_steps: Option<usize>,
    #[arg(long, default_value_t = 0.05)]
    pub weight_decay: f64,
    /// Continue from the last checkpoint in --out (same settings required).
    #[arg(long)]
    pub resume: bool,
    /// Use at most this many jets per epoch.
    #[arg(long)]
    pub max_jets: Option<usize>,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Register tokens (0 disables them) [default: 4].
    #[arg(long)]
    pub registers: Option<usize>,
    /// Target blocks per jet.
    #[arg(long, default_value_t = 4)]
    pub targets: usize,
    #[arg(long, value_enum, default_value_t = MaskingStrategy::Contiguous)]
    pub masking: MaskingStrategy,
    /// Ablation: attention without the pair-feature bias.
    #[arg(long)]
    pub no_pair_bias: bool,
    /// Jets held in the shuffle buffer.
    #[arg(long, default_value_t = 4096)]
    pub shuffle_buffer: usize,
    /// Epoch checkpoints kept on disk (older ones are deleted).
    #[arg(long, default_value_t = 2)]
    pub keep_checkpoints: usize,
    /// Stop after this many optimiser steps (benchmarks): writes the encoder, metrics and plot
    /// but no checkpoint for the unfinished epoch.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Options of a run that do not change what is trained.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub resume: bool,
    pub progress: bool,
    pub keep_checkpoints: usize,
    pub max_steps: Option<usize>,
}

/// `DIR/summary.json`: steps, epochs, wall time and throughput of the last invocation.
pub const SUMMARY_FILE: &str = "summary.json";

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Optimiser step (0-based) this line describes.
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
    pub ema_momentum: f64,
    /// Mean over channels of the per-channel std of the target embeddings in the batch.
    pub target_std: f64,
    pub jets: usize,
}

/// What a run did, for the caller and the final message.
#[derive(Debug, Clone)]
pub struct PretrainSummary {
    pub steps: usize,
    pub epochs: usize,
    pub records: Vec<StepRecord>,
    /// Jets per second over this invocation's steps (including data loading).
    pub jets_per_second: f64,
    pub encoder_params: usize,
    pub predictor_params: usize,
    pub skipped: SkipCounts,
    pub out: PathBuf,
}

/// The run configuration the arguments ask for.
pub fn config_from_args(args: &PretrainArgs, files: &[PathBuf], jets_per_epoch: usize) -> Result<PretrainConfig, TrainError> {
    let mut model = ModelConfig::by_name(&args.config)?;
    if let Some(r) = args.registers {
        model.encoder.n_registers = r;
    }
    model.encoder.pair_bias = !args.no_pair_bias;
    model.validate()?;
    let masking = MaskingConfig { strategy: args.masking, n_targets: args.targets, ..Default::default() };
    masking.validate()?;
    if args.batch == 0 || args.epochs == 0 {
        return Err(TrainError::Config("--batch and --epochs must be positive".into()));
    }
    let total_steps = args.epochs * jets_per_epoch.div_ceil(args.batch);
    Ok(PretrainConfig {
        model,
        tokenizer: TokenizerConfig::default(),
        masking,
        training: TrainSettings {
            epochs: args.epochs,
            batch_size: args.batch,
            seed: args.seed,
            lr: args.lr,
            final_lr_ratio: 0.01,
            warmup_steps: args.warmup_steps.unwrap_or((total_steps / 20).max(1)),
            weight_decay: args.weight_decay,
            grad_clip_norm: Some(1.0),
            ema_start: 0.996,
            ema_end: 1.0,
            total_steps,
            data: files.iter().map(|p| p.display().to_string()).collect(),
            max_jets: args.max_jets,
        },
    })
}

/// `jettag-train pretrain`: resolves inputs, builds the config and trains on backend `B`.
pub fn run_pretrain<B: AutodiffBackend>(args: &PretrainArgs, device: &B::Device) -> Result<PretrainSummary, TrainError> {
    let files = data::expand_inputs(&args.data)?;
    let tokenizer = TokenizerConfig::default();
    let source = RootJets::new(files.clone(), tokenizer, args.max_jets, args.shuffle_buffer)?;
    eprintln!("data: {} ({} jets per epoch)", data::describe_inputs(&files), source.jets_per_epoch());
    let cfg = config_from_args(args, &files, source.jets_per_epoch())?;
    let opts = RunOptions {
        resume: args.resume,
        progress: !args.quiet,
        keep_checkpoints: args.keep_checkpoints.max(1),
        max_steps: args.max_steps,
    };
    train::<B>(&cfg, &source, &args.out, &opts, device)
}

/// Serialises model initialisation: burn's CPU backend keeps one global RNG, so two models
/// initialised at once (tests run in parallel) would interleave draws and lose determinism.
pub(crate) static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A freshly initialised JEPA model, identical for identical `seed` and config.
pub fn init_model<B: Backend>(cfg: &ModelConfig, seed: u64, device: &B::Device) -> JepaModel<B> {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    B::seed(device, seed);
    let model = JepaModel::new(cfg, device);
    materialize(&model);
    model
}

fn stream_rng(seed: u64, epoch: usize, tag: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ tag.rotate_left(32))
}

/// Model, EMA target and optimiser state of a run.
pub struct Trainer<B: AutodiffBackend> {
    pub model: JepaModel<B>,
    pub target: Encoder<B::InnerBackend>,
    optim: OptimizerAdaptor<AdamW, JepaModel<B>, B>,
    pub cfg: PretrainConfig,
    pub device: B::Device,
}

/// Loss and monitors of one step.
#[derive(Debug, Clone, Copy)]
pub struct StepStats {
    pub loss: f64,
    pub target_std: f64,
}

impl<B: AutodiffBackend> Trainer<B> {
    pub fn new(cfg: PretrainConfig, device: &B::Device) -> Self {
        let model = init_model::<B>(&cfg.model, cfg.training.seed, device);
        let target = model.encoder.valid();
        let t = &cfg.training;
        let optim = AdamWConfig::new()
            .with_weight_decay(t.weight_decay as f32)
            .with_grad_clipping(t.grad_clip_norm.map(|c| GradientClippingConfig::Norm(c as f32)))
            .init::<B, JepaModel<B>>();
        Self { model, target, optim, cfg, device: device.clone() }
    }

    pub fn lr_schedule(&self) -> LrSchedule {
        let t = &self.cfg.training;
        LrSchedule { peak: t.lr, warmup: t.warmup_steps, total: t.total_steps, final_ratio: t.final_lr_ratio }
    }

    pub fn momentum(&self, step: usize) -> f64 {
        let t = &self.cfg.training;
        momentum_at(step, t.total_steps, t.ema_start, t.ema_end)
    }

    /// One optimisation step on `batch` with masks drawn from `rng`.
    pub fn step(&mut self, batch: &PretrainBatch, step: usize, rng: &mut ChaCha8Rng) -> Result<StepStats, TrainError> {
        let masks = BatchMasks::sample(&batch.token_counts, &self.cfg.masking, rng)?;
        let input = ModelInput::<B>::from_batch(&batch.batch, &self.device)?;
        let input_inner = ModelInput::<B::InnerBackend>::from_batch(&batch.batch, &self.device)?;
        let mask_tensors = MaskTensors::<B>::new(&masks, &self.device);

        let target_idx = Tensor::<B::InnerBackend, 2, Int>::from_data(
            TensorData::new(masks.target_idx.clone(), vec![masks.b, masks.nt]),
            &self.device,
        );
        let targets = target_embeddings(&self.target, &input_inner, target_idx);
        let d = targets.dims()[2];
        let values = targets.clone().into_data().to_vec::<f32>().map_err(|e| TrainError::Config(format!("{e:?}")))?;
        let target_std = mean_channel_std(&values, &masks.target_mask, d);

        let pred = self.model.predict(&input, &mask_tensors);
        let loss = smooth_l1_masked(pred, Tensor::from_inner(targets), mask_tensors.target_mask);
        let loss_value: f64 = loss.clone().into_scalar().elem();
        if !loss_value.is_finite() {
            return Err(TrainError::Diverged(format!("loss is {loss_value} at step {step}")));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        let lr = self.lr_schedule().at(step);
        self.model = self.optim.step(lr, self.model.clone(), grads);
        let online = self.model.encoder.valid();
        let target = std::mem::replace(&mut self.target, online.clone());
        self.target = ema_update(target, &online, self.momentum(step))?;
        Ok(StepStats { loss: loss_value, target_std })
    }

    /// Writes `dir/{jepa,target,optimizer}.mpk` and `dir/state.json`.
    pub fn save(&self, dir: &Path, state: TrainState) -> Result<(), TrainError> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        checkpoint::save_record::<B, _>(self.model.clone().into_record(), &dir.join("jepa"))?;
        checkpoint::save_record::<B::InnerBackend, _>(self.target.clone().into_record(), &dir.join("target"))?;
        checkpoint::save_record::<B, _>(self.optim.to_record(), &dir.join("optimizer"))?;
        // state.json last: its presence marks the checkpoint complete.
        checkpoint::write_json(&dir.join("state.json"), &state)
    }

    /// Restores what [`Trainer::save`] wrote.
    pub fn load(mut self, dir: &Path) -> Result<(Self, TrainState), TrainError> {
        let state: TrainState = checkpoint::read_json(&dir.join("state.json"))?;
        self.model = checkpoint::load_module(self.model, &dir.join("jepa"), &self.device)?;
        self.target = checkpoint::load_module(self.target, &dir.join("target"), &self.device)?;
        let record = checkpoint::load_record::<B, _>(&dir.join("optimizer"), &self.device)?;
        self.optim = self.optim.load_record(record);
        Ok((self, state))
    }
}

fn read_records(path: &Path) -> Result<Vec<StepRecord>, TrainError> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| TrainError::Json { path: path.to_path_buf(), reason: e.to_string() }))
        .collect()
}

fn write_records(path: &Path, records: &[StepRecord]) -> Result<(), TrainError> {
    let mut text = String::new();
    for r in records {
        text += &serde_json::to_string(r).expect("plain struct serialises");
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| TrainError::io(path, e))
}

/// Trains `cfg` on `source`, writing the run directory `out` (see [`crate::checkpoint`]).
pub fn train<B: AutodiffBackend>(
    cfg: &PretrainConfig,
    source: &dyn JetSource,
    out: &Path,
    opts: &RunOptions,
    device: &B::Device,
) -> Result<PretrainSummary, TrainError> {
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let config_path = out.join(checkpoint::CONFIG_FILE);
    let checkpoints = checkpoint::list_checkpoints(out)?;
    if opts.resume {
        let stored: PretrainConfig = checkpoint::read_json(&config_path)?;
        if &stored != cfg {
            return Err(TrainError::Checkpoint(format!(
                "{} was written with different settings; resume with the same arguments\n stored:    {}\n requested: {}",
                config_path.display(),
                serde_json::to_string(&stored).unwrap_or_default(),
                serde_json::to_string(cfg).unwrap_or_default()
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

    let mut trainer = Trainer::<B>::new(cfg.clone(), device);
    let encoder_params = trainer.model.encoder.num_params();
    let predictor_params = trainer.model.predictor.num_params();
    eprintln!(
        "model '{}': encoder {} parameters, predictor {} (D {}, {} layers, {} heads, {} registers, pair bias {})",
        cfg.model.name,
        encoder_params,
        predictor_params,
        cfg.model.encoder.d_model,
        cfg.model.encoder.n_layers,
        cfg.model.encoder.n_heads,
        cfg.model.encoder.n_registers,
        if cfg.model.encoder.pair_bias { "on" } else { "off" },
    );
    let mut state = TrainState { epoch: 0, step: 0 };
    let metrics_path = out.join(checkpoint::METRICS_FILE);
    let mut records = Vec::new();
    if opts.resume {
        match checkpoints.last() {
            Some((_, dir)) => {
                let (t, s) = trainer.load(dir)?;
                trainer = t;
                state = s;
                eprintln!("resuming from {} (epoch {}, step {})", dir.display(), s.epoch, s.step);
            }
            None => eprintln!("no checkpoint in {}: starting from scratch", out.display()),
        }
        // Drop lines logged after the checkpoint (an interrupted epoch) so the log matches.
        records = read_records(&metrics_path)?;
        records.retain(|r| r.step < state.step);
    }
    write_records(&metrics_path, &records)?;
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&metrics_path)
        .map_err(|e| TrainError::io(&metrics_path, e))?;

    let t = &cfg.training;
    let bar = if opts.progress { ProgressBar::new(t.total_steps as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    bar.set_position(state.step as u64);
    let k = cfg.tokenizer.k;
    let start = Instant::now();
    let (mut jets_seen, steps_before) = (0usize, state.step);
    let mut skipped = SkipCounts::default();
    let mut stopped = false;
    while state.epoch < t.epochs && !stopped {
        let epoch = state.epoch;
        let mut mask_rng = stream_rng(t.seed, epoch, 1);
        let data_seed = rand::RngCore::next_u64(&mut stream_rng(t.seed, epoch, 2));
        let steps_at_epoch_start = state.step;
        let epoch_result: Result<SkipCounts, TrainError> = std::thread::scope(|scope| {
            let (tx, rx) = mpsc::sync_channel(4);
            scope.spawn(move || data::produce_batches(source, data_seed, t.batch_size, k, tx));
            for msg in rx {
                let batch = match msg {
                    BatchMsg::Batch(b) => b,
                    BatchMsg::Done(skips) => return Ok(skips),
                    BatchMsg::Error(e) => return Err(e),
                };
                let stats = trainer.step(&batch, state.step, &mut mask_rng)?;
                let record = StepRecord {
                    step: state.step,
                    epoch,
                    loss: stats.loss,
                    lr: trainer.lr_schedule().at(state.step),
                    ema_momentum: trainer.momentum(state.step),
                    target_std: stats.target_std,
                    jets: batch.batch.b,
                };
                writeln!(log, "{}", serde_json::to_string(&record).expect("plain struct serialises"))
                    .map_err(|e| TrainError::io(&metrics_path, e))?;
                records.push(record);
                state.step += 1;
                jets_seen += batch.batch.b;
                let rate = jets_seen as f64 / start.elapsed().as_secs_f64().max(1e-9);
                bar.set_position(state.step as u64);
                bar.set_message(format!("epoch {} loss {:.4} std {:.3} {:.0} jets/s", epoch + 1, stats.loss, stats.target_std, rate));
                if opts.max_steps.is_some_and(|m| state.step - steps_before >= m) {
                    stopped = true;
                    return Ok(SkipCounts::default()); // dropping rx stops the producer
                }
            }
            Err(TrainError::Config("the batching thread ended without finishing the epoch".into()))
        });
        let skips = epoch_result?;
        if state.step == steps_at_epoch_start {
            return Err(TrainError::NoJets);
        }
        if skips.invalid + skips.too_small > 0 {
            bar.println(format!(
                "epoch {}: skipped {} invalid jets{} and {} jets with fewer than 2 tokens",
                epoch + 1,
                skips.invalid,
                skips.example.as_deref().map(|m| format!(" (e.g. {m})")).unwrap_or_default(),
                skips.too_small
            ));
        }
        skipped = skips;
        if !stopped {
            // A run cut short by --max-steps keeps no checkpoint: it could not resume cleanly
            // in the middle of an epoch.
            state.epoch += 1;
            trainer.save(&checkpoint::checkpoint_dir(out, state.epoch), state)?;
            prune_checkpoints(out, opts.keep_checkpoints)?;
        }
        let points: Vec<(usize, f64, f64)> = records.iter().map(|r| (r.step, r.loss, r.target_std)).collect();
        if let Err(e) = crate::plot::draw_loss_png(&out.join(checkpoint::LOSS_PLOT_FILE), &format!("HEP-JEPA pre-training ({})", cfg.model.name), &points) {
            bar.println(format!("warning: {e}"));
        }
    }
    bar.finish_and_clear();
    checkpoint::save_record::<B::InnerBackend, _>(trainer.target.clone().into_record(), &out.join(checkpoint::ENCODER_FILE))?;
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    // Timing and sizes for model cards and reports (this invocation only, when resumed).
    let run_summary = serde_json::json!({
        "steps": state.step,
        "epochs": state.epoch,
        "jets_seen": jets_seen,
        "seconds": elapsed,
        "jets_per_second": jets_seen as f64 / elapsed,
        "encoder_params": encoder_params,
        "predictor_params": predictor_params,
        "skipped_invalid": skipped.invalid,
        "skipped_too_small": skipped.too_small,
    });
    checkpoint::write_json(&out.join(SUMMARY_FILE), &run_summary)?;
    Ok(PretrainSummary {
        steps: state.step,
        epochs: state.epoch,
        records,
        jets_per_second: jets_seen as f64 / elapsed,
        encoder_params,
        predictor_params,
        skipped,
        out: out.to_path_buf(),
    })
}

fn prune_checkpoints(out: &Path, keep: usize) -> Result<(), TrainError> {
    let all = checkpoint::list_checkpoints(out)?;
    for (_, dir) in all.iter().take(all.len().saturating_sub(keep)) {
        std::fs::remove_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    }
    Ok(())
}
