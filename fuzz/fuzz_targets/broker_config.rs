//! The broker configuration document (its issuer, managed identity endpoint and certificates):
//! the mode (`plan`, else the running broker's) on the first line, then the document. Its
//! `{"env": NAME}` values read a fixed environment holding the repository's test keys
//! (`testkit/keys`, `src/entra/testdata`), a public key, certificates, an identity endpoint and
//! its secret header.
//!
//! Invariants: no panic; a configuration with an issuer serves a discovery document and a JWKS
//! that are JSON, the discovery document's `issuer` is the issuer URL (the document's
//! `issuer.url`, read here with `serde_json`) and its `jwks_uri` that URL's `/openid/v1/jwks`;
//! the JWKS lists the document's keys in order (as many, at most 100, each given `kid`), every
//! key with a `kid` (distinct) and a `kty` and no private member (`d`, `p`, `q`, `dp`, `dq`,
//! `qi`, `oth`, `k`); a running broker's issuer signs an assertion that verifies (with ring,
//! here) under the JWKS key its header names, the signing key, with the issuer's `iss` and
//! lifetime. No error (text or debug form), no configuration's debug form and no issuer document
//! shows key material: no 24-character piece of an environment private key's base64 body (with
//! a digit and a `+` or `/`, absent from the public keys and certificates) that the document
//! does not itself contain, nor the identity header's value; and no piece of an inline
//! `private_key` value that the document holds nowhere else, when the output follows it (with
//! the piece rotated in the document, the output shows the rotated one instead).
#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use gitlab_azure_oidc::broker::{
    BrokerConfig, BrokerConfigError, ConfigMode, JobTrace, TOKEN_EXCHANGE_AUDIENCE,
};
use gitlab_azure_oidc_fuzz::{b64_decode_lenient, fields, occurrences, pem, rotate, text};
use libfuzzer_sys::fuzz_target;
use ring::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use serde_json::Value;

const NOW: u64 = 1_760_000_000;
const JWKS_PATH: &str = "/openid/v1/jwks";
const MAX_KEYS: usize = 100;
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
/// The identity endpoint's secret header (`IDENTITY_HEADER`): never shown.
const IDENTITY_HEADER: &str = "7Qm2xK9vLr4TnW8pZc3HyB6dFs1JgA5e";
const PIECE: usize = 24;

struct Environment {
    vars: Vec<(&'static str, String)>,
    /// Pieces of the private keys' base64 bodies that no public text (certificate, public key)
    /// contains.
    pieces: HashSet<Vec<u8>>,
}

/// 24-character pieces of a PEM's base64 body, every 8 characters, with a digit and a `+` or
/// `/` (as key material has and message wording has not).
fn pieces(pem_text: &str) -> Vec<String> {
    let body: String =
        pem_text.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    let chars: Vec<char> = body.chars().collect();
    let keyish = |p: &str| {
        p.bytes().any(|b| b.is_ascii_digit()) && p.bytes().any(|b| b == b'+' || b == b'/')
    };
    chars
        .windows(PIECE)
        .step_by(8)
        .map(|w| w.iter().collect::<String>())
        .filter(|p| keyish(p))
        .collect()
}

fn environment() -> &'static Environment {
    static ENV: OnceLock<Environment> = OnceLock::new();
    ENV.get_or_init(|| {
        let der = |bytes: &[u8]| pem("PRIVATE KEY", bytes);
        let signing = der(include_bytes!("../../testkit/keys/rsa-2048.pk8.der"));
        let next = der(include_bytes!("../../testkit/keys/rsa-2048-rotated.pk8.der"));
        let large = der(include_bytes!("../../testkit/keys/rsa-3072.pk8.der"));
        let small = der(include_bytes!("../../testkit/keys/rsa-1024.pk8.der"));
        let app_key = include_str!("../../src/entra/testdata/rsa-2048.key.pem").to_owned();
        let app_cert = include_str!("../../src/entra/testdata/rsa-2048.cert.pem").to_owned();
        let other_cert = include_str!("../../src/entra/testdata/other-2048.cert.pem").to_owned();
        let public =
            pem("PUBLIC KEY", include_bytes!("../../src/entra/testdata/rsa-2048.spki.der"));
        let private = [&signing, &next, &large, &small, &app_key];
        let public_text = [&app_cert, &other_cert, &public];
        let pieces = private
            .iter()
            .flat_map(|key| pieces(key))
            .filter(|p| !public_text.iter().any(|t| t.contains(p.as_str())))
            .map(String::into_bytes)
            .collect();
        let vars = vec![
            // examples/envoy/broker.yaml
            ("BROKER_SIGNING_KEY", signing.clone()),
            ("BROKER_NEXT_KEY", next.clone()),
            ("PAYMENTS_KEY", app_key.clone()),
            ("PAYMENTS_CERT", app_cert.clone()),
            // examples/envoy/tests/brokerkit.py
            ("BROKER_KEY_A", signing.clone()),
            ("BROKER_KEY_B", next),
            ("APP_KEY", app_key),
            ("APP_CERT", app_cert),
            ("BROKER_KEY", signing),
            ("BROKER_KEY_3072", large),
            ("BROKER_KEY_1024", small),
            ("BROKER_PUBLIC_KEY", public),
            ("OTHER_CERT", other_cert),
            ("IDENTITY_ENDPOINT", "http://169.254.129.2:8081/msi/token".to_owned()),
            ("IDENTITY_HEADER", IDENTITY_HEADER.to_owned()),
            ("EMPTY", String::new()),
        ];
        Environment { vars, pieces }
    })
}

