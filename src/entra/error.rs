//! One error type per boundary of the exchange: the target, the certificate credential, the
//! request, and Entra's answer.
//!
//! Like the verifier's errors, variants carry the offending values and `Display` ends with what to
//! change. No error ever carries a secret: not the GitLab token, not the private key, not the
//! access token.

use std::fmt;

use crate::entra::aadsts;
use crate::text::list;

/// Why an [`crate::entra::AzureTarget`] was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetError {
    /// The overriding authority URL is not a plain base URL, or uses `http://` off loopback.
    InvalidAuthorityUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The client id is not a GUID.
    InvalidClientId {
        /// The client id as given.
        client_id: String,
    },
    /// A scope is empty or contains whitespace.
    InvalidScope {
        /// The scope as given.
        scope: String,
    },
    /// The tenant is neither a GUID nor a domain name.
    InvalidTenant {
        /// The tenant as given.
        tenant: String,
    },
    /// The tenant is `common`, `consumers` or `organizations`, which the client-credentials
    /// grant does not support (AADSTS9001023).
    ReservedTenant {
        /// The tenant as given.
        tenant: String,
    },
    /// A scope does not end in `/.default` (AADSTS70011 at Entra).
    ScopeNotDefault {
        /// The scope as given.
        scope: String,
    },
    /// The scopes name more than one resource (AADSTS700022 at Entra).
    SeveralResources {
        /// The distinct scopes.
        scopes: Vec<String>,
    },
    /// A scope names the Azure Resource Manager of another cloud than the authority host's
    /// (Entra answers AADSTS500011: the resource is not in this cloud's tenant).
    ScopeOfAnotherCloud {
        /// The scope as given.
        scope: String,
        /// The authority host.
        host: &'static str,
        /// The scope this cloud's Resource Manager takes.
        expected: &'static str,
    },
    /// The authority host is not one of the known Microsoft clouds.
    UnknownAuthorityHost {
        /// The host as given.
        host: String,
        /// The accepted hosts.
        known: Vec<&'static str>,
    },
}

impl TargetError {
    /// The field of the target that is wrong, named as in a policy's `azure` block.
    pub fn field(&self) -> &'static str {
        match self {
            Self::InvalidAuthorityUrl { .. } => "authority_url",
            Self::InvalidClientId { .. } => "client_id",
            Self::InvalidScope { .. }
            | Self::ScopeNotDefault { .. }
            | Self::SeveralResources { .. }
            | Self::ScopeOfAnotherCloud { .. } => "scopes",
            Self::InvalidTenant { .. } | Self::ReservedTenant { .. } => "tenant",
            Self::UnknownAuthorityHost { .. } => "authority_host",
        }
    }

    /// A stable, kebab-case name for this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidAuthorityUrl { .. } => "invalid-authority-url",
            Self::InvalidClientId { .. } => "invalid-client-id",
            Self::InvalidScope { .. } => "invalid-scope",
            Self::InvalidTenant { .. } => "invalid-tenant",
            Self::ReservedTenant { .. } => "reserved-tenant",
            Self::ScopeNotDefault { .. } => "scope-not-default",
            Self::SeveralResources { .. } => "several-resources",
            Self::ScopeOfAnotherCloud { .. } => "scope-of-another-cloud",
            Self::UnknownAuthorityHost { .. } => "unknown-authority-host",
        }
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidAuthorityUrl { url, reason } => {
                write!(f, "authority URL `{url}` is not usable: {reason}")
            }
            Self::InvalidClientId { client_id } => write!(
                f,
                "client id `{client_id}` is not a GUID; use the \"Application (client) ID\" of the \
                 app registration (or the client id of the managed identity), not its object id \
                 or name"
            ),
            Self::InvalidScope { scope } => write!(
                f,
                "scope `{scope}` is empty or contains whitespace; pass each scope separately, \
                 e.g. `https://management.azure.com/.default`"
            ),
            Self::InvalidTenant { tenant } => write!(
                f,
                "tenant `{tenant}` is neither a GUID nor a domain name; use the \"Directory \
                 (tenant) ID\" or a verified domain such as `contoso.onmicrosoft.com`"
            ),
            Self::ReservedTenant { tenant } => write!(
                f,
                "tenant `{tenant}` cannot be used: the client-credentials grant is not supported \
                 over /common, /consumers or /organizations (AADSTS9001023); use the directory \
                 (tenant) ID"
            ),
            Self::ScopeNotDefault { scope } => write!(
                f,
                "scope `{scope}` does not end in `/.default`; an application gets the permissions \
                 granted to it, so ask for the resource's `.default` scope, e.g. \
                 `https://management.azure.com/.default`"
            ),
            Self::SeveralResources { scopes } => write!(
                f,
                "scopes {} name more than one resource and Entra refuses that (AADSTS700022); \
                 request one token per resource",
                list(scopes)
            ),
            Self::ScopeOfAnotherCloud { scope, host, expected } => write!(
                f,
                "scope `{scope}` is another cloud's Azure Resource Manager, but the authority host \
                 is {host} (Entra would answer AADSTS500011); use `{expected}` or leave the \
                 scopes out (they default to the authority host's)"
            ),
            Self::UnknownAuthorityHost { host, known } => write!(
                f,
                "authority host `{host}` is not a known Microsoft cloud (known: {}); for a \
                 private cloud, proxy or test stand-in, override the authority URL instead",
                list(known)
            ),
        }
    }
}

