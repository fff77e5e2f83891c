//! One Envoy worker's state: the core's [`Gate`] and what only a proxy-wasm filter needs around
//! it: when to fetch the JWKS, the requests parked until it arrives, and the worker's copy of the
//! header changes that forward a token's requests. Pure: the flow ([`crate::flow`]) feeds it time
//! and fetched bytes.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use gitlab_azure_oidc::broker::{IdentityRequest, VendKind};
use gitlab_azure_oidc::gate::Decided;
use gitlab_azure_oidc::{Admission, Failure, Gate, Jwks, JwksError, Limits};

use crate::cache::JwksRecord;
use crate::config::{FilterConfig, JwksSource, RemoteJwks};
use crate::reply::Reply;
use crate::request::HeaderPlan;
use crate::stats::Counters;

/// What to do with a token.
#[derive(Debug)]
pub enum Check {
    /// Admitted (now, or by a kept decision): forward it.
    Admitted(Admission),
    /// The keys are being fetched (or about to be): park the request until they arrive.
    Wait,
    /// The gate refused it (a bad token, a deny): reply with the failure.
    Refuse(Failure),
    /// The issuer's keys could not be fetched: 503 until the next try.
    Unavailable {
        /// Why the last fetch failed.
        detail: String,
        /// Seconds until the next fetch may run.
        retry_after: u64,
    },
}

/// What a request wants once its job is admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Go upstream with the Azure token (the identity-aware proxy).
    Forward,
    /// Be answered with the Azure token, or the broker's assertion (token vending).
    Vend(VendAsk),
}

/// What a vending request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VendAsk {
    /// A scope the rule must grant, if any.
    pub scope: Option<String>,
    /// The access token or the assertion.
    pub kind: VendKind,
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
    /// What it wants.
    pub purpose: Purpose,
}

/// An admitted request waiting for an Azure token (or first the broker's managed identity
/// token): one callout serves every job waiting on it.
#[derive(Clone, Debug)]
pub struct Job {
    /// The HTTP context id.
    pub context_id: u32,
    /// The GitLab token (the federated credential's assertion; never logged).
    pub token: String,
    /// What it wants.
    pub purpose: Purpose,
    /// The admission, with the decision whose `azure_key` it waits for.
    pub admission: Admission,
}

/// What a callout in flight fetches.
#[derive(Clone, Debug)]
pub enum Call {
    /// The Azure token of one `Decided::azure_key` from Entra.
    Entra {
        /// The key.
        key: String,
        /// The request's `client-request-id` (empty until it is sent): joins Entra's answer
        /// to the decision in the audit log.
        request_id: String,
    },
    /// The broker's managed identity token (one per identity request URL).
    Identity {
        /// The request sent, which `Gate::install_identity_token` reads the answer for.
        request: IdentityRequest,
    },
}

/// A callout in flight and the jobs waiting on it.
#[derive(Debug)]
pub struct InFlight {
    /// What it fetches.
    pub call: Call,
    /// The context whose callback dispatched it: the answer is delivered there.
    pub owner: u32,
    /// When it was dispatched (milliseconds), and its timeout.
    pub started_ms: u64,
    /// Its timeout in milliseconds.
    pub timeout_ms: u64,
    /// The jobs served by its answer, the one that dispatched it first.
    pub jobs: Vec<Job>,
}

impl InFlight {
    fn serves(&self, wanted: &Call) -> bool {
        match (&self.call, wanted) {
            (Call::Entra { key, .. }, Call::Entra { key: other, .. }) => key == other,
            (Call::Identity { request }, Call::Identity { request: other }) => {
                request.url == other.url
            }
            _ => false,
        }
    }
}

/// The header changes that forward one token's requests with a usable Azure token, for the
/// decision they were made under.
#[derive(Debug)]
struct Forwarding {
    decided: Arc<Decided>,
    /// The shared record's `use_until`: the Azure token's expiry minus the margin.
    use_until: u64,
    plan: HeaderPlan,
}

