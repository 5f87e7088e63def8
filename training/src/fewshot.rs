//! `jettag-train fewshot`: how much pre-training helps when labels are scarce. For each label
//! fraction, three runs on the same labelled subset (balanced by class, nested across
//! fractions with one seed) and the same validation set:
//!
//! - `finetuned`: pre-trained encoder, everything trained;
//! - `frozen`: pre-trained encoder fixed, only the head trained;
//! - `scratch`: the same architecture from random weights.
//!
//! Each run is evaluated on the test files; the results go to `OUT/fewshot.json` and a
//! markdown table `OUT/fewshot.md`. Runs whose `report.json` exists are not repeated, so an
//! interrupted study continues where it stopped.
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use jettag_core::LabelSet;
use serde::{Deserialize, Serialize};

use crate::backend::DeviceKind;
use crate::checkpoint;
use crate::error::TrainError;
use crate::eval::{self, EvalReport};
use crate::finetune::data::{self, FileOrder};
use crate::finetune::{self, FinetuneArgs, RunOptions, Splits};

/// The three kinds of run per fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Finetuned,
    Frozen,
    Scratch,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Finetuned => "finetuned",
            Mode::Frozen => "frozen",
            Mode::Scratch => "scratch",
        }
    }
}

/// Command-line options of `jettag-train fewshot`.
#[derive(clap::Args, Debug, Clone)]
pub struct FewshotArgs {
    /// Pre-training run directory.
    #[arg(long)]
    pub init: PathBuf,
    #[arg(long, required = true, num_args = 1..)]
    pub train: Vec<String>,
    /// Validation files; without them --val-fraction of the training jets is held out.
    #[arg(long, num_args = 1..)]
    pub val: Vec<String>,
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    #[arg(long, required = true, num_args = 1..)]
    pub test: Vec<String>,
    /// Comma-separated label branches in class order.
    #[arg(long)]
    pub labels: String,
    #[arg(long)]
    pub class_names: Option<String>,
    /// Comma-separated label fractions.
    #[arg(long, default_value = "0.0005,0.005,0.02,0.1,1", value_delimiter = ',')]
    pub fractions: Vec<f64>,
    /// Which runs to make per fraction.
    #[arg(long, value_enum, default_values_t = [Mode::Finetuned, Mode::Frozen, Mode::Scratch], value_delimiter = ',')]
    pub modes: Vec<Mode>,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Epochs for frozen-backbone runs (cheap: only the head trains on cached features).
    #[arg(long, default_value_t = 50)]
    pub frozen_epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// Learning rate of frozen-backbone runs.
    #[arg(long, default_value_t = 2e-3)]
    pub frozen_lr: f64,
    /// Backbone learning rate relative to the head's, for fine-tuned runs.
    #[arg(long, default_value_t = 1.0)]
    pub backbone_lr_scale: f64,
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Read at most this many training jets.
    #[arg(long)]
    pub max_jets: Option<usize>,
    #[arg(long)]
    pub max_val_jets: Option<usize>,
    /// Read at most this many test jets.
    #[arg(long)]
    pub max_test_jets: Option<usize>,
    /// Each epoch covers at least this many jets (cycling a small labelled set).
    #[arg(long, default_value_t = 2048)]
    pub min_epoch_jets: usize,
    /// Output directory: one run directory per fraction and mode, plus the tables.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    #[arg(long)]
    pub quiet: bool,
}

/// One cell of the study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FewshotRow {
    pub fraction: f64,
    pub mode: Mode,
    pub n_labels: usize,
    pub accuracy: f64,
    pub auc: Option<f64>,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub train_seconds: f64,
    pub run_dir: String,
}

/// `fewshot.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FewshotReport {
    pub init: String,
    pub train: Vec<String>,
    pub test: Vec<String>,
    pub labels: Vec<String>,
    pub n_test: usize,
    pub n_val: usize,
    pub seed: u64,
    pub rows: Vec<FewshotRow>,
}

/// Directory name of a fraction: `frac-0.0005`.
pub fn fraction_dir(fraction: f64) -> String {
    format!("frac-{fraction}")
}

