//! The mini-PointNet tokenizer: turns each group of `k` particles into one D-vector and adds
//! an embedding of the group centre's (deta, dphi).
use burn::module::Module;
use burn::prelude::*;

use super::mlp::Mlp;
use crate::config::EncoderConfig;

/// Per-particle features (`jettag_core::N_FEATURES`).
pub const N_PARTICLE_FEATURES: usize = 7;

/// Mini-PointNet per token group plus centre-position MLP.
///
/// Forward (`tokens` `[B,T,k,7]`, `centers` `[B,T,2]` → `[B,T,D]`):
/// 1. `f = particle_mlp(tokens)` → `[B,T,k,h]` (Linear 7→h, GELU, Linear h→h);
/// 2. `g = max over k of f` → `[B,T,1,h]`, broadcast back to `[B,T,k,h]`;
/// 3. `f = concat([f, g], axis 3)` → `[B,T,k,2h]` (per-particle part first, pooled second);
/// 4. `f = group_mlp(f)` → `[B,T,k,D]` (Linear 2h→D, GELU, Linear D→D);
/// 5. `e = max over k of f` → `[B,T,D]`;
/// 6. return `e + center_mlp(centers)` (Linear 2→D, GELU, Linear D→D).
///
/// Every group holds k real particles (core repeats the nearest ones in small jets), so the
/// max-pools need no mask; padded tokens produce values that later stages mask out.
#[derive(Module, Debug)]
pub struct Tokenizer<B: Backend> {
    pub particle_mlp: Mlp<B>,
    pub group_mlp: Mlp<B>,
    pub center_mlp: Mlp<B>,
}

impl<B: Backend> Tokenizer<B> {
    pub fn new(cfg: &EncoderConfig, device: &B::Device) -> Self {
        let (h, d) = (cfg.tokenizer_hidden, cfg.d_model);
        Self {
            particle_mlp: Mlp::new(N_PARTICLE_FEATURES, h, h, device),
            group_mlp: Mlp::new(2 * h, d, d, device),
            center_mlp: Mlp::new(2, d, d, device),
        }
    }

    pub fn forward(&self, tokens: Tensor<B, 4>, centers: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, t, k, _] = tokens.dims();
        let f = self.particle_mlp.forward(tokens);
        let h = f.dims()[3];
        let pooled = f.clone().max_dim(2).expand([b, t, k, h]);
        let f = Tensor::cat(vec![f, pooled], 3);
        let f = self.group_mlp.forward(f);
        let d = f.dims()[3];
        let e: Tensor<B, 3> = f.max_dim(2).reshape([b, t, d]);
        e + self.center_mlp.forward(centers)
    }
}
