//! # The gate: the exchange, in order, in one place
//!
//! A [`Gate`] owns the order of the steps of the exchange while its host moves the bytes, as
//! rustls's `Connection` does for TLS: the host fetches the issuer's keys, reads the clock and
//! talks to Entra; the gate judges.
//!
//! ```text
//! host                                  gate
//! ----                                  ----
//! fetch the JWKS          ------------> install_jwks
//! a job's token, now      ------------> admit          verify (cached), decide (cached), audit
//!                         <------------ Admission      or Failure (refetch? retry? status?)
//!                         ------------> request        the Entra token request, credential inside
//! POST it to Entra, read the answer
//! status, headers, body   ------------> finish
//!                         <------------ AccessToken    or Failure (retryable, Retry-After)
//! ```
//!
//! Every failure is one [`Failure`]: the host asks it whether to fetch the keys again
//! ([`Failure::refetch_jwks`]), whether and when to retry ([`Failure::retryable`],
//! [`Failure::retry_after`]), and which HTTP status to answer with ([`Failure::http_status`]).
//! Audit events are queued by the gate and drained by the host ([`Gate::take_audit`]): one full
//! event per fresh decision, and a count of the requests that reused it.
//!
//! The verified-token cache and the decision cache live behind the gate: [`Gate::install_jwks`]
//! keeps only what the new keys still vouch for.

mod config;
mod decisions;
mod failure;

use std::collections::HashMap;
use std::sync::Arc;

use ring::rand::SecureRandom;
use serde_json::{json, Map, Value};

pub use config::{Credential, DangerousGateConfig, GateConfig, GateConfigBuilder, GateConfigError};
pub use failure::{Category, Failure};

use config::Authorization;
use decisions::{Decisions, Reuse};

use crate::broker::{
    parse_identity_response, IdentityError, IdentityRequest, IdentityToken, IssuerCredential,
    JobTrace, SignedAssertion, VendError, VendedAssertion,
};
use crate::entra::{
    self, AccessToken, AzureTarget, CertificateCredential, RequestError, TokenRequest,
};
use crate::policy::{AuditEvent, Decision, EntraAnswer};
use crate::text::ident::uuid_v4;
use crate::{token_fingerprint, Algorithm, Claims, Jwks, VerifiedToken, Verifier};

/// The members of the full audit event that a reuse summary repeats, so a summary names the
/// decision and the job without being joined to the full event.
const SUMMARY_MEMBERS: [&str; 6] =
    ["decision", "rule", "token_sha256", "jti", "project_path", "job_id"];

/// A certificate assertion is reused until this many seconds before it expires (MSAL Python
/// regenerates 60 s before expiry).
const ASSERTION_REUSE_MARGIN: u64 = 60;

/// A managed identity token is reused until this many seconds before it expires: Entra must
/// still find it valid when it checks the assertion, and IMDS tokens live for hours.
const IDENTITY_REUSE_MARGIN: u64 = 300;

/// Most broker assertions kept (one per job and rule); beyond it the expired ones go, then all.
const MAX_BROKER_ASSERTIONS: usize = 1024;

/// Most managed identity tokens kept (one per identity, endpoint and cloud).
const MAX_IDENTITY_TOKENS: usize = 64;

/// Most token requests awaiting Entra's answer that the gate remembers the decision of; beyond
/// it, those sent more than [`PENDING_FOR`] seconds ago go, then all (their answers are still
/// read and recorded, without the decision's members).
const MAX_PENDING: usize = 1024;

/// How long the gate remembers a sent request's decision for its answer (hosts time out far
/// sooner: Envoy's callout and the CLI's request take at most a minute).
const PENDING_FOR: u64 = 600;

/// One decision about one verified token, and everything its requests share: the Azure target,
/// the audit event (all but the time) and the Azure token cache key. Immutable once made.
#[derive(Debug, PartialEq)]
pub struct Decided {
    decision: Option<Decision>,
    /// The target as requests are sent (the authority override applied), when allowed.
    target: Option<AzureTarget>,
    audit_members: Option<String>,
    summary_members: String,
    /// The members the event of Entra's answer repeats: the decision's, or for a fixed target
    /// its app's; `None` without a target (no request is sent).
    joined: Option<Map<String, Value>>,
    decided_until: u64,
    azure_key: Option<String>,
    /// The `kid` and `alg` of the token's signature, so new keys keep the decision only while
    /// its key is unchanged.
    signer: Option<(String, Algorithm)>,
}

