//! The verifier: configured once, reused for every token.

use std::sync::Arc;

use ring::digest;

use super::cache::VerifiedCache;
use super::claims::Claims;
use super::jws::{self, Header, VerifiedJws};
use super::offload::SignatureBackend;
use crate::{Algorithm, ConfigError, IssuerNearMiss, Jwks, Limits, Part, VerifyError};

/// What a verifier checks. Build it with [`VerifierConfig::builder`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierConfig {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: u64,
    max_age: Option<u64>,
    insecure_skip_audience: bool,
    limits: Limits,
}

/// Builds a [`VerifierConfig`] with safe defaults.
#[derive(Clone, Debug)]
#[must_use]
pub struct VerifierConfigBuilder {
    config: VerifierConfig,
}

impl VerifierConfig {
    /// Starts a configuration for tokens from `issuer`, e.g. `https://gitlab.com` (GitLab's
    /// `iss` is the instance URL without a trailing slash).
    pub fn builder(issuer: impl Into<String>) -> VerifierConfigBuilder {
        VerifierConfigBuilder {
            config: Self {
                issuer: issuer.into(),
                audiences: Vec::new(),
                algorithms: vec![Algorithm::Rs256],
                leeway: 60,
                max_age: None,
                insecure_skip_audience: false,
                limits: Limits::default(),
            },
        }
    }

    /// The expected issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The accepted audiences.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The algorithm allow-list.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The clock-skew leeway in seconds.
    pub fn leeway(&self) -> u64 {
        self.leeway
    }

    /// The maximum token age in seconds, if any.
    pub fn max_age(&self) -> Option<u64> {
        self.max_age
    }

    /// Whether tokens without `aud` are accepted ([`DangerousVerifierConfig::skip_audience_check`]).
    pub fn skips_audience_check(&self) -> bool {
        self.insecure_skip_audience
    }

    pub(crate) fn set_insecure_skip_audience(&mut self) {
        self.insecure_skip_audience = true;
    }

    /// The input limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

impl VerifierConfigBuilder {
    /// Accepts tokens whose `aud` contains `audience` (as set in `id_tokens:<NAME>:aud`).
    /// At least one audience is required unless [`Self::insecure_skip_audience`] is set.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.config.audiences.push(audience.into());
        self
    }

    /// Replaces the algorithm allow-list. Defaults to RS256 only, which is what GitLab uses.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.config.algorithms = algorithms.into_iter().collect();
        self.config.algorithms.sort();
        self.config.algorithms.dedup();
        self
    }

    /// Replaces the allow-list by JOSE names.
    ///
    /// # Errors
    /// [`ConfigError::UnknownAlgorithm`] for a name that is unknown or always refused.
    pub fn algorithm_names<S: AsRef<str>>(
        self,
        names: impl IntoIterator<Item = S>,
    ) -> Result<Self, ConfigError> {
        let algs = names
            .into_iter()
            .map(|n| {
                Algorithm::from_name(n.as_ref())
                    .ok_or_else(|| ConfigError::UnknownAlgorithm { name: n.as_ref().to_owned() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.algorithms(algs))
    }

    /// Clock-skew leeway for `exp`, `nbf` and `iat`, in seconds. Defaults to 60.
    pub fn leeway(mut self, seconds: u64) -> Self {
        self.config.leeway = seconds;
        self
    }

    /// Refuses tokens issued more than `seconds` ago (requires `iat`). Defaults to no limit.
    pub fn max_age(mut self, seconds: u64) -> Self {
        self.config.max_age = Some(seconds);
        self
    }

    /// The switch that weakens the audience check.
    pub fn dangerous(self) -> DangerousVerifierConfig {
        DangerousVerifierConfig(self)
    }

    /// Replaces the input limits. Defaults to [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Checks and returns the configuration.
    ///
    /// # Errors
    /// - [`ConfigError::EmptyIssuer`] when the issuer is empty.
    /// - [`ConfigError::NoAlgorithms`] when the allow-list is empty.
    /// - [`ConfigError::NoAudience`] when no audience is set and the audience check is on.
    pub fn build(self) -> Result<VerifierConfig, ConfigError> {
        let config = self.config;
        if config.issuer.is_empty() {
            return Err(ConfigError::EmptyIssuer);
        }
        if config.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms);
        }
        if config.audiences.is_empty() && !config.insecure_skip_audience {
            return Err(ConfigError::NoAudience);
        }
        Ok(config)
    }
}

