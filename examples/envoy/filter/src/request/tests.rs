use serde_json::json;

use super::*;
use crate::testutil;

fn bearer() -> HeaderSpec {
    HeaderSpec::default()
}

#[test]
fn bearer_token_is_read_with_any_case_scheme_and_extra_spaces() {
    assert_eq!(extract_token(&bearer(), Some("Bearer abc.def.ghi")), Ok("abc.def.ghi"));
    assert_eq!(extract_token(&bearer(), Some("bearer   abc.def.ghi ")), Ok("abc.def.ghi"));
}

#[test]
fn missing_empty_and_other_schemes_are_told_apart() {
    assert_eq!(extract_token(&bearer(), None), Err(MissingToken::NoHeader));
    assert_eq!(extract_token(&bearer(), Some("  ")), Err(MissingToken::NoHeader));
    assert_eq!(extract_token(&bearer(), Some("Bearer ")), Err(MissingToken::WrongScheme));
    assert_eq!(
        extract_token(&bearer(), Some("Basic dXNlcjpwYXNz")),
        Err(MissingToken::WrongScheme)
    );
    assert_eq!(extract_token(&bearer(), Some("abc.def.ghi")), Err(MissingToken::WrongScheme));
}

#[test]
fn bare_token_headers_take_the_whole_value() {
    let spec = HeaderSpec { name: "x-gitlab-token".to_owned(), scheme: None };
    assert_eq!(extract_token(&spec, Some(" abc.def.ghi ")), Ok("abc.def.ghi"));
    assert_eq!(spec.value("t"), "t");
    assert_eq!(bearer().value("t"), "Bearer t");
}

#[test]
fn urls_split_into_authority_and_path() {
    assert_eq!(
        split_url("http://127.0.0.1:8080/tenant/oauth2/v2.0/token"),
        Some(("127.0.0.1:8080".to_owned(), "/tenant/oauth2/v2.0/token".to_owned()))
    );
    assert_eq!(split_url("https://gitlab.com"), Some(("gitlab.com".to_owned(), "/".to_owned())));
    assert_eq!(split_url("ftp://x/y"), None);
    assert_eq!(split_url("https:///path"), None);
}

#[test]
fn header_names_are_lowercase_tokens() {
    assert!(is_header_name("x-gitlab-project-path"));
    assert!(is_header_name(":authority"));
    assert!(!is_header_name("X-Upper"));
    assert!(!is_header_name("a b"));
    assert!(!is_header_name(""));
    assert!(!is_header_name("a\r\nb"));
}

fn claims(overrides: serde_json::Value) -> gitlab_azure_oidc::Claims {
    let jwks = gitlab_azure_oidc::Jwks::parse(testutil::jwks(&[&testutil::key()]).as_bytes())
        .expect("jwks");
    let config = gitlab_azure_oidc::VerifierConfig::builder(testutil::ISSUER)
        .audience(testkit::AUDIENCE)
        .build()
        .expect("config");
    let token = testutil::token(&testutil::key(), overrides);
    gitlab_azure_oidc::Verifier::new(config, jwks)
        .verify(&token, testutil::NOW)
        .expect("valid")
        .claims
}

#[test]
fn plan_replaces_authorization_and_sets_claim_headers() {
    let headers = vec![
        ("x-gitlab-project-path".to_owned(), "project_path".to_owned()),
        ("x-gitlab-runner-id".to_owned(), "runner_id".to_owned()),
        ("x-gitlab-groups".to_owned(), "groups_direct".to_owned()),
        ("x-gitlab-nothing".to_owned(), "no_such_claim".to_owned()),
    ];
    let plan = plan_headers(&bearer(), &bearer(), "azure", &headers, &claims(json!({})));
    assert_eq!(
        plan.set,
        vec![
            ("authorization".to_owned(), "Bearer azure".to_owned()),
            ("x-gitlab-project-path".to_owned(), "acme/payments".to_owned()),
            ("x-gitlab-runner-id".to_owned(), "12".to_owned()),
        ]
    );
    // Arrays and absent claims remove the header, so a client cannot send its own.
    assert_eq!(plan.remove, vec!["x-gitlab-groups".to_owned(), "x-gitlab-nothing".to_owned()]);
}

#[test]
fn plan_removes_the_gitlab_token_header_when_the_azure_token_goes_elsewhere() {
    let gitlab = HeaderSpec { name: "x-gitlab-token".to_owned(), scheme: None };
    let plan = plan_headers(&gitlab, &bearer(), "azure", &[], &claims(json!({})));
    assert_eq!(plan.remove, vec!["x-gitlab-token".to_owned()]);
    assert_eq!(plan.set, vec![("authorization".to_owned(), "Bearer azure".to_owned())]);
}

#[test]
fn claims_with_control_characters_are_not_forwarded() {
    let c = claims(json!({"environment": "prod\r\nx-injected: 1"}));
    assert_eq!(claim_value(&c, "environment"), None);
    assert_eq!(claim_value(&c, "ref"), Some("main".to_owned()));
}
