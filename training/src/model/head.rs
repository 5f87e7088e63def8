//! Classification head for fine-tuning (DESIGN.md section 5): pooled tokens → MLP → logits.
use burn::module::Module;
use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::encoder::{masked_max, masked_mean, Encoder};
use super::input::ModelInput;
use super::mlp::Mlp;

/// `logits = mlp(concat([mean, max], axis 1))` where mean and max run over the encoder's real
/// token outputs (registers excluded; see [`masked_mean`], [`masked_max`]) and `mlp` is
/// Linear 2D→D, GELU, Linear D→n_classes. `probs = softmax(logits, axis 1)`.
#[derive(Module, Debug)]
pub struct ClassifierHead<B: Backend> {
    pub mlp: Mlp<B>,
    pub n_classes: usize,
}

impl<B: Backend> ClassifierHead<B> {
    pub fn new(d_model: usize, n_classes: usize, device: &B::Device) -> Self {
        Self { mlp: Mlp::new(2 * d_model, d_model, n_classes, device), n_classes }
    }

    /// `tokens` `[B,T,D]` (registers already dropped), `mask` `[B,T]` → logits `[B,C]`.
    pub fn forward(&self, tokens: Tensor<B, 3>, mask: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
        let pooled = Tensor::cat(vec![masked_mean(tokens.clone(), mask.clone()), masked_max(tokens, mask)], 1);
        self.mlp.forward(pooled)
    }
}

/// Encoder plus head: the exported classifier model.
#[derive(Module, Debug)]
pub struct Classifier<B: Backend> {
    pub encoder: Encoder<B>,
    pub head: ClassifierHead<B>,
}

/// Outputs of [`Classifier::forward`].
#[derive(Debug, Clone)]
pub struct ClassifierOutput<B: Backend> {
    /// `[B,C]` pre-softmax scores (for the cross-entropy loss).
    pub logits: Tensor<B, 2>,
    /// `[B,C]` softmax of the logits (the ONNX `probs` output).
    pub probs: Tensor<B, 2>,
    /// `[B,D]` masked mean of the real tokens (the ONNX `embedding` output).
    pub embedding: Tensor<B, 2>,
}

impl<B: Backend> Classifier<B> {
    pub fn forward(&self, input: &ModelInput<B>) -> ClassifierOutput<B> {
        let tokens = self.encoder.token_outputs(self.encoder.forward(input));
        let embedding = masked_mean(tokens.clone(), input.mask.clone());
        let logits = self.head.forward(tokens, input.mask.clone());
        let probs = softmax(logits.clone(), 1);
        ClassifierOutput { logits, probs, embedding }
    }
}