impl Decided {
    /// The policy's decision; `None` when the gate grants a fixed target without a policy.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// True when the job may become the target.
    pub fn is_allow(&self) -> bool {
        self.target.is_some()
    }

    /// The Azure identity granted, as requests for it are sent.
    pub fn target(&self) -> Option<&AzureTarget> {
        self.target.as_ref()
    }

    /// True while the decision stands at `now` (a rule's `max_token_age` bounds it).
    pub fn stands(&self, now: u64) -> bool {
        now <= self.decided_until
    }

    /// The full audit event of the decision for a request at `now`: one line of JSON, holding the
    /// token's fingerprint and `jti`, never the token. `None` without a policy.
    pub fn audit_line(&self, now: u64) -> Option<String> {
        self.audit_members.as_ref().map(|members| {
            if members.is_empty() {
                format!("{{\"time\":{now}}}")
            } else {
                format!("{{\"time\":{now},{members}}}")
            }
        })
    }

    /// The key under which an Azure token for this job and target may be cached and shared: the
    /// token endpoint, the client, the scopes and the job's identity (issuer, subject, project
    /// and job ids), hashed. `None` for a deny.
    pub fn azure_key(&self) -> Option<&str> {
        self.azure_key.as_deref()
    }

    /// The summary event of the requests that reused the decision, when there were any.
    fn summary_line(&self, reuse: &Reuse, now: u64) -> Option<String> {
        (reuse.requests > 0 && self.audit_members.is_some()).then(|| {
            format!(
                "{{\"time\":{now},\"event\":\"decision_reused\",{},\"requests\":{},\"first_request\":{},\"last_request\":{}}}",
                self.summary_members, reuse.requests, reuse.first, reuse.last
            )
        })
    }
}

/// An admitted job: its verified token (when the gate verifies) and the decision that allows it.
#[derive(Clone, Debug)]
pub struct Admission {
    /// The verified token, shared with the gate's cache. `None` for an unverified gate.
    pub verified: Option<Arc<VerifiedToken>>,
    /// The decision (an allow) and what its requests share.
    pub decided: Arc<Decided>,
    /// True when the decision was made for this request; false when a kept one was reused.
    pub fresh: bool,
}

impl Admission {
    /// The Azure identity to request.
    pub fn target(&self) -> Option<&AzureTarget> {
        self.decided.target()
    }
}

/// A signed certificate assertion, kept while it is valid.
struct CachedAssertion {
    assertion: String,
    reuse_until: u64,
}

