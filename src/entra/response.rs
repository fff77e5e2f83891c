//! Entra's answer: an access token (RFC 6749 section 5.1) or a typed error (section 5.2 with
//! Microsoft's extra members), decided by the status, the body's shape and the `error` and
//! `error_codes` members, never by the description text.

use std::fmt;

use serde_json::{Map, Value};

use crate::entra::{EntraError, EntraErrorResponse, RetryAfter};
use crate::text::json::{self, JsonProblem};

/// Largest body parsed, in bytes. A token answer is a few KiB.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Deepest JSON nesting parsed. Token answers are flat objects.
const MAX_RESPONSE_DEPTH: usize = 8;
/// Longest excerpt of a non-JSON body shown in an error.
const MAX_EXCERPT: usize = 160;

/// An access token. `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// The token itself, e.g. for an `Authorization: Bearer` header.
    ///
    /// # Security Warning
    /// The token is a bearer credential for the Azure resource until it expires: whoever holds it
    /// acts as the application. Do not log it, print it or put it in an error.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken([redacted])")
    }
}

impl fmt::Display for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A successful token answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessToken {
    /// The access token.
    pub token: SecretToken,
    /// The token type as sent; always `Bearer` (compared without case).
    pub token_type: String,
    /// Seconds the token is valid for, from the answer.
    pub expires_in: u64,
    /// Seconds the token stays usable while Entra is degraded, when sent.
    pub ext_expires_in: Option<u64>,
    /// When the token expires: `now + expires_in`, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Parses Entra's answer to a [`crate::entra::TokenRequest`], received at time `now` (seconds
/// since the Unix epoch). `headers` are the answer's headers, names in any case.
///
/// # Errors
/// - [`EntraError::Entra`] for an OAuth error body, with a hint from its AADSTS codes.
/// - [`EntraError::RateLimited`] for 429 and [`EntraError::ServerError`] for 5xx, with
///   `Retry-After`; both are retryable.
/// - [`EntraError::EmptyBody`], [`EntraError::HtmlPage`], [`EntraError::NotJson`],
///   [`EntraError::BodyTooLarge`] and [`EntraError::UnexpectedStatus`] for answers that are not
///   Entra's.
/// - [`EntraError::MissingAccessToken`], [`EntraError::NotBearer`] and
///   [`EntraError::InvalidField`] for a success answer that cannot be used.
pub fn parse_token_response(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    now: u64,
) -> Result<AccessToken, EntraError> {
    let retry_after = header(headers, "retry-after").map(retry_after);
    // Throttling and server failures first: whatever the body is, the answer is "retry later".
    if status == 429 || (500..=599).contains(&status) {
        let entra = parse_object(status, headers, body)
            .ok()
            .and_then(|o| entra_error(status, &o))
            .map(Box::new);
        return Err(if status == 429 {
            EntraError::RateLimited { retry_after, entra }
        } else {
            EntraError::ServerError { status, retry_after, entra }
        });
    }
    let object = parse_object(status, headers, body)?;
    // An OAuth error body wins over the status (some proxies rewrite statuses).
    if let Some(error) = entra_error(status, &object) {
        return Err(EntraError::Entra(Box::new(error)));
    }
    if !(200..=299).contains(&status) {
        return Err(EntraError::UnexpectedStatus { status });
    }
    success(&object, now)
}

/// The first header named `name` (ASCII case-insensitive), trimmed.
fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

/// `Retry-After` is delay-seconds or an HTTP-date (RFC 9110 section 10.2.3); only the former
/// is turned into seconds.
fn retry_after(raw: &str) -> RetryAfter {
    let seconds = if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for u64 means "a very long time": saturate.
        Some(raw.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        None
    };
    RetryAfter { raw: printable(raw, MAX_EXCERPT), seconds }
}

/// Parses the body as a strict JSON object, or says what it is instead.
fn parse_object(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Map<String, Value>, EntraError> {
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(EntraError::BodyTooLarge {
            status,
            size: body.len(),
            limit: MAX_RESPONSE_BYTES,
        });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(EntraError::EmptyBody { status });
    }
    let content_type = header(headers, "content-type").map(|c| printable(c, MAX_EXCERPT));
    if is_html(content_type.as_deref(), body) {
        return Err(EntraError::HtmlPage { status, title: html_title(body) });
    }
    let not_json =
        |detail: String| EntraError::NotJson { status, content_type: content_type.clone(), detail };
    let value = json::parse(body, MAX_RESPONSE_DEPTH).map_err(|p| {
        not_json(match p {
            JsonProblem::Syntax(detail) => match excerpt(status, body) {
                Some(excerpt) => format!("{detail} (body starts {excerpt:?})"),
                None => detail,
            },
            JsonProblem::DuplicateMember(name) => format!("member `{name}` appears twice"),
            JsonProblem::TooDeep(limit) => format!("it nests deeper than {limit} levels"),
        })
    })?;
    match value {
        Value::Object(object) => Ok(object),
        _ => Err(not_json("it is JSON but not an object".to_owned())),
    }
}

/// An HTML page: by `Content-Type`, or by a body that starts like one.
fn is_html(content_type: Option<&str>, body: &[u8]) -> bool {
    if content_type.is_some_and(|c| c.to_ascii_lowercase().contains("text/html")) {
        return true;
    }
    let head = body.get(..body.len().min(1024)).unwrap_or_default().to_ascii_lowercase();
    let start = head.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(0);
    let head = head.get(start..).unwrap_or_default();
    head.starts_with(b"<!doctype html") || head.starts_with(b"<html") || contains(head, b"<html")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The text of the first `<title>` in the first 4 KiB, printable and bounded.
fn html_title(body: &[u8]) -> Option<String> {
    let head = body.get(..body.len().min(4096)).unwrap_or_default();
    let lower = head.to_ascii_lowercase();
    let open = lower.windows(6).position(|w| w == b"<title")?;
    let close = lower.get(open..)?.iter().position(|b| *b == b'>')?;
    let start = open.checked_add(close)?.checked_add(1)?;
    let len = lower.get(start..)?.windows(8).position(|w| w == b"</title>")?;
    let title = String::from_utf8_lossy(head.get(start..start.checked_add(len)?)?);
    let title = printable(title.trim(), MAX_EXCERPT);
    (!title.is_empty()).then_some(title)
}

/// For error statuses, a printable excerpt of the body (a success body might hold a token).
/// A body that names a token is never quoted, whatever the status: a proxy that rewrites the
/// status, or a truncated success answer, would otherwise put the token into the error (issue 16,
/// found by the `entra_response` fuzz target).
fn excerpt(status: u16, body: &[u8]) -> Option<String> {
    if (200..=299).contains(&status) || names_a_token(body) {
        return None;
    }
    let text = String::from_utf8_lossy(body.get(..body.len().min(MAX_EXCERPT * 4))?);
    Some(printable(text.trim(), MAX_EXCERPT))
}

/// Whether `body` names a bearer credential member (`access_token`, `refresh_token`, `id_token`),
/// in any case: such a body may carry one.
fn names_a_token(body: &[u8]) -> bool {
    let lower = body.to_ascii_lowercase();
    [&b"access_token"[..], b"refresh_token", b"id_token"].iter().any(|name| contains(&lower, name))
}

/// `s` with control characters replaced by spaces, cut to `max` characters.
fn printable(s: &str, max: usize) -> String {
    s.chars().take(max).map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The OAuth error in `object`, when it has a string `error` member.
fn entra_error(status: u16, object: &Map<String, Value>) -> Option<EntraErrorResponse> {
    let error = object.get("error")?.as_str()?;
    let text = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_owned);
    let error_codes = object
        .get("error_codes")
        .and_then(Value::as_array)
        .map(|codes| codes.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    Some(EntraErrorResponse {
        status,
        error: error.to_owned(),
        error_description: text("error_description"),
        error_codes,
        trace_id: text("trace_id"),
        correlation_id: text("correlation_id"),
        timestamp: text("timestamp"),
        error_uri: text("error_uri"),
    })
}

fn success(object: &Map<String, Value>, now: u64) -> Result<AccessToken, EntraError> {
    let token = match object.get("access_token") {
        Some(Value::String(t)) if !t.is_empty() => SecretToken(t.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(EntraError::MissingAccessToken)
        }
        Some(_) => {
            return Err(EntraError::InvalidField { field: "access_token", expected: "a string" })
        }
    };
    // RFC 6749 7.1: the type is compared without case; Entra sends "Bearer".
    let token_type = match object.get("token_type") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => t.clone(),
        Some(Value::String(t)) => {
            return Err(EntraError::NotBearer { token_type: Some(printable(t, MAX_EXCERPT)) })
        }
        Some(other) => {
            return Err(EntraError::NotBearer {
                token_type: Some(printable(&other.to_string(), 40)),
            })
        }
        None => return Err(EntraError::NotBearer { token_type: None }),
    };
    let expires_in = match seconds(object, "expires_in")? {
        Some(s) => s,
        None => {
            return Err(EntraError::InvalidField {
                field: "expires_in",
                expected: "seconds, as a number or a numeric string",
            })
        }
    };
    let ext_expires_in = seconds(object, "ext_expires_in")?;
    Ok(AccessToken {
        token,
        token_type,
        expires_in,
        ext_expires_in,
        expires_at: now.saturating_add(expires_in),
    })
}

/// A duration member: a non-negative integer, or a string of digits (MSAL accepts both, and
/// some Azure endpoints send strings). Absent or `null` is `None`.
fn seconds(object: &Map<String, Value>, field: &'static str) -> Result<Option<u64>, EntraError> {
    let invalid = || EntraError::InvalidField {
        field,
        expected: "seconds, as a non-negative integer or a numeric string",
    };
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(invalid),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<u64>().map(Some).map_err(|_| invalid())
        }
        Some(_) => Err(invalid()),
    }
}

#[cfg(test)]
mod tests;
