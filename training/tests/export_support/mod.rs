//! Shared helpers of the export, parity and fine-tuning tests: where the data is, real jets
//! tokenized through jettag-core, and models with every parameter perturbed (so that zero-
//! initialised layers such as the pair-bias output and LayerNorm's β = 0, γ = 1 are tested
//! with real values).
#![allow(dead_code)]

use std::path::PathBuf;

use burn::backend::Flex;
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};
use jettag_core::{collate, tokenize, Batch, JetReader, ReaderConfig, TokenizedJet, TokenizerConfig};

pub type TB = Flex;

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("training/ has a parent").to_path_buf()
}

pub fn fixture(name: &str) -> PathBuf {
    workspace().join("tests/fixtures").join(name)
}

/// `$JETTAG_DATA`, else `../shared/data` next to the workspace.
pub fn data_dir() -> PathBuf {
    std::env::var_os("JETTAG_DATA").map(PathBuf::from).unwrap_or_else(|| workspace().join("../shared/data"))
}

/// `$JETTAG_DATA/toptag/<name>` if present.
pub fn toptag_file(name: &str) -> Option<PathBuf> {
    let p = data_dir().join("toptag").join(name);
    p.is_file().then_some(p)
}

/// The top-tagging test jets (`top_test.root`), or the committed fixture without the data.
pub fn parity_jets_file() -> PathBuf {
    toptag_file("top_test.root").unwrap_or_else(|| {
        eprintln!("$JETTAG_DATA/toptag/top_test.root not found: using tests/fixtures/toptag_small.root");
        fixture("toptag_small.root")
    })
}

/// The first `n` jets of `file` that tokenize.
pub fn tokenized_jets(file: &PathBuf, n: usize) -> Vec<TokenizedJet> {
    let cfg = TokenizerConfig::default();
    let reader = JetReader::open(file, ReaderConfig { labels: None, chunk_size: 256 }).expect("reading jets");
    let mut out = Vec::new();
    for chunk in reader {
        for jet in chunk.expect("chunk").jets {
            if let Ok(t) = tokenize(&jet, &cfg) {
                out.push(t);
                if out.len() == n {
                    return out;
                }
            }
        }
    }
    out
}

pub fn batch_of(jets: &[TokenizedJet]) -> Batch {
    let refs: Vec<&TokenizedJet> = jets.iter().collect();
    collate(&refs, TokenizerConfig::default().k)
}

/// xorshift-based normal-ish noise (sum of 12 uniforms − 6), reproducible without extra
/// dependencies.
pub struct Noise {
    state: u64,
    scale: f32,
}

impl Noise {
    pub fn new(seed: u64, scale: f32) -> Self {
        Self { state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, scale }
    }

    fn uniform(&mut self) -> f32 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    }

    fn normal(&mut self) -> f32 {
        (0..12).map(|_| self.uniform()).sum::<f32>() - 6.0
    }
}

impl ModuleMapper<TB> for Noise {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<TB, D>>) -> Param<Tensor<TB, D>> {
        let (id, tensor, mapper) = param.consume();
        let shape = tensor.dims();
        let noise: Vec<f32> = (0..shape.iter().product::<usize>()).map(|_| self.normal() * self.scale).collect();
        let noise = Tensor::<TB, D>::from_data(TensorData::new(noise, shape), &tensor.device());
        Param::from_mapped_value(id, tensor + noise, mapper)
    }
}

/// `module` with seeded noise of standard deviation `scale` added to every float parameter.
pub fn perturb<M: Module<TB>>(module: M, seed: u64, scale: f32) -> M {
    module.map(&mut Noise::new(seed, scale))
}

pub fn values<const D: usize>(t: Tensor<TB, D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// The workspace's Python virtual environment, if set up (`make venv`).
pub fn venv_python() -> Option<PathBuf> {
    let p = workspace().join(".venv/bin/python");
    p.is_file().then_some(p)
}

/// A fresh scratch directory under the system temp dir.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jettag-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
