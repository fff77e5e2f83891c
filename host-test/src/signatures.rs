//! The host's side of the component's `signatures` import: RS*, PS* and ES* checked natively
//! with ring, so a cold verification costs what it costs outside WebAssembly.
//!
//! The component has already chosen the key and refused everything it refuses by itself
//! (allow-list, key type, key size, signature length); this only does the arithmetic, with the
//! same library and parameters the component's own fallback uses.

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

use crate::bindings::gitlab_azure::oidc::signatures::{PublicKey, Verdict};

/// Checks `signature` over `message` with `key` under the JWS algorithm `alg`.
pub(crate) fn verify(alg: &str, key: &PublicKey, message: &[u8], signature: &[u8]) -> Verdict {
    let ok = match key {
        PublicKey::Rsa(key) => {
            let params: &signature::RsaParameters = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                _ => return Verdict::Unsupported,
            };
            RsaPublicKeyComponents { n: &key.n, e: &key.e }
                .verify(params, message, signature)
                .is_ok()
        }
        PublicKey::Ec(key) => {
            let algorithm: &dyn signature::VerificationAlgorithm = match (alg, key.curve.as_str()) {
                ("ES256", "P-256") => &signature::ECDSA_P256_SHA256_FIXED,
                ("ES384", "P-384") => &signature::ECDSA_P384_SHA384_FIXED,
                _ => return Verdict::Unsupported,
            };
            let mut point = Vec::with_capacity(1 + key.x.len() + key.y.len());
            point.push(0x04); // SEC 1 uncompressed point
            point.extend_from_slice(&key.x);
            point.extend_from_slice(&key.y);
            UnparsedPublicKey::new(algorithm, point).verify(message, signature).is_ok()
        }
    };
    if ok {
        Verdict::Valid
    } else {
        Verdict::Invalid
    }
}
