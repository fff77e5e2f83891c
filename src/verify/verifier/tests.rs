use serde_json::{json, Value};
use testkit::{gitlab_claims, jwks, mint, mint_raw, EcKey, Key, RsaKey, AUDIENCE};

use super::*;

const ISS: &str = "https://gitlab.example.com";
const NOW: u64 = 1_760_000_000;

fn config() -> VerifierConfigBuilder {
    VerifierConfig::builder(ISS).audience(AUDIENCE)
}

fn verifier_for(key: &RsaKey) -> Verifier {
    Verifier::new(config().build().unwrap(), Jwks::parse(jwks(&[key.jwk()]).as_bytes()).unwrap())
}

fn token_with(key: &RsaKey, edit: impl FnOnce(&mut Value)) -> String {
    let mut claims = gitlab_claims(ISS, NOW - 10);
    edit(&mut claims);
    mint(&Key::Rsa(key, "RS256"), &claims)
}

fn err(verifier: &Verifier, token: &str) -> VerifyError {
    verifier.verify(token, NOW).expect_err("token must be refused")
}

#[test]
fn accepts_a_modern_gitlab_token_and_types_every_claim() {
    let key = RsaKey::fixture_2048();
    let verified = verifier_for(&key).verify(&token_with(&key, |_| {}), NOW).unwrap();
    assert_eq!(verified.header.alg, Algorithm::Rs256);
    assert_eq!(verified.header.kid.as_deref(), Some(key.kid()));
    let c = &verified.claims;
    assert_eq!(c.iss, ISS);
    assert_eq!(c.aud, Some(crate::Audience::One(AUDIENCE.into())));
    assert_eq!(c.jti.as_deref(), Some("235b3a54-b797-45c7-ae9a-f72d7bc6ef5b"));
    let g = &c.gitlab;
    assert_eq!(g.project_path.as_deref(), Some("acme/payments"));
    assert_eq!(g.ref_protected, Some(true));
    assert_eq!(g.environment_protected, Some(true));
    assert_eq!(g.runner_id, Some(12));
    assert_eq!(
        g.groups_direct.as_deref(),
        Some(&["acme".to_owned(), "acme/platform".to_owned()][..])
    );
    assert_eq!(g.user_identities.as_ref().map(Vec::len), Some(1));
    assert_eq!(c.raw.get("sha").and_then(Value::as_str), g.sha.as_deref());
}

#[test]
fn keeps_unknown_claims_readable() {
    let key = RsaKey::fixture_2048();
    let token = token_with(&key, |c| c["future_claim"] = json!({"nested": [1, 2]}));
    let verified = verifier_for(&key).verify(&token, NOW).unwrap();
    assert_eq!(verified.claims.raw["future_claim"]["nested"][1], json!(2));
    assert!(verified.claims.raw_json().contains("future_claim"));
}

#[test]
fn audience_array_matches_any_configured_audience() {
    let key = RsaKey::fixture_2048();
    let token = token_with(&key, |c| c["aud"] = json!(["other", AUDIENCE]));
    assert!(verifier_for(&key).verify(&token, NOW).is_ok());
}

#[test]
fn wrong_audience_names_both_sides_and_the_gitlab_setting() {
    let key = RsaKey::fixture_2048();
    let token = token_with(&key, |c| c["aud"] = json!("https://vault.example.com"));
    let e = err(&verifier_for(&key), &token);
    assert_eq!(
        e,
        VerifyError::AudienceMismatch {
            expected: vec![AUDIENCE.into()],
            found: vec!["https://vault.example.com".into()]
        }
    );
    assert!(e.to_string().contains("id_tokens:<NAME>:aud"), "{e}");
}

#[test]
fn missing_audience_is_refused_unless_insecurely_skipped() {
    let key = RsaKey::fixture_2048();
    let token = token_with(&key, |c| {
        c.as_object_mut().unwrap().remove("aud");
    });
    assert_eq!(err(&verifier_for(&key), &token), VerifyError::ClaimMissing { claim: "aud".into() });
    let lax = Verifier::new(
        VerifierConfig::builder(ISS).dangerous().skip_audience_check().build().unwrap(),
        Jwks::parse(jwks(&[key.jwk()]).as_bytes()).unwrap(),
    );
    assert!(lax.verify(&token, NOW).is_ok());
}

