//! One call to a server, its outcome reduced to what the statistics need: success or the
//! gRPC status code.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use crate::proto::v1::jet_tagger_client::JetTaggerClient;
use crate::proto::v1::{EmbedRequest, TagRequest};
use crate::requests::RequestPool;

/// Largest message either side may send (a 256-jet request is about 0.3 MB).
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Why a call did not succeed: a gRPC status code, or a reply that does not answer the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Status(Code),
    /// OK status, but the reply's shape does not match the request (wrong number of jets).
    BadResponse,
}

impl Failure {
    /// The label used in reports: the status code as the gRPC spec spells it.
    pub fn label(self) -> String {
        match self {
            Failure::Status(code) => code_name(code).to_string(),
            Failure::BadResponse => "BAD_RESPONSE".to_string(),
        }
    }
}

/// The canonical upper-case name of a status code (`RESOURCE_EXHAUSTED`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

pub type CallResult = Result<(), Failure>;

/// Something the runner can send numbered requests to. `call` must finish by itself (it
/// applies its own timeout), so a run can always stop.
pub trait Target: Clone + Send + Sync + 'static {
    fn call(&self, seq: u64) -> impl Future<Output = CallResult> + Send + 'static;
    /// Jets in every request (for jets/s).
    fn jets_per_request(&self) -> usize;
}

/// Which RPC a run exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Tag,
    Embed,
}

#[derive(Debug, Error)]
pub enum TargetError {
    #[error("invalid address {addr}: {reason}")]
    Address { addr: String, reason: String },
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
}

/// Opens one HTTP/2 connection to `addr` (and only there).
pub async fn connect(addr: &str) -> Result<JetTaggerClient<Channel>, TargetError> {
    let endpoint = Endpoint::from_shared(addr.to_string())
        .map_err(|e| TargetError::Address { addr: addr.into(), reason: e.to_string() })?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| TargetError::Connect { addr: addr.into(), reason: format!("{e} ({e:?})") })?;
    Ok(JetTaggerClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// A jettag (or compatible) server over gRPC.
#[derive(Clone)]
pub struct GrpcTarget {
    clients: Arc<Vec<JetTaggerClient<Channel>>>,
    pool: Arc<RequestPool>,
    model: String,
    method: Method,
    timeout: Duration,
}

impl GrpcTarget {
    /// `connections` HTTP/2 connections to `addr`; requests go round-robin over them.
    /// `timeout` is both the request's gRPC deadline and the client's own limit.
    pub async fn connect(
        addr: &str,
        connections: usize,
        pool: Arc<RequestPool>,
        model: &str,
        method: Method,
        timeout: Duration,
    ) -> Result<Self, TargetError> {
        let mut clients = Vec::with_capacity(connections.max(1));
        for _ in 0..connections.max(1) {
            clients.push(connect(addr).await?);
        }
        Ok(Self { clients: Arc::new(clients), pool, model: model.to_string(), method, timeout })
    }
}

impl Target for GrpcTarget {
    fn call(&self, seq: u64) -> impl Future<Output = CallResult> + Send + 'static {
        let mut client = self.clients[(seq % self.clients.len() as u64) as usize].clone();
        let jets = self.pool.get(seq).clone();
        let n_jets = jets.counts.len() as u32;
        let (model, method, timeout) = (self.model.clone(), self.method, self.timeout);
        let request_id = seq.to_string();
        async move {
            let call = async {
                let n = match method {
                    Method::Tag => {
                        let mut req = tonic::Request::new(TagRequest { model, version: 0, jets: Some(jets), request_id });
                        req.set_timeout(timeout);
                        client.tag(req).await.map(|r| r.into_inner().n_jets)
                    }
                    Method::Embed => {
                        let mut req =
                            tonic::Request::new(EmbedRequest { model, version: 0, jets: Some(jets), request_id });
                        req.set_timeout(timeout);
                        client.embed(req).await.map(|r| r.into_inner().n_jets)
                    }
                };
                match n {
                    Ok(n) if n == n_jets => Ok(()),
                    Ok(_) => Err(Failure::BadResponse),
                    Err(status) => Err(Failure::Status(status.code())),
                }
            };
            tokio::time::timeout(timeout, call).await.unwrap_or(Err(Failure::Status(Code::DeadlineExceeded)))
        }
    }

    fn jets_per_request(&self) -> usize {
        self.pool.jets_per_request()
    }
}
