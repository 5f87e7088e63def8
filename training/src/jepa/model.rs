//! The trainable half of JEPA (context encoder + predictor) and the target branch.
use burn::module::Module;
use burn::prelude::*;
use burn::tensor::TensorData;

use super::masking::BatchMasks;
use crate::config::ModelConfig;
use crate::model::{Encoder, ModelInput, Predictor, LN_EPS};

/// Context encoder and predictor, optimised together; the target encoder is their EMA
/// shadow and lives outside (on the non-autodiff backend).
#[derive(Module, Debug)]
pub struct JepaModel<B: Backend> {
    pub encoder: Encoder<B>,
    pub predictor: Predictor<B>,
}

/// [`BatchMasks`] as device tensors.
#[derive(Debug, Clone)]
pub struct MaskTensors<B: Backend> {
    /// `[B,Nc]` token indices of the context (padding → 0).
    pub context_idx: Tensor<B, 2, Int>,
    pub context_mask: Tensor<B, 2, Bool>,
    /// `[B,Nt]` token indices of the targets (padding → 0).
    pub target_idx: Tensor<B, 2, Int>,
    pub target_mask: Tensor<B, 2, Bool>,
}

impl<B: Backend> MaskTensors<B> {
    pub fn new(m: &BatchMasks, device: &B::Device) -> Self {
        let int = |v: &[i64], n: usize| Tensor::from_data(TensorData::new(v.to_vec(), vec![m.b, n]), device);
        let bool = |v: &[bool], n: usize| Tensor::from_data(TensorData::new(v.to_vec(), vec![m.b, n]), device);
        Self {
            context_idx: int(&m.context_idx, m.nc),
            context_mask: bool(&m.context_mask, m.nc),
            target_idx: int(&m.target_idx, m.nt),
            target_mask: bool(&m.target_mask, m.nt),
        }
    }
}

/// `x[b, idx[b, n], :]` for `x` `[B,T,C]`, `idx` `[B,N]` → `[B,N,C]`.
pub fn gather_tokens<B: Backend>(x: Tensor<B, 3>, idx: Tensor<B, 2, Int>) -> Tensor<B, 3> {
    let [b, n] = idx.dims();
    let c = x.dims()[2];
    x.gather(1, idx.reshape([b, n, 1]).expand([b, n, c]))
}

/// `u[b, h, idx[b, i], idx[b, j]]` for `u` `[B,H,T,T]`, `idx` `[B,N]` → `[B,H,N,N]`.
pub fn gather_pairs<B: Backend>(u: Tensor<B, 4>, idx: Tensor<B, 2, Int>) -> Tensor<B, 4> {
    let [b, h, _, t] = u.dims();
    let n = idx.dims()[1];
    let rows = u.gather(2, idx.clone().reshape([b, 1, n, 1]).expand([b, h, n, t]));
    rows.gather(3, idx.reshape([b, 1, 1, n]).expand([b, h, n, n]))
}

/// LayerNorm over the last axis without scale or shift (epsilon [`LN_EPS`]), applied to the
/// target encoder's outputs so that the regression targets have a fixed scale.
pub fn layer_norm_plain<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    let (var, mean) = x.clone().var_mean_bias(2);
    (x - mean) / var.add_scalar(LN_EPS).sqrt()
}

impl<B: Backend> JepaModel<B> {
    pub fn new(cfg: &ModelConfig, device: &B::Device) -> Self {
        Self {
            encoder: Encoder::new(&cfg.encoder, device),
            predictor: Predictor::new(&cfg.predictor, cfg.encoder.d_model, device),
        }
    }

    /// Context branch: encodes only the context tokens (with their pair-bias submatrix) and
    /// predicts the target encoder's outputs at the target positions → `[B,Nt,D]`.
    pub fn predict(&self, input: &ModelInput<B>, masks: &MaskTensors<B>) -> Tensor<B, 3> {
        let e = self.encoder.embed(input.tokens.clone(), input.centers.clone());
        let context = gather_tokens(e, masks.context_idx.clone());
        let bias = self
            .encoder
            .attention_bias(input.pair.clone())
            .map(|u| gather_pairs(u, masks.context_idx.clone()));
        let out = self.encoder.encode(context, bias, masks.context_mask.clone());
        let [b, _] = masks.context_mask.dims();
        let registers = Tensor::<B, 2, Bool>::full([b, self.encoder.n_registers], true, &out.device());
        let context_mask = Tensor::cat(vec![registers, masks.context_mask.clone()], 1);
        let target_centers = gather_tokens(input.centers.clone(), masks.target_idx.clone());
        self.predictor.forward(out, context_mask, target_centers, masks.target_mask.clone())
    }
}

/// Target branch: the target encoder over the whole jet, its real-token outputs normalised by
/// [`layer_norm_plain`], taken at the target positions → `[B,Nt,D]`.
pub fn target_embeddings<B: Backend>(
    target_encoder: &Encoder<B>,
    input: &ModelInput<B>,
    target_idx: Tensor<B, 2, Int>,
) -> Tensor<B, 3> {
    let out = target_encoder.token_outputs(target_encoder.forward(input));
    gather_tokens(layer_norm_plain(out), target_idx)
}
