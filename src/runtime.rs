//! ONNX Runtime: the process-wide environment, one session per worker thread, the model
//! contract check (DESIGN.md section 4) and warm-up.
//!
//! `Session::run` needs `&mut Session`, and a session is not meant to be shared across
//! threads for concurrent runs, so each session is owned by exactly one worker thread of a
//! [`SessionPool`]; callers send it closures ([`Job`]s) instead of locking it.
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;

use jettag_core::{Batch, N_FEATURES, N_PAIR};
use ort::environment::Environment;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};
use thiserror::Error;

use crate::config::Device;
use crate::repository::{ModelManifest, ModelSpec, Task};

/// The device a session actually runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedDevice {
    Cpu,
    Cuda,
}

impl ResolvedDevice {
    pub fn as_str(self) -> &'static str {
        match self {
            ResolvedDevice::Cpu => "cpu",
            ResolvedDevice::Cuda => "cuda",
        }
    }
}

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("ONNX Runtime library: {0}")]
    Library(String),
    #[error("{path}: cannot create an ONNX Runtime session: {reason}")]
    Session { path: PathBuf, reason: String },
    #[error("--device cuda: the CUDA execution provider cannot be used: {0}")]
    Cuda(String),
    #[error("{path}: does not match the model contract (DESIGN.md section 4): {reason}")]
    Contract { path: PathBuf, reason: String },
    #[error("inference failed: {0}")]
    Run(String),
    #[error("the worker pool has stopped")]
    PoolClosed,
}

static ENVIRONMENT: Mutex<Option<Environment>> = Mutex::new(None);

/// The process-wide ONNX Runtime environment, loading the shared library from `lib` on first
/// use. A missing or unloadable library is an error, never a panic.
pub fn environment(lib: Option<&Path>) -> Result<Environment, RuntimeError> {
    let mut guard = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(env) = guard.as_ref() {
        return Ok(env.clone());
    }
    let lib = lib.ok_or_else(|| {
        RuntimeError::Library(
            "no library given: pass --ort-lib PATH or set ORT_DYLIB_PATH to libonnxruntime.so \
             (the Makefile points it at the onnxruntime wheel in .venv)"
                .into(),
        )
    })?;
    // ort resolves relative paths against the executable's directory; make them absolute
    // against the working directory instead, and fail early on a missing file.
    let lib = std::fs::canonicalize(lib)
        .map_err(|e| RuntimeError::Library(format!("{}: {e}", lib.display())))?;
    let env = ort::init_from(&lib)
        .map_err(|e| RuntimeError::Library(e.to_string()))?
        .with_name("jettag")
        .with_telemetry(false)
        .build()
        .map_err(|e| RuntimeError::Library(format!("{}: {e}", lib.display())))?;
    tracing::info!(library = %lib.display(), "ONNX Runtime loaded");
    *guard = Some(env.clone());
    Ok(env)
}

/// Name, element type and dimensions (-1 for dynamic) of one model input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSig {
    pub name: String,
    pub elem: Option<TensorElementType>,
    pub dims: Vec<i64>,
}

impl TensorSig {
    fn from_outlet(name: &str, ty: &ValueType) -> Self {
        match ty {
            ValueType::Tensor { ty, shape, .. } => {
                TensorSig { name: name.to_string(), elem: Some(*ty), dims: shape.to_vec() }
            }
            _ => TensorSig { name: name.to_string(), elem: None, dims: vec![] },
        }
    }
}

