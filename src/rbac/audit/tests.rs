#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;

use super::*;
use crate::rbac::tests::{
    acr, any_branch, az_assignment, builtin, export, need, protected, release, release_assignment,
    rg_app, subscription, ACR_PUSH, CONTRIBUTOR, RELEASE_CLIENT, RELEASE_OBJECT, S,
};
use crate::rbac::{parse_assignments, Reachability};

const OWNER_ROLE: (&str, &str) = ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner");
const CONTRIBUTOR_ROLE: (&str, &str) = (CONTRIBUTOR, "Contributor");
const PUSH: (&str, &str) = (ACR_PUSH, "AcrPush");
const GROUP: &str = "c0c0c0c0-0000-4000-8000-0000000000aa";

/// The release identity, reachable only from protected refs (so severities are not raised).
fn release_protected() -> Identity {
    Identity { reachability: protected(), ..release() }
}

fn run(rows: &[Value], identities: &[Identity]) -> Report {
    audit(&export(rows), identities, builtin()).unwrap()
}

fn kinds(report: &Report) -> Vec<(&'static str, Severity)> {
    report.findings.iter().map(|f| (f.kind.as_str(), f.severity)).collect()
}

fn delete(scope: &str, name: &str) -> String {
    format!("az role assignment delete --ids {scope}/providers/Microsoft.Authorization/roleAssignments/{name}")
}

/// The deterministic create command for the release identity's AcrPush on the registry.
fn create_push() -> String {
    format!(
        "az role assignment create --assignee-object-id {RELEASE_OBJECT} --assignee-principal-type \
         ServicePrincipal --role {ACR_PUSH} --scope {} --name 37002897-b83e-55c9-ae7a-55c4cdec2eae",
        acr()
    )
}

#[test]
fn exactly_the_need_at_the_need_s_scope_is_clean() {
    let report = run(
        &[release_assignment(&acr(), "00000000-0000-4000-8000-000000000001", PUSH)],
        &[release()],
    );
    assert_eq!(kinds(&report), []);
    assert!(!report.fails(Severity::Info));
    assert_eq!(report.identities[0].assignments, 1);
}

#[test]
fn owner_at_a_subscription_is_privileged_and_escalation_both_critical() {
    let rows = [
        release_assignment(&acr(), "00000000-0000-4000-8000-000000000001", PUSH),
        release_assignment(&subscription(), "00000000-0000-4000-8000-000000000002", OWNER_ROLE),
    ];
    let report = run(&rows, &[release_protected()]);
    assert_eq!(
        kinds(&report),
        [("privileged-wide-scope", Severity::Critical), ("escalation", Severity::Critical)]
    );
    let fix = delete(&subscription(), "00000000-0000-4000-8000-000000000002");
    assert!(report.findings.iter().all(|f| f.fix == fix && !f.raised));
    assert!(report.findings[1]
        .message
        .contains("allows Microsoft.Authorization/roleAssignments/write"));
}

