//! `jettag-loadtest`: load generator (`run`), in-process baseline (`direct`), readiness wait
//! (`wait`) and a result comparison between two servers (`compare`). See the crate docs.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use jettag::config::Device;
use jettag_loadtest::direct::{DirectModel, DirectReport, DirectSpec};
use jettag_loadtest::proto::v1::TagRequest;
use jettag_loadtest::report::{runs_table, RunReport};
use jettag_loadtest::requests::{columnar, load_jets, RequestPool};
use jettag_loadtest::run::{run, saturated, Load, RunSpec};
use jettag_loadtest::schedule::Arrivals;
use jettag_loadtest::target::{code_name, connect, GrpcTarget, Method};
use serde_json::json;

#[derive(Parser)]
#[command(name = "jettag-loadtest", version, about = "Load generator and baselines for the jettag server")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replay jets from ROOT files to a server over gRPC, open or closed loop.
    Run(RunArgs),
    /// The in-process ONNX Runtime baseline (same session code as the server).
    Direct(DirectArgs),
    /// Wait until a server answers a one-jet Tag request.
    Wait(WaitArgs),
    /// Send the same jets to two servers and compare their probabilities.
    Compare(CompareArgs),
}

/// Where the jets come from.
#[derive(Args, Clone)]
struct DataArgs {
    /// ROOT files or glob patterns [default: $JETTAG_DATA/toptag/*_test.root, JETTAG_DATA
    /// defaulting to ../shared/data]
    #[arg(long, num_args = 1..)]
    data: Vec<String>,
    /// Jets read into memory (shared equally among the files); requests cycle through them.
    #[arg(long, default_value_t = 4096)]
    max_jets: usize,
}

impl DataArgs {
    fn patterns(&self) -> Vec<String> {
        if !self.data.is_empty() {
            return self.data.clone();
        }
        let root = std::env::var("JETTAG_DATA").unwrap_or_else(|_| "../shared/data".into());
        vec![format!("{root}/toptag/*_test.root")]
    }

    fn load(&self) -> Result<Vec<jettag_core::Jet>> {
        let patterns = self.patterns();
        let jets = load_jets(&patterns, self.max_jets).with_context(|| format!("reading {}", patterns.join(" ")))?;
        eprintln!("loaded {} jets from {}", jets.len(), patterns.join(" "));
        Ok(jets)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RateUnit {
    Requests,
    Jets,
}

/// A duration: a bare number of seconds ("10", "0.5") or with a unit ("500ms", "2s").
fn parse_secs(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(Duration::from_secs_f64(s)),
        Ok(_) => Err(format!("'{text}' is not a non-negative number of seconds")),
        Err(_) => jettag::duration::parse_duration(text),
    }
}

#[derive(Args)]
struct RunArgs {
    /// Server address (the only one contacted).
    #[arg(long, default_value = "http://127.0.0.1:8001")]
    addr: String,
    /// Model name ("" lets a single-model server choose).
    #[arg(long, default_value = "")]
    model: String,
    #[arg(long, value_enum, default_value_t = Method::Tag)]
    method: Method,
    /// Open loop (implied by --rate / --rates).
    #[arg(long, conflicts_with = "concurrency")]
    open_loop: bool,
    /// Open loop: arrival rate (see --rate-unit).
    #[arg(long, conflicts_with_all = ["rates", "concurrency"])]
    rate: Option<f64>,
    /// Open loop sweep: rates run in order; stops after the first run past --stop-p99-ms or
    /// with more than 1 % failures.
    #[arg(long, value_delimiter = ',', conflicts_with = "concurrency")]
    rates: Vec<f64>,
    /// Whether rates count requests or jets per second.
    #[arg(long, value_enum, default_value_t = RateUnit::Requests)]
    rate_unit: RateUnit,
    #[arg(long, value_enum, default_value_t = Arrivals::Poisson)]
    arrivals: Arrivals,
    /// Closed loop: requests in flight; a comma-separated list runs each in turn.
    #[arg(long, value_delimiter = ',')]
    concurrency: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    jets_per_request: usize,
    /// Measurement window per run (seconds, or with a unit).
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    duration: Duration,
    /// Unmeasured lead-in per run.
    #[arg(long, default_value = "2", value_parser = parse_secs)]
    warmup: Duration,
    /// Per-request deadline (sent as grpc-timeout, enforced by the client too).
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    timeout: Duration,
    /// HTTP/2 connections, used round-robin.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Open loop: most requests in flight; beyond it scheduled requests are skipped (counted).
    #[arg(long, default_value_t = 10_000)]
    max_inflight: usize,
    /// Sweep stop criterion: p99 latency in milliseconds.
    #[arg(long, default_value_t = 50.0)]
    stop_p99_ms: f64,
    /// Seed of the Poisson schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Name for this target in tables and JSON.
    #[arg(long, default_value = "server")]
    label: String,
    /// Also write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Args)]
struct DirectArgs {
    /// Model directory (a version directory, or a model directory: highest version).
    #[arg(long, default_value = "models/hepjepa-top")]
    model: PathBuf,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    batch: Vec<usize>,
    /// Measurement time per batch size and phase.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    duration: Duration,
    #[arg(long, default_value = "1", value_parser = parse_secs)]
    warmup: Duration,
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    device: Device,
    /// ONNX Runtime intra-op threads (0: its default, like the server).
    #[arg(long, default_value_t = 0)]
    intra_threads: usize,
    /// Tokenization threads (0: one per CPU, like the server).
    #[arg(long, default_value_t = 0)]
    preprocess_threads: usize,
    #[arg(long, env = "ORT_DYLIB_PATH")]
    ort_lib: Option<PathBuf>,
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Args)]
struct WaitArgs {
    #[arg(long, default_value = "http://127.0.0.1:8001")]
    addr: String,
    #[arg(long, default_value = "")]
    model: String,
    /// Give up after this long.
    #[arg(long, default_value = "120", value_parser = parse_secs)]
    timeout: Duration,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Args)]
