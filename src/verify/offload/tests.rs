use std::sync::{Arc, Mutex};

use testkit::{gitlab_claims, jwks, mint, mint_raw, EcKey, Key, RsaKey, AUDIENCE};

use super::*;
use crate::{Jwks, Verifier, VerifierConfig, VerifyError};

const ISS: &str = "https://gitlab.example.com";
const NOW: u64 = 1_760_000_000;

/// What a backend was asked, owned so the test can inspect it afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Asked {
    alg: Algorithm,
    key: (String, Vec<u8>, Vec<u8>),
    message: Vec<u8>,
    signature: Vec<u8>,
}

/// A backend that answers a fixed verdict and records every question.
struct Scripted {
    answer: Offloaded,
    asked: Mutex<Vec<Asked>>,
}

impl Scripted {
    fn new(answer: Offloaded) -> Arc<Self> {
        Arc::new(Self { answer, asked: Mutex::new(Vec::new()) })
    }

    fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }
}

impl SignatureBackend for Scripted {
    fn verify(&self, check: &SignatureCheck<'_>) -> Offloaded {
        let key = match check.key {
            KeyMaterial::Rsa { n, e } => ("RSA".to_owned(), n.to_vec(), e.to_vec()),
            KeyMaterial::Ec { curve, x, y } => (curve.name().to_owned(), x.to_vec(), y.to_vec()),
        };
        self.asked.lock().unwrap().push(Asked {
            alg: check.alg,
            key,
            message: check.message.to_vec(),
            signature: check.signature.to_vec(),
        });
        self.answer
    }
}

fn verifier(keys: &[serde_json::Value], backend: &Arc<Scripted>) -> Verifier {
    let config = VerifierConfig::builder(ISS).audience(AUDIENCE).build().unwrap();
    let mut verifier = Verifier::new(config, Jwks::parse(jwks(keys).as_bytes()).unwrap());
    verifier
        .dangerous()
        .set_signature_backend(Some(Arc::clone(backend) as Arc<dyn SignatureBackend>));
    verifier
}

fn token(key: &RsaKey) -> String {
    mint(&Key::Rsa(key, "RS256"), &gitlab_claims(ISS, NOW - 10))
}

fn split(token: &str) -> (&str, Vec<u8>) {
    let (input, sig) = token.rsplit_once('.').unwrap();
    (input, crate::text::b64::decode(sig).unwrap())
}

#[test]
fn the_backend_gets_the_signing_input_the_signature_and_the_jwk_key() {
    let key = RsaKey::fixture_2048();
    let backend = Scripted::new(Offloaded::Valid);
    let token = token(&key);
    verifier(&[key.jwk()], &backend).verify(&token, NOW).unwrap();

    let asked = backend.asked();
    assert_eq!(asked.len(), 1);
    let (input, signature) = split(&token);
    assert_eq!(asked[0].alg, Algorithm::Rs256);
    assert_eq!(asked[0].message, input.as_bytes());
    assert_eq!(asked[0].signature, signature);
    let jwk = key.jwk();
    let n = crate::text::b64::decode(jwk["n"].as_str().unwrap()).unwrap();
    assert_eq!(asked[0].key, ("RSA".to_owned(), n, vec![1, 0, 1]));
}

#[test]
fn the_backend_verdict_is_final_when_it_has_one() {
    let key = RsaKey::fixture_2048();
    let invalid = Scripted::new(Offloaded::Invalid);
    let err = verifier(&[key.jwk()], &invalid).verify(&token(&key), NOW).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { keys_tried: 1, .. }), "{err:?}");
}

#[test]
fn unsupported_falls_back_to_the_core_which_still_refuses_a_forgery() {
    let key = RsaKey::fixture_2048();
    let backend = Scripted::new(Offloaded::Unsupported);
    let verifier = verifier(&[key.jwk()], &backend);
    let good = token(&key);
    verifier.verify(&good, NOW).unwrap();

    let other = RsaKey::fixture_2048_rotated().with_kid(key.kid());
    let forged = mint(&Key::Rsa(&other, "RS256"), &gitlab_claims(ISS, NOW - 10));
    let err = verifier.verify(&forged, NOW).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err:?}");
    assert_eq!(backend.asked().len(), 2);
}

