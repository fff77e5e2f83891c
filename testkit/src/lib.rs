//! Test and demo support: signing keys, a token minter and loopback stand-ins.
//!
//! Nothing here is used by the code under test. RSA tokens are signed with RustCrypto's `rsa`
//! crate, a different implementation from the `ring` code that verifies them, so a bug shared by
//! signer and verifier cannot hide. The keys in `keys/` are test-only and protect nothing.
#![forbid(unsafe_code)]

pub mod entra;
pub mod http;
pub mod issuer;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use sha2::Digest as _;

/// Encodes base64url without padding.
pub fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// An RSA signing key.
#[derive(Clone)]
pub struct RsaKey {
    private: rsa::RsaPrivateKey,
    kid: String,
}

impl RsaKey {
    /// The committed 2048-bit test key.
    pub fn fixture_2048() -> Self {
        Self::from_pkcs8_der(include_bytes!("../keys/rsa-2048.pk8.der"))
    }

    /// A second 2048-bit test key, for rotation tests.
    pub fn fixture_2048_rotated() -> Self {
        Self::from_pkcs8_der(include_bytes!("../keys/rsa-2048-rotated.pk8.der"))
    }

    /// The committed 3072-bit test key.
    pub fn fixture_3072() -> Self {
        Self::from_pkcs8_der(include_bytes!("../keys/rsa-3072.pk8.der"))
    }

    /// The committed 1024-bit test key, which verifiers must refuse.
    pub fn fixture_1024() -> Self {
        Self::from_pkcs8_der(include_bytes!("../keys/rsa-1024.pk8.der"))
    }

    /// Generates a fresh key.
    pub fn generate(bits: usize) -> Self {
        let private =
            rsa::RsaPrivateKey::new(&mut rand::thread_rng(), bits).expect("RSA key generation");
        Self::from_private(private)
    }

    /// Reads a PKCS#8 DER private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Self {
        Self::from_private(rsa::RsaPrivateKey::from_pkcs8_der(der).expect("test key is PKCS#8"))
    }

    fn from_private(private: rsa::RsaPrivateKey) -> Self {
        let mut key = Self { private, kid: String::new() };
        key.kid = key.thumbprint();
        key
    }

    /// The RFC 7638 JWK thumbprint, which GitLab uses as the `kid`.
    pub fn thumbprint(&self) -> String {
        let (n, e) = self.n_e();
        let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        b64(&sha2::Sha256::digest(canonical.as_bytes()))
    }

    fn n_e(&self) -> (String, String) {
        (b64(&self.private.n().to_bytes_be()), b64(&self.private.e().to_bytes_be()))
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Returns the key with another `kid`.
    pub fn with_kid(mut self, kid: &str) -> Self {
        kid.clone_into(&mut self.kid);
        self
    }

    /// The public JWK as GitLab publishes it: `kty`, `kid`, `e`, `n`, `use`, `alg`.
    pub fn jwk(&self) -> Value {
        let (n, e) = self.n_e();
        json!({"kty": "RSA", "kid": self.kid, "e": e, "n": n, "use": "sig", "alg": "RS256"})
    }

    /// The public JWK without `alg`, so it may verify any RSA algorithm.
    pub fn jwk_any_alg(&self) -> Value {
        let mut jwk = self.jwk();
        jwk.as_object_mut().map(|o| o.remove("alg"));
        jwk
    }

    /// The private key as PKCS#8 PEM.
    pub fn private_pem(&self) -> String {
        self.private.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).expect("PEM").to_string()
    }

    /// Signs `input` with `alg` (RS256/384/512, PS256/384/512).
    pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
        let key = self.private.clone();
        let mut rng = rand::thread_rng();
        match alg {
            "RS256" => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key).sign(input).to_vec(),
            "RS384" => rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new(key).sign(input).to_vec(),
            "RS512" => rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(key).sign(input).to_vec(),
            "PS256" => rsa::pss::SigningKey::<sha2::Sha256>::new(key)
                .sign_with_rng(&mut rng, input)
                .to_vec(),
            "PS384" => rsa::pss::SigningKey::<sha2::Sha384>::new(key)
                .sign_with_rng(&mut rng, input)
                .to_vec(),
            "PS512" => rsa::pss::SigningKey::<sha2::Sha512>::new(key)
                .sign_with_rng(&mut rng, input)
                .to_vec(),
            other => panic!("RsaKey cannot sign {other}"),
        }
    }
}

/// An ECDSA signing key (P-256 or P-384), generated fresh.
pub struct EcKey {
    pair: EcdsaKeyPair,
    crv: &'static str,
    kid: String,
}

