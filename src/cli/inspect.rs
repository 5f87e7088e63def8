//! `jettag inspect FILE...`: jets, label counts, constituent multiplicity, and jet pT and mass
//! percentiles per file, computed from the constituents so any JetClass-schema file works.
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use jettag_core::{branch_types, JetReader, LabelSet, ReaderConfig};
use serde::Serialize;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// ROOT files (tree `tree`, JetClass branch schema).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Comma-separated label branches; default: every `label_*` branch of each file.
    #[arg(long)]
    pub labels: Option<String>,
    /// Print one JSON object per file instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Percentile levels reported for jet pT and mass.
pub const PERCENTILES: [f64; 5] = [10.0, 25.0, 50.0, 75.0, 90.0];

#[derive(Debug, Serialize)]
pub struct FileSummary {
    pub file: String,
    pub jets: usize,
    /// (label branch, jets of that class), in label order; empty when the file has no labels.
    pub labels: Vec<(String, usize)>,
    pub constituents_mean: f64,
    pub constituents_min: usize,
    pub constituents_max: usize,
    /// Jet pT (GeV) at [`PERCENTILES`].
    pub pt_percentiles: Vec<f64>,
    /// Jet invariant mass (GeV) at [`PERCENTILES`].
    pub mass_percentiles: Vec<f64>,
}

/// Linear-interpolation percentile of sorted data (numpy's default method).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

pub fn summarize(file: &PathBuf, labels: Option<&str>) -> Result<FileSummary> {
    let label_set = match labels {
        Some(list) => LabelSet::parse(list),
        None => LabelSet {
            branches: branch_types(file)?.into_iter().map(|(name, _)| name).filter(|n| n.starts_with("label_")).collect(),
        },
    };
    let labels = (!label_set.branches.is_empty()).then_some(label_set.clone());
    let reader = JetReader::open(file, ReaderConfig { labels, chunk_size: 4096 })?;
    let mut class_counts = vec![0usize; label_set.branches.len()];
    let (mut pts, mut masses, mut counts) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in reader {
        for jet in chunk?.jets {
            let mut s = [0.0f64; 4];
            for i in 0..jet.n_constituents() {
                s[0] += jet.px[i] as f64;
                s[1] += jet.py[i] as f64;
                s[2] += jet.pz[i] as f64;
                s[3] += jet.energy[i] as f64;
            }
            pts.push(s[0].hypot(s[1]));
            masses.push((s[3] * s[3] - s[0] * s[0] - s[1] * s[1] - s[2] * s[2]).max(0.0).sqrt());
            counts.push(jet.n_constituents());
            if let Some(l) = jet.label {
                class_counts[l] += 1;
            }
        }
    }
    pts.sort_by(f64::total_cmp);
    masses.sort_by(f64::total_cmp);
    let n = counts.len();
    Ok(FileSummary {
        file: file.display().to_string(),
        jets: n,
        labels: label_set.branches.into_iter().zip(class_counts).collect(),
        constituents_mean: if n > 0 { counts.iter().sum::<usize>() as f64 / n as f64 } else { 0.0 },
        constituents_min: counts.iter().copied().min().unwrap_or(0),
        constituents_max: counts.iter().copied().max().unwrap_or(0),
        pt_percentiles: PERCENTILES.iter().map(|&q| percentile(&pts, q)).collect(),
        mass_percentiles: PERCENTILES.iter().map(|&q| percentile(&masses, q)).collect(),
    })
}

fn print_text(s: &FileSummary) {
    println!("{}", s.file);
    println!("  jets: {}", s.jets);
    if s.labels.is_empty() {
        println!("  labels: (none)");
    } else {
        let parts: Vec<String> = s.labels.iter().map(|(name, c)| format!("{name} {c}")).collect();
        println!("  labels: {}", parts.join(", "));
    }
    println!("  constituents: mean {:.1}, min {}, max {}", s.constituents_mean, s.constituents_min, s.constituents_max);
    let fmt = |v: &[f64]| {
        PERCENTILES.iter().zip(v).map(|(q, x)| format!("p{q:.0} {x:.1}")).collect::<Vec<_>>().join(", ")
    };
    println!("  jet pT [GeV]: {}", fmt(&s.pt_percentiles));
    println!("  jet mass [GeV]: {}", fmt(&s.mass_percentiles));
}

/// Summarises every file; a bad file is reported (naming file and branch) and the others still
/// printed, and the command fails at the end.
pub fn run(args: InspectArgs) -> Result<()> {
    let mut failed = 0;
    for file in &args.files {
        // ReadError messages already name the file (and branch).
        match summarize(file, args.labels.as_deref()) {
            Ok(s) if args.json => println!("{}", serde_json::to_string(&s)?),
            Ok(s) => print_text(&s),
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} files could not be read", args.files.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentile_interpolates_like_numpy() {
        let v = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 8.0);
        assert_eq!(percentile(&v, 50.0), 3.0); // np.percentile([1,2,4,8], 50)
        assert!((percentile(&v, 10.0) - 1.3).abs() < 1e-12);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
