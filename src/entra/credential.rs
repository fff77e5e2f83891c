//! The certificate credential: an RSA private key and its certificate, which sign a client
//! assertion of their own (Microsoft identity platform "certificate credentials").
//!
//! PEM (RFC 7468) and the few DER structures needed (PKCS#8, RFC 5208; X.509, RFC 5280) are read
//! here by hand: the crate depends on ring only, and ring parses the key itself. The private key
//! stays inside [`CertificateCredential`]: its `Debug` prints `[redacted]`, and no error or output
//! carries key material.

use std::fmt;

use ring::digest;
use ring::rand::SecureRandom;
use ring::signature::{self, KeyPair as _, RsaKeyPair};

use crate::entra::{CredentialError, PemInput, RequestError};

/// Default lifetime of a signed assertion, in seconds.
pub const DEFAULT_ASSERTION_LIFETIME: u64 = 300;
/// Longest accepted lifetime of a signed assertion, in seconds (Microsoft: "keep it short - 5-10
/// minutes after `nbf` at most").
pub const MAX_ASSERTION_LIFETIME: u64 = 600;
/// Smallest RSA modulus accepted, in bits (ring's floor too).
const MIN_RSA_BITS: usize = 2048;

/// The signature algorithm of a certificate-signed assertion, and the thumbprint header it uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AssertionAlgorithm {
    /// RSASSA-PSS with SHA-256, with header `x5t#S256` (the certificate's SHA-256 thumbprint):
    /// what Microsoft's current documentation asks for. The default.
    #[default]
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, with header `x5t` (the certificate's SHA-1 thumbprint):
    /// the older documented form, still used by MSAL without a SHA-256 thumbprint.
    Rs256,
}

impl AssertionAlgorithm {
    /// The JOSE name, `PS256` or `RS256`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ps256 => "PS256",
            Self::Rs256 => "RS256",
        }
    }
}

