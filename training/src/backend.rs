//! Backends: burn's pure-Rust CPU backend (Flex) by default, CUDA with `--features cuda`.
use burn::backend::{Autodiff, Flex};

/// Inference on the CPU.
pub type Cpu = Flex;
/// Training on the CPU.
pub type CpuTrain = Autodiff<Flex>;

#[cfg(feature = "cuda")]
pub type Gpu = burn::backend::Cuda;
#[cfg(feature = "cuda")]
pub type GpuTrain = Autodiff<burn::backend::Cuda>;

/// `--device` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Cpu,
    Cuda,
}

impl DeviceKind {
    /// Whether this binary was built with the backend.
    pub fn available(self) -> bool {
        match self {
            DeviceKind::Cpu => true,
            DeviceKind::Cuda => cfg!(feature = "cuda"),
        }
    }
}
