//! `jettag-train`: HEP-JEPA pre-training (and, in later subcommands, fine-tuning, evaluation
//! and ONNX export). The logic lives in the library; this file only parses arguments.
use anyhow::Result;
use clap::{Parser, Subcommand};
use jettag_train::backend::DeviceKind;
use jettag_train::pretrain::{run_pretrain, PretrainArgs};
use jettag_train::eval::{run_eval, EvalArgs};
use jettag_train::export::{run_export, ExportArgs};
use jettag_train::fewshot::{markdown, run_fewshot, FewshotArgs};
use jettag_train::finetune::{run_finetune, FinetuneArgs};

#[derive(Parser)]
#[command(name = "jettag-train", version, about = "HEP-JEPA training for jet tagging")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Self-supervised JEPA pre-training of an encoder on unlabelled jets.
    Pretrain(PretrainArgs),
    /// Trains a classifier on labelled jets, from a pre-trained encoder or from scratch.
    Finetune(FinetuneArgs),
    /// Accuracy, ROC AUC and background rejection of a model on labelled jets.
    Eval(EvalArgs),
    /// Writes model.onnx and model.toml for the server's model repository.
    Export(ExportArgs),
    /// Fine-tuned vs frozen vs from-scratch runs at several label fractions.
    Fewshot(FewshotArgs),
}

/// Runs `$f::<backend>(&args, &device)` on the backend `$device` asks for.
macro_rules! on_device {
    ($device:expr, $f:ident, $args:expr) => {
        match $device {
            DeviceKind::Cpu => $f::<jettag_train::backend::CpuTrain>($args, &Default::default())?,
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda => $f::<jettag_train::backend::GpuTrain>($args, &Default::default())?,
            #[cfg(not(feature = "cuda"))]
            DeviceKind::Cuda => anyhow::bail!("this binary was built without CUDA; rebuild with `--features cuda`"),
        }
    };
}

fn finetune(args: FinetuneArgs) -> Result<()> {
    let s = on_device!(args.device, run_finetune, &args);
    eprintln!(
        "done: {} epochs ({} steps{}), best epoch {}: val loss {:.4}, accuracy {:.4}, AUC {}; {:.0} jets/s, {:.1} s; outputs in {}",
        s.epochs_run,
        s.steps,
        if s.stopped_early { ", stopped early" } else { "" },
        s.best_epoch,
        s.best_val_loss,
        s.best_val_accuracy,
        s.best_val_auc.map_or("-".into(), |a| format!("{a:.4}")),
        s.jets_per_second,
        s.seconds,
        s.out.display()
    );
    Ok(())
}

fn eval(args: EvalArgs) -> Result<()> {
    let r = on_device!(args.device, run_eval, &args);
    let mut line = format!("{} jets: accuracy {:.4}", r.n_jets, r.accuracy);
    if let Some(b) = &r.binary {
        let rej = |v: Option<f64>| v.map_or("inf".into(), |v| format!("{v:.1}"));
        line += &format!(
            ", AUC {:.4}, 1/eps_B at eps_S=0.5: {}, at eps_S=0.3: {}",
            b.auc,
            rej(b.rejection_at_eff_s_0_5),
            rej(b.rejection_at_eff_s_0_3)
        );
    }
    if let Some(auc) = r.macro_auc {
        line += &format!(", mean one-vs-rest AUC {auc:.4}");
    }
    eprintln!("{line}
report: {}, ROC plot: {}", args.out.display(), r.roc_png);
    Ok(())
}

fn export(args: ExportArgs) -> Result<()> {
    let s = run_export::<jettag_train::backend::Cpu>(&args, &Default::default())?;
    eprintln!(
        "exported {} ({} parameters, {} ONNX nodes, {:.2} MB): {} and {}",
        s.task,
        s.parameters,
        s.nodes,
        s.onnx_bytes as f64 / 1e6,
        s.onnx.display(),
        s.manifest.display()
    );
    Ok(())
}

fn fewshot(args: FewshotArgs) -> Result<()> {
    let r = on_device!(args.device, run_fewshot, &args);
    eprintln!("{}", markdown(&r, &args.modes, &args.fractions));
    eprintln!("tables: {}/fewshot.md and fewshot.json", args.out.display());
    Ok(())
}

fn pretrain(args: PretrainArgs) -> Result<()> {
    let summary = match args.device {
        DeviceKind::Cpu => run_pretrain::<jettag_train::backend::CpuTrain>(&args, &Default::default())?,
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => run_pretrain::<jettag_train::backend::GpuTrain>(&args, &Default::default())?,
        #[cfg(not(feature = "cuda"))]
        DeviceKind::Cuda => anyhow::bail!("this binary was built without CUDA; rebuild with `--features cuda`"),
    };
    let last = summary.records.last();
    eprintln!(
        "done: {} steps, {} epochs, {:.1} jets/s, final loss {}, target std {}; outputs in {}",
        summary.steps,
        summary.epochs,
        summary.jets_per_second,
        last.map_or("-".into(), |r| format!("{:.4}", r.loss)),
        last.map_or("-".into(), |r| format!("{:.3}", r.target_std)),
        summary.out.display()
    );
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Pretrain(args) => pretrain(args),
        Command::Finetune(args) => finetune(args),
        Command::Eval(args) => eval(args),
        Command::Export(args) => export(args),
        Command::Fewshot(args) => fewshot(args),
    }
}
