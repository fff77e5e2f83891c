//! Cache keys, records and expiry. Records shared across Envoy workers are bytes (proxy-wasm
//! shared data), so each worker re-parses what it reads.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use gitlab_azure_oidc::{token_fingerprint, Claims, VerifiedToken};
use serde::{Deserialize, Serialize};

use crate::config::{PreparedTarget, RemoteJwks};

/// The shared-data key of the JWKS record.
pub const JWKS_KEY: &str = "gitlab-azure-oidc.jwks";

/// A fetched JWKS as shared between workers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwksRecord {
    /// When it was fetched, seconds since the epoch.
    pub fetched_at: u64,
    /// When it should be refetched.
    pub expires_at: u64,
    /// The JWKS document.
    pub jwks: String,
}

impl JwksRecord {
    /// The record as shared-data bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a record; `None` for anything that is not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// `max-age` of a `Cache-Control` header, if any (`no-store` and `no-cache` count as 0).
pub fn cache_control_max_age(value: &str) -> Option<u64> {
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        let (name, arg) = match directive.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
            None => (directive, None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(0);
        }
        if name.eq_ignore_ascii_case("max-age") {
            max_age = arg.and_then(|a| a.parse::<u64>().ok());
        }
    }
    max_age
}

/// How long to keep a fetched JWKS: the answer's `max-age` (or the default) within the bounds.
pub fn jwks_lifetime(remote: &RemoteJwks, cache_control: Option<&str>) -> u64 {
    cache_control
        .and_then(cache_control_max_age)
        .unwrap_or(remote.default_max_age)
        .clamp(remote.min_max_age, remote.max_max_age)
}

/// An Azure token as cached in a shared-data slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureRecord {
    /// The full cache key, to tell apart keys that share a slot.
    pub key: String,
    /// When to stop using it: the token's expiry minus the margin.
    pub use_until: u64,
    /// The access token.
    pub token: String,
}

impl AzureRecord {
    /// The record as shared-data bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The token, when `bytes` is the record for `key` and it is still usable at `now`.
    pub fn lookup(bytes: &[u8], key: &str, now: u64) -> Option<String> {
        let record: Self = serde_json::from_slice(bytes).ok()?;
        (record.key == key && now < record.use_until).then_some(record.token)
    }
}

/// The Azure token cache key: the target (tenant, client, scopes, token endpoint) and the job's
/// identity (issuer, subject, project and job ids), hashed.
pub fn azure_key(target: &PreparedTarget, claims: &Claims) -> String {
    let raw = |name: &str| claims.raw.get(name).map(|v| v.to_string()).unwrap_or_default();
    let parts = [
        target.entra.token_endpoint(),
        target.entra.client_id().to_owned(),
        target.entra.scopes().join(" "),
        claims.iss.clone(),
        claims.sub.clone().unwrap_or_default(),
        raw("project_id"),
        raw("job_id"),
    ];
    // Length-prefixed, so no two different tuples give the same input.
    let input: String = parts.iter().map(|p| format!("{}:{p};", p.len())).collect();
    token_fingerprint(&input)
}

/// The shared-data slot of a key: a fixed number of slots bounds the memory Azure tokens use.
pub fn azure_slot(key: &str, slots: u32) -> String {
    let n = u32::from_str_radix(key.get(..8).unwrap_or("0"), 16).unwrap_or(0) % slots.max(1);
    format!("gitlab-azure-oidc.azure.{n}")
}

/// When a token answer stops being reused: its expiry minus the margin; `None` when that leaves
/// nothing (the token is used once and not cached).
pub fn azure_use_until(expires_at: u64, margin: u64, now: u64) -> Option<u64> {
    let until = expires_at.saturating_sub(margin);
    (until > now).then_some(until)
}

/// Verified tokens of one worker, keyed by the exact token, each valid until its `exp`. Bounded:
/// when full, expired entries go first, then the oldest.
#[derive(Debug, Default)]
pub struct VerifiedCache {
    capacity: usize,
    entries: HashMap<String, Rc<VerifiedToken>>,
    order: VecDeque<String>,
}

impl VerifiedCache {
    /// A cache of at most `capacity` tokens; 0 turns it off.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, entries: HashMap::new(), order: VecDeque::new() }
    }

    /// The verified token, if cached and not expired at `now`.
    pub fn get(&self, token: &str, now: u64) -> Option<Rc<VerifiedToken>> {
        self.entries.get(token).filter(|v| now < v.claims.exp).cloned()
    }

    /// Caches a token that just verified.
    pub fn insert(&mut self, token: &str, verified: Rc<VerifiedToken>, now: u64) {
        if self.capacity == 0 || self.entries.contains_key(token) {
            return;
        }
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, v| now < v.claims.exp);
            let entries = &self.entries;
            self.order.retain(|t| entries.contains_key(t));
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
        self.order.push_back(token.to_owned());
        self.entries.insert(token.to_owned(), verified);
    }

    /// Forgets everything, e.g. when the keys change.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    /// The number of cached tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests;
