//! Per-particle features (DESIGN.md section 3): the 7 kinematic features of ParT.
use serde::{Deserialize, Serialize};

use crate::kinematics::{pseudorapidity, pt, wrap_phi};
use crate::{Jet, JetError};

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

impl FeatureConstants {
    /// `(x - c) * s`, clipped to [-5, 5] where configured; computed in f64.
    #[inline]
    fn apply(&self, raw: [f64; N_FEATURES]) -> [f32; N_FEATURES] {
        let mut out = [0.0f32; N_FEATURES];
        for f in 0..N_FEATURES {
            let mut v = (raw[f] - self.center[f] as f64) * self.scale[f] as f64;
            if self.clip[f] {
                v = v.clamp(-5.0, 5.0);
            }
            out[f] = v as f32;
        }
        out
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

/// Validates a jet and computes its particle features.
///
/// The jet axis is the four-vector sum of *all* constituents (before truncation, as ParT);
/// particles are ordered by pT descending with ties in input order, and the first
/// `max_particles` are kept. `deta = (η − η_jet)·sign(η_jet)` with sign(0) = +1, so that the
/// forward direction is the same for jets in both hemispheres.
pub fn particle_features(
    jet: &Jet,
    max_particles: usize,
    max_constituents: usize,
    consts: &FeatureConstants,
) -> Result<ParticleFeatures, JetError> {
    jet.validate(max_constituents)?;
    let n = jet.n_constituents();

    let (mut jpx, mut jpy, mut jpz, mut je) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut pts = Vec::with_capacity(n);
    for i in 0..n {
        let (px, py) = (jet.px[i] as f64, jet.py[i] as f64);
        jpx += px;
        jpy += py;
        jpz += jet.pz[i] as f64;
        je += jet.energy[i] as f64;
        pts.push(pt(px, py));
    }
    let jet_pt = pt(jpx, jpy);
    // Validated (finite) inputs give a finite pT_jet ≥ 0; zero means the momenta cancel.
    if jet_pt <= 0.0 {
        return Err(JetError::ZeroJetPt);
    }
    let jet_eta = pseudorapidity(jpz, jet_pt);
    let jet_phi = jpy.atan2(jpx);
    let eta_sign = if jet_eta < 0.0 { -1.0 } else { 1.0 };
    // ln(pT/pT_jet) = ln pT − ln pT_jet: two logarithms per jet instead of two per particle.
    let (ln_jet_pt, ln_jet_e) = (jet_pt.ln(), je.ln());

    let mut order: Vec<u32> = (0..n as u32).collect();
    // Stable: equal pT keeps input order.
    order.sort_by(|&a, &b| pts[b as usize].total_cmp(&pts[a as usize]));
    let kept = n.min(max_particles);
    order.truncate(kept);

    let mut features = Vec::with_capacity(kept);
    let mut eta_phi = Vec::with_capacity(kept);
    let mut p4 = Vec::with_capacity(kept);
    for &i in &order {
        let i = i as usize;
        let (px, py, pz, e) = (jet.px[i] as f64, jet.py[i] as f64, jet.pz[i] as f64, jet.energy[i] as f64);
        let pt_i = pts[i];
        let deta = (pseudorapidity(pz, pt_i) - jet_eta) * eta_sign;
        let dphi = wrap_phi(py.atan2(px) - jet_phi);
        let (ln_pt, ln_e) = (pt_i.ln(), e.ln());
        let raw = [deta, dphi, ln_pt, ln_e, ln_pt - ln_jet_pt, ln_e - ln_jet_e, (deta * deta + dphi * dphi).sqrt()];
        features.push(consts.apply(raw));
        eta_phi.push([deta, dphi]);
        p4.push([px, py, pz, e]);
    }
    Ok(ParticleFeatures { n_constituents: n, features, eta_phi, p4 })
}
