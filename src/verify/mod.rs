//! Verification of GitLab CI ID tokens: a compact JWS, its signature against the issuer's JWKS,
//! and its claims (RFC 7515, RFC 7517, RFC 7519, OIDC Core 3.1.3.7).
//!
//! [`Verifier`] is configured once ([`VerifierConfig`]) with a parsed [`Jwks`] and judges tokens
//! at a time the caller passes; every failure is a [`VerifyError`] that names what was expected
//! and what was found.

mod alg;
mod cache;
mod claims;
mod error;
mod jwk;
mod jws;
mod limits;
pub mod offload;
mod verifier;

pub use alg::{Algorithm, Scheme};
pub use claims::{
    Audience, ClaimKind, ClaimSpec, Claims, GitLabClaims, JobConfig, UserIdentity, CLAIMS,
};
pub use error::{ConfigError, IssuerNearMiss, JwksError, Part, VerifyError};
pub use jwk::{Jwks, KeyInfo, KeyKind, SkippedKey};
pub use jws::{Header, VerifiedJws};
pub use limits::Limits;
pub use verifier::{
    token_fingerprint, DangerousVerifier, DangerousVerifierConfig, VerifiedToken, Verifier,
    VerifierConfig, VerifierConfigBuilder,
};

pub(crate) use claims::claim_spec;

/// Test hooks, re-exported as `gitlab_azure_oidc::internal`: not part of the API.
pub(crate) mod internal {
    use super::offload::SignatureBackend;
    use super::{Algorithm, Jwks, Limits, Verifier, VerifyError};

    /// The signature step of token verification on its own, for raw signatures such as test
    /// vectors: `signature` over `message` with the key named `kid` (or, without one, any key
    /// that fits `alg`), with no algorithm allow-list.
    ///
    /// # Errors
    /// The key-selection and signature errors of [`VerifyError`].
    pub fn verify_detached(
        jwks: &Jwks,
        kid: Option<&str>,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), VerifyError> {
        jwks.verify(kid, alg, message, signature, &Limits::default(), None)
    }

    /// Like [`verify_detached`], with the arithmetic handed to `backend`.
    ///
    /// # Errors
    /// The key-selection and signature errors of [`VerifyError`].
    pub fn verify_detached_with(
        jwks: &Jwks,
        kid: Option<&str>,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
        backend: &dyn SignatureBackend,
    ) -> Result<(), VerifyError> {
        jwks.verify(kid, alg, message, signature, &Limits::default(), Some(backend))
    }

    /// How many verified tokens `verifier` keeps in its cache.
    pub fn cached(verifier: &Verifier) -> usize {
        verifier.cached()
    }
}
