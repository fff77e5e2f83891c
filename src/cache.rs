//! A bounded cache of verified tokens, so a job that calls many times pays for the signature
//! check once.
//!
//! Keyed by the exact token (a fast hash to find the slot, then a full string comparison, so a
//! collision can never return another token's claims). Only tokens whose signature verified are
//! inserted, so an attacker cannot fill it with chosen keys. Entries expire at the token's `exp`
//! plus leeway; the time claims are checked again on every hit, since `now` moves.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::VerifiedToken;

/// FxHash-style word-at-a-time hashing: a cache lookup must cost far less than a verification.
#[derive(Default)]
pub(crate) struct WordHasher(u64);

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*byte)).wrapping_mul(K);
        }
    }
}

/// Verified tokens by exact token text, bounded, oldest evicted first. The token text is held
/// once, shared by the map and the eviction order: a GitLab token is about 1 KiB, so a second
/// copy would cost a quarter of an entry.
#[derive(Debug, Default)]
pub(crate) struct VerifiedCache {
    entries: HashMap<Arc<str>, Arc<VerifiedToken>, BuildHasherDefault<WordHasher>>,
    order: VecDeque<Arc<str>>,
    capacity: usize,
}

impl std::fmt::Debug for WordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WordHasher")
    }
}

impl VerifiedCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { entries: HashMap::default(), order: VecDeque::new(), capacity }
    }

    pub(crate) fn get(&self, token: &str) -> Option<&Arc<VerifiedToken>> {
        self.entries.get(token)
    }

    /// Remembers a verified token, evicting the oldest to stay bounded. Constant time: an
    /// expired entry is dropped when a lookup finds it, or when its turn to be evicted comes.
    pub(crate) fn insert(&mut self, token: &str, verified: Arc<VerifiedToken>) {
        if self.capacity == 0 || self.entries.contains_key(token) {
            return;
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
        let token: Arc<str> = Arc::from(token);
        self.order.push_back(Arc::clone(&token));
        self.entries.insert(token, verified);
    }

    pub(crate) fn remove(&mut self, token: &str) {
        if self.entries.remove(token).is_some() {
            self.order.retain(|t| &**t != token);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
