use std::collections::HashSet;

use gitlab_azure_oidc::entra::parse_token_response;
use gitlab_azure_oidc::VerifyError;

use super::*;
use crate::host::mock::MockHost;
use crate::reply;
use crate::request::MissingToken;

fn entra(status: u16, headers: &[(&str, &str)], body: &str) -> Failure {
    let headers: Vec<(String, String)> =
        headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
    Failure::Entra(
        parse_token_response(status, &headers, body.as_bytes(), 1000).expect_err("an error"),
    )
}

fn aadsts(error: &str, code: u32) -> String {
    format!(r#"{{"error":"{error}","error_description":"AADSTS{code}: x","error_codes":[{code}]}}"#)
}

#[test]
fn names_are_unique_and_under_the_filters_prefix() {
    let names: HashSet<&str> = Counter::ALL.iter().map(|c| c.name()).collect();
    assert_eq!(names.len(), Counter::ALL.len());
    assert!(names.iter().all(|n| n.starts_with("gitlab_azure_oidc.")), "{names:?}");
}

#[test]
fn entras_answers_are_told_apart_as_the_replies_are() {
    let json = [("content-type", "application/json")];
    let refused = entra(400, &json, &aadsts("invalid_client", 700_213));
    assert_eq!(Counter::for_entra_failure(&refused), Counter::EntraRefused);
    let throttled = entra(429, &[("retry-after", "5")], "");
    assert_eq!(Counter::for_entra_failure(&throttled), Counter::EntraThrottled);
    let later = entra(400, &json, &aadsts("temporarily_unavailable", 90_033));
    assert_eq!(Counter::for_entra_failure(&later), Counter::EntraThrottled);
    let timeout = entra(504, &[], "upstream request timeout");
    assert_eq!(Counter::for_entra_failure(&timeout), Counter::EntraUnreachable);
    let broken = entra(500, &[], "");
    assert_eq!(Counter::for_entra_failure(&broken), Counter::EntraFailed);
    let page = entra(200, &[("content-type", "text/html")], "<html><title>Wi-Fi</title></html>");
    assert_eq!(Counter::for_entra_failure(&page), Counter::EntraFailed);
}

#[test]
fn every_reply_is_rejected_denied_or_refused() {
    let missing = reply::missing_token("authorization", MissingToken::NoHeader);
    assert_eq!(Counter::for_reply(&missing), Counter::RequestsRejected);
    let expired = Failure::Token(VerifyError::Expired { exp: 1, now: 2000, leeway: 60 });
    assert_eq!(Counter::for_reply(&reply::failure(&expired)), Counter::RequestsRejected);
    let unavailable = reply::jwks_unavailable("down", 5);
    assert_eq!(Counter::for_reply(&unavailable), Counter::RequestsRefused);
    assert_eq!(Counter::for_reply(&reply::overloaded()), Counter::RequestsRefused);
    let unreachable = reply::entra_unreachable("timeout");
    assert_eq!(Counter::for_reply(&unreachable), Counter::RequestsRefused);
    let json = [("content-type", "application/json")];
    let refused = entra(400, &json, &aadsts("invalid_client", 700_213));
    let entra_403 = reply::failure(&refused);
    assert_eq!(entra_403.status, 403);
    assert_eq!(Counter::for_reply(&entra_403), Counter::RequestsRefused, "not the policy's deny");
}

#[test]
fn counters_are_defined_once_by_name_and_counted_in_the_host() {
    let host = MockHost::new(0);
    let counters = Counters::define(&host);
    Counters::define(&host); // A second root context: the same counters.
    counters.add(&host, Counter::RequestsAllowed);
    counters.add(&host, Counter::RequestsAllowed);
    counters.add(&host, Counter::JwksFetchFailed);
    let state = host.state();
    assert_eq!(state.counters.len(), Counter::ALL.len());
    let value = |name: &str| state.counters.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    assert_eq!(value("gitlab_azure_oidc.requests.allowed"), Some(2));
    assert_eq!(value("gitlab_azure_oidc.jwks_fetch.failed"), Some(1));
    assert_eq!(value("gitlab_azure_oidc.entra.ok"), Some(0));
}
