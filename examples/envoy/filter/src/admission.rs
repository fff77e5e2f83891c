//! What every request carrying the same verified token shares: the policy decision, its audit
//! event (all but the time), the Azure cache key, and the worker's copy of the Azure token.
//!
//! A job calls many times with one token. The decision is a pure function of the token's claims,
//! the policy and (only for `max_token_age`) the time, and the claims and the policy are fixed for
//! the life of the token's entry. Deciding, building the audit event (JSON) and hashing the Azure
//! cache key once per token, instead of once per request, is what makes the warm path cheap in V8;
//! the audit event is logged when the decision is made.
//!
//! The requests that reuse a kept decision are counted on it, and the worker logs their count as
//! a short summary event (`"event":"decision_reused"`) every `audit.summary_seconds`, and when
//! the admission is evicted or forgotten, so every admitted or denied request is accounted for in
//! the audit log without repeating a 1 KiB event per request (see `audit.every_request` for that).

use std::cell::{Cell, Ref, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use gitlab_azure_oidc::policy::{AuditEvent, Decision};
use gitlab_azure_oidc::VerifiedToken;
use serde_json::Value;

use crate::cache;
use crate::config::{FilterConfig, PreparedTarget};
use crate::request::HeaderPlan;

/// Where an allowed request's Azure token comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureRoute {
    /// The target of the allow rule.
    pub target: PreparedTarget,
    /// The Azure token cache key ([`cache::azure_key`]).
    pub key: String,
    /// Its shared-data slot ([`cache::azure_slot`]).
    pub slot: String,
}

/// What the decision means for the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Denied by the policy: 403.
    Deny,
    /// Allowed, but the configuration has no prepared target for the rule (a bug: 500).
    NoTarget,
    /// Allowed: forward with an Azure token for this target.
    Azure(Box<AzureRoute>),
}

/// A usable Azure token, as the header changes that forward a request with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forwarding {
    /// The shared record's `use_until`: the token's expiry minus the margin.
    pub use_until: u64,
    /// The request header changes (the Azure token, the claim headers).
    pub plan: HeaderPlan,
}

/// One verified token's decision and what follows from it.
#[derive(Debug)]
pub struct Admission {
    /// The verified token.
    pub verified: Arc<VerifiedToken>,
    /// The policy decision.
    pub decision: Decision,
    /// What the decision means for the request.
    pub route: Route,
    /// The audit event's members (JSON, without the braces and without `time`).
    audit_members: String,
    /// The decision stands until this time (seconds): `iat` plus the smallest `max_token_age`
    /// of the policy, or forever when the policy has none.
    decided_until: u64,
    /// The worker's copy of the Azure token, so a repeat skips the shared-data read and parse.
    forwarding: RefCell<Option<Forwarding>>,
    /// The summary event's members that name the decision and the token (JSON, no braces).
    summary_members: String,
    /// The requests that reused the decision since the last summary.
    reuse: Cell<Reuse>,
}

/// Requests that reused a kept decision: how many, and the first and last request times
/// (seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reuse {
    /// How many requests.
    pub requests: u64,
    /// The first one's time.
    pub first: u64,
    /// The last one's time.
    pub last: u64,
}

/// The members of the full audit event that a reuse summary repeats, so a summary names the
/// decision and the job without being joined to the full event.
const SUMMARY_MEMBERS: [&str; 6] =
    ["decision", "rule", "token_sha256", "jti", "project_path", "job_id"];

