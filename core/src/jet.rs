//! A jet as its constituents' four-momenta, and the checks that make it safe to preprocess.
use crate::JetError;

/// One jet: constituents as four-momenta in GeV (any order; preprocessing sorts by pT).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Jet {
    pub px: Vec<f32>,
    pub py: Vec<f32>,
    pub pz: Vec<f32>,
    pub energy: Vec<f32>,
    /// Class index into the reader's label list, if labels were read.
    pub label: Option<usize>,
}

/// Relative and absolute slack in `E ≥ |p|`: massless particles stored as f32 routinely come out
/// a few ulp below |p|, which is rounding, not physics.
const ENERGY_REL_TOL: f64 = 1e-4;
const ENERGY_ABS_TOL: f64 = 1e-6;

impl Jet {
    /// A jet without a label.
    pub fn new(px: Vec<f32>, py: Vec<f32>, pz: Vec<f32>, energy: Vec<f32>) -> Self {
        Self { px, py, pz, energy, label: None }
    }

    pub fn n_constituents(&self) -> usize {
        self.px.len()
    }

    /// Checks everything preprocessing relies on, in this order: equal array lengths, at least
    /// one and at most `max_constituents` constituents, finite values (first offending field and
    /// index named), pT > 0, and 0 < E with E ≥ |p|·(1 − 1e-4) − 1e-6.
    pub fn validate(&self, max_constituents: usize) -> Result<(), JetError> {
        let n = self.px.len();
        if self.py.len() != n || self.pz.len() != n || self.energy.len() != n {
            return Err(JetError::LengthMismatch {
                px: n,
                py: self.py.len(),
                pz: self.pz.len(),
                energy: self.energy.len(),
            });
        }
        if n == 0 {
            return Err(JetError::Empty);
        }
        if n > max_constituents {
            return Err(JetError::TooManyConstituents { n, limit: max_constituents });
        }
        for i in 0..n {
            let comps = [("px", self.px[i]), ("py", self.py[i]), ("pz", self.pz[i]), ("energy", self.energy[i])];
            for (field, value) in comps {
                if !value.is_finite() {
                    return Err(JetError::NonFinite { field, index: i, value });
                }
            }
            let (px, py, pz, e) = (self.px[i] as f64, self.py[i] as f64, self.pz[i] as f64, self.energy[i] as f64);
            let pt2 = px * px + py * py;
            if pt2 <= 0.0 {
                return Err(JetError::ZeroPt { index: i });
            }
            let p = (pt2 + pz * pz).sqrt();
            if e <= 0.0 || e < p * (1.0 - ENERGY_REL_TOL) - ENERGY_ABS_TOL {
                return Err(JetError::Unphysical { index: i, energy: e as f32, p: p as f32 });
            }
        }
        Ok(())
    }
}
