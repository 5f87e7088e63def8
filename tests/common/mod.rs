//! Helpers for the end-to-end tests: start the real `jettag` binary on loopback, talk to it,
//! read the committed fixtures, and compute the tiny model independently of ONNX Runtime.
#![allow(dead_code)]

pub mod reference;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jettag::proto::v1::jet_tagger_client::JetTaggerClient;
use jettag::proto::v1::Jets;
use jettag_core::{Jet, JetReader, LabelSet, ReaderConfig};
use tonic::transport::Channel;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn models_dir() -> PathBuf {
    root().join("tests/fixtures/models")
}

pub fn toptag_fixture() -> PathBuf {
    root().join("tests/fixtures/toptag_small.root")
}

/// The ONNX Runtime library: `ORT_DYLIB_PATH` (the Makefile exports it) or the wheel in .venv.
pub fn ort_lib() -> PathBuf {
    if let Ok(p) = std::env::var("ORT_DYLIB_PATH") {
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    let lib = root().join(".venv/lib");
    for entry in std::fs::read_dir(&lib).expect("no ORT_DYLIB_PATH and no .venv/lib; run `make venv`").flatten() {
        let capi = entry.path().join("site-packages/onnxruntime/capi");
        if let Ok(files) = std::fs::read_dir(&capi) {
            for f in files.flatten() {
                if f.file_name().to_string_lossy().starts_with("libonnxruntime.so.") {
                    return f.path();
                }
            }
        }
    }
    panic!("cannot find libonnxruntime.so: set ORT_DYLIB_PATH or run `make venv`");
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_jettag")
}

/// `jettag serve` on free loopback ports (logged), CPU only, stderr piped for its log.
pub fn serve_command(models: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.arg("serve")
        .arg("--models")
        .arg(models)
        .args(["--host", "127.0.0.1", "--grpc-port", "0", "--http-port", "0", "--device", "cpu"])
        .args(extra)
        .env("ORT_DYLIB_PATH", ort_lib())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// A running `jettag serve`, killed on drop if still running.
pub struct Server {
    child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the server on free loopback ports with the fixture models plus `extra` flags and
    /// waits until it is ready.
    pub fn start(extra: &[&str]) -> Server {
        Self::start_with(&models_dir(), extra)
    }

    pub fn start_with(models: &Path, extra: &[&str]) -> Server {
        let mut child = serve_command(models, extra).spawn().expect("starting jettag serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.split("listening grpc=").nth(1) {
                        let mut parts = rest.split(" http=");
                        let grpc = parts.next().map(|s| s.trim().to_string());
                        let http = parts.next().map(|s| s.trim().to_string());
                        let _ = tx.send((grpc, http));
                    }
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let (grpc, http) = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok((Some(g), Some(h))) => (g.parse().unwrap(), h.parse().unwrap()),
            _ => {
                let _ = child.kill();
                std::thread::sleep(Duration::from_millis(200));
                panic!("server did not start; log:\n{}", log.lock().unwrap());
            }
        };
        let server = Server { child, grpc, http, log };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok((200, _)) = http_get(self.http, "/readyz") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server never became ready; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn grpc_uri(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub async fn client(&self) -> JetTaggerClient<Channel> {
        JetTaggerClient::connect(self.grpc_uri()).await.expect("connecting to the server")
    }

    pub fn metrics(&self) -> String {
        let (status, body) = http_get(self.http, "/metrics").expect("GET /metrics");
        assert_eq!(status, 200);
        body
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                panic!("server did not exit within {timeout:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A minimal HTTP/1.1 GET: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, body.to_string()))
}

/// The value of one sample line of a Prometheus text exposition, e.g.
/// `jettag_jets_total{model="tiny-top"}`; labels must be written in sorted order.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// The shared data set: `$JETTAG_DATA`, else `../shared/data` beside the checkout (it may not
/// exist; callers check for the files they need and skip without them).
pub fn data_root() -> PathBuf {
    std::env::var_os("JETTAG_DATA").map(PathBuf::from).unwrap_or_else(|| root().join("../shared/data"))
}

/// Every jet of `files`, in order, with the labels of `labels`.
pub fn read_jets(files: &[PathBuf], labels: &LabelSet) -> Vec<Jet> {
    let mut jets = Vec::new();
    for f in files {
        let reader = JetReader::open(f, ReaderConfig { labels: Some(labels.clone()), chunk_size: 2048 })
            .unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
        jets.extend(reader.flat_map(|c| c.expect("chunk").jets));
    }
    jets
}

/// The jets of the committed top-tagging fixture, with labels (0 = QCD, 1 = top).
pub fn fixture_jets() -> Vec<Jet> {
    read_jets(&[toptag_fixture()], &LabelSet::toptag())
}

/// Columnar request for the given jets.
pub fn columnar(jets: &[&Jet]) -> Jets {
    let mut out = Jets::default();
    for j in jets {
        out.counts.push(j.px.len() as u32);
        out.px.extend_from_slice(&j.px);
        out.py.extend_from_slice(&j.py);
        out.pz.extend_from_slice(&j.pz);
        out.energy.extend_from_slice(&j.energy);
    }
    out
}

/// One row of `jettag tag` output.
#[derive(Debug, Clone)]
pub struct TagRow {
    pub jet: usize,
    pub label: Option<usize>,
    pub probs: Vec<f32>,
    pub embedding: Vec<f32>,
}

/// Runs `jettag tag` and parses its CSV.
pub fn offline_tag(file: &Path, model: &Path, extra: &[&str]) -> (Vec<String>, Vec<TagRow>) {
    let out = std::env::temp_dir().join(format!(
        "jettag-offline-{}-{}.csv",
        std::process::id(),
        OFFLINE_COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let output = Command::new(binary())
        .arg("tag")
        .arg(file)
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(&out)
        .args(["--device", "cpu", "--quiet"])
        .args(extra)
        .env("ORT_DYLIB_PATH", ort_lib())
        .output()
        .expect("running jettag tag");
    assert!(
        output.status.success(),
        "jettag tag failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&out).expect("reading the CSV");
    let _ = std::fs::remove_file(&out);
    parse_csv(&text)
}

static OFFLINE_COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub fn parse_csv(text: &str) -> (Vec<String>, Vec<TagRow>) {
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().expect("header").split(',').map(str::to_string).collect();
    let rows = lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            assert_eq!(cells.len(), header.len(), "row {l}");
            let mut row = TagRow { jet: cells[0].parse().unwrap(), label: None, probs: vec![], embedding: vec![] };
            for (name, cell) in header.iter().zip(&cells).skip(1) {
                if name == "label" {
                    row.label = cell.parse().ok();
                } else if name.starts_with("prob_") {
                    row.probs.push(cell.parse().unwrap_or(f32::NAN));
                } else if name.starts_with("emb_") {
                    row.embedding.push(cell.parse().unwrap_or(f32::NAN));
                }
            }
            row
        })
        .collect();
    (header, rows)
}

pub fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, want {w} (tolerance {tol})");
    }
}

/// A small deterministic generator for request shapes (no dependency needed).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `promtool`, if installed (`make test` installs Debian's `prometheus` package when missing).
pub fn promtool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("promtool")).find(|p| p.is_file())
}