/// An RSA private key and its certificate. Build it with [`CertificateCredential::from_pem`].
pub struct CertificateCredential {
    key: RsaKeyPair,
    bits: usize,
    x5t: String,
    x5t_s256: String,
    algorithm: AssertionAlgorithm,
    lifetime: u64,
}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("key", &"[redacted]")
            .field("bits", &self.bits)
            .field("x5t", &self.x5t)
            .field("x5t_s256", &self.x5t_s256)
            .field("algorithm", &self.algorithm)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl CertificateCredential {
    /// Reads an unencrypted PKCS#8 RSA private key (`-----BEGIN PRIVATE KEY-----`) and its
    /// certificate (`-----BEGIN CERTIFICATE-----`; the first one when a chain is given). Both
    /// may be the same combined PEM text. Signs with PS256 for [`DEFAULT_ASSERTION_LIFETIME`]
    /// seconds unless changed with [`Self::algorithm`] and [`Self::lifetime`].
    ///
    /// # Errors
    /// - [`CredentialError::NoPemBlock`] and [`CredentialError::PemInvalid`] for bad PEM.
    /// - [`CredentialError::EncryptedKey`] and [`CredentialError::Pkcs1Key`] for keys in another
    ///   form, with the command that converts them.
    /// - [`CredentialError::NotRsa`], [`CredentialError::KeyTooSmall`] and
    ///   [`CredentialError::KeyInvalid`] for keys that cannot sign.
    /// - [`CredentialError::CertificateInvalid`] for a certificate that is not X.509 with an RSA
    ///   key, and [`CredentialError::CertificateKeyMismatch`] when it is another key's.
    pub fn from_pem(private_key_pem: &str, certificate_pem: &str) -> Result<Self, CredentialError> {
        let mut key_der = private_key_der(private_key_pem)?;
        let parsed = parse_private_key(&key_der);
        // Best effort: do not leave the decoded key in freed memory (ring keeps its own copy).
        key_der.fill(0);
        std::hint::black_box(&key_der);
        let (key, bits) = parsed?;
        let cert_der = certificate_der(certificate_pem)?;
        let cert_public_key = certificate_rsa_public_key(&cert_der)
            .map_err(|reason| CredentialError::CertificateInvalid { reason: reason.to_owned() })?;
        if cert_public_key != key.public_key().as_ref() {
            return Err(CredentialError::CertificateKeyMismatch);
        }
        Ok(Self {
            key,
            bits,
            x5t: thumbprint(&digest::SHA1_FOR_LEGACY_USE_ONLY, &cert_der),
            x5t_s256: thumbprint(&digest::SHA256, &cert_der),
            algorithm: AssertionAlgorithm::default(),
            lifetime: DEFAULT_ASSERTION_LIFETIME,
        })
    }

    /// Chooses the signature algorithm. Defaults to [`AssertionAlgorithm::Ps256`].
    #[must_use]
    pub fn algorithm(mut self, algorithm: AssertionAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets the assertion lifetime (`exp - nbf`) in seconds. Defaults to
    /// [`DEFAULT_ASSERTION_LIFETIME`] (5 minutes).
    ///
    /// # Errors
    /// [`CredentialError::LifetimeOutOfRange`] for 0 or more than [`MAX_ASSERTION_LIFETIME`].
    pub fn lifetime(mut self, seconds: u64) -> Result<Self, CredentialError> {
        if seconds == 0 || seconds > MAX_ASSERTION_LIFETIME {
            return Err(CredentialError::LifetimeOutOfRange {
                seconds,
                max: MAX_ASSERTION_LIFETIME,
            });
        }
        self.lifetime = seconds;
        Ok(self)
    }

    /// The signature algorithm.
    pub fn signature_algorithm(&self) -> AssertionAlgorithm {
        self.algorithm
    }

    /// The assertion lifetime in seconds.
    pub fn assertion_lifetime(&self) -> u64 {
        self.lifetime
    }

    /// The RSA modulus size in bits.
    pub fn key_bits(&self) -> usize {
        self.bits
    }

    /// The certificate's SHA-1 thumbprint, base64url: the `x5t` header of RS256 assertions.
    pub fn x5t(&self) -> &str {
        &self.x5t
    }

    /// The certificate's SHA-256 thumbprint, base64url: the `x5t#S256` header of PS256
    /// assertions.
    pub fn x5t_s256(&self) -> &str {
        &self.x5t_s256
    }

    /// Signs a client assertion for `audience` (the token endpoint) and `client_id`, valid from
    /// `now` for the lifetime; `jti` is a fresh UUID v4 drawn from `rng`.
    pub(crate) fn sign_assertion(
        &self,
        audience: &str,
        client_id: &str,
        now: u64,
        rng: &dyn SecureRandom,
    ) -> Result<String, RequestError> {
        let (thumbprint_name, thumbprint, padding): (_, _, &dyn signature::RsaEncoding) = match self
            .algorithm
        {
            AssertionAlgorithm::Ps256 => ("x5t#S256", &self.x5t_s256, &signature::RSA_PSS_SHA256),
            AssertionAlgorithm::Rs256 => ("x5t", &self.x5t, &signature::RSA_PKCS1_SHA256),
        };
        let header = format!(
            r#"{{"alg":"{}","typ":"JWT",{}:{}}}"#,
            self.algorithm.name(),
            json_string(thumbprint_name),
            json_string(thumbprint)
        );
        let mut random = [0u8; 16];
        rng.fill(&mut random).map_err(|_| RequestError::RandomFailed)?;
        let jti = crate::text::ident::uuid_v4(random);
        let exp = now.saturating_add(self.lifetime);
        let claims = format!(
            r#"{{"aud":{},"exp":{exp},"iat":{now},"iss":{},"jti":"{jti}","nbf":{now},"sub":{}}}"#,
            json_string(audience),
            json_string(client_id),
            json_string(client_id)
        );
        let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(padding, rng, signing_input.as_bytes(), &mut sig)
            .map_err(|_| RequestError::SigningFailed)?;
        Ok(format!("{signing_input}.{}", b64(&sig)))
    }
}

pub(super) fn b64(data: &[u8]) -> String {
    crate::text::b64::encode(data)
}

pub(super) fn thumbprint(algorithm: &'static digest::Algorithm, der: &[u8]) -> String {
    b64(digest::digest(algorithm, der).as_ref())
}

/// A JSON string literal (quotes and escapes) for `s`.
fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

// ---------------------------------------------------------------------------------------------
// PEM (RFC 7468): labelled base64 blocks; text outside the blocks is ignored.

pub(super) struct PemBlock<'a> {
    pub(super) label: &'a str,
    pub(super) body: Vec<&'a str>,
}

pub(super) fn pem_blocks(
    text: &str,
    input: PemInput,
) -> Result<Vec<PemBlock<'_>>, CredentialError> {
    let mut blocks = Vec::new();
    let mut open: Option<PemBlock<'_>> = None;
    for line in text.lines().map(str::trim) {
        if let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----"))
        {
            if open.is_some() {
                return Err(pem_invalid(input, "a BEGIN line inside another block"));
            }
            open = Some(PemBlock { label, body: Vec::new() });
        } else if let Some(label) =
            line.strip_prefix("-----END ").and_then(|l| l.strip_suffix("-----"))
        {
            match open.take() {
                Some(block) if block.label == label => blocks.push(block),
                _ => return Err(pem_invalid(input, "an END line without its BEGIN line")),
            }
        } else if let Some(block) = open.as_mut() {
            block.body.push(line);
        }
    }
    if open.is_some() {
        return Err(pem_invalid(input, "a block has no END line"));
    }
    Ok(blocks)
}

