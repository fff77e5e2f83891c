//! The gate with broker credentials: per-rule credentials, the broker audience rule, the
//! managed identity's sans-I/O steps, assertion vending, and that no secret is ever printed.

use std::sync::Arc;

use ring::rand::SystemRandom;
use serde_json::{json, Value};
use testkit::{gitlab_claims, mint, Key, RsaKey, CLIENT_ID, TENANT};

use super::*;
use crate::broker::vend::{self, check_scope, Explain};
use crate::broker::{
    BrokerConfig, BrokerIssuer, ConfigMode, IdentityEndpoint, KeyUse, Secret, VendRequest,
};
use crate::entra::{AssertionAlgorithm, CertificateCredential};
use crate::policy::Policy;
use crate::VerifierConfig;

const ISS: &str = "https://gitlab.example.com";
const BROKER: &str = "https://broker.example.com";
const NOW: u64 = 1_760_000_000;
const UAMI_CLIENT: &str = "0b9a3c6e-8f1d-4e2a-9c7b-5d4e3f2a1b0c";
const UAMI_PRINCIPAL: &str = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
const OTHER_APP: &str = "3c4d5e6f-7081-4a92-8b3c-4d5e6f708192";
const HEADER_SECRET: &str = "identity-header-9f8e7d";
const MI_TOKEN: &str =
    "eyJ0eXAiOiJKV1QiLCJtaSI6dHJ1ZX0.eyJzdWIiOiJtaS1wcmluY2lwYWwifQ.bWktc2lnbmF0dXJl";

fn verifier(audience: &str) -> VerifierConfig {
    VerifierConfig::builder(ISS).audience(audience).build().unwrap()
}

fn jwks() -> Jwks {
    Jwks::parse(testkit::jwks(&[RsaKey::fixture_2048().jwk()]).as_bytes()).unwrap()
}

fn token_with(edit: impl FnOnce(&mut Value)) -> String {
    let mut claims = gitlab_claims(ISS, NOW - 10);
    claims["aud"] = json!(BROKER);
    edit(&mut claims);
    mint(&Key::Rsa(&RsaKey::fixture_2048(), "RS256"), &claims)
}

fn tag_token() -> String {
    token_with(|c| {
        c["ref_type"] = json!("tag");
        c["ref"] = json!("v1.0.0");
    })
}

/// No `scopes`: each cloud's Azure Resource Manager (a named public-cloud scope would be refused
/// by a sovereign target).
fn azure(client_id: &str, credential: Value) -> Value {
    json!({"tenant": TENANT, "client_id": client_id, "credential": credential})
}

