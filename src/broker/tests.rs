use ring::rand::SystemRandom;
use serde_json::{json, Value};
use testkit::RsaKey;

use super::vend::{access_token_reply, az_utc, error_reply, Explain};
use super::*;
use crate::entra::{AccessToken, EntraError, RetryAfter};
use crate::gate::Failure;

const URL: &str = "https://broker.example.com";
const NOW: u64 = 1_760_000_000;
const UAMI: &str = "0b9a3c6e-8f1d-4e2a-9c7b-5d4e3f2a1b0c";

fn b64d(s: &str) -> Vec<u8> {
    crate::text::b64::decode(s).unwrap()
}

fn part(jws: &str, index: usize) -> Value {
    serde_json::from_slice(&b64d(jws.split('.').nth(index).unwrap())).unwrap()
}

fn issuer() -> BrokerIssuer {
    BrokerIssuer::builder(URL)
        .key(&RsaKey::fixture_2048().private_pem(), KeyUse::Signing, None)
        .key(&RsaKey::fixture_2048_rotated().private_pem(), KeyUse::Published, Some("next"))
        .build()
        .unwrap()
}

fn trace() -> JobTrace {
    JobTrace {
        project_path: Some("acme/payments".into()),
        job_id: Some("5550001".into()),
        pipeline_id: Some("990001".into()),
        gitlab_jti: Some("235b3a54-b797-45c7-ae9a-f72d7bc6ef5b".into()),
    }
}

/// Verifies an RS256 JWS against a JWKS document with RustCrypto's `rsa`, not ring.
fn verify_with_jwks(jws: &str, jwks: &str) -> bool {
    use rsa::signature::Verifier as _;
    let header = part(jws, 0);
    let jwks: Value = serde_json::from_str(jwks).unwrap();
    let (input, signature) = jws.rsplit_once('.').unwrap();
    jwks["keys"].as_array().unwrap().iter().filter(|k| k["kid"] == header["kid"]).any(|k| {
        let n = rsa::BigUint::from_bytes_be(&b64d(k["n"].as_str().unwrap()));
        let e = rsa::BigUint::from_bytes_be(&b64d(k["e"].as_str().unwrap()));
        let key =
            rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(rsa::RsaPublicKey::new(n, e).unwrap());
        let sig = rsa::pkcs1v15::Signature::try_from(b64d(signature).as_slice()).unwrap();
        key.verify(input.as_bytes(), &sig).is_ok()
    })
}

