use std::path::PathBuf;

/// Why an ONNX graph could not be built, checked or written.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// Two graph values (inputs, outputs, initializers) would share one name.
    #[error("ONNX value name `{0}` is already used in the graph")]
    DuplicateName(String),
    /// An initializer's data length does not match the product of its shape.
    #[error("initializer `{name}`: shape {shape:?} needs {expected} values, got {got}")]
    DataLength {
        name: String,
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
    /// The exporter asked for a parameter the burn module does not have.
    #[error(
        "parameter `{0}` not found in the module (is the exporter out of step with the model?)"
    )]
    MissingParam(String),
    /// A parameter was used twice; each burn parameter maps to exactly one initializer.
    #[error("parameter `{0}` was already taken by the exporter")]
    ParamTakenTwice(String),
    /// A parameter has a different shape than the exporter expects.
    #[error("parameter `{path}` has shape {got:?}, the exporter expects {expected:?}")]
    ParamShape {
        path: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    /// Parameters the exporter never used: the graph would silently compute something else.
    #[error("the exporter did not use these module parameters: {0:?}")]
    UnusedParams(Vec<String>),
    /// A node reads a value that no input, initializer or earlier node defines.
    #[error("node `{node}` ({op}) reads undefined value `{value}`")]
    UndefinedValue {
        node: String,
        op: String,
        value: String,
    },
    /// A graph output names no defined value.
    #[error("graph output `{0}` is not produced by any node")]
    UndefinedOutput(String),
    /// A graph without outputs computes nothing.
    #[error("the graph has no outputs")]
    NoOutputs,
    /// Writing the model file failed.
    #[error("cannot write ONNX model to {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The bytes are not a valid ONNX model protobuf.
    #[error("not a valid ONNX model: {0}")]
    Decode(prost::DecodeError),
}
