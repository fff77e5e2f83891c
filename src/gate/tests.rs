use ring::rand::SystemRandom;
use serde_json::{json, Value};
use testkit::{gitlab_claims, mint, Key, RsaKey, AUDIENCE, CLIENT_ID, TENANT};

use super::*;
use crate::entra::{AssertionAlgorithm, CertificateCredential};
use crate::policy::Policy;
use crate::VerifierConfig;

const ISS: &str = "https://gitlab.example.com";
const NOW: u64 = 1_760_000_000;
const DEMO: &str = include_str!("../../examples/policies/demo.json");

fn verifier() -> VerifierConfig {
    VerifierConfig::builder(ISS).audience(AUDIENCE).build().unwrap()
}

fn key() -> RsaKey {
    RsaKey::fixture_2048()
}

fn jwks(key: &RsaKey) -> Jwks {
    Jwks::parse(testkit::jwks(&[key.jwk()]).as_bytes()).unwrap()
}

fn token_with(edit: impl FnOnce(&mut Value)) -> String {
    let mut claims = gitlab_claims(ISS, NOW - 10);
    edit(&mut claims);
    mint(&Key::Rsa(&key(), "RS256"), &claims)
}

fn token() -> String {
    token_with(|_| {})
}

fn policy_gate() -> Gate {
    let config = GateConfig::builder(verifier())
        .policy(Policy::parse(DEMO.as_bytes()).unwrap())
        .build()
        .unwrap();
    let mut gate = Gate::new(config);
    gate.install_jwks(jwks(&key()));
    gate
}

fn target() -> AzureTarget {
    AzureTarget::builder(TENANT, CLIENT_ID).build().unwrap()
}

fn form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap()
}

#[test]
fn the_whole_sequence_admit_request_finish() {
    let mut gate = policy_gate();
    let token = token();
    let admission = gate.admit(&token, NOW).unwrap();
    assert!(admission.fresh);
    assert_eq!(admission.target().unwrap().client_id(), CLIENT_ID);
    let verified = admission.verified.as_ref().unwrap();
    assert_eq!(verified.claims.gitlab.project_path.as_deref(), Some("acme/payments"));
    assert_eq!(admission.decided.decision().unwrap().rule(), Some("deploy-production"));

    let request = gate.request(&admission, &token, NOW, &SystemRandom::new()).unwrap();
    assert_eq!(
        request.url,
        format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token")
    );
    let body = form(&request.body);
    assert_eq!(field(&body, "client_id"), CLIENT_ID);
    assert_eq!(field(&body, "client_assertion"), token);
    let header = |name: &str| request.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let id = header("client-request-id").unwrap();
    assert!(crate::text::ident::is_guid(id), "a fresh correlation id per request: {id}");
    assert_eq!(header("return-client-request-id").map(String::as_str), Some("true"));

    let answer = br#"{"token_type":"Bearer","expires_in":3599,"access_token":"eyJ0eXAi.x.y"}"#;
    let access = gate.finish(id, 200, &[], answer, NOW).unwrap();
    assert_eq!(access.token.secret(), "eyJ0eXAi.x.y");
    assert_eq!(access.expires_at, NOW + 3599);
}

