//! One Envoy worker's state: the keys, the fetch in flight, the requests waiting for it and the
//! verified-token cache. Pure: the proxy-wasm glue feeds it time and fetched bytes.

use std::rc::Rc;
use std::sync::Arc;

use gitlab_azure_oidc::offload::SignatureBackend;
use gitlab_azure_oidc::{Jwks, JwksError, VerifiedToken, Verifier};

use crate::admission::{Admissions, Admitted};
use crate::cache::JwksRecord;
use crate::config::{FilterConfig, JwksSource, RemoteJwks};
use crate::reply::{self, Reply};

/// What to do with a token.
#[derive(Debug)]
pub enum Check {
    /// It verified (now, or earlier and cached).
    Verified(Arc<VerifiedToken>),
    /// The keys are being fetched (or about to be): park the request until they arrive.
    Wait,
    /// Refuse the request.
    Reject(Reply),
}

/// A request parked until a JWKS fetch completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiter {
    /// The HTTP context id.
    pub context_id: u32,
    /// The GitLab token it carries.
    pub token: String,
    /// When it arrived, milliseconds since the epoch.
    pub since_ms: u64,
}

/// One worker's state.
#[derive(Debug)]
pub struct Worker {
    config: Rc<FilterConfig>,
    verifier: Option<Verifier>,
    /// When the current keys were fetched, and when to refresh them.
    fetched_at: u64,
    expires_at: u64,
    /// The last fetch started (milliseconds since the epoch), if one is in flight.
    in_flight_ms: Option<u64>,
    /// When the last fetch started, seconds.
    last_attempt: Option<u64>,
    /// The last failure: when, and why.
    last_failure: Option<(u64, String)>,
    /// A token named an unknown `kid`: refetch when the interval allows.
    refetch_wanted: bool,
    waiters: Vec<Waiter>,
    /// Decisions per verified token, bounded like the verified-token cache.
    admissions: Admissions,
    /// When the kept admissions' reuse counts are next summarized (seconds).
    next_summary: u64,
    /// Whether the host logs at info level, where the audit events go.
    audit_enabled: bool,
    /// The host's native signature check, given to every verifier this worker builds.
    signature_backend: Option<Arc<dyn SignatureBackend>>,
}

