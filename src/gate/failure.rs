//! One failure type for the whole exchange, so every host branches on the same few questions:
//! what kind, what to tell the user, fetch the keys again, retry, and when.

use std::fmt;
use std::sync::Arc;

use super::{Decided, GateConfigError};
use crate::broker::{IdentityError, VendError};
use crate::entra::federated::CredentialError;
use crate::entra::{EntraError, EntraErrorResponse, RequestError};
use crate::pipeline::PipelineError;
use crate::policy::BrokerPlanError;
use crate::policy::Location;
use crate::{JwksError, VerifyError};

/// Why the gate gave no admission or no access token. Nothing in it carries a token, a key or an
/// assertion.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Failure {
    /// A configuration (verifier settings, policy, target, credential) was refused.
    Config(GateConfigError),
    /// A list of federated identity credentials (tooling input) was refused.
    Credentials(CredentialError),
    /// Claims given as JSON for a what-if decision (tooling input) do not parse.
    Claims(VerifyError),
    /// A CI pipeline given to the linter (tooling input) cannot be linted at all.
    Pipeline(PipelineError),
    /// A JWKS document was refused as a whole; the keys in use stay.
    Jwks(JwksError),
    /// The gate has no signing keys yet: fetch the issuer's JWKS and install it.
    NoKeys,
    /// The token did not verify.
    Token(VerifyError),
    /// The policy denied the job; the decision says which rule and why.
    Denied(Arc<Decided>),
    /// The Entra request could not be built (the token's shape, or the credential failed).
    Request(RequestError),
    /// Entra's answer gave no access token.
    Entra(EntraError),
    /// The broker's managed identity token could not be had (or was not installed yet).
    Identity(IdentityError),
    /// A vending request was refused: no token, another method, a bad body, a scope the rule
    /// does not grant, an assertion for a rule that cannot vend one.
    Vend(VendError),
    /// The broker plan cannot be made (tooling input).
    Plan(BrokerPlanError),
}

/// What kind of failure, for hosts that branch without matching every variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    /// The gate's configuration (policy, target, credential, verifier settings) was refused.
    Config,
    /// The issuer's keys are missing or unusable: fetch them (again).
    Jwks,
    /// The GitLab token was refused.
    Token,
    /// The policy denied the job.
    Denied,
    /// The Entra request could not be built.
    Request,
    /// Entra refused, throttled or failed.
    Entra,
}

impl Category {
    /// The category's name, kebab-case.
    pub fn name(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Jwks => "jwks",
            Self::Token => "token",
            Self::Denied => "denied",
            Self::Request => "request",
            Self::Entra => "entra",
        }
    }
}

