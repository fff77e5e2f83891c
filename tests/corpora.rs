//! The third-party corpora vendored in `tests/third-party/`, used as they are (see its README).
//!
//! Every case of every file is counted, and each test asserts both the per-result counts and
//! that no case was skipped, so a corpus that changes shape fails loudly instead of silently
//! testing less.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use gitlab_azure_oidc::internal::{verify_detached, verify_detached_with};
use gitlab_azure_oidc::offload::{KeyMaterial, Offloaded, SignatureBackend, SignatureCheck};
use gitlab_azure_oidc::{Algorithm, Jwks, Verifier, VerifierConfig, VerifyError};
use serde_json::{json, Value};

fn corpus(path: &str) -> Value {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/third-party").join(path);
    let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    testkit::b64(bytes)
}

fn jwks_of(keys: &[Value]) -> Jwks {
    Jwks::parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
}

/// A verifier that allows every algorithm: the corpora exercise all of them.
fn any_alg_verifier(keys: &[Value]) -> Verifier {
    let config = VerifierConfig::builder("corpus").audience("corpus").algorithms(Algorithm::ALL);
    Verifier::new(config.build().unwrap(), jwks_of(keys))
}

#[derive(Default, Debug)]
struct Tally {
    counts: BTreeMap<String, usize>,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, bucket: &str, ok: bool, what: impl FnOnce() -> String) {
        *self.counts.entry(bucket.to_owned()).or_default() += 1;
        if !ok {
            self.failures.push(what());
        }
    }

    fn total(&self) -> usize {
        self.counts.values().sum()
    }

    fn assert_clean(&self, expected_total: usize) {
        assert!(
            self.failures.is_empty(),
            "{} failures:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
        assert_eq!(self.total(), expected_total, "cases counted: {:?}", self.counts);
        println!("{:?}", self.counts);
    }
}

/// Wycheproof signature files: every `valid` case verifies, every `invalid` one is rejected.
fn wycheproof_signatures(file: &str, alg: Algorithm, key_of: impl Fn(&Value) -> Value) -> Tally {
    let doc = corpus(&format!("wycheproof/testvectors_v1/{file}"));
    let mut tally = Tally::default();
    for group in doc["testGroups"].as_array().unwrap() {
        let jwks = jwks_of(&[key_of(group)]);
        assert!(jwks.skipped().is_empty(), "{file}: key skipped: {:?}", jwks.skipped());
        for case in group["tests"].as_array().unwrap() {
            let id = &case["tcId"];
            let result = case["result"].as_str().unwrap();
            let verified = verify_detached(
                &jwks,
                None,
                alg,
                &unhex(case["msg"].as_str().unwrap()),
                &unhex(case["sig"].as_str().unwrap()),
            );
            let (bucket, ok) = match result {
                "valid" => (result.to_owned(), verified.is_ok()),
                "invalid" => (result.to_owned(), verified.is_err()),
                // Either outcome is allowed; record ours. ring is strict: it rejects, e.g., the
                // PKCS#1 DigestInfo without its NULL parameter (tc 8 of the rsa_signature files).
                "acceptable" => {
                    let choice = if verified.is_ok() { "accepted" } else { "rejected" };
                    (
                        format!(
                            "acceptable ({}): {choice}",
                            case["comment"].as_str().unwrap_or("")
                        ),
                        true,
                    )
                }
                other => panic!("{file} tc {id}: unknown result `{other}`"),
            };
            tally.record(&bucket, ok, || {
                format!("{file} tc {id} ({}): expected {result}, got {verified:?}", case["comment"])
            });
        }
    }
    assert_eq!(
        tally.total(),
        usize::try_from(doc["numberOfTests"].as_u64().unwrap()).unwrap(),
        "{file}"
    );
    tally
}

fn rsa_jwk(group: &Value) -> Value {
    // Wycheproof v1 nests the key under `publicKey` with hex `modulus` (a leading 00 keeps it
    // positive) and `publicExponent`.
    let key = &group["publicKey"];
    let n = unhex(key["modulus"].as_str().unwrap());
    let e = unhex(key["publicExponent"].as_str().unwrap());
    json!({"kty": "RSA", "n": b64(&n), "e": b64(&e)})
}

