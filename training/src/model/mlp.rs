//! Two-layer perceptron `Linear → GELU (exact, erf form) → Linear`, the building block of the
//! tokenizer, the centre embedding, the pair bias and the transformer MLPs.
use burn::module::{Initializer, Module};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;

/// `fc2(gelu(fc1(x)))` applied to the last axis. Weights are stored `[in, out]` (burn's
/// row layout), so `y = x · W + b`, which is ONNX `MatMul` then `Add`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// burn's default (Kaiming-uniform, PyTorch-like) initialisation.
    pub fn new(d_in: usize, d_hidden: usize, d_out: usize, device: &B::Device) -> Self {
        Self {
            fc1: LinearConfig::new(d_in, d_hidden).init(device),
            fc2: LinearConfig::new(d_hidden, d_out).init(device),
        }
    }

    /// Like [`Mlp::new`] but the output layer starts at zero, so the MLP's contribution
    /// starts at exactly zero and grows as it learns (used for the attention pair bias,
    /// whose raw log-inputs reach |x| ≈ 18 and would otherwise start as large random biases).
    pub fn new_zero_output(d_in: usize, d_hidden: usize, d_out: usize, device: &B::Device) -> Self {
        Self {
            fc1: LinearConfig::new(d_in, d_hidden).init(device),
            fc2: LinearConfig::new(d_hidden, d_out).with_initializer(Initializer::Zeros).init(device),
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        self.fc2.forward(gelu(self.fc1.forward(x)))
    }
}
