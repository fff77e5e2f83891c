use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::document::{AZURE_FIELDS, DOCUMENT_FIELDS, OPERATORS, RULE_FIELDS};
use super::*;

const ISS: &str = "https://gitlab.com";
const NOW: u64 = 1_760_000_000;
const TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const APP_A: &str = "11111111-0000-0000-0000-00000000000a";
const APP_B: &str = "11111111-0000-0000-0000-00000000000b";

/// A realistic token's claims (acme/payments, main, protected, production), edited.
fn claims_with(edit: impl FnOnce(&mut Value)) -> Claims {
    Claims::test_job(ISS, NOW - 10, edit)
}

fn claims() -> Claims {
    claims_with(|_| {})
}

fn azure(client_id: &str) -> Value {
    json!({"tenant": TENANT, "client_id": client_id, "scopes": ["https://management.azure.com/.default"]})
}

fn allow(name: &str, when: Value) -> Value {
    json!({"name": name, "effect": "allow", "when": when, "azure": azure(APP_A)})
}

fn deny(name: &str, when: Value) -> Value {
    json!({"name": name, "effect": "deny", "when": when})
}

fn policy(rules: Vec<Value>) -> Policy {
    Policy::parse(json!({"rules": rules}).to_string().as_bytes()).unwrap()
}

fn parse_err(doc: Value) -> PolicyError {
    Policy::parse(doc.to_string().as_bytes()).expect_err("policy must be refused")
}

fn rule_err(rule: Value) -> PolicyError {
    parse_err(json!({"rules": [rule]}))
}

/// Whether a one-rule allow policy with `when` allows `claims`.
fn allows(when: Value, claims: &Claims) -> bool {
    policy(vec![allow("r", when)]).decide(claims, NOW).is_allow()
}

// Ordering.

#[test]
fn deny_rules_win_even_when_listed_after_an_allow() {
    let p = policy(vec![allow("ok", json!({"ref": "main"})), deny("no", json!({"ref": "main"}))]);
    let d = p.decide(&claims(), NOW);
    assert_eq!(d.verdict, Verdict::Deny { rule: Some("no".into()) });
    assert_eq!(d.rule(), Some("no"));
    assert_eq!(d.target(), None);
}

#[test]
fn first_matching_allow_wins() {
    let mut second = allow("second", json!({"ref": "main"}));
    second["azure"] = azure(APP_B);
    let p = policy(vec![
        allow("never", json!({"ref": "develop"})),
        allow("first", json!({"ref_type": "branch"})),
        second,
    ]);
    let d = p.decide(&claims(), NOW);
    assert!(d.is_allow());
    assert_eq!(d.rule(), Some("first"));
    assert_eq!(d.target().map(|t| t.client_id()), Some(APP_A));
    // Every rule is still explained.
    assert_eq!(d.explanation.len(), 3);
    assert!(d.explanation[2].result.is_ok());
}

#[test]
fn nothing_matching_means_deny() {
    let p = policy(vec![allow("dev", json!({"ref": "develop"}))]);
    let d = p.decide(&claims(), NOW);
    assert_eq!(d.verdict, Verdict::Deny { rule: None });
    assert!(!d.is_allow());
}

// Condition kinds.

#[test]
fn exact_values() {
    assert!(allows(json!({"project_path": "acme/payments"}), &claims()));
    assert!(!allows(json!({"project_path": "acme/Payments"}), &claims()));
    assert!(allows(json!({"ref": {"equals": "main"}}), &claims()));
}

#[test]
fn any_of_a_list() {
    assert!(allows(json!({"ref": ["develop", "main"]}), &claims()));
    assert!(allows(json!({"ref": {"one_of": ["develop", "main"]}}), &claims()));
    assert!(!allows(json!({"ref": ["develop", "release"]}), &claims()));
}

#[test]
fn globs() {
    assert!(allows(json!({"project_path": {"glob": "acme/*"}}), &claims()));
    assert!(allows(json!({"project_path": {"glob": "**"}}), &claims()));
    assert!(allows(json!({"project_path": {"glob": ["x/*", "acme/pay?ents"]}}), &claims()));
    let nested = claims_with(|c| c["project_path"] = json!("acme/team/payments"));
    assert!(!allows(json!({"project_path": {"glob": "acme/*"}}), &nested));
    assert!(allows(json!({"project_path": {"glob": "acme/**"}}), &nested));
}

#[test]
fn flags_accept_booleans_and_gitlabs_strings() {
    let unprotected = claims_with(|c| c["ref_protected"] = json!("false"));
    assert!(allows(json!({"ref_protected": true}), &claims()));
    assert!(allows(json!({"ref_protected": "true"}), &claims()));
    assert!(!allows(json!({"ref_protected": true}), &unprotected));
    assert!(allows(json!({"ref_protected": false}), &unprotected));
    assert!(allows(json!({"environment_protected": true}), &claims()));
}

#[test]
fn ids_compare_as_ids() {
    assert!(allows(json!({"project_id": 4242}), &claims()));
    assert!(allows(json!({"project_id": "4242"}), &claims()));
    assert!(!allows(json!({"project_id": 424}), &claims()));
    assert!(allows(json!({"namespace_id": [1, 72]}), &claims()));
    // runner_id is the one id GitLab sends as a number.
    assert!(allows(json!({"runner_id": 12}), &claims()));
    assert!(allows(json!({"runner_id": "12"}), &claims()));
}

