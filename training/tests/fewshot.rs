//! `jettag-train fewshot` end to end on the committed fixture (tiny model, CPU): every fraction
//! gets the three runs on nested, class-balanced label sets, the tables list them, fine-tuned
//! and frozen runs start from the pre-trained encoder while scratch runs do not, and a second
//! invocation reuses the finished runs instead of training them again.
mod export_support;

use std::path::Path;
use std::process::Command;

use export_support::{fixture, scratch};
use serde_json::Value;

fn train_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jettag-train"))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn fewshot(pre: &Path, out: &Path) -> std::process::Output {
    let data = fixture("toptag_small.root");
    train_bin()
        .args(["fewshot", "--init"])
        .arg(pre)
        .arg("--train")
        .arg(&data)
        .arg("--test")
        .arg(&data)
        .args(["--labels", "label_QCD,label_Tbqq", "--fractions", "0.1,1", "--epochs", "1", "--frozen-epochs", "2"])
        .args(["--min-epoch-jets", "0", "--batch", "32", "--seed", "3", "--quiet", "--out"])
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn three_runs_per_fraction_nested_labels_and_finished_runs_are_reused() {
    let dir = scratch("fewshot");
    let pre = dir.join("pre");
    let status = train_bin()
        .args(["pretrain", "--data"])
        .arg(fixture("jetclass_small.root"))
        .args(["--config", "tiny", "--epochs", "1", "--batch", "16", "--max-steps", "4", "--quiet", "--out"])
        .arg(&pre)
        .status()
        .unwrap();
    assert!(status.success());

    let out = dir.join("study");
    let first = fewshot(&pre, &out);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let report = json(&out.join("fewshot.json"));
    let rows = report["rows"].as_array().unwrap();
    let cells: Vec<(f64, &str)> = rows.iter().map(|r| (r["fraction"].as_f64().unwrap(), r["mode"].as_str().unwrap())).collect();
    assert_eq!(
        cells,
        [(0.1, "finetuned"), (0.1, "frozen"), (0.1, "scratch"), (1.0, "finetuned"), (1.0, "frozen"), (1.0, "scratch")]
    );

    // The three runs of a fraction train on the same labelled jets; 10 % is balanced by class
    // and a subset of 100 %.
    let n_labels = |f: f64| -> Vec<u64> {
        rows.iter().filter(|r| r["fraction"].as_f64() == Some(f)).map(|r| r["n_labels"].as_u64().unwrap()).collect()
    };
    let (small, full) = (n_labels(0.1), n_labels(1.0));
    assert!(small.iter().all(|&n| n == small[0]) && full.iter().all(|&n| n == full[0]), "{small:?} {full:?}");
    assert!(small[0] < full[0] && small[0] % 2 == 0, "{small:?} vs {full:?}");
    let counts = json(&out.join("frac-0.1/scratch/config.json"))["data"]["train_class_counts"].clone();
    assert_eq!(counts[0], counts[1], "10 % is balanced by class: {counts}");

    // Initialisation per mode, and the frozen run trains the head only.
    let report_all = &report;
    for (mode, kind) in [("finetuned", "pretrained"), ("frozen", "pretrained"), ("scratch", "scratch")] {
        let cfg = json(&out.join(format!("frac-1/{mode}/config.json")));
        assert_eq!(cfg["init"]["kind"], kind, "{mode}");
        assert_eq!(cfg["freeze_backbone"], mode == "frozen", "{mode}");
        let report = json(&out.join(format!("frac-1/{mode}/report.json")));
        assert_eq!(report["n_jets"], report_all["n_test"], "{mode}: every test jet is evaluated");
        let acc = report["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{mode}: accuracy {acc}");
    }
    let frozen = json(&out.join("frac-1/frozen/summary.json"));
    assert!(frozen["trainable_params"].as_u64() < frozen["total_params"].as_u64(), "{frozen}");

    let md = std::fs::read_to_string(out.join("fewshot.md")).unwrap();
    assert!(md.contains("| 10% |") && md.contains("| 100% |"), "{md}");

    // A second invocation finds every report.json and trains nothing again.
    let before = std::fs::metadata(out.join("frac-1/finetuned/classifier.mpk")).unwrap().modified().unwrap();
    let second = fewshot(&pre, &out);
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let after = std::fs::metadata(out.join("frac-1/finetuned/classifier.mpk")).unwrap().modified().unwrap();
    assert_eq!(before, after, "a finished run was trained again");
    assert_eq!(json(&out.join("fewshot.json"))["rows"], report["rows"]);
}
