//! JEPA masking (DESIGN.md section 5): per jet, M target blocks and one context block in
//! sequencer order (token index order), target tokens removed from the context. Jets in a
//! batch have different token counts, so masks are drawn per jet and then padded into index
//! tensors.
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// How blocks are laid out over the token sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MaskingStrategy {
    /// Contiguous runs in sequencer order (the paper's default).
    Contiguous,
    /// Blocks of the same sizes made of randomly chosen tokens (ablation).
    Random,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskingConfig {
    pub strategy: MaskingStrategy,
    /// Number of target blocks M.
    pub n_targets: usize,
    /// Each target block holds round(u·T) tokens, u ~ U[lo, hi].
    pub target_scale: (f64, f64),
    /// The context block holds round(u·T) tokens, u ~ U[lo, hi], before target removal.
    pub context_scale: (f64, f64),
}

impl Default for MaskingConfig {
    fn default() -> Self {
        Self {
            strategy: MaskingStrategy::Contiguous,
            n_targets: 4,
            target_scale: (0.15, 0.2),
            context_scale: (0.4, 0.75),
        }
    }
}

impl MaskingConfig {
    pub fn validate(&self) -> Result<(), TrainError> {
        let ok = |(lo, hi): (f64, f64)| (0.0..=1.0).contains(&lo) && lo <= hi && hi <= 1.0;
        if self.n_targets == 0 {
            return Err(TrainError::Config("at least one target block is needed".into()));
        }
        if !ok(self.target_scale) || !ok(self.context_scale) {
            return Err(TrainError::Config(format!(
                "mask scales must satisfy 0 <= lo <= hi <= 1: targets {:?}, context {:?}",
                self.target_scale, self.context_scale
            )));
        }
        Ok(())
    }
}

/// Masks of one jet; every index list is sorted and non-empty, `context` and `targets` are
/// disjoint.
#[derive(Debug, Clone, PartialEq)]
pub struct JetMasks {
    /// The M target blocks as drawn (they may overlap each other).
    pub target_blocks: Vec<Vec<usize>>,
    /// The context block as drawn, before the targets were removed from it.
    pub context_block: Vec<usize>,
    /// Context tokens: the context block minus all target tokens.
    pub context: Vec<usize>,
    /// Target tokens: the union of the target blocks.
    pub targets: Vec<usize>,
    /// True when 20 draws left no context (tiny jets); then one random token became the
    /// context and was taken out of the targets, and the blocks no longer follow the scales.
    pub fallback: bool,
}

/// Minimum tokens a jet needs to be split into a context and a target.
pub const MIN_TOKENS: usize = 2;

fn block_size(n: usize, (lo, hi): (f64, f64), rng: &mut impl Rng) -> usize {
    let u = if hi > lo { rng.random_range(lo..=hi) } else { lo };
    ((u * n as f64).round() as usize).clamp(1, n)
}

fn draw_blocks(n: usize, cfg: &MaskingConfig, rng: &mut impl Rng) -> (Vec<Vec<usize>>, Vec<usize>) {
    let sizes: Vec<usize> = (0..cfg.n_targets).map(|_| block_size(n, cfg.target_scale, rng)).collect();
    let context_size = block_size(n, cfg.context_scale, rng);
    match cfg.strategy {
        MaskingStrategy::Contiguous => {
            let mut run = |size: usize| {
                let start = rng.random_range(0..=n - size);
                (start..start + size).collect::<Vec<_>>()
            };
            let targets = sizes.iter().map(|&s| run(s)).collect();
            (targets, run(context_size))
        }
        MaskingStrategy::Random => {
            let mut subset = |size: usize| {
                let mut v: Vec<usize> = rand::seq::index::sample(rng, n, size).into_vec();
                v.sort_unstable();
                v
            };
            let targets = sizes.iter().map(|&s| subset(s)).collect();
            (targets, subset(context_size))
        }
    }
}

