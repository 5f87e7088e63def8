//! Tokenization (DESIGN.md section 3): farthest-point sampling, kNN groups, the greedy
//! sequencer, group four-vectors and pair features.
use serde::{Deserialize, Serialize};

use crate::{FeatureConstants, Jet, JetError, N_FEATURES};

/// Preprocessing parameters; serialised into `model.toml` so the server can refuse a model it
/// cannot reproduce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenizerConfig {
    /// Particles per token group (centre included).
    pub k: usize,
    /// Tokens per particle: n_tokens = clamp(ceil(oversample * n / k), 1, max_tokens).
    pub oversample: f32,
    pub max_tokens: usize,
    /// Particles kept after pT sorting.
    pub max_particles: usize,
    /// Hard limit on constituents in one jet; more is an error (protects the server).
    pub max_constituents: usize,
    pub features: FeatureConstants,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self {
            k: 8,
            oversample: 2.0,
            max_tokens: 32,
            max_particles: 128,
            max_constituents: 4096,
            features: FeatureConstants::default(),
        }
    }
}

/// One jet turned into model input (before batching).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedJet {
    pub n_constituents: usize,
    /// Per kept particle, pT-sorted, scaled features.
    pub features: Vec<[f32; N_FEATURES]>,
    /// For each token in sequencer order, indices into `features` of its k members, centre first.
    pub token_particles: Vec<Vec<usize>>,
    /// `[T][k][7]` flattened: member features with deta, dphi relative to the token centre.
    pub tokens: Vec<f32>,
    /// `[T][2]`: (deta, dphi) of each token's centre.
    pub centers: Vec<[f32; 2]>,
    /// `[4][T][T]` flattened pair features.
    pub pair: Vec<f32>,
}

impl TokenizedJet {
    pub fn n_tokens(&self) -> usize {
        self.centers.len()
    }
}

/// Validates and tokenizes one jet. Errors (never panics) on empty, non-finite or unphysical
/// input and on more than `cfg.max_constituents` constituents.
pub fn tokenize(jet: &Jet, cfg: &TokenizerConfig) -> Result<TokenizedJet, JetError> {
    let _ = (jet, cfg);
    todo!("core issue")
}