pub(super) fn pem_invalid(input: PemInput, reason: &str) -> CredentialError {
    CredentialError::PemInvalid { input, reason: reason.to_owned() }
}

pub(super) fn pem_decode(
    block: &PemBlock<'_>,
    input: PemInput,
) -> Result<Vec<u8>, CredentialError> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    let joined: String = block.body.concat();
    STANDARD.decode(joined.as_bytes()).map_err(|_| {
        pem_invalid(input, "the block body is not base64 (encrypted PEM headers are not supported)")
    })
}

pub(super) fn private_key_der(pem: &str) -> Result<Vec<u8>, CredentialError> {
    let input = PemInput::PrivateKey;
    let blocks = pem_blocks(pem, input)?;
    if let Some(block) = blocks.iter().find(|b| b.label == "PRIVATE KEY") {
        return pem_decode(block, input);
    }
    let labels: Vec<String> = blocks.iter().map(|b| b.label.to_owned()).collect();
    if labels.iter().any(|l| l == "ENCRYPTED PRIVATE KEY") {
        Err(CredentialError::EncryptedKey)
    } else if labels.iter().any(|l| l == "RSA PRIVATE KEY") {
        Err(CredentialError::Pkcs1Key)
    } else if let Some(l) = labels.iter().find(|l| l.ends_with(" PRIVATE KEY")) {
        let algorithm = l.trim_end_matches(" PRIVATE KEY").to_owned();
        Err(CredentialError::NotRsa { algorithm })
    } else {
        Err(CredentialError::NoPemBlock { input, expected: "PRIVATE KEY", found: labels })
    }
}

