//! Property tests of tokenization on random physical jets and on random garbage.
use std::collections::HashSet;

use jettag_core::grouping::{farthest_point_sampling, nearest_neighbours, sequence};
use jettag_core::kinematics::plane_dist2;
use jettag_core::{particle_features, tokenize, Jet, TokenizerConfig, N_FEATURES, N_PAIR};
use proptest::prelude::*;

/// A jet from (pT, η, φ, m) per particle; φ near ±π is common so that wrapping is exercised.
fn physical_jet() -> impl Strategy<Value = Jet> {
    (-2.5f64..2.5, -3.3f64..3.3, 1usize..160).prop_flat_map(|(eta0, phi0, n)| {
        prop::collection::vec((0.5f64..400.0, -0.8f64..0.8, -0.8f64..0.8, 0.0f64..0.5), n).prop_map(move |parts| {
            let mut jet = Jet::default();
            for (pt, deta, dphi, m) in parts {
                let (eta, phi) = (eta0 + deta, phi0 + dphi);
                let (px, py, pz) = (pt * phi.cos(), pt * phi.sin(), pt * eta.sinh());
                jet.px.push(px as f32);
                jet.py.push(py as f32);
                jet.pz.push(pz as f32);
                jet.energy.push((px * px + py * py + pz * pz + m * m).sqrt() as f32);
            }
            jet
        })
    })
}

