//! RSA keys as the broker publishes and uses them: public keys (from a private key, an SPKI or
//! a PKCS#1 PEM) with their RFC 7638 thumbprint, a private key that signs, and the thumbprints
//! of a certificate as Entra and `az` show them.
//!
//! The DER and PEM readers are the certificate credential's (`credential.rs`); nothing here
//! keeps or prints key material but public keys.

use std::fmt;

use ring::digest;
use ring::signature::{KeyPair as _, RsaKeyPair};

use super::credential::{
    b64, certificate_der, expect, integer_bits, parse_private_key, pem_blocks, pem_decode,
    private_key_der, thumbprint, BIT_STRING, INTEGER, OID, OID_RSA, SEQUENCE,
};
use crate::entra::{CredentialError, PemInput};

/// Smallest RSA modulus accepted for a public key, in bits (the private key's floor too).
const MIN_RSA_BITS: usize = 2048;

/// An RSA public key: modulus and exponent, big-endian without leading zeros.
#[derive(Clone, PartialEq, Eq)]
pub struct RsaPublicKey {
    n: Vec<u8>,
    e: Vec<u8>,
    bits: usize,
}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaPublicKey")
            .field("bits", &self.bits)
            .field("thumbprint", &self.jwk_thumbprint())
            .finish()
    }
}

impl RsaPublicKey {
    /// Reads an RSA public key from PEM: `BEGIN PUBLIC KEY` (SubjectPublicKeyInfo, what
    /// `openssl pkey -pubout` writes), `BEGIN RSA PUBLIC KEY` (PKCS#1), or the public half of
    /// an unencrypted PKCS#8 private key (`BEGIN PRIVATE KEY`).
    ///
    /// # Errors
    /// A [`CredentialError`] for PEM without such a block, a key that is not RSA, or a modulus
    /// under 2048 bits.
    pub fn from_pem(pem: &str) -> Result<Self, CredentialError> {
        let input = PemInput::PublicKey;
        let blocks = pem_blocks(pem, input)?;
        let invalid = |reason: &str| CredentialError::KeyInvalid { reason: reason.to_owned() };
        if let Some(block) = blocks.iter().find(|b| b.label == "PUBLIC KEY") {
            let der = pem_decode(block, input)?;
            // SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier,
            //                                     subjectPublicKey BIT STRING }  (RFC 5280 4.1)
            let (spki, _) = expect(&der, SEQUENCE).ok_or_else(|| invalid("not SPKI DER"))?;
            let (algorithm, rest) =
                expect(spki, SEQUENCE).ok_or_else(|| invalid("no key algorithm"))?;
            let (oid, _) = expect(algorithm, OID).ok_or_else(|| invalid("no key algorithm"))?;
            if oid != OID_RSA {
                return Err(CredentialError::NotRsa { algorithm: "a non-RSA key".to_owned() });
            }
            let (bits, _) = expect(rest, BIT_STRING).ok_or_else(|| invalid("no key bits"))?;
            return match bits.split_first() {
                Some((0, key)) => Self::from_pkcs1_der(key),
                _ => Err(invalid("malformed key bit string")),
            };
        }
        if let Some(block) = blocks.iter().find(|b| b.label == "RSA PUBLIC KEY") {
            return Self::from_pkcs1_der(&pem_decode(block, input)?);
        }
        if blocks.iter().any(|b| b.label.ends_with("PRIVATE KEY")) {
            let (pair, _) = signing_key_from_pem(pem)?;
            return Ok(Self::from_pair(&pair));
        }
        Err(CredentialError::NoPemBlock {
            input,
            expected: "PUBLIC KEY",
            found: blocks.iter().map(|b| b.label.to_owned()).collect(),
        })
    }

    /// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 A.1.1).
    fn from_pkcs1_der(der: &[u8]) -> Result<Self, CredentialError> {
        let invalid = |reason: &str| CredentialError::KeyInvalid { reason: reason.to_owned() };
        let (seq, _) = expect(der, SEQUENCE).ok_or_else(|| invalid("not an RSA public key"))?;
        let (n, rest) = expect(seq, INTEGER).ok_or_else(|| invalid("no modulus"))?;
        let (e, _) = expect(rest, INTEGER).ok_or_else(|| invalid("no exponent"))?;
        let key = Self { n: strip_zeros(n), e: strip_zeros(e), bits: integer_bits(n) };
        if key.bits < MIN_RSA_BITS {
            return Err(CredentialError::KeyTooSmall { bits: key.bits, min: MIN_RSA_BITS });
        }
        if key.e.is_empty() {
            return Err(invalid("a zero exponent"));
        }
        Ok(key)
    }

