//! Entra's token answers: the status, `Content-Type`, `Retry-After`, one a line, then the body.
//!
//! Invariants: no panic; an error never carries the access token: no `access_token` value of
//! the body (found by a lenient scan, so truncated JSON counts) appears in the error's text or
//! debug form. Only values of at least 16 characters that occur exactly once in the whole input
//! are checked, so a value that is also the description or a header cannot fire by coincidence.
//! A success's debug form shows no token either.
#![no_main]

use gitlab_azure_oidc::entra::parse_token_response;
use gitlab_azure_oidc_fuzz::{access_token_values, fields, occurrences, text, MIN_SECRET_CHARS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [status, content_type, retry_after, body] = fields::<4>(data);
    let Ok(status) = text(status).trim().parse::<u16>() else { return };
    let mut headers = vec![("Content-Type".to_owned(), text(content_type))];
    if !retry_after.is_empty() {
        headers.push(("retry-after".to_owned(), text(retry_after)));
    }
    let result = parse_token_response(status, &headers, body, 1_700_000_000);
    let shown = match &result {
        Ok(token) => format!("{token:?}"),
        Err(err) => format!("{err}\n{err:?}"),
    };
    for secret in access_token_values(body) {
        if secret.len() < MIN_SECRET_CHARS || occurrences(data, &secret) != 1 {
            continue;
        }
        assert_eq!(occurrences(shown.as_bytes(), &secret), 0,
            "the access token {:?} is in {shown}", String::from_utf8_lossy(&secret));
    }
    if let Ok(token) = &result {
        let secret = token.token.secret();
        if secret.len() >= MIN_SECRET_CHARS && occurrences(data, secret.as_bytes()) == 1 {
            assert!(!shown.contains(secret), "the token is in its debug form: {shown}");
        }
        assert!(token.expires_at >= token.expires_in.min(token.expires_at));
    }
});
