//! Entra token requests: tenant, client id, scopes (space-separated), authority host (empty for
//! the default) and the GitLab token, one a line.
//!
//! Invariants: no panic; a built request decodes (with an independent form decoder) to exactly
//! the target's client id and scopes, the fixed grant and assertion types and the token,
//! byte for byte; its URL is the target's `https://` token endpoint; neither its debug form nor
//! any error quotes a token of 16 characters or more that occurs once in the input (quotes: shows
//! a different token of the same shape instead when given one).
#![no_main]

use gitlab_azure_oidc::entra::{
    build_federated_request, AzureTarget, CLIENT_ASSERTION_TYPE, GRANT_TYPE,
};
use gitlab_azure_oidc_fuzz::{fields, form_value, occurrences, rotate, text, MIN_SECRET_CHARS};
use libfuzzer_sys::fuzz_target;

/// `application/x-www-form-urlencoded`, decoded: `+` is a space, `%XX` a byte.
fn form_decode(body: &str) -> Vec<(String, String)> {
    let decode = |s: &str| form_value(s).expect("a request body decodes");
    body.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("name=value");
            (decode(k), decode(v))
        })
        .collect()
}

fn outcome(target: &AzureTarget, token: &str) -> String {
    match build_federated_request(target, token) {
        Ok(request) => format!("{request:?}"),
        Err(err) => format!("{err}\n{err:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let [tenant, client_id, scopes, host, token] = fields::<5>(data);
    let mut builder = AzureTarget::builder(text(tenant), text(client_id));
    for scope in text(scopes).split(' ').filter(|s| !s.is_empty()) {
        builder = builder.scope(scope);
    }
    if !host.is_empty() {
        builder = builder.authority_host(text(host));
    }
    let Ok(target) = builder.build() else { return };
    let token = text(token);
    if let Ok(request) = build_federated_request(&target, &token) {
        assert_eq!(request.method, "POST");
        assert_eq!(request.url, target.token_endpoint());
        assert!(request.url.starts_with("https://"), "{}", request.url);
        let scope = target.scopes().join(" ");
        let expected = [
            ("client_id", target.client_id()),
            ("scope", scope.as_str()),
            ("grant_type", GRANT_TYPE),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", token.as_str()),
        ];
        let decoded = form_decode(&request.body);
        let decoded: Vec<(&str, &str)> =
            decoded.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(decoded, expected);
    }
    // No token in the debug form or the error: one the output follows (quotes) when the token
    // changes, not text the builder writes itself that the fuzzer copied into the token.
    let shown = outcome(&target, &token);
    if token.len() >= MIN_SECRET_CHARS
        && occurrences(data, token.as_bytes()) == 1
        && shown.contains(&token)
    {
        let other =
            String::from_utf8(rotate(token.as_bytes())).expect("ASCII rotation keeps UTF-8");
        let again = outcome(&target, &other);
        assert!(again.contains(&token) || !again.contains(&other), "the token is in {shown}");
    }
});
