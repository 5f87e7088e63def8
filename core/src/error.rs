//! Errors: invalid jets and unreadable files are values, never panics.
use thiserror::Error;

/// Why a jet cannot be turned into model input. The server maps these to
/// `INVALID_ARGUMENT` and adds the jet index.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum JetError {
    #[error("jet has no constituents")]
    Empty,
    #[error("{field}[{index}] is not finite ({value})")]
    NonFinite { field: &'static str, index: usize, value: f32 },
    #[error("constituent {index} is unphysical: energy {energy} GeV < |p| {p} GeV")]
    Unphysical { index: usize, energy: f32, p: f32 },
    #[error("{n} constituents exceed the limit of {limit}")]
    TooManyConstituents { n: usize, limit: usize },
    #[error("component arrays differ in length: px {px}, py {py}, pz {pz}, energy {energy}")]
    LengthMismatch { px: usize, py: usize, pz: usize, energy: usize },
    /// px = py = 0: pseudorapidity is infinite, so the particle has no place in the (η, φ) plane.
    #[error("constituent {index} has zero transverse momentum (px = py = 0)")]
    ZeroPt { index: usize },
    /// The constituents' transverse momenta cancel, so the jet axis has no direction in η.
    #[error("jet has zero transverse momentum (its constituents' px, py cancel)")]
    ZeroJetPt,
    /// The preprocessing parameters themselves are unusable (k = 0, oversample ≤ 0, …).
    #[error("invalid tokenizer configuration: {reason}")]
    InvalidConfig { reason: String },
}

/// Why a ROOT file cannot be read; always names the file and, where one is at fault, the branch.
#[derive(Debug, Error)]
pub enum ReadError {
    #[error("{file}: cannot open: {reason}")]
    Open { file: String, reason: String },
    #[error("{file}: no tree named '{tree}'")]
    NoTree { file: String, tree: String },
    #[error("{file}: branch '{branch}' is missing")]
    MissingBranch { file: String, branch: String },
    #[error("{file}: branch '{branch}' is malformed: {reason}")]
    Malformed { file: String, branch: String, reason: String },
}
