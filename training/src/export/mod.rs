//! `jettag-train export --model DIR --out models/NAME/VERSION/`: writes `model.onnx` (opset
//! 17, the contract of DESIGN.md section 4; see [`graph`]) and `model.toml` (see
//! [`manifest`]) into a model-repository version directory the server serves.
//!
//! A fine-tuned run exports as a classifier (`probs` and `embedding`); a pre-training run, or
//! a fine-tuned one with `--encoder-only`, as an encoder (`embedding` only). The metrics come
//! from the last `jettag-train eval` of the run (`DIR/last_eval.json`) or `--report`.
pub mod graph;
pub mod manifest;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use jettag_core::TokenizerConfig;

use crate::checkpoint::{self, PretrainConfig};
use crate::error::TrainError;
use crate::eval::{EvalReport, LAST_EVAL_FILE};
use crate::finetune::{self, FinetuneConfig, FinetuneSummary, Init};
use crate::model::{Classifier, Encoder};
use crate::onnx::{self, ModelInfo};
use graph::GraphSpec;
use manifest::{Manifest, Preprocessing, FORMAT_VERSION, TASK_CLASSIFIER, TASK_ENCODER};

pub const MODEL_FILE: &str = "model.onnx";
pub const MANIFEST_FILE: &str = "model.toml";

/// Command-line options of `jettag-train export`.
#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// A fine-tuned run directory (exports a classifier) or a pre-training run directory
    /// (exports an encoder).
    #[arg(long)]
    pub model: PathBuf,
    /// The model-repository version directory to write, `models/NAME/VERSION/`.
    #[arg(long)]
    pub out: PathBuf,
    /// Model name [default: the parent directory of --out].
    #[arg(long)]
    pub name: Option<String>,
    /// Model version [default: the last component of --out].
    #[arg(long)]
    pub version: Option<u64>,
    /// Export only the encoder (output `embedding`), also from a fine-tuned run.
    #[arg(long)]
    pub encoder_only: bool,
    /// Free-text description for model.toml [default: generated from the run].
    #[arg(long)]
    pub description: Option<String>,
    /// Evaluation report whose metrics go into model.toml [default: MODEL/last_eval.json].
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Replace an existing model.onnx / model.toml in --out.
    #[arg(long)]
    pub force: bool,
}

/// What `export` wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    pub onnx: PathBuf,
    pub manifest: PathBuf,
    pub task: String,
    pub onnx_bytes: usize,
    pub parameters: usize,
    pub nodes: usize,
}

/// A model loaded for export.
pub enum Exportable<B: Backend> {
    Classifier { cfg: Box<FinetuneConfig>, model: Classifier<B> },
    Encoder { cfg: Box<PretrainConfig>, encoder: Encoder<B> },
}

/// Loads a run directory as a classifier (fine-tuned) or an encoder (pre-trained).
pub fn load_exportable<B: Backend>(dir: &Path, device: &B::Device) -> Result<Exportable<B>, TrainError> {
    if finetune::is_finetuned_dir(dir) {
        let (cfg, model) = finetune::load_classifier::<B>(dir, device)?;
        Ok(Exportable::Classifier { cfg: Box::new(cfg), model })
    } else if dir.join(checkpoint::ENCODER_FILE).is_file() {
        let (cfg, encoder) = checkpoint::load_pretrained::<B>(dir, device)?;
        Ok(Exportable::Encoder { cfg: Box::new(cfg), encoder })
    } else {
        Err(TrainError::Checkpoint(format!(
            "{} holds neither {} (fine-tuned) nor {} (pre-trained)",
            dir.display(),
            finetune::CLASSIFIER_FILE,
            checkpoint::ENCODER_FILE
        )))
    }
}