impl std::error::Error for TargetError {}

/// Which PEM input a [`CredentialError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PemInput {
    /// The private key.
    PrivateKey,
    /// The certificate.
    Certificate,
    /// A public key (`BEGIN PUBLIC KEY`), e.g. a broker issuer's published key.
    PublicKey,
}

impl PemInput {
    /// The lowercase name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::PrivateKey => "private key",
            Self::Certificate => "certificate",
            Self::PublicKey => "public key",
        }
    }
}

/// Why a [`crate::entra::CertificateCredential`] was refused. No variant carries key material.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialError {
    /// The certificate is not an X.509 certificate with an RSA public key.
    CertificateInvalid {
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate's public key is not the private key's.
    CertificateKeyMismatch,
    /// The private key is encrypted (`BEGIN ENCRYPTED PRIVATE KEY`).
    EncryptedKey,
    /// The private key is RSA but not a usable PKCS#8 key.
    KeyInvalid {
        /// Why it was rejected.
        reason: String,
    },
    /// The RSA key is smaller than 2048 bits.
    KeyTooSmall {
        /// The modulus size.
        bits: usize,
        /// The minimum.
        min: usize,
    },
    /// The assertion lifetime is zero or more than the maximum.
    LifetimeOutOfRange {
        /// The requested lifetime in seconds.
        seconds: u64,
        /// The maximum in seconds.
        max: u64,
    },
    /// The PEM input holds no block with the expected label.
    NoPemBlock {
        /// Which input.
        input: PemInput,
        /// The expected label, e.g. `PRIVATE KEY`.
        expected: &'static str,
        /// The labels that were found.
        found: Vec<String>,
    },
    /// The private key is not an RSA key.
    NotRsa {
        /// The key's algorithm, by name when known, else its object identifier.
        algorithm: String,
    },
    /// A PEM block is malformed: no end line, or a body that is not base64.
    PemInvalid {
        /// Which input.
        input: PemInput,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key is in the PKCS#1 form (`BEGIN RSA PRIVATE KEY`).
    Pkcs1Key,
}

impl CredentialError {
    /// A stable, kebab-case name for this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CertificateInvalid { .. } => "certificate-invalid",
            Self::CertificateKeyMismatch => "certificate-key-mismatch",
            Self::EncryptedKey => "encrypted-key",
            Self::KeyInvalid { .. } => "key-invalid",
            Self::KeyTooSmall { .. } => "key-too-small",
            Self::LifetimeOutOfRange { .. } => "lifetime-out-of-range",
            Self::NoPemBlock { .. } => "no-pem-block",
            Self::NotRsa { .. } => "not-rsa",
            Self::PemInvalid { .. } => "pem-invalid",
            Self::Pkcs1Key => "pkcs1-key",
        }
    }
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CertificateInvalid { reason } => write!(
                f,
                "the certificate is not usable: {reason}; pass the PEM certificate \
                 (`BEGIN CERTIFICATE`) uploaded to the app registration"
            ),
            Self::CertificateKeyMismatch => f.write_str(
                "the certificate's public key is not the private key's, so Entra would fail the \
                 signature (AADSTS700027); pass the certificate made from this key",
            ),
            Self::EncryptedKey => f.write_str(
                "the private key is encrypted; decrypt it first, e.g. `openssl pkcs8 -in key.pem \
                 -out plain.pem`, and keep the result in a protected CI/CD variable",
            ),
            Self::KeyInvalid { reason } => write!(
                f,
                "the RSA private key was rejected ({reason}); pass an unencrypted PKCS#8 RSA key \
                 of 2048 to 8192 bits, e.g. from `openssl genpkey -algorithm RSA`"
            ),
            Self::KeyTooSmall { bits, min } => write!(
                f,
                "the RSA key has {bits} bits, fewer than the minimum of {min}; create a key of \
                 at least {min} bits and upload its certificate"
            ),
            Self::LifetimeOutOfRange { seconds, max } => write!(
                f,
                "an assertion lifetime of {seconds} s is not accepted: it must be between 1 and \
                 {max} s (Microsoft: keep `exp` 5 to 10 minutes after `nbf`)"
            ),
            Self::NoPemBlock { input, expected, found } => write!(
                f,
                "the {} input has no `BEGIN {expected}` block (found: {}); pass the PEM text \
                 itself, not a path or DER bytes",
                input.name(),
                list(found)
            ),
            Self::NotRsa { algorithm } => write!(
                f,
                "the private key is {algorithm}, not RSA; certificate credentials are signed with \
                 RS256 or PS256, so use an RSA key"
            ),
            Self::PemInvalid { input, reason } => {
                write!(f, "the {} PEM is malformed: {reason}", input.name())
            }
            Self::Pkcs1Key => f.write_str(
                "the private key is in the PKCS#1 form (`BEGIN RSA PRIVATE KEY`); convert it to \
                 PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key.pk8.pem`",
            ),
        }
    }
}