/// The Wycheproof RSA PKCS#1 v1.5 files: every size and hash.
fn wycheproof_rsa_pkcs1_files() -> Vec<(String, Algorithm)> {
    let mut files = Vec::new();
    for bits in [2048, 3072, 4096] {
        for (hash, alg) in
            [(256, Algorithm::Rs256), (384, Algorithm::Rs384), (512, Algorithm::Rs512)]
        {
            files.push((format!("rsa_signature_{bits}_sha{hash}_test.json"), alg));
        }
    }
    files
}

/// The Wycheproof RSA-PSS files whose parameters JOSE uses (salt as long as the hash).
const WYCHEPROOF_RSA_PSS_FILES: [(&str, Algorithm); 4] = [
    ("rsa_pss_2048_sha256_mgf1_32_test.json", Algorithm::Ps256),
    ("rsa_pss_3072_sha256_mgf1_32_test.json", Algorithm::Ps256),
    ("rsa_pss_4096_sha384_mgf1_48_test.json", Algorithm::Ps384),
    ("rsa_pss_4096_sha512_mgf1_64_test.json", Algorithm::Ps512),
];

#[test]
fn wycheproof_rsa_pkcs1_all_sizes_and_hashes() {
    let mut seen = 0;
    for (file, alg) in wycheproof_rsa_pkcs1_files() {
        let tally = wycheproof_signatures(&file, alg, rsa_jwk);
        assert!(tally.counts["valid"] > 0 && tally.counts["invalid"] > 0);
        tally.assert_clean(tally.total());
        seen += tally.total();
    }
    println!("RSA PKCS#1 v1.5: {seen} cases");
}

fn ec_jwk(group: &Value) -> Value {
    // Built from the SEC 1 uncompressed point, which every group has (some lack `publicKeyJwk`).
    let key = &group["publicKey"];
    let point = unhex(key["uncompressed"].as_str().unwrap());
    let len = (point.len() - 1) / 2;
    let crv = match key["curve"].as_str().unwrap() {
        "secp256r1" => "P-256",
        "secp384r1" => "P-384",
        other => panic!("curve {other}"),
    };
    json!({"kty": "EC", "crv": crv, "x": b64(&point[1..=len]), "y": b64(&point[1 + len..])})
}

#[test]
fn wycheproof_rsa_pss() {
    for (file, alg) in WYCHEPROOF_RSA_PSS_FILES {
        let tally = wycheproof_signatures(file, alg, rsa_jwk);
        assert!(tally.counts["valid"] > 0);
        tally.assert_clean(tally.total());
    }
}

#[test]
fn wycheproof_ecdsa_p1363() {
    for (file, alg) in [
        ("ecdsa_secp256r1_sha256_p1363_test.json", Algorithm::Es256),
        ("ecdsa_secp384r1_sha384_p1363_test.json", Algorithm::Es384),
    ] {
        let tally = wycheproof_signatures(file, alg, ec_jwk);
        assert!(tally.counts["valid"] > 0 && tally.counts["invalid"] > 0);
        tally.assert_clean(tally.total());
    }
}