    /// The public half of a key pair.
    pub(crate) fn from_pair(pair: &RsaKeyPair) -> Self {
        // ring gives the public key as RSAPublicKey DER; ring checked it, so it parses.
        Self::from_pkcs1_der(pair.public_key().as_ref()).unwrap_or_else(|_| Self {
            n: Vec::new(),
            e: Vec::new(),
            bits: pair.public().modulus_len().saturating_mul(8),
        })
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// The modulus, base64url (the JWK's `n`).
    pub fn n(&self) -> String {
        b64(&self.n)
    }

    /// The exponent, base64url (the JWK's `e`).
    pub fn e(&self) -> String {
        b64(&self.e)
    }

    /// The RFC 7638 JWK thumbprint: SHA-256 of `{"e":..,"kty":"RSA","n":..}`, base64url. What
    /// GitLab and Kubernetes use as `kid`, and the broker's default `kid`.
    pub fn jwk_thumbprint(&self) -> String {
        let canonical = format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, self.e(), self.n());
        b64(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    }
}

fn strip_zeros(integer: &[u8]) -> Vec<u8> {
    let first = integer.iter().position(|b| *b != 0).unwrap_or(integer.len());
    integer.get(first..).unwrap_or_default().to_vec()
}

/// Reads an unencrypted PKCS#8 RSA private key of at least 2048 bits (the certificate
/// credential's rules), for signing: the key pair and its modulus size.
pub(crate) fn signing_key_from_pem(pem: &str) -> Result<(RsaKeyPair, usize), CredentialError> {
    let mut der = private_key_der(pem)?;
    let parsed = parse_private_key(&der);
    // Best effort: do not leave the decoded key in freed memory (ring keeps its own copy).
    der.fill(0);
    std::hint::black_box(&der);
    parsed
}

/// A certificate's thumbprints, as the places that show one print it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateThumbprints {
    /// SHA-1 of the DER, uppercase hex: the portal's "Thumbprint" and Graph's
    /// `customKeyIdentifier` (`az ad app credential list`).
    pub sha1_hex: String,
    /// SHA-1 of the DER, base64url: the `x5t` header of RS256 assertions.
    pub x5t: String,
    /// SHA-256 of the DER, base64url: the `x5t#S256` header of PS256 assertions.
    pub x5t_s256: String,
    /// The certificate's RSA public key.
    pub public_key: RsaPublicKey,
}

/// The thumbprints and public key of a PEM certificate (the first one of a chain).
///
/// # Errors
/// [`CredentialError::NoPemBlock`], [`CredentialError::PemInvalid`] or
/// [`CredentialError::CertificateInvalid`] when it is not an X.509 certificate with an RSA key.
pub fn certificate_thumbprints(pem: &str) -> Result<CertificateThumbprints, CredentialError> {
    let der = certificate_der(pem)?;
    let spki_key = super::credential::certificate_rsa_public_key(&der)
        .map_err(|reason| CredentialError::CertificateInvalid { reason: reason.to_owned() })?;
    let public_key = RsaPublicKey::from_pkcs1_der(spki_key)?;
    let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
    Ok(CertificateThumbprints {
        sha1_hex: crate::text::hex(sha1.as_ref()).to_ascii_uppercase(),
        x5t: thumbprint(&digest::SHA1_FOR_LEGACY_USE_ONLY, &der),
        x5t_s256: thumbprint(&digest::SHA256, &der),
        public_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> String {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/entra/testdata/");
        std::fs::read_to_string(format!("{dir}{name}")).unwrap()
    }

    #[test]
    fn a_private_key_and_its_certificate_give_the_same_public_key() {
        let from_key = RsaPublicKey::from_pem(&testdata("rsa-2048.key.pem")).unwrap();
        let cert = certificate_thumbprints(&testdata("rsa-2048.cert.pem")).unwrap();
        assert_eq!(from_key, cert.public_key);
        assert_eq!(from_key.bits(), 2048);
        assert_eq!(cert.sha1_hex.len(), 40);
        assert!(cert.sha1_hex.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        let credential = crate::entra::CertificateCredential::from_pem(
            &testdata("rsa-2048.key.pem"),
            &testdata("rsa-2048.cert.pem"),
        )
        .unwrap();
        assert_eq!(cert.x5t_s256, credential.x5t_s256());
        assert_eq!(cert.x5t, credential.x5t());
    }

    #[test]
    fn the_thumbprint_is_rfc_7638() {
        // The testkit key's `kid` is its RFC 7638 thumbprint, computed by another implementation.
        let key = testkit::RsaKey::fixture_2048();
        let public = RsaPublicKey::from_pem(&key.private_pem()).unwrap();
        assert_eq!(public.jwk_thumbprint(), key.thumbprint());
        assert_eq!(public.n(), key.jwk()["n"].as_str().unwrap());
    }

    #[test]
    fn public_keys_that_cannot_be_published_are_refused_by_name() {
        let error = RsaPublicKey::from_pem("nothing here").unwrap_err();
        assert_eq!(error.kind(), "no-pem-block", "{error}");
        let small = testkit::RsaKey::fixture_1024().private_pem();
        assert_eq!(RsaPublicKey::from_pem(&small).unwrap_err().kind(), "key-too-small");
    }
}
