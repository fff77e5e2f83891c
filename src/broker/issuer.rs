//! The broker as its own OIDC issuer: the keys, the documents Entra fetches, and the assertion
//! the broker signs for each allowed job.
//!
//! Entra's rules for an issuer it trusts through a federated credential (reference
//! `broker-rbac-fleet.md` 4.3 A): an OIDC discovery document at
//! `{issuer}/.well-known/openid-configuration` reachable over HTTPS from a publicly trusted
//! endpoint (AADSTS50166/90061 otherwise), RS256 signatures, at most 100 keys in the JWKS (it
//! keeps the first 100), an `iss` equal to the credential's issuer byte for byte (no trailing
//! slash added or removed, no whitespace), and every `kid` in the JWKS before it signs
//! (AADSTS7000272 otherwise). The documents follow Azure Workload Identity's self-managed issuer
//! (`{issuer}/openid/v1/jwks`, `id_token_signing_alg_values_supported: ["RS256"]`).
//!
//! Rotation without downtime: publish the next key (`use: published`) and wait until Entra has
//! read the JWKS (it caches it), then make it the signing key and keep the old one published
//! until its assertions expired (at most the assertion lifetime).

use std::fmt;
use std::sync::Arc;

use ring::rand::SecureRandom;
use ring::signature::{self, RsaKeyPair};
use serde_json::{json, Value};

use super::error::IssuerError;
use super::secret::Secret;
use crate::entra::{signing_key_from_pem, RequestError, RsaPublicKey, MAX_ASSERTION_LIFETIME};
use crate::text::ident::uuid_v4;
use crate::Claims;

/// Most keys in the issuer's JWKS: Entra keeps only the first 100 signing keys it downloads.
pub const MAX_PUBLISHED_KEYS: usize = 100;
/// Default lifetime of a broker assertion, in seconds (5 minutes; at most 10).
pub const DEFAULT_BROKER_ASSERTION_LIFETIME: u64 = 300;
/// Where the JWKS lives below the issuer URL (Azure Workload Identity's self-managed layout).
pub const JWKS_PATH: &str = "/openid/v1/jwks";
/// Where the discovery document lives below the issuer URL (OpenID Connect Discovery 1.0 4).
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// Longest issuer URL: a federated credential's `issuer` holds at most 600 characters.
const MAX_ISSUER_LEN: usize = 600;
/// Longest accepted `kid`.
const MAX_KID_LEN: usize = 128;

/// What a key of the issuer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUse {
    /// It signs every assertion (exactly one key), and is published.
    Signing,
    /// It is only published: the next key (in the JWKS before it signs, so Entra knows its
    /// `kid`), or the previous one (until its last assertions expired).
    Published,
}

impl KeyUse {
    /// `signing` or `published`, as in configurations.
    pub fn name(self) -> &'static str {
        match self {
            Self::Signing => "signing",
            Self::Published => "published",
        }
    }
}

struct IssuerKey {
    kid: String,
    key_use: KeyUse,
    public: RsaPublicKey,
    pair: Option<RsaKeyPair>,
}

/// The broker's issuer: its URL, its keys and its assertion lifetime. Build it with
/// [`BrokerIssuer::builder`]. `Debug` names the keys by `kid`; the private keys never leave.
pub struct BrokerIssuer {
    url: String,
    keys: Vec<IssuerKey>,
    signing: Option<usize>,
    lifetime: u64,
}

impl fmt::Debug for BrokerIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> =
            self.keys.iter().map(|k| format!("{} ({})", k.kid, k.key_use.name())).collect();
        f.debug_struct("BrokerIssuer")
            .field("url", &self.url)
            .field("keys", &keys)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// Builds a [`BrokerIssuer`]. Keys are read as they are added; the first problem is reported by
/// [`BrokerIssuerBuilder::build`].
#[must_use]
pub struct BrokerIssuerBuilder {
    url: String,
    keys: Vec<Result<IssuerKey, IssuerError>>,
    lifetime: u64,
}

