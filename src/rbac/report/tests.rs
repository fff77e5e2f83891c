#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn finding(kind: FindingKind, severity: Severity, identity: Option<&str>) -> Finding {
    Finding::new(
        kind,
        severity,
        identity,
        Some("/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/a"),
        ("Contributor", "b24988ac-6180-42a0-ab88-20f7382dd24c"),
        "/subscriptions/s",
        "Contributor at subscription scope /subscriptions/s lets the identity change everything".to_owned(),
        "az role assignment delete --ids /subscriptions/s/providers/Microsoft.Authorization/roleAssignments/a"
            .to_owned(),
    )
}

fn sample(findings: Vec<Finding>) -> Report {
    Report {
        identities: vec![AuditedIdentity {
            name: "release".to_owned(),
            client_id: "11111111-0000-0000-0000-000000000006".to_owned(),
            principal_id: None,
            reachability: Reachability::ProtectedRefsOnly { reason: "tags v*".to_owned() },
            assignments: 1,
        }],
        findings,
        notes: vec!["a note".to_owned()],
    }
}

#[test]
fn severities_order_parse_raise_and_map_to_code_quality() {
    assert!(Severity::Info < Severity::Low && Severity::High < Severity::Critical);
    assert_eq!(Severity::parse("HIGH"), Some(Severity::High));
    assert_eq!(Severity::parse("severe"), None);
    assert_eq!(Severity::Low.raised(), Severity::Medium);
    assert_eq!(Severity::Critical.raised(), Severity::Critical);
    let mapped: Vec<&str> = Severity::ALL.iter().map(|s| s.code_quality()).collect();
    assert_eq!(mapped, ["info", "minor", "major", "critical", "blocker"]);
}

#[test]
fn finding_kinds_have_the_issue_s_names() {
    let kinds = [
        FindingKind::PrivilegedWideScope,
        FindingKind::Escalation,
        FindingKind::ScopeWiderThanNeeded,
        FindingKind::ActionsWiderThanNeeded,
        FindingKind::MissingGrant,
        FindingKind::IndirectGrant,
        FindingKind::UnknownPrincipal,
    ];
    let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "privileged-wide-scope",
            "escalation",
            "scope-wider-than-needed",
            "actions-wider-than-needed",
            "missing-grant",
            "indirect-grant",
            "unknown-principal"
        ]
    );
}

#[test]
fn fail_on_is_a_threshold_at_or_above() {
    let high =
        sample(vec![finding(FindingKind::ScopeWiderThanNeeded, Severity::High, Some("release"))]);
    assert!(high.fails(Severity::High));
    assert!(high.fails(Severity::Low));
    assert!(!high.fails(Severity::Critical));
    assert!(!sample(Vec::new()).fails(Severity::Info));
}

#[test]
fn weighting_raises_risk_findings_only_and_says_why() {
    let any = Reachability::AnyBranch { reason: "credential ref:*".to_owned() };
    let raised =
        finding(FindingKind::ScopeWiderThanNeeded, Severity::High, Some("release")).weigh(&any);
    assert_eq!(
        (raised.severity, raised.base_severity, raised.raised),
        (Severity::Critical, Severity::High, true)
    );
    assert!(raised.message.ends_with(
        "[severity raised from high to critical: the identity is reachable from any branch: credential ref:*]"
    ));
    let capped =
        finding(FindingKind::PrivilegedWideScope, Severity::Critical, Some("release")).weigh(&any);
    assert_eq!(capped.severity, Severity::Critical);
    assert!(capped.message.contains(
        "[severity raised (capped at critical): the identity is reachable from any branch"
    ));
    let missing = finding(FindingKind::MissingGrant, Severity::High, Some("release")).weigh(&any);
    assert_eq!((missing.severity, missing.raised), (Severity::High, false));
    let protected = Reachability::ProtectedRefsOnly { reason: "tags".to_owned() };
    let kept = finding(FindingKind::Escalation, Severity::High, Some("release")).weigh(&protected);
    assert_eq!((kept.severity, kept.raised), (Severity::High, false));
}

#[test]
fn fingerprints_are_stable_and_tell_findings_apart() {
    let a = finding(FindingKind::Escalation, Severity::Critical, Some("release"));
    let b = finding(FindingKind::Escalation, Severity::Critical, Some("release"));
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_eq!(a.fingerprint.len(), 64);
    let weighed = b.weigh(&Reachability::AnyBranch { reason: "x".to_owned() });
    assert_eq!(a.fingerprint, weighed.fingerprint, "weighting does not change identity");
    let other_kind = finding(FindingKind::PrivilegedWideScope, Severity::Critical, Some("release"));
    let other_identity = finding(FindingKind::Escalation, Severity::Critical, Some("deploy"));
    assert_ne!(a.fingerprint, other_kind.fingerprint);
    assert_ne!(a.fingerprint, other_identity.fingerprint);
}

