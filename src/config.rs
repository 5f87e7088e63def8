//! Server configuration: flags, `JETTAG_*` environment variables and an optional TOML file.
//!
//! Precedence, highest first: command-line flag, environment variable (clap reads both into
//! [`ServeArgs`]), the `--config` file, built-in defaults. [`ServeConfig`] is the result; the
//! server logs it at start so an operator sees exactly what runs.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::duration::{parse_duration, serde_opt, serde_text};

/// Where ONNX Runtime executes a model (DESIGN.md section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// CUDA if its execution provider registers, else CPU (logged).
    #[default]
    Auto,
    /// CPU only.
    Cpu,
    /// CUDA or fail at start.
    Cuda,
}

/// `jettag serve` options. Every field is optional here so that the config file can fill what
/// flags and environment leave unset; defaults are applied in [`ServeArgs::resolve`]. The same
/// struct (minus `config`) is the schema of the TOML file, with the same names in snake_case.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of these options (snake_case keys); flags and JETTAG_* variables win.
    #[arg(long, env = "JETTAG_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Model repository: <name>/<version>/{model.onnx,model.toml} [default: models]
    #[arg(long, env = "JETTAG_MODELS")]
    pub models: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0]
    #[arg(long, env = "JETTAG_HOST")]
    pub host: Option<IpAddr>,
    /// gRPC port; 0 picks a free port (logged) [default: 8001]
    #[arg(long, env = "JETTAG_GRPC_PORT")]
    pub grpc_port: Option<u16>,
    /// HTTP port (/metrics, /healthz, /readyz); 0 picks a free port [default: 8000]
    #[arg(long, env = "JETTAG_HTTP_PORT")]
    pub http_port: Option<u16>,
    /// Execution device [default: auto]
    #[arg(long, env = "JETTAG_DEVICE", value_enum)]
    pub device: Option<Device>,
    /// ONNX Runtime sessions per model, each owned by its own worker thread [default: 1]
    #[arg(long, env = "JETTAG_INSTANCES")]
    pub instances: Option<usize>,
    /// ONNX Runtime intra-op threads per session; 0 lets ONNX Runtime choose [default: 0]
    #[arg(long, env = "JETTAG_INTRA_THREADS")]
    pub intra_threads: Option<usize>,
    /// Largest batch, in jets [default: 64]
    #[arg(long, env = "JETTAG_MAX_BATCH_JETS")]
    pub max_batch_jets: Option<usize>,
    /// A batch leaves when full or when its oldest jet has waited this long, e.g. "2ms"; with 0 it
    /// leaves as soon as a worker is free, and jets arriving meanwhile join the next one [default: 0]
    #[arg(long, env = "JETTAG_MAX_QUEUE_DELAY", value_parser = parse_duration)]
    #[serde(default, with = "serde_opt")]
    pub max_queue_delay: Option<Duration>,
    /// Queue capacity per model, in jets; beyond it requests get RESOURCE_EXHAUSTED [default: 4096]
    #[arg(long, env = "JETTAG_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// Time to finish in-flight requests after SIGTERM/SIGINT [default: 30s]
    #[arg(long, env = "JETTAG_GRACE_PERIOD", value_parser = parse_duration)]
    #[serde(default, with = "serde_opt")]
    pub grace_period: Option<Duration>,
    /// Threads that validate and tokenize jets; 0 means one per CPU [default: 0]
    #[arg(long, env = "JETTAG_PREPROCESS_THREADS")]
    pub preprocess_threads: Option<usize>,
    /// Largest gRPC message accepted or sent, in bytes [default: 67108864]
    #[arg(long, env = "JETTAG_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// ONNX Runtime shared library (libonnxruntime.so), loaded at start
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<PathBuf>,
}

/// The effective server configuration.
#[derive(Debug, Clone, Serialize)]
pub struct ServeConfig {
    pub models: PathBuf,
    pub host: IpAddr,
    pub grpc_port: u16,
    pub http_port: u16,
    pub device: Device,
    pub instances: usize,
    pub intra_threads: usize,
    pub max_batch_jets: usize,
    #[serde(with = "serde_text")]
    pub max_queue_delay: Duration,
    pub queue_capacity: usize,
    #[serde(with = "serde_text")]
    pub grace_period: Duration,
    pub preprocess_threads: usize,
    pub max_message_bytes: usize,
    pub ort_lib: Option<PathBuf>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            models: PathBuf::from("models"),
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            grpc_port: 8001,
            http_port: 8000,
            device: Device::Auto,
            instances: 1,
            intra_threads: 0,
            max_batch_jets: 64,
            // Measured (examples/bench_client.rs, tiny model, 2 cores): single-jet p50 0.4-0.6 ms
            // with 0 against 4 ms with 2 ms (timer granularity adds to the wait), and equal or
            // better throughput with 16 concurrent clients, because jets that arrive while the
            // worker computes are merged anyway.
            max_queue_delay: Duration::ZERO,
            queue_capacity: 4096,
            grace_period: Duration::from_secs(30),
            preprocess_threads: 0,
            max_message_bytes: 64 << 20,
            ort_lib: None,
        }
    }
}