/// Three rules, three credentials: main deploys through the broker's issuer, tags through its
/// managed identity (another app), and `legacy` jobs still go federated.
fn policy() -> Policy {
    Policy::parse(
        json!({"rules": [
            {"name": "no-forks", "effect": "deny", "when": {"pipeline_source": "merge_request_event"}},
            {"name": "deploy", "effect": "allow",
             "when": {"project_id": "4242", "ref": "main", "ref_protected": true},
             "azure": azure(CLIENT_ID, json!("issuer"))},
            {"name": "tags", "effect": "allow",
             "when": {"project_id": "4242", "ref_type": "tag"},
             "azure": azure(OTHER_APP, json!({"type": "managed-identity",
                                              "client_id": UAMI_CLIENT, "principal_id": UAMI_PRINCIPAL}))},
            {"name": "legacy", "effect": "allow",
             "when": {"project_id": "4242", "ref": "legacy"},
             "azure": azure(CLIENT_ID, json!("federated"))},
        ]})
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

fn issuer() -> Arc<BrokerIssuer> {
    Arc::new(
        BrokerIssuer::builder(BROKER)
            .key(&RsaKey::fixture_2048().private_pem(), KeyUse::Signing, None)
            .key(&RsaKey::fixture_2048_rotated().private_pem(), KeyUse::Published, None)
            .build()
            .unwrap(),
    )
}

fn endpoint() -> Arc<IdentityEndpoint> {
    Arc::new(
        IdentityEndpoint::app_service(
            "http://localhost:42356/msi/token",
            Secret::new(HEADER_SECRET),
        )
        .unwrap(),
    )
}

fn builder() -> GateConfigBuilder {
    GateConfig::builder(verifier(BROKER))
        .policy(policy())
        .issuer(issuer())
        .identity_endpoint(endpoint())
}

fn gate() -> Gate {
    let mut gate = Gate::new(builder().build().unwrap());
    gate.install_jwks(jwks());
    gate
}

fn form_field(body: &str, name: &str) -> String {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.replace("%2F", "/").replace("%3A", ":"))
        .unwrap()
}

fn claims_of(jws: &str) -> Value {
    let payload = jws.split('.').nth(1).unwrap();
    serde_json::from_slice(&crate::text::b64::decode(payload).unwrap()).unwrap()
}

fn mi_answer(expires_on: u64) -> Vec<u8> {
    json!({"access_token": MI_TOKEN, "client_id": UAMI_CLIENT, "expires_in": "86399",
           "expires_on": expires_on.to_string(), "resource": "api://AzureADTokenExchange",
           "token_type": "Bearer"})
    .to_string()
    .into_bytes()
}

#[test]
fn each_rule_gets_its_own_credential() {
    let mut gate = gate();
    let rng = SystemRandom::new();
    assert!(!gate.config().binds(), "the legacy rule is federated: the policy does not bind");

    // deploy: the broker's assertion, never the job's token.
    let token = token_with(|_| {});
    let admission = gate.admit(&token, NOW).unwrap();
    assert_eq!(gate.credential_for(&admission).name(), "issuer");
    assert!(gate.identity_request(&admission, NOW).is_none());
    let request = gate.request(&admission, &token, NOW, &rng).unwrap();
    assert!(!request.body.contains(&token));
    let assertion = form_field(&request.body, "client_assertion");
    let claims = claims_of(&assertion);
    assert_eq!(claims["iss"], BROKER);
    assert_eq!(claims["sub"], "gitlab-azure-oidc:rule:deploy");
    assert_eq!(claims["aud"], "api://AzureADTokenExchange");
    assert_eq!(claims["job_id"], "5550001");
    // Reused for this job and rule while valid; another job gets its own.
    let again = gate.request(&admission, &token, NOW + 200, &rng).unwrap();
    assert_eq!(form_field(&again.body, "client_assertion"), assertion);
    let other_job = token_with(|c| c["job_id"] = json!("5550002"));
    let other = gate.admit(&other_job, NOW).unwrap();
    let other_assertion =
        form_field(&gate.request(&other, &other_job, NOW, &rng).unwrap().body, "client_assertion");
    assert_ne!(other_assertion, assertion);
    assert_eq!(claims_of(&other_assertion)["job_id"], "5550002");
    let renewed = gate.request(&admission, &token, NOW + 250, &rng).unwrap();
    assert_ne!(form_field(&renewed.body, "client_assertion"), assertion, "renewed 60 s before exp");

    // legacy: the job's own token, as today.
    let legacy = token_with(|c| c["ref"] = json!("legacy"));
    let admission = gate.admit(&legacy, NOW).unwrap();
    assert_eq!(gate.credential_for(&admission).name(), "federated");
    let request = gate.request(&admission, &legacy, NOW, &rng).unwrap();
    assert_eq!(form_field(&request.body, "client_assertion"), legacy);
}

#[test]
fn the_managed_identity_token_is_fetched_by_the_host_then_presented() {
    let mut gate = gate();
    let rng = SystemRandom::new();
    let token = token_with(|c| {
        c["ref_type"] = json!("tag");
        c["ref"] = json!("v1.0.0");
    });
    let admission = gate.admit(&token, NOW).unwrap();
    assert_eq!(gate.credential_for(&admission).name(), "managed-identity");
    // Before the identity token is installed, the request cannot be built.
    let early = gate.request(&admission, &token, NOW, &rng).unwrap_err();
    assert_eq!(early.kind(), "identity-token-missing");
    let identity = gate.identity_request(&admission, NOW).unwrap();
    assert_eq!(identity.client_id, UAMI_CLIENT);
    assert!(identity.url.starts_with("http://localhost:42356/msi/token?api-version=2019-08-01&resource=api%3A%2F%2FAzureADTokenExchange&client_id="));
    assert_eq!(identity.headers, [("X-IDENTITY-HEADER".to_owned(), HEADER_SECRET.to_owned())]);
    // A failed answer installs nothing and says whether to retry.
    let busy = gate.install_identity_token(&identity, 503, &[], b"{}", NOW).unwrap_err();
    assert!(busy.retryable() && busy.http_status() == 503, "{busy}");
    gate.install_identity_token(&identity, 200, &[], &mi_answer(NOW + 86_399), NOW).unwrap();
    assert!(gate.identity_request(&admission, NOW).is_none(), "fresh: no second request");
    let request = gate.request(&admission, &token, NOW, &rng).unwrap();
    assert_eq!(form_field(&request.body, "client_assertion"), MI_TOKEN);
    assert_eq!(form_field(&request.body, "client_id"), OTHER_APP);
    // Shortly before it expires, the host fetches it again.
    assert!(gate.identity_request(&admission, NOW + 86_399 - 299).is_some());
    // An identity token about to expire is refused at once.
    let short =
        gate.install_identity_token(&identity, 200, &[], &mi_answer(NOW + 200), NOW).unwrap_err();
    assert_eq!(short.kind(), "identity-token-expired");
    let missing = gate
        .install_identity_token(
            &identity,
            400,
            &[],
            br#"{"error":"invalid_request","error_description":"Identity not found"}"#,
            NOW,
        )
        .unwrap_err();
    assert_eq!((missing.kind(), missing.http_status()), ("identity-not-assigned", 502));
    assert!(missing.hint().unwrap().contains(UAMI_CLIENT));
}

#[test]
fn assertion_vending_hands_out_the_rules_assertion_and_nothing_else() {
    let mut gate = gate();
    let rng = SystemRandom::new();
    let token = token_with(|_| {});
    let admission = gate.admit(&token, NOW).unwrap();
    let vended = gate.vend_assertion(&admission, NOW, &rng).unwrap();
    assert_eq!((vended.tenant.as_str(), vended.client_id.as_str()), (TENANT, CLIENT_ID));
    assert_eq!(vended.authority, "https://login.microsoftonline.com");
    assert_eq!(vended.subject, "gitlab-azure-oidc:rule:deploy");
    assert_eq!(vended.expires_at, NOW + 300);
    let request = gate.request(&admission, &token, NOW, &rng).unwrap();
    assert_eq!(
        form_field(&request.body, "client_assertion"),
        vended.assertion.secret(),
        "one assertion per job and rule"
    );
    let reply = vend::assertion_reply(&vended);
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["assertion"], vended.assertion.secret());
    assert_eq!(body["clientId"], CLIENT_ID);
    assert!(reply.headers.contains(&("cache-control".to_owned(), "no-store".to_owned())));

    let tag = tag_token();
    let admission = gate.admit(&tag, NOW).unwrap();
    let refused = gate.vend_assertion(&admission, NOW, &rng).unwrap_err();
    assert_eq!((refused.kind(), refused.http_status()), ("assertion-unavailable", 400));
}