#[test]
fn escalation_is_critical_at_any_scope_and_high_behind_a_condition() {
    let uaa = ("18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "User Access Administrator");
    let report = run(
        &[release_assignment(&acr(), "00000000-0000-4000-8000-000000000003", uaa)],
        &[release_protected()],
    );
    assert_eq!(report.findings[0].kind, FindingKind::Escalation);
    assert_eq!(report.findings[0].severity, Severity::Critical);
    // AcrPush is then missing only because the report asks to remove the only grant.
    assert_eq!(kinds(&report)[1], ("missing-grant", Severity::High));

    let kvdaa = ("8b54135c-b56d-4d72-a534-26097cfdc8d8", "Key Vault Data Access Administrator");
    let vault = format!("{}/providers/Microsoft.KeyVault/vaults/kv", rg_app());
    let mut identity = release_protected();
    identity.needs = vec![need("Key Vault Data Access Administrator", &vault)];
    let report = run(
        &[release_assignment(&vault, "00000000-0000-4000-8000-000000000004", kvdaa)],
        &[identity],
    );
    assert_eq!(kinds(&report)[0], ("escalation", Severity::High));
    assert!(report.findings[0].message.contains("ABAC condition"));
}

#[test]
fn a_grant_above_the_need_is_scope_wider_with_a_fix_that_creates_then_deletes() {
    let rows = [release_assignment(&rg_app(), "00000000-0000-4000-8000-000000000005", PUSH)];
    let report = run(&rows, &[release_protected()]);
    assert_eq!(kinds(&report), [("scope-wider-than-needed", Severity::High)]);
    let finding = &report.findings[0];
    assert!(
        finding.message.contains(&format!("sits above where it is needed ({})", acr())),
        "{}",
        finding.message
    );
    assert_eq!(
        finding.fix,
        format!(
            "{} && {}",
            create_push(),
            delete(&rg_app(), "00000000-0000-4000-8000-000000000005")
        )
    );
}

#[test]
fn a_broader_role_at_the_right_scope_is_actions_wider_and_names_the_narrow_role() {
    let rows =
        [release_assignment(&acr(), "00000000-0000-4000-8000-000000000006", CONTRIBUTOR_ROLE)];
    let report = run(&rows, &[release_protected()]);
    assert_eq!(kinds(&report), [("actions-wider-than-needed", Severity::High)]);
    let finding = &report.findings[0];
    assert!(
        finding.message.contains("grants `*` except `Microsoft.Authorization/*/Delete`"),
        "{}",
        finding.message
    );
    assert!(finding.message.contains("beyond the declared need (AcrPush at"));
    assert!(finding.message.ends_with("; AcrPush covers what is needed"));
    assert_eq!(
        finding.fix,
        format!("{} && {}", create_push(), delete(&acr(), "00000000-0000-4000-8000-000000000006"))
    );
}

#[test]
fn contributor_on_the_resource_group_is_wider_in_both_ways() {
    let rows = [
        release_assignment(&rg_app(), "00000000-0000-4000-8000-000000000007", CONTRIBUTOR_ROLE),
        release_assignment(&acr(), "00000000-0000-4000-8000-000000000001", PUSH),
    ];
    let report = run(&rows, &[release_protected()]);
    assert_eq!(
        kinds(&report),
        [
            ("scope-wider-than-needed", Severity::High),
            ("actions-wider-than-needed", Severity::High)
        ]
    );
    // The need is already met by the kept AcrPush: the fixes only delete.
    let fix = delete(&rg_app(), "00000000-0000-4000-8000-000000000007");
    assert!(report.findings.iter().all(|f| f.fix == fix), "{:#?}", report.findings);
}

#[test]
fn a_grant_serving_no_need_is_actions_wider_high_when_it_writes_low_when_it_reads() {
    let kv_reader = ("21090545-7ca7-4776-b22c-e363652d74d2", "Key Vault Reader");
    let reader = ("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader");
    let vault = format!("{}/providers/Microsoft.KeyVault/vaults/kv", rg_app());
    let other_rg = format!("/subscriptions/{S}/resourceGroups/rg-data");
    let rows = [
        release_assignment(&acr(), "00000000-0000-4000-8000-000000000001", PUSH),
        release_assignment(&vault, "00000000-0000-4000-8000-000000000008", kv_reader),
        release_assignment(&other_rg, "00000000-0000-4000-8000-000000000009", reader),
    ];
    let report = run(&rows, &[release_protected()]);
    assert_eq!(
        kinds(&report),
        [
            ("actions-wider-than-needed", Severity::High),
            ("actions-wider-than-needed", Severity::Low)
        ]
    );
    assert!(report.findings[0].message.contains("serves no declared need"));
    assert_eq!(report.findings[1].fix, delete(&other_rg, "00000000-0000-4000-8000-000000000009"));
}

#[test]
fn a_need_nothing_grants_is_a_missing_grant_that_predicts_a_403() {
    let report = run(&[], &[release_protected()]);
    assert_eq!(kinds(&report), [("missing-grant", Severity::High)]);
    let finding = &report.findings[0];
    assert_eq!(finding.assignment_id, None);
    assert!(finding.message.contains("403 AuthorizationFailed"));
    assert_eq!(finding.fix, create_push());
    // An empty export has nothing inherited to report on.
    assert!(report.notes.is_empty());
}

#[test]
fn a_need_met_only_by_a_grant_to_remove_is_a_medium_missing_grant() {
    let rows = [release_assignment(
        &subscription(),
        "00000000-0000-4000-8000-00000000000a",
        CONTRIBUTOR_ROLE,
    )];
    let report = run(&rows, &[release_protected()]);
    assert_eq!(
        kinds(&report),
        [("privileged-wide-scope", Severity::Critical), ("missing-grant", Severity::Medium)]
    );
    assert!(report.findings[1]
        .message
        .contains("only assignments this report asks to remove grant AcrPush"));
}

#[test]
fn scope_containment_in_the_audit_is_by_segments_and_ignores_case() {
    // A grant on `rg-app2` does not reach `rg-app`'s registry.
    let rg2 = format!("/subscriptions/{S}/resourceGroups/rg-app2");
    let report = run(
        &[release_assignment(&rg2, "00000000-0000-4000-8000-00000000000b", PUSH)],
        &[release_protected()],
    );
    assert_eq!(
        kinds(&report),
        [("actions-wider-than-needed", Severity::High), ("missing-grant", Severity::High)]
    );
    // The same registry in other case, with a trailing slash, is the registry.
    let shouted = format!("{}/", acr().replace("resourceGroups/rg-app", "RESOURCEGROUPS/RG-APP"));
    let report = run(
        &[release_assignment(&shouted, "00000000-0000-4000-8000-00000000000c", PUSH)],
        &[release_protected()],
    );
    assert_eq!(kinds(&report), []);
}

#[test]
fn an_inherited_management_group_grant_counts_and_is_flagged_as_wider() {
    let mg = "/providers/Microsoft.Management/managementGroups/mg-platform";
    let report = run(
        &[release_assignment(mg, "00000000-0000-4000-8000-00000000000d", PUSH)],
        &[release_protected()],
    );
    assert_eq!(kinds(&report), [("scope-wider-than-needed", Severity::High)]);
    assert!(report.findings[0].message.contains("at management group scope"));
    assert!(report.findings[0].message.contains("(inherited from management group mg-platform)"));
    let root = run(
        &[release_assignment("/", "00000000-0000-4000-8000-00000000000e", PUSH)],
        &[release_protected()],
    );
    assert!(root.findings[0].message.contains("(inherited from the root)"));
    assert_eq!(
        root.findings[0].fix.split(" && ").last().unwrap(),
        delete("", "00000000-0000-4000-8000-00000000000e")
    );
}

#[test]
fn a_group_grant_counts_only_for_identities_that_list_the_group() {
    let group_push = az_assignment(
        &acr(),
        "00000000-0000-4000-8000-00000000000f",
        (GROUP, Some("ci-pushers"), "Group"),
        PUSH,
    );
    // Membership unknown: not attributed, and said so.
    let report = run(std::slice::from_ref(&group_push), &[release_protected()]);
    assert_eq!(kinds(&report), [("missing-grant", Severity::High)]);
    assert!(report
        .notes
        .iter()
        .any(|n| n.starts_with("1 group role assignment(s) were not attributed")));
    // Declared: the need is met, through the group; the fix grants directly and leaves the group.
    let mut member = release_protected();
    member.groups = vec![GROUP.to_owned()];
    let report = run(&[group_push], &[member]);
    assert_eq!(kinds(&report), [("indirect-grant", Severity::Medium)]);
    let finding = &report.findings[0];
    assert!(finding.message.contains(&format!("through group {GROUP}")));
    assert_eq!(
        finding.fix,
        format!(
            "{} && az ad group member remove --group {GROUP} --member-id {RELEASE_OBJECT}",
            create_push()
        )
    );
}

#[test]
fn service_principals_the_policy_does_not_know_are_reported_and_users_are_not() {
    let stranger = "e9e9e9e9-0000-4000-8000-0000000000cc";
    let rows = [
        release_assignment(&acr(), "00000000-0000-4000-8000-000000000001", PUSH),
        az_assignment(
            &rg_app(),
            "00000000-0000-4000-8000-000000000010",
            (stranger, Some("99999999-0000-0000-0000-0000000000cc"), "ServicePrincipal"),
            PUSH,
        ),
        az_assignment(
            &subscription(),
            "00000000-0000-4000-8000-000000000011",
            (stranger, None, "ServicePrincipal"),
            OWNER_ROLE,
        ),
        az_assignment(
            &subscription(),
            "00000000-0000-4000-8000-000000000012",
            ("d1d1d1d1-0000-4000-8000-0000000000bb", Some("alice@contoso.example"), "User"),
            OWNER_ROLE,
        ),
    ];
    let report = run(&rows, &[release()]);
    assert_eq!(
        kinds(&report),
        [("unknown-principal", Severity::Medium), ("unknown-principal", Severity::Low)]
    );
    assert!(report.findings.iter().all(|f| f.identity.is_none() && !f.raised));
    assert!(report.findings[1]
        .message
        .starts_with("service principal 99999999-0000-0000-0000-0000000000cc holds AcrPush"));
    assert!(report.notes.iter().any(|n| n.starts_with("1 assignment(s) of users")));
}

#[test]
fn principal_name_equal_to_the_client_id_identifies_the_service_principal() {
    let mut identity = release_protected();
    identity.principal_id = None;
    let rows = [release_assignment(&rg_app(), "00000000-0000-4000-8000-000000000013", PUSH)];
    let report = run(&rows, &[identity.clone()]);
    assert_eq!(
        report.identities[0].principal_id.as_deref(),
        Some(RELEASE_OBJECT),
        "learnt from the export"
    );
    assert_eq!(kinds(&report), [("scope-wider-than-needed", Severity::High)]);
    assert!(
        report.findings[0].fix.starts_with(&create_push()),
        "the learnt object id names the assignment"
    );

    // Nothing names it: the fix reads the object id first, and a note says why nothing matched.
    let report = run(&[], &[identity]);
    assert!(report.findings[0].fix.starts_with(&format!(
        "RELEASE_OBJECT_ID=\"$(az ad sp show --id {RELEASE_CLIENT} --query id -o tsv)\" && az role assignment create --assignee-object-id \"$RELEASE_OBJECT_ID\""
    )));
    assert!(report
        .notes
        .iter()
        .any(|n| n.starts_with("identity release: the model has no object id")));
}

#[test]
fn reachability_from_any_branch_raises_risk_findings_one_step_and_not_missing_grants() {
    let rows = [
        release_assignment(&rg_app(), "00000000-0000-4000-8000-000000000014", PUSH),
        release_assignment(
            &subscription(),
            "00000000-0000-4000-8000-000000000015",
            ("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader"),
        ),
    ];
    let mut second = release_protected();
    second.name = "second".to_owned();
    second.principal_id = Some("b7b7b7b7-0000-4000-8000-000000000007".to_owned());
    second.client_id = "11111111-0000-0000-0000-000000000007".to_owned();
    let protected_report = run(&rows, &[release_protected(), second.clone()]);
    let any = Identity { reachability: any_branch(), ..release_protected() };
    let second_any = Identity { reachability: any_branch(), ..second };
    let raised_report = run(&rows, &[any, second_any]);
    // `second` holds nothing: its need is missing, whoever can reach it.
    assert_eq!(
        kinds(&protected_report),
        [
            ("scope-wider-than-needed", Severity::High),
            ("actions-wider-than-needed", Severity::Low),
            ("missing-grant", Severity::High),
        ]
    );
    assert_eq!(
        kinds(&raised_report),
        [
            ("scope-wider-than-needed", Severity::Critical),
            ("actions-wider-than-needed", Severity::Medium),
            ("missing-grant", Severity::High),
        ]
    );
    let raised: Vec<bool> = raised_report.findings.iter().map(|f| f.raised).collect();
    assert_eq!(raised, [true, true, false]);
    assert!(raised_report.findings[0].message.contains(
        "[severity raised from high to critical: the identity is reachable from any branch: flexible credential"
    ));
    assert_eq!(protected_report.findings[0].fingerprint, raised_report.findings[0].fingerprint);
    let Reachability::AnyBranch { reason } = any_branch() else { unreachable!() };
    assert!(raised_report.findings[1].message.ends_with(&format!("{reason}]")));
}

#[test]
fn custom_roles_are_judged_with_the_definitions_export_and_noted_without_it() {
    let helper = ("d8b2f3c4-5e6a-4b7c-8d9e-0f1a2b3c4d5e", "Access Helper");
    let rows = [
        release_assignment(&acr(), "00000000-0000-4000-8000-000000000001", PUSH),
        release_assignment(&rg_app(), "00000000-0000-4000-8000-000000000016", helper),
    ];
    let without = run(&rows, &[release_protected()]);
    assert_eq!(kinds(&without), []);
    assert!(without.notes.iter().any(|n| n.starts_with(
        "role definition d8b2f3c4-5e6a-4b7c-8d9e-0f1a2b3c4d5e (Access Helper) is neither built in"
    )));
    let catalogue =
        Catalogue::with_definitions(include_bytes!("../testdata/definitions-custom.json")).unwrap();
    let with = audit(&export(&rows), &[release_protected()], &catalogue).unwrap();
    assert_eq!(kinds(&with), [("escalation", Severity::Critical)]);
    assert!(with.findings[0].message.contains("Access Helper"));
}

#[test]
fn a_same_role_assignment_narrowed_by_a_condition_still_meets_the_need() {
    let shapes = parse_assignments(include_bytes!("../testdata/assignments-shapes.json")).unwrap();
    let writer = shapes.into_iter().nth(3).unwrap();
    let mut identity = release_protected();
    identity.needs = vec![need("Container Registry Repository Writer", &acr())];
    let report = audit(&[writer], &[identity], builtin()).unwrap();
    assert_eq!(kinds(&report), []);
}

#[test]
fn an_export_without_inherited_assignments_gets_a_note() {
    let report = run(
        &[release_assignment(&acr(), "00000000-0000-4000-8000-000000000001", PUSH)],
        &[release()],
    );
    assert!(report.notes.iter().any(|n| n.contains("without `--include-inherited`")));
}

#[test]
fn invalid_identities_are_refused() {
    let mut bad = release();
    bad.principal_id = Some("object".to_owned());
    assert_eq!(audit(&[], &[bad], builtin()).unwrap_err().kind(), "rbac-invalid-value");
}
