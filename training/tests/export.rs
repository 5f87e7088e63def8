//! `jettag-train export` through the binary: a fine-tuned run becomes a model-repository
//! version directory (`model.onnx` + `model.toml` with the last eval's metrics), a pre-training
//! run an encoder; both load in Python `onnxruntime` and pass `onnx.checker` (when the
//! workspace's `.venv` exists), and Python's ONNX Runtime reproduces burn's outputs.
mod export_support;

use std::path::Path;
use std::process::{Command, Output};

use export_support::{batch_of, fixture, scratch, tokenized_jets, values, venv_python};
use jettag_train::backend::Cpu;
use jettag_train::checkpoint;
use jettag_train::eval::EvalReport;
use jettag_train::export::manifest::Manifest;
use jettag_train::finetune;
use jettag_train::model::ModelInput;
use jettag_train::onnx::decode_model;
use serde_json::json;

fn jettag_train(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_jettag-train")).args(args).output().expect("running jettag-train");
    if !out.status.success() {
        eprintln!("jettag-train {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

fn ok(args: &[&str]) {
    assert!(jettag_train(args).status.success(), "jettag-train {args:?}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs the Python check on `model.onnx` with the given inputs; `expected` maps output names
/// to burn's values. Returns false (with a message) when there is no `.venv`.
fn python_check(model: &Path, inputs: serde_json::Value, expected: serde_json::Value, dir: &Path) -> bool {
    let Some(python) = venv_python() else {
        eprintln!("SKIP Python check: no .venv (run `make venv`)");
        return false;
    };
    let case = dir.join("case.json");
    std::fs::write(&case, serde_json::to_string(&json!({"inputs": inputs, "expected": expected})).unwrap()).unwrap();
    let script = r#"
import json, sys
import numpy as np
import onnx, onnxruntime as ort
model_path, case_path = sys.argv[1], sys.argv[2]
onnx.checker.check_model(onnx.load(model_path), full_check=True)
sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
ins = {i.name: (i.type, i.shape) for i in sess.get_inputs()}
assert ins == {
    "tokens": ("tensor(float)", ["batch", "tokens", 8, 7]),
    "centers": ("tensor(float)", ["batch", "tokens", 2]),
    "pair": ("tensor(float)", ["batch", 4, "tokens", "tokens"]),
    "token_mask": ("tensor(bool)", ["batch", "tokens"]),
}, ins
case = json.load(open(case_path))
feeds = {}
for name, v in case["inputs"].items():
    dtype = np.bool_ if name == "token_mask" else np.float32
    feeds[name] = np.array(v["data"], dtype=dtype).reshape(v["shape"])
names = list(case["expected"])
got = sess.run(names, feeds)
for name, g in zip(names, got):
    want = np.array(case["expected"][name]["data"], dtype=np.float32).reshape(case["expected"][name]["shape"])
    assert g.shape == want.shape, (name, g.shape, want.shape)
    diff = float(np.abs(g - want).max())
    print(f"{name}: shape {g.shape}, max |diff| {diff:.2e}")
    assert diff <= 1e-4, (name, diff)
"#;
    let out = Command::new(python).arg("-c").arg(script).arg(model).arg(&case).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(out.status.success(), "Python onnxruntime check failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    true
}

fn tensor_json(shape: &[usize], data: Vec<f32>) -> serde_json::Value {
    json!({"shape": shape, "data": data})
}

/// The input tensors of 37 fixture jets, and the batch.
fn inputs_json() -> (serde_json::Value, jettag_core::Batch) {
    let batch = batch_of(&tokenized_jets(&fixture("toptag_small.root"), 37));
    let (b, t, k) = (batch.b, batch.t, batch.k);
    let v = json!({
        "tokens": tensor_json(&[b, t, k, 7], batch.tokens.clone()),
        "centers": tensor_json(&[b, t, 2], batch.centers.clone()),
        "pair": tensor_json(&[b, 4, t, t], batch.pair.clone()),
        "token_mask": {"shape": [b, t], "data": batch.token_mask.clone()},
    });
    (v, batch)
}

#[test]
fn finetuned_run_exports_a_classifier_the_server_format_describes() {
    let dir = scratch("export-clf");
    let run = dir.join("run");
    let data = fixture("toptag_small.root");
    ok(&[
        "finetune", "--train", s(&data), "--labels", "label_QCD,label_Tbqq", "--class-names", "QCD,Top", "--scratch",
        "--config", "tiny", "--epochs", "2", "--batch", "32", "--seed", "3", "--quiet", "--out", s(&run),
    ]);
    ok(&["eval", "--model", s(&run), "--data", s(&data), "--out", s(&dir.join("report.json"))]);
    let report: EvalReport = checkpoint::read_json(&dir.join("report.json")).unwrap();
    let version_dir = dir.join("models/hepjepa-top/3");
    ok(&["export", "--model", s(&run), "--out", s(&version_dir)]);

    let text = std::fs::read_to_string(version_dir.join("model.toml")).unwrap();
    let m: Manifest = toml::from_str(&text).unwrap();
    assert_eq!((m.format_version, m.name.as_str(), m.version, m.task.as_str()), (1, "hepjepa-top", 3, "classifier"));
    assert_eq!(m.class_names, ["QCD", "Top"]);
    assert_eq!(m.embedding_dim, 32);
    assert_eq!(m.preprocessing.feature_set, "part-kinematic-v1");
    assert_eq!(m.preprocessing.tokenizer, jettag_core::TokenizerConfig::default());
    assert_eq!(m.training["labels"].as_array().unwrap().len(), 2);
    assert_eq!(m.training["init"].as_str(), Some("scratch"));
    // The metrics are the last eval's.
    assert_eq!(m.metrics["accuracy"], report.accuracy);
    assert_eq!(m.metrics["roc_auc"], report.binary.as_ref().unwrap().auc);
    assert_eq!(m.metrics["n_jets"], report.n_jets as f64);

    // The graph has exactly the contract's inputs and outputs.
    let proto = decode_model(&std::fs::read(version_dir.join("model.onnx")).unwrap()).unwrap();
    let graph = proto.graph.unwrap();
    let names = |v: &[jettag_train::onnx::proto::ValueInfoProto]| v.iter().map(|i| i.name.clone().unwrap()).collect::<Vec<_>>();
    assert_eq!(names(&graph.input), ["tokens", "centers", "pair", "token_mask"]);
    assert_eq!(names(&graph.output), ["probs", "embedding"]);
    assert_eq!(proto.opset_import[0].version, Some(17));

    // Exporting again needs --force; a bad model directory is a clear error.
    let again = jettag_train(&["export", "--model", s(&run), "--out", s(&version_dir)]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let bad = jettag_train(&["export", "--model", s(&dir), "--out", s(&dir.join("x/1"))]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("classifier.mpk") && !stderr.contains("panicked"), "{stderr}");

    // Python's onnxruntime loads it and reproduces burn.
    let (inputs, batch) = inputs_json();
    let (_, model) = finetune::load_classifier::<Cpu>(&run, &Default::default()).unwrap();
    let out = model.forward(&ModelInput::from_batch(&batch, &Default::default()).unwrap());
    let expected = json!({
        "probs": tensor_json(&[batch.b, 2], values(out.probs)),
        "embedding": tensor_json(&[batch.b, 32], values(out.embedding)),
    });
    python_check(&version_dir.join("model.onnx"), inputs, expected, &dir);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pretraining_run_exports_an_encoder() {
    let dir = scratch("export-enc");
    let pre = dir.join("pre");
    ok(&[
        "pretrain", "--data", s(&fixture("jetclass_small.root")), "--config", "tiny", "--epochs", "1", "--batch", "16",
        "--max-steps", "3", "--quiet", "--out", s(&pre),
    ]);
    let version_dir = dir.join("models/hepjepa-encoder/1");
    ok(&["export", "--model", s(&pre), "--out", s(&version_dir)]);
    let m: Manifest = toml::from_str(&std::fs::read_to_string(version_dir.join("model.toml")).unwrap()).unwrap();
    assert_eq!(m.task, "encoder");
    assert!(m.class_names.is_empty());
    assert!(m.metrics.is_empty(), "no eval yet, so no metrics");
    assert_eq!(m.training["config"].as_str(), Some("tiny"));
    let proto = decode_model(&std::fs::read(version_dir.join("model.onnx")).unwrap()).unwrap();
    let outputs: Vec<String> = proto.graph.unwrap().output.iter().map(|o| o.name.clone().unwrap()).collect();
    assert_eq!(outputs, ["embedding"]);

    let (inputs, batch) = inputs_json();
    let (_, encoder) = checkpoint::load_pretrained::<Cpu>(&pre, &Default::default()).unwrap();
    let emb = encoder.embedding(&ModelInput::from_batch(&batch, &Default::default()).unwrap());
    let expected = json!({"embedding": tensor_json(&[batch.b, 32], values(emb))});
    python_check(&version_dir.join("model.onnx"), inputs, expected, &dir);
    std::fs::remove_dir_all(&dir).ok();
}
