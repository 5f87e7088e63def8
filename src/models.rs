//! The served models: each (name, version) with its session pool and batcher, and the lookup
//! that requests use (empty name = the only model; version 0 = the highest).
use std::collections::BTreeMap;
use std::sync::Arc;

use jettag_core::TokenizerConfig;

use crate::batcher::{Batcher, BatcherConfig};
use crate::metrics::Metrics;
use crate::repository::{ModelSpec, Task};
use crate::runtime::{ResolvedDevice, SessionPool};

/// One loaded model version.
pub struct ServedModel {
    pub spec: ModelSpec,
    pub tokenizer: Arc<TokenizerConfig>,
    pub device: ResolvedDevice,
    pub pool: Arc<SessionPool>,
    pub batcher: Batcher,
}

impl ServedModel {
    /// Starts the batcher for a pool (on the current tokio runtime).
    pub fn start(spec: ModelSpec, pool: Arc<SessionPool>, cfg: BatcherConfig, metrics: Arc<Metrics>) -> Self {
        let m = &spec.manifest;
        let batcher = Batcher::start(
            &m.name,
            cfg,
            m.preprocessing.k,
            (m.task == Task::Classifier).then_some(m.n_classes()),
            m.embedding_dim,
            Arc::clone(&pool),
            metrics,
        );
        Self { tokenizer: Arc::new(m.preprocessing.clone()), device: pool.device(), spec, pool, batcher }
    }

    pub fn name(&self) -> &str {
        &self.spec.manifest.name
    }

    pub fn version(&self) -> u64 {
        self.spec.manifest.version
    }
}

/// Why a lookup failed; maps to NOT_FOUND or INVALID_ARGUMENT.
#[derive(Debug, Clone, PartialEq)]
pub enum LookupError {
    /// Unknown name or version (NOT_FOUND).
    NotFound(String),
    /// No name given while several models are served (INVALID_ARGUMENT).
    Ambiguous(String),
}

/// All served models by name and version.
#[derive(Default)]
pub struct ModelSet {
    models: BTreeMap<String, BTreeMap<u64, Arc<ServedModel>>>,
}

impl ModelSet {
    pub fn insert(&mut self, model: ServedModel) {
        self.models.entry(model.name().to_string()).or_default().insert(model.version(), Arc::new(model));
    }

    /// Every model version, sorted by name then version.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ServedModel>> {
        self.models.values().flat_map(|v| v.values())
    }

    fn names(&self) -> String {
        self.models.keys().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ")
    }

    pub fn resolve(&self, name: &str, version: u64) -> Result<Arc<ServedModel>, LookupError> {
        let versions = if name.is_empty() {
            if self.models.len() != 1 {
                return Err(LookupError::Ambiguous(format!(
                    "model: the server holds several models ({}); name one",
                    self.names()
                )));
            }
            self.models.values().next().expect("one model")
        } else {
            self.models.get(name).ok_or_else(|| {
                LookupError::NotFound(format!("model '{name}' not found (served models: {})", self.names()))
            })?
        };
        let found = if version == 0 { versions.values().next_back() } else { versions.get(&version) };
        found.cloned().ok_or_else(|| {
            let have: Vec<String> = versions.keys().map(|v| v.to_string()).collect();
            LookupError::NotFound(format!(
                "model '{}' has no version {version} (served versions: {})",
                if name.is_empty() { versions.values().next().map_or("", |m| m.name()) } else { name },
                have.join(", ")
            ))
        })
    }
}