#[test]
fn presence_and_absence() {
    let no_env = claims_with(|c| {
        let obj = c.as_object_mut().unwrap();
        obj.remove("environment");
    });
    assert!(allows(json!({"environment": {"present": true}}), &claims()));
    assert!(!allows(json!({"environment": {"present": true}}), &no_env));
    assert!(allows(json!({"environment": {"present": false}}), &no_env));
    // GitLab sends null for ci_config_ref_uri when it does not apply: that is absent.
    let null_uri = claims_with(|c| c["ci_config_ref_uri"] = Value::Null);
    assert!(allows(json!({"ci_config_ref_uri": {"present": false}}), &null_uri));
    // An absent claim never equals anything.
    assert!(!allows(json!({"environment": "production"}), &no_env));
}

#[test]
fn claims_this_version_does_not_name() {
    let future = claims_with(|c| c["source_project_id"] = json!("99"));
    assert!(allows(json!({"source_project_id": 99}), &future));
    assert!(!allows(json!({"source_project_id": 99}), &claims()));
    assert!(allows(json!({"claim": "source_project_id", "glob": "9*"}), &future));
    let flag = claims_with(|c| c["future_flag"] = json!(true));
    assert!(allows(json!({"future_flag": true}), &flag));
}

#[test]
fn array_claims_match_when_any_element_matches() {
    assert!(allows(json!({"groups_direct": "acme/platform"}), &claims()));
    assert!(allows(json!({"groups_direct": {"glob": "acme/*"}}), &claims()));
    assert!(!allows(json!({"groups_direct": "acme/security"}), &claims()));
}

#[test]
fn combinators() {
    let c = claims();
    assert!(allows(json!({"all": [{"ref": "main"}, {"ref_type": "branch"}]}), &c));
    assert!(!allows(json!({"all": [{"ref": "main"}, {"ref_type": "tag"}]}), &c));
    assert!(allows(json!({"any": [{"ref": "x"}, {"ref_type": "branch"}]}), &c));
    assert!(!allows(json!({"any": [{"ref": "x"}, {"ref_type": "tag"}]}), &c));
    assert!(allows(json!({"not": {"ref": "develop"}}), &c));
    assert!(!allows(json!({"not": {"ref": "main"}}), &c));
    assert!(allows(json!([{"ref": "main"}, {"not": {"any": [{"ref_type": "tag"}]}}]), &c));
    // Combinators nest.
    assert!(allows(
        json!({"any": [{"all": [{"ref": "x"}]}, {"not": {"not": {"ref": "main"}}}]}),
        &c
    ));
}

// Guards.

/// A merge-request pipeline from a fork, as GitLab 18.4+ mints it: `project_*` and `sub` name the
/// fork, `job_project_*` the parent project running the job.
fn fork_pipeline() -> Claims {
    claims_with(|c| {
        c["project_path"] = json!("mallory/payments");
        c["project_id"] = json!("9999");
        c["namespace_path"] = json!("mallory");
        c["namespace_id"] = json!("888");
        c["job_project_path"] = json!("acme/payments");
        c["job_project_id"] = json!("4242");
        c["pipeline_source"] = json!("merge_request_event");
        c["ref"] = json!("feature");
        c["ref_protected"] = json!("false");
        c["sub"] = json!("project_path:mallory/payments:ref_type:branch:ref:feature");
    })
}

#[test]
fn same_project_refuses_fork_pipelines() {
    let mut rule = allow("deploy", json!({"ref_type": "branch"}));
    rule["same_project"] = json!(true);
    let p = policy(vec![rule]);
    assert!(p.decide(&claims(), NOW).is_allow());
    let d = p.decide(&fork_pipeline(), NOW);
    assert!(!d.is_allow());
    assert_eq!(
        d.lines(),
        ["rule deploy: project_path is mallory/payments but job_project_path is acme/payments, \
          expected the same project (same_project refuses merge-request pipelines from forks)"]
    );
    let old_gitlab = claims_with(|c| {
        c.as_object_mut().unwrap().remove("job_project_path");
    });
    assert_eq!(
        p.decide(&old_gitlab, NOW).lines(),
        ["rule deploy: job_project_path is absent, expected present (same_project needs GitLab \
          18.4 or later, which adds it)"]
    );
}

#[test]
fn without_the_guard_a_fork_matching_paths_by_glob_gets_in() {
    // The reason the guard exists: `project_path` names the fork.
    assert!(allows(json!({"project_path": {"glob": "*/payments"}}), &fork_pipeline()));
}

#[test]
fn max_token_age_needs_iat_and_now() {
    let mut rule = allow("fresh", json!({"ref": "main"}));
    rule["max_token_age"] = json!(300);
    let p = policy(vec![rule]);
    assert!(p.decide(&claims(), NOW).is_allow());
    assert!(p.decide(&claims(), NOW - 10 + 300).is_allow());
    let d = p.decide(&claims(), NOW - 10 + 301);
    assert_eq!(
        d.lines(),
        ["rule fresh: token age is 301 s, expected at most 300 s (max_token_age)"]
    );
    let no_iat = claims_with(|c| {
        c.as_object_mut().unwrap().remove("iat");
    });
    assert_eq!(
        p.decide(&no_iat, NOW).lines(),
        ["rule fresh: iat is absent, expected present (max_token_age needs it)"]
    );
}

