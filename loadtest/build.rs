//! Generates the jettag.v1 client (and, for the in-test fake server, the server) from the
//! workspace's `proto/` with the vendored `protoc`, so a fresh clone builds without a system
//! protobuf compiler. Mirrors the server crate's build script.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../proto");
    let proto = proto_root.join("jettag/v1/jettag.proto");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure().build_client(true).build_server(true).compile_with_config(
        config,
        &[&proto],
        &[&proto_root],
    )?;
    println!("cargo:rerun-if-changed={}", proto.display());
    Ok(())
}
