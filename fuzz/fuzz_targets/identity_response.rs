//! The managed identity endpoint's answers (IMDS, App Service): the status, `Content-Type`,
//! `Retry-After` (no header when empty), one a line, then the body.
//!
//! Invariants: no panic; an error never carries the identity token: no `access_token` value of
//! the body (found by a lenient scan, so truncated JSON counts) appears in the error's text or
//! debug form. Coincidences cannot fire, as in `entra_response`: only token-like values (16 or
//! more characters of the JWT alphabet) that occur once in the whole input are checked, and one
//! counts as leaked only if the error follows it (with a different token of the same shape in
//! the body, the error shows that one instead). A success comes from a 2xx answer whose body is
//! a JSON object (read here with `serde_json`) with that token as its `access_token`, expires
//! more than a minute after `now`, and its debug form shows no token.
#![no_main]

use gitlab_azure_oidc::broker::parse_identity_response;
use gitlab_azure_oidc_fuzz::{
    assert_no_access_token_quoted, occurrences, token_answer, MIN_SECRET_CHARS,
};
use libfuzzer_sys::fuzz_target;

const CLIENT_ID: &str = "0b9a3c6e-8f1d-4e2a-9c7b-5d4e3f2a1b0c";
const NOW: u64 = 1_760_000_000;

fn shown(status: u16, headers: &[(String, String)], body: &[u8]) -> String {
    match parse_identity_response(status, headers, body, CLIENT_ID, NOW) {
        Ok(token) => format!("{token:?}"),
        Err(err) => format!("{err}\n{err:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((status, headers, body)) = token_answer(data) else { return };
    let result = parse_identity_response(status, &headers, body, CLIENT_ID, NOW);
    let original = shown(status, &headers, body);
    let shown_for = |body: &[u8]| shown(status, &headers, body);
    assert_no_access_token_quoted(data, body, shown_for, "identity token");
    if let Ok(token) = &result {
        assert!((200..=299).contains(&status), "a token from an HTTP {status} answer");
        assert!(token.expires_at > NOW + 60, "a token expiring at {} accepted", token.expires_at);
        let secret = token.token.secret();
        let answer: serde_json::Value =
            serde_json::from_slice(body).expect("an accepted answer is JSON");
        assert_eq!(
            answer.get("access_token").and_then(|t| t.as_str()),
            Some(secret),
            "the token is not the answer's access_token"
        );
        if secret.len() >= MIN_SECRET_CHARS && occurrences(data, secret.as_bytes()) == 1 {
            assert!(!original.contains(secret), "the token is in its debug form: {original}");
        }
    }
});