#[test]
fn runner_environment_and_pipeline_source_lists() {
    let mut rule = allow("r", json!({"ref": "main"}));
    rule["runner_environment"] = json!("gitlab-hosted");
    rule["pipeline_source"] = json!(["push", "web"]);
    let p = policy(vec![rule]);
    assert!(p.decide(&claims(), NOW).is_allow());
    let self_hosted = claims_with(|c| c["runner_environment"] = json!("self-hosted"));
    assert_eq!(
        p.decide(&self_hosted, NOW).lines(),
        ["rule r: runner_environment is self-hosted, expected gitlab-hosted"]
    );
    let scheduled = claims_with(|c| c["pipeline_source"] = json!("schedule"));
    assert_eq!(
        p.decide(&scheduled, NOW).lines(),
        ["rule r: pipeline_source is schedule, expected one of push, web"]
    );
}

// Explanations.

#[test]
fn explanations_print_exactly() {
    let mut prod =
        allow("deploy-prod", json!([{"ref_protected": true}, {"environment": "production"}]));
    prod["azure"] = azure(APP_B);
    let p = policy(vec![
        deny("no-forks", json!({"pipeline_source": "merge_request_event"})),
        allow("deploy-dev", json!({"environment": {"present": false}})),
        prod,
        allow("tags", json!({"any": [{"ref_type": "tag"}, {"ref": {"glob": "release/*"}}]})),
        allow("not-main", json!({"not": {"ref": "main"}})),
    ]);
    let unprotected = claims_with(|c| c["ref_protected"] = json!("false"));
    let d = p.decide(&unprotected, NOW);
    assert_eq!(
        d.to_string(),
        "deny: no allow rule matched\n\
         rule no-forks: pipeline_source is push, expected merge_request_event\n\
         rule deploy-dev: environment is production, expected absent\n\
         rule deploy-prod: ref_protected is false, expected true\n\
         rule tags: no alternative of `any` holds: ref_type is branch, expected tag; ref is \
         main, expected a match for release/*\n\
         rule not-main: ref is main, which `not` excludes"
    );
    let d = p.decide(&claims(), NOW);
    assert_eq!(
        d.summary(),
        format!(
            "allow: rule deploy-prod grants client {APP_B} in tenant {TENANT} (scopes \
             https://management.azure.com/.default)"
        )
    );
    assert_eq!(d.lines()[2], "rule deploy-prod: matched");
    let fork = p.decide(&fork_pipeline(), NOW);
    assert_eq!(fork.summary(), "deny: deny rule no-forks matched");
    assert_eq!(fork.lines()[0], "rule no-forks: matched");
}

#[test]
fn explanations_show_absent_lists_and_awkward_values() {
    let weird = claims_with(|c| c["ref"] = json!("has space"));
    let p = policy(vec![allow("r", json!({"ref": ["main", ""]}))]);
    assert_eq!(
        p.decide(&weird, NOW).lines(),
        ["rule r: ref is \"has space\", expected one of main, \"\""]
    );
    let p = policy(vec![allow("g", json!({"groups_direct": "x"}))]);
    assert_eq!(
        p.decide(&claims(), NOW).lines(),
        ["rule g: groups_direct is [acme, acme/platform], expected x"]
    );
    let p = policy(vec![allow("j", json!({"job_config": "x"}))]);
    assert_eq!(p.decide(&claims(), NOW).lines(), ["rule j: job_config is absent, expected x"]);
}

// Audit.

#[test]
fn audit_events_carry_the_fields_and_never_the_token() {
    let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNlY3JldA";
    let p = policy(vec![allow("deploy", json!({"ref": "main"}))]);
    let c = claims();
    let d = p.decide(&c, NOW);
    let event = AuditEvent::new(&d, &c, token, NOW);
    let line = event.to_json();
    assert!(!line.contains(token));
    for part in token.split('.') {
        assert!(!line.contains(part), "token part {part} leaked");
    }
    assert!(!line.contains('\n'));
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["time"], json!(NOW));
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["rule"], "deploy");
    assert_eq!(v["issuer"], ISS);
    assert_eq!(v["subject"], "project_path:acme/payments:ref_type:branch:ref:main");
    assert_eq!(v["project_id"], "4242");
    assert_eq!(v["project_path"], "acme/payments");
    assert_eq!(v["pipeline_id"], "990001");
    assert_eq!(v["job_id"], "5550001");
    assert_eq!(v["ref"], "main");
    assert_eq!(v["sha"], "714a629c0b401fdce83e847fc9589983fc6f46bc");
    assert_eq!(v["environment"], "production");
    assert_eq!(v["user_login"], "ada");
    assert_eq!(v["jti"], "235b3a54-b797-45c7-ae9a-f72d7bc6ef5b");
    assert_eq!(v["token_sha256"], crate::token_fingerprint(token));
    assert_eq!(v["azure"]["tenant"], TENANT);
    assert_eq!(v["azure"]["client_id"], APP_A);
    assert_eq!(v["azure"]["scopes"], json!(["https://management.azure.com/.default"]));
    assert_eq!(v["explanation"], json!(["rule deploy: matched"]));
    assert!(v.get("user_email").is_none(), "no more personal data than asked for");

    let denied = policy(vec![allow("deploy", json!({"ref": "x"}))]).decide(&c, NOW);
    let v = AuditEvent::new(&denied, &c, token, NOW).as_json().clone();
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["rule"], Value::Null);
    assert_eq!(v["azure"], Value::Null);
}