impl Worker {
    /// A worker for `config`; with an inline JWKS it is ready at once.
    pub fn new(config: Rc<FilterConfig>) -> Self {
        let verifier = match &config.jwks {
            // Checked when the configuration was parsed, so this only fails on a bug.
            JwksSource::Inline(jwks) => {
                Jwks::parse_with_limits(jwks.as_bytes(), config.verifier.limits())
                    .ok()
                    .map(|jwks| Verifier::new(config.verifier.clone(), jwks))
            }
            JwksSource::Remote(_) => None,
        };
        Self {
            verifier,
            fetched_at: 0,
            expires_at: u64::MAX,
            in_flight_ms: None,
            last_attempt: None,
            last_failure: None,
            refetch_wanted: false,
            waiters: Vec::new(),
            admissions: Admissions::new(config.verified_tokens),
            next_summary: 0,
            audit_enabled: true,
            signature_backend: None,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Rc<FilterConfig> {
        &self.config
    }

    fn remote(&self) -> Option<&RemoteJwks> {
        match &self.config.jwks {
            JwksSource::Remote(r) => Some(r),
            JwksSource::Inline(_) => None,
        }
    }

    /// Verifies `token` at `now` (seconds); the core's verifier answers repeats from its
    /// bounded cache (time claims re-checked, forgotten with the keys it was verified under).
    pub fn check(&mut self, token: &str, now: u64) -> Check {
        let Some(verifier) = &mut self.verifier else {
            return match (&self.last_failure, self.in_flight_ms, self.remote()) {
                (Some((at, detail)), None, Some(remote)) if now < at + remote.retry_interval => {
                    Check::Reject(reply::jwks_unavailable(detail, at + remote.retry_interval - now))
                }
                _ => Check::Wait,
            };
        };
        match verifier.verify_cached(token, now) {
            Ok(verified) => Check::Verified(verified),
            Err(e) if e.suggests_jwks_refresh() && self.may_refetch(now) => {
                self.refetch_wanted = true;
                Check::Wait
            }
            Err(e) => Check::Reject(reply::invalid_token(&e)),
        }
    }

    /// An unknown `kid` may wait for a refetch when one is in flight or the interval has passed.
    fn may_refetch(&self, now: u64) -> bool {
        let Some(remote) = self.remote() else { return false };
        self.in_flight_ms.is_some()
            || self.last_attempt.is_none_or(|at| now >= at + remote.unknown_kid_interval)
    }

    /// The decision on a verified token at `now`, with what its requests share: made once per
    /// token while it stands (see [`crate::admission::Admission`]); a request that reuses it is
    /// counted for the next summary.
    pub fn admit(&mut self, verified: &Arc<VerifiedToken>, now: u64) -> Admitted {
        self.admissions.admit(&self.config, verified, now)
    }

    /// The audit summaries to log at `now`: those of admissions that left the set (evicted, or
    /// forgotten with the keys) at once, and every `audit.summary_seconds` those of the kept
    /// admissions with counted requests. Called on the root's tick.
    pub fn audit_summaries(&mut self, now: u64) -> Vec<String> {
        if now < self.next_summary {
            return self.retired_audit_summaries(now);
        }
        self.next_summary = now.saturating_add(self.config.audit_summary_seconds);
        self.admissions.summaries(now)
    }

    /// The audit summaries at `now` of admissions that left the set (evicted, re-decided, or
    /// forgotten with the keys); nothing is allocated when there are none.
    pub fn retired_audit_summaries(&mut self, now: u64) -> Vec<String> {
        self.admissions.retired_summaries(now)
    }

    /// Every audit summary at `now`, due or not (the worker is going away).
    pub fn flush_audit_summaries(&mut self, now: u64) -> Vec<String> {
        self.admissions.summaries(now)
    }

    /// The number of tokens with a kept decision.
    pub fn admitted(&self) -> usize {
        self.admissions.len()
    }

    /// Whether audit events are logged: the host's log level is info or finer. Building an
    /// event the host would drop is wasted work on every request.
    pub fn audit_enabled(&self) -> bool {
        self.audit_enabled
    }

    /// Hands signature checks to the host's native crypto (`None`: ring in the filter), for the
    /// current keys and every later set.
    pub fn set_signature_backend(&mut self, backend: Option<Arc<dyn SignatureBackend>>) {
        if let Some(verifier) = &mut self.verifier {
            verifier.set_signature_backend(backend.clone());
        }
        self.signature_backend = backend;
    }

    /// Records the host's log level (read on the root's tick, as it may change at run time).
    pub fn set_audit_enabled(&mut self, enabled: bool) {
        self.audit_enabled = enabled;
    }

    /// True when a fetch should start now: no keys yet, keys expired, or an unknown `kid`; never
    /// while one is in flight, and never sooner than the intervals allow.
    pub fn wants_fetch(&mut self, now_ms: u64) -> bool {
        let Some(remote) = self.remote().cloned() else { return false };
        let now = now_ms / 1000;
        if let Some(started) = self.in_flight_ms {
            // Envoy always answers a callout (with a failure at the timeout); a fetch older than
            // that plus slack was lost, e.g. with the context that owned it.
            if now_ms < started + remote.timeout_ms + 5000 {
                return false;
            }
            self.in_flight_ms = None;
        }
        let since = |interval: u64| self.last_attempt.is_none_or(|at| now >= at + interval);
        (self.verifier.is_none() && since(remote.retry_interval))
            || (self.refetch_wanted && since(remote.unknown_kid_interval))
            || (now >= self.expires_at && since(remote.retry_interval))
    }

    /// True when the worker may adopt `record` (fetched by another worker): it is newer.
    pub fn is_newer(&self, record: &JwksRecord) -> bool {
        self.verifier.is_none() || record.fetched_at > self.fetched_at
    }

    /// Records that a fetch started.
    pub fn fetch_started(&mut self, now_ms: u64) {
        self.in_flight_ms = Some(now_ms);
        self.last_attempt = Some(now_ms / 1000);
    }

    /// Records a failed fetch; the current keys, if any, stay in use.
    pub fn fetch_failed(&mut self, now: u64, detail: String) {
        self.in_flight_ms = None;
        self.refetch_wanted = false;
        self.last_failure = Some((now, detail));
    }

    /// Installs a JWKS record (fetched here or by another worker).
    ///
    /// # Errors
    /// [`JwksError`] when the document does not parse; nothing changes then.
    pub fn install(&mut self, record: &JwksRecord) -> Result<(), JwksError> {
        let jwks = Jwks::parse_with_limits(record.jwks.as_bytes(), self.config.verifier.limits())?;
        let mut verifier = Verifier::new(self.config.verifier.clone(), jwks);
        verifier.set_signature_backend(self.signature_backend.clone());
        self.verifier = Some(verifier);
        self.fetched_at = record.fetched_at;
        self.expires_at = record.expires_at;
        self.in_flight_ms = None;
        self.refetch_wanted = false;
        self.last_failure = None;
        self.last_attempt = Some(self.last_attempt.unwrap_or(0).max(record.fetched_at));
        // The new verifier starts with an empty verified-token cache: keys may have been
        // withdrawn, so every token is verified again against the new set, and decided again.
        self.admissions.clear();
        Ok(())
    }

    /// Parks a request until the fetch completes.
    ///
    /// # Errors
    /// A 503 reply when too many requests are waiting already.
    pub fn park(&mut self, context_id: u32, token: &str, now_ms: u64) -> Result<(), Reply> {
        if self.waiters.len() >= self.config.max_waiters {
            return Err(reply::overloaded());
        }
        self.waiters.push(Waiter { context_id, token: token.to_owned(), since_ms: now_ms });
        Ok(())
    }

    /// The parked requests, when no fetch is in flight any more (they are to be run again).
    pub fn take_waiters(&mut self) -> Vec<Waiter> {
        if self.in_flight_ms.is_some() {
            return Vec::new();
        }
        std::mem::take(&mut self.waiters)
    }

    /// The parked requests that waited too long (they get 503).
    pub fn expired_waiters(&mut self, now_ms: u64) -> Vec<Waiter> {
        let limit = self.config.max_wait_ms();
        let (expired, kept) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| now_ms >= w.since_ms + limit);
        self.waiters = kept;
        expired
    }

    /// Forgets a parked request whose stream ended.
    pub fn unpark(&mut self, context_id: u32) {
        self.waiters.retain(|w| w.context_id != context_id);
    }

    /// The number of parked requests.
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// The number of cached verified tokens.
    pub fn verified_cached(&self) -> usize {
        self.verifier.as_ref().map_or(0, Verifier::cached)
    }
}

#[cfg(test)]
mod tests;
