//! Composite layers that reproduce burn's computations op for op, so that ONNX Runtime and
//! burn agree to float rounding: `Linear` (weights stored `[in, out]` as burn keeps them),
//! `LayerNorm`, exact GELU, masked multi-head attention with an additive bias, and pooling
//! over real tokens.

use super::builder::{ElemType, GraphBuilder, Value};
use super::{NamedParams, OnnxError};

/// Which keys attention may look at.
#[derive(Clone, Copy, Debug)]
pub enum AttentionMask<'a> {
    /// Every key is real.
    None,
    /// `real` is a bool `[B, T]` tensor, true for real tokens; scores of padded keys are
    /// replaced by `fill` before the softmax (use the same value as the burn model, e.g.
    /// `f32::NEG_INFINITY` or a large negative number).
    KeyPadding { real: &'a Value, fill: f32 },
    /// A float tensor added to the scores after the bias, broadcastable to `[B, H, T, T]`,
    /// typically [`GraphBuilder::key_padding_bias`] computed once for all blocks.
    Additive(&'a Value),
}

impl GraphBuilder {
    /// `x · W + b` with `W` of shape `[in, out]`, as burn's `Linear` stores it.
    pub fn linear_with(&mut self, x: &Value, weight: &Value, bias: Option<&Value>) -> Value {
        let y = self.matmul(x, weight);
        match bias {
            Some(b) => self.add(&y, b),
            None => y,
        }
    }

    /// burn's `Linear` at module path `prefix` (`prefix.weight` `[in, out]`, optional
    /// `prefix.bias` `[out]`), with its parameters taken from `params`.
    pub fn linear(
        &mut self,
        params: &mut NamedParams,
        prefix: &str,
        x: &Value,
    ) -> Result<Value, OnnxError> {
        let weight_path = format!("{prefix}.weight");
        let shape = params.get(&weight_path)?.shape.clone();
        if shape.len() != 2 {
            return Err(OnnxError::ParamShape {
                path: weight_path,
                expected: vec![0, 0],
                got: shape,
            });
        }
        let weight = self.param(params, &weight_path, None)?;
        let bias_path = format!("{prefix}.bias");
        let bias = if params.contains(&bias_path) {
            Some(self.param(params, &bias_path, Some(&[shape[1]]))?)
        } else {
            None
        };
        Ok(self.linear_with(x, &weight, bias.as_ref()))
    }

    /// burn's `LayerNorm` at module path `prefix` (`prefix.gamma`, optional `prefix.beta`).
    /// burn keeps `epsilon` private to the module, so the caller passes the configured value.
    pub fn layer_norm_from(
        &mut self,
        params: &mut NamedParams,
        prefix: &str,
        x: &Value,
        epsilon: f32,
    ) -> Result<Value, OnnxError> {
        let gamma_path = format!("{prefix}.gamma");
        let width = params.get(&gamma_path)?.shape.clone();
        let gamma = self.param(params, &gamma_path, None)?;
        let beta_path = format!("{prefix}.beta");
        let beta = if params.contains(&beta_path) {
            Some(self.param(params, &beta_path, Some(&width))?)
        } else {
            None
        };
        Ok(self.layer_norm(x, &gamma, beta.as_ref(), epsilon))
    }

    /// Layer normalisation without learned scale or shift (the JEPA targets), over a last axis
    /// of size `width`.
    pub fn layer_norm_plain(
        &mut self,
        x: &Value,
        width: usize,
        epsilon: f32,
    ) -> Result<Value, OnnxError> {
        let ones = self.initializer("ln_ones", &[width], &vec![1.0; width])?;
        Ok(self.layer_norm(x, &ones, None, epsilon))
    }

    /// Exact GELU, `x · (1 + erf(x / √2)) / 2`, in the order burn computes it.
    pub fn gelu(&mut self, x: &Value) -> Value {
        let sqrt2 = self.scalar_f32(std::f32::consts::SQRT_2);
        let scaled = self.div(x, &sqrt2);
        let erf = self.erf(&scaled);
        let one_plus = self.add_scalar(&erf, 1.0);
        let product = self.mul(x, &one_plus);
        let two = self.scalar_f32(2.0);
        self.div(&product, &two)
    }

    /// `[B, T, H·d] → [B, H, T, d]`.
    pub fn split_heads(&mut self, x: &Value, n_heads: usize, head_dim: usize) -> Value {
        let x = self.reshape(x, &[0, 0, n_heads as i64, head_dim as i64]);
        self.transpose(&x, &[0, 2, 1, 3])
    }

    /// `[B, H, T, d] → [B, T, H·d]`.
    pub fn merge_heads(&mut self, x: &Value, n_heads: usize, head_dim: usize) -> Value {
        let x = self.transpose(x, &[0, 2, 1, 3]);
        self.reshape(&x, &[0, 0, (n_heads * head_dim) as i64])
    }

    /// Scaled dot-product attention on already projected `q`, `k`, `v` of shape `[B, T, H·d]`:
    /// `softmax(q·kᵀ · scale + bias, masked keys → fill) · v`, heads merged back to
    /// `[B, T, H·d]`. `bias` is an additive float `[B, H, T, T]` (or broadcastable) tensor, the
    /// per-head pair bias.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &mut self,
        q: &Value,
        k: &Value,
        v: &Value,
        n_heads: usize,
        head_dim: usize,
        scale: f32,
        bias: Option<&Value>,
        mask: AttentionMask<'_>,
    ) -> Value {
        let q = self.split_heads(q, n_heads, head_dim);
        let k = self.reshape(k, &[0, 0, n_heads as i64, head_dim as i64]);
        let k_t = self.transpose(&k, &[0, 2, 3, 1]);
        let v = self.split_heads(v, n_heads, head_dim);
        let scores = self.matmul(&q, &k_t);
        let mut scores = self.mul_scalar(&scores, scale);
        if let Some(bias) = bias {
            scores = self.add(&scores, bias);
        }
        match mask {
            AttentionMask::None => {}
            AttentionMask::KeyPadding { real, fill } => {
                let real_keys = self.unsqueeze(real, &[1, 2]);
                let fill = self.scalar_f32(fill);
                scores = self.where_(&real_keys, &scores, &fill);
            }
            AttentionMask::Additive(mask_bias) => scores = self.add(&scores, mask_bias),
        }
        let weights = self.softmax(&scores, -1);
        let out = self.matmul(&weights, &v);
        self.merge_heads(&out, n_heads, head_dim)
    }

    /// The additive key-padding term `[B, 1, 1, T]` from the bool mask `real` `[B, T]`:
    /// `(1 − float(real)) · negative`, i.e. 0 for real keys and `negative` (a large finite
    /// negative number, so that `exp` underflows to 0 without NaNs) for padded ones.
    pub fn key_padding_bias(&mut self, real: &Value, negative: f32) -> Value {
        let real = self.cast(real, ElemType::F32);
        let padded = self.neg(&real);
        let padded = self.add_scalar(&padded, 1.0);
        let bias = self.mul_scalar(&padded, negative);
        self.unsqueeze(&bias, &[1, 2])
    }

    /// Mean over the real tokens of `x` `[B, T, D]` given the bool mask `real` `[B, T]`:
    /// `Σ_t x·m / Σ_t m` → `[B, D]`.
    pub fn masked_mean(&mut self, x: &Value, real: &Value) -> Value {
        let weights = self.cast(real, ElemType::F32);
        let weights = self.unsqueeze(&weights, &[2]);
        let weighted = self.mul(x, &weights);
        let sum = self.reduce_sum(&weighted, &[1], false);
        let count = self.reduce_sum(&weights, &[1], false);
        self.div(&sum, &count)
    }

    /// Maximum over the real tokens of `x` `[B, T, D]`; padded tokens are replaced by `fill`
    /// first (as the burn model does) → `[B, D]`.
    pub fn masked_max(&mut self, x: &Value, real: &Value, fill: f32) -> Value {
        let real = self.unsqueeze(real, &[2]);
        let fill = self.scalar_f32(fill);
        let filled = self.where_(&real, x, &fill);
        self.reduce_max(&filled, &[1], false)
    }
}
