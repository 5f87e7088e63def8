//! `jettag tag FILE --model DIR --out scores.csv`: offline tagging of a ROOT file through the
//! same session pool and batcher as the server, without a network.
//!
//! A reader thread reads chunks and tokenizes them (on the preprocessing pool) while the
//! batcher computes earlier chunks; rows are written in file order. A jet that cannot be
//! tokenized (say, a NaN momentum) gets empty probability fields and a warning, so every jet
//! of the file keeps its row.
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jettag_core::{tokenize, JetReader, LabelSet, ReadError, ReaderConfig, TokenizedJet};
use thiserror::Error;

use crate::batcher::{BatchError, Batcher, BatcherConfig, Computed};
use crate::config::Device;
use crate::metrics::Metrics;
use crate::preprocess::{describe, Preprocessor};
use crate::repository::{self, RepositoryError, Task};
use crate::runtime::{self, RuntimeError, SessionPool};

/// `jettag tag` options.
#[derive(Debug, Clone, clap::Args)]
pub struct TagArgs {
    /// ROOT file with a JetClass-schema tree named `tree`.
    pub file: PathBuf,
    /// Model directory: a version directory (model.onnx + model.toml) or a model directory
    /// (its highest version is used).
    #[arg(long)]
    pub model: PathBuf,
    /// Output CSV: jet, label (if read), prob_<class>..., emb_<i>... (with --embedding).
    #[arg(long, default_value = "scores.csv")]
    pub out: PathBuf,
    /// Execution device.
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    /// ONNX Runtime shared library (libonnxruntime.so).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<PathBuf>,
    /// ONNX Runtime sessions (worker threads).
    #[arg(long, default_value_t = 1)]
    pub instances: usize,
    /// ONNX Runtime intra-op threads per session (0: ONNX Runtime's choice).
    #[arg(long, default_value_t = 0)]
    pub intra_threads: usize,
    /// Largest batch, in jets.
    #[arg(long, default_value_t = 64)]
    pub max_batch_jets: usize,
    /// Jets read per chunk.
    #[arg(long, default_value_t = 1024)]
    pub chunk_size: usize,
    /// Comma-separated label branches in class order (default: model.toml [training] labels;
    /// "none" reads no labels).
    #[arg(long)]
    pub labels: Option<String>,
    /// Also write the embedding (always written for encoder models).
    #[arg(long)]
    pub embedding: bool,
    /// Tag only the first N jets.
    #[arg(long)]
    pub limit: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Error)]
