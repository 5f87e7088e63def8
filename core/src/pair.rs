//! Pair features between token groups (DESIGN.md section 3): [ln kT, ln z, ln Δ, ln m²].
use crate::kinematics::{pt, rapidity, wrap_phi};

/// Number of pair-feature channels.
pub const N_PAIR: usize = 4;

/// Values are floored here before the logarithm (ParT's `eps`), so coincident groups give a
/// finite ln Δ instead of −∞.
const LOG_FLOOR: f64 = 1e-8;

#[inline]
fn ln_floor(x: f64) -> f32 {
    // f64::max ignores NaN, so even a NaN argument ends up at the floor.
    x.max(LOG_FLOOR).ln() as f32
}

/// Pair features for group four-vectors `p4` (px, py, pz, E); returns `[N_PAIR][T][T]`
/// flattened row-major (channel, a, b). The diagonal is computed like any other pair.
///
/// Δ = √(Δy² + Δφ²) with rapidity y and Δφ wrapped, kT = min(pT_a, pT_b)·Δ,
/// z = min(pT_a, pT_b)/(pT_a + pT_b), m² = (E_a + E_b)² − |p_a + p_b|².
pub fn pair_features(p4: &[[f64; 4]]) -> Vec<f32> {
    let t = p4.len();
    let mut out = vec![0.0f32; N_PAIR * t * t];
    // Per-group pT, y, φ once, not per pair.
    let kin: Vec<[f64; 3]> = p4
        .iter()
        .map(|&[px, py, pz, e]| [pt(px, py), rapidity(pz, e), py.atan2(px)])
        .collect();
    let plane = t * t;
    for a in 0..t {
        for b in a..t {
            let ([pt_a, y_a, phi_a], [pt_b, y_b, phi_b]) = (kin[a], kin[b]);
            let dy = y_a - y_b;
            let dphi = wrap_phi(phi_a - phi_b);
            let delta = (dy * dy + dphi * dphi).sqrt();
            let pt_min = pt_a.min(pt_b);
            let pt_sum = pt_a + pt_b;
            let kt = pt_min * delta;
            let z = if pt_sum > 0.0 { pt_min / pt_sum } else { 0.0 };
            let (pa, pb) = (p4[a], p4[b]);
            let (sx, sy, sz, se) = (pa[0] + pb[0], pa[1] + pb[1], pa[2] + pb[2], pa[3] + pb[3]);
            let m2 = se * se - (sx * sx + sy * sy + sz * sz);
            // All four formulas are symmetric in (a, b), so fill both triangles at once.
            for (c, v) in [ln_floor(kt), ln_floor(z), ln_floor(delta), ln_floor(m2)].into_iter().enumerate() {
                out[c * plane + a * t + b] = v;
                out[c * plane + b * t + a] = v;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_massless_back_to_back_groups() {
        // Two massless 10 GeV groups at y = 0, φ = 0 and φ = π/2.
        let p4 = [[10.0, 0.0, 0.0, 10.0], [0.0, 10.0, 0.0, 10.0]];
        let f = pair_features(&p4);
        let d = std::f64::consts::FRAC_PI_2;
        let at = |c: usize, a: usize, b: usize| f[c * 4 + a * 2 + b] as f64;
        assert!((at(0, 0, 1) - (10.0 * d).ln()).abs() < 1e-6);
        assert!((at(1, 0, 1) - 0.5f64.ln()).abs() < 1e-6);
        assert!((at(2, 1, 0) - d.ln()).abs() < 1e-6);
        // m² = 20² − (10² + 10²) = 200
        assert!((at(3, 0, 1) - 200f64.ln()).abs() < 1e-5);
        // Diagonal: Δ = 0 → floored; m² of a massless group = 0 → floored.
        assert!((at(2, 0, 0) - 1e-8f64.ln()).abs() < 1e-5);
        assert!((at(3, 1, 1) - 1e-8f64.ln()).abs() < 1e-5);
    }

    #[test]
    fn empty_input_gives_empty_output() {
        assert!(pair_features(&[]).is_empty());
    }
}
