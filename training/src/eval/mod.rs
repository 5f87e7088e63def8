//! `jettag-train eval`: the metrics jet-tagging papers report, on labelled files.
//!
//! - binary tasks (two labels; the second is the signal, e.g. `label_QCD,label_Tbqq`):
//!   accuracy, ROC AUC, background rejection 1/ε_B at ε_S = 0.5 and 0.3;
//! - multi-class tasks (JetClass): accuracy, one-vs-rest AUC per class and their mean;
//! - the number of jets used, and a ROC PNG beside the report (log-scale rejection against
//!   signal efficiency; one curve per class for multi-class tasks).
//!
//! A fine-tuned run directory is evaluated as it is. A pre-training run directory has no
//! classifier: `--probe` first trains a linear probe on its frozen embedding (see [`probe`]).
//! The report is also copied to `MODEL_DIR/last_eval.json`, where `jettag-train export`
//! picks up the metrics for `model.toml`.
pub mod probe;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use jettag_core::LabelSet;
use serde::{Deserialize, Serialize};

use crate::backend::DeviceKind;
use crate::checkpoint;
use crate::error::TrainError;
use crate::finetune::data::{self, FileOrder, LabeledJets};
use crate::finetune::infer::{self, SetOutputs};
use crate::finetune::{self, FinetuneConfig};
use crate::metrics::{self, plot::RocSeries};

/// The latest report, kept in the model directory for `export`.
pub const LAST_EVAL_FILE: &str = "last_eval.json";

/// Command-line options of `jettag-train eval`.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// A fine-tuned run directory (or a pre-training run directory with --probe).
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled jets to evaluate on: ROOT files, directories or glob patterns.
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<String>,
    /// Comma-separated label branches in class order [default: the model's].
    #[arg(long)]
    pub labels: Option<String>,
    /// Report path (JSON); the ROC plot is written beside it as `<stem>_roc.png`.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write per-jet scores (CSV: jet, label, prob_<class>..., emb_<i>...).
    #[arg(long)]
    pub scores: Option<PathBuf>,
    /// With --scores: also write the embedding columns.
    #[arg(long)]
    pub embedding: bool,
    /// Train a linear probe on the frozen embedding first (pre-trained-only models).
    #[arg(long)]
    pub probe: bool,
    /// Labelled jets the probe is trained on.
    #[arg(long, num_args = 1..)]
    pub probe_train: Vec<String>,
    /// Epochs of probe training.
    #[arg(long, default_value_t = 100)]
    pub probe_epochs: usize,
    /// Read at most this many jets (from --data, interleaving the files, and from --probe-train).
    #[arg(long)]
    pub max_jets: Option<usize>,
    /// Jets per forward pass.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Do not copy the report to MODEL_DIR/last_eval.json.
    #[arg(long)]
    pub no_save: bool,
}

/// A binary task's extra figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinaryReport {
    /// The signal class (the second label).
    pub signal: String,
    pub auc: f64,
    /// 1/ε_B at ε_S = 0.5; `null` means infinite (no background passes).
    pub rejection_at_eff_s_0_5: Option<f64>,
    pub rejection_at_eff_s_0_3: Option<f64>,
}

/// `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The model directory evaluated.
    pub model: String,
    /// `classifier` (a fine-tuned model) or `linear-probe` (a pre-trained encoder + probe).
    pub kind: String,
    /// Model size preset.
    pub config: String,
    pub data: Vec<String>,
    pub labels: Vec<String>,
    pub class_names: Vec<String>,
    /// Jets evaluated (those that tokenized).
    pub n_jets: usize,
    /// Jets per class among them.
    pub class_counts: Vec<usize>,
    /// Jets left out because tokenization refused them.
    pub n_invalid: usize,
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    pub binary: Option<BinaryReport>,
    /// One-vs-rest AUC per class (multi-class tasks); `null` for a class absent from the data.
    pub per_class_auc: Option<BTreeMap<String, Option<f64>>>,
    pub macro_auc: Option<f64>,
    pub roc_png: String,
    /// Linear-probe training details (with `--probe`).
    pub probe: Option<probe::ProbeReport>,
    pub seconds: f64,
}