#[test]
fn config_requires_an_audience_an_issuer_and_an_algorithm() {
    assert_eq!(VerifierConfig::builder(ISS).build(), Err(ConfigError::NoAudience));
    assert_eq!(VerifierConfig::builder("").audience("a").build(), Err(ConfigError::EmptyIssuer));
    assert_eq!(config().algorithms([]).build(), Err(ConfigError::NoAlgorithms));
    for name in ["none", "HS256", "ES512"] {
        assert_eq!(
            config().algorithm_names([name]).map(|_| ()),
            Err(ConfigError::UnknownAlgorithm { name: name.into() })
        );
    }
}

#[test]
fn expiry_honours_leeway_and_says_by_how_much() {
    let key = RsaKey::fixture_2048();
    let v = verifier_for(&key);
    let token = token_with(&key, |c| c["exp"] = json!(NOW - 60));
    assert_eq!(err(&v, &token), VerifyError::Expired { exp: NOW - 60, now: NOW, leeway: 60 });
    assert!(err(&v, &token).to_string().contains("60 seconds before"));
    let token = token_with(&key, |c| c["exp"] = json!(NOW - 59));
    assert!(v.verify(&token, NOW).is_ok(), "inside the leeway");
    let strict = Verifier::new(
        config().leeway(0).build().unwrap(),
        Jwks::parse(jwks(&[key.jwk()]).as_bytes()).unwrap(),
    );
    let token = token_with(&key, |c| c["exp"] = json!(NOW));
    assert!(matches!(err(&strict, &token), VerifyError::Expired { .. }), "exp is exclusive");
}

#[test]
fn exp_is_required_and_must_be_a_number() {
    let key = RsaKey::fixture_2048();
    let v = verifier_for(&key);
    let token = token_with(&key, |c| {
        c.as_object_mut().unwrap().remove("exp");
    });
    assert_eq!(err(&v, &token), VerifyError::ClaimMissing { claim: "exp".into() });
    let token = token_with(&key, |c| c["exp"] = json!("1760000000"));
    assert!(matches!(err(&v, &token), VerifyError::ClaimInvalid { claim, .. } if claim == "exp"));
    let token = token_with(&key, |c| c["exp"] = json!(-5));
    assert!(matches!(err(&v, &token), VerifyError::ClaimInvalid { claim, .. } if claim == "exp"));
    let token = token_with(&key, |c| c["exp"] = json!((NOW + 100) as f64 + 0.5));
    assert!(v.verify(&token, NOW).is_ok(), "fractional NumericDate");
}

#[test]
fn nbf_and_iat_in_the_future_are_refused_beyond_leeway() {
    let key = RsaKey::fixture_2048();
    let v = verifier_for(&key);
    let token = token_with(&key, |c| c["nbf"] = json!(NOW + 61));
    assert_eq!(err(&v, &token), VerifyError::NotYetValid { nbf: NOW + 61, now: NOW, leeway: 60 });
    let token = token_with(&key, |c| c["nbf"] = json!(NOW + 60));
    assert!(v.verify(&token, NOW).is_ok());
    let token = token_with(&key, |c| c["iat"] = json!(NOW + 61));
    assert_eq!(
        err(&v, &token),
        VerifyError::IssuedInFuture { iat: NOW + 61, now: NOW, leeway: 60 }
    );
}