/// The risky switch of a verifier configuration. Returns the builder.
#[derive(Clone, Debug)]
#[must_use]
pub struct DangerousVerifierConfig(VerifierConfigBuilder);

impl DangerousVerifierConfig {
    /// Accepts tokens without an `aud` claim, and any audience when none is configured.
    ///
    /// # Security Warning
    /// Without an audience check, a token GitLab minted for any other relying party (another
    /// cloud, Vault, a third-party service) is accepted here. Only legacy `CI_JOB_JWT` tokens
    /// lack `aud`; modern `id_tokens:` always carry one.
    pub fn skip_audience_check(mut self) -> VerifierConfigBuilder {
        self.0.config.insecure_skip_audience = true;
        self.0
    }
}

/// The risky switch of a [`Verifier`].
#[derive(Debug)]
pub struct DangerousVerifier<'a>(&'a mut Verifier);

impl DangerousVerifier<'_> {
    /// Hands the signature arithmetic to the host's native crypto (see [`crate::offload`]), or
    /// back to the core's own code with `None`. Every refusal stays the core's: the backend is
    /// only asked about a signature the core would otherwise check itself.
    ///
    /// # Security Warning
    /// A backend that answers "valid" wrongly lets forged tokens through: it is as trusted as
    /// the JWKS and the clock the host provides.
    pub fn set_signature_backend(&mut self, backend: Option<Arc<dyn SignatureBackend>>) {
        self.0.backend = backend;
    }
}

/// A token whose signature and claims verified.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedToken {
    /// The protected header.
    pub header: Header,
    /// The claims.
    pub claims: Claims,
    /// The payload exactly as signed (UTF-8 JSON): every claim, including those this version
    /// does not name, without re-serializing.
    pub payload_json: String,
    /// [`token_fingerprint`] of the token: what to log instead of it.
    pub fingerprint: String,
}

/// Verifies GitLab ID tokens against one issuer's JWKS.
#[derive(Debug)]
pub struct Verifier {
    config: VerifierConfig,
    jwks: Jwks,
    cache: VerifiedCache,
    backend: Option<Arc<dyn SignatureBackend>>,
}

impl Verifier {
    /// Creates a verifier; the JWKS is parsed already, so verification does no parsing of keys.
    pub fn new(config: VerifierConfig, jwks: Jwks) -> Self {
        let cache = VerifiedCache::new(config.limits.verified_cache_entries);
        Self { config, jwks, cache, backend: None }
    }

    /// The switch that hands signature arithmetic to the host.
    pub fn dangerous(&mut self) -> DangerousVerifier<'_> {
        DangerousVerifier(self)
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// The current JWKS.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// Replaces the JWKS, e.g. after [`VerifyError::UnknownKid`] and a refetch. A cached
    /// verification stays only when the key that made it is in the new set with the same `kid`,
    /// `alg` and key material (a refetch that brings the same keys, as one a forged `kid` forces,
    /// costs nothing); the rest is forgotten, as a key that left the JWKS or changed may have
    /// been withdrawn on purpose. A token without a `kid` is always verified again.
    pub fn replace_jwks(&mut self, jwks: Jwks) {
        let old = std::mem::replace(&mut self.jwks, jwks);
        let new = &self.jwks;
        self.cache.retain(|verified| {
            let header = &verified.header;
            header.kid.as_deref().is_some_and(|kid| old.vouches_again(new, kid, header.alg))
        });
    }

    /// Like [`Verifier::verify`], but a token verified before (the exact same string, still
    /// within its time window) is answered from a bounded cache without another signature
    /// check. The time claims are checked again against `now` on every call. The result is
    /// shared with the cache, so a hit copies nothing.
    ///
    /// # Errors
    /// As [`Verifier::verify`].
    pub fn verify_cached(
        &mut self,
        token: &str,
        now: u64,
    ) -> Result<Arc<VerifiedToken>, VerifyError> {
        if let Some(hit) = self.cache.get(token) {
            // Issuer and audience passed when the token was cached, under this same
            // configuration (a verifier's configuration never changes); only time moves.
            match self.check_times(&hit.claims, now) {
                Ok(()) => return Ok(Arc::clone(hit)),
                Err(err) => {
                    self.cache.remove(token);
                    return Err(err);
                }
            }
        }
        let verified = Arc::new(self.verify(token, now)?);
        self.cache.insert(token, Arc::clone(&verified));
        Ok(verified)
    }

