//! The exchange with Microsoft Entra: build the token request, parse the answer.
//!
//! A GitLab CI job proves its identity to Entra with its ID token (workload identity federation):
//! the token is sent as the `client_assertion` of a client-credentials request, and Entra matches
//! its `iss`, `sub` and `aud` against a federated identity credential of the application. A
//! certificate credential is supported too: the key signs its own assertion.
//!
//! Like the verifier, this module does no I/O and reads no clock: [`build_federated_request`]
//! and [`build_certificate_request`] return a [`TokenRequest`] for the host to send, and
//! [`parse_token_response`] reads what came back. Time (`now`) and randomness (`rng`) are
//! parameters.
//!
//! ```
//! use gitlab_azure_oidc::entra::{self, AzureTarget};
//! # fn run(gitlab_token: &str, status: u16, body: &[u8], now: u64)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! let target = AzureTarget::builder(
//!     "72f988bf-86f1-41af-91ab-2d7cd011db47",
//!     "11111111-2222-3333-4444-555555555555",
//! )
//! .build()?;
//! let request = entra::build_federated_request(&target, gitlab_token)?;
//! // ... the host POSTs `request.body` to `request.url` with `request.headers` ...
//! let token = entra::parse_token_response(status, &[], body, now)?;
//! println!("token expires at {}", token.expires_at);
//! # Ok(()) }
//! ```

mod aadsts;
mod credential;
mod error;
mod request;
mod response;
mod target;

pub use credential::{
    AssertionAlgorithm, CertificateCredential, DEFAULT_ASSERTION_LIFETIME, MAX_ASSERTION_LIFETIME,
};
pub use error::{
    CredentialError, EntraError, EntraErrorResponse, PemInput, RequestError, RetryAfter,
    TargetError,
};
pub use request::{
    build_certificate_request, build_federated_request, TokenRequest, CLIENT_ASSERTION_TYPE,
    FORM_CONTENT_TYPE, GRANT_TYPE,
};
pub use response::{parse_token_response, AccessToken, SecretToken, MAX_RESPONSE_BYTES};
pub use target::{AzureTarget, AzureTargetBuilder, DEFAULT_SCOPE, KNOWN_AUTHORITY_HOSTS};

/// The subject Entra matches against a federated identity credential: the token's `sub` claim,
/// verbatim (Entra compares it exactly and case-sensitively). `None` when the token has no `sub`.
pub fn federated_subject(claims: &crate::Claims) -> Option<String> {
    claims.sub.clone()
}

/// GitLab's default subject, `project_path:{project_path}:ref_type:{ref_type}:ref:{ref}`, for
/// diagnostics: what a federated credential's subject must be for a job on that project and ref
/// when the project has not customised `ci_id_token_sub_claim_components`.
pub fn default_gitlab_subject(project_path: &str, ref_type: &str, r#ref: &str) -> String {
    format!("project_path:{project_path}:ref_type:{ref_type}:ref:{}", r#ref)
}

#[cfg(test)]
mod tests;