/// The exchange, judged in order. See the module documentation.
pub struct Gate {
    config: GateConfig,
    verifier: Option<Verifier>,
    decisions: Decisions,
    /// The one decision of a gate without a policy.
    fixed: Option<Arc<Decided>>,
    /// The smallest `max_token_age` of the policy: how long a decision stands after `iat`.
    age_bound: Option<u64>,
    assertions: HashMap<String, CachedAssertion>,
    /// Broker-signed assertions by rule, job token and audience.
    broker_assertions: HashMap<String, SignedAssertion>,
    /// Managed identity tokens by identity request URL (endpoint, resource, identity).
    identity_tokens: HashMap<String, IdentityToken>,
    /// The decision of each sent token request, by its `client-request-id`, with when it was
    /// built: what Entra's answer event joins.
    pending: HashMap<String, (Arc<Decided>, u64)>,
    audit: Vec<String>,
    audit_enabled: bool,
    audit_every_request: bool,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("credential", &self.config.credential.name())
            .field("keys", &self.verifier.is_some())
            .field("decisions", &self.decisions.len())
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate for `config`. A verifying gate has no keys until [`Gate::install_jwks`].
    pub fn new(config: GateConfig) -> Self {
        let fixed = match &config.authorization {
            Authorization::Target(named) => Some(Arc::new(Decided {
                decision: None,
                target: Some(config.effective(named)),
                audit_members: None,
                summary_members: String::new(),
                joined: Some(target_members(&config.effective(named))),
                decided_until: u64::MAX,
                azure_key: None,
                signer: None,
            })),
            Authorization::Policy(_) => None,
        };
        let age_bound =
            config.policy().and_then(|p| p.rules().iter().filter_map(|r| r.max_token_age()).min());
        Self {
            decisions: Decisions::new(config.decision_cache),
            verifier: None,
            fixed,
            age_bound,
            assertions: HashMap::new(),
            broker_assertions: HashMap::new(),
            identity_tokens: HashMap::new(),
            pending: HashMap::new(),
            audit: Vec::new(),
            audit_enabled: true,
            audit_every_request: false,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GateConfig {
        &self.config
    }

    /// The installed keys, if any.
    pub fn jwks(&self) -> Option<&Jwks> {
        self.verifier.as_ref().map(Verifier::jwks)
    }

    /// True when the gate can admit: it has keys, or it does not verify.
    pub fn ready(&self) -> bool {
        self.verifier.is_some() || self.config.verifier.is_none()
    }

    /// Installs the issuer's keys (fetched by the host), replacing any before. Verified tokens
    /// and decisions stay only while the key that signed their token is in the new set with the
    /// same `kid`, `alg` and material ([`Verifier::replace_jwks`]): a key that left the set or
    /// changed may have been withdrawn on purpose, and a refetch that brings the same keys (as
    /// one a forged `kid` forces) costs no verification or decision.
    pub fn install_jwks(&mut self, jwks: Jwks) {
        let Some(config) = &self.config.verifier else { return };
        match &mut self.verifier {
            Some(verifier) => {
                let old = verifier.jwks();
                self.decisions.retain(|decided| {
                    let signer = decided.signer.as_ref();
                    signer.is_some_and(|(kid, alg)| old.vouches_again(&jwks, kid, *alg))
                });
                verifier.replace_jwks(jwks);
            }
            None => {
                let mut verifier = Verifier::new(config.clone(), jwks);
                verifier.dangerous().set_signature_backend(self.config.signature_backend.clone());
                self.verifier = Some(verifier);
                self.decisions.clear();
            }
        }
    }

    /// Replaces the configuration (a new policy, usually) without stopping: a proxy whose
    /// policy changes while it serves. No decision made under the old configuration is used
    /// again: every kept decision is forgotten, after its reuse count is queued as a summary at
    /// `now`, so the audit log still accounts for every request. The keys and the verified
    /// tokens stay when the verifier settings are unchanged (issuer, audiences, algorithms,
    /// leeway, limits), as a verification does not depend on the policy; the new signature
    /// backend is used from now on. With other verifier settings they are dropped, and the gate
    /// is not [`ready`](Gate::ready) until [`Gate::install_jwks`]. Signed assertions are
    /// dropped (the credential may have changed); the audit switches stay.
    ///
    /// Returns true when the keys were kept.
    pub fn reconfigure(&mut self, config: GateConfig, now: u64) -> bool {
        self.summarize(now);
        let keep_keys = config.verifier.is_some() && config.verifier == self.config.verifier;
        let verifier = self.verifier.take().filter(|_| keep_keys).map(|mut verifier| {
            verifier.dangerous().set_signature_backend(config.signature_backend.clone());
            verifier
        });
        let audit = std::mem::take(&mut self.audit);
        let (enabled, every_request) = (self.audit_enabled, self.audit_every_request);
        *self = Self::new(config);
        self.verifier = verifier;
        self.audit = audit;
        self.audit_enabled = enabled;
        self.audit_every_request = every_request;
        self.verifier.is_some()
    }

    /// Whether audit events are queued (a host whose log drops them turns this off, so none is
    /// built). Defaults to on.
    pub fn set_audit_enabled(&mut self, enabled: bool) {
        self.audit_enabled = enabled;
    }

    /// Queues the full audit event for every request, not only when a decision is made (no
    /// reuse counts then). Defaults to off.
    pub fn set_audit_every_request(&mut self, every: bool) {
        self.audit_every_request = every;
    }

    /// Verifies the token (or answers from the cache), decides (or reuses the kept decision) and
    /// queues the audit event.
    ///
    /// # Errors
    /// [`Failure::NoKeys`] before any JWKS is installed, [`Failure::Token`] for a refused token
    /// (ask [`Failure::refetch_jwks`]), [`Failure::Denied`] when the policy denies the job.
    pub fn admit(&mut self, token: &str, now: u64) -> Result<Admission, Failure> {
        if self.config.verifier.is_none() {
            let decided = self.fixed.clone().ok_or(Failure::NoKeys)?;
            return Ok(Admission { verified: None, decided, fresh: true });
        }
        let verifier = self.verifier.as_mut().ok_or(Failure::NoKeys)?;
        let verified = verifier.verify_cached(token, now)?;
        let count = self.audit_enabled && !self.audit_every_request;
        let (decided, fresh) = match self.decisions.reuse(&verified.fingerprint, now, count) {
            Some(kept) => (kept, false),
            None => {
                let decided = Arc::new(self.decide(&verified, now));
                self.decisions.keep(&verified.fingerprint, &decided, now);
                if self.audit_enabled {
                    let retired = self.decisions.retired_summaries(now);
                    self.audit.extend(retired);
                }
                (decided, true)
            }
        };
        if self.audit_enabled && (fresh || self.audit_every_request) {
            if let Some(line) = decided.audit_line(now) {
                self.audit.push(line);
            }
        }
        if decided.is_allow() {
            Ok(Admission { verified: Some(verified), decided, fresh })
        } else {
            Err(Failure::Denied(decided))
        }
    }

    fn decide(&self, verified: &VerifiedToken, now: u64) -> Decided {
        let claims = &verified.claims;
        let decision = match &self.config.authorization {
            Authorization::Policy(policy) => Some(policy.decide(claims, now)),
            Authorization::Target(_) => None,
        };
        let named = match (&decision, &self.config.authorization) {
            (Some(decision), _) => decision.target(),
            (None, Authorization::Target(target)) => Some(target),
            (None, Authorization::Policy(_)) => None,
        };
        let target = named.map(|t| self.config.effective(t));
        let azure_key = target.as_ref().map(|t| azure_key(t, claims));
        let (audit_members, summary_members, joined) = match &decision {
            Some(decision) => {
                let members = audit_members(decision, claims, &verified.fingerprint, now);
                (Some(members.full), members.summary, Some(members.joined))
            }
            None => (None, String::new(), target.as_ref().map(target_members)),
        };
        let decided_until = match (self.age_bound, claims.iat) {
            (Some(bound), Some(iat)) => iat.saturating_add(bound),
            _ => u64::MAX,
        };
        let header = &verified.header;
        let signer = header.kid.clone().map(|kid| (kid, header.alg));
        Decided {
            decision,
            target,
            audit_members,
            summary_members,
            joined,
            decided_until,
            azure_key,
            signer,
        }
    }

    /// The credential an admission's requests use: its allow rule's (see
    /// [`GateConfig::credential_of`]).
    pub fn credential_for(&self, admission: &Admission) -> &Credential {
        self.config.credential_of(rule_of(admission))
    }

    /// The Entra token request for an admitted job, with the rule's credential: the job's token
    /// itself (federated), an assertion the gate signs with a certificate or as the broker's
    /// issuer (each reused while valid: certificate assertions per app, issuer assertions per
    /// job and rule, since they name the job), or the broker's managed identity token (installed
    /// with [`Gate::install_identity_token`] first). `rng` draws `jti`s and PSS salts.
    ///
    /// # Errors
    /// [`Failure::Request`] when the token's shape or the signing fails;
    /// [`Failure::Identity`] ([`IdentityError::NoToken`]) for a managed identity rule whose
    /// identity token was not installed (send [`Gate::identity_request`] first).
    pub fn request(
        &mut self,
        admission: &Admission,
        token: &str,
        now: u64,
        rng: &dyn SecureRandom,
    ) -> Result<TokenRequest, Failure> {
        let target = admission
            .target()
            .ok_or_else(|| Failure::Denied(Arc::clone(&admission.decided)))?
            .clone();
        let (credential, audience) = self.binding_of(admission);
        let mut request = match &credential {
            Credential::Federated => entra::build_federated_request(&target, token)?,
            Credential::Certificate(certificate) => {
                let assertion = self.certificate_assertion(&target, certificate, now, rng)?;
                entra::request_with_assertion(&target, &assertion)
            }
            Credential::Issuer(issuer) => {
                let signed = self.broker_assertion(admission, issuer, audience, now, rng)?;
                entra::request_with_assertion(&target, signed.assertion.secret())
            }
            Credential::ManagedIdentity(identity) => {
                let key = identity.endpoint.request(&identity.client_id, audience).url;
                let fresh = self
                    .identity_tokens
                    .get(&key)
                    .filter(|t| now.saturating_add(IDENTITY_REUSE_MARGIN) < t.expires_at);
                let Some(cached) = fresh else {
                    return Err(Failure::Identity(IdentityError::NoToken {
                        client_id: identity.client_id.clone(),
                    }));
                };
                entra::request_with_assertion(&target, cached.token.secret())
            }
        };
        // A correlation id, as Azure Identity sends it: Entra logs it and echoes it in
        // `correlation_id`, which joins its sign-in log to our audit event.
        let mut id = [0u8; 16];
        rng.fill(&mut id).map_err(|_| RequestError::RandomFailed)?;
        let request_id = uuid_v4(id);
        if self.audit_enabled {
            self.remember_pending(&request_id, &admission.decided, now);
        }
        request.headers.push(("client-request-id".to_owned(), request_id));
        request.headers.push(("return-client-request-id".to_owned(), "true".to_owned()));
        Ok(request)
    }

    /// The request for the broker's managed identity token, when the admission's rule uses the
    /// `managed-identity` credential and no identity token is fresh at `now`; `None` otherwise
    /// (send [`Gate::request`] at once). Requests for one identity are equal (the same
    /// [`IdentityRequest::url`]), so a host can send one for many waiting jobs.
    pub fn identity_request(&self, admission: &Admission, now: u64) -> Option<IdentityRequest> {
        let (credential, audience) = self.binding_of(admission);
        let Credential::ManagedIdentity(identity) = credential else { return None };
        let request = identity.endpoint.request(&identity.client_id, audience);
        let fresh = self
            .identity_tokens
            .get(&request.url)
            .is_some_and(|t| now.saturating_add(IDENTITY_REUSE_MARGIN) < t.expires_at);
        (!fresh).then_some(request)
    }

    /// Reads the identity endpoint's answer to `request` (from [`Gate::identity_request`]),
    /// received at `now`, and keeps the token for every rule of that identity until shortly
    /// before it expires.
    ///
    /// # Errors
    /// [`Failure::Identity`]: ask [`Failure::retryable`] and [`Failure::http_status`].
    pub fn install_identity_token(
        &mut self,
        request: &IdentityRequest,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
        now: u64,
    ) -> Result<(), Failure> {
        let token = parse_identity_response(status, headers, body, &request.client_id, now)?;
        if token.expires_at <= now.saturating_add(IDENTITY_REUSE_MARGIN) {
            return Err(Failure::Identity(IdentityError::Expired {
                expires_at: token.expires_at,
                now,
            }));
        }
        if self.identity_tokens.len() >= MAX_IDENTITY_TOKENS {
            self.identity_tokens.retain(|_, t| now < t.expires_at);
        }
        self.identity_tokens.insert(request.url.clone(), token);
        Ok(())
    }

    /// The broker-signed assertion for an admitted job (assertion vending): the same one
    /// [`Gate::request`] would present, with where to redeem it. Only `issuer` rules have one.
    ///
    /// # Errors
    /// [`Failure::Vend`] ([`VendError::AssertionUnavailable`]) for another credential,
    /// [`Failure::Request`] when signing fails.
    pub fn vend_assertion(
        &mut self,
        admission: &Admission,
        now: u64,
        rng: &dyn SecureRandom,
    ) -> Result<VendedAssertion, Failure> {
        let target = admission
            .target()
            .ok_or_else(|| Failure::Denied(Arc::clone(&admission.decided)))?
            .clone();
        let rule = rule_of(admission).map(str::to_owned);
        let (credential, audience) = self.binding_of(admission);
        let Credential::Issuer(issuer) = &credential else {
            return Err(Failure::Vend(VendError::AssertionUnavailable {
                rule,
                credential: credential.name(),
            }));
        };
        let signed = self.broker_assertion(admission, issuer, audience, now, rng)?;
        Ok(VendedAssertion {
            assertion: signed.assertion,
            expires_at: signed.expires_at,
            issuer: signed.issuer,
            subject: signed.subject,
            audience: signed.audience,
            tenant: target.tenant().to_owned(),
            client_id: target.client_id().to_owned(),
            authority: target.authority_base().to_owned(),
            rule,
        })
    }

    /// The admission's credential and the token-exchange audience of its target's cloud.
    fn binding_of(&self, admission: &Admission) -> (Credential, &'static str) {
        match self.config.binding(rule_of(admission)) {
            Some(binding) => (binding.credential.clone(), binding.audience),
            None => (self.config.credential.clone(), crate::broker::TOKEN_EXCHANGE_AUDIENCE),
        }
    }

    fn certificate_assertion(
        &mut self,
        target: &AzureTarget,
        certificate: &CertificateCredential,
        now: u64,
        rng: &dyn SecureRandom,
    ) -> Result<String, Failure> {
        let key = format!(
            "{} {} {}",
            target.token_endpoint(),
            target.client_id(),
            certificate.x5t_s256()
        );
        if let Some(cached) = self.assertions.get(&key).filter(|c| now < c.reuse_until) {
            return Ok(cached.assertion.clone());
        }
        let assertion =
            certificate.sign_assertion(&target.token_endpoint(), target.client_id(), now, rng)?;
        let lifetime = certificate.assertion_lifetime();
        let reuse_until = now.saturating_add(lifetime.saturating_sub(ASSERTION_REUSE_MARGIN));
        self.assertions.insert(key, CachedAssertion { assertion: assertion.clone(), reuse_until });
        Ok(assertion)
    }

    /// The broker's assertion for this job and rule, signed at most once while it is valid.
    fn broker_assertion(
        &mut self,
        admission: &Admission,
        issuer: &IssuerCredential,
        audience: &str,
        now: u64,
        rng: &dyn SecureRandom,
    ) -> Result<SignedAssertion, Failure> {
        let fingerprint =
            admission.verified.as_ref().map(|v| v.fingerprint.as_str()).unwrap_or_default();
        let key = format!(
            "{}\n{}\n{fingerprint}\n{audience}\n{}",
            rule_of(admission).unwrap_or_default(),
            issuer.subject,
            issuer.issuer.url()
        );
        let reusable =
            |s: &SignedAssertion| now.saturating_add(ASSERTION_REUSE_MARGIN) < s.expires_at;
        if let Some(cached) = self.broker_assertions.get(&key).filter(|s| reusable(s)) {
            return Ok(cached.clone());
        }
        let trace = admission
            .verified
            .as_ref()
            .map(|v| JobTrace::from_claims(&v.claims))
            .unwrap_or_default();
        let signed = issuer.issuer.sign(&issuer.subject, audience, &trace, now, rng)?;
        if self.broker_assertions.len() >= MAX_BROKER_ASSERTIONS {
            self.broker_assertions.retain(|_, s| reusable(s));
            if self.broker_assertions.len() >= MAX_BROKER_ASSERTIONS {
                self.broker_assertions.clear();
            }
        }
        self.broker_assertions.insert(key, signed.clone());
        Ok(signed)
    }

    /// Keeps which decision the request `request_id` was built for, bounded.
    fn remember_pending(&mut self, request_id: &str, decided: &Arc<Decided>, now: u64) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.retain(|_, (_, sent)| now.saturating_sub(*sent) < PENDING_FOR);
            if self.pending.len() >= MAX_PENDING {
                self.pending.clear();
            }
        }
        self.pending.insert(request_id.to_owned(), (Arc::clone(decided), now));
    }