fn finetune_args(args: &FewshotArgs, fraction: f64, mode: Mode, out: PathBuf) -> FinetuneArgs {
    let frozen = mode == Mode::Frozen;
    FinetuneArgs {
        train: args.train.clone(),
        val: args.val.clone(),
        val_fraction: args.val_fraction,
        labels: args.labels.clone(),
        class_names: args.class_names.clone(),
        init: (mode != Mode::Scratch).then(|| args.init.clone()),
        scratch: mode == Mode::Scratch,
        config: String::new(),
        freeze_backbone: frozen,
        label_fraction: fraction,
        epochs: if frozen { args.frozen_epochs } else { args.epochs },
        batch: args.batch,
        lr: if frozen { args.frozen_lr } else { args.lr },
        backbone_lr_scale: args.backbone_lr_scale,
        weight_decay: 0.01,
        patience: args.patience,
        seed: args.seed,
        max_jets: args.max_jets,
        max_val_jets: args.max_val_jets,
        min_epoch_jets: args.min_epoch_jets,
        out,
        resume: false,
        device: args.device,
        quiet: args.quiet,
    }
}

/// The markdown table: one row per fraction, accuracy and AUC per mode.
pub fn markdown(report: &FewshotReport, modes: &[Mode], fractions: &[f64]) -> String {
    let mut s = String::new();
    s += &format!(
        "Few-shot {} on {} test jets; pre-trained encoder: `{}`; seed {}.\n\n",
        report.labels.join(" vs "),
        report.n_test,
        report.init,
        report.seed
    );
    s += "| label fraction | labelled jets |";
    for m in modes {
        s += &format!(" {} accuracy | {} AUC |", m.as_str(), m.as_str());
    }
    s += "\n|---:|---:|";
    for _ in modes {
        s += "---:|---:|";
    }
    s += "\n";
    for &f in fractions {
        let rows: Vec<&FewshotRow> = report.rows.iter().filter(|r| r.fraction == f).collect();
        let n = rows.first().map_or(0, |r| r.n_labels);
        s += &format!("| {}% | {n} |", (f * 100.0 * 1e6).round() / 1e6);
        for m in modes {
            match rows.iter().find(|r| r.mode == *m) {
                Some(r) => {
                    s += &format!(" {:.4} | {} |", r.accuracy, r.auc.map_or("-".into(), |a| format!("{a:.4}")));
                }
                None => s += " - | - |",
            }
        }
        s += "\n";
    }
    s
}

