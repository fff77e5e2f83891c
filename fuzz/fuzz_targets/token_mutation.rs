//! Signed-token mutation: the target signs a token itself (ES256, RS256 or PS256, fixed test
//! keys, the claims from the input), checks that it verifies, then applies the input's edits:
//! single bytes set, flipped, inserted or removed anywhere in header, payload or signature,
//! non-zero trailing bits in a segment's last character, padding.
//!
//! Invariant: a token verifies only if its bytes are the signed bytes. No edit that changes the
//! string may still verify, including the non-canonical base64url spellings of the same bytes.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use gitlab_azure_oidc::{Algorithm, Jwks, Verifier, VerifierConfig};
use gitlab_azure_oidc_fuzz::{b64, pem_der};
use libfuzzer_sys::fuzz_target;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Signer {
    Es256,
    Rs256,
    Ps256,
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Set {
        at: u16,
        byte: u8,
    },
    Flip {
        at: u16,
        mask: u8,
    },
    Insert {
        at: u16,
        byte: u8,
    },
    Remove {
        at: u16,
    },
    /// Sets unused low bits of a segment's last character: the same bytes, spelled otherwise.
    TrailingBits {
        segment: u8,
        bits: u8,
    },
    /// Appends `=` padding to a segment.
    Pad {
        segment: u8,
        count: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    signer: Signer,
    typ: Option<String>,
    claims: Vec<(String, String)>,
    edits: Vec<Edit>,
}

struct Keys {
    ec: EcdsaKeyPair,
    rsa: RsaKeyPair,
    verifier: Verifier,
    rng: SystemRandom,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rng = SystemRandom::new();
        let ec_der = pem_der(include_str!("../../src/entra/testdata/ec-p256.key.pem"));
        let ec = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &ec_der, &rng).unwrap();
        let rsa_der = pem_der(include_str!("../../src/entra/testdata/rsa-2048.key.pem"));
        let rsa = RsaKeyPair::from_pkcs8(&rsa_der).unwrap();
        let point = ec.public_key().as_ref();
        let parts: ring::rsa::PublicKeyComponents<Vec<u8>> = rsa.public().into();
        let jwks = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(&point[1..33]), "y": b64(&point[33..65])},
            {"kty": "RSA", "kid": "rsa", "n": b64(&parts.n), "e": b64(&parts.e)},
        ]});
        let jwks = Jwks::parse(jwks.to_string().as_bytes()).unwrap();
        let config = VerifierConfig::builder("https://gitlab.example")
            .audience("fuzz")
            .algorithms([Algorithm::Es256, Algorithm::Rs256, Algorithm::Ps256])
            .build()
            .unwrap();
        Keys { ec, rsa, verifier: Verifier::new(config, jwks), rng }
    })
}

fn sign(keys: &Keys, signer: Signer, input: &str) -> Vec<u8> {
    match signer {
        Signer::Es256 => keys.ec.sign(&keys.rng, input.as_bytes()).unwrap().as_ref().to_vec(),
        Signer::Rs256 | Signer::Ps256 => {
            let alg: &dyn signature::RsaEncoding = if matches!(signer, Signer::Rs256) {
                &signature::RSA_PKCS1_SHA256
            } else {
                &signature::RSA_PSS_SHA256
            };
            let mut sig = vec![0; keys.rsa.public().modulus_len()];
            keys.rsa.sign(alg, &keys.rng, input.as_bytes(), &mut sig).unwrap();
            sig
        }
    }
}

fn segment_bounds(token: &[u8], segment: u8) -> (usize, usize) {
    let dots: Vec<usize> =
        token.iter().enumerate().filter(|(_, &b)| b == b'.').map(|(i, _)| i).collect();
    let n = usize::from(segment) % (dots.len() + 1);
    let start = if n == 0 { 0 } else { dots[n - 1] + 1 };
    let end = dots.get(n).copied().unwrap_or(token.len());
    (start, end)
}

fn apply(token: &mut Vec<u8>, edit: &Edit) {
    let at = |at: u16, len: usize| usize::from(at) % len.max(1);
    match *edit {
        Edit::Set { at: i, byte } if !token.is_empty() => {
            let i = at(i, token.len());
            token[i] = byte;
        }
        Edit::Flip { at: i, mask } if !token.is_empty() => {
            let i = at(i, token.len());
            token[i] ^= mask;
        }
        Edit::Insert { at: i, byte } => {
            let i = at(i, token.len() + 1);
            token.insert(i, byte);
        }
        Edit::Remove { at: i } if !token.is_empty() => {
            let i = at(i, token.len());
            token.remove(i);
        }
        Edit::TrailingBits { segment, bits } => {
            let (start, end) = segment_bounds(token, segment);
            let spare = match (end - start) % 4 {
                2 => 0b1111,
                3 => 0b11,
                _ => return,
            };
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            if let Some(v) = ALPHABET.iter().position(|&a| a == token[end - 1]) {
                token[end - 1] = ALPHABET[v | (usize::from(bits) & spare)];
            }
        }
        Edit::Pad { segment, count } => {
            let (_, end) = segment_bounds(token, segment);
            for _ in 0..(count % 3 + 1) {
                token.insert(end, b'=');
            }
        }
        _ => {}
    }
}

fuzz_target!(|input: Input| {
    let keys = keys();
    let (alg, kid) = match input.signer {
        Signer::Es256 => ("ES256", "ec"),
        Signer::Rs256 => ("RS256", "rsa"),
        Signer::Ps256 => ("PS256", "rsa"),
    };
    let mut header = serde_json::json!({"alg": alg, "kid": kid});
    if let Some(typ) = &input.typ {
        header["typ"] = typ.chars().take(32).collect::<String>().into();
    }
    let mut payload = serde_json::Map::new();
    for (name, value) in input.claims.iter().take(16) {
        payload.insert(
            name.chars().take(32).collect(),
            value.chars().take(128).collect::<String>().into(),
        );
    }
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(serde_json::Value::Object(payload).to_string().as_bytes())
    );
    let token = format!("{signing_input}.{}", b64(&sign(keys, input.signer, &signing_input)));
    if let Err(err) = keys.verifier.verify_signature(&token) {
        panic!("a token signed with a trusted key does not verify: {err}\n{token}");
    }
    let mut mutated = token.clone().into_bytes();
    for edit in input.edits.iter().take(4) {
        apply(&mut mutated, edit);
    }
    if mutated == token.as_bytes() {
        return;
    }
    let mutated = String::from_utf8_lossy(&mutated);
    if keys.verifier.verify_signature(&mutated).is_ok() {
        panic!("an edited token still verifies:\nsigned {token}\nedited {mutated}");
    }
});