pub(super) fn certificate_der(pem: &str) -> Result<Vec<u8>, CredentialError> {
    let input = PemInput::Certificate;
    let blocks = pem_blocks(pem, input)?;
    match blocks.iter().find(|b| b.label == "CERTIFICATE") {
        Some(block) => pem_decode(block, input),
        None => Err(CredentialError::NoPemBlock {
            input,
            expected: "CERTIFICATE",
            found: blocks.iter().map(|b| b.label.to_owned()).collect(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// DER: just enough to read PKCS#8 and X.509 framing.

pub(super) const SEQUENCE: u8 = 0x30;
pub(super) const INTEGER: u8 = 0x02;
pub(super) const BIT_STRING: u8 = 0x03;
pub(super) const OCTET_STRING: u8 = 0x04;
pub(super) const OID: u8 = 0x06;
/// `[0] EXPLICIT`, the X.509 version.
const CONTEXT_0: u8 = 0xa0;

/// rsaEncryption, 1.2.840.113549.1.1.1.
pub(super) const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// Splits one TLV off the front of `input`: `(tag, contents, rest)`. Only definite lengths of up
/// to 3 length bytes (16 MiB), which covers every key and certificate.
pub(super) fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 3 {
            return None;
        }
        let (bytes, after) = rest.split_at_checked(count)?;
        rest = after;
        bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// Reads a TLV with the expected tag.
pub(super) fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match tlv(input)? {
        (t, contents, rest) if t == tag => Some((contents, rest)),
        _ => None,
    }
}

/// Parses a PKCS#8 key: checks it is RSA of at least 2048 bits, then hands it to ring.
pub(super) fn parse_private_key(der: &[u8]) -> Result<(RsaKeyPair, usize), CredentialError> {
    let invalid = |reason: &str| CredentialError::KeyInvalid { reason: reason.to_owned() };
    // PrivateKeyInfo ::= SEQUENCE { version INTEGER, algorithm AlgorithmIdentifier,
    //                               privateKey OCTET STRING, ... }
    let (info, _) = expect(der, SEQUENCE).ok_or_else(|| invalid("not PKCS#8 DER"))?;
    let (_, rest) = expect(info, INTEGER).ok_or_else(|| invalid("no PKCS#8 version"))?;
    let (algorithm, rest) = expect(rest, SEQUENCE).ok_or_else(|| invalid("no PKCS#8 algorithm"))?;
    let (oid, _) = expect(algorithm, OID).ok_or_else(|| invalid("no algorithm identifier"))?;
    if oid != OID_RSA {
        return Err(CredentialError::NotRsa { algorithm: algorithm_name(oid) });
    }
    let (private_key, _) =
        expect(rest, OCTET_STRING).ok_or_else(|| invalid("no PKCS#8 private key"))?;
    // RSAPrivateKey ::= SEQUENCE { version INTEGER, modulus INTEGER, ... } (RFC 8017 A.1.2)
    let bits = expect(private_key, SEQUENCE)
        .and_then(|(seq, _)| expect(seq, INTEGER))
        .and_then(|(_, rest)| expect(rest, INTEGER))
        .map(|(modulus, _)| integer_bits(modulus))
        .ok_or_else(|| invalid("no RSA modulus"))?;
    if bits < MIN_RSA_BITS {
        return Err(CredentialError::KeyTooSmall { bits, min: MIN_RSA_BITS });
    }
    // ring names the reason in `Display`: "TooSmall", "TooLarge", "InvalidEncoding", ...
    let key = RsaKeyPair::from_pkcs8(der).map_err(|e| match e.to_string().as_str() {
        "TooSmall" => CredentialError::KeyTooSmall { bits, min: MIN_RSA_BITS },
        other => invalid(other),
    })?;
    // ring checks a key's CRT parameters only when it signs (each signature is verified before
    // it is returned): a damaged `dP`, `dQ` or `qInv` loads and then never signs. Sign once
    // here, so such a key is refused with the configuration, not at the first job.
    let mut probe = vec![0; key.public().modulus_len()];
    key.sign(&signature::RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), b"probe", &mut probe)
        .map_err(|_| {
            invalid(
                "a test signature failed: the key's CRT parameters do not match its modulus \
                 (a damaged key file; export the key again)",
            )
        })?;
    Ok((key, bits))
}

/// The size in bits of a non-negative DER INTEGER.
pub(super) fn integer_bits(contents: &[u8]) -> usize {
    let significant = match contents.iter().position(|b| *b != 0) {
        Some(first) => contents.get(first..).unwrap_or_default(),
        None => return 0,
    };
    let leading = significant.first().map_or(0, |b| b.leading_zeros());
    significant.len().saturating_mul(8).saturating_sub(usize::try_from(leading).unwrap_or(0))
}

/// A readable name for a key algorithm OID.
fn algorithm_name(oid: &[u8]) -> String {
    match oid {
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01] => "an EC key".to_owned(),
        [0x2b, 0x65, 0x70] => "an Ed25519 key".to_owned(),
        [0x2b, 0x65, 0x71] => "an Ed448 key".to_owned(),
        [0x2b, 0x65, 0x6e] | [0x2b, 0x65, 0x6f] => "an X25519/X448 key".to_owned(),
        [0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01] => "a DSA key".to_owned(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a] => {
            "an RSASSA-PSS-restricted key (use a plain rsaEncryption key)".to_owned()
        }
        _ => format!("a key of algorithm {}", dotted(oid)),
    }
}

/// An OID in dotted form, e.g. `1.2.840.10045.2.1`; `?` when malformed.
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for b in oid {
        value = match value.checked_mul(128) {
            Some(v) => v | u64::from(b & 0x7f),
            None => return "?".to_owned(),
        };
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    if arcs.is_empty() {
        return "?".to_owned();
    }
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// The RSAPublicKey DER inside an X.509 certificate's SubjectPublicKeyInfo (RFC 5280 4.1).
pub(super) fn certificate_rsa_public_key(der: &[u8]) -> Result<&[u8], &'static str> {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let (certificate, trailing) = expect(der, SEQUENCE).ok_or("it is not DER")?;
    if !trailing.is_empty() {
        return Err("it has bytes after the certificate");
    }
    let (tbs, _) = expect(certificate, SEQUENCE).ok_or("it has no tbsCertificate")?;
    // TBSCertificate ::= SEQUENCE { version [0] EXPLICIT OPTIONAL, serialNumber, signature,
    //                              issuer, validity, subject, subjectPublicKeyInfo, ... }
    let mut rest = tbs;
    if let Some((_, after)) = expect(rest, CONTEXT_0) {
        rest = after;
    }
    let (_, rest) = expect(rest, INTEGER).ok_or("it has no serial number")?;
    let mut rest = rest;
    for missing in [
        "it has no signature algorithm",
        "it has no issuer",
        "it has no validity",
        "it has no subject",
    ] {
        rest = expect(rest, SEQUENCE).ok_or(missing)?.1;
    }
    let (spki, _) = expect(rest, SEQUENCE).ok_or("it has no subject public key")?;
    let (algorithm, rest) = expect(spki, SEQUENCE).ok_or("it has no key algorithm")?;
    let (oid, _) = expect(algorithm, OID).ok_or("it has no key algorithm")?;
    if oid != OID_RSA {
        return Err("its public key is not RSA");
    }
    let (bits, _) = expect(rest, BIT_STRING).ok_or("it has no public key bits")?;
    match bits.split_first() {
        Some((0, key)) => Ok(key),
        _ => Err("its public key bit string is malformed"),
    }
}

#[cfg(test)]
mod tests;
