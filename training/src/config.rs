//! Model sizes by name (DESIGN.md section 5). The config is saved as `config.json` next to the
//! weights, so fine-tuning, evaluation and ONNX export rebuild exactly the trained shapes.
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// Shapes of the context/target encoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderConfig {
    /// Token embedding width D.
    pub d_model: usize,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Attention heads H (D must be divisible by H).
    pub n_heads: usize,
    /// MLP hidden width = `mlp_ratio * D`.
    pub mlp_ratio: usize,
    /// Hidden width h of the PointNet tokenizer's per-particle MLP.
    pub tokenizer_hidden: usize,
    /// Learned register tokens prepended to every jet (0 disables them).
    pub n_registers: usize,
    /// Whether attention gets the per-head bias projected from the pair features.
    pub pair_bias: bool,
    /// Hidden width of the pair-bias MLP (4 → hidden → H).
    pub pair_hidden: usize,
}

/// Shapes of the JEPA predictor (pre-training only; never exported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictorConfig {
    /// Predictor width D_p.
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub mlp_ratio: usize,
}

/// A named model: encoder plus predictor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The preset it started from (`tiny`, `small`, `paper`); ablation switches may have
    /// changed it since.
    pub name: String,
    pub encoder: EncoderConfig,
    pub predictor: PredictorConfig,
}

/// Names accepted by [`ModelConfig::by_name`].
pub const CONFIG_NAMES: [&str; 3] = ["tiny", "small", "paper"];

impl ModelConfig {
    /// `tiny` (tests: D 32, 2 layers, 4 heads), `small` (D 64, 6 layers, 4 heads) or `paper`
    /// (D 128, 12 layers, 8 heads, about 2.4 M encoder parameters). All use 4 registers and
    /// the pair bias; the ablation switches change those afterwards.
    pub fn by_name(name: &str) -> Result<Self, TrainError> {
        let (d, layers, heads, h, (dp, pl, ph)) = match name {
            "tiny" => (32, 2, 4, 16, (32, 1, 2)),
            "small" => (64, 6, 4, 32, (32, 3, 4)),
            "paper" => (128, 12, 8, 64, (64, 4, 4)),
            other => {
                return Err(TrainError::Config(format!(
                    "unknown model config '{other}' (known: {})",
                    CONFIG_NAMES.join(", ")
                )))
            }
        };
        Ok(Self {
            name: name.to_string(),
            encoder: EncoderConfig {
                d_model: d,
                n_layers: layers,
                n_heads: heads,
                mlp_ratio: 4,
                tokenizer_hidden: h,
                n_registers: 4,
                pair_bias: true,
                pair_hidden: 16,
            },
            predictor: PredictorConfig { d_model: dp, n_layers: pl, n_heads: ph, mlp_ratio: 4 },
        })
    }

    /// Checks divisibility and non-zero sizes so that a bad config is an error, not a panic
    /// deep inside a reshape.
    pub fn validate(&self) -> Result<(), TrainError> {
        let e = &self.encoder;
        let p = &self.predictor;
        let bad = |m: String| Err(TrainError::Config(m));
        if e.d_model == 0 || e.n_heads == 0 || e.n_layers == 0 || e.mlp_ratio == 0 {
            return bad("encoder sizes must be positive".into());
        }
        if e.d_model % e.n_heads != 0 {
            return bad(format!("encoder d_model {} not divisible by {} heads", e.d_model, e.n_heads));
        }
        if e.tokenizer_hidden == 0 || (e.pair_bias && e.pair_hidden == 0) {
            return bad("tokenizer_hidden and pair_hidden must be positive".into());
        }
        if p.d_model == 0 || p.n_heads == 0 || p.n_layers == 0 || p.mlp_ratio == 0 {
            return bad("predictor sizes must be positive".into());
        }
        if p.d_model % p.n_heads != 0 {
            return bad(format!("predictor d_model {} not divisible by {} heads", p.d_model, p.n_heads));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_unknown_names_are_errors() {
        for name in CONFIG_NAMES {
            ModelConfig::by_name(name).unwrap().validate().unwrap();
        }
        let err = ModelConfig::by_name("huge").unwrap_err().to_string();
        assert!(err.contains("huge") && err.contains("paper"), "{err}");
    }

    #[test]
    fn validate_rejects_indivisible_heads() {
        let mut cfg = ModelConfig::by_name("tiny").unwrap();
        cfg.encoder.n_heads = 5;
        assert!(cfg.validate().is_err());
    }
}
