//! Tests of the load generator against a tiny in-test gRPC server whose answers and delays
//! are scripted per request (by `request_id`, which the generator sets to the request number).
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jettag_core::Jet;
use jettag_loadtest::proto::v1::jet_tagger_server::{JetTagger, JetTaggerServer};
use jettag_loadtest::proto::v1::*;
use jettag_loadtest::report::RunReport;
use jettag_loadtest::requests::RequestPool;
use jettag_loadtest::run::{run, saturated, Load, RunSpec};
use jettag_loadtest::schedule::Arrivals;
use jettag_loadtest::target::{GrpcTarget, Method};
use tokio::time::Instant;
use tonic::{Request, Response, Status};

/// How the fake server answers request number `seq`.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Answers after `delay`, one request at a time (a server with capacity 1/delay).
    Serial { delay: Duration },
    /// Never answers (a hung server).
    Hang,
    /// Answers at once: seq % 5 == 1 → RESOURCE_EXHAUSTED, seq % 5 == 3 → INVALID_ARGUMENT,
    /// seq % 7 == 6 (and not an error above) → OK with the wrong number of jets.
    Scripted,
}

struct Fake {
    behaviour: Behaviour,
    serial: tokio::sync::Mutex<()>,
    received: Arc<AtomicU64>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

#[tonic::async_trait]
impl JetTagger for Fake {
    async fn tag(&self, request: Request<TagRequest>) -> Result<Response<TagResponse>, Status> {
        self.received.fetch_add(1, Ordering::SeqCst);
        self.arrivals.lock().unwrap().push(Instant::now());
        let req = request.into_inner();
        let seq: u64 = req.request_id.parse().map_err(|_| Status::invalid_argument("request_id"))?;
        let mut n_jets = req.jets.map(|j| j.counts.len() as u32).unwrap_or(0);
        match self.behaviour {
            Behaviour::Serial { delay } => {
                let _one_at_a_time = self.serial.lock().await;
                tokio::time::sleep(delay).await;
            }
            Behaviour::Hang => std::future::pending::<()>().await,
            Behaviour::Scripted => match seq % 5 {
                1 => return Err(Status::resource_exhausted("queue full")),
                3 => return Err(Status::invalid_argument("jet 0: bad")),
                _ if seq % 7 == 6 => n_jets += 1,
                _ => {}
            },
        }
        Ok(Response::new(TagResponse { n_jets, request_id: req.request_id, ..Default::default() }))
    }

    async fn embed(&self, _: Request<EmbedRequest>) -> Result<Response<EmbedResponse>, Status> {
        Err(Status::unimplemented("embed"))
    }

    type TagStreamStream = tokio_stream::Empty<Result<TagResponse, Status>>;

    async fn tag_stream(
        &self,
        _: Request<tonic::Streaming<TagRequest>>,
    ) -> Result<Response<Self::TagStreamStream>, Status> {
        Err(Status::unimplemented("tag_stream"))
    }

    async fn list_models(&self, _: Request<ListModelsRequest>) -> Result<Response<ListModelsResponse>, Status> {
        Err(Status::unimplemented("list_models"))
    }

