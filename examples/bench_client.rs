//! A simple latency/throughput client for a running `jettag serve` (the load generator in
//! `loadtest/` is the full tool; this one needs nothing but the server).
//!
//! ```text
//! cargo run --release --example bench_client -- --server http://127.0.0.1:8001 \
//!     --file tests/fixtures/toptag_small.root --model hepjepa-top
//! ```
//!
//! Reports (1) latency of single-jet `Tag` requests sent one after another (closed loop, one
//! in flight) as p50/p90/p99, and (2) throughput with `--batch`-jet requests from
//! `--concurrency` concurrent clients.
use std::time::{Duration, Instant};

use jettag::proto::v1::jet_tagger_client::JetTaggerClient;
use jettag::proto::v1::{Jets, TagRequest};
use jettag_core::{Jet, JetReader, ReaderConfig};

struct Args {
    server: String,
    file: String,
    model: String,
    single: usize,
    batch: usize,
    concurrency: usize,
    seconds: f64,
}

fn parse_args() -> Args {
    let mut a = Args {
        server: "http://127.0.0.1:8001".into(),
        file: "tests/fixtures/toptag_small.root".into(),
        model: "hepjepa-top".into(),
        single: 2000,
        batch: 64,
        concurrency: 4,
        seconds: 10.0,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--server" => a.server = value,
            "--file" => a.file = value,
            "--model" => a.model = value,
            "--single" => a.single = value.parse().expect("--single N"),
            "--batch" => a.batch = value.parse().expect("--batch N"),
            "--concurrency" => a.concurrency = value.parse().expect("--concurrency N"),
            "--seconds" => a.seconds = value.parse().expect("--seconds S"),
            other => panic!("unknown option {other}"),
        }
    }
    a
}

fn columnar(jets: &[Jet]) -> Jets {
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

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let jets: Vec<Jet> = JetReader::open(&args.file, ReaderConfig::default())
        .expect("reading the jets file")
        .flat_map(|c| c.expect("chunk").jets)
        .collect();
    println!("{} jets from {}", jets.len(), args.file);
    let mut client = JetTaggerClient::connect(args.server.clone()).await.expect("connecting");

    // Warm-up.
    for j in jets.iter().take(50) {
        let req = TagRequest { model: args.model.clone(), jets: Some(columnar(std::slice::from_ref(j))), ..Default::default() };
        client.tag(req).await.expect("Tag");
    }

    // (1) Single-jet latency, one request in flight.
    let mut latencies = Vec::with_capacity(args.single);
    for i in 0..args.single {
        let j = &jets[i % jets.len()];
        let req = TagRequest { model: args.model.clone(), jets: Some(columnar(std::slice::from_ref(j))), ..Default::default() };
        let t0 = Instant::now();
        client.tag(req).await.expect("Tag");
        latencies.push(t0.elapsed());
    }
    latencies.sort();
    println!(
        "single jet, sequential: n={} p50={:.3} ms p90={:.3} ms p99={:.3} ms",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.9).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );

    // (2) Throughput with batch-sized requests from concurrent clients.
    let requests: Vec<Jets> = (0..jets.len().div_ceil(args.batch).max(1))
        .map(|r| {
            let chunk: Vec<Jet> = (0..args.batch).map(|i| jets[(r * args.batch + i) % jets.len()].clone()).collect();
            columnar(&chunk)
        })
        .collect();
    let stop = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.concurrency {
        let (mut client, requests, model, batch) = (client.clone(), requests.clone(), args.model.clone(), args.batch);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut r = c;
            while Instant::now() < stop {
                let req = TagRequest { model: model.clone(), jets: Some(requests[r % requests.len()].clone()), ..Default::default() };
                let t0 = Instant::now();
                let resp = client.tag(req).await.expect("Tag").into_inner();
                assert_eq!(resp.n_jets as usize, batch);
                lat.push(t0.elapsed());
                r += 1;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "batch {} x concurrency {}: {:.0} jets/s ({} requests in {:.1} s), request p50={:.2} ms p99={:.2} ms",
        args.batch,
        args.concurrency,
        (lat.len() * args.batch) as f64 / elapsed,
        lat.len(),
        elapsed,
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
    );
}
