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
pub mod federated;
mod keys;
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
pub(crate) use keys::signing_key_from_pem;
pub use keys::{certificate_thumbprints, CertificateThumbprints, RsaPublicKey};
pub(crate) use request::form_encode;
pub(crate) use request::request_with_assertion;
pub use request::{
    build_certificate_request, build_federated_request, TokenRequest, CLIENT_ASSERTION_TYPE,
    FORM_CONTENT_TYPE, GRANT_TYPE,
};
pub use response::{parse_token_response, AccessToken, SecretToken, MAX_RESPONSE_BYTES};
pub use target::{
    AzureTarget, AzureTargetBuilder, DangerousAzureTarget, DEFAULT_SCOPE, KNOWN_AUTHORITY_HOSTS,
};

#[cfg(test)]
mod tests;