/// The model's name and version: from the arguments, else from `out` = `.../NAME/VERSION`.
/// The server only serves a repository whose directories match the manifest, so a mismatch
/// between an explicit value and the path is an error.
pub fn name_and_version(out: &Path, name: Option<&str>, version: Option<u64>) -> Result<(String, u64), TrainError> {
    let from_path_version = out.file_name().and_then(|v| v.to_str()).and_then(|v| v.parse::<u64>().ok()).filter(|&v| v > 0);
    let from_path_name = from_path_version
        .and(out.parent())
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .map(str::to_string);
    let version = match (version, from_path_version) {
        (Some(v), Some(p)) if v != p => {
            return Err(TrainError::Config(format!("--version {v} but --out {} is version {p}", out.display())))
        }
        (Some(0), _) => return Err(TrainError::Config("--version must be positive".into())),
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => {
            return Err(TrainError::Config(format!(
                "cannot tell the version from --out {} (expected models/NAME/VERSION); pass --version",
                out.display()
            )))
        }
    };
    let name = match (name, from_path_name) {
        (Some(n), Some(p)) if n != p => {
            return Err(TrainError::Config(format!("--name {n} but --out {} lies under {p}/", out.display())))
        }
        (Some(n), _) => n.to_string(),
        (None, Some(p)) => p,
        (None, None) => return Err(TrainError::Config(format!("cannot tell the model name from --out {}; pass --name", out.display()))),
    };
    if name.is_empty() || name.starts_with('.') || name.contains('/') {
        return Err(TrainError::Config(format!("model name '{name}' is not a usable directory name")));
    }
    Ok((name, version))
}

fn files_toml(files: &[String]) -> toml::Value {
    toml::Value::Array(files.iter().map(|f| toml::Value::String(display_data_path(f))).collect())
}

/// Data paths as recorded: relative to the data directory's parent where possible, so a
/// manifest does not carry one machine's absolute paths.
fn display_data_path(path: &str) -> String {
    match path.find("/data/") {
        Some(i) => path[i + 1..].to_string(),
        None => path.to_string(),
    }
}

fn int(v: usize) -> toml::Value {
    toml::Value::Integer(v as i64)
}

/// `[training]` for a fine-tuned classifier.
fn classifier_training(dir: &Path, cfg: &FinetuneConfig) -> Result<toml::Table, TrainError> {
    let mut t = toml::Table::new();
    t.insert("labels".into(), toml::Value::Array(cfg.labels.iter().map(|l| l.clone().into()).collect()));
    t.insert("dataset".into(), files_toml(&cfg.data.train));
    if !cfg.data.val.is_empty() {
        t.insert("validation".into(), files_toml(&cfg.data.val));
    } else if let Some(f) = cfg.data.val_fraction {
        t.insert("validation_fraction".into(), toml::Value::Float(f));
    }
    t.insert("label_fraction".into(), toml::Value::Float(cfg.data.label_fraction));
    t.insert("n_train".into(), int(cfg.data.train_class_counts.iter().sum()));
    t.insert("n_val".into(), int(cfg.data.n_val));
    t.insert("config".into(), cfg.model.name.clone().into());
    insert_encoder_shape(&mut t, &cfg.model.encoder);
    t.insert("freeze_backbone".into(), cfg.freeze_backbone.into());
    match &cfg.init {
        Init::Pretrained { dir } => {
            t.insert("init".into(), "pretrained".into());
            t.insert("pretrain_run".into(), display_data_path(dir).into());
        }
        Init::Scratch => {
            t.insert("init".into(), "scratch".into());
        }
    }
    if let Some(p) = &cfg.pretrain {
        t.insert("pretrain_data".into(), files_toml(&p.data));
        t.insert("pretrain_epochs".into(), int(p.epochs));
        t.insert("pretrain_steps".into(), int(p.total_steps));
    }
    let s = &cfg.training;
    t.insert("epochs_max".into(), int(s.epochs));
    t.insert("batch_size".into(), int(s.batch_size));
    t.insert("lr".into(), toml::Value::Float(s.lr));
    t.insert("seed".into(), toml::Value::Integer(s.seed as i64));
    let summary_path = dir.join(finetune::SUMMARY_FILE);
    if summary_path.is_file() {
        let summary: FinetuneSummary = checkpoint::read_json(&summary_path)?;
        t.insert("epochs_run".into(), int(summary.epochs_run));
        t.insert("best_epoch".into(), int(summary.best_epoch));
        t.insert("finetune_seconds".into(), toml::Value::Float((summary.seconds * 10.0).round() / 10.0));
        t.insert("parameters".into(), int(summary.total_params));
    }
    Ok(t)
}

