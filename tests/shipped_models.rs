//! The models shipped in `models/` (what `make serve` serves) reproduce the metrics that their
//! `model.toml` and `MODEL_CARD.md` state, both through offline `jettag tag` and through the
//! server, on the full test files in `$JETTAG_DATA` (the metrics were measured on those files
//! with `jettag-train eval`, i.e. burn; here ONNX Runtime computes them).
//!
//! Accuracy and ROC AUC are recomputed here independently of the training crate's metric code.
//! Without the data set (a fresh clone without `../shared`) the metric checks skip with a
//! message; the manifest checks always run.
mod common;

use std::path::PathBuf;

use common::*;
use jettag::proto::v1::{EmbedRequest, TagRequest};
use jettag::repository::{parse_manifest, ModelManifest};
use jettag_core::{Jet, LabelSet};

fn shipped() -> PathBuf {
    root().join("models")
}

fn manifest(name: &str) -> ModelManifest {
    let path = shipped().join(name).join("1/model.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_manifest(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The shared data set, or `None` (with a message) when this checkout has none.
fn data_dir() -> Option<PathBuf> {
    let dir = data_root();
    if dir.join("toptag/top_test.root").is_file() && dir.join("qg/quark_test.root").is_file() {
        Some(dir)
    } else {
        eprintln!("skipping the metric checks: no data set at {} (set JETTAG_DATA)", dir.display());
        None
    }
}

/// ROC AUC as the Mann-Whitney U statistic with tied pairs counted one half, by ranking.
fn auc(scores: &[f32], signal: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks (1-based) over runs of equal scores.
    let mut rank = vec![0.0f64; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            rank[o] = r;
        }
        i = j + 1;
    }
    let n_s = signal.iter().filter(|&&s| s).count() as f64;
    let n_b = signal.len() as f64 - n_s;
    let rank_sum: f64 = rank.iter().zip(signal).filter(|(_, &s)| s).map(|(r, _)| r).sum();
    (rank_sum - n_s * (n_s + 1.0) / 2.0) / (n_s * n_b)
}

/// Accuracy (argmax) and AUC (probability of the second class, the signal) of binary probs.
fn binary_metrics(probs: &[Vec<f32>], labels: &[usize]) -> (f64, f64) {
    let correct = probs.iter().zip(labels).filter(|(p, &l)| usize::from(p[1] > p[0]) == l).count();
    let scores: Vec<f32> = probs.iter().map(|p| p[1]).collect();
    let signal: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
    (correct as f64 / labels.len() as f64, auc(&scores, &signal))
}

/// The two shipped classifiers with their test files (background first, as in training).
fn classifiers(data: &std::path::Path) -> Vec<(&'static str, Vec<PathBuf>)> {
    vec![
        ("hepjepa-top", vec![data.join("toptag/qcd_test.root"), data.join("toptag/top_test.root")]),
        ("hepjepa-qg", vec![data.join("qg/gluon_test.root"), data.join("qg/quark_test.root")]),
    ]
}

#[test]
fn manifests_are_trained_models_with_metrics() {
    for (name, task, classes) in [
        ("hepjepa-top", "classifier", vec!["QCD", "Top"]),
        ("hepjepa-qg", "classifier", vec!["Gluon", "Quark"]),
        ("hepjepa-encoder", "encoder", vec![]),
    ] {
        let m = manifest(name);
        assert_eq!((m.name.as_str(), m.version, m.task.as_str()), (name, 1, task), "{name}");
        assert_eq!(m.class_names, classes, "{name}");
        assert!(!m.training.contains_key("untrained"), "{name} is a placeholder");
        for key in ["accuracy", "n_jets"] {
            assert!(m.metrics.contains_key(key), "{name}: no {key} in [metrics]: {:?}", m.metrics);
        }
        let card = shipped().join(name).join("1/MODEL_CARD.md");
        let card = std::fs::read_to_string(&card).unwrap_or_else(|e| panic!("{}: {e}", card.display()));
        // The card quotes the manifest's headline numbers (rounded to 4 places).
        let acc = format!("{:.4}", m.metrics["accuracy"]);
        assert!(card.contains(&acc), "{name}: MODEL_CARD.md does not state accuracy {acc}");
        if let Some(a) = m.metrics.get("roc_auc") {
            let a = format!("{a:.4}");
            assert!(card.contains(&a), "{name}: MODEL_CARD.md does not state AUC {a}");
        }
        let onnx = std::fs::metadata(shipped().join(name).join("1/model.onnx")).unwrap().len();
        assert!(onnx < 20_000_000, "{name}: model.onnx is {onnx} bytes");
    }
}

#[test]
fn offline_tagging_reproduces_the_model_card_metrics() {
    let Some(data) = data_dir() else { return };
    for (name, files) in classifiers(&data) {
        let m = manifest(name);
        let (mut probs, mut labels) = (Vec::new(), Vec::new());
        for f in &files {
            let (header, rows) = offline_tag(f, &shipped().join(name), &[]);
            assert_eq!(header[1], "label", "{name}: the model's label branches are read from {}", f.display());
            for r in rows {
                labels.push(r.label.expect("label"));
                probs.push(r.probs);
            }
        }
        let (accuracy, roc_auc) = binary_metrics(&probs, &labels);
        eprintln!("{name}: {} jets, accuracy {accuracy:.4}, AUC {roc_auc:.4} (model card: {:?})", labels.len(), m.metrics);
        assert_eq!(labels.len() as f64, m.metrics["n_jets"], "{name}: jets evaluated");
        // burn (model card) and ONNX Runtime (here) agree to 1e-4 per probability, which can
        // move a jet that sits on the decision boundary: allow two of them.
        let tol = 2.0 / labels.len() as f64;
        assert!((accuracy - m.metrics["accuracy"]).abs() <= tol, "{name}: accuracy {accuracy} vs {}", m.metrics["accuracy"]);
        assert!((roc_auc - m.metrics["roc_auc"]).abs() <= 2e-4, "{name}: AUC {roc_auc} vs {}", m.metrics["roc_auc"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_reproduces_the_model_card_metrics() {
    let Some(data) = data_dir() else { return };
    let server = Server::start_with(&shipped(), &[]);
    let mut client = server.client().await;
    for (name, files) in classifiers(&data) {
        let m = manifest(name);
        let labels = LabelSet::parse(&m.label_branches().expect("label branches in model.toml").join(","));
        let jets = read_jets(&files, &labels);
        let mut probs = Vec::with_capacity(jets.len());
        for chunk in jets.chunks(250) {
            let refs: Vec<&Jet> = chunk.iter().collect();
            let req = TagRequest { model: name.into(), version: 0, jets: Some(columnar(&refs)), request_id: String::new() };
            let resp = client.tag(req).await.expect("Tag").into_inner();
            assert_eq!((resp.model.as_str(), resp.version), (name, 1));
            assert_eq!(resp.class_names, m.class_names);
            probs.extend(resp.probs.chunks(2).map(<[f32]>::to_vec));
        }
        let truth: Vec<usize> = jets.iter().map(|j| j.label.expect("label")).collect();
        let (accuracy, roc_auc) = binary_metrics(&probs, &truth);
        eprintln!("{name} via gRPC: {} jets, accuracy {accuracy:.4}, AUC {roc_auc:.4}", truth.len());
        assert_eq!(truth.len() as f64, m.metrics["n_jets"], "{name}: jets evaluated");
        let tol = 2.0 / truth.len() as f64;
        assert!((accuracy - m.metrics["accuracy"]).abs() <= tol, "{name}: accuracy {accuracy} vs {}", m.metrics["accuracy"]);
        assert!((roc_auc - m.metrics["roc_auc"]).abs() <= 2e-4, "{name}: AUC {roc_auc} vs {}", m.metrics["roc_auc"]);
    }

    // The encoder's embeddings through the server equal offline `jettag tag`'s.
    let file = data.join("toptag/top_test.root");
    let (_, rows) = offline_tag(&file, &shipped().join("hepjepa-encoder"), &["--limit", "200"]);
    let jets: Vec<Jet> = read_jets(&[file], &LabelSet::toptag()).into_iter().take(200).collect();
    let refs: Vec<&Jet> = jets.iter().collect();
    let req = EmbedRequest { model: "hepjepa-encoder".into(), version: 0, jets: Some(columnar(&refs)), request_id: String::new() };
    let resp = client.embed(req).await.expect("Embed").into_inner();
    let dim = resp.embedding_dim as usize;
    assert_eq!(dim, manifest("hepjepa-encoder").embedding_dim);
    for (i, row) in rows.iter().enumerate() {
        assert_close(&resp.embedding[i * dim..(i + 1) * dim], &row.embedding, 1e-4, &format!("encoder jet {i}"));
    }
}

#[test]
fn auc_helper_matches_hand_worked_cases() {
    // Perfect separation, perfect inversion, all tied, and a hand-worked mixed case:
    // signal {0.8, 0.4}, background {0.6, 0.4, 0.2}: pairs won 1+1+1 + 0+0.5+1 = 4.5 of 6.
    assert_eq!(auc(&[0.9, 0.8, 0.1, 0.2], &[true, true, false, false]), 1.0);
    assert_eq!(auc(&[0.1, 0.2, 0.9, 0.8], &[true, true, false, false]), 0.0);
    assert_eq!(auc(&[0.5; 4], &[true, false, true, false]), 0.5);
    assert_eq!(auc(&[0.8, 0.4, 0.6, 0.4, 0.2], &[true, true, false, false, false]), 0.75);
}