#[test]
fn maximum_age_is_optional_and_needs_iat() {
    let key = RsaKey::fixture_2048();
    let jwks_doc = jwks(&[key.jwk()]);
    let v = Verifier::new(
        config().max_age(300).build().unwrap(),
        Jwks::parse(jwks_doc.as_bytes()).unwrap(),
    );
    let token = token_with(&key, |c| c["iat"] = json!(NOW - 301));
    assert_eq!(err(&v, &token), VerifyError::TooOld { iat: NOW - 301, now: NOW, max_age: 300 });
    let token = token_with(&key, |c| {
        c.as_object_mut().unwrap().remove("iat");
    });
    assert_eq!(err(&v, &token), VerifyError::ClaimMissing { claim: "iat".into() });
    assert!(verifier_for(&key)
        .verify(&token_with(&key, |c| c["iat"] = json!(NOW - 3000)), NOW)
        .is_ok());
}

#[test]
fn issuer_near_misses_are_named() {
    let key = RsaKey::fixture_2048();
    let v = verifier_for(&key);
    let cases = [
        ("https://gitlab.example.com/", Some(IssuerNearMiss::TrailingSlash)),
        ("gitlab.example.com", Some(IssuerNearMiss::Scheme)),
        ("http://gitlab.example.com", Some(IssuerNearMiss::Scheme)),
        ("https://GitLab.example.com", Some(IssuerNearMiss::Case)),
        ("https://gitlab.com", None),
    ];
    for (iss, near_miss) in cases {
        let token = token_with(&key, |c| c["iss"] = json!(iss));
        assert_eq!(
            err(&v, &token),
            VerifyError::IssuerMismatch { expected: ISS.into(), found: iss.into(), near_miss },
            "{iss}"
        );
    }
}

#[test]
fn typed_claims_with_wrong_types_are_refused_with_the_claim_named() {
    let key = RsaKey::fixture_2048();
    let v = verifier_for(&key);
    let cases = [
        ("ref_protected", json!(true)),
        ("ref_protected", json!("yes")),
        ("environment_protected", json!("TRUE")),
        ("runner_id", json!("12")),
        ("project_id", json!(4242)),
        ("groups_direct", json!("acme")),
        ("user_identities", json!([{"provider": "github"}])),
        ("aud", json!(42)),
        ("iss", json!(["https://gitlab.example.com"])),
        ("job_config", json!("policy.yml")),
    ];
    for (claim, value) in cases {
        let token = token_with(&key, |c| c[claim] = value.clone());
        match err(&v, &token) {
            VerifyError::ClaimInvalid { claim: found, .. } => assert_eq!(found, claim),
            other => panic!("{claim}={value}: {other:?}"),
        }
    }
}

#[test]
fn nullable_gitlab_claims_accept_null() {
    let key = RsaKey::fixture_2048();
    let token = token_with(&key, |c| {
        c["ci_config_ref_uri"] = Value::Null;
        c["ci_config_sha"] = Value::Null;
        c["job_config"] = json!({"url": "https://gitlab.example.com/sec/policy/-/blob/main/policy.yml", "sha": "abc"});
    });
    let verified = verifier_for(&key).verify(&token, NOW).unwrap();
    assert_eq!(verified.claims.gitlab.ci_config_ref_uri, None);
    assert_eq!(verified.claims.gitlab.job_config.unwrap().sha.as_deref(), Some("abc"));
}

#[test]
fn a_tampered_payload_fails_the_signature() {
    let key = RsaKey::fixture_2048();
    let token = token_with(&key, |_| {});
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = gitlab_claims(ISS, NOW - 10);
    claims["ref_protected"] = json!("false");
    claims["project_path"] = json!("evil/payments");
    parts[1] = testkit::b64(claims.to_string().as_bytes());
    let e = err(&verifier_for(&key), &parts.join("."));
    assert_eq!(
        e,
        VerifyError::BadSignature {
            kid: Some(key.kid().into()),
            alg: Algorithm::Rs256,
            keys_tried: 1
        }
    );
}

#[test]
fn every_single_bit_flip_in_the_signature_is_caught() {
    let key = RsaKey::fixture_2048();
    let token = token_with(&key, |_| {});
    let v = verifier_for(&key);
    let dot = token.rfind('.').unwrap();
    let sig = crate::text::b64::decode(&token[dot + 1..]).unwrap();
    for i in (0..sig.len()).step_by(7) {
        let mut bad = sig.clone();
        bad[i] ^= 0x01;
        let forged = format!("{}.{}", &token[..dot], crate::text::b64::encode(&bad));
        assert!(matches!(err(&v, &forged), VerifyError::BadSignature { .. }), "byte {i}");
    }
}

