//! The HEP-JEPA network (DESIGN.md section 5), written with ops that map one-to-one onto ONNX
//! opset 17 (MatMul, Add, Mul, Erf-GELU, Softmax, LayerNormalization, ReduceMax, ReduceSum,
//! Concat, Reshape, Transpose, Pad, Cast), so the exporter can mirror each forward exactly.
pub mod attention;
pub mod block;
pub mod encoder;
pub mod head;
pub mod input;
pub mod mlp;
pub mod predictor;
pub mod tokenizer;

pub use attention::{key_padding_bias, Attention, MASK_NEG};
pub use block::{Block, LN_EPS};
pub use encoder::{masked_max, masked_mean, Encoder};
pub use head::{Classifier, ClassifierHead, ClassifierOutput};
pub use input::ModelInput;
pub use mlp::Mlp;
pub use predictor::Predictor;
pub use tokenizer::Tokenizer;

#[cfg(test)]
pub mod testutil;
