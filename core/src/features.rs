//! Per-particle features (DESIGN.md section 3): the 7 kinematic features of ParT.
use serde::{Deserialize, Serialize};

/// Number of per-particle features: deta, dphi, log_pt, log_e, log_ptrel, log_erel, delta_r.
pub const N_FEATURES: usize = 7;

/// Names in channel order, as they appear in `model.toml` and the `tokens` JSON.
pub const FEATURE_NAMES: [&str; N_FEATURES] =
    ["deta", "dphi", "log_pt", "log_e", "log_ptrel", "log_erel", "delta_r"];

/// Centring and scaling `clip((x - c) * s, -5, 5)` per feature; deta and dphi pass raw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureConstants {
    pub center: [f32; N_FEATURES],
    pub scale: [f32; N_FEATURES],
    /// Whether each feature is clipped to [-5, 5] after scaling.
    pub clip: [bool; N_FEATURES],
}

impl Default for FeatureConstants {
    fn default() -> Self {
        Self {
            center: [0.0, 0.0, 1.7, 2.0, -4.7, -4.7, 0.2],
            scale: [1.0, 1.0, 0.7, 0.7, 0.7, 0.7, 4.0],
            clip: [false, false, true, true, true, true, true],
        }
    }
}

/// The features of a jet's kept particles (pT-sorted, truncated to `max_particles`).
#[derive(Debug, Clone, PartialEq)]
pub struct ParticleFeatures {
    /// Constituents before truncation.
    pub n_constituents: usize,
    /// One row per kept particle, hardest first, already scaled.
    pub features: Vec<[f32; N_FEATURES]>,
    /// Raw (unscaled) deta, dphi per kept particle; FPS and kNN work in this plane.
    pub eta_phi: Vec<[f64; 2]>,
    /// Kept particles' four-momenta (px, py, pz, E) in GeV, same order as `features`.
    pub p4: Vec<[f64; 4]>,
}