/// `jettag-train fewshot` on backend `B`.
pub fn run_fewshot<B: AutodiffBackend>(args: &FewshotArgs, device: &B::Device) -> Result<FewshotReport, TrainError> {
    if args.fractions.is_empty() || args.modes.is_empty() {
        return Err(TrainError::Config("--fractions and --modes must not be empty".into()));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| TrainError::io(&args.out, e))?;
    let pre: checkpoint::PretrainConfig = checkpoint::read_json(&args.init.join(checkpoint::CONFIG_FILE))?;
    let tokenizer = pre.tokenizer.clone();
    let t0 = Instant::now();
    // One read of the data for all runs; each run takes its label fraction of the same pool.
    let full = finetune_args(args, 1.0, Mode::Finetuned, args.out.clone());
    let pool = finetune::load_splits(&full, &tokenizer)?;
    let test_files = data::expand("--test", &args.test)?;
    let labels = LabelSet::parse(&args.labels);
    let test = data::load_labeled(&test_files, &labels, &tokenizer, args.max_test_jets, FileOrder::Sequential)?;
    eprintln!(
        "fewshot: {} training jets, {} validation, {} test; read in {:.1} s",
        pool.train.len(),
        pool.val.len(),
        test.len(),
        t0.elapsed().as_secs_f64()
    );
    let mut report = FewshotReport {
        init: args.init.display().to_string(),
        train: args.train.clone(),
        test: data::path_strings(&test_files),
        labels: labels.branches.clone(),
        n_test: test.len(),
        n_val: pool.val.len(),
        seed: args.seed,
        rows: Vec::new(),
    };
    for &fraction in &args.fractions {
        let chosen = data::label_fraction_subset(&pool.train.labels, pool.train.n_classes, fraction, args.seed)?;
        let splits = Splits {
            train: pool.train.subset(&chosen),
            val: pool.val.clone(),
            n_available: pool.train.len(),
            n_invalid: pool.n_invalid,
        };
        for &mode in &args.modes {
            let run_dir = args.out.join(fraction_dir(fraction)).join(mode.as_str());
            let report_path = run_dir.join("report.json");
            let ft_args = finetune_args(args, fraction, mode, run_dir.clone());
            if !report_path.is_file() {
                if run_dir.exists() {
                    // An interrupted run: start it again from nothing.
                    std::fs::remove_dir_all(&run_dir).map_err(|e| TrainError::io(&run_dir, e))?;
                }
                let mut cfg = finetune::config_from_args(
                    &FinetuneArgs { config: pre.model.name.clone(), ..ft_args.clone() },
                    &splits,
                )?;
                if mode == Mode::Scratch {
                    // The same architecture as the pre-trained encoder (ablation switches included).
                    cfg.model = pre.model.clone();
                    cfg.tokenizer = tokenizer.clone();
                }
                eprintln!("== fraction {fraction} ({} labelled jets), {} ==", splits.train.len(), mode.as_str());
                let opts = RunOptions { resume: false, progress: !args.quiet };
                finetune::train::<B>(&cfg, &splits.train, &splits.val, &run_dir, &opts, device)?;
                eval::evaluate_classifier::<B::InnerBackend>(&run_dir, &test, &test_files, &report_path, 256, device)?;
            }
            let r: EvalReport = checkpoint::read_json(&report_path)?;
            let summary: finetune::FinetuneSummary = checkpoint::read_json(&run_dir.join(finetune::SUMMARY_FILE))?;
            eprintln!(
                "fraction {fraction} {}: accuracy {:.4}, AUC {}",
                mode.as_str(),
                r.accuracy,
                r.auc().map_or("-".into(), |a| format!("{a:.4}"))
            );
            report.rows.push(FewshotRow {
                fraction,
                mode,
                n_labels: summary.n_train,
                accuracy: r.accuracy,
                auc: r.auc(),
                best_epoch: summary.best_epoch,
                epochs_run: summary.epochs_run,
                train_seconds: summary.seconds,
                run_dir: run_dir.display().to_string(),
            });
            // Tables after every run, so partial results are visible.
            write_tables(&args.out, &report, &args.modes, &args.fractions)?;
        }
    }
    Ok(report)
}

fn write_tables(out: &Path, report: &FewshotReport, modes: &[Mode], fractions: &[f64]) -> Result<(), TrainError> {
    checkpoint::write_json(&out.join("fewshot.json"), report)?;
    let md = out.join("fewshot.md");
    std::fs::write(&md, markdown(report, modes, fractions)).map_err(|e| TrainError::io(&md, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_table_lists_each_fraction_and_mode() {
        let row = |fraction, mode, acc, auc| FewshotRow {
            fraction,
            mode,
            n_labels: (fraction * 1000.0) as usize,
            accuracy: acc,
            auc,
            best_epoch: 1,
            epochs_run: 2,
            train_seconds: 1.0,
            run_dir: String::new(),
        };
        let report = FewshotReport {
            init: "runs/pre".into(),
            train: vec![],
            test: vec![],
            labels: vec!["label_QCD".into(), "label_Tbqq".into()],
            n_test: 100,
            n_val: 10,
            seed: 0,
            rows: vec![row(0.1, Mode::Finetuned, 0.8, Some(0.9)), row(0.1, Mode::Scratch, 0.7, Some(0.75)), row(1.0, Mode::Finetuned, 0.9, None)],
        };
        let md = markdown(&report, &[Mode::Finetuned, Mode::Scratch], &[0.1, 1.0]);
        let lines: Vec<&str> = md.lines().collect();
        assert!(lines[2].starts_with("| label fraction | labelled jets | finetuned accuracy | finetuned AUC | scratch accuracy"), "{md}");
        assert_eq!(lines[4], "| 10% | 100 | 0.8000 | 0.9000 | 0.7000 | 0.7500 |");
        assert_eq!(lines[5], "| 100% | 1000 | 0.9000 | - | - | - |");
    }
}
