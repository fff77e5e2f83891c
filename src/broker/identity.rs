//! The `managed-identity` credential: the broker runs in Azure with a user-assigned managed
//! identity, asks the platform's identity endpoint for that identity's token for
//! `api://AzureADTokenExchange`, and presents it to Entra as the client assertion of the target
//! app (Entra's "managed identity as a federated identity credential"). No secret exists
//! anywhere, and no endpoint is public.
//!
//! The requests are the ones Azure Identity's `ManagedIdentityCredential` sends
//! (azure-sdk-for-python `_credentials/imds.py` and `app_service.py`, azure-sdk-for-net
//! `AppServiceV2019ManagedIdentitySource`):
//!
//! - VMs, scale sets, AKS nodes: the Instance Metadata Service,
//!   `GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=...&client_id=...`
//!   with `Metadata: true`. IMDS answers 400 when the identity is not assigned to the VM.
//! - App Service, Functions, Container Apps: `GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=...&client_id=...`
//!   with `X-IDENTITY-HEADER: $IDENTITY_HEADER` (a secret the platform rotates).
//!
//! Both answer `{"access_token", "expires_on", "expires_in", "resource", "token_type", ...}`,
//! where `expires_on` (Unix seconds) is a string from IMDS and may be a number elsewhere.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::error::IdentityError;
use super::secret::Secret;
use crate::entra::form_encode;
use crate::text::json;

/// The Instance Metadata Service's token endpoint.
pub const IMDS_URL: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// The IMDS API version Azure Identity uses.
pub const IMDS_API_VERSION: &str = "2018-02-01";
/// The App Service / Container Apps identity API version (`IDENTITY_ENDPOINT`).
pub const APP_SERVICE_API_VERSION: &str = "2019-08-01";
/// Largest identity answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Longest description quoted from an error answer.
const MAX_DESCRIPTION: usize = 200;
/// An identity token expiring within this many seconds of its arrival is refused.
const MIN_VALIDITY: u64 = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Imds,
    AppService,
}

/// Where the broker gets its managed identity's token. `Debug` shows the URL, never the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityEndpoint {
    kind: Kind,
    url: String,
    secret: Option<Secret>,
}

impl fmt::Debug for IdentityEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityEndpoint")
            .field("kind", &self.name())
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl IdentityEndpoint {
    /// The Instance Metadata Service (VMs, scale sets, AKS nodes).
    pub fn imds() -> Self {
        Self { kind: Kind::Imds, url: IMDS_URL.to_owned(), secret: None }
    }

    /// The App Service / Functions / Container Apps endpoint: the values of `IDENTITY_ENDPOINT`
    /// and `IDENTITY_HEADER`, which the platform sets in the broker's environment.
    ///
    /// # Errors
    /// [`IdentityError::InvalidEndpoint`] for a URL that is not `http(s)://` or an empty secret.
    pub fn app_service(
        identity_endpoint: &str,
        identity_header: Secret,
    ) -> Result<Self, IdentityError> {
        check_url(identity_endpoint)?;
        if identity_header.is_empty() {
            return Err(IdentityError::InvalidEndpoint {
                url: identity_endpoint.to_owned(),
                reason: "IDENTITY_HEADER is empty",
            });
        }
        Ok(Self {
            kind: Kind::AppService,
            url: identity_endpoint.to_owned(),
            secret: Some(identity_header),
        })
    }

    /// An IMDS-compatible endpoint at another URL (the Entra stand-in's, in tests).
    ///
    /// # Security Warning
    /// The endpoint answers with the token that proves the broker's identity to Entra: point it
    /// only at the platform's endpoint or a test stand-in.
    ///
    /// # Errors
    /// [`IdentityError::InvalidEndpoint`] for a URL that is not `http(s)://`.
    pub fn dangerous_imds_at(url: &str) -> Result<Self, IdentityError> {
        check_url(url)?;
        Ok(Self { kind: Kind::Imds, url: url.to_owned(), secret: None })
    }

    /// `imds` or `app-service`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Imds => "imds",
            Kind::AppService => "app-service",
        }
    }

    /// The endpoint's URL (no secret in it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The request for the token of the user-assigned identity `client_id` for `resource` (a
    /// token-exchange audience).
    pub fn request(&self, client_id: &str, resource: &str) -> IdentityRequest {
        let (version, header) = match (&self.kind, &self.secret) {
            (Kind::AppService, Some(secret)) => {
                (APP_SERVICE_API_VERSION, ("X-IDENTITY-HEADER", secret.secret().to_owned()))
            }
            _ => (IMDS_API_VERSION, ("Metadata", "true".to_owned())),
        };
        let query = form_encode(&[
            ("api-version", version),
            ("resource", resource),
            ("client_id", client_id),
        ]);
        let separator = if self.url.contains('?') { '&' } else { '?' };
        IdentityRequest {
            method: "GET",
            url: format!("{}{separator}{query}", self.url),
            headers: vec![(header.0.to_owned(), header.1)],
            client_id: client_id.to_owned(),
        }
    }
}

