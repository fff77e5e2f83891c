use std::collections::BTreeSet;

use super::*;

fn response(error: &str, codes: &[u64], description: Option<&str>) -> EntraErrorResponse {
    EntraErrorResponse {
        status: 400,
        error: error.to_owned(),
        error_description: description.map(str::to_owned),
        error_codes: codes.to_vec(),
        trace_id: None,
        correlation_id: None,
        timestamp: None,
        error_uri: None,
    }
}

/// Each code with words its hint must contain: what to change, not just what went wrong.
const EXPECTED: [(u64, &[&str]); 21] = [
    (70021, &["no federated credential", "propagated", "case-sensitive"]),
    (700211, &["issuer", "without a trailing slash", "CI_SERVER_URL"]),
    (700212, &["api://AzureADTokenExchange", "id_tokens:<NAME>:aud"]),
    (700213, &["subject", "case-sensitive", "project_path:"]),
    (7002137, &["subject of the federated credential", "project and ref"]),
    (7002138, &["letter case", "case-sensitive"]),
    (700024, &["valid time range", "job timeout", "clock"]),
    (700016, &["application was not found", "Application (client) ID"]),
    (50027, &["as a JWT", "JWKS"]),
    (90002, &["tenant was not found", "authority host"]),
    (9001023, &["/common", "tenant) ID"]),
    (90061, &["request to the GitLab issuer failed", "reachable from the internet"]),
    (501661, &["OIDC metadata", "/oauth/discovery/keys"]),
    (700027, &["signature validation", "x5t"]),
    (70011, &["scope is invalid", "/.default"]),
    (700022, &["more than one resource", "one token per resource"]),
    (7000215, &["client secret", "remove `client_secret`"]),
    (7000218, &["neither `client_assertion`", "id_tokens:"]),
    (900144, &["required form field", "client_assertion_type"]),
    (7000272, &["first 100 keys", "before it signs"]),
    (50166, &["could not reach the assertion's issuer", "publicly trusted"]),
];

#[test]
fn every_code_in_the_reference_table_has_its_own_hint() {
    let mut hints = BTreeSet::new();
    for (code, words) in EXPECTED {
        assert!(is_known(code), "{code}");
        let e = response("invalid_client", &[code], None);
        assert_eq!(e.known_code(), Some(code));
        let h = hint(&e);
        for word in words {
            assert!(h.contains(word), "AADSTS{code}: {word:?} not in {h:?}");
        }
        assert!(hints.insert(h), "AADSTS{code} shares its hint with another code");
    }
    assert_eq!(hints.len(), KNOWN_CODES.len());
    // And every code the module knows is tested here.
    for code in KNOWN_CODES {
        assert!(EXPECTED.iter().any(|(c, _)| *c == code), "{code} untested");
    }
}

#[test]
fn the_code_decides_never_the_description() {
    // The description names another code and another field: the hint follows `error_codes`.
    let e = response(
        "invalid_client",
        &[700213],
        Some("AADSTS700212: No matching federated identity record found for presented assertion audience 'x'."),
    );
    let h = hint(&e);
    assert!(h.contains("subject"), "{h}");
    assert!(!h.contains("api://AzureADTokenExchange"), "{h}");
    // A description alone chooses nothing: the error class does.
    let e = response("invalid_scope", &[], Some("AADSTS70011: The provided value is invalid."));
    assert_eq!(hint(&e), class_hint("invalid_scope"));
}

#[test]
fn the_first_known_code_wins() {
    let e = response("invalid_client", &[12345, 700212, 700213], None);
    assert_eq!(e.known_code(), Some(700212));
    assert!(hint(&e).contains("api://AzureADTokenExchange"));
}

