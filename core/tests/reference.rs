//! Compares `tokenize` with the independent numpy implementation in
//! `reference/make_reference.py` (its output, `reference/reference.json`, is committed).
mod common;

use jettag_core::{pair_features, tokenize, TokenizerConfig, N_FEATURES, N_PAIR};
use serde_json::Value;

const TOL: f64 = 1e-4;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g as f64;
        assert!((g - w).abs() <= TOL * (1.0 + w.abs()), "{what}[{i}]: got {g}, numpy {w}");
    }
}

fn cases() -> Vec<Value> {
    let path = common::workspace().join("core/tests/reference/reference.json");
    let text = std::fs::read_to_string(&path).expect("reference.json");
    serde_json::from_str::<Value>(&text).unwrap().as_array().unwrap().clone()
}

fn config(case: &Value) -> TokenizerConfig {
    let c = &case["config"];
    TokenizerConfig {
        k: c["k"].as_u64().unwrap() as usize,
        oversample: c["oversample"].as_f64().unwrap() as f32,
        max_tokens: c["max_tokens"].as_u64().unwrap() as usize,
        max_particles: c["max_particles"].as_u64().unwrap() as usize,
        ..TokenizerConfig::default()
    }
}

#[test]
fn tokenize_matches_numpy_reference() {
    let cases = cases();
    assert!(cases.len() >= 10);
    let mut covered_cyclic = false;
    for case in &cases {
        let name = format!("{}[{}] {}", case["fixture"], case["jet"], case["config"]);
        let jets = common::read_all(&common::fixture(case["fixture"].as_str().unwrap()), None, 64);
        let jet = &jets[case["jet"].as_u64().unwrap() as usize];
        let cfg = config(case);
        let t = tokenize(jet, &cfg).unwrap_or_else(|e| panic!("{name}: {e}"));

        assert_eq!(t.n_constituents as u64, case["n_constituents"].as_u64().unwrap(), "{name}");
        assert_eq!(t.features.len() as u64, case["n_kept"].as_u64().unwrap(), "{name}");
        let n_tokens = case["n_tokens"].as_u64().unwrap() as usize;
        assert_eq!(t.n_tokens(), n_tokens, "{name}: token count");

        let want_particles: Vec<Vec<usize>> = serde_json::from_value(case["token_particles"].clone()).unwrap();
        assert_eq!(t.token_particles, want_particles, "{name}: FPS/kNN/sequencer membership");
        covered_cyclic |= t.features.len() < cfg.k;

        let flat: Vec<f32> = t.features.iter().flatten().copied().collect();
        assert_close(&format!("{name} features"), &flat, &floats(&case["features"]));
        assert_close(&format!("{name} tokens"), &t.tokens, &floats(&case["tokens"]));
        let centers: Vec<f32> = t.centers.iter().flatten().copied().collect();
        assert_close(&format!("{name} centers"), &centers, &floats(&case["centers"]));
        assert_eq!(t.tokens.len(), n_tokens * cfg.k * N_FEATURES);
        assert_eq!(t.pair.len(), N_PAIR * n_tokens * n_tokens);
        assert_close(&format!("{name} pair"), &t.pair, &floats(&case["pair"]));
    }
    assert!(covered_cyclic, "the reference must include a jet with fewer particles than k");
}

/// `pair_features` alone, fed numpy's group four-vectors, so a grouping bug cannot hide a pair
/// formula bug or vice versa.
#[test]
fn pair_features_match_numpy_for_reference_groups() {
    for case in cases() {
        let p4: Vec<[f64; 4]> = floats(&case["group_p4"]).chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect();
        assert_close(&format!("{}[{}] pair", case["fixture"], case["jet"]), &pair_features(&p4), &floats(&case["pair"]));
    }
}
