use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::*;
use crate::text::ident::uuid_v4;

const KEY_PEM: &str = include_str!("../testdata/rsa-2048.key.pem");
const CERT_PEM: &str = include_str!("../testdata/rsa-2048.cert.pem");
const CERT_DER: &[u8] = include_bytes!("../testdata/rsa-2048.cert.der");
const PKCS1_PEM: &str = include_str!("../testdata/rsa-2048.pkcs1.pem");
const ENCRYPTED_PEM: &str = include_str!("../testdata/rsa-2048.encrypted.pem");
const OTHER_CERT_PEM: &str = include_str!("../testdata/other-2048.cert.pem");
const RSA_1024_PEM: &str = include_str!("../testdata/rsa-1024.key.pem");
const EC_PEM: &str = include_str!("../testdata/ec-p256.key.pem");
const CERT_SHA1_HEX: &str = include_str!("../testdata/rsa-2048.cert.sha1");
const CERT_SHA256_HEX: &str = include_str!("../testdata/rsa-2048.cert.sha256");

fn err(key: &str, cert: &str) -> CredentialError {
    CertificateCredential::from_pem(key, cert).expect_err("credential must be refused")
}

/// Every base64 line of the private key PEMs: none may appear in any output.
fn key_lines() -> Vec<&'static str> {
    [KEY_PEM, PKCS1_PEM, ENCRYPTED_PEM, RSA_1024_PEM, EC_PEM]
        .iter()
        .flat_map(|pem| pem.lines())
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .collect()
}

