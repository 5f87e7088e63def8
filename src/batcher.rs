//! The per-model micro-batcher (DESIGN.md section 6).
//!
//! Request handlers [`Batcher::submit`] tokenized jets and await a oneshot reply. One batching
//! task per model owns the queue's order: it waits until the queue holds `max_batch_jets` jets
//! or its oldest jet has waited `max_queue_delay`, then until a worker is free, and only then
//! cuts a batch, so jets that arrive while every worker is busy join the next batch. Requests
//! larger than a batch are split across batches, small ones merged; each reply is sent when
//! the last part of its request is computed. Work whose caller went away (its receiver is
//! dropped, e.g. the client cancelled or the handler's deadline fired) or whose deadline has
//! passed is dropped when the batch is cut, before compute. A full queue refuses at once.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jettag_core::{collate, TokenizedJet};
use thiserror::Error;
use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;
use crate::runtime::{Outputs, SessionPool};

/// Batching parameters of one model.
#[derive(Debug, Clone, Copy)]
pub struct BatcherConfig {
    pub max_batch_jets: usize,
    pub max_queue_delay: Duration,
    /// Jets the queue may hold (queued, not yet cut into a batch).
    pub queue_capacity: usize,
}

/// Why a submission got no result.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum BatchError {
    #[error("queue full: {queued} jets queued, capacity {capacity}, this request needs {requested}")]
    QueueFull { requested: usize, queued: usize, capacity: usize },
    /// More jets than the whole queue holds: no retry can succeed, so this is the caller's
    /// error (INVALID_ARGUMENT), not back-pressure (RESOURCE_EXHAUSTED).
    #[error("jets: {requested} jets in one request, more than the server's queue capacity of {capacity}; split the request")]
    TooLarge { requested: usize, capacity: usize },
    #[error("the request's deadline passed before its jets were computed")]
    DeadlineExceeded,
    #[error("the model is shutting down")]
    Closed,
    #[error("inference failed: {0}")]
    Compute(String),
}

/// The outputs for one request's jets, row-major, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    pub n_jets: usize,
    /// `[n_jets, n_classes]` (classifier models).
    pub probs: Option<Vec<f32>>,
    /// `[n_jets, embedding_dim]`
    pub embedding: Vec<f32>,
}

type Reply = oneshot::Sender<Result<Computed, BatchError>>;

/// One submitted request, shared by the queue and the batches that compute its parts.
struct Pending {
    jets: Vec<TokenizedJet>,
    deadline: Option<Instant>,
    reply: Mutex<Option<Reply>>,
    out: Mutex<Computed>,
    /// Jets not yet computed.
    remaining: AtomicUsize,
}

impl Pending {
    /// Whether the work should be dropped now, and why.
    fn dead(&self, now: Instant) -> Option<&'static str> {
        if self.deadline.is_some_and(|d| now >= d) {
            return Some("deadline");
        }
        match self.reply.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(tx) if !tx.is_closed() => None,
            _ => Some("cancelled"),
        }
    }

    fn fail(&self, err: BatchError) {
        if let Some(tx) = self.reply.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(Err(err));
        }
    }

    /// Stores rows `[start, start + len)` of this request from batch rows `row..row + len`.
    fn fill(&self, start: usize, len: usize, outputs: &Outputs, row: usize, n_classes: usize, dim: usize) {
        let done = {
            let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
            if let (Some(dst), Some(src)) = (out.probs.as_mut(), outputs.probs.as_ref()) {
                dst[start * n_classes..(start + len) * n_classes]
                    .copy_from_slice(&src[row * n_classes..(row + len) * n_classes]);
            }
            out.embedding[start * dim..(start + len) * dim].copy_from_slice(&outputs.embedding[row * dim..(row + len) * dim]);
            self.remaining.fetch_sub(len, Ordering::AcqRel) == len
        };
        if done {
            let result = std::mem::replace(
                &mut *self.out.lock().unwrap_or_else(|e| e.into_inner()),
                Computed { n_jets: 0, probs: None, embedding: Vec::new() },
            );
            if let Some(tx) = self.reply.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = tx.send(Ok(result));
            }
        }
    }
}

struct Entry {
    pending: Arc<Pending>,
    /// First jet of `pending` not yet cut into a batch.
    next: usize,
    enqueued: Instant,
}

impl Entry {
    fn left(&self) -> usize {
        self.pending.jets.len() - self.next
    }
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Entry>,
    jets: usize,
    closed: bool,
}

