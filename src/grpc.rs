//! The `jettag.v1.JetTagger` gRPC service.
//!
//! Each request: admitted by the lifecycle (UNAVAILABLE while starting or draining) → model
//! looked up (NOT_FOUND) → queue room checked (RESOURCE_EXHAUSTED, before any work) → jets
//! validated and tokenized on the preprocessing pool (INVALID_ARGUMENT naming field and jet)
//! → submitted to the model's batcher → reply awaited until the `grpc-timeout` deadline
//! (DEADLINE_EXCEEDED; the batcher then drops the jets before compute).
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesOrdered, Stream, StreamExt};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::batcher::{BatchError, Computed};
use crate::lifecycle::{Lifecycle, Refusal};
use crate::metrics::{code_name, Metrics};
use crate::models::{LookupError, ModelSet, ServedModel};
use crate::preprocess::Preprocessor;
use crate::proto::v1::jet_tagger_server::JetTagger;
use crate::proto::v1::{
    EmbedRequest, EmbedResponse, GetModelRequest, Jets, ListModelsRequest, ListModelsResponse, ModelInfo,
    Preprocessing, TagRequest, TagResponse,
};
use crate::repository::Task;

/// Everything a request handler needs.
pub struct AppState {
    pub models: ModelSet,
    pub preprocessor: Preprocessor,
    pub metrics: Arc<Metrics>,
    pub lifecycle: Arc<Lifecycle>,
}

/// Requests of one `TagStream` processed concurrently (responses still leave in order).
const STREAM_WINDOW: usize = 16;

#[derive(Clone)]
pub struct JetTaggerService {
    state: Arc<AppState>,
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Tag,
    Embed,
    TagStream,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Tag => "Tag",
            Method::Embed => "Embed",
            Method::TagStream => "TagStream",
        }
    }
}

/// The deadline a client set with the `grpc-timeout` header, if any.
pub fn deadline_of(metadata: &MetadataMap, received: Instant) -> Option<Instant> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    parse_grpc_timeout(value).map(|d| received + d)
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn batch_status(e: BatchError) -> Status {
    match e {
        BatchError::QueueFull { .. } => Status::resource_exhausted(e.to_string()),
        BatchError::TooLarge { .. } => Status::invalid_argument(e.to_string()),
        BatchError::DeadlineExceeded => Status::deadline_exceeded(e.to_string()),
        BatchError::Closed => Status::unavailable(e.to_string()),
        BatchError::Compute(_) => Status::internal(e.to_string()),
    }
}

impl JetTaggerService {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }

    fn lookup(&self, name: &str, version: u64) -> Result<Arc<ServedModel>, Status> {
        self.state.models.resolve(name, version).map_err(|e| match e {
            LookupError::NotFound(m) => Status::not_found(m),
            LookupError::Ambiguous(m) => Status::invalid_argument(m),
        })
    }

    /// Runs one request's jets through preprocessing and the batcher, recording metrics.
    async fn run(
        &self,
        method: Method,
        model: &str,
        version: u64,
        jets: Option<Jets>,
        deadline: Option<Instant>,
    ) -> Result<(Arc<ServedModel>, Computed), Status> {
        let start = Instant::now();
        let mut label = "unknown".to_string();
        let result = self.run_inner(method, model, version, jets, deadline, &mut label).await;
        let m = &self.state.metrics;
        let code = match &result {
            Ok(_) => "OK",
            Err(s) => code_name(s.code()),
        };
        m.requests.with_label_values(&[label.as_str(), method.as_str(), code]).inc();
        m.request_duration
            .with_label_values(&[label.as_str(), method.as_str()])
            .observe(start.elapsed().as_secs_f64());
        result
    }

    async fn run_inner(
        &self,
        method: Method,
        model: &str,
        version: u64,
        jets: Option<Jets>,
        deadline: Option<Instant>,
        label: &mut String,
    ) -> Result<(Arc<ServedModel>, Computed), Status> {
        let _guard = self.state.lifecycle.admit().map_err(|r| match r {
            Refusal::Starting => Status::unavailable("the server is warming up; retry shortly"),
            Refusal::Draining => Status::unavailable("the server is shutting down; retry on another replica"),
        })?;
        let served = self.lookup(model, version)?;
        *label = served.name().to_string();
        if matches!(method, Method::Tag | Method::TagStream) && served.spec.manifest.task != Task::Classifier {
            return Err(Status::invalid_argument(format!(
                "model: '{}' is an encoder without class probabilities; use Embed",
                served.name()
            )));
        }
        let jets = jets.ok_or_else(|| Status::invalid_argument("jets: missing"))?;
        let n = jets.counts.len();
        served.batcher.has_room(n).map_err(batch_status)?;
        let pre_start = Instant::now();
        let tokenized = self
            .state
            .preprocessor
            .run(jets, Arc::clone(&served.tokenizer))
            .await
            .map_err(|e| Status::invalid_argument(e.message))?;
        self.state
            .metrics
            .preprocess_duration
            .with_label_values(&[served.name()])
            .observe(pre_start.elapsed().as_secs_f64());
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(batch_status(BatchError::DeadlineExceeded));
        }
        let rx = served.batcher.submit(tokenized, deadline).map_err(batch_status)?;
        let outcome = match deadline {
            Some(d) => tokio::select! {
                r = rx => r,
                // Dropping `rx` tells the batcher nobody waits; it drops the jets uncomputed.
                _ = tokio::time::sleep_until(d.into()) => return Err(batch_status(BatchError::DeadlineExceeded)),
            },
            None => rx.await,
        };
        let computed = outcome
            .map_err(|_| Status::internal("the batch computing this request failed"))?
            .map_err(batch_status)?;
        Ok((served, computed))
    }

    async fn tag_one(&self, method: Method, req: TagRequest, deadline: Option<Instant>) -> Result<TagResponse, Status> {
        let (served, computed) = self.run(method, &req.model, req.version, req.jets, deadline).await?;
        let m = &served.spec.manifest;
        Ok(TagResponse {
            model: m.name.clone(),
            version: m.version,
            class_names: m.class_names.clone(),
            n_jets: computed.n_jets as u32,
            probs: computed.probs.unwrap_or_default(),
            request_id: req.request_id,
        })
    }

    fn model_info(&self, served: &ServedModel) -> ModelInfo {
        let m = &served.spec.manifest;
        let p = &m.preprocessing;
        ModelInfo {
            name: m.name.clone(),
            version: m.version,
            task: m.task.as_str().to_string(),
            class_names: m.class_names.clone(),
            embedding_dim: m.embedding_dim as u32,
            device: served.device.as_str().to_string(),
            description: m.description.clone(),
            preprocessing: Some(Preprocessing {
                feature_set: m.feature_set.clone(),
                k: p.k as u32,
                oversample: p.oversample,
                max_tokens: p.max_tokens as u32,
                max_particles: p.max_particles as u32,
                max_constituents: p.max_constituents as u32,
            }),
            metrics: m.metrics.clone().into_iter().collect(),
            ready: self.state.lifecycle.is_ready(),
            training: toml::to_string(&m.training).unwrap_or_default(),
        }
    }
}

