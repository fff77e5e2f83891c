use serde_json::json;

use super::*;
use crate::request::plan_headers;
use crate::testutil::{self, config_json, NOW};
use crate::worker::{Check, Worker};

fn worker(edit: impl FnOnce(&mut Value)) -> Worker {
    let config = config_json(|c| {
        c["jwks"] = json!({"inline": testutil::jwks(&[&testutil::key()])});
        edit(c);
    });
    Worker::new(Rc::new(testutil::parse(&config)))
}

fn verify(worker: &mut Worker, token: &str, now: u64) -> Arc<VerifiedToken> {
    match worker.check(token, now) {
        Check::Verified(verified) => verified,
        other => panic!("expected a verified token, got {other:?}"),
    }
}

#[test]
fn the_audit_line_is_the_cores_event_at_the_requests_time() {
    let mut worker = worker(|_| {});
    for overrides in [json!({}), json!({"ref": "feature/x"})] {
        let token = testutil::token(&testutil::key(), overrides);
        let verified = verify(&mut worker, &token, NOW);
        let admission = worker.admit(&verified, NOW).admission;
        for now in [NOW, NOW + 7] {
            let line: Value = serde_json::from_str(&admission.audit_line(now)).expect("JSON");
            let core = AuditEvent::new(&admission.decision, &verified.claims, &token, now);
            assert_eq!(&line, core.as_json(), "the same event as the core's, time included");
            assert!(!admission.audit_line(now).contains(&token), "never the token");
        }
    }
}

#[test]
fn a_token_is_decided_once_and_routed_by_its_decision() {
    let mut worker = worker(|_| {});
    let token = testutil::token(&testutil::key(), json!({}));
    let verified = verify(&mut worker, &token, NOW);
    let first = worker.admit(&verified, NOW).admission;
    assert!(Rc::ptr_eq(&first, &worker.admit(&verified, NOW + 100).admission), "kept");
    assert_eq!(worker.admitted(), 1);
    let Route::Azure(route) = &first.route else { panic!("allowed: {:?}", first.route) };
    let config = worker.config();
    assert_eq!(route.key, cache::azure_key(&route.target, &verified.claims));
    assert_eq!(route.slot, cache::azure_slot(&route.key, config.azure_slots));

    let denied = testutil::token(&testutil::key(), json!({"ref": "feature/x"}));
    let denied = verify(&mut worker, &denied, NOW);
    assert_eq!(worker.admit(&denied, NOW).admission.route, Route::Deny);
}

#[test]
fn with_max_token_age_a_decision_stands_until_iat_plus_the_smallest_age() {
    let mut worker = worker(|c| {
        c["policy"]["rules"][1]["max_token_age"] = json!(300);
        c["policy"]["rules"][0]["max_token_age"] = json!(120);
    });
    assert_eq!(worker.config().decision_age_bound, Some(120));
    let token = testutil::token(&testutil::key(), json!({}));
    let verified = verify(&mut worker, &token, NOW);
    let iat = verified.claims.iat.expect("iat");
    let first = worker.admit(&verified, NOW).admission;
    assert!(first.decision.is_allow());
    assert!(first.stands(iat + 120) && !first.stands(iat + 121));
    // After the bound the decision is made again, and at iat + 301 the allow rule's own
    // max_token_age denies: exactly what deciding on every request gives.
    let late = worker.admit(&verified, iat + 301).admission;
    assert!(!Rc::ptr_eq(&first, &late));
    assert_eq!(late.route, Route::Deny);
    assert_eq!(late.decision, worker.config().policy.decide(&verified.claims, iat + 301));
}

#[test]
fn policies_without_max_token_age_decide_on_claims_alone() {
    let worker = worker(|_| {});
    assert_eq!(worker.config().decision_age_bound, None);
}

#[test]
fn with_the_cache_off_nothing_is_kept() {
    let mut worker = worker(|c| c["cache"] = json!({"verified_tokens": 0}));
    let token = testutil::token(&testutil::key(), json!({}));
    let verified = verify(&mut worker, &token, NOW);
    let first = worker.admit(&verified, NOW).admission;
    assert!(!Rc::ptr_eq(&first, &worker.admit(&verified, NOW).admission));
    assert_eq!(worker.admitted(), 0);
}

#[test]
fn admissions_are_bounded_and_forgotten_with_the_keys() {
    let mut worker = worker(|c| c["cache"] = json!({"verified_tokens": 2}));
    for job in 0..5 {
        let token = testutil::token(&testutil::key(), json!({"job_id": format!("{job}")}));
        let verified = verify(&mut worker, &token, NOW);
        worker.admit(&verified, NOW);
        assert!(worker.admitted() <= 2);
    }
    worker.install(&testutil::record(&[&testutil::key()], NOW)).expect("installs");
    assert_eq!(worker.admitted(), 0);
}

#[test]
fn the_workers_azure_token_copy_expires_with_the_shared_record() {
    let mut worker = worker(|_| {});
    let token = testutil::token(&testutil::key(), json!({}));
    let verified = verify(&mut worker, &token, NOW);
    let admission = worker.admit(&verified, NOW).admission;
    assert!(admission.forwarding(NOW).is_none());
    let config = worker.config();
    let plan = plan_headers(
        &config.token_header,
        &config.azure_header,
        "azure-token",
        &config.claim_headers,
        &verified.claims,
    );
    admission.keep(Forwarding { use_until: NOW + 10, plan: plan.clone() });
    assert_eq!(admission.forwarding(NOW + 9).as_deref(), Some(&plan));
    assert!(admission.forwarding(NOW + 10).is_none(), "not at use_until: the shared rule");
}

