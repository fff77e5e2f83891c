//! Every export of the component, called through wasmtime, including traps and limits.

use gitlab_azure_oidc_host::{
    config, Algorithm, Category, Host, HostError, Limits, Tuning, VerifierConfig, VerifierHandle,
};
use serde_json::json;
use testkit::{gitlab_claims, jwks, mint, EcKey, Key, RsaKey, AUDIENCE};

const ISS: &str = "https://gitlab.example.com";
const NOW: u64 = 1_760_000_000;

fn host() -> Host {
    Host::embedded(Limits::default()).expect("run `make component` before these tests")
}

fn options() -> VerifierConfig {
    config(ISS, &[AUDIENCE])
}

fn new_verifier(host: &Host, config: VerifierConfig, jwks: String) -> VerifierHandle {
    VerifierHandle::new(host, config, jwks).unwrap().unwrap()
}

fn token(key: &RsaKey) -> String {
    mint(&Key::Rsa(key, "RS256"), &gitlab_claims(ISS, NOW - 10))
}

#[test]
fn one_shot_verification_returns_typed_claims_and_a_fingerprint() {
    let key = RsaKey::fixture_2048();
    let token = token(&key);
    let verified = host()
        .session()
        .unwrap()
        .verify_gitlab_token(&token, &jwks(&[key.jwk()]), &options(), NOW)
        .unwrap()
        .unwrap();
    assert_eq!(verified.header.alg, Algorithm::Rs256);
    assert_eq!(verified.header.kid.as_deref(), Some(key.kid()));
    let c = &verified.claims;
    assert_eq!(c.iss, ISS);
    assert_eq!(c.aud, vec![AUDIENCE.to_owned()]);
    assert_eq!(c.exp, NOW - 10 + 3600);
    assert_eq!(c.sub.as_deref(), Some(testkit::SUBJECT));
    // GitLab's claims: the payload exactly as signed.
    let raw: serde_json::Value = serde_json::from_str(&verified.payload_json).unwrap();
    assert_eq!(raw, gitlab_claims(ISS, NOW - 10));
    assert_eq!(raw["deployment_tier"], json!("production"));
    assert_eq!(verified.fingerprint, gitlab_azure_oidc::token_fingerprint(&token));
    assert!(!verified.fingerprint.contains(&token[..20]));
}

#[test]
fn refusals_cross_the_boundary_typed_with_kind_and_message() {
    let key = RsaKey::fixture_2048();
    let h = host();
    let mut claims = gitlab_claims(ISS, NOW - 7200);
    claims["exp"] = json!(NOW - 100);
    let expired = mint(&Key::Rsa(&key, "RS256"), &claims);
    let mut session = h.session().unwrap();
    let failure = session
        .verify_gitlab_token(&expired, &jwks(&[key.jwk()]), &options(), NOW)
        .unwrap()
        .unwrap_err();
    assert_eq!(failure.kind, "expired");
    assert_eq!(failure.category, Category::Token);
    assert_eq!(failure.http_status, 401);
    // The values 0.1.0 carried in typed variants are named in the message.
    assert!(failure.message.contains("100 seconds before"), "{}", failure.message);
    assert!(failure.message.contains(&NOW.to_string()), "{}", failure.message);
    assert!(!failure.refetch_jwks);

    let rotated = RsaKey::fixture_2048_rotated();
    let failure = session
        .verify_gitlab_token(&token(&rotated), &jwks(&[key.jwk()]), &options(), NOW)
        .unwrap()
        .unwrap_err();
    assert_eq!(failure.kind, "unknown-kid");
    assert!(failure.refetch_jwks);
    assert!(failure.message.contains(rotated.kid()), "{}", failure.message);

    let mut bad_config = options();
    bad_config.audiences.clear();
    let failure = session
        .verify_gitlab_token(&token(&key), &jwks(&[key.jwk()]), &bad_config, NOW)
        .unwrap()
        .unwrap_err();
    assert_eq!(failure.kind, "no-audience");
    assert_eq!(failure.category, Category::Config);

    let failure =
        session.verify_gitlab_token(&token(&key), "<html>", &options(), NOW).unwrap().unwrap_err();
    assert_eq!(failure.kind, "jwks-json");
    assert_eq!(failure.category, Category::Jwks);

    let failure = session
        .verify_gitlab_token("not.a.token", &jwks(&[key.jwk()]), &options(), NOW)
        .unwrap()
        .unwrap_err();
    assert_eq!(failure.kind, "base64");
}