fn insert_encoder_shape(t: &mut toml::Table, e: &crate::config::EncoderConfig) {
    t.insert("d_model".into(), int(e.d_model));
    t.insert("n_layers".into(), int(e.n_layers));
    t.insert("n_heads".into(), int(e.n_heads));
    t.insert("n_registers".into(), int(e.n_registers));
    t.insert("pair_bias".into(), e.pair_bias.into());
}

/// `[training]` for a pre-trained encoder.
fn encoder_training(cfg: &PretrainConfig) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("objective".into(), "HEP-JEPA self-supervised pre-training (labels unused)".into());
    t.insert("dataset".into(), files_toml(&cfg.training.data));
    t.insert("config".into(), cfg.model.name.clone().into());
    insert_encoder_shape(&mut t, &cfg.model.encoder);
    t.insert("epochs".into(), int(cfg.training.epochs));
    t.insert("steps".into(), int(cfg.training.total_steps));
    t.insert("batch_size".into(), int(cfg.training.batch_size));
    t.insert("lr".into(), toml::Value::Float(cfg.training.lr));
    t.insert("seed".into(), toml::Value::Integer(cfg.training.seed as i64));
    if let Some(m) = cfg.training.max_jets {
        t.insert("max_jets".into(), int(m));
    }
    t
}

/// Builds the ONNX model of `model` (see [`graph`]).
pub fn onnx_model<B: Backend>(
    model: &Exportable<B>,
    encoder_only: bool,
    info: &ModelInfo,
) -> Result<onnx::proto::ModelProto, TrainError> {
    Ok(match model {
        Exportable::Classifier { cfg, model } => {
            let spec = GraphSpec { k: cfg.tokenizer.k, encoder: cfg.model.encoder.clone() };
            if encoder_only {
                graph::encoder_model(&model.encoder, &spec, info)?
            } else {
                graph::classifier_model(model, &spec, info)?
            }
        }
        Exportable::Encoder { cfg, encoder } => {
            let spec = GraphSpec { k: cfg.tokenizer.k, encoder: cfg.model.encoder.clone() };
            graph::encoder_model(encoder, &spec, info)?
        }
    })
}

