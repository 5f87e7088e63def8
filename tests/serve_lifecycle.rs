//! Lifecycle of `jettag serve`: health SERVING once warm; on SIGTERM health flips to
//! NOT_SERVING, /readyz to 503, new work is refused, in-flight work finishes, exit 0.
mod common;

use std::time::Duration;

use common::*;
use jettag::proto::v1::TagRequest;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn health(server: &Server) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(server.grpc_uri()).unwrap().connect().await.unwrap();
    HealthClient::new(channel)
}

async fn wait_for_metric(server: &Server, series: &str, value: f64) {
    for _ in 0..500 {
        if metric(&server.metrics(), series) == Some(value) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{series} never reached {value}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_exits_zero() {
    let jets = fixture_jets();
    let rows = offline_tag(&toptag_fixture(), &models_dir().join("tiny-top"), &["--limit", "2"]).1;
    // A queued request waits 3 s for its batch: it is in flight when SIGTERM arrives.
    let mut server = Server::start(&["--max-queue-delay", "3s", "--grace-period", "20s"]);

    let mut health_client = health(&server).await;
    for service in ["", "jettag.v1.JetTagger"] {
        let status = health_client
            .check(HealthCheckRequest { service: service.into() })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "service '{service}'");
    }
    let mut watch = health_client.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status(), ServingStatus::Serving);

    let mut client = server.client().await;
    let inflight = {
        let mut c = client.clone();
        let req = TagRequest {
            model: "tiny-top".into(),
            version: 0,
            jets: Some(columnar(&[&jets[0], &jets[1]])),
            request_id: "in-flight".into(),
        };
        tokio::spawn(async move { c.tag(req).await })
    };
    wait_for_metric(&server, "jettag_inflight_requests", 1.0).await;

    server.sigterm();
    // The health watch sees the flip.
    assert_eq!(watch.message().await.unwrap().unwrap().status(), ServingStatus::NotServing);
    // New connections still get answers while in-flight work drains.
    let mut fresh = health(&server).await;
    let status = fresh.check(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner().status();
    assert_eq!(status, ServingStatus::NotServing);
    assert_eq!(http_get(server.http, "/readyz").unwrap(), (503, "draining\n".to_string()));
    assert_eq!(http_get(server.http, "/healthz").unwrap().0, 200, "still alive");
    let refused = client
        .tag(TagRequest { model: "tiny-top".into(), version: 0, jets: Some(columnar(&[&jets[2]])), request_id: String::new() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("shutting down"), "{}", refused.message());

    // The in-flight request completes with the right numbers, then the process exits 0.
    let resp = inflight.await.unwrap().expect("in-flight request finishes during the drain").into_inner();
    assert_eq!(resp.request_id, "in-flight");
    for i in 0..2 {
        assert_close(&resp.probs[2 * i..2 * i + 2], &rows[i].probs, 1e-5, "drained request");
    }
    let status = server.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());
    assert!(server.log().contains("drained; exiting"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_period_bounds_the_drain() {
    let jets = fixture_jets();
    let mut server = Server::start(&["--max-queue-delay", "20s", "--grace-period", "300ms"]);
    let mut client = server.client().await;
    let stuck = tokio::spawn(async move {
        client
            .tag(TagRequest { model: "tiny-top".into(), version: 0, jets: Some(columnar(&[&jets[0]])), request_id: String::new() })
            .await
    });
    wait_for_metric(&server, "jettag_inflight_requests", 1.0).await;
    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "exit 1 when the grace period ends with work in flight");
    assert!(server.log().contains("grace period over"), "{}", server.log());
    // Queued work is failed (UNAVAILABLE) when the grace period ends, not computed: an error,
    // never a result that races the exit.
    assert!(stuck.await.unwrap().is_err(), "the abandoned request gets an error, not a result");
}

#[test]
fn sigterm_during_start_up_is_a_clean_exit() {
    use std::io::{BufRead, BufReader};
    use std::process::Command;
    // The server logs its effective configuration before it loads and warms up the models; a
    // SIGTERM sent right then must not kill it by the default action (no exit code) but end
    // it cleanly once start-up is done.
    let mut child = serve_command(&models_dir(), &[]).spawn().expect("starting jettag serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("effective configuration") {
            break;
        }
    }
    assert!(log.contains("effective configuration"), "{log}");
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    for line in lines {
        log.push_str(&line.unwrap());
        log.push('\n');
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "killed instead of a clean exit ({status:?}); log:\n{log}");
    assert!(log.contains("SIGTERM received") && log.contains("drained; exiting"), "{log}");
}