#[test]
fn each_entra_answer_is_an_audit_event_joined_to_its_decision() {
    let mut gate = policy_gate();
    let token = token();
    let admission = gate.admit(&token, NOW).unwrap();
    let request = gate.request(&admission, &token, NOW, &SystemRandom::new()).unwrap();
    let id = request.request_id().unwrap().to_owned();
    let decision: Value = serde_json::from_str(&gate.take_audit()[0]).unwrap();

    let refused = br#"{"error":"invalid_client","error_description":"AADSTS700213: No matching federated identity record found","error_codes":[700213],"trace_id":"t-1","correlation_id":"c-1"}"#;
    gate.finish(&id, 400, &[], refused, NOW + 1).unwrap_err();
    let events = gate.take_audit();
    assert_eq!(events.len(), 1, "{events:?}");
    let event: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(event["event"], "entra_answer");
    for member in ["rule", "token_sha256", "jti", "project_id", "job_id", "sha"] {
        assert_eq!(event[member], decision[member], "{member}");
    }
    assert_eq!(event["client_id"], CLIENT_ID);
    assert_eq!(event["client_request_id"], id.as_str());
    assert_eq!(event["outcome"], "entra-error");
    assert_eq!(event["error_codes"], json!([700213]));
    assert_eq!((&event["trace_id"], &event["correlation_id"]), (&"t-1".into(), &"c-1".into()));
    assert!(!events[0].contains(&token), "never the token");

    // A retry sends the same request: its answer joins the decision too. The access token is
    // never in the event. An unknown id is recorded without the decision.
    let granted =
        br#"{"token_type":"Bearer","expires_in":3599,"access_token":"eyJ0eXAi.c2VjcmV0.y"}"#;
    gate.finish(&id, 200, &[], granted, NOW + 2).unwrap();
    let event: Value = serde_json::from_str(&gate.take_audit()[0]).unwrap();
    assert_eq!(event["outcome"], "access-token");
    assert_eq!(event["rule"], decision["rule"]);
    assert_eq!(event["client_request_id"], id.as_str());
    assert!(!event.to_string().contains("c2VjcmV0"));
    gate.finish("3c2a1e44-0000-4000-8000-000000000000", 200, &[], granted, NOW).unwrap();
    let event: Value = serde_json::from_str(&gate.take_audit()[0]).unwrap();
    assert_eq!((&event["rule"], &event["jti"]), (&Value::Null, &Value::Null));
    assert_eq!(event["client_request_id"], "3c2a1e44-0000-4000-8000-000000000000");

    // Without audit, nothing is queued or remembered.
    gate.set_audit_enabled(false);
    let request = gate.request(&admission, &token, NOW, &SystemRandom::new()).unwrap();
    gate.finish(request.request_id().unwrap(), 200, &[], granted, NOW).unwrap();
    assert!(gate.take_audit().is_empty());
}

#[test]
fn one_full_audit_event_per_decision_and_a_count_of_the_reuses() {
    let mut gate = policy_gate();
    let token = token();
    for i in 0..5 {
        let admission = gate.admit(&token, NOW + i).unwrap();
        assert_eq!(admission.fresh, i == 0);
    }
    let events = gate.take_audit();
    assert_eq!(events.len(), 1, "{events:?}");
    let event: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(event["decision"], "allow");
    assert_eq!(event["rule"], "deploy-production");
    assert_eq!(event["token_sha256"], crate::token_fingerprint(&token));
    assert!(!events[0].contains(&token), "the audit event never holds the token");
    gate.summarize(NOW + 10);
    let summaries = gate.take_audit();
    assert_eq!(summaries.len(), 1);
    let summary: Value = serde_json::from_str(&summaries[0]).unwrap();
    assert_eq!(summary["event"], "decision_reused");
    assert_eq!(summary["requests"], 4);
    assert_eq!(summary["first_request"], NOW + 1);
    assert_eq!(summary["last_request"], NOW + 4);
    // Counted once: the next summary has nothing new.
    gate.summarize(NOW + 20);
    assert!(gate.take_audit().is_empty());
}

#[test]
fn every_request_mode_logs_each_request_in_full_and_counts_nothing() {
    let mut gate = policy_gate();
    gate.set_audit_every_request(true);
    let token = token();
    for i in 0..3 {
        gate.admit(&token, NOW + i).unwrap();
    }
    assert_eq!(gate.take_audit().len(), 3);
    gate.summarize(NOW + 10);
    assert!(gate.take_audit().is_empty());
}

#[test]
fn a_disabled_audit_queues_nothing() {
    let mut gate = policy_gate();
    gate.set_audit_enabled(false);
    let token = token();
    gate.admit(&token, NOW).unwrap();
    gate.admit(&token, NOW + 1).unwrap();
    gate.summarize(NOW + 2);
    assert!(gate.take_audit().is_empty());
}

