//! # The broker: the only party Entra trusts for a target
//!
//! In the federated mode the job holds a GitLab token that Entra accepts, so every condition of
//! the policy that Entra cannot see (`ref_protected`, `environment`, deny rules, ...) is
//! advisory: the job can skip the policy and post its token to Entra itself. A broker credential
//! makes the policy binding. Entra trusts only the broker, and the broker asks Entra only for
//! jobs the policy allows. The job's GitLab token names the broker as its audience, not
//! `api://AzureADTokenExchange`, so Entra refuses it (AADSTS700212).
//!
//! | credential (`azure.credential`) | what the broker presents to Entra | what Entra trusts |
//! |---|---|---|
//! | `issuer` | an assertion it signs itself ([`BrokerIssuer`]), one subject per rule | a federated credential naming the broker's issuer URL and the rule's subject |
//! | `managed-identity` | its managed identity's token for `api://AzureADTokenExchange` ([`IdentityEndpoint`]) | a federated credential naming the identity's principal id |
//! | `certificate` | an assertion signed with the app's certificate key | the certificate uploaded to the app |
//!
//! Like the rest of the core this module does no I/O and reads no clock. The gate drives it:
//!
//! ```text
//! host (Envoy, a test)                      gate
//! --------------------                      ----
//! vending request: method, headers, body -> VendRequest::parse      401 missing token, 405 ...
//! the job's token, now                   -> Gate::admit             401 / 403 (deny) / Admission
//!                                        -> vend::check_scope       403 scope not allowed
//! managed identity only:
//!                                        -> Gate::identity_request  Some(IdentityRequest) when
//!    GET it (IMDS or IDENTITY_ENDPOINT)                               no fresh identity token
//!    status, headers, body               -> Gate::install_identity_token
//! assertion vending (`issuer` only)      -> Gate::vend_assertion    VendedAssertion
//!                                        -> vend::assertion_reply   200 JSON, Cache-Control: no-store
//! token vending / proxy:                 -> Gate::request           the Entra token request
//!    POST it to Entra                    -> Gate::finish            AccessToken or Failure
//!                                        -> vend::access_token_reply (az's JSON) / vend::error_reply
//! ```
//!
//! Nothing here puts a key, an assertion, an identity token or the identity endpoint's secret in
//! a `Debug` or `Display` output, an error or an audit event: those values are [`Secret`]s.

mod config;
mod error;
mod identity;
mod issuer;
mod secret;
pub mod vend;

pub use config::{BrokerConfig, ConfigMode};
pub use error::{BrokerConfigError, IdentityError, IssuerError, VendError};
pub use identity::{
    parse_identity_response, IdentityEndpoint, IdentityRequest, IdentityToken,
    ManagedIdentityCredential, APP_SERVICE_API_VERSION, IMDS_API_VERSION, IMDS_URL,
};
pub use issuer::{
    BrokerIssuer, BrokerIssuerBuilder, IssuerCredential, JobTrace, KeyUse, SignedAssertion,
    DEFAULT_BROKER_ASSERTION_LIFETIME, JWKS_PATH, MAX_PUBLISHED_KEYS,
};
pub use secret::Secret;
pub use vend::{VendKind, VendRequest, VendedAssertion};

use crate::entra::AzureTarget;

/// The token-exchange audience of the public cloud: what Entra expects in the `aud` of a
/// federated assertion, and the resource a managed identity asks for.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The token-exchange audiences of the public, US Government and China clouds. A broker refuses
/// GitLab tokens with any of them (they are worth an Azure token at Entra).
pub const TOKEN_EXCHANGE_AUDIENCES: [&str; 3] =
    [TOKEN_EXCHANGE_AUDIENCE, "api://AzureADTokenExchangeUSGov", "api://AzureADTokenExchangeChina"];

/// The prefix of an `issuer` rule's default subject: `gitlab-azure-oidc:rule:<name>`.
pub const DEFAULT_SUBJECT_PREFIX: &str = "gitlab-azure-oidc:rule:";

/// The subject the broker's assertion carries for `rule` when the policy names none.
pub fn default_rule_subject(rule: &str) -> String {
    format!("{DEFAULT_SUBJECT_PREFIX}{rule}")
}

/// The token-exchange audience of the cloud whose authority host is `host` (`None` or an unknown
/// host: the public cloud's), following Entra's "managed identity as a federated credential"
/// documentation.
pub fn token_exchange_audience(host: Option<&str>) -> &'static str {
    match host {
        Some("login.microsoftonline.us") => TOKEN_EXCHANGE_AUDIENCES[1],
        Some("login.chinacloudapi.cn") => TOKEN_EXCHANGE_AUDIENCES[2],
        _ => TOKEN_EXCHANGE_AUDIENCE,
    }
}

/// True for the three token-exchange audiences (compared without case: a near miss is as
/// dangerous in a broker's configuration).
pub fn is_token_exchange_audience(audience: &str) -> bool {
    TOKEN_EXCHANGE_AUDIENCES.iter().any(|a| a.eq_ignore_ascii_case(audience.trim()))
}

/// The issuer of Entra's own tokens for `target`'s tenant and cloud,
/// `https://{authority-host}/{tenant}/v2.0`: what a federated credential that trusts a managed
/// identity names.
pub fn entra_issuer(target: &AzureTarget) -> String {
    let host = target.authority_host().unwrap_or(crate::entra::KNOWN_AUTHORITY_HOSTS[0]);
    format!("https://{host}/{}/v2.0", target.tenant())
}

#[cfg(test)]
mod tests;
