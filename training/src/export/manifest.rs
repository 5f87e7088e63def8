//! `model.toml`, the manifest the server reads beside `model.onnx` (format version 1, defined
//! by the server's `src/repository.rs`). The training crate must not depend on the server, so
//! the format is written here with its own structs; a root integration test
//! (`tests/exported_model.rs`) parses an exported model with the server's parser.
use std::collections::BTreeMap;

use jettag_core::{TokenizerConfig, FEATURE_NAMES};
use serde::{Deserialize, Serialize};

/// The `model.toml` format version the server reads.
pub const FORMAT_VERSION: u32 = 1;
/// The preprocessing scheme of `jettag-core` (ParT's 7 kinematic features, FPS/kNN tokens,
/// greedy sequencer, 4 pair features).
pub const FEATURE_SET: &str = "part-kinematic-v1";

/// `task` values.
pub const TASK_CLASSIFIER: &str = "classifier";
pub const TASK_ENCODER: &str = "encoder";

/// `[preprocessing]`: the tokenizer parameters the model was trained with, flattened into the
/// table, plus the scheme's name and feature order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    pub feature_set: String,
    pub feature_names: Vec<String>,
    #[serde(flatten)]
    pub tokenizer: TokenizerConfig,
}

impl Preprocessing {
    pub fn new(tokenizer: &TokenizerConfig) -> Self {
        Self {
            feature_set: FEATURE_SET.into(),
            feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            tokenizer: tokenizer.clone(),
        }
    }
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub name: String,
    pub version: u64,
    /// [`TASK_CLASSIFIER`] (outputs probs and embedding) or [`TASK_ENCODER`] (embedding only).
    pub task: String,
    /// One per `probs` column; empty for encoders.
    pub class_names: Vec<String>,
    pub embedding_dim: usize,
    pub description: String,
    pub created: String,
    pub producer: String,
    pub preprocessing: Preprocessing,
    /// Free-form: data, labels (`labels` is read by `jettag tag`), settings, timing.
    pub training: toml::Table,
    /// Measured metrics by name (from the last `jettag-train eval`).
    pub metrics: BTreeMap<String, f64>,
}

impl Manifest {
    /// The TOML text, with a comment line naming the producer.
    pub fn to_toml(&self) -> Result<String, String> {
        let body = toml::to_string(self).map_err(|e| e.to_string())?;
        Ok(format!("# Written by `jettag-train export`; format: see src/repository.rs of the jettag server.\n{body}"))
    }
}

/// The current time as RFC 3339 UTC (`2026-01-01T12:00:00Z`), without a date-time dependency.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    utc_from_unix(secs)
}

/// Unix seconds → RFC 3339 UTC (Howard Hinnant's days-to-civil algorithm).
pub fn utc_from_unix(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let mut training = toml::Table::new();
        training.insert("labels".into(), toml::Value::Array(vec!["label_QCD".into(), "label_Tbqq".into()]));
        training.insert("n_train".into(), toml::Value::Integer(100));
        let mut metrics = BTreeMap::new();
        metrics.insert("accuracy".into(), 0.9);
        metrics.insert("roc_auc".into(), 0.95);
        Manifest {
            format_version: FORMAT_VERSION,
            name: "hepjepa-top".into(),
            version: 3,
            task: TASK_CLASSIFIER.into(),
            class_names: vec!["QCD".into(), "Top".into()],
            embedding_dim: 64,
            description: "test".into(),
            created: utc_from_unix(0),
            producer: "jettag-train test".into(),
            preprocessing: Preprocessing::new(&TokenizerConfig::default()),
            training,
            metrics,
        }
    }

    #[test]
    fn manifest_round_trips_and_has_the_server_layout() {
        let m = manifest();
        let text = m.to_toml().unwrap();
        let back: Manifest = toml::from_str(&text).unwrap();
        assert_eq!(back, m);
        // The layout the server documents: flat tokenizer keys under [preprocessing] and the
        // feature constants in [preprocessing.features].
        let doc: toml::Table = toml::from_str(&text).unwrap();
        let pre = doc["preprocessing"].as_table().unwrap();
        for key in ["feature_set", "feature_names", "k", "oversample", "max_tokens", "max_particles", "max_constituents"] {
            assert!(pre.contains_key(key), "[preprocessing] lacks {key}:\n{text}");
        }
        assert_eq!(pre["k"].as_integer(), Some(8));
        assert_eq!(pre["oversample"].as_float(), Some(2.0));
        let features = pre["features"].as_table().unwrap();
        assert_eq!(features["scale"].as_array().unwrap().len(), 7);
        assert_eq!(doc["format_version"].as_integer(), Some(1));
        assert_eq!(doc["metrics"]["roc_auc"].as_float(), Some(0.95));
        // The tokenizer part deserialises back into core's config (what the server does).
        let mut pre = pre.clone();
        pre.remove("feature_set");
        pre.remove("feature_names");
        let cfg: TokenizerConfig = toml::Value::Table(pre).try_into().unwrap();
        assert_eq!(cfg, TokenizerConfig::default());
    }

    #[test]
    fn encoder_manifest_has_empty_class_names() {
        let mut m = manifest();
        m.task = TASK_ENCODER.into();
        m.class_names.clear();
        let doc: toml::Table = toml::from_str(&m.to_toml().unwrap()).unwrap();
        assert_eq!(doc["task"].as_str(), Some("encoder"));
        assert!(doc["class_names"].as_array().unwrap().is_empty());
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_from_unix(0), "1970-01-01T00:00:00Z");
        // 2000-02-29 12:34:56 UTC (a leap day) = 951827696.
        assert_eq!(utc_from_unix(951_827_696), "2000-02-29T12:34:56Z");
        assert_eq!(utc_from_unix(1_767_225_600), "2026-01-01T00:00:00Z");
    }
}
