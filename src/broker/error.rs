//! The broker's errors: its issuer's configuration, the managed identity endpoint, the vending
//! request, and the broker configuration document. None carries a key, an assertion, a token or
//! the identity endpoint's secret.

use std::fmt;

use crate::entra::CredentialError;
use crate::text::list;

/// Why a [`crate::broker::BrokerIssuer`] was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssuerError {
    /// Two keys have the same `kid`.
    DuplicateKid {
        /// The `kid`.
        kid: String,
    },
    /// A `kid` is empty, too long, or has characters other than printable ASCII.
    InvalidKid {
        /// The `kid`, as given.
        kid: String,
    },
    /// The issuer URL is not one Entra can use.
    InvalidUrl {
        /// The URL, as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key is not usable.
    Key {
        /// Its position in the key list, from 0.
        index: usize,
        /// What is wrong with it.
        error: CredentialError,
    },
    /// The assertion lifetime is 0 or more than the maximum.
    LifetimeOutOfRange {
        /// The lifetime given, in seconds.
        seconds: u64,
        /// The maximum, in seconds.
        max: u64,
    },
    /// No key signs.
    NoSigningKey {
        /// The published keys' ids.
        published: Vec<String>,
    },
    /// The signing key has no private part (only its public key was given).
    SigningKeyWithoutPrivateKey {
        /// Its `kid`.
        kid: String,
    },
    /// More than one key signs.
    SeveralSigningKeys {
        /// Their ids.
        kids: Vec<String>,
    },
    /// More keys than Entra reads from a JWKS.
    TooManyKeys {
        /// How many were given.
        count: usize,
        /// The limit.
        max: usize,
    },
}

impl IssuerError {
    /// A stable, kebab-case kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DuplicateKid { .. } => "issuer-duplicate-kid",
            Self::InvalidKid { .. } => "issuer-invalid-kid",
            Self::InvalidUrl { .. } => "issuer-invalid-url",
            Self::Key { .. } => "issuer-key-invalid",
            Self::LifetimeOutOfRange { .. } => "lifetime-out-of-range",
            Self::NoSigningKey { .. } => "issuer-no-signing-key",
            Self::SigningKeyWithoutPrivateKey { .. } => "issuer-signing-key-public-only",
            Self::SeveralSigningKeys { .. } => "issuer-several-signing-keys",
            Self::TooManyKeys { .. } => "issuer-too-many-keys",
        }
    }
}

impl fmt::Display for IssuerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateKid { kid } => write!(
                f,
                "broker issuer: two keys have the kid `{kid}`; give each key its own kid (or omit \
                 it: the default is the key's RFC 7638 thumbprint)"
            ),
            Self::InvalidKid { kid } => write!(
                f,
                "broker issuer: the kid {kid:?} is not 1 to 128 printable ASCII characters"
            ),
            Self::InvalidUrl { url, reason } => write!(
                f,
                "broker issuer URL {url:?}: {reason}; Entra fetches \
                 {{issuer}}/.well-known/openid-configuration over HTTPS and compares the URL with \
                 the assertion's `iss` exactly"
            ),
            Self::Key { index, error } => write!(f, "broker issuer key {index}: {error}"),
            Self::LifetimeOutOfRange { seconds, max } => write!(
                f,
                "broker issuer: an assertion lifetime of {seconds} s is not accepted; give 1 to \
                 {max} s (the issue's rule: at most 10 minutes)"
            ),
            Self::NoSigningKey { published } => write!(
                f,
                "broker issuer: no key has `use: signing` (published: {}); mark exactly one key \
                 `signing`, and keep the next key `published` until Entra has seen it",
                list(published)
            ),
            Self::SigningKeyWithoutPrivateKey { kid } => write!(
                f,
                "broker issuer: the signing key `{kid}` has no private key; give its PKCS#8 PEM \
                 (a public key can only be `published`)"
            ),
            Self::SeveralSigningKeys { kids } => write!(
                f,
                "broker issuer: {} keys have `use: signing`; exactly one signs, the others are \
                 `published` (the next key before it signs, the previous one until its \
                 assertions expired)",
                list(kids)
            ),
            Self::TooManyKeys { count, max } => write!(
                f,
                "broker issuer: {count} keys, but Entra keeps only the first {max} of a JWKS \
                 (AADSTS7000272 for the others); remove retired keys"
            ),
        }
    }
}

