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
///
/// All jets of a batch come from one `TokenizerConfig`, so a mismatched `k` is a programming
/// error: it trips a `debug_assert`, and release builds copy only what fits instead of
/// panicking.
pub fn collate(jets: &[&TokenizedJet], k: usize) -> Batch {
    let b = jets.len();
    let t = jets.iter().map(|j| j.n_tokens()).max().unwrap_or(0);
    let token_len = k * N_FEATURES;
    let mut tokens = vec![0.0f32; b * t * token_len];
    let mut centers = vec![0.0f32; b * t * 2];
    let mut pair = vec![0.0f32; b * N_PAIR * t * t];
    let mut token_mask = vec![false; b * t];
    for (bi, jet) in jets.iter().enumerate() {
        let tj = jet.n_tokens();
        debug_assert_eq!(jet.tokens.len(), tj * token_len, "jet {bi}: tokens do not have k = {k}");
        debug_assert_eq!(jet.pair.len(), N_PAIR * tj * tj, "jet {bi}: pair is not [4][T][T]");

        let n = jet.tokens.len().min(tj * token_len);
        let dst = bi * t * token_len;
        tokens[dst..dst + n].copy_from_slice(&jet.tokens[..n]);

        for (a, c) in jet.centers.iter().enumerate() {
            centers[(bi * t + a) * 2..(bi * t + a) * 2 + 2].copy_from_slice(c);
        }
        token_mask[bi * t..bi * t + tj].iter_mut().for_each(|m| *m = true);

        for c in 0..N_PAIR {
            for a in 0..tj {
                let src = (c * tj + a) * tj;
                let Some(row) = jet.pair.get(src..src + tj) else { continue };
                let dst = ((bi * N_PAIR + c) * t + a) * t;
                pair[dst..dst + tj].copy_from_slice(row);
            }
        }
    }
    Batch { b, t, k, tokens, centers, pair, token_mask }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake tokenized jet whose entries encode their own position, so misplaced copies show.
    fn fake(t: usize, k: usize, tag: f32) -> TokenizedJet {
        TokenizedJet {
            n_constituents: t,
            features: vec![[0.0; N_FEATURES]; t],
            token_particles: vec![vec![0; k]; t],
            tokens: (0..t * k * N_FEATURES).map(|i| tag + i as f32).collect(),
            centers: (0..t).map(|i| [tag + i as f32, -(tag + i as f32)]).collect(),
            pair: (0..N_PAIR * t * t).map(|i| tag + i as f32).collect(),
        }
    }

    #[test]
    fn pads_to_largest_token_count() {
        let (k, a, b) = (2, fake(3, 2, 1000.0), fake(1, 2, 2000.0));
        let batch = collate(&[&a, &b], k);
        assert_eq!((batch.b, batch.t, batch.k), (2, 3, 2));
        assert_eq!(batch.token_mask, vec![true, true, true, true, false, false]);
        assert_eq!(&batch.tokens[..a.tokens.len()], &a.tokens[..]);
        let off = 3 * k * N_FEATURES;
        assert_eq!(&batch.tokens[off..off + b.tokens.len()], &b.tokens[..]);
        assert!(batch.tokens[off + b.tokens.len()..].iter().all(|&v| v == 0.0));
        assert_eq!(&batch.centers[6..8], &[2000.0, -2000.0]);
        assert!(batch.centers[8..].iter().all(|&v| v == 0.0));
        // Jet a's pair is copied unchanged (T equals the batch T).
        assert_eq!(&batch.pair[..36], &a.pair[..]);
        // Jet b: channel c, element (0,0) sits at [1, c, 0, 0]; the rest of each plane is zero.
        for c in 0..N_PAIR {
            let plane = &batch.pair[36 + c * 9..36 + (c + 1) * 9];
            assert_eq!(plane[0], 2000.0 + c as f32);
            assert!(plane[1..].iter().all(|&v| v == 0.0));
        }
    }

    #[test]
    fn empty_batch() {
        let batch = collate(&[], 8);
        assert_eq!((batch.b, batch.t), (0, 0));
        assert!(batch.tokens.is_empty() && batch.pair.is_empty() && batch.token_mask.is_empty());
    }
}
