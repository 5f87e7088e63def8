//! The model repository (Triton's layout) and `model.toml`, the contract between the exporter
//! (`jettag-train export`) and the server.
//!
//! # Layout
//!
//! ```text
//! models/
//!   <name>/                 # model name, as clients ask for it
//!     <version>/            # positive integer; the highest is served by default
//!       model.onnx          # inputs/outputs as in DESIGN.md section 4
//!       model.toml          # this format
//! ```
//!
//! Non-numeric entries under `<name>/` are ignored (with a log line); a version directory that
//! lacks either file, or whose files are malformed, stops the server at start with a message
//! naming the file.
//!
//! # `model.toml`, format version 1
//!
//! ```toml
//! format_version = 1                 # required; this server reads version 1
//! name = "hepjepa-top"               # required; must equal the <name> directory
//! version = 1                        # required; must equal the <version> directory
//! task = "classifier"                # required; "classifier" (probs + embedding) or "encoder" (embedding only)
//! class_names = ["QCD", "Top"]       # classifier: one per probs column (>= 1); encoder: [] or absent
//! embedding_dim = 128                # required; width D of the `embedding` output
//! description = "free text"          # optional
//! created = "2026-01-01T00:00:00Z"   # optional, free text
//! producer = "jettag-train 0.1.0"    # optional, free text
//!
//! [preprocessing]                    # required: how jets become tensors (jettag-core TokenizerConfig)
//! feature_set = "part-kinematic-v1"  # required; the feature/tokenization scheme; the only one known
//! feature_names = ["deta", "dphi", "log_pt", "log_e", "log_ptrel", "log_erel", "delta_r"]  # optional; checked
//! k = 8                              # required; particles per token group
//! oversample = 2.0                   # required
//! max_tokens = 32                    # required
//! max_particles = 128                # required
//! max_constituents = 4096            # optional (default 4096); larger jets are rejected
//!
//! [preprocessing.features]           # required: clip((x - center) * scale, -5, 5) per feature
//! center = [0.0, 0.0, 1.7, 2.0, -4.7, -4.7, 0.2]
//! scale = [1.0, 1.0, 0.7, 0.7, 0.7, 0.7, 4.0]
//! clip = [false, false, true, true, true, true, true]
//!
//! [training]                         # optional, free-form: what the model was trained on
//! dataset = "toptag"
//! labels = ["label_QCD", "label_Tbqq"]   # label branches in class order; `jettag tag` reads them
//!
//! [metrics]                          # optional: measured metrics, name = number
//! accuracy = 0.93
//! roc_auc = 0.98
//! ```
//!
//! The server refuses a model whose preprocessing it cannot reproduce: an unknown `feature_set`,
//! `feature_names` different from jettag-core's, any key in `[preprocessing]` it does not
//! understand, a missing required key (no silent defaults for what the model was trained with),
//! or out-of-range values. Unknown top-level keys are refused too, so a typo cannot pass.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jettag_core::features::FEATURE_NAMES;
use jettag_core::TokenizerConfig;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The only `model.toml` format this server reads.
pub const FORMAT_VERSION: u32 = 1;
/// The preprocessing scheme jettag-core implements: ParT's 7 kinematic features, FPS/kNN
/// tokens, greedy sequencer, 4 pair features (DESIGN.md section 3).
pub const FEATURE_SET: &str = "part-kinematic-v1";
pub const MODEL_FILE: &str = "model.onnx";
pub const MANIFEST_FILE: &str = "model.toml";

/// What a model computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Outputs `probs` and `embedding`.
    Classifier,
    /// Outputs `embedding` only.
    Encoder,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Classifier => "classifier",
            Task::Encoder => "encoder",
        }
    }
}

/// A parsed and checked `model.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelManifest {
    pub name: String,
    pub version: u64,
    pub task: Task,
    pub class_names: Vec<String>,
    pub embedding_dim: usize,
    pub description: String,
    pub feature_set: String,
    pub preprocessing: TokenizerConfig,
    pub training: toml::Table,
    pub metrics: BTreeMap<String, f64>,
}

impl ModelManifest {
    /// Label branches in class order, from `[training] labels`, if given.
    pub fn label_branches(&self) -> Option<Vec<String>> {
        let labels = self.training.get("labels")?.as_array()?;
        labels.iter().map(|v| v.as_str().map(str::to_string)).collect()
    }

    pub fn n_classes(&self) -> usize {
        self.class_names.len()
    }
}

/// One model version on disk.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub manifest: ModelManifest,
    pub onnx_path: PathBuf,
    pub dir: PathBuf,
}

