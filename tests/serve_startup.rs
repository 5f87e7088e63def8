//! `jettag serve` refuses to start, with a message naming the culprit and without a panic,
//! when the ONNX Runtime library, the model repository or a model is wrong.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A temporary repository with one model `m/1` built from the tiny-top fixture, its
/// `model.toml` edited by `edit` and `model.onnx` replaced by `onnx` if given.
struct TempRepo(PathBuf);

impl TempRepo {
    fn new(tag: &str, edit: impl Fn(String) -> String, onnx: Option<&[u8]>) -> Self {
        let root = std::env::temp_dir().join(format!("jettag-startup-{tag}-{}", std::process::id()));
        let dir = root.join("m/1");
        std::fs::create_dir_all(&dir).unwrap();
        let src = models_dir().join("tiny-top/1");
        let toml = std::fs::read_to_string(src.join("model.toml")).unwrap().replace("name = \"tiny-top\"", "name = \"m\"");
        std::fs::write(dir.join("model.toml"), edit(toml)).unwrap();
        match onnx {
            Some(bytes) => std::fs::write(dir.join("model.onnx"), bytes).unwrap(),
            None => {
                std::fs::copy(src.join("model.onnx"), dir.join("model.onnx")).unwrap();
            }
        }
        TempRepo(root)
    }
}

impl Drop for TempRepo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `jettag serve` expecting it to fail at start; returns stderr.
fn refuse(models: &Path, extra: &[&str], ort: Option<&Path>) -> String {
    let out = Command::new(binary())
        .arg("serve")
        .arg("--models")
        .arg(models)
        .args(["--host", "127.0.0.1", "--grpc-port", "0", "--http-port", "0"])
        .args(extra)
        .env("ORT_DYLIB_PATH", ort.map(Path::to_path_buf).unwrap_or_else(ort_lib))
        .output()
        .expect("running jettag serve");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "expected a start-up error, got {}:\n{stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn missing_onnx_runtime_library() {
    let err = refuse(&models_dir(), &[], Some(Path::new("/nonexistent/libonnxruntime.so")));
    assert!(err.contains("ONNX Runtime library") && err.contains("/nonexistent/libonnxruntime.so"), "{err}");
}

#[test]
fn missing_or_empty_repository() {
    let err = refuse(Path::new("/nonexistent/models"), &[], None);
    assert!(err.contains("/nonexistent/models"), "{err}");
    let empty = TempRepo::new("empty", |t| t, None);
    std::fs::remove_dir_all(empty.0.join("m")).unwrap();
    let err = refuse(&empty.0, &[], None);
    assert!(err.contains("holds no models"), "{err}");
}

#[test]
fn corrupt_model_file() {
    let repo = TempRepo::new("corrupt", |t| t, Some(b"this is not an ONNX model"));
    let err = refuse(&repo.0, &["--device", "cpu"], None);
    assert!(err.contains("m/1/model.onnx") && err.contains("cannot create an ONNX Runtime session"), "{err}");
}

#[test]
fn model_that_does_not_match_its_manifest() {
    let repo = TempRepo::new("k", |t| t.replace("k = 8", "k = 4"), None);
    let err = refuse(&repo.0, &["--device", "cpu"], None);
    assert!(err.contains("does not match the model contract") && err.contains("'tokens' axis 2 is 8, expected 4"), "{err}");

    let repo = TempRepo::new("classes", |t| t.replace(r#"["QCD", "Top"]"#, r#"["QCD", "Top", "W"]"#), None);
    let err = refuse(&repo.0, &["--device", "cpu"], None);
    assert!(err.contains("'probs' axis 1 is 2, expected 3"), "{err}");
}

#[test]
fn preprocessing_the_server_cannot_reproduce() {
    let repo = TempRepo::new("fs", |t| t.replace("part-kinematic-v1", "part-full-v3"), None);
    let err = refuse(&repo.0, &[], None);
    assert!(err.contains("m/1/model.toml") && err.contains("part-full-v3"), "{err}");
    let repo = TempRepo::new("key", |t| t.replace("k = 8", "k = 8\nuse_pid = true"), None);
    let err = refuse(&repo.0, &[], None);
    assert!(err.contains("use_pid"), "{err}");
    let repo = TempRepo::new("dir", |t| t.replace("name = \"m\"", "name = \"other\""), None);
    let err = refuse(&repo.0, &[], None);
    assert!(err.contains("lies in m/1"), "{err}");
}

#[test]
fn cuda_is_required_when_asked_for() {
    // The onnxruntime wheel the Makefile uses is the CPU build, so CUDA cannot register.
    let err = refuse(&models_dir(), &["--device", "cuda"], None);
    assert!(err.contains("--device cuda") && err.contains("CUDA"), "{err}");
}

#[test]
fn bad_configuration_file() {
    let dir = std::env::temp_dir().join(format!("jettag-startup-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("serve.toml");
    std::fs::write(&file, "max_batch_jets = 0\n").unwrap();
    let err = refuse(&models_dir(), &["--config", file.to_str().unwrap()], None);
    assert!(err.contains("max_batch_jets"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
