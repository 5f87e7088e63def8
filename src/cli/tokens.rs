//! `jettag tokens FILE --jet N --json`: one jet's model input, from the same `tokenize` and
//! `collate` calls that training and serving use.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use jettag_core::{collate, tokenize, JetReader, ReaderConfig, TokenizerConfig, N_FEATURES, N_PAIR};
use serde_json::json;

#[derive(Args, Debug)]
pub struct TokensArgs {
    /// ROOT file (tree `tree`, JetClass branch schema).
    pub file: PathBuf,
    /// Jet index in the file (0-based).
    #[arg(long, default_value_t = 0)]
    pub jet: usize,
    /// Print the tensors as JSON (otherwise a short text summary).
    #[arg(long)]
    pub json: bool,
    /// Particles per token group (default from TokenizerConfig).
    #[arg(long)]
    pub k: Option<usize>,
    #[arg(long)]
    pub max_tokens: Option<usize>,
    #[arg(long)]
    pub oversample: Option<f32>,
    #[arg(long)]
    pub max_particles: Option<usize>,
}

impl TokensArgs {
    pub fn config(&self) -> TokenizerConfig {
        let d = TokenizerConfig::default();
        TokenizerConfig {
            k: self.k.unwrap_or(d.k),
            max_tokens: self.max_tokens.unwrap_or(d.max_tokens),
            oversample: self.oversample.unwrap_or(d.oversample),
            max_particles: self.max_particles.unwrap_or(d.max_particles),
            ..d
        }
    }
}

fn rows<const N: usize>(flat: &[f32]) -> Vec<[f32; N]> {
    flat.chunks_exact(N).map(|c| c.try_into().expect("chunk of N")).collect()
}

pub fn run(args: TokensArgs) -> Result<()> {
    let cfg = args.config();
    // A bad option is the option's fault, not the jet's: say so before reading anything.
    cfg.validate().context("--k, --max-tokens, --oversample, --max-particles")?;
    let file = args.file.display().to_string();
    let reader = JetReader::open(&args.file, ReaderConfig { labels: None, chunk_size: 1024 })?;
    let n_jets = reader.n_jets();
    if args.jet >= n_jets {
        bail!("{file}: jet {} out of range (the file has {n_jets} jets)", args.jet);
    }
    let mut found = None;
    for chunk in reader {
        let chunk = chunk?;
        if args.jet < chunk.start + chunk.jets.len() {
            found = chunk.jets.into_iter().nth(args.jet - chunk.start);
            break;
        }
    }
    let jet = found.with_context(|| format!("{file}: jet {} not found", args.jet))?;
    let t = tokenize(&jet, &cfg).with_context(|| format!("{file}: jet {}", args.jet))?;
    let batch = collate(&[&t], cfg.k);
    let (nt, k) = (batch.t, batch.k);

    if !args.json {
        println!("{file} jet {}: {} constituents, {} kept, {} tokens of k = {k}", args.jet, t.n_constituents, t.features.len(), nt);
        for (i, (members, c)) in t.token_particles.iter().zip(&t.centers).enumerate() {
            println!("  token {i:2}: centre ({:+.3}, {:+.3}) members {members:?}", c[0], c[1]);
        }
        return Ok(());
    }
    let tokens: Vec<Vec<[f32; N_FEATURES]>> = rows::<N_FEATURES>(&batch.tokens).chunks(k).map(<[_]>::to_vec).collect();
    let pair: Vec<Vec<Vec<f32>>> =
        batch.pair.chunks(nt * nt).map(|plane| plane.chunks(nt).map(<[f32]>::to_vec).collect()).collect();
    debug_assert_eq!(pair.len(), N_PAIR);
    let out = json!({
        "n_constituents": t.n_constituents,
        "features": t.features,
        "token_particles": t.token_particles,
        "tokens": tokens,
        "centers": rows::<2>(&batch.centers),
        "pair": pair,
        "token_mask": batch.token_mask,
    });
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}
