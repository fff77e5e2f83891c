//! Shared fixtures, and the "done means" scenario end to end: plan for the monorepo's
//! release identity, then audit an export where it also holds Contributor on the subscription.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};

use super::*;

/// The subscription of every fixture.
pub(crate) const S: &str = "6f1c3a5e-2d4b-4c8a-9e7f-1a2b3c4d5e6f";
/// The release identity of the monorepo example.
pub(crate) const RELEASE_CLIENT: &str = "11111111-0000-0000-0000-000000000006";
pub(crate) const RELEASE_OBJECT: &str = "a6a6a6a6-0000-4000-8000-000000000006";
pub(crate) const ACR_PUSH: &str = "8311e382-0749-4cb8-b61a-304f252e45ec";
pub(crate) const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";

pub(crate) fn acr() -> String {
    format!("/subscriptions/{S}/resourceGroups/rg-app/providers/Microsoft.ContainerRegistry/registries/acrapp")
}

pub(crate) fn rg_app() -> String {
    format!("/subscriptions/{S}/resourceGroups/rg-app")
}

pub(crate) fn subscription() -> String {
    format!("/subscriptions/{S}")
}

/// One element of `az role assignment list -o json`, every member as the CLI prints it.
pub(crate) fn az_assignment(
    scope: &str,
    name: &str,
    (principal_id, principal_name, principal_type): (&str, Option<&str>, &str),
    (role_guid, role_name): (&str, &str),
) -> Value {
    let prefix = if scope == "/" { "" } else { scope };
    json!({
        "canDelegate": null,
        "condition": null,
        "conditionVersion": null,
        "createdBy": "5d2c0a9e-8f6b-4c3d-9a1e-7b6f5e4d3c2b",
        "createdOn": "2025-03-04T10:00:00.000000+00:00",
        "delegatedManagedIdentityResourceId": null,
        "description": null,
        "id": format!("{prefix}/providers/Microsoft.Authorization/roleAssignments/{name}"),
        "name": name,
        "principalId": principal_id,
        "principalName": principal_name,
        "principalType": principal_type,
        "resourceGroup": null,
        "roleDefinitionId": format!("/subscriptions/{S}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"),
        "roleDefinitionName": role_name,
        "scope": scope,
        "type": "Microsoft.Authorization/roleAssignments",
        "updatedBy": "5d2c0a9e-8f6b-4c3d-9a1e-7b6f5e4d3c2b",
        "updatedOn": "2025-03-04T10:00:00.000000+00:00"
    })
}

/// An assignment of the release identity's service principal.
pub(crate) fn release_assignment(scope: &str, name: &str, role: (&str, &str)) -> Value {
    az_assignment(scope, name, (RELEASE_OBJECT, Some(RELEASE_CLIENT), "ServicePrincipal"), role)
}

/// Rows through the real parser, as the CLI would hand them over.
pub(crate) fn export(rows: &[Value]) -> Vec<RoleAssignment> {
    parse_assignments(&serde_json::to_vec(&Value::Array(rows.to_vec())).unwrap()).unwrap()
}

pub(crate) fn need(role: &str, scope: &str) -> RoleNeed {
    RoleNeed::parse(&json!({ "role": role, "scope": scope })).unwrap()
}

pub(crate) fn any_branch() -> Reachability {
    Reachability::AnyBranch {
        reason: "flexible credential claims['sub'] matches 'project_path:acme/platform:ref_type:branch:ref:*'"
            .to_owned(),
    }
}

pub(crate) fn protected() -> Reachability {
    Reachability::ProtectedRefsOnly { reason: "exact credential for protected tags v*".to_owned() }
}

/// The monorepo's release identity: AcrPush on the registry, reachable from any branch.
pub(crate) fn release() -> Identity {
    let mut identity = Identity::new("release", RELEASE_CLIENT, any_branch());
    identity.principal_id = Some(RELEASE_OBJECT.to_owned());
    identity.needs = vec![need("AcrPush", &acr())];
    identity
}

pub(crate) fn builtin() -> &'static Catalogue {
    Catalogue::builtin().unwrap()
}

const MONOREPO_EXPORT: &str = include_str!("testdata/assignments-monorepo.json");

/// The other identities of the monorepo export.
fn monorepo_identities() -> Vec<Identity> {
    let site = format!(
        "/subscriptions/{S}/resourceGroups/rg-web/providers/Microsoft.Web/sites/platform-staging"
    );
    let mut staging =
        Identity::new("deploy-staging", "11111111-0000-0000-0000-000000000002", protected());
    staging.principal_id = Some("a2a2a2a2-0000-4000-8000-000000000002".to_owned());
    staging.needs = vec![need("Website Contributor", &site)];
    let mut dev = Identity::new("deploy-dev", "11111111-0000-0000-0000-000000000001", any_branch());
    dev.groups = vec!["c0c0c0c0-0000-4000-8000-0000000000aa".to_owned()];
    dev.needs = vec![need(
        "Website Contributor",
        &format!(
            "/subscriptions/{S}/resourceGroups/rg-web/providers/Microsoft.Web/sites/platform-dev"
        ),
    )];
    vec![release(), staging, dev]
}

