//! `jettag-train`: HEP-JEPA pre-training (and, in later subcommands, fine-tuning, evaluation
//! and ONNX export). The logic lives in the library; this file only parses arguments.
use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use jettag_train::backend::DeviceKind;
use jettag_train::pretrain::{run_pretrain, PretrainArgs};

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
}

fn pretrain(args: PretrainArgs) -> Result<()> {
    let summary = match args.device {
        DeviceKind::Cpu => run_pretrain::<jettag_train::backend::CpuTrain>(&args, &Default::default())?,
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => run_pretrain::<jettag_train::backend::GpuTrain>(&args, &Default::default())?,
        #[cfg(not(feature = "cuda"))]
        DeviceKind::Cuda => bail!("this binary was built without CUDA; rebuild with `--features cuda`"),
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
    }
}