#[test]
fn the_verifier_resource_parses_keys_once_and_replaces_them() {
    let key = RsaKey::fixture_2048();
    let rotated = RsaKey::fixture_2048_rotated();
    let h = host();
    let mut verifier = new_verifier(&h, config(ISS, &[AUDIENCE]), jwks(&[key.jwk()]));
    for _ in 0..3 {
        assert!(verifier.verify(&token(&key), NOW).unwrap().is_ok());
    }
    let failure = verifier.verify(&token(&rotated), NOW).unwrap().unwrap_err();
    assert!(failure.refetch_jwks);
    let refused = verifier.replace_jwks("{}".into()).unwrap().unwrap_err();
    assert_eq!(refused.kind, "jwks-no-keys-array");
    verifier.replace_jwks(jwks(&[key.jwk(), rotated.jwk()])).unwrap().unwrap();
    assert!(verifier.verify(&token(&rotated), NOW).unwrap().is_ok());
    let (usable, skipped) = verifier.keys().unwrap();
    assert_eq!(usable.len(), 2);
    assert_eq!(usable[0].kind, "RSA-2048");
    assert!(skipped.is_empty());
}

#[test]
fn ec_keys_and_algorithm_allow_lists_work_through_the_component() {
    let ec = EcKey::generate_p256("ec-1");
    let mut cfg = config(ISS, &[AUDIENCE]);
    let token = mint(&Key::Ec(&ec), &gitlab_claims(ISS, NOW - 10));
    let mut verifier = new_verifier(&host(), cfg.clone(), jwks(&[ec.jwk()]));
    let failure = verifier.verify(&token, NOW).unwrap().unwrap_err();
    assert_eq!(failure.kind, "algorithm-not-allowed");
    cfg.algorithms = vec![Algorithm::Es256];
    let mut verifier = new_verifier(&host(), cfg, jwks(&[ec.jwk()]));
    assert!(verifier.verify(&token, NOW).unwrap().is_ok());
}

#[test]
fn a_guest_trap_is_survived_and_the_verifier_comes_back() {
    let key = RsaKey::fixture_2048();
    let mut verifier = new_verifier(&host(), config(ISS, &[AUDIENCE]), jwks(&[key.jwk()]));
    verifier.set_fuel_per_call(10_000);
    match verifier.verify(&token(&key), NOW) {
        Err(HostError::Trap { out_of_fuel: true, .. }) => {}
        other => panic!("expected an out-of-fuel trap, got {other:?}"),
    }
    verifier.set_fuel_per_call(Limits::default().fuel_per_call);
    assert!(verifier.verify(&token(&key), NOW).unwrap().is_ok(), "a fresh instance after the trap");
}

#[test]
fn memory_is_bounded_per_instance() {
    let key = RsaKey::fixture_2048();
    let limits = Limits { memory_bytes: 4 << 20, ..Limits::default() };
    let h = Host::embedded(limits).unwrap();
    let mut verifier = new_verifier(&h, config(ISS, &[AUDIENCE]), jwks(&[key.jwk()]));
    // 16 MiB cannot even be copied into a 4 MiB instance: the guest's allocation traps.
    let huge = " ".repeat(16 << 20);
    assert!(matches!(verifier.replace_jwks(huge), Err(HostError::Trap { .. })));
    // The kept JWKS rebuilt the verifier.
    assert!(verifier.verify(&token(&key), NOW).unwrap().is_ok());
    // A document under the memory limit but over the JWKS limit is refused, typed.
    let big = format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(300 * 1024));
    assert_eq!(verifier.replace_jwks(big).unwrap().unwrap_err().kind, "jwks-too-large");
}

