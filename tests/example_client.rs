//! The Python client example (examples/tag_toptag.py) against the real server, cross-checked
//! with `jettag tag` on the same jets: two readers (uproot vs oxyroot) and two paths (gRPC vs
//! offline) must give the same accuracy. Needs the shared top-tagging data ($JETTAG_DATA).
mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

fn data_dir() -> Option<PathBuf> {
    let dir = data_root().join("toptag");
    dir.join("top_test.root").is_file().then_some(dir)
}

#[test]
fn python_example_matches_offline_tagging() {
    let Some(data) = data_dir() else {
        eprintln!("SKIPPED: top-tagging data not found (set JETTAG_DATA to ../shared/data)");
        return;
    };
    let python = root().join(".venv/bin/python");
    let has_deps = Command::new(&python)
        .args(["-c", "import grpc, grpc_tools, uproot, awkward"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_deps {
        eprintln!("SKIPPED: .venv lacks grpcio/grpcio-tools/uproot (run `make venv`)");
        return;
    }
    let limit = 150;
    let server = Server::start_with(&root().join("models"), &[]);
    let out = Command::new(&python)
        .arg(root().join("examples/tag_toptag.py"))
        .args(["--server", &server.grpc.to_string(), "--limit", &limit.to_string(), "--batch", "64"])
        .arg("--data")
        .arg(&data)
        .output()
        .expect("running the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let accuracy: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("accuracy "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no accuracy line in:\n{stdout}"));

    // The same jets offline: count correct argmax over both files.
    let model = root().join("models/hepjepa-top");
    let mut correct = 0;
    for file in ["top_test.root", "qcd_test.root"] {
        let (_, rows) = offline_tag(&data.join(file), &model, &["--limit", &limit.to_string()]);
        assert_eq!(rows.len(), limit);
        for r in rows {
            let predicted = if r.probs[1] > r.probs[0] { 1 } else { 0 };
            correct += usize::from(Some(predicted) == r.label);
        }
    }
    let offline = correct as f64 / (2 * limit) as f64;
    assert!((accuracy - offline).abs() < 1e-4, "example {accuracy} vs offline {offline}");
}
