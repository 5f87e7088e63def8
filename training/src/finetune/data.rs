//! Labelled jets for fine-tuning, evaluation and few-shot studies: read with their class from
//! the label branches, tokenized once through `jettag-core` and held in memory, plus the
//! seeded splits (validation hold-out, label fractions balanced by class).
//!
//! The datasets here are small (tens of thousands of jets), so holding the tokenized jets is
//! cheaper than tokenizing every epoch. Only what the model reads is kept (tokens, centres,
//! pair features); the per-particle bookkeeping of [`TokenizedJet`] is dropped.
use std::path::{Path, PathBuf};

use jettag_core::{collate, tokenize, Batch, JetReader, LabelSet, ReaderConfig, TokenizedJet, TokenizerConfig};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::TrainError;

/// In which order jets of several files are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOrder {
    /// One chunk per file in turn, so that `--max-jets` over per-class files (`qcd_train.root`,
    /// `top_train.root`) keeps the classes mixed.
    Interleaved,
    /// File after file, each in its own order (evaluation: rows follow the files).
    Sequential,
}

/// Tokenized jets with their class index.
#[derive(Debug, Clone, Default)]
pub struct LabeledJets {
    pub jets: Vec<TokenizedJet>,
    pub labels: Vec<usize>,
    /// Position of each jet in the input (counting over the files in the order read,
    /// including jets that failed tokenization), so scores can be matched to rows.
    pub index: Vec<usize>,
    pub n_classes: usize,
    /// Jets refused by tokenization (bad input), with one example message.
    pub n_invalid: usize,
    pub invalid_example: Option<String>,
}

impl LabeledJets {
    pub fn len(&self) -> usize {
        self.jets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jets.is_empty()
    }

    /// Jets per class.
    pub fn class_counts(&self) -> Vec<usize> {
        class_counts(&self.labels, self.n_classes)
    }

    /// The jets at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> LabeledJets {
        LabeledJets {
            jets: indices.iter().map(|&i| self.jets[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            index: indices.iter().map(|&i| self.index[i]).collect(),
            n_classes: self.n_classes,
            n_invalid: 0,
            invalid_example: None,
        }
    }

    /// A padded batch of the jets at `indices` and their labels.
    pub fn batch(&self, indices: &[usize], k: usize) -> (Batch, Vec<usize>) {
        let refs: Vec<&TokenizedJet> = indices.iter().map(|&i| &self.jets[i]).collect();
        (collate(&refs, k), indices.iter().map(|&i| self.labels[i]).collect())
    }
}

/// Jets per class of `labels`.
pub fn class_counts(labels: &[usize], n_classes: usize) -> Vec<usize> {
    let mut counts = vec![0; n_classes];
    for &l in labels {
        counts[l] += 1;
    }
    counts
}

/// Keeps only what the model reads: tokens, centres and pair features.
fn compact(mut jet: TokenizedJet) -> TokenizedJet {
    jet.features = Vec::new();
    jet.token_particles = Vec::new();
    jet
}

/// Reads up to `max_jets` labelled jets from `files` and tokenizes them. Every jet must have
/// exactly one of the `labels` branches set (the reader's error names the file and jet
/// otherwise); jets that fail tokenization are counted and left out.
pub fn load_labeled(
    files: &[PathBuf],
    labels: &LabelSet,
    tokenizer: &TokenizerConfig,
    max_jets: Option<usize>,
    order: FileOrder,
) -> Result<LabeledJets, TrainError> {
    if files.is_empty() {
        return Err(TrainError::NoFiles("(no inputs given)".into()));
    }
    if labels.branches.len() < 2 {
        return Err(TrainError::Config(format!(
            "--labels needs at least two label branches (got {:?})",
            labels.branches
        )));
    }
    tokenizer.validate().map_err(|e| TrainError::Config(e.to_string()))?;
    let cfg = ReaderConfig { labels: Some(labels.clone()), chunk_size: 256 };
    let mut readers = Vec::with_capacity(files.len());
    for f in files {
        readers.push(JetReader::open(f, cfg.clone())?);
    }
    let limit = max_jets.unwrap_or(usize::MAX);
    let mut out = LabeledJets { n_classes: labels.branches.len(), ..Default::default() };
    let mut seen = 0usize;
    let take = |chunk: jettag_core::JetChunk, out: &mut LabeledJets, seen: &mut usize, offset: usize| {
        for (i, jet) in chunk.jets.into_iter().enumerate() {
            if *seen >= limit {
                return;
            }
            *seen += 1;
            let label = jet.label.expect("the reader was asked for labels");
            match tokenize(&jet, tokenizer) {
                Ok(t) => {
                    out.jets.push(compact(t));
                    out.labels.push(label);
                    out.index.push(offset + chunk.start + i);
                }
                Err(e) => {
                    out.n_invalid += 1;
                    out.invalid_example.get_or_insert_with(|| e.to_string());
                }
            }
        }
    };
    // Offsets of each file's first jet in the global numbering (files in the given order).
    let mut offsets = Vec::with_capacity(readers.len());
    let mut total = 0;
    for r in &readers {
        offsets.push(total);
        total += r.n_jets();
    }
    match order {
        FileOrder::Sequential => {
            for (reader, offset) in readers.into_iter().zip(offsets) {
                for chunk in reader {
                    if seen >= limit {
                        break;
                    }
                    take(chunk?, &mut out, &mut seen, offset);
                }
            }
        }
        FileOrder::Interleaved => {
            let mut active: Vec<(JetReader, usize)> = readers.into_iter().zip(offsets).collect();
            while !active.is_empty() && seen < limit {
                let mut next = Vec::with_capacity(active.len());
                for (mut reader, offset) in active {
                    if seen >= limit {
                        break;
                    }
                    if let Some(chunk) = reader.next() {
                        take(chunk?, &mut out, &mut seen, offset);
                        next.push((reader, offset));
                    }
                }
                active = next;
            }
        }
    }
    if out.jets.is_empty() {
        return Err(TrainError::NoJets);
    }
    Ok(out)
}

/// Splits jet indices into (kept, held out): each class gives `round(fraction · n_c)` of its
/// jets, chosen by a seeded shuffle, to the held-out part (at least one when the class has two
/// or more jets and `fraction > 0`). Used for a validation set carved out of the training files.
pub fn stratified_holdout(
    labels: &[usize],
    n_classes: usize,
    fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), TrainError> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(TrainError::Config(format!("validation fraction must be in [0, 1), got {fraction}")));
    }
    let mut kept = Vec::new();
    let mut held = Vec::new();
    for (c, mut members) in by_class(labels, n_classes).into_iter().enumerate() {
        members.shuffle(&mut class_rng(seed ^ 0x5eed_0f_4a11, c));
        let mut n = (fraction * members.len() as f64).round() as usize;
        if fraction > 0.0 && n == 0 && members.len() >= 2 {
            n = 1;
        }
        held.extend_from_slice(&members[..n]);
        kept.extend_from_slice(&members[n..]);
    }
    kept.sort_unstable();
    held.sort_unstable();
    Ok((kept, held))
}

