//! `jettag-core`: the single implementation of everything between raw jet constituents and
//! model input tensors (DESIGN.md sections 3-4). Training (`jettag-train`) and serving
//! (`jettag`) both call these functions, so a jet gets bit-identical tensors in both.

pub mod batch;
pub mod error;
pub mod features;
pub mod jet;
pub mod pair;
pub mod reader;
pub mod tokenize;

pub use batch::{collate, Batch};
pub use error::{JetError, ReadError};
pub use features::{ParticleFeatures, FeatureConstants, N_FEATURES};
pub use jet::Jet;
pub use pair::{pair_features, N_PAIR};
pub use reader::{JetChunk, JetReader, LabelSet, ReaderConfig};
pub use tokenize::{tokenize, TokenizedJet, TokenizerConfig};
