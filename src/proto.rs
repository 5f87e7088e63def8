//! Code generated from `proto/jettag/v1/jettag.proto` (see build.rs).

/// The `jettag.v1` package: messages, the `JetTagger` server trait and its client.
pub mod v1 {
    tonic::include_proto!("jettag.v1");
}

/// Encoded `FileDescriptorSet` of `jettag.v1`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("jettag_v1_descriptor");

/// Fully qualified gRPC service name, as health checks and reflection use it.
pub const SERVICE_NAME: &str = "jettag.v1.JetTagger";
