//! Embeds the component that `make` built, and its build-time compiled copy, so the CLI is one
//! self-contained binary that starts in milliseconds.
//!
//! The component is a separate cargo build (`--target wasm32-wasip2`), which a build script must
//! not run itself: a nested cargo on the same target directory deadlocks on its lock. `make`
//! builds it first; without it, the binary still builds and asks for `--component FILE`.
//!
//! The compiled copy (`precompiled/<target>/gitlab_azure_oidc.cwasm`) is written by the CLI's
//! hidden `precompile` command, which `make` runs after a first build; the second build embeds it.
//! It is embedded only when its header carries the SHA-256 of the component embedded here, so a
//! copy left from an older component is never paired with a newer one.

use std::env;
use std::fs;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// Must equal `PRECOMPILED_MAGIC` in `src/engine.rs`.
const PRECOMPILED_MAGIC: &[u8; 16] = b"gao-cwasm-v1\0\0\0\0";

fn main() {
    println!("cargo:rerun-if-env-changed=GITLAB_AZURE_OIDC_COMPONENT");
    println!("cargo:rerun-if-env-changed=GITLAB_AZURE_OIDC_PRECOMPILED");
    println!("cargo::rustc-check-cfg=cfg(embedded_component)");
    println!("cargo::rustc-check-cfg=cfg(embedded_precompiled)");
    let target = env::var("TARGET").unwrap();
    // The precompiled copy is compiled for exactly this target.
    println!("cargo:rustc-env=GITLAB_AZURE_OIDC_TARGET={target}");
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target"));
    let path = env::var_os("GITLAB_AZURE_OIDC_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir.join("wasm32-wasip2/component/gitlab_azure_oidc.wasm"));
    println!("cargo:rerun-if-changed={}", path.display());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let Ok(component) = fs::read(&path) else {
        println!(
            "cargo:warning=no component at {}: run `make component` first, or pass --component FILE at run time",
            path.display()
        );
        return;
    };
    fs::write(out_dir.join("component.wasm"), &component).unwrap();
    println!("cargo:rustc-cfg=embedded_component");

    let precompiled =
        env::var_os("GITLAB_AZURE_OIDC_PRECOMPILED").map(PathBuf::from).unwrap_or_else(|| {
            target_dir.join("precompiled").join(&target).join("gitlab_azure_oidc.cwasm")
        });
    // Watch the folder, which always exists, rather than a file that may not: cargo reruns a build
    // script on every build while a watched file is missing.
    if let Some(folder) = precompiled.parent() {
        let _ = fs::create_dir_all(folder);
        println!("cargo:rerun-if-changed={}", folder.display());
    }
    let Ok(bytes) = fs::read(&precompiled) else {
        // The first of `make`'s two builds: nothing to embed yet, and nothing to warn about.
        return;
    };
    let digest = Sha256::digest(&component);
    let header = PRECOMPILED_MAGIC.len() + digest.len();
    if bytes.len() <= header
        || bytes[..PRECOMPILED_MAGIC.len()] != PRECOMPILED_MAGIC[..]
        || bytes[PRECOMPILED_MAGIC.len()..header] != digest[..]
    {
        println!(
            "cargo:warning={} was not compiled from {}: not embedded (make rebuilds it)",
            precompiled.display(),
            path.display()
        );
        return;
    }
    fs::write(out_dir.join("component.cwasm"), &bytes[header..]).unwrap();
    println!("cargo:rustc-cfg=embedded_precompiled");
}
