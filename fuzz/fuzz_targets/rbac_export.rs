//! `az role assignment list` and `az role definition list` exports, as users hand them over.
//! The input is parsed both ways; parsed assignments are audited against one identity with the
//! built-in catalogue, and with the input's definitions when they parse.
//!
//! Invariants: no panic; parsing is deterministic; every parsed assignment has a scope that
//! parses again from its text and a role GUID; the audit and its reports complete.
#![no_main]

use gitlab_azure_oidc::rbac::{
    audit, parse_assignments, parse_role_definitions, Catalogue, Identity, Reachability, Scope,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_role_definitions(data);
    let Ok(assignments) = parse_assignments(data) else { return };
    assert_eq!(Ok(&assignments), parse_assignments(data).as_ref().map_err(|_| ()), "deterministic");
    for a in &assignments {
        assert!(
            Scope::parse(a.scope.as_str()).is_ok(),
            "scope {} does not parse again",
            a.scope.as_str()
        );
        assert!(!a.role_guid.is_empty());
    }
    let mut identity = Identity::new(
        "release",
        "2b3c4d5e-6f70-4a81-9b2c-3d4e5f607182",
        Reachability::AnyBranch { reason: "fuzz".to_owned() },
    );
    if let Some(first) = assignments.first() {
        identity.principal_id = Some(first.principal_id.clone());
    }
    let builtin = Catalogue::builtin().expect("the built-in catalogue");
    if let Ok(report) = audit(&assignments, std::slice::from_ref(&identity), builtin) {
        let _ = (report.to_text(), report.to_json());
    }
    if let Ok(custom) = Catalogue::with_definitions(data) {
        if let Ok(report) = audit(&assignments, &[identity], &custom) {
            let _ = (report.to_text(), report.to_json());
        }
    }
});