#[test]
fn only_allowed_algorithms_verify_and_none_or_hmac_never_do() {
    let key = RsaKey::fixture_2048();
    let claims = gitlab_claims(ISS, NOW - 10);
    let ps = mint(&Key::Rsa(&key, "PS256"), &claims);
    let jwks_doc = jwks(&[key.jwk_any_alg()]);
    let default =
        Verifier::new(config().build().unwrap(), Jwks::parse(jwks_doc.as_bytes()).unwrap());
    assert_eq!(
        err(&default, &ps),
        VerifyError::AlgorithmNotAllowed { alg: Algorithm::Ps256, allowed: vec![Algorithm::Rs256] }
    );
    let wide = Verifier::new(
        config().algorithms(Algorithm::ALL).build().unwrap(),
        Jwks::parse(jwks_doc.as_bytes()).unwrap(),
    );
    for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
        assert!(wide.verify(&mint(&Key::Rsa(&key, alg), &claims), NOW).is_ok(), "{alg}");
    }
    let payload = testkit::b64(claims.to_string().as_bytes());
    for alg in ["none", "HS256", "HS512", "nOnE"] {
        let header = testkit::b64(json!({"alg": alg, "kid": key.kid()}).to_string().as_bytes());
        for sig in ["", "c2ln"] {
            let token = format!("{header}.{payload}.{sig}");
            assert_eq!(err(&wide, &token), VerifyError::AlgorithmRefused { alg: alg.into() });
        }
    }
}

#[test]
fn es256_and_es384_verify_with_ec_keys() {
    let p256 = EcKey::generate_p256("ec-1");
    let p384 = EcKey::generate_p384("ec-2");
    let v = Verifier::new(
        config().algorithms([Algorithm::Es256, Algorithm::Es384]).build().unwrap(),
        Jwks::parse(jwks(&[p256.jwk(), p384.jwk()]).as_bytes()).unwrap(),
    );
    let claims = gitlab_claims(ISS, NOW - 10);
    assert!(v.verify(&mint(&Key::Ec(&p256), &claims), NOW).is_ok());
    assert!(v.verify(&mint(&Key::Ec(&p384), &claims), NOW).is_ok());
}

#[test]
fn key_algorithm_and_type_must_fit_the_token() {
    let rsa = RsaKey::fixture_2048();
    let ec = EcKey::generate_p256("ec-1");
    let v = Verifier::new(
        config().algorithms(Algorithm::ALL).build().unwrap(),
        Jwks::parse(jwks(&[rsa.jwk(), ec.jwk()]).as_bytes()).unwrap(),
    );
    let claims = gitlab_claims(ISS, NOW - 10);
    // The GitLab JWK says alg RS256: a PS256 token under it is refused before any crypto.
    let e = err(&v, &mint(&Key::Rsa(&rsa, "PS256"), &claims));
    assert!(matches!(e, VerifyError::KeyMismatch { alg: Algorithm::Ps256, .. }), "{e:?}");
    // An ES256 header naming the RSA kid: algorithm substitution.
    let header = json!({"alg": "ES256", "kid": rsa.kid()}).to_string();
    let e = err(&v, &mint_raw(&Key::Ec(&ec), header.as_bytes(), claims.to_string().as_bytes()));
    assert!(matches!(e, VerifyError::KeyMismatch { alg: Algorithm::Es256, .. }), "{e:?}");
}

#[test]
fn unknown_kid_is_its_own_error_and_replacing_the_jwks_fixes_it() {
    let old = RsaKey::fixture_2048();
    let new = RsaKey::fixture_2048_rotated();
    let mut v = verifier_for(&old);
    let token = token_with(&new, |_| {});
    let e = err(&v, &token);
    assert_eq!(e, VerifyError::UnknownKid { kid: new.kid().into() });
    assert!(e.suggests_jwks_refresh());
    v.replace_jwks(Jwks::parse(jwks(&[old.jwk(), new.jwk()]).as_bytes()).unwrap());
    assert!(v.verify(&token, NOW).is_ok());
}