impl std::error::Error for IssuerError {}

/// Why the managed identity's token could not be had.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityError {
    /// The endpoint answered with an error status (other than the cases below).
    Endpoint {
        /// The HTTP status.
        status: u16,
        /// The `error` member, when there was one.
        error: Option<String>,
        /// The `error_description` or `message`, shortened.
        description: Option<String>,
        /// `Retry-After` in seconds, when numeric.
        retry_after: Option<u64>,
    },
    /// The endpoint URL or its secret is not usable.
    InvalidEndpoint {
        /// The URL, as given.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The answer is not a token: not JSON, no `access_token`, no usable `expires_on`.
    Malformed {
        /// What is wrong, naming the member.
        detail: String,
    },
    /// The identity is not assigned to this compute (IMDS answers 400 "Identity not found").
    NotAssigned {
        /// The user-assigned identity's client id.
        client_id: String,
        /// The endpoint's description, shortened.
        description: Option<String>,
    },
    /// No fresh identity token: [`crate::Gate::identity_request`] must be sent and its answer
    /// installed before [`crate::Gate::request`].
    NoToken {
        /// The user-assigned identity's client id.
        client_id: String,
    },
    /// The token expires before it could be used.
    Expired {
        /// When it expires (Unix seconds).
        expires_at: u64,
        /// When it was received.
        now: u64,
    },
    /// The endpoint refused the secret header (App Service and Container Apps: 401 or 403).
    Unauthorized {
        /// The HTTP status.
        status: u16,
    },
}

impl IdentityError {
    /// A stable, kebab-case kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Endpoint { .. } => "identity-endpoint-error",
            Self::InvalidEndpoint { .. } => "identity-endpoint-invalid",
            Self::Malformed { .. } => "identity-answer-malformed",
            Self::NotAssigned { .. } => "identity-not-assigned",
            Self::NoToken { .. } => "identity-token-missing",
            Self::Expired { .. } => "identity-token-expired",
            Self::Unauthorized { .. } => "identity-endpoint-unauthorized",
        }
    }

    /// True when the same request may succeed later: throttling, a 5xx, or IMDS's 404 while the
    /// identity is being set up (Azure Identity retries those).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Endpoint { status, .. } if *status == 404 || *status == 429 || *status >= 500)
    }

    /// `Retry-After` in seconds, when the endpoint sent a number.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Endpoint { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True for a configuration problem (the endpoint itself), not an answer.
    pub fn is_config(&self) -> bool {
        matches!(self, Self::InvalidEndpoint { .. })
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::NotAssigned { client_id, .. } => Some(format!(
                "assign the user-assigned identity {client_id} to the broker's VM, scale set, App \
                 Service or Container App (or fix `client_id` in the rule's credential)"
            )),
            Self::Unauthorized { .. } => Some(
                "the broker sends $IDENTITY_HEADER as X-IDENTITY-HEADER: pass the platform's \
                 current value (it changes when the app restarts)"
                    .to_owned(),
            ),
            Self::NoToken { .. } => Some(
                "the host must send Gate::identity_request and install the answer with \
                 Gate::install_identity_token before Gate::request"
                    .to_owned(),
            ),
            Self::Endpoint { .. } if self.is_retryable() => {
                Some("the identity endpoint is busy or starting; retry later".to_owned())
            }
            _ => None,
        }
    }

    /// The status a broker answers its client with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidEndpoint { .. } => 500,
            _ if self.is_retryable() => 503,
            _ => 502,
        }
    }
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Endpoint { status, error, description, .. } => {
                write!(f, "the managed identity endpoint answered HTTP {status}")?;
                if let Some(error) = error {
                    write!(f, " ({error})")?;
                }
                if let Some(description) = description {
                    write!(f, ": {description}")?;
                }
                Ok(())
            }
            Self::InvalidEndpoint { url, reason } => {
                write!(f, "managed identity endpoint {url:?}: {reason}")
            }
            Self::Malformed { detail } => {
                write!(f, "the managed identity endpoint's answer is not a token: {detail}")
            }
            Self::NotAssigned { client_id, description } => {
                write!(f, "the managed identity {client_id} is not assigned to this compute")?;
                if let Some(description) = description {
                    write!(f, " ({description})")?;
                }
                Ok(())
            }
            Self::NoToken { client_id } => {
                write!(f, "no identity token for the managed identity {client_id} yet")
            }
            Self::Expired { expires_at, now } => write!(
                f,
                "the managed identity token expires at {expires_at}, too soon after {now} to be \
                 used as an assertion"
            ),
            Self::Unauthorized { status } => {
                write!(f, "the managed identity endpoint refused the secret header (HTTP {status})")
            }
        }
    }
}

