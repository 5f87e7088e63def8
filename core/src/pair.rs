//! Pair features between token groups (DESIGN.md section 3): [ln kT, ln z, ln Δ, ln m²].

/// Number of pair-feature channels.
pub const N_PAIR: usize = 4;

/// Pair features for group four-vectors `p4` (px, py, pz, E); returns `[N_PAIR][T][T]`
/// flattened row-major (channel, a, b). The diagonal is computed like any other pair.
pub fn pair_features(p4: &[[f64; 4]]) -> Vec<f32> {
    let _ = p4;
    todo!("core issue")
}
