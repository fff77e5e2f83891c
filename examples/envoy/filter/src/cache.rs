//! Cache keys, records and expiry. Records shared across Envoy workers are bytes (proxy-wasm
//! shared data), so each worker re-parses what it reads.

use gitlab_azure_oidc::token_fingerprint;
use serde::{Deserialize, Serialize};

use crate::config::RemoteJwks;

/// The shared-data key of the JWKS record fetched from `remote`'s cluster, authority and path.
/// Shared data belongs to the VM, and one VM serves every plugin configuration with its
/// `vm_id`: two listeners with other issuers, or the old and the new configuration while a
/// policy changes, so a worker adopts only keys fetched from where its own configuration says.
pub fn jwks_key(remote: &RemoteJwks) -> String {
    let (cluster, authority, path) = remote.location();
    let location = format!(
        "{}:{cluster};{}:{authority};{}:{path}",
        cluster.len(),
        authority.len(),
        path.len()
    );
    format!("gitlab-azure-oidc.jwks.{}", &token_fingerprint(&location)[..16])
}

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

/// How long a fetched JWKS may be used: the answer's `max-age` (or the default) within the
/// bounds, and never longer than `max_lifetime`, whatever the issuer says, so a withdrawn key
/// stops verifying in bounded time.
pub fn jwks_lifetime(remote: &RemoteJwks, cache_control: Option<&str>) -> u64 {
    cache_control
        .and_then(cache_control_max_age)
        .unwrap_or(remote.default_max_age)
        .clamp(remote.min_max_age, remote.max_max_age)
        .min(remote.max_lifetime)
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
    /// When it expires (Unix seconds): token vending tells the job (`expires_on`).
    #[serde(default)]
    pub expires_at: u64,
    /// Its type (`Bearer`), as token vending tells the job (`tokenType`).
    #[serde(default = "bearer")]
    pub token_type: String,
}

fn bearer() -> String {
    "Bearer".to_owned()
}

impl AzureRecord {
    /// The record as shared-data bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The record, when `bytes` is the record for `key` and it is still usable at `now`.
    pub fn lookup(bytes: &[u8], key: &str, now: u64) -> Option<Self> {
        let record: Self = serde_json::from_slice(bytes).ok()?;
        (record.key == key && now < record.use_until).then_some(record)
    }
}

/// The shared-data slot of an Azure token cache key (the core's `Decided::azure_key`, hex): a
/// fixed number of slots bounds the memory Azure tokens use.
pub fn azure_slot(key: &str, slots: u32) -> String {
    let n = u32::from_str_radix(key.get(..8).unwrap_or("0"), 16).unwrap_or(0) % slots.max(1);
    format!("gitlab-azure-oidc.azure.{n}")
}

/// The shared-data key of the Entra lease of an Azure token cache key's slot: the worker that
/// holds it fetches the token, the others' requests for it wait for the shared token.
pub fn lease_key(key: &str, slots: u32) -> String {
    azure_slot(key, slots).replacen(".azure.", ".azure.lease.", 1)
}

/// A worker's claim to fetch one Azure token for every worker of the VM (written with
/// compare-and-swap, so one worker wins), or how that fetch failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureLease {
    /// The Azure token cache key it is for.
    pub key: String,
    /// Which claim: the requests waiting on it know whether a later failure is theirs.
    pub id: String,
    /// Until when it stands (milliseconds): the fetch's timeouts and some slack; after that it
    /// is free again, whatever became of its holder.
    pub until_ms: u64,
    /// The replies for the waiting requests when the fetch failed (the proxy's and the vending
    /// route's); `None` while it is in flight.
    #[serde(default)]
    pub failed: Option<(crate::reply::Reply, crate::reply::Reply)>,
}

impl AzureLease {
    /// The record as shared-data bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a lease; `None` for anything that is not one (an empty placeholder).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// True while a fetch for `key` is in flight under it at `now_ms`.
    pub fn in_flight(&self, key: &str, now_ms: u64) -> bool {
        self.key == key && now_ms < self.until_ms && self.failed.is_none()
    }
}

/// When a token answer stops being reused: its expiry minus the margin; `None` when that leaves
/// nothing (the token is used once and not cached).
pub fn azure_use_until(expires_at: u64, margin: u64, now: u64) -> Option<u64> {
    let until = expires_at.saturating_sub(margin);
    (until > now).then_some(until)
}

#[cfg(test)]
mod tests;
