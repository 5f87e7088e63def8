//! Small kinematic helpers shared by features, grouping and pair features. Everything is f64:
//! inputs arrive as f32, but differences of pseudorapidities and sums of four-vectors lose
//! precision quickly in single precision.
use std::f64::consts::{PI, TAU};

/// Wraps an azimuthal difference into [−π, π). Values already inside are returned unchanged
/// (bit for bit), so in-range differences are never perturbed by the modulo arithmetic.
#[inline]
pub fn wrap_phi(x: f64) -> f64 {
    if (-PI..PI).contains(&x) {
        return x;
    }
    let r = (x + PI).rem_euclid(TAU) - PI;
    // rem_euclid can round up to exactly TAU for tiny negative arguments.
    if r >= PI {
        r - TAU
    } else {
        r
    }
}

/// Transverse momentum √(px² + py²).
#[inline]
pub fn pt(px: f64, py: f64) -> f64 {
    (px * px + py * py).sqrt()
}

/// Pseudorapidity η = asinh(pz / pT) = sign(pz)·ln((|pz| + |p|) / pT); callers guarantee
/// pT > 0. The logarithmic form has no cancellation and costs one sqrt and one ln (std's asinh
/// goes through hypot and ln_1p, a fifth of the tokenizer's time).
#[inline]
pub fn pseudorapidity(pz: f64, pt: f64) -> f64 {
    let az = pz.abs();
    let eta = ((az + (pt * pt + az * az).sqrt()) / pt).ln();
    if pz < 0.0 {
        -eta
    } else {
        eta
    }
}

/// Rapidity y = ½ ln((E + pz) / (E − pz)). Both factors are floored at 1e-20 so that a
/// four-vector within the validation tolerance of masslessness (E marginally below |p|) gives a
/// large finite rapidity instead of NaN.
#[inline]
pub fn rapidity(pz: f64, e: f64) -> f64 {
    0.5 * ((e + pz).max(1e-20) / (e - pz).max(1e-20)).ln()
}

/// Squared distance in the (deta, dphi) plane with the dphi difference wrapped. Comparisons in
/// FPS, kNN and the sequencer all use this squared distance.
#[inline]
pub fn plane_dist2(a: [f64; 2], b: [f64; 2]) -> f64 {
    let de = a[0] - b[0];
    let dp = wrap_phi(a[1] - b[1]);
    de * de + dp * dp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_phi_maps_into_half_open_interval() {
        assert_eq!(wrap_phi(0.5), 0.5);
        assert_eq!(wrap_phi(-PI), -PI);
        assert!((wrap_phi(PI) + PI).abs() < 1e-15);
        assert!((wrap_phi(1.5 * PI) + 0.5 * PI).abs() < 1e-12);
        assert!((wrap_phi(-1.5 * PI) - 0.5 * PI).abs() < 1e-12);
        assert!((wrap_phi(7.0 * PI + 0.25) - (-PI + 0.25)).abs() < 1e-12);
        for i in -1000..1000 {
            let w = wrap_phi(i as f64 * 0.0137);
            assert!((-PI..PI).contains(&w), "{w}");
        }
        assert!((-PI..PI).contains(&wrap_phi(-1e-300 - PI)));
    }

    #[test]
    fn pseudorapidity_agrees_with_asinh() {
        for &(pz, pt) in &[(0.0f64, 1.0f64), (1e-9, 3.0), (-2.5, 0.1), (1e4, 1e-3), (-1e4, 7.0), (3.0, 4.0)] {
            let want = (pz / pt).asinh();
            assert!((pseudorapidity(pz, pt) - want).abs() <= 1e-14 * (1.0 + want.abs()), "{pz} {pt}");
        }
    }

    #[test]
    fn rapidity_equals_pseudorapidity_for_massless() {
        let (px, py, pz) = (3.0_f64, 4.0, 12.0);
        let e = (px * px + py * py + pz * pz).sqrt();
        assert!((rapidity(pz, e) - pseudorapidity(pz, pt(px, py))).abs() < 1e-12);
        assert!(rapidity(10.0, 9.9).is_finite());
    }
}