/// The vending route's reply (the Azure token in `az`'s JSON) for one token's requests, for the
/// decision it was made under.
#[derive(Debug)]
struct Vended {
    decided: Arc<Decided>,
    use_until: u64,
    reply: Reply,
}

/// One worker's state.
#[derive(Debug)]
pub struct Worker {
    config: Rc<FilterConfig>,
    gate: Gate,
    /// When the current keys were fetched, when to refresh them in the background, and when
    /// they lapse (they verify nothing after it).
    fetched_at: u64,
    refresh_at: u64,
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
    /// By token fingerprint; bounded like the gate's caches. A repeat skips the shared-data read,
    /// its JSON parse and the header plan.
    forwardings: HashMap<String, Forwarding>,
    /// The vending route's reply for a token's requests, kept like `forwardings`: a repeat skips
    /// the shared-data read, its JSON parse and building `az`'s JSON.
    vended: HashMap<String, Vended>,
    /// When the kept decisions' reuse counts are next summarized (seconds).
    next_summary: u64,
    /// Whether the host logs at info level, where the audit events go.
    audit_enabled: bool,
    /// The root context's counters, which its requests count on too.
    counters: Counters,
    /// Entra and identity callouts in flight, by callout token, with the jobs they serve.
    in_flight: HashMap<u32, InFlight>,
    /// Jobs whose callout was lost with the context that owned it: the root runs them again.
    orphans: Vec<Job>,
    /// Requests the filter holds (paused in their headers) until the flow resumes or answers
    /// them: their body must not pass before (Envoy would resume the request with it).
    held: HashSet<u32>,
    /// Vending requests waiting for their body, since when (milliseconds), and whether a part of
    /// it arrived.
    bodies: HashMap<u32, (u64, bool)>,
    /// Jobs waiting for an Azure token another worker fetches (under its lease, by id).
    remote: Vec<RemoteWait>,
    /// The leases this worker holds: Azure token cache key to lease id.
    leases: HashMap<String, String>,
}

/// A job waiting for the Azure token another worker fetches.
#[derive(Clone, Debug)]
pub struct RemoteWait {
    /// The job.
    pub job: Job,
    /// The lease it waits on.
    pub lease: String,
    /// Since when, milliseconds.
    pub since_ms: u64,
}

impl Worker {
    /// A worker for `config`; with an inline JWKS it is ready at once.
    pub fn new(config: Rc<FilterConfig>) -> Self {
        let mut gate = Gate::new(config.gate.clone());
        gate.set_audit_every_request(config.audit_every_request);
        if let JwksSource::Inline(jwks) = &config.jwks {
            // Checked when the configuration was parsed, so this only fails on a bug.
            if let Ok(jwks) = Jwks::parse_with_limits(jwks.as_bytes(), &limits(&config)) {
                gate.install_jwks(jwks);
            }
        }
        Self {
            gate,
            fetched_at: 0,
            refresh_at: u64::MAX,
            expires_at: u64::MAX,
            in_flight_ms: None,
            last_attempt: None,
            last_failure: None,
            refetch_wanted: false,
            waiters: Vec::new(),
            forwardings: HashMap::new(),
            vended: HashMap::new(),
            next_summary: 0,
            audit_enabled: true,
            counters: Counters::default(),
            in_flight: HashMap::new(),
            orphans: Vec::new(),
            held: HashSet::new(),
            bodies: HashMap::new(),
            remote: Vec::new(),
            leases: HashMap::new(),
            config,
        }
    }