type TagStreamOut = Pin<Box<dyn Stream<Item = Result<TagResponse, Status>> + Send>>;

#[tonic::async_trait]
impl JetTagger for JetTaggerService {
    async fn tag(&self, request: Request<TagRequest>) -> Result<Response<TagResponse>, Status> {
        let deadline = deadline_of(request.metadata(), Instant::now());
        self.tag_one(Method::Tag, request.into_inner(), deadline).await.map(Response::new)
    }

    async fn embed(&self, request: Request<EmbedRequest>) -> Result<Response<EmbedResponse>, Status> {
        let deadline = deadline_of(request.metadata(), Instant::now());
        let req = request.into_inner();
        let (served, computed) = self.run(Method::Embed, &req.model, req.version, req.jets, deadline).await?;
        let m = &served.spec.manifest;
        Ok(Response::new(EmbedResponse {
            model: m.name.clone(),
            version: m.version,
            embedding_dim: m.embedding_dim as u32,
            n_jets: computed.n_jets as u32,
            embedding: computed.embedding,
            request_id: req.request_id,
        }))
    }

    type TagStreamStream = TagStreamOut;

    async fn tag_stream(
        &self,
        request: Request<Streaming<TagRequest>>,
    ) -> Result<Response<Self::TagStreamStream>, Status> {
        let deadline = deadline_of(request.metadata(), Instant::now());
        let mut inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_WINDOW);
        let svc = self.clone();
        tokio::spawn(async move {
            let mut inflight = FuturesOrdered::new();
            let mut inbound_done = false;
            loop {
                tokio::select! {
                    msg = inbound.message(), if !inbound_done && inflight.len() < STREAM_WINDOW => match msg {
                        Ok(Some(req)) => {
                            let svc = svc.clone();
                            inflight.push_back(async move { svc.tag_one(Method::TagStream, req, deadline).await });
                        }
                        Ok(None) => inbound_done = true,
                        Err(status) => {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                    },
                    Some(result) = inflight.next(), if !inflight.is_empty() => {
                        let failed = result.is_err();
                        if tx.send(result).await.is_err() || failed {
                            return;
                        }
                    },
                    else => return,
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn list_models(&self, _request: Request<ListModelsRequest>) -> Result<Response<ListModelsResponse>, Status> {
        let models = self.state.models.all().map(|m| self.model_info(m)).collect();
        Ok(Response::new(ListModelsResponse { models }))
    }

    async fn get_model(&self, request: Request<GetModelRequest>) -> Result<Response<ModelInfo>, Status> {
        let req = request.into_inner();
        let served = self.lookup(&req.name, req.version)?;
        Ok(Response::new(self.model_info(&served)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("250u"), Some(Duration::from_micros(250)));
        assert_eq!(parse_grpc_timeout("99999999n"), Some(Duration::from_nanos(99_999_999)));
        assert_eq!(parse_grpc_timeout("123456789S"), None, "more than 8 digits");
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
    }
}
