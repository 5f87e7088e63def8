//! `jettag serve`: loads the model repository, starts gRPC and HTTP, warms up, serves until
//! SIGTERM/SIGINT, then drains.
//!
//! gRPC is served by hyper through axum (tonic's `Routes`) rather than tonic's own server:
//! tonic's server wraps every call in a timer that answers `CANCELLED` when `grpc-timeout`
//! expires, while the contract here is `DEADLINE_EXCEEDED` with the jets not computed, which
//! the handlers and the batcher implement themselves.
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use thiserror::Error;
use tokio::net::TcpListener;

use crate::batcher::BatcherConfig;
use crate::config::{ConfigError, ServeArgs, ServeConfig};
use crate::grpc::{AppState, JetTaggerService};
use crate::lifecycle::{shutdown_signal, Lifecycle};
use crate::metrics::Metrics;
use crate::models::{ModelSet, ServedModel};
use crate::preprocess::Preprocessor;
use crate::proto::v1::jet_tagger_server::JetTaggerServer;
use crate::repository::{self, RepositoryError};
use crate::runtime::{self, RuntimeError, SessionPool};

#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Setup(String),
}

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every in-flight request finished within the grace period.
    Drained,
    /// The grace period ended with requests still in flight.
    GraceExceeded { inflight: usize },
}

/// Resolves the configuration and runs the server on a new tokio runtime.
pub fn run(args: ServeArgs) -> Result<Outcome, ServeError> {
    let cfg = args.resolve()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("jettag-io")
        .build()
        .map_err(|e| ServeError::Setup(format!("tokio runtime: {e}")))?;
    rt.block_on(serve(cfg))
}

pub async fn serve(cfg: ServeConfig) -> Result<Outcome, ServeError> {
    // First of all (before the first log line, which tests wait for), so that a SIGTERM during
    // loading or warm-up is a graceful stop, seen once warm-up ends, instead of the default kill.
    let shutdown = shutdown_signal();
    tracing::info!(
        config = %serde_json::to_string(&cfg).unwrap_or_default(),
        "effective configuration"
    );
    let env = runtime::environment(cfg.ort_lib.as_deref())?;
    let specs = repository::scan(&cfg.models)?;
    let metrics = Arc::new(Metrics::new());
    let (health, health_service) = tonic_health::server::health_reporter();
    let lifecycle = Lifecycle::new(health, Arc::clone(&metrics)).await;

    let batcher_cfg = BatcherConfig {
        max_batch_jets: cfg.max_batch_jets,
        max_queue_delay: cfg.max_queue_delay,
        queue_capacity: cfg.queue_capacity,
    };
    let mut models = ModelSet::default();
    for spec in specs {
        let (env, device, instances, intra) = (env.clone(), cfg.device, cfg.instances, cfg.intra_threads);
        let (spec, pool) = tokio::task::spawn_blocking(move || {
            let pool = SessionPool::open(&env, &spec, device, instances, intra);
            (spec, pool)
        })
        .await
        .map_err(|e| ServeError::Setup(format!("loading a model panicked: {e}")))?;
        let pool = pool?;
        let m = &spec.manifest;
        tracing::info!(
            model = %m.name, version = m.version, task = m.task.as_str(), device = pool.device().as_str(),
            instances = pool.instances(), path = %spec.dir.display(), "model loaded"
        );
        metrics.register_model(&m.name, m.version, pool.device().as_str());
        models.insert(ServedModel::start(spec, Arc::new(pool), batcher_cfg, Arc::clone(&metrics)));
    }

    let preprocessor =
        Preprocessor::new(cfg.preprocess_threads).map_err(|e| ServeError::Setup(format!("preprocessing pool: {e}")))?;
    let state = Arc::new(AppState { models, preprocessor, metrics: Arc::clone(&metrics), lifecycle: Arc::clone(&lifecycle) });

    let grpc_listener = bind(cfg.grpc_addr()).await?;
    let http_listener = bind(cfg.http_addr()).await?;
    let grpc_addr = grpc_listener.local_addr().map_err(|e| ServeError::Setup(e.to_string()))?;
    let http_addr = http_listener.local_addr().map_err(|e| ServeError::Setup(e.to_string()))?;

    // Reflection in both protocol versions: grpcurl and current tools ask v1, older tools
    // (and some grpcurl builds) only v1alpha.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder().build_v1().map_err(|e| ServeError::Setup(format!("reflection: {e}")))?;
    let reflection_v1alpha =
        reflection_builder().build_v1alpha().map_err(|e| ServeError::Setup(format!("reflection: {e}")))?;
    let tagger = JetTaggerServer::new(JetTaggerService::new(Arc::clone(&state)))
        .max_decoding_message_size(cfg.max_message_bytes)
        .max_encoding_message_size(cfg.max_message_bytes);
    let grpc_app = tonic::service::Routes::new(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(tagger)
        .into_axum_router();
    let http_app = crate::http::router(Arc::clone(&metrics), Arc::clone(&lifecycle));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let nodelay = |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    };
    let mut grpc_task = tokio::spawn(
        axum::serve(grpc_listener.tap_io(nodelay), grpc_app)
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
    );
    let mut http_task = tokio::spawn(
        axum::serve(http_listener.tap_io(nodelay), http_app)
            .with_graceful_shutdown(stopped(stop_rx))
            .into_future(),
    );
    tracing::info!("listening grpc={grpc_addr} http={http_addr}");

    for model in state.models.all() {
        let pool = Arc::clone(&model.pool);
        tokio::task::spawn_blocking(move || pool.warm_up())
            .await
            .map_err(|e| ServeError::Setup(format!("warm-up panicked: {e}")))??;
    }
    lifecycle.set_ready().await;
    tracing::info!("ready: warm-up done, health SERVING");

    tokio::select! {
        _ = shutdown => {}
        r = &mut grpc_task => return Err(ServeError::Setup(format!("gRPC server stopped: {r:?}"))),
        r = &mut http_task => return Err(ServeError::Setup(format!("HTTP server stopped: {r:?}"))),
    }
    lifecycle.start_draining().await;
    tracing::info!(
        inflight = lifecycle.inflight(),
        grace_period = %crate::duration::format_duration(cfg.grace_period),
        "draining: health NOT_SERVING, new requests refused"
    );
    let drained = lifecycle.wait_idle(cfg.grace_period).await;
    let outcome = if drained { Outcome::Drained } else { Outcome::GraceExceeded { inflight: lifecycle.inflight() } };
    for model in state.models.all() {
        match outcome {
            Outcome::Drained => model.batcher.close(),
            // Past the grace period queued work is abandoned, not computed: its callers get
            // UNAVAILABLE now, before the connections close.
            Outcome::GraceExceeded { .. } => model.batcher.abort(),
        }
    }
    let _ = stop_tx.send(true);
    // Idle connections close at once; long-lived streams (health Watch) are cut after a moment.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = (&mut grpc_task).await;
        let _ = (&mut http_task).await;
    })
    .await;
    match outcome {
        Outcome::Drained => tracing::info!("drained; exiting"),
        Outcome::GraceExceeded { inflight } => {
            tracing::warn!(inflight, "grace period over with requests in flight; exiting anyway")
        }
    }
    Ok(outcome)
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })
}
