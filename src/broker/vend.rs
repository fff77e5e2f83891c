//! Token and assertion vending: a route of the broker (for example `POST /token`) that takes the
//! job's GitLab token as `Authorization: Bearer` and answers, itself, with the Azure access token
//! in the JSON of `az account get-access-token`, or (`issuer` rules) with the broker-signed
//! assertion, so that `az login --federated-token`, Terraform's `ARM_OIDC_TOKEN` and Azure
//! Identity's `AZURE_FEDERATED_TOKEN_FILE` do the exchange themselves and the policy still binds.
//!
//! The request body is optional: a JSON object or a form with `scope` (a scope the rule grants;
//! default: the rule's) and `kind` (`access_token`, the default, or `assertion`).
//!
//! Every reply carries `Cache-Control: no-store`. Errors are JSON objects with `error` (the
//! failure's kind), `message` and `hint`, the status of [`Failure::http_status`] (429 when Entra
//! throttles), and `Retry-After` when the failure says when to retry.

use std::fmt;

use serde_json::{json, Map, Value};

use super::error::VendError;
use super::secret::Secret;
use crate::entra::{AccessToken, EntraError};
use crate::gate::{Admission, Category, Failure};
use crate::text::json as strict;

/// Largest vending request body read, in bytes.
pub const MAX_VEND_BODY: usize = 16 * 1024;
/// The members a vending request body may hold.
const BODY_FIELDS: [&str; 2] = ["scope", "kind"];

/// What the job asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VendKind {
    /// The Azure access token, in the JSON of `az account get-access-token`. The default.
    #[default]
    AccessToken,
    /// The broker-signed assertion (`issuer` rules), for tools that exchange it themselves.
    Assertion,
}

impl VendKind {
    /// `access_token` or `assertion`, as in the request body.
    pub fn name(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::Assertion => "assertion",
        }
    }
}

/// A parsed vending request. `Debug` redacts the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VendRequest {
    token: Secret,
    scope: Option<String>,
    kind: VendKind,
}

impl VendRequest {
    /// Reads a vending request: `POST`, the GitLab token as `Authorization: Bearer <token>`, and
    /// an optional body (JSON object or form) with `scope` and `kind`. Header names compare
    /// without case.
    ///
    /// # Errors
    /// [`VendError::MethodNotAllowed`] (405), [`VendError::MissingToken`],
    /// [`VendError::WrongScheme`] and [`VendError::EmptyToken`] (401, with the fix),
    /// [`VendError::BodyTooLarge`] (413), [`VendError::BadBody`] and [`VendError::UnknownKind`]
    /// (400).
    pub fn parse(
        method: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Self, VendError> {
        if !method.eq_ignore_ascii_case("POST") {
            return Err(VendError::MethodNotAllowed { method: printable(method, 16) });
        }
        let header = |name: &str| {
            headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
        };
        let authorization = header("authorization").ok_or(VendError::MissingToken)?;
        let (scheme, credential) = authorization
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((authorization, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            // The scheme only: whatever follows it may be a credential. A header without a
            // scheme is the credential itself (a bare token), so then nothing of it is shown;
            // nor of a "scheme" longer than any real one.
            let shown = if credential.is_empty() || scheme.len() > 16 {
                format!("({} characters, not shown)", scheme.chars().count())
            } else {
                printable(scheme, 16)
            };
            return Err(VendError::WrongScheme { scheme: shown });
        }
        let token = credential.trim();
        if token.is_empty() {
            return Err(VendError::EmptyToken);
        }
        if body.len() > MAX_VEND_BODY {
            return Err(VendError::BodyTooLarge { size: body.len(), limit: MAX_VEND_BODY });
        }
        let fields = read_body(header("content-type"), body)?;
        let mut scope = None;
        let mut kind = VendKind::AccessToken;
        for (name, value) in fields {
            match name.as_str() {
                "scope" if !value.is_empty() => scope = Some(value),
                "scope" => {}
                "kind" => {
                    kind = match value.as_str() {
                        "" | "access_token" => VendKind::AccessToken,
                        "assertion" => VendKind::Assertion,
                        _ => return Err(VendError::UnknownKind { kind: printable(&value, 40) }),
                    }
                }
                other => {
                    return Err(VendError::BadBody {
                        detail: format!(
                            "unknown member `{}`; allowed: scope, kind",
                            printable(other, 40)
                        ),
                    })
                }
            }
        }
        Ok(Self { token: Secret::new(token), scope, kind })
    }

    /// The job's GitLab token.
    ///
    /// # Security Warning
    /// A bearer credential for the broker: hand it to [`crate::Gate::admit`], never to a log.
    pub fn token(&self) -> &str {
        self.token.secret()
    }

    /// The scope asked for, if any.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// What is asked for.
    pub fn kind(&self) -> VendKind {
        self.kind
    }
}

fn read_body(content_type: Option<&str>, body: &[u8]) -> Result<Vec<(String, String)>, VendError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let bad = |detail: &str| VendError::BadBody { detail: detail.to_owned() };
    let media = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let json_body = match media.as_deref() {
        Some("application/json") => true,
        Some("application/x-www-form-urlencoded") => false,
        Some(other) => {
            return Err(VendError::BadBody {
                detail: format!(
                    "Content-Type {} is not read; send application/json or a form",
                    printable(other, 60)
                ),
            })
        }
        None => body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'),
    };
    if json_body {
        let value = strict::parse(body, 4).map_err(|_| bad("not a JSON object"))?;
        let Value::Object(object) = value else { return Err(bad("not a JSON object")) };
        object
            .into_iter()
            .map(|(name, value)| match value {
                Value::String(s) => Ok((name, s)),
                Value::Null => Ok((name, String::new())),
                _ if !BODY_FIELDS.contains(&name.as_str()) => Ok((name, String::new())),
                _ => Err(VendError::BadBody { detail: format!("`{name}` is not a string") }),
            })
            .collect()
    } else {
        let text = std::str::from_utf8(body).map_err(|_| bad("the form is not UTF-8"))?;
        text.trim()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                Ok((
                    form_decode(name).ok_or_else(|| bad("bad percent-encoding"))?,
                    form_decode(value).ok_or_else(|| bad("bad percent-encoding"))?,
                ))
            })
            .collect()
    }
}

fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                // Two hex digits exactly: `from_str_radix` would also take a sign (`%+1`).
                let hex =
                    s.get(i + 1..i + 3).filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Text shown in an error: printable characters only, shortened.
fn printable(text: &str, max: usize) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).take(max).collect();
    if text.chars().count() > max {
        clean + "..."
    } else {
        clean
    }
}

/// Checks that the requested scope (if any) is one the admission's rule grants.
///
/// # Errors
/// [`Failure::Vend`] with [`VendError::ScopeNotAllowed`] (403, the allowed scopes in the hint).
pub fn check_scope(admission: &Admission, scope: Option<&str>) -> Result<(), Failure> {
    let (Some(scope), Some(target)) = (scope, admission.target()) else { return Ok(()) };
    if target.scopes().iter().any(|s| s == scope) {
        return Ok(());
    }
    Err(Failure::Vend(VendError::ScopeNotAllowed {
        scope: printable(scope, 200),
        allowed: target.scopes().to_vec(),
        rule: admission.decided.decision().and_then(|d| d.rule()).map(str::to_owned),
    }))
}

/// An assertion handed to a job, and what it needs to redeem it. `assertion` is the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VendedAssertion {
    /// The broker-signed assertion.
    pub assertion: Secret,
    /// Its `exp`, Unix seconds.
    pub expires_at: u64,
    /// Its `iss`.
    pub issuer: String,
    /// Its `sub`.
    pub subject: String,
    /// Its `aud`.
    pub audience: String,
    /// The tenant to redeem it in.
    pub tenant: String,
    /// The app (client) id to redeem it for.
    pub client_id: String,
    /// The Entra authority, `https://login.microsoftonline.com` (or the sovereign cloud's).
    pub authority: String,
    /// The allow rule.
    pub rule: Option<String>,
}

/// A reply for the host to send as is. The body of a success holds a credential: `Debug`
/// redacts it, and `body` must not be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct VendReply {
    /// The HTTP status.
    pub status: u16,
    /// The headers, lowercase names, `content-type` first.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: String,
}

impl fmt::Debug for VendReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = if self.status == 200 { "[redacted]" } else { self.body.as_str() };
        f.debug_struct("VendReply")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &body)
            .finish()
    }
}

fn reply(status: u16, body: &Value) -> VendReply {
    VendReply {
        status,
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("cache-control".to_owned(), "no-store".to_owned()),
            ("pragma".to_owned(), "no-cache".to_owned()),
        ],
        body: body.to_string(),
    }
}

