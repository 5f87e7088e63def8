//! `jettag inspect` and `jettag tokens` against independent references: uproot/numpy figures in
//! tests/fixtures/summary.json and the numpy tokenization in core/tests/reference/reference.json.
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn jettag(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jettag")).args(args).current_dir(root()).output().expect("run jettag")
}

fn json_file(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(rel)).unwrap()).unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(out.status.success(), "jettag failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn flatten(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
        Value::Number(n) => out.push(n.as_f64().unwrap()),
        other => panic!("not a number: {other}"),
    }
}

fn assert_close(what: &str, got: &Value, want: &Value, tol: f64) {
    let (mut g, mut w) = (Vec::new(), Vec::new());
    flatten(got, &mut g);
    flatten(want, &mut w);
    assert_eq!(g.len(), w.len(), "{what}: length");
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}[{i}]: {a} vs {b}");
    }
}

#[test]
fn inspect_matches_uproot_and_numpy() {
    let summary = json_file("tests/fixtures/summary.json");
    let names = ["toptag_small.root", "jetclass_small.root", "qg_small.root", "toptag_vector.root"];
    let files: Vec<String> = names.iter().map(|n| format!("tests/fixtures/{n}")).collect();
    let mut args = vec!["inspect", "--json"];
    args.extend(files.iter().map(String::as_str));
    let out = jettag(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), names.len());
    for (name, got) in names.iter().zip(&lines) {
        let want = &summary[*name];
        let counts: Vec<u64> = want["n_constituents"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(got["jets"], want["n_jets"], "{name}");
        assert_eq!(got["constituents_min"].as_u64(), counts.iter().min().copied(), "{name}");
        assert_eq!(got["constituents_max"].as_u64(), counts.iter().max().copied(), "{name}");
        let mean = counts.iter().sum::<u64>() as f64 / counts.len() as f64;
        assert!((got["constituents_mean"].as_f64().unwrap() - mean).abs() < 1e-9, "{name}");
        // Label names (auto-detected label_* branches, file order) and per-class counts.
        let labels = want["labels"].as_array().unwrap();
        let got_labels = got["labels"].as_array().unwrap();
        assert_eq!(got_labels.len(), labels.len(), "{name}");
        for (l, (pair, label)) in got_labels.iter().zip(labels).enumerate() {
            assert_eq!(&pair[0], label);
            let n = want["label"].as_array().unwrap().iter().filter(|v| v.as_u64() == Some(l as u64)).count();
            assert_eq!(pair[1].as_u64(), Some(n as u64), "{name} {label}");
        }
        assert_close(&format!("{name} pT"), &got["pt_percentiles"], &want["pt_percentiles"], 1e-9);
        assert_close(&format!("{name} mass"), &got["mass_percentiles"], &want["mass_percentiles"], 1e-7);
    }
}

#[test]
fn inspect_text_and_explicit_labels() {
    let out = jettag(&["inspect", "--labels", "label_quark,label_gluon", "tests/fixtures/qg_small.root"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("jets: 200"), "{text}");
    assert!(text.contains("labels: label_quark 100, label_gluon 100"), "{text}");
    assert!(text.contains("jet pT [GeV]: p10 504.4"), "{text}");
}

#[test]
fn inspect_errors_name_file_and_branch() {
    let out = jettag(&["inspect", "--labels", "label_QCD,label_Nope", "tests/fixtures/toptag_small.root", "tests/fixtures/qg_small.root"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("toptag_small.root") && err.contains("label_Nope"), "{err}");
    let out = jettag(&["inspect", "Cargo.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Cargo.toml"));
}

/// `jettag tokens --json` for every reference case, with its options, equals numpy's answer.
#[test]
fn tokens_json_matches_numpy_reference() {
    let reference = json_file("core/tests/reference/reference.json");
    for case in reference.as_array().unwrap() {
        let cfg = &case["config"];
        let file = format!("tests/fixtures/{}", case["fixture"].as_str().unwrap());
        let (jet, k, mt, os, mp) = (
            case["jet"].to_string(),
            cfg["k"].to_string(),
            cfg["max_tokens"].to_string(),
            cfg["oversample"].to_string(),
            cfg["max_particles"].to_string(),
        );
        let args = ["tokens", &file, "--jet", &jet, "--json", "--k", &k, "--max-tokens", &mt, "--oversample", &os, "--max-particles", &mp];
        let got = stdout_json(&jettag(&args));
        let name = format!("{file}[{jet}]");
        let t = case["n_tokens"].as_u64().unwrap() as usize;
        let kk = cfg["k"].as_u64().unwrap() as usize;
        assert_eq!(got["n_constituents"], case["n_constituents"], "{name}");
        assert_eq!(got["token_particles"], case["token_particles"], "{name}");
        assert_eq!(got["token_mask"], Value::Array(vec![Value::Bool(true); t]), "{name}");
        // Shapes: features [n][7], tokens [T][k][7], centers [T][2], pair [4][T][T].
        assert_eq!(got["features"].as_array().unwrap().len() as u64, case["n_kept"].as_u64().unwrap());
        assert!(got["features"].as_array().unwrap().iter().all(|r| r.as_array().unwrap().len() == 7));
        assert_eq!(got["tokens"].as_array().unwrap().len(), t);
        assert!(got["tokens"].as_array().unwrap().iter().all(|g| g.as_array().unwrap().len() == kk));
        assert_eq!(got["pair"].as_array().unwrap().len(), 4);
        assert!(got["pair"].as_array().unwrap().iter().all(|p| p.as_array().unwrap().len() == t));
        assert_close(&format!("{name} features"), &got["features"], &case["features"], 1e-4);
        assert_close(&format!("{name} tokens"), &got["tokens"], &case["tokens"], 1e-4);
        assert_close(&format!("{name} centers"), &got["centers"], &case["centers"], 1e-4);
        assert_close(&format!("{name} pair"), &got["pair"], &case["pair"], 1e-4);
    }
}

#[test]
fn tokens_errors() {
    let out = jettag(&["tokens", "tests/fixtures/toptag_small.root", "--jet", "200", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("out of range (the file has 200 jets)"));
    let out = jettag(&["tokens", "tests/fixtures/toptag_small.root", "--k", "0", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("k must be at least 1"));
}