    async fn get_model(&self, _: Request<GetModelRequest>) -> Result<Response<ModelInfo>, Status> {
        Err(Status::unimplemented("get_model"))
    }
}

struct Server {
    addr: String,
    received: Arc<AtomicU64>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

/// Starts the fake server on a free loopback port.
async fn start(behaviour: Behaviour) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(AtomicU64::new(0));
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let fake = Fake {
        behaviour,
        serial: tokio::sync::Mutex::new(()),
        received: Arc::clone(&received),
        arrivals: Arc::clone(&arrivals),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(JetTaggerServer::new(fake))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Server { addr, received, arrivals }
}

async fn target(server: &Server, jets_per_request: usize, timeout: Duration) -> GrpcTarget {
    let jets: Vec<Jet> = (1..=10)
        .map(|i| Jet::new(vec![i as f32, 1.0], vec![1.0, i as f32], vec![0.0, 2.0], vec![20.0, 20.0]))
        .collect();
    let pool = Arc::new(RequestPool::build(&jets, jets_per_request, 100).unwrap());
    GrpcTarget::connect(&server.addr, 2, pool, "", Method::Tag, timeout).await.unwrap()
}

fn spec(load: Load, warmup_ms: u64, duration_ms: u64, drain_ms: u64) -> RunSpec {
    RunSpec {
        load,
        warmup: Duration::from_millis(warmup_ms),
        duration: Duration::from_millis(duration_ms),
        drain: Duration::from_millis(drain_ms),
        max_inflight: 10_000,
    }
}

fn constant(rate: f64) -> Load {
    Load::Open { rate, arrivals: Arrivals::Constant, seed: 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_its_rate_against_a_slow_server() {
    // Capacity 20 requests/s, offered 60/s for 1 s: a closed-loop client would send about 20;
    // the open-loop generator must send all 60 on schedule and see the queue as latency.
    let delay = Duration::from_millis(50);
    let server = start(Behaviour::Serial { delay }).await;
    let report = run(target(&server, 3, Duration::from_secs(10)).await, spec(constant(60.0), 0, 1000, 10_000))
        .await
        .unwrap();

    assert_eq!(report.sent, 60, "{report:?}");
    assert_eq!((report.ok, report.skipped, report.unfinished), (60, 0, 0), "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    // Sends did not wait for responses: all 60 reached the server within the window (plus
    // scheduling slack), although answering them takes 3 s.
    let arrivals = server.arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 60);
    let spread = arrivals[59] - arrivals[0];
    assert!(spread < Duration::from_millis(1300), "sends took {spread:?}: they waited for responses");
    // Latency grows with the queue: request i waits about (i + 1) · 50 ms − i / 60 s, so the
    // median is near 1 s and the slowest near 2 s, far above the 50 ms service time.
    let l = report.latency;
    assert_eq!(l.count, 60);
    assert!(l.p50_ms > 600.0 && l.p50_ms < 1600.0, "{l:?}");
    assert!(l.max_ms > 1500.0 && l.p99_ms > l.p50_ms, "{l:?}");
    assert!(l.min_ms >= 49.0, "{l:?}");
    // Only responses that arrived inside the 1 s window count: about 20.
    assert!(report.throughput_rps > 12.0 && report.throughput_rps < 24.0, "{report:?}");
    assert_eq!(report.throughput_jets_per_s, 3.0 * report.throughput_rps);
    assert_eq!(report.offered_jets_per_s, Some(180.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_waits_for_each_response() {
    // The same slow server in closed loop: one request at a time, so latency stays at the
    // service time and the send rate falls to the server's capacity.
    let delay = Duration::from_millis(50);
    let server = start(Behaviour::Serial { delay }).await;
    let report = run(target(&server, 1, Duration::from_secs(5)).await, spec(Load::Closed { concurrency: 1 }, 100, 600, 5000))
        .await
        .unwrap();
    // 0.6 s at 50 ms per request: at most 12 (13 with rounding at the window's edges).
    assert!(report.sent >= 5 && report.sent <= 13, "{report:?}");
    assert_eq!(report.ok, report.sent);
    // No queue builds up: every latency is one service time plus overhead, where open loop
    // against the same server reached seconds.
    assert!(report.latency.p50_ms >= 49.0 && report.latency.max_ms < 300.0, "{:?}", report.latency);
    assert_eq!(report.concurrency, Some(1));
}

/// Runs against a hung server and checks that the run ends on its own, shortly after the
/// window plus the drain limit, and sends nothing afterwards.
async fn assert_clean_stop(load: Load) -> RunReport {
    let server = start(Behaviour::Hang).await;
    let timeout = Duration::from_millis(300);
    let t0 = Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(10), async {
        run(target(&server, 1, timeout).await, spec(load, 200, 500, 300)).await.unwrap()
    })
    .await
    .expect("the run did not stop by itself");
    let took = t0.elapsed();
    // Window ends at 0.7 s; the last request times out 0.3 s later at most.
    assert!(took < Duration::from_millis(1600), "run took {took:?}");
    assert!(report.elapsed_s < 1.6, "{report:?}");
    let received = server.received.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(server.received.load(Ordering::SeqCst), received, "requests sent after the run ended");
    assert_eq!(report.ok, 0);
    // Every request ends at its deadline: the client's own timer gives DEADLINE_EXCEEDED,
    // tonic's server-side grpc-timeout handling answers CANCELLED; whichever fires first.
    let deadline: u64 = ["DEADLINE_EXCEEDED", "CANCELLED"].iter().filter_map(|c| report.errors.get(*c)).sum();
    assert_eq!(deadline, report.sent, "{report:?}");
    assert_eq!(report.errors.values().sum::<u64>(), report.sent, "{report:?}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_stops_at_duration() {
    let report = assert_clean_stop(constant(50.0)).await;
    // 50/s over the 0.5 s window, warm-up excluded.
    assert_eq!(report.sent, 25, "{report:?}");
    assert_eq!(report.unfinished, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_stops_at_duration() {
    // Four workers, each request times out after 0.3 s: sends at 0, 0.3 and 0.6 s, of which
    // the one at 0.3 s and the one at 0.6 s lie in the window [0.2, 0.7).
    let report = assert_clean_stop(Load::Closed { concurrency: 4 }).await;
    assert_eq!(report.sent, 8, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_cap_skips_instead_of_piling_up() {
    let server = start(Behaviour::Hang).await;
    let mut s = spec(constant(100.0), 0, 500, 200);
    s.max_inflight = 10;
    let report = run(target(&server, 1, Duration::from_millis(200)).await, s).await.unwrap();
    // At most 10 outstanding at any time, each for 0.2 s: at most 10 sends per 0.2 s.
    assert!(report.sent <= 30 && report.sent >= 10, "{report:?}");
    assert_eq!(report.sent + report.skipped, 50, "{report:?}");
    assert!(saturated(&report, 50.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_counted_by_status_code() {
    let server = start(Behaviour::Scripted).await;
    let target = target(&server, 2, Duration::from_secs(5)).await;
    for load in [Load::Closed { concurrency: 3 }, constant(400.0)] {
        let report = run(target.clone(), spec(load, 0, 300, 5000)).await.unwrap();
        // With no warm-up every request is in the window, and requests are numbered
        // 0..sent in both modes, so the expected counts follow from the script.
        let n = report.sent;
        assert!(n >= 20, "{report:?}");
        let count = |f: &dyn Fn(u64) -> bool| (0..n).filter(|&s| f(s)).count() as u64;
        let exhausted = count(&|s| s % 5 == 1);
        let invalid = count(&|s| s % 5 == 3);
        let bad = count(&|s| s % 5 != 1 && s % 5 != 3 && s % 7 == 6);
        assert_eq!(report.errors.get("RESOURCE_EXHAUSTED").copied().unwrap_or(0), exhausted, "{report:?}");
        assert_eq!(report.errors.get("INVALID_ARGUMENT").copied().unwrap_or(0), invalid, "{report:?}");
        assert_eq!(report.errors.get("BAD_RESPONSE").copied().unwrap_or(0), bad, "{report:?}");
        assert_eq!(report.errors.len(), 3, "{report:?}");
        assert_eq!(report.ok, n - exhausted - invalid - bad);
        assert_eq!(report.latency.count, report.ok);
        assert!(saturated(&report, 50.0), "40 % failures must stop a sweep");
    }
}