/// `valid` cases of json_web_signature_test.json that we refuse by design, with the error each
/// must get. Nothing else may be refused.
/// Why a valid case is refused, and the check its error must pass.
type Refusal = (&'static str, fn(&VerifyError) -> bool);

fn refused_by_design(tc: u64) -> Option<Refusal> {
    let hmac = |e: &VerifyError| matches!(e, VerifyError::AlgorithmRefused { .. });
    match tc {
        // HS256 (MAC with a shared secret): never accepted against a JWKS.
        1 | 348 | 352 | 357 | 358 | 359 | 376 | 377 => Some(("HS256 is always refused", hmac)),
        // ES512 on P-521: not in the supported set (GitLab signs RS256).
        347 | 351 => Some(("ES512 is not supported", |e| {
            matches!(e, VerifyError::UnsupportedAlgorithm { .. })
        })),
        // HS256 tokens with `?` inside a part: labelled valid by Wycheproof, rejected by strict
        // base64url (SOURCES.md: the right behaviour) or, once the header decodes, as HS256.
        372 | 373 => Some(("HS256 with `?` in a part", |e| {
            matches!(e, VerifyError::Base64 { .. } | VerifyError::AlgorithmRefused { .. })
        })),
        // RFC 7520 figure 20 is PS384, but Wycheproof's JWK for it says `alg: PS256`: a key's
        // `alg` must equal the token's, so the key does not fit.
        346 | 350 => Some(("key `alg` PS256 differs from token `alg` PS384", |e| {
            matches!(e, VerifyError::KeyMismatch { .. })
        })),
        _ => None,
    }
}

#[test]
fn wycheproof_json_web_signature() {
    let doc = corpus("wycheproof/testvectors_v1/json_web_signature_test.json");
    let mut tally = Tally::default();
    for group in doc["testGroups"].as_array().unwrap() {
        let key =
            group.get("public").or_else(|| group.get("private")).cloned().unwrap_or(Value::Null);
        let verifier = any_alg_verifier(&[key]);
        for case in group["tests"].as_array().unwrap() {
            let tc = case["tcId"].as_u64().unwrap();
            let result = case["result"].as_str().unwrap();
            let outcome = verifier.verify_signature(case["jws"].as_str().unwrap());
            let (bucket, ok) = match (result, refused_by_design(tc)) {
                ("valid", Some((why, check))) => {
                    (format!("valid, refused by design: {why}"), outcome.as_ref().is_err_and(check))
                }
                ("valid", None) => ("valid".to_owned(), outcome.is_ok()),
                ("invalid", None) => ("invalid".to_owned(), outcome.is_err()),
                (other, _) => panic!(
                    "tc {tc}: unexpected result `{other}` (no `acceptable` cases in this file)"
                ),
            };
            tally.record(&bucket, ok, || {
                format!("tc {tc} ({}): {result}, got {outcome:?}", case["comment"])
            });
        }
    }
    tally.assert_clean(401);
    assert_eq!(tally.counts["invalid"], 355);
    assert_eq!(tally.counts["valid"], 46 - 14);
}

#[test]
fn rfc7515_appendix_a() {
    let doc = corpus("rfc7515/rfc7515_appendix_A.json");
    let mut tally = Tally::default();
    for case in doc["cases"].as_array().unwrap() {
        let section = case["rfc7515_section"].as_str().unwrap();
        let token = case["jws_compact"].as_str().unwrap();
        let key = case["jwk_public"].clone();
        let key = if key.is_null() { case["jwk_private"].clone() } else { key };
        let outcome = any_alg_verifier(&[key]).verify_signature(token);
        let ok = match section {
            // The headers contain CRLF and spaces: the signing input is the bytes as sent.
            "A.2" | "A.3" => outcome
                .as_ref()
                .is_ok_and(|v| v.payload == case["payload_utf8"].as_str().unwrap().as_bytes()),
            "A.1" => matches!(outcome, Err(VerifyError::AlgorithmRefused { .. })),
            "A.4" => matches!(outcome, Err(VerifyError::UnsupportedAlgorithm { .. })),
            other => panic!("unexpected section {other}"),
        };
        tally.record(section, ok, || format!("{section}: {outcome:?}"));
        if section == "A.2" {
            // RFC 7517 A.1's key is a different RSA key: A.2 must not verify under it.
            let mut other = doc["extra_keys"]["rfc7517_A1_rsa_public_kid_2011-04-29"].clone();
            other.as_object_mut().unwrap().remove("kid");
            let outcome = any_alg_verifier(&[other]).verify_signature(token);
            tally.record(
                "A.2 under another key",
                matches!(outcome, Err(VerifyError::BadSignature { .. })),
                || format!("{outcome:?}"),
            );
        }
    }
    tally.assert_clean(5);
}

#[test]
fn jose_cookbook_4_1_to_4_4() {
    let mut tally = Tally::default();
    for file in [
        "4_1.rsa_v15_signature.json",
        "4_2.rsa-pss_signature.json",
        "4_3.ecdsa_signature.json",
        "4_4.hmac-sha2_integrity_protection.json",
    ] {
        let doc = corpus(&format!("jose-cookbook/jws/{file}"));
        let mut key = doc["input"]["key"].clone();
        // Publish only the public members, as a JWKS would.
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            key.as_object_mut().unwrap().remove(private);
        }
        let outcome =
            any_alg_verifier(&[key]).verify_signature(doc["output"]["compact"].as_str().unwrap());
        let payload = doc["input"]["payload"].as_str().unwrap().as_bytes();
        let ok = match doc["input"]["alg"].as_str().unwrap() {
            "RS256" | "PS384" => outcome.as_ref().is_ok_and(|v| v.payload == payload),
            "ES512" => matches!(outcome, Err(VerifyError::UnsupportedAlgorithm { .. })),
            "HS256" => matches!(outcome, Err(VerifyError::AlgorithmRefused { .. })),
            other => panic!("{file}: unexpected alg {other}"),
        };
        tally.record(file, ok, || format!("{file}: {outcome:?}"));
    }
    tally.assert_clean(4);
}

