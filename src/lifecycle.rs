//! Readiness, health status and draining (DESIGN.md section 6, "Lifecycle").
//!
//! States: starting (listeners up, health NOT_SERVING, `/readyz` 503, requests UNAVAILABLE)
//! → serving (after warm-up) → draining (after SIGTERM/SIGINT: health NOT_SERVING, `/readyz`
//! 503, new requests UNAVAILABLE, in-flight requests finish) → stopped.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::metrics::Metrics;
use crate::proto::SERVICE_NAME;

pub struct Lifecycle {
    ready: AtomicBool,
    draining: AtomicBool,
    inflight: AtomicUsize,
    idle: Notify,
    health: HealthReporter,
    metrics: Arc<Metrics>,
}

/// Why a request is refused outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Starting,
    Draining,
}

impl Lifecycle {
    /// Starts NOT_SERVING.
    pub async fn new(health: HealthReporter, metrics: Arc<Metrics>) -> Arc<Self> {
        let this = Arc::new(Self {
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            inflight: AtomicUsize::new(0),
            idle: Notify::new(),
            health,
            metrics,
        });
        this.set_health(ServingStatus::NotServing).await;
        this
    }

    async fn set_health(&self, status: ServingStatus) {
        self.health.set_service_status("", status).await;
        self.health.set_service_status(SERVICE_NAME, status).await;
    }

    /// Warm-up done: accept work.
    pub async fn set_ready(&self) {
        if self.draining.load(Ordering::SeqCst) {
            return;
        }
        self.ready.store(true, Ordering::SeqCst);
        self.set_health(ServingStatus::Serving).await;
    }

    /// Stop accepting work (first step of shutdown).
    pub async fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.ready.store(false, Ordering::SeqCst);
        self.set_health(ServingStatus::NotServing).await;
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.draining.load(Ordering::SeqCst)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Registers a request; refused while starting or draining. The guard keeps it in flight.
    pub fn admit(self: &Arc<Self>) -> Result<InflightGuard, Refusal> {
        // Count first, then check, so that a drain that starts in between waits for us.
        self.inflight.fetch_add(1, Ordering::SeqCst);
        self.metrics.inflight.inc();
        let guard = InflightGuard { lifecycle: Arc::clone(self) };
        if self.draining.load(Ordering::SeqCst) {
            return Err(Refusal::Draining);
        }
        if !self.ready.load(Ordering::SeqCst) {
            return Err(Refusal::Starting);
        }
        Ok(guard)
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::SeqCst)
    }

    /// Waits until no request is in flight or `timeout` passes; true when drained.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.idle.notified();
                if self.inflight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

/// Marks one request in flight until dropped.
pub struct InflightGuard {
    lifecycle: Arc<Lifecycle>,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.lifecycle.metrics.inflight.dec();
        if self.lifecycle.inflight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.lifecycle.idle.notify_waiters();
        }
    }
}

/// Installs the SIGTERM and SIGINT (Ctrl-C) handlers now and returns a future that resolves
/// on the first of them. Installing them eagerly, at the start of `serve`, matters: until a
/// handler exists the default action kills the process, so a SIGTERM that arrives while models
/// load or warm up would otherwise end it abruptly. A signal that arrives before the future is
/// polled is kept and seen at the first poll.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for {name}");
                None
            }
        };
        let (mut int, mut term) = (listen(SignalKind::interrupt(), "SIGINT"), listen(SignalKind::terminate(), "SIGTERM"));
        async move {
            tokio::select! {
                _ = recv(int.as_mut()) => tracing::info!("SIGINT received"),
                _ = recv(term.as_mut()) => tracing::info!("SIGTERM received"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received");
    }
}

/// The next delivery of `signal`, or never when it could not be installed.
#[cfg(unix)]
async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