#[test]
fn a_denied_job_is_a_typed_failure_with_its_decision_and_audit_event() {
    let mut gate = policy_gate();
    let token = token_with(|c| c["pipeline_source"] = json!("merge_request_event"));
    let failure = gate.admit(&token, NOW).unwrap_err();
    assert_eq!(failure.kind(), "policy-denied");
    assert_eq!(failure.category(), Category::Denied);
    assert_eq!(failure.http_status(), 403);
    assert!(!failure.retryable());
    assert!(!failure.refetch_jwks());
    let Failure::Denied(decided) = &failure else { panic!("{failure:?}") };
    assert_eq!(decided.decision().unwrap().rule(), Some("no-merge-requests"));
    assert!(failure.hint().unwrap().contains("rule no-merge-requests: matched"));
    let events = gate.take_audit();
    assert_eq!(events.len(), 1);
    assert!(events[0].contains("\"decision\":\"deny\""), "{}", events[0]);
    // The deny is kept and reused like an allow.
    assert!(matches!(gate.admit(&token, NOW + 1), Err(Failure::Denied(_))));
    assert!(gate.take_audit().is_empty());
}

#[test]
fn without_keys_the_gate_asks_for_them() {
    let config = GateConfig::builder(verifier()).target(target()).build().unwrap();
    let mut gate = Gate::new(config);
    assert!(!gate.ready());
    let failure = gate.admit(&token(), NOW).unwrap_err();
    assert_eq!(failure, Failure::NoKeys);
    assert!(failure.refetch_jwks());
    assert_eq!(failure.http_status(), 503);
    gate.install_jwks(jwks(&key()));
    assert!(gate.ready());
    assert!(gate.admit(&token(), NOW).is_ok());
}

#[test]
fn an_unknown_kid_asks_for_a_refetch_and_new_keys_forget_old_decisions() {
    let rotated = RsaKey::fixture_2048_rotated();
    let mut gate = policy_gate();
    let old = token();
    gate.admit(&old, NOW).unwrap();
    assert_eq!(gate.decisions_kept(), 1);
    let new = mint(&Key::Rsa(&rotated, "RS256"), &gitlab_claims(ISS, NOW - 10));
    let failure = gate.admit(&new, NOW).unwrap_err();
    assert_eq!(failure.kind(), "unknown-kid");
    assert!(failure.refetch_jwks());
    assert_eq!(failure.http_status(), 401);
    gate.install_jwks(Jwks::parse(testkit::jwks(&[rotated.jwk()]).as_bytes()).unwrap());
    assert_eq!(gate.decisions_kept(), 0);
    assert!(gate.admit(&new, NOW).unwrap().fresh);
    assert_eq!(gate.admit(&old, NOW).unwrap_err().kind(), "unknown-kid");
}

#[test]
fn refused_tokens_are_token_failures_with_401() {
    let mut gate = policy_gate();
    let expired = token_with(|c| c["exp"] = json!(NOW - 120));
    let failure = gate.admit(&expired, NOW).unwrap_err();
    assert_eq!(failure.kind(), "expired");
    assert_eq!(failure.category(), Category::Token);
    assert_eq!(failure.http_status(), 401);
    let wrong_aud = token_with(|c| c["aud"] = json!("https://gitlab.example.com"));
    assert_eq!(gate.admit(&wrong_aud, NOW).unwrap_err().kind(), "audience-mismatch");
}

#[test]
fn a_decision_stands_only_until_the_smallest_max_token_age() {
    let policy = json!({"rules": [{
        "name": "fresh", "effect": "allow", "max_token_age": 60,
        "when": {"project_id": "4242"},
        "azure": {"tenant": TENANT, "client_id": CLIENT_ID, "scopes": ["https://management.azure.com/.default"]}
    }]});
    let config = GateConfig::builder(verifier())
        .policy(Policy::parse(policy.to_string().as_bytes()).unwrap())
        .build()
        .unwrap();
    let mut gate = Gate::new(config);
    gate.install_jwks(jwks(&key()));
    let token = token(); // iat = NOW - 10
    assert!(gate.admit(&token, NOW).unwrap().fresh);
    assert!(!gate.admit(&token, NOW + 50).unwrap().fresh);
    // iat + 60 has passed: decided again, and now too old.
    assert_eq!(gate.admit(&token, NOW + 51).unwrap_err().kind(), "policy-denied");
}

