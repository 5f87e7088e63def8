//! `jettag-core`: the single implementation of everything between raw jet constituents and
//! model input tensors (DESIGN.md sections 3-4). Training (`jettag-train`) and serving
//! (`jettag`) both call these functions, so a jet gets bit-identical tensors in both.

pub mod batch;
pub mod error;
pub mod features;
pub mod grouping;
pub mod jet;
pub mod kinematics;
pub mod pair;
pub mod reader;
pub mod tokenize;

pub use batch::{collate, Batch};
pub use error::{JetError, ReadError};
pub use features::{particle_features, FeatureConstants, ParticleFeatures, FEATURE_NAMES, N_FEATURES};
pub use jet::Jet;
pub use pair::{pair_features, N_PAIR};
pub use reader::{branch_types, expand_paths, n_jets_in, JetChunk, JetFiles, JetReader, LabelSet, ReaderConfig};
pub use tokenize::{tokenize, TokenizedJet, TokenizerConfig};