#[test]
fn unknown_codes_fall_back_to_the_error_class() {
    let classes = [
        "invalid_client",
        "invalid_grant",
        "invalid_request",
        "invalid_resource",
        "interaction_required",
        "temporarily_unavailable",
        "unauthorized_client",
        "unsupported_grant_type",
    ];
    let mut seen = BTreeSet::new();
    for class in classes {
        let h = hint(&response(class, &[999_999], None));
        assert_eq!(h, class_hint(class));
        assert!(seen.insert(h), "{class} shares its hint");
    }
    let h = hint(&response("something_new", &[], None));
    assert!(h.contains("login.microsoftonline.com/error"), "{h}");
    assert!(h.contains("trace id"), "{h}");
}

#[test]
fn subject_hints_show_the_subject_entra_saw() {
    let sub = "project_path:acme/payments:ref_type:branch:ref:main";
    let e = response(
        "invalid_client",
        &[700213],
        Some(&format!(
            "AADSTS700213: No matching federated identity record found for presented assertion \
             subject '{sub}'. Please note that matching is done using a case-sensitive \
             comparison.\r\nTrace ID: t\r\nCorrelation ID: c\r\nTimestamp: 2026-01-01 00:00:00Z"
        )),
    );
    assert!(hint(&e).starts_with(&format!("Entra saw subject `{sub}`")), "{}", hint(&e));

    let e = response(
        "invalid_client",
        &[7002137],
        Some("AADSTS7002137: No matching federated identity record found for presented assertion \
              subject 'project_path:acme/Payments:ref_type:branch:ref:main'. Please make sure the \
              federated identity credential Subject is 'project_path:acme/payments:ref_type:branch:ref:main'"),
    );
    let h = hint(&e);
    assert!(h.contains("Entra saw subject `project_path:acme/Payments"), "{h}");
    assert!(h.contains("Entra expects `project_path:acme/payments"), "{h}");
}

#[test]
fn audience_issuer_and_generic_mismatch_hints_quote_what_entra_saw() {
    let e = response(
        "invalid_client",
        &[700212],
        Some("AADSTS700212: No matching federated identity record found for presented assertion audience 'https://gitlab.com'."),
    );
    assert!(hint(&e).contains("Entra saw audience `https://gitlab.com`"));

    let e = response(
        "invalid_client",
        &[700211],
        Some("AADSTS700211: No matching federated identity record found for presented assertion issuer 'https://gitlab.example.com/'."),
    );
    assert!(hint(&e).contains("Entra saw issuer `https://gitlab.example.com/`"));

    let e = response(
        "invalid_request",
        &[70021],
        Some("AADSTS70021: No matching federated identity record found for presented assertion. \
              Assertion Issuer: 'https://gitlab.com'. Assertion Subject: 'project_path:a/b:ref_type:tag:ref:v1'. \
              Assertion Audience: 'api://AzureADTokenExchange'."),
    );
    let h = hint(&e);
    assert!(h.contains("issuer `https://gitlab.com`"), "{h}");
    assert!(h.contains("subject `project_path:a/b:ref_type:tag:ref:v1`"), "{h}");
    assert!(h.contains("audience `api://AzureADTokenExchange`"), "{h}");
}

#[test]
fn quoted_values_with_control_characters_or_no_end_are_not_shown() {
    let e = response("invalid_client", &[700213], Some("... subject 'a\r\nb' ..."));
    assert!(hint(&e).starts_with("Entra compared the token's subject (its `sub` claim)"));
    let e = response("invalid_client", &[700213], Some("... subject 'never closed"));
    assert!(hint(&e).starts_with("Entra compared the token's subject"));
    let long = format!("... subject '{}' ...", "x".repeat(MAX_QUOTED + 1));
    let e = response("invalid_client", &[700213], Some(&long));
    assert!(hint(&e).starts_with("Entra compared the token's subject"));
}

#[test]
fn missing_parameter_is_named() {
    let e = response(
        "invalid_request",
        &[900144],
        Some("AADSTS900144: The request body must contain the following parameter: 'grant_type'."),
    );
    assert!(hint(&e).contains("(`grant_type`)"), "{}", hint(&e));
}