#[test]
fn allow_events_join_the_job_the_rule_the_policy_the_credential_and_the_roles() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/monorepo.json");
    let bytes = std::fs::read(path).unwrap();
    let p = Policy::parse(&bytes).unwrap();
    let release = claims_with(|c| {
        c["project_path"] = json!("acme/platform");
        c["job_project_path"] = json!("acme/platform");
        c["ref"] = json!("feature/x");
        c["ref_protected"] = json!("false");
        c["sub"] = json!("project_path:acme/platform:ref_type:branch:ref:feature/x");
        let obj = c.as_object_mut().unwrap();
        for k in ["environment", "environment_protected", "deployment_tier", "environment_action"] {
            obj.remove(k);
        }
    });
    let d = p.decide(&release, NOW);
    assert_eq!(d.rule(), Some("release"), "{d}");
    let v = AuditEvent::new(&d, &release, "t.o.k", NOW).as_json().clone();
    // The policy document, by hash of its exact bytes.
    let sha = crate::text::hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
    assert_eq!(v["policy_sha256"], sha);
    assert_eq!(p.sha256(), sha);
    // The GitLab identity of the job.
    for (member, value) in [
        ("job_id", "5550001"),
        ("pipeline_id", "990001"),
        ("project_id", "4242"),
        ("sha", "714a629c0b401fdce83e847fc9589983fc6f46bc"),
        ("runner_environment", "gitlab-hosted"),
        ("jti", "235b3a54-b797-45c7-ae9a-f72d7bc6ef5b"),
    ] {
        assert_eq!(v[member], value, "{member}");
    }
    assert!(v["ci_config_ref_uri"].as_str().unwrap().contains("//.gitlab-ci.yml@"));
    // The federated credential Entra matches this job with, and what the identity may do.
    let azure = &v["azure"];
    assert_eq!(azure["principal_id"], "a6a6a6a6-0000-4000-8000-000000000006");
    assert_eq!(azure["federated_credential"]["name"], "release");
    assert_eq!(
        azure["federated_credential"]["claims_matching_expression"],
        "claims['sub'] matches 'project_path:acme/platform:ref_type:branch:ref:*' and \
         claims['project_id'] eq '4242'"
    );
    assert_eq!(
        azure["role_assignments"],
        json!([{"role": "AcrPush", "role_guid": "8311e382-0749-4cb8-b61a-304f252e45ec",
                "scope": "/subscriptions/6f1c3a5e-2d4b-4c8a-9e7f-1a2b3c4d5e6f/resourceGroups/rg-app/providers/Microsoft.ContainerRegistry/registries/acrapp"}])
    );
    // A project using the immutable subject relies on the project-id form of the credential.
    let immutable = claims_with(|c| {
        *c = serde_json::to_value(&release.raw).unwrap();
        c["sub"] = json!("project_id:4242:ref_type:branch:ref:feature/x");
    });
    let d = p.decide(&immutable, NOW);
    let credential = d.evidence.credential.unwrap();
    assert!(credential.expression.unwrap().contains("'project_id:4242:ref_type:branch:ref:*'"));
    // A changed byte is another policy.
    let mut edited = bytes.clone();
    edited.push(b'\n');
    assert_ne!(Policy::parse(&edited).unwrap().sha256(), sha);
}

#[test]
fn entra_answer_events_join_the_decision_and_entra_ids_without_secrets() {
    let p = policy(vec![allow("deploy", json!({"ref": "main"}))]);
    let c = claims();
    let decision = AuditEvent::new(&p.decide(&c, NOW), &c, "t.o.k", NOW);
    let request = vec![
        ("client-request-id".to_owned(), "6f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b9c".to_owned()),
        ("return-client-request-id".to_owned(), "true".to_owned()),
    ];
    // Entra refuses: its ids come from the error body.
    let body = json!({
        "error": "invalid_request",
        "error_description": "AADSTS700213: No matching federated identity record found.",
        "error_codes": [700213],
        "trace_id": "0a1b2c3d-trace", "correlation_id": "6f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b9c"
    })
    .to_string();
    let event = AuditEvent::entra_answer(&decision, &request, 400, &[], body.as_bytes(), NOW + 1);
    let v = event.as_json();
    assert_eq!(v["event"], "entra_answer");
    assert_eq!(v["time"], json!(NOW + 1));
    for member in ["rule", "token_sha256", "jti", "project_id", "job_id", "sha"] {
        assert_eq!(v[member], decision.as_json()[member], "{member}");
    }
    assert_eq!(v["client_id"], APP_A);
    assert_eq!(v["client_request_id"], "6f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b9c");
    assert_eq!(v["status"], 400);
    assert_eq!(v["outcome"], "entra-error");
    assert_eq!(v["error_codes"], json!([700213]));
    assert_eq!(v["trace_id"], "0a1b2c3d-trace");
    assert_eq!(v["correlation_id"], "6f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b9c");

    // Entra grants: the ids come from its headers; the access token is never in the event.
    let secret = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.c2VjcmV0.c2ln";
    let body =
        json!({"token_type": "Bearer", "expires_in": 3599, "access_token": secret}).to_string();
    let headers = vec![
        ("x-ms-request-id".to_owned(), "1b2c3d4e-request".to_owned()),
        ("Client-Request-Id".to_owned(), "6f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b9c".to_owned()),
    ];
    let event = AuditEvent::entra_answer(&decision, &request, 200, &headers, body.as_bytes(), NOW);
    let line = event.to_json();
    assert!(!line.contains(secret) && !line.contains("c2VjcmV0"), "{line}");
    let v = event.as_json();
    assert_eq!(v["outcome"], "access-token");
    assert_eq!(v["expires_at"], json!(NOW + 3599));
    assert_eq!(v["trace_id"], "1b2c3d4e-request");
    assert_eq!(v["correlation_id"], "6f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b9c");
    // The decision event read back from a log line joins the same way.
    let back = AuditEvent::from_json_line(&decision.to_json()).unwrap();
    let again = AuditEvent::entra_answer(&back, &request, 200, &headers, body.as_bytes(), NOW);
    assert_eq!(again, event);
    assert!(AuditEvent::from_json_line("[1]").is_none());
}

