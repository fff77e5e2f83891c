//! The decision cache: one decision per verified token while it stands, and a count of the
//! requests that reused it, so the audit log accounts for every request without repeating a
//! 1 KiB event per request.
//!
//! A job calls many times with one token. A decision is a pure function of the token's claims,
//! the policy and (only for `max_token_age`) the time, and the claims and the policy are fixed
//! for the life of an entry: deciding, building the audit event and hashing the Azure cache key
//! once per token, instead of once per request, is what keeps the warm path cheap.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::Decided;

/// Requests that reused a kept decision: how many, and the first and last request times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reuse {
    pub(crate) requests: u64,
    pub(crate) first: u64,
    pub(crate) last: u64,
}

impl Reuse {
    fn count(&mut self, now: u64) {
        if self.requests == 0 {
            self.first = now;
        }
        self.requests = self.requests.saturating_add(1);
        self.last = now;
    }
}

#[derive(Debug)]
struct Entry {
    decided: Arc<Decided>,
    reuse: Reuse,
}

/// Decisions by token fingerprint, bounded (oldest evicted first; a capacity of 0 keeps none).
#[derive(Debug, Default)]
pub(crate) struct Decisions {
    entries: HashMap<String, Entry>,
    order: VecDeque<String>,
    capacity: usize,
    /// Decisions that left the set with counted requests not yet summarized.
    retired: Vec<Entry>,
}

impl Decisions {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { capacity, ..Self::default() }
    }

    /// The kept decision for `fingerprint` while it stands at `now`; the request is counted on it
    /// when `count` is set. A decision that no longer stands is retired.
    pub(crate) fn reuse(
        &mut self,
        fingerprint: &str,
        now: u64,
        count: bool,
    ) -> Option<Arc<Decided>> {
        let entry = self.entries.get_mut(fingerprint)?;
        if entry.decided.stands(now) {
            if count {
                entry.reuse.count(now);
            }
            return Some(Arc::clone(&entry.decided));
        }
        self.remove(fingerprint);
        None
    }

    /// Keeps a fresh decision (when it can stand at all), evicting the oldest beyond capacity.
    pub(crate) fn keep(&mut self, fingerprint: &str, decided: &Arc<Decided>, now: u64) {
        if self.capacity == 0 || !decided.stands(now) {
            return;
        }
        self.remove(fingerprint);
        while self.entries.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some(evicted) = self.entries.remove(&oldest) {
                self.retire(evicted);
            }
        }
        self.order.push_back(fingerprint.to_owned());
        self.entries.insert(
            fingerprint.to_owned(),
            Entry { decided: Arc::clone(decided), reuse: Reuse::default() },
        );
    }

    fn remove(&mut self, fingerprint: &str) {
        if let Some(removed) = self.entries.remove(fingerprint) {
            self.order.retain(|f| f != fingerprint);
            self.retire(removed);
        }
    }

    fn retire(&mut self, entry: Entry) {
        if entry.reuse.requests > 0 {
            self.retired.push(entry);
        }
    }

    /// Forgets every decision (new keys or a new policy); their counts stay for the summaries.
    pub(crate) fn clear(&mut self) {
        for fingerprint in std::mem::take(&mut self.order) {
            if let Some(entry) = self.entries.remove(&fingerprint) {
                self.retire(entry);
            }
        }
        self.entries.clear();
    }

    /// Forgets the decisions `keep` says no to (a key that changed); their counts stay.
    #[allow(dead_code)] // for `Gate::install_jwks` keeping what unchanged keys still vouch for
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Decided) -> bool) {
        let gone: Vec<String> = self
            .order
            .iter()
            .filter(|f| self.entries.get(*f).is_some_and(|e| !keep(&e.decided)))
            .cloned()
            .collect();
        for fingerprint in gone {
            self.remove(&fingerprint);
        }
    }

    /// The summaries at `now` of decisions that left the set; nothing is allocated when there
    /// are none, as on almost every request.
    pub(crate) fn retired_summaries(&mut self, now: u64) -> Vec<String> {
        if self.retired.is_empty() {
            return Vec::new();
        }
        std::mem::take(&mut self.retired)
            .iter()
            .filter_map(|e| e.decided.summary_line(&e.reuse, now))
            .collect()
    }

    /// Every summary at `now`: the retired decisions', then each kept decision's with counted
    /// requests, oldest first; each count restarts.
    pub(crate) fn summaries(&mut self, now: u64) -> Vec<String> {
        let mut lines = self.retired_summaries(now);
        for fingerprint in &self.order {
            if let Some(entry) = self.entries.get_mut(fingerprint) {
                if let Some(line) = entry.decided.summary_line(&entry.reuse, now) {
                    lines.push(line);
                }
                entry.reuse = Reuse::default();
            }
        }
        lines
    }

    /// How many decisions are kept.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