#[test]
fn a_fixed_target_without_policy_has_no_decision_and_no_audit() {
    let config = GateConfig::builder(verifier()).target(target()).build().unwrap();
    let mut gate = Gate::new(config);
    gate.install_jwks(jwks(&key()));
    let admission = gate.admit(&token(), NOW).unwrap();
    assert!(admission.decided.decision().is_none());
    assert_eq!(admission.target(), Some(&target()));
    assert!(gate.take_audit().is_empty());
}

#[test]
fn an_unverified_gate_only_forwards_to_its_one_target() {
    let mut gate = Gate::new(GateConfig::unverified(target()).build().unwrap());
    assert!(gate.ready());
    let admission = gate.admit("not even a token", NOW).unwrap();
    assert!(admission.verified.is_none());
    // Entra would refuse it anyway; the request builder refuses its shape first.
    let failure =
        gate.request(&admission, "not even a token", NOW, &SystemRandom::new()).unwrap_err();
    assert_eq!(failure.kind(), "assertion-invalid-character");
    assert_eq!(failure.category(), Category::Request);
}

#[test]
fn configurations_that_cannot_work_are_refused_at_build() {
    let policy = || Policy::parse(DEMO.as_bytes()).unwrap();
    let cases = [
        (GateConfig::builder(verifier()).build().unwrap_err(), "no-target"),
        (
            GateConfig::builder(verifier()).policy(policy()).target(target()).build().unwrap_err(),
            "policy-and-target",
        ),
        (
            GateConfig::unverified(target()).policy(policy()).build().unwrap_err(),
            "policy-and-target",
        ),
        (
            GateConfig::unverified(target())
                .credential(Credential::Certificate(Arc::new(certificate())))
                .build()
                .unwrap_err(),
            "unverified-credential",
        ),
        (
            GateConfig::builder(verifier())
                .policy(policy())
                .dangerous()
                .authority_url("http://gitlab.example.com")
                .build()
                .unwrap_err(),
            "invalid-authority-url",
        ),
    ];
    for (error, kind) in cases {
        assert_eq!(error.kind(), kind, "{error}");
    }
}

#[test]
fn the_authority_override_reaches_every_policy_target() {
    let config = GateConfig::builder(verifier())
        .policy(Policy::parse(DEMO.as_bytes()).unwrap())
        .dangerous()
        .authority_url("http://127.0.0.1:8443/")
        .build()
        .unwrap();
    let mut gate = Gate::new(config);
    gate.install_jwks(jwks(&key()));
    let token = token();
    let admission = gate.admit(&token, NOW).unwrap();
    let request = gate.request(&admission, &token, NOW, &SystemRandom::new()).unwrap();
    assert_eq!(request.url, format!("http://127.0.0.1:8443/{TENANT}/oauth2/v2.0/token"));
    // The audit event names the target as the policy grants it.
    assert!(gate.take_audit()[0].contains(CLIENT_ID));
}