#[test]
fn done_means_plan_prints_acrpush_on_the_registry_and_nothing_wider() {
    let plan = plan(&[release()], builtin()).unwrap();
    assert_eq!(plan.len(), 1);
    let assignment = &plan.identities[0].assignments[0];
    assert_eq!(assignment.role_name.as_deref(), Some("AcrPush"));
    assert_eq!(assignment.scope.as_str(), acr());
    assert_eq!(
        assignment.command,
        format!(
            "az role assignment create --assignee-object-id {RELEASE_OBJECT} \
             --assignee-principal-type ServicePrincipal --role {ACR_PUSH} --scope {} \
             --name 37002897-b83e-55c9-ae7a-55c4cdec2eae",
            acr()
        )
    );
    // Nothing wider: the only warning is the ABAC-mode caveat of a legacy registry role.
    let kinds: Vec<&str> = assignment.warnings.iter().map(PlanWarning::kind).collect();
    assert_eq!(kinds, ["acr-abac-mode"]);
    assert!(plan.to_text().contains("# AcrPush at /subscriptions/"));
}

#[test]
fn done_means_audit_reports_contributor_on_the_subscription_as_critical_and_raised() {
    let assignments = parse_assignments(MONOREPO_EXPORT.as_bytes()).unwrap();
    let report = audit(&assignments, &monorepo_identities(), builtin()).unwrap();
    let release: Vec<&Finding> =
        report.findings.iter().filter(|f| f.identity.as_deref() == Some("release")).collect();
    assert_eq!(release.len(), 1, "{}", report.to_text());
    let finding = release[0];
    assert_eq!(finding.kind, FindingKind::PrivilegedWideScope);
    assert_eq!(finding.severity, Severity::Critical);
    assert!(finding.raised);
    assert!(finding.message.contains("reachable from any branch"), "{}", finding.message);
    assert!(finding.message.contains("Contributor at subscription scope"), "{}", finding.message);
    assert_eq!(
        finding.fix,
        format!(
            "az role assignment delete --ids /subscriptions/{S}/providers/Microsoft.Authorization/\
             roleAssignments/7b2d4f60-1a3c-4e5f-8d9b-0c1e2f3a4b5c"
        )
    );
    assert!(report.fails(Severity::High));
}

#[test]
fn done_means_the_monorepo_export_gives_each_finding_kind_its_place() {
    let assignments = parse_assignments(MONOREPO_EXPORT.as_bytes()).unwrap();
    let report = audit(&assignments, &monorepo_identities(), builtin()).unwrap();
    let summary: Vec<(Option<&str>, &str, Severity)> = report
        .findings
        .iter()
        .map(|f| (f.identity.as_deref(), f.kind.as_str(), f.severity))
        .collect();
    assert_eq!(
        summary,
        [
            // Reader on rg-app through the declared group: no need is there; raised from low.
            (Some("deploy-dev"), "missing-grant", Severity::High),
            (Some("deploy-dev"), "actions-wider-than-needed", Severity::Medium),
            // Website Contributor inherited from the management group: above the site.
            (Some("deploy-staging"), "scope-wider-than-needed", Severity::High),
            (Some("release"), "privileged-wide-scope", Severity::Critical),
            (None, "unknown-principal", Severity::Low),
        ],
        "{}",
        report.to_text()
    );
    let staging = &report.findings[2];
    assert!(staging.message.contains("inherited from management group mg-platform"));
    assert!(staging.fix.starts_with("az role assignment create --assignee-object-id a2a2a2a2"));
    assert!(staging.fix.ends_with(
        "&& az role assignment delete --ids /providers/Microsoft.Management/managementGroups/\
         mg-platform/providers/Microsoft.Authorization/roleAssignments/0e4f2c6a-8b1d-4a3e-9f5c-7d2b1a0e9c8d"
    ));
    let group = &report.findings[1];
    assert!(group.message.contains("through group c0c0c0c0"), "{}", group.message);
    assert!(group
        .fix
        .contains("az ad group member remove --group c0c0c0c0-0000-4000-8000-0000000000aa"));
    assert_eq!(
        report.notes,
        ["1 assignment(s) of users and other non-service principals were not audited"]
    );
}

#[test]
fn done_means_output_is_byte_identical_for_identical_input_in_any_order() {
    let mut rows: Vec<Value> = serde_json::from_str(MONOREPO_EXPORT).unwrap();
    let first = audit(&export(&rows), &monorepo_identities(), builtin()).unwrap();
    rows.reverse();
    let mut identities = monorepo_identities();
    identities.reverse();
    let second = audit(&export(&rows), &identities, builtin()).unwrap();
    assert_eq!(first.to_text(), second.to_text());
    assert_eq!(first.to_json(), second.to_json());
    assert_eq!(first.to_code_quality("policy.json"), second.to_code_quality("policy.json"));
}