impl std::error::Error for CredentialError {}

/// Why a token request could not be built. No variant carries the assertion.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The client assertion is empty.
    AssertionEmpty,
    /// The client assertion contains a character outside base64url and `.`.
    AssertionInvalidCharacter {
        /// The byte offset of the character.
        index: usize,
        /// The character.
        character: char,
    },
    /// The client assertion is not a compact JWS of three dot-separated parts.
    AssertionNotCompact {
        /// How many parts it has.
        parts: usize,
    },
    /// The client assertion starts or ends with whitespace, typically a newline from a file.
    AssertionWhitespace,
    /// The client assertion is larger than the limit.
    AssertionTooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The random number generator failed.
    RandomFailed,
    /// Signing the client assertion failed.
    SigningFailed,
}

impl RequestError {
    /// A stable, kebab-case name for this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AssertionEmpty => "assertion-empty",
            Self::AssertionInvalidCharacter { .. } => "assertion-invalid-character",
            Self::AssertionNotCompact { .. } => "assertion-not-compact",
            Self::AssertionWhitespace => "assertion-whitespace",
            Self::AssertionTooLarge { .. } => "assertion-too-large",
            Self::RandomFailed => "random-failed",
            Self::SigningFailed => "signing-failed",
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AssertionEmpty => f.write_str(
                "the GitLab token is empty; check that the job defines it in `id_tokens:` and \
                 that the variable or file name is right",
            ),
            Self::AssertionInvalidCharacter { index, character } => write!(
                f,
                "the GitLab token has character {character:?} at byte {index}, outside base64url; \
                 pass the raw ID token exactly as GitLab issued it"
            ),
            Self::AssertionNotCompact { parts } => write!(
                f,
                "the GitLab token has {parts} dot-separated parts, not 3; pass the raw ID token \
                 (a compact JWS), not a JSON document or an encrypted token"
            ),
            Self::AssertionWhitespace => f.write_str(
                "the GitLab token starts or ends with whitespace; trim it (a token read from a \
                 file usually ends with a newline)",
            ),
            Self::AssertionTooLarge { size, limit } => write!(
                f,
                "the GitLab token is {size} bytes, more than the limit of {limit}; check that the \
                 variable holds one ID token"
            ),
            Self::RandomFailed => f.write_str(
                "the random number generator failed, so no `jti` or PSS salt could be drawn; \
                 check the host's entropy source and retry",
            ),
            Self::SigningFailed => {
                f.write_str("signing the client assertion failed; check the private key and retry")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// The `Retry-After` header of a throttled or failed answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryAfter {
    /// The header value as sent: delay seconds or an HTTP-date.
    pub raw: String,
    /// The delay in seconds, when the value is numeric.
    pub seconds: Option<u64>,
}

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seconds {
            Some(s) => write!(f, "retry after {s} s"),
            None => write!(f, "retry after {}", self.raw),
        }
    }
}

