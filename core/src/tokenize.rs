//! Tokenization (DESIGN.md section 3): farthest-point sampling, kNN groups, the greedy
//! sequencer, group four-vectors and pair features.
use serde::{Deserialize, Serialize};

use crate::features::particle_features;
use crate::grouping::{farthest_point_sampling, nearest_neighbours_into, sequence};
use crate::kinematics::wrap_phi;
use crate::{pair_features, FeatureConstants, Jet, JetError, N_FEATURES};

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

impl TokenizerConfig {
    /// Rejects parameters that cannot produce tokens (k = 0, max_tokens = 0, max_particles = 0,
    /// oversample not finite and positive, non-finite feature constants).
    pub fn validate(&self) -> Result<(), JetError> {
        let bad = |reason: String| Err(JetError::InvalidConfig { reason });
        if self.k == 0 {
            return bad("k must be at least 1".into());
        }
        if self.max_tokens == 0 {
            return bad("max_tokens must be at least 1".into());
        }
        if self.max_particles == 0 {
            return bad("max_particles must be at least 1".into());
        }
        if !(self.oversample.is_finite() && self.oversample > 0.0) {
            return bad(format!("oversample must be finite and positive, got {}", self.oversample));
        }
        let f = &self.features;
        if f.center.iter().chain(f.scale.iter()).any(|v| !v.is_finite()) {
            return bad("feature constants must be finite".into());
        }
        Ok(())
    }

    /// Tokens for `n` kept particles: clamp(ceil(oversample · n / k), 1, max_tokens), and never
    /// more than `n` (centres are distinct particles). Computed in f64 from the f32 `oversample`.
    pub fn n_tokens(&self, n: usize) -> usize {
        let raw = (self.oversample as f64 * n as f64 / self.k.max(1) as f64).ceil();
        let raw = if raw.is_finite() && raw >= 1.0 { raw.min(usize::MAX as f64) as usize } else { 1 };
        raw.min(self.max_tokens).min(n).max(1)
    }
}

impl TokenizedJet {
    pub fn n_tokens(&self) -> usize {
        self.centers.len()
    }
}

/// Validates and tokenizes one jet. Errors (never panics) on empty, non-finite or unphysical
/// input and on more than `cfg.max_constituents` constituents.
pub fn tokenize(jet: &Jet, cfg: &TokenizerConfig) -> Result<TokenizedJet, JetError> {
    cfg.validate()?;
    let pf = particle_features(jet, cfg.max_particles, cfg.max_constituents, &cfg.features)?;
    let points = &pf.eta_phi;
    let n = points.len();
    let k = cfg.k;
    let t = cfg.n_tokens(n);

    let centres = farthest_point_sampling(points, t);
    let order = sequence(points, &centres);
    let t = order.len();

    let mut token_particles = Vec::with_capacity(t);
    let mut tokens = Vec::with_capacity(t * k * N_FEATURES);
    let mut centers = Vec::with_capacity(t);
    let mut group_p4 = Vec::with_capacity(t);
    let mut scratch = Vec::with_capacity(n);
    let unique = k.min(n);
    for &j in &order {
        let c = centres[j];
        let mut members = Vec::with_capacity(k);
        nearest_neighbours_into(points, c, k, &mut scratch, &mut members);
        let [ceta, cphi] = points[c];
        for &m in &members {
            let mut row = pf.features[m];
            row[0] = (points[m][0] - ceta) as f32;
            row[1] = wrap_phi(points[m][1] - cphi) as f32;
            tokens.extend_from_slice(&row);
        }
        // Members beyond `unique` repeat earlier ones (n < k); count each particle once.
        let mut sum = [0.0f64; 4];
        for &m in &members[..unique] {
            for (s, v) in sum.iter_mut().zip(pf.p4[m]) {
                *s += v;
            }
        }
        group_p4.push(sum);
        centers.push([ceta as f32, cphi as f32]);
        token_particles.push(members);
    }
    let pair = pair_features(&group_p4);
    Ok(TokenizedJet { n_constituents: pf.n_constituents, features: pf.features, token_particles, tokens, centers, pair })
}
