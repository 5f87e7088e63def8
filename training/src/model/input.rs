//! Model input tensors (DESIGN.md section 4) built from a core [`Batch`].
use burn::prelude::*;
use burn::tensor::TensorData;
use jettag_core::{Batch, N_FEATURES, N_PAIR};

use crate::error::TrainError;

/// `tokens` `[B,T,k,7]`, `centers` `[B,T,2]`, `pair` `[B,4,T,T]`, `mask` `[B,T]` (true = real
/// token), exactly the ONNX model's inputs.
#[derive(Debug, Clone)]
pub struct ModelInput<B: Backend> {
    pub tokens: Tensor<B, 4>,
    pub centers: Tensor<B, 3>,
    pub pair: Tensor<B, 4>,
    pub mask: Tensor<B, 2, Bool>,
}

impl<B: Backend> ModelInput<B> {
    /// Copies a batch to `device`, checking that every flat array has the length its shape
    /// says (a malformed batch is an error, not a panic inside a reshape).
    pub fn from_batch(batch: &Batch, device: &B::Device) -> Result<Self, TrainError> {
        let (b, t, k) = (batch.b, batch.t, batch.k);
        let check = |name: &str, got: usize, want: usize| {
            if got == want {
                Ok(())
            } else {
                Err(TrainError::Config(format!("batch field {name} has {got} values, expected {want}")))
            }
        };
        check("tokens", batch.tokens.len(), b * t * k * N_FEATURES)?;
        check("centers", batch.centers.len(), b * t * 2)?;
        check("pair", batch.pair.len(), b * N_PAIR * t * t)?;
        check("token_mask", batch.token_mask.len(), b * t)?;
        if b == 0 || t == 0 || k == 0 {
            return Err(TrainError::Config(format!("empty batch (B={b}, T={t}, k={k})")));
        }
        let f = |v: &[f32], shape: Vec<usize>| TensorData::new(v.to_vec(), shape);
        Ok(Self {
            tokens: Tensor::from_data(f(&batch.tokens, vec![b, t, k, N_FEATURES]), device),
            centers: Tensor::from_data(f(&batch.centers, vec![b, t, 2]), device),
            pair: Tensor::from_data(f(&batch.pair, vec![b, N_PAIR, t, t]), device),
            mask: Tensor::from_data(TensorData::new(batch.token_mask.clone(), vec![b, t]), device),
        })
    }
}