#[test]
fn tokens_without_kid_try_only_compatible_keys_and_are_bounded() {
    let key = RsaKey::fixture_2048();
    let other = RsaKey::fixture_2048_rotated();
    let claims = gitlab_claims(ISS, NOW - 10);
    let header = json!({"alg": "RS256", "typ": "JWT"}).to_string();
    let token =
        mint_raw(&Key::Rsa(&key, "RS256"), header.as_bytes(), claims.to_string().as_bytes());
    let ec = EcKey::generate_p256("ec");
    let v = Verifier::new(
        config().build().unwrap(),
        Jwks::parse(jwks(&[ec.jwk(), other.jwk(), key.jwk()]).as_bytes()).unwrap(),
    );
    assert!(v.verify(&token, NOW).is_ok());
    let v = Verifier::new(
        config().build().unwrap(),
        Jwks::parse(jwks(&[other.jwk()]).as_bytes()).unwrap(),
    );
    assert_eq!(
        err(&v, &token),
        VerifyError::BadSignature { kid: None, alg: Algorithm::Rs256, keys_tried: 1 }
    );
    let v = Verifier::new(
        config().build().unwrap(),
        Jwks::parse(jwks(&[ec.jwk()]).as_bytes()).unwrap(),
    );
    assert_eq!(err(&v, &token), VerifyError::NoCompatibleKey { alg: Algorithm::Rs256 });
    let many: Vec<Value> = (0..5).map(|i| other.clone().with_kid(&format!("k{i}")).jwk()).collect();
    let v = Verifier::new(config().build().unwrap(), Jwks::parse(jwks(&many).as_bytes()).unwrap());
    assert_eq!(err(&v, &token), VerifyError::TooManyCandidateKeys { candidates: 5, limit: 4 });
}

#[test]
fn embedded_and_referenced_keys_in_the_header_are_never_used() {
    let attacker = RsaKey::fixture_3072();
    let trusted = RsaKey::fixture_2048();
    let claims = gitlab_claims(ISS, NOW - 10);
    let header = json!({"alg": "RS256", "kid": trusted.kid(), "jwk": attacker.jwk(), "jku": "https://evil.example/jwks", "x5u": "https://evil.example/c.pem", "x5c": ["MIIB"]});
    let token = mint_raw(
        &Key::Rsa(&attacker, "RS256"),
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
    );
    let e = err(&verifier_for(&trusted), &token);
    assert!(matches!(e, VerifyError::BadSignature { .. }), "{e:?}");
}

#[test]
fn critical_extensions_are_refused() {
    let key = RsaKey::fixture_2048();
    let claims = gitlab_claims(ISS, NOW - 10).to_string();
    let v = verifier_for(&key);
    let sign =
        |h: Value| mint_raw(&Key::Rsa(&key, "RS256"), h.to_string().as_bytes(), claims.as_bytes());
    let e = err(&v, &sign(json!({"alg": "RS256", "kid": key.kid(), "crit": ["exp"], "exp": 1})));
    assert_eq!(e, VerifyError::UnknownCritical { names: vec!["exp".into()] });
    let e = err(&v, &sign(json!({"alg": "RS256", "kid": key.kid(), "crit": []})));
    assert!(matches!(e, VerifyError::HeaderInvalid { .. }));
}