impl EvalReport {
    /// The headline AUC: binary ROC AUC or the macro one-vs-rest AUC.
    pub fn auc(&self) -> Option<f64> {
        self.binary.as_ref().map(|b| b.auc).or(self.macro_auc)
    }

    /// The finite numbers of the report by name, for `model.toml`'s `[metrics]`.
    pub fn metric_table(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        m.insert("accuracy".into(), self.accuracy);
        m.insert("n_jets".into(), self.n_jets as f64);
        if let Some(b) = &self.binary {
            m.insert("roc_auc".into(), b.auc);
            if let Some(r) = b.rejection_at_eff_s_0_5 {
                m.insert("rejection_at_eff_s_0_5".into(), r);
            }
            if let Some(r) = b.rejection_at_eff_s_0_3 {
                m.insert("rejection_at_eff_s_0_3".into(), r);
            }
        }
        if let Some(auc) = self.macro_auc {
            m.insert("macro_auc".into(), auc);
        }
        for (name, auc) in self.per_class_auc.iter().flatten() {
            if let Some(a) = auc {
                m.insert(format!("auc_{name}"), *a);
            }
        }
        m
    }
}

/// `<stem>_roc.png` next to the report.
pub fn roc_path(report: &Path) -> PathBuf {
    let stem = report.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "report".into());
    report.with_file_name(format!("{stem}_roc.png"))
}

/// The metrics part of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub accuracy: f64,
    pub loss: f64,
    pub binary: Option<BinaryReport>,
    pub per_class_auc: Option<BTreeMap<String, Option<f64>>>,
    pub macro_auc: Option<f64>,
}

/// Computes the report's metrics from class probabilities and logits and draws the ROC plot.
pub fn score(
    outputs: &SetOutputs,
    set: &LabeledJets,
    class_names: &[String],
    title: &str,
    roc_png: &Path,
) -> Result<Scored, TrainError> {
    let c = outputs.n_classes;
    let loss = infer::cross_entropy(&outputs.logits, &set.labels, c);
    if c == 2 {
        let scores: Vec<f32> = outputs.probs.iter().skip(1).step_by(2).copied().collect();
        let signal: Vec<bool> = set.labels.iter().map(|&l| l == 1).collect();
        let (m, curve) = metrics::binary_metrics(&scores, &signal)?;
        let label = format!("{title} (AUC {:.4})", m.auc);
        metrics::plot::draw_roc_png(roc_png, &format!("{} vs {}", class_names[1], class_names[0]), &[RocSeries { label: &label, curve: &curve }])?;
        let binary = BinaryReport {
            signal: class_names[1].clone(),
            auc: m.auc,
            rejection_at_eff_s_0_5: m.rejection_at_eff_s_0_5,
            rejection_at_eff_s_0_3: m.rejection_at_eff_s_0_3,
        };
        Ok(Scored { accuracy: m.accuracy, loss, binary: Some(binary), per_class_auc: None, macro_auc: None })
    } else {
        let predicted = metrics::argmax_rows(&outputs.probs, c)?;
        let accuracy = metrics::accuracy(&predicted, &set.labels)?;
        let aucs = metrics::one_vs_rest_auc(&outputs.probs, &set.labels, c)?;
        let mut curves = Vec::new();
        let mut labels = Vec::new();
        for (ci, auc) in aucs.iter().enumerate() {
            if let Some(auc) = auc {
                let scores: Vec<f32> = outputs.probs.iter().skip(ci).step_by(c).copied().collect();
                let signal: Vec<bool> = set.labels.iter().map(|&l| l == ci).collect();
                curves.push(metrics::roc_curve(&scores, &signal)?);
                labels.push(format!("{} vs rest (AUC {auc:.4})", class_names[ci]));
            }
        }
        let series: Vec<RocSeries> = labels.iter().zip(&curves).map(|(l, c)| RocSeries { label: l, curve: c }).collect();
        metrics::plot::draw_roc_png(roc_png, title, &series)?;
        let per_class = class_names.iter().cloned().zip(aucs.iter().copied()).collect();
        Ok(Scored { accuracy, loss, binary: None, per_class_auc: Some(per_class), macro_auc: metrics::macro_average(&aucs) })
    }
}