    /// Takes a new configuration on a live worker (a host that reconfigures a root context in
    /// place; Envoy makes a new one instead, see `flow::Root::on_configure`). Nothing in flight
    /// is dropped: parked requests stay parked and are judged under the new configuration once
    /// keys are there. No decision made under the old configuration is used again (the gate
    /// forgets them, and the worker its header copies). The keys and their fetch schedule stay
    /// when they come from the same place and the verifier settings are unchanged; otherwise the
    /// worker starts without keys, as a new one would. Log the audit events first
    /// ([`Worker::flush_audit`]): a worker that starts anew drops what its gate queued.
    ///
    /// Returns true when the keys were kept.
    pub fn reconfigure(&mut self, config: Rc<FilterConfig>, now: u64) -> bool {
        let same_source = match (&self.config.jwks, &config.jwks) {
            (JwksSource::Remote(old), JwksSource::Remote(new)) => old.location() == new.location(),
            _ => false,
        };
        let kept = same_source && self.gate.reconfigure(config.gate.clone(), now);
        if kept {
            self.gate.set_audit_every_request(config.audit_every_request);
            self.forwardings.clear();
            self.vended.clear();
            self.config = config;
        } else {
            let waiters = std::mem::take(&mut self.waiters);
            let in_flight = std::mem::take(&mut self.in_flight);
            let orphans = std::mem::take(&mut self.orphans);
            let (held, bodies) = (std::mem::take(&mut self.held), std::mem::take(&mut self.bodies));
            let (remote, leases) =
                (std::mem::take(&mut self.remote), std::mem::take(&mut self.leases));
            let (audit_enabled, counters) = (self.audit_enabled, self.counters);
            *self = Self::new(config);
            self.waiters = waiters;
            self.in_flight = in_flight;
            self.orphans = orphans;
            self.held = held;
            self.bodies = bodies;
            self.remote = remote;
            self.leases = leases;
            self.counters = counters;
            self.set_audit_enabled(audit_enabled);
        }
        kept
    }

