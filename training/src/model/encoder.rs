//! The HEP-JEPA encoder: tokenizer, register tokens, pair-bias transformer, final LayerNorm.
use burn::module::{Initializer, Module, Param};
use burn::nn::LayerNorm;
use burn::prelude::*;

use super::attention::key_padding_bias;
use super::block::{layer_norm, Block};
use super::input::ModelInput;
use super::mlp::Mlp;
use super::tokenizer::Tokenizer;
use crate::config::EncoderConfig;

/// Pair-feature channels (`jettag_core::N_PAIR`): ln kT, ln z, ln Δ, ln m².
pub const N_PAIR_FEATURES: usize = 4;

/// Encoder. The complete forward for an exported model (inputs as in DESIGN.md section 4,
/// R = `n_registers`, all LayerNorms epsilon 1e-5 with learned scale and shift):
///
/// 1. `e = tokenizer(tokens, centers)` → `[B,T,D]` (see [`Tokenizer`]);
/// 2. pair bias (only if `pair_bias` is `Some`): `p = transpose(pair, [0,2,3,1])` → `[B,T,T,4]`;
///    `u = pair_bias(p)` (Linear 4→16, GELU, Linear 16→H) → `[B,T,T,H]`;
///    `u = transpose(u, [0,3,1,2])` → `[B,H,T,T]`; then zero-pad R rows and R columns at the
///    front of the two token axes → `[B,H,R+T,R+T]` (registers get zero bias to and from
///    everything). The same `u` is used by every block;
/// 3. `x = concat([registers broadcast to [B,R,D], e], axis 1)` → `[B,N,D]`, N = R+T;
///    `m = concat([true × R, token_mask], axis 1)`; `mask_bias = (1 - float(m)) * -1e9`
///    reshaped `[B,1,1,N]`;
/// 4. for each block: `x = block(x, u, mask_bias)` (see [`Block`], [`super::Attention`]);
/// 5. `x = norm(x)` → `[B,N,D]` (the per-token outputs);
/// 6. `embedding = sum over real tokens t of x[:, R+t, :] / count(real tokens)` → `[B,D]`
///    (registers excluded; the count is clamped below at 1).
///
/// Without registers (R = 0) step 3 prepends nothing and step 2 pads nothing.
#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    pub tokenizer: Tokenizer<B>,
    /// `[R, D]` learned register tokens; `None` when R = 0.
    pub registers: Option<Param<Tensor<B, 2>>>,
    /// 4 → pair_hidden → H; `None` for the `--no-pair-bias` ablation.
    pub pair_bias: Option<Mlp<B>>,
    pub blocks: Vec<Block<B>>,
    pub norm: LayerNorm<B>,
    pub n_registers: usize,
    pub d_model: usize,
}

impl<B: Backend> Encoder<B> {
    pub fn new(cfg: &EncoderConfig, device: &B::Device) -> Self {
        let d = cfg.d_model;
        let registers = (cfg.n_registers > 0).then(|| {
            Initializer::Normal { mean: 0.0, std: 0.02 }.init([cfg.n_registers, d], device)
        });
        let pair_bias = cfg
            .pair_bias
            .then(|| Mlp::new_zero_output(N_PAIR_FEATURES, cfg.pair_hidden, cfg.n_heads, device));
        Self {
            tokenizer: Tokenizer::new(cfg, device),
            registers,
            pair_bias,
            blocks: (0..cfg.n_layers)
                .map(|_| Block::new(d, cfg.n_heads, cfg.mlp_ratio, device))
                .collect(),
            norm: layer_norm(d, device),
            n_registers: cfg.n_registers,
            d_model: d,
        }
    }

    /// Step 1: per-token embeddings `[B,T,D]` (no attention yet).
    pub fn embed(&self, tokens: Tensor<B, 4>, centers: Tensor<B, 3>) -> Tensor<B, 3> {
        self.tokenizer.forward(tokens, centers)
    }

    /// Step 2 without the register padding: `[B,H,T,T]`, or `None` without pair bias.
    pub fn attention_bias(&self, pair: Tensor<B, 4>) -> Option<Tensor<B, 4>> {
        let mlp = self.pair_bias.as_ref()?;
        Some(mlp.forward(pair.permute([0, 2, 3, 1])).permute([0, 3, 1, 2]))
    }