/// An error answer from Entra, with the fields of its JSON body (RFC 6749 section 5.2 plus
/// Microsoft's `error_codes`, `trace_id`, `correlation_id` and `timestamp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntraErrorResponse {
    /// The HTTP status.
    pub status: u16,
    /// The OAuth error class, e.g. `invalid_client`: what code should react to.
    pub error: String,
    /// Human text starting `AADSTSnnnn:`; shown, never interpreted (Microsoft: "Never use this
    /// field to react to an error in your code").
    pub error_description: Option<String>,
    /// The STS error codes, e.g. `[700213]`.
    pub error_codes: Vec<u64>,
    /// The request id at Entra: quote it to Microsoft support.
    pub trace_id: Option<String>,
    /// The correlation id.
    pub correlation_id: Option<String>,
    /// When the error happened, as Entra wrote it.
    pub timestamp: Option<String>,
    /// A link to the error lookup page, when Entra has one.
    pub error_uri: Option<String>,
}

impl EntraErrorResponse {
    /// What to change, chosen by `error_codes` (the first known code) and else by `error`. The
    /// description is never used to choose; some hints quote a value from it (the subject,
    /// audience or issuer Entra saw) when it is there.
    pub fn hint(&self) -> String {
        aadsts::hint(self)
    }

    /// The first code of `error_codes` that has a specific hint, if any.
    pub fn known_code(&self) -> Option<u64> {
        self.error_codes.iter().copied().find(|c| aadsts::is_known(*c))
    }

    /// True when sending the same request later may succeed: `temporarily_unavailable`, or a
    /// 5xx status.
    pub fn is_retryable(&self) -> bool {
        self.error == "temporarily_unavailable" || self.status >= 500
    }
}

