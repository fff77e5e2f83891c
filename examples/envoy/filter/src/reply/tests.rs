use gitlab_azure_oidc::entra::parse_token_response;
use gitlab_azure_oidc::VerifyError;
use serde_json::{json, Value};

use super::*;

fn body(reply: &Reply) -> Value {
    serde_json::from_str(&reply.body).expect("the body is JSON")
}

fn header<'r>(reply: &'r Reply, name: &str) -> Option<&'r str> {
    reply.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[test]
fn missing_token_is_401_with_a_bearer_challenge() {
    let reply = missing_token("authorization", MissingToken::NoHeader);
    assert_eq!(reply.status, 401);
    assert_eq!(header(&reply, "www-authenticate"), Some("Bearer"));
    assert_eq!(body(&reply)["error"], "missing-token");
    assert_eq!(reply.kind(), "missing-token");
}

#[test]
fn invalid_token_names_the_kind_and_never_the_token() {
    let error = Failure::Token(VerifyError::Expired { exp: 1, now: 2000, leeway: 60 });
    let reply = failure(&error);
    assert_eq!(reply.status, 401);
    assert_eq!(body(&reply)["error"], "expired");
    assert!(header(&reply, "www-authenticate").is_some_and(|v| v.contains("invalid_token")));
}

fn entra(status: u16, headers: &[(&str, &str)], body: &str) -> Failure {
    let headers: Vec<(String, String)> =
        headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
    Failure::Entra(
        parse_token_response(status, &headers, body.as_bytes(), 1000).expect_err("an error"),
    )
}

#[test]
fn aadsts_client_errors_are_403_with_the_hint() {
    let error = entra(
        400,
        &[("content-type", "application/json")],
        &json!({"error": "invalid_client", "error_description": "AADSTS700213: No matching federated identity record found",
                "error_codes": [700213], "trace_id": "t-1"}).to_string(),
    );
    let reply = failure(&error);
    assert_eq!(reply.status, 403);
    let b = body(&reply);
    assert_eq!(b["error"], "entra-error");
    assert_eq!(b["aadsts"], json!([700213]));
    assert_eq!(b["trace_id"], "t-1");
    assert!(b["hint"].as_str().is_some_and(|h| !h.is_empty()));
}

#[test]
fn throttling_is_503_with_retry_after_passed_on() {
    let reply = failure(&entra(429, &[("retry-after", "7")], ""));
    assert_eq!(reply.status, 503);
    assert_eq!(header(&reply, "retry-after"), Some("7"));
}

#[test]
fn server_errors_and_garbage_are_502() {
    assert_eq!(failure(&entra(500, &[], "")).status, 502);
    let html = entra(200, &[("content-type", "text/html")], "<html><title>Hi</title></html>");
    assert_eq!(failure(&html).status, 502);
    assert_eq!(failure(&entra(503, &[("retry-after", "3")], "")).status, 503);
    // Envoy answers a callout that timed out with its own 504.
    assert_eq!(failure(&entra(504, &[], "upstream request timeout")).status, 503);
}

#[test]
fn temporarily_unavailable_is_503() {
    let error = entra(
        400,
        &[("content-type", "application/json")],
        &json!({"error": "temporarily_unavailable", "error_codes": [50196]}).to_string(),
    );
    assert_eq!(failure(&error).status, 503);
}

#[test]
fn jwks_unavailable_is_503_with_at_least_one_second() {
    let reply = jwks_unavailable("down", 0);
    assert_eq!(reply.status, 503);
    assert_eq!(header(&reply, "retry-after"), Some("1"));
}

#[test]
fn reject_events_carry_the_fingerprint_not_the_token() {
    let reply = missing_token("authorization", MissingToken::NoHeader);
    let event: Value = serde_json::from_str(&reject_event(&reply, Some("a.b.c"), 5)).expect("json");
    assert_eq!(event["decision"], "reject");
    assert_eq!(event["status"], 401);
    assert_eq!(event["token_sha256"], token_fingerprint("a.b.c"));
    assert!(!event.to_string().contains("a.b.c"));
}
