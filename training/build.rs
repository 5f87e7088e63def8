//! Generates the ONNX protobuf types (`onnx::ModelProto` and friends) from the vendored
//! `proto/onnx.proto`. burn cannot export a transformer with a pair-bias attention to ONNX, so
//! `jettag-train` writes the graph itself with these types. `protoc` comes from the
//! `protoc-bin-vendored` crate so that no system protobuf compiler is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/onnx.proto";
    println!("cargo:rerun-if-changed={proto}");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.compile_protos(&[proto], &["proto"])?;
    Ok(())
}
