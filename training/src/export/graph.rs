//! The HEP-JEPA forward pass written as an ONNX graph from trained burn weights.
//!
//! Every step mirrors the burn code op for op (see [`crate::model::Encoder`],
//! [`crate::model::Classifier`]), so ONNX Runtime computes what burn computes up to float
//! rounding; the parity tests hold the two to 1e-4. Inputs and outputs are exactly DESIGN.md
//! section 4: `tokens` `[B,T,k,7]`, `centers` `[B,T,2]`, `pair` `[B,4,T,T]`, `token_mask`
//! `[B,T]` (bool) in; `probs` `[B,C]` (classifiers) and `embedding` `[B,D]` out, with `B` and
//! `T` dynamic. Register tokens are learned constants prepended inside the graph, so clients
//! never see them.
//!
//! Each burn parameter becomes one initializer named by its module path; the export fails if
//! it leaves any parameter unused ([`NamedParams::ensure_all_used`]), which would mean the
//! graph silently computes a different model.
use burn::prelude::*;

use crate::config::EncoderConfig;
use crate::model::{Classifier, Encoder, LN_EPS, MASK_NEG};
use crate::onnx::proto::ModelProto;
use crate::onnx::{AttentionMask, Dim, ElemType, GraphBuilder, ModelInfo, NamedParams, OnnxError, Value};

/// Per-particle features (`jettag_core::N_FEATURES`).
const N_FEATURES: usize = jettag_core::N_FEATURES;
/// Pair-feature channels (`jettag_core::N_PAIR`).
const N_PAIR: usize = jettag_core::N_PAIR;

/// Shapes the graph needs beyond the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphSpec {
    /// Particles per token (fixed axis 2 of `tokens`).
    pub k: usize,
    pub encoder: EncoderConfig,
}

/// The four graph inputs.
struct Inputs {
    tokens: Value,
    centers: Value,
    pair: Value,
    mask: Value,
}

fn declare_inputs(g: &mut GraphBuilder, k: usize) -> Result<Inputs, OnnxError> {
    let (b, t) = (Dim::named("batch"), Dim::named("tokens"));
    Ok(Inputs {
        tokens: g.input("tokens", ElemType::F32, &[b.clone(), t.clone(), Dim::Fixed(k), Dim::Fixed(N_FEATURES)])?,
        centers: g.input("centers", ElemType::F32, &[b.clone(), t.clone(), Dim::Fixed(2)])?,
        pair: g.input("pair", ElemType::F32, &[b.clone(), Dim::Fixed(N_PAIR), t.clone(), t.clone()])?,
        mask: g.input("token_mask", ElemType::Bool, &[b, t])?,
    })
}

/// `prefix.name`, or `name` at the root.
fn path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// [`crate::model::Mlp`]: `fc2(gelu(fc1(x)))`.
fn mlp(g: &mut GraphBuilder, params: &mut NamedParams, prefix: &str, x: &Value) -> Result<Value, OnnxError> {
    let h = g.linear(params, &path(prefix, "fc1"), x)?;
    let h = g.gelu(&h);
    g.linear(params, &path(prefix, "fc2"), &h)
}

/// Zero-pads `x` by `before` entries at the front of each listed axis (ONNX `Pad`, constant
/// mode, opset 13+ form with the pads as an input).
fn pad_front(g: &mut GraphBuilder, x: &Value, rank: usize, axes: &[usize], before: usize) -> Value {
    let mut pads = vec![0i64; 2 * rank];
    for &a in axes {
        pads[a] = before as i64;
    }
    let pads = g.const_i64(&pads);
    let zero = g.scalar_f32(0.0);
    g.node("Pad", &[Some(x), Some(&pads), Some(&zero)], vec![])
}