#[test]
fn an_authority_host_sends_every_target_to_that_cloud_and_a_url_overrides_it() {
    // The demo policy without its explicit public-cloud scopes: a sovereign target refuses them.
    let mut document: serde_json::Value = serde_json::from_str(DEMO).unwrap();
    for rule in document["rules"].as_array_mut().unwrap() {
        if let Some(azure) = rule.get_mut("azure").and_then(serde_json::Value::as_object_mut) {
            azure.remove("scopes");
        }
    }
    let policy = Policy::parse(document.to_string().as_bytes()).unwrap();
    let build = move |edit: fn(GateConfigBuilder) -> GateConfigBuilder| {
        edit(GateConfig::builder(verifier()).policy(policy.clone())).build()
    };
    let mut gate =
        Gate::new(build(|b| b.authority_host("https://login.microsoftonline.us/")).unwrap());
    gate.install_jwks(jwks(&key()));
    let token = token();
    let admission = gate.admit(&token, NOW).unwrap();
    let request = gate.request(&admission, &token, NOW, &SystemRandom::new()).unwrap();
    assert_eq!(request.url, format!("https://login.microsoftonline.us/{TENANT}/oauth2/v2.0/token"));
    // The admission carries the target as sent.
    assert_eq!(admission.target().unwrap().authority_host(), Some("login.microsoftonline.us"));
    assert!(gate.take_audit()[0].contains(CLIENT_ID));

    let public_scope = GateConfig::builder(verifier())
        .policy(Policy::parse(DEMO.as_bytes()).unwrap())
        .authority_host("login.microsoftonline.us")
        .build()
        .unwrap_err();
    assert_eq!(public_scope.kind(), "scope-of-another-cloud", "{public_scope}");
    let unknown = build(|b| b.authority_host("login.microsoftonline.de")).unwrap_err();
    assert_eq!(unknown.kind(), "unknown-authority-host", "{unknown}");

    let both = build(|b| {
        b.authority_host("login.microsoftonline.us").dangerous().authority_url("http://127.0.0.1:9")
    });
    let mut gate = Gate::new(both.unwrap());
    gate.install_jwks(jwks(&key()));
    let admission = gate.admit(&token, NOW).unwrap();
    let request = gate.request(&admission, &token, NOW, &SystemRandom::new()).unwrap();
    assert_eq!(request.url, format!("http://127.0.0.1:9/{TENANT}/oauth2/v2.0/token"));
}

fn certificate() -> CertificateCredential {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/entra/testdata/");
    let read = |f: &str| std::fs::read_to_string(format!("{dir}{f}")).unwrap();
    CertificateCredential::from_pem(&read("rsa-2048.key.pem"), &read("rsa-2048.cert.pem"))
        .unwrap()
        .algorithm(AssertionAlgorithm::Ps256)
}

#[test]
fn a_certificate_assertion_is_signed_once_and_reused_while_valid() {
    let certificate = certificate();
    let config = GateConfig::builder(verifier())
        .target(target())
        .credential(Credential::Certificate(Arc::new(certificate)))
        .build()
        .unwrap();
    let mut gate = Gate::new(config);
    gate.install_jwks(jwks(&key()));
    let token = token();
    let admission = gate.admit(&token, NOW).unwrap();
    let rng = SystemRandom::new();
    let first = gate.request(&admission, &token, NOW, &rng).unwrap();
    let assertion = field(&form(&first.body), "client_assertion").to_owned();
    assert_ne!(assertion, token, "the assertion is the gate's own, not the job's token");
    assert!(!first.body.contains(&token));
    let again = gate.request(&admission, &token, NOW + 200, &rng).unwrap();
    assert_eq!(field(&form(&again.body), "client_assertion"), assertion);
    // 300 s lifetime, reused until 60 s before it ends.
    let renewed = gate.request(&admission, &token, NOW + 240, &rng).unwrap();
    assert_ne!(field(&form(&renewed.body), "client_assertion"), assertion);
}

#[test]
fn entra_failures_say_whether_and_when_to_retry() {
    let mut gate = policy_gate();
    let throttled =
        gate.finish("", 429, &[("Retry-After".to_owned(), "7".to_owned())], b"", NOW).unwrap_err();
    assert!(throttled.retryable());
    assert_eq!(throttled.retry_after(), Some(7));
    assert_eq!(throttled.http_status(), 503);
    let refused = gate
        .finish(
            "",
            400,
            &[],
            br#"{"error":"invalid_client","error_description":"AADSTS700213: No matching federated identity record found","error_codes":[700213]}"#,
            NOW,
        )
        .unwrap_err();
    assert!(!refused.retryable());
    assert_eq!(refused.http_status(), 403);
    assert_eq!(refused.entra_response().unwrap().error_codes, vec![700_213]);
    assert!(refused.hint().unwrap().contains("subject"), "{:?}", refused.hint());
    assert!(
        !refused.to_string().contains(&refused.hint().unwrap()),
        "the hint is not repeated in the message: {refused}"
    );
    assert!(refused.to_string().contains("AADSTS700213"), "{refused}");
    let html =
        gate.finish("", 502, &[], b"<html><title>Bad gateway</title></html>", NOW).unwrap_err();
    assert_eq!(html.http_status(), 502);
}

