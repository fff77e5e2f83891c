//! Policy globs, differentially: the first line is a glob, every further line a value. The glob
//! goes into a policy rule on `ref`; the policy's decision for each value is compared with a
//! reference matcher written from the documentation (fuzz/src/lib.rs, plain backtracking).
//!
//! Invariants: the policy accepts exactly the globs the reference accepts, and allows exactly the
//! values the reference matches.
#![no_main]

use gitlab_azure_oidc::policy::Policy;
use gitlab_azure_oidc::Claims;
use gitlab_azure_oidc_fuzz::{ref_glob_compile, ref_glob_matches};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let pattern = lines.next().unwrap_or_default();
    let document = json!({"rules": [{"name": "g", "effect": "allow",
        "when": {"project_id": "4242", "ref": {"glob": pattern}},
        "azure": {"tenant": "contoso.onmicrosoft.com", "client_id": "22222222-0000-0000-0000-000000000001",
            "scopes": ["https://management.azure.com/.default"]}}]});
    let policy = Policy::parse(document.to_string().as_bytes());
    let reference = ref_glob_compile(pattern);
    assert_eq!(policy.is_ok(), reference.is_some(), "glob {pattern:?}: policy {:?}", policy.err());
    let (Ok(policy), Some(reference)) = (policy, reference) else { return };
    for value in lines.take(8) {
        let claims = json!({"iss": "https://gitlab.com", "exp": 2_000_000_000u64, "iat": 1_700_000_000u64,
            "project_id": "4242", "ref": value});
        let claims = Claims::from_json(claims.to_string().as_bytes()).expect("claims");
        let allowed = policy.decide(&claims, 1_700_000_000).is_allow();
        assert_eq!(allowed, ref_glob_matches(&reference, value), "glob {pattern:?} on {value:?}");
    }
});