/// [`crate::model::Tokenizer::forward`]: `[B,T,k,7]`, `[B,T,2]` → `[B,T,D]`.
fn tokenizer(g: &mut GraphBuilder, params: &mut NamedParams, prefix: &str, inputs: &Inputs) -> Result<Value, OnnxError> {
    let f = mlp(g, params, &path(prefix, "particle_mlp"), &inputs.tokens)?;
    let pooled = g.reduce_max(&f, &[2], true);
    let shape = g.shape_of(&f, 0, None);
    let pooled = g.expand(&pooled, &shape);
    let f = g.concat(&[&f, &pooled], 3);
    let f = mlp(g, params, &path(prefix, "group_mlp"), &f)?;
    let e = g.reduce_max(&f, &[2], false);
    let c = mlp(g, params, &path(prefix, "center_mlp"), &inputs.centers)?;
    Ok(g.add(&e, &c))
}

/// [`crate::model::Encoder::forward`] then `token_outputs`: the real tokens' final outputs
/// `[B,T,D]` (registers dropped).
fn encoder_tokens(
    g: &mut GraphBuilder,
    params: &mut NamedParams,
    prefix: &str,
    spec: &GraphSpec,
    inputs: &Inputs,
) -> Result<Value, OnnxError> {
    let cfg = &spec.encoder;
    let (d, h, r) = (cfg.d_model, cfg.n_heads, cfg.n_registers);
    let head_dim = d / h;
    let e = g.scoped("tokenizer", |g| tokenizer(g, params, &path(prefix, "tokenizer"), inputs))?;

    // Pair bias [B,H,T,T], zero-padded for the registers.
    let bias = if cfg.pair_bias {
        let u = g.scoped("pair_bias", |g| -> Result<Value, OnnxError> {
            let p = g.transpose(&inputs.pair, &[0, 2, 3, 1]);
            let u = mlp(g, params, &path(prefix, "pair_bias"), &p)?;
            let u = g.transpose(&u, &[0, 3, 1, 2]);
            Ok(if r > 0 { pad_front(g, &u, 4, &[2, 3], r) } else { u })
        })?;
        Some(u)
    } else {
        None
    };

    // Registers in front of the tokens; they count as real keys (zero padding bias).
    let mask_bias = g.key_padding_bias(&inputs.mask, MASK_NEG);
    let (x, mask_bias) = if r > 0 {
        let regs = g.param(params, &path(prefix, "registers"), Some(&[r, d]))?;
        let regs = g.unsqueeze(&regs, &[0]);
        let batch = g.shape_of(&inputs.tokens, 0, Some(1));
        let rest = g.const_i64(&[r as i64, d as i64]);
        let shape = g.concat(&[&batch, &rest], 0);
        let regs = g.expand(&regs, &shape);
        (g.concat(&[&regs, &e], 1), pad_front(g, &mask_bias, 4, &[3], r))
    } else {
        (e, mask_bias)
    };

    let mut x = x;
    for i in 0..cfg.n_layers {
        let block = path(prefix, &format!("blocks.{i}"));
        x = g.scoped(&format!("block{i}"), |g| -> Result<Value, OnnxError> {
            let n1 = g.layer_norm_from(params, &format!("{block}.norm1"), &x, LN_EPS as f32)?;
            let q = g.linear(params, &format!("{block}.attn.query"), &n1)?;
            let k = g.linear(params, &format!("{block}.attn.key"), &n1)?;
            let v = g.linear(params, &format!("{block}.attn.value"), &n1)?;
            let scale = (1.0 / (head_dim as f64).sqrt()) as f32;
            let o = g.attention(&q, &k, &v, h, head_dim, scale, bias.as_ref(), AttentionMask::Additive(&mask_bias));
            let o = g.linear(params, &format!("{block}.attn.output"), &o)?;
            let x = g.add(&x, &o);
            let n2 = g.layer_norm_from(params, &format!("{block}.norm2"), &x, LN_EPS as f32)?;
            let m = mlp(g, params, &format!("{block}.mlp"), &n2)?;
            Ok(g.add(&x, &m))
        })?;
    }
    let x = g.layer_norm_from(params, &path(prefix, "norm"), &x, LN_EPS as f32)?;
    Ok(if r > 0 { g.slice(&x, &[r as i64], &[i64::MAX], &[1]) } else { x })
}

