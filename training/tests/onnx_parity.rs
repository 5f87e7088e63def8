//! The ONNX building blocks compute what burn computes: for a `Linear`, a `LayerNorm`, a GELU
//! MLP and a pre-LN masked multi-head attention block with an additive pair bias (written with
//! burn tensor ops the way the HEP-JEPA encoder does it), the exported graph run through ONNX
//! Runtime (via `ort`, the library the server uses) matches burn to 1e-5 on random inputs,
//! with several batch and token sizes through one graph (dynamic axes).

mod onnx_support;

use burn::backend::Flex;
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig, LinearLayout};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};
use jettag_train::onnx::{
    encode_model, AttentionMask, Dim, ElemType, GraphBuilder, ModelInfo, NamedParams, Value,
};
use onnx_support::{bool_input, f32_input, max_abs_diff, ort_env, run, session, Rng};

type TB = Flex;

const TOLERANCE: f32 = 1e-5;
const LN_EPS: f64 = 1e-5;

fn device() -> burn::tensor::Device<TB> {
    Default::default()
}

fn tensor<const D: usize>(shape: [usize; D], data: Vec<f32>) -> Tensor<TB, D> {
    Tensor::from_data(TensorData::new(data, shape), &device())
}

fn values<const D: usize>(t: Tensor<TB, D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// A random padding mask `[b, t]` with at least one real token per jet and real tokens first,
/// as batches of jets padded to the longest are.
fn padding_mask(rng: &mut Rng, b: usize, t: usize) -> Vec<bool> {
    (0..b)
        .flat_map(|_| {
            let real = 1 + rng.below(t);
            (0..t).map(move |i| i < real)
        })
        .collect()
}

fn model_bytes(g: GraphBuilder) -> Vec<u8> {
    let info = ModelInfo {
        producer_version: env!("CARGO_PKG_VERSION").into(),
        model_version: 1,
        doc_string: "parity test".into(),
        metadata: vec![("purpose".into(), "test".into())],
    };
    encode_model(&g.into_model(&info).expect("valid graph"))
}

/// `[batch, tokens, width]` graph dims.
fn btd(width: usize) -> Vec<Dim> {
    vec![Dim::named("batch"), Dim::named("tokens"), Dim::Fixed(width)]
}

#[derive(Module, Debug)]
struct Mlp<B: Backend> {
    fc1: Linear<B>,
    fc2: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.fc2.forward(gelu(self.fc1.forward(x)))
    }
}

#[test]
fn linear_layernorm_and_gelu_mlp_match_burn() {
    let Some(env) = ort_env() else { return };
    let (d_in, hidden, d_out) = (7, 24, 5);
    TB::seed(&device(), 11);
    // One `Linear` in the column layout (stored transposed) to check that the extraction
    // reads burn's logical [in, out] weight whatever the memory layout.
    let linear: Linear<TB> = LinearConfig::new(d_in, d_out)
        .with_layout(LinearLayout::Col)
        .init(&device());
    let norm: LayerNorm<TB> = LayerNormConfig::new(d_in).init(&device());
    let mlp: Mlp<TB> = Mlp {
        fc1: LinearConfig::new(d_in, hidden).init(&device()),
        fc2: LinearConfig::new(hidden, d_out)
            .with_bias(false)
            .init(&device()),
    };
    // LayerNorm initialises to γ = 1, β = 0, which would not test the parameters.
    let mut rng = Rng::new(3);
    let norm = perturb(norm, &mut rng);

    let mut params = NamedParams::from_tensors(
        prefixed("linear", &NamedParams::from_module(&linear))
            .into_iter()
            .chain(prefixed("norm", &NamedParams::from_module(&norm)))
            .chain(prefixed("mlp", &NamedParams::from_module(&mlp))),
    );
    let mut g = GraphBuilder::new("blocks");
    let x = g.input("x", ElemType::F32, &btd(d_in)).unwrap();
    let y_linear = g.linear(&mut params, "linear", &x).unwrap();
    let y_norm = g
        .layer_norm_from(&mut params, "norm", &x, LN_EPS as f32)
        .unwrap();
    let h = g.linear(&mut params, "mlp.fc1", &x).unwrap();
    let h = g.gelu(&h);
    let y_mlp = g.linear(&mut params, "mlp.fc2", &h).unwrap();
    params.ensure_all_used().unwrap();
    g.output(&y_linear, "linear", ElemType::F32, &btd(d_out))
        .unwrap();
    g.output(&y_norm, "norm", ElemType::F32, &btd(d_in))
        .unwrap();
    g.output(&y_mlp, "mlp", ElemType::F32, &btd(d_out)).unwrap();
    let mut sess = session(&env, &model_bytes(g));

    for (b, t) in [(1, 1), (3, 5), (37, 9)] {
        let data = rng.normals(b * t * d_in);
        let x = tensor([b, t, d_in], data.clone());
        let expected = [
            values(linear.forward(x.clone())),
            values(norm.forward(x.clone())),
            values(mlp.forward(x)),
        ];
        let got = run(
            &mut sess,
            vec![("x", f32_input(&[b, t, d_in], data))],
            &["linear", "norm", "mlp"],
        );
        let expected_shapes = [vec![b, t, d_out], vec![b, t, d_in], vec![b, t, d_out]];
        for ((name, (shape, out)), (want, want_shape)) in ["linear", "norm", "mlp"]
            .iter()
            .zip(&got)
            .zip(expected.iter().zip(&expected_shapes))
        {
            assert_eq!(shape, want_shape, "{name} shape at b={b} t={t}");
            let diff = max_abs_diff(out, want);
            assert!(diff <= TOLERANCE, "{name} differs by {diff} at b={b} t={t}");
        }
    }
}