impl std::error::Error for IdentityError {}

/// Why a vending request was refused before or after the policy decided.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VendError {
    /// The rule's credential cannot vend an assertion (only `issuer` can).
    AssertionUnavailable {
        /// The rule.
        rule: Option<String>,
        /// The rule's credential.
        credential: &'static str,
    },
    /// The body is not a JSON object or form the route reads.
    BadBody {
        /// What is wrong.
        detail: String,
    },
    /// The body is larger than the limit.
    BodyTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The `Authorization` header holds no token.
    EmptyToken,
    /// The method is not `POST`.
    MethodNotAllowed {
        /// The method.
        method: String,
    },
    /// No `Authorization` header.
    MissingToken,
    /// The requested scope is not one the rule grants.
    ScopeNotAllowed {
        /// The scope asked for.
        scope: String,
        /// The scopes the rule grants.
        allowed: Vec<String>,
        /// The rule.
        rule: Option<String>,
    },
    /// `kind` names no kind of answer.
    UnknownKind {
        /// The value.
        kind: String,
    },
    /// The `Authorization` header uses another scheme than `Bearer`.
    WrongScheme {
        /// The scheme (never the credential after it).
        scheme: String,
    },
}

impl VendError {
    /// A stable, kebab-case kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AssertionUnavailable { .. } => "assertion-unavailable",
            Self::BadBody { .. } => "bad-request",
            Self::BodyTooLarge { .. } => "body-too-large",
            Self::EmptyToken | Self::MissingToken | Self::WrongScheme { .. } => "missing-token",
            Self::MethodNotAllowed { .. } => "method-not-allowed",
            Self::ScopeNotAllowed { .. } => "scope-not-allowed",
            Self::UnknownKind { .. } => "bad-request",
        }
    }

    /// True when the token itself is missing (the answer is 401 with a challenge).
    pub fn is_token(&self) -> bool {
        matches!(self, Self::EmptyToken | Self::MissingToken | Self::WrongScheme { .. })
    }

    /// The status a broker answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::EmptyToken | Self::MissingToken | Self::WrongScheme { .. } => 401,
            Self::MethodNotAllowed { .. } => 405,
            Self::BodyTooLarge { .. } => 413,
            Self::ScopeNotAllowed { .. } => 403,
            Self::AssertionUnavailable { .. } | Self::BadBody { .. } | Self::UnknownKind { .. } => {
                400
            }
        }
    }

    /// What to change.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::MissingToken | Self::EmptyToken => Some(
                "send the job's GitLab ID token (an `id_tokens:` variable whose `aud` is the \
                 broker's URL) as `Authorization: Bearer <token>`"
                    .to_owned(),
            ),
            Self::WrongScheme { .. } => Some(
                "use `Authorization: Bearer <token>` with the GitLab ID token itself".to_owned(),
            ),
            Self::MethodNotAllowed { .. } => Some("use POST".to_owned()),
            Self::AssertionUnavailable { .. } => Some(
                "ask for an access token instead (no --assertion-file), or give the rule the \
                 `issuer` credential"
                    .to_owned(),
            ),
            Self::ScopeNotAllowed { allowed, .. } => Some(format!(
                "ask for {} (or no scope), or add the scope to the rule",
                list(allowed)
            )),
            _ => None,
        }
    }
}

