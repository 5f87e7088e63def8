//! The graph under construction: value naming, graph inputs and outputs, initializers and
//! nodes. Operator helpers live in `ops.rs`, composite layers in `layers.rs`.

use std::collections::HashSet;

use super::proto::{
    tensor_proto::DataType, tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use super::{NamedParams, OnnxError};

/// The default-domain operator set the graph is written against (see the module docs).
pub const OPSET_VERSION: i64 = 17;
/// The IR version that goes with opset 17 (ONNX 1.12).
pub const IR_VERSION: i64 = 8;

/// A tensor in the graph, known by its unique name. Cheap to clone; pass `&Value` to ops.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Value(String);

impl Value {
    /// The tensor's name in the ONNX graph.
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// One axis of a graph input or output: fixed, or symbolic (`batch`, `tokens`) so that ONNX
/// Runtime accepts any size there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    /// An axis whose size is part of the model (feature sizes, `k`).
    Fixed(usize),
    /// A dynamic axis, named so that axes that must agree share a name.
    Named(String),
}

impl Dim {
    /// A dynamic axis called `name`.
    pub fn named(name: &str) -> Self {
        Dim::Named(name.to_string())
    }
}

/// Element types of graph inputs, outputs and casts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemType {
    /// 32-bit float.
    F32,
    /// Boolean (masks).
    Bool,
    /// 64-bit integer (shapes, indices).
    I64,
}

impl ElemType {
    pub(crate) fn data_type(self) -> i32 {
        match self {
            ElemType::F32 => DataType::Float as i32,
            ElemType::Bool => DataType::Bool as i32,
            ElemType::I64 => DataType::Int64 as i32,
        }
    }
}

/// Model-level facts stored in the ONNX file: who produced it, and free-form metadata that
/// ONNX Runtime exposes as custom metadata (class names, preprocessing parameters...).
#[derive(Clone, Debug, Default)]
pub struct ModelInfo {
    /// `producer_version`, usually the crate version.
    pub producer_version: String,
    /// The model's version number (`model_version` in the proto).
    pub model_version: i64,
    /// A human-readable description.
    pub doc_string: String,
    /// Key/value pairs stored as `metadata_props`.
    pub metadata: Vec<(String, String)>,
}

/// Builds an ONNX graph node by node.
///
/// Values get unique names derived from a hint and the current scope
/// (`encoder.blocks.0/attn/softmax_17`), so a graph opened in Netron reads like the module tree.
/// Graph inputs, outputs and parameter initializers keep their exact names.
#[derive(Debug)]
pub struct GraphBuilder {
    name: String,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    used_names: HashSet<String>,
    scope: Vec<String>,
    counter: usize,
}

