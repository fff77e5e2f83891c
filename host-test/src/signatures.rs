//! The host's side of the component's `signatures` import: RS*, PS* and ES* checked natively
//! with ring, so a cold verification costs what it costs outside WebAssembly.
//!
//! The component has already chosen the key and refused everything it refuses by itself
//! (allow-list, key type, key size, signature length); this only does the arithmetic, with the
//! same library and parameters the component's own fallback uses.

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

use crate::bindings::gitlab_azure::oidc::signatures::{Host, PublicKey, Scheme, Verdict};
use crate::engine::State;

impl Host for State {
    fn verify_signature(
        &mut self,
        scheme: Scheme,
        key: PublicKey,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> Verdict {
        if !self.native_signatures {
            return Verdict::Unsupported;
        }
        let verdict = verify(scheme, &key, &message, &signature);
        if !matches!(verdict, Verdict::Unsupported) {
            self.native_checks += 1;
        }
        verdict
    }
}

/// Checks `signature` over `message` with `key` under `scheme`.
fn verify(scheme: Scheme, key: &PublicKey, message: &[u8], signature: &[u8]) -> Verdict {
    let rsa: Option<&signature::RsaParameters> = match scheme {
        Scheme::RsaPkcs1Sha256 => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
        Scheme::RsaPkcs1Sha384 => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
        Scheme::RsaPkcs1Sha512 => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
        Scheme::RsaPssSha256 => Some(&signature::RSA_PSS_2048_8192_SHA256),
        Scheme::RsaPssSha384 => Some(&signature::RSA_PSS_2048_8192_SHA384),
        Scheme::RsaPssSha512 => Some(&signature::RSA_PSS_2048_8192_SHA512),
        Scheme::EcdsaP256Sha256 | Scheme::EcdsaP384Sha384 => None,
    };
    let ec: Option<&dyn signature::VerificationAlgorithm> = match scheme {
        Scheme::EcdsaP256Sha256 => Some(&signature::ECDSA_P256_SHA256_FIXED),
        Scheme::EcdsaP384Sha384 => Some(&signature::ECDSA_P384_SHA384_FIXED),
        _ => None,
    };
    let ok = match (key, rsa, ec) {
        (PublicKey::Rsa(key), Some(params), None) => {
            RsaPublicKeyComponents { n: &key.n, e: &key.e }
                .verify(params, message, signature)
                .is_ok()
        }
        (PublicKey::Ec(key), None, Some(algorithm)) => {
            let mut point = Vec::with_capacity(1 + key.x.len() + key.y.len());
            point.push(0x04); // SEC 1 uncompressed point
            point.extend_from_slice(&key.x);
            point.extend_from_slice(&key.y);
            UnparsedPublicKey::new(algorithm, point).verify(message, signature).is_ok()
        }
        // A key that does not fit the scheme: the component never asks that; let it decide.
        _ => return Verdict::Unsupported,
    };
    if ok {
        Verdict::Valid
    } else {
        Verdict::Invalid
    }
}
