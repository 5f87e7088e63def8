//! Jets for training: input-file expansion, a reader that interleaves files chunk by chunk,
//! a seeded shuffle buffer, tokenization through `jettag-core`, and a background thread that
//! turns the stream into collated batches while the model trains.
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc;

use jettag_core::{collate, tokenize, Batch, Jet, JetReader, ReaderConfig, TokenizedJet, TokenizerConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::TrainError;
use crate::jepa::masking::MIN_TOKENS;

/// Expands FILE_OR_GLOB arguments with core's [`jettag_core::expand_paths`] (sorted,
/// deduplicated; a pattern matching nothing is an error naming it).
pub fn expand_inputs(patterns: &[String]) -> Result<Vec<PathBuf>, TrainError> {
    Ok(jettag_core::expand_paths(patterns)?)
}

/// Jets from several files, taken round-robin one jet per file (each file read chunk by
/// chunk), so that a stream over per-class files (JetClass) mixes the classes from the first
/// jet and `--max-jets` takes an equal share of every file rather than the first files whole.
pub struct InterleavedJets {
    /// Each open file with the jets of its current chunk not yet handed out.
    files: VecDeque<(JetReader, VecDeque<Jet>)>,
}

impl InterleavedJets {
    pub fn open(files: &[PathBuf], chunk_size: usize) -> Result<Self, TrainError> {
        let files = files
            .iter()
            .map(|f| Ok((JetReader::open(f, ReaderConfig { labels: None, chunk_size })?, VecDeque::new())))
            .collect::<Result<VecDeque<_>, TrainError>>()?;
        Ok(Self { files })
    }
}

impl Iterator for InterleavedJets {
    type Item = Result<Jet, TrainError>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (mut reader, mut pending) = self.files.pop_front()?;
            if let Some(jet) = pending.pop_front() {
                self.files.push_back((reader, pending));
                return Some(Ok(jet));
            }
            match reader.next() {
                Some(Ok(chunk)) => {
                    // Refilled: this file keeps its turn.
                    self.files.push_front((reader, chunk.jets.into()));
                }
                Some(Err(e)) => return Some(Err(e.into())),
                None => {} // exhausted: drop the file
            }
        }
    }
}

/// A shuffle buffer of `capacity` items: each output is a uniformly chosen buffered item,
/// replaced by the next input. Approximates a full shuffle without holding the dataset.
pub struct ShuffleBuffer<I: Iterator> {
    source: I,
    buffer: Vec<I::Item>,
    capacity: usize,
    rng: ChaCha8Rng,
}

impl<I: Iterator> ShuffleBuffer<I> {
    pub fn new(source: I, capacity: usize, seed: u64) -> Self {
        Self { source, buffer: Vec::new(), capacity: capacity.max(1), rng: ChaCha8Rng::seed_from_u64(seed) }
    }
}

impl<I: Iterator> Iterator for ShuffleBuffer<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        while self.buffer.len() < self.capacity {
            match self.source.next() {
                Some(item) => self.buffer.push(item),
                None => break,
            }
        }
        if self.buffer.is_empty() {
            return None;
        }
        let i = self.rng.random_range(0..self.buffer.len());
        Some(self.buffer.swap_remove(i))
    }
}

/// One item of an epoch's stream: a usable jet or the reason one was dropped.
#[derive(Debug)]
pub enum JetItem {
    Jet(TokenizedJet),
    /// Tokenization refused the jet (invalid input); the message says why.
    Invalid(String),
}

/// Where pre-training jets come from.
pub trait JetSource: Send + Sync {
    /// Upper bound on jets per epoch (for the learning-rate schedule and progress bar).
    fn jets_per_epoch(&self) -> usize;
    /// The jets of one epoch in training order; `seed` fixes the order.
    fn epoch(&self, seed: u64) -> Result<Box<dyn Iterator<Item = Result<JetItem, TrainError>> + Send + '_>, TrainError>;
}