#[test]
fn a_denied_job_gets_a_403_and_no_request() {
    let mut gate = gate();
    let fork = token_with(|c| c["pipeline_source"] = json!("merge_request_event"));
    let denied = gate.admit(&fork, NOW).unwrap_err();
    let reply = vend::error_reply(&denied, Explain::Summary);
    assert_eq!(reply.status, 403);
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["error"], "policy-denied");
    assert_eq!(body["message"], "deny: deny rule no-forks matched");
    assert!(body["hint"].is_null(), "the summary does not reveal the policy");
    let explained: Value =
        serde_json::from_str(&vend::error_reply(&denied, Explain::Rules).body).unwrap();
    assert!(explained["hint"].as_str().unwrap().contains("rule no-forks: matched"));
}

#[test]
fn a_requested_scope_must_be_the_rules() {
    let mut gate = gate();
    let token = token_with(|_| {});
    let admission = gate.admit(&token, NOW).unwrap();
    assert!(check_scope(&admission, None).is_ok());
    assert!(check_scope(&admission, Some("https://management.azure.com/.default")).is_ok());
    let refused = check_scope(&admission, Some("https://vault.azure.net/.default")).unwrap_err();
    assert_eq!((refused.kind(), refused.http_status()), ("scope-not-allowed", 403));
    assert!(refused.to_string().contains("rule deploy"), "{refused}");
    assert!(refused.hint().unwrap().contains("https://management.azure.com/.default"));
}

