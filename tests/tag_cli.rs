//! `jettag tag`: offline tagging of the committed ROOT fixture, checked against the tiny
//! model computed independently of ONNX Runtime (tests/common/reference.rs).
mod common;

use common::reference::TinyModel;
use common::*;
use jettag_core::TokenizerConfig;

#[test]
fn offline_tagging_matches_the_independent_reference() {
    let jets = fixture_jets();
    assert!(jets.len() >= 100, "fixture has {} jets", jets.len());
    // Small batches so that many batches with different padding are exercised.
    let (header, rows) =
        offline_tag(&toptag_fixture(), &models_dir().join("tiny-top"), &["--embedding", "--max-batch-jets", "7", "--chunk-size", "50"]);
    assert_eq!(&header[..4], ["jet", "label", "prob_QCD", "prob_Top"]);
    assert_eq!(header.len(), 4 + 16);
    assert_eq!(rows.len(), jets.len());
    let model = TinyModel::load(&models_dir().join("tiny-top/1"));
    let cfg = TokenizerConfig::default();
    for (i, (row, jet)) in rows.iter().zip(&jets).enumerate() {
        assert_eq!(row.jet, i);
        assert_eq!(row.label, jet.label, "jet {i}: label");
        let (probs, embedding) = model.run(jet, &cfg);
        let probs: Vec<f32> = probs.iter().map(|&p| p as f32).collect();
        let embedding: Vec<f32> = embedding.iter().map(|&p| p as f32).collect();
        assert_close(&row.probs, &probs, 1e-5, &format!("jet {i} probs"));
        assert_close(&row.embedding, &embedding, 1e-5, &format!("jet {i} embedding"));
    }
    // Both classes occur among the fixture labels, so the label column is not constant.
    assert!(rows.iter().any(|r| r.label == Some(0)) && rows.iter().any(|r| r.label == Some(1)));
}

#[test]
fn limit_and_encoder_models() {
    let (header, rows) = offline_tag(&toptag_fixture(), &models_dir().join("tiny-encoder/1"), &["--limit", "13"]);
    assert_eq!(rows.len(), 13);
    // An encoder has no probabilities; its embedding is written without --embedding.
    assert!(header.iter().all(|h| !h.starts_with("prob_")), "{header:?}");
    assert_eq!(header.iter().filter(|h| h.starts_with("emb_")).count(), 16);
    let model = TinyModel::load(&models_dir().join("tiny-encoder/1"));
    let jets = fixture_jets();
    for (row, jet) in rows.iter().zip(&jets) {
        let (_, embedding) = model.run(jet, &TokenizerConfig::default());
        let embedding: Vec<f32> = embedding.iter().map(|&p| p as f32).collect();
        assert_close(&row.embedding, &embedding, 1e-5, "encoder embedding");
    }
}

#[test]
fn missing_file_and_model_are_clean_errors() {
    let out = std::process::Command::new(binary())
        .args(["tag", "/nonexistent/jets.root", "--model"])
        .arg(models_dir().join("tiny-top"))
        .args(["--out", "/tmp/jettag-never-written.csv", "--quiet"])
        .env("ORT_DYLIB_PATH", ort_lib())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/jets.root") && !stderr.contains("panicked"), "{stderr}");

    let out = std::process::Command::new(binary())
        .arg("tag")
        .arg(toptag_fixture())
        .args(["--model", "/nonexistent/model", "--quiet"])
        .env("ORT_DYLIB_PATH", ort_lib())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/model") && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn labels_follow_the_model_or_the_flag() {
    let qg = root().join("tests/fixtures/qg_small.root");
    // tiny-top's model.toml names label_QCD/label_Tbqq, which the quark/gluon file lacks:
    // the jets are tagged without a label column.
    let (header, rows) = offline_tag(&qg, &models_dir().join("tiny-top"), &["--limit", "10"]);
    assert_eq!(header[..3], ["jet", "prob_QCD", "prob_Top"]);
    assert!(rows.iter().all(|r| r.label.is_none()));
    // Labels asked for by flag are read...
    let (header, rows) =
        offline_tag(&qg, &models_dir().join("tiny-top"), &["--limit", "10", "--labels", "label_quark,label_gluon"]);
    assert_eq!(header[1], "label");
    assert!(rows.iter().all(|r| r.label.is_some()));
    // ...and required.
    let out = std::process::Command::new(binary())
        .arg("tag")
        .arg(&qg)
        .arg("--model")
        .arg(models_dir().join("tiny-top"))
        .args(["--labels", "label_nope", "--quiet", "--out", "/tmp/jettag-never.csv"])
        .env("ORT_DYLIB_PATH", ort_lib())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("label_nope"));
}
