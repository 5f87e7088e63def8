//! Columnar jets → validated, tokenized jets, on a dedicated thread pool.
//!
//! Tokenization (farthest-point sampling, kNN, pair features) costs tens of microseconds per
//! jet; a request of a thousand jets would stall the async event loop for tens of
//! milliseconds, so it runs on a rayon pool of `preprocess_threads` threads and the handler
//! awaits a oneshot. Errors name the request field and the jet index, so a client can find the
//! bad jet in its arrays.
use std::ops::Range;
use std::sync::Arc;

use jettag_core::{tokenize, Jet, JetError, TokenizedJet, TokenizerConfig};
use rayon::prelude::*;
use thiserror::Error;

use crate::proto::v1::Jets;

/// A request's jets are malformed. `jet` is the index of the first bad jet, when one is.
#[derive(Debug, Clone, Error, PartialEq)]
#[error("{message}")]
pub struct InputError {
    pub field: &'static str,
    pub jet: Option<usize>,
    pub message: String,
}

impl InputError {
    fn new(field: &'static str, jet: Option<usize>, message: String) -> Self {
        Self { field, jet, message }
    }
}

/// Checks the columnar layout (cheap, no per-constituent work) and returns each jet's range
/// in the flat arrays.
pub fn layout(jets: &Jets, max_constituents: usize) -> Result<Vec<Range<usize>>, InputError> {
    if jets.counts.is_empty() {
        return Err(InputError::new("jets.counts", None, "jets.counts is empty: the request holds no jets".into()));
    }
    let mut ranges = Vec::with_capacity(jets.counts.len());
    let mut offset = 0usize;
    for (j, &count) in jets.counts.iter().enumerate() {
        let count = count as usize;
        if count == 0 {
            return Err(InputError::new(
                "jets.counts",
                Some(j),
                format!("jet {j}: jets.counts[{j}] = 0; a jet needs at least one constituent"),
            ));
        }
        if count > max_constituents {
            return Err(InputError::new(
                "jets.counts",
                Some(j),
                format!(
                    "jet {j}: jets.counts[{j}] = {count} exceeds the model's limit of {max_constituents} constituents per jet"
                ),
            ));
        }
        ranges.push(offset..offset + count);
        offset += count;
    }
    let total = offset;
    let fields: [(&'static str, usize); 4] = [
        ("jets.px", jets.px.len()),
        ("jets.py", jets.py.len()),
        ("jets.pz", jets.pz.len()),
        ("jets.energy", jets.energy.len()),
    ];
    for (field, len) in fields {
        if len < total {
            // The first jet whose constituents run past the end of this array.
            let j = ranges.iter().position(|r| r.end > len).unwrap_or(ranges.len() - 1);
            return Err(InputError::new(
                field,
                Some(j),
                format!(
                    "jet {j}: {field} has {len} values but jets.counts sums to {total}; jet {j} \
                     (jets.counts[{j}] = {}) needs {field}[{}..{}]",
                    jets.counts[j], ranges[j].start, ranges[j].end
                ),
            ));
        }
        if len > total {
            let last = ranges.len() - 1;
            return Err(InputError::new(
                field,
                Some(last),
                format!(
                    "jet {last}: {field} has {len} values but jets.counts sums to {total}; \
                     {} values follow the last jet (jet {last})",
                    len - total
                ),
            ));
        }
    }
    Ok(ranges)
}

/// Copies jet `j`'s constituents out of the columnar arrays.
pub fn jet_at(jets: &Jets, range: Range<usize>) -> Jet {
    Jet {
        px: jets.px[range.clone()].to_vec(),
        py: jets.py[range.clone()].to_vec(),
        pz: jets.pz[range.clone()].to_vec(),
        energy: jets.energy[range].to_vec(),
        label: None,
    }
}

/// Describes a core error for jet `j` whose constituents start at `offset` in the flat arrays.
pub fn describe(j: usize, offset: usize, err: &JetError) -> InputError {
    let field = match err {
        JetError::NonFinite { field, .. } => match *field {
            "px" => "jets.px",
            "py" => "jets.py",
            "pz" => "jets.pz",
            "energy" => "jets.energy",
            _ => "jets",
        },
        JetError::Unphysical { .. } => "jets.energy",
        JetError::ZeroPt { .. } | JetError::ZeroJetPt => "jets.px",
        JetError::TooManyConstituents { .. } | JetError::Empty => "jets.counts",
        _ => "jets",
    };
    let flat = match err {
        JetError::NonFinite { index, .. } => format!(" (flat index {field}[{}])", offset + index),
        JetError::Unphysical { index, .. } | JetError::ZeroPt { index } => {
            format!(" (flat index {}; check jets.px/py/pz/energy)", offset + index)
        }
        _ => String::new(),
    };
    InputError::new(field, Some(j), format!("jet {j}: {err}{flat}"))
}

/// Tokenizes jets in parallel on the current rayon pool; the error is the first bad jet's.
pub fn tokenize_jets(
    jets: &[Jet],
    offsets: &[usize],
    cfg: &TokenizerConfig,
) -> Result<Vec<TokenizedJet>, InputError> {
    let results: Vec<Result<TokenizedJet, JetError>> = jets.par_iter().map(|jet| tokenize(jet, cfg)).collect();
    results
        .into_iter()
        .enumerate()
        .map(|(j, r)| r.map_err(|e| describe(j, offsets.get(j).copied().unwrap_or(0), &e)))
        .collect()
}

/// The preprocessing pool.
pub struct Preprocessor {
    pool: rayon::ThreadPool,
}

impl Preprocessor {
    /// `threads = 0` means one per CPU.
    pub fn new(threads: usize) -> Result<Self, rayon::ThreadPoolBuildError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("jettag-preprocess-{i}"))
            .build()?;
        Ok(Self { pool })
    }

    /// Validates and tokenizes a request's jets off the async runtime.
    pub async fn run(
        &self,
        jets: Jets,
        cfg: Arc<TokenizerConfig>,
    ) -> Result<Vec<TokenizedJet>, InputError> {
        let ranges = layout(&jets, cfg.max_constituents)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            let offsets: Vec<usize> = ranges.iter().map(|r| r.start).collect();
            let owned: Vec<Jet> = ranges.into_iter().map(|r| jet_at(&jets, r)).collect();
            let _ = tx.send(tokenize_jets(&owned, &offsets, &cfg));
        });
        rx.await.unwrap_or_else(|_| {
            Err(InputError::new("jets", None, "internal error: preprocessing stopped".into()))
        })
    }

    /// Runs a closure on the pool (for the offline tagger's bulk tokenization).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jets(counts: &[u32], n: usize) -> Jets {
        Jets {
            counts: counts.to_vec(),
            px: vec![1.0; n],
            py: vec![1.0; n],
            pz: vec![1.0; n],
            energy: vec![2.0; n],
        }
    }

    #[test]
    fn ranges_follow_counts() {
        let r = layout(&jets(&[2, 3, 1], 6), 10).unwrap();
        assert_eq!(r, vec![0..2, 2..5, 5..6]);
    }

    #[test]
    fn short_array_names_field_and_jet() {
        let mut j = jets(&[2, 3, 1], 6);
        j.py.truncate(4);
        let e = layout(&j, 10).unwrap_err();
        assert_eq!((e.field, e.jet), ("jets.py", Some(1)));
        assert!(e.message.contains("jet 1") && e.message.contains("jets.py has 4 values"), "{}", e.message);
    }

    #[test]
    fn long_array_names_field_and_last_jet() {
        let mut j = jets(&[2, 3], 5);
        j.energy.push(1.0);
        let e = layout(&j, 10).unwrap_err();
        assert_eq!((e.field, e.jet), ("jets.energy", Some(1)));
    }

    #[test]
    fn empty_and_oversized_jets() {
        let e = layout(&jets(&[2, 0, 1], 3), 10).unwrap_err();
        assert_eq!((e.field, e.jet), ("jets.counts", Some(1)));
        assert!(e.message.contains("jets.counts[1] = 0"), "{}", e.message);
        let e = layout(&jets(&[2, 11], 13), 10).unwrap_err();
        assert_eq!((e.field, e.jet), ("jets.counts", Some(1)));
        assert!(e.message.contains("limit of 10"), "{}", e.message);
        let e = layout(&jets(&[], 0), 10).unwrap_err();
        assert_eq!(e.jet, None);
    }

    #[test]
    fn core_errors_get_jet_index_and_flat_position() {
        let e = describe(3, 40, &JetError::NonFinite { field: "pz", index: 2, value: f32::NAN });
        assert_eq!((e.field, e.jet), ("jets.pz", Some(3)));
        assert!(e.message.starts_with("jet 3: "), "{}", e.message);
        assert!(e.message.contains("jets.pz[42]"), "{}", e.message);
    }
}
