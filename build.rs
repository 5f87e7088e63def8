//! Generates the gRPC code for `proto/jettag/v1/jettag.proto` with the vendored `protoc`, so a
//! fresh clone builds without a system protobuf compiler.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("jettag_v1_descriptor.bin"))
        .compile_with_config(
            {
                let mut config = tonic_prost_build::Config::new();
                config.protoc_executable(protoc);
                config
            },
            &["proto/jettag/v1/jettag.proto"],
            &["proto"],
        )?;
    println!("cargo:rerun-if-changed=proto/jettag/v1/jettag.proto");
    Ok(())
}