/// Checks a model's inputs and outputs against the contract and its manifest. Returns
/// warnings (ignored extra outputs); the error names every problem found.
pub fn check_contract(
    inputs: &[TensorSig],
    outputs: &[TensorSig],
    manifest: &ModelManifest,
) -> Result<Vec<String>, String> {
    use TensorElementType::{Bool, Float32};
    let k = manifest.preprocessing.k as i64;
    // (name, type, rank, fixed dims as (axis, size), dynamic axes)
    let want_inputs: [(&str, TensorElementType, usize, Vec<(usize, i64)>, Vec<usize>); 4] = [
        ("tokens", Float32, 4, vec![(2, k), (3, N_FEATURES as i64)], vec![0, 1]),
        ("centers", Float32, 3, vec![(2, 2)], vec![0, 1]),
        ("pair", Float32, 4, vec![(1, N_PAIR as i64)], vec![0, 2, 3]),
        ("token_mask", Bool, 2, vec![], vec![0, 1]),
    ];
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for sig in inputs {
        if !want_inputs.iter().any(|w| w.0 == sig.name) {
            problems.push(format!("unexpected input '{}'", sig.name));
        }
    }
    for (name, elem, rank, fixed, dynamic) in &want_inputs {
        let Some(sig) = inputs.iter().find(|s| s.name == *name) else {
            problems.push(format!("missing input '{name}'"));
            continue;
        };
        check_sig(sig, *elem, *rank, fixed, dynamic, &mut problems);
    }
    let mut want_outputs = vec![("embedding", manifest.embedding_dim as i64)];
    if manifest.task == Task::Classifier {
        want_outputs.push(("probs", manifest.n_classes() as i64));
    }
    for (name, width) in &want_outputs {
        let Some(sig) = outputs.iter().find(|s| s.name == *name) else {
            problems.push(format!("missing output '{name}' (task = \"{}\")", manifest.task.as_str()));
            continue;
        };
        check_sig(sig, Float32, 2, &[(1, *width)], &[0], &mut problems);
    }
    for sig in outputs {
        if !want_outputs.iter().any(|w| w.0 == sig.name) {
            warnings.push(format!("output '{}' is not part of the contract and is ignored", sig.name));
        }
    }
    if problems.is_empty() {
        Ok(warnings)
    } else {
        Err(problems.join("; "))
    }
}

fn check_sig(
    sig: &TensorSig,
    elem: TensorElementType,
    rank: usize,
    fixed: &[(usize, i64)],
    dynamic: &[usize],
    problems: &mut Vec<String>,
) {
    if sig.elem != Some(elem) {
        problems.push(format!("'{}' has element type {:?}, expected {elem:?}", sig.name, sig.elem));
        return;
    }
    if sig.dims.len() != rank {
        problems.push(format!("'{}' has rank {} ({:?}), expected {rank}", sig.name, sig.dims.len(), sig.dims));
        return;
    }
    for &(axis, size) in fixed {
        let d = sig.dims[axis];
        if d != -1 && d != size {
            problems.push(format!("'{}' axis {axis} is {d}, expected {size}", sig.name));
        }
    }
    for &axis in dynamic {
        if sig.dims[axis] != -1 {
            problems.push(format!(
                "'{}' axis {axis} is fixed at {}; batch and token axes must be dynamic",
                sig.name, sig.dims[axis]
            ));
        }
    }
}

/// Outputs of one batch, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    pub b: usize,
    /// `[B, n_classes]`, classifier models only.
    pub probs: Option<Vec<f32>>,
    /// `[B, D]`
    pub embedding: Vec<f32>,
}

/// Something that computes model outputs for a collated batch: an ONNX Runtime session in the
/// server, a stand-in in tests of the batcher.
pub trait Infer: Send {
    fn infer(&mut self, batch: &Batch) -> Result<Outputs, RuntimeError>;
    fn warm_up(&mut self) -> Result<(), RuntimeError>;
}

/// A session together with what it needs to check its inputs and outputs.
pub struct InferSession {
    session: Session,
    path: PathBuf,
    k: usize,
    n_classes: Option<usize>,
    embedding_dim: usize,
}