impl EntraErrorResponse {
    /// What Entra said, without the hint: the error class, the status, the AADSTS codes, the ids
    /// and the first line of Entra's description. `Display` is this, then `; ` and the hint.
    pub fn describe(&self) -> String {
        let mut text = format!("entra refused the request: `{}` (HTTP {}", self.error, self.status);
        if !self.error_codes.is_empty() {
            let codes: Vec<String> =
                self.error_codes.iter().map(|c| format!("AADSTS{c}")).collect();
            text.push_str(&format!(", {}", codes.join(", ")));
        }
        if let Some(trace) = &self.trace_id {
            text.push_str(&format!(", trace id {trace}"));
        }
        if let Some(correlation) = &self.correlation_id {
            text.push_str(&format!(", correlation id {correlation}"));
        }
        text.push(')');
        if let Some(description) = &self.error_description {
            // Entra's descriptions end with "\r\nTrace ID: ..." lines; keep the first line.
            let first = description.lines().next().unwrap_or_default().trim();
            if !first.is_empty() {
                text.push_str(&format!(": {first}"));
            }
        }
        text
    }
}

impl fmt::Display for EntraErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.describe(), self.hint())
    }
}

/// Why Entra's answer gave no access token. Nothing here carries a token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntraError {
    /// The body is larger than the limit.
    BodyTooLarge {
        /// The HTTP status.
        status: u16,
        /// The body size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The body is empty.
    EmptyBody {
        /// The HTTP status.
        status: u16,
    },
    /// Entra answered with an OAuth error.
    Entra(Box<EntraErrorResponse>),
    /// The body is an HTML page: a proxy, a captive portal or a wrong URL, not the token endpoint.
    HtmlPage {
        /// The HTTP status.
        status: u16,
        /// The page's `<title>`, when it has one.
        title: Option<String>,
    },
    /// A success answer has a member of the wrong type or value (`expires_in`, ...).
    InvalidField {
        /// The member name.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A success answer has no `access_token`.
    MissingAccessToken,
    /// A success answer has a `token_type` other than `Bearer`, or none.
    NotBearer {
        /// The `token_type`, if any.
        token_type: Option<String>,
    },
    /// The body is not strict JSON (or JSON that is not an OAuth answer).
    NotJson {
        /// The HTTP status.
        status: u16,
        /// The `Content-Type`, if any.
        content_type: Option<String>,
        /// What is wrong, with a printable excerpt of the body for error statuses.
        detail: String,
    },
    /// HTTP 429: Entra throttled the client.
    RateLimited {
        /// The `Retry-After` header, if any.
        retry_after: Option<RetryAfter>,
        /// Entra's error body, when it sent one.
        entra: Option<Box<EntraErrorResponse>>,
    },
    /// HTTP 5xx: Entra or a proxy on the way failed.
    ServerError {
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` header, if any.
        retry_after: Option<RetryAfter>,
        /// Entra's error body, when it sent one.
        entra: Option<Box<EntraErrorResponse>>,
    },
    /// A status that is neither success nor an OAuth error (1xx, 3xx), or an error status whose
    /// JSON body is not an OAuth error.
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
    },
}

impl EntraError {
    /// A stable, kebab-case name for this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BodyTooLarge { .. } => "body-too-large",
            Self::EmptyBody { .. } => "empty-body",
            Self::Entra(_) => "entra-error",
            Self::HtmlPage { .. } => "html-page",
            Self::InvalidField { .. } => "invalid-field",
            Self::MissingAccessToken => "missing-access-token",
            Self::NotBearer { .. } => "not-bearer",
            Self::NotJson { .. } => "not-json",
            Self::RateLimited { .. } => "rate-limited",
            Self::ServerError { .. } => "server-error",
            Self::UnexpectedStatus { .. } => "unexpected-status",
        }
    }

    /// True when sending the same request later may succeed: throttling (429), server errors
    /// (5xx) and `temporarily_unavailable`. Client errors are not retryable: the request or the
    /// Azure configuration must change first.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::ServerError { .. } => true,
            Self::Entra(e) => e.is_retryable(),
            Self::BodyTooLarge { status, .. }
            | Self::EmptyBody { status }
            | Self::HtmlPage { status, .. }
            | Self::NotJson { status, .. }
            | Self::UnexpectedStatus { status } => *status >= 500,
            Self::InvalidField { .. } | Self::MissingAccessToken | Self::NotBearer { .. } => false,
        }
    }

    /// The `Retry-After` header, for throttled and failed answers that had one.
    pub fn retry_after(&self) -> Option<&RetryAfter> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::ServerError { retry_after, .. } => {
                retry_after.as_ref()
            }
            _ => None,
        }
    }

    /// Entra's error body, when the answer had one.
    pub fn entra_response(&self) -> Option<&EntraErrorResponse> {
        match self {
            Self::Entra(e) => Some(e),
            Self::RateLimited { entra, .. } | Self::ServerError { entra, .. } => entra.as_deref(),
            _ => None,
        }
    }
}

fn retry_note(retry_after: Option<&RetryAfter>) -> String {
    match retry_after {
        Some(r) => format!("{r}"),
        None => "retry with exponential backoff".to_owned(),
    }
}

fn entra_note(entra: Option<&EntraErrorResponse>) -> String {
    match entra {
        Some(e) => {
            let mut note = format!(" (`{}`", e.error);
            if let Some(trace) = &e.trace_id {
                note.push_str(&format!(", trace id {trace}"));
            }
            note.push(')');
            note
        }
        None => String::new(),
    }
}

impl fmt::Display for EntraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BodyTooLarge { status, size, limit } => write!(
                f,
                "the answer (HTTP {status}) is {size} bytes, more than the limit of {limit}; an \
                 Entra token answer is a few KiB, so check that the URL is Entra's token endpoint"
            ),
            Self::EmptyBody { status } => write!(
                f,
                "the answer (HTTP {status}) has an empty body; check that the URL is Entra's \
                 token endpoint and that no proxy strips the body"
            ),
            Self::Entra(e) => e.fmt(f),
            Self::HtmlPage { status, title } => {
                write!(f, "the answer (HTTP {status}) is an HTML page")?;
                if let Some(title) = title {
                    write!(f, " titled {title:?}")?;
                }
                f.write_str(
                    ", not Entra's JSON; a proxy, captive portal or wrong authority URL answered: \
                     check the URL and the network path to the token endpoint",
                )
            }
            Self::InvalidField { field, expected } => write!(
                f,
                "the success answer's `{field}` is invalid: expected {expected}; the endpoint \
                 does not answer like Entra"
            ),
            Self::MissingAccessToken => f.write_str(
                "the success answer has no `access_token`; the endpoint does not answer like \
                 Entra's token endpoint: check the authority URL",
            ),
            Self::NotBearer { token_type } => match token_type {
                Some(t) => write!(
                    f,
                    "the success answer has token type `{t}`, not `Bearer`, the only type Entra \
                     issues; check the authority URL"
                ),
                None => f.write_str(
                    "the success answer has no `token_type`; Entra always sends `Bearer`: check \
                     the authority URL",
                ),
            },
            Self::NotJson { status, content_type, detail } => {
                write!(f, "the answer (HTTP {status}")?;
                if let Some(ct) = content_type {
                    write!(f, ", {ct}")?;
                }
                write!(f, ") is not JSON: {detail}; check that the URL is Entra's token endpoint")
            }
            Self::RateLimited { retry_after, entra } => write!(
                f,
                "entra throttled the request (HTTP 429){}; {}, and avoid requesting a new token \
                 for every command: reuse it until it expires",
                entra_note(entra.as_deref()),
                retry_note(retry_after.as_ref())
            ),
            Self::ServerError { status, retry_after, entra } => write!(
                f,
                "entra or a proxy failed (HTTP {status}){}; this is not a configuration problem: \
                 {}",
                entra_note(entra.as_deref()),
                retry_note(retry_after.as_ref())
            ),
            Self::UnexpectedStatus { status } => write!(
                f,
                "the answer has HTTP status {status} and no OAuth error; Entra answers 200 or an \
                 OAuth error: check the authority URL (a redirect means a wrong URL or a proxy)"
            ),
        }
    }
}

impl std::error::Error for EntraError {}