/// Jets streamed from ROOT files: interleaved, truncated to `max_jets`, shuffled through a
/// buffer, tokenized on the fly.
pub struct RootJets {
    pub files: Vec<PathBuf>,
    pub tokenizer: TokenizerConfig,
    pub max_jets: Option<usize>,
    pub shuffle_buffer: usize,
    pub chunk_size: usize,
    n_jets: usize,
}

impl RootJets {
    /// Opens every file once to check it and count its jets.
    pub fn new(files: Vec<PathBuf>, tokenizer: TokenizerConfig, max_jets: Option<usize>, shuffle_buffer: usize) -> Result<Self, TrainError> {
        if files.is_empty() {
            return Err(TrainError::NoFiles("(no inputs given)".into()));
        }
        let mut n = 0;
        for f in &files {
            n += jettag_core::n_jets_in(f)?;
        }
        let n_jets = max_jets.map_or(n, |m| m.min(n));
        Ok(Self { files, tokenizer, max_jets, shuffle_buffer, chunk_size: 512, n_jets })
    }
}

impl JetSource for RootJets {
    fn jets_per_epoch(&self) -> usize {
        self.n_jets
    }

    fn epoch(&self, seed: u64) -> Result<Box<dyn Iterator<Item = Result<JetItem, TrainError>> + Send + '_>, TrainError> {
        let jets = InterleavedJets::open(&self.files, self.chunk_size)?.take(self.max_jets.unwrap_or(usize::MAX));
        let shuffled = ShuffleBuffer::new(jets, self.shuffle_buffer, seed);
        let cfg = self.tokenizer.clone();
        Ok(Box::new(shuffled.map(move |jet| {
            let jet = jet?;
            Ok(match tokenize(&jet, &cfg) {
                Ok(t) => JetItem::Jet(t),
                Err(e) => JetItem::Invalid(e.to_string()),
            })
        })))
    }
}

/// Already tokenized jets held in memory (tests, small studies); each epoch is a seeded
/// permutation.
pub struct MemoryJets {
    pub jets: Vec<TokenizedJet>,
}

impl JetSource for MemoryJets {
    fn jets_per_epoch(&self) -> usize {
        self.jets.len()
    }

    fn epoch(&self, seed: u64) -> Result<Box<dyn Iterator<Item = Result<JetItem, TrainError>> + Send + '_>, TrainError> {
        use rand::seq::SliceRandom;
        let mut order: Vec<usize> = (0..self.jets.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        Ok(Box::new(order.into_iter().map(|i| Ok(JetItem::Jet(self.jets[i].clone())))))
    }
}

/// A collated batch plus each jet's real token count (for per-jet masks).
#[derive(Debug, Clone)]
pub struct PretrainBatch {
    pub batch: Batch,
    pub token_counts: Vec<usize>,
}

/// Why jets were left out of an epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkipCounts {
    /// Rejected by tokenization (bad input).
    pub invalid: usize,
    /// Fewer than 2 tokens: no context/target split exists.
    pub too_small: usize,
    /// One example message of an invalid jet.
    pub example: Option<String>,
}

/// Messages from the batching thread.
#[derive(Debug)]
pub enum BatchMsg {
    Batch(PretrainBatch),
    /// End of epoch.
    Done(SkipCounts),
    Error(TrainError),
}

