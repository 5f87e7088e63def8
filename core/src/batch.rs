//! Batching tokenized jets into padded tensors (DESIGN.md section 4).
use crate::{TokenizedJet, N_FEATURES, N_PAIR};

/// A padded batch, row-major, padded to the largest token count `t` in the batch. Padding is
/// zero and `token_mask` is false there.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub b: usize,
    pub t: usize,
    pub k: usize,
    /// `[B, T, k, 7]`
    pub tokens: Vec<f32>,
    /// `[B, T, 2]`
    pub centers: Vec<f32>,
    /// `[B, 4, T, T]`
    pub pair: Vec<f32>,
    /// `[B, T]`
    pub token_mask: Vec<bool>,
}

/// Pads and stacks jets; `k` must match the jets' group size.
pub fn collate(jets: &[&TokenizedJet], k: usize) -> Batch {
    let _ = (jets, k, N_FEATURES, N_PAIR);
    todo!("core issue")
}