    /// How many verified tokens are cached.
    pub(crate) fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Checks only the structure and signature of a compact JWS; the payload may be anything.
    ///
    /// # Errors
    /// Any structural, algorithm, key or signature error of [`VerifyError`].
    pub fn verify_signature(&self, token: &str) -> Result<VerifiedJws, VerifyError> {
        jws::verify(
            token,
            &self.jwks,
            &self.config.algorithms,
            &self.config.limits,
            self.backend.as_deref(),
        )
    }

    /// Verifies a token at time `now` (seconds since the Unix epoch).
    ///
    /// The checks follow RFC 7519 section 7.2 and OIDC Core 3.1.3.7: the signature first, so
    /// nothing unauthenticated is interpreted, then the claims.
    ///
    /// # Errors
    /// The first check that fails, as a [`VerifyError`].
    pub fn verify(&self, token: &str, now: u64) -> Result<VerifiedToken, VerifyError> {
        let VerifiedJws { header, payload } = self.verify_signature(token)?;
        let claims =
            Claims::from_payload(jws::json_object(&payload, Part::Payload, &self.config.limits)?)?;
        self.check_claims(&claims, now)?;
        // The strict JSON parse above accepted these bytes, so they are UTF-8.
        let payload_json = String::from_utf8(payload)
            .map_err(|_| VerifyError::Json { part: Part::Payload, detail: "not UTF-8".into() })?;
        Ok(VerifiedToken { header, claims, payload_json, fingerprint: token_fingerprint(token) })
    }

    fn check_claims(&self, claims: &Claims, now: u64) -> Result<(), VerifyError> {
        self.check_issuer_and_audience(claims)?;
        self.check_times(claims, now)
    }

    fn check_issuer_and_audience(&self, claims: &Claims) -> Result<(), VerifyError> {
        let config = &self.config;
        // OIDC Core 3.1.3.7 step 2: the issuer must match exactly.
        if claims.iss != config.issuer {
            return Err(VerifyError::IssuerMismatch {
                expected: config.issuer.clone(),
                found: claims.iss.clone(),
                near_miss: IssuerNearMiss::between(&config.issuer, &claims.iss),
            });
        }
        // Step 3: one of our audiences must be in `aud`.
        match &claims.aud {
            Some(aud) => {
                let found = aud.values();
                let skip_unconfigured =
                    config.insecure_skip_audience && config.audiences.is_empty();
                if !skip_unconfigured
                    && !config.audiences.iter().any(|a| found.contains(&a.as_str()))
                {
                    return Err(VerifyError::AudienceMismatch {
                        expected: config.audiences.clone(),
                        found: found.into_iter().map(str::to_owned).collect(),
                    });
                }
            }
            None if config.insecure_skip_audience => {}
            None => return Err(VerifyError::ClaimMissing { claim: "aud".into() }),
        }
        Ok(())
    }

    /// The time claims at `now`: all a cached token needs checked again.
    fn check_times(&self, claims: &Claims, now: u64) -> Result<(), VerifyError> {
        let config = &self.config;
        let leeway = config.leeway;
        // Step 9 and RFC 7519 4.1.4: now must be before `exp`.
        if now >= claims.exp.saturating_add(leeway) {
            return Err(VerifyError::Expired { exp: claims.exp, now, leeway });
        }
        // RFC 7519 4.1.5: not before `nbf`.
        if let Some(nbf) = claims.nbf {
            if nbf > now.saturating_add(leeway) {
                return Err(VerifyError::NotYetValid { nbf, now, leeway });
            }
        }
        // Step 10: `iat` must not be in the future; its age may be bounded.
        if let Some(iat) = claims.iat {
            if iat > now.saturating_add(leeway) {
                return Err(VerifyError::IssuedInFuture { iat, now, leeway });
            }
        }
        if let Some(max_age) = config.max_age {
            let iat =
                claims.iat.ok_or_else(|| VerifyError::ClaimMissing { claim: "iat".into() })?;
            if now.saturating_sub(iat) > max_age {
                return Err(VerifyError::TooOld { iat, now, max_age });
            }
        }
        Ok(())
    }
}

/// A SHA-256 fingerprint of a token, hex-encoded: what to log to correlate a token without
/// logging the token itself (which is a bearer credential until it expires).
pub fn token_fingerprint(token: &str) -> String {
    crate::text::hex(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests;