fn assert_no_key_material(text: &str) {
    for line in key_lines() {
        assert!(!text.contains(line), "key material in {text:?}");
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", STANDARD.encode(der))
}

#[test]
fn reads_a_pkcs8_key_and_its_certificate_with_openssls_thumbprints() {
    let c = CertificateCredential::from_pem(KEY_PEM, CERT_PEM).unwrap();
    assert_eq!(c.key_bits(), 2048);
    assert_eq!(c.x5t(), testkit::b64(&hex::decode(CERT_SHA1_HEX.trim()).unwrap()));
    assert_eq!(c.x5t_s256(), testkit::b64(&hex::decode(CERT_SHA256_HEX.trim()).unwrap()));
    assert_eq!(c.signature_algorithm(), AssertionAlgorithm::Ps256);
    assert_eq!(c.assertion_lifetime(), DEFAULT_ASSERTION_LIFETIME);
    assert_eq!(certificate_rsa_public_key(CERT_DER).map(<[u8]>::len), Ok(270));
}

#[test]
fn accepts_one_combined_pem_with_text_around_the_blocks() {
    let combined = format!("subject=CN=test\n{CERT_PEM}\nBag Attributes\n{KEY_PEM}");
    let c = CertificateCredential::from_pem(&combined, &combined).unwrap();
    assert_eq!(c.key_bits(), 2048);
    let crlf = KEY_PEM.replace('\n', "\r\n");
    assert!(CertificateCredential::from_pem(&crlf, CERT_PEM).is_ok());
}

#[test]
fn debug_never_shows_the_private_key() {
    let c = CertificateCredential::from_pem(KEY_PEM, CERT_PEM).unwrap();
    let debug = format!("{c:?}");
    assert!(debug.contains("key: \"[redacted]\""), "{debug}");
    assert_no_key_material(&debug);
    assert!(!debug.contains("modulus"), "{debug}");
}

#[test]
fn keys_in_other_forms_are_refused_with_the_conversion() {
    let e = err(PKCS1_PEM, CERT_PEM);
    assert_eq!(e, CredentialError::Pkcs1Key);
    assert!(e.to_string().contains("openssl pkcs8 -topk8 -nocrypt"), "{e}");
    let e = err(ENCRYPTED_PEM, CERT_PEM);
    assert_eq!(e, CredentialError::EncryptedKey);
    assert!(e.to_string().contains("decrypt"), "{e}");
}

#[test]
fn non_rsa_and_small_keys_are_refused() {
    let e = err(EC_PEM, CERT_PEM);
    assert_eq!(e, CredentialError::NotRsa { algorithm: "an EC key".into() });
    assert!(e.to_string().contains("not RSA"), "{e}");
    let ec_legacy = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
    assert_eq!(err(ec_legacy, CERT_PEM), CredentialError::NotRsa { algorithm: "EC".into() });
    let e = err(RSA_1024_PEM, CERT_PEM);
    assert_eq!(e, CredentialError::KeyTooSmall { bits: 1024, min: 2048 });
    assert!(e.to_string().contains("1024 bits"), "{e}");
}

/// Found by the `broker_config` fuzz target: a key whose CRT exponent `dP` is damaged loaded
/// (ring checks it only when it signs) and then failed every signature. It is refused at load.
#[test]
fn a_key_with_a_damaged_crt_exponent_is_refused_at_load() {
    let body: String = KEY_PEM.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut der = STANDARD.decode(body).unwrap();
    assert!(CertificateCredential::from_pem(KEY_PEM, CERT_PEM).is_ok());
    // PrivateKeyInfo { version, algorithm, OCTET STRING { RSAPrivateKey { version, n, e, d,
    // p, q, dP, ... } } }: find dP and flip one bit in its middle.
    let (info, _) = expect(&der, SEQUENCE).unwrap();
    let (_, rest) = expect(info, INTEGER).unwrap();
    let (_, rest) = expect(rest, SEQUENCE).unwrap();
    let (key, _) = expect(rest, OCTET_STRING).unwrap();
    let (mut fields, _) = expect(key, SEQUENCE).unwrap();
    for _ in 0..6 {
        fields = expect(fields, INTEGER).unwrap().1;
    }
    let (dp, _) = expect(fields, INTEGER).unwrap();
    let at = dp.as_ptr() as usize - der.as_ptr() as usize + dp.len() / 2;
    der[at] ^= 1;
    let e = err(&pem("PRIVATE KEY", &der), CERT_PEM);
    assert_eq!(e.kind(), "key-invalid", "{e}");
    assert!(e.to_string().contains("test signature"), "{e}");
    assert_no_key_material(&e.to_string());
}

#[test]
fn pem_problems_are_named() {
    assert_eq!(
        err(CERT_PEM, CERT_PEM),
        CredentialError::NoPemBlock {
            input: PemInput::PrivateKey,
            expected: "PRIVATE KEY",
            found: vec!["CERTIFICATE".into()]
        }
    );
    assert_eq!(
        err(KEY_PEM, KEY_PEM),
        CredentialError::NoPemBlock {
            input: PemInput::Certificate,
            expected: "CERTIFICATE",
            found: vec!["PRIVATE KEY".into()]
        }
    );
    let e = err("/etc/keys/key.pem", CERT_PEM);
    assert!(e.to_string().contains("not a path"), "{e}");
    for (bad, reason) in [
        ("-----BEGIN PRIVATE KEY-----\nMIIE\n", "no END line"),
        ("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n", "not base64"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END CERTIFICATE-----\n", "without its BEGIN"),
        (
            "-----BEGIN PRIVATE KEY-----\n-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
            "inside another block",
        ),
    ] {
        match err(bad, CERT_PEM) {
            CredentialError::PemInvalid { input: PemInput::PrivateKey, reason: r } => {
                assert!(r.contains(reason), "{r}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // Base64 that is not a key.
    let e = err(&pem("PRIVATE KEY", b"not der"), CERT_PEM);
    assert_eq!(e, CredentialError::KeyInvalid { reason: "not PKCS#8 DER".into() });
}

#[test]
fn the_certificate_must_be_the_keys() {
    let e = err(KEY_PEM, OTHER_CERT_PEM);
    assert_eq!(e, CredentialError::CertificateKeyMismatch);
    assert!(e.to_string().contains("AADSTS700027"), "{e}");
}

#[test]
fn broken_certificates_are_refused() {
    let truncated = pem("CERTIFICATE", &CERT_DER[..CERT_DER.len() - 1]);
    assert!(matches!(err(KEY_PEM, &truncated), CredentialError::CertificateInvalid { .. }));
    let mut trailing = CERT_DER.to_vec();
    trailing.push(0);
    assert_eq!(
        err(KEY_PEM, &pem("CERTIFICATE", &trailing)),
        CredentialError::CertificateInvalid { reason: "it has bytes after the certificate".into() }
    );
    assert!(matches!(
        err(KEY_PEM, &pem("CERTIFICATE", b"\x30\x03\x02\x01\x01")),
        CredentialError::CertificateInvalid { .. }
    ));
}

#[test]
fn no_error_carries_key_material() {
    let cases = [
        err(PKCS1_PEM, CERT_PEM),
        err(ENCRYPTED_PEM, CERT_PEM),
        err(EC_PEM, CERT_PEM),
        err(RSA_1024_PEM, CERT_PEM),
        err(KEY_PEM, OTHER_CERT_PEM),
        err(KEY_PEM, KEY_PEM),
        err(&KEY_PEM.replace("-----END", "x-----END"), CERT_PEM),
    ];
    for e in cases {
        assert_no_key_material(&e.to_string());
        assert_no_key_material(&format!("{e:?}"));
    }
}

#[test]
fn lifetime_is_at_most_ten_minutes() {
    let c = || CertificateCredential::from_pem(KEY_PEM, CERT_PEM).unwrap();
    assert_eq!(c().lifetime(600).unwrap().assertion_lifetime(), 600);
    assert_eq!(c().lifetime(1).unwrap().assertion_lifetime(), 1);
    for seconds in [0, 601, 3600] {
        let e = c().lifetime(seconds).expect_err("must be refused");
        assert_eq!(e, CredentialError::LifetimeOutOfRange { seconds, max: 600 });
        assert!(e.to_string().contains("between 1 and 600"), "{e}");
    }
}

#[test]
fn uuids_are_version_4_variant_1() {
    assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
    assert_eq!(uuid_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
    let bytes: [u8; 16] = core::array::from_fn(|i| u8::try_from(i * 17).unwrap());
    assert_eq!(uuid_v4(bytes), "00112233-4455-4677-8899-aabbccddeeff");
}

#[test]
fn der_helpers_are_exact_and_total() {
    assert_eq!(dotted(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]), "1.2.840.10045.2.1");
    assert_eq!(dotted(&[0x2b, 0x65, 0x70]), "1.3.101.112");
    assert_eq!(dotted(&[0x88, 0x37]), "2.999");
    assert_eq!(dotted(&[]), "?");
    assert_eq!(integer_bits(&[0x00, 0x80, 0x00]), 16);
    assert_eq!(integer_bits(&[0x01, 0xff]), 9);
    assert_eq!(integer_bits(&[0x00]), 0);
    assert_eq!(tlv(&[0x30, 0x82, 0x00, 0x01, 0x05]), Some((0x30, &[0x05][..], &[][..])));
    assert_eq!(tlv(&[0x30, 0x84, 0, 0, 0, 1, 5]), None);
    assert_eq!(tlv(&[0x30, 0x05, 0x00]), None);
    // A cheap deterministic fuzz: truncations and bit flips of real DER never panic.
    let key_der = private_key_der(KEY_PEM).unwrap();
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..400 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        for der in [CERT_DER, key_der.as_slice()] {
            let len = usize::try_from(state % 1024).unwrap().min(der.len());
            let mut bytes = der[..len].to_vec();
            if let Some(b) = bytes.get_mut(usize::try_from(state >> 20).unwrap() % len.max(1)) {
                *b ^= u8::try_from(state >> 56).unwrap();
            }
            let _ = certificate_rsa_public_key(&bytes);
            let _ = parse_private_key(&bytes);
        }
    }
}

#[test]
fn credential_error_kinds_are_stable() {
    let kinds: Vec<&str> = [
        CredentialError::CertificateInvalid { reason: String::new() },
        CredentialError::CertificateKeyMismatch,
        CredentialError::EncryptedKey,
        CredentialError::KeyInvalid { reason: String::new() },
        CredentialError::KeyTooSmall { bits: 1, min: 2 },
        CredentialError::LifetimeOutOfRange { seconds: 0, max: 600 },
        CredentialError::NoPemBlock { input: PemInput::Certificate, expected: "X", found: vec![] },
        CredentialError::NotRsa { algorithm: String::new() },
        CredentialError::PemInvalid { input: PemInput::PrivateKey, reason: String::new() },
        CredentialError::Pkcs1Key,
    ]
    .iter()
    .map(CredentialError::kind)
    .collect();
    assert_eq!(
        kinds,
        [
            "certificate-invalid",
            "certificate-key-mismatch",
            "encrypted-key",
            "key-invalid",
            "key-too-small",
            "lifetime-out-of-range",
            "no-pem-block",
            "not-rsa",
            "pem-invalid",
            "pkcs1-key",
        ]
    );
}