impl GraphBuilder {
    /// An empty graph called `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            nodes: Vec::new(),
            initializers: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            used_names: HashSet::new(),
            scope: Vec::new(),
            counter: 0,
        }
    }

    /// Runs `f` with `name` appended to the naming scope of new values and nodes.
    pub fn scoped<R>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.scope.push(name.to_string());
        let out = f(self);
        self.scope.pop();
        out
    }

    /// Number of nodes so far (useful in tests and logs).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// A fresh, unused name built from the scope and `hint`.
    pub(crate) fn fresh_name(&mut self, hint: &str) -> String {
        loop {
            self.counter += 1;
            let name = if self.scope.is_empty() {
                format!("{hint}_{}", self.counter)
            } else {
                format!("{}/{hint}_{}", self.scope.join("/"), self.counter)
            };
            if self.used_names.insert(name.clone()) {
                return name;
            }
        }
    }

    fn claim_name(&mut self, name: &str) -> Result<(), OnnxError> {
        if self.used_names.insert(name.to_string()) {
            Ok(())
        } else {
            Err(OnnxError::DuplicateName(name.to_string()))
        }
    }

    /// Declares a graph input called exactly `name`.
    pub fn input(&mut self, name: &str, elem: ElemType, dims: &[Dim]) -> Result<Value, OnnxError> {
        self.claim_name(name)?;
        self.inputs.push(value_info(name, elem, dims));
        Ok(Value(name.to_string()))
    }

    /// Declares `value` as a graph output called exactly `name` (through an `Identity` node when
    /// the value has another name).
    pub fn output(
        &mut self,
        value: &Value,
        name: &str,
        elem: ElemType,
        dims: &[Dim],
    ) -> Result<(), OnnxError> {
        if value.name() != name {
            self.claim_name(name)?;
            self.push_node(
                "Identity",
                vec![value.0.clone()],
                vec![name.to_string()],
                vec![],
            );
        }
        self.outputs.push(value_info(name, elem, dims));
        Ok(())
    }

    /// A float initializer called exactly `name` (parameters keep their burn path).
    pub fn initializer_named(
        &mut self,
        name: &str,
        shape: &[usize],
        data: &[f32],
    ) -> Result<Value, OnnxError> {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(OnnxError::DataLength {
                name: name.to_string(),
                shape: shape.to_vec(),
                expected,
                got: data.len(),
            });
        }
        self.claim_name(name)?;
        let raw: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.initializers.push(TensorProto {
            name: Some(name.to_string()),
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(raw),
            ..Default::default()
        });
        Ok(Value(name.to_string()))
    }

    /// A float initializer with a generated name.
    pub fn initializer(
        &mut self,
        hint: &str,
        shape: &[usize],
        data: &[f32],
    ) -> Result<Value, OnnxError> {
        let name = self.fresh_name(hint);
        self.used_names.remove(&name);
        self.initializer_named(&name, shape, data)
    }

    /// Takes the burn parameter at `path` out of `params` as an initializer named `path`,
    /// checking its shape. Pass `expected` as `None` to accept any shape.
    pub fn param(
        &mut self,
        params: &mut NamedParams,
        path: &str,
        expected: Option<&[usize]>,
    ) -> Result<Value, OnnxError> {
        let shape = &params.get(path)?.shape;
        if let Some(expected) = expected {
            if shape != expected {
                return Err(OnnxError::ParamShape {
                    path: path.to_string(),
                    expected: expected.to_vec(),
                    got: shape.clone(),
                });
            }
        }
        let tensor = params.take(path)?;
        self.initializer_named(path, &tensor.shape, &tensor.data)
    }

    /// A 0-d float constant.
    pub fn scalar_f32(&mut self, value: f32) -> Value {
        let name = self.fresh_name("const");
        self.initializers.push(TensorProto {
            name: Some(name.clone()),
            dims: vec![],
            data_type: Some(DataType::Float as i32),
            float_data: vec![value],
            ..Default::default()
        });
        Value(name)
    }

    /// A 1-d int64 constant (shapes, axes, indices).
    pub fn const_i64(&mut self, values: &[i64]) -> Value {
        let name = self.fresh_name("const_i64");
        self.initializers.push(TensorProto {
            name: Some(name.clone()),
            dims: vec![values.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            int64_data: values.to_vec(),
            ..Default::default()
        });
        Value(name)
    }

    /// A 0-d int64 constant (a `Gather` index that drops the axis).
    pub fn scalar_i64(&mut self, value: i64) -> Value {
        let name = self.fresh_name("const_i64");
        self.initializers.push(TensorProto {
            name: Some(name.clone()),
            dims: vec![],
            data_type: Some(DataType::Int64 as i32),
            int64_data: vec![value],
            ..Default::default()
        });
        Value(name)
    }

    /// Adds a node of any default-domain operator with one output. `None` inputs are skipped
    /// optional inputs (written as the empty name, as ONNX requires).
    pub fn node(
        &mut self,
        op: &str,
        inputs: &[Option<&Value>],
        attributes: Vec<AttributeProto>,
    ) -> Value {
        let out = self.fresh_name(&op.to_ascii_lowercase());
        // Trailing optional inputs are left out; inner ones are written as "".
        let used = inputs
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |i| i + 1);
        let inputs = inputs[..used]
            .iter()
            .map(|v| v.map(|v| v.0.clone()).unwrap_or_default())
            .collect();
        self.push_node(op, inputs, vec![out.clone()], attributes);
        Value(out)
    }

    fn push_node(
        &mut self,
        op: &str,
        inputs: Vec<String>,
        outputs: Vec<String>,
        attributes: Vec<AttributeProto>,
    ) {
        let name = self.fresh_name(&format!("{op}_node"));
        self.nodes.push(NodeProto {
            name: Some(name),
            op_type: Some(op.to_string()),
            input: inputs,
            output: outputs,
            attribute: attributes,
            ..Default::default()
        });
    }

    /// Checks that every node reads only defined values (graph inputs, initializers, outputs of
    /// earlier nodes), i.e. the nodes are topologically sorted, and that every graph output is
    /// defined. ONNX Runtime would reject such a graph too, but with a less direct message.
    pub fn validate(&self) -> Result<(), OnnxError> {
        if self.outputs.is_empty() {
            return Err(OnnxError::NoOutputs);
        }
        let mut defined: HashSet<&str> = self
            .inputs
            .iter()
            .filter_map(|v| v.name.as_deref())
            .chain(self.initializers.iter().filter_map(|t| t.name.as_deref()))
            .collect();
        for node in &self.nodes {
            for input in node.input.iter().filter(|i| !i.is_empty()) {
                if !defined.contains(input.as_str()) {
                    return Err(OnnxError::UndefinedValue {
                        node: node.name.clone().unwrap_or_default(),
                        op: node.op_type.clone().unwrap_or_default(),
                        value: input.clone(),
                    });
                }
            }
            defined.extend(node.output.iter().map(String::as_str));
        }
        for output in &self.outputs {
            let name = output.name.as_deref().unwrap_or_default();
            if !defined.contains(name) {
                return Err(OnnxError::UndefinedOutput(name.to_string()));
            }
        }
        Ok(())
    }

    /// Finishes the graph into a model (opset [`OPSET_VERSION`], IR [`IR_VERSION`]).
    pub fn into_model(self, info: &ModelInfo) -> Result<ModelProto, OnnxError> {
        self.validate()?;
        let graph = GraphProto {
            name: Some(self.name),
            node: self.nodes,
            initializer: self.initializers,
            input: self.inputs,
            output: self.outputs,
            ..Default::default()
        };
        Ok(ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(OPSET_VERSION),
            }],
            producer_name: Some("jettag-train".to_string()),
            producer_version: Some(info.producer_version.clone()),
            model_version: Some(info.model_version),
            doc_string: Some(info.doc_string.clone()),
            metadata_props: info
                .metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: Some(k.clone()),
                    value: Some(v.clone()),
                })
                .collect(),
            graph: Some(graph),
            ..Default::default()
        })
    }
}

fn value_info(name: &str, elem: ElemType, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Fixed(n) => tensor_shape_proto::dimension::Value::DimValue(*n as i64),
                Dim::Named(s) => tensor_shape_proto::dimension::Value::DimParam(s.clone()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem.data_type()),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
