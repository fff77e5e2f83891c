//! `make demo`: the whole job on an embedded default, no GitLab or Azure account needed.
//!
//! Starts a loopback stand-in for a GitLab instance with a freshly generated signing key, mints
//! an ID token as GitLab would for a job, and runs the `gitlab-azure-oidc` CLI as a CI job
//! would: it fetches the JWKS from the issuer and verifies the token in the component. Then it
//! shows the refusals a security team cares about.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use testkit::issuer::Issuer;
use testkit::{gitlab_claims, mint, Key, RsaKey, AUDIENCE};

fn cli() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.with_file_name("gitlab-azure-oidc")
}

fn step(title: &str) {
    println!("\n==> {title}");
}

/// Runs the CLI with the token in GITLAB_OIDC_TOKEN, as a GitLab job would; returns the exit code.
fn verify(issuer: &Issuer, token: &str) -> i32 {
    let args =
        ["verify", "--jwks", &issuer.jwks_url(), "--issuer", &issuer.url(), "--audience", AUDIENCE];
    println!("$ GITLAB_OIDC_TOKEN=<token> gitlab-azure-oidc {}", args.join(" "));
    let status = Command::new(cli())
        .args(args)
        .env("GITLAB_OIDC_TOKEN", token)
        .status()
        .expect("run gitlab-azure-oidc (build it with `make build`)");
    status.code().unwrap_or(-1)
}

fn main() -> ExitCode {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    step("Starting a GitLab stand-in on 127.0.0.1 with a fresh RSA-2048 signing key");
    let key = RsaKey::generate(2048);
    let issuer = Issuer::start(&[&key]);
    println!("issuer {} (JWKS at {})", issuer.url(), issuer.jwks_url());

    step(
        "A job on a protected branch gets an ID token (id_tokens: aud: api://AzureADTokenExchange)",
    );
    let claims = gitlab_claims(&issuer.url(), now);
    let token = mint(&Key::Rsa(&key, "RS256"), &claims);
    println!("token jti {} (the token itself is never printed)", claims["jti"]);

    step("Verifying it in the WebAssembly component");
    let ok = verify(&issuer, &token);

    step("A tampered token (ref_protected flipped to \"false\") is refused");
    let mut forged_claims = claims.clone();
    forged_claims["ref_protected"] = json!("false");
    let parts: Vec<&str> = token.split('.').collect();
    let forged =
        format!("{}.{}.{}", parts[0], testkit::b64(forged_claims.to_string().as_bytes()), parts[2]);
    let tampered = verify(&issuer, &forged);

    step("A token minted for another audience (a Vault role) is refused");
    let mut vault = claims.clone();
    vault["aud"] = json!("https://vault.example.com");
    let wrong_aud = verify(&issuer, &mint(&Key::Rsa(&key, "RS256"), &vault));

    step("A token from an expired job is refused, with by how much");
    let old = gitlab_claims(&issuer.url(), now - 7200);
    let expired = verify(&issuer, &mint(&Key::Rsa(&key, "RS256"), &old));

    let expected = ok == 0 && tampered == 1 && wrong_aud == 1 && expired == 1;
    step(if expected { "Demo finished as expected" } else { "Demo did NOT behave as expected" });
    println!("issuer answered {} requests", issuer.requests());
    if expected {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
