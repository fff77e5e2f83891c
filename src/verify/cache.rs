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

/// FxHash-style word-at-a-time hashing, for the slot index.
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

impl std::fmt::Debug for WordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WordHasher")
    }
}

/// The slot of a token: its length and its last 64 bytes. The tail of a compact JWS is its
/// signature, which differs between any two tokens a cache can hold, so hashing the other
/// 2 KiB would only cost time; a collision still costs nothing but a comparison, because
/// every lookup compares the whole token.
fn slot(token: &str) -> u64 {
    let bytes = token.as_bytes();
    let mut hasher = WordHasher(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
    hasher.write(&bytes[bytes.len().saturating_sub(64)..]);
    hasher.finish()
}

/// Whole-token equality eight bytes at a time: in WebAssembly `memcmp` is a byte loop, and a
/// GitLab token is about 2 KiB.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    let words_equal = (&mut x).zip(&mut y).all(|(p, q)| {
        let (mut u, mut v) = ([0u8; 8], [0u8; 8]);
        u.copy_from_slice(p);
        v.copy_from_slice(q);
        u64::from_ne_bytes(u) == u64::from_ne_bytes(v)
    });
    words_equal && x.remainder() == y.remainder()
}

/// One cached token: held once, shared by its slot and the eviction order.
#[derive(Debug)]
struct Entry {
    token: Arc<str>,
    verified: Arc<VerifiedToken>,
}

/// Verified tokens by exact token text, bounded, oldest evicted first.
#[derive(Debug, Default)]
pub(crate) struct VerifiedCache {
    /// Entries by [`slot`]; a slot holds more than one entry only on a collision.
    slots: HashMap<u64, Vec<Entry>, BuildHasherDefault<WordHasher>>,
    /// Every entry once, oldest first: also the count.
    order: VecDeque<(u64, Arc<str>)>,
    capacity: usize,
}

impl VerifiedCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { slots: HashMap::default(), order: VecDeque::new(), capacity }
    }

    pub(crate) fn get(&self, token: &str) -> Option<&Arc<VerifiedToken>> {
        self.find(slot(token), token).map(|e| &e.verified)
    }

    fn find(&self, key: u64, token: &str) -> Option<&Entry> {
        self.slots.get(&key)?.iter().find(|e| same(&e.token, token))
    }

    /// Remembers a verified token, evicting the oldest to stay bounded. Constant time: an
    /// expired entry is dropped when a lookup finds it, or when its turn to be evicted comes.
    pub(crate) fn insert(&mut self, token: &str, verified: Arc<VerifiedToken>) {
        if self.capacity == 0 {
            return;
        }
        let key = slot(token);
        if self.find(key, token).is_some() {
            return;
        }
        while self.order.len() >= self.capacity {
            match self.order.pop_front() {
                Some((key, oldest)) => {
                    self.remove_from_slot(key, &oldest);
                }
                None => break,
            }
        }
        let token: Arc<str> = Arc::from(token);
        self.order.push_back((key, Arc::clone(&token)));
        self.slots.entry(key).or_default().push(Entry { token, verified });
    }

    pub(crate) fn remove(&mut self, token: &str) {
        let key = slot(token);
        if self.remove_from_slot(key, token) {
            self.order.retain(|(k, t)| !(*k == key && same(t, token)));
        }
    }

    fn remove_from_slot(&mut self, key: u64, token: &str) -> bool {
        let Some(entries) = self.slots.get_mut(&key) else { return false };
        let Some(at) = entries.iter().position(|e| same(&e.token, token)) else { return false };
        entries.swap_remove(at);
        if entries.is_empty() {
            self.slots.remove(&key);
        }
        true
    }

    /// Forgets the tokens `keep` says no to, oldest order kept.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&VerifiedToken) -> bool) {
        self.slots.retain(|_, entries| {
            entries.retain(|e| keep(&e.verified));
            !entries.is_empty()
        });
        let slots = &self.slots;
        self.order.retain(|(key, token)| {
            slots.get(key).is_some_and(|entries| entries.iter().any(|e| same(&e.token, token)))
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_is_exact_at_every_length_and_position() {
        let base: String = (0..100).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        for len in 0..base.len() {
            let a = &base[..len];
            assert!(same(a, a));
            assert!(!same(a, &base[..len + 1]));
            for at in 0..len {
                let mut b = a.as_bytes().to_vec();
                b[at] = b'#';
                assert!(!same(a, std::str::from_utf8(&b).unwrap()), "len {len} at {at}");
            }
        }
    }

    #[test]
    fn colliding_slots_still_answer_by_the_whole_token() {
        // Same length and same last 64 bytes: the same slot, different tokens.
        let tail = "x".repeat(64);
        let (a, b) = (format!("A{tail}"), format!("B{tail}"));
        assert_eq!(slot(&a), slot(&b));
        let mut cache = VerifiedCache::new(4);
        let verified = |fingerprint: &str| {
            Arc::new(VerifiedToken {
                header: crate::Header {
                    alg: crate::Algorithm::Rs256,
                    kid: None,
                    typ: None,
                    raw: serde_json::Map::new(),
                },
                claims: crate::Claims::test_job("https://gitlab.example.com", 0, |_| {}),
                payload_json: String::new(),
                fingerprint: fingerprint.to_owned(),
            })
        };
        cache.insert(&a, verified("a"));
        assert!(cache.get(&b).is_none());
        cache.insert(&b, verified("b"));
        assert_eq!(cache.get(&a).unwrap().fingerprint, "a");
        assert_eq!(cache.get(&b).unwrap().fingerprint, "b");
        cache.remove(&a);
        assert!(cache.get(&a).is_none());
        assert_eq!(cache.get(&b).unwrap().fingerprint, "b");
        assert_eq!(cache.len(), 1);
        for i in 0..10 {
            cache.insert(&format!("{i}{tail}"), verified("n"));
        }
        assert_eq!(cache.len(), 4);
        assert!(cache.get(&b).is_none(), "the oldest was evicted");
    }
}
