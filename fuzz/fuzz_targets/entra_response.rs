//! Entra's token answers: the status, `Content-Type`, `Retry-After`, one a line, then the body.
//!
//! Invariants: no panic; an error never carries the access token: no `access_token` value of
//! the body (found by a lenient scan, so truncated JSON counts) appears in the error's text or
//! debug form. Coincidences cannot fire: only token-like values (16 or more characters of the JWT
//! alphabet) that occur once in the whole input are checked, and a value counts as leaked only if
//! the error then follows the token: with a different token of the same shape in the body, the
//! error shows that one instead (text the parser writes itself, which the fuzzer can copy into
//! the token, stays and is not a leak).
//! A success's debug form shows no token either.
#![no_main]

use gitlab_azure_oidc::entra::parse_token_response;
use gitlab_azure_oidc_fuzz::{
    assert_no_access_token_quoted, occurrences, token_answer, MIN_SECRET_CHARS,
};
use libfuzzer_sys::fuzz_target;

fn shown(status: u16, headers: &[(String, String)], body: &[u8]) -> String {
    match parse_token_response(status, headers, body, 1_700_000_000) {
        Ok(token) => format!("{token:?}"),
        Err(err) => format!("{err}\n{err:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((status, headers, body)) = token_answer(data) else { return };
    let result = parse_token_response(status, &headers, body, 1_700_000_000);
    let original = shown(status, &headers, body);
    let shown_for = |body: &[u8]| shown(status, &headers, body);
    assert_no_access_token_quoted(data, body, shown_for, "access token");
    if let Ok(token) = &result {
        let secret = token.token.secret();
        if secret.len() >= MIN_SECRET_CHARS && occurrences(data, secret.as_bytes()) == 1 {
            assert!(!original.contains(secret), "the token is in its debug form: {original}");
        }
    }
});