/// Pre-LN attention block as the encoder uses it: `x + proj(attn(LN(x)))`, with a fused qkv
/// projection, a per-head bias projected from the 4 pair features, and padded keys masked.
#[derive(Module, Debug)]
struct AttentionBlock<B: Backend> {
    norm: LayerNorm<B>,
    qkv: Linear<B>,
    proj: Linear<B>,
    pair_bias: Linear<B>,
}

const HEADS: usize = 4;
const HEAD_DIM: usize = 6;
const D: usize = HEADS * HEAD_DIM;
const PAIR: usize = 4;

/// The two ways of hiding padded keys: replace their scores (`mask_fill` with −∞), or add a
/// large negative term computed once (`(1 − mask) · −1e9`, what the HEP-JEPA encoder does).
#[derive(Clone, Copy, Debug)]
enum MaskStyle {
    Fill,
    Additive,
}

const MASK_NEG: f32 = -1.0e9;

impl<B: Backend> AttentionBlock<B> {
    fn forward(
        &self,
        x: Tensor<B, 3>,
        pair: Tensor<B, 4>,
        real: Tensor<B, 2, Bool>,
        style: MaskStyle,
    ) -> Tensor<B, 3> {
        let [b, t, _] = x.dims();
        let heads = |x: Tensor<B, 3>| x.reshape([b, t, HEADS, HEAD_DIM]).swap_dims(1, 2);
        let qkv = self.qkv.forward(self.norm.forward(x.clone()));
        let q = heads(qkv.clone().narrow(2, 0, D));
        let k = heads(qkv.clone().narrow(2, D, D));
        let v = heads(qkv.narrow(2, 2 * D, D));
        // [B, 4, T, T] → [B, T, T, 4] → [B, T, T, H] → [B, H, T, T]
        let bias = self
            .pair_bias
            .forward(pair.permute([0, 2, 3, 1]))
            .permute([0, 3, 1, 2]);
        let scale = (HEAD_DIM as f32).powf(-0.5);
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale) + bias;
        let scores = match style {
            MaskStyle::Fill => {
                let padded_keys = real
                    .bool_not()
                    .reshape([b, 1, 1, t])
                    .expand([b, HEADS, t, t]);
                scores.mask_fill(padded_keys, f32::NEG_INFINITY)
            }
            MaskStyle::Additive => {
                let mask_bias = (real.float().neg() + 1.0)
                    .mul_scalar(MASK_NEG)
                    .reshape([b, 1, 1, t]);
                scores + mask_bias
            }
        };
        let out = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b, t, D]);
        x + self.proj.forward(out)
    }
}

#[test]
fn masked_pair_bias_attention_matches_burn() {
    let Some(env) = ort_env() else { return };
    for style in [MaskStyle::Fill, MaskStyle::Additive] {
        let mut rng = Rng::new(17);
        let block = attention_block(&mut rng);
        let mut sess = session(&env, &attention_graph(&block, style));
        for (b, t) in [(1, 3), (2, 7), (37, 12)] {
            let inputs = AttentionInputs::random(&mut rng, b, t);
            let want = inputs.burn_outputs(&block, style);
            let got = run(
                &mut sess,
                vec![
                    ("x", f32_input(&[b, t, D], inputs.x.clone())),
                    ("pair", f32_input(&[b, PAIR, t, t], inputs.pair.clone())),
                    ("token_mask", bool_input(&[b, t], inputs.mask.clone())),
                ],
                &["y", "mean", "max"],
            );
            assert_eq!(got[0].0, vec![b, t, D]);
            assert_eq!(got[1].0, vec![b, D]);
            assert_eq!(got[2].0, vec![b, D]);
            for ((name, want), (_, out)) in ["y", "mean", "max"].iter().zip(&want).zip(&got) {
                let diff = max_abs_diff(out, want);
                assert!(
                    diff <= TOLERANCE,
                    "{style:?}: {name} differs by {diff} at b={b} t={t}"
                );
            }
        }
    }
}

