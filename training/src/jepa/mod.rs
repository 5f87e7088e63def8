//! Joint-embedding predictive pre-training: masking, the EMA target, the loss.
pub mod ema;
pub mod loss;
pub mod masking;
pub mod model;

pub use ema::{ema_update, materialize, momentum_at};
pub use loss::{mean_channel_std, smooth_l1_masked};
pub use masking::{sample_jet_masks, BatchMasks, JetMasks, MaskingConfig, MaskingStrategy};
pub use model::{gather_pairs, gather_tokens, target_embeddings, JepaModel, MaskTensors};