impl fmt::Display for VendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AssertionUnavailable { rule, credential } => write!(
                f,
                "{} uses the {credential} credential, which has no assertion to hand out; only \
                 `issuer` rules vend assertions",
                rule_name(rule.as_deref())
            ),
            Self::BadBody { detail } => write!(f, "the request body is not usable: {detail}"),
            Self::BodyTooLarge { size, limit } => {
                write!(f, "the request body has {size} bytes, more than the limit of {limit}")
            }
            Self::EmptyToken => f.write_str("the Authorization header's Bearer token is empty"),
            Self::MethodNotAllowed { method } => {
                write!(f, "{method} is not accepted here; the token route takes POST")
            }
            Self::MissingToken => f.write_str("no Authorization header"),
            Self::ScopeNotAllowed { scope, allowed, rule } => write!(
                f,
                "{} does not grant the scope `{scope}` (it grants {})",
                rule_name(rule.as_deref()),
                list(allowed)
            ),
            Self::UnknownKind { kind } => write!(
                f,
                "`kind` is {kind:?}; expected `access_token` (the default) or `assertion`"
            ),
            Self::WrongScheme { scheme } => {
                write!(f, "the Authorization header uses the {scheme:?} scheme; expected `Bearer`")
            }
        }
    }
}

fn rule_name(rule: Option<&str>) -> String {
    match rule {
        Some(rule) => format!("rule {rule}"),
        None => "the broker's target".to_owned(),
    }
}

impl std::error::Error for VendError {}

/// Why a broker configuration document was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerConfigError {
    /// A value names an environment variable that is not set.
    EnvNotSet {
        /// Where in the document, e.g. `issuer.keys[0].private_key`.
        at: String,
        /// The variable.
        name: String,
    },
    /// A certificate entry is not usable.
    Certificate {
        /// Its name.
        name: String,
        /// Why.
        error: CredentialError,
    },
    /// The managed identity endpoint is not usable.
    Identity(IdentityError),
    /// The issuer is not usable.
    Issuer(IssuerError),
    /// The document is not what the parser reads.
    Invalid {
        /// Where, e.g. `issuer.url`.
        at: String,
        /// What was expected.
        expected: String,
    },
    /// The document is not JSON.
    Json {
        /// The parser's message.
        detail: String,
    },
    /// A member the parser does not know (a typo would silently drop a setting).
    UnknownField {
        /// Where.
        at: String,
        /// The members allowed there.
        allowed: Vec<&'static str>,
    },
}

impl BrokerConfigError {
    /// A stable, kebab-case kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::EnvNotSet { .. } => "broker-env-not-set",
            Self::Certificate { error, .. } => error.kind(),
            Self::Identity(e) => e.kind(),
            Self::Issuer(e) => e.kind(),
            Self::Invalid { .. } => "broker-config-invalid",
            Self::Json { .. } => "broker-config-json",
            Self::UnknownField { .. } => "broker-config-unknown-field",
        }
    }
}

impl fmt::Display for BrokerConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EnvNotSet { at, name } => write!(
                f,
                "broker configuration {at}: the environment variable {name} is not set or empty; \
                 pass it to the broker (Envoy: vm_config.environment_variables, mounted from a \
                 Kubernetes secret)"
            ),
            Self::Certificate { name, error } => write!(f, "broker certificate {name}: {error}"),
            Self::Identity(e) => write!(f, "{e}"),
            Self::Issuer(e) => write!(f, "{e}"),
            Self::Invalid { at, expected } => {
                write!(f, "broker configuration {at}: expected {expected}")
            }
            Self::Json { detail } => write!(f, "broker configuration: not JSON: {detail}"),
            Self::UnknownField { at, allowed } => write!(
                f,
                "broker configuration {at}: unknown member; allowed here: {}",
                list(allowed)
            ),
        }
    }
}

impl std::error::Error for BrokerConfigError {}

impl From<IssuerError> for BrokerConfigError {
    fn from(e: IssuerError) -> Self {
        Self::Issuer(e)
    }
}

impl From<IdentityError> for BrokerConfigError {
    fn from(e: IdentityError) -> Self {
        Self::Identity(e)
    }
}