/// [`crate::model::masked_mean`]: `Σ_t x·m / max(Σ_t m, 1)` → `[B,D]`.
fn masked_mean(g: &mut GraphBuilder, x: &Value, mask: &Value) -> Value {
    let w = g.cast(mask, ElemType::F32);
    let w = g.unsqueeze(&w, &[2]);
    let weighted = g.mul(x, &w);
    let sum = g.reduce_sum(&weighted, &[1], false);
    let count = g.reduce_sum(&w, &[1], false);
    let one = g.scalar_f32(1.0);
    let count = g.node("Max", &[Some(&count), Some(&one)], vec![]);
    g.div(&sum, &count)
}

fn finish(g: GraphBuilder, params: &NamedParams, info: &ModelInfo) -> Result<ModelProto, OnnxError> {
    params.ensure_all_used()?;
    g.into_model(info)
}

fn check_spec<B: Backend>(encoder: &Encoder<B>, spec: &GraphSpec) -> Result<(), OnnxError> {
    let cfg = &spec.encoder;
    let problem = if encoder.d_model != cfg.d_model || encoder.n_registers != cfg.n_registers {
        Some("d_model or n_registers")
    } else if encoder.blocks.len() != cfg.n_layers {
        Some("n_layers")
    } else if encoder.pair_bias.is_some() != cfg.pair_bias {
        Some("pair_bias")
    } else if encoder.blocks.iter().any(|b| b.attn.n_heads != cfg.n_heads) || cfg.n_heads == 0 || cfg.d_model % cfg.n_heads != 0 {
        Some("n_heads")
    } else {
        None
    };
    match problem {
        Some(what) => Err(OnnxError::ParamShape {
            path: format!("(encoder config: {what})"),
            expected: vec![cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.n_registers],
            got: vec![encoder.d_model, encoder.blocks.len(), encoder.n_registers],
        }),
        None => Ok(()),
    }
}

/// A classifier graph: outputs `probs` `[B,C]` and `embedding` `[B,D]`.
pub fn classifier_model<B: Backend>(model: &Classifier<B>, spec: &GraphSpec, info: &ModelInfo) -> Result<ModelProto, OnnxError> {
    check_spec(&model.encoder, spec)?;
    let mut params = NamedParams::from_module(model);
    let mut g = GraphBuilder::new("hepjepa_classifier");
    let inputs = declare_inputs(&mut g, spec.k)?;
    let tokens = g.scoped("encoder", |g| encoder_tokens(g, &mut params, "encoder", spec, &inputs))?;
    let embedding = masked_mean(&mut g, &tokens, &inputs.mask);
    let probs = g.scoped("head", |g| -> Result<Value, OnnxError> {
        let mx = g.masked_max(&tokens, &inputs.mask, MASK_NEG);
        let pooled = g.concat(&[&embedding, &mx], 1);
        let logits = mlp(g, &mut params, "head.mlp", &pooled)?;
        Ok(g.softmax(&logits, 1))
    })?;
    let (b, c, d) = (Dim::named("batch"), model.head.n_classes, spec.encoder.d_model);
    g.output(&probs, "probs", ElemType::F32, &[b.clone(), Dim::Fixed(c)])?;
    g.output(&embedding, "embedding", ElemType::F32, &[b, Dim::Fixed(d)])?;
    finish(g, &params, info)
}

/// An encoder graph: outputs `embedding` `[B,D]` only.
pub fn encoder_model<B: Backend>(encoder: &Encoder<B>, spec: &GraphSpec, info: &ModelInfo) -> Result<ModelProto, OnnxError> {
    check_spec(encoder, spec)?;
    let mut params = NamedParams::from_module(encoder);
    let mut g = GraphBuilder::new("hepjepa_encoder");
    let inputs = declare_inputs(&mut g, spec.k)?;
    let tokens = g.scoped("encoder", |g| encoder_tokens(g, &mut params, "", spec, &inputs))?;
    let embedding = masked_mean(&mut g, &tokens, &inputs.mask);
    g.output(&embedding, "embedding", ElemType::F32, &[Dim::named("batch"), Dim::Fixed(spec.encoder.d_model)])?;
    finish(g, &params, info)
}