/// Writes the per-jet scores CSV in the column layout of `jettag tag`.
pub fn write_scores(path: &Path, outputs: &SetOutputs, set: &LabeledJets, class_names: &[String], embedding: bool) -> Result<(), TrainError> {
    let file = std::fs::File::create(path).map_err(|e| TrainError::io(path, e))?;
    let mut w = std::io::BufWriter::new(file);
    let mut header = vec!["jet".to_string(), "label".to_string()];
    header.extend(class_names.iter().map(|c| format!("prob_{c}")));
    if embedding {
        header.extend((0..outputs.d_model).map(|i| format!("emb_{i}")));
    }
    let io = |e| TrainError::io(path, e);
    writeln!(w, "{}", header.join(",")).map_err(io)?;
    let (c, d) = (outputs.n_classes, outputs.d_model);
    for i in 0..set.len() {
        let mut row = vec![set.index[i].to_string(), set.labels[i].to_string()];
        row.extend(outputs.probs[i * c..(i + 1) * c].iter().map(|p| format!("{p:e}")));
        if embedding {
            row.extend(outputs.embedding[i * d..(i + 1) * d].iter().map(|v| format!("{v:e}")));
        }
        writeln!(w, "{}", row.join(",")).map_err(io)?;
    }
    w.flush().map_err(io)
}

