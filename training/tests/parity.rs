//! burn and ONNX Runtime compute the same model: a HEP-JEPA classifier (and its encoder alone)
//! exported by `jettag-train`'s graph writer and run through `ort` (the library the server
//! loads) gives the `probs` and `embedding` that burn gives, to 1e-4, on real top-tagging jets
//! (`$JETTAG_DATA/toptag/top_test.root`, or the committed fixture), at batch sizes 1 and 37
//! with different token counts padded into one batch.
//!
//! Every parameter is perturbed by seeded noise, so that layers that start at zero or one
//! (pair-bias output, LayerNorm) carry real values. Skips with a message when no ONNX Runtime
//! library is available.
mod export_support;
mod onnx_support;

use export_support::{batch_of, parity_jets_file, perturb, tokenized_jets, values, TB};
use jettag_core::{Batch, TokenizedJet};
use jettag_train::config::{EncoderConfig, ModelConfig};
use jettag_train::export::graph::{classifier_model, encoder_model, GraphSpec};
use jettag_train::model::{Classifier, ClassifierHead, Encoder, ModelInput};
use jettag_train::onnx::{encode_model, ModelInfo};
use onnx_support::{bool_input, f32_input, max_abs_diff, ort_env, run, session};

const TOLERANCE: f32 = 1e-4;

fn info() -> ModelInfo {
    ModelInfo { producer_version: "test".into(), model_version: 1, doc_string: "parity".into(), metadata: vec![] }
}

fn classifier(cfg: &EncoderConfig, n_classes: usize, seed: u64) -> Classifier<TB> {
    let device = Default::default();
    let model = Classifier { encoder: Encoder::new(cfg, &device), head: ClassifierHead::new(cfg.d_model, n_classes, &device) };
    perturb(model, seed, 0.1)
}

fn ort_inputs(b: &Batch) -> Vec<(&'static str, ort::value::DynValue)> {
    vec![
        ("tokens", f32_input(&[b.b, b.t, b.k, 7], b.tokens.clone())),
        ("centers", f32_input(&[b.b, b.t, 2], b.centers.clone())),
        ("pair", f32_input(&[b.b, 4, b.t, b.t], b.pair.clone())),
        ("token_mask", bool_input(&[b.b, b.t], b.token_mask.clone())),
    ]
}

/// Batches of 1 and 37 jets; the 37 have several different token counts.
fn parity_batches() -> Vec<Batch> {
    let jets: Vec<TokenizedJet> = tokenized_jets(&parity_jets_file(), 38);
    assert_eq!(jets.len(), 38, "need 38 jets");
    let mut counts: Vec<usize> = jets[1..].iter().map(TokenizedJet::n_tokens).collect();
    counts.sort_unstable();
    counts.dedup();
    assert!(counts.len() >= 3, "the 37-jet batch should mix token counts, got {counts:?}");
    vec![batch_of(&jets[..1]), batch_of(&jets[1..])]
}

/// Compares a classifier's probs and embedding, and its encoder-only export's embedding.
fn check(model: &Classifier<TB>, cfg: &EncoderConfig, batches: &[Batch], what: &str) {
    let Some(env) = ort_env() else { return };
    let spec = GraphSpec { k: 8, encoder: cfg.clone() };
    let clf_bytes = encode_model(&classifier_model(model, &spec, &info()).expect("classifier graph"));
    let enc_bytes = encode_model(&encoder_model(&model.encoder, &spec, &info()).expect("encoder graph"));
    let mut clf = session(&env, &clf_bytes);
    let mut enc = session(&env, &enc_bytes);
    let device = Default::default();
    for b in batches {
        let input = ModelInput::<TB>::from_batch(b, &device).unwrap();
        let out = model.forward(&input);
        let (probs, embedding) = (values(out.probs), values(out.embedding));
        let enc_embedding = values(model.encoder.embedding(&input));
        let got = run(&mut clf, ort_inputs(b), &["probs", "embedding"]);
        assert_eq!(got[0].0, vec![b.b, model.head.n_classes], "{what}: probs shape");
        assert_eq!(got[1].0, vec![b.b, cfg.d_model], "{what}: embedding shape");
        let dp = max_abs_diff(&got[0].1, &probs);
        let de = max_abs_diff(&got[1].1, &embedding);
        eprintln!("{what}, batch {} (T = {}): max |Δprobs| = {dp:.2e}, max |Δembedding| = {de:.2e}", b.b, b.t);
        assert!(dp <= TOLERANCE, "{what}, batch {}: probs differ by {dp}", b.b);
        assert!(de <= TOLERANCE, "{what}, batch {}: embedding differs by {de}", b.b);
        let got = run(&mut enc, ort_inputs(b), &["embedding"]);
        let dn = max_abs_diff(&got[0].1, &enc_embedding);
        assert!(dn <= TOLERANCE, "{what}, encoder-only export, batch {}: embedding differs by {dn}", b.b);
        // The classifier's embedding output is the encoder's embedding.
        assert!(max_abs_diff(&embedding, &enc_embedding) <= 1e-6);
        // Guard against a comparison that cannot fail: jets must get different outputs.
        if b.b > 1 {
            let d = cfg.d_model;
            assert!(max_abs_diff(&embedding[..d], &embedding[d..2 * d]) > 1e-3, "{what}: jets share one embedding");
        }
    }
}

#[test]
fn tiny_classifier_matches_onnx_runtime_on_toptag_jets() {
    let cfg = ModelConfig::by_name("tiny").unwrap().encoder;
    check(&classifier(&cfg, 2, 1), &cfg, &parity_batches(), "tiny");
}

#[test]
fn ablation_variants_export_too() {
    // No registers; no pair bias; a three-class head.
    let batches = parity_batches();
    let mut cfg = ModelConfig::by_name("tiny").unwrap().encoder;
    cfg.n_registers = 0;
    check(&classifier(&cfg, 2, 2), &cfg, &batches, "tiny without registers");
    let mut cfg = ModelConfig::by_name("tiny").unwrap().encoder;
    cfg.pair_bias = false;
    check(&classifier(&cfg, 3, 3), &cfg, &batches, "tiny without pair bias, 3 classes");
}

#[test]
fn small_and_paper_configs_match_at_batch_2() {
    // The shipped models use these sizes; two jets with different token counts.
    let jets = tokenized_jets(&parity_jets_file(), 12);
    let mut pair: Vec<TokenizedJet> = Vec::new();
    for j in jets {
        if pair.iter().all(|p| p.n_tokens() != j.n_tokens()) {
            pair.push(j);
        }
        if pair.len() == 2 {
            break;
        }
    }
    assert_eq!(pair.len(), 2, "need two jets with different token counts");
    let batches = vec![batch_of(&pair)];
    for name in ["small", "paper"] {
        let cfg = ModelConfig::by_name(name).unwrap().encoder;
        // Smaller noise for the deeper models keeps the softmax away from saturation.
        let device = Default::default();
        let model = Classifier { encoder: Encoder::new(&cfg, &device), head: ClassifierHead::new(cfg.d_model, 2, &device) };
        let model = perturb(model, 4, 0.03);
        check(&model, &cfg, &batches, name);
    }
}
