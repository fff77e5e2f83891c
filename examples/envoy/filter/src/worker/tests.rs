use serde_json::json;

use super::*;
use crate::request::HeaderPlan;
use crate::testutil::{self, config_json, record, NOW};

const NOW_MS: u64 = NOW * 1000;

fn remote_worker(edit: impl FnOnce(&mut serde_json::Value)) -> Worker {
    Worker::new(Rc::new(testutil::parse(&config_json(edit))))
}

fn status(check: Check) -> u32 {
    match check {
        Check::Refuse(failure) => u32::from(failure.http_status()),
        Check::Unavailable { .. } => 503,
        Check::Admitted(_) => 200,
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
    assert!(worker.park(7, &token, &Purpose::Forward, NOW_MS));
    assert!(worker.wants_fetch(NOW_MS));
    worker.fetch_started(NOW_MS);
    assert!(!worker.wants_fetch(NOW_MS + 100), "one fetch at a time");
    assert!(worker.take_waiters().is_empty(), "waiters stay parked while the fetch runs");
    worker.install(&record(&[&testutil::key()], NOW), NOW).expect("installed");
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
        Check::Unavailable { detail, retry_after } => {
            assert_eq!(detail, "the issuer answered HTTP 503");
            assert_eq!(retry_after, 4);
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
    worker.install(&record(&[&testutil::key()], NOW), NOW).expect("installed");
    let rotated = testutil::token(&testutil::rotated(), json!({}));
    // Just fetched: no refetch for an unknown kid yet.
    assert_eq!(status(worker.check(&rotated, NOW + 10)), 401);
    assert!(!worker.wants_fetch((NOW + 10) * 1000));
    // After the interval: wait for a refetch, which brings the new key.
    assert_eq!(status(worker.check(&rotated, NOW + 61)), 0);
    assert!(worker.wants_fetch((NOW + 61) * 1000));
    worker.fetch_started((NOW + 61) * 1000);
    worker.install(&record(&[&testutil::rotated()], NOW + 61), NOW + 61).expect("installed");
    assert_eq!(status(worker.check(&rotated, NOW + 61)), 200);
    // The old key is gone, and so are the tokens verified with it.
    let old = testutil::token(&testutil::key(), json!({}));
    assert_eq!(status(worker.check(&old, NOW + 62)), 401);
}

#[test]
fn keys_are_refreshed_in_the_background_while_in_use_and_lapse_at_the_end_of_their_lifetime() {
    let mut worker = remote_worker(|_| {});
    worker.fetch_started(NOW_MS);
    worker.install(&record(&[&testutil::key()], NOW), NOW).expect("installed"); // An hour.
    assert!(!worker.wants_fetch((NOW + 2699) * 1000));
    assert!(worker.wants_fetch((NOW + 2700) * 1000), "at three quarters of the hour");
    let token = testutil::token(&testutil::key(), json!({"exp": NOW + 7200}));
    assert_eq!(status(worker.check(&token, NOW + 3599)), 200, "still in use until the end");
    assert_eq!(status(worker.check(&token, NOW + 3600)), 0, "lapsed: wait for the fetch");
    worker.fetch_started((NOW + 3600) * 1000);
    worker.fetch_failed(NOW + 3600, "the issuer answered HTTP 503".to_owned());
    assert_eq!(status(worker.check(&token, NOW + 3601)), 503);
}

#[test]
fn the_jwks_lifetime_is_bounded_by_max_lifetime_whatever_max_age_says() {
    let config = testutil::parse(&config_json(|_| {}));
    let JwksSource::Remote(remote) = &config.jwks else { panic!("remote") };
    assert_eq!(remote.max_lifetime, 3600);
    assert_eq!(crate::cache::jwks_lifetime(remote, Some("max-age=86400")), 3600);
    assert_eq!(crate::cache::jwks_lifetime(remote, Some("max-age=600")), 600);
}

#[test]
fn shared_records_are_adopted_only_when_newer() {
    let mut worker = remote_worker(|_| {});
    assert!(worker.is_newer(&record(&[&testutil::key()], 1)), "anything beats no keys");
    worker.install(&record(&[&testutil::key()], NOW), NOW).expect("installed");
    assert!(!worker.is_newer(&record(&[&testutil::key()], NOW)));
    assert!(worker.is_newer(&record(&[&testutil::key()], NOW + 1)));
    assert!(worker
        .install(&JwksRecord { fetched_at: NOW + 2, expires_at: 0, jwks: "x".into() }, NOW)
        .is_err());
}

#[test]
fn verified_tokens_are_cached_until_exp() {
    let mut worker =
        remote_worker(|c| c["jwks"] = json!({"inline": testutil::jwks(&[&testutil::key()])}));
    let token = testutil::token(&testutil::key(), json!({"exp": NOW + 100}));
    assert_eq!(status(worker.check(&token, NOW)), 200);
    assert_eq!(worker.gate().decisions_kept(), 1);
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
            Check::Refuse(failure) => {
                assert_eq!((failure.http_status(), failure.kind()), (401, kind));
                assert!(!failure.to_string().contains(&token), "the token is never echoed");
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
        assert_eq!(status(worker.check(&token, NOW)), if allow { 200 } else { 403 });
        let events = worker.gate_mut().take_audit();
        assert_eq!(events.len(), 1, "{events:?}");
        let audit: serde_json::Value = serde_json::from_str(&events[0]).expect("audit JSON");
        assert_eq!(audit["decision"], if allow { "allow" } else { "deny" });
        assert!(!events[0].contains(&token));
    }
}

#[test]
fn parking_is_bounded_in_count_and_time() {
    let mut worker = remote_worker(|c| {
        c["max_waiting_requests"] = json!(2);
        c["jwks"]["timeout_ms"] = json!(1000);
    });
    assert!(worker.park(1, "a", &Purpose::Forward, NOW_MS));
    assert!(worker.park(2, "b", &Purpose::Forward, NOW_MS + 10));
    assert!(!worker.park(3, "c", &Purpose::Forward, NOW_MS), "beyond max_waiting_requests: 503");
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

fn worker_with_backend(
    backend: Arc<FixedBackend>,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Worker {
    let config = config_json(edit).to_string();
    let config = crate::config::parse_with_backend(config.as_bytes(), &|_| None, || Some(backend))
        .expect("the configuration parses");
    Worker::new(Rc::new(config))
}

#[test]
fn the_signature_backend_checks_for_current_and_later_keys() {
    use gitlab_azure_oidc::offload::Offloaded;
    let refusing = backend(Offloaded::Invalid);
    let mut worker = worker_with_backend(refusing.clone(), |_| {});
    worker.install(&record(&[&testutil::key()], NOW), NOW).expect("installs");
    // The backend's word is final: a token ring would accept is refused when it says invalid.
    let token = testutil::token(&testutil::key(), json!({}));
    assert_eq!(status(worker.check(&token, NOW)), 401);
    assert_eq!(asked(&refusing), 1);

    let unsupported = backend(Offloaded::Unsupported);
    let mut worker = worker_with_backend(unsupported.clone(), |_| {});
    worker.install(&record(&[&testutil::key()], NOW), NOW).expect("installs");
    assert_eq!(status(worker.check(&token, NOW)), 200, "ring checks what it does not");
    assert_eq!(asked(&unsupported), 1);
    assert_eq!(status(worker.check(&token, NOW)), 200);
    assert_eq!(asked(&unsupported), 1, "a cached token is not checked again");
    worker
        .install(&record(&[&testutil::rotated(), &testutil::key()], NOW + 1), NOW + 1)
        .expect("installs");
    let rotated = testutil::token(&testutil::rotated(), json!({}));
    assert_eq!(status(worker.check(&rotated, NOW + 1)), 200);
    assert_eq!(asked(&unsupported), 2, "and later keys are checked by it too");
}

#[test]
fn a_key_and_alg_mismatch_is_refused_before_the_backend_is_asked() {
    use gitlab_azure_oidc::offload::Offloaded;
    let mut jwk = testutil::key().jwk();
    jwk["alg"] = json!("RS384");
    let jwks = json!({ "keys": [jwk] }).to_string();
    let accepting = backend(Offloaded::Valid);
    let mut worker =
        worker_with_backend(accepting.clone(), |c| c["jwks"] = json!({ "inline": jwks }));
    let token = testutil::token(&testutil::key(), json!({}));
    assert_eq!(status(worker.check(&token, NOW)), 401);
    assert_eq!(asked(&accepting), 0);
}

#[test]
fn with_the_native_check_off_the_backend_is_never_made() {
    let config = config_json(|c| c["envoy_verify_signature"] = json!(false)).to_string();
    let config =
        crate::config::parse_with_backend(config.as_bytes(), &|_| None, || panic!("not asked"));
    assert!(config.is_ok());
}

fn inline_worker(edit: impl FnOnce(&mut serde_json::Value)) -> Worker {
    remote_worker(|c| {
        c["jwks"] = json!({"inline": testutil::jwks(&[&testutil::key()])});
        edit(c);
    })
}

fn admit(worker: &mut Worker, token: &str, now: u64) -> Admission {
    match worker.check(token, now) {
        Check::Admitted(admission) => admission,
        other => panic!("expected an admission, got {other:?}"),
    }
}

#[test]
fn the_workers_header_copy_lasts_until_use_until_and_only_for_its_decision() {
    // A deny rule's max_token_age bounds how long any decision stands: iat + 120 = NOW + 60.
    let mut worker = inline_worker(|c| c["policy"]["rules"][0]["max_token_age"] = json!(120));
    let token = testutil::token(&testutil::key(), json!({}));
    let admission = admit(&mut worker, &token, NOW);
    assert!(worker.forwarding(&admission, NOW).is_none());
    let plan =
        HeaderPlan { set: vec![("authorization".into(), "Bearer a".into())], remove: vec![] };
    worker.keep_forwarding(&admission, NOW, NOW + 10, plan.clone());
    let again = admit(&mut worker, &token, NOW + 9);
    assert_eq!(worker.forwarding(&again, NOW + 9), Some(&plan));
    assert!(worker.forwarding(&again, NOW + 10).is_none(), "not at use_until: the shared rule");
    let other =
        admit(&mut worker, &testutil::token(&testutil::key(), json!({"jti": "2"})), NOW + 1);
    assert!(worker.forwarding(&other, NOW + 1).is_none(), "another token");
    // Decided again (an allow again): the copy was made under the old decision.
    worker.keep_forwarding(&admission, NOW, NOW + 1000, plan);
    let redecided = admit(&mut worker, &token, NOW + 61);
    assert!(redecided.fresh);
    assert!(worker.forwarding(&redecided, NOW + 61).is_none());
}

#[test]
fn the_header_copies_are_bounded_by_the_cache_size() {
    let mut worker = inline_worker(|c| c["cache"] = json!({"verified_tokens": 2}));
    let plan = HeaderPlan::default();
    let admissions: Vec<Admission> = (0..3)
        .map(|job| {
            let token = testutil::token(&testutil::key(), json!({"job_id": format!("{job}")}));
            let admission = admit(&mut worker, &token, NOW);
            worker.keep_forwarding(&admission, NOW, NOW + 100, plan.clone());
            admission
        })
        .collect();
    let kept = admissions.iter().filter(|a| worker.forwarding(a, NOW).is_some()).count();
    assert!(kept <= 2, "{kept}");
    assert!(worker.forwarding(&admissions[2], NOW).is_some(), "the newest is kept");
}

fn summary(line: &str) -> serde_json::Value {
    let summary: serde_json::Value = serde_json::from_str(line).expect("a summary is JSON");
    assert_eq!(summary["event"], "decision_reused", "{line}");
    summary
}

#[test]
fn reuses_are_summarized_every_interval() {
    let mut worker = inline_worker(|c| c["audit"] = json!({"summary_seconds": 10}));
    let token = testutil::token(&testutil::key(), json!({}));
    admit(&mut worker, &token, NOW);
    assert_eq!(worker.audit_summaries(NOW).len(), 1, "the decision's full event");
    for now in [NOW + 1, NOW + 2, NOW + 4] {
        admit(&mut worker, &token, now);
    }
    assert!(worker.audit_summaries(NOW + 9).is_empty(), "not due before the interval");
    let lines = worker.audit_summaries(NOW + 10);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let got = summary(&lines[0]);
    assert_eq!((got["requests"].as_u64(), got["first_request"].as_u64()), (Some(3), Some(NOW + 1)));
    assert!(!lines[0].contains(&token), "never the token");
    admit(&mut worker, &token, NOW + 11);
    assert_eq!(worker.audit_summaries(NOW + 20).len(), 1, "the request at NOW + 11");
    assert!(worker.audit_summaries(NOW + 30).is_empty(), "a quiet token is not summarized");
}

#[test]
fn decisions_forgotten_with_the_keys_are_summarized_when_the_keys_change() {
    let mut worker = remote_worker(|c| c["audit"] = json!({"summary_seconds": 3600}));
    worker.install(&record(&[&testutil::key()], NOW), NOW).expect("installs");
    assert!(worker.audit_summaries(NOW).is_empty(), "the first tick; the next is an hour away");
    let token = testutil::token(&testutil::key(), json!({}));
    for now in NOW..NOW + 3 {
        admit(&mut worker, &token, now);
    }
    assert_eq!(worker.audit_summaries(NOW + 3).len(), 1, "the full event; no summary due");
    worker.install(&record(&[&testutil::rotated()], NOW + 4), NOW + 4).expect("installs");
    let lines = worker.gate_mut().take_audit();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(summary(&lines[0])["requests"], 2);
}

#[test]
fn every_request_is_accounted_for_by_a_decision_or_a_summary() {
    // Many tokens through a small cache: each request is either a fresh decision (its full
    // event) or counted in exactly one summary.
    let mut worker = inline_worker(|c| {
        c["cache"] = json!({"verified_tokens": 3});
        c["audit"] = json!({"summary_seconds": 7});
    });
    let tokens: Vec<String> = (0..5)
        .map(|job| testutil::token(&testutil::key(), json!({"job_id": format!("{job}")})))
        .collect();
    let (mut full, mut summarized) = (0u64, 0u64);
    let mut count = |lines: Vec<String>| {
        for line in lines {
            match serde_json::from_str::<serde_json::Value>(&line).expect("JSON")["requests"]
                .as_u64()
            {
                Some(requests) => summarized += requests,
                None => full += 1,
            }
        }
    };
    let requests = 400u64;
    for i in 0..requests {
        // A skewed pattern: token 0 often, the others in turn.
        let index = if i % 3 == 0 { 0 } else { usize::try_from(i % 5).expect("small") };
        let now = NOW + i / 10;
        admit(&mut worker, &tokens[index], now);
        count(worker.audit_summaries(now));
    }
    count(worker.flush_audit(NOW + requests));
    assert!(full > 5 && summarized > 100, "both kinds happen: {full} full, {summarized}");
    assert_eq!(full + summarized, requests);
}

#[test]
fn with_every_request_audited_nothing_is_counted() {
    let mut worker = inline_worker(|c| c["audit"] = json!({"every_request": true}));
    let token = testutil::token(&testutil::key(), json!({}));
    for now in NOW..NOW + 5 {
        admit(&mut worker, &token, now);
    }
    let lines = worker.flush_audit(NOW + 5);
    assert_eq!(lines.len(), 5, "each request had its full event, and no summary: {lines:?}");
}