#[test]
fn real_gitlab_com_tokens() {
    let jwks_text = corpus("gitlab/gitlab_com_jwks.json")["jwks"].to_string();
    let doc = corpus("gitlab/gitlab_com_tokens.json");
    let mut tally = Tally::default();
    for entry in doc["tokens"].as_array().unwrap() {
        let token = entry["token"].as_str().unwrap();
        let claims = &entry["claims"];
        let iss = claims["iss"].as_str().unwrap();
        let iat = claims["iat"].as_u64().unwrap();
        let config = VerifierConfig::builder(iss);
        let config = match claims["aud"].as_str() {
            Some(aud) => config.audience(aud),
            // Legacy CI_JOB_JWT: no `aud`, accepted only with the insecure opt-in.
            None => config.dangerous().skip_audience_check(),
        };
        let verifier =
            Verifier::new(config.build().unwrap(), Jwks::parse(jwks_text.as_bytes()).unwrap());
        let outcome = verifier.verify(token, iat);
        if entry["signature_verifies_with_gitlab_com_jwks"].as_bool().unwrap() {
            assert!(iss == "gitlab.com" || iss == "https://gitlab.com", "{iss}");
            tally.record("real, verifies at its iat", outcome.is_ok(), || {
                format!("{}: {outcome:?}", entry["kind"])
            });
            // The same token a year later is expired, and says so.
            let later = verifier.verify(token, iat + 365 * 86_400);
            tally.record(
                "real, expired later",
                matches!(later, Err(VerifyError::Expired { .. })),
                || format!("{later:?}"),
            );
        } else {
            tally.record(
                "fake, refused",
                matches!(outcome, Err(VerifyError::BadSignature { .. })),
                || format!("{}: {outcome:?}", entry["kind"]),
            );
        }
    }
    tally.assert_clean(7);
    assert_eq!(tally.counts["fake, refused"], 1);
}

