//! JSON Web Key Sets (RFC 7517) with RSA and EC public keys (RFC 7518 section 6).
//!
//! A JWKS is parsed once: every usable key is decoded into the public-key form ring verifies
//! with, and every unusable key is recorded with the reason. A token whose `kid` names an
//! unusable key gets that reason back instead of a bare "unknown kid".

use ring::signature::{RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

use super::alg::{Curve, Family};
use super::offload::{KeyMaterial, Offloaded, SignatureBackend, SignatureCheck};
use crate::text::b64;
use crate::text::json::{self, JsonProblem};
use crate::{Algorithm, JwksError, Limits, VerifyError};

/// Smallest RSA modulus accepted, in bits (NIST SP 800-131A; ring's floor too).
const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (ring's ceiling; bounds verification cost).
const MAX_RSA_BITS: usize = 8192;

/// A parsed JWKS: the keys that can verify signatures, and those that were skipped.
#[derive(Debug, Default)]
pub struct Jwks {
    entries: Vec<Entry>,
    skipped: Vec<SkippedKey>,
}

#[derive(Debug)]
struct Entry {
    kid: Option<String>,
    /// The key's `alg` member, verbatim: when present it must equal the token's `alg`.
    alg: Option<String>,
    key: PublicKey,
}

#[derive(Debug)]
enum PublicKey {
    Rsa { components: RsaPublicKeyComponents<Vec<u8>>, bits: usize },
    Ec { curve: Curve, point: UnparsedPublicKey<Vec<u8>> },
}

/// A key of the JWKS that cannot be used to verify signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position of the key in the `keys` array.
    pub index: usize,
    /// The key's `kid`, when it has a usable one.
    pub kid: Option<String>,
    /// Why it cannot be used.
    pub reason: String,
}

/// What kind of public key a usable JWKS entry holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// An RSA key with a modulus of `bits` bits.
    Rsa {
        /// Modulus size.
        bits: usize,
    },
    /// An EC key on the named curve (`P-256` or `P-384`).
    Ec {
        /// Curve name.
        curve: &'static str,
    },
}

/// A summary of one usable key, for diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's `kid`.
    pub kid: Option<String>,
    /// The key's `alg`, when it names one.
    pub alg: Option<String>,
    /// The key type.
    pub kind: KeyKind,
}

impl Jwks {
    /// Parses a JWKS document with the default [`Limits`].
    ///
    /// # Errors
    /// When the document as a whole is unusable; see [`JwksError`].
    pub fn parse(document: &[u8]) -> Result<Self, JwksError> {
        Self::parse_with_limits(document, &Limits::default())
    }

    /// Parses a JWKS document. Keys that cannot verify signatures are skipped and listed in
    /// [`Jwks::skipped`]: a key for encryption (`use` other than `sig`, or `key_ops` without
    /// `verify`), an unsupported key type or curve, an RSA modulus under 2048 bits, or
    /// malformed members.
    ///
    /// # Errors
    /// When the document is too large, not strict JSON, has no `keys` array or too many keys.
    pub fn parse_with_limits(document: &[u8], limits: &Limits) -> Result<Self, JwksError> {
        if document.len() > limits.max_jwks_bytes {
            return Err(JwksError::TooLarge { size: document.len(), limit: limits.max_jwks_bytes });
        }
        let value = json::parse(document, limits.max_json_depth).map_err(|p| match p {
            JsonProblem::Syntax(detail) => JwksError::Json { detail },
            JsonProblem::DuplicateMember(name) => JwksError::DuplicateMember { name },
            JsonProblem::TooDeep(limit) => JwksError::JsonTooDeep { limit },
        })?;
        let Some(keys) = value.get("keys").and_then(Value::as_array) else {
            return Err(JwksError::NoKeysArray);
        };
        if keys.len() > limits.max_jwks_keys {
            return Err(JwksError::TooManyKeys { count: keys.len(), limit: limits.max_jwks_keys });
        }
        let mut jwks = Self::default();
        for (index, key) in keys.iter().enumerate() {
            let kid = key.get("kid").and_then(Value::as_str).map(str::to_owned);
            match parse_key(key) {
                Ok(entry) => jwks.entries.push(entry),
                Err(reason) => jwks.skipped.push(SkippedKey { index, kid, reason }),
            }
        }
        Ok(jwks)
    }

    /// The usable keys.
    pub fn keys(&self) -> Vec<KeyInfo> {
        self.entries
            .iter()
            .map(|e| KeyInfo {
                kid: e.kid.clone(),
                alg: e.alg.clone(),
                kind: match &e.key {
                    PublicKey::Rsa { bits, .. } => KeyKind::Rsa { bits: *bits },
                    PublicKey::Ec { curve, .. } => KeyKind::Ec { curve: curve.name() },
                },
            })
            .collect()
    }

