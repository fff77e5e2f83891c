use serde_json::json;

use super::*;
use crate::testutil::{self, config_json, record, NOW};

const NOW_MS: u64 = NOW * 1000;

fn remote_worker(edit: impl FnOnce(&mut serde_json::Value)) -> Worker {
    Worker::new(Rc::new(testutil::parse(&config_json(edit))))
}

fn status(check: Check) -> u32 {
    match check {
        Check::Reject(reply) => reply.status,
        Check::Verified(_) => 200,
        Check::Wait => 0,
    }
}

#[test]
fn inline_jwks_verifies_at_once_and_never_fetches() {
    let mut worker = remote_worker(|c| {
        c["jwks"] = json!({"inline": testutil::jwks(&[&testutil::key()])});
    });
    assert_eq!(status(worker.check(&testutil::token(&testutil::key(), json!({})), NOW)), 200);
    assert!(!worker.wants_fetch(NOW_MS));
    // An unknown kid cannot be refetched: 401 at once.
    let rotated = testutil::token(&testutil::rotated(), json!({}));
    assert_eq!(status(worker.check(&rotated, NOW)), 401);
}

#[test]
fn first_requests_wait_for_the_first_fetch() {
    let mut worker = remote_worker(|_| {});
    let token = testutil::token(&testutil::key(), json!({}));
    assert_eq!(status(worker.check(&token, NOW)), 0);
    worker.park(7, &token, NOW_MS).expect("parked");
    assert!(worker.wants_fetch(NOW_MS));
    worker.fetch_started(NOW_MS);
    assert!(!worker.wants_fetch(NOW_MS + 100), "one fetch at a time");
    assert!(worker.take_waiters().is_empty(), "waiters stay parked while the fetch runs");
    worker.install(&record(&[&testutil::key()], NOW)).expect("installed");
    let waiters = worker.take_waiters();
    assert_eq!(waiters.iter().map(|w| w.context_id).collect::<Vec<_>>(), vec![7]);
    assert_eq!(status(worker.check(&waiters[0].token, NOW)), 200);
}

#[test]
fn a_failed_first_fetch_gives_503_until_the_retry_interval_passes() {
    let mut worker = remote_worker(|c| c["jwks"]["retry_interval"] = json!(5));
    let token = testutil::token(&testutil::key(), json!({}));
    worker.fetch_started(NOW_MS);
    worker.fetch_failed(NOW, "the issuer answered HTTP 503".to_owned());
    match worker.check(&token, NOW + 1) {
        Check::Reject(reply) => {
            assert_eq!(reply.status, 503);
            assert_eq!(reply.kind(), "jwks-unavailable");
            assert!(reply.headers.contains(&("retry-after".to_owned(), "4".to_owned())));
        }
        other => panic!("expected 503, got {other:?}"),
    }
    assert!(!worker.wants_fetch((NOW + 1) * 1000));
    assert_eq!(status(worker.check(&token, NOW + 5)), 0, "after the interval, wait for a retry");
    assert!(worker.wants_fetch((NOW + 5) * 1000));
}

#[test]
fn unknown_kid_refetches_at_most_once_per_interval() {
    let mut worker = remote_worker(|c| c["jwks"]["unknown_kid_interval"] = json!(60));
    worker.fetch_started(NOW_MS);
    worker.install(&record(&[&testutil::key()], NOW)).expect("installed");
    let rotated = testutil::token(&testutil::rotated(), json!({}));
    // Just fetched: no refetch for an unknown kid yet.
    assert_eq!(status(worker.check(&rotated, NOW + 10)), 401);
    assert!(!worker.wants_fetch((NOW + 10) * 1000));
    // After the interval: wait for a refetch, which brings the new key.
    assert_eq!(status(worker.check(&rotated, NOW + 61)), 0);
    assert!(worker.wants_fetch((NOW + 61) * 1000));
    worker.fetch_started((NOW + 61) * 1000);
    worker.install(&record(&[&testutil::rotated()], NOW + 61)).expect("installed");
    assert_eq!(status(worker.check(&rotated, NOW + 61)), 200);
    // The old key is gone, and so are the tokens verified with it.
    let old = testutil::token(&testutil::key(), json!({}));
    assert_eq!(status(worker.check(&old, NOW + 62)), 401);
}