fn config() -> impl Strategy<Value = TokenizerConfig> {
    (1usize..20, 0.25f32..4.0, 1usize..40, 1usize..150).prop_map(|(k, oversample, max_tokens, max_particles)| {
        TokenizerConfig { k, oversample, max_tokens, max_particles, ..TokenizerConfig::default() }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn tokenization_properties(jet in physical_jet(), cfg in config()) {
        let t = tokenize(&jet, &cfg).unwrap();
        prop_assert_eq!(&t, &tokenize(&jet, &cfg).unwrap(), "deterministic");

        let pf = particle_features(&jet, cfg.max_particles, cfg.max_constituents, &cfg.features).unwrap();
        let pts = &pf.eta_phi;
        let n = pts.len();
        prop_assert_eq!(n, jet.n_constituents().min(cfg.max_particles));
        let expected_t = ((cfg.oversample as f64 * n as f64 / cfg.k as f64).ceil() as usize).clamp(1, cfg.max_tokens).min(n);
        prop_assert_eq!(t.n_tokens(), expected_t);
        prop_assert_eq!(t.token_particles.len(), expected_t);
        prop_assert_eq!(t.tokens.len(), expected_t * cfg.k * N_FEATURES);
        prop_assert_eq!(t.pair.len(), N_PAIR * expected_t * expected_t);

        // pT ordering of the kept particles.
        for w in pf.p4.windows(2) {
            prop_assert!(w[0][0].hypot(w[0][1]) >= w[1][0].hypot(w[1][1]));
        }

        // Centres: distinct, the first is the hardest particle.
        let centres: Vec<usize> = t.token_particles.iter().map(|g| g[0]).collect();
        prop_assert_eq!(centres[0], 0);
        prop_assert_eq!(centres.iter().collect::<HashSet<_>>().len(), centres.len(), "centres distinct");

        for (ti, group) in t.token_particles.iter().enumerate() {
            prop_assert_eq!(group.len(), cfg.k, "every group has k members");
            prop_assert!(group.iter().all(|&m| m < n));
            let c = group[0];
            let unique = cfg.k.min(n);
            // Nearest-neighbour order: non-decreasing distance after the centre.
            let d: Vec<f64> = group[..unique].iter().map(|&m| plane_dist2(pts[m], pts[c])).collect();
            for w in d[1..].windows(2) {
                prop_assert!(w[0] <= w[1], "token {}: distances {:?}", ti, d);
            }
            prop_assert_eq!(group[..unique].iter().collect::<HashSet<_>>().len(), unique, "members distinct");
            // Nobody outside the group is strictly closer than its farthest member.
            let far = d[unique - 1];
            for i in 0..n {
                if !group.contains(&i) {
                    prop_assert!(plane_dist2(pts[i], pts[c]) >= far);
                }
            }
            // n < k: the sorted list repeats cyclically.
            for j in unique..cfg.k {
                prop_assert_eq!(group[j], group[j % unique]);
            }
            // The centre's own relative position is (0, 0); centres are raw (deta, dphi).
            let row = &t.tokens[ti * cfg.k * N_FEATURES..][..N_FEATURES];
            prop_assert_eq!((row[0], row[1]), (0.0, 0.0));
            prop_assert_eq!(t.centers[ti], [pts[c][0] as f32, pts[c][1] as f32]);
        }

        // Sequencer: greedy nearest unvisited centre.
        for s in 1..centres.len() {
            let prev = pts[centres[s - 1]];
            let chosen = plane_dist2(pts[centres[s]], prev);
            for &later in &centres[s + 1..] {
                prop_assert!(plane_dist2(pts[later], prev) >= chosen);
            }
        }

        prop_assert!(t.tokens.iter().chain(&t.pair).all(|v| v.is_finite()));
        prop_assert!(t.features.iter().flatten().all(|v| v.is_finite()));
        let tt = expected_t;
        for c in 0..N_PAIR {
            for a in 0..tt {
                for b in 0..tt {
                    prop_assert_eq!(t.pair[(c * tt + a) * tt + b], t.pair[(c * tt + b) * tt + a], "pair symmetric");
                }
            }
        }
    }

    /// FPS is greedy: each new centre is at least as far from the earlier ones as any particle
    /// chosen later, and centres are distinct even with coincident particles.
    #[test]
    fn fps_is_farthest_first(
        pts in prop::collection::vec((-1.0f64..1.0, -3.2f64..3.2), 1..80)
            .prop_map(|v| v.into_iter().flat_map(|(a, b)| [[a, b], [a, b]]).collect::<Vec<_>>()),
        m in 1usize..60,
    ) {
        let c = farthest_point_sampling(&pts, m);
        prop_assert_eq!(c.len(), m.min(pts.len()));
        prop_assert_eq!(c.iter().collect::<HashSet<_>>().len(), c.len());
        let min_to = |p: [f64; 2], set: &[usize]| set.iter().map(|&s| plane_dist2(p, pts[s])).fold(f64::INFINITY, f64::min);
        for s in 1..c.len() {
            let chosen = min_to(pts[c[s]], &c[..s]);
            for (i, &p) in pts.iter().enumerate() {
                if !c[..s].contains(&i) {
                    prop_assert!(min_to(p, &c[..s]) <= chosen);
                }
            }
        }
        let order = sequence(&pts, &c);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, (0..c.len()).collect::<Vec<_>>(), "sequencer visits each token once");
        let nn = nearest_neighbours(&pts, c[c.len() - 1], 5);
        prop_assert_eq!(nn.len(), 5);
        prop_assert_eq!(nn[0], c[c.len() - 1]);
    }

    /// Arbitrary numbers, lengths and configurations: an error or finite tensors, never a panic.
    #[test]
    fn garbage_never_panics(
        px in prop::collection::vec(any::<f32>(), 0..40),
        py in prop::collection::vec(any::<f32>(), 0..40),
        pz in prop::collection::vec(any::<f32>(), 0..40),
        e in prop::collection::vec(any::<f32>(), 0..40),
        k in 0usize..12, max_tokens in 0usize..8, max_particles in 0usize..50,
        oversample in any::<f32>(), max_constituents in 0usize..50,
    ) {
        let cfg = TokenizerConfig { k, max_tokens, max_particles, oversample, max_constituents, ..Default::default() };
        if let Ok(t) = tokenize(&Jet::new(px, py, pz, e), &cfg) {
            prop_assert!(t.tokens.iter().chain(&t.pair).all(|v| v.is_finite()));
            prop_assert!(t.n_tokens() >= 1);
        }
    }

    /// Same-length random values (so validation gets past the length check more often),
    /// including degenerate jets whose momenta cancel.
    #[test]
    fn near_physical_garbage_never_panics(
        parts in prop::collection::vec((-1e3f32..1e3, -1e3f32..1e3, -1e4f32..1e4, 0.0f32..2e4), 1..30),
    ) {
        let mut jet = Jet::default();
        for (x, y, z, e) in parts {
            jet.px.push(x);
            jet.py.push(y);
            jet.pz.push(z);
            jet.energy.push(e);
        }
        // The jet plus its mirror image in the transverse plane: px, py sum to (about) zero.
        let mut mirrored = jet.clone();
        mirrored.px.extend(jet.px.iter().map(|v| -v));
        mirrored.py.extend(jet.py.iter().map(|v| -v));
        mirrored.pz.extend_from_slice(&jet.pz);
        mirrored.energy.extend_from_slice(&jet.energy);
        for j in [&jet, &mirrored] {
            if let Ok(t) = tokenize(j, &TokenizerConfig::default()) {
                prop_assert!(t.tokens.iter().chain(&t.pair).all(|v| v.is_finite()));
            }
        }
    }
}
