//! Token verification end to end: `now`, issuer, audience, token and JWKS, one per line (the JWKS
//! takes the rest). Seeds: gitlab.com's real tokens and keys, RFC 7515, the JOSE cookbook,
//! Wycheproof's JWS cases and real tokens of other issuers (fuzz/README.md).
//!
//! Invariants: no panic; a token whose signature verifies has three canonical base64url
//! segments, an allowed `alg` and (when it names one) a `kid` the JWKS holds; a verified token
//! carries the configured issuer and audience and is not expired at `now`; `verify_cached` and
//! `verify` agree.
#![no_main]

use gitlab_azure_oidc::{Algorithm, Jwks, Verifier, VerifierConfig};
use gitlab_azure_oidc_fuzz::{canonical_b64, fields, text};
use libfuzzer_sys::fuzz_target;

const ALL: [Algorithm; 8] = [
    Algorithm::Rs256,
    Algorithm::Rs384,
    Algorithm::Rs512,
    Algorithm::Ps256,
    Algorithm::Ps384,
    Algorithm::Ps512,
    Algorithm::Es256,
    Algorithm::Es384,
];

fuzz_target!(|data: &[u8]| {
    let [now, issuer, audience, token, jwks] = fields::<5>(data);
    let Ok(now) = text(now).trim().parse::<u64>() else { return };
    let (issuer, audience, token) = (text(issuer), text(audience), text(token));
    let Ok(jwks) = Jwks::parse(jwks) else { return };
    let Ok(config) =
        VerifierConfig::builder(issuer.clone()).audience(audience.clone()).algorithms(ALL).build()
    else {
        return;
    };
    let kids: Vec<String> = jwks.keys().into_iter().filter_map(|k| k.kid).collect();
    let mut verifier = Verifier::new(config, jwks);

    if let Ok(jws) = verifier.verify_signature(&token) {
        let segments: Vec<&str> = token.split('.').collect();
        assert_eq!(segments.len(), 3, "a verified JWS has three segments");
        assert!(segments.iter().all(|s| canonical_b64(s)), "a verified JWS is canonical base64url");
        assert!(ALL.contains(&jws.header.alg));
        if let Some(kid) = &jws.header.kid {
            assert!(kids.contains(kid), "verified with a key the JWKS does not name: {kid:?}");
        }
    }
    let verified = verifier.verify(&token, now);
    if let Ok(v) = &verified {
        assert_eq!(v.claims.iss, issuer);
        assert!(v.claims.aud.as_ref().is_some_and(|a| a.values().contains(&audience.as_str())));
        assert!(now < v.claims.exp.saturating_add(verifier.config().leeway()));
    }
    let cached = verifier.verify_cached(&token, now);
    assert_eq!(cached.is_ok(), verified.is_ok(), "verify_cached and verify disagree");
});
