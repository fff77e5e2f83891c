#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::rbac::Catalogue;

fn role(name: &str) -> &'static RoleDefinition {
    Catalogue::builtin().unwrap().by_name(name).unwrap()
}

#[test]
fn arm_wildcards_match_any_run_of_characters_ignoring_case() {
    assert!(action_matches("*", "Microsoft.Web/sites/write"));
    assert!(action_matches(
        "Microsoft.Storage/*",
        "Microsoft.Storage/storageAccounts/listKeys/action"
    ));
    assert!(!action_matches(
        "Microsoft.Storage/*",
        "Microsoft.StorageSync/storageSyncServices/read"
    ));
    assert!(action_matches("*/read", "Microsoft.Web/sites/read"));
    assert!(!action_matches("*/read", "Microsoft.Web/sites/write"));
    assert!(action_matches(
        "Microsoft.Authorization/*/Write",
        "Microsoft.Authorization/roleAssignments/write"
    ));
    assert!(action_matches(
        "microsoft.authorization/*/write",
        "MICROSOFT.AUTHORIZATION/ROLEDEFINITIONS/WRITE"
    ));
    assert!(!action_matches(
        "Microsoft.Authorization/*/write",
        "Microsoft.Authorization/roleAssignments/delete"
    ));
    assert!(action_matches(
        "Microsoft.ServiceBus/*/send/action",
        "Microsoft.ServiceBus/namespaces/queues/send/action"
    ));
    assert!(action_matches("a*b*c", "axxbyyc") && !action_matches("a*b*c", "axxbyy"));
    assert!(action_matches("", "") && !action_matches("", "a"));
}

#[test]
fn a_pattern_matching_another_pattern_means_it_covers_it() {
    assert!(action_matches("*", "Microsoft.Web/*"));
    assert!(action_matches("Microsoft.Web/*", "Microsoft.Web/sites/*"));
    assert!(action_matches("*/read", "Microsoft.Web/*/read"));
    assert!(!action_matches("Microsoft.Web/sites/*", "Microsoft.Web/*"));
    assert!(!action_matches("*/read", "*"));
    assert!(!action_matches("Microsoft.Web/sites/read", "Microsoft.Web/sites/*"));
}

#[test]
fn overlap_is_decided_for_patterns_on_both_sides() {
    assert!(patterns_overlap("Microsoft.Authorization/*/Write", "*"));
    assert!(patterns_overlap("*/read", "Microsoft.Web/*"));
    assert!(patterns_overlap("Microsoft.Web/*/delete", "*/sites/*"));
    assert!(!patterns_overlap("*/read", "*/write"));
    assert!(!patterns_overlap("Microsoft.Web/*", "Microsoft.Storage/*"));
    assert!(!patterns_overlap("Microsoft.Web/sites/read", "Microsoft.Web/sites/write"));
    assert!(patterns_overlap("MICROSOFT.WEB/SITES/READ", "microsoft.web/sites/read"));
    let long = "a".repeat(MAX_PATTERN_LEN + 1);
    assert!(patterns_overlap(&long, "b"), "too long: the cautious answer");
}

#[test]
fn escalation_is_role_assignment_or_definition_write_minus_not_actions() {
    assert_eq!(
        role("Contributor").escalation(),
        None,
        "Microsoft.Authorization/*/Write is a notAction"
    );
    let owner = role("Owner").escalation().unwrap();
    assert_eq!(
        (owner.action, owner.conditional),
        ("Microsoft.Authorization/roleAssignments/write", false)
    );
    assert!(role("User Access Administrator").escalation().is_some());
    assert!(role("Role Based Access Control Administrator").escalation().is_some());
    let conditioned = role("Key Vault Data Access Administrator").escalation().unwrap();
    assert!(conditioned.conditional, "only a block with an ABAC condition allows it");
    for harmless in ["Reader", "AcrPush", "Key Vault Secrets User", "Website Contributor"] {
        assert_eq!(role(harmless).escalation(), None, "{harmless}");
    }
}

