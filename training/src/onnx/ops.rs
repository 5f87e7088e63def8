//! One method per ONNX operator the exporter needs, written against opset 17.
//!
//! Where operators differ in how they take axes (attribute for `ReduceMax`/`ReduceMean`/
//! `Softmax`, input tensor for `ReduceSum`/`Unsqueeze`/`Squeeze`), the methods take plain
//! slices and write whichever form opset 17 requires.

use super::builder::{ElemType, GraphBuilder, Value};
use super::proto::{attribute_proto::AttributeType, AttributeProto};

pub(crate) fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

pub(crate) fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..Default::default()
    }
}

pub(crate) fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(value),
        ..Default::default()
    }
}

impl GraphBuilder {
    fn unary(&mut self, op: &str, x: &Value) -> Value {
        self.node(op, &[Some(x)], vec![])
    }

    fn binary(&mut self, op: &str, a: &Value, b: &Value) -> Value {
        self.node(op, &[Some(a), Some(b)], vec![])
    }

    /// `MatMul` with numpy broadcasting of the leading axes.
    pub fn matmul(&mut self, a: &Value, b: &Value) -> Value {
        self.binary("MatMul", a, b)
    }

    /// Element-wise `Add` (broadcasting).
    pub fn add(&mut self, a: &Value, b: &Value) -> Value {
        self.binary("Add", a, b)
    }

    /// Element-wise `Sub` (broadcasting).
    pub fn sub(&mut self, a: &Value, b: &Value) -> Value {
        self.binary("Sub", a, b)
    }

    /// Element-wise `Mul` (broadcasting).
    pub fn mul(&mut self, a: &Value, b: &Value) -> Value {
        self.binary("Mul", a, b)
    }

    /// Element-wise `Div` (broadcasting).
    pub fn div(&mut self, a: &Value, b: &Value) -> Value {
        self.binary("Div", a, b)
    }

    /// Multiplies by a float constant.
    pub fn mul_scalar(&mut self, x: &Value, factor: f32) -> Value {
        let c = self.scalar_f32(factor);
        self.mul(x, &c)
    }

    /// Adds a float constant.
    pub fn add_scalar(&mut self, x: &Value, term: f32) -> Value {
        let c = self.scalar_f32(term);
        self.add(x, &c)
    }

    /// Element-wise error function.
    pub fn erf(&mut self, x: &Value) -> Value {
        self.unary("Erf", x)
    }

    /// Element-wise negation.
    pub fn neg(&mut self, x: &Value) -> Value {
        self.unary("Neg", x)
    }

    /// Element-wise `Relu`.
    pub fn relu(&mut self, x: &Value) -> Value {
        self.unary("Relu", x)
    }

    /// Element-wise `Sqrt`.
    pub fn sqrt(&mut self, x: &Value) -> Value {
        self.unary("Sqrt", x)
    }

    /// Copies a value under a new name (graph outputs use this).
    pub fn identity(&mut self, x: &Value) -> Value {
        self.unary("Identity", x)
    }

    /// `Softmax` over one axis (opset 13+ semantics: a single axis, not flattened).
    pub fn softmax(&mut self, x: &Value, axis: i64) -> Value {
        self.node("Softmax", &[Some(x)], vec![attr_int("axis", axis)])
    }

    /// `Transpose` with an explicit permutation.
    pub fn transpose(&mut self, x: &Value, perm: &[i64]) -> Value {
        self.node("Transpose", &[Some(x)], vec![attr_ints("perm", perm)])
    }

    /// `Reshape` to a constant target shape; `0` copies the input's size on that axis and `-1`
    /// is inferred, which keeps dynamic batch and token axes dynamic.
    pub fn reshape(&mut self, x: &Value, shape: &[i64]) -> Value {
        let shape = self.const_i64(shape);
        self.reshape_to(x, &shape)
    }

    /// `Reshape` to a shape computed in the graph (an int64 1-d value).
    pub fn reshape_to(&mut self, x: &Value, shape: &Value) -> Value {
        self.binary("Reshape", x, shape)
    }

    /// `Concat` along `axis`.
    pub fn concat(&mut self, values: &[&Value], axis: i64) -> Value {
        let inputs: Vec<Option<&Value>> = values.iter().map(|v| Some(*v)).collect();
        self.node("Concat", &inputs, vec![attr_int("axis", axis)])
    }