// Loading.

#[test]
fn errors_name_the_rule_the_field_and_the_problem() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "main"}, "azure": azure(APP_A), "same_projet": true}),
            "policy-unknown-field",
            "rule r, field `same_projet`: unknown field; did you mean `same_project`?",
        ),
        (
            json!({"name": "r", "effect": "permit", "when": {"ref": "main"}}),
            "policy-invalid-value",
            "rule r, field `effect`: \"permit\" is not valid; expected `allow` or `deny`",
        ),
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "main"}}),
            "policy-missing-field",
            "rule r, field `azure`: required field is missing; add it",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"projet_path": "acme/x"}}),
            "policy-claim-typo",
            "rule r, field `when.projet_path`: unknown claim `projet_path`; did you mean `project_path`?",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"ref": {"glob": "a***"}}}),
            "policy-glob",
            "rule r, field `when.ref.glob`: glob `a***` is invalid at character 2: three or more `*`",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"ref": {"globs": "a*"}}}),
            "policy-unknown-field",
            "rule r, field `when.ref.globs`: unknown field; did you mean `glob`?",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"ref_protected": "yes"}}),
            "policy-invalid-value",
            "rule r, field `when.ref_protected`: \"yes\" is not valid; expected true or false",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"project_id": "acme"}}),
            "policy-invalid-value",
            "rule r, field `when.project_id`: \"acme\" is not valid; expected a numeric id",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"project_id": -1}}),
            "policy-invalid-value",
            "expected a non-negative integer",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"project_path": true}}),
            "policy-wrong-type",
            "rule r, field `when.project_path`: expected a string, found a boolean",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {}}),
            "policy-invalid-value",
            "an empty condition would match every job",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"any": []}}),
            "policy-invalid-value",
            "rule r, field `when.any`: [] is not valid; expected at least one condition",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"ref": []}}),
            "policy-invalid-value",
            "an empty list matches nothing",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"ref": {"glob": "a", "equals": "b"}}}),
            "policy-invalid-value",
            "exactly one operator",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"ref": "x"}, "azure": azure(APP_A)}),
            "policy-invalid-value",
            "no Azure target on a deny rule",
        ),
        (
            json!({"name": "bad name", "effect": "deny", "when": {"ref": "x"}}),
            "policy-invalid-value",
            "rule rules[0], field `name`",
        ),
        (
            json!({"effect": "deny", "when": {"ref": "x"}}),
            "policy-missing-field",
            "rule rules[0], field `name`: required field is missing",
        ),
        // The `azure` block is checked by the Entra side's own builder, so `check` and `plan`
        // refuse exactly what the request builder would (issue 12: `Common`, a scope with a
        // space).
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "x"},
                   "azure": {"tenant": "common", "client_id": APP_A, "scopes": ["https://management.azure.com/.default"]}}),
            "policy-target",
            "rule r, field `azure.tenant`: tenant `common` cannot be used",
        ),
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "x"},
                   "azure": {"tenant": "Common", "client_id": APP_A, "scopes": ["https://management.azure.com/.default"]}}),
            "policy-target",
            "AADSTS9001023",
        ),
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "x"},
                   "azure": {"tenant": TENANT, "client_id": APP_A, "scopes": ["https://management.azure.com/.default https://vault.azure.net/.default"]}}),
            "policy-target",
            "rule r, field `azure.scopes`: scope `https://management.azure.com/.default https://vault.azure.net/.default` is empty or contains whitespace",
        ),
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "x"},
                   "azure": {"tenant": TENANT, "client_id": "my-app", "scopes": ["https://management.azure.com/.default"]}}),
            "policy-target",
            "rule r, field `azure.client_id`: client id `my-app` is not a GUID",
        ),
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "x"},
                   "azure": {"tenant": TENANT, "client_id": APP_A, "scopes": ["https://management.azure.com/user_impersonation"]}}),
            "policy-target",
            "does not end in `/.default`",
        ),
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "x"},
                   "azure": {"tenant": TENANT, "client_id": APP_A, "scopes": ["https://management.azure.com/.default", "https://vault.azure.net/.default"]}}),
            "policy-target",
            "AADSTS700022",
        ),
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "x"},
                   "azure": {"tenant": TENANT, "client_id": APP_A, "scopes": ["https://management.azure.com/.default"], "authority_host": "login.microsoftonline.de"}}),
            "policy-target",
            "rule r, field `azure.authority_host`: authority host `login.microsoftonline.de` is not a known Microsoft cloud",
        ),
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "x"}, "azure": azure(APP_A), "runner_environment": ["gitlab-hostd"]}),
            "policy-unknown-value",
            "rule r, field `runner_environment[0]`: GitLab never sends runner_environment gitlab-hostd; did you mean `gitlab-hosted`?",
        ),
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "x"}, "azure": azure(APP_A), "pipeline_source": "merge_request_events"}),
            "policy-unknown-value",
            "did you mean `merge_request_event`?",
        ),
        // Values are checked like names, from the claim table, in conditions too: a deny rule
        // on a misspelt pipeline source would silently deny nothing.
        (
            json!({"name": "r", "effect": "deny", "when": {"pipeline_source": ["merge_request_events"]}}),
            "policy-unknown-value",
            "rule r, field `when.pipeline_source`: GitLab never sends pipeline_source merge_request_events; did you mean `merge_request_event`?",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"ref_type": "branches"}}),
            "policy-unknown-value",
            "did you mean `branch`?",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"ref_type": "heads"}}),
            "policy-unknown-value",
            "GitLab never sends ref_type heads (GitLab's values: branch, tag;",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"deployment_tier": {"equals": "Production"}}}),
            "policy-unknown-value",
            "did you mean `production`?",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"deployment_tier": {"glob": "prod"}}}),
            "policy-unknown-value",
            "GitLab never sends deployment_tier matching prod",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"user_access_level": "maintaner"}}),
            "policy-unknown-value",
            "did you mean `maintainer`?",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"environment_action": "deploy"}}),
            "policy-unknown-value",
            "environment_action deploy (GitLab's values: start, prepare, stop, verify, access;",
        ),
        (
            json!({"name": "r", "effect": "deny", "when": {"runner_environment": "gitlab_hosted"}}),
            "policy-unknown-value",
            "did you mean `gitlab-hosted`?",
        ),
        // The RBAC members of the `azure` block.
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "x"},
                   "azure": {"tenant": TENANT, "client_id": APP_A, "roles": [{"role": "AcrPsh", "scope": "/subscriptions/6f1c3a5e-2d4b-4c8a-9e7f-1a2b3c4d5e6f"}]}}),
            "policy-role",
            "rule r: `azure.roles[0].role`: `AcrPsh` is not a built-in role; did you mean `AcrPush`?",
        ),
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "x"},
                   "azure": {"tenant": TENANT, "client_id": APP_A, "roles": [{"role": "Reader", "scope": "subscriptions/x"}]}}),
            "policy-role",
            "rule r: `azure.roles[0].scope`: scope `subscriptions/x` does not start with `/`",
        ),
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "x"},
                   "azure": {"tenant": TENANT, "client_id": APP_A, "principal_id": "my-sp"}}),
            "policy-invalid-value",
            "rule r, field `azure.principal_id`: \"my-sp\" is not valid; expected an object id",
        ),
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "x"},
                   "azure": {"tenant": TENANT, "client_id": APP_A, "groups": "g"}}),
            "policy-wrong-type",
            "rule r, field `azure.groups`: expected an array of group object ids",
        ),
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "x"},
                   "azure": {"tenant": TENANT, "client_id": APP_A, "authority_host": "login.microsoftonline.us", "scopes": ["https://management.azure.com/.default"]}}),
            "policy-target",
            "rule r, field `azure.scopes`: scope `https://management.azure.com/.default` is another cloud's Azure Resource Manager",
        ),
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "x"}, "azure": azure(APP_A), "max_token_age": 0}),
            "policy-invalid-value",
            "a positive number of seconds",
        ),
        (
            json!({"name": "r", "effect": "allow", "when": {"ref": "x"}, "azure": azure(APP_A), "same_project": "yes"}),
            "policy-wrong-type",
            "rule r, field `same_project`: expected true or false, found a string",
        ),
    ];
    for (rule, kind, message) in cases {
        let e = rule_err(rule.clone());
        assert_eq!(e.kind(), kind, "{rule}: {e}");
        assert!(e.to_string().contains(message), "{rule}:\n  got: {e}\n  want: {message}");
    }
}