    /// Steps 3-5 on already embedded tokens `x` `[B,N,D]` with their bias `[B,H,N,N]` and
    /// mask `[B,N]`; returns `[B,R+N,D]`. The JEPA context encoder calls this on a gathered
    /// subset of tokens.
    pub fn encode(
        &self,
        x: Tensor<B, 3>,
        bias: Option<Tensor<B, 4>>,
        mask: Tensor<B, 2, Bool>,
    ) -> Tensor<B, 3> {
        let [b, _, d] = x.dims();
        let r = self.n_registers;
        let (x, mask, bias) = match &self.registers {
            Some(registers) => {
                let regs = registers.val().unsqueeze_dim::<3>(0).expand([b, r, d]);
                let device = x.device();
                let real = Tensor::<B, 2, Bool>::full([b, r], true, &device);
                (
                    Tensor::cat(vec![regs, x], 1),
                    Tensor::cat(vec![real, mask], 1),
                    bias.map(|u| u.pad([(0, 0), (0, 0), (r, 0), (r, 0)], 0.0)),
                )
            }
            None => (x, mask, bias),
        };
        let mask_bias = key_padding_bias(mask);
        let mut x = x;
        for block in &self.blocks {
            x = block.forward(x, bias.clone(), mask_bias.clone());
        }
        self.norm.forward(x)
    }

    /// Steps 1-5: per-token outputs `[B,R+T,D]` (registers first).
    pub fn forward(&self, input: &ModelInput<B>) -> Tensor<B, 3> {
        let x = self.embed(input.tokens.clone(), input.centers.clone());
        let bias = self.attention_bias(input.pair.clone());
        self.encode(x, bias, input.mask.clone())
    }

    /// The real tokens' outputs `[B,T,D]` (registers dropped).
    pub fn token_outputs(&self, out: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, n, d] = out.dims();
        out.slice([0..b, self.n_registers..n, 0..d])
    }

    /// Steps 1-6: the pooled jet embedding `[B,D]`.
    pub fn embedding(&self, input: &ModelInput<B>) -> Tensor<B, 2> {
        let tokens = self.token_outputs(self.forward(input));
        masked_mean(tokens, input.mask.clone())
    }
}

/// Mean over real tokens: `sum(x * m) / max(sum(m), 1)` over axis 1, `[B,T,D]` → `[B,D]`.
pub fn masked_mean<B: Backend>(x: Tensor<B, 3>, mask: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
    let [b, t, d] = x.dims();
    let m = mask.float().reshape([b, t, 1]);
    let count = m.clone().sum_dim(1).clamp_min(1.0);
    ((x * m).sum_dim(1) / count).reshape([b, d])
}

