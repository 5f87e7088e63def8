//! ONNX export written by hand.
//!
//! burn cannot lower a transformer with an additive pair bias to ONNX, so the exporter rebuilds
//! the forward pass as an ONNX graph from the trained weights (DESIGN.md section 5):
//!
//! - [`params`] pulls every float parameter of a burn module out as (path, shape, values);
//!   the path is burn's field path (`blocks.0.attn.qkv.weight`), so the exporter can mirror the
//!   module tree and check that it used every parameter.
//! - [`GraphBuilder`] assembles the graph: named inputs and outputs with dynamic axes,
//!   initializers, one method per ONNX operator, and composite layers that reproduce burn's
//!   `Linear`, `LayerNorm`, exact GELU and masked multi-head attention.
//!
//! The graph targets **opset 17** (IR version 8): `LayerNormalization` is native there, and
//! `ReduceMax`/`ReduceMean` still take their axes as an attribute (opset 18 moved them to an
//! input). `ReduceSum`, `Unsqueeze` and `Squeeze` take axes as an input since opset 13; the
//! builder hides that difference.

mod builder;
mod error;
mod layers;
mod ops;
pub mod params;
pub mod proto;

pub use builder::{Dim, ElemType, GraphBuilder, ModelInfo, Value, IR_VERSION, OPSET_VERSION};
pub use error::OnnxError;
pub use layers::AttentionMask;
pub use params::{NamedParams, ParamTensor};

/// Serialises a model to the protobuf bytes of a `.onnx` file.
pub fn encode_model(model: &proto::ModelProto) -> Vec<u8> {
    prost::Message::encode_to_vec(model)
}

/// Parses the bytes of a `.onnx` file, e.g. to inspect an exported model in a test.
pub fn decode_model(bytes: &[u8]) -> Result<proto::ModelProto, OnnxError> {
    <proto::ModelProto as prost::Message>::decode(bytes).map_err(OnnxError::Decode)
}

/// Writes a model to `path` (usually `models/NAME/VERSION/model.onnx`).
pub fn save_model(model: &proto::ModelProto, path: &std::path::Path) -> Result<(), OnnxError> {
    std::fs::write(path, encode_model(model)).map_err(|source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    })
}