#[derive(Debug, Error)]
pub enum RepositoryError {
    #[error("model repository {path}: {reason}")]
    Repository { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Model { path: PathBuf, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    format_version: u32,
    name: String,
    version: u64,
    task: Task,
    #[serde(default)]
    class_names: Vec<String>,
    embedding_dim: usize,
    #[serde(default)]
    description: String,
    #[serde(default)]
    #[allow(dead_code)]
    created: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    producer: Option<String>,
    preprocessing: toml::Table,
    #[serde(default)]
    training: toml::Table,
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
}

const REQUIRED_PREPROCESSING: [&str; 6] = ["feature_set", "k", "oversample", "max_tokens", "max_particles", "features"];
const REQUIRED_FEATURES: [&str; 3] = ["center", "scale", "clip"];

/// Parses and checks the text of a `model.toml`; the error says what is wrong.
pub fn parse_manifest(text: &str) -> Result<ModelManifest, String> {
    let raw: RawManifest = toml::from_str(text).map_err(|e| e.to_string())?;
    if raw.format_version != FORMAT_VERSION {
        return Err(format!(
            "format_version {} is not supported (this server reads format_version {FORMAT_VERSION})",
            raw.format_version
        ));
    }
    if raw.name.is_empty() {
        return Err("name is empty".into());
    }
    if raw.version == 0 {
        return Err("version must be a positive integer".into());
    }
    if raw.embedding_dim == 0 {
        return Err("embedding_dim must be at least 1".into());
    }
    match raw.task {
        Task::Classifier if raw.class_names.is_empty() => {
            return Err("task = \"classifier\" needs class_names (one per probs column)".into())
        }
        Task::Encoder if !raw.class_names.is_empty() => {
            return Err("task = \"encoder\" has no probs output; class_names must be empty".into())
        }
        _ => {}
    }
    let (feature_set, preprocessing) = parse_preprocessing(raw.preprocessing)?;
    Ok(ModelManifest {
        name: raw.name,
        version: raw.version,
        task: raw.task,
        class_names: raw.class_names,
        embedding_dim: raw.embedding_dim,
        description: raw.description,
        feature_set,
        preprocessing,
        training: raw.training,
        metrics: raw.metrics,
    })
}

/// Checks `[preprocessing]` strictly: every key understood, every parameter the model was
/// trained with present, values in range. Keys that jettag-core's `TokenizerConfig` knows are
/// taken from its serialisation, so a new core parameter is accepted without a change here.
fn parse_preprocessing(mut table: toml::Table) -> Result<(String, TokenizerConfig), String> {
    for key in REQUIRED_PREPROCESSING {
        if !table.contains_key(key) {
            return Err(format!("[preprocessing] lacks required key '{key}'"));
        }
    }
    let known = match toml::Value::try_from(TokenizerConfig::default()) {
        Ok(toml::Value::Table(t)) => t,
        other => return Err(format!("internal: TokenizerConfig does not serialise to a table: {other:?}")),
    };
    for key in table.keys() {
        if !known.contains_key(key) && key != "feature_set" && key != "feature_names" {
            return Err(format!(
                "[preprocessing] has unknown key '{key}': this server cannot reproduce that preprocessing"
            ));
        }
    }
    let feature_set = match table.remove("feature_set") {
        Some(toml::Value::String(s)) => s,
        _ => return Err("preprocessing.feature_set must be a string".into()),
    };
    if feature_set != FEATURE_SET {
        return Err(format!(
            "preprocessing.feature_set '{feature_set}' is not one this server can reproduce (supported: '{FEATURE_SET}')"
        ));
    }
    if let Some(names) = table.remove("feature_names") {
        let names: Vec<String> = names
            .try_into()
            .map_err(|e| format!("preprocessing.feature_names must be a list of strings: {e}"))?;
        if names != FEATURE_NAMES {
            return Err(format!(
                "preprocessing.feature_names {names:?} differ from jettag-core's {FEATURE_NAMES:?}"
            ));
        }
    }
    if let Some(toml::Value::Table(features)) = table.get("features") {
        let known_features = known.get("features").and_then(|v| v.as_table()).cloned().unwrap_or_default();
        for key in REQUIRED_FEATURES {
            if !features.contains_key(key) {
                return Err(format!("[preprocessing.features] lacks required key '{key}'"));
            }
        }
        for key in features.keys() {
            if !known_features.contains_key(key) {
                return Err(format!("[preprocessing.features] has unknown key '{key}'"));
            }
        }
    }
    let cfg: TokenizerConfig =
        toml::Value::Table(table).try_into().map_err(|e| format!("[preprocessing]: {e}"))?;
    check_ranges(&cfg)?;
    Ok((feature_set, cfg))
}

fn check_ranges(cfg: &TokenizerConfig) -> Result<(), String> {
    let counts = [
        ("k", cfg.k),
        ("max_tokens", cfg.max_tokens),
        ("max_particles", cfg.max_particles),
        ("max_constituents", cfg.max_constituents),
    ];
    for (name, value) in counts {
        if value == 0 {
            return Err(format!("preprocessing.{name} must be at least 1"));
        }
    }
    if !(cfg.oversample.is_finite() && cfg.oversample > 0.0) {
        return Err(format!("preprocessing.oversample must be positive and finite, not {}", cfg.oversample));
    }
    let f = &cfg.features;
    for (i, name) in FEATURE_NAMES.iter().enumerate() {
        if !f.center[i].is_finite() || !f.scale[i].is_finite() || f.scale[i] == 0.0 {
            return Err(format!(
                "preprocessing.features: {name} needs a finite center and a finite, non-zero scale"
            ));
        }
    }
    Ok(())
}

/// Loads one `<name>/<version>` directory; `expect` = (name, version) from the path, checked
/// against the manifest when known.
pub fn load_version_dir(dir: &Path, expect: Option<(&str, u64)>) -> Result<ModelSpec, RepositoryError> {
    let onnx_path = dir.join(MODEL_FILE);
    let manifest_path = dir.join(MANIFEST_FILE);
    for path in [&onnx_path, &manifest_path] {
        if !path.is_file() {
            return Err(RepositoryError::Model { path: path.clone(), reason: "missing".into() });
        }
    }
    let text = std::fs::read_to_string(&manifest_path)
        .map_err(|e| RepositoryError::Model { path: manifest_path.clone(), reason: e.to_string() })?;
    let manifest =
        parse_manifest(&text).map_err(|reason| RepositoryError::Model { path: manifest_path.clone(), reason })?;
    if let Some((name, version)) = expect {
        if manifest.name != name || manifest.version != version {
            return Err(RepositoryError::Model {
                path: manifest_path,
                reason: format!(
                    "says name = \"{}\", version = {} but lies in {name}/{version}",
                    manifest.name, manifest.version
                ),
            });
        }
    }
    Ok(ModelSpec { manifest, onnx_path, dir: dir.to_path_buf() })
}

/// Numeric subdirectories of a model directory, ascending.
fn versions(model_dir: &Path) -> Result<Vec<u64>, RepositoryError> {
    let entries = std::fs::read_dir(model_dir)
        .map_err(|e| RepositoryError::Model { path: model_dir.to_path_buf(), reason: e.to_string() })?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        if !entry.path().is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        match name.parse::<u64>() {
            Ok(v) if v > 0 => out.push(v),
            _ => tracing::info!(path = %entry.path().display(), "ignoring non-version directory"),
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Every model version in a repository, sorted by name then version.
pub fn scan(root: &Path) -> Result<Vec<ModelSpec>, RepositoryError> {
    let entries = std::fs::read_dir(root).map_err(|e| RepositoryError::Repository {
        path: root.to_path_buf(),
        reason: format!("cannot read directory: {e}"),
    })?;
    let mut names: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().to_string(), e.path()))
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    names.sort();
    let mut specs = Vec::new();
    for (name, path) in names {
        let versions = versions(&path)?;
        if versions.is_empty() {
            tracing::warn!(path = %path.display(), "model directory has no version subdirectory; skipped");
        }
        for v in versions {
            specs.push(load_version_dir(&path.join(v.to_string()), Some((&name, v)))?);
        }
    }
    if specs.is_empty() {
        return Err(RepositoryError::Repository {
            path: root.to_path_buf(),
            reason: "holds no models (expected <name>/<version>/model.onnx with model.toml)".into(),
        });
    }
    Ok(specs)
}

/// A model for offline use: either a version directory (holding `model.onnx`) or a model
/// directory, whose highest version is taken.
pub fn open_model_dir(path: &Path) -> Result<ModelSpec, RepositoryError> {
    if path.join(MODEL_FILE).is_file() || path.join(MANIFEST_FILE).is_file() {
        return load_version_dir(path, None);
    }
    let versions = versions(path)?;
    let v = versions.last().ok_or_else(|| RepositoryError::Model {
        path: path.to_path_buf(),
        reason: "neither a model version directory (model.onnx + model.toml) nor a model directory with numeric versions".into(),
    })?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string());
    load_version_dir(&path.join(v.to_string()), name.as_deref().map(|n| (n, *v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
format_version = 1
name = "m"
version = 2
task = "classifier"
class_names = ["QCD", "Top"]
embedding_dim = 16

[preprocessing]
feature_set = "part-kinematic-v1"
k = 4
oversample = 1.5
max_tokens = 16
max_particles = 64

[preprocessing.features]
center = [0.0, 0.0, 1.7, 2.0, -4.7, -4.7, 0.2]
scale = [1.0, 1.0, 0.7, 0.7, 0.7, 0.7, 4.0]
clip = [false, false, true, true, true, true, true]

[training]
labels = ["label_QCD", "label_Tbqq"]

[metrics]
accuracy = 0.9
"#;

    #[test]
    fn parses_the_documented_format() {
        let m = parse_manifest(GOOD).unwrap();
        assert_eq!(m.name, "m");
        assert_eq!(m.version, 2);
        assert_eq!(m.task, Task::Classifier);
        assert_eq!(m.preprocessing.k, 4);
        assert_eq!(m.preprocessing.oversample, 1.5);
        assert_eq!(m.preprocessing.max_tokens, 16);
        assert_eq!(m.preprocessing.max_particles, 64);
        assert_eq!(m.preprocessing.max_constituents, TokenizerConfig::default().max_constituents);
        assert_eq!(m.preprocessing.features.scale[6], 4.0);
        assert_eq!(m.metrics["accuracy"], 0.9);
        assert_eq!(m.label_branches().unwrap(), vec!["label_QCD", "label_Tbqq"]);
    }

    #[test]
    fn the_committed_fixtures_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models");
        let specs = scan(&root).unwrap();
        let names: Vec<_> = specs.iter().map(|s| (s.manifest.name.as_str(), s.manifest.version)).collect();
        assert_eq!(names, vec![("tiny-encoder", 1), ("tiny-top", 1)]);
        assert_eq!(specs[1].manifest.preprocessing, TokenizerConfig::default());
    }

    fn refuse(text: &str, needle: &str) {
        let err = parse_manifest(text).unwrap_err();
        assert!(err.contains(needle), "expected '{needle}' in: {err}");
    }

    #[test]
    fn refuses_unknown_feature_set() {
        refuse(&GOOD.replace("part-kinematic-v1", "part-kinematic-v2"), "part-kinematic-v2");
    }

    #[test]
    fn refuses_unknown_preprocessing_key() {
        refuse(&GOOD.replace("k = 4", "k = 4\nuse_charge = true"), "use_charge");
    }

    #[test]
    fn refuses_missing_preprocessing_key() {
        refuse(&GOOD.replace("max_tokens = 16\n", ""), "max_tokens");
    }

    #[test]
    fn refuses_reordered_feature_names() {
        let text = GOOD.replace(
            "k = 4",
            "k = 4\nfeature_names = [\"dphi\", \"deta\", \"log_pt\", \"log_e\", \"log_ptrel\", \"log_erel\", \"delta_r\"]",
        );
        refuse(&text, "feature_names");
    }

    #[test]
    fn refuses_other_format_version_and_bad_values() {
        refuse(&GOOD.replace("format_version = 1", "format_version = 2"), "format_version 2");
        refuse(&GOOD.replace("k = 4", "k = 0"), "preprocessing.k");
        refuse(&GOOD.replace("oversample = 1.5", "oversample = -1.0"), "oversample");
        refuse(&GOOD.replace("class_names = [\"QCD\", \"Top\"]", "class_names = []"), "class_names");
        refuse(&GOOD.replace("embedding_dim = 16", "embedding_dim = 16\nembedding_dims = 3"), "embedding_dims");
        refuse(&GOOD.replace("scale = [1.0, 1.0,", "scale = [0.0, 1.0,"), "deta");
    }

    #[test]
    fn directory_must_match_manifest() {
        let dir = std::env::temp_dir().join(format!("jettag-repo-{}", std::process::id()));
        let v = dir.join("other").join("2");
        std::fs::create_dir_all(&v).unwrap();
        std::fs::write(v.join(MANIFEST_FILE), GOOD).unwrap();
        std::fs::write(v.join(MODEL_FILE), b"not onnx").unwrap();
        let err = scan(&dir).unwrap_err().to_string();
        assert!(err.contains("other/2"), "{err}");
        std::fs::remove_file(v.join(MODEL_FILE)).unwrap();
        let err = scan(&dir).unwrap_err().to_string();
        assert!(err.contains("model.onnx") && err.contains("missing"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn empty_repository_is_an_error() {
        let dir = std::env::temp_dir().join(format!("jettag-repo-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(scan(&dir).unwrap_err().to_string().contains("holds no models"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
