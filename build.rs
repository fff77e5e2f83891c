//! Link settings for the WebAssembly component.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The component's shadow stack: 256 KiB instead of the toolchain's 1 MiB, so an instance
    // starts at a quarter of the memory. Recursion is bounded by the explicit JSON and policy
    // depth limits (`Limits`), far below this; the hostile-input tests run through wasmtime.
    if std::env::var("TARGET").as_deref() == Ok("wasm32-wasip2") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=262144");
    }
}