impl Infer for InferSession {
    /// Runs one collated batch.
    fn infer(&mut self, batch: &Batch) -> Result<Outputs, RuntimeError> {
        if batch.k != self.k {
            return Err(RuntimeError::Run(format!("batch has k = {}, the model needs k = {}", batch.k, self.k)));
        }
        let (b, t, k) = (batch.b, batch.t, batch.k);
        let err = |e: ort::Error| RuntimeError::Run(e.to_string());
        let tokens = TensorRef::from_array_view(([b, t, k, N_FEATURES], batch.tokens.as_slice())).map_err(err)?;
        let centers = TensorRef::from_array_view(([b, t, 2], batch.centers.as_slice())).map_err(err)?;
        let pair = TensorRef::from_array_view(([b, N_PAIR, t, t], batch.pair.as_slice())).map_err(err)?;
        let mask = TensorRef::from_array_view(([b, t], batch.token_mask.as_slice())).map_err(err)?;
        let outputs = self
            .session
            .run(ort::inputs!["tokens" => tokens, "centers" => centers, "pair" => pair, "token_mask" => mask])
            .map_err(err)?;
        let extract = |name: &str, width: usize| -> Result<Vec<f32>, RuntimeError> {
            let value = outputs.get(name).ok_or_else(|| RuntimeError::Run(format!("no output '{name}'")))?;
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(err)?;
            if shape.len() != 2 || shape[0] != b as i64 || shape[1] != width as i64 {
                return Err(RuntimeError::Run(format!(
                    "output '{name}' has shape {:?}, expected [{b}, {width}]",
                    shape.to_vec()
                )));
            }
            Ok(data.to_vec())
        };
        let probs = match self.n_classes {
            Some(n) => Some(extract("probs", n)?),
            None => None,
        };
        let embedding = extract("embedding", self.embedding_dim)?;
        Ok(Outputs { b, probs, embedding })
    }

    /// Runs a small synthetic batch (two jets, three and one tokens) so that memory is
    /// allocated and kernels are chosen before the first request, and checks output shapes.
    fn warm_up(&mut self) -> Result<(), RuntimeError> {
        let (b, t, k) = (2, 3, self.k);
        let mut batch = Batch {
            b,
            t,
            k,
            tokens: vec![0.1; b * t * k * N_FEATURES],
            centers: vec![0.05; b * t * 2],
            pair: vec![-1.0; b * N_PAIR * t * t],
            token_mask: vec![true; b * t],
        };
        batch.token_mask[t + 1] = false;
        batch.token_mask[t + 2] = false;
        let out = self.infer(&batch).map_err(|e| RuntimeError::Contract {
            path: self.path.clone(),
            reason: format!("warm-up run failed: {e}"),
        })?;
        if out.embedding.iter().chain(out.probs.iter().flatten()).any(|v| !v.is_finite()) {
            return Err(RuntimeError::Contract {
                path: self.path.clone(),
                reason: "warm-up run produced non-finite outputs".into(),
            });
        }
        Ok(())
    }
}

fn create_session(
    env: &Environment,
    spec: &ModelSpec,
    cuda: bool,
    intra_threads: usize,
) -> Result<Session, String> {
    let mut builder = Session::builder(env).map_err(|e| e.to_string())?;
    if intra_threads > 0 {
        builder = builder.with_intra_threads(intra_threads).map_err(|e| e.to_string())?;
    }
    if cuda {
        builder = builder
            .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
            .map_err(|e| e.to_string())?;
    }
    builder.commit_from_file(&spec.onnx_path).map_err(|e| e.to_string())
}

/// Opens one session for `spec` on `device` and checks it against the contract. With
/// `Device::Auto` a failed CUDA registration falls back to CPU with a log line.
pub fn open_session(
    env: &Environment,
    spec: &ModelSpec,
    device: Device,
    intra_threads: usize,
) -> Result<(InferSession, ResolvedDevice), RuntimeError> {
    let path = spec.onnx_path.clone();
    let (session, resolved) = match device {
        Device::Cpu => (
            create_session(env, spec, false, intra_threads).map_err(|reason| RuntimeError::Session { path: path.clone(), reason })?,
            ResolvedDevice::Cpu,
        ),
        Device::Cuda => (create_session(env, spec, true, intra_threads).map_err(RuntimeError::Cuda)?, ResolvedDevice::Cuda),
        Device::Auto => match create_session(env, spec, true, intra_threads) {
            Ok(s) => (s, ResolvedDevice::Cuda),
            Err(reason) => {
                tracing::info!(model = %path.display(), %reason, "CUDA is not available; running on CPU");
                (
                    create_session(env, spec, false, intra_threads)
                        .map_err(|reason| RuntimeError::Session { path: path.clone(), reason })?,
                    ResolvedDevice::Cpu,
                )
            }
        },
    };
    let inputs: Vec<TensorSig> = session.inputs().iter().map(|o| TensorSig::from_outlet(o.name(), o.dtype())).collect();
    let outputs: Vec<TensorSig> =
        session.outputs().iter().map(|o| TensorSig::from_outlet(o.name(), o.dtype())).collect();
    let warnings = check_contract(&inputs, &outputs, &spec.manifest)
        .map_err(|reason| RuntimeError::Contract { path: path.clone(), reason })?;
    for w in warnings {
        tracing::warn!(model = %path.display(), "{w}");
    }
    let m = &spec.manifest;
    Ok((
        InferSession {
            session,
            path,
            k: m.preprocessing.k,
            n_classes: (m.task == Task::Classifier).then_some(m.n_classes()),
            embedding_dim: m.embedding_dim,
        },
        resolved,
    ))
}