impl fmt::Debug for BrokerIssuerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerIssuerBuilder")
            .field("url", &self.url)
            .field("keys", &self.keys.len())
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl BrokerIssuerBuilder {
    /// Adds a private key (unencrypted PKCS#8 PEM, RSA of 2048 bits or more). Its `kid` is its
    /// RFC 7638 thumbprint unless `kid` is given.
    pub fn key(mut self, private_key_pem: &str, key_use: KeyUse, kid: Option<&str>) -> Self {
        let index = self.keys.len();
        let key = signing_key_from_pem(private_key_pem)
            .map_err(|error| IssuerError::Key { index, error })
            .and_then(|(pair, _)| {
                let public = RsaPublicKey::from_pair(&pair);
                Ok(IssuerKey { kid: kid_or(kid, &public)?, key_use, public, pair: Some(pair) })
            });
        self.keys.push(key);
        self
    }

    /// Adds a key known only by its public half (`BEGIN PUBLIC KEY`, `BEGIN RSA PUBLIC KEY`, or
    /// a private key PEM whose private half is not kept): a published key whose private key
    /// lives elsewhere, or any key for [`Self::build_for_publishing`].
    pub fn public_key(mut self, public_key_pem: &str, key_use: KeyUse, kid: Option<&str>) -> Self {
        let index = self.keys.len();
        let key = RsaPublicKey::from_pem(public_key_pem)
            .map_err(|error| IssuerError::Key { index, error })
            .and_then(|public| {
                Ok(IssuerKey { kid: kid_or(kid, &public)?, key_use, public, pair: None })
            });
        self.keys.push(key);
        self
    }

    /// The assertion lifetime (`exp - iat`) in seconds. Defaults to
    /// [`DEFAULT_BROKER_ASSERTION_LIFETIME`]; at most 600.
    pub fn lifetime(mut self, seconds: u64) -> Self {
        self.lifetime = seconds;
        self
    }

    /// Checks and returns an issuer that signs.
    ///
    /// # Errors
    /// An [`IssuerError`]: the URL, a key, no or several signing keys, a signing key without its
    /// private half, duplicate `kid`s, more than [`MAX_PUBLISHED_KEYS`] keys, a lifetime over
    /// 600 s.
    pub fn build(self) -> Result<BrokerIssuer, IssuerError> {
        let issuer = self.build_for_publishing()?;
        match issuer.signing.and_then(|i| issuer.keys.get(i)) {
            None => Err(IssuerError::NoSigningKey {
                published: issuer.keys.iter().map(|k| k.kid.clone()).collect(),
            }),
            Some(key) if key.pair.is_none() => {
                Err(IssuerError::SigningKeyWithoutPrivateKey { kid: key.kid.clone() })
            }
            Some(_) => Ok(issuer),
        }
    }

    /// Checks and returns an issuer that only publishes its documents (`plan` prints them for
    /// static hosting): no signing key is required and public keys suffice.
    ///
    /// # Errors
    /// As [`Self::build`], except for the signing key's presence and private half.
    pub fn build_for_publishing(self) -> Result<BrokerIssuer, IssuerError> {
        check_issuer_url(&self.url)?;
        if self.lifetime == 0 || self.lifetime > MAX_ASSERTION_LIFETIME {
            return Err(IssuerError::LifetimeOutOfRange {
                seconds: self.lifetime,
                max: MAX_ASSERTION_LIFETIME,
            });
        }
        let keys = self.keys.into_iter().collect::<Result<Vec<_>, _>>()?;
        if keys.len() > MAX_PUBLISHED_KEYS {
            return Err(IssuerError::TooManyKeys { count: keys.len(), max: MAX_PUBLISHED_KEYS });
        }
        for (i, key) in keys.iter().enumerate() {
            if keys.iter().skip(i + 1).any(|other| other.kid == key.kid) {
                return Err(IssuerError::DuplicateKid { kid: key.kid.clone() });
            }
        }
        let signing: Vec<usize> = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.key_use == KeyUse::Signing)
            .map(|(i, _)| i)
            .collect();
        if signing.len() > 1 {
            return Err(IssuerError::SeveralSigningKeys {
                kids: signing.iter().filter_map(|i| keys.get(*i)).map(|k| k.kid.clone()).collect(),
            });
        }
        Ok(BrokerIssuer {
            url: self.url,
            signing: signing.first().copied(),
            keys,
            lifetime: self.lifetime,
        })
    }
}

fn kid_or(kid: Option<&str>, public: &RsaPublicKey) -> Result<String, IssuerError> {
    match kid {
        None => Ok(public.jwk_thumbprint()),
        Some(kid)
            if !kid.is_empty()
                && kid.len() <= MAX_KID_LEN
                && kid.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(kid.to_owned())
        }
        Some(kid) => Err(IssuerError::InvalidKid { kid: kid.to_owned() }),
    }
}

