//! Certificate credentials: PEM and DER private keys and certificates. The first byte picks the
//! shape: 0, a key PEM and a certificate PEM separated by a NUL byte; 1, the rest is a DER
//! private key (wrapped as PEM) with the test certificate; 2, the test key with the rest as a DER
//! certificate.
//!
//! Invariants: no panic; an accepted credential has at least 2048 bits and x5t/x5t#S256 of the
//! right length; no error and no debug form shows key material: no 24-character piece of the
//! key's base64 text (with a digit and a `+` or `/`, which wording has not) that the certificate
//! text does not also contain.
#![no_main]

use gitlab_azure_oidc::entra::CertificateCredential;
use gitlab_azure_oidc_fuzz::{pem, text};
use libfuzzer_sys::fuzz_target;

const KEY: &str = include_str!("../../src/entra/testdata/rsa-2048.key.pem");
const CERT: &str = include_str!("../../src/entra/testdata/rsa-2048.cert.pem");

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (key, cert) = match mode % 3 {
        0 => {
            let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            (text(&rest[..split]), text(rest.get(split + 1..).unwrap_or_default()))
        }
        1 => (pem("PRIVATE KEY", rest), CERT.to_owned()),
        _ => (KEY.to_owned(), pem("CERTIFICATE", rest)),
    };
    let result = CertificateCredential::from_pem(&key, &cert);
    let shown = match &result {
        Ok(credential) => {
            assert!(
                credential.key_bits() >= 2048,
                "a {}-bit key was accepted",
                credential.key_bits()
            );
            assert_eq!((credential.x5t().len(), credential.x5t_s256().len()), (27, 43));
            format!("{credential:?}")
        }
        Err(err) => format!("{err}\n{err:?}"),
    };
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    let chars: Vec<char> = body.chars().collect();
    // Only pieces with a digit and a `+` or `/`, as key material has and message text has not,
    // so a piece of the core's own wording copied into the key cannot fire.
    let keyish = |p: &str| {
        p.bytes().any(|b| b.is_ascii_digit()) && p.bytes().any(|b| b == b'+' || b == b'/')
    };
    for piece in chars.windows(24).step_by(8).map(|w| w.iter().collect::<String>()) {
        if keyish(&piece) && !cert.contains(&piece) && shown.contains(&piece) {
            panic!("key material {piece:?} is shown: {shown}");
        }
    }
});