#[test]
fn the_discovery_document_and_jwks_are_what_entra_fetches() {
    let issuer = issuer();
    let discovery: Value = serde_json::from_str(&issuer.discovery_document()).unwrap();
    assert_eq!(
        discovery,
        json!({
            "issuer": URL,
            "jwks_uri": format!("{URL}/openid/v1/jwks"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    );
    let jwks: Value = serde_json::from_str(&issuer.jwks_document()).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "the next key is published before it signs");
    let first = RsaKey::fixture_2048();
    assert_eq!(keys[0]["kid"], first.kid(), "the default kid is the RFC 7638 thumbprint");
    assert_eq!(keys[0]["n"], first.jwk()["n"]);
    assert_eq!(keys[1]["kid"], "next");
    for key in keys {
        assert_eq!(
            (key["kty"].as_str(), key["use"].as_str(), key["alg"].as_str()),
            (Some("RSA"), Some("sig"), Some("RS256"))
        );
        let members: Vec<&str> = key.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"], "public members only");
    }
    assert_eq!(issuer.discovery_path(), "/.well-known/openid-configuration");
    assert_eq!(issuer.jwks_path(), "/openid/v1/jwks");
    let below = BrokerIssuer::builder("https://b.example.com/tenant-a")
        .key(&first.private_pem(), KeyUse::Signing, None)
        .build()
        .unwrap();
    assert_eq!(below.discovery_path(), "/tenant-a/.well-known/openid-configuration");
    assert_eq!(below.jwks_uri(), "https://b.example.com/tenant-a/openid/v1/jwks");
}

#[test]
fn the_assertion_carries_the_rule_the_cloud_and_the_job_and_verifies_against_the_jwks() {
    let issuer = issuer();
    let signed = issuer
        .sign(
            "gitlab-azure-oidc:rule:deploy",
            TOKEN_EXCHANGE_AUDIENCE,
            &trace(),
            NOW,
            &SystemRandom::new(),
        )
        .unwrap();
    let jws = signed.assertion.secret();
    assert!(verify_with_jwks(jws, &issuer.jwks_document()), "RustCrypto verifies it");
    let header = part(jws, 0);
    assert_eq!(header, json!({"alg": "RS256", "kid": RsaKey::fixture_2048().kid(), "typ": "JWT"}));
    let claims = part(jws, 1);
    assert_eq!(claims["iss"], URL);
    assert_eq!(claims["sub"], "gitlab-azure-oidc:rule:deploy");
    assert_eq!(claims["aud"], "api://AzureADTokenExchange");
    assert_eq!((claims["iat"].as_u64(), claims["nbf"].as_u64()), (Some(NOW), Some(NOW)));
    assert_eq!(claims["exp"].as_u64(), Some(NOW + DEFAULT_BROKER_ASSERTION_LIFETIME));
    assert_eq!(claims["project_path"], "acme/payments");
    assert_eq!(claims["job_id"], "5550001");
    assert_eq!(claims["pipeline_id"], "990001");
    assert_eq!(claims["gitlab_jti"], "235b3a54-b797-45c7-ae9a-f72d7bc6ef5b");
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!((jti.len(), &jti[14..15]), (36, "4"), "a UUID v4: {jti}");
    assert_eq!(signed.jti, jti);
    let again =
        issuer.sign("s", TOKEN_EXCHANGE_AUDIENCE, &trace(), NOW, &SystemRandom::new()).unwrap();
    assert_ne!(again.jti, signed.jti, "a fresh jti each time");
}

#[test]
fn rotation_publishes_the_next_key_first_and_signs_with_one_key() {
    let (old, new) = (RsaKey::fixture_2048(), RsaKey::fixture_2048_rotated());
    // Step 1: the new key is published; the old one signs.
    let step1 = BrokerIssuer::builder(URL)
        .key(&old.private_pem(), KeyUse::Signing, None)
        .key(&new.private_pem(), KeyUse::Published, None)
        .build()
        .unwrap();
    // Step 2: the new key signs; the old one stays published until its assertions expired.
    let step2 = BrokerIssuer::builder(URL)
        .key(&new.private_pem(), KeyUse::Signing, None)
        .public_key(&old.private_pem(), KeyUse::Published, None)
        .build()
        .unwrap();
    let rng = SystemRandom::new();
    let before = step1.sign("s", TOKEN_EXCHANGE_AUDIENCE, &trace(), NOW, &rng).unwrap();
    let after = step2.sign("s", TOKEN_EXCHANGE_AUDIENCE, &trace(), NOW, &rng).unwrap();
    assert_eq!(before.kid, old.kid());
    assert_eq!(after.kid, new.kid());
    // Every published JWKS verifies every assertion signed while it was published.
    for jwks in [step1.jwks_document(), step2.jwks_document()] {
        assert!(verify_with_jwks(before.assertion.secret(), &jwks));
        assert!(verify_with_jwks(after.assertion.secret(), &jwks));
    }
    assert_eq!(step1.kids(), step2.kids().into_iter().rev().collect::<Vec<_>>());
}

#[test]
fn issuers_that_entra_would_refuse_are_refused_when_built() {
    let key = RsaKey::fixture_2048().private_pem();
    let kind = |builder: BrokerIssuerBuilder| builder.build().unwrap_err().kind();
    assert_eq!(kind(BrokerIssuer::builder(URL)), "issuer-no-signing-key");
    assert_eq!(
        kind(BrokerIssuer::builder(URL).key(&key, KeyUse::Published, None)),
        "issuer-no-signing-key"
    );
    assert_eq!(
        kind(BrokerIssuer::builder(URL).key(&key, KeyUse::Signing, Some("a")).key(
            &RsaKey::fixture_2048_rotated().private_pem(),
            KeyUse::Signing,
            Some("b")
        )),
        "issuer-several-signing-keys"
    );
    assert_eq!(
        kind(BrokerIssuer::builder(URL).key(&key, KeyUse::Signing, None).public_key(
            &key,
            KeyUse::Published,
            None
        )),
        "issuer-duplicate-kid"
    );
    assert_eq!(
        kind(BrokerIssuer::builder(URL).public_key(&key, KeyUse::Signing, None)),
        "issuer-signing-key-public-only"
    );
    assert_eq!(
        kind(BrokerIssuer::builder(URL).key(&key, KeyUse::Signing, None).lifetime(601)),
        "lifetime-out-of-range"
    );
    assert_eq!(
        kind(BrokerIssuer::builder(format!("{URL}/")).key(&key, KeyUse::Signing, None)),
        "issuer-invalid-url"
    );
    assert_eq!(
        kind(BrokerIssuer::builder(URL).key(&key, KeyUse::Signing, Some(" "))),
        "issuer-invalid-kid"
    );
    let small = RsaKey::fixture_1024().private_pem();
    let error = BrokerIssuer::builder(URL).key(&small, KeyUse::Signing, None).build().unwrap_err();
    assert_eq!(error.kind(), "issuer-key-invalid");
    assert!(error.to_string().contains("1024 bits"), "{error}");
    let mut many = BrokerIssuer::builder(URL).key(&key, KeyUse::Signing, Some("signing"));
    for i in 0..MAX_PUBLISHED_KEYS {
        many = many.public_key(&key, KeyUse::Published, Some(&format!("k{i}")));
    }
    let error = many.build().unwrap_err();
    assert_eq!(error.kind(), "issuer-too-many-keys", "{error}");
    assert!(error.to_string().contains("AADSTS7000272"), "{error}");
    // For publishing only (plan), public keys suffice.
    let public = BrokerIssuer::builder(URL)
        .public_key(&key, KeyUse::Signing, None)
        .build_for_publishing()
        .unwrap();
    assert_eq!(public.kids(), [RsaKey::fixture_2048().kid()]);
    assert!(public
        .sign("s", TOKEN_EXCHANGE_AUDIENCE, &trace(), NOW, &SystemRandom::new())
        .is_err());
}

#[test]
fn the_token_exchange_audience_follows_the_cloud() {
    assert_eq!(token_exchange_audience(None), "api://AzureADTokenExchange");
    assert_eq!(
        token_exchange_audience(Some("login.microsoftonline.us")),
        "api://AzureADTokenExchangeUSGov"
    );
    assert_eq!(
        token_exchange_audience(Some("login.chinacloudapi.cn")),
        "api://AzureADTokenExchangeChina"
    );
    assert!(is_token_exchange_audience("API://AzureADTokenExchange"));
    assert!(!is_token_exchange_audience("https://broker.example.com"));
    assert_eq!(default_rule_subject("deploy"), "gitlab-azure-oidc:rule:deploy");
}

#[test]
fn identity_requests_are_azure_identitys() {
    let imds = IdentityEndpoint::imds().request(UAMI, TOKEN_EXCHANGE_AUDIENCE);
    assert_eq!(imds.method, "GET");
    assert_eq!(
        imds.url,
        format!("http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=api%3A%2F%2FAzureADTokenExchange&client_id={UAMI}")
    );
    assert_eq!(imds.headers, [("Metadata".to_owned(), "true".to_owned())]);
    let secret = "d3adb33f-identity-header";
    let endpoint =
        IdentityEndpoint::app_service("http://localhost:42356/msi/token", Secret::new(secret))
            .unwrap();
    let request = endpoint.request(UAMI, "api://AzureADTokenExchangeUSGov");
    assert_eq!(
        request.url,
        format!("http://localhost:42356/msi/token?api-version=2019-08-01&resource=api%3A%2F%2FAzureADTokenExchangeUSGov&client_id={UAMI}")
    );
    assert_eq!(request.headers, [("X-IDENTITY-HEADER".to_owned(), secret.to_owned())]);
    for shown in [format!("{request:?}"), format!("{endpoint:?}")] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert_eq!(
        IdentityEndpoint::app_service("ftp://x", Secret::new("s")).unwrap_err().kind(),
        "identity-endpoint-invalid"
    );
    assert_eq!(
        IdentityEndpoint::app_service("http://x", Secret::new("")).unwrap_err().kind(),
        "identity-endpoint-invalid"
    );
}

const MI_TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJtaSJ9.c2lnbmF0dXJl";

#[test]
fn identity_answers_are_read_as_imds_and_app_service_send_them() {
    let parse = |status: u16, body: &Value| {
        parse_identity_response(status, &[], body.to_string().as_bytes(), UAMI, NOW)
    };
    // IMDS: every number is a string.
    let token = parse(200, &json!({"access_token": MI_TOKEN, "client_id": UAMI, "expires_in": "86399", "expires_on": (NOW + 86399).to_string(), "resource": "api://AzureADTokenExchange", "token_type": "Bearer"})).unwrap();
    assert_eq!((token.token.secret(), token.expires_at), (MI_TOKEN, NOW + 86399));
    // Numbers, and only `expires_in`.
    assert_eq!(
        parse(200, &json!({"access_token": MI_TOKEN, "expires_on": NOW + 3600}))
            .unwrap()
            .expires_at,
        NOW + 3600
    );
    assert_eq!(
        parse(200, &json!({"access_token": MI_TOKEN, "expires_in": 3600})).unwrap().expires_at,
        NOW + 3600
    );
    let kind = |status, body: Value| parse(status, &body).unwrap_err().kind();
    assert_eq!(kind(200, json!({"expires_on": "1"})), "identity-answer-malformed");
    assert_eq!(
        kind(200, json!({"access_token": "not a jwt", "expires_in": 3600})),
        "identity-answer-malformed"
    );
    assert_eq!(kind(200, json!({"access_token": MI_TOKEN})), "identity-answer-malformed");
    assert_eq!(
        kind(200, json!({"access_token": MI_TOKEN, "expires_on": NOW + 10})),
        "identity-token-expired"
    );
    let missing =
        parse(400, &json!({"error": "invalid_request", "error_description": "Identity not found"}))
            .unwrap_err();
    assert_eq!(missing.kind(), "identity-not-assigned");
    assert!(
        missing.to_string().contains("Identity not found")
            && missing.hint().unwrap().contains(UAMI),
        "{missing}"
    );
    assert_eq!(kind(401, json!({})), "identity-endpoint-unauthorized");
    let busy =
        parse_identity_response(429, &[("Retry-After".into(), "7".into())], b"{}", UAMI, NOW)
            .unwrap_err();
    assert!(busy.is_retryable());
    assert_eq!((busy.retry_after(), busy.http_status()), (Some(7), 503));
    assert!(!missing.is_retryable());
    assert_eq!(missing.http_status(), 502);
}

fn vend(method: &str, headers: &[(&str, &str)], body: &str) -> Result<VendRequest, VendError> {
    let headers: Vec<(String, String)> =
        headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
    VendRequest::parse(method, &headers, body.as_bytes())
}

#[test]
fn vending_requests_take_a_bearer_token_and_an_optional_scope_and_kind() {
    let bearer = ("Authorization", "Bearer a.b.c");
    let plain = vend("POST", &[bearer], "").unwrap();
    assert_eq!(
        (plain.token(), plain.scope(), plain.kind()),
        ("a.b.c", None, VendKind::AccessToken)
    );
    let json_body = vend(
        "post",
        &[bearer, ("Content-Type", "application/json")],
        r#"{"scope":"https://vault.azure.net/.default","kind":"assertion"}"#,
    )
    .unwrap();
    assert_eq!(
        (json_body.scope(), json_body.kind()),
        (Some("https://vault.azure.net/.default"), VendKind::Assertion)
    );
    let form = vend(
        "POST",
        &[("authorization", "bearer a.b.c"), ("content-type", "application/x-www-form-urlencoded")],
        "scope=https%3A%2F%2Fvault.azure.net%2F.default&kind=access_token",
    )
    .unwrap();
    assert_eq!(form.scope(), Some("https://vault.azure.net/.default"));
    // A percent escape is two hex digits, never a signed number (`%+1`, `%-1`).
    let form_type = ("content-type", "application/x-www-form-urlencoded");
    for bad in ["scope=%+1", "scope=%-1", "scope=%1", "scope=%zz"] {
        let e = vend("POST", &[bearer, form_type], bad).unwrap_err();
        assert_eq!(e.kind(), "bad-request", "{bad}: {e}");
    }
    assert!(!format!("{plain:?}").contains("a.b.c"), "Debug redacts the token");

    let kind = |r: Result<VendRequest, VendError>| {
        let e = r.unwrap_err();
        (e.kind(), e.http_status())
    };
    assert_eq!(kind(vend("GET", &[bearer], "")), ("method-not-allowed", 405));
    assert_eq!(kind(vend("POST", &[], "")), ("missing-token", 401));
    assert_eq!(kind(vend("POST", &[("Authorization", "Bearer ")], "")), ("missing-token", 401));
    let basic = vend("POST", &[("Authorization", "Basic dXNlcjpzZWNyZXQ=")], "").unwrap_err();
    assert_eq!((basic.kind(), basic.http_status()), ("missing-token", 401));
    assert!(
        basic.to_string().contains("Basic") && !basic.to_string().contains("dXNlcjpzZWNyZXQ"),
        "{basic}"
    );
    assert!(basic.hint().unwrap().contains("Bearer"));
    // Found by the `vend_request` fuzz target: a header without a scheme is the token itself
    // (or a tab after `Bearer`), and none of it may be shown as the "scheme".
    let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl";
    for header in [token.to_owned(), format!("Token\u{1}{token}"), format!("X{token} {token}")] {
        let e = vend("POST", &[("Authorization", header.as_str())], "").unwrap_err();
        assert_eq!(e.kind(), "missing-token");
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(&token[..12]), "{shown}");
    }
    let tab = vend("POST", &[("Authorization", &format!("Bearer\t{token}"))], "").unwrap();
    assert_eq!(tab.token(), token, "a tab separates the scheme too");
    assert_eq!(kind(vend("POST", &[bearer], r#"{"kind":"refresh"}"#)), ("bad-request", 400));
    assert_eq!(kind(vend("POST", &[bearer], r#"{"scopes":"x"}"#)), ("bad-request", 400));
    assert_eq!(kind(vend("POST", &[bearer], "[1]")), ("bad-request", 400));
    assert_eq!(
        kind(vend("POST", &[bearer, ("content-type", "text/plain")], "x")),
        ("bad-request", 400)
    );
    assert_eq!(
        kind(vend("POST", &[bearer], &" ".repeat(vend::MAX_VEND_BODY + 1))),
        ("body-too-large", 413)
    );
}

#[test]
fn the_success_reply_is_azs_json() {
    let answer =
        json!({"token_type": "Bearer", "expires_in": 3661, "access_token": "eyJ.access.token"});
    let access: AccessToken =
        crate::entra::parse_token_response(200, &[], answer.to_string().as_bytes(), 1_764_115_200)
            .unwrap();
    let reply = access_token_reply(&access, "t-1");
    assert_eq!(reply.status, 200);
    assert!(reply.headers.contains(&("cache-control".to_owned(), "no-store".to_owned())));
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(
        body,
        json!({"accessToken": "eyJ.access.token", "expiresOn": "2025-11-26 01:01:01.000000",
               "expires_on": 1_764_115_200u64 + 3661, "subscription": null, "tenant": "t-1",
               "tokenType": "Bearer"})
    );
    assert!(!format!("{reply:?}").contains("eyJ.access.token"));
    assert_eq!(az_utc(0), "1970-01-01 00:00:00.000000");
    assert_eq!(az_utc(951_782_400), "2000-02-29 00:00:00.000000");
    assert_eq!(az_utc(4_107_542_399), "2100-02-28 23:59:59.000000");
}

#[test]
fn error_replies_carry_kind_hint_status_and_retry_after() {
    let throttled = Failure::Entra(EntraError::RateLimited {
        retry_after: Some(RetryAfter { raw: "12".into(), seconds: Some(12) }),
        entra: None,
    });
    let reply = error_reply(&throttled, Explain::Summary);
    assert_eq!(reply.status, 429);
    assert!(reply.headers.contains(&("retry-after".to_owned(), "12".to_owned())));
    let missing = error_reply(&Failure::Vend(VendError::MissingToken), Explain::Summary);
    assert_eq!(missing.status, 401);
    assert!(missing.headers.iter().any(|(n, _)| n == "www-authenticate"));
    let body: Value = serde_json::from_str(&missing.body).unwrap();
    assert_eq!(body["error"], "missing-token");
    assert!(body["hint"].as_str().unwrap().contains("Authorization: Bearer"));
    assert_eq!(error_reply(&Failure::NoKeys, Explain::Summary).status, 503);
}

#[test]
fn a_broker_configuration_names_secrets_by_variable_and_never_quotes_them() {
    let key = RsaKey::fixture_2048().private_pem();
    let env = |name: &str| (name == "BROKER_KEY").then(|| key.clone());
    let document = json!({
        "issuer": {"url": URL, "keys": [{"private_key": {"env": "BROKER_KEY"}, "use": "signing"}]},
        "managed_identity": {"endpoint": "app-service", "url": "http://localhost:42356/msi/token", "header": {"value": "hdr-secret"}},
    });
    let config =
        BrokerConfig::parse(document.to_string().as_bytes(), &env, ConfigMode::Broker).unwrap();
    assert_eq!(config.issuer.as_ref().unwrap().signing_kid(), Some(RsaKey::fixture_2048().kid()));
    assert_eq!(config.identity.as_ref().unwrap().name(), "app-service");
    assert!(!format!("{config:?}").contains("hdr-secret"));

    let parse = |doc: Value, env: &dyn Fn(&str) -> Option<String>, mode| {
        BrokerConfig::parse(doc.to_string().as_bytes(), env, mode).unwrap_err()
    };
    let unset = parse(document.clone(), &|_| None, ConfigMode::Broker);
    assert_eq!(unset.kind(), "broker-env-not-set");
    assert!(
        unset.to_string().contains("BROKER_KEY")
            && unset.to_string().contains("issuer.keys[0].private_key"),
        "{unset}"
    );
    let typo = parse(json!({"isuer": {}}), &env, ConfigMode::Broker);
    assert_eq!(typo.kind(), "broker-config-unknown-field", "{typo}");
    let default_env = parse(
        json!({"managed_identity": {"endpoint": "app-service"}}),
        &|_| None,
        ConfigMode::Broker,
    );
    assert!(default_env.to_string().contains("IDENTITY_ENDPOINT"), "{default_env}");
    // Found by the `broker_config` fuzz target's author: a variable that holds no URL (the
    // header's secret, a key) named as the endpoint is refused without its value.
    let swapped = |name: &str| {
        (name == "IDENTITY_HEADER").then(|| "7Qm2xK9vLr4TnW8pZc3HyB6dFs1JgA5e".to_owned())
    };
    let wrong = parse(
        json!({"managed_identity": {"endpoint": "app-service", "url": {"env": "IDENTITY_HEADER"}}}),
        &swapped,
        ConfigMode::Broker,
    );
    assert!(!format!("{wrong} {wrong:?}").contains("7Qm2xK9v"), "{wrong}");
    assert!(wrong.to_string().contains("http"), "{wrong}");
    // A bad key is reported without its text.
    let bad = parse(
        json!({"issuer": {"url": URL, "keys": [{"private_key": {"value": "-----BEGIN RSA PRIVATE KEY-----\nMIIsecret\n-----END RSA PRIVATE KEY-----"}, "use": "signing"}]}}),
        &env,
        ConfigMode::Broker,
    );
    assert!(
        !bad.to_string().contains("MIIsecret") && !format!("{bad:?}").contains("MIIsecret"),
        "{bad}"
    );
    // For a plan, a public key is enough and unset variables fall back to it.
    let plan = json!({"issuer": {"url": URL, "keys": [{"private_key": {"env": "UNSET"}, "public_key": {"value": key}, "use": "signing"}]}});
    let config =
        BrokerConfig::parse(plan.to_string().as_bytes(), &|_| None, ConfigMode::Plan).unwrap();
    assert_eq!(config.issuer.unwrap().kids(), [RsaKey::fixture_2048().kid()]);
}
