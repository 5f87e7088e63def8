//! Forward passes over a whole set of jets without gradients: classifier outputs for
//! validation and evaluation, pooled encoder features for frozen-backbone training and linear
//! probes.
//!
//! Jets are batched in order of their token count, so a batch pads to about its own size
//! (attention costs grow with T²), and the rows are put back in the set's order afterwards.
use burn::prelude::*;

use super::data::LabeledJets;
use crate::error::TrainError;
use crate::model::{masked_max, masked_mean, Classifier, Encoder, ModelInput};

/// Classifier outputs for every jet of a set, row-major in the set's order.
#[derive(Debug, Clone, Default)]
pub struct SetOutputs {
    pub n_classes: usize,
    pub d_model: usize,
    /// `[N, C]` pre-softmax scores.
    pub logits: Vec<f32>,
    /// `[N, C]`
    pub probs: Vec<f32>,
    /// `[N, D]`, the ONNX `embedding` output (masked mean of the real tokens).
    pub embedding: Vec<f32>,
}

/// Which pooled vector [`pooled_features`] returns per jet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Masked mean of the token outputs, `[D]`: the `embedding` output.
    Mean,
    /// `concat(mean, max)`, `[2D]`: what the classifier head's MLP reads.
    MeanMax,
}

/// Set positions grouped into batches of similar token count.
pub fn length_sorted_batches(set: &LabeledJets, batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..set.len()).collect();
    order.sort_by_key(|&i| (set.jets[i].n_tokens(), i));
    order.chunks(batch.max(1)).map(<[usize]>::to_vec).collect()
}

fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>, TrainError> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| TrainError::Config(format!("reading a tensor back: {e:?}")))
}

/// Copies `rows` (row-major, `width` wide, one per `positions` entry) into `out` at those
/// positions.
fn scatter_rows(out: &mut [f32], rows: &[f32], positions: &[usize], width: usize) {
    for (r, &p) in positions.iter().enumerate() {
        out[p * width..(p + 1) * width].copy_from_slice(&rows[r * width..(r + 1) * width]);
    }
}

/// Runs the classifier over every jet of `set` (batches of `batch` jets).
pub fn classify<B: Backend>(
    model: &Classifier<B>,
    set: &LabeledJets,
    batch: usize,
    k: usize,
    device: &B::Device,
) -> Result<SetOutputs, TrainError> {
    let (c, d) = (model.head.n_classes, model.encoder.d_model);
    let n = set.len();
    let mut out = SetOutputs {
        n_classes: c,
        d_model: d,
        logits: vec![0.0; n * c],
        probs: vec![0.0; n * c],
        embedding: vec![0.0; n * d],
    };
    for positions in length_sorted_batches(set, batch) {
        let (b, _) = set.batch(&positions, k);
        let input = ModelInput::<B>::from_batch(&b, device)?;
        let o = model.forward(&input);
        scatter_rows(&mut out.logits, &to_vec(o.logits)?, &positions, c);
        scatter_rows(&mut out.probs, &to_vec(o.probs)?, &positions, c);
        scatter_rows(&mut out.embedding, &to_vec(o.embedding)?, &positions, d);
    }
    Ok(out)
}

/// Pooled encoder outputs of every jet (`[N, D]` or `[N, 2D]`, see [`Pooling`]).
pub fn pooled_features<B: Backend>(
    encoder: &Encoder<B>,
    set: &LabeledJets,
    pooling: Pooling,
    batch: usize,
    k: usize,
    device: &B::Device,
) -> Result<Vec<f32>, TrainError> {
    let d = encoder.d_model;
    let width = match pooling {
        Pooling::Mean => d,
        Pooling::MeanMax => 2 * d,
    };
    let mut out = vec![0.0; set.len() * width];
    for positions in length_sorted_batches(set, batch) {
        let (b, _) = set.batch(&positions, k);
        let input = ModelInput::<B>::from_batch(&b, device)?;
        let tokens = encoder.token_outputs(encoder.forward(&input));
        let mean = masked_mean(tokens.clone(), input.mask.clone());
        let pooled = match pooling {
            Pooling::Mean => mean,
            Pooling::MeanMax => Tensor::cat(vec![mean, masked_max(tokens, input.mask)], 1),
        };
        scatter_rows(&mut out, &to_vec(pooled)?, &positions, width);
    }
    Ok(out)
}

/// Softmax of each row (computed in f64).
pub fn softmax_rows(logits: &[f32], n_classes: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks_exact(n_classes) {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let exp: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
        let z: f64 = exp.iter().sum();
        out.extend(exp.iter().map(|e| (e / z) as f32));
    }
    out
}

/// Mean cross-entropy `logsumexp(l) − l[y]` over rows (computed in f64).
pub fn cross_entropy(logits: &[f32], labels: &[usize], n_classes: usize) -> f64 {
    let mut total = 0.0;
    for (row, &y) in logits.chunks_exact(n_classes).zip(labels) {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let lse = max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
        total += lse - row[y] as f64;
    }
    total / labels.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_and_softmax_by_hand() {
        // Row 1: logits (0, ln 3) → p = (1/4, 3/4); label 1 → -ln(3/4).
        // Row 2: logits (2, 2) → p = (1/2, 1/2); label 0 → ln 2.
        let logits = [0.0, 3f32.ln(), 2.0, 2.0];
        let p = softmax_rows(&logits, 2);
        for (a, b) in p.iter().zip([0.25, 0.75, 0.5, 0.5]) {
            assert!((a - b).abs() < 1e-6, "{p:?}");
        }
        let ce = cross_entropy(&logits, &[1, 0], 2);
        let want = (-(0.75f64).ln() + 2f64.ln()) / 2.0;
        assert!((ce - want).abs() < 1e-6, "{ce} vs {want}");
        // Large logits do not overflow.
        assert!(cross_entropy(&[1000.0, 0.0], &[1], 2).is_finite());
    }
}