#[test]
fn hostile_tokens_never_trap_the_component() {
    let key = RsaKey::fixture_2048();
    let mut verifier = new_verifier(&host(), config(ISS, &[AUDIENCE]), jwks(&[key.jwk()]));
    let good = token(&key);
    let mut inputs: Vec<String> = vec![
        String::new(),
        ".".repeat(10_000),
        "a".repeat(16 * 1024 + 1),
        format!("{}.{}", good, good),
        good.replace('.', ""),
        "eyJhbGciOiJub25lIn0.e30.".into(),
        "\u{0}\u{ffff}.\u{1F600}.x".into(),
    ];
    let mut state: u64 = 42;
    for _ in 0..300 {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let mut bytes = good.clone().into_bytes();
        let at = usize::try_from(state % bytes.len() as u64).unwrap();
        bytes[at] = b"._-=+/ {}"[usize::try_from(state >> 60).unwrap() % 9];
        inputs.push(String::from_utf8(bytes).unwrap());
    }
    for input in &inputs {
        match verifier.verify(input, NOW) {
            Ok(_) => {}
            Err(e) => panic!("host error on hostile input: {e}"),
        }
    }
}

#[test]
fn a_foreign_or_broken_component_is_a_load_error() {
    assert!(matches!(Host::new(b"\0asm\x01\0\0\0", Limits::default()), Err(HostError::Load(_))));
    assert!(matches!(Host::new(b"garbage", Limits::default()), Err(HostError::Load(_))));
}

mod gate_and_policy {
    use std::process::Command;

    use base64::Engine as _;
    use gitlab_azure_oidc_host::{
        AssertionAlgorithm, AuditOptions, AzureTarget, Certificate, Credential, GateConfig,
        GateHandle, Limits, PlanOptions, Severity, SubjectForm,
    };
    use serde_json::Value;

    use super::*;

    const TENANT: &str = testkit::TENANT;
    const CLIENT: &str = testkit::CLIENT_ID;
    const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../src/entra/testdata");

    fn target() -> AzureTarget {
        AzureTarget {
            tenant: TENANT.into(),
            client_id: CLIENT.into(),
            scopes: Vec::new(),
            authority_host: None,
        }
    }

    fn gate_config(credential: Credential) -> GateConfig {
        GateConfig {
            verifier: Some(options()),
            policy: None,
            target: Some(target()),
            credential,
            dangerous_authority_url: None,
        }
    }

    fn gate(credential: Credential) -> (GateHandle, RsaKey) {
        let key = RsaKey::fixture_2048();
        let gate = GateHandle::new(&host(), gate_config(credential), Some(jwks(&[key.jwk()])))
            .unwrap()
            .unwrap();
        (gate, key)
    }

    fn b64d(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    #[test]
    fn the_federated_request_is_entras_documented_form() {
        let (mut gate, key) = gate(Credential::Federated);
        let token = super::token(&key);
        let admission = gate.admit(&token, NOW).unwrap().unwrap();
        let request = admission.request;
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.url,
            format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token")
        );
        assert!(request
            .headers
            .contains(&("Content-Type".into(), "application/x-www-form-urlencoded".into())));
        assert_eq!(
            request.body,
            format!(
                "client_id={CLIENT}&scope=https%3A%2F%2Fmanagement.azure.com%2F.default&grant_type=client_credentials\
                 &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={token}"
            )
        );
        // The subject Entra matches is the token's `sub`, verbatim.
        assert_eq!(admission.verified.unwrap().claims.sub.as_deref(), Some(testkit::SUBJECT));
        let mut bad = gate_config(Credential::Federated);
        bad.target = Some(AzureTarget { tenant: "organizations".into(), ..target() });
        let failure = GateHandle::new(&host(), bad, None).unwrap().err().unwrap();
        assert_eq!(failure.kind, "reserved-tenant");
        assert_eq!(failure.category, Category::Config);
        assert!(failure.message.contains("AADSTS9001023"), "{}", failure.message);
    }

