//! Shared helpers of the ONNX tests: a seeded random source, an ONNX Runtime environment
//! loaded from `ORT_DYLIB_PATH` (the onnxruntime wheel's library), and running a model.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::value::{DynValue, Tensor};

/// xorshift64*: reproducible test inputs without extra dependencies.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Roughly standard normal (sum of uniforms), enough to exercise the graphs.
    pub fn normal(&mut self) -> f32 {
        (0..12).map(|_| self.uniform()).sum::<f32>() - 6.0
    }

    pub fn normals(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal()).collect()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The workspace root (the parent of `training/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("training/ has a parent")
        .to_path_buf()
}

/// The ONNX Runtime library: `ORT_DYLIB_PATH` if set and not empty (the Makefile sets it), else
/// the onnxruntime wheel in the workspace's `.venv`.
fn ort_library() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "ORT_DYLIB_PATH={} does not exist",
            path.display()
        );
        return Some(path);
    }
    let lib = workspace_root().join(".venv/lib");
    for python in std::fs::read_dir(lib).ok()?.flatten() {
        let capi = python.path().join("site-packages/onnxruntime/capi");
        for entry in std::fs::read_dir(capi).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("libonnxruntime.so.") {
                return Some(entry.path());
            }
        }
    }
    None
}

/// One ONNX Runtime environment per test process; `None` (with a message) when no library is
/// available, so the test can skip.
pub fn ort_env() -> Option<Environment> {
    static ENV: OnceLock<Option<Environment>> = OnceLock::new();
    ENV.get_or_init(|| {
        let Some(path) = ort_library() else {
            eprintln!("SKIP: no ONNX Runtime library (set ORT_DYLIB_PATH or run `make venv`)");
            return None;
        };
        let env = ort::init_from(&path)
            .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
            .with_name("jettag-train-tests")
            .build()
            .expect("ONNX Runtime environment");
        Some(env)
    })
    .clone()
}

/// A session for the model bytes, single-threaded so tests stay light on the 2 CI cores.
pub fn session(env: &Environment, model: &[u8]) -> Session {
    let builder = Session::builder(env).expect("session builder");
    let mut builder = builder
        .with_intra_threads(1)
        .unwrap_or_else(|e| panic!("intra threads: {e}"));
    builder
        .commit_from_memory(model)
        .unwrap_or_else(|e| panic!("ONNX Runtime rejects the exported model: {e}"))
}

pub fn f32_input(shape: &[usize], data: Vec<f32>) -> DynValue {
    Tensor::from_array((shape.to_vec(), data))
        .expect("f32 tensor")
        .into_dyn()
}

pub fn bool_input(shape: &[usize], data: Vec<bool>) -> DynValue {
    Tensor::from_array((shape.to_vec(), data))
        .expect("bool tensor")
        .into_dyn()
}

/// Runs `session` and returns the named f32 outputs as (shape, values).
pub fn run(
    session: &mut Session,
    inputs: Vec<(&str, DynValue)>,
    outputs: &[&str],
) -> Vec<(Vec<usize>, Vec<f32>)> {
    let inputs: Vec<(
        std::borrow::Cow<'_, str>,
        ort::session::SessionInputValue<'_>,
    )> = inputs
        .into_iter()
        .map(|(name, value)| (name.into(), value.into()))
        .collect();
    let result = session.run(inputs).expect("ONNX Runtime run");
    outputs
        .iter()
        .map(|name| {
            let (shape, data) = result[*name]
                .try_extract_tensor::<f32>()
                .expect("f32 output");
            (shape.iter().map(|&d| d as usize).collect(), data.to_vec())
        })
        .collect()
}

/// Largest absolute difference, asserting equal lengths.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "output sizes differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