pub enum TagError {
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("batching: {0}")]
    Batch(#[from] BatchError),
    #[error("{0}")]
    Setup(String),
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct TagSummary {
    pub n_jets: usize,
    /// Jets that could not be tokenized (empty probability fields).
    pub n_invalid: usize,
    /// Fraction of labelled, valid jets whose most probable class is their label.
    pub accuracy: Option<f64>,
    pub seconds: f64,
}

struct Chunk {
    start: usize,
    labels: Vec<Option<usize>>,
    /// One entry per jet; `None` for jets that failed preprocessing.
    valid: Vec<bool>,
    jets: Vec<TokenizedJet>,
}

pub fn run(args: TagArgs) -> Result<TagSummary, TagError> {
    let began = Instant::now();
    let spec = repository::open_model_dir(&args.model)?;
    let manifest = spec.manifest.clone();
    let env = runtime::environment(args.ort_lib.as_deref())?;
    let pool = Arc::new(SessionPool::open(&env, &spec, args.device, args.instances, args.intra_threads)?);
    pool.warm_up()?;
    tracing::info!(
        model = %manifest.name, version = manifest.version, device = pool.device().as_str(),
        file = %args.file.display(), "tagging"
    );

    let label_set = match args.labels.as_deref() {
        Some("none") => None,
        Some(list) => Some(LabelSet::parse(list)),
        None => manifest.label_branches().map(|b| LabelSet { branches: b }),
    };
    let chunk_size = args.chunk_size.max(1);
    // Labels named by model.toml are optional (unlabelled data is tagged all the same); labels
    // the user asked for are required.
    let (reader, with_labels) = match JetReader::open(&args.file, ReaderConfig { labels: label_set.clone(), chunk_size }) {
        Err(ReadError::MissingBranch { branch, .. }) if label_set.is_some() && args.labels.is_none() => {
            tracing::warn!(%branch, "label branch missing; tagging without labels");
            (JetReader::open(&args.file, ReaderConfig { labels: None, chunk_size })?, false)
        }
        other => (other?, label_set.is_some()),
    };
    let total = args.limit.map_or(reader.n_jets(), |l| l.min(reader.n_jets()));

    let write_err = |source| TagError::Write { path: args.out.clone(), source };
    let mut out = BufWriter::new(File::create(&args.out).map_err(write_err)?);
    let with_probs = manifest.task == Task::Classifier;
    let with_embedding = args.embedding || !with_probs;
    let mut header = vec!["jet".to_string()];
    if with_labels {
        header.push("label".into());
    }
    if with_probs {
        header.extend(manifest.class_names.iter().map(|c| format!("prob_{c}")));
    }
    if with_embedding {
        header.extend((0..manifest.embedding_dim).map(|i| format!("emb_{i}")));
    }
    writeln!(out, "{}", header.join(",")).map_err(write_err)?;

    let progress = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(total as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} jets ({per_sec}, eta {eta})",
        ) {
            bar.set_style(style);
        }
        bar
    };

    // Reader thread: read + tokenize, bounded channel so it runs at most two chunks ahead.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Chunk, TagError>>(2);
    let tokenizer = manifest.preprocessing.clone();
    let preprocessor = Preprocessor::new(0).map_err(|e| TagError::Setup(format!("preprocessing pool: {e}")))?;
    let reader_thread = std::thread::Builder::new()
        .name("jettag-reader".into())
        .spawn(move || {
            let mut seen = 0usize;
            for chunk in reader {
                if seen >= total {
                    break;
                }
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e.into()));
                        return;
                    }
                };
                let mut jets = chunk.jets;
                jets.truncate(total - seen);
                seen += jets.len();
                let results: Vec<_> = preprocessor.install(|| {
                    use rayon::prelude::*;
                    jets.par_iter().map(|j| tokenize(j, &tokenizer)).collect()
                });
                let mut valid = Vec::with_capacity(results.len());
                let mut tokenized = Vec::with_capacity(results.len());
                for (i, r) in results.into_iter().enumerate() {
                    match r {
                        Ok(t) => {
                            valid.push(true);
                            tokenized.push(t);
                        }
                        Err(e) => {
                            tracing::warn!("{} (file jet {})", describe(i, 0, &e), chunk.start + i);
                            valid.push(false);
                        }
                    }
                }
                let labels = jets.iter().map(|j| j.label).collect();
                if tx.blocking_send(Ok(Chunk { start: chunk.start, labels, valid, jets: tokenized })).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| TagError::Setup(format!("reader thread: {e}")))?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| TagError::Setup(format!("tokio runtime: {e}")))?;
    let n_classes = manifest.n_classes();
    let dim = manifest.embedding_dim;
    let mut stats = Stats::default();
    let result: Result<(), TagError> = rt.block_on(async {
        let batcher = Batcher::start(
            &manifest.name,
            BatcherConfig {
                max_batch_jets: args.max_batch_jets.max(1),
                max_queue_delay: Duration::ZERO,
                queue_capacity: 3 * chunk_size + args.max_batch_jets,
            },
            manifest.preprocessing.k,
            with_probs.then_some(n_classes),
            dim,
            Arc::clone(&pool),
            Arc::new(Metrics::new()),
        );
        let mut inflight = VecDeque::new();
        while let Some(chunk) = rx.recv().await {
            let mut chunk = chunk?;
            let jets = std::mem::take(&mut chunk.jets);
            let reply = batcher.submit(jets, None)?;
            inflight.push_back((chunk, reply));
            if inflight.len() >= 2 {
                let (chunk, reply) = inflight.pop_front().expect("two in flight");
                let computed = reply.await.map_err(|_| TagError::Setup("batch dropped".into()))??;
                write_chunk(&mut out, &chunk, &computed, with_labels, with_probs, with_embedding, n_classes, dim, &mut stats)
                    .map_err(write_err)?;
                progress.inc(chunk.valid.len() as u64);
            }
        }
        while let Some((chunk, reply)) = inflight.pop_front() {
            let computed = reply.await.map_err(|_| TagError::Setup("batch dropped".into()))??;
            write_chunk(&mut out, &chunk, &computed, with_labels, with_probs, with_embedding, n_classes, dim, &mut stats)
                .map_err(write_err)?;
            progress.inc(chunk.valid.len() as u64);
        }
        batcher.close();
        Ok(())
    });
    drop(rx);
    let _ = reader_thread.join();
    result?;
    out.flush().map_err(write_err)?;
    progress.finish_and_clear();
    let summary = TagSummary {
        n_jets: stats.n_jets,
        n_invalid: stats.n_invalid,
        accuracy: (stats.n_labelled > 0 && with_probs).then(|| stats.n_correct as f64 / stats.n_labelled as f64),
        seconds: began.elapsed().as_secs_f64(),
    };
    tracing::info!(
        jets = summary.n_jets, invalid = summary.n_invalid, accuracy = ?summary.accuracy,
        seconds = summary.seconds, out = %args.out.display(), "done"
    );
    Ok(summary)
}