/// A part of a request inside one batch.
struct Segment {
    pending: Arc<Pending>,
    start: usize,
    len: usize,
}

struct Shared {
    model: String,
    cfg: BatcherConfig,
    k: usize,
    n_classes: Option<usize>,
    embedding_dim: usize,
    queue: Mutex<Queue>,
    notify: Notify,
    metrics: Arc<Metrics>,
}

/// Handle to one model's queue; cloning is cheap.
#[derive(Clone)]
pub struct Batcher {
    shared: Arc<Shared>,
}

impl Batcher {
    /// Starts the batching task on the current tokio runtime.
    pub fn start(
        model: &str,
        cfg: BatcherConfig,
        k: usize,
        n_classes: Option<usize>,
        embedding_dim: usize,
        pool: Arc<SessionPool>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let shared = Arc::new(Shared {
            model: model.to_string(),
            cfg,
            k,
            n_classes,
            embedding_dim,
            queue: Mutex::new(Queue::default()),
            notify: Notify::new(),
            metrics,
        });
        let workers = Arc::new(Semaphore::new(pool.instances()));
        tokio::spawn(batching_loop(Arc::clone(&shared), pool, workers));
        Self { shared }
    }

    /// Whether `n` more jets fit now (a cheap check before preprocessing).
    pub fn has_room(&self, n: usize) -> Result<(), BatchError> {
        let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        self.room_after_purge(&mut q, n)
    }

    /// [`Self::room`], but when the queue looks full, first drops the work nobody waits for
    /// any more (caller gone, deadline passed), which otherwise holds its place until a worker
    /// frees up, so that live callers are not refused because of dead jets.
    fn room_after_purge(&self, q: &mut Queue, n: usize) -> Result<(), BatchError> {
        match self.room(q, n) {
            Err(BatchError::QueueFull { .. }) if purge_dead(&self.shared, q, Instant::now()) > 0 => self.room(q, n),
            checked => checked,
        }
    }

    fn room(&self, q: &Queue, n: usize) -> Result<(), BatchError> {
        if q.closed {
            return Err(BatchError::Closed);
        }
        let capacity = self.shared.cfg.queue_capacity;
        if n > capacity {
            return Err(BatchError::TooLarge { requested: n, capacity });
        }
        if q.jets + n > capacity {
            return Err(BatchError::QueueFull { requested: n, queued: q.jets, capacity });
        }
        Ok(())
    }

    /// Queues a request's jets; the receiver yields their outputs in order. Refuses at once
    /// when they do not fit.
    pub fn submit(
        &self,
        jets: Vec<TokenizedJet>,
        deadline: Option<Instant>,
    ) -> Result<oneshot::Receiver<Result<Computed, BatchError>>, BatchError> {
        let n = jets.len();
        let (tx, rx) = oneshot::channel();
        if n == 0 {
            let _ = tx.send(Ok(Computed {
                n_jets: 0,
                probs: self.shared.n_classes.map(|_| Vec::new()),
                embedding: Vec::new(),
            }));
            return Ok(rx);
        }
        let out = Computed {
            n_jets: n,
            probs: self.shared.n_classes.map(|c| vec![0.0; n * c]),
            embedding: vec![0.0; n * self.shared.embedding_dim],
        };
        let pending = Arc::new(Pending {
            jets,
            deadline,
            reply: Mutex::new(Some(tx)),
            out: Mutex::new(out),
            remaining: AtomicUsize::new(n),
        });
        {
            let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            self.room_after_purge(&mut q, n)?;
            q.jets += n;
            q.entries.push_back(Entry { pending, next: 0, enqueued: Instant::now() });
        }
        self.shared.metrics.queue_jets.with_label_values(&[&self.shared.model]).add(n as i64);
        self.shared.notify.notify_one();
        Ok(rx)
    }

    /// Jets waiting now.
    pub fn queued_jets(&self) -> usize {
        self.shared.queue.lock().unwrap_or_else(|e| e.into_inner()).jets
    }

    /// Refuses new work; queued work is still computed, then the batching task ends.
    pub fn close(&self) {
        self.shared.queue.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.shared.notify.notify_one();
    }

    /// Like [`Self::close`], but queued jets are failed with [`BatchError::Closed`] instead of
    /// computed: what shutdown does once the grace period is over, so that abandoned callers
    /// get a definite error rather than a result that races the process exit.
    pub fn abort(&self) {
        fail_queued(&self.shared, BatchError::Closed);
    }
}