/// Draws masks for a jet of `n_tokens` tokens (at least [`MIN_TOKENS`]).
pub fn sample_jet_masks(
    n_tokens: usize,
    cfg: &MaskingConfig,
    rng: &mut impl Rng,
) -> Result<JetMasks, TrainError> {
    if n_tokens < MIN_TOKENS {
        return Err(TrainError::Config(format!(
            "a jet with {n_tokens} token(s) cannot be split into context and targets"
        )));
    }
    let n = n_tokens;
    let mut last = None;
    for _ in 0..20 {
        let (target_blocks, context_block) = draw_blocks(n, cfg, rng);
        let mut is_target = vec![false; n];
        for &i in target_blocks.iter().flatten() {
            is_target[i] = true;
        }
        let targets: Vec<usize> = (0..n).filter(|&i| is_target[i]).collect();
        let context: Vec<usize> = context_block.iter().copied().filter(|&i| !is_target[i]).collect();
        if !context.is_empty() && targets.len() < n {
            return Ok(JetMasks { target_blocks, context_block, context, targets, fallback: false });
        }
        last = Some((target_blocks, context_block, targets));
    }
    // Tiny jets only: force one context token and keep the rest of the targets.
    let (target_blocks, context_block, mut targets) = last.expect("loop ran at least once");
    let keep = rng.random_range(0..n);
    targets.retain(|&i| i != keep);
    if targets.is_empty() {
        let mut others: Vec<usize> = (0..n).filter(|&i| i != keep).collect();
        others.shuffle(rng);
        targets.push(others[0]);
    }
    Ok(JetMasks { target_blocks, context_block, context: vec![keep], targets, fallback: true })
}

/// Masks of a batch as padded index lists, row-major `[B, N]`; padding slots hold index 0 and
/// `false` in the mask.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchMasks {
    pub b: usize,
    /// Largest context size in the batch.
    pub nc: usize,
    /// Largest target count in the batch.
    pub nt: usize,
    pub context_idx: Vec<i64>,
    pub context_mask: Vec<bool>,
    pub target_idx: Vec<i64>,
    pub target_mask: Vec<bool>,
}

