//! The token request: client credentials with a JWT client assertion (RFC 7523 section 2.2,
//! Microsoft identity platform "client credentials flow", third case).
//!
//! The request is returned as a plain value; the host sends it. The body's fields are, in order,
//! `client_id`, `scope`, `grant_type`, `client_assertion_type`, `client_assertion`: MSAL's order
//! for the first three (msal-node `ClientCredentialClient`), and the documented request's order
//! for the last two. The order carries no meaning to Entra.

use std::fmt;

use ring::rand::SecureRandom;

use crate::entra::{AzureTarget, CertificateCredential, RequestError};

/// The `grant_type` of the exchange.
pub const GRANT_TYPE: &str = "client_credentials";
/// The `client_assertion_type` of a JWT assertion (RFC 7523 section 2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The `Content-Type` of the body.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// An HTTP request for the host to send, as is.
///
/// The body holds a bearer credential (the client assertion): `Debug` redacts it, but `body`
/// itself must not be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// Always `POST`.
    pub method: &'static str,
    /// The token endpoint, `https://{authority-host}/{tenant}/oauth2/v2.0/token`.
    pub url: String,
    /// `Content-Type: application/x-www-form-urlencoded` and `Accept: application/json`.
    pub headers: Vec<(String, String)>,
    /// The form body, `application/x-www-form-urlencoded`.
    pub body: String,
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body", &redact_form(&self.body))
            .finish()
    }
}

impl TokenRequest {
    /// The `client-request-id` the request carries (the gate adds one to every request), which
    /// [`crate::Gate::finish`] takes back to join Entra's answer to its decision.
    pub fn request_id(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("client-request-id"))
            .map(|(_, value)| value.as_str())
    }
}

/// The body with every `client_assertion` and `client_secret` value replaced by `[redacted]`.
fn redact_form(body: &str) -> String {
    body.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name == "client_assertion" || name == "client_secret" => {
                format!("{name}=[redacted]")
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Builds the request that exchanges a GitLab ID token for an access token through a federated
/// identity credential: the token is the `client_assertion`, verbatim. Verify the token first;
/// this only checks its shape, so that a mangled token fails here rather than at Entra.
///
/// # Errors
/// [`RequestError::AssertionEmpty`], [`RequestError::AssertionWhitespace`],
/// [`RequestError::AssertionInvalidCharacter`], [`RequestError::AssertionNotCompact`] or
/// [`RequestError::AssertionTooLarge`] when the token is not a compact JWS.
pub fn build_federated_request(
    target: &AzureTarget,
    gitlab_token: &str,
) -> Result<TokenRequest, RequestError> {
    check_compact(gitlab_token)?;
    Ok(request(target, gitlab_token))
}

/// Builds the request that gets an access token with a certificate credential: the credential
/// signs a client assertion with `aud` = the token endpoint, `iss` = `sub` = the client id,
/// `jti` = a UUID v4 from `rng`, `nbf` = `iat` = `now` and `exp` = `now` + its lifetime.
///
/// # Errors
/// [`RequestError::RandomFailed`] or [`RequestError::SigningFailed`] when ring fails.
pub fn build_certificate_request(
    target: &AzureTarget,
    credential: &CertificateCredential,
    now: u64,
    rng: &dyn SecureRandom,
) -> Result<TokenRequest, RequestError> {
    let assertion =
        credential.sign_assertion(&target.token_endpoint(), target.client_id(), now, rng)?;
    Ok(request(target, &assertion))
}

/// The token request with a client assertion already made (federated token or signed assertion).
pub(crate) fn request_with_assertion(target: &AzureTarget, assertion: &str) -> TokenRequest {
    request(target, assertion)
}

fn request(target: &AzureTarget, assertion: &str) -> TokenRequest {
    let scope = target.scopes().join(" ");
    let body = form_encode(&[
        ("client_id", target.client_id()),
        ("scope", &scope),
        ("grant_type", GRANT_TYPE),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", assertion),
    ]);
    TokenRequest {
        method: "POST",
        url: target.token_endpoint(),
        headers: vec![
            ("Content-Type".to_owned(), FORM_CONTENT_TYPE.to_owned()),
            ("Accept".to_owned(), "application/json".to_owned()),
        ],
        body,
    }
}

/// Checks that `token` looks like a compact JWS: three base64url parts, bounded in size.
fn check_compact(token: &str) -> Result<(), RequestError> {
    let limit = crate::Limits::default().max_token_bytes;
    if token.is_empty() {
        return Err(RequestError::AssertionEmpty);
    }
    if token.trim() != token {
        return Err(RequestError::AssertionWhitespace);
    }
    if token.len() > limit {
        return Err(RequestError::AssertionTooLarge { size: token.len(), limit });
    }
    if let Some((index, character)) = token
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(RequestError::AssertionInvalidCharacter { index, character });
    }
    let parts = token.split('.').count();
    if parts != 3 {
        return Err(RequestError::AssertionNotCompact { parts });
    }
    Ok(())
}

/// Serializes name/value pairs as `application/x-www-form-urlencoded` (the WHATWG URL
/// standard's serializer, which HTML forms use): ASCII letters, digits and `*-._` stay, space
/// becomes `+`, every other byte of the UTF-8 encoding becomes `%XX` in uppercase hex.
pub(crate) fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        form_encode_into(&mut out, name);
        out.push('=');
        form_encode_into(&mut out, value);
    }
    out
}

fn form_encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
    }
}

#[cfg(test)]
mod tests;
