use serde_json::{json, Value};

use super::*;
use crate::entra::federated::CredentialError;

const ISS: &str = "https://gitlab.com";
const AUD: &str = "api://AzureADTokenExchange";
const SUB: &str = "project_path:acme/payments:ref_type:branch:ref:main";

fn claims_with(edit: impl FnOnce(&mut Value)) -> Claims {
    Claims::test_job(ISS, 1_760_000_000, edit)
}

fn claims() -> Claims {
    claims_with(|_| {})
}

fn credentials(list: Value) -> Vec<FederatedCredential> {
    FederatedCredential::parse_list(list.to_string().as_bytes()).unwrap()
}

fn classic(name: &str, issuer: &str, subject: &str, audience: &str) -> Value {
    json!({
        "id": "00000000-0000-0000-0000-000000000000",
        "name": name, "issuer": issuer, "subject": subject, "audiences": [audience],
        "description": null
    })
}

fn flexible(name: &str, expression: &str) -> Value {
    json!({
        "name": name, "issuer": ISS, "subject": null, "audiences": [AUD],
        "claimsMatchingExpression": {"value": expression, "languageVersion": 1}
    })
}

fn only_difference(list: Value) -> Difference {
    let p = preflight(&claims(), &credentials(list));
    assert!(!p.accepted(), "{p}");
    let nearest = p.nearest.expect("a nearest credential");
    assert_eq!(nearest.differences.len(), 1, "{:?}", nearest.differences);
    nearest.differences.into_iter().next().unwrap()
}

#[test]
fn an_exact_classic_credential_accepts() {
    let list = json!([
        classic("other", ISS, "project_path:x/y:ref_type:branch:ref:main", AUD),
        classic("main", ISS, SUB, AUD)
    ]);
    let p = preflight(&claims(), &credentials(list));
    assert_eq!(p.accepted_by.as_deref(), Some("main"));
    assert_eq!(p.to_string(), "entra accepts the token: credential main matches");
}

#[test]
fn graphs_value_wrapper_is_accepted() {
    let list = json!({"@odata.context": "https://graph.microsoft.com/...", "value": [classic("main", ISS, SUB, AUD)]});
    assert!(preflight(&claims(), &credentials(list)).accepted());
}

#[test]
fn issuer_near_misses() {
    let d = only_difference(json!([classic("c", "https://gitlab.com/", SUB, AUD)]));
    assert_eq!(
        d,
        Difference::Issuer {
            credential: "https://gitlab.com/".into(),
            token: ISS.into(),
            near_miss: Some(IssuerNearMiss::TrailingSlash),
        }
    );
    assert!(d.to_string().contains("trailing slash"));
    assert!(d.to_string().contains("AADSTS700211"));
    let d = only_difference(json!([classic("c", "gitlab.com", SUB, AUD)]));
    assert!(matches!(d, Difference::Issuer { near_miss: Some(IssuerNearMiss::Scheme), .. }));
    let d = only_difference(json!([classic("c", "http://gitlab.com", SUB, AUD)]));
    assert!(matches!(d, Difference::Issuer { near_miss: Some(IssuerNearMiss::Scheme), .. }));
    let d = only_difference(json!([classic("c", "https://GitLab.com", SUB, AUD)]));
    assert!(matches!(d, Difference::Issuer { near_miss: Some(IssuerNearMiss::Case), .. }));
    let d = only_difference(json!([classic("c", "https://gitlab.example.com", SUB, AUD)]));
    assert!(matches!(d, Difference::Issuer { near_miss: None, .. }));
}

#[test]
fn subject_differs_only_in_case() {
    let d = only_difference(json!([classic(
        "c",
        ISS,
        "project_path:Acme/Payments:ref_type:branch:ref:main",
        AUD
    )]));
    assert_eq!(d.kind(), "subject-case");
    assert!(d.to_string().contains("AADSTS7002138"), "{d}");
}

#[test]
fn subject_components_in_another_order() {
    let d = only_difference(json!([classic(
        "c",
        ISS,
        "project_path:acme/payments:ref:main:ref_type:branch",
        AUD
    )]));
    assert_eq!(
        d,
        Difference::SubjectOrder {
            credential: "project_path:acme/payments:ref:main:ref_type:branch".into(),
            token: SUB.into(),
        }
    );
    assert!(d.to_string().contains("ci_id_token_sub_claim_components"));
}

