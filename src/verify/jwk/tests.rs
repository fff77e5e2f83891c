use serde_json::{json, Value};
use testkit::{jwks, EcKey, RsaKey};

use super::*;

fn parse(keys: &[Value]) -> Jwks {
    Jwks::parse(jwks(keys).as_bytes()).expect("JWKS parses")
}

#[test]
fn reads_gitlab_shaped_rsa_keys_and_ec_keys() {
    let rsa = RsaKey::fixture_2048();
    let ec = EcKey::generate_p384("ec");
    let set = parse(&[rsa.jwk(), ec.jwk()]);
    assert_eq!(set.keys().len(), 2);
    assert_eq!(set.keys()[0].kind, KeyKind::Rsa { bits: 2048 });
    assert_eq!(set.keys()[1].kind, KeyKind::Ec { curve: "P-384" });
    assert!(set.skipped().is_empty());
}

#[test]
fn skips_unusable_keys_with_reasons() {
    let rsa = RsaKey::fixture_2048();
    let mut enc = rsa.clone().with_kid("enc").jwk();
    enc["use"] = json!("enc");
    let mut wrap = rsa.clone().with_kid("wrap").jwk();
    wrap["key_ops"] = json!(["wrapKey"]);
    let small = RsaKey::fixture_1024().jwk();
    let oct = json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"});
    let okp = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "ed"});
    let p521 = json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "p521"});
    let bad_b64 = json!({"kty": "RSA", "kid": "pad", "n": "AQAB==", "e": "AQAB"});
    let short_ec = json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "short"});
    let e_even = {
        let mut k = rsa.clone().with_kid("even").jwk();
        k["e"] = json!("AQAA");
        k
    };
    let set = parse(&[enc, wrap, small, oct, okp, p521, bad_b64, short_ec, e_even, rsa.jwk()]);
    assert_eq!(set.keys().len(), 1);
    let reasons: Vec<(Option<&str>, &str)> =
        set.skipped().iter().map(|s| (s.kid.as_deref(), s.reason.as_str())).collect();
    assert_eq!(reasons.len(), 9);
    assert!(reasons[0].1.contains("`use` is `enc`"), "{reasons:?}");
    assert!(reasons[1].1.contains("key_ops"));
    assert!(reasons[2].1.contains("1024 bits"));
    assert!(reasons[3].1.contains("`oct`"));
    assert!(reasons[4].1.contains("`OKP`"));
    assert!(reasons[5].1.contains("P-521"));
    assert!(reasons[6].1.contains("base64url"));
    assert!(reasons[7].1.contains("32 bytes"));
    assert!(reasons[8].1.contains("exponent"));
}

#[test]
fn a_token_naming_a_refused_key_gets_the_reason() {
    let small = RsaKey::fixture_1024();
    let set = parse(&[small.jwk()]);
    let e = set
        .verify(Some(small.kid()), Algorithm::Rs256, b"x", b"y", &Limits::default(), None)
        .unwrap_err();
    assert!(
        matches!(&e, VerifyError::KeyRefused { reason, .. } if reason.contains("1024")),
        "{e:?}"
    );
}

#[test]
fn whole_document_errors_name_the_limit() {
    assert_eq!(Jwks::parse(b"[]").unwrap_err(), JwksError::NoKeysArray);
    assert_eq!(Jwks::parse(br#"{"keys":{}}"#).unwrap_err(), JwksError::NoKeysArray);
    assert!(matches!(Jwks::parse(b"<html>").unwrap_err(), JwksError::Json { .. }));
    assert_eq!(
        Jwks::parse(br#"{"keys":[],"keys":[]}"#).unwrap_err(),
        JwksError::DuplicateMember { name: "keys".into() }
    );
    let limits = Limits { max_jwks_keys: 2, max_jwks_bytes: 100, ..Limits::default() };
    let three = br#"{"keys":[{},{},{}]}"#;
    assert_eq!(
        Jwks::parse_with_limits(three, &limits).unwrap_err(),
        JwksError::TooManyKeys { count: 3, limit: 2 }
    );
    let big = vec![b' '; 101];
    assert_eq!(
        Jwks::parse_with_limits(&big, &limits).unwrap_err(),
        JwksError::TooLarge { size: 101, limit: 100 }
    );
}

#[test]
fn leading_zero_in_modulus_is_tolerated() {
    let rsa = RsaKey::fixture_2048();
    let mut jwk = rsa.jwk();
    let n = crate::text::b64::decode(jwk["n"].as_str().unwrap()).unwrap();
    let mut padded = vec![0u8];
    padded.extend_from_slice(&n);
    jwk["n"] = json!(crate::text::b64::encode(&padded));
    let set = parse(&[jwk]);
    assert_eq!(set.keys()[0].kind, KeyKind::Rsa { bits: 2048 });
}