    /// Reads Entra's answer to the request `request_id` ([`TokenRequest::request_id`] of the
    /// request [`Gate::request`] built), received at `now`, and queues its audit event: the
    /// outcome, Entra's error codes and its correlation and trace ids, joined to the decision
    /// the request was made for (its `rule`, `token_sha256`, `jti`, job and identity). An answer
    /// to an unknown (or forgotten) request id is read and recorded all the same, without the
    /// decision.
    ///
    /// # Errors
    /// [`Failure::Entra`]: ask [`Failure::retryable`] and [`Failure::retry_after`].
    pub fn finish(
        &mut self,
        request_id: &str,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
        now: u64,
    ) -> Result<AccessToken, Failure> {
        let outcome = entra::parse_token_response(status, headers, body, now);
        if self.audit_enabled {
            // Kept, not taken: a host may send the same request again (a retry) and read its
            // answer.
            let joined =
                self.pending.get(request_id).and_then(|(decided, _)| decided.joined.as_ref());
            let answer = EntraAnswer { status, headers, outcome: outcome.as_ref() };
            let id = (!request_id.is_empty()).then(|| request_id.to_owned());
            let event = AuditEvent::answered(joined, id, &answer, now);
            self.audit.push(event.to_json());
        }
        Ok(outcome?)
    }

