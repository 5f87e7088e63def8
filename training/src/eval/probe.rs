//! Linear probe: how linearly separable the classes are in a frozen encoder's embedding, the
//! standard read-out of self-supervised representations.
//!
//! The embedding (masked mean of the token outputs, the ONNX `embedding` output) of every
//! training jet is computed once, standardised with the training mean and standard deviation,
//! and a single `Linear` layer D → C is trained on it with cross-entropy and AdamW.
use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::TensorData;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::finetune::data::LabeledJets;
use crate::finetune::infer::{self, Pooling, SetOutputs};
use crate::model::Encoder;

/// Probe optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSettings {
    pub epochs: usize,
    pub lr: f64,
    pub batch: usize,
    pub weight_decay: f64,
    pub seed: u64,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self { epochs: 100, lr: 1e-2, batch: 256, weight_decay: 1e-4, seed: 0 }
    }
}

/// What the probe was trained on and how well it fits its training jets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub settings: ProbeSettings,
    pub n_train: usize,
    pub final_train_loss: f64,
    pub train_accuracy: f64,
}

/// Per-dimension mean and standard deviation (floored at 1e-6) of row-major `[N, D]` features.
pub fn standardizer(x: &[f32], d: usize) -> (Vec<f32>, Vec<f32>) {
    let n = (x.len() / d).max(1) as f64;
    let mut mean = vec![0f64; d];
    for row in x.chunks_exact(d) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64 / n;
        }
    }
    let mut var = vec![0f64; d];
    for row in x.chunks_exact(d) {
        for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (v as f64 - m).powi(2) / n;
        }
    }
    (mean.iter().map(|&m| m as f32).collect(), var.iter().map(|&v| v.sqrt().max(1e-6) as f32).collect())
}

fn standardize(x: &[f32], mean: &[f32], std: &[f32]) -> Vec<f32> {
    let d = mean.len();
    x.chunks_exact(d)
        .flat_map(|row| row.iter().zip(mean).zip(std).map(|((v, m), s)| (v - m) / s))
        .collect()
}

/// Trains a linear probe on `train`'s embeddings and applies it to `test`. The returned
/// outputs carry the test jets' raw (unstandardised) embeddings.
pub fn probe<B: AutodiffBackend>(
    encoder: &Encoder<B::InnerBackend>,
    train: &LabeledJets,
    test: &LabeledJets,
    settings: &ProbeSettings,
    k: usize,
    batch: usize,
    device: &B::Device,
) -> Result<(SetOutputs, ProbeReport), TrainError> {
    if settings.epochs == 0 || settings.batch == 0 {
        return Err(TrainError::Config("probe epochs and batch must be positive".into()));
    }
    let d = encoder.d_model;
    let c = train.n_classes;
    let raw_train = infer::pooled_features(encoder, train, Pooling::Mean, batch, k, device)?;
    let raw_test = infer::pooled_features(encoder, test, Pooling::Mean, batch, k, device)?;
    let (mean, std) = standardizer(&raw_train, d);
    let x_train = standardize(&raw_train, &mean, &std);
    let x_test = standardize(&raw_test, &mean, &std);

    let mut linear: Linear<B> = {
        let _guard = crate::pretrain::INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        B::seed(device, settings.seed);
        let l = LinearConfig::new(d, c).init(device);
        crate::jepa::materialize(&l);
        l
    };
    let mut optim = AdamWConfig::new().with_weight_decay(settings.weight_decay as f32).init::<B, Linear<B>>();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed ^ 0x0b5e_55ed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut last_loss = f64::NAN;
    for _ in 0..settings.epochs {
        order.shuffle(&mut rng);
        let (mut sum, mut batches) = (0.0, 0usize);
        for positions in order.chunks(settings.batch) {
            let mut x = Vec::with_capacity(positions.len() * d);
            for &i in positions {
                x.extend_from_slice(&x_train[i * d..(i + 1) * d]);
            }
            let x = Tensor::<B, 2>::from_data(TensorData::new(x, vec![positions.len(), d]), device);
            let y: Vec<i64> = positions.iter().map(|&i| train.labels[i] as i64).collect();
            let y = Tensor::<B, 1, Int>::from_data(TensorData::new(y, vec![positions.len()]), device);
            let loss = loss_fn.forward(linear.forward(x), y);
            sum += loss.clone().into_scalar().elem::<f64>();
            batches += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &linear);
            linear = optim.step(settings.lr, linear, grads);
        }
        last_loss = sum / batches as f64;
        if !last_loss.is_finite() {
            return Err(TrainError::Diverged(format!("linear probe loss is {last_loss}")));
        }
    }
    let linear = linear.valid();
    let logits_of = |x: Vec<f32>, n: usize| -> Result<Vec<f32>, TrainError> {
        let x = Tensor::<B::InnerBackend, 2>::from_data(TensorData::new(x, vec![n, d]), device);
        linear
            .forward(x)
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| TrainError::Config(format!("reading probe logits: {e:?}")))
    };
    let train_logits = logits_of(x_train, train.len())?;
    let train_stats = crate::finetune::score_logits(&train_logits, &train.labels, c)?;
    let logits = logits_of(x_test, test.len())?;
    let probs = infer::softmax_rows(&logits, c);
    let outputs = SetOutputs { n_classes: c, d_model: d, logits, probs, embedding: raw_test };
    let report = ProbeReport {
        settings: settings.clone(),
        n_train: train.len(),
        final_train_loss: last_loss,
        train_accuracy: train_stats.accuracy,
    };
    Ok((outputs, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardizer_by_hand() {
        // Two dimensions: (1, 3) and (3, 3) → mean (2, 3), std (1, floor).
        let (m, s) = standardizer(&[1.0, 3.0, 3.0, 3.0], 2);
        assert_eq!(m, vec![2.0, 3.0]);
        assert_eq!(s, vec![1.0, 1e-6]);
        assert_eq!(standardize(&[1.0, 3.0, 3.0, 3.0], &m, &s), vec![-1.0, 0.0, 1.0, 0.0]);
    }
}
