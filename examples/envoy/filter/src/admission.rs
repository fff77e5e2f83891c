//! What every request carrying the same verified token shares: the policy decision, its audit
//! event (all but the time), the Azure cache key, and the worker's copy of the Azure token.
//!
//! A job calls many times with one token. The decision is a pure function of the token's claims,
//! the policy and (only for `max_token_age`) the time, and the claims and the policy are fixed for
//! the life of the token's entry. Deciding, building the audit event (JSON) and hashing the Azure
//! cache key once per token, instead of once per request, is what makes the warm path cheap in V8;
//! the audit event is still logged for every request, with that request's time.

use std::cell::{Ref, RefCell};
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
}

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
        let audit_members = audit_members(&decision, &verified, now);
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
        }
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
/// (hashing a 2 KiB token again costs more in V8 than all the rest of the event).
fn audit_members(decision: &Decision, verified: &VerifiedToken, now: u64) -> String {
    let event =
        AuditEvent::with_fingerprint(decision, &verified.claims, &verified.fingerprint, now);
    let Value::Object(mut members) = event.as_json().clone() else {
        return String::new();
    };
    members.remove("time");
    let json = Value::Object(members).to_string();
    json.get(1..json.len().saturating_sub(1)).unwrap_or_default().to_owned()
}

/// Admissions by token fingerprint, bounded like the verified-token cache (oldest evicted
/// first; a capacity of 0 keeps none).
#[derive(Debug, Default)]
pub struct Admissions {
    entries: HashMap<String, Rc<Admission>>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Admissions {
    /// An empty set holding at most `capacity` admissions.
    pub fn new(capacity: usize) -> Self {
        Self { entries: HashMap::new(), order: VecDeque::new(), capacity }
    }

    /// The admission of `verified` at `now`: the kept one while its decision stands, else a new
    /// decision (kept for the next requests).
    pub fn admit(
        &mut self,
        config: &FilterConfig,
        verified: &Arc<VerifiedToken>,
        now: u64,
    ) -> Rc<Admission> {
        if let Some(kept) = self.entries.get(&verified.fingerprint) {
            if kept.stands(now) {
                return Rc::clone(kept);
            }
            self.remove(&verified.fingerprint);
        }
        let admission = Rc::new(Admission::decide(config, Arc::clone(verified), now));
        if self.capacity > 0 && admission.stands(now) {
            while self.entries.len() >= self.capacity {
                let Some(oldest) = self.order.pop_front() else { break };
                self.entries.remove(&oldest);
            }
            self.order.push_back(verified.fingerprint.clone());
            self.entries.insert(verified.fingerprint.clone(), Rc::clone(&admission));
        }
        admission
    }

    fn remove(&mut self, fingerprint: &str) {
        if self.entries.remove(fingerprint).is_some() {
            self.order.retain(|f| f != fingerprint);
        }
    }

    /// Forgets every admission (new keys: every token is verified and decided again).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
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