    /// The keys that were skipped, with the reason for each.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// Verifies `signature` over `message`, choosing the key as RFC 7515 section 6 allows: by
    /// `kid` when the token names one, otherwise among the keys that fit `alg` (bounded).
    pub(crate) fn verify(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
        limits: &Limits,
        backend: Option<&dyn SignatureBackend>,
    ) -> Result<(), VerifyError> {
        match kid {
            Some(kid) => self.verify_with_kid(kid, alg, message, signature, backend),
            None => {
                let candidates: Vec<&Entry> =
                    self.entries.iter().filter(|e| e.fits(alg).is_ok()).collect();
                if candidates.is_empty() {
                    return Err(VerifyError::NoCompatibleKey { alg });
                }
                if candidates.len() > limits.max_keys_without_kid {
                    return Err(VerifyError::TooManyCandidateKeys {
                        candidates: candidates.len(),
                        limit: limits.max_keys_without_kid,
                    });
                }
                if candidates.iter().any(|e| e.key.verify(alg, message, signature, backend)) {
                    return Ok(());
                }
                Err(VerifyError::BadSignature { kid: None, alg, keys_tried: candidates.len() })
            }
        }
    }

    /// True when every key of this set that could have verified a token naming `kid` with `alg`
    /// is in `new` too, with the same `alg` member and key material: what it vouched for, the
    /// new set vouches for. False when this set has no such key.
    pub(crate) fn vouches_again(&self, new: &Self, kid: &str, alg: Algorithm) -> bool {
        let mut signers =
            self.entries.iter().filter(|e| e.kid.as_deref() == Some(kid) && e.fits(alg).is_ok());
        let mut any = false;
        let kept = signers.all(|old| {
            any = true;
            new.entries.iter().any(|e| e.kid == old.kid && e.alg == old.alg && e.key.same(&old.key))
        });
        any && kept
    }

    fn verify_with_kid(
        &self,
        kid: &str,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
        backend: Option<&dyn SignatureBackend>,
    ) -> Result<(), VerifyError> {
        let mut first_mismatch = None;
        let mut tried = 0;
        for entry in self.entries.iter().filter(|e| e.kid.as_deref() == Some(kid)) {
            match entry.fits(alg) {
                Ok(()) => {
                    tried += 1;
                    if entry.key.verify(alg, message, signature, backend) {
                        return Ok(());
                    }
                }
                Err(reason) => {
                    first_mismatch.get_or_insert(VerifyError::KeyMismatch {
                        kid: kid.to_owned(),
                        alg,
                        reason,
                    });
                }
            }
        }
        if tried > 0 {
            return Err(VerifyError::BadSignature {
                kid: Some(kid.to_owned()),
                alg,
                keys_tried: tried,
            });
        }
        if let Some(mismatch) = first_mismatch {
            return Err(mismatch);
        }
        if let Some(skipped) = self.skipped.iter().find(|s| s.kid.as_deref() == Some(kid)) {
            return Err(VerifyError::KeyRefused {
                kid: kid.to_owned(),
                reason: skipped.reason.clone(),
            });
        }
        Err(VerifyError::UnknownKid { kid: kid.to_owned() })
    }
}

impl Entry {
    /// Whether this key may verify `alg`; the reason when not.
    fn fits(&self, alg: Algorithm) -> Result<(), String> {
        if let Some(key_alg) = &self.alg {
            if key_alg != alg.name() {
                return Err(format!("the key is restricted to `alg` {key_alg}"));
            }
        }
        match (alg.family(), &self.key) {
            (Family::Rsa, PublicKey::Rsa { .. }) => Ok(()),
            (Family::Ec(want), PublicKey::Ec { curve, .. }) if want == *curve => Ok(()),
            (Family::Ec(want), PublicKey::Ec { curve, .. }) => {
                Err(format!("the key is on {} and {alg} needs {}", curve.name(), want.name()))
            }
            (Family::Rsa, PublicKey::Ec { .. }) => {
                Err(format!("the key is EC and {alg} needs RSA"))
            }
            (Family::Ec(_), PublicKey::Rsa { .. }) => {
                Err(format!("the key is RSA and {alg} needs EC"))
            }
        }
    }
}

