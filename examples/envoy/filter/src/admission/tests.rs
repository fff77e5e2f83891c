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
        let admission = worker.admit(&verified, NOW);
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
    let first = worker.admit(&verified, NOW);
    assert!(Rc::ptr_eq(&first, &worker.admit(&verified, NOW + 100)), "kept");
    assert_eq!(worker.admitted(), 1);
    let Route::Azure(route) = &first.route else { panic!("allowed: {:?}", first.route) };
    let config = worker.config();
    assert_eq!(route.key, cache::azure_key(&route.target, &verified.claims));
    assert_eq!(route.slot, cache::azure_slot(&route.key, config.azure_slots));

    let denied = testutil::token(&testutil::key(), json!({"ref": "feature/x"}));
    let denied = verify(&mut worker, &denied, NOW);
    assert_eq!(worker.admit(&denied, NOW).route, Route::Deny);
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
    let first = worker.admit(&verified, NOW);
    assert!(first.decision.is_allow());
    assert!(first.stands(iat + 120) && !first.stands(iat + 121));
    // After the bound the decision is made again, and at iat + 301 the allow rule's own
    // max_token_age denies: exactly what deciding on every request gives.
    let late = worker.admit(&verified, iat + 301);
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
    let first = worker.admit(&verified, NOW);
    assert!(!Rc::ptr_eq(&first, &worker.admit(&verified, NOW)));
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
    let record = crate::cache::JwksRecord {
        fetched_at: NOW,
        expires_at: NOW + 3600,
        jwks: testutil::jwks(&[&testutil::key()]),
    };
    worker.install(&record).expect("installs");
    assert_eq!(worker.admitted(), 0);
}

#[test]
fn the_workers_azure_token_copy_expires_with_the_shared_record() {
    let mut worker = worker(|_| {});
    let token = testutil::token(&testutil::key(), json!({}));
    let verified = verify(&mut worker, &token, NOW);
    let admission = worker.admit(&verified, NOW);
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