/// A backend that would accept anything is never asked about what the core refuses itself.
#[test]
fn a_lenient_backend_cannot_widen_what_is_accepted() {
    let key = RsaKey::fixture_2048();
    let ec = EcKey::generate_p256("ec-1");
    let yes = Scripted::new(Offloaded::Valid);
    let verifier = verifier(&[key.jwk(), ec.jwk()], &yes);
    let claims = gitlab_claims(ISS, NOW - 10);

    // The algorithm allow-list (RS256 only by default).
    let ps = mint(&Key::Rsa(&key, "PS256"), &claims);
    assert!(matches!(
        verifier.verify(&ps, NOW).unwrap_err(),
        VerifyError::AlgorithmNotAllowed { .. }
    ));
    // `alg` and key type must agree: an RS256 header naming the EC key.
    let header = format!(r#"{{"alg":"RS256","kid":"{}","typ":"JWT"}}"#, ec.kid());
    let cross =
        mint_raw(&Key::Rsa(&key, "RS256"), header.as_bytes(), claims.to_string().as_bytes());
    assert!(matches!(verifier.verify(&cross, NOW).unwrap_err(), VerifyError::KeyMismatch { .. }));
    // A signature one byte short of the modulus.
    let good = token(&key);
    let (input, mut signature) = split(&good);
    signature.pop();
    let short = format!("{input}.{}", testkit::b64(&signature));
    assert!(matches!(verifier.verify(&short, NOW).unwrap_err(), VerifyError::BadSignature { .. }));
    // Leading zero bytes do not make a longer signature acceptable either.
    let (_, signature) = split(&good);
    let long = format!("{input}.{}", testkit::b64(&[&[0u8][..], &signature].concat()));
    assert!(matches!(verifier.verify(&long, NOW).unwrap_err(), VerifyError::BadSignature { .. }));
    // An unknown kid.
    let stranger = RsaKey::fixture_2048_rotated().with_kid("nobody");
    let unknown = mint(&Key::Rsa(&stranger, "RS256"), &claims);
    assert!(matches!(verifier.verify(&unknown, NOW).unwrap_err(), VerifyError::UnknownKid { .. }));

    assert_eq!(yes.asked(), Vec::new(), "the backend was asked about a refused token");
}

#[test]
fn ec_keys_are_passed_as_their_coordinates() {
    let ec = EcKey::generate_p384("ec-384");
    let backend = Scripted::new(Offloaded::Valid);
    let config = VerifierConfig::builder(ISS)
        .audience(AUDIENCE)
        .algorithms([Algorithm::Es384])
        .build()
        .unwrap();
    let mut verifier = Verifier::new(config, Jwks::parse(jwks(&[ec.jwk()]).as_bytes()).unwrap());
    verifier
        .dangerous()
        .set_signature_backend(Some(Arc::clone(&backend) as Arc<dyn SignatureBackend>));
    let token = mint(&Key::Ec(&ec), &gitlab_claims(ISS, NOW - 10));
    verifier.verify(&token, NOW).unwrap();

    let asked = backend.asked();
    let jwk = ec.jwk();
    let x = crate::text::b64::decode(jwk["x"].as_str().unwrap()).unwrap();
    let y = crate::text::b64::decode(jwk["y"].as_str().unwrap()).unwrap();
    assert_eq!(asked[0].key, ("P-384".to_owned(), x, y));
    assert_eq!(asked[0].signature.len(), 96);
}

#[test]
fn a_cached_token_does_not_ask_again_and_removing_the_backend_restores_the_core() {
    let key = RsaKey::fixture_2048();
    let backend = Scripted::new(Offloaded::Invalid);
    let mut verifier = verifier(&[key.jwk()], &Scripted::new(Offloaded::Valid));
    let token = token(&key);
    verifier.verify_cached(&token, NOW).unwrap();
    verifier
        .dangerous()
        .set_signature_backend(Some(Arc::clone(&backend) as Arc<dyn SignatureBackend>));
    verifier.verify_cached(&token, NOW + 1).unwrap();
    assert!(backend.asked().is_empty());
    assert!(verifier.verify(&token, NOW).is_err());
    verifier.dangerous().set_signature_backend(None);
    verifier.verify(&token, NOW).unwrap();
}
