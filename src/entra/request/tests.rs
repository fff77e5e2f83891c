#![allow(deprecated)] // ring::test::rand: deterministic randomness for known-answer tests.

use ring::rand::SystemRandom;
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256};
use ring::test::rand::FixedByteRandom;
use serde_json::Value;

use super::*;
use crate::entra::{AssertionAlgorithm, AzureTarget};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "97e0a5b7-d745-40b6-94fe-5f77d35c6e05";
const NOW: u64 = 1_760_000_000;
/// A compact JWS in shape; its content does not matter to the request builder.
const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwcm9qZWN0X3BhdGg6YWNtZS9wYXltZW50cyJ9.c2lnbmF0dXJl";

const KEY_PEM: &str = include_str!("../testdata/rsa-2048.key.pem");
const CERT_PEM: &str = include_str!("../testdata/rsa-2048.cert.pem");
const KEY_PK8: &[u8] = include_bytes!("../testdata/rsa-2048.key.pk8.der");
const SPKI: &[u8] = include_bytes!("../testdata/rsa-2048.spki.der");
const CERT_SHA1_HEX: &str = include_str!("../testdata/rsa-2048.cert.sha1");
const CERT_SHA256_HEX: &str = include_str!("../testdata/rsa-2048.cert.sha256");

fn target() -> AzureTarget {
    AzureTarget::builder(TENANT, CLIENT).build().unwrap()
}

fn credential(alg: AssertionAlgorithm) -> CertificateCredential {
    CertificateCredential::from_pem(KEY_PEM, CERT_PEM).unwrap().algorithm(alg)
}

/// openssl's hex fingerprint as base64url.
fn thumbprint(hex_text: &str) -> String {
    testkit::b64(&hex::decode(hex_text.trim()).unwrap())
}

/// The RSAPublicKey inside openssl's SubjectPublicKeyInfo (a 24-byte prefix for RSA-2048), which
/// is the form ring verifies with.
fn rsa_public_key() -> &'static [u8] {
    let key = &SPKI[24..];
    assert_eq!(&key[..4], [0x30, 0x82, 0x01, 0x0a], "RSAPublicKey SEQUENCE");
    key
}

fn form_value<'a>(body: &'a str, name: &str) -> &'a str {
    body.split('&').find_map(|p| p.strip_prefix(&format!("{name}="))).unwrap()
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&crate::text::b64::decode(part).unwrap()).unwrap()
}

#[test]
fn federated_request_body_is_exact() {
    let r = build_federated_request(&target(), TOKEN).unwrap();
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.url,
        "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
    );
    assert_eq!(
        r.headers,
        [
            ("Content-Type".to_owned(), "application/x-www-form-urlencoded".to_owned()),
            ("Accept".to_owned(), "application/json".to_owned()),
        ]
    );
    let expected = format!(
        "client_id=97e0a5b7-d745-40b6-94fe-5f77d35c6e05\
         &scope=https%3A%2F%2Fmanagement.azure.com%2F.default\
         &grant_type=client_credentials\
         &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
         &client_assertion={TOKEN}"
    );
    assert_eq!(r.body, expected);
}

#[test]
fn federated_request_has_the_documented_fields_encoded_as_documented() {
    // The request in Microsoft's client-credentials doc (entra-token-request.md section 1), with
    // its elided assertion replaced by ours. The fields come in another order there; each field
    // must match byte for byte.
    let documented = format!(
        "scope=https%3A%2F%2Fgraph.microsoft.com%2F.default\
         &client_id=97e0a5b7-d745-40b6-94fe-5f77d35c6e05\
         &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
         &client_assertion={TOKEN}\
         &grant_type=client_credentials"
    );
    let graph = AzureTarget::builder(TENANT, CLIENT)
        .scope("https://graph.microsoft.com/.default")
        .build()
        .unwrap();
    let ours = build_federated_request(&graph, TOKEN).unwrap().body;
    let mut ours: Vec<&str> = ours.split('&').collect();
    let mut theirs: Vec<&str> = documented.split('&').collect();
    ours.sort_unstable();
    theirs.sort_unstable();
    assert_eq!(ours, theirs);
}

#[test]
fn the_gitlab_token_is_sent_verbatim() {
    let r = build_federated_request(&target(), TOKEN).unwrap();
    assert_eq!(form_value(&r.body, "client_assertion"), TOKEN);
    assert!(r.body.ends_with(TOKEN));
}