    /// Queues the reuse summaries at `now`: those of decisions that left the cache, and of every
    /// kept decision with counted requests. Call it periodically (a proxy's tick), and with
    /// `now` when the host stops.
    pub fn summarize(&mut self, now: u64) {
        if self.audit_enabled {
            let lines = self.decisions.summaries(now);
            self.audit.extend(lines);
        }
    }

    /// The audit events queued since the last call, one JSON line each, oldest first.
    pub fn take_audit(&mut self) -> Vec<String> {
        std::mem::take(&mut self.audit)
    }

    /// How many decisions are kept.
    pub fn decisions_kept(&self) -> usize {
        self.decisions.len()
    }
}

/// The allow rule of an admission (`None` for a fixed target).
fn rule_of(admission: &Admission) -> Option<&str> {
    admission.decided.decision().and_then(Decision::rule)
}

/// The Azure token cache key of a job and target (see [`Decided::azure_key`]).
fn azure_key(target: &AzureTarget, claims: &Claims) -> String {
    let raw = |name: &str| claims.raw.get(name).map(Value::to_string).unwrap_or_default();
    let parts = [
        target.token_endpoint(),
        target.client_id().to_owned(),
        target.scopes().join(" "),
        claims.iss.clone(),
        claims.sub.clone().unwrap_or_default(),
        raw("project_id"),
        raw("job_id"),
    ];
    // Length-prefixed, so no two different tuples give the same input.
    let input: String = parts.iter().map(|p| format!("{}:{p};", p.len())).collect();
    token_fingerprint(&input)
}

