//! Policy load and decide: a policy document, a NUL byte, then a claim set (JSON); `now` is the
//! claims' `iat` plus the input's length.
//!
//! Invariants: no panic; the explanation has one outcome per rule, in document order; the verdict
//! is what the outcomes say (a matching deny rule wins, else the first matching allow rule with a
//! target, else deny); deciding twice gives the same decision.
#![no_main]

use gitlab_azure_oidc::policy::{Effect, Policy, Verdict};
use gitlab_azure_oidc::Claims;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (document, claims) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let Ok(policy) = Policy::parse(document) else { return };
    let Ok(claims) = Claims::from_json(claims) else { return };
    let now = claims.iat.unwrap_or(0).saturating_add(data.len() as u64);
    let decision = policy.decide(&claims, now);
    assert_eq!(decision, policy.decide(&claims, now), "a decision is deterministic");

    let rules = policy.rules();
    assert_eq!(decision.explanation.len(), rules.len());
    for (outcome, rule) in decision.explanation.iter().zip(rules) {
        assert_eq!((outcome.rule.as_str(), outcome.effect), (rule.name(), rule.effect()));
    }
    let first = |effect: Effect| {
        decision.explanation.iter().zip(rules).find(|(o, r)| {
            o.effect == effect
                && o.result.is_ok()
                && (effect == Effect::Deny || r.target().is_some())
        })
    };
    match (&decision.verdict, first(Effect::Deny), first(Effect::Allow)) {
        (Verdict::Deny { rule: Some(name) }, Some((o, _)), _) => assert_eq!(name, &o.rule),
        (Verdict::Allow { rule, target }, None, Some((o, r))) => {
            assert_eq!(rule, &o.rule);
            assert_eq!(Some(target), r.target());
        }
        (Verdict::Deny { rule: None }, None, None) => {}
        (verdict, deny, allow) => panic!(
            "verdict {verdict:?} contradicts the outcomes (deny {:?}, allow {:?})",
            deny.map(|d| &d.0.rule),
            allow.map(|a| &a.0.rule)
        ),
    }
});
