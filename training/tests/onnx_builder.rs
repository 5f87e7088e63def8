//! The graph builder writes well-formed models and refuses malformed ones: names, opset and IR
//! version, dynamic axes, metadata, initializer bytes, and the parameter bookkeeping that
//! catches an exporter out of step with the model.

use burn::backend::Flex;
use burn::nn::{LinearConfig, LinearLayout};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use jettag_train::onnx::proto::{tensor_shape_proto::dimension, type_proto};
use jettag_train::onnx::{
    decode_model, encode_model, Dim, ElemType, GraphBuilder, ModelInfo, NamedParams, OnnxError,
    ParamTensor, IR_VERSION, OPSET_VERSION,
};

fn params(entries: &[(&str, &[usize])]) -> NamedParams {
    NamedParams::from_tensors(entries.iter().map(|(name, shape)| {
        let n = shape.iter().product();
        (
            name.to_string(),
            ParamTensor {
                shape: shape.to_vec(),
                data: (0..n).map(|i| i as f32 * 0.5).collect(),
            },
        )
    }))
}

#[test]
fn model_header_axes_and_metadata_survive_a_round_trip() {
    let mut p = params(&[("fc.weight", &[3, 2]), ("fc.bias", &[2])]);
    let mut g = GraphBuilder::new("g");
    let x = g
        .input("x", ElemType::F32, &[Dim::named("batch"), Dim::Fixed(3)])
        .unwrap();
    let y = g.linear(&mut p, "fc", &x).unwrap();
    g.output(
        &y,
        "y",
        ElemType::F32,
        &[Dim::named("batch"), Dim::Fixed(2)],
    )
    .unwrap();
    let info = ModelInfo {
        producer_version: "9.9.9".into(),
        model_version: 4,
        doc_string: "doc".into(),
        metadata: vec![("classes".into(), "QCD,Tbqq".into())],
    };
    let bytes = encode_model(&g.into_model(&info).unwrap());
    let model = decode_model(&bytes).unwrap();

    assert_eq!(model.ir_version, Some(IR_VERSION));
    assert_eq!(model.opset_import.len(), 1);
    assert_eq!(model.opset_import[0].version, Some(OPSET_VERSION));
    assert_eq!(model.opset_import[0].domain.as_deref(), Some(""));
    assert_eq!(model.producer_name.as_deref(), Some("jettag-train"));
    assert_eq!(model.model_version, Some(4));
    assert_eq!(model.metadata_props[0].key.as_deref(), Some("classes"));
    assert_eq!(model.metadata_props[0].value.as_deref(), Some("QCD,Tbqq"));

    let graph = model.graph.unwrap();
    let ops: Vec<_> = graph
        .node
        .iter()
        .map(|n| n.op_type.clone().unwrap())
        .collect();
    assert_eq!(ops, ["MatMul", "Add", "Identity"]);
    let init_names: Vec<_> = graph
        .initializer
        .iter()
        .map(|t| t.name.clone().unwrap())
        .collect();
    assert_eq!(init_names, ["fc.weight", "fc.bias"]);
    // Raw little-endian f32 bytes in row-major order.
    let w = &graph.initializer[0];
    assert_eq!(w.dims, [3, 2]);
    let raw = w.raw_data.as_ref().unwrap();
    let decoded: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(decoded, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);

    let Some(type_proto::Value::TensorType(t)) =
        graph.input[0].r#type.as_ref().unwrap().value.clone()
    else {
        panic!("tensor input expected")
    };
    let dims: Vec<_> = t
        .shape
        .unwrap()
        .dim
        .into_iter()
        .map(|d| d.value.unwrap())
        .collect();
    assert_eq!(
        dims,
        [
            dimension::Value::DimParam("batch".into()),
            dimension::Value::DimValue(3)
        ]
    );
    assert_eq!(graph.output[0].name.as_deref(), Some("y"));
}

#[test]
fn malformed_graphs_are_errors() {
    let mut g = GraphBuilder::new("g");
    let x = g.input("x", ElemType::F32, &[Dim::Fixed(2)]).unwrap();
    assert!(matches!(
        g.input("x", ElemType::F32, &[Dim::Fixed(2)]),
        Err(OnnxError::DuplicateName(n)) if n == "x"
    ));
    assert!(matches!(
        g.initializer_named("w", &[2, 3], &[0.0; 5]),
        Err(OnnxError::DataLength {
            expected: 6,
            got: 5,
            ..
        })
    ));
    // A graph without outputs, then one whose node reads a value defined nowhere.
    assert!(matches!(
        GraphBuilder::new("e").validate(),
        Err(OnnxError::NoOutputs)
    ));
    let mut other = GraphBuilder::new("other");
    let foreign = other
        .input("foreign", ElemType::F32, &[Dim::Fixed(2)])
        .unwrap();
    let y = g.add(&x, &foreign);
    g.output(&y, "y", ElemType::F32, &[Dim::Fixed(2)]).unwrap();
    assert!(matches!(
        g.into_model(&ModelInfo::default()),
        Err(OnnxError::UndefinedValue { value, .. }) if value == "foreign"
    ));
}

#[test]
fn parameter_bookkeeping_catches_exporter_mistakes() {
    let mut p = params(&[
        ("fc.weight", &[3, 2]),
        ("fc.bias", &[2]),
        ("head.weight", &[2, 1]),
        ("predictor.blocks.0.weight", &[2, 2]),
    ]);
    let mut g = GraphBuilder::new("g");
    let x = g
        .input("x", ElemType::F32, &[Dim::Fixed(1), Dim::Fixed(3)])
        .unwrap();
    assert!(matches!(
        g.param(&mut p, "fc.weight", Some(&[2, 3])),
        Err(OnnxError::ParamShape { .. })
    ));
    // A failed shape check leaves the parameter in place.
    g.linear(&mut p, "fc", &x).unwrap();
    assert!(matches!(
        g.linear(&mut p, "fc", &x),
        Err(OnnxError::ParamTakenTwice(n)) if n == "fc.weight"
    ));
    assert!(matches!(
        g.linear(&mut p, "missing", &x),
        Err(OnnxError::MissingParam(n)) if n == "missing.weight"
    ));
    assert!(matches!(
        p.ensure_all_used(),
        Err(OnnxError::UnusedParams(left)) if left == ["head.weight", "predictor.blocks.0.weight"]
    ));
    assert_eq!(p.discard_prefix("predictor"), 1);
    assert_eq!(p.remaining(), ["head.weight"]);
}

/// burn stores a column-layout `Linear` weight transposed in memory; extraction must still give
/// its logical `[in, out]` matrix, the one `forward` multiplies by.
#[test]
fn extraction_reads_logical_weights_of_either_layout() {
    type B = Flex;
    let device = Default::default();
    B::seed(&device, 1);
    for layout in [LinearLayout::Row, LinearLayout::Col] {
        let linear = LinearConfig::new(3, 2)
            .with_bias(false)
            .with_layout(layout)
            .init::<B>(&device);
        let p = NamedParams::from_module(&linear);
        let w = p.get("weight").unwrap();
        assert_eq!(w.shape, [3, 2]);
        // Row i of the weight is the output for the unit input e_i.
        let eye = Tensor::<B, 2>::eye(3, &device);
        let out: Vec<f32> = linear.forward(eye).into_data().iter::<f32>().collect();
        assert_eq!(w.data, out, "{layout:?}");
        assert_eq!(p.remaining(), ["weight"]);
    }
}
