//! The tiny fixture model computed directly from its weights (tests/fixtures/models/
//! make_tiny_model.py documents the formula), in f64, without ONNX Runtime or the batcher:
//! the independent reference for what the server and `jettag tag` return.
use std::path::Path;

use jettag_core::{tokenize, Jet, TokenizerConfig, N_FEATURES, N_PAIR};
use serde_json::Value;

pub struct TinyModel {
    w1: Vec<f64>,
    wc: Vec<f64>,
    b1: Vec<f64>,
    wp: Vec<f64>,
    w2: Option<Vec<f64>>,
    b2: Option<Vec<f64>>,
    hidden: usize,
    classes: usize,
}

fn array(doc: &Value, name: &str) -> Option<(Vec<usize>, Vec<f64>)> {
    let entry = doc.get(name)?;
    let shape = entry["shape"].as_array()?.iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let data = entry["data"].as_array()?.iter().map(|v| v.as_f64().unwrap()).collect();
    Some((shape, data))
}

impl TinyModel {
    pub fn load(version_dir: &Path) -> Self {
        let text = std::fs::read_to_string(version_dir.join("weights.json")).expect("weights.json");
        let doc: Value = serde_json::from_str(&text).unwrap();
        let (s1, w1) = array(&doc, "W1").unwrap();
        let w2 = array(&doc, "W2");
        Self {
            hidden: s1[1],
            classes: w2.as_ref().map_or(0, |(s, _)| s[1]),
            w1,
            wc: array(&doc, "Wc").unwrap().1,
            b1: array(&doc, "b1").unwrap().1,
            wp: array(&doc, "Wp").unwrap().1,
            w2: w2.map(|(_, d)| d),
            b2: array(&doc, "b2").map(|(_, d)| d),
        }
    }

    /// (probs, embedding) for one jet.
    pub fn run(&self, jet: &Jet, cfg: &TokenizerConfig) -> (Vec<f64>, Vec<f64>) {
        let tj = tokenize(jet, cfg).expect("fixture jets tokenize");
        let (t, k, h) = (tj.n_tokens(), cfg.k, self.hidden);
        let mut pooled = vec![0.0; h];
        for a in 0..t {
            let mut mean = [0.0f64; N_FEATURES];
            for p in 0..k {
                for f in 0..N_FEATURES {
                    mean[f] += tj.tokens[(a * k + p) * N_FEATURES + f] as f64 / k as f64;
                }
            }
            for j in 0..h {
                let mut z = self.b1[j];
                for f in 0..N_FEATURES {
                    z += mean[f] * self.w1[f * h + j];
                }
                for c in 0..2 {
                    z += tj.centers[a][c] as f64 * self.wc[c * h + j];
                }
                pooled[j] += z.tanh() / t as f64;
            }
        }
        let mut pair_mean = [0.0f64; N_PAIR];
        for (c, m) in pair_mean.iter_mut().enumerate() {
            for ab in 0..t * t {
                *m += tj.pair[c * t * t + ab] as f64 / (t * t) as f64;
            }
        }
        let embedding: Vec<f64> = (0..h)
            .map(|j| {
                let mut z = pooled[j];
                for (c, m) in pair_mean.iter().enumerate() {
                    z += m * self.wp[c * h + j];
                }
                z.tanh()
            })
            .collect();
        let probs = match (&self.w2, &self.b2) {
            (Some(w2), Some(b2)) => {
                let logits: Vec<f64> = (0..self.classes)
                    .map(|c| b2[c] + (0..h).map(|j| embedding[j] * w2[j * self.classes + c]).sum::<f64>())
                    .collect();
                let max = logits.iter().cloned().fold(f64::MIN, f64::max);
                let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                let sum: f64 = exp.iter().sum();
                exp.iter().map(|e| e / sum).collect()
            }
            _ => vec![],
        };
        (probs, embedding)
    }
}
