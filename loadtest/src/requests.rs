//! Jets from ROOT files → pre-built columnar requests.
//!
//! Requests are built once before a run, so the generator spends its CPU on sending, not on
//! reading files or copying arrays while the clock runs. Every jet of the sample is used in
//! turn; request `i` is a fixed function of `i`, so two servers measured with the same
//! arguments receive the same jets in the same order.
use std::path::PathBuf;

use jettag_core::{expand_paths, Jet, JetReader, ReadError, ReaderConfig};
use thiserror::Error;

use crate::proto::v1::Jets;

#[derive(Debug, Error)]
pub enum RequestError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("no jets: {0}")]
    NoJets(String),
    #[error("--jets-per-request must be at least 1")]
    ZeroJetsPerRequest,
}

/// Reads up to `max_jets` jets, taking an equal share from each file (so that, say, top and
/// QCD files both contribute) in file order.
pub fn load_jets(patterns: &[String], max_jets: usize) -> Result<Vec<Jet>, RequestError> {
    let paths: Vec<PathBuf> = expand_paths(patterns)?;
    let per_file = max_jets.div_ceil(paths.len().max(1));
    let mut shares: Vec<Vec<Jet>> = Vec::with_capacity(paths.len());
    for path in &paths {
        let reader = JetReader::open(path, ReaderConfig { labels: None, chunk_size: per_file.clamp(1, 4096) })?;
        let mut jets = Vec::with_capacity(per_file.min(reader.n_jets()));
        for chunk in reader {
            let chunk = chunk?;
            let take = per_file - jets.len();
            jets.extend(chunk.jets.into_iter().take(take));
            if jets.len() >= per_file {
                break;
            }
        }
        shares.push(jets);
    }
    // Interleave the files' jets, so that any window of requests mixes them.
    let mut out = Vec::with_capacity(max_jets);
    let longest = shares.iter().map(Vec::len).max().unwrap_or(0);
    let mut iters: Vec<_> = shares.into_iter().map(Vec::into_iter).collect();
    for _ in 0..longest {
        for it in iters.iter_mut() {
            if out.len() < max_jets {
                out.extend(it.next());
            }
        }
    }
    if out.is_empty() {
        return Err(RequestError::NoJets(format!("{} holds no jets", patterns.join(", "))));
    }
    Ok(out)
}

/// Concatenates jets into the columnar layout of the API.
pub fn columnar<'a>(jets: impl IntoIterator<Item = &'a Jet>) -> Jets {
    let mut out = Jets::default();
    for jet in jets {
        out.counts.push(jet.n_constituents() as u32);
        out.px.extend_from_slice(&jet.px);
        out.py.extend_from_slice(&jet.py);
        out.pz.extend_from_slice(&jet.pz);
        out.energy.extend_from_slice(&jet.energy);
    }
    out
}

/// The requests of a run: request `i` holds jets `i·n, i·n + 1, …` of the sample, wrapping
/// around; the pool holds one cycle through the sample.
#[derive(Debug, Clone)]
pub struct RequestPool {
    requests: Vec<Jets>,
    jets_per_request: usize,
}

impl RequestPool {
    /// Builds enough requests of `jets_per_request` jets to use every jet once, but at most
    /// `max_requests` (and at least one).
    pub fn build(jets: &[Jet], jets_per_request: usize, max_requests: usize) -> Result<Self, RequestError> {
        if jets_per_request == 0 {
            return Err(RequestError::ZeroJetsPerRequest);
        }
        if jets.is_empty() {
            return Err(RequestError::NoJets("the sample is empty".into()));
        }
        let n = jets.len().div_ceil(jets_per_request).clamp(1, max_requests.max(1));
        let requests = (0..n)
            .map(|i| columnar((0..jets_per_request).map(|j| &jets[(i * jets_per_request + j) % jets.len()])))
            .collect();
        Ok(Self { requests, jets_per_request })
    }

    /// The jets of request number `seq`.
    pub fn get(&self, seq: u64) -> &Jets {
        &self.requests[(seq % self.requests.len() as u64) as usize]
    }

    pub fn jets_per_request(&self) -> usize {
        self.jets_per_request
    }

    pub fn len(&self) -> usize {
        self.requests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jet(n: usize, tag: f32) -> Jet {
        Jet::new(vec![tag; n], vec![1.0; n], vec![0.5; n], vec![tag + 2.0; n])
    }

    #[test]
    fn columnar_concatenates_in_order() {
        let (a, b) = (jet(2, 10.0), jet(3, 20.0));
        let c = columnar([&a, &b]);
        assert_eq!(c.counts, vec![2, 3]);
        assert_eq!(c.px, vec![10.0, 10.0, 20.0, 20.0, 20.0]);
        assert_eq!(c.energy, vec![12.0, 12.0, 22.0, 22.0, 22.0]);
    }

    #[test]
    fn pool_cycles_through_the_sample() {
        let jets: Vec<Jet> = (0..5).map(|i| jet(1, i as f32)).collect();
        let pool = RequestPool::build(&jets, 2, 100).unwrap();
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.get(0).px, vec![0.0, 1.0]);
        assert_eq!(pool.get(2).px, vec![4.0, 0.0]);
        assert_eq!(pool.get(3).px, vec![0.0, 1.0]);
        assert!(RequestPool::build(&jets, 0, 10).is_err());
        assert!(RequestPool::build(&[], 1, 10).is_err());
    }
}
