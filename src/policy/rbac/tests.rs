//! The join of trust and privilege: identities from a policy, audited against `az` exports, with
//! severity weighted by who can become each identity.

use serde_json::{json, Value};

use super::*;
use crate::rbac::{FindingKind, Severity};

const S: &str = "6f1c3a5e-2d4b-4c8a-9e7f-1a2b3c4d5e6f";
const DEV: &str = "11111111-0000-0000-0000-000000000001";
const DEV_OBJECT: &str = "a1a1a1a1-0000-4000-8000-000000000001";
const STAGING: &str = "11111111-0000-0000-0000-000000000002";
const STAGING_OBJECT: &str = "a2a2a2a2-0000-4000-8000-000000000002";
const GROUP: &str = "c0c0c0c0-0000-4000-8000-0000000000aa";
const WEBSITE_CONTRIBUTOR: (&str, &str) =
    ("de139f84-1756-47ae-9be6-808fbbe84772", "Website Contributor");
const CONTRIBUTOR: (&str, &str) = ("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor");

fn site(name: &str) -> String {
    format!("/subscriptions/{S}/resourceGroups/rg-web/providers/Microsoft.Web/sites/{name}")
}

/// Two identities with the same role on their own site: dev from any branch, staging from
/// `main` only.
fn policy(dev_azure_extra: Value) -> Policy {
    let mut dev = json!({"tenant": "t.example", "client_id": DEV, "principal_id": DEV_OBJECT,
        "roles": [{"role": "Website Contributor", "scope": site("platform-dev")}]});
    if let (Value::Object(dev), Value::Object(extra)) = (&mut dev, dev_azure_extra) {
        dev.extend(extra);
    }
    let document = json!({"rules": [
        {"name": "deploy-dev", "effect": "allow",
         "when": {"project_path": "acme/platform", "project_id": 4242, "ref_type": "branch"},
         "azure": dev},
        {"name": "deploy-staging", "effect": "allow",
         "when": {"project_path": "acme/platform", "project_id": 4242, "ref_type": "branch", "ref": "main"},
         "azure": {"tenant": "t.example", "client_id": STAGING, "principal_id": STAGING_OBJECT,
                   "roles": [{"role": "Website Contributor", "scope": site("platform-staging")}]}}
    ]});
    Policy::parse(document.to_string().as_bytes()).unwrap()
}

/// One element of `az role assignment list -o json`, every member as the CLI prints it.
fn row(
    scope: &str,
    name: &str,
    principal: (&str, Option<&str>, &str),
    role: (&str, &str),
) -> Value {
    let prefix = if scope == "/" { "" } else { scope };
    json!({
        "canDelegate": null, "condition": null, "conditionVersion": null,
        "createdBy": "5d2c0a9e-8f6b-4c3d-9a1e-7b6f5e4d3c2b",
        "createdOn": "2025-03-04T10:00:00.000000+00:00",
        "delegatedManagedIdentityResourceId": null, "description": null,
        "id": format!("{prefix}/providers/Microsoft.Authorization/roleAssignments/{name}"),
        "name": name, "principalId": principal.0, "principalName": principal.1,
        "principalType": principal.2, "resourceGroup": null,
        "roleDefinitionId": format!("/subscriptions/{S}/providers/Microsoft.Authorization/roleDefinitions/{}", role.0),
        "roleDefinitionName": role.1, "scope": scope,
        "type": "Microsoft.Authorization/roleAssignments",
        "updatedBy": "5d2c0a9e-8f6b-4c3d-9a1e-7b6f5e4d3c2b",
        "updatedOn": "2025-03-04T10:00:00.000000+00:00"
    })
}

fn export(rows: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&Value::Array(rows.to_vec())).unwrap()
}

/// The planned assignments of both identities, in place.
fn planned() -> Vec<Value> {
    vec![
        row(
            &site("platform-dev"),
            "00000000-0000-4000-8000-000000000001",
            (DEV_OBJECT, Some(DEV), "ServicePrincipal"),
            WEBSITE_CONTRIBUTOR,
        ),
        row(
            &site("platform-staging"),
            "00000000-0000-4000-8000-000000000002",
            (STAGING_OBJECT, Some(STAGING), "ServicePrincipal"),
            WEBSITE_CONTRIBUTOR,
        ),
    ]
}

#[test]
fn what_the_plan_creates_audits_clean() {
    let report = audit_rbac(&policy(json!({})), &export(&planned()), None).unwrap();
    assert!(report.findings.is_empty(), "{}", report.to_text());
    assert_eq!(report.identities.len(), 2);
}