/// Work for a worker: a closure run with exclusive access to that worker's session.
pub type Job = Box<dyn FnOnce(&mut dyn Infer) + Send + 'static>;

/// `instances` sessions of one model, each owned by a worker thread that runs [`Job`]s.
pub struct SessionPool {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    instances: usize,
    device: ResolvedDevice,
}

impl SessionPool {
    /// Opens `instances` sessions (the first decides the device for `auto`) and starts their
    /// worker threads.
    pub fn open(
        env: &Environment,
        spec: &ModelSpec,
        device: Device,
        instances: usize,
        intra_threads: usize,
    ) -> Result<Self, RuntimeError> {
        let (first, resolved) = open_session(env, spec, device, intra_threads)?;
        let mut sessions: Vec<Box<dyn Infer>> = vec![Box::new(first)];
        let strict = match resolved {
            ResolvedDevice::Cpu => Device::Cpu,
            ResolvedDevice::Cuda => Device::Cuda,
        };
        for _ in 1..instances.max(1) {
            sessions.push(Box::new(open_session(env, spec, strict, intra_threads)?.0));
        }
        Ok(Self::start(&spec.manifest.name, sessions, resolved))
    }

    /// Starts one worker thread per session.
    pub fn start(name: &str, sessions: Vec<Box<dyn Infer>>, device: ResolvedDevice) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let instances = sessions.len();
        let threads = sessions
            .into_iter()
            .enumerate()
            .map(|(i, mut session)| {
                let rx = Arc::clone(&rx);
                std::thread::Builder::new()
                    .name(format!("jettag-{name}-{i}"))
                    .spawn(move || loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // A panicking job must not take the session's thread with it; its
                        // reply channels are dropped, so its callers see an internal error.
                        if std::panic::catch_unwind(AssertUnwindSafe(|| job(session.as_mut()))).is_err() {
                            tracing::error!(worker = i, "a batch panicked; its requests fail");
                        }
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        Self { tx: Mutex::new(Some(tx)), threads: Mutex::new(threads), instances, device }
    }

    pub fn instances(&self) -> usize {
        self.instances
    }

    pub fn device(&self) -> ResolvedDevice {
        self.device
    }

    /// Queues a job for the next free worker.
    pub fn submit(&self, job: Job) -> Result<(), RuntimeError> {
        let guard = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let tx = guard.as_ref().ok_or(RuntimeError::PoolClosed)?;
        tx.send(job).map_err(|_| RuntimeError::PoolClosed)
    }

    /// Warms up every session (one job per worker, held at a barrier so no worker takes two).
    /// Blocking; call from a blocking context.
    pub fn warm_up(&self) -> Result<(), RuntimeError> {
        let barrier = Arc::new(Barrier::new(self.instances));
        let (tx, rx) = mpsc::channel();
        for _ in 0..self.instances {
            let barrier = Arc::clone(&barrier);
            let tx = tx.clone();
            self.submit(Box::new(move |session| {
                let result = session.warm_up();
                let _ = tx.send(result);
                barrier.wait();
            }))?;
        }
        drop(tx);
        for _ in 0..self.instances {
            rx.recv().map_err(|_| RuntimeError::PoolClosed)??;
        }
        Ok(())
    }

    /// Stops accepting jobs, lets queued ones finish and joins the workers.
    pub fn shutdown(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for SessionPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::parse_manifest;

    fn manifest(task: &str, classes: &str) -> ModelManifest {
        let text = format!(
            r#"format_version = 1
name = "m"
version = 1
task = "{task}"
class_names = {classes}
embedding_dim = 16
[preprocessing]
feature_set = "part-kinematic-v1"
k = 8
oversample = 2.0
max_tokens = 32
max_particles = 128
[preprocessing.features]
center = [0.0, 0.0, 1.7, 2.0, -4.7, -4.7, 0.2]
scale = [1.0, 1.0, 0.7, 0.7, 0.7, 0.7, 4.0]
clip = [false, false, true, true, true, true, true]
"#
        );
        parse_manifest(&text).unwrap()
    }

    fn sig(name: &str, elem: TensorElementType, dims: &[i64]) -> TensorSig {
        TensorSig { name: name.into(), elem: Some(elem), dims: dims.to_vec() }
    }

    fn contract_inputs() -> Vec<TensorSig> {
        use TensorElementType::*;
        vec![
            sig("tokens", Float32, &[-1, -1, 8, 7]),
            sig("centers", Float32, &[-1, -1, 2]),
            sig("pair", Float32, &[-1, 4, -1, -1]),
            sig("token_mask", Bool, &[-1, -1]),
        ]
    }

    #[test]
    fn accepts_the_contract() {
        use TensorElementType::*;
        let outputs = vec![sig("probs", Float32, &[-1, 2]), sig("embedding", Float32, &[-1, 16])];
        let m = manifest("classifier", r#"["a", "b"]"#);
        assert_eq!(check_contract(&contract_inputs(), &outputs, &m), Ok(vec![]));
    }

    #[test]
    fn names_every_problem() {
        use TensorElementType::*;
        let mut inputs = contract_inputs();
        inputs[0].dims[2] = 4; // k mismatch
        inputs[3].elem = Some(Float32); // mask must be bool
        inputs[1].dims[0] = 1; // fixed batch
        let outputs = vec![sig("probs", Float32, &[-1, 3]), sig("embedding", Float32, &[-1, 16])];
        let err = check_contract(&inputs, &outputs, &manifest("classifier", r#"["a", "b"]"#)).unwrap_err();
        assert!(err.contains("'tokens' axis 2 is 4, expected 8"), "{err}");
        assert!(err.contains("'token_mask' has element type"), "{err}");
        assert!(err.contains("'centers' axis 0 is fixed"), "{err}");
        assert!(err.contains("'probs' axis 1 is 3, expected 2"), "{err}");
    }

    #[test]
    fn classifier_needs_probs_encoder_does_not() {
        use TensorElementType::*;
        let outputs = vec![sig("embedding", Float32, &[-1, 16])];
        let err = check_contract(&contract_inputs(), &outputs, &manifest("classifier", r#"["a"]"#)).unwrap_err();
        assert!(err.contains("missing output 'probs'"), "{err}");
        assert_eq!(check_contract(&contract_inputs(), &outputs, &manifest("encoder", "[]")), Ok(vec![]));
    }

    #[test]
    fn missing_and_extra_inputs() {
        use TensorElementType::*;
        let mut inputs = contract_inputs();
        inputs.remove(2);
        inputs.push(sig("charge", Float32, &[-1, -1]));
        let outputs = vec![sig("embedding", Float32, &[-1, 16])];
        let err = check_contract(&inputs, &outputs, &manifest("encoder", "[]")).unwrap_err();
        assert!(err.contains("missing input 'pair'") && err.contains("unexpected input 'charge'"), "{err}");
    }

    #[test]
    fn missing_library_is_an_error_not_a_panic() {
        // Only meaningful before any environment exists in this process; other tests in this
        // binary do not create one.
        let err = environment(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/libonnxruntime.so"), "{err}");
    }
}
