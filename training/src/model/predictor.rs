//! The JEPA predictor: a narrower transformer that guesses the target encoder's outputs at
//! masked positions from the context encoder's outputs. Used only in pre-training.
use burn::module::{Initializer, Module, Param};
use burn::nn::{LayerNorm, Linear, LinearConfig};
use burn::prelude::*;

use super::attention::key_padding_bias;
use super::block::{layer_norm, Block};
use super::mlp::Mlp;
use crate::config::PredictorConfig;

/// Forward (`context` `[B,Nc,D]` = context-encoder outputs including registers,
/// `context_mask` `[B,Nc]`, `target_centers` `[B,Nt,2]`, `target_mask` `[B,Nt]`):
/// 1. `c = embed(context)` (Linear D→D_p);
/// 2. `q = mask_token + position(target_centers)` (MLP 2→D_p→D_p), one query per target;
/// 3. `x = concat([c, q], axis 1)`, mask `concat([context_mask, target_mask])`;
/// 4. pre-LN blocks without pair bias, final LayerNorm;
/// 5. return `head(x[:, Nc.., :])` (Linear D_p→D) → `[B,Nt,D]`.
#[derive(Module, Debug)]
pub struct Predictor<B: Backend> {
    pub embed: Linear<B>,
    /// `[D_p]` learned stand-in for a masked token.
    pub mask_token: Param<Tensor<B, 1>>,
    pub position: Mlp<B>,
    pub blocks: Vec<Block<B>>,
    pub norm: LayerNorm<B>,
    pub head: Linear<B>,
}

impl<B: Backend> Predictor<B> {
    pub fn new(cfg: &PredictorConfig, d_encoder: usize, device: &B::Device) -> Self {
        let dp = cfg.d_model;
        Self {
            embed: LinearConfig::new(d_encoder, dp).init(device),
            mask_token: Initializer::Normal { mean: 0.0, std: 0.02 }.init([dp], device),
            position: Mlp::new(2, dp, dp, device),
            blocks: (0..cfg.n_layers)
                .map(|_| Block::new(dp, cfg.n_heads, cfg.mlp_ratio, device))
                .collect(),
            norm: layer_norm(dp, device),
            head: LinearConfig::new(dp, d_encoder).init(device),
        }
    }

    pub fn forward(
        &self,
        context: Tensor<B, 3>,
        context_mask: Tensor<B, 2, Bool>,
        target_centers: Tensor<B, 3>,
        target_mask: Tensor<B, 2, Bool>,
    ) -> Tensor<B, 3> {
        let nc = context.dims()[1];
        let [b, nt, _] = target_centers.dims();
        let c = self.embed.forward(context);
        let dp = c.dims()[2];
        let q = self.position.forward(target_centers)
            + self.mask_token.val().reshape([1, 1, dp]);
        let x = Tensor::cat(vec![c, q], 1);
        let mask_bias = key_padding_bias(Tensor::cat(vec![context_mask, target_mask], 1));
        let mut x = x;
        for block in &self.blocks {
            x = block.forward(x, None, mask_bias.clone());
        }
        let x = self.norm.forward(x).slice([0..b, nc..nc + nt, 0..dp]);
        self.head.forward(x)
    }
}