#[test]
fn debug_redacts_the_assertion() {
    let r = build_federated_request(&target(), TOKEN).unwrap();
    let debug = format!("{r:?}");
    assert!(!debug.contains("c2lnbmF0dXJl"), "{debug}");
    assert!(!debug.contains("eyJ"), "{debug}");
    assert!(debug.contains("client_assertion=[redacted]"), "{debug}");
    assert!(debug.contains("client_id=97e0a5b7"), "{debug}");
    assert_eq!(
        redact_form("a=1&client_secret=s3cret&client_assertion=x.y.z"),
        "a=1&client_secret=[redacted]&client_assertion=[redacted]"
    );
}

#[test]
fn malformed_tokens_are_refused_without_echoing_them() {
    let cases: Vec<(String, RequestError)> = vec![
        (String::new(), RequestError::AssertionEmpty),
        (format!("{TOKEN}\n"), RequestError::AssertionWhitespace),
        (format!(" {TOKEN}"), RequestError::AssertionWhitespace),
        ("abc.def".to_owned(), RequestError::AssertionNotCompact { parts: 2 }),
        ("a.b.c.d.e".to_owned(), RequestError::AssertionNotCompact { parts: 5 }),
        (
            "ab+c.d.e".to_owned(),
            RequestError::AssertionInvalidCharacter { index: 2, character: '+' },
        ),
        (
            "ab c.d.e".to_owned(),
            RequestError::AssertionInvalidCharacter { index: 2, character: ' ' },
        ),
        ("a.b.c=".to_owned(), RequestError::AssertionInvalidCharacter { index: 5, character: '=' }),
        ("a.é.c".to_owned(), RequestError::AssertionInvalidCharacter { index: 2, character: 'é' }),
        (
            format!("{}.b.c", "a".repeat(16 * 1024)),
            RequestError::AssertionTooLarge { size: 16 * 1024 + 4, limit: 16 * 1024 },
        ),
    ];
    for (token, expected) in cases {
        let e = build_federated_request(&target(), &token).expect_err("must be refused");
        assert_eq!(e, expected, "{token:?}");
        if token.len() > 3 {
            assert!(!e.to_string().contains(token.trim()), "{e}");
        }
    }
}

#[test]
fn form_encoding_follows_the_whatwg_serializer() {
    assert_eq!(form_encode(&[("a", "AZaz09*-._")]), "a=AZaz09*-._");
    assert_eq!(form_encode(&[("a b", "c d")]), "a+b=c+d");
    assert_eq!(form_encode(&[("k", "~!'()&=+%/:?#")]), "k=%7E%21%27%28%29%26%3D%2B%25%2F%3A%3F%23");
    assert_eq!(form_encode(&[("k", "é\u{1F600}")]), "k=%C3%A9%F0%9F%98%80");
    assert_eq!(form_encode(&[("x", ""), ("y", "1")]), "x=&y=1");
    assert_eq!(form_encode(&[]), "");
}

#[test]
fn certificate_request_rs256_is_exact_against_an_independent_signer() {
    let rng = FixedByteRandom { byte: 0x42 };
    let r = build_certificate_request(&target(), &credential(AssertionAlgorithm::Rs256), NOW, &rng)
        .unwrap();
    let header = format!(r#"{{"alg":"RS256","typ":"JWT","x5t":"{}"}}"#, thumbprint(CERT_SHA1_HEX));
    let claims = format!(
        r#"{{"aud":"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token","exp":{},"iat":{NOW},"iss":"{CLIENT}","jti":"42424242-4242-4242-8242-424242424242","nbf":{NOW},"sub":"{CLIENT}"}}"#,
        NOW + 300
    );
    let input = format!("{}.{}", testkit::b64(header.as_bytes()), testkit::b64(claims.as_bytes()));
    // RS256 is deterministic: RustCrypto's `rsa` must produce the very same signature.
    let signature = testkit::RsaKey::from_pkcs8_der(KEY_PK8).sign("RS256", input.as_bytes());
    let assertion = format!("{input}.{}", testkit::b64(&signature));
    let expected = format!(
        "client_id={CLIENT}\
         &scope=https%3A%2F%2Fmanagement.azure.com%2F.default\
         &grant_type=client_credentials\
         &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
         &client_assertion={assertion}"
    );
    assert_eq!(r.body, expected);
    assert_eq!(r.url, target().token_endpoint());
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, rsa_public_key())
        .verify(input.as_bytes(), &signature)
        .unwrap();
}