async fn batching_loop(shared: Arc<Shared>, pool: Arc<SessionPool>, workers: Arc<Semaphore>) {
    loop {
        // 1. Wait for work.
        loop {
            let notified = shared.notify.notified();
            {
                let q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
                if !q.entries.is_empty() {
                    break;
                }
                if q.closed {
                    return;
                }
            }
            notified.await;
        }
        // 2. Wait until the batch is full or its oldest jet has waited long enough.
        loop {
            let notified = shared.notify.notified();
            let flush_at = {
                let q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
                match q.entries.front() {
                    None => break,
                    Some(_) if q.jets >= shared.cfg.max_batch_jets || q.closed => break,
                    Some(front) => front.enqueued + shared.cfg.max_queue_delay,
                }
            };
            if Instant::now() >= flush_at {
                break;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(flush_at.into()) => break,
            }
        }
        // 3. Wait for a free worker; jets arriving meanwhile join this batch.
        let Ok(permit) = Arc::clone(&workers).acquire_owned().await else { return };
        // 4. Cut the batch.
        let segments = cut_batch(&shared);
        if segments.is_empty() {
            continue;
        }
        let job_shared = Arc::clone(&shared);
        let job = Box::new(move |session: &mut dyn crate::runtime::Infer| {
            compute(&job_shared, session, segments, permit);
        });
        if pool.submit(job).is_err() {
            // The job (and the segments it owned) was dropped with the error; its callers see
            // their reply channel close. Fail everything still queued and refuse new work, so
            // no caller waits for an answer that cannot come.
            tracing::error!(model = %shared.model, "worker pool stopped; failing queued work");
            fail_queued(&shared, BatchError::Compute("the model's worker pool stopped".into()));
            return;
        }
    }
}

/// Closes the queue and fails every entry still in it with `error`: nothing queued is computed
/// any more and new work is refused.
fn fail_queued(shared: &Shared, error: BatchError) {
    let mut q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
    q.closed = true;
    let n = q.jets;
    for entry in q.entries.drain(..) {
        entry.pending.fail(error.clone());
    }
    q.jets = 0;
    shared.metrics.queue_jets.with_label_values(&[&shared.model]).sub(n as i64);
    shared.notify.notify_one();
}

/// Removes every queued entry whose caller left or whose deadline passed (anywhere in the
/// queue, not only at its front), failing the expired ones with `DeadlineExceeded` and counting
/// them in `jettag_dropped_jets_total`. Returns the jets removed.
fn purge_dead(shared: &Shared, q: &mut Queue, now: Instant) -> usize {
    let mut removed = 0;
    q.entries.retain(|entry| match entry.pending.dead(now) {
        None => true,
        Some(reason) => {
            let left = entry.left();
            shared.metrics.dropped_jets.with_label_values(&[shared.model.as_str(), reason]).inc_by(left as u64);
            if reason == "deadline" {
                entry.pending.fail(BatchError::DeadlineExceeded);
            }
            removed += left;
            false
        }
    });
    q.jets -= removed;
    shared.metrics.queue_jets.with_label_values(&[&shared.model]).sub(removed as i64);
    removed
}

/// Takes up to `max_batch_jets` jets from the front of the queue, dropping dead work.
fn cut_batch(shared: &Shared) -> Vec<Segment> {
    let now = Instant::now();
    let metrics = &shared.metrics;
    let mut segments = Vec::new();
    let mut taken = 0;
    let mut removed = 0;
    {
        let mut q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        while taken < shared.cfg.max_batch_jets {
            let Some(front) = q.entries.front_mut() else { break };
            if let Some(reason) = front.pending.dead(now) {
                let left = front.left();
                metrics.dropped_jets.with_label_values(&[shared.model.as_str(), reason]).inc_by(left as u64);
                if reason == "deadline" {
                    front.pending.fail(BatchError::DeadlineExceeded);
                }
                removed += left;
                q.entries.pop_front();
                continue;
            }
            let len = front.left().min(shared.cfg.max_batch_jets - taken);
            metrics
                .queue_duration
                .with_label_values(&[&shared.model])
                .observe(now.duration_since(front.enqueued).as_secs_f64());
            segments.push(Segment { pending: Arc::clone(&front.pending), start: front.next, len });
            front.next += len;
            taken += len;
            removed += len;
            if front.left() == 0 {
                q.entries.pop_front();
            }
        }
        q.jets -= removed;
    }
    metrics.queue_jets.with_label_values(&[&shared.model]).sub(removed as i64);
    segments
}

