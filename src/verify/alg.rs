//! JWS algorithms (RFC 7518 section 3) and the ring primitives behind them.

use std::fmt;

use ring::signature::{self, VerificationAlgorithm};

/// A signature algorithm this crate can verify.
///
/// `none` and every HMAC algorithm (`HS256`, `HS384`, `HS512`) are absent on purpose: a public
/// JWKS can never hold a shared secret, and accepting them is the root of the best-known JWT
/// forgeries. They are refused whatever the configuration says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256, signature in the fixed 64-byte form.
    Es256,
    /// ECDSA P-384 with SHA-384, signature in the fixed 96-byte form.
    Es384,
    /// RSASSA-PSS with SHA-256 and MGF1-SHA-256, salt of 32 bytes.
    Ps256,
    /// RSASSA-PSS with SHA-384 and MGF1-SHA-384, salt of 48 bytes.
    Ps384,
    /// RSASSA-PSS with SHA-512 and MGF1-SHA-512, salt of 64 bytes.
    Ps512,
    /// RSASSA-PKCS1-v1_5 with SHA-256: what GitLab signs with.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
}

/// The arithmetic behind an [`Algorithm`], named the way crypto libraries name it, so a host that
/// checks signatures natively maps each case to its own API without parsing `alg` strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RS256), DigestInfo with the NULL parameter.
    RsaPkcs1Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384 (RS384).
    RsaPkcs1Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512 (RS512).
    RsaPkcs1Sha512,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (PS256).
    RsaPssSha256,
    /// RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte salt (PS384).
    RsaPssSha384,
    /// RSASSA-PSS with SHA-512, MGF1-SHA-512 and a 64-byte salt (PS512).
    RsaPssSha512,
    /// ECDSA on P-256 with SHA-256, signature as fixed-length `r || s` (ES256).
    EcdsaP256Sha256,
    /// ECDSA on P-384 with SHA-384, signature as fixed-length `r || s` (ES384).
    EcdsaP384Sha384,
}

/// Which kind of key an algorithm needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Rsa,
    Ec(Curve),
}

/// An elliptic curve from RFC 7518 section 6.2.1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (`secp256r1`), for ES256.
    P256,
    /// NIST P-384 (`secp384r1`), for ES384.
    P384,
}

impl Curve {
    /// The JWK `crv` name: `P-256` or `P-384`.
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
        }
    }

    /// Length of one coordinate in bytes.
    pub(crate) fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }
}

/// What a header's `alg` names.
pub(crate) enum AlgName {
    Supported(Algorithm),
    /// `none` or an HMAC algorithm: refused whatever the configuration.
    AlwaysRefused,
    Unsupported,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Self; 8] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
    ];

    /// The JOSE name, as in a JWS header's `alg`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
        }
    }

    /// Parses a JOSE name; names are case-sensitive (RFC 7515 section 4.1.1).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }

    pub(crate) fn classify(name: &str) -> AlgName {
        if let Some(alg) = Self::from_name(name) {
            return AlgName::Supported(alg);
        }
        // Case-insensitive on purpose: "None" and "hs256" are refused as firmly as the real names.
        let lower = name.to_ascii_lowercase();
        if lower == "none" || lower.starts_with("hs") {
            AlgName::AlwaysRefused
        } else {
            AlgName::Unsupported
        }
    }

    /// The arithmetic this algorithm names.
    pub fn scheme(self) -> Scheme {
        match self {
            Self::Es256 => Scheme::EcdsaP256Sha256,
            Self::Es384 => Scheme::EcdsaP384Sha384,
            Self::Ps256 => Scheme::RsaPssSha256,
            Self::Ps384 => Scheme::RsaPssSha384,
            Self::Ps512 => Scheme::RsaPssSha512,
            Self::Rs256 => Scheme::RsaPkcs1Sha256,
            Self::Rs384 => Scheme::RsaPkcs1Sha384,
            Self::Rs512 => Scheme::RsaPkcs1Sha512,
        }
    }

    pub(crate) fn family(self) -> Family {
        match self {
            Self::Es256 => Family::Ec(Curve::P256),
            Self::Es384 => Family::Ec(Curve::P384),
            Self::Ps256 | Self::Ps384 | Self::Ps512 | Self::Rs256 | Self::Rs384 | Self::Rs512 => {
                Family::Rsa
            }
        }
    }

    /// The ring primitive. RSA primitives accept moduli of 2048 to 8192 bits only.
    pub(crate) fn ring(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Self::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            Self::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
            Self::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Self::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            Self::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
            Self::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Self::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Self::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        }
    }

    pub(crate) fn rsa_params(self) -> Option<&'static signature::RsaParameters> {
        match self {
            Self::Ps256 => Some(&signature::RSA_PSS_2048_8192_SHA256),
            Self::Ps384 => Some(&signature::RSA_PSS_2048_8192_SHA384),
            Self::Ps512 => Some(&signature::RSA_PSS_2048_8192_SHA512),
            Self::Rs256 => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
            Self::Rs384 => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
            Self::Rs512 => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
            Self::Es256 | Self::Es384 => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
        assert_eq!(Algorithm::from_name("rs256"), None);
    }

    #[test]
    fn none_and_hmac_are_always_refused() {
        for name in ["none", "None", "NONE", "HS256", "HS384", "HS512", "hs256"] {
            assert!(matches!(Algorithm::classify(name), AlgName::AlwaysRefused), "{name}");
        }
        for name in ["ES512", "EdDSA", "RSA-OAEP", ""] {
            assert!(matches!(Algorithm::classify(name), AlgName::Unsupported), "{name}");
        }
    }
}