fn check_url(url: &str) -> Result<(), IdentityError> {
    let invalid = |reason| Err(IdentityError::InvalidEndpoint { url: url.to_owned(), reason });
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        // Not shown: a value that is no URL may be a secret read from the wrong variable
        // (`IDENTITY_HEADER` for `IDENTITY_ENDPOINT`, a key).
        let shown = format!("({} characters, not shown)", url.chars().count());
        return Err(IdentityError::InvalidEndpoint {
            url: shown,
            reason: "it must start with `http://` or `https://`",
        });
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("it contains whitespace or control characters");
    }
    if url.contains('#') {
        return invalid("it has a fragment");
    }
    Ok(())
}

/// A request to the identity endpoint, for the host to send as is. One header holds the
/// endpoint's secret (App Service): `Debug` redacts it, and `headers` must not be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityRequest {
    /// Always `GET`.
    pub method: &'static str,
    /// The endpoint with the query.
    pub url: String,
    /// `Metadata: true` (IMDS) or `X-IDENTITY-HEADER` (App Service).
    pub headers: Vec<(String, String)>,
    /// The user-assigned identity asked for: requests for one identity can share one answer.
    pub client_id: String,
}

impl fmt::Debug for IdentityRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                if n.eq_ignore_ascii_case("x-identity-header") {
                    (n.as_str(), "[redacted]")
                } else {
                    (n.as_str(), v.as_str())
                }
            })
            .collect();
        f.debug_struct("IdentityRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &headers)
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// A managed identity's token and when it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityToken {
    /// The token (a JWT Entra issued for the identity).
    pub token: Secret,
    /// `expires_on`, Unix seconds.
    pub expires_at: u64,
}

/// The `managed-identity` credential of one rule: the endpoint (the broker's) and the identity
/// (the rule's).
#[derive(Clone, Debug)]
pub struct ManagedIdentityCredential {
    /// Where the token comes from.
    pub endpoint: Arc<IdentityEndpoint>,
    /// The user-assigned identity's client id (what the endpoint is asked for).
    pub client_id: String,
    /// Its principal (object) id: the subject of the app's federated credential.
    pub principal_id: String,
}

/// Reads the identity endpoint's answer to the request for `client_id`, received at `now`.
///
/// # Errors
/// [`IdentityError::NotAssigned`] (400), [`IdentityError::Unauthorized`] (401, 403),
/// [`IdentityError::Endpoint`] for other statuses (retryable for 404, 429 and 5xx),
/// [`IdentityError::Malformed`] for an answer without a usable token, and
/// [`IdentityError::Expired`] for a token about to expire.
pub fn parse_identity_response(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    client_id: &str,
    now: u64,
) -> Result<IdentityToken, IdentityError> {
    let object = if body.len() > MAX_ANSWER_BYTES {
        None
    } else {
        match json::parse(body, 8) {
            Ok(Value::Object(object)) => Some(object),
            _ => None,
        }
    };
    if !(200..=299).contains(&status) {
        let text = |name: &str| {
            object.as_ref().and_then(|o| o.get(name)).and_then(Value::as_str).map(shorten)
        };
        let description = text("error_description").or_else(|| text("message"));
        return Err(match status {
            400 => IdentityError::NotAssigned { client_id: client_id.to_owned(), description },
            401 | 403 => IdentityError::Unauthorized { status },
            _ => IdentityError::Endpoint {
                status,
                error: text("error"),
                description,
                retry_after: headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
                    .and_then(|(_, v)| v.trim().parse().ok()),
            },
        });
    }
    let malformed = |detail: &str| IdentityError::Malformed { detail: detail.to_owned() };
    let object = object.ok_or_else(|| malformed("the body is not a JSON object"))?;
    let token = match object.get("access_token") {
        Some(Value::String(token)) if is_compact_jws(token) => token.clone(),
        Some(Value::String(_)) => return Err(malformed("`access_token` is not a JWT")),
        _ => return Err(malformed("no `access_token` string")),
    };
    if let Some(kind) = object.get("token_type").and_then(Value::as_str) {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(malformed("`token_type` is not Bearer"));
        }
    }
    let expires_at = match seconds(&object, "expires_on") {
        Some(at) => at,
        None => match seconds(&object, "expires_in") {
            Some(seconds) => now.saturating_add(seconds),
            None => return Err(malformed("no `expires_on` (Unix seconds) or `expires_in`")),
        },
    };
    if expires_at <= now.saturating_add(MIN_VALIDITY) {
        return Err(IdentityError::Expired { expires_at, now });
    }
    Ok(IdentityToken { token: Secret::new(token), expires_at })
}

/// A number of seconds given as a JSON number or a string of digits.
fn seconds(object: &Map<String, Value>, name: &str) -> Option<u64> {
    match object.get(name)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

fn is_compact_jws(token: &str) -> bool {
    token.split('.').count() == 3
        && token.len() <= 64 * 1024
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn shorten(text: &str) -> String {
    let clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if clean.chars().count() > MAX_DESCRIPTION {
        clean.chars().take(MAX_DESCRIPTION).collect::<String>() + "..."
    } else {
        clean
    }
}