impl ServeConfig {
    pub fn grpc_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.grpc_port)
    }
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.http_port)
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl ServeArgs {
    /// Reads the `--config` file (if any) and applies defaults.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => Self::read_file(path)?,
            None => ServeArgs::default(),
        };
        let d = ServeConfig::default();
        let cfg = ServeConfig {
            models: self.models.or(file.models).unwrap_or(d.models),
            host: self.host.or(file.host).unwrap_or(d.host),
            grpc_port: self.grpc_port.or(file.grpc_port).unwrap_or(d.grpc_port),
            http_port: self.http_port.or(file.http_port).unwrap_or(d.http_port),
            device: self.device.or(file.device).unwrap_or(d.device),
            instances: self.instances.or(file.instances).unwrap_or(d.instances),
            intra_threads: self.intra_threads.or(file.intra_threads).unwrap_or(d.intra_threads),
            max_batch_jets: self.max_batch_jets.or(file.max_batch_jets).unwrap_or(d.max_batch_jets),
            max_queue_delay: self.max_queue_delay.or(file.max_queue_delay).unwrap_or(d.max_queue_delay),
            queue_capacity: self.queue_capacity.or(file.queue_capacity).unwrap_or(d.queue_capacity),
            grace_period: self.grace_period.or(file.grace_period).unwrap_or(d.grace_period),
            preprocess_threads: self
                .preprocess_threads
                .or(file.preprocess_threads)
                .unwrap_or(d.preprocess_threads),
            max_message_bytes: self.max_message_bytes.or(file.max_message_bytes).unwrap_or(d.max_message_bytes),
            ort_lib: self.ort_lib.or(file.ort_lib),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn read_file(path: &Path) -> Result<ServeArgs, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File { path: path.to_path_buf(), reason: e.to_string() })?;
        toml::from_str(&text).map_err(|e| ConfigError::File { path: path.to_path_buf(), reason: e.to_string() })
    }
}

impl ServeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("instances", self.instances),
            ("max_batch_jets", self.max_batch_jets),
            ("queue_capacity", self.queue_capacity),
            ("max_message_bytes", self.max_message_bytes),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn defaults_match_the_design() {
        let cfg = ServeArgs::default().resolve().unwrap();
        assert_eq!(cfg.grpc_port, 8001);
        assert_eq!(cfg.http_port, 8000);
        assert_eq!(cfg.models, PathBuf::from("models"));
        assert_eq!(cfg.device, Device::Auto);
    }

    #[test]
    fn flags_beat_file_beats_defaults() {
        let dir = std::env::temp_dir().join(format!("jettag-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("serve.toml");
        std::fs::write(&file, "grpc_port = 9001\nhttp_port = 9000\nmax_queue_delay = \"7ms\"\ndevice = \"cpu\"\n")
            .unwrap();
        let cli = Cli::try_parse_from([
            "x",
            "--config",
            file.to_str().unwrap(),
            "--grpc-port",
            "7001",
            "--max-batch-jets",
            "16",
        ])
        .unwrap();
        let cfg = cli.serve.resolve().unwrap();
        assert_eq!(cfg.grpc_port, 7001, "flag wins over file");
        assert_eq!(cfg.http_port, 9000, "file wins over default");
        assert_eq!(cfg.max_queue_delay, Duration::from_millis(7));
        assert_eq!(cfg.device, Device::Cpu);
        assert_eq!(cfg.max_batch_jets, 16);
        assert_eq!(cfg.queue_capacity, 4096, "default");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = std::env::temp_dir().join(format!("jettag-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("serve.toml");
        std::fs::write(&file, "grpc_prot = 1\n").unwrap();
        let args = ServeArgs { config: Some(file), ..Default::default() };
        let err = args.resolve().unwrap_err().to_string();
        assert!(err.contains("grpc_prot"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn zero_batch_is_refused() {
        let args = ServeArgs { max_batch_jets: Some(0), ..Default::default() };
        assert!(args.resolve().unwrap_err().to_string().contains("max_batch_jets"));
    }
}