#[test]
fn write_capable_means_some_effective_pattern_is_not_a_read() {
    for writes in [
        "Owner",
        "Contributor",
        "AcrPush",
        "AcrDelete",
        "Storage Blob Data Contributor",
        "Container Registry Repository Writer",
        "Website Contributor",
        // `*/action` is not a read by the rule, whatever the action does (`search/action`,
        // `secrets/readMetadata/action`): the cautious reading, since `listKeys/action` reads
        // keys that write.
        "Monitoring Reader",
        "Key Vault Reader",
        "Storage Blob Data Reader",
    ] {
        assert!(role(writes).is_write_capable(), "{writes}");
    }
    for reads in [
        "Reader",
        "AcrPull",
        "Container Registry Repository Reader",
        "Azure Kubernetes Service RBAC Reader",
    ] {
        assert!(!role(reads).is_write_capable(), "{reads}");
    }
    assert_eq!(
        role("Storage Blob Data Reader").first_non_read(),
        Some((
            Plane::Control,
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"
        ))
    );
    assert_eq!(role("Contributor").first_non_read(), Some((Plane::Control, "*")));
}

#[test]
fn coverage_compares_patterns_and_tolerates_shared_exclusions() {
    assert!(role("Owner").covers(role("Contributor")));
    assert!(role("Contributor").covers(role("AcrPush")));
    assert!(role("Contributor").covers(role("Reader")));
    assert!(role("Reader").covers(role("AcrPull")), "`*/read` matches pull/read");
    assert!(!role("AcrPush").covers(role("Contributor")));
    assert!(!role("Contributor").covers(role("Owner")), "Owner can write role assignments");
    assert!(!role("Contributor").covers(role("Storage Blob Data Reader")), "no data actions");
    assert!(role("Storage Blob Data Owner").covers(role("Storage Blob Data Contributor")));
    assert!(role("Key Vault Secrets Officer").covers(role("Key Vault Secrets User")));
    assert!(!role("Key Vault Secrets User").covers(role("Key Vault Secrets Officer")));
    // The RBAC Admin notDataActions do not spoil coverage of a role with the same exclusions.
    assert!(role("Azure Kubernetes Service RBAC Cluster Admin")
        .covers(role("Azure Kubernetes Service RBAC Admin")));
    assert!(!role("Azure Kubernetes Service RBAC Admin")
        .covers(role("Azure Kubernetes Service RBAC Cluster Admin")));
    // A conditioned block covers nothing.
    let reader = RoleDefinition {
        permissions: vec![Permission {
            actions: vec!["*/read".to_owned()],
            condition: Some("@Resource[x] StringEquals 'y'".to_owned()),
            ..Permission::default()
        }],
        ..role("Reader").clone()
    };
    assert!(!reader.covers(role("AcrPull")));
}

#[test]
fn extra_permissions_are_the_granted_patterns_no_need_covers_with_their_exclusions() {
    let extra = role("Contributor").extra_over(&[role("AcrPush")]);
    assert_eq!(extra.len(), 1);
    assert_eq!(extra[0].pattern, "*");
    assert_eq!(extra[0].except.len(), 11);
    assert!(extra[0].is_write());
    assert_eq!(
        extra[0].to_string(),
        "`*` except `Microsoft.Authorization/*/Delete`, `Microsoft.Authorization/*/Write`, \
         `Microsoft.Authorization/elevateAccess/Action` and 8 more"
    );
    assert!(role("AcrPush").extra_over(&[role("AcrPush")]).is_empty());
    assert!(role("AcrPull").extra_over(&[role("AcrPush")]).is_empty());
    let blob: Vec<String> = role("Storage Blob Data Owner")
        .extra_over(&[role("Storage Blob Data Contributor")])
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        blob,
        [
            "`Microsoft.Storage/storageAccounts/blobServices/containers/*`",
            "data `Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*`"
        ]
    );
    // Ancillary patterns (deployments, support tickets, classic alerts) are never "extra".
    let website = role("Website Contributor").extra_over(&[role("Website Contributor")]);
    assert!(website.is_empty());
}

#[test]
fn breadth_ranks_star_above_namespaces_above_single_operations() {
    assert!(role("Owner").breadth() > role("Network Contributor").breadth());
    assert!(role("Network Contributor").breadth() > role("AcrPush").breadth());
    assert_eq!(role("AcrPush").breadth(), 5, "pull/read 1, push/write 4");
    assert!(role("Reader").breadth() < role("Owner").breadth(), "reading everything is narrower");
}