/// Max over real tokens (padded positions filled with -1e9 first), `[B,T,D]` → `[B,D]`.
pub fn masked_max<B: Backend>(x: Tensor<B, 3>, mask: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
    let [b, t, d] = x.dims();
    let padded = mask.bool_not().reshape([b, t, 1]).expand([b, t, d]);
    x.mask_fill(padded, super::attention::MASK_NEG).max_dim(1).reshape([b, d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::model::testutil::{batch_of, synth_jet};
    use crate::model::{ClassifierHead, Classifier};
    use burn::backend::Flex;
    use burn::module::Param;

    type B = Flex;

    /// A tiny encoder whose pair-bias MLP has random (not zero) output weights, so the pair
    /// features really reach the attention.
    fn encoder(registers: usize, pair_bias: bool) -> Encoder<B> {
        let device = Default::default();
        let mut cfg = ModelConfig::by_name("tiny").unwrap().encoder;
        cfg.n_registers = registers;
        cfg.pair_bias = pair_bias;
        let mut enc = Encoder::new(&cfg, &device);
        if pair_bias {
            enc.pair_bias = Some(Mlp::new(N_PAIR_FEATURES, cfg.pair_hidden, cfg.n_heads, &device));
        }
        enc
    }

    fn vec2(t: Tensor<B, 2>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    #[test]
    fn padding_does_not_change_a_jets_embedding() {
        let device = Default::default();
        let k = 8;
        let short = synth_jet(3, k, 11);
        let long = synth_jet(7, k, 12);
        for (registers, pair_bias) in [(4, true), (0, true), (4, false)] {
            let enc = encoder(registers, pair_bias);
            let alone = ModelInput::<B>::from_batch(&batch_of(&[&short], k, 3, 0.0), &device).unwrap();
            let padded = ModelInput::<B>::from_batch(&batch_of(&[&short, &long], k, 7, 3.5), &device).unwrap();
            let e_alone = vec2(enc.embedding(&alone));
            let e_padded = vec2(enc.embedding(&padded));
            let d = e_alone.len();
            let max_diff = e_alone.iter().zip(&e_padded[..d]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(max_diff <= 1e-5, "registers {registers}, pair bias {pair_bias}: max |Δ| = {max_diff}");
            // Sanity: the longer jet's embedding is a different vector.
            assert!(e_padded[d..].iter().zip(&e_alone).any(|(a, b)| (a - b).abs() > 1e-3));

            // The classifier's outputs (mean and max pooling) are padding-invariant too.
            let clf = Classifier { encoder: enc, head: ClassifierHead::new(32, 3, &device) };
            let p_alone = vec2(clf.forward(&alone).probs);
            let p_padded = vec2(clf.forward(&padded).probs);
            for (a, b) in p_alone.iter().zip(&p_padded[..3]) {
                assert!((a - b).abs() <= 1e-5, "{p_alone:?} vs {p_padded:?}");
            }
        }
    }

    #[test]
    fn pair_features_reach_the_embedding_only_through_the_pair_bias() {
        // Guards the invariance test against a model that ignores its inputs.
        let device = Default::default();
        let k = 8;
        let jet = synth_jet(5, k, 3);
        let mut other = synth_jet(5, k, 3);
        other.pair = synth_jet(5, k, 99).pair;
        let enc = encoder(4, true);
        let e = |j| vec2(enc.embedding(&ModelInput::<B>::from_batch(&batch_of(&[j], k, 5, 0.0), &device).unwrap()));
        let (a, b) = (e(&jet), e(&other));
        assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-4), "pair features had no effect");
        let no_bias = encoder(4, false);
        let c = vec2(no_bias.embedding(&ModelInput::<B>::from_batch(&batch_of(&[&other], k, 5, 0.0), &device).unwrap()));
        let d = vec2(no_bias.embedding(&ModelInput::<B>::from_batch(&batch_of(&[&jet], k, 5, 0.0), &device).unwrap()));
        assert_eq!(c, d, "without pair bias the pair features must not matter");
    }

    /// Dotted field paths and shapes of every float parameter, in visiting order.
    fn param_paths<M: Module<B>>(m: &M) -> Vec<(String, Vec<usize>)> {
        struct Paths(Vec<String>, Vec<(String, Vec<usize>)>);
        impl burn::module::ModuleVisitor<B> for Paths {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.0.push(name.to_string());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.0.pop();
            }
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
                self.1.push((self.0.join("."), p.val().dims().to_vec()));
            }
        }
        let mut v = Paths(Vec::new(), Vec::new());
        m.visit(&mut v);
        v.1
    }

    /// The ONNX exporter finds weights by these paths and shapes: changing them is a contract
    /// change (update the exporter and this list together).
    #[test]
    fn parameter_paths_are_the_published_ones() {
        let enc = encoder(4, true);
        let (d, h, hid, heads, m) = (32, 16, 16, 4, 128);
        let mlp = |p: &str, i: usize, hdn: usize, o: usize| {
            vec![
                (format!("{p}.fc1.weight"), vec![i, hdn]),
                (format!("{p}.fc1.bias"), vec![hdn]),
                (format!("{p}.fc2.weight"), vec![hdn, o]),
                (format!("{p}.fc2.bias"), vec![o]),
            ]
        };
        let mut want = Vec::new();
        want.extend(mlp("tokenizer.particle_mlp", 7, h, h));
        want.extend(mlp("tokenizer.group_mlp", 2 * h, d, d));
        want.extend(mlp("tokenizer.center_mlp", 2, d, d));
        want.push(("registers".to_string(), vec![4, d]));
        want.extend(mlp("pair_bias", 4, hid, heads));
        for i in 0..2 {
            let b = format!("blocks.{i}");
            want.push((format!("{b}.norm1.gamma"), vec![d]));
            want.push((format!("{b}.norm1.beta"), vec![d]));
            for lin in ["query", "key", "value", "output"] {
                want.push((format!("{b}.attn.{lin}.weight"), vec![d, d]));
                want.push((format!("{b}.attn.{lin}.bias"), vec![d]));
            }
            want.push((format!("{b}.norm2.gamma"), vec![d]));
            want.push((format!("{b}.norm2.beta"), vec![d]));
            want.extend(mlp(&format!("{b}.mlp"), d, m, d));
        }
        want.push(("norm.gamma".to_string(), vec![d]));
        want.push(("norm.beta".to_string(), vec![d]));
        assert_eq!(param_paths(&enc), want);

        let device = Default::default();
        let head = ClassifierHead::<B>::new(d, 3, &device);
        assert_eq!(param_paths(&head), mlp("mlp", 2 * d, d, 3));
    }

    #[test]
    fn parameter_counts_of_the_presets() {
        let device = Default::default();
        let cfg = ModelConfig::by_name("paper").unwrap();
        let n = Encoder::<B>::new(&cfg.encoder, &device).num_params();
        // 12 blocks × 198,272 + tokenizer 37,696 + centre 16,896 + registers 512 + pair 216
        // + final LayerNorm 256.
        let blocks = 12 * (2 * 256 + 4 * (128 * 128 + 128) + (128 * 512 + 512) + (512 * 128 + 128));
        let tokenizer = (7 * 64 + 64) + (64 * 64 + 64) + (128 * 128 + 128) + (128 * 128 + 128);
        let centre = (2 * 128 + 128) + (128 * 128 + 128);
        let pair = (4 * 16 + 16) + (16 * 8 + 8);
        assert_eq!(n, blocks + tokenizer + centre + 4 * 128 + pair + 256);
        assert!((2_300_000..2_600_000).contains(&n), "{n}");
    }
}