#[test]
fn the_same_grant_weighs_more_on_an_identity_any_branch_can_become() {
    let rg = format!("/subscriptions/{S}/resourceGroups/rg-web");
    let mut rows = planned();
    rows.push(row(
        &rg,
        "00000000-0000-4000-8000-00000000000a",
        (DEV_OBJECT, Some(DEV), "ServicePrincipal"),
        WEBSITE_CONTRIBUTOR,
    ));
    rows.push(row(
        &rg,
        "00000000-0000-4000-8000-00000000000b",
        (STAGING_OBJECT, Some(STAGING), "ServicePrincipal"),
        WEBSITE_CONTRIBUTOR,
    ));
    let report = audit_rbac(&policy(json!({})), &export(&rows), None).unwrap();
    let of = |identity: &str| {
        report
            .findings
            .iter()
            .find(|f| {
                f.identity.as_deref() == Some(identity)
                    && f.kind == FindingKind::ScopeWiderThanNeeded
            })
            .unwrap_or_else(|| panic!("{}", report.to_text()))
    };
    let (dev, staging) = (of("deploy-dev"), of("deploy-staging"));
    assert_eq!(
        (dev.base_severity, dev.severity, dev.raised),
        (Severity::High, Severity::Critical, true)
    );
    assert_eq!((staging.severity, staging.raised), (Severity::High, false));
    assert!(
        dev.message.contains(
            "severity raised from high to critical: the identity is reachable from any branch: \
             rule deploy-dev: Entra accepts every job whose sub matches \
             `project_path:acme/platform:ref_type:branch:ref:*`"
        ),
        "{}",
        dev.message
    );
    assert!(
        dev.fix.ends_with("roleAssignments/00000000-0000-4000-8000-00000000000a"),
        "{}",
        dev.fix
    );
}

#[test]
fn privileged_roles_at_a_wide_scope_are_critical_with_the_command_that_removes_them() {
    let mut rows = planned();
    rows.push(row(
        &format!("/subscriptions/{S}"),
        "7b2d4f60-1a3c-4e5f-8d9b-0c1e2f3a4b5c",
        (STAGING_OBJECT, Some(STAGING), "ServicePrincipal"),
        CONTRIBUTOR,
    ));
    let report = audit_rbac(&policy(json!({})), &export(&rows), None).unwrap();
    assert_eq!(report.findings.len(), 1, "{}", report.to_text());
    let finding = &report.findings[0];
    assert_eq!(
        (finding.kind, finding.severity),
        (FindingKind::PrivilegedWideScope, Severity::Critical)
    );
    assert!(!finding.raised, "staging is reached through main only");
    assert_eq!(
        finding.fix,
        format!("az role assignment delete --ids /subscriptions/{S}/providers/Microsoft.Authorization/roleAssignments/7b2d4f60-1a3c-4e5f-8d9b-0c1e2f3a4b5c")
    );
}

#[test]
fn resource_ids_compare_case_insensitively_and_without_trailing_slashes() {
    let odd = format!(
        "/SUBSCRIPTIONS/{S}/resourcegroups/RG-WEB/providers/microsoft.web/SITES/platform-dev/"
    );
    let rows = vec![
        row(
            &odd,
            "00000000-0000-4000-8000-000000000001",
            (&DEV_OBJECT.to_uppercase(), Some(DEV), "ServicePrincipal"),
            WEBSITE_CONTRIBUTOR,
        ),
        planned()[1].clone(),
    ];
    let report = audit_rbac(&policy(json!({})), &export(&rows), None).unwrap();
    assert!(report.findings.is_empty(), "{}", report.to_text());
}

#[test]
fn scope_containment_is_by_path_segments() {
    // rg-web2 is not under rg-web: a grant there does not cover, and serves no need.
    let other = format!(
        "/subscriptions/{S}/resourceGroups/rg-web2/providers/Microsoft.Web/sites/platform-dev"
    );
    let rows = vec![
        row(
            &other,
            "00000000-0000-4000-8000-000000000003",
            (DEV_OBJECT, Some(DEV), "ServicePrincipal"),
            WEBSITE_CONTRIBUTOR,
        ),
        planned()[1].clone(),
    ];
    let report = audit_rbac(&policy(json!({})), &export(&rows), None).unwrap();
    let kinds: Vec<(&str, Severity)> =
        report.findings.iter().map(|f| (f.kind.as_str(), f.severity)).collect();
    assert_eq!(
        kinds,
        [("actions-wider-than-needed", Severity::Critical), ("missing-grant", Severity::High)],
        "{}",
        report.to_text()
    );
    assert!(
        report.findings[1].message.contains("403"),
        "predicts the 403: {}",
        report.findings[1].message
    );
    assert!(report.findings[1]
        .fix
        .starts_with("az role assignment create --assignee-object-id a1a1a1a1"));
}