/// The success reply of token vending: the fields `az account get-access-token` prints
/// (`accessToken`, `expiresOn`, `expires_on`, `subscription: null`, `tenant`, `tokenType`).
///
/// `az` prints `expiresOn` in the machine's local time zone; a broker has none that the job
/// shares, so `expiresOn` is UTC in az's form (`2025-11-26 01:01:01.000000`), and `expires_on`
/// (Unix seconds) is the value to compute with.
pub fn access_token_reply(access: &AccessToken, tenant: &str) -> VendReply {
    kept_token_reply(access.token.secret(), access.expires_at, &access.token_type, tenant)
}

/// [`access_token_reply`] for an access token the host kept (a proxy's cache shared by its
/// workers holds the token, its expiry and its type, not Entra's answer).
///
/// # Security Warning
/// `token` is a bearer credential: the reply's body holds it, and must not be logged.
pub fn kept_token_reply(token: &str, expires_at: u64, token_type: &str, tenant: &str) -> VendReply {
    reply(
        200,
        &json!({
            "accessToken": token,
            "expiresOn": az_utc(expires_at),
            "expires_on": expires_at,
            "subscription": null,
            "tenant": tenant,
            "tokenType": token_type,
        }),
    )
}

/// The success reply of assertion vending: the assertion, when it expires, and where to redeem
/// it (`tenant`, `clientId`, `authority`) — what `az login --service-principal -u CLIENT -t
/// TENANT --federated-token`, Terraform and Azure Identity need.
pub fn assertion_reply(vended: &VendedAssertion) -> VendReply {
    reply(
        200,
        &json!({
            "assertion": vended.assertion.secret(),
            "expiresOn": az_utc(vended.expires_at),
            "expires_on": vended.expires_at,
            "issuer": vended.issuer,
            "subject": vended.subject,
            "audience": vended.audience,
            "tenant": vended.tenant,
            "clientId": vended.client_id,
            "authority": vended.authority,
            "tokenType": "urn:ietf:params:oauth:token-type:jwt",
        }),
    )
}

/// How much of a deny the error reply explains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Explain {
    /// The verdict only (`deny: no allow rule matched`): callers do not learn the policy.
    #[default]
    Summary,
    /// Every rule's outcome in the hint (`rule deploy: ref_protected is false, expected true`),
    /// so the job's owner sees what to change.
    Rules,
}

/// The error reply for `failure`: `{"error": kind, "message", "hint"}` (plus `entra_error`,
/// `aadsts` and `trace_id` when Entra refused), the failure's status (429 when Entra throttles),
/// `Retry-After` when known (429 always has one), and a `WWW-Authenticate` challenge for a
/// refused or missing token (401) and a deny (403).
pub fn error_reply(failure: &Failure, explain: Explain) -> VendReply {
    let throttled = matches!(failure, Failure::Entra(EntraError::RateLimited { .. }));
    let status = if throttled { 429 } else { failure.http_status() };
    let hint = match (failure, explain) {
        (Failure::Denied(_), Explain::Summary) => None,
        _ => failure.hint(),
    };
    let mut body = Map::new();
    body.insert("error".to_owned(), json!(failure.kind()));
    body.insert("message".to_owned(), json!(failure.to_string()));
    body.insert("hint".to_owned(), json!(hint));
    if let Some(entra) = failure.entra_response() {
        body.insert("entra_error".to_owned(), json!(entra.error));
        body.insert("aadsts".to_owned(), json!(entra.error_codes));
        if let Some(trace) = &entra.trace_id {
            body.insert("trace_id".to_owned(), json!(trace));
        }
    }
    let mut out = reply(status, &Value::Object(body));
    match (status, failure.category()) {
        (401, _) => out.headers.push((
            "www-authenticate".to_owned(),
            format!("Bearer error=\"invalid_token\", error_description=\"{}\"", failure.kind()),
        )),
        (403, Category::Denied) => out.headers.push((
            "www-authenticate".to_owned(),
            format!(
                "Bearer error=\"insufficient_scope\", error_description=\"{}\"",
                failure.kind()
            ),
        )),
        (405, _) => out.headers.push(("allow".to_owned(), "POST".to_owned())),
        _ => {}
    }
    let retry_after = failure.retry_after().or(throttled.then_some(1));
    if let Some(seconds) = retry_after {
        out.headers.push(("retry-after".to_owned(), seconds.to_string()));
    }
    out
}

/// Unix seconds as `az` prints `expiresOn`, in UTC: `YYYY-MM-DD HH:MM:SS.ffffff`.
pub fn az_utc(unix: u64) -> String {
    let days = unix / 86_400;
    let seconds = unix % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.000000",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}
