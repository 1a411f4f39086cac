//! Compiles the hand-written CS3 subset in `proto/` with protox (pure Rust, no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["proto/cs3_gateway.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        // The server side is used by the fake REVA in `testkit` only; generating it always keeps
        // one code path and costs little.
        .build_server(true)
        .generate_default_stubs(true)
        .include_file("cs3.rs")
        .compile_fds(fds)?;
    Ok(())
}