fn env(name: &str) -> Option<String> {
    environment().vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
}

fn parse(document: &[u8], mode: ConfigMode) -> Result<BrokerConfig, BrokerConfigError> {
    BrokerConfig::parse(document, &env, mode)
}

/// The error's text and debug form, or the configuration's debug form and its issuer's
/// documents.
fn describe(result: &Result<BrokerConfig, BrokerConfigError>) -> String {
    match result {
        Ok(config) => match &config.issuer {
            Some(issuer) => {
                format!("{config:?}\n{}\n{}", issuer.discovery_document(), issuer.jwks_document())
            }
            None => format!("{config:?}"),
        },
        Err(err) => format!("{err}\n{err:?}"),
    }
}

/// Every string of the document, member names included, as JSON reads them (escapes decoded).
fn strings(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(members) => {
            for (name, v) in members {
                out.push_str(name);
                out.push('\n');
                strings(v, out);
            }
        }
        _ => {}
    }
}

/// The inline private keys: every `private_key` member's `{"value": "..."}`.
fn inline_private_keys<'v>(value: &'v Value, out: &mut Vec<&'v str>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| inline_private_keys(v, out)),
        Value::Object(members) => {
            for (name, v) in members {
                if name == "private_key" {
                    if let Some(inline) = v.get("value").and_then(Value::as_str) {
                        out.push(inline);
                    }
                }
                inline_private_keys(v, out);
            }
        }
        _ => {}
    }
}

/// Fails when `shown` holds a piece of an environment private key that the document does not
/// hold (raw or decoded), or the identity header's value.
fn check_environment_secrets(shown: &str, document: &[u8], decoded: &str) {
    let pieces = &environment().pieces;
    for piece in shown.as_bytes().windows(PIECE) {
        if pieces.contains(piece)
            && occurrences(document, piece) == 0
            && occurrences(decoded.as_bytes(), piece) == 0
        {
            panic!("key material {:?} is shown: {shown}", text(piece));
        }
    }
    if shown.contains(IDENTITY_HEADER)
        && occurrences(document, IDENTITY_HEADER.as_bytes()) == 0
        && !decoded.contains(IDENTITY_HEADER)
    {
        panic!("the identity header is shown: {shown}");
    }
}

fn b64_json(segment: &str) -> Value {
    let bytes = b64_decode_lenient(segment).expect("a base64url segment");
    serde_json::from_slice(&bytes).expect("a JSON segment")
}

