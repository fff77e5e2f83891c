//! # gitlab-azure-oidc: the pure core
//!
//! Judges the exchange of a GitLab CI ID token for a Microsoft Entra access token: it verifies the
//! GitLab token, decides with a policy which Azure identity the job may become, builds the Entra
//! token request and explains Entra's answer. [`Gate`] runs that sequence; the modules it is built
//! from stay public for tooling.
//!
//! ## Design
//!
//! The core does no I/O and reads no clock. The JWKS document arrives as bytes the host fetched,
//! the current time is a parameter (`now`, seconds since the Unix epoch), and the Entra request
//! comes back as a value for the host to send. This is what lets the same code run natively,
//! inside a WebAssembly component (see `wit/`), inside an Envoy proxy-wasm filter, and in tests
//! that pin time.
//!
//! | module | what it judges |
//! |---|---|
//! | [`gate`] | the exchange, in order: verify, decide, build the request, read the answer |
//! | [`verify`] | the GitLab token: JWS, JWKS, claims ([`CLAIMS`] is the claim table) |
//! | [`policy`] | which job may become which Azure identity, explained and audited; the plan |
//! | [`entra`] | the Azure target, the token request and response, the federated credentials |
//! | [`rbac`] | what the identity may do in Azure: role assignments planned and audited |
//! | [`pipeline`] | a `.gitlab-ci.yml`, linted against the policy and the federated credentials |
//!
//! Every input is bounded ([`Limits`]) and every failure is a typed error that names the offending
//! value and says what to do next. Nothing in the core panics on input: `unwrap`, `expect` and
//! `panic!` are denied by lint, and the component is built with `panic = "abort"`.
//!
//! ## What this crate does not do
//!
//! It does not make or accept connections, read files, environment variables or the clock, or
//! keep anything between calls but what a [`Gate`] or [`Verifier`] holds.
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
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod broker;
pub mod entra;
pub mod findings;
pub mod gate;
pub mod pipeline;
pub mod policy;
pub mod rbac;
mod text;
pub mod verify;

// Only in the component build (wasm32-wasip2): the Envoy filter links this crate for
// wasm32-wasip1, where the component's imports would make the module unloadable.
#[cfg(all(target_arch = "wasm32", target_env = "p2"))]
#[allow(unsafe_code)] // wit-bindgen's generated exports are `unsafe extern "C"` functions.
mod component;

pub use gate::{Admission, Failure, Gate, GateConfig};
pub use verify::offload;
pub use verify::{
    token_fingerprint, Algorithm, Audience, ClaimKind, ClaimSpec, Claims, ConfigError,
    GitLabClaims, Header, IssuerNearMiss, JobConfig, Jwks, JwksError, KeyInfo, KeyKind, Limits,
    Part, Scheme, SkippedKey, UserIdentity, VerifiedJws, VerifiedToken, Verifier, VerifierConfig,
    VerifierConfigBuilder, VerifyError, CLAIMS,
};

/// Test hooks: reachable from the workspace's tests and benchmarks, not part of the API.
#[doc(hidden)]
pub mod internal {
    pub use crate::entra::federated::default_gitlab_subject;
    pub use crate::verify::internal::*;
}