#[test]
fn keys_are_refreshed_after_they_expire_while_still_in_use() {
    let mut worker = remote_worker(|_| {});
    worker.fetch_started(NOW_MS);
    worker.install(&record(&[&testutil::key()], NOW)).expect("installed");
    assert!(!worker.wants_fetch((NOW + 3599) * 1000));
    assert!(worker.wants_fetch((NOW + 3600) * 1000));
    let token = testutil::token(&testutil::key(), json!({"exp": NOW + 7200}));
    assert_eq!(status(worker.check(&token, NOW + 3600)), 200, "stale keys still verify");
}

#[test]
fn shared_records_are_adopted_only_when_newer() {
    let mut worker = remote_worker(|_| {});
    assert!(worker.is_newer(&record(&[&testutil::key()], 1)), "anything beats no keys");
    worker.install(&record(&[&testutil::key()], NOW)).expect("installed");
    assert!(!worker.is_newer(&record(&[&testutil::key()], NOW)));
    assert!(worker.is_newer(&record(&[&testutil::key()], NOW + 1)));
    assert!(worker
        .install(&JwksRecord { fetched_at: NOW + 2, expires_at: 0, jwks: "x".into() })
        .is_err());
}

#[test]
fn verified_tokens_are_cached_until_exp() {
    let mut worker =
        remote_worker(|c| c["jwks"] = json!({"inline": testutil::jwks(&[&testutil::key()])}));
    let token = testutil::token(&testutil::key(), json!({"exp": NOW + 100}));
    assert_eq!(status(worker.check(&token, NOW)), 200);
    assert_eq!(worker.verified_cached(), 1);
    assert_eq!(status(worker.check(&token, NOW + 50)), 200);
    // Past exp the cache does not answer; the verifier applies the leeway and then refuses.
    assert_eq!(status(worker.check(&token, NOW + 200)), 401);
}

#[test]
fn invalid_tokens_are_401_with_the_core_kind() {
    let mut worker =
        remote_worker(|c| c["jwks"] = json!({"inline": testutil::jwks(&[&testutil::key()])}));
    let cases = [
        (testutil::token(&testutil::key(), json!({"aud": "other"})), "audience-mismatch"),
        (
            testutil::token(&testutil::key(), json!({"iss": "https://evil.example"})),
            "issuer-mismatch",
        ),
        (testutil::token(&testutil::key(), json!({"exp": 1, "iat": 0, "nbf": 0})), "expired"),
        ("not-a-token".to_owned(), "not-compact"),
    ];
    for (token, kind) in cases {
        match worker.check(&token, NOW) {
            Check::Reject(reply) => {
                assert_eq!((reply.status, reply.kind()), (401, kind));
                assert!(!reply.body.contains(&token), "the token is never echoed");
            }
            other => panic!("{kind}: expected 401, got {other:?}"),
        }
    }
}

#[test]
fn decisions_come_with_their_audit_event() {
    let mut worker =
        remote_worker(|c| c["jwks"] = json!({"inline": testutil::jwks(&[&testutil::key()])}));
    for (overrides, allow) in [(json!({}), true), (json!({"ref": "feature/x"}), false)] {
        let token = testutil::token(&testutil::key(), overrides);
        let Check::Verified(verified) = worker.check(&token, NOW) else { panic!("verified") };
        let admission = worker.admit(&verified, NOW).admission;
        assert_eq!(admission.decision.is_allow(), allow);
        let audit: serde_json::Value =
            serde_json::from_str(&admission.audit_line(NOW)).expect("audit JSON");
        assert_eq!(audit["decision"], if allow { "allow" } else { "deny" });
        assert!(!audit.to_string().contains(&token));
    }
}