#[test]
fn structure_is_checked_strictly_with_limits_named() {
    let key = RsaKey::fixture_2048();
    let v = verifier_for(&key);
    let good = token_with(&key, |_| {});
    let (h, rest) = good.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    assert_eq!(err(&v, "a.b"), VerifyError::NotCompact { parts: 2 });
    assert_eq!(err(&v, &format!("{good}.x.y")), VerifyError::NotCompact { parts: 5 });
    assert_eq!(err(&v, ""), VerifyError::NotCompact { parts: 1 });
    assert_eq!(err(&v, &format!("{h}=.{p}.{s}")), VerifyError::Base64 { part: Part::Header });
    assert_eq!(err(&v, &format!("{h}.{p} .{s}")), VerifyError::Base64 { part: Part::Payload });
    assert_eq!(err(&v, &format!("{h}.{p}.{s}==")), VerifyError::Base64 { part: Part::Signature });
    let big = "a".repeat(16 * 1024 + 1);
    assert_eq!(err(&v, &big), VerifyError::TooLarge { size: big.len(), limit: 16 * 1024 });
    assert!(err(&v, &big).to_string().contains("max_token_bytes"));

    let sign = |header: &[u8], payload: &[u8]| mint_raw(&Key::Rsa(&key, "RS256"), header, payload);
    let kid_header = json!({"alg": "RS256", "kid": key.kid()}).to_string();
    let claims = gitlab_claims(ISS, NOW - 10).to_string();
    assert_eq!(
        err(&v, &sign(b"[1]", claims.as_bytes())),
        VerifyError::NotAnObject { part: Part::Header }
    );
    assert!(matches!(
        err(&v, &sign(b"{", claims.as_bytes())),
        VerifyError::Json { part: Part::Header, .. }
    ));
    assert_eq!(
        err(&v, &sign(br#"{"alg":"RS256","alg":"none"}"#, claims.as_bytes())),
        VerifyError::DuplicateMember { part: Part::Header, name: "alg".into() }
    );
    assert_eq!(
        err(&v, &sign(kid_header.as_bytes(), b"\"text\"")),
        VerifyError::NotAnObject { part: Part::Payload }
    );
    let dup = claims.replacen('{', r#"{"aud":"other","#, 1);
    assert_eq!(
        err(&v, &sign(kid_header.as_bytes(), dup.as_bytes())),
        VerifyError::DuplicateMember { part: Part::Payload, name: "aud".into() }
    );
    let deep = format!(r#"{{"x":{}{}}}"#, "[".repeat(40), "]".repeat(40));
    assert_eq!(
        err(&v, &sign(kid_header.as_bytes(), deep.as_bytes())),
        VerifyError::JsonTooDeep { part: Part::Payload, limit: 16 }
    );
    assert!(matches!(
        err(&v, &sign(br#"{"kid":"x"}"#, claims.as_bytes())),
        VerifyError::HeaderInvalid { .. }
    ));
    assert!(matches!(
        err(&v, &sign(br#"{"alg":256}"#, claims.as_bytes())),
        VerifyError::HeaderInvalid { .. }
    ));
    assert_eq!(
        err(&v, &sign(br#"{"alg":"EdDSA"}"#, claims.as_bytes())),
        VerifyError::UnsupportedAlgorithm { alg: "EdDSA".into() }
    );
}

#[test]
fn every_error_has_a_kind_and_a_message() {
    let key = RsaKey::fixture_2048();
    let v = verifier_for(&key);
    for token in ["", "a.b.c", "....", "eyJ.eyJ.x", &"x".repeat(20_000)] {
        let e = err(&v, token);
        assert!(!e.kind().is_empty() && !e.to_string().is_empty());
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic fuzz of the whole path: the verifier must return, never panic.
    let key = RsaKey::fixture_2048();
    let v = verifier_for(&key);
    let good = token_with(&key, |_| {});
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..3000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bytes = good.clone().into_bytes();
        let pos = usize::try_from(state % bytes.len() as u64).unwrap();
        let alphabet = b"._-=+/ \n\0{}\"AZaz09";
        bytes[pos] = alphabet[usize::try_from(state >> 40).unwrap() % alphabet.len()];
        let token = String::from_utf8_lossy(&bytes);
        let _ = v.verify(&token, NOW);
    }
}

#[test]
fn fingerprints_are_stable_sha256_hex() {
    assert_eq!(
        token_fingerprint("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn the_cache_answers_repeats_but_rechecks_time_and_forgets_on_new_keys() {
    let key = RsaKey::fixture_2048();
    let mut v = verifier_for(&key);
    let token = token_with(&key, |_| {});
    let first = v.verify_cached(&token, NOW).unwrap();
    assert_eq!(v.cached(), 1);
    assert_eq!(v.verify_cached(&token, NOW + 1).unwrap(), first);
    assert_eq!(
        first.payload_json,
        String::from_utf8(crate::text::b64::decode(token.split('.').nth(1).unwrap()).unwrap())
            .unwrap()
    );
    // A hit is still refused once the token has expired.
    let later = NOW - 10 + 3600 + 60;
    assert!(matches!(v.verify_cached(&token, later), Err(VerifyError::Expired { .. })));
    assert_eq!(v.cached(), 0);
    // A tampered token is never a hit.
    v.verify_cached(&token, NOW).unwrap();
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert!(v.verify_cached(&forged, NOW).is_err());
    v.replace_jwks(Jwks::parse(jwks(&[RsaKey::fixture_2048_rotated().jwk()]).as_bytes()).unwrap());
    assert_eq!(v.cached(), 0);
    assert!(matches!(v.verify_cached(&token, NOW), Err(VerifyError::UnknownKid { .. })));
}

#[test]
fn the_cache_is_bounded() {
    let key = RsaKey::fixture_2048();
    let limits = Limits { verified_cache_entries: 3, ..Limits::default() };
    let mut v = Verifier::new(
        config().limits(limits).build().unwrap(),
        Jwks::parse(jwks(&[key.jwk()]).as_bytes()).unwrap(),
    );
    for i in 0..10 {
        let token = token_with(&key, |c| c["job_id"] = json!(i.to_string()));
        v.verify_cached(&token, NOW).unwrap();
        assert!(v.cached() <= 3);
    }
    assert_eq!(v.cached(), 3);
}

/// Issue 16, "forged `kid`s flush the caches": replacing the JWKS keeps the verified tokens of
/// every key that is still in the new set with the same material, and forgets the rest (a
/// withdrawn key, another key under the same `kid`, a token without a `kid`).
#[test]
fn issue_16_replacing_the_jwks_keeps_the_tokens_of_unchanged_keys() {
    let key = RsaKey::fixture_2048();
    let rotated = RsaKey::fixture_2048_rotated();
    let mut v = verifier_for(&key);
    let token = token_with(&key, |_| {});
    let header = json!({"alg": "RS256", "typ": "JWT"}).to_string();
    let claims = gitlab_claims(ISS, NOW - 10).to_string();
    let without_kid = mint_raw(&Key::Rsa(&key, "RS256"), header.as_bytes(), claims.as_bytes());
    v.verify_cached(&token, NOW).unwrap();
    v.verify_cached(&without_kid, NOW).unwrap();
    assert_eq!(v.cached(), 2);

    v.replace_jwks(Jwks::parse(jwks(&[rotated.jwk(), key.jwk()]).as_bytes()).unwrap());
    assert_eq!(v.cached(), 1, "the token naming the unchanged key stays; the one without kid goes");
    v.replace_jwks(Jwks::parse(jwks(&[key.jwk()]).as_bytes()).unwrap());
    assert_eq!(v.cached(), 1, "the rotated key leaving changes nothing for it");

    let impostor = RsaKey::fixture_2048_rotated().with_kid(key.kid());
    v.replace_jwks(Jwks::parse(jwks(&[impostor.jwk()]).as_bytes()).unwrap());
    assert_eq!(v.cached(), 0, "same kid, other material");
    assert!(matches!(v.verify_cached(&token, NOW), Err(VerifyError::BadSignature { .. })));

    // A key whose `alg` member changed no longer vouches for tokens of the old `alg`.
    let mut v = verifier_for(&key);
    v.verify_cached(&token, NOW).unwrap();
    let mut restricted = key.jwk();
    restricted["alg"] = json!("RS384");
    v.replace_jwks(Jwks::parse(json!({"keys": [restricted]}).to_string().as_bytes()).unwrap());
    assert_eq!(v.cached(), 0);
}