impl Failure {
    /// A stable, kebab-case kind (`expired`, `policy-denied`, `entra-error`, ...), for logs,
    /// metrics and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Config(e) => e.kind(),
            Self::Credentials(e) => e.kind(),
            Self::Claims(e) => e.kind(),
            Self::Pipeline(e) => e.kind(),
            Self::Jwks(e) => e.kind(),
            Self::NoKeys => "jwks-unavailable",
            Self::Token(e) => e.kind(),
            Self::Denied(_) => "policy-denied",
            Self::Request(e) => e.kind(),
            Self::Entra(e) => e.kind(),
            Self::Identity(e) => e.kind(),
            Self::Vend(e) => e.kind(),
            Self::Plan(e) => e.kind(),
        }
    }

    /// The failure's category.
    pub fn category(&self) -> Category {
        match self {
            Self::Config(_)
            | Self::Credentials(_)
            | Self::Claims(_)
            | Self::Pipeline(_)
            | Self::Plan(_) => Category::Config,
            Self::Jwks(_) | Self::NoKeys => Category::Jwks,
            Self::Token(_) => Category::Token,
            Self::Denied(_) => Category::Denied,
            Self::Request(_) => Category::Request,
            Self::Entra(_) => Category::Entra,
            Self::Identity(e) if e.is_config() => Category::Config,
            Self::Identity(_) => Category::Entra,
            Self::Vend(e) if e.is_token() => Category::Token,
            Self::Vend(VendError::ScopeNotAllowed { .. }) => Category::Denied,
            Self::Vend(_) => Category::Request,
        }
    }

    /// What to change, when the failure has an action apart from its message: Entra's hint for
    /// its AADSTS code, the deny explanation, or fetching the keys.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::NoKeys => Some(
                "fetch the issuer's JWKS (its discovery document names `jwks_uri`) and install it"
                    .to_owned(),
            ),
            Self::Token(e) if e.suggests_jwks_refresh() => Some(
                "the issuer may have rotated its keys: fetch its JWKS again, then retry".to_owned(),
            ),
            Self::Config(_) | Self::Credentials(_) | Self::Claims(_) | Self::Jwks(_) => None,
            Self::Pipeline(_) | Self::Token(_) | Self::Request(_) => None,
            Self::Denied(decided) => decided.decision().map(|d| d.lines().join("\n")),
            Self::Entra(e) => e.entra_response().map(EntraErrorResponse::hint),
            Self::Identity(e) => e.hint(),
            Self::Vend(e) => e.hint(),
            Self::Plan(_) => None,
        }
    }

    /// True when fetching the issuer's JWKS again may fix it (no keys yet, or an unknown `kid`).
    pub fn refetch_jwks(&self) -> bool {
        match self {
            Self::NoKeys | Self::Jwks(_) => true,
            Self::Token(e) => e.suggests_jwks_refresh(),
            Self::Config(_) | Self::Credentials(_) | Self::Claims(_) | Self::Pipeline(_) => false,
            Self::Denied(_) | Self::Request(_) | Self::Entra(_) => false,
            Self::Identity(_) | Self::Vend(_) | Self::Plan(_) => false,
        }
    }

    /// True when the same request may succeed later without any change (Entra throttled or
    /// failed): the host's retry rule decides whether and how often.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Entra(e) => e.is_retryable(),
            Self::Identity(e) => e.is_retryable(),
            Self::Vend(_) | Self::Plan(_) => false,
            Self::Config(_)
            | Self::Credentials(_)
            | Self::Claims(_)
            | Self::Pipeline(_)
            | Self::Jwks(_) => false,
            Self::NoKeys | Self::Token(_) | Self::Denied(_) | Self::Request(_) => false,
        }
    }

    /// Entra's `Retry-After` in seconds, when it sent a numeric one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Entra(e) => e.retry_after().and_then(|r| r.seconds),
            Self::Identity(e) => e.retry_after(),
            Self::Vend(_) | Self::Plan(_) => None,
            Self::Config(_)
            | Self::Credentials(_)
            | Self::Claims(_)
            | Self::Pipeline(_)
            | Self::Jwks(_) => None,
            Self::NoKeys | Self::Token(_) | Self::Denied(_) | Self::Request(_) => None,
        }
    }

    /// The HTTP status a proxy or broker answers its client with: 401 for a refused token, 403
    /// for a deny or Entra's refusal of the identity, 503 for what may pass later (no keys,
    /// throttling, Entra unavailable), 502 for anything else Entra or the request did wrong.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Config(_) | Self::Credentials(_) => 500,
            Self::Claims(_) | Self::Pipeline(_) => 400,
            Self::Jwks(_) | Self::NoKeys => 503,
            Self::Token(_) => 401,
            Self::Denied(_) => 403,
            Self::Request(_) => 502,
            Self::Entra(e) => match e {
                EntraError::RateLimited { .. } => 503,
                // 503 is Entra's "try later"; 504 is what a proxy answers a callout that timed out.
                EntraError::ServerError { status: 503 | 504, .. } => 503,
                EntraError::Entra(response) if response.is_retryable() => 503,
                EntraError::Entra(_) => 403,
                _ => 502,
            },
            Self::Identity(e) => e.http_status(),
            Self::Vend(e) => e.http_status(),
            Self::Plan(_) => 500,
        }
    }

    /// Entra's error body, when Entra answered with one.
    pub fn entra_response(&self) -> Option<&EntraErrorResponse> {
        match self {
            Self::Entra(e) => e.entra_response(),
            Self::Identity(_) | Self::Vend(_) | Self::Plan(_) => None,
            Self::Config(_)
            | Self::Credentials(_)
            | Self::Claims(_)
            | Self::Pipeline(_)
            | Self::Jwks(_) => None,
            Self::NoKeys | Self::Token(_) | Self::Denied(_) | Self::Request(_) => None,
        }
    }

    /// Where in the policy document, for a policy that does not load.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Config(e) => e.location(),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "{e}"),
            Self::Credentials(e) => write!(f, "{e}"),
            Self::Claims(e) => write!(f, "the claims: {e}"),
            Self::Pipeline(e) => write!(f, "{e}"),
            Self::Jwks(e) => write!(f, "{e}"),
            Self::NoKeys => f.write_str(
                "the issuer's signing keys are not available yet; fetch the JWKS, then retry",
            ),
            Self::Token(e) => write!(f, "{e}"),
            Self::Denied(decided) => match decided.decision() {
                Some(decision) => f.write_str(&decision.summary()),
                None => f.write_str("denied"),
            },
            Self::Request(e) => write!(f, "{e}"),
            // The hint is the failure's own field: the message says what Entra said.
            Self::Entra(EntraError::Entra(response)) => f.write_str(&response.describe()),
            Self::Entra(e) => write!(f, "{e}"),
            Self::Identity(e) => write!(f, "{e}"),
            Self::Vend(e) => write!(f, "{e}"),
            Self::Plan(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Failure {}

impl From<GateConfigError> for Failure {
    fn from(e: GateConfigError) -> Self {
        Self::Config(e)
    }
}

impl From<PipelineError> for Failure {
    fn from(e: PipelineError) -> Self {
        Self::Pipeline(e)
    }
}

impl From<JwksError> for Failure {
    fn from(e: JwksError) -> Self {
        Self::Jwks(e)
    }
}

impl From<CredentialError> for Failure {
    fn from(e: CredentialError) -> Self {
        Self::Credentials(e)
    }
}

impl From<VerifyError> for Failure {
    fn from(e: VerifyError) -> Self {
        Self::Token(e)
    }
}

impl From<RequestError> for Failure {
    fn from(e: RequestError) -> Self {
        Self::Request(e)
    }
}

impl From<IdentityError> for Failure {
    fn from(e: IdentityError) -> Self {
        Self::Identity(e)
    }
}

impl From<VendError> for Failure {
    fn from(e: VendError) -> Self {
        Self::Vend(e)
    }
}

impl From<EntraError> for Failure {
    fn from(e: EntraError) -> Self {
        Self::Entra(e)
    }
}
