//! The chunked ROOT reader against what uproot reads from the same files.
mod common;

use std::collections::BTreeMap;
use std::process::Command;

use jettag_core::{branch_types, expand_paths, n_jets_in, tokenize, JetReader, LabelSet, ReaderConfig, TokenizerConfig};
use serde_json::Value;

fn json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Every fixture, read in awkward 7-jet chunks, matches uproot's view in `summary.json`
/// (written by tests/fixtures/make_fixtures.py): jet count, constituents and Σpx per jet, and the
/// class index from the label branches, whatever their dtype (float, bool, int32).
#[test]
fn fixtures_match_uproot_summary() {
    let summary = json(&common::fixture("summary.json"));
    let summary = summary.as_object().unwrap();
    assert!(summary.len() >= 4, "expected the three counted fixtures and the vector one");
    for (name, s) in summary {
        let path = common::fixture(name);
        let labels: Vec<String> = serde_json::from_value(s["labels"].clone()).unwrap();
        let jets = common::read_all(&path, Some(LabelSet { branches: labels }), 7);
        assert_eq!(jets.len() as u64, s["n_jets"].as_u64().unwrap(), "{name}");
        assert_eq!(n_jets_in(&path).unwrap(), jets.len());
        for (i, jet) in jets.iter().enumerate() {
            assert_eq!(jet.n_constituents() as u64, s["n_constituents"][i].as_u64().unwrap(), "{name} jet {i}");
            assert_eq!(jet.label.map(|l| l as u64), s["label"][i].as_u64(), "{name} jet {i}");
            let sum: f64 = jet.px.iter().map(|&v| v as f64).sum();
            let want = s["sum_px"][i].as_f64().unwrap();
            assert!((sum - want).abs() <= 1e-9 * (1.0 + want.abs()), "{name} jet {i}: Σpx {sum} vs {want}");
            assert_eq!(jet.py.len(), jet.px.len());
            assert_eq!(jet.energy.len(), jet.px.len());
        }
    }
}

/// `std::vector<float>` branches (public JetClass form) give the same jets as `float[npart]`.
#[test]
fn vector_and_counted_forms_agree() {
    let types: BTreeMap<_, _> = branch_types(common::fixture("toptag_vector.root")).unwrap().into_iter().collect();
    assert_eq!(types["part_px"], "vector<float>");
    assert_eq!(types["label_Tbqq"], "int32_t");
    let counted: BTreeMap<_, _> = branch_types(common::fixture("toptag_small.root")).unwrap().into_iter().collect();
    assert_eq!(counted["part_px"], "float[]");

    let vector = common::read_all(&common::fixture("toptag_vector.root"), Some(LabelSet::toptag()), 3);
    let small = common::read_all(&common::fixture("toptag_small.root"), Some(LabelSet::toptag()), 50);
    assert_eq!(vector.len(), 20);
    assert_eq!(&vector[..], &small[90..110]);
    assert_eq!(vector.iter().filter(|j| j.label == Some(1)).count(), 10);
}

#[test]
fn chunking_does_not_change_jets() {
    let path = common::fixture("qg_small.root");
    let whole = common::read_all(&path, Some(LabelSet::qg()), 100_000);
    for chunk_size in [0, 1, 13, 200] {
        let reader = JetReader::open(&path, ReaderConfig { labels: Some(LabelSet::qg()), chunk_size }).unwrap();
        let mut jets = Vec::new();
        for chunk in reader {
            let chunk = chunk.unwrap();
            assert_eq!(chunk.start, jets.len());
            assert!(!chunk.jets.is_empty() && chunk.jets.len() <= chunk_size.max(1));
            jets.extend(chunk.jets);
        }
        assert_eq!(jets, whole, "chunk size {chunk_size}");
    }
    assert_eq!(whole.iter().filter(|j| j.label == Some(0)).count(), 100);
    assert_eq!(whole.iter().filter(|j| j.label == Some(1)).count(), 100);
    assert!(whole[..100].iter().all(|j| j.label == Some(0)), "quark jets come first");
}

#[test]
fn reading_without_labels_leaves_them_empty() {
    let jets = common::read_all(&common::fixture("toptag_small.root"), None, 64);
    assert_eq!(jets.len(), 200);
    assert!(jets.iter().all(|j| j.label.is_none()));
}