/// Fills batches of `batch_size` jets (the last one may be smaller) and sends them through
/// `tx`; a bounded channel keeps at most a few batches ahead of training.
pub fn produce_batches(source: &dyn JetSource, seed: u64, batch_size: usize, k: usize, tx: mpsc::SyncSender<BatchMsg>) {
    let send_batch = |jets: &mut Vec<TokenizedJet>| {
        let refs: Vec<&TokenizedJet> = jets.iter().collect();
        let batch = collate(&refs, k);
        let token_counts = jets.iter().map(TokenizedJet::n_tokens).collect();
        jets.clear();
        tx.send(BatchMsg::Batch(PretrainBatch { batch, token_counts })).is_ok()
    };
    let mut skips = SkipCounts::default();
    let stream = match source.epoch(seed) {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(BatchMsg::Error(e));
            return;
        }
    };
    let mut pending = Vec::with_capacity(batch_size);
    for item in stream {
        match item {
            Ok(JetItem::Jet(jet)) if jet.n_tokens() >= MIN_TOKENS => {
                pending.push(jet);
                if pending.len() == batch_size && !send_batch(&mut pending) {
                    return; // the trainer went away
                }
            }
            Ok(JetItem::Jet(_)) => skips.too_small += 1,
            Ok(JetItem::Invalid(msg)) => {
                skips.invalid += 1;
                skips.example.get_or_insert(msg);
            }
            Err(e) => {
                let _ = tx.send(BatchMsg::Error(e));
                return;
            }
        }
    }
    if !pending.is_empty() && !send_batch(&mut pending) {
        return;
    }
    let _ = tx.send(BatchMsg::Done(skips));
}

/// Path shown in messages for a list of inputs.
pub fn describe_inputs(files: &[PathBuf]) -> String {
    match files {
        [one] => one.display().to_string(),
        many => format!("{} files ({} ...)", many.len(), many.first().map(|p: &PathBuf| p.display().to_string()).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_buffer_is_a_seeded_permutation() {
        let out: Vec<u32> = ShuffleBuffer::new(0..100u32, 16, 9).collect();
        let mut sorted = out.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(out, sorted, "a buffer of 16 must reorder");
        assert_eq!(out, ShuffleBuffer::new(0..100u32, 16, 9).collect::<Vec<_>>());
        assert_ne!(out, ShuffleBuffer::new(0..100u32, 16, 10).collect::<Vec<_>>());
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
    }

    fn read_all(path: &PathBuf) -> Vec<Jet> {
        JetReader::open(path, ReaderConfig { labels: None, chunk_size: 1000 })
            .unwrap()
            .flat_map(|c| c.unwrap().jets)
            .collect()
    }

    #[test]
    fn files_are_interleaved_jet_by_jet() {
        let (a, b, c) = (fixture("toptag_small.root"), fixture("qg_small.root"), fixture("jetclass_small.root"));
        let (ja, jb, jc) = (read_all(&a), read_all(&b), read_all(&c));
        assert!(ja.len() >= 30 && jb.len() >= 30 && jc.len() >= 30);
        // Chunks of 7 jets: the round robin must not depend on chunk boundaries.
        let mixed: Vec<Jet> = InterleavedJets::open(&[a, b, c], 7).unwrap().map(Result::unwrap).collect();
        assert_eq!(mixed.len(), ja.len() + jb.len() + jc.len());
        for i in 0..30 {
            assert_eq!(mixed[3 * i], ja[i], "jet {i} of file a");
            assert_eq!(mixed[3 * i + 1], jb[i], "jet {i} of file b");
            assert_eq!(mixed[3 * i + 2], jc[i], "jet {i} of file c");
        }
        // Once the shortest file is exhausted the others go on alternating, and every jet
        // comes exactly once (the tail is the rest of the longer files in order).
        let shortest = ja.len().min(jb.len()).min(jc.len());
        let mut tail_a: Vec<&Jet> = mixed[3 * shortest..].iter().filter(|j| ja[shortest..].contains(j)).collect();
        tail_a.dedup();
        assert_eq!(tail_a.len(), ja.len() - shortest);
    }

    #[test]
    fn root_source_counts_truncates_and_tokenizes() {
        let files = vec![fixture("jetclass_small.root")];
        let src = RootJets::new(files, TokenizerConfig::default(), Some(50), 16).unwrap();
        assert_eq!(src.jets_per_epoch(), 50);
        let jets: Vec<JetItem> = src.epoch(1).unwrap().map(Result::unwrap).collect();
        assert_eq!(jets.len(), 50);
        assert!(jets.iter().all(|j| matches!(j, JetItem::Jet(t) if t.n_tokens() >= 1)));
        let err = RootJets::new(vec![fixture("missing.root")], TokenizerConfig::default(), None, 16);
        assert!(err.is_err());
    }
}