/// The fields GitLab reads from a Code Quality report
/// (https://docs.gitlab.com/ci/testing/code_quality/#code-quality-report-format): an array of
/// objects with string `description`, `check_name` and `fingerprint`, `severity` one of info,
/// minor, major, critical, blocker, and `location.path` (relative, no leading `./`) with an
/// integer `location.lines.begin`.
fn assert_code_quality(document: &str) -> Vec<Value> {
    let value: Value = serde_json::from_str(document).unwrap();
    let issues = value.as_array().expect("the report is a JSON array").clone();
    for issue in &issues {
        for key in ["description", "check_name", "fingerprint"] {
            assert!(issue[key].as_str().is_some_and(|s| !s.is_empty()), "{key} in {issue}");
        }
        assert!(
            ["info", "minor", "major", "critical", "blocker"]
                .contains(&issue["severity"].as_str().unwrap()),
            "{issue}"
        );
        let path = issue["location"]["path"].as_str().unwrap();
        assert!(!path.is_empty() && !path.starts_with("./") && !path.starts_with('/'), "{path}");
        assert!(issue["location"]["lines"]["begin"].as_u64().is_some_and(|line| line >= 1));
    }
    let mut fingerprints: Vec<&str> =
        issues.iter().map(|i| i["fingerprint"].as_str().unwrap()).collect();
    fingerprints.sort_unstable();
    fingerprints.dedup();
    assert_eq!(fingerprints.len(), issues.len(), "fingerprints are unique");
    issues
}

#[test]
fn the_code_quality_report_has_every_field_gitlab_requires() {
    let report = sample(vec![
        finding(FindingKind::PrivilegedWideScope, Severity::Critical, Some("release")),
        finding(FindingKind::UnknownPrincipal, Severity::Low, None),
    ]);
    let issues = assert_code_quality(&report.to_code_quality("./policies/monorepo.json"));
    assert_eq!(issues.len(), 2);
    assert_eq!(issues[0]["severity"], "blocker");
    assert_eq!(issues[0]["check_name"], "gitlab-azure-oidc/rbac/privileged-wide-scope");
    assert_eq!(issues[0]["location"]["path"], "policies/monorepo.json");
    assert!(issues[0]["description"].as_str().unwrap().starts_with("release: Contributor"));
    assert!(issues[0]["description"]
        .as_str()
        .unwrap()
        .contains(". Fix: az role assignment delete --ids"));
    assert!(issues[1]["description"].as_str().unwrap().starts_with("unknown principal: "));
    assert_eq!(
        assert_code_quality(&Report::to_code_quality(&sample(Vec::new()), "p.json")).len(),
        0
    );
}

#[test]
fn the_json_document_has_findings_notes_and_a_summary() {
    let report =
        sample(vec![finding(FindingKind::Escalation, Severity::Critical, Some("release"))]);
    let value: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(value["summary"]["critical"], 1);
    assert_eq!(value["summary"]["total"], 1);
    assert_eq!(value["findings"][0]["kind"], "escalation");
    assert_eq!(value["findings"][0]["raised"], false);
    assert_eq!(value["identities"][0]["reachable_from_any_branch"], false);
    assert_eq!(value["notes"][0], "a note");
}

#[test]
fn the_text_report_has_one_line_per_finding_grouped_by_identity() {
    let report = sample(vec![
        finding(FindingKind::Escalation, Severity::Critical, Some("release")),
        finding(FindingKind::UnknownPrincipal, Severity::Low, None),
    ]);
    let text = report.to_text();
    assert!(text.starts_with("rbac audit: 2 findings (1 critical, 1 low)\n"), "{text}");
    let finding_lines: Vec<&str> = text.lines().filter(|l| l.contains(" -- fix: ")).collect();
    assert_eq!(finding_lines.len(), 2);
    assert!(finding_lines[0].starts_with("  critical escalation: Contributor"));
    assert!(text.contains("\nidentity release (client 11111111-0000-0000-0000-000000000006, object unknown; protected refs only: tags v*)\n"));
    assert!(text.contains("\nprincipals the policy does not know\n"));
    assert!(text.ends_with("\nnotes\n  - a note\n"));
    let quiet = Report { findings: Vec::new(), notes: Vec::new(), ..report };
    assert!(quiet.to_text().contains("  ok: 1 assignment(s), nothing to report"));
    assert!(quiet.to_text().starts_with("rbac audit: no findings\n"));
}
