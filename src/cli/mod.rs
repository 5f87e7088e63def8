//! Core-facing subcommands of the `jettag` binary: `inspect` (what is in a ROOT file) and
//! `tokens` (one jet's model input, exactly as training and serving compute it).
pub mod inspect;
pub mod tokens;