#[test]
fn parking_is_bounded_in_count_and_time() {
    let mut worker = remote_worker(|c| {
        c["max_waiting_requests"] = json!(2);
        c["jwks"]["timeout_ms"] = json!(1000);
    });
    worker.park(1, "a", NOW_MS).expect("parked");
    worker.park(2, "b", NOW_MS + 10).expect("parked");
    assert_eq!(worker.park(3, "c", NOW_MS).map_err(|r| r.status), Err(503));
    worker.unpark(2);
    assert_eq!(worker.waiting(), 1);
    let limit = worker.config().max_wait_ms();
    assert!(worker.expired_waiters(NOW_MS + limit - 1).is_empty());
    assert_eq!(worker.expired_waiters(NOW_MS + limit).len(), 1);
    assert_eq!(worker.waiting(), 0);
}

#[test]
fn a_lost_fetch_is_retried_after_its_timeout() {
    let mut worker = remote_worker(|c| c["jwks"]["timeout_ms"] = json!(1000));
    worker.fetch_started(NOW_MS);
    assert!(!worker.wants_fetch(NOW_MS + 5999));
    assert!(worker.wants_fetch(NOW_MS + 6000));
}

/// A native backend with a fixed answer, counting the checks it is asked for.
struct FixedBackend {
    answer: gitlab_azure_oidc::offload::Offloaded,
    asked: std::sync::atomic::AtomicUsize,
}

impl gitlab_azure_oidc::offload::SignatureBackend for FixedBackend {
    fn verify(
        &self,
        _: &gitlab_azure_oidc::offload::SignatureCheck<'_>,
    ) -> gitlab_azure_oidc::offload::Offloaded {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.answer
    }
}

fn backend(answer: gitlab_azure_oidc::offload::Offloaded) -> Arc<FixedBackend> {
    Arc::new(FixedBackend { answer, asked: std::sync::atomic::AtomicUsize::new(0) })
}

fn asked(backend: &FixedBackend) -> usize {
    backend.asked.load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn the_signature_backend_checks_for_current_and_later_keys() {
    use gitlab_azure_oidc::offload::Offloaded;
    let mut worker = remote_worker(|_| {});
    let refusing = backend(Offloaded::Invalid);
    worker.set_signature_backend(Some(refusing.clone()));
    worker.install(&record(&[&testutil::key()], NOW)).expect("installs");
    // The backend's word is final: a token ring would accept is refused when it says invalid.
    let token = testutil::token(&testutil::key(), json!({}));
    assert_eq!(status(worker.check(&token, NOW)), 401);
    assert_eq!(asked(&refusing), 1);

    let unsupported = backend(Offloaded::Unsupported);
    worker.set_signature_backend(Some(unsupported.clone()));
    assert_eq!(status(worker.check(&token, NOW)), 200, "ring checks what it does not");
    assert_eq!(asked(&unsupported), 1);
    assert_eq!(status(worker.check(&token, NOW)), 200);
    assert_eq!(asked(&unsupported), 1, "a cached token is not checked again");
}

#[test]
fn a_key_and_alg_mismatch_is_refused_before_the_backend_is_asked() {
    use gitlab_azure_oidc::offload::Offloaded;
    let mut jwk = testutil::key().jwk();
    jwk["alg"] = json!("RS384");
    let jwks = json!({ "keys": [jwk] }).to_string();
    let mut worker = remote_worker(|c| c["jwks"] = json!({ "inline": jwks }));
    let accepting = backend(Offloaded::Valid);
    worker.set_signature_backend(Some(accepting.clone()));
    let token = testutil::token(&testutil::key(), json!({}));
    assert_eq!(status(worker.check(&token, NOW)), 401);
    assert_eq!(asked(&accepting), 0);
}