#[test]
fn rules_of_one_app_agree_on_its_object_id() {
    let with = |id: &str| json!({"tenant": TENANT, "client_id": APP_A, "principal_id": id});
    let e = parse_err(json!({"rules": [
        {"name": "a", "effect": "allow", "when": {"ref": "x"}, "azure": with("a6a6a6a6-0000-4000-8000-000000000006")},
        {"name": "b", "effect": "allow", "when": {"ref": "y"}, "azure": with("b6b6b6b6-0000-4000-8000-000000000006")}
    ]}));
    assert_eq!(e.kind(), "policy-invalid-value");
    assert!(e.to_string().contains("rule b, field `azure.principal_id`"), "{e}");
    assert!(e.to_string().contains("the object id rule a gives the same app"), "{e}");
    // The same id in another case is the same id.
    let p = policy(vec![
        json!({"name": "a", "effect": "allow", "when": {"ref": "x"}, "azure": with("A6A6A6A6-0000-4000-8000-000000000006")}),
        json!({"name": "b", "effect": "allow", "when": {"ref": "y"}, "azure": with("a6a6a6a6-0000-4000-8000-000000000006")}),
    ]);
    assert_eq!(
        p.rules()[0].access().unwrap().principal_id(),
        Some("a6a6a6a6-0000-4000-8000-000000000006")
    );
}

