//! Signature arithmetic done by the host, with the core's own code as the fallback.
//!
//! RSA inside WebAssembly is slow: ring's RS256 check costs about 16 us natively and about 280 us
//! in wasmtime (ring's bignum code has no wasm assembly, and 64x64-bit products are emulated).
//! Every host we support has native crypto at hand (ring in the wasmtime host, OpenSSL in
//! Python and Node, BoringSSL in Envoy), so the core can hand it the one step that needs it.
//!
//! The core keeps every judgement: it picks the key, enforces the algorithm allow-list, the
//! key type and curve agreement, the key size (checked when the JWKS was parsed) and the
//! signature length, and only then asks the [`SignatureBackend`]. A backend that answers
//! [`Offloaded::Unsupported`] (it lacks the algorithm, or the host turned it off) leaves the
//! check to ring inside the core. A backend is as trusted as the JWKS and the clock the host
//! already provides.

use std::fmt;

use crate::Algorithm;

/// An elliptic curve of an EC key (the core's own curve type, under the name hosts use).
pub use super::alg::Curve as EcCurve;

/// The public key to check with, as the JWKS gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMaterial<'a> {
    /// An RSA key: modulus and public exponent, big-endian, without leading zero bytes. The
    /// modulus has 2048 to 8192 bits and the exponent is odd, from 3 to 2^33 - 1.
    Rsa {
        /// The modulus `n`.
        n: &'a [u8],
        /// The public exponent `e`.
        e: &'a [u8],
    },
    /// An EC key: its curve and the affine coordinates, big-endian, each the curve's full
    /// length (32 bytes for P-256, 48 for P-384).
    Ec {
        /// The curve.
        curve: EcCurve,
        /// The x coordinate.
        x: &'a [u8],
        /// The y coordinate.
        y: &'a [u8],
    },
}

/// One signature to check: `signature` over `message` with `key` under `alg`.
///
/// The algorithms mean exactly what RFC 7518 says: RS* is RSASSA-PKCS1-v1_5 (DigestInfo with
/// the NULL parameter), PS* is RSASSA-PSS with MGF1 of the same hash and a salt as long as the
/// hash, ES* is ECDSA with the fixed-length `r || s` signature (not DER).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureCheck<'a> {
    /// The algorithm, already allowed by the verifier's configuration and fitting the key.
    pub alg: Algorithm,
    /// The key.
    pub key: KeyMaterial<'a>,
    /// The signed bytes (for a JWS, the ASCII signing input `header.payload`).
    pub message: &'a [u8],
    /// The signature; for RSA as long as the modulus, for EC twice the coordinate length.
    pub signature: &'a [u8],
}

/// A backend's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offloaded {
    /// The signature is valid.
    Valid,
    /// The signature is not valid.
    Invalid,
    /// The backend does not check this algorithm or key: the core checks it itself.
    Unsupported,
}

/// Native signature verification offered by a host.
pub trait SignatureBackend: Send + Sync {
    /// Checks one signature. Must not panic; an internal failure of the host's crypto is
    /// [`Offloaded::Invalid`] (refuse) or [`Offloaded::Unsupported`] (let the core decide).
    fn verify(&self, check: &SignatureCheck<'_>) -> Offloaded;
}

impl fmt::Debug for dyn SignatureBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignatureBackend")
    }
}

#[cfg(test)]
mod tests;