/// `jettag-train export` (inference only, so any backend; the CPU one is used).
pub fn run_export<B: Backend>(args: &ExportArgs, device: &B::Device) -> Result<ExportSummary, TrainError> {
    let (name, version) = name_and_version(&args.out, args.name.as_deref(), args.version)?;
    let onnx_path = args.out.join(MODEL_FILE);
    let manifest_path = args.out.join(MANIFEST_FILE);
    if !args.force && (onnx_path.exists() || manifest_path.exists()) {
        return Err(TrainError::Config(format!("{} already holds a model; pass --force to replace it", args.out.display())));
    }
    let model = load_exportable::<B>(&args.model, device)?;
    if args.encoder_only && matches!(model, Exportable::Encoder { .. }) {
        eprintln!("note: {} is a pre-trained encoder; --encoder-only changes nothing", args.model.display());
    }
    let report_path = args.report.clone().unwrap_or_else(|| args.model.join(LAST_EVAL_FILE));
    let report: Option<EvalReport> = if report_path.is_file() {
        Some(checkpoint::read_json(&report_path)?)
    } else if args.report.is_some() {
        return Err(TrainError::Config(format!("--report {} does not exist", report_path.display())));
    } else {
        None
    };

    let (task, class_names, tokenizer, d_model, mut training, parameters, description): (
        &str,
        Vec<String>,
        TokenizerConfig,
        usize,
        toml::Table,
        usize,
        String,
    ) = match &model {
        Exportable::Classifier { cfg, model } if !args.encoder_only => (
            TASK_CLASSIFIER,
            cfg.class_names.clone(),
            cfg.tokenizer.clone(),
            cfg.model.encoder.d_model,
            classifier_training(&args.model, cfg)?,
            model.num_params(),
            format!(
                "HEP-JEPA classifier ('{}' config: D {}, {} layers, {} heads) {} for {}",
                cfg.model.name,
                cfg.model.encoder.d_model,
                cfg.model.encoder.n_layers,
                cfg.model.encoder.n_heads,
                match (&cfg.init, cfg.freeze_backbone) {
                    (Init::Scratch, _) => "trained from scratch",
                    (Init::Pretrained { .. }, true) => "pre-trained, head trained on the frozen encoder",
                    (Init::Pretrained { .. }, false) => "pre-trained and fine-tuned",
                },
                cfg.class_names.join(" vs ")
            ),
        ),
        Exportable::Classifier { cfg, model } => (
            TASK_ENCODER,
            Vec::new(),
            cfg.tokenizer.clone(),
            cfg.model.encoder.d_model,
            classifier_training(&args.model, cfg)?,
            model.encoder.num_params(),
            format!("HEP-JEPA encoder ('{}' config) of a classifier fine-tuned for {}", cfg.model.name, cfg.class_names.join(" vs ")),
        ),
        Exportable::Encoder { cfg, encoder } => (
            TASK_ENCODER,
            Vec::new(),
            cfg.tokenizer.clone(),
            cfg.model.encoder.d_model,
            encoder_training(cfg),
            encoder.num_params(),
            format!(
                "HEP-JEPA encoder ('{}' config: D {}, {} layers), self-supervised pre-training; outputs the jet embedding",
                cfg.model.name, cfg.model.encoder.d_model, cfg.model.encoder.n_layers
            ),
        ),
    };
    // Metrics describe the exported outputs: a classifier's report, or a probe's on an encoder.
    let metrics: BTreeMap<String, f64> = report.as_ref().map(EvalReport::metric_table).unwrap_or_default();
    if let Some(r) = &report {
        training.insert("eval_data".into(), files_toml(&r.data));
        training.insert("eval_kind".into(), r.kind.clone().into());
    }
    let producer = format!("jettag-train {}", env!("CARGO_PKG_VERSION"));
    let info = ModelInfo {
        producer_version: env!("CARGO_PKG_VERSION").into(),
        model_version: version as i64,
        doc_string: description.clone(),
        metadata: vec![
            ("name".into(), name.clone()),
            ("task".into(), task.into()),
            ("class_names".into(), class_names.join(",")),
            ("embedding_dim".into(), d_model.to_string()),
            ("k".into(), tokenizer.k.to_string()),
        ],
    };
    let proto = onnx_model(&model, args.encoder_only, &info)?;
    let nodes = proto.graph.as_ref().map_or(0, |g| g.node.len());
    let bytes = onnx::encode_model(&proto);
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        name: name.clone(),
        version,
        task: task.into(),
        class_names,
        embedding_dim: d_model,
        description: args.description.clone().unwrap_or(description),
        created: manifest::utc_now(),
        producer,
        preprocessing: Preprocessing::new(&tokenizer),
        training,
        metrics,
    };
    let text = manifest.to_toml().map_err(|e| TrainError::Config(format!("model.toml: {e}")))?;
    std::fs::create_dir_all(&args.out).map_err(|e| TrainError::io(&args.out, e))?;
    std::fs::write(&onnx_path, &bytes).map_err(|e| TrainError::io(&onnx_path, e))?;
    std::fs::write(&manifest_path, text).map_err(|e| TrainError::io(&manifest_path, e))?;
    Ok(ExportSummary {
        onnx: onnx_path,
        manifest: manifest_path,
        task: task.into(),
        onnx_bytes: bytes.len(),
        parameters,
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_version_from_the_repository_path() {
        let p = Path::new("models/hepjepa-top/2");
        assert_eq!(name_and_version(p, None, None).unwrap(), ("hepjepa-top".into(), 2));
        assert_eq!(name_and_version(p, Some("hepjepa-top"), Some(2)).unwrap(), ("hepjepa-top".into(), 2));
        assert!(name_and_version(p, Some("other"), None).unwrap_err().to_string().contains("other"));
        assert!(name_and_version(p, None, Some(3)).is_err());
        assert!(name_and_version(Path::new("/tmp/out"), None, None).is_err());
        assert_eq!(name_and_version(Path::new("/tmp/out"), Some("m"), Some(1)).unwrap(), ("m".into(), 1));
        assert!(name_and_version(Path::new("/tmp/out"), Some("m"), Some(0)).is_err());
    }

    #[test]
    fn data_paths_are_recorded_relative_to_the_data_directory() {
        assert_eq!(display_data_path("/work/shared/data/toptag/top_train.root"), "data/toptag/top_train.root");
        assert_eq!(display_data_path("runs/x"), "runs/x");
    }
}