#[test]
fn audience_differs() {
    let d = only_difference(json!([classic("c", ISS, SUB, "https://gitlab.com")]));
    assert_eq!(
        d,
        Difference::Audience {
            credential: vec!["https://gitlab.com".into()],
            token: vec![AUD.into()],
        }
    );
    assert!(d.to_string().starts_with(
        "audience differs: the credential expects `https://gitlab.com`, the token has \
         `api://AzureADTokenExchange` (AADSTS700212)"
    ));
    // A token with several audiences matches when one of them is the credential's.
    let multi = claims_with(|c| c["aud"] = json!(["https://vault.example.com", AUD]));
    assert!(preflight(&multi, &credentials(json!([classic("c", ISS, SUB, AUD)]))).accepted());
}

#[test]
fn nearest_credential_is_the_one_with_the_smallest_difference() {
    let list = json!([
        classic("far", "https://gitlab.example.com", "project_path:x:ref_type:tag:ref:v1", "x"),
        classic("other-branch", ISS, "project_path:acme/payments:ref_type:branch:ref:develop", AUD),
        classic("case", ISS, "project_path:acme/payments:ref_type:branch:ref:Main", AUD),
    ]);
    let p = preflight(&claims(), &credentials(list));
    let nearest = p.nearest.clone().unwrap();
    assert_eq!(nearest.name, "case");
    let text = p.to_string();
    assert!(text.starts_with("entra would refuse the token: no federated credential matches; nearest is case\n  subject differs only in letter case"), "{text}");
}

#[test]
fn flexible_credentials_are_evaluated() {
    let ok = json!([flexible(
        "branches",
        "claims['sub'] matches 'project_path:acme/payments:ref_type:branch:ref:*'"
    )]);
    assert_eq!(preflight(&claims(), &credentials(ok)).accepted_by.as_deref(), Some("branches"));
    let d = only_difference(json!([flexible(
        "tags",
        "claims['sub'] matches 'project_path:acme/payments:ref_type:tag:ref:*'"
    )]));
    assert!(matches!(d, Difference::Expression { case_only: false, .. }), "{d:?}");
    let d =
        only_difference(json!([flexible("case", "claims['sub'] matches 'project_path:ACME/*'")]));
    assert!(matches!(d, Difference::Expression { case_only: true, .. }), "{d:?}");
    assert!(d.to_string().contains("AADSTS7002138"));
    let d = only_difference(json!([flexible("gh", "claims['job_workflow_ref'] matches '*'")]));
    assert_eq!(d.kind(), "expression-claim");
}

#[test]
fn too_many_credentials_are_reported() {
    let list: Vec<Value> = (0..21)
        .map(|i| {
            classic(&format!("c{i}"), ISS, &format!("project_path:x:ref_type:branch:ref:b{i}"), AUD)
        })
        .collect();
    let p = preflight(&claims(), &credentials(json!(list)));
    assert!(p.over_limit());
    assert!(
        p.to_string().contains("21 federated credentials, more than Entra's limit of 20"),
        "{p}"
    );
    let empty = preflight(&claims(), &[]);
    assert!(empty.nearest.is_none());
    assert!(empty.to_string().contains("no federated credentials"));
}

#[test]
fn malformed_credential_lists_are_refused() {
    let err = |v: Value| FederatedCredential::parse_list(v.to_string().as_bytes()).unwrap_err();
    assert_eq!(err(json!({"x": 1})), CredentialError::NotAList);
    assert_eq!(err(json!([{"issuer": ISS}])).kind(), "credentials-field");
    let both = json!([{"name": "b", "issuer": ISS, "subject": SUB, "audiences": [AUD],
                       "claimsMatchingExpression": {"value": "claims['sub'] eq 'x'", "languageVersion": 1}}]);
    assert_eq!(err(both), CredentialError::SubjectAndExpression { name: "b".into(), both: true });
    let neither = json!([{"name": "n", "issuer": ISS, "audiences": [AUD]}]);
    assert_eq!(
        err(neither),
        CredentialError::SubjectAndExpression { name: "n".into(), both: false }
    );
    let bad = err(json!([flexible("f", "claims['sub'] like 'x'")]));
    assert_eq!(
        bad.to_string(),
        "credential f: claimsMatchingExpression: column 15: unknown operator `like`; language \
         version 1 has only `matches` (wildcards `*` and `?`) and `eq`"
    );
    let v2 = json!([{"name": "v", "issuer": ISS, "audiences": [AUD],
                     "claimsMatchingExpression": {"value": "claims['sub'] eq 'x'", "languageVersion": 2}}]);
    assert!(matches!(
        err(v2),
        CredentialError::Expression {
            error: crate::entra::federated::ExpressionError::UnsupportedVersion { version: 2 },
            ..
        }
    ));
    assert_eq!(FederatedCredential::parse_list(b"nope").unwrap_err().kind(), "credentials-json");
}