/// What the event of Entra's answer repeats for a fixed target (no decision to join): its app.
fn target_members(target: &AzureTarget) -> Map<String, Value> {
    Map::from_iter([("client_id".to_owned(), json!(target.client_id()))])
}

/// A decision event's members, as the gate keeps them for the events of its requests.
struct Members {
    /// All but `time`, as JSON members without braces (the token's fingerprint is the one the
    /// verifier computed).
    full: String,
    /// Those a reuse summary repeats, as JSON members without braces.
    summary: String,
    /// Those the event of Entra's answer repeats.
    joined: Map<String, Value>,
}

fn audit_members(decision: &Decision, claims: &Claims, fingerprint: &str, now: u64) -> Members {
    let event = AuditEvent::with_fingerprint(decision, claims, fingerprint, now);
    let joined = event.joined();
    let Value::Object(mut members) = event.as_json().clone() else {
        return Members { full: String::new(), summary: String::new(), joined };
    };
    members.remove("time");
    let summary: Map<String, Value> = SUMMARY_MEMBERS
        .iter()
        .filter_map(|&name| Some((name.to_owned(), members.get(name)?.clone())))
        .collect();
    Members {
        full: without_braces(&Value::Object(members)),
        summary: without_braces(&Value::Object(summary)),
        joined,
    }
}

/// A JSON object's members, without the braces.
fn without_braces(object: &Value) -> String {
    let json = object.to_string();
    json.get(1..json.len().saturating_sub(1)).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod broker_tests;
#[cfg(test)]
mod tests;
