//! The `jettag` command line.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "jettag", version, about = "HEP-JEPA jet tagging: server and tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the models of a model repository over gRPC (and metrics/health over HTTP).
    Serve(jettag::config::ServeArgs),
    /// Tag the jets of a ROOT file offline and write per-jet probabilities to CSV.
    Tag(jettag::offline::TagArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            jettag::init_logging();
            match jettag::server::run(args) {
                Ok(jettag::server::Outcome::Drained) => ExitCode::SUCCESS,
                Ok(jettag::server::Outcome::GraceExceeded { .. }) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("jettag serve: error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Tag(args) => {
            jettag::init_logging();
            match jettag::offline::run(args) {
                Ok(summary) => {
                    match summary.accuracy {
                        Some(acc) => println!(
                            "tagged {} jets ({} invalid) in {:.1} s; accuracy {:.4}",
                            summary.n_jets, summary.n_invalid, summary.seconds, acc
                        ),
                        None => println!(
                            "tagged {} jets ({} invalid) in {:.1} s",
                            summary.n_jets, summary.n_invalid, summary.seconds
                        ),
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("jettag tag: error: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