impl BatchMasks {
    /// Draws masks for each jet, given its number of real tokens.
    pub fn sample(
        token_counts: &[usize],
        cfg: &MaskingConfig,
        rng: &mut impl Rng,
    ) -> Result<Self, TrainError> {
        let jets = token_counts
            .iter()
            .map(|&n| sample_jet_masks(n, cfg, rng))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_jets(&jets))
    }

    pub fn from_jets(jets: &[JetMasks]) -> Self {
        let nc = jets.iter().map(|j| j.context.len()).max().unwrap_or(0);
        let nt = jets.iter().map(|j| j.targets.len()).max().unwrap_or(0);
        let pad = |lists: Vec<&Vec<usize>>, width: usize| {
            let mut idx = Vec::with_capacity(lists.len() * width);
            let mut mask = Vec::with_capacity(lists.len() * width);
            for list in lists {
                for slot in 0..width {
                    idx.push(list.get(slot).map_or(0, |&i| i as i64));
                    mask.push(slot < list.len());
                }
            }
            (idx, mask)
        };
        let (context_idx, context_mask) = pad(jets.iter().map(|j| &j.context).collect(), nc);
        let (target_idx, target_mask) = pad(jets.iter().map(|j| &j.targets).collect(), nt);
        Self { b: jets.len(), nc, nt, context_idx, context_mask, target_idx, target_mask }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn check_invariants(n: usize, m: &JetMasks) {
        assert!(!m.context.is_empty() && !m.targets.is_empty(), "n={n}: {m:?}");
        for &c in &m.context {
            assert!(c < n);
            assert!(!m.targets.contains(&c), "n={n}: target token {c} leaked into the context");
        }
        assert!(m.targets.iter().all(|&t| t < n));
        assert!(m.context.windows(2).all(|w| w[0] < w[1]));
        assert!(m.targets.windows(2).all(|w| w[0] < w[1]));
    }

    fn in_scale(len: usize, n: usize, (lo, hi): (f64, f64)) -> bool {
        let lo = ((lo * n as f64).round() as usize).max(1);
        let hi = ((hi * n as f64).round() as usize).max(1);
        (lo..=hi).contains(&len)
    }

    #[test]
    fn targets_never_enter_the_context_and_blocks_follow_the_scales() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for strategy in [MaskingStrategy::Contiguous, MaskingStrategy::Random] {
            let cfg = MaskingConfig { strategy, ..Default::default() };
            for n in 2..=40 {
                for _ in 0..200 {
                    let m = sample_jet_masks(n, &cfg, &mut rng).unwrap();
                    check_invariants(n, &m);
                    if n >= 10 {
                        assert!(!m.fallback, "n={n} needed the fallback");
                    }
                    if m.fallback {
                        continue;
                    }
                    assert_eq!(m.target_blocks.len(), 4);
                    for block in &m.target_blocks {
                        assert!(in_scale(block.len(), n, cfg.target_scale), "n={n}: target block {block:?}");
                        if strategy == MaskingStrategy::Contiguous {
                            assert!(block.windows(2).all(|w| w[1] == w[0] + 1), "not contiguous: {block:?}");
                        }
                    }
                    assert!(in_scale(m.context_block.len(), n, cfg.context_scale), "n={n}: {:?}", m.context_block);
                    // The targets are exactly the union of the blocks, and the context is the
                    // context block minus that union.
                    let mut union: Vec<usize> = m.target_blocks.iter().flatten().copied().collect();
                    union.sort_unstable();
                    union.dedup();
                    assert_eq!(union, m.targets);
                    let expect: Vec<usize> =
                        m.context_block.iter().copied().filter(|i| !union.contains(i)).collect();
                    assert_eq!(expect, m.context);
                }
            }
        }
    }

    #[test]
    fn contiguous_blocks_start_everywhere() {
        // A uniform start position must reach both ends of the sequence.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let cfg = MaskingConfig::default();
        let (mut first, mut last) = (false, false);
        for _ in 0..500 {
            let m = sample_jet_masks(30, &cfg, &mut rng).unwrap();
            first |= m.targets.contains(&0);
            last |= m.targets.contains(&29);
        }
        assert!(first && last);
    }

    #[test]
    fn too_small_jets_are_errors_and_batches_pad() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let cfg = MaskingConfig::default();
        assert!(sample_jet_masks(1, &cfg, &mut rng).is_err());
        let masks = BatchMasks::sample(&[3, 32, 12], &cfg, &mut rng).unwrap();
        assert_eq!(masks.context_idx.len(), 3 * masks.nc);
        assert_eq!(masks.target_idx.len(), 3 * masks.nt);
        for (row, &n) in [3usize, 32, 12].iter().enumerate() {
            let ctx = &masks.context_idx[row * masks.nc..(row + 1) * masks.nc];
            let cm = &masks.context_mask[row * masks.nc..(row + 1) * masks.nc];
            let tgt = &masks.target_idx[row * masks.nt..(row + 1) * masks.nt];
            let tm = &masks.target_mask[row * masks.nt..(row + 1) * masks.nt];
            let real_ctx: Vec<i64> = ctx.iter().zip(cm).filter(|(_, &m)| m).map(|(&i, _)| i).collect();
            let real_tgt: Vec<i64> = tgt.iter().zip(tm).filter(|(_, &m)| m).map(|(&i, _)| i).collect();
            assert!(!real_ctx.is_empty() && !real_tgt.is_empty());
            assert!(real_ctx.iter().chain(&real_tgt).all(|&i| (i as usize) < n));
            assert!(real_ctx.iter().all(|i| !real_tgt.contains(i)));
            // Real entries come first, padding after.
            assert!(cm.windows(2).all(|w| w[0] || !w[1]));
        }
        assert!(BatchMasks::sample(&[5, 1], &cfg, &mut rng).is_err());
    }

    #[test]
    fn masks_are_reproducible_for_a_seed() {
        let cfg = MaskingConfig::default();
        let draw = |seed| BatchMasks::sample(&[20, 7, 31], &cfg, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
    }
}
