//! One pre-LN transformer block.
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;

use super::attention::Attention;
use super::mlp::Mlp;

/// Epsilon of every LayerNorm in the model (ONNX `LayerNormalization`'s default too).
pub const LN_EPS: f64 = 1e-5;

/// LayerNorm over the last axis with learned scale and shift, epsilon [`LN_EPS`]:
/// `(x - mean) / sqrt(var + eps) * gamma + beta`, biased variance.
pub fn layer_norm<B: Backend>(d: usize, device: &B::Device) -> LayerNorm<B> {
    LayerNormConfig::new(d).with_epsilon(LN_EPS).init(device)
}

/// Forward: `x = x + attn(norm1(x), bias, mask_bias)`, then `x = x + mlp(norm2(x))`, where
/// `mlp` is Linear D→ratio·D, GELU, Linear ratio·D→D.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    pub norm1: LayerNorm<B>,
    pub attn: Attention<B>,
    pub norm2: LayerNorm<B>,
    pub mlp: Mlp<B>,
}

impl<B: Backend> Block<B> {
    pub fn new(d_model: usize, n_heads: usize, mlp_ratio: usize, device: &B::Device) -> Self {
        Self {
            norm1: layer_norm(d_model, device),
            attn: Attention::new(d_model, n_heads, device),
            norm2: layer_norm(d_model, device),
            mlp: Mlp::new(d_model, mlp_ratio * d_model, d_model, device),
        }
    }

    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        bias: Option<Tensor<B, 4>>,
        mask_bias: Tensor<B, 4>,
    ) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x), bias, mask_bias);
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }
}