fn summary(line: &str) -> Value {
    let summary: Value = serde_json::from_str(line).expect("a summary is JSON");
    assert_eq!(summary["event"], "decision_reused", "{line}");
    summary
}

#[test]
fn a_kept_decision_counts_its_reuses_and_summarizes_them_every_interval() {
    let mut worker = worker(|c| c["audit"] = json!({"summary_seconds": 10}));
    let token = testutil::token(&testutil::key(), json!({}));
    let verified = verify(&mut worker, &token, NOW);
    assert!(worker.admit(&verified, NOW).fresh, "the first request makes the decision");
    assert!(worker.audit_summaries(NOW).is_empty(), "nothing reused yet");
    for now in [NOW + 1, NOW + 2, NOW + 4] {
        let admitted = worker.admit(&verified, now);
        assert!(!admitted.fresh, "reused");
        assert_eq!(admitted.admission.reuse().last, now);
    }
    assert!(worker.audit_summaries(NOW + 9).is_empty(), "not due before the interval");
    let lines = worker.audit_summaries(NOW + 10);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let got = summary(&lines[0]);
    assert_eq!(got["time"], NOW + 10);
    assert_eq!(got["requests"], 3);
    assert_eq!(got["first_request"], NOW + 1);
    assert_eq!(got["last_request"], NOW + 4);
    let full: Value =
        serde_json::from_str(&worker.admit(&verified, NOW + 11).admission.audit_line(NOW + 11))
            .expect("JSON");
    for member in ["decision", "rule", "token_sha256", "jti", "project_path", "job_id"] {
        assert!(!full[member].is_null(), "the full event has {member}");
        assert_eq!(got[member], full[member], "the summary repeats {member}");
    }
    assert!(!lines[0].contains(&token), "never the token");
    assert!(worker.audit_summaries(NOW + 20).len() == 1, "the request at NOW + 11");
    assert!(worker.audit_summaries(NOW + 30).is_empty(), "a quiet token is not summarized");
}

#[test]
fn evicted_forgotten_and_redecided_admissions_are_summarized_at_once() {
    let mut worker = worker(|c| {
        c["cache"] = json!({"verified_tokens": 1});
        c["audit"] = json!({"summary_seconds": 3600});
        c["policy"]["rules"][1]["max_token_age"] = json!(300);
    });
    assert!(worker.audit_summaries(NOW).is_empty());
    let a = testutil::token(&testutil::key(), json!({"job_id": "1"}));
    let b = testutil::token(&testutil::key(), json!({"job_id": "2"}));
    let (a, b) = (verify(&mut worker, &a, NOW), verify(&mut worker, &b, NOW));
    worker.admit(&a, NOW);
    worker.admit(&a, NOW + 1);
    worker.admit(&a, NOW + 2);
    assert!(worker.admit(&b, NOW + 3).fresh, "b evicts a");
    let lines = worker.audit_summaries(NOW + 3);
    assert_eq!(lines.len(), 1, "a's reuses, long before the interval: {lines:?}");
    assert_eq!(summary(&lines[0])["job_id"], "1");
    assert_eq!(summary(&lines[0])["requests"], 2);

    // Keys replaced: b is forgotten and its reuse summarized on the next call.
    worker.admit(&b, NOW + 4);
    worker.install(&testutil::record(&[&testutil::key()], NOW + 5)).expect("installs");
    let lines = worker.audit_summaries(NOW + 5);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(summary(&lines[0])["job_id"], "2");

    // A decision past its standing is made again; the old one's reuses are summarized.
    let b = verify(&mut worker, &testutil::token(&testutil::key(), json!({"job_id": "2"})), NOW);
    let iat = b.claims.iat.expect("iat");
    worker.admit(&b, NOW + 6);
    worker.admit(&b, NOW + 7);
    assert!(worker.admit(&b, iat + 301).fresh);
    let lines = worker.audit_summaries(iat + 301);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(summary(&lines[0])["requests"], 1);
}

#[test]
fn every_request_is_accounted_for_by_a_decision_or_a_summary() {
    // Many tokens through a small set: each request is either a fresh decision (its full event)
    // or counted in exactly one summary.
    let mut worker = worker(|c| {
        c["cache"] = json!({"verified_tokens": 3});
        c["audit"] = json!({"summary_seconds": 7});
    });
    let tokens: Vec<_> = (0..5)
        .map(|job| {
            let token = testutil::token(&testutil::key(), json!({"job_id": format!("{job}")}));
            verify(&mut worker, &token, NOW)
        })
        .collect();
    let (mut fresh, mut summarized) = (0u64, 0u64);
    let count = |lines: Vec<String>| {
        lines.iter().map(|l| summary(l)["requests"].as_u64().expect("a count")).sum::<u64>()
    };
    let requests = 400u64;
    for i in 0..requests {
        // A skewed pattern: token 0 often, the others in turn.
        let index = if i % 3 == 0 { 0 } else { usize::try_from(i % 5).expect("small") };
        let now = NOW + i / 10;
        if worker.admit(&tokens[index], now).fresh {
            fresh += 1;
        }
        summarized += count(worker.audit_summaries(now));
    }
    summarized += count(worker.flush_audit_summaries(NOW + requests));
    assert!(fresh > 5 && summarized > 100, "both kinds happen: {fresh} fresh, {summarized}");
    assert_eq!(fresh + summarized, requests);
}

#[test]
fn with_every_request_audited_nothing_is_counted_twice() {
    let mut worker = worker(|c| c["audit"] = json!({"every_request": true}));
    let token = testutil::token(&testutil::key(), json!({}));
    let verified = verify(&mut worker, &token, NOW);
    for now in NOW..NOW + 5 {
        worker.admit(&verified, now);
    }
    assert!(worker.flush_audit_summaries(NOW + 5).is_empty(), "each request had its full event");
}