#[test]
fn grants_through_declared_groups_and_inherited_scopes_are_reported() {
    let mut rows = planned();
    rows.push(row(
        &site("platform-dev"),
        "00000000-0000-4000-8000-00000000000c",
        (GROUP, Some("platform-deployers"), "Group"),
        WEBSITE_CONTRIBUTOR,
    ));
    rows.push(row(
        "/providers/Microsoft.Management/managementGroups/mg-platform",
        "00000000-0000-4000-8000-00000000000d",
        (STAGING_OBJECT, Some(STAGING), "ServicePrincipal"),
        WEBSITE_CONTRIBUTOR,
    ));
    let report = audit_rbac(&policy(json!({"groups": [GROUP]})), &export(&rows), None).unwrap();
    let text = report.to_text();
    let group = report.findings.iter().find(|f| f.kind == FindingKind::IndirectGrant).unwrap();
    assert_eq!(group.identity.as_deref(), Some("deploy-dev"));
    assert!(group.message.contains("through group c0c0c0c0"), "{text}");
    assert!(group.raised, "dev is reachable from any branch: {text}");
    let inherited =
        report.findings.iter().find(|f| f.kind == FindingKind::ScopeWiderThanNeeded).unwrap();
    assert!(inherited.message.contains("inherited from management group mg-platform"), "{text}");
    // Without `groups` in the policy, the group's assignment is only a note.
    let report = audit_rbac(&policy(json!({})), &export(&rows), None).unwrap();
    assert!(report
        .notes
        .iter()
        .any(|n| n.contains("1 group role assignment(s) were not attributed")));
}

#[test]
fn unknown_principals_and_custom_escalation_roles() {
    let definitions = include_bytes!("../../rbac/testdata/definitions-custom.json");
    let mut rows = planned();
    rows.push(row(
        &format!("/subscriptions/{S}/resourceGroups/rg-web"),
        "00000000-0000-4000-8000-00000000000e",
        (STAGING_OBJECT, Some(STAGING), "ServicePrincipal"),
        ("d8b2f3c4-5e6a-4b7c-8d9e-0f1a2b3c4d5e", "Access Helper"),
    ));
    rows.push(row(
        &format!("/subscriptions/{S}"),
        "00000000-0000-4000-8000-00000000000f",
        (
            "e9e9e9e9-0000-4000-8000-0000000000cc",
            Some("99999999-0000-0000-0000-0000000000cc"),
            "ServicePrincipal",
        ),
        CONTRIBUTOR,
    ));
    let report = audit_rbac(&policy(json!({})), &export(&rows), Some(definitions)).unwrap();
    let text = report.to_text();
    let escalation = report.findings.iter().find(|f| f.kind == FindingKind::Escalation).unwrap();
    assert_eq!(escalation.severity, Severity::Critical, "{text}");
    assert!(
        escalation.message.contains("allows Microsoft.Authorization/roleAssignments/write"),
        "{text}"
    );
    let unknown = report.findings.iter().find(|f| f.kind == FindingKind::UnknownPrincipal).unwrap();
    assert_eq!((unknown.identity.as_deref(), unknown.severity), (None, Severity::Medium));
    // Without the definitions the custom role is not judged, and the report says so.
    let report = audit_rbac(&policy(json!({})), &export(&rows), None).unwrap();
    assert!(report.findings.iter().all(|f| f.kind != FindingKind::Escalation));
    assert!(report.notes.iter().any(|n| n.contains("d8b2f3c4-5e6a-4b7c-8d9e-0f1a2b3c4d5e")));
}

#[test]
fn exports_that_do_not_parse_are_errors_that_say_so() {
    let error = audit_rbac(&policy(json!({})), b"{\"value\": 1}", None).unwrap_err();
    assert_eq!(error.kind(), "rbac-not-an-array");
    let error = audit_rbac(&policy(json!({})), b"[]", Some(b"nope")).unwrap_err();
    assert_eq!(error.kind(), "rbac-json");
}

#[test]
fn the_monorepo_example_and_the_rbac_fixture_export() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/monorepo.json");
    let policy = Policy::parse(&std::fs::read(path).unwrap()).unwrap();
    let export = include_bytes!("../../rbac/testdata/assignments-monorepo.json");
    let report = audit_rbac(&policy, export, None).unwrap();
    let release: Vec<_> =
        report.findings.iter().filter(|f| f.identity.as_deref() == Some("release")).collect();
    assert_eq!(release.len(), 1, "{}", report.to_text());
    assert_eq!(
        (release[0].kind, release[0].severity),
        (FindingKind::PrivilegedWideScope, Severity::Critical)
    );
    assert!(release[0].raised);
    // Identities with no assignment in that export: each need predicts a 403.
    let missing = report.findings.iter().filter(|f| f.kind == FindingKind::MissingGrant).count();
    assert_eq!(missing, 4, "{}", report.to_text());
}