#[test]
fn the_azure_key_is_per_job_and_target() {
    let mut gate = policy_gate();
    let a = gate.admit(&token(), NOW).unwrap();
    let b = gate.admit(&token_with(|c| c["job_id"] = json!("5550002")), NOW).unwrap();
    let a2 = gate.admit(&token_with(|c| c["jti"] = json!("another")), NOW).unwrap();
    assert_ne!(a.decided.azure_key(), b.decided.azure_key());
    assert_eq!(a.decided.azure_key(), a2.decided.azure_key(), "same job, same target");
}

#[test]
fn failures_never_carry_the_token() {
    let mut gate = policy_gate();
    let token = token_with(|c| c["exp"] = json!(NOW - 120));
    let failure = gate.admit(&token, NOW).unwrap_err();
    for text in [failure.to_string(), format!("{failure:?}"), failure.hint().unwrap_or_default()] {
        assert!(!text.contains(&token));
    }
}

/// A signature backend that leaves every check to ring and counts them.
#[derive(Debug, Default)]
struct CountingBackend(std::sync::atomic::AtomicUsize);

impl crate::offload::SignatureBackend for CountingBackend {
    fn verify(&self, _: &crate::offload::SignatureCheck<'_>) -> crate::offload::Offloaded {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::offload::Offloaded::Unsupported
    }
}

/// Issue 16, "forged `kid`s flush the caches": a token naming an unknown key makes a host
/// refetch, and the keys it installs are mostly the same. What an unchanged key (same `kid`,
/// same key material) vouched for stays: the verified token is not checked again and its
/// decision is reused. What a changed or withdrawn key vouched for goes.
#[test]
fn issue_16_new_keys_keep_what_unchanged_keys_vouched_for() {
    let checks = Arc::new(CountingBackend::default());
    let config = GateConfig::builder(verifier())
        .policy(Policy::parse(DEMO.as_bytes()).unwrap())
        .dangerous()
        .signature_backend(checks.clone())
        .build()
        .unwrap();
    let mut gate = Gate::new(config);
    gate.install_jwks(jwks(&key()));
    let token = token();
    assert!(gate.admit(&token, NOW).unwrap().fresh);
    let checked = || checks.0.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(checked(), 1);

    // The same key, and one more: everything stays.
    let rotated = RsaKey::fixture_2048_rotated();
    gate.install_jwks(
        Jwks::parse(testkit::jwks(&[key().jwk(), rotated.jwk()]).as_bytes()).unwrap(),
    );
    assert_eq!(gate.decisions_kept(), 1);
    assert!(!gate.admit(&token, NOW + 1).unwrap().fresh, "the decision is reused");
    assert_eq!(checked(), 1, "the verification is reused");

    // Another key under the same kid: nothing the old material vouched for stays.
    let impostor = RsaKey::fixture_2048_rotated().with_kid(key().kid());
    gate.install_jwks(Jwks::parse(testkit::jwks(&[impostor.jwk()]).as_bytes()).unwrap());
    assert_eq!(gate.decisions_kept(), 0);
    assert_eq!(gate.admit(&token, NOW + 2).unwrap_err().kind(), "bad-signature");
    assert_eq!(checked(), 2, "verified again, against the new material");
}

fn gate_with_policy(policy: &Value) -> GateConfig {
    GateConfig::builder(verifier())
        .policy(Policy::parse(policy.to_string().as_bytes()).unwrap())
        .build()
        .unwrap()
}