/// The labelled subset for a label fraction, balanced by class: every class contributes
/// `max(1, round(fraction · N / C))` jets (N jets, C classes), or all its jets if it has fewer,
/// chosen by a per-class seeded shuffle. Fraction 1 keeps every jet. With the same seed a
/// smaller fraction's subset is contained in a larger one's (each class takes a prefix of the
/// same permutation), so a few-shot table compares nested label sets.
///
/// Returns the chosen positions into `labels`, sorted.
pub fn label_fraction_subset(
    labels: &[usize],
    n_classes: usize,
    fraction: f64,
    seed: u64,
) -> Result<Vec<usize>, TrainError> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(TrainError::Config(format!("--label-fraction must be in (0, 1], got {fraction}")));
    }
    if fraction == 1.0 {
        return Ok((0..labels.len()).collect());
    }
    let per_class = ((fraction * labels.len() as f64 / n_classes as f64).round() as usize).max(1);
    let mut chosen = Vec::new();
    for (c, mut members) in by_class(labels, n_classes).into_iter().enumerate() {
        members.shuffle(&mut class_rng(seed, c));
        chosen.extend_from_slice(&members[..per_class.min(members.len())]);
    }
    chosen.sort_unstable();
    Ok(chosen)
}

fn by_class(labels: &[usize], n_classes: usize) -> Vec<Vec<usize>> {
    let mut members = vec![Vec::new(); n_classes];
    for (i, &l) in labels.iter().enumerate() {
        members[l].push(i);
    }
    members
}

