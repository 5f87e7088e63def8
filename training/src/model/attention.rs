//! Multi-head self-attention written out by hand, because burn's attention modules cannot
//! take a float additive bias and because every step must map onto a plain ONNX op.
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

/// Added to the attention logits of padded keys. Large enough that `exp` underflows to
/// exactly 0 in f32 (so padding cannot change real tokens' outputs), finite so that
/// `0 · MASK_NEG` stays 0 and no NaN appears.
pub const MASK_NEG: f32 = -1.0e9;

/// Additive key-padding term `[B,1,1,N]`: `(1 - float(mask)) * MASK_NEG`, i.e. 0 for real
/// keys and -1e9 for padded ones. Computed once per forward and shared by all blocks.
pub fn key_padding_bias<B: Backend>(mask: Tensor<B, 2, Bool>) -> Tensor<B, 4> {
    let [b, n] = mask.dims();
    let real = mask.float();
    (real.neg() + 1.0).mul_scalar(MASK_NEG).reshape([b, 1, 1, n])
}

/// Self-attention with an optional per-head additive bias.
///
/// Forward (`x` `[B,N,D]`, `bias` `[B,H,N,N]` or none, `mask_bias` `[B,1,1,N]` from
/// [`key_padding_bias`]):
/// 1. `q = x·Wq + bq`, `k = x·Wk + bk`, `v = x·Wv + bv`, each reshaped `[B,N,H,dh]` and
///    transposed to `[B,H,N,dh]` (dh = D/H, head h owns columns `h*dh .. (h+1)*dh`);
/// 2. `s = (q · kᵀ) * (1/√dh)` → `[B,H,N,N]` (scale applied after the matmul);
/// 3. `s = s + bias` (if any), then `s = s + mask_bias` (in this order);
/// 4. `a = softmax(s, axis 3)`;
/// 5. `o = a · v` → `[B,H,N,dh]`, transposed to `[B,N,H,dh]`, reshaped `[B,N,D]`;
/// 6. return `o·Wo + bo`.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub query: Linear<B>,
    pub key: Linear<B>,
    pub value: Linear<B>,
    pub output: Linear<B>,
    pub n_heads: usize,
}

impl<B: Backend> Attention<B> {
    pub fn new(d_model: usize, n_heads: usize, device: &B::Device) -> Self {
        let lin = || LinearConfig::new(d_model, d_model).init(device);
        Self { query: lin(), key: lin(), value: lin(), output: lin(), n_heads }
    }

    fn heads(&self, x: Tensor<B, 3>) -> Tensor<B, 4> {
        let [b, n, d] = x.dims();
        x.reshape([b, n, self.n_heads, d / self.n_heads]).swap_dims(1, 2)
    }

    /// The attention probabilities `[B,H,N,N]` (steps 1-4), exposed for tests and for
    /// inspecting what the pair bias does.
    pub fn weights(
        &self,
        x: Tensor<B, 3>,
        bias: Option<Tensor<B, 4>>,
        mask_bias: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        self.weights_and_values(x, bias, mask_bias).0
    }

