//! Shared helpers for jettag-core integration tests.
#![allow(dead_code)]
use std::path::PathBuf;

use jettag_core::{Jet, JetReader, LabelSet, ReaderConfig};

/// Workspace root (core/ is one level below it).
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Committed small ROOT fixtures.
pub fn fixture(name: &str) -> PathBuf {
    workspace().join("tests/fixtures").join(name)
}

/// `$JETTAG_DATA`, or `../shared/data` beside the workspace; `None` (and a printed note) when
/// absent, so tests that need the big files skip on a fresh clone.
pub fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("JETTAG_DATA").map(PathBuf::from).unwrap_or_else(|| workspace().join("../shared/data"));
    if dir.join("toptag").is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: no dataset at {} (set JETTAG_DATA)", dir.display());
        None
    }
}

/// All jets of a file, through the chunked reader.
pub fn read_all(path: &std::path::Path, labels: Option<LabelSet>, chunk_size: usize) -> Vec<Jet> {
    let reader = JetReader::open(path, ReaderConfig { labels, chunk_size }).unwrap_or_else(|e| panic!("{e}"));
    let mut jets = Vec::new();
    for chunk in reader {
        let chunk = chunk.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(chunk.start, jets.len());
        jets.extend(chunk.jets);
    }
    jets
}

/// Python with numpy + uproot: `$JETTAG_PYTHON`, else the workspace venv.
pub fn python() -> Option<PathBuf> {
    let p = std::env::var_os("JETTAG_PYTHON").map(PathBuf::from).unwrap_or_else(|| workspace().join(".venv/bin/python"));
    p.exists().then_some(p)
}
