//! The in-process baseline: the same model, the same ONNX Runtime session code as the server
//! (`jettag::runtime`), called directly on batches of a fixed size, with no network, queue or
//! batching delay. It is the limit the server approaches at that batch size.
//!
//! Two figures per batch size: *inference only* (jets tokenized and collated before the
//! clock starts; what ONNX Runtime alone can do) and *with preprocessing* (each batch is
//! tokenized on a thread pool, collated and run, one after another; what a single-threaded
//! caller of the library gets).
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jettag::config::Device;
use jettag::repository::{open_model_dir, RepositoryError};
use jettag::runtime::{environment, open_session, Infer, RuntimeError};
use jettag_core::{collate, tokenize, Jet, JetError, TokenizedJet, TokenizerConfig};
use rayon::prelude::*;
use serde::Serialize;
use thiserror::Error;

use crate::latency::{LatencyRecorder, LatencySummary};

#[derive(Debug, Error)]
pub enum DirectError {
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("--batch must be at least 1")]
    ZeroBatch,
    #[error("none of the {0} jets could be tokenized for this model")]
    NoValidJets(usize),
    #[error("tokenization failed: {0}")]
    Jet(#[from] JetError),
    #[error("preprocessing thread pool: {0}")]
    Pool(String),
}

/// Options of one direct measurement.
#[derive(Debug, Clone)]
pub struct DirectSpec {
    /// A model version directory, or a model directory (highest version).
    pub model: PathBuf,
    pub device: Device,
    /// ONNX Runtime intra-op threads (0: its default, as the server's default).
    pub intra_threads: usize,
    /// Tokenization threads (0: one per CPU, as the server's default).
    pub preprocess_threads: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub ort_lib: Option<PathBuf>,
}

/// One phase (inference only, or with preprocessing) at one batch size.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub batches: u64,
    pub jets_per_s: f64,
    /// Per batch.
    pub latency: LatencySummary,
}

/// The direct baseline at one batch size.
#[derive(Debug, Clone, Serialize)]
pub struct DirectReport {
    pub model: String,
    pub version: u64,
    pub device: String,
    pub batch: usize,
    pub inference_only: Phase,
    pub with_preprocessing: Phase,
    /// Jets that failed tokenization and were left out of the sample.
    pub skipped_jets: usize,
}

/// An opened model, reusable across batch sizes.
pub struct DirectModel {
    session: Box<dyn Infer>,
    cfg: TokenizerConfig,
    name: String,
    version: u64,
    device: String,
    pool: rayon::ThreadPool,
    spec: DirectSpec,
}

impl DirectModel {
    /// Opens the model exactly as the server does (contract check and warm-up included).
    pub fn open(spec: DirectSpec) -> Result<Self, DirectError> {
        let model = open_model_dir(&spec.model)?;
        let env = environment(spec.ort_lib.as_deref())?;
        let (mut session, device) = open_session(&env, &model, spec.device, spec.intra_threads)?;
        session.warm_up()?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(spec.preprocess_threads)
            .thread_name(|i| format!("direct-preprocess-{i}"))
            .build()
            .map_err(|e| DirectError::Pool(e.to_string()))?;
        Ok(Self {
            session: Box::new(session),
            cfg: model.manifest.preprocessing.clone(),
            name: model.manifest.name.clone(),
            version: model.manifest.version,
            device: device.as_str().to_string(),
            pool,
            spec,
        })
    }

    fn tokenize_all(&self, jets: &[Jet]) -> Vec<Option<TokenizedJet>> {
        let cfg = &self.cfg;
        self.pool.install(|| jets.par_iter().map(|j| tokenize(j, cfg).ok()).collect())
    }

    /// Measures both phases at batch size `batch` on `jets` (cycled).
    pub fn measure(&mut self, jets: &[Jet], batch: usize) -> Result<DirectReport, DirectError> {
        if batch == 0 {
            return Err(DirectError::ZeroBatch);
        }
        let tokenized = self.tokenize_all(jets);
        let skipped_jets = tokenized.iter().filter(|t| t.is_none()).count();
        let (valid_raw, valid_tok): (Vec<&Jet>, Vec<TokenizedJet>) =
            jets.iter().zip(tokenized).filter_map(|(j, t)| t.map(|t| (j, t))).unzip();
        if valid_tok.is_empty() {
            return Err(DirectError::NoValidJets(jets.len()));
        }
        let n = valid_tok.len();
        let k = self.cfg.k;
        let indices = |i: u64| (0..batch).map(move |j| (i as usize * batch + j) % n);

        // Inference only: a cycle of pre-collated batches (at most 64 distinct ones).
        let n_batches = n.div_ceil(batch).clamp(1, 64);
        let batches: Vec<_> = (0..n_batches as u64)
            .map(|i| {
                let refs: Vec<&TokenizedJet> = indices(i).map(|j| &valid_tok[j]).collect();
                collate(&refs, k)
            })
            .collect();
        let inference_only = self.timed(batch, |s, i| {
            s.session.infer(&batches[i as usize % batches.len()])?;
            Ok(())
        })?;

        // With preprocessing: raw jets → tokenize (parallel) → collate → infer, per batch.
        let with_preprocessing = self.timed(batch, |s, i| {
            let raw: Vec<&Jet> = indices(i).map(|j| valid_raw[j]).collect();
            let cfg = &s.cfg;
            let toks: Vec<TokenizedJet> =
                s.pool.install(|| raw.par_iter().map(|j| tokenize(j, cfg)).collect::<Result<_, _>>())?;
            let refs: Vec<&TokenizedJet> = toks.iter().collect();
            s.session.infer(&collate(&refs, k))?;
            Ok(())
        })?;

        Ok(DirectReport {
            model: self.name.clone(),
            version: self.version,
            device: self.device.clone(),
            batch,
            inference_only,
            with_preprocessing,
            skipped_jets,
        })
    }

    /// Calls `step` back to back: during the warm-up unmeasured, then for the duration with
    /// each call's latency recorded.
    fn timed(
        &mut self,
        batch: usize,
        mut step: impl FnMut(&mut Self, u64) -> Result<(), DirectError>,
    ) -> Result<Phase, DirectError> {
        let mut i = 0u64;
        let warm_end = Instant::now() + self.spec.warmup;
        while Instant::now() < warm_end {
            step(self, i)?;
            i += 1;
        }
        let mut rec = LatencyRecorder::new();
        let start = Instant::now();
        let mut batches = 0u64;
        while start.elapsed() < self.spec.duration {
            let t0 = Instant::now();
            step(self, i)?;
            rec.record(t0.elapsed());
            i += 1;
            batches += 1;
        }
        let elapsed = start.elapsed().as_secs_f64();
        Ok(Phase { batches, jets_per_s: (batches * batch as u64) as f64 / elapsed, latency: rec.summary() })
    }
}