#[test]
fn values_of_open_lists_pass_unless_they_look_like_a_typo() {
    // GitLab does not document every pipeline source: a new one is accepted.
    let p = policy(vec![deny("d", json!({"pipeline_source": "new_kind_of_source"}))]);
    assert_eq!(p.rules().len(), 1);
    // Globs on closed lists must match one of GitLab's values.
    let p = policy(vec![deny("d", json!({"deployment_tier": {"glob": "prod*"}}))]);
    assert_eq!(p.rules().len(), 1);
    let spec = crate::CLAIMS.iter().find(|c| c.name == "ref_type").unwrap();
    assert_eq!(spec.values, ["branch", "tag"]);
    assert!(spec.values_complete);
    let spec = crate::CLAIMS.iter().find(|c| c.name == "pipeline_source").unwrap();
    assert!(spec.values.contains(&"merge_request_event") && !spec.values_complete);
}

#[test]
fn document_level_errors() {
    assert_eq!(parse_err(json!({"rules": []})), PolicyError::NoRules);
    assert_eq!(
        parse_err(json!({"rule": []})).to_string(),
        "field `rule`: unknown field; did you mean `rules`?"
    );
    assert_eq!(parse_err(json!([])).kind(), "policy-wrong-type");
    let twice = json!({"rules": [deny("a", json!({"ref": "x"})), deny("a", json!({"ref": "y"}))]});
    assert_eq!(parse_err(twice), PolicyError::DuplicateRule { name: "a".into() });
    assert_eq!(
        Policy::parse(br#"{"rules": [], "rules": []}"#).unwrap_err(),
        PolicyError::DuplicateMember { name: "rules".into() }
    );
    assert_eq!(Policy::parse(b"{\"rules\": [").unwrap_err().kind(), "policy-json");
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert_eq!(Policy::parse(deep.as_bytes()).unwrap_err().kind(), "policy-json-too-deep");
    let big = vec![b' '; document::MAX_POLICY_BYTES + 1];
    assert_eq!(Policy::parse(&big).unwrap_err().kind(), "policy-too-large");
    let many: Vec<Value> =
        (0..=document::MAX_RULES).map(|i| deny(&format!("r{i}"), json!({"ref": "x"}))).collect();
    assert_eq!(parse_err(json!({"rules": many})).kind(), "policy-too-many-rules");
}

#[test]
fn the_explicit_form_reaches_any_claim_name() {
    let odd = claims_with(|c| {
        c["projet_path"] = json!("x");
        c["not"] = json!("y");
    });
    assert!(allows(json!({"claim": "projet_path", "equals": "x"}), &odd));
    assert!(allows(json!({"claim": "not", "one_of": ["y"]}), &odd));
    let e = rule_err(json!({"name": "r", "effect": "deny", "when": {"claim": "x", "globe": "*"}}));
    assert!(e.to_string().contains("did you mean `glob`?"), "{e}");
}

#[test]
fn lint_warns_about_unpinned_paths_and_unscoped_rules() {
    let p = policy(vec![
        allow("path-only", json!({"project_path": "acme/x"})),
        allow("pinned", json!({"project_path": "acme/x", "project_id": 1})),
        allow("ns", json!({"namespace_path": "acme"})),
        allow("anything", json!({"ref": "main"})),
        deny("deny-is-fine", json!({"ref": "x"})),
    ]);
    let kinds: Vec<String> = p.warnings().iter().map(|w| format!("{}:{w}", w.kind())).collect();
    assert_eq!(kinds.len(), 3, "{kinds:#?}");
    assert!(kinds[0]
        .starts_with("path-without-id:rule path-only: tests project_path without project_id"));
    assert!(
        kinds[1].starts_with("path-without-id:rule ns: tests namespace_path without namespace_id")
    );
    assert!(kinds[2].starts_with("unscoped:rule anything"));
}

// Shipped files.

fn example(name: &str) -> Policy {
    let path = format!("{}/examples/policies/{name}", env!("CARGO_MANIFEST_DIR"));
    Policy::parse(&std::fs::read(&path).unwrap()).unwrap()
}

#[test]
fn every_example_parses_and_explains_itself() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let p = Policy::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(doc["description"].is_string(), "{}: no description", path.display());
        for rule in p.rules() {
            assert!(
                rule.description().is_some(),
                "{}: rule {} undocumented",
                path.display(),
                rule.name()
            );
        }
        // The only warning the examples keep: the ACR ABAC-mode caveat of AcrPush, which a
        // policy cannot rule out (the registry's mode is not in it).
        let kinds: Vec<&str> = p.warnings().iter().map(PolicyWarning::kind).collect();
        assert!(
            kinds.iter().all(|k| *k == "acr-abac-mode"),
            "{}: {:?}",
            path.display(),
            p.warnings()
        );
        count += 1;
    }
    assert!(count >= 3);
    let readme = std::fs::read_to_string(format!("{dir}/README.md")).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".json") {
            assert!(readme.contains(&name), "README does not explain {name}");
        }
    }
}

