//! Synthetic batches for model tests (no ROOT files or tokenizer needed).
use jettag_core::{Batch, N_FEATURES, N_PAIR};

/// Deterministic pseudo-random values in [-2, 2) from a seed (SplitMix64).
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
        })
        .collect()
}

/// One synthetic jet of `t` tokens: (tokens `[t,k,7]`, centers `[t,2]`, pair `[4,t,t]`).
pub struct SynthJet {
    pub t: usize,
    pub tokens: Vec<f32>,
    pub centers: Vec<f32>,
    pub pair: Vec<f32>,
}

pub fn synth_jet(t: usize, k: usize, seed: u64) -> SynthJet {
    SynthJet {
        t,
        tokens: values(seed, t * k * N_FEATURES),
        centers: values(seed ^ 1, t * 2).iter().map(|v| v * 0.2).collect(),
        // Pair features are logs: spread them over about [-10, 2].
        pair: values(seed ^ 2, N_PAIR * t * t).iter().map(|v| v * 3.0 - 4.0).collect(),
    }
}

/// Pads jets to `t_pad` tokens; padding is filled with `pad_value` (not zero) so that tests
/// prove the model ignores it rather than relying on zeros.
pub fn batch_of(jets: &[&SynthJet], k: usize, t_pad: usize, pad_value: f32) -> Batch {
    let b = jets.len();
    let mut out = Batch {
        b,
        t: t_pad,
        k,
        tokens: vec![pad_value; b * t_pad * k * N_FEATURES],
        centers: vec![pad_value; b * t_pad * 2],
        pair: vec![pad_value; b * N_PAIR * t_pad * t_pad],
        token_mask: vec![false; b * t_pad],
    };
    let per_token = k * N_FEATURES;
    for (i, jet) in jets.iter().enumerate() {
        assert!(jet.t <= t_pad);
        let base = i * t_pad;
        out.tokens[base * per_token..(base + jet.t) * per_token].copy_from_slice(&jet.tokens);
        out.centers[base * 2..(base + jet.t) * 2].copy_from_slice(&jet.centers);
        for c in 0..N_PAIR {
            for a in 0..jet.t {
                let dst = ((i * N_PAIR + c) * t_pad + a) * t_pad;
                let src = (c * jet.t + a) * jet.t;
                out.pair[dst..dst + jet.t].copy_from_slice(&jet.pair[src..src + jet.t]);
            }
        }
        out.token_mask[base..base + jet.t].iter_mut().for_each(|m| *m = true);
    }
    out
}
