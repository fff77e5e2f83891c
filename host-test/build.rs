//! Embeds the component that `make` built, so the CLI is one self-contained binary.
//!
//! The component is a separate cargo build (`--target wasm32-wasip2`), which a build script must
//! not run itself: a nested cargo on the same target directory deadlocks on its lock. `make`
//! builds it first; without it, the binary still builds and asks for `--component FILE`.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=GITLAB_AZURE_OIDC_COMPONENT");
    println!("cargo::rustc-check-cfg=cfg(embedded_component)");
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target"));
    let path = env::var_os("GITLAB_AZURE_OIDC_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir.join("wasm32-wasip2/component/gitlab_azure_oidc.wasm"));
    println!("cargo:rerun-if-changed={}", path.display());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("component.wasm");
    match fs::read(&path) {
        Ok(bytes) => {
            fs::write(&out, bytes).unwrap();
            println!("cargo:rustc-cfg=embedded_component");
        }
        Err(_) => {
            println!(
                "cargo:warning=no component at {}: run `make component` first, or pass --component FILE at run time",
                path.display()
            );
        }
    }
}