#[test]
fn a_broker_refuses_a_verifier_that_accepts_entras_audience() {
    for audience in [
        "api://AzureADTokenExchange",
        "api://AzureADTokenExchangeUSGov",
        "api://azureadtokenexchangechina",
    ] {
        let error = GateConfig::builder(verifier(audience))
            .policy(policy())
            .issuer(issuer())
            .identity_endpoint(endpoint())
            .build()
            .unwrap_err();
        assert_eq!(error.kind(), "broker-audience", "{audience}");
        let message = error.to_string();
        assert!(message.contains(audience) && message.contains("skip the broker"), "{message}");
    }
    let open = GateConfig::builder(verifier(BROKER))
        .dangerous()
        .skip_audience_check()
        .policy(policy())
        .issuer(issuer())
        .identity_endpoint(endpoint())
        .build()
        .unwrap_err();
    assert_eq!(open.kind(), "broker-audience");
    // A federated-only policy keeps today's audience.
    let federated = Policy::parse(
        json!({"rules": [{"name": "a", "effect": "allow", "when": {"project_id": "1"},
        "azure": azure(CLIENT_ID, json!("federated"))}]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    assert!(GateConfig::builder(verifier("api://AzureADTokenExchange"))
        .policy(federated)
        .build()
        .is_ok());
}

#[test]
fn a_rule_whose_credential_the_broker_lacks_is_refused_by_name() {
    let missing = GateConfig::builder(verifier(BROKER))
        .policy(policy())
        .identity_endpoint(endpoint())
        .build()
        .unwrap_err();
    assert_eq!(missing.kind(), "broker-credential-missing");
    assert!(missing.to_string().contains("rule deploy uses the issuer credential"), "{missing}");
    let certificate = Policy::parse(
        json!({"rules": [{"name": "cert", "effect": "allow", "when": {"project_id": "1"},
        "azure": azure(CLIENT_ID, json!({"type": "certificate", "name": "payments"}))}]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let unknown =
        GateConfig::builder(verifier(BROKER)).policy(certificate.clone()).build().unwrap_err();
    assert_eq!(unknown.kind(), "unknown-certificate");
    assert!(unknown.to_string().contains("`payments`"), "{unknown}");
    let config = GateConfig::builder(verifier(BROKER))
        .policy(certificate)
        .named_certificate("payments", Arc::new(certificate_credential()))
        .build()
        .unwrap();
    assert!(config.binds());
    assert_eq!(config.credential_of(Some("cert")).name(), "certificate");
}

fn certificate_credential() -> CertificateCredential {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/entra/testdata/");
    let read = |f: &str| std::fs::read_to_string(format!("{dir}{f}")).unwrap();
    CertificateCredential::from_pem(&read("rsa-2048.key.pem"), &read("rsa-2048.cert.pem"))
        .unwrap()
        .algorithm(AssertionAlgorithm::Ps256)
}

#[test]
fn a_sovereign_cloud_gets_its_own_token_exchange_audience() {
    let mut gate = Gate::new(builder().authority_host("login.microsoftonline.us").build().unwrap());
    gate.install_jwks(jwks());
    let rng = SystemRandom::new();
    let token = token_with(|_| {});
    let admission = gate.admit(&token, NOW).unwrap();
    let request = gate.request(&admission, &token, NOW, &rng).unwrap();
    assert_eq!(
        claims_of(&form_field(&request.body, "client_assertion"))["aud"],
        "api://AzureADTokenExchangeUSGov"
    );
    let tag = tag_token();
    let admission = gate.admit(&tag, NOW).unwrap();
    let identity = gate.identity_request(&admission, NOW).unwrap();
    assert!(
        identity.url.contains("resource=api%3A%2F%2FAzureADTokenExchangeUSGov"),
        "{}",
        identity.url
    );
}

/// No key, assertion, identity token, endpoint secret or GitLab token in any `Debug` or
/// `Display` output of the broker's types and errors, or in an audit event.
#[test]
fn no_secret_is_ever_printed() {
    let key_pem = RsaKey::fixture_2048().private_pem();
    let next_pem = RsaKey::fixture_2048_rotated().private_pem();
    let env = |name: &str| match name {
        "KEY" => Some(key_pem.clone()),
        "NEXT" => Some(next_pem.clone()),
        "HDR" => Some(HEADER_SECRET.to_owned()),
        _ => None,
    };
    let document = json!({
        "issuer": {"url": BROKER, "keys": [{"private_key": {"env": "KEY"}, "use": "signing"},
                                           {"private_key": {"env": "NEXT"}}]},
        "managed_identity": {"endpoint": "app-service", "url": "http://localhost:1/msi/token", "header": {"env": "HDR"}},
    });
    let broker =
        BrokerConfig::parse(document.to_string().as_bytes(), &env, ConfigMode::Broker).unwrap();
    let config =
        GateConfig::builder(verifier(BROKER)).policy(policy()).broker(&broker).build().unwrap();
    let mut gate = Gate::new(config.clone());
    gate.install_jwks(jwks());
    let rng = SystemRandom::new();
    let mut shown: Vec<String> = vec![
        format!("{broker:?}"),
        format!("{config:?}"),
        format!("{:?}", config.credential_of(Some("deploy"))),
    ];

    let token = token_with(|_| {});
    let vend_request =
        VendRequest::parse("POST", &[("Authorization".into(), format!("Bearer {token}"))], b"")
            .unwrap();
    shown.push(format!("{vend_request:?}"));
    let admission = gate.admit(vend_request.token(), NOW).unwrap();
    let request = gate.request(&admission, &token, NOW, &rng).unwrap();
    let vended = gate.vend_assertion(&admission, NOW, &rng).unwrap();
    let assertion = vended.assertion.secret().to_owned();
    shown.extend([
        format!("{admission:?}"),
        format!("{request:?}"),
        format!("{vended:?}"),
        format!("{:?}", vend::assertion_reply(&vended)),
        format!("{gate:?}"),
    ]);

    let tag = tag_token();
    let admission = gate.admit(&tag, NOW).unwrap();
    let identity = gate.identity_request(&admission, NOW).unwrap();
    shown.push(format!("{identity:?}"));
    gate.install_identity_token(&identity, 200, &[], &mi_answer(NOW + 86_399), NOW).unwrap();
    let request = gate.request(&admission, &tag, NOW, &rng).unwrap();
    shown.push(format!("{request:?}"));

    let failures = [
        gate.install_identity_token(&identity, 401, &[], b"{}", NOW).unwrap_err(),
        gate.vend_assertion(&admission, NOW, &rng).unwrap_err(),
        Failure::Vend(VendRequest::parse("POST", &[("Authorization".into(), format!("Basic {token}"))], b"").unwrap_err()),
        Failure::Config(GateConfigError::Broker(
            BrokerConfig::parse(json!({"issuer": {"url": BROKER, "keys": [{"private_key": {"value": key_pem.replace("PRIVATE KEY", "RSA PRIVATE KEY")}, "use": "signing"}]}}).to_string().as_bytes(), &env, ConfigMode::Broker).unwrap_err(),
        )),
        gate.admit(&token_with(|c| c["pipeline_source"] = json!("merge_request_event")), NOW).unwrap_err(),
    ];
    for failure in &failures {
        shown.extend([
            format!("{failure:?}"),
            failure.to_string(),
            failure.hint().unwrap_or_default(),
            vend::error_reply(failure, Explain::Rules).body,
        ]);
    }
    shown.extend(gate.take_audit());

    let key_lines: Vec<&str> =
        key_pem.lines().chain(next_pem.lines()).filter(|l| !l.starts_with("-----")).collect();
    let secrets: Vec<&str> =
        [token.as_str(), tag.as_str(), assertion.as_str(), MI_TOKEN, HEADER_SECRET]
            .into_iter()
            .chain(key_lines)
            .collect();
    for text in &shown {
        for secret in &secrets {
            assert!(
                !text.contains(secret),
                "a secret ({}...) in: {text}",
                &secret[..12.min(secret.len())]
            );
        }
        // Signature parts of any JWS: the assertion's and the tokens' third parts.
        for jws in [&token, &tag, &assertion] {
            let signature = jws.rsplit('.').next().unwrap();
            assert!(!text.contains(signature), "a signature in: {text}");
        }
    }
}
