//! Generated code for `proto/jettag/v1/jettag.proto` (see `build.rs`).

/// `jettag.v1`: the `JetTagger` service and its messages.
pub mod v1 {
    tonic::include_proto!("jettag.v1");
}
