//! # gitlab-azure-oidc: the pure core
//!
//! Judges the exchange of a GitLab CI ID token for a Microsoft Entra access token: it verifies the
//! GitLab token (JWS signature against the issuer's JWKS, algorithm allow-list, `iss`, `aud`,
//! `exp`/`nbf`/`iat` with leeway) and returns typed GitLab claims or a precise error.
//!
//! ## Design
//!
//! The core does no I/O and reads no clock. The JWKS document arrives as bytes the host fetched,
//! and the current time is a parameter (`now`, seconds since the Unix epoch). This is what lets the
//! same code run natively, inside a WebAssembly component (see `wit/`), inside an Envoy
//! proxy-wasm filter, and in tests that pin time.
//!
//! Every input is bounded ([`Limits`]) and every failure is a typed error that names the offending
//! value and says what to do next ([`VerifyError`], [`JwksError`], [`ConfigError`]). Nothing in
//! the core panics on input: the component is built with `panic = "abort"`.
//!
//! ## Getting started
//!
//! ```
//! use gitlab_azure_oidc::{Jwks, Verifier, VerifierConfig};
//! # fn run(jwks_json: &[u8], token: &str, now: u64) -> Result<(), Box<dyn std::error::Error>> {
//! let config = VerifierConfig::builder("https://gitlab.com").audience("api://AzureADTokenExchange");
//! let verifier = Verifier::new(config.build()?, Jwks::parse(jwks_json)?);
//! let verified = verifier.verify(token, now)?;
//! println!("project {:?}", verified.claims.gitlab.project_path);
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod alg;
mod b64;
mod cache;
mod claims;
pub mod entra;
mod error;
mod json;
mod jwk;
mod jws;
mod limits;
pub mod offload;
pub mod pipeline;
pub mod policy;
mod verify;

// Only in the component build (wasm32-wasip2): the Envoy filter links this crate for
// wasm32-wasip1, where the component's imports would make the module unloadable.
#[cfg(all(target_arch = "wasm32", target_env = "p2"))]
#[allow(unsafe_code)] // wit-bindgen's generated exports are `unsafe extern "C"` functions.
mod component;

pub use alg::Algorithm;
pub use claims::{Audience, Claims, GitLabClaims, JobConfig, UserIdentity};
pub use error::{ConfigError, IssuerNearMiss, JwksError, Part, VerifyError};
pub use jwk::{Jwks, KeyInfo, KeyKind, SkippedKey};
pub use jws::{Header, VerifiedJws};
pub use limits::Limits;
pub use verify::{
    token_fingerprint, VerifiedToken, Verifier, VerifierConfig, VerifierConfigBuilder,
};
