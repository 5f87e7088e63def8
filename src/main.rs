//! The `jettag` command line.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

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
    /// Summarise ROOT files: jets, label counts, constituents, jet pT and mass percentiles.
    Inspect(cli::inspect::InspectArgs),
    /// Print one jet's model input (features, tokens, centres, pair features, mask).
    Tokens(cli::tokens::TokensArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect(args) => report("inspect", cli::inspect::run(args)),
        Command::Tokens(args) => report("tokens", cli::tokens::run(args)),
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

/// Exit status for the core subcommands: errors (which name file and branch) go to stderr.
fn report(command: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jettag {command}: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