/// Runs on a worker thread: collate, infer, hand each request its rows.
fn compute(
    shared: &Shared,
    session: &mut dyn crate::runtime::Infer,
    segments: Vec<Segment>,
    _permit: OwnedSemaphorePermit,
) {
    let start = Instant::now();
    let jets: Vec<&TokenizedJet> =
        segments.iter().flat_map(|s| s.pending.jets[s.start..s.start + s.len].iter()).collect();
    let batch = collate(&jets, shared.k);
    let result = session.infer(&batch);
    let model = shared.model.as_str();
    shared.metrics.compute_duration.with_label_values(&[model]).observe(start.elapsed().as_secs_f64());
    match result {
        Ok(outputs) => {
            shared.metrics.batch_jets.with_label_values(&[model]).observe(jets.len() as f64);
            shared.metrics.jets.with_label_values(&[model]).inc_by(jets.len() as u64);
            let mut row = 0;
            for s in &segments {
                s.pending.fill(s.start, s.len, &outputs, row, shared.n_classes.unwrap_or(0), shared.embedding_dim);
                row += s.len;
            }
        }
        Err(e) => {
            tracing::error!(model, error = %e, "batch failed");
            for s in &segments {
                s.pending.fail(BatchError::Compute(e.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Infer, ResolvedDevice, RuntimeError};
    use jettag_core::{Batch, N_FEATURES, N_PAIR};

    /// Stand-in model: jet `id` (stored in its centre) → probs [id, batch size], embedding [id].
    struct Echo {
        batches: Arc<Mutex<Vec<usize>>>,
    }

    impl Infer for Echo {
        fn infer(&mut self, batch: &Batch) -> Result<Outputs, RuntimeError> {
            self.batches.lock().unwrap().push(batch.b);
            let ids: Vec<f32> = (0..batch.b).map(|i| batch.centers[i * batch.t * 2]).collect();
            Ok(Outputs {
                b: batch.b,
                probs: Some(ids.iter().flat_map(|&id| [id, batch.b as f32]).collect()),
                embedding: ids,
            })
        }
        fn warm_up(&mut self) -> Result<(), RuntimeError> {
            Ok(())
        }
    }

    fn jet(id: usize) -> TokenizedJet {
        TokenizedJet {
            n_constituents: 1,
            features: vec![[0.0; N_FEATURES]],
            token_particles: vec![vec![0]],
            tokens: vec![0.0; N_FEATURES],
            centers: vec![[id as f32, 0.0]],
            pair: vec![0.0; N_PAIR],
        }
    }

    fn jets(ids: std::ops::Range<usize>) -> Vec<TokenizedJet> {
        ids.map(jet).collect()
    }

    fn start(max_batch_jets: usize, delay: Duration, capacity: usize) -> (Batcher, Arc<Mutex<Vec<usize>>>, Arc<Metrics>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let pool = SessionPool::start("echo", vec![Box::new(Echo { batches: Arc::clone(&batches) })], ResolvedDevice::Cpu);
        let metrics = Arc::new(Metrics::new());
        let cfg = BatcherConfig { max_batch_jets, max_queue_delay: delay, queue_capacity: capacity };
        (Batcher::start("echo", cfg, 1, Some(2), 1, Arc::new(pool), Arc::clone(&metrics)), batches, metrics)
    }

    #[tokio::test]
    async fn large_requests_are_split_and_reassembled_in_order() {
        let (b, batches, _) = start(4, Duration::from_millis(1), 100);
        let out = b.submit(jets(0..10), None).unwrap().await.unwrap().unwrap();
        assert_eq!(out.embedding, (0..10).map(|i| i as f32).collect::<Vec<_>>());
        assert_eq!(*batches.lock().unwrap(), vec![4, 4, 2]);
        assert_eq!(out.n_jets, 10);
    }

    #[tokio::test]
    async fn small_requests_are_merged_and_each_gets_its_rows() {
        let (b, batches, _) = start(64, Duration::from_millis(100), 100);
        let rx: Vec<_> = (0..3).map(|r| b.submit(jets(10 * r..10 * r + 2), None).unwrap()).collect();
        for (r, rx) in rx.into_iter().enumerate() {
            let out = rx.await.unwrap().unwrap();
            assert_eq!(out.embedding, vec![(10 * r) as f32, (10 * r + 1) as f32]);
            // Second probs column: the size of the batch the jets were computed in.
            assert_eq!(out.probs.unwrap(), vec![(10 * r) as f32, 6.0, (10 * r + 1) as f32, 6.0]);
        }
        assert_eq!(*batches.lock().unwrap(), vec![6]);
    }

    #[tokio::test]
    async fn a_full_batch_does_not_wait_for_the_delay() {
        let (b, _, _) = start(2, Duration::from_secs(600), 100);
        let rx = b.submit(jets(0..2), None).unwrap();
        let out = tokio::time::timeout(Duration::from_secs(60), rx).await.expect("batch left when full");
        assert_eq!(out.unwrap().unwrap().n_jets, 2);
    }

    #[tokio::test]
    async fn dead_work_is_dropped_before_compute() {
        let (b, batches, metrics) = start(64, Duration::from_millis(20), 100);
        drop(b.submit(jets(0..3), None).unwrap()); // caller left
        let expired = b.submit(jets(3..5), Some(Instant::now())).unwrap();
        let live = b.submit(jets(5..6), None).unwrap();
        assert_eq!(expired.await.unwrap(), Err(BatchError::DeadlineExceeded));
        assert_eq!(live.await.unwrap().unwrap().embedding, vec![5.0]);
        assert_eq!(*batches.lock().unwrap(), vec![1], "only the live jet was computed");
        let dropped = |reason| metrics.dropped_jets.with_label_values(&["echo", reason]).get();
        assert_eq!((dropped("cancelled"), dropped("deadline")), (3, 2));
        assert_eq!(b.queued_jets(), 0);
        assert_eq!(metrics.queue_jets.with_label_values(&["echo"]).get(), 0);
    }

    #[tokio::test]
    async fn dead_work_does_not_hold_queue_space() {
        // A batch waits 600 s for company, so nothing leaves the queue by itself.
        let (b, batches, metrics) = start(64, Duration::from_secs(600), 5);
        drop(b.submit(jets(0..2), None).unwrap()); // caller left
        let expired = b.submit(jets(2..4), Some(Instant::now())).unwrap();
        let _live = b.submit(jets(4..5), None).unwrap();
        assert_eq!(b.queued_jets(), 5);
        // Full with 5 jets, 4 of them dead: a live 4-jet request gets their place.
        let _more = b.submit(jets(5..9), None).unwrap();
        assert_eq!(b.queued_jets(), 5);
        assert_eq!(expired.await.unwrap(), Err(BatchError::DeadlineExceeded));
        let dropped = |reason| metrics.dropped_jets.with_label_values(&["echo", reason]).get();
        assert_eq!((dropped("cancelled"), dropped("deadline")), (2, 2));
        assert_eq!(metrics.queue_jets.with_label_values(&["echo"]).get(), 5);
        // Live work is never purged: the queue is really full now.
        assert_eq!(b.submit(jets(9..10), None).unwrap_err(), BatchError::QueueFull { requested: 1, queued: 5, capacity: 5 });
        assert!(batches.lock().unwrap().is_empty(), "nothing computed yet");
    }

    #[tokio::test]
    async fn abort_fails_queued_work_instead_of_computing_it() {
        let (b, batches, metrics) = start(64, Duration::from_secs(600), 100);
        let queued = b.submit(jets(0..3), None).unwrap();
        b.abort();
        assert_eq!(queued.await.unwrap(), Err(BatchError::Closed));
        assert_eq!(b.submit(jets(3..4), None).unwrap_err(), BatchError::Closed);
        assert_eq!(b.queued_jets(), 0);
        assert_eq!(metrics.queue_jets.with_label_values(&["echo"]).get(), 0);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(batches.lock().unwrap().is_empty(), "aborted jets were computed");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let (b, _, _) = start(64, Duration::from_secs(600), 5);
        let _first = b.submit(jets(0..3), None).unwrap();
        assert_eq!(b.submit(jets(3..6), None).unwrap_err(), BatchError::QueueFull { requested: 3, queued: 3, capacity: 5 });
        assert!(b.has_room(2).is_ok());
        assert!(b.has_room(3).is_err());
        // More than the whole queue can never fit: a different error, whatever is queued.
        assert_eq!(b.has_room(6).unwrap_err(), BatchError::TooLarge { requested: 6, capacity: 5 });
        assert_eq!(b.submit(jets(0..6), None).unwrap_err(), BatchError::TooLarge { requested: 6, capacity: 5 });
        b.close();
        assert_eq!(b.submit(jets(0..1), None).unwrap_err(), BatchError::Closed);
    }
}