/// Checks an issuer URL as Entra will use it: `https://` (plain `http://` only on loopback, for
/// tests: Entra itself refuses it), a host, no trailing slash (Entra compares `iss` exactly and
/// the discovery URL is `{issuer}/.well-known/...`), no whitespace, query, fragment or user
/// information, at most 600 characters.
fn check_issuer_url(url: &str) -> Result<(), IssuerError> {
    let invalid = |reason| Err(IssuerError::InvalidUrl { url: url.to_owned(), reason });
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("it contains whitespace or control characters (Entra blocks an issuer with leading or trailing whitespace)");
    }
    if url.len() > MAX_ISSUER_LEN {
        return invalid("it is longer than the 600 characters a federated credential holds");
    }
    let (https, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => return invalid("it must start with `https://`"),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return invalid("it has no host");
    }
    if url.ends_with('/') {
        return invalid("it ends with `/`; drop the trailing slash");
    }
    if rest.contains(['?', '#']) {
        return invalid("it has a query or a fragment");
    }
    if authority.contains('@') {
        return invalid("it has user information (`user@`)");
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return invalid("its port is not a number from 1 to 65535");
            }
            host
        }
        _ => authority,
    };
    let loopback = host == "localhost"
        || host == "[::1]"
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    if !https && !loopback {
        return invalid(
            "it must start with `https://` (plain `http://` only on loopback, for tests)",
        );
    }
    if !host.starts_with('[')
        && !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return invalid("its host is not a DNS name or an IP address");
    }
    Ok(())
}

impl BrokerIssuer {
    /// Starts an issuer at `url`, e.g. `https://broker.example.com` (what the assertions' `iss`
    /// and the federated credentials' `issuer` will be, exactly).
    pub fn builder(url: impl Into<String>) -> BrokerIssuerBuilder {
        BrokerIssuerBuilder {
            url: url.into(),
            keys: Vec::new(),
            lifetime: DEFAULT_BROKER_ASSERTION_LIFETIME,
        }
    }

    /// The issuer URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The assertion lifetime in seconds.
    pub fn assertion_lifetime(&self) -> u64 {
        self.lifetime
    }

    /// The signing key's `kid`; `None` for an issuer built only for publishing.
    pub fn signing_kid(&self) -> Option<&str> {
        self.signing.and_then(|i| self.keys.get(i)).map(|k| k.kid.as_str())
    }

    /// Every published `kid`, in JWKS order.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    /// The path (below the issuer's host) that serves the discovery document, e.g.
    /// `/.well-known/openid-configuration`, or `/tenant-a/.well-known/openid-configuration` for
    /// `https://broker.example.com/tenant-a`.
    pub fn discovery_path(&self) -> String {
        format!("{}{DISCOVERY_PATH}", self.path())
    }

    /// The path (below the issuer's host) that serves the JWKS.
    pub fn jwks_path(&self) -> String {
        format!("{}{JWKS_PATH}", self.path())
    }

    /// The JWKS URL, `{issuer}/openid/v1/jwks`.
    pub fn jwks_uri(&self) -> String {
        format!("{}{JWKS_PATH}", self.url)
    }

    fn path(&self) -> &str {
        let rest = self.url.split_once("://").map_or("", |(_, rest)| rest);
        rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("")
    }

