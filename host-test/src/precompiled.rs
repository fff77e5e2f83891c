//! The hidden commands `make` runs around the build. `precompile` compiles the embedded component
//! ahead of time for this binary (`build.rs` embeds the result in the next build); `self-check`
//! fails unless the copy this binary embeds loads and runs, so a build whose CLI would compile at
//! every start never passes `make`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use gitlab_azure_oidc_host::{Host, Limits, Tuning, EMBEDDED_COMPONENT};

use crate::exit::Exit;
use crate::files;

#[derive(Args, Debug)]
pub(crate) struct PrecompileArgs {
    /// Where to write it. Rewritten only when its content changes, so cargo rebuilds only then.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Compiles the embedded component (or `--component FILE`) with the CLI's engine settings.
pub(crate) fn precompile_command(
    component: Option<&str>,
    args: &PrecompileArgs,
) -> Result<(), Exit> {
    let bytes = match component {
        Some(path) => std::fs::read(path)
            .map_err(|e| Exit::usage(format!("cannot read --component {path}: {e}")))?,
        None => EMBEDDED_COMPONENT.ok_or(gitlab_azure_oidc_host::HostError::NoComponent)?.to_vec(),
    };
    let start = Instant::now();
    let compiled = Host::precompile(&bytes, Tuning::one_shot())?;
    let out = &args.out;
    let state = if std::fs::read(out).is_ok_and(|old| old == compiled) {
        "unchanged"
    } else {
        files::write_atomically(out, &compiled, 0o644)
            .map_err(|e| Exit::usage(format!("cannot write {}: {e}", out.display())))?;
        "written"
    };
    eprintln!(
        "precompiled: {} ({} bytes, {state}; compiled in {} ms)",
        out.display(),
        compiled.len(),
        start.elapsed().as_millis()
    );
    Ok(())
}

/// Loads the embedded precompiled copy (nothing else) and runs one call through it.
pub(crate) fn self_check_command() -> Result<(), Exit> {
    let start = Instant::now();
    let host = Host::precompiled(Limits::default(), Tuning::one_shot())?;
    let loaded = start.elapsed();
    let config = gitlab_azure_oidc_host::config("https://gitlab.example.com", &["aud"]);
    // Any answer from the component will do; a garbage token must be refused, not trap.
    let answer = host.session()?.verify_gitlab_token("x.y.z", r#"{"keys":[]}"#, &config, 0)?;
    if answer.is_ok() {
        return Err(Exit::refused("self-check", "the component accepted a garbage token"));
    }
    eprintln!("self-check: the precompiled component loads ({} us) and runs", loaded.as_micros());
    Ok(())
}