impl EcKey {
    /// A fresh P-256 key for ES256.
    pub fn generate_p256(kid: &str) -> Self {
        Self::generate(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", kid)
    }

    /// A fresh P-384 key for ES384.
    pub fn generate_p384(kid: &str) -> Self {
        Self::generate(&ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", kid)
    }

    fn generate(
        alg: &'static ring::signature::EcdsaSigningAlgorithm,
        crv: &'static str,
        kid: &str,
    ) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("EC key generation");
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("EC key");
        Self { pair, crv, kid: kid.to_owned() }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        let len = (point.len() - 1) / 2;
        json!({"kty": "EC", "kid": self.kid, "crv": self.crv, "x": b64(&point[1..=len]), "y": b64(&point[1 + len..]), "use": "sig"})
    }

    /// Signs `input` (fixed-length r||s, as JWS requires).
    pub fn sign(&self, input: &[u8]) -> Vec<u8> {
        self.pair.sign(&SystemRandom::new(), input).expect("ECDSA signing").as_ref().to_vec()
    }
}

/// Anything that can sign a token.
pub enum Key<'a> {
    /// RSA with the given algorithm.
    Rsa(&'a RsaKey, &'static str),
    /// ECDSA (ES256 for P-256, ES384 for P-384).
    Ec(&'a EcKey),
}

impl Key<'_> {
    fn alg(&self) -> &'static str {
        match self {
            Key::Rsa(_, alg) => alg,
            Key::Ec(k) if k.crv == "P-256" => "ES256",
            Key::Ec(_) => "ES384",
        }
    }

    fn kid(&self) -> &str {
        match self {
            Key::Rsa(k, _) => k.kid(),
            Key::Ec(k) => k.kid(),
        }
    }
}

/// Signs a token with the key; the header is GitLab's `{alg, kid, typ: JWT}`.
pub fn mint(key: &Key<'_>, claims: &Value) -> String {
    let header = json!({"alg": key.alg(), "kid": key.kid(), "typ": "JWT"});
    mint_raw(key, header.to_string().as_bytes(), claims.to_string().as_bytes())
}

/// Signs arbitrary header and payload bytes, for tests of malformed tokens.
pub fn mint_raw(key: &Key<'_>, header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = match key {
        Key::Rsa(k, alg) => k.sign(alg, input.as_bytes()),
        Key::Ec(k) => k.sign(input.as_bytes()),
    };
    format!("{input}.{}", b64(&signature))
}

/// A JWKS document holding the given public JWKs.
pub fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// The audience tests use: what Entra expects in federated credentials.
pub const AUDIENCE: &str = "api://AzureADTokenExchange";

/// The claims of a modern GitLab ID token (GitLab 18.x, a protected `main` branch deploying to
/// a protected `production` environment), issued at `iat` by `issuer`, valid one hour.
pub fn gitlab_claims(issuer: &str, iat: u64) -> Value {
    json!({
        "namespace_id": "72",
        "namespace_path": "acme",
        "project_id": "4242",
        "project_path": "acme/payments",
        "job_project_id": "4242",
        "job_project_path": "acme/payments",
        "job_namespace_id": "72",
        "job_namespace_path": "acme",
        "user_id": "1001",
        "user_login": "ada",
        "user_email": "ada@example.com",
        "user_access_level": "maintainer",
        "user_identities": [{"provider": "github", "extern_uid": "2435"}],
        "pipeline_id": "990001",
        "pipeline_source": "push",
        "job_id": "5550001",
        "ref": "main",
        "ref_type": "branch",
        "ref_path": "refs/heads/main",
        "ref_protected": "true",
        "groups_direct": ["acme", "acme/platform"],
        "environment": "production",
        "environment_protected": "true",
        "deployment_tier": "production",
        "environment_action": "start",
        "runner_id": 12,
        "runner_environment": "gitlab-hosted",
        "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
        "project_visibility": "private",
        "ci_config_ref_uri": "gitlab.example.com/acme/payments//.gitlab-ci.yml@refs/heads/main",
        "ci_config_sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
        "job_source": "push",
        "jti": "235b3a54-b797-45c7-ae9a-f72d7bc6ef5b",
        "iss": issuer,
        "iat": iat,
        "nbf": iat - 5,
        "exp": iat + 3600,
        "sub": "project_path:acme/payments:ref_type:branch:ref:main",
        "aud": AUDIENCE,
    })
}

/// The directory tenant of the stand-ins (a GUID, as Entra requires).
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The app registration (client id) the stand-in Entra knows.
pub const CLIENT_ID: &str = "2b3c4d5e-6f70-4a81-9b2c-3d4e5f607182";
/// The `sub` of [`gitlab_claims`]: GitLab's default form.
pub const SUBJECT: &str = "project_path:acme/payments:ref_type:branch:ref:main";

/// A random UUID v4, as GitLab's `jti` and Entra's trace ids are.
pub fn uuid() -> String {
    let b: [u8; 16] = rand::random();
    let hex = |range: std::ops::Range<usize>| {
        b[range].iter().map(|x| format!("{x:02x}")).collect::<String>()
    };
    format!(
        "{}-{}-4{:x}{:02x}-{:x}{:x}{:02x}-{}",
        hex(0..4),
        hex(4..6),
        b[6] & 0x0f,
        b[7],
        8 | (b[8] & 0x3),
        b[8] >> 4,
        b[9],
        hex(10..16)
    )
}

/// The GitLab and Entra stand-ins wired together: the issuer signs with `key`, and the Entra
/// stand-in's app ([`CLIENT_ID`] in [`TENANT`]) has one federated credential that trusts the
/// issuer's tokens for [`SUBJECT`] and [`AUDIENCE`].
pub fn stand_ins(key: &RsaKey) -> (issuer::Issuer, entra::Entra) {
    let issuer = issuer::Issuer::start(&[key]);
    let credential = entra::FederatedCredential {
        issuer: issuer.url(),
        subject: SUBJECT.into(),
        audience: AUDIENCE.into(),
    };
    let entra = entra::Entra::start(TENANT, CLIENT_ID, vec![credential]);
    (issuer, entra)
}