impl Admission {
    /// Decides on `verified` at `now` and prepares everything its requests share.
    pub fn decide(config: &FilterConfig, verified: Arc<VerifiedToken>, now: u64) -> Self {
        let decision = config.policy.decide(&verified.claims, now);
        let route = match decision.target() {
            None => Route::Deny,
            Some(policy_target) => match config.target(policy_target) {
                None => Route::NoTarget,
                Some(target) => {
                    let key = cache::azure_key(target, &verified.claims);
                    let slot = cache::azure_slot(&key, config.azure_slots);
                    Route::Azure(Box::new(AzureRoute { target: target.clone(), key, slot }))
                }
            },
        };
        let (audit_members, summary_members) = audit_members(&decision, &verified, now);
        let decided_until = match (config.decision_age_bound, verified.claims.iat) {
            (Some(bound), Some(iat)) => iat.saturating_add(bound),
            _ => u64::MAX,
        };
        Self {
            verified,
            decision,
            route,
            audit_members,
            decided_until,
            forwarding: RefCell::new(None),
            summary_members,
            reuse: Cell::new(Reuse::default()),
        }
    }

    /// Counts one request at `now` that reused this decision.
    pub fn reused(&self, now: u64) {
        let mut reuse = self.reuse.get();
        if reuse.requests == 0 {
            reuse.first = now;
        }
        reuse.requests = reuse.requests.saturating_add(1);
        reuse.last = now;
        self.reuse.set(reuse);
    }

    /// The requests counted since the last summary.
    pub fn reuse(&self) -> Reuse {
        self.reuse.get()
    }

    /// The summary event of the requests that reused the decision since the last summary, at
    /// `now`, and the count restarts; `None` when there were none. One line of JSON:
    /// `{"time":…,"event":"decision_reused",<decision, rule, token_sha256, jti, project_path,
    /// job_id>,"requests":…,"first_request":…,"last_request":…}`.
    pub fn take_summary(&self, now: u64) -> Option<String> {
        let reuse = self.reuse.replace(Reuse::default());
        (reuse.requests > 0).then(|| {
            format!(
                "{{\"time\":{now},\"event\":\"decision_reused\",{},\"requests\":{},\"first_request\":{},\"last_request\":{}}}",
                self.summary_members, reuse.requests, reuse.first, reuse.last
            )
        })
    }

    /// True when the decision still stands at `now`.
    pub fn stands(&self, now: u64) -> bool {
        now <= self.decided_until
    }

    /// The audit event for a request at `now`: one line of JSON, the core's [`AuditEvent`] with
    /// this request's time. It holds the token's fingerprint, never the token.
    pub fn audit_line(&self, now: u64) -> String {
        if self.audit_members.is_empty() {
            format!("{{\"time\":{now}}}")
        } else {
            format!("{{\"time\":{now},{}}}", self.audit_members)
        }
    }

    /// The worker's copy of the Azure token's header changes, while still usable at `now`.
    pub fn forwarding(&self, now: u64) -> Option<Ref<'_, HeaderPlan>> {
        Ref::filter_map(self.forwarding.borrow(), |f| {
            f.as_ref().filter(|f| now < f.use_until).map(|f| &f.plan)
        })
        .ok()
    }

    /// Keeps a copy of a usable Azure token's header changes for the next requests.
    pub fn keep(&self, forwarding: Forwarding) {
        *self.forwarding.borrow_mut() = Some(forwarding);
    }
}

/// The core's audit event without `time`, with the fingerprint the verifier already computed
/// (hashing a 2 KiB token again costs more in V8 than all the rest of the event), and the
/// members a reuse summary repeats ([`SUMMARY_MEMBERS`]), both as JSON members without braces.
fn audit_members(decision: &Decision, verified: &VerifiedToken, now: u64) -> (String, String) {
    let event =
        AuditEvent::with_fingerprint(decision, &verified.claims, &verified.fingerprint, now);
    let Value::Object(mut members) = event.as_json().clone() else {
        return (String::new(), String::new());
    };
    members.remove("time");
    let summary: serde_json::Map<String, Value> = SUMMARY_MEMBERS
        .iter()
        .filter_map(|&name| Some((name.to_owned(), members.get(name)?.clone())))
        .collect();
    (without_braces(&Value::Object(members)), without_braces(&Value::Object(summary)))
}

/// A JSON object's members, without the braces.
fn without_braces(object: &Value) -> String {
    let json = object.to_string();
    json.get(1..json.len().saturating_sub(1)).unwrap_or_default().to_owned()
}