    /// `ReduceMax` over `axes` (attribute form, opset < 18).
    pub fn reduce_max(&mut self, x: &Value, axes: &[i64], keepdims: bool) -> Value {
        self.node(
            "ReduceMax",
            &[Some(x)],
            vec![
                attr_ints("axes", axes),
                attr_int("keepdims", keepdims as i64),
            ],
        )
    }

    /// `ReduceMean` over `axes` (attribute form, opset < 18).
    pub fn reduce_mean(&mut self, x: &Value, axes: &[i64], keepdims: bool) -> Value {
        self.node(
            "ReduceMean",
            &[Some(x)],
            vec![
                attr_ints("axes", axes),
                attr_int("keepdims", keepdims as i64),
            ],
        )
    }

    /// `ReduceSum` over `axes` (axes as an input since opset 13).
    pub fn reduce_sum(&mut self, x: &Value, axes: &[i64], keepdims: bool) -> Value {
        let axes = self.const_i64(axes);
        self.node(
            "ReduceSum",
            &[Some(x), Some(&axes)],
            vec![attr_int("keepdims", keepdims as i64)],
        )
    }

    /// `Where(condition, a, b)`: `a` where true, else `b` (broadcasting).
    pub fn where_(&mut self, condition: &Value, a: &Value, b: &Value) -> Value {
        self.node("Where", &[Some(condition), Some(a), Some(b)], vec![])
    }

    /// Logical `Not`.
    pub fn not(&mut self, x: &Value) -> Value {
        self.unary("Not", x)
    }

    /// `Cast` to another element type (bool masks to float for pooling weights).
    pub fn cast(&mut self, x: &Value, to: ElemType) -> Value {
        self.node(
            "Cast",
            &[Some(x)],
            vec![attr_int("to", to.data_type() as i64)],
        )
    }

    /// `Unsqueeze` at `axes` (axes as an input since opset 13).
    pub fn unsqueeze(&mut self, x: &Value, axes: &[i64]) -> Value {
        let axes = self.const_i64(axes);
        self.binary("Unsqueeze", x, &axes)
    }

    /// `Squeeze` at `axes` (axes as an input since opset 13).
    pub fn squeeze(&mut self, x: &Value, axes: &[i64]) -> Value {
        let axes = self.const_i64(axes);
        self.binary("Squeeze", x, &axes)
    }

    /// `Expand` to a shape computed in the graph (bidirectional broadcasting).
    pub fn expand(&mut self, x: &Value, shape: &Value) -> Value {
        self.binary("Expand", x, shape)
    }

    /// `Gather` along `axis`.
    pub fn gather(&mut self, data: &Value, indices: &Value, axis: i64) -> Value {
        self.node(
            "Gather",
            &[Some(data), Some(indices)],
            vec![attr_int("axis", axis)],
        )
    }

    /// `Shape`, restricted to axes `start..end` (opset 15 attributes; `None` = to the end).
    pub fn shape_of(&mut self, x: &Value, start: i64, end: Option<i64>) -> Value {
        let mut attributes = vec![attr_int("start", start)];
        if let Some(end) = end {
            attributes.push(attr_int("end", end));
        }
        self.node("Shape", &[Some(x)], attributes)
    }

    /// `Slice` along `axes` with constant bounds (`i64::MAX` as an end means "to the end").
    pub fn slice(&mut self, x: &Value, starts: &[i64], ends: &[i64], axes: &[i64]) -> Value {
        let starts = self.const_i64(starts);
        let ends = self.const_i64(ends);
        let axes = self.const_i64(axes);
        self.node(
            "Slice",
            &[Some(x), Some(&starts), Some(&ends), Some(&axes)],
            vec![],
        )
    }

    /// Native `LayerNormalization` (opset 17) over the last axis; `bias` is optional.
    pub fn layer_norm(
        &mut self,
        x: &Value,
        scale: &Value,
        bias: Option<&Value>,
        epsilon: f32,
    ) -> Value {
        self.node(
            "LayerNormalization",
            &[Some(x), Some(scale), bias],
            vec![attr_int("axis", -1), attr_float("epsilon", epsilon)],
        )
    }
}