/// A policy that allows the default job only from the `release` branch: it denies `main`.
fn release_only() -> Value {
    let mut policy: Value = serde_json::from_str(DEMO).unwrap();
    policy["rules"][1]["when"]["ref"] = json!("release");
    policy
}

/// Issue 17, live policy changes: a decision made under the old policy is never served again,
/// whichever way the new policy goes.
#[test]
fn issue_17_a_new_policy_forgets_every_decision_made_under_the_old_one() {
    let mut gate = policy_gate();
    let token = token();
    assert!(gate.admit(&token, NOW).unwrap().fresh);
    assert!(!gate.admit(&token, NOW + 1).unwrap().fresh, "kept under the first policy");

    assert!(gate.reconfigure(gate_with_policy(&release_only()), NOW + 2));
    assert_eq!(gate.decisions_kept(), 0);
    let failure = gate.admit(&token, NOW + 2).unwrap_err();
    assert_eq!(failure.kind(), "policy-denied", "decided again, under the new policy");

    let demo: Value = serde_json::from_str(DEMO).unwrap();
    assert!(gate.reconfigure(gate_with_policy(&demo), NOW + 3));
    let admission = gate.admit(&token, NOW + 3).unwrap();
    assert!(admission.fresh, "and back: the deny is not kept either");
}

#[test]
fn issue_17_a_new_policy_keeps_the_keys_and_verified_tokens_of_unchanged_verifier_settings() {
    let checks = Arc::new(CountingBackend::default());
    let mut gate = policy_gate();
    let token = token();
    gate.admit(&token, NOW).unwrap();
    assert_eq!(gate.verifier.as_ref().unwrap().cached(), 1);

    let config = GateConfig::builder(verifier())
        .policy(Policy::parse(release_only().to_string().as_bytes()).unwrap())
        .dangerous()
        .signature_backend(checks.clone())
        .build()
        .unwrap();
    assert!(gate.reconfigure(config, NOW + 1), "the keys stay");
    assert!(gate.ready());
    assert_eq!(gate.verifier.as_ref().unwrap().cached(), 1, "so do the verified tokens");
    assert_eq!(gate.admit(&token, NOW + 1).unwrap_err().kind(), "policy-denied");
    let checked = || checks.0.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(checked(), 0, "the cached verification answered");
    let other = token_with(|c| c["job_id"] = json!("5550002"));
    gate.admit(&other, NOW + 1).unwrap_err();
    assert_eq!(checked(), 1, "a new token goes to the new signature backend");
}

#[test]
fn issue_17_other_verifier_settings_drop_the_keys_until_new_ones_are_installed() {
    let mut gate = policy_gate();
    let token = token();
    gate.admit(&token, NOW).unwrap();
    let other_audience = VerifierConfig::builder(ISS).audience("https://other").build().unwrap();
    let config = GateConfig::builder(other_audience)
        .policy(Policy::parse(DEMO.as_bytes()).unwrap())
        .build()
        .unwrap();
    assert!(!gate.reconfigure(config, NOW + 1), "the keys go");
    assert!(!gate.ready());
    assert_eq!(gate.admit(&token, NOW + 1).unwrap_err(), Failure::NoKeys);
    gate.install_jwks(jwks(&key()));
    assert_eq!(gate.admit(&token, NOW + 1).unwrap_err().kind(), "audience-mismatch");
}

#[test]
fn issue_17_a_new_policy_summarizes_the_reuses_of_the_decisions_it_forgets() {
    let mut gate = policy_gate();
    let token = token();
    for i in 0..3 {
        gate.admit(&token, NOW + i).unwrap();
    }
    assert_eq!(gate.take_audit().len(), 1, "the decision's full event");
    gate.reconfigure(gate_with_policy(&release_only()), NOW + 5);
    let lines = gate.take_audit();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let summary: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(summary["event"], "decision_reused");
    assert_eq!(summary["rule"], "deploy-production");
    assert_eq!(summary["requests"], 2);
    assert_eq!(summary["time"], NOW + 5);
}