    fn weights_and_values(
        &self,
        x: Tensor<B, 3>,
        bias: Option<Tensor<B, 4>>,
        mask_bias: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let d_head = x.dims()[2] / self.n_heads;
        let q = self.heads(self.query.forward(x.clone()));
        let k = self.heads(self.key.forward(x.clone()));
        let v = self.heads(self.value.forward(x));
        let mut scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (d_head as f64).sqrt());
        if let Some(bias) = bias {
            scores = scores + bias;
        }
        scores = scores + mask_bias;
        (softmax(scores, 3), v)
    }

    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        bias: Option<Tensor<B, 4>>,
        mask_bias: Tensor<B, 4>,
    ) -> Tensor<B, 3> {
        let [b, n, d] = x.dims();
        let (a, v) = self.weights_and_values(x, bias, mask_bias);
        let o = a.matmul(v).swap_dims(1, 2).reshape([b, n, d]);
        self.output.forward(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::module::Param;
    use burn::tensor::TensorData;

    type B = Flex;

    fn identity_linear(d: usize) -> Linear<B> {
        let device = Default::default();
        let mut eye = vec![0f32; d * d];
        for i in 0..d {
            eye[i * d + i] = 1.0;
        }
        Linear {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(eye, vec![d, d]), &device)),
            bias: Some(Param::from_tensor(Tensor::zeros([d], &device))),
        }
    }

    /// Two heads of width 1 with identity projections: head h attends with q = k = v = x[:, h].
    fn identity_attention() -> Attention<B> {
        Attention {
            query: identity_linear(2),
            key: identity_linear(2),
            value: identity_linear(2),
            output: identity_linear(2),
            n_heads: 2,
        }
    }

    fn t3(v: Vec<f32>, shape: [usize; 3]) -> Tensor<B, 3> {
        Tensor::from_data(TensorData::new(v, shape.to_vec()), &Default::default())
    }

    fn t4(v: Vec<f32>, shape: [usize; 4]) -> Tensor<B, 4> {
        Tensor::from_data(TensorData::new(v, shape.to_vec()), &Default::default())
    }

    fn mask(v: Vec<bool>, n: usize) -> Tensor<B, 2, Bool> {
        Tensor::from_data(TensorData::new(v, vec![1, n]), &Default::default())
    }

    fn close(a: &[f32], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((*x as f64 - y).abs() <= tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn pair_bias_shifts_attention_as_computed_by_hand() {
        let attn = identity_attention();
        // x = 0: all logits are 0, so without bias every query spreads 1/3 over 3 keys.
        let x = t3(vec![0.0; 6], [1, 3, 2]);
        let no_pad = key_padding_bias(mask(vec![true; 3], 3));
        let w = attn.weights(x.clone(), None, no_pad.clone()).into_data().to_vec::<f32>().unwrap();
        close(&w, &[1.0 / 3.0; 18], 1e-7);

        // Head 0 gets bias ln 2 from query 0 to key 1; head 1 gets -ln 2 from query 2 to key 0.
        let ln2 = std::f32::consts::LN_2;
        let mut bias = vec![0f32; 2 * 3 * 3];
        bias[1] = ln2; // head 0, query 0, key 1
        bias[9 + 2 * 3] = -ln2; // head 1, query 2, key 0
        let w = attn
            .weights(x.clone(), Some(t4(bias.clone(), [1, 2, 3, 3])), no_pad.clone())
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let third = 1.0 / 3.0;
        let expect = [
            // head 0: row 0 is (1, 2, 1)/4, others uniform
            0.25, 0.5, 0.25, third, third, third, third, third, third,
            // head 1: row 2 is (1/2, 1, 1)/(5/2) = (0.2, 0.4, 0.4)
            third, third, third, third, third, third, 0.2, 0.4, 0.4,
        ];
        close(&w, &expect, 1e-6);

        // Padding key 2 removes it: head 0 row 0 becomes (1, 2)/3, the others (1/2, 1/2).
        let pad = key_padding_bias(mask(vec![true, true, false], 3));
        let w = attn.weights(x, Some(t4(bias, [1, 2, 3, 3])), pad).into_data().to_vec::<f32>().unwrap();
        let expect = [
            third, 2.0 * third, 0.0, 0.5, 0.5, 0.0, 0.5, 0.5, 0.0, //
            0.5, 0.5, 0.0, 0.5, 0.5, 0.0, 1.0 / 3.0, 2.0 / 3.0, 0.0,
        ];
        close(&w, &expect, 1e-6);
    }

    #[test]
    fn forward_matches_a_direct_computation() {
        let attn = identity_attention();
        let xs = [[0.5f64, -1.0], [1.5, 0.25], [-0.75, 2.0]];
        let bias = [[[0.3f64, -0.2, 0.0], [0.1, 0.0, 0.4], [-0.5, 0.2, 0.0]], [[0.0, 0.7, -0.1], [0.2, -0.3, 0.0], [0.0, 0.0, 0.9]]];
        let x = t3(xs.iter().flatten().map(|&v| v as f32).collect(), [1, 3, 2]);
        let u = t4(bias.iter().flatten().flatten().map(|&v| v as f32).collect(), [1, 2, 3, 3]);
        let out = attn
            .forward(x, Some(u), key_padding_bias(mask(vec![true; 3], 3)))
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        // Head h, width 1, scale 1/sqrt(1): o[i][h] = Σ_j softmax_j(x_ih x_jh + u_hij) x_jh.
        let mut expect = vec![0f64; 6];
        for i in 0..3 {
            for h in 0..2 {
                let logits: Vec<f64> = (0..3).map(|j| xs[i][h] * xs[j][h] + bias[h][i][j]).collect();
                let z: f64 = logits.iter().map(|l| l.exp()).sum();
                expect[i * 2 + h] = (0..3).map(|j| logits[j].exp() / z * xs[j][h]).sum();
            }
        }
        close(&out, &expect, 1e-6);
    }
}