    /// The discovery document Entra fetches first, as compact JSON.
    pub fn discovery_document(&self) -> String {
        json!({
            "issuer": self.url,
            "jwks_uri": self.jwks_uri(),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
        .to_string()
    }

    /// The JWKS: every key's public half (`kty`, `use: sig`, `alg: RS256`, `kid`, `n`, `e`), the
    /// signing key and the published ones, in the order given.
    pub fn jwks_document(&self) -> String {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|k| {
                json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": k.kid,
                       "n": k.public.n(), "e": k.public.e()})
            })
            .collect();
        json!({ "keys": keys }).to_string()
    }

    /// Signs an assertion for `subject` and `audience` (a token-exchange audience), valid from
    /// `now` for the lifetime, naming the job in `trace`. `jti` is a UUID v4 drawn from `rng`.
    ///
    /// # Errors
    /// [`RequestError::RandomFailed`] or [`RequestError::SigningFailed`]; the latter also for an
    /// issuer built only for publishing.
    pub fn sign(
        &self,
        subject: &str,
        audience: &str,
        trace: &JobTrace,
        now: u64,
        rng: &dyn SecureRandom,
    ) -> Result<SignedAssertion, RequestError> {
        let key = self.signing.and_then(|i| self.keys.get(i)).ok_or(RequestError::SigningFailed)?;
        let pair = key.pair.as_ref().ok_or(RequestError::SigningFailed)?;
        let header = json!({"alg": "RS256", "kid": key.kid, "typ": "JWT"});
        let mut random = [0u8; 16];
        rng.fill(&mut random).map_err(|_| RequestError::RandomFailed)?;
        let jti = uuid_v4(random);
        let expires_at = now.saturating_add(self.lifetime);
        let mut claims = json!({
            "iss": self.url,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": expires_at,
            "jti": jti,
        });
        for (name, value) in [
            ("project_path", &trace.project_path),
            ("job_id", &trace.job_id),
            ("pipeline_id", &trace.pipeline_id),
            ("gitlab_jti", &trace.gitlab_jti),
        ] {
            if let Some(value) = value {
                claims[name] = Value::String(value.clone());
            }
        }
        let b64 = crate::text::b64::encode;
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut sig = vec![0u8; pair.public().modulus_len()];
        pair.sign(&signature::RSA_PKCS1_SHA256, rng, input.as_bytes(), &mut sig)
            .map_err(|_| RequestError::SigningFailed)?;
        Ok(SignedAssertion {
            assertion: Secret::new(format!("{input}.{}", b64(&sig))),
            issuer: self.url.clone(),
            subject: subject.to_owned(),
            audience: audience.to_owned(),
            kid: key.kid.clone(),
            jti,
            issued_at: now,
            expires_at,
        })
    }
}

/// The job an assertion is for, copied into it for traceability: Entra's sign-in log shows the
/// assertion's claims only through its `jti`, the broker's audit log joins the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobTrace {
    /// `project_path`.
    pub project_path: Option<String>,
    /// `job_id`.
    pub job_id: Option<String>,
    /// `pipeline_id`.
    pub pipeline_id: Option<String>,
    /// The GitLab token's `jti`, as `gitlab_jti`.
    pub gitlab_jti: Option<String>,
}

impl JobTrace {
    /// The trace of a verified token's claims.
    pub fn from_claims(claims: &Claims) -> Self {
        let g = &claims.gitlab;
        Self {
            project_path: g.project_path.clone(),
            job_id: g.job_id.clone(),
            pipeline_id: g.pipeline_id.clone(),
            gitlab_jti: claims.jti.clone(),
        }
    }
}

/// An assertion the broker signed, and what it says. `assertion` is the only secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedAssertion {
    /// The compact JWS.
    pub assertion: Secret,
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `aud`.
    pub audience: String,
    /// The signing key's `kid`.
    pub kid: String,
    /// `jti`.
    pub jti: String,
    /// `iat` (and `nbf`).
    pub issued_at: u64,
    /// `exp`.
    pub expires_at: u64,
}

/// The `issuer` credential of one rule: the broker's issuer and the subject the rule's
/// federated credential names.
#[derive(Clone, Debug)]
pub struct IssuerCredential {
    /// The broker's issuer.
    pub issuer: Arc<BrokerIssuer>,
    /// The assertion's `sub`: the rule's `subject`, or `gitlab-azure-oidc:rule:<name>`.
    pub subject: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_urls_are_checked_as_entra_uses_them() {
        let ok = [
            "https://broker.example.com",
            "https://b.example.com/tenant-a",
            "http://127.0.0.1:8080",
        ];
        for url in ok {
            assert_eq!(check_issuer_url(url), Ok(()), "{url}");
        }
        let bad = [
            ("https://broker.example.com/", "trailing"),
            (" https://broker.example.com", "whitespace"),
            ("https://broker.example.com ", "whitespace"),
            ("http://broker.example.com", "loopback"),
            ("https://broker.example.com?x=1", "query"),
            ("https://user@broker.example.com", "user"),
            ("https://", "host"),
            ("ftp://broker.example.com", "https"),
            ("https://broker.example.com:0", "port"),
        ];
        for (url, word) in bad {
            let error = check_issuer_url(url).unwrap_err();
            assert!(error.to_string().contains(word), "{url}: {error}");
        }
    }
}