#[test]
fn monorepo_example_decisions() {
    let p = example("monorepo.json");
    let tag = |c: &mut Value| {
        c["ref_type"] = json!("tag");
        c["ref"] = json!("v1.4.0");
        c["sub"] = json!("project_path:acme/platform:ref_type:tag:ref:v1.4.0");
    };
    let platform = |c: &mut Value| {
        c["project_path"] = json!("acme/platform");
        c["job_project_path"] = json!("acme/platform");
    };
    let prod = claims_with(|c| {
        platform(c);
        tag(c);
    });
    let d = p.decide(&prod, NOW);
    assert_eq!(d.rule(), Some("deploy-prod"), "{d}");
    assert_eq!(d.target().unwrap().client_id(), "11111111-0000-0000-0000-000000000003");

    let self_hosted = claims_with(|c| {
        platform(c);
        tag(c);
        c["runner_environment"] = json!("self-hosted");
    });
    assert_eq!(
        p.decide(&self_hosted, NOW).verdict,
        Verdict::Deny { rule: Some("no-self-hosted-production".into()) }
    );

    let stale = p.decide(&prod, NOW + 2000);
    assert!(!stale.is_allow());
    assert!(stale.to_string().contains("rule deploy-prod: token age is 2010 s"), "{stale}");

    let dev = claims_with(|c| {
        platform(c);
        c["environment"] = json!("dev");
        c["ref"] = json!("feature/x");
        c["ref_protected"] = json!("false");
    });
    assert_eq!(p.decide(&dev, NOW).rule(), Some("deploy-dev"));

    let artifacts = claims_with(|c| {
        platform(c);
        let obj = c.as_object_mut().unwrap();
        for k in ["environment", "environment_protected", "deployment_tier", "environment_action"] {
            obj.remove(k);
        }
    });
    assert_eq!(p.decide(&artifacts, NOW).rule(), Some("publish-artifacts"));

    let mr = claims_with(|c| {
        platform(c);
        c["pipeline_source"] = json!("merge_request_event");
        c["environment"] = json!("dev");
    });
    assert_eq!(p.decide(&mr, NOW).rule(), Some("no-merge-request-pipelines"));

    // Another project with the same environment gets nothing.
    assert_eq!(p.decide(&claims(), NOW).verdict, Verdict::Deny { rule: None });
}

#[test]
fn group_and_single_project_example_decisions() {
    let g = example("group-wide.json");
    let no_env = |c: &mut Value| {
        let obj = c.as_object_mut().unwrap();
        for k in ["environment", "environment_protected", "deployment_tier", "environment_action"] {
            obj.remove(k);
        }
    };
    assert_eq!(g.decide(&claims_with(no_env), NOW).rule(), Some("read-artifacts"));
    let archived = claims_with(|c| {
        no_env(c);
        c["project_path"] = json!("acme/archive/old");
        c["job_project_path"] = json!("acme/archive/old");
    });
    assert_eq!(g.decide(&archived, NOW).rule(), Some("deny-archive"));
    let other_namespace = claims_with(|c| {
        no_env(c);
        c["namespace_id"] = json!("73");
    });
    assert!(!g.decide(&other_namespace, NOW).is_allow());
    assert!(!g.decide(&claims(), NOW).is_allow(), "jobs in an environment are excluded");

    let s = example("single-project.json");
    assert_eq!(s.decide(&claims(), NOW).rule(), Some("deploy-main"));
    assert!(!s.decide(&fork_pipeline(), NOW).is_allow());
}

#[test]
fn schema_is_json_and_names_every_field_the_parser_accepts() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/policy.schema.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let keys = |v: &Value| -> BTreeSet<String> {
        v["properties"].as_object().unwrap().keys().cloned().collect()
    };
    let set = |fields: &[&str]| fields.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    assert_eq!(keys(&schema), set(DOCUMENT_FIELDS));
    assert_eq!(keys(&schema["$defs"]["rule"]), set(RULE_FIELDS));
    assert_eq!(keys(&schema["$defs"]["azure"]), set(AZURE_FIELDS));
    let operators = schema["$defs"]["matcher"]["oneOf"][2].clone();
    assert_eq!(keys(&operators), set(OPERATORS));
    let condition = keys(&schema["$defs"]["condition"]);
    for word in ["all", "any", "not", "claim"].iter().chain(OPERATORS) {
        assert!(condition.contains(*word), "condition lacks {word}");
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let seed =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/monorepo.json"))
            .unwrap();
    let c = claims();
    let alphabet = b"{}[]\":,*?/\\ 0129aetnrf-_.\x00\xff";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut loaded = 0;
    for _ in 0..4000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bytes = seed.clone();
        let len = u64::try_from(bytes.len()).unwrap();
        for k in 0..(1 + state % 3) {
            let pos = usize::try_from((state >> (k * 7)) % len).unwrap();
            bytes[pos] = alphabet[usize::try_from(state >> 40).unwrap() % alphabet.len()];
        }
        if let Ok(p) = Policy::parse(&bytes) {
            let _ = p.decide(&c, NOW).to_string();
            let _ = plan(&p, &PlanOptions::new(ISS)).map(|plan| plan.to_json());
            loaded += 1;
        }
    }
    assert!(loaded > 0, "some mutations only touch descriptions and must still load");
}