#[test]
fn real_oidc_provider_tokens() {
    let doc = corpus("real-oidc/alerta_provider_tokens.json");
    let mut tally = Tally::default();
    for case in doc["cases"].as_array().unwrap() {
        let name =
            format!("{} {}", case["test"].as_str().unwrap(), case["field"].as_str().unwrap());
        let token = case["token"].as_str().unwrap();
        let claims = &case["claims"];
        let jwks = match &case["jwks"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let iss = claims["iss"].as_str().unwrap_or("none");
        let aud = match &claims["aud"] {
            Value::String(s) => s.clone(),
            Value::Array(a) => a[0].as_str().unwrap().to_owned(),
            _ => "none".to_owned(),
        };
        let config = VerifierConfig::builder(iss).audience(aud);
        let verifier =
            Verifier::new(config.build().unwrap(), Jwks::parse(jwks.as_bytes()).unwrap());
        let at = claims["iat"].as_u64().or_else(|| claims["nbf"].as_u64()).unwrap();
        let outcome = verifier.verify(token, at);
        let (bucket, ok) = match case["signature_valid"].as_bool() {
            Some(true) => ("verifies at its iat", outcome.is_ok()),
            _ if case["header"]["alg"] == "none" => {
                ("alg none refused", matches!(outcome, Err(VerifyError::AlgorithmRefused { .. })))
            }
            _ => ("no JWKS: unknown kid", matches!(outcome, Err(VerifyError::UnknownKid { .. }))),
        };
        tally.record(bucket, ok, || format!("{name}: {outcome:?}"));
    }
    tally.assert_clean(doc["cases"].as_array().unwrap().len());
    assert_eq!(tally.counts["alg none refused"], 1);
}

/// RustCrypto's `rsa` as a [`SignatureBackend`]: a second, independent implementation, so the
/// differential test below checks the offload seam (the core's own refusals before the backend
/// is asked) and not ring against itself.
struct RustCryptoRsa {
    asked: std::sync::atomic::AtomicUsize,
}

impl SignatureBackend for RustCryptoRsa {
    fn verify(&self, check: &SignatureCheck<'_>) -> Offloaded {
        use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPublicKey};
        use sha2::{Digest, Sha256, Sha384, Sha512};
        self.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let KeyMaterial::Rsa { n, e } = check.key else { return Offloaded::Unsupported };
        let Ok(key) = RsaPublicKey::new_with_max_size(
            BigUint::from_bytes_be(n),
            BigUint::from_bytes_be(e),
            8192,
        ) else {
            return Offloaded::Unsupported;
        };
        let m = check.message;
        let result = match check.alg {
            Algorithm::Rs256 => {
                key.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(m), check.signature)
            }
            Algorithm::Rs384 => {
                key.verify(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(m), check.signature)
            }
            Algorithm::Rs512 => {
                key.verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(m), check.signature)
            }
            Algorithm::Ps256 => {
                key.verify(Pss::new_with_salt::<Sha256>(32), &Sha256::digest(m), check.signature)
            }
            Algorithm::Ps384 => {
                key.verify(Pss::new_with_salt::<Sha384>(48), &Sha384::digest(m), check.signature)
            }
            Algorithm::Ps512 => {
                key.verify(Pss::new_with_salt::<Sha512>(64), &Sha512::digest(m), check.signature)
            }
            _ => return Offloaded::Unsupported,
        };
        if result.is_ok() {
            Offloaded::Valid
        } else {
            Offloaded::Invalid
        }
    }
}

/// Every Wycheproof RSA case gets the same verdict with the arithmetic offloaded to another
/// implementation as with ring inside the core. This is the property a host backend must keep.
#[test]
fn wycheproof_rsa_verdicts_do_not_change_when_the_arithmetic_is_offloaded() {
    let mut files = wycheproof_rsa_pkcs1_files();
    files.extend(WYCHEPROOF_RSA_PSS_FILES.map(|(file, alg)| (file.to_owned(), alg)));
    let backend = RustCryptoRsa { asked: Default::default() };
    let (mut cases, mut differences) = (0, Vec::new());
    for (file, alg) in &files {
        let doc = corpus(&format!("wycheproof/testvectors_v1/{file}"));
        for group in doc["testGroups"].as_array().unwrap() {
            let jwks = jwks_of(&[rsa_jwk(group)]);
            for case in group["tests"].as_array().unwrap() {
                let msg = unhex(case["msg"].as_str().unwrap());
                let sig = unhex(case["sig"].as_str().unwrap());
                let ring = verify_detached(&jwks, None, *alg, &msg, &sig).is_ok();
                let offloaded =
                    verify_detached_with(&jwks, None, *alg, &msg, &sig, &backend).is_ok();
                cases += 1;
                if ring != offloaded {
                    differences.push(format!(
                        "{file} tc {} ({}): ring {ring}, offloaded {offloaded}",
                        case["tcId"], case["comment"]
                    ));
                }
            }
        }
    }
    let asked = backend.asked.load(std::sync::atomic::Ordering::Relaxed);
    println!("{cases} cases, {asked} asked of the backend");
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
    assert!(cases > 2500 && asked > cases / 2, "{cases} cases, {asked} asked");
}
