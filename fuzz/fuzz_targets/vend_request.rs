//! The broker's vending requests: the method, `Content-Type`, `Authorization` (no header when
//! empty), one a line, then the body.
//!
//! Invariants: no panic; deterministic; the credential after the scheme (16 or more characters
//! of the token alphabet, once in the input) is in no error's text or debug form and not in a
//! success's debug form (it counts as quoted only if the output follows it: with a different
//! credential of the same shape, the output shows that one instead; wording the parser writes
//! itself, which the fuzzer can copy into the credential, stays and is not a leak); an accepted
//! request is a `POST` with the `Bearer` scheme and its token is the credential, trimmed and not
//! empty; its scope and kind are what the body says, read here (a JSON object with `serde_json`,
//! a form with a decoder written here) when the body's form is plain from the `Content-Type`.
#![no_main]

use gitlab_azure_oidc::broker::{VendKind, VendRequest};
use gitlab_azure_oidc_fuzz::{fields, form_value, occurrences, rotate, text, MIN_SECRET_CHARS};
use libfuzzer_sys::fuzz_target;

fn headers(content_type: &str, authorization: &str) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    if !content_type.is_empty() {
        headers.push(("content-type".to_owned(), content_type.to_owned()));
    }
    if !authorization.is_empty() {
        headers.push(("Authorization".to_owned(), authorization.to_owned()));
    }
    headers
}

fn shown(result: &Result<VendRequest, impl std::fmt::Debug + std::fmt::Display>) -> String {
    match result {
        Ok(request) => format!("{request:?}"),
        Err(err) => format!("{err}\n{err:?}"),
    }
}

/// The credential after the scheme, read as RFC 7235 writes it (`scheme SP credential`), with
/// any ASCII whitespace as the separator (a tab after `Bearer` is a common mistake).
fn credential(authorization: &str) -> (&str, &str) {
    let value = authorization.trim();
    let (scheme, rest) = value.split_once(|c: char| c.is_ascii_whitespace()).unwrap_or((value, ""));
    (scheme, rest.trim())
}

/// The scope and kind the body asks for, read here; `None` when its form is not plain.
fn expected(content_type: &str, body: &[u8]) -> Option<(Option<String>, VendKind)> {
    let kind_of =
        |k: &str| if k == "assertion" { VendKind::Assertion } else { VendKind::AccessToken };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some((None, VendKind::AccessToken));
    }
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let json = match media.as_str() {
        "application/json" => true,
        "application/x-www-form-urlencoded" => false,
        "" if content_type.is_empty() => {
            body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        }
        _ => return None,
    };
    if json {
        let serde_json::Value::Object(object) = serde_json::from_slice(body).ok()? else {
            return None;
        };
        let scope = object.get("scope").and_then(|s| s.as_str()).filter(|s| !s.is_empty());
        let kind =
            object.get("kind").and_then(|k| k.as_str()).map_or(VendKind::AccessToken, kind_of);
        return Some((scope.map(str::to_owned), kind));
    }
    let mut scope = None;
    let mut kind = VendKind::AccessToken;
    for pair in std::str::from_utf8(body).ok()?.trim().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = form_value(value)?;
        match form_value(name)?.as_str() {
            "scope" if !value.is_empty() => scope = Some(value),
            "kind" => kind = kind_of(&value),
            _ => {}
        }
    }
    Some((scope, kind))
}

fuzz_target!(|data: &[u8]| {
    let [method, content_type, authorization, body] = fields::<4>(data);
    let (method, content_type, authorization) =
        (text(method), text(content_type), text(authorization));
    let result = VendRequest::parse(&method, &headers(&content_type, &authorization), body);
    let again = VendRequest::parse(&method, &headers(&content_type, &authorization), body);
    assert_eq!(result, again, "not deterministic");
    let original = shown(&result);

    let (scheme, secret) =
        if authorization.is_empty() { ("", "") } else { credential(&authorization) };
    let token_like = secret.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~+/=-".contains(&b));
    if secret.len() >= MIN_SECRET_CHARS
        && token_like
        && occurrences(data, secret.as_bytes()) == 1
        && original.contains(secret)
    {
        let swapped = authorization.replacen(secret, &text(&rotate(secret.as_bytes())), 1);
        let again = shown(&VendRequest::parse(&method, &headers(&content_type, &swapped), body));
        let rotated = text(&rotate(secret.as_bytes()));
        let quoted = !again.contains(secret) && again.contains(&rotated);
        assert!(!quoted, "the credential {secret:?} is in {original}");
    }

    if let Ok(request) = &result {
        assert!(method.eq_ignore_ascii_case("POST"), "{method:?} accepted");
        assert!(scheme.eq_ignore_ascii_case("bearer"), "scheme {scheme:?} accepted");
        assert!(!request.token().is_empty(), "an empty token accepted");
        assert_eq!(request.token(), secret, "the token is not the credential");
        if let Some((scope, kind)) = expected(&content_type, body) {
            assert_eq!(request.scope(), scope.as_deref(), "the scope is not the body's");
            assert_eq!(request.kind(), kind, "the kind is not the body's");
        }
    }
});