    /// The root context's counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Sets the counters the worker's requests count on.
    pub fn set_counters(&mut self, counters: Counters) {
        self.counters = counters;
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

    /// Admits `token` at `now` (seconds) through the gate, or says why not and whether waiting
    /// for a fetch may help.
    pub fn check(&mut self, token: &str, now: u64) -> Check {
        if now >= self.expires_at {
            // The keys lapsed (`jwks.max_lifetime`): they verify nothing until a fetch succeeds.
            return self.no_keys(now);
        }
        match self.gate.admit(token, now) {
            Ok(admission) => Check::Admitted(admission),
            Err(Failure::NoKeys) => self.no_keys(now),
            Err(failure) if failure.refetch_jwks() && self.may_refetch(now) => {
                self.refetch_wanted = true;
                Check::Wait
            }
            Err(failure) if failure.refetch_jwks() => match (&self.last_failure, self.remote()) {
                // The issuer is down: the token may be signed with a key it has not served yet.
                (Some((_, detail)), Some(remote)) => {
                    let next = self.last_attempt.unwrap_or(now) + remote.unknown_kid_interval;
                    let retry_after = next.saturating_sub(now);
                    Check::Unavailable { detail: detail.clone(), retry_after }
                }
                _ => Check::Refuse(failure),
            },
            Err(failure) => Check::Refuse(failure),
        }
    }

    /// No usable keys: 503 while the last fetch failed less than `retry_interval` ago, else
    /// wait for the next fetch.
    fn no_keys(&self, now: u64) -> Check {
        match (&self.last_failure, self.in_flight_ms, self.remote()) {
            (Some((at, detail)), None, Some(remote)) if now < at + remote.retry_interval => {
                let retry_after = at + remote.retry_interval - now;
                Check::Unavailable { detail: detail.clone(), retry_after }
            }
            _ => Check::Wait,
        }
    }

    /// An unknown `kid` may wait for a refetch when one is in flight or the interval has passed.
    fn may_refetch(&self, now: u64) -> bool {
        let Some(remote) = self.remote() else { return false };
        self.in_flight_ms.is_some()
            || self.last_attempt.is_none_or(|at| now >= at + remote.unknown_kid_interval)
    }

    /// The gate.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The gate, to build a token request or take its audit events.
    pub fn gate_mut(&mut self) -> &mut Gate {
        &mut self.gate
    }

    /// The worker's header changes for an admitted token, while its Azure token is usable at
    /// `now` and the decision is the one they were made under.
    pub fn forwarding(&self, admission: &Admission, now: u64) -> Option<&HeaderPlan> {
        let verified = admission.verified.as_ref()?;
        let kept = self.forwardings.get(&verified.fingerprint)?;
        (Arc::ptr_eq(&kept.decided, &admission.decided) && now < kept.use_until)
            .then_some(&kept.plan)
    }

    /// Keeps the header changes that forward an admitted token's requests until `use_until`.
    pub fn keep_forwarding(
        &mut self,
        admission: &Admission,
        now: u64,
        use_until: u64,
        plan: HeaderPlan,
    ) {
        let Some(verified) = &admission.verified else { return };
        let capacity = limits(&self.config).verified_cache_entries;
        if capacity == 0 {
            return;
        }
        if self.forwardings.len() >= capacity {
            // Bounded without bookkeeping: forget what no longer counts, else everything (the
            // shared data still has the Azure tokens).
            self.forwardings.retain(|_, f| now < f.use_until);
            if self.forwardings.len() >= capacity {
                self.forwardings.clear();
            }
        }
        let forwarding = Forwarding { decided: Arc::clone(&admission.decided), use_until, plan };
        self.forwardings.insert(verified.fingerprint.clone(), forwarding);
    }

    /// The worker's vending reply for an admitted token, while its Azure token is usable at `now`
    /// and the decision is the one it was made under.
    pub fn vended(&self, admission: &Admission, now: u64) -> Option<&Reply> {
        let verified = admission.verified.as_ref()?;
        let kept = self.vended.get(&verified.fingerprint)?;
        (Arc::ptr_eq(&kept.decided, &admission.decided) && now < kept.use_until)
            .then_some(&kept.reply)
    }

    /// Keeps the vending reply of an admitted token's requests until `use_until`.
    pub fn keep_vended(&mut self, admission: &Admission, now: u64, use_until: u64, reply: Reply) {
        let Some(verified) = &admission.verified else { return };
        let capacity = limits(&self.config).verified_cache_entries;
        if capacity == 0 {
            return;
        }
        if self.vended.len() >= capacity {
            self.vended.retain(|_, v| now < v.use_until);
            if self.vended.len() >= capacity {
                self.vended.clear();
            }
        }
        let vended = Vended { decided: Arc::clone(&admission.decided), use_until, reply };
        self.vended.insert(verified.fingerprint.clone(), vended);
    }

    /// The audit events at `now`, with every kept decision's reuse summary when
    /// `audit.summary_seconds` have passed since the last ones. Called on the root's tick.
    pub fn audit_summaries(&mut self, now: u64) -> Vec<String> {
        if now >= self.next_summary {
            self.next_summary = now.saturating_add(self.config.audit_summary_seconds);
            self.gate.summarize(now);
        }
        self.gate.take_audit()
    }

    /// Every audit event and summary at `now`, due or not (the worker is going away).
    pub fn flush_audit(&mut self, now: u64) -> Vec<String> {
        self.gate.summarize(now);
        self.gate.take_audit()
    }

    /// Whether audit events are logged: the host logs at info level or finer. Building an
    /// event the host would drop is wasted work on every request.
    pub fn audit_enabled(&self) -> bool {
        self.audit_enabled
    }

    /// Records the host's log level (read on the root's tick, as it may change at run time); the
    /// gate builds no event while it is off.
    pub fn set_audit_enabled(&mut self, enabled: bool) {
        self.audit_enabled = enabled;
        self.gate.set_audit_enabled(enabled);
    }

    /// True when a fetch should start now: no keys yet, keys due for their background refresh
    /// (three quarters of their lifetime passed), or an unknown `kid`; never while one is in
    /// flight, and never sooner than the intervals allow.
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
        (!self.gate.ready() && since(remote.retry_interval))
            || (self.refetch_wanted && since(remote.unknown_kid_interval))
            || (now >= self.refresh_at && since(remote.retry_interval))
    }