#[test]
fn dropping_a_reader_midway_does_not_hang() {
    let mut reader = JetReader::open(common::fixture("toptag_small.root"), ReaderConfig { labels: None, chunk_size: 1 }).unwrap();
    assert!(reader.next().unwrap().is_ok());
    drop(reader);
}

#[test]
fn many_files_in_sequence() {
    let pattern = common::fixture("*_small.root").display().to_string();
    let paths = expand_paths(&[pattern]).unwrap();
    assert_eq!(paths.len(), 3);
    let files = JetReader::open_many(paths.clone(), ReaderConfig { labels: None, chunk_size: 64 });
    assert_eq!(files.total_jets().unwrap(), 600);
    let mut n = 0;
    for chunk in files {
        n += chunk.unwrap().jets.len();
    }
    assert_eq!(n, 600);
    let err = expand_paths(&["/nonexistent/dir/*.root"]).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/dir/*.root") && err.contains("no file matches"), "{err}");
}

#[test]
fn a_directory_stands_for_its_root_files() {
    let dir = common::fixture("");
    let from_dir = expand_paths(&[dir.display().to_string()]).unwrap();
    let from_glob = expand_paths(&[common::fixture("*.root").display().to_string()]).unwrap();
    assert_eq!(from_dir, from_glob);
    assert!(from_dir.len() >= 4 && from_dir.iter().all(|p| p.extension().unwrap() == "root"), "{from_dir:?}");
    // A directory without ROOT files is an error naming it, not an empty input list.
    let empty = common::fixture("models");
    let err = expand_paths(&[empty.display().to_string()]).unwrap_err().to_string();
    assert!(err.contains("models") && err.contains("holds no .root file"), "{err}");
}

/// uproot's jet and label counts for every file in the data set: computed now when a Python with
/// uproot is available, otherwise the committed `data_counts.json`.
fn uproot_counts(data: &std::path::Path) -> Value {
    if let Some(py) = common::python() {
        let script = r#"
import glob, json, os, sys
import numpy as np, uproot
data = sys.argv[1]
out = {}
for p in sorted(glob.glob(os.path.join(data, "*", "*.root"))):
    t = uproot.open(p)["tree"]
    out[os.path.relpath(p, data)] = dict(n_jets=int(t.num_entries), label_counts={
        b: int(np.count_nonzero(t[b].array(library="np"))) for b in t.keys() if b.startswith("label_")})
print(json.dumps(out))
"#;
        let out = Command::new(&py).arg("-c").arg(script).arg(data).output().expect("run python");
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).unwrap();
        }
        eprintln!("python+uproot failed ({}), using data_counts.json", String::from_utf8_lossy(&out.stderr));
    }
    json(&common::fixture("data_counts.json"))
}

/// Every file of the shared data set: the jet count and per-class label counts uproot reports,
/// and every jet tokenizes without error.
#[test]
fn every_data_file_matches_uproot() {
    let Some(data) = common::data_dir() else { return };
    let counts = uproot_counts(&data);
    let counts = counts.as_object().unwrap();
    assert_eq!(counts.len(), 18, "jetclass (10) + toptag (4) + qg (4) files");
    let cfg = TokenizerConfig::default();
    for (rel, want) in counts {
        let path = data.join(rel);
        let labels: Vec<String> = branch_types(&path)
            .unwrap()
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| name.starts_with("label_"))
            .collect();
        let want_labels = want["label_counts"].as_object().unwrap();
        assert_eq!(labels.len(), want_labels.len(), "{rel}");
        let reader = JetReader::open(&path, ReaderConfig { labels: Some(LabelSet { branches: labels.clone() }), chunk_size: 1024 }).unwrap();
        assert_eq!(reader.n_jets() as u64, want["n_jets"].as_u64().unwrap(), "{rel}");
        let mut per_class = vec![0u64; labels.len()];
        let mut n = 0;
        for chunk in reader {
            for jet in chunk.unwrap().jets {
                per_class[jet.label.unwrap()] += 1;
                tokenize(&jet, &cfg).unwrap_or_else(|e| panic!("{rel} jet {n}: {e}"));
                n += 1;
            }
        }
        assert_eq!(n as u64, want["n_jets"].as_u64().unwrap(), "{rel}");
        for (l, name) in labels.iter().enumerate() {
            assert_eq!(per_class[l], want_labels[name].as_u64().unwrap(), "{rel} {name}");
        }
    }
}