struct CompareArgs {
    /// Exactly two server addresses.
    #[arg(long, num_args = 2, required = true)]
    addr: Vec<String>,
    #[arg(long, default_value = "")]
    model: String,
    #[arg(long, default_value_t = 64)]
    jets_per_request: usize,
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

fn write_json(path: &Option<PathBuf>, value: serde_json::Value) -> Result<()> {
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(&value)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn cmd_run(args: RunArgs) -> Result<()> {
    let mut rates: Vec<f64> = args.rates.clone();
    rates.extend(args.rate);
    if rates.is_empty() && args.concurrency.is_empty() {
        bail!("give --rate R or --rates R1,R2,... (open loop) or --concurrency C (closed loop)");
    }
    if args.open_loop && rates.is_empty() {
        bail!("--open-loop needs --rate or --rates");
    }
    let jets = args.data.load()?;
    let pool = Arc::new(RequestPool::build(&jets, args.jets_per_request, 4096)?);
    let target =
        GrpcTarget::connect(&args.addr, args.connections, pool, &args.model, args.method, args.timeout).await?;
    let loads: Vec<Load> = if rates.is_empty() {
        args.concurrency.iter().map(|&c| Load::Closed { concurrency: c }).collect()
    } else {
        let per_request = match args.rate_unit {
            RateUnit::Requests => 1.0,
            RateUnit::Jets => args.jets_per_request as f64,
        };
        rates.iter().map(|&r| Load::Open { rate: r / per_request, arrivals: args.arrivals, seed: args.seed }).collect()
    };
    let sweep = rates.len() > 1;
    let mut reports: Vec<RunReport> = Vec::new();
    for load in loads {
        let spec = RunSpec {
            load,
            warmup: args.warmup,
            duration: args.duration,
            drain: args.timeout,
            max_inflight: args.max_inflight,
        };
        let mut report = run(target.clone(), spec).await?;
        report.label = args.label.clone();
        report.addr = args.addr.clone();
        report.model = args.model.clone();
        report.method = format!("{:?}", args.method).to_lowercase();
        eprint!("{}", runs_table(std::slice::from_ref(&report)).lines().nth(1).map(|l| format!("{l}\n")).unwrap_or_default());
        let stop = sweep && saturated(&report, args.stop_p99_ms);
        reports.push(report);
        if stop {
            eprintln!("stopping the sweep: p99 above {} ms or more than 1 % failures", args.stop_p99_ms);
            break;
        }
    }
    print!("{}", runs_table(&reports));
    write_json(&args.json, json!({ "command": command_line(), "runs": reports }))
}

fn cmd_direct(args: DirectArgs) -> Result<()> {
    let jets = args.data.load()?;
    let mut model = DirectModel::open(DirectSpec {
        model: args.model.clone(),
        device: args.device,
        intra_threads: args.intra_threads,
        preprocess_threads: args.preprocess_threads,
        warmup: args.warmup,
        duration: args.duration,
        ort_lib: args.ort_lib.clone(),
    })?;
    let mut reports: Vec<DirectReport> = Vec::new();
    println!(
        "{:>6} {:>7}  {:>12} {:>9} {:>9}  {:>12} {:>9} {:>9}",
        "batch", "device", "infer jets/s", "p50 ms", "p99 ms", "+prep jets/s", "p50 ms", "p99 ms"
    );
    for &batch in &args.batch {
        let r = model.measure(&jets, batch)?;
        let (a, b) = (&r.inference_only, &r.with_preprocessing);
        println!(
            "{:>6} {:>7}  {:>12.1} {:>9.3} {:>9.3}  {:>12.1} {:>9.3} {:>9.3}",
            batch, r.device, a.jets_per_s, a.latency.p50_ms, a.latency.p99_ms, b.jets_per_s, b.latency.p50_ms, b.latency.p99_ms
        );
        reports.push(r);
    }
    write_json(&args.json, json!({ "command": command_line(), "runs": reports }))
}

async fn cmd_wait(args: WaitArgs) -> Result<()> {
    let mut data = args.data.clone();
    data.max_jets = 1;
    let jets = data.load()?;
    let start = Instant::now();
    let mut last = String::from("not tried");
    while start.elapsed() < args.timeout {
        match connect(&args.addr).await {
            Ok(mut client) => {
                let req = TagRequest { model: args.model.clone(), jets: Some(columnar(&jets)), ..Default::default() };
                match client.tag(req).await {
                    Ok(_) => {
                        eprintln!("{} is answering (after {:.1} s)", args.addr, start.elapsed().as_secs_f64());
                        return Ok(());
                    }
                    Err(s) => last = format!("{}: {}", code_name(s.code()), s.message()),
                }
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("{} did not answer within {:?}; last error: {last}", args.addr, args.timeout)
}

async fn cmd_compare(args: CompareArgs) -> Result<()> {
    let jets = args.data.load()?;
    let pool = RequestPool::build(&jets, args.jets_per_request, usize::MAX)?;
    let mut probs: Vec<Vec<f32>> = Vec::new();
    let mut classes: Vec<Vec<String>> = Vec::new();
    for addr in &args.addr {
        let mut client = connect(addr).await?;
        let mut all = Vec::new();
        for i in 0..pool.len() as u64 {
            let req = TagRequest { model: args.model.clone(), jets: Some(pool.get(i).clone()), ..Default::default() };
            let resp = client
                .tag(req)
                .await
                .map_err(|s| anyhow::anyhow!("{addr}: request {i}: {}: {}", code_name(s.code()), s.message()))?
                .into_inner();
            if classes.len() < probs.len() + 1 {
                classes.push(resp.class_names.clone());
            }
            all.extend(resp.probs);
        }
        probs.push(all);
    }
    if classes[0] != classes[1] {
        bail!("class names differ: {:?} vs {:?}", classes[0], classes[1]);
    }
    if probs[0].len() != probs[1].len() {
        bail!("probability counts differ: {} vs {}", probs[0].len(), probs[1].len());
    }
    let max_abs_diff = probs[0].iter().zip(&probs[1]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let n_jets = pool.len() * args.jets_per_request;
    // The spread of the probabilities shows that agreement is not trivial (a constant model).
    let (lo, hi) = probs[0].iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &p| (lo.min(p), hi.max(p)));
    println!("{n_jets} jets, classes {:?}: max |Δp| = {max_abs_diff:.3e} (probabilities span {lo:.4}..{hi:.4})", classes[0]);
    write_json(
        &args.json,
        json!({ "command": command_line(), "addrs": args.addr, "n_jets": n_jets, "class_names": classes[0], "max_abs_diff": max_abs_diff, "prob_min": lo, "prob_max": hi }),
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Run(a) => cmd_run(a).await,
        Cmd::Direct(a) => tokio::task::spawn_blocking(move || cmd_direct(a)).await?,
        Cmd::Wait(a) => cmd_wait(a).await,
        Cmd::Compare(a) => cmd_compare(a).await,
    }
}