    #[test]
    fn the_certificate_assertion_verifies_under_openssl() {
        let key_pem = std::fs::read_to_string(format!("{TESTDATA}/rsa-2048.key.pem")).unwrap();
        let cert_pem = std::fs::read_to_string(format!("{TESTDATA}/rsa-2048.cert.pem")).unwrap();
        for (algorithm, thumb, alg) in [
            (AssertionAlgorithm::Ps256, "x5t#S256", "PS256"),
            (AssertionAlgorithm::Rs256, "x5t", "RS256"),
        ] {
            let certificate = Certificate {
                private_key_pem: key_pem.clone(),
                certificate_pem: cert_pem.clone(),
                algorithm,
                lifetime: None,
            };
            let (mut gate, key) = gate(Credential::Certificate(certificate));
            let request = gate.admit(&super::token(&key), NOW).unwrap().unwrap().request;
            assert!(!request.body.contains("PRIVATE"), "the key never leaves the component");
            let assertion = request.body.rsplit("client_assertion=").next().unwrap();
            let parts: Vec<&str> = assertion.split('.').collect();
            let header: Value = serde_json::from_slice(&b64d(parts[0])).unwrap();
            let claims: Value = serde_json::from_slice(&b64d(parts[1])).unwrap();
            assert_eq!(header["alg"], alg);
            assert!(header.get(thumb).is_some(), "{header}");
            assert_eq!(claims["iss"], CLIENT);
            assert_eq!(claims["sub"], CLIENT);
            assert_eq!(
                claims["aud"],
                format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token")
            );
            assert_eq!(claims["nbf"], NOW);
            assert_eq!(claims["exp"], NOW + 300);
            // openssl, an independent verifier, on the certificate's public key.
            let dir =
                std::env::temp_dir().join(format!("gao-openssl-{}-{alg}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("input"), format!("{}.{}", parts[0], parts[1])).unwrap();
            std::fs::write(dir.join("sig"), b64d(parts[2])).unwrap();
            let public = Command::new("openssl")
                .args([
                    "x509",
                    "-pubkey",
                    "-noout",
                    "-in",
                    &format!("{TESTDATA}/rsa-2048.cert.pem"),
                ])
                .output()
                .expect("openssl");
            std::fs::write(dir.join("pub.pem"), public.stdout).unwrap();
            let mut verify = Command::new("openssl");
            verify.current_dir(&dir).args([
                "dgst",
                "-sha256",
                "-verify",
                "pub.pem",
                "-signature",
                "sig",
            ]);
            if alg == "PS256" {
                verify.args(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]);
            }
            let verdict = verify.arg("input").output().unwrap();
            assert!(
                verdict.status.success(),
                "openssl: {}",
                String::from_utf8_lossy(&verdict.stdout)
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn entra_answers_are_read_through_the_gate() {
        let (mut gate, _) = gate(Credential::Federated);
        let ok = br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ.x.y"}"#;
        let token = gate.finish("", 200, &[], ok, NOW).unwrap().unwrap();
        assert_eq!(
            (token.token.as_str(), token.expires_at, token.ext_expires_in),
            ("eyJ.x.y", NOW + 3599, Some(3599))
        );
        let error = br#"{"error":"invalid_client","error_description":"AADSTS700213: No matching federated identity record found for presented assertion subject 'project_path:a/b:ref_type:branch:ref:dev'.\r\nTrace ID: t","error_codes":[700213],"trace_id":"t","correlation_id":"c","timestamp":"2026-11-25 12:00:00Z"}"#;
        let failure = gate.finish("", 401, &[], error, NOW).unwrap().unwrap_err();
        let entra = failure.entra.as_ref().unwrap();
        assert_eq!(entra.error_codes, vec![700213]);
        assert_eq!(entra.trace_id.as_deref(), Some("t"));
        assert_eq!(entra.correlation_id.as_deref(), Some("c"));
        let hint = failure.hint.as_deref().unwrap();
        assert!(hint.contains("case-sensitive"), "{hint}");
        assert!(!failure.message.contains(hint), "the hint is not repeated in the message");
        assert!(!failure.retryable);
        assert_eq!(failure.http_status, 403);
        let headers = vec![("Retry-After".to_owned(), "7".to_owned())];
        let failure = gate.finish("", 429, &headers, b"", NOW).unwrap().unwrap_err();
        assert!(failure.retryable);
        assert_eq!(failure.retry_after, Some(7));
        assert_eq!(failure.http_status, 503);
        let failure = gate
            .finish("", 200, &[], b"<html><title>portal</title></html>", NOW)
            .unwrap()
            .unwrap_err();
        assert_eq!(failure.kind, "html-page");
    }

    #[test]
    fn a_gate_with_a_policy_decides_audits_and_denies() {
        let key = RsaKey::fixture_2048();
        let config = GateConfig {
            policy: Some(include_str!("../../examples/policies/single-project.json").to_owned()),
            target: None,
            ..gate_config(Credential::Federated)
        };
        let mut gate = GateHandle::new(&host(), config, None).unwrap().unwrap();
        assert!(!gate.ready().unwrap());
        let failure = gate.admit(&super::token(&key), NOW).unwrap().unwrap_err();
        assert!(failure.refetch_jwks, "no keys yet: {failure:?}");
        gate.install_jwks(jwks(&[key.jwk()])).unwrap().unwrap();
        let token = super::token(&key);
        let admission = gate.admit(&token, NOW).unwrap().unwrap();
        assert_eq!(admission.rule.as_deref(), Some("deploy-main"));
        assert!(admission.fresh);
        assert!(admission.azure_key.is_some());
        let events = gate.take_audit().unwrap();
        assert_eq!(events.len(), 1);
        assert!(!events[0].contains(&token));
        let decision: serde_json::Value = serde_json::from_str(&events[0]).unwrap();
        // Entra's answer is an event too, joined to the decision by the request id.
        let id = admission.request_id.clone();
        assert!(admission.request.headers.contains(&("client-request-id".into(), id.clone())));
        let refused = br#"{"error":"invalid_client","error_description":"AADSTS700213: No matching federated identity record found","error_codes":[700213],"trace_id":"t","correlation_id":"c"}"#;
        gate.finish(&id, 401, &[], refused, NOW).unwrap().unwrap_err();
        let events = gate.take_audit().unwrap();
        let answer: serde_json::Value = serde_json::from_str(&events[0]).unwrap();
        assert_eq!(answer["event"], "entra_answer");
        assert_eq!(answer["client_request_id"], id.as_str());
        assert_eq!((&answer["rule"], &answer["jti"]), (&decision["rule"], &decision["jti"]));
        assert_eq!((&answer["error_codes"], &answer["trace_id"]), (&json!([700213]), &json!("t")));
        assert!(!gate.admit(&token, NOW + 1).unwrap().unwrap().fresh, "a kept decision");
        let mut claims = gitlab_claims(ISS, NOW - 10);
        claims["ref"] = json!("feature");
        let denied = mint(&Key::Rsa(&key, "RS256"), &claims);
        let failure = gate.admit(&denied, NOW).unwrap().unwrap_err();
        assert_eq!(failure.kind, "policy-denied");
        assert_eq!(failure.category, Category::Denied);
        assert_eq!(failure.http_status, 403);
        assert!(failure.hint.as_deref().unwrap_or_default().contains("rule deploy-main:"));
    }

    #[test]
    fn a_gate_survives_a_trap_with_its_keys() {
        let (mut gate, key) = gate(Credential::Federated);
        gate.set_fuel_per_call(10_000);
        assert!(matches!(
            gate.admit(&super::token(&key), NOW),
            Err(HostError::Trap { out_of_fuel: true, .. })
        ));
        gate.set_fuel_per_call(Limits::default().fuel_per_call);
        assert!(
            gate.admit(&super::token(&key), NOW).unwrap().is_ok(),
            "rebuilt with the same keys"
        );
    }

    #[test]
    fn risky_gate_configurations_are_refused() {
        let certificate = Certificate {
            private_key_pem: std::fs::read_to_string(format!("{TESTDATA}/rsa-2048.key.pem"))
                .unwrap(),
            certificate_pem: std::fs::read_to_string(format!("{TESTDATA}/rsa-2048.cert.pem"))
                .unwrap(),
            algorithm: AssertionAlgorithm::Ps256,
            lifetime: None,
        };
        let unverified =
            GateConfig { verifier: None, ..gate_config(Credential::Certificate(certificate)) };
        let failure = GateHandle::new(&host(), unverified, None).unwrap().err().unwrap();
        assert_eq!(failure.kind, "unverified-credential");
        let policy_unverified = GateConfig {
            verifier: None,
            target: None,
            policy: Some(include_str!("../../examples/policies/single-project.json").to_owned()),
            ..gate_config(Credential::Federated)
        };
        let failure = GateHandle::new(&host(), policy_unverified, None).unwrap().err().unwrap();
        assert_eq!(failure.kind, "policy-without-verification");
    }

    #[test]
    fn policies_decide_plan_and_preflight_through_the_component() {
        let key = RsaKey::fixture_2048();
        let h = Host::embedded(Limits::default()).unwrap();
        let mut session = h.session().unwrap();
        let token = super::token(&key);
        let verified = session
            .verify_gitlab_token(&token, &jwks(&[key.jwk()]), &options(), NOW)
            .unwrap()
            .unwrap();
        let document = include_str!("../../examples/policies/single-project.json");
        let policy = session.load_policy(document).unwrap().unwrap();
        let decision = session
            .decide(policy, &verified.payload_json, &verified.fingerprint, NOW)
            .unwrap()
            .unwrap();
        assert!(decision.allow, "{:?}", decision.lines);
        assert_eq!(decision.rule.as_deref(), Some("deploy-main"));
        assert!(!decision.audit_json.contains(&token));
        let audit: Value = serde_json::from_str(&decision.audit_json).unwrap();
        assert_eq!(audit["token_sha256"], verified.fingerprint);
        let options = |issuer: &str| PlanOptions {
            issuer: issuer.to_owned(),
            audience: Some(AUDIENCE.to_owned()),
            subject_form: SubjectForm::ProjectPath,
        };
        let plan = session.plan(policy, &options(ISS)).unwrap().unwrap();
        assert!(plan.credentials_json.contains(testkit::SUBJECT));
        let document: Value = serde_json::from_str(&plan.document).unwrap();
        assert_eq!(document["issuer"], ISS);
        assert_eq!(plan.warnings[0].rule.as_deref(), Some("deploy-main"));
        // A near miss of the issuer is a configuration failure that says the fix.
        let failure = session.plan(policy, &options("https://gitlab.example.com/")).unwrap();
        let failure = failure.unwrap_err();
        assert_eq!(
            (failure.kind.as_str(), failure.category),
            ("issuer-near-miss", Category::Config)
        );
        assert!(
            failure.message.contains("use `https://gitlab.example.com`"),
            "{}",
            failure.message
        );
        let credentials = json!([{"name": "main", "issuer": ISS, "subject": testkit::SUBJECT, "audiences": [AUDIENCE]}]).to_string();
        let report = session.preflight(&verified.payload_json, &credentials).unwrap().unwrap();
        assert!(report.accepted, "{}", report.report);
        let failure = session
            .load_policy(r#"{"rules":[{"name":"r","effect":"allow","when":{}}]}"#)
            .unwrap()
            .unwrap_err();
        assert_eq!(
            failure.location.as_ref().and_then(|l| l.rule.as_deref()),
            Some("r"),
            "{failure:?}"
        );
        assert_eq!(failure.category, Category::Config);
        let failure = session.decide(policy, "[1]", "", NOW).unwrap().unwrap_err();
        assert_eq!(failure.kind, "not-an-object");
    }

    #[test]
    fn plans_and_rbac_audits_of_the_monorepo_through_the_component() {
        let mut session = host().session().unwrap();
        let document = include_str!("../../examples/policies/monorepo.json");
        let policy = session.load_policy(document).unwrap().unwrap();
        let options = PlanOptions {
            issuer: "https://gitlab.com".to_owned(),
            audience: None,
            subject_form: SubjectForm::ProjectPath,
        };
        let plan = session.plan(policy, &options).unwrap().unwrap();
        let arm: Value = serde_json::from_str(&plan.role_assignments_json).unwrap();
        assert_eq!(arm.as_array().unwrap().len(), 6);
        assert!(plan
            .role_commands
            .iter()
            .any(|c| c.contains("--role 8311e382-0749-4cb8-b61a-304f252e45ec")));
        assert!(plan.text.contains("# AcrPush at /subscriptions/"));
        // The same call twice gives the same bytes.
        assert_eq!(session.plan(policy, &options).unwrap().unwrap().document, plan.document);

        let export = include_str!("data/monorepo-assignments.json");
        let audit = |fail_on| AuditOptions { fail_on, code_quality_path: "policy.json".to_owned() };
        let report =
            session.audit_rbac(document, export, None, &audit(Severity::High)).unwrap().unwrap();
        assert!(report.fails);
        assert_eq!(report.findings, 1, "{}", report.text);
        let quality: Value = serde_json::from_str(&report.code_quality).unwrap();
        assert_eq!(quality[0]["severity"], "blocker");
        let failure = session
            .audit_rbac(document, "{\"not\": \"a list\"}", None, &audit(Severity::High))
            .unwrap()
            .unwrap_err();
        assert_eq!(
            (failure.kind.as_str(), failure.category),
            ("rbac-not-an-array", Category::Config)
        );
    }

    #[test]
    fn the_claim_table_names_every_field_the_core_parses() {
        let table = host().session().unwrap().claim_table().unwrap();
        let names: Vec<&str> = table.iter().map(|c| c.name.as_str()).collect();
        let core: Vec<&str> = gitlab_azure_oidc::CLAIMS.iter().map(|c| c.name).collect();
        assert_eq!(names, core);
        let ref_type = table.iter().find(|c| c.name == "ref_type").unwrap();
        assert_eq!(
            (ref_type.values.as_slice(), ref_type.values_complete),
            (&["branch".to_owned(), "tag".to_owned()][..], true)
        );
        // Every claim testkit's realistic GitLab token carries is in the table.
        for claim in gitlab_claims(ISS, NOW).as_object().unwrap().keys() {
            assert!(names.contains(&claim.as_str()), "{claim} is missing from the claim table");
        }
    }
}

/// Tokens every algorithm family can produce, good and bad, with their expected verdicts.
fn signature_cases() -> (String, Vec<(&'static str, Algorithm, String, bool)>) {
    let rsa = RsaKey::fixture_2048();
    let rotated = RsaKey::fixture_2048_rotated().with_kid(rsa.kid());
    let p256 = EcKey::generate_p256("p256");
    let p384 = EcKey::generate_p384("p384");
    let claims = gitlab_claims(ISS, NOW - 10);
    let tamper = |t: String| {
        let (input, sig) = t.rsplit_once('.').unwrap();
        let mut sig = sig.to_owned().into_bytes();
        sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
        format!("{input}.{}", String::from_utf8(sig).unwrap())
    };
    let mut cases = Vec::new();
    for (alg, name) in [
        (Algorithm::Rs256, "RS256"),
        (Algorithm::Rs384, "RS384"),
        (Algorithm::Rs512, "RS512"),
        (Algorithm::Ps256, "PS256"),
        (Algorithm::Ps384, "PS384"),
        (Algorithm::Ps512, "PS512"),
    ] {
        let good = mint(&Key::Rsa(&rsa, name), &claims);
        cases.push((name, alg, good.clone(), true));
        cases.push((name, alg, tamper(good), false));
        cases.push((name, alg, mint(&Key::Rsa(&rotated, name), &claims), false));
    }
    for (alg, key) in [(Algorithm::Es256, &p256), (Algorithm::Es384, &p384)] {
        let good = mint(&Key::Ec(key), &claims);
        cases.push(("EC", alg, good.clone(), true));
        cases.push(("EC", alg, tamper(good), false));
    }
    (jwks(&[rsa.jwk_any_alg(), p256.jwk(), p384.jwk()]), cases)
}

#[test]
fn native_signature_checks_agree_with_the_component_and_are_used() {
    let (jwks, cases) = signature_cases();
    let mut verdicts = Vec::new();
    for native in [true, false] {
        let tuning = Tuning { native_signatures: native, ..Tuning::default() };
        let host = Host::embedded_with_tuning(Limits::default(), tuning).unwrap();
        let mut config = config(ISS, &[AUDIENCE]);
        config.algorithms = vec![
            Algorithm::Rs256,
            Algorithm::Rs384,
            Algorithm::Rs512,
            Algorithm::Ps256,
            Algorithm::Ps384,
            Algorithm::Ps512,
            Algorithm::Es256,
            Algorithm::Es384,
        ];
        let mut verifier = new_verifier(&host, config, jwks.clone());
        let mine: Vec<_> = cases
            .iter()
            .map(|(name, _, token, _)| {
                (*name, verifier.verify(token, NOW).unwrap().map(|_| ()).map_err(|f| f.kind))
            })
            .collect();
        for ((name, alg, _, want), (_, got)) in cases.iter().zip(&mine) {
            assert_eq!(got.is_ok(), *want, "{name} {alg:?} native={native}: {got:?}");
        }
        let asked = verifier.native_signature_checks();
        if native {
            assert_eq!(
                asked,
                u64::try_from(cases.len()).unwrap(),
                "every signature checked natively"
            );
        } else {
            assert_eq!(asked, 0);
        }
        verdicts.push(mine);
    }
    assert_eq!(verdicts[0], verdicts[1], "native and in-component verdicts differ");
}

#[test]
fn check_judges_like_verify_and_returns_only_the_identity() {
    let key = RsaKey::fixture_2048();
    let token = token(&key);
    let mut verifier = new_verifier(&host(), config(ISS, &[AUDIENCE]), jwks(&[key.jwk()]));
    let verified = verifier.verify(&token, NOW).unwrap().unwrap();
    let checked = verifier.check(&token, NOW + 5).unwrap().unwrap();
    assert_eq!(checked.fingerprint, verified.fingerprint);
    assert_eq!(checked.jti, verified.claims.jti);
    assert_eq!(checked.expires_at, verified.claims.exp);
    // One signature check for the two calls: the second was a cache hit.
    assert_eq!(verifier.native_signature_checks(), 1);

    // Still judged: expiry (with the 60 s leeway) ...
    let failure = verifier.check(&token, verified.claims.exp + 60).unwrap().unwrap_err();
    assert_eq!(failure.kind, "expired");
    // ... a token never seen is verified in full ...
    let other = RsaKey::fixture_2048_rotated().with_kid(key.kid());
    let forged = mint(&Key::Rsa(&other, "RS256"), &gitlab_claims(ISS, NOW - 10));
    assert_eq!(verifier.check(&forged, NOW).unwrap().unwrap_err().kind, "bad-signature");
    // ... and a key rotation forgets what was verified with the old keys.
    let rotated = RsaKey::fixture_2048_rotated();
    verifier.replace_jwks(jwks(&[rotated.jwk()])).unwrap().unwrap();
    assert_eq!(verifier.check(&token, NOW).unwrap().unwrap_err().kind, "unknown-kid");
}