impl PublicKey {
    /// The same key material.
    fn same(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Rsa { components: a, .. }, Self::Rsa { components: b, .. }) => {
                a.n == b.n && a.e == b.e
            }
            (Self::Ec { curve: a, point: p }, Self::Ec { curve: b, point: q }) => {
                a == b && p.as_ref() == q.as_ref()
            }
            (Self::Rsa { .. }, Self::Ec { .. }) | (Self::Ec { .. }, Self::Rsa { .. }) => false,
        }
    }

    /// Checks a signature. `alg` fits this key (`Entry::fits`). The length checks come first and
    /// are the core's own, so a lenient backend cannot accept a signature ring would refuse.
    fn verify(
        &self,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
        backend: Option<&dyn SignatureBackend>,
    ) -> bool {
        // RFC 8017 8.2.2 step 1 and 8.1.2 step 1: the signature is exactly as long as the
        // modulus. RFC 7518 3.4: an ECDSA JWS signature is `r || s`, each the curve's length.
        let key = match self {
            Self::Rsa { components, .. } => {
                if signature.len() != components.n.len() {
                    return false;
                }
                KeyMaterial::Rsa { n: &components.n, e: &components.e }
            }
            Self::Ec { curve, point } => {
                let len = curve.coordinate_len();
                if signature.len() != 2 * len {
                    return false;
                }
                // `point` is the SEC 1 uncompressed form `04 || x || y` built by `parse_ec`.
                let (x, y) = point.as_ref()[1..].split_at(len);
                KeyMaterial::Ec { curve: *curve, x, y }
            }
        };
        if let Some(backend) = backend {
            match backend.verify(&SignatureCheck { alg, key, message, signature }) {
                Offloaded::Valid => return true,
                Offloaded::Invalid => return false,
                Offloaded::Unsupported => {}
            }
        }
        match self {
            Self::Rsa { components, .. } => match alg.rsa_params() {
                Some(params) => components.verify(params, message, signature).is_ok(),
                None => false,
            },
            // `fits` checked that `alg` is this key's curve, which `point` was built for; ring
            // checks the point is on the curve and the signature has the curve's fixed length.
            Self::Ec { point, .. } => point.verify(message, signature).is_ok(),
        }
    }
}

fn member<'a>(key: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match key.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{name}` is not a string")),
    }
}

fn required_b64(key: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = member(key, name)?.ok_or_else(|| format!("`{name}` is missing"))?;
    b64::decode(text).ok_or_else(|| format!("`{name}` is not strict base64url"))
}

fn parse_key(value: &Value) -> Result<Entry, String> {
    let key = value.as_object().ok_or("the key is not an object")?;
    let kid = member(key, "kid")?.map(str::to_owned);
    let alg = member(key, "alg")?.map(str::to_owned);
    // RFC 7517 4.2 and 4.3: a key meant for encryption must not verify signatures.
    if let Some(usage) = member(key, "use")? {
        if usage != "sig" {
            return Err(format!("`use` is `{usage}`, not `sig`"));
        }
    }
    if let Some(ops) = key.get("key_ops") {
        let ops = ops.as_array().ok_or("`key_ops` is not an array")?;
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Err("`key_ops` does not include `verify`".to_owned());
        }
    }
    let kty = member(key, "kty")?.ok_or("`kty` is missing")?;
    let key = match kty {
        "RSA" => parse_rsa(key)?,
        "EC" => parse_ec(key)?,
        other => return Err(format!("key type `{other}` is not supported (RSA and EC are)")),
    };
    Ok(Entry { kid, alg, key })
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

fn parse_rsa(key: &Map<String, Value>) -> Result<PublicKey, String> {
    let n = strip_leading_zeros(required_b64(key, "n")?);
    let e = strip_leading_zeros(required_b64(key, "e")?);
    let bits = match n.first() {
        Some(top) => (n.len() - 1) * 8 + (8 - usize::try_from(top.leading_zeros()).unwrap_or(8)),
        None => return Err("`n` is zero".to_owned()),
    };
    if bits < MIN_RSA_BITS {
        return Err(format!("RSA modulus is {bits} bits, under the minimum of {MIN_RSA_BITS}"));
    }
    if bits > MAX_RSA_BITS {
        return Err(format!("RSA modulus is {bits} bits, over the maximum of {MAX_RSA_BITS}"));
    }
    // ring accepts odd exponents from 3 up to 2^33 - 1.
    let exponent_ok = !e.is_empty()
        && e.len() <= 5
        && e.last().is_some_and(|b| b & 1 == 1)
        && !(e.len() == 1 && e[0] < 3)
        && !(e.len() == 5 && e[0] > 1);
    if !exponent_ok {
        return Err("RSA exponent is not an odd number from 3 to 2^33-1".to_owned());
    }
    Ok(PublicKey::Rsa { components: RsaPublicKeyComponents { n, e }, bits })
}

fn parse_ec(key: &Map<String, Value>) -> Result<PublicKey, String> {
    let crv = member(key, "crv")?.ok_or("`crv` is missing")?;
    let curve = match crv {
        "P-256" => Curve::P256,
        "P-384" => Curve::P384,
        other => return Err(format!("curve `{other}` is not supported (P-256 and P-384 are)")),
    };
    let x = required_b64(key, "x")?;
    let y = required_b64(key, "y")?;
    let len = curve.coordinate_len();
    // RFC 7518 6.2.1.2: coordinates have the full length of the curve, leading zeros kept.
    if x.len() != len || y.len() != len {
        return Err(format!("`x` and `y` must be {len} bytes each for {crv}"));
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04); // SEC 1 uncompressed point
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let alg = match curve {
        Curve::P256 => Algorithm::Es256,
        Curve::P384 => Algorithm::Es384,
    };
    Ok(PublicKey::Ec { curve, point: UnparsedPublicKey::new(alg.ring(), point) })
}

#[cfg(test)]
mod tests;
