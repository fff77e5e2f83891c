//! The component through wasmtime (the `gitlab-azure-oidc-host` library), on verify_token's
//! input (now, issuer, audience, token, JWKS one a line), differentially against the native core.
//! Built only with `--features component` (`make fuzz` does; the smoke does not: wasmtime is a
//! long build).
//!
//! Invariants: the host never fails (no trap, no fuel or memory exhaustion on these inputs, and
//! the next call is served); the component refuses the JWKS, and accepts or refuses the token,
//! exactly as the native core does, with the same error kind.
#![no_main]

use std::sync::OnceLock;

use gitlab_azure_oidc::{Jwks, Verifier, VerifierConfig};
use gitlab_azure_oidc_fuzz::{fields, text};
use gitlab_azure_oidc_host::{config, Host, Limits, VerifierHandle};
use libfuzzer_sys::fuzz_target;

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        Host::embedded(Limits::default()).expect("build the component first (make component)")
    })
}

// The component is compiled once, before fuzzing starts: under the sanitizers Cranelift takes
// longer than the per-input timeout.
fuzz_target!(init: { host(); }, |data: &[u8]| {
    let [now, issuer, audience, token, jwks] = fields::<5>(data);
    let Ok(now) = text(now).trim().parse::<u64>() else { return };
    let (issuer, audience, token, jwks_text) =
        (text(issuer), text(audience), text(token), text(jwks));
    let Ok(native_config) =
        VerifierConfig::builder(issuer.clone()).audience(audience.clone()).build()
    else {
        return;
    };
    let native_jwks = Jwks::parse(jwks_text.as_bytes());
    let component = VerifierHandle::new(host(), config(&issuer, &[&audience]), jwks_text.clone())
        .unwrap_or_else(|e| panic!("host error building a verifier: {e}"));
    let (native_jwks, mut component) = match (native_jwks, component) {
        (Ok(n), Ok(c)) => (n, c),
        (Err(n), Err(c)) => return assert_eq!(n.kind(), c.kind, "JWKS refused differently"),
        (n, c) => panic!("JWKS: native {:?}, component {:?}", n.map(|_| ()), c.map(|_| ())),
    };
    let native = Verifier::new(native_config, native_jwks).verify(&token, now);
    let answer =
        component.verify(&token, now).unwrap_or_else(|e| panic!("host error verifying: {e}"));
    match (&native, &answer) {
        (Ok(n), Ok(c)) => assert_eq!(n.fingerprint, c.fingerprint),
        (Err(n), Err(c)) => {
            assert_eq!(n.kind(), c.kind, "refused differently: {n} / {}", c.message)
        }
        _ => panic!("native {:?}, component {:?}", native.map(|_| ()), answer.map(|_| ())),
    }
    // The instance still serves the next call.
    if let Err(e) = component.verify("", now) {
        panic!("host error after a call: {e}");
    }
});