fn class_rng(seed: u64, class: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed.wrapping_add((class as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

/// Class names from label branches: `label_QCD` → `QCD`.
pub fn default_class_names(labels: &LabelSet) -> Vec<String> {
    labels
        .branches
        .iter()
        .map(|b| b.strip_prefix("label_").unwrap_or(b).to_string())
        .collect()
}

/// Paths as strings for configs and reports.
pub fn path_strings(files: &[PathBuf]) -> Vec<String> {
    files.iter().map(|p| p.display().to_string()).collect()
}

/// `FILE_OR_GLOB` arguments → files, with the argument name in the error.
pub fn expand(what: &str, patterns: &[String]) -> Result<Vec<PathBuf>, TrainError> {
    if patterns.is_empty() {
        return Err(TrainError::Config(format!("{what}: no input files given")));
    }
    crate::data::expand_inputs(patterns)
}

/// Whether `dir` exists as a directory (for clear messages before reading files in it).
pub fn require_dir(dir: &Path, what: &str) -> Result<(), TrainError> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(TrainError::Config(format!("{what} {} is not a directory", dir.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(counts: &[usize]) -> Vec<usize> {
        // Interleave the classes so positions do not follow the class.
        let mut out = Vec::new();
        let max = *counts.iter().max().unwrap();
        for i in 0..max {
            for (c, &n) in counts.iter().enumerate() {
                if i < n {
                    out.push(c);
                }
            }
        }
        out
    }

    #[test]
    fn label_fraction_is_balanced_reproducible_and_nested() {
        let y = labels(&[1000, 1000]);
        let small = label_fraction_subset(&y, 2, 0.005, 7).unwrap();
        assert_eq!(class_counts(&small.iter().map(|&i| y[i]).collect::<Vec<_>>(), 2), vec![5, 5]);
        assert_eq!(small, label_fraction_subset(&y, 2, 0.005, 7).unwrap(), "same seed, same subset");
        assert_ne!(small, label_fraction_subset(&y, 2, 0.005, 8).unwrap(), "another seed, another subset");
        let large = label_fraction_subset(&y, 2, 0.1, 7).unwrap();
        assert_eq!(large.len(), 200);
        assert!(small.iter().all(|i| large.contains(i)), "smaller fractions are nested in larger ones");
        assert_eq!(label_fraction_subset(&y, 2, 1.0, 7).unwrap().len(), 2000);
        // 0.05 % of 2000 is one jet: still one per class, so both classes are seen.
        let tiny = label_fraction_subset(&y, 2, 0.0005, 7).unwrap();
        assert_eq!(class_counts(&tiny.iter().map(|&i| y[i]).collect::<Vec<_>>(), 2), vec![1, 1]);
    }

    #[test]
    fn label_fraction_balances_unequal_classes() {
        let y = labels(&[900, 100, 30]);
        let s = label_fraction_subset(&y, 3, 0.1, 1).unwrap();
        // round(0.1 * 1030 / 3) = 34 per class; the third class only has 30.
        assert_eq!(class_counts(&s.iter().map(|&i| y[i]).collect::<Vec<_>>(), 3), vec![34, 34, 30]);
        assert!(label_fraction_subset(&y, 3, 0.0, 1).is_err());
        assert!(label_fraction_subset(&y, 3, 1.5, 1).is_err());
    }

    #[test]
    fn holdout_is_stratified_and_disjoint() {
        let y = labels(&[300, 100]);
        let (kept, held) = stratified_holdout(&y, 2, 0.1, 3).unwrap();
        assert_eq!(kept.len() + held.len(), 400);
        assert_eq!(class_counts(&held.iter().map(|&i| y[i]).collect::<Vec<_>>(), 2), vec![30, 10]);
        assert!(held.iter().all(|i| !kept.contains(i)));
        assert_eq!((kept.clone(), held.clone()), stratified_holdout(&y, 2, 0.1, 3).unwrap());
        assert!(stratified_holdout(&y, 2, 1.0, 3).is_err());
    }

    #[test]
    fn class_names_drop_the_label_prefix() {
        assert_eq!(default_class_names(&LabelSet::toptag()), vec!["QCD", "Tbqq"]);
        assert_eq!(default_class_names(&LabelSet::parse("label_quark,gluon")), vec!["quark", "gluon"]);
    }

    #[test]
    fn fixture_jets_load_with_labels_in_both_orders() {
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/toptag_small.root");
        let cfg = TokenizerConfig::default();
        let all = load_labeled(&[file.clone()], &LabelSet::toptag(), &cfg, None, FileOrder::Sequential).unwrap();
        assert!(all.len() >= 100);
        let counts = all.class_counts();
        assert!(counts[0] > 0 && counts[1] > 0, "{counts:?}");
        assert_eq!(all.index[..3], [0, 1, 2]);
        // Two copies of the file, interleaved by chunk and cut at 30 jets: the first 30 of file 1.
        let two = load_labeled(&[file.clone(), file], &LabelSet::toptag(), &cfg, Some(30), FileOrder::Interleaved).unwrap();
        assert_eq!(two.len(), 30);
        assert_eq!(two.labels, all.labels[..30]);
        assert!(two.jets.iter().all(|j| j.features.is_empty() && !j.tokens.is_empty()));
        let err = load_labeled(
            &[PathBuf::from("/nonexistent.root")],
            &LabelSet::toptag(),
            &cfg,
            None,
            FileOrder::Sequential,
        );
        assert!(err.is_err());
    }
}
