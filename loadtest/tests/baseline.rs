//! The Python baseline server (`loadtest/baseline/server.py`) must compute what jettag
//! computes, or comparing against it means nothing: its probabilities for real jets must equal
//! jettag-core's preprocessing followed by the same ONNX model in-process. Skips (with a
//! message) when the workspace's `.venv` lacks grpcio/onnxruntime or ORT_DYLIB_PATH is unset.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use jettag::config::Device;
use jettag::repository::open_model_dir;
use jettag::runtime::{environment, open_session, Infer};
use jettag_core::{collate, tokenize, TokenizedJet};
use jettag_loadtest::proto::v1::TagRequest;
use jettag_loadtest::requests::{columnar, load_jets};
use jettag_loadtest::target::connect;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python_ready(python: &Path) -> bool {
    python.is_file()
        && Command::new(python)
            .args(["-c", "import grpc, grpc_tools, onnxruntime, uproot, numpy"])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_baseline_matches_core_and_onnx_runtime() {
    let root = workspace();
    let python = root.join(".venv/bin/python");
    if !python_ready(&python) {
        eprintln!("SKIP: {} with grpcio, onnxruntime, uproot is needed (make venv)", python.display());
        return;
    }
    let Some(ort_lib) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()).map(PathBuf::from) else {
        eprintln!("SKIP: ORT_DYLIB_PATH is not set or empty (the Makefile sets it)");
        return;
    };
    let model_dir = root.join("tests/fixtures/models/tiny-top");
    let mut child = Command::new(&python)
        .arg(root.join("loadtest/baseline/server.py"))
        .args(["--port", "0", "--workers", "2", "--model"])
        .arg(&model_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the baseline server");
    let stdout = child.stdout.take().unwrap();
    let _server = Server(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(120)).expect("the baseline server did not start");

    let fixture = root.join("tests/fixtures/toptag_small.root").display().to_string();
    let jets = load_jets(&[fixture], 48).unwrap();
    assert_eq!(jets.len(), 48);

    // jettag's way: core preprocessing, the server's session code.
    let spec = open_model_dir(&model_dir).unwrap();
    let env = environment(Some(&ort_lib)).unwrap();
    let (mut session, _) = open_session(&env, &spec, Device::Cpu, 1).unwrap();
    let cfg = &spec.manifest.preprocessing;
    let toks: Vec<TokenizedJet> = jets.iter().map(|j| tokenize(j, cfg).unwrap()).collect();
    let refs: Vec<&TokenizedJet> = toks.iter().collect();
    let want = session.infer(&collate(&refs, cfg.k)).unwrap().probs.unwrap();

    // The baseline, in requests of 1, 7 and 40 jets (padding differs per request).
    let mut client = connect(&format!("http://{addr}")).await.unwrap();
    let mut got = Vec::new();
    for range in [0..1, 1..8, 8..48] {
        let req = TagRequest { jets: Some(columnar(&jets[range.clone()])), request_id: "r".into(), ..Default::default() };
        let resp = client.tag(req).await.expect("baseline Tag").into_inner();
        assert_eq!(resp.n_jets as usize, range.len());
        assert_eq!(resp.class_names, vec!["QCD", "Top"]);
        assert_eq!((resp.model.as_str(), resp.version, resp.request_id.as_str()), ("tiny-top", 1, "r"));
        got.extend(resp.probs);
    }
    assert_eq!(got.len(), want.len());
    let max_diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(max_diff <= 1e-5, "baseline differs from core + ONNX Runtime by {max_diff}");
    // Not a constant model: the comparison has something to compare.
    let spread = want.iter().fold(0.0f32, |m, &p| m.max((p - 0.5).abs()));
    assert!(spread > 0.05, "probabilities all near 0.5");

    // Malformed input is refused, as jettag refuses it.
    let mut bad = columnar(&jets[..2]);
    bad.px.pop();
    let err = client.tag(TagRequest { jets: Some(bad), ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
}
