//! Explicit bounds on every untrusted input.

/// Bounds applied to tokens and JWKS documents before and while they are parsed.
///
/// Every limit is named in the error that reports it, so an operator can tell which one to raise.
/// The defaults fit GitLab comfortably: a GitLab ID token is about 1 to 2 KiB and gitlab.com's
/// JWKS holds two RSA keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted compact token, in bytes. Defaults to 16 KiB.
    pub max_token_bytes: usize,
    /// Deepest accepted nesting of JSON arrays and objects in a header, payload or JWKS.
    /// Defaults to 16.
    pub max_json_depth: usize,
    /// Largest accepted JWKS document, in bytes. Defaults to 256 KiB.
    pub max_jwks_bytes: usize,
    /// Most keys accepted in one JWKS document. Defaults to 64.
    pub max_jwks_keys: usize,
    /// Most keys tried for a token that names no `kid`. Defaults to 4.
    pub max_keys_without_kid: usize,
    /// Most tokens a verifier remembers as verified ([`crate::Verifier::verify_cached`]).
    /// Defaults to 128 (Envoy's `jwt_authn` keeps 100): with GitLab-sized tokens an entry is a
    /// few KiB, so the cache stays near 1 MiB and an instance under 2 MiB. 0 turns it off.
    pub verified_cache_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_token_bytes: 16 * 1024,
            max_json_depth: 16,
            max_jwks_bytes: 256 * 1024,
            max_jwks_keys: 64,
            max_keys_without_kid: 4,
            verified_cache_entries: 128,
        }
    }
}
