//! JWKS parsing (RFC 7517): any bytes as a key set document.
//!
//! Invariants: no panic; parsing is deterministic; every key is usable or reported as skipped
//! with its position, and no more keys are kept than `Limits::max_jwks_keys`.
#![no_main]

use gitlab_azure_oidc::{Jwks, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(jwks) = Jwks::parse(data) else { return };
    let again = Jwks::parse(data).expect("the same document parses again");
    let (keys, skipped) = (jwks.keys(), jwks.skipped());
    assert_eq!(format!("{keys:?}"), format!("{:?}", again.keys()));
    assert!(keys.len() <= Limits::default().max_jwks_keys);
    let mut positions: Vec<usize> = skipped.iter().map(|s| s.index).collect();
    positions.dedup();
    assert_eq!(positions.len(), skipped.len(), "a skipped key is reported once");
    assert!(skipped.iter().all(|s| !s.reason.is_empty()), "a skipped key says why");
});