    /// True when the worker may adopt `record` (fetched by another worker): it is newer.
    pub fn is_newer(&self, record: &JwksRecord) -> bool {
        !self.gate.ready() || record.fetched_at > self.fetched_at
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

    /// Installs a JWKS record (fetched here or by another worker) in the gate, which keeps only
    /// what the new keys still vouch for; the decisions it forgets are summarized at `now`.
    ///
    /// # Errors
    /// [`JwksError`] when the document does not parse; nothing changes then.
    pub fn install(&mut self, record: &JwksRecord, now: u64) -> Result<(), JwksError> {
        let jwks = Jwks::parse_with_limits(record.jwks.as_bytes(), &limits(&self.config))?;
        self.gate.install_jwks(jwks);
        self.gate.summarize(now);
        self.fetched_at = record.fetched_at;
        let lifetime = record.expires_at.saturating_sub(record.fetched_at);
        self.refresh_at = record.fetched_at.saturating_add(lifetime - lifetime / 4);
        self.expires_at = record.expires_at;
        self.in_flight_ms = None;
        self.refetch_wanted = false;
        self.last_failure = None;
        self.last_attempt = Some(self.last_attempt.unwrap_or(0).max(record.fetched_at));
        Ok(())
    }

    /// Parks a request until the fetch completes; false when too many are waiting already (the
    /// caller answers 503).
    pub fn park(&mut self, context_id: u32, token: &str, purpose: &Purpose, now_ms: u64) -> bool {
        if self.waiters.len() >= self.config.max_waiters {
            return false;
        }
        let purpose = purpose.clone();
        self.waiters.push(Waiter {
            context_id,
            token: token.to_owned(),
            since_ms: now_ms,
            purpose,
        });
        true
    }

    /// How many jobs wait for a callout (Entra or the identity endpoint).
    pub fn jobs_waiting(&self) -> usize {
        self.in_flight.values().map(|f| f.jobs.len()).sum::<usize>()
            + self.orphans.len()
            + self.remote.len()
    }

    /// Parks `job` until the Azure token another worker fetches under `lease` is shared.
    pub fn wait_remote(&mut self, job: Job, lease: String, now_ms: u64) {
        self.remote.push(RemoteWait { job, lease, since_ms: now_ms });
    }

    /// The jobs waiting for another worker's fetch, to check on the tick.
    pub fn take_remote(&mut self) -> Vec<RemoteWait> {
        std::mem::take(&mut self.remote)
    }

    /// The lease this worker holds for `key`, if any.
    pub fn lease(&self, key: &str) -> Option<&str> {
        self.leases.get(key).map(String::as_str)
    }

    /// Records (`Some`) or forgets (`None`) the lease this worker holds for `key`.
    pub fn set_lease(&mut self, key: &str, id: Option<String>) {
        match id {
            Some(id) => self.leases.insert(key.to_owned(), id),
            None => self.leases.remove(key),
        };
    }

    /// True when one more job may wait for a callout (`max_waiting_requests`).
    pub fn may_wait(&self) -> bool {
        self.jobs_waiting() < self.config.max_waiters
    }

    /// Adds `job` to the callout in flight that fetches `call`, if there is one; otherwise gives
    /// the job back (the caller dispatches the callout).
    pub fn join(&mut self, call: &Call, job: Job) -> Option<Job> {
        match self.in_flight.values_mut().find(|f| f.serves(call)) {
            Some(in_flight) => {
                in_flight.jobs.push(job);
                None
            }
            None => Some(job),
        }
    }

    /// Records a callout dispatched with token `token`.
    pub fn start(&mut self, token: u32, in_flight: InFlight) {
        self.in_flight.insert(token, in_flight);
    }

    /// The callout `token` and its jobs, when it is one of the worker's (its answer arrived).
    pub fn take_in_flight(&mut self, token: u32) -> Option<InFlight> {
        self.in_flight.remove(&token)
    }

    /// Holds the request `context_id`: paused in its headers until the flow resumes it.
    pub fn hold(&mut self, context_id: u32) {
        self.held.insert(context_id);
    }

    /// Lets the request `context_id` go on: the flow resumes it.
    pub fn release(&mut self, context_id: u32) {
        self.held.remove(&context_id);
    }

    /// True while the request is held: its body waits too.
    pub fn is_held(&self, context_id: u32) -> bool {
        self.held.contains(&context_id)
    }

    /// Records that the vending request `context_id` waits for its body since `now_ms`.
    pub fn await_body(&mut self, context_id: u32, now_ms: u64) {
        self.bodies.insert(context_id, (now_ms, false));
    }

    /// A part of the vending request's body arrived; false when it waits for none.
    pub fn body_arrived(&mut self, context_id: u32) -> bool {
        self.bodies.get_mut(&context_id).map(|(_, seen)| *seen = true).is_some()
    }

    /// The vending request has its whole body (or was answered).
    pub fn body_done(&mut self, context_id: u32) {
        self.bodies.remove(&context_id);
    }

    /// The vending requests whose body the host never handed over within `limit_ms`: Envoy holds
    /// it from a filter whose headers callback paused, unless the plugin allows it
    /// (`allow_on_headers_stop_iteration`).
    pub fn bodies_withheld(&mut self, now_ms: u64, limit_ms: u64) -> Vec<u32> {
        let late: Vec<u32> = self
            .bodies
            .iter()
            .filter(|(_, (since, seen))| !seen && now_ms >= since + limit_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in &late {
            self.bodies.remove(id);
        }
        late
    }

    /// Forgets a request whose stream ended: it waits for nothing any more. A callout it owned
    /// is lost with it (the host delivers an answer only to a live context), so the jobs that
    /// waited on it become orphans the root runs again on its tick.
    pub fn forget(&mut self, context_id: u32) {
        self.held.remove(&context_id);
        self.bodies.remove(&context_id);
        self.waiters.retain(|w| w.context_id != context_id);
        self.orphans.retain(|j| j.context_id != context_id);
        self.remote.retain(|w| w.job.context_id != context_id);
        for in_flight in self.in_flight.values_mut() {
            in_flight.jobs.retain(|j| j.context_id != context_id);
        }
        let owned: Vec<u32> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.owner == context_id)
            .map(|(token, _)| *token)
            .collect();
        for token in owned {
            if let Some(lost) = self.in_flight.remove(&token) {
                self.orphans.extend(lost.jobs);
            }
        }
    }

    /// The jobs whose callout was lost, to run again.
    pub fn take_orphans(&mut self) -> Vec<Job> {
        std::mem::take(&mut self.orphans)
    }

    /// The callouts that got no answer long after their timeout (the host always answers a live
    /// context's callout, so one this late was lost): their jobs get 503.
    pub fn expired_in_flight(&mut self, now_ms: u64) -> Vec<InFlight> {
        let lost: Vec<u32> = self
            .in_flight
            .iter()
            .filter(|(_, f)| now_ms >= f.started_ms + f.timeout_ms + 5000)
            .map(|(token, _)| *token)
            .collect();
        lost.into_iter().filter_map(|token| self.in_flight.remove(&token)).collect()
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
}

/// The configuration's input limits (the filter's gate always verifies, so it has them).
fn limits(config: &FilterConfig) -> Limits {
    config.gate.verifier().map(|v| v.limits().clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests;