#[derive(Default)]
struct Stats {
    n_jets: usize,
    n_invalid: usize,
    n_labelled: usize,
    n_correct: usize,
}

#[allow(clippy::too_many_arguments)]
fn write_chunk(
    out: &mut impl Write,
    chunk: &Chunk,
    computed: &Computed,
    with_labels: bool,
    with_probs: bool,
    with_embedding: bool,
    n_classes: usize,
    dim: usize,
    stats: &mut Stats,
) -> std::io::Result<()> {
    let mut row_of_valid = 0;
    let mut line = String::new();
    for (i, &valid) in chunk.valid.iter().enumerate() {
        use std::fmt::Write as _;
        line.clear();
        let _ = write!(line, "{}", chunk.start + i);
        let label = chunk.labels.get(i).copied().flatten();
        if with_labels {
            match label {
                Some(l) => {
                    let _ = write!(line, ",{l}");
                }
                None => line.push(','),
            }
        }
        stats.n_jets += 1;
        if valid {
            let r = row_of_valid;
            row_of_valid += 1;
            if with_probs {
                let probs = &computed.probs.as_ref().expect("classifier outputs probs")[r * n_classes..(r + 1) * n_classes];
                for p in probs {
                    let _ = write!(line, ",{p}");
                }
                if let Some(l) = label {
                    stats.n_labelled += 1;
                    if argmax(probs) == Some(l) {
                        stats.n_correct += 1;
                    }
                }
            }
            if with_embedding {
                for v in &computed.embedding[r * dim..(r + 1) * dim] {
                    let _ = write!(line, ",{v}");
                }
            }
        } else {
            stats.n_invalid += 1;
            let empty = (if with_probs { n_classes } else { 0 }) + (if with_embedding { dim } else { 0 });
            line.push_str(&",".repeat(empty));
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn argmax(values: &[f32]) -> Option<usize> {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.partial_cmp(b.1).unwrap_or(std::cmp::Ordering::Equal))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_file_order_and_invalid_jets() {
        let chunk = Chunk { start: 10, labels: vec![Some(1), Some(0), None], valid: vec![true, false, true], jets: vec![] };
        let computed = Computed { n_jets: 2, probs: Some(vec![0.25, 0.75, 0.9, 0.1]), embedding: vec![1.0, 2.0] };
        let mut out = Vec::new();
        let mut stats = Stats::default();
        write_chunk(&mut out, &chunk, &computed, true, true, true, 2, 1, &mut stats).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "10,1,0.25,0.75,1\n11,0,,,\n12,,0.9,0.1,2\n");
        assert_eq!((stats.n_jets, stats.n_invalid, stats.n_labelled, stats.n_correct), (3, 1, 1, 1));
    }
}