/// The saved file passes `onnx.checker` with full shape inference and runs in Python
/// `onnxruntime` (what a user of the exported model would do), agreeing with burn.
#[test]
fn saved_model_runs_in_python_onnxruntime() {
    let python = onnx_support::workspace_root().join(".venv/bin/python");
    if !python.exists() {
        eprintln!("SKIP: {} not found (run `make venv`)", python.display());
        return;
    }
    let mut rng = Rng::new(23);
    let block = attention_block(&mut rng);
    let dir = std::env::temp_dir().join(format!("jettag-onnx-py-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.onnx");
    std::fs::write(&path, attention_graph(&block, MaskStyle::Additive)).unwrap();
    let (b, t) = (5, 9);
    let inputs = AttentionInputs::random(&mut rng, b, t);
    let want = inputs.burn_outputs(&block, MaskStyle::Additive);

    let script = r#"
import json, sys
import numpy as np
import onnx, onnxruntime as ort
path, d = sys.argv[1], json.load(sys.stdin)
onnx.checker.check_model(onnx.load(path), full_check=True)
sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
b, t = d["b"], d["t"]
feeds = {
    "x": np.array(d["x"], dtype=np.float32).reshape(b, t, -1),
    "pair": np.array(d["pair"], dtype=np.float32).reshape(b, -1, t, t),
    "token_mask": np.array(d["mask"], dtype=bool).reshape(b, t),
}
names = ["y", "mean", "max"]
outs = sess.run(names, feeds)
print(json.dumps({
    "inputs": {i.name: [str(s) for s in i.shape] for i in sess.get_inputs()},
    **{n: o.astype(np.float64).ravel().tolist() for n, o in zip(names, outs)},
}))
"#;
    let payload = serde_json::json!({
        "b": b, "t": t, "x": inputs.x, "pair": inputs.pair, "mask": inputs.mask,
    });
    let mut child = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(payload.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "python onnxruntime failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got["inputs"]["x"],
        serde_json::json!(["batch", "tokens", D.to_string()])
    );
    assert_eq!(
        got["inputs"]["token_mask"],
        serde_json::json!(["batch", "tokens"])
    );
    for (name, want) in ["y", "mean", "max"].iter().zip(&want) {
        let out: Vec<f32> = got[*name]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let diff = max_abs_diff(&out, want);
        assert!(diff <= TOLERANCE, "python: {name} differs by {diff}");
    }
}

/// A block with random weights (LayerNorm perturbed away from γ = 1, β = 0).
fn attention_block(rng: &mut Rng) -> AttentionBlock<TB> {
    TB::seed(&device(), 5);
    AttentionBlock {
        norm: perturb(LayerNormConfig::new(D).init(&device()), rng),
        qkv: LinearConfig::new(D, 3 * D).init(&device()),
        proj: LinearConfig::new(D, D).init(&device()),
        pair_bias: LinearConfig::new(PAIR, HEADS).init(&device()),
    }
}

/// The block, then mean and max pooling over real tokens (as the classifier head pools),
/// written with the graph builder from the block's parameters.
fn attention_graph(block: &AttentionBlock<TB>, style: MaskStyle) -> Vec<u8> {
    let mut params = NamedParams::from_module(block);
    assert_eq!(
        params.remaining(),
        [
            "norm.beta",
            "norm.gamma",
            "pair_bias.bias",
            "pair_bias.weight",
            "proj.bias",
            "proj.weight",
            "qkv.bias",
            "qkv.weight"
        ]
    );

    let mut g = GraphBuilder::new("attention_block");
    let x = g.input("x", ElemType::F32, &btd(D)).unwrap();
    let pair_dims = [
        Dim::named("batch"),
        Dim::Fixed(PAIR),
        Dim::named("tokens"),
        Dim::named("tokens"),
    ];
    let pair = g.input("pair", ElemType::F32, &pair_dims).unwrap();
    let real = g
        .input(
            "token_mask",
            ElemType::Bool,
            &[Dim::named("batch"), Dim::named("tokens")],
        )
        .unwrap();
    let y = g
        .scoped(
            "block",
            |g| -> Result<Value, jettag_train::onnx::OnnxError> {
                let h = g.layer_norm_from(&mut params, "norm", &x, LN_EPS as f32)?;
                let qkv = g.linear(&mut params, "qkv", &h)?;
                let q = g.slice(&qkv, &[0], &[D as i64], &[2]);
                let k = g.slice(&qkv, &[D as i64], &[2 * D as i64], &[2]);
                let v = g.slice(&qkv, &[2 * D as i64], &[3 * D as i64], &[2]);
                let pair_last = g.transpose(&pair, &[0, 2, 3, 1]);
                let bias = g.linear(&mut params, "pair_bias", &pair_last)?;
                let bias = g.transpose(&bias, &[0, 3, 1, 2]);
                let mask_bias;
                let mask = match style {
                    MaskStyle::Fill => AttentionMask::KeyPadding {
                        real: &real,
                        fill: f32::NEG_INFINITY,
                    },
                    MaskStyle::Additive => {
                        mask_bias = g.key_padding_bias(&real, MASK_NEG);
                        AttentionMask::Additive(&mask_bias)
                    }
                };
                let attended = g.attention(
                    &q,
                    &k,
                    &v,
                    HEADS,
                    HEAD_DIM,
                    (HEAD_DIM as f32).powf(-0.5),
                    Some(&bias),
                    mask,
                );
                let projected = g.linear(&mut params, "proj", &attended)?;
                Ok(g.add(&x, &projected))
            },
        )
        .unwrap();
    params.ensure_all_used().unwrap();
    let mean = g.masked_mean(&y, &real);
    let max = g.masked_max(&y, &real, f32::NEG_INFINITY);
    g.output(&y, "y", ElemType::F32, &btd(D)).unwrap();
    let pooled = [Dim::named("batch"), Dim::Fixed(D)];
    g.output(&mean, "mean", ElemType::F32, &pooled).unwrap();
    g.output(&max, "max", ElemType::F32, &pooled).unwrap();
    model_bytes(g)
}

/// One random padded batch for the attention block.
struct AttentionInputs {
    b: usize,
    t: usize,
    x: Vec<f32>,
    pair: Vec<f32>,
    mask: Vec<bool>,
}

impl AttentionInputs {
    fn random(rng: &mut Rng, b: usize, t: usize) -> Self {
        Self {
            b,
            t,
            x: rng.normals(b * t * D),
            pair: rng.normals(b * PAIR * t * t),
            mask: padding_mask(rng, b, t),
        }
    }

    /// burn's `y`, masked mean and masked max, flattened.
    fn burn_outputs(&self, block: &AttentionBlock<TB>, style: MaskStyle) -> [Vec<f32>; 3] {
        let (b, t) = (self.b, self.t);
        let real: Tensor<TB, 2, Bool> =
            Tensor::from_data(TensorData::new(self.mask.clone(), [b, t]), &device());
        let y = block.forward(
            tensor([b, t, D], self.x.clone()),
            tensor([b, PAIR, t, t], self.pair.clone()),
            real.clone(),
            style,
        );
        let weights = real.float().reshape([b, t, 1]);
        let mean = (y.clone() * weights.clone()).sum_dim(1) / weights.sum_dim(1);
        let max = y
            .clone()
            .mask_fill(real_nots(&self.mask, b, t), f32::NEG_INFINITY)
            .max_dim(1);
        [values(y), values(mean), values(max)]
    }
}

/// The padded-token mask `[b, t, D]` (true where padded) for max-pooling in burn.
fn real_nots(mask: &[bool], b: usize, t: usize) -> Tensor<TB, 3, Bool> {
    let padded: Vec<bool> = mask.iter().map(|&m| !m).collect();
    Tensor::<TB, 2, Bool>::from_data(TensorData::new(padded, [b, t]), &device())
        .reshape([b, t, 1])
        .expand([b, t, D])
}

/// Adds noise to every parameter so that initial values (LayerNorm's γ = 1, β = 0) do not hide
/// a parameter the export ignores.
fn perturb<M: Module<TB>>(module: M, rng: &mut Rng) -> M {
    struct Noise<'a>(&'a mut Rng);
    impl burn::module::ModuleMapper<TB> for Noise<'_> {
        fn map_float<const D: usize>(
            &mut self,
            param: burn::module::Param<Tensor<TB, D>>,
        ) -> burn::module::Param<Tensor<TB, D>> {
            let (id, tensor, mapper) = param.consume();
            let shape = tensor.dims();
            let noise = self.0.normals(shape.iter().product());
            let noise = Tensor::<TB, D>::from_data(TensorData::new(noise, shape), &device());
            burn::module::Param::from_mapped_value(id, tensor + noise.mul_scalar(0.3), mapper)
        }
    }
    module.map(&mut Noise(rng))
}

fn prefixed(prefix: &str, params: &NamedParams) -> Vec<(String, jettag_train::onnx::ParamTensor)> {
    params
        .remaining()
        .into_iter()
        .map(|name| {
            let tensor = params.get(&name).unwrap().clone();
            (format!("{prefix}.{name}"), tensor)
        })
        .collect()
}