#[test]
fn certificate_request_ps256_verifies_with_ring_and_has_the_documented_header_and_claims() {
    let r = build_certificate_request(
        &target(),
        &credential(AssertionAlgorithm::Ps256),
        NOW,
        &SystemRandom::new(),
    )
    .unwrap();
    let assertion = form_value(&r.body, "client_assertion");
    let parts: Vec<&str> = assertion.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = decode_part(parts[0]);
    assert_eq!(
        header,
        serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": thumbprint(CERT_SHA256_HEX)})
    );
    let claims = decode_part(parts[1]);
    assert_eq!(claims["aud"], target().token_endpoint());
    assert_eq!(claims["iss"], CLIENT);
    assert_eq!(claims["sub"], CLIENT);
    assert_eq!(claims["nbf"], NOW);
    assert_eq!(claims["iat"], NOW);
    assert_eq!(claims["exp"], NOW + 300);
    let jti = claims["jti"].as_str().unwrap();
    assert!(crate::text::ident::is_guid(jti), "{jti}");
    assert_eq!(&jti[14..15], "4", "version 4: {jti}");
    assert!("89ab".contains(&jti[19..20]), "variant 1: {jti}");
    assert_eq!(claims.as_object().unwrap().len(), 7);

    let input = format!("{}.{}", parts[0], parts[1]);
    let signature = crate::text::b64::decode(parts[2]).unwrap();
    let key = UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, rsa_public_key());
    key.verify(input.as_bytes(), &signature).unwrap();
    // The check can fail: another payload, or PKCS#1 v1.5 instead of PSS, does not verify.
    let tampered = format!("{}.{}", parts[0], testkit::b64(b"{\"aud\":\"x\"}"));
    assert!(key.verify(tampered.as_bytes(), &signature).is_err());
    assert!(UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, rsa_public_key())
        .verify(input.as_bytes(), &signature)
        .is_err());
}

#[test]
fn certificate_assertions_are_fresh_and_follow_the_lifetime() {
    let rng = SystemRandom::new();
    let cred = credential(AssertionAlgorithm::Ps256).lifetime(600).unwrap();
    let jti = |r: &TokenRequest| {
        let assertion = form_value(&r.body, "client_assertion");
        decode_part(assertion.split('.').nth(1).unwrap())
    };
    let a = jti(&build_certificate_request(&target(), &cred, NOW, &rng).unwrap());
    let b = jti(&build_certificate_request(&target(), &cred, NOW, &rng).unwrap());
    assert_ne!(a["jti"], b["jti"]);
    assert_eq!(a["exp"], NOW + 600);
}

#[test]
fn certificate_assertion_audience_follows_the_authority() {
    let t = AzureTarget::builder("contoso.onmicrosoft.com", CLIENT)
        .dangerous()
        .authority_url("http://127.0.0.1:8080")
        .build()
        .unwrap();
    let r = build_certificate_request(
        &t,
        &credential(AssertionAlgorithm::Ps256),
        NOW,
        &SystemRandom::new(),
    )
    .unwrap();
    assert_eq!(r.url, "http://127.0.0.1:8080/contoso.onmicrosoft.com/oauth2/v2.0/token");
    let claims = decode_part(form_value(&r.body, "client_assertion").split('.').nth(1).unwrap());
    assert_eq!(claims["aud"], r.url);
}

#[test]
fn certificate_request_debug_redacts_the_signed_assertion() {
    let r = build_certificate_request(
        &target(),
        &credential(AssertionAlgorithm::Ps256),
        NOW,
        &SystemRandom::new(),
    )
    .unwrap();
    let assertion = form_value(&r.body, "client_assertion").to_owned();
    let debug = format!("{r:?}");
    assert!(!debug.contains(&assertion));
    assert!(!debug.contains(assertion.split('.').nth(2).unwrap()));
    assert!(debug.contains("client_assertion=[redacted]"));
}

#[test]
fn request_error_kinds_are_stable() {
    let kinds: Vec<&str> = [
        RequestError::AssertionEmpty,
        RequestError::AssertionInvalidCharacter { index: 0, character: ' ' },
        RequestError::AssertionNotCompact { parts: 1 },
        RequestError::AssertionWhitespace,
        RequestError::AssertionTooLarge { size: 2, limit: 1 },
        RequestError::RandomFailed,
        RequestError::SigningFailed,
    ]
    .iter()
    .map(RequestError::kind)
    .collect();
    assert_eq!(
        kinds,
        [
            "assertion-empty",
            "assertion-invalid-character",
            "assertion-not-compact",
            "assertion-whitespace",
            "assertion-too-large",
            "random-failed",
            "signing-failed",
        ]
    );
}