fuzz_target!(|data: &[u8]| {
    let [mode, document] = fields::<2>(data);
    let mode = if mode.trim_ascii() == b"plan" { ConfigMode::Plan } else { ConfigMode::Broker };
    let result = parse(document, mode);
    let read: Option<Value> = serde_json::from_slice(document).ok();
    let mut decoded = String::new();
    if let Some(read) = &read {
        strings(read, &mut decoded);
    }

    let mut shown = describe(&result);
    if let Ok(config) = &result {
        if let Some(issuer) = &config.issuer {
            let url = issuer.url();
            if let Some(read) = &read {
                assert_eq!(
                    read["issuer"]["url"].as_str(),
                    Some(url),
                    "the issuer is not the document's"
                );
            }
            let discovery_text = issuer.discovery_document();
            let discovery: Value =
                serde_json::from_str(&discovery_text).expect("the discovery document is JSON");
            assert_eq!(discovery["issuer"].as_str(), Some(url), "{discovery_text}");
            assert_eq!(
                discovery["jwks_uri"].as_str(),
                Some(format!("{url}{JWKS_PATH}").as_str()),
                "{discovery_text}"
            );
            let jwks_text = issuer.jwks_document();
            let jwks: Value = serde_json::from_str(&jwks_text).expect("the JWKS is JSON");
            let keys = jwks["keys"].as_array().expect("the JWKS has `keys`");
            assert!(keys.len() <= MAX_KEYS, "{} keys in the JWKS", keys.len());
            let mut kids = HashSet::new();
            for key in keys {
                let key = key.as_object().expect("a JWK is an object");
                let kid = key.get("kid").and_then(Value::as_str).expect("a JWK has a `kid`");
                assert!(kids.insert(kid), "the `kid` {kid:?} appears twice");
                assert!(key.get("kty").and_then(Value::as_str).is_some(), "a JWK without `kty`");
                for member in PRIVATE_MEMBERS {
                    assert!(!key.contains_key(member), "the JWK has the private member {member}");
                }
            }
            if let Some(given) = read.as_ref().and_then(|r| r["issuer"]["keys"].as_array()) {
                assert_eq!(keys.len(), given.len(), "the JWKS does not list the document's keys");
                for (key, given) in keys.iter().zip(given) {
                    if let Some(kid) = given.get("kid").and_then(Value::as_str) {
                        assert_eq!(key["kid"].as_str(), Some(kid), "a given `kid` is not used");
                    }
                }
            }
            if mode == ConfigMode::Broker {
                let kid = issuer.signing_kid().expect("a running broker's issuer signs");
                let signed = issuer
                    .sign(
                        "gitlab-azure-oidc:rule:fuzz",
                        TOKEN_EXCHANGE_AUDIENCE,
                        &JobTrace::default(),
                        NOW,
                        &ring::rand::SystemRandom::new(),
                    )
                    .expect("the issuer signs");
                let jws = signed.assertion.secret();
                let (input, signature) = jws.rsplit_once('.').expect("a compact JWS");
                let (header, claims) = input.split_once('.').expect("a compact JWS");
                let (header, claims) = (b64_json(header), b64_json(claims));
                assert_eq!(header["alg"], "RS256");
                assert_eq!(header["kid"].as_str(), Some(kid), "the header names another key");
                assert_eq!(claims["iss"].as_str(), Some(url));
                assert_eq!(claims["iat"].as_u64(), Some(NOW));
                assert_eq!(claims["exp"].as_u64(), Some(NOW + issuer.assertion_lifetime()));
                let jwk = keys.iter().find(|k| k["kid"].as_str() == Some(kid)).expect("published");
                let part = |name: &str| {
                    b64_decode_lenient(jwk[name].as_str().expect("n and e")).expect("base64url")
                };
                let (n, e) = (part("n"), part("e"));
                let signature = b64_decode_lenient(signature).expect("a base64url signature");
                RsaPublicKeyComponents { n: &n, e: &e }
                    .verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &signature)
                    .expect("the assertion verifies under the JWKS key its header names");
                shown.push_str(&format!("\n{signed:?}"));
            }
        }
    }

    check_environment_secrets(&shown, document, &decoded);

    let mut inline = Vec::new();
    if let Some(read) = &read {
        inline_private_keys(read, &mut inline);
    }
    for key in inline {
        // Only pieces within one line of the value, found nowhere else in the document (raw or
        // decoded): the one place the document holds them is the private key.
        for piece in pieces(key).into_iter().filter(|p| key.contains(p.as_str())) {
            if occurrences(document, piece.as_bytes()) != 1
                || occurrences(decoded.as_bytes(), piece.as_bytes()) != 1
                || !shown.contains(&piece)
            {
                continue;
            }
            let at = document
                .windows(PIECE)
                .position(|w| w == piece.as_bytes())
                .expect("in the document");
            let mut swapped = document.to_vec();
            swapped[at..at + PIECE].copy_from_slice(&rotate(piece.as_bytes()));
            let again = describe(&parse(&swapped, mode));
            let rotated = text(&rotate(piece.as_bytes()));
            let quoted = !again.contains(&piece) && again.contains(&rotated);
            assert!(!quoted, "the private key's {piece:?} is in {shown}");
        }
    }
});
