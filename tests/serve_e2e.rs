//! End-to-end tests of `jettag serve` (the real binary on loopback): results equal the offline
//! tagger's, come back in request order under concurrency, invalid input gets the right status
//! while the server keeps serving, and `/metrics` is valid and counts what was sent.
mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::*;
use jettag::proto::v1::{EmbedRequest, GetModelRequest, Jets, ListModelsRequest, TagRequest};
use jettag_core::Jet;
use tonic::Code;

fn tag_request(model: &str, jets: &[&Jet]) -> TagRequest {
    TagRequest { model: model.into(), version: 0, jets: Some(columnar(jets)), request_id: String::new() }
}

/// Offline results for the fixture, the reference the server must reproduce.
fn offline_rows() -> Vec<TagRow> {
    offline_tag(&toptag_fixture(), &models_dir().join("tiny-top"), &["--embedding"]).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_and_embed_equal_offline_tagging() {
    let jets = fixture_jets();
    let rows = offline_rows();
    let server = Server::start(&[]);
    let mut client = server.client().await;
    let all: Vec<&Jet> = jets.iter().collect();

    let resp = client.tag(tag_request("tiny-top", &all)).await.expect("Tag").into_inner();
    assert_eq!(resp.model, "tiny-top");
    assert_eq!(resp.version, 1);
    assert_eq!(resp.class_names, ["QCD", "Top"]);
    assert_eq!(resp.n_jets as usize, jets.len());
    assert_eq!(resp.probs.len(), 2 * jets.len());
    for (i, row) in rows.iter().enumerate() {
        assert_close(&resp.probs[2 * i..2 * i + 2], &row.probs, 1e-5, &format!("Tag jet {i}"));
    }

    let resp = client
        .embed(EmbedRequest { model: "tiny-top".into(), version: 1, jets: Some(columnar(&all)), request_id: "e".into() })
        .await
        .expect("Embed")
        .into_inner();
    assert_eq!((resp.embedding_dim, resp.n_jets as usize, resp.request_id.as_str()), (16, jets.len(), "e"));
    for (i, row) in rows.iter().enumerate() {
        assert_close(&resp.embedding[16 * i..16 * i + 16], &row.embedding, 1e-5, &format!("Embed jet {i}"));
    }

    // One jet at a time gives the same numbers as the big request (batch composition and
    // padding do not matter).
    for i in [0, 7, jets.len() - 1] {
        let resp = client.tag(tag_request("tiny-top", &[&jets[i]])).await.unwrap().into_inner();
        assert_close(&resp.probs, &rows[i].probs, 1e-5, &format!("single jet {i}"));
    }

    // The encoder model embeds too.
    let resp = client
        .embed(EmbedRequest { model: "tiny-encoder".into(), version: 0, jets: Some(columnar(&all[..5])), request_id: String::new() })
        .await
        .unwrap()
        .into_inner();
    let (_, enc_rows) = offline_tag(&toptag_fixture(), &models_dir().join("tiny-encoder"), &["--limit", "5"]);
    for (i, row) in enc_rows.iter().enumerate() {
        assert_close(&resp.embedding[16 * i..16 * i + 16], &row.embedding, 1e-5, &format!("encoder jet {i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_get_their_own_jets_in_order() {
    let jets = Arc::new(fixture_jets());
    let rows = Arc::new(offline_rows());
    // Small batches and a short delay: requests are split across batches and merged with
    // other clients' jets.
    let server = Server::start(&["--max-batch-jets", "8", "--max-queue-delay", "3ms"]);
    let mut tasks = Vec::new();
    for client_id in 0..12u64 {
        let (jets, rows, uri) = (Arc::clone(&jets), Arc::clone(&rows), server.grpc_uri());
        tasks.push(tokio::spawn(async move {
            let mut client = jettag::proto::v1::jet_tagger_client::JetTaggerClient::connect(uri).await.unwrap();
            let mut rng = Lcg(client_id * 7919 + 1);
            for request in 0..6 {
                let n = 1 + rng.below(20);
                let picks: Vec<usize> = (0..n).map(|_| rng.below(jets.len())).collect();
                let chosen: Vec<&Jet> = picks.iter().map(|&i| &jets[i]).collect();
                let mut req = tag_request("tiny-top", &chosen);
                req.request_id = format!("{client_id}-{request}");
                let resp = client.tag(req).await.expect("Tag").into_inner();
                assert_eq!(resp.request_id, format!("{client_id}-{request}"));
                assert_eq!(resp.n_jets as usize, n);
                for (slot, &i) in picks.iter().enumerate() {
                    assert_close(
                        &resp.probs[2 * slot..2 * slot + 2],
                        &rows[i].probs,
                        1e-5,
                        &format!("client {client_id} request {request} slot {slot} (jet {i})"),
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    // Batches really were shared and split: more jets than batches, none above 8.
    let m = server.metrics();
    let batches = metric(&m, r#"jettag_batch_jets_count{model="tiny-top"}"#).unwrap();
    let jets_total = metric(&m, r#"jettag_jets_total{model="tiny-top"}"#).unwrap();
    assert!(jets_total > batches, "{jets_total} jets in {batches} batches");
    assert_eq!(metric(&m, r#"jettag_batch_jets_bucket{model="tiny-top",le="8"}"#), Some(batches));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_stream_answers_in_request_order() {
    let jets = fixture_jets();
    let rows = offline_rows();
    let server = Server::start(&["--max-batch-jets", "4"]);
    let mut client = server.client().await;
    let mut rng = Lcg(99);
    let mut requests = Vec::new();
    let mut expected = Vec::new();
    for r in 0..25 {
        let picks: Vec<usize> = (0..1 + rng.below(9)).map(|_| rng.below(jets.len())).collect();
        let chosen: Vec<&Jet> = picks.iter().map(|&i| &jets[i]).collect();
        let mut req = tag_request("", &chosen); // empty name is refused: two models are served
        req.model = "tiny-top".into();
        req.request_id = format!("r{r}");
        requests.push(req);
        expected.push(picks);
    }
    let stream = client.tag_stream(futures::stream::iter(requests)).await.expect("TagStream").into_inner();
    let responses: Vec<_> = futures::StreamExt::collect::<Vec<_>>(stream).await;
    assert_eq!(responses.len(), expected.len());
    for (r, (resp, picks)) in responses.into_iter().zip(&expected).enumerate() {
        let resp = resp.expect("stream message");
        assert_eq!(resp.request_id, format!("r{r}"));
        for (slot, &i) in picks.iter().enumerate() {
            assert_close(&resp.probs[2 * slot..2 * slot + 2], &rows[i].probs, 1e-5, &format!("stream {r} slot {slot}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_inputs_get_precise_errors_and_the_server_keeps_serving() {
    let jets = fixture_jets();
    let server = Server::start(&[]);
    let mut client = server.client().await;
    let good = tag_request("tiny-top", &[&jets[0], &jets[1]]);

    let with = |f: &dyn Fn(&mut Jets)| {
        let mut req = tag_request("tiny-top", &[&jets[0], &jets[1], &jets[2]]);
        f(req.jets.as_mut().unwrap());
        req
    };
    let n0 = jets[0].px.len();
    let n1 = jets[1].px.len();
    let huge = Jet {
        px: vec![1.0; 4097],
        py: vec![1.0; 4097],
        pz: vec![1.0; 4097],
        energy: vec![2.0; 4097],
        label: None,
    };
    let cases: Vec<(&str, TagRequest, Code, Vec<&str>)> = vec![
        (
            "px shorter than counts",
            with(&|j| j.px.truncate(n0 + n1 - 1)),
            Code::InvalidArgument,
            vec!["jets.px", "jet 1"],
        ),
        ("energy longer than counts", with(&|j| j.energy.push(5.0)), Code::InvalidArgument, vec!["jets.energy", "jet 2"]),
        ("NaN momentum", with(&|j| j.py[n0 + n1 + 3] = f32::NAN), Code::InvalidArgument, vec!["jet 2", "py"]),
        (
            "empty jet",
            {
                let mut r = tag_request("tiny-top", &[&jets[0], &jets[1]]);
                r.jets.as_mut().unwrap().counts.insert(1, 0);
                r
            },
            Code::InvalidArgument,
            vec!["jet 1", "jets.counts[1] = 0"],
        ),
        ("too many constituents", tag_request("tiny-top", &[&huge]), Code::InvalidArgument, vec!["jet 0", "4097", "4096"]),
        ("no jets", tag_request("tiny-top", &[]), Code::InvalidArgument, vec!["jets.counts is empty"]),
        ("unknown model", tag_request("nope", &[&jets[0]]), Code::NotFound, vec!["'nope'", "tiny-top"]),
        (
            "unknown version",
            {
                let mut r = tag_request("tiny-top", &[&jets[0]]);
                r.version = 9;
                r
            },
            Code::NotFound,
            vec!["version 9"],
        ),
        ("encoder asked for probabilities", tag_request("tiny-encoder", &[&jets[0]]), Code::InvalidArgument, vec!["Embed"]),
        ("no model name with two models", tag_request("", &[&jets[0]]), Code::InvalidArgument, vec!["several models"]),
    ];
    let n_cases = cases.len();
    for (what, req, code, needles) in cases {
        let status = client.tag(req).await.expect_err(what);
        assert_eq!(status.code(), code, "{what}: {status:?}");
        for needle in needles {
            assert!(status.message().contains(needle), "{what}: '{needle}' not in '{}'", status.message());
        }
        // Still serving.
        let ok = client.tag(good.clone()).await.expect("valid request after an invalid one").into_inner();
        assert_eq!(ok.n_jets, 2);
    }
    let m = server.metrics();
    let invalid = metric(&m, r#"jettag_requests_total{code="INVALID_ARGUMENT",method="Tag",model="tiny-top"}"#).unwrap();
    let not_found_unknown = metric(&m, r#"jettag_requests_total{code="NOT_FOUND",method="Tag",model="unknown"}"#).unwrap();
    assert_eq!(invalid, 6.0);
    assert_eq!(not_found_unknown, 2.0, "unknown model and version are labelled 'unknown'");
    assert_eq!(metric(&m, r#"jettag_requests_total{code="OK",method="Tag",model="tiny-top"}"#), Some(n_cases as f64));
    // Invalid requests were never computed: only the good ones' jets were.
    assert_eq!(metric(&m, r#"jettag_jets_total{model="tiny-top"}"#), Some(2.0 * n_cases as f64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_metadata_and_reflection() {
    let server = Server::start(&[]);
    let mut client = server.client().await;
    let list = client.list_models(ListModelsRequest {}).await.unwrap().into_inner();
    let names: Vec<(String, u64)> = list.models.iter().map(|m| (m.name.clone(), m.version)).collect();
    assert_eq!(names, [("tiny-encoder".to_string(), 1), ("tiny-top".to_string(), 1)]);
    let info = client.get_model(GetModelRequest { name: "tiny-top".into(), version: 0 }).await.unwrap().into_inner();
    assert_eq!(info.task, "classifier");
    assert_eq!(info.class_names, ["QCD", "Top"]);
    assert_eq!(info.embedding_dim, 16);
    assert_eq!(info.device, "cpu");
    assert!(info.ready);
    let p = info.preprocessing.unwrap();
    assert_eq!((p.feature_set.as_str(), p.k, p.max_tokens, p.max_constituents), ("part-kinematic-v1", 8, 32, 4096));
    assert!(info.training.contains("label_Tbqq"), "{}", info.training);
    let err = client.get_model(GetModelRequest { name: "tiny-top".into(), version: 3 }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Server reflection lists the services.
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let channel = tonic::transport::Endpoint::from_shared(server.grpc_uri()).unwrap().connect().await.unwrap();
    let mut reflection = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
    let mut stream = reflection.server_reflection_info(futures::stream::iter([req])).await.unwrap().into_inner();
    let msg = stream.message().await.unwrap().expect("one reflection response");
    let Some(MessageResponse::ListServicesResponse(services)) = msg.message_response else { panic!("{msg:?}") };
    let services: Vec<String> = services.service.into_iter().map(|s| s.name).collect();
    for want in ["jettag.v1.JetTagger", "grpc.health.v1.Health"] {
        assert!(services.iter().any(|s| s == want), "{want} not in {services:?}");
    }

    // The same through the older v1alpha protocol, which some tools still speak.
    {
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        let channel = tonic::transport::Endpoint::from_shared(server.grpc_uri()).unwrap().connect().await.unwrap();
        let mut reflection = ServerReflectionClient::new(channel);
        let req =
            ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
        let mut stream = reflection.server_reflection_info(futures::stream::iter([req])).await.unwrap().into_inner();
        let msg = stream.message().await.unwrap().expect("one v1alpha reflection response");
        let Some(MessageResponse::ListServicesResponse(services)) = msg.message_response else { panic!("{msg:?}") };
        assert!(services.service.iter().any(|s| s.name == "jettag.v1.JetTagger"), "{services:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_valid_and_count_requests() {
    let jets = fixture_jets();
    let server = Server::start(&[]);
    let mut client = server.client().await;
    let mut sent_jets = 0;
    let mut by_code: HashMap<&str, usize> = HashMap::new();
    for n in 1..=9 {
        let chosen: Vec<&Jet> = jets.iter().take(n).collect();
        client.tag(tag_request("tiny-top", &chosen)).await.unwrap();
        sent_jets += n;
        *by_code.entry("OK").or_default() += 1;
    }
    for _ in 0..3 {
        client.tag(tag_request("missing-model", &[&jets[0]])).await.unwrap_err();
    }
    client
        .embed(EmbedRequest { model: "tiny-top".into(), version: 0, jets: Some(columnar(&[&jets[3]])), request_id: String::new() })
        .await
        .unwrap();
    let text = server.metrics();
    assert_eq!(metric(&text, r#"jettag_requests_total{code="OK",method="Tag",model="tiny-top"}"#), Some(9.0));
    assert_eq!(metric(&text, r#"jettag_requests_total{code="OK",method="Embed",model="tiny-top"}"#), Some(1.0));
    assert_eq!(metric(&text, r#"jettag_requests_total{code="NOT_FOUND",method="Tag",model="unknown"}"#), Some(3.0));
    assert_eq!(metric(&text, r#"jettag_jets_total{model="tiny-top"}"#), Some(sent_jets as f64 + 1.0));
    assert_eq!(metric(&text, r#"jettag_batch_jets_sum{model="tiny-top"}"#), Some(sent_jets as f64 + 1.0));
    assert_eq!(metric(&text, r#"jettag_request_duration_seconds_count{method="Tag",model="tiny-top"}"#), Some(9.0));
    assert_eq!(metric(&text, r#"jettag_preprocess_duration_seconds_count{model="tiny-top"}"#), Some(10.0));
    assert!(metric(&text, r#"jettag_compute_duration_seconds_count{model="tiny-top"}"#).unwrap() >= 1.0);
    assert!(metric(&text, r#"jettag_queue_duration_seconds_count{model="tiny-top"}"#).unwrap() >= 10.0);
    assert_eq!(metric(&text, r#"jettag_queue_jets{model="tiny-top"}"#), Some(0.0));
    assert_eq!(metric(&text, "jettag_inflight_requests"), Some(0.0));
    assert_eq!(metric(&text, r#"jettag_model_info{device="cpu",model="tiny-top",version="1"}"#), Some(1.0));
    // Explicit buckets, as configured.
    assert!(text.contains(r#"jettag_request_duration_seconds_bucket{method="Tag",model="tiny-top",le="0.0005"}"#));

    match promtool() {
        Some(promtool) => {
            let mut child = std::process::Command::new(promtool)
                .args(["check", "metrics"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        None => eprintln!(
            "\n\n!!!!!!!! SKIPPING `promtool check metrics`: promtool is not installed. `make test` installs it \
             (apt-get install prometheus); install it to run this check. !!!!!!!!\n\n"
        ),
    }
}