/// `jettag-train eval` on backend `B` (autodiff is needed only to train a probe).
pub fn run_eval<B: AutodiffBackend>(args: &EvalArgs, device: &B::Device) -> Result<EvalReport, TrainError> {
    let start = Instant::now();
    let files = data::expand("--data", &args.data)?;
    let (kind, config, labels, class_names, tokenizer) = if finetune::is_finetuned_dir(&args.model) {
        if args.probe {
            return Err(TrainError::Config(format!(
                "{} is a fine-tuned classifier; --probe is for pre-trained encoders",
                args.model.display()
            )));
        }
        let cfg: FinetuneConfig = checkpoint::read_json(&args.model.join(checkpoint::CONFIG_FILE))?;
        (String::from("classifier"), cfg.model.name.clone(), cfg.labels.clone(), cfg.class_names.clone(), cfg.tokenizer)
    } else if args.model.join(checkpoint::ENCODER_FILE).is_file() {
        if !args.probe {
            return Err(TrainError::Config(format!(
                "{} holds a pre-trained encoder without a classifier: pass --probe --probe-train FILES --labels ...",
                args.model.display()
            )));
        }
        let cfg: checkpoint::PretrainConfig = checkpoint::read_json(&args.model.join(checkpoint::CONFIG_FILE))?;
        let labels = LabelSet::parse(args.labels.as_deref().ok_or_else(|| {
            TrainError::Config("--probe needs --labels (the pre-trained model has no classes)".into())
        })?);
        let names = data::default_class_names(&labels);
        (String::from("linear-probe"), cfg.model.name.clone(), labels.branches, names, cfg.tokenizer)
    } else {
        return Err(TrainError::Checkpoint(format!(
            "{} is neither a fine-tuned run ({}) nor a pre-training run ({})",
            args.model.display(),
            finetune::CLASSIFIER_FILE,
            checkpoint::ENCODER_FILE
        )));
    };
    let labels = match &args.labels {
        Some(l) => {
            let given = LabelSet::parse(l).branches;
            if given.len() != labels.len() {
                return Err(TrainError::Config(format!(
                    "--labels has {} branches but the model has {} classes ({:?})",
                    given.len(),
                    labels.len(),
                    labels
                )));
            }
            given
        }
        None => labels,
    };
    let label_set = LabelSet { branches: labels.clone() };
    // With --max-jets, interleave the files so that per-class files all contribute; the scores
    // CSV carries each jet's position in the files either way.
    let order = if args.max_jets.is_some() { FileOrder::Interleaved } else { FileOrder::Sequential };
    let set = data::load_labeled(&files, &label_set, &tokenizer, args.max_jets, order)?;
    eprintln!("data: {} jets from {} ({} refused by tokenization)", set.len(), crate::data::describe_inputs(&files), set.n_invalid);

    let (outputs, probe_report) = if kind == "classifier" {
        let (cfg, model) = finetune::load_classifier::<B::InnerBackend>(&args.model, device)?;
        (infer::classify(&model, &set, args.batch, cfg.tokenizer.k, device)?, None)
    } else {
        let train_files = data::expand("--probe-train", &args.probe_train)?;
        let train = data::load_labeled(&train_files, &label_set, &tokenizer, args.max_jets, FileOrder::Interleaved)?;
        let (_, encoder) = checkpoint::load_pretrained::<B::InnerBackend>(&args.model, device)?;
        let settings = probe::ProbeSettings { epochs: args.probe_epochs, seed: args.seed, ..Default::default() };
        let (outputs, report) = probe::probe::<B>(&encoder, &train, &set, &settings, tokenizer.k, args.batch, device)?;
        (outputs, Some(report))
    };

    let roc_png = roc_path(&args.out);
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    }
    let title = format!("{} ({})", args.model.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(), kind);
    let scored = score(&outputs, &set, &class_names, &title, &roc_png)?;
    if let Some(path) = &args.scores {
        write_scores(path, &outputs, &set, &class_names, args.embedding)?;
    }
    let report = EvalReport {
        model: args.model.display().to_string(),
        kind,
        config,
        data: data::path_strings(&files),
        labels,
        class_names,
        n_jets: set.len(),
        class_counts: set.class_counts(),
        n_invalid: set.n_invalid,
        accuracy: scored.accuracy,
        loss: scored.loss,
        binary: scored.binary,
        per_class_auc: scored.per_class_auc,
        macro_auc: scored.macro_auc,
        roc_png: roc_png.display().to_string(),
        probe: probe_report,
        seconds: start.elapsed().as_secs_f64(),
    };
    checkpoint::write_json(&args.out, &report)?;
    if !args.no_save {
        checkpoint::write_json(&args.model.join(LAST_EVAL_FILE), &report)?;
    }
    Ok(report)
}

/// Evaluates an in-memory classifier on an in-memory set (few-shot runs), writing the report
/// and its ROC plot to `out`.
pub fn evaluate_classifier<B: Backend>(
    model_dir: &Path,
    set: &LabeledJets,
    files: &[PathBuf],
    out: &Path,
    batch: usize,
    device: &B::Device,
) -> Result<EvalReport, TrainError> {
    let start = Instant::now();
    let (cfg, model) = finetune::load_classifier::<B>(model_dir, device)?;
    let outputs = infer::classify(&model, set, batch, cfg.tokenizer.k, device)?;
    let roc_png = roc_path(out);
    let title = model_dir.display().to_string();
    let scored = score(&outputs, set, &cfg.class_names, &title, &roc_png)?;
    let report = EvalReport {
        model: model_dir.display().to_string(),
        kind: "classifier".into(),
        config: cfg.model.name.clone(),
        data: data::path_strings(files),
        labels: cfg.labels.clone(),
        class_names: cfg.class_names.clone(),
        n_jets: set.len(),
        class_counts: set.class_counts(),
        n_invalid: set.n_invalid,
        accuracy: scored.accuracy,
        loss: scored.loss,
        binary: scored.binary,
        per_class_auc: scored.per_class_auc,
        macro_auc: scored.macro_auc,
        roc_png: roc_png.display().to_string(),
        probe: None,
        seconds: start.elapsed().as_secs_f64(),
    };
    checkpoint::write_json(out, &report)?;
    Ok(report)
}
