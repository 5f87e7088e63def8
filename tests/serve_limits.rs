//! Overload behaviour of `jettag serve`: a full queue answers RESOURCE_EXHAUSTED at once; a
//! request whose deadline passes while queued gets DEADLINE_EXCEEDED and is not computed.
mod common;

use std::time::Duration;

use common::*;
use jettag::proto::v1::jet_tagger_client::JetTaggerClient;
use jettag::proto::v1::TagRequest;
use jettag_core::Jet;
use tonic::Code;

fn tag_request(jets: &[&Jet]) -> TagRequest {
    TagRequest { model: "tiny-top".into(), version: 0, jets: Some(columnar(jets)), request_id: String::new() }
}

/// Polls `/metrics` until `series` has `value` (the server's own view of its queue).
async fn wait_for_metric(server: &Server, series: &str, value: f64) {
    for _ in 0..500 {
        if metric(&server.metrics(), series) == Some(value) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{series} never reached {value}:\n{}", server.metrics());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_is_refused_at_once() {
    let jets = fixture_jets();
    // Batches leave only when 64 jets wait or after 3 s, so queued jets stay queued.
    let server = Server::start(&["--queue-capacity", "4", "--max-batch-jets", "64", "--max-queue-delay", "3s"]);
    let mut client = server.client().await;
    let mut first = {
        let mut c = client.clone();
        let req = tag_request(&[&jets[0], &jets[1], &jets[2]]);
        tokio::spawn(async move { c.tag(req).await })
    };
    wait_for_metric(&server, r#"jettag_queue_jets{model="tiny-top"}"#, 3.0).await;

    // Two more jets do not fit next to the three queued ones.
    let status = client.tag(tag_request(&[&jets[3], &jets[4]])).await.expect_err("over capacity");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("queue full") && status.message().contains("capacity 4"), "{}", status.message());
    // Refused while the first request is still waiting: the refusal did not wait for room.
    assert!(futures::poll!(&mut first).is_pending(), "the first request finished before the refusal");
    // A request larger than the whole queue can never fit: the caller's error, not back-pressure.
    let five: Vec<&Jet> = jets.iter().take(5).collect();
    let status = client.tag(tag_request(&five)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("5 jets") && status.message().contains("queue capacity of 4"), "{}", status.message());
    // One jet still fits and is merged into the first request's batch.
    let one = client.tag(tag_request(&[&jets[5]])).await.expect("fits");
    assert_eq!(one.into_inner().n_jets, 1);
    let first = first.await.unwrap().expect("the queued request completes");
    assert_eq!(first.into_inner().n_jets, 3);

    let m = server.metrics();
    assert_eq!(metric(&m, r#"jettag_requests_total{code="RESOURCE_EXHAUSTED",method="Tag",model="tiny-top"}"#), Some(1.0));
    assert_eq!(metric(&m, r#"jettag_requests_total{code="INVALID_ARGUMENT",method="Tag",model="tiny-top"}"#), Some(1.0));
    assert_eq!(metric(&m, r#"jettag_jets_total{model="tiny-top"}"#), Some(4.0), "refused jets are not computed");
    assert_eq!(metric(&m, r#"jettag_batch_jets_count{model="tiny-top"}"#), Some(1.0), "one merged batch");
}

/// A gRPC client without tonic's client-side timer (which would report CANCELLED on its own
/// when the deadline passes), so the test sees the server's status.
async fn raw_client(server: &Server) -> JetTaggerClient<
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, tonic::body::Body>,
> {
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<tonic::body::Body>();
    JetTaggerClient::with_origin(http, server.grpc_uri().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_deadline_is_not_computed() {
    let jets = fixture_jets();
    let server = Server::start(&["--max-batch-jets", "64", "--max-queue-delay", "1500ms"]);
    let mut client = raw_client(&server).await;

    let mut req = tonic::Request::new(tag_request(&[&jets[0], &jets[1]]));
    req.set_timeout(Duration::from_millis(200)); // sends grpc-timeout: 200m
    let status = client.tag(req).await.expect_err("deadline shorter than the queue delay");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");

    // After the batch would have left, the jets were dropped, not computed.
    wait_for_metric(&server, r#"jettag_dropped_jets_total{model="tiny-top",reason="deadline"}"#, 2.0).await;
    let m = server.metrics();
    assert_eq!(metric(&m, r#"jettag_jets_total{model="tiny-top"}"#), Some(0.0), "expired jets were computed");
    assert_eq!(metric(&m, r#"jettag_batch_jets_count{model="tiny-top"}"#), Some(0.0));
    assert_eq!(metric(&m, r#"jettag_queue_jets{model="tiny-top"}"#), Some(0.0));
    assert_eq!(metric(&m, r#"jettag_requests_total{code="DEADLINE_EXCEEDED",method="Tag",model="tiny-top"}"#), Some(1.0));

    // A deadline long enough is met, and only its jet is computed.
    let mut req = tonic::Request::new(tag_request(&[&jets[2]]));
    req.set_timeout(Duration::from_secs(20));
    let resp = client.tag(req).await.expect("generous deadline").into_inner();
    assert_eq!(resp.n_jets, 1);
    assert_eq!(metric(&server.metrics(), r#"jettag_jets_total{model="tiny-top"}"#), Some(1.0));
}