/// An admission for one request.
#[derive(Debug)]
pub struct Admitted {
    /// The decision and what follows from it.
    pub admission: Rc<Admission>,
    /// True when the decision was made for this request (its full audit event is due); false
    /// when the request reused a kept decision (it was counted on the admission).
    pub fresh: bool,
}

/// Admissions by token fingerprint, bounded like the verified-token cache (oldest evicted
/// first; a capacity of 0 keeps none).
#[derive(Debug, Default)]
pub struct Admissions {
    entries: HashMap<String, Rc<Admission>>,
    order: VecDeque<String>,
    capacity: usize,
    /// Evicted or forgotten admissions whose counted requests are not summarized yet.
    retired: Vec<Rc<Admission>>,
}

impl Admissions {
    /// An empty set holding at most `capacity` admissions.
    pub fn new(capacity: usize) -> Self {
        Self { entries: HashMap::new(), order: VecDeque::new(), capacity, retired: Vec::new() }
    }

    /// The admission of `verified` at `now`: the kept one while its decision stands (the
    /// request is counted on it, unless `audit.every_request`), else a new decision (kept for
    /// the next requests).
    pub fn admit(
        &mut self,
        config: &FilterConfig,
        verified: &Arc<VerifiedToken>,
        now: u64,
    ) -> Admitted {
        if let Some(kept) = self.entries.get(&verified.fingerprint) {
            if kept.stands(now) {
                // With every request audited in full, a count would repeat them.
                if !config.audit_every_request {
                    kept.reused(now);
                }
                return Admitted { admission: Rc::clone(kept), fresh: false };
            }
            self.remove(&verified.fingerprint);
        }
        let admission = Rc::new(Admission::decide(config, Arc::clone(verified), now));
        if self.capacity > 0 && admission.stands(now) {
            while self.entries.len() >= self.capacity {
                let Some(oldest) = self.order.pop_front() else { break };
                if let Some(evicted) = self.entries.remove(&oldest) {
                    self.retire(evicted);
                }
            }
            self.order.push_back(verified.fingerprint.clone());
            self.entries.insert(verified.fingerprint.clone(), Rc::clone(&admission));
        }
        Admitted { admission, fresh: true }
    }

    fn remove(&mut self, fingerprint: &str) {
        if let Some(removed) = self.entries.remove(fingerprint) {
            self.order.retain(|f| f != fingerprint);
            self.retire(removed);
        }
    }

    /// Keeps an admission leaving the set until its counted requests are summarized, so they
    /// stay accounted for.
    fn retire(&mut self, admission: Rc<Admission>) {
        if admission.reuse().requests > 0 {
            self.retired.push(admission);
        }
    }

    /// Forgets every admission (new keys: every token is verified and decided again); their
    /// summaries are kept for [`Self::summaries`].
    pub fn clear(&mut self) {
        for fingerprint in std::mem::take(&mut self.order) {
            if let Some(admission) = self.entries.remove(&fingerprint) {
                self.retire(admission);
            }
        }
        self.entries.clear();
    }

    /// The summaries at `now` of the retired admissions (nothing is allocated when there are
    /// none, as on almost every request).
    pub fn retired_summaries(&mut self, now: u64) -> Vec<String> {
        if self.retired.is_empty() {
            return Vec::new();
        }
        std::mem::take(&mut self.retired).iter().filter_map(|a| a.take_summary(now)).collect()
    }

    /// Every summary at `now`: the retired admissions', then each kept admission's with counted
    /// requests, oldest first (each count restarts).
    pub fn summaries(&mut self, now: u64) -> Vec<String> {
        let mut lines = self.retired_summaries(now);
        lines.extend(
            self.order
                .iter()
                .filter_map(|f| self.entries.get(f))
                .filter_map(|admission| admission.take_summary(now)),
        );
        lines
    }

    /// How many admissions are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when none is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests;
