#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

const S: &str = "6f1c3a5e-2d4b-4c8a-9e7f-1a2b3c4d5e6f";

fn scope(value: &str) -> Scope {
    Scope::parse(value).unwrap()
}

fn error(value: &str) -> ScopeError {
    Scope::parse(value).unwrap_err()
}

#[test]
fn each_level_parses_with_its_parts() {
    let root = scope("/");
    assert_eq!((root.level(), root.as_str()), (ScopeLevel::Root, "/"));
    let mg = scope("/providers/Microsoft.Management/managementGroups/mg-platform");
    assert_eq!(mg.level(), ScopeLevel::ManagementGroup);
    assert_eq!(mg.management_group(), Some("mg-platform"));
    assert_eq!(mg.resource_type(), None);
    let sub = scope(&format!("/subscriptions/{S}"));
    assert_eq!((sub.level(), sub.subscription_id()), (ScopeLevel::Subscription, Some(S)));
    let rg = scope(&format!("/subscriptions/{S}/resourceGroups/rg-app"));
    assert_eq!((rg.level(), rg.resource_group()), (ScopeLevel::ResourceGroup, Some("rg-app")));
    let acr = scope(&format!(
        "/subscriptions/{S}/resourceGroups/rg-app/providers/Microsoft.ContainerRegistry/registries/acrapp"
    ));
    assert_eq!(acr.level(), ScopeLevel::Resource);
    assert_eq!(acr.resource_type(), Some("Microsoft.ContainerRegistry/registries"));
    assert!(root.is_wide() && mg.is_wide() && sub.is_wide());
    assert!(!rg.is_wide() && !acr.is_wide());
}

#[test]
fn nested_and_extension_resources_have_the_innermost_type() {
    let container = scope(&format!(
        "/subscriptions/{S}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st/blobServices/default/containers/artifacts"
    ));
    assert_eq!(
        container.resource_type(),
        Some("Microsoft.Storage/storageAccounts/blobServices/containers")
    );
    let extension = scope(&format!(
        "/subscriptions/{S}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/providers/Microsoft.Insights/diagnosticSettings/audit"
    ));
    assert_eq!(extension.resource_type(), Some("Microsoft.Insights/diagnosticSettings"));
    let subscription_resource =
        scope(&format!("/subscriptions/{S}/providers/Microsoft.Authorization/roleDefinitions/x"));
    assert_eq!(subscription_resource.level(), ScopeLevel::Resource);
    let tenant_resource = scope("/providers/Microsoft.Capacity/reservationOrders/r1");
    assert_eq!(tenant_resource.level(), ScopeLevel::Resource);
    assert_eq!(tenant_resource.subscription_id(), None);
    let under_mg = scope(
        "/providers/Microsoft.Management/managementGroups/mg/providers/Microsoft.Authorization/policyAssignments/p",
    );
    assert_eq!((under_mg.level(), under_mg.management_group()), (ScopeLevel::Resource, Some("mg")));
}

#[test]
fn containment_is_by_whole_segments_so_rg_does_not_contain_rg2() {
    let rg = scope(&format!("/subscriptions/{S}/resourceGroups/rg"));
    let rg2 = scope(&format!("/subscriptions/{S}/resourceGroups/rg2"));
    let in_rg =
        scope(&format!("/subscriptions/{S}/resourceGroups/rg/providers/Microsoft.Web/sites/a"));
    assert!(rg.contains(&in_rg));
    assert!(rg.contains(&rg));
    assert!(!rg.contains(&rg2));
    assert!(!rg2.contains(&in_rg));
    assert!(!in_rg.contains(&rg));
    assert!(rg.is_wider_than(&in_rg));
    assert!(!rg.is_wider_than(&rg));
}

#[test]
fn ids_compare_ignoring_case_and_a_trailing_slash_and_print_as_written() {
    let written = scope(&format!("/subscriptions/{S}/resourceGroups/RG-App/"));
    let exported = scope(&format!("/SUBSCRIPTIONS/{}/resourcegroups/rg-app", S.to_uppercase()));
    assert_eq!(written, exported);
    assert_eq!(written.as_str(), format!("/subscriptions/{S}/resourceGroups/RG-App"));
    assert_eq!(written.to_string(), written.as_str());
    assert_eq!(exported.level(), ScopeLevel::ResourceGroup);
    let child =
        scope(&format!("/subscriptions/{S}/resourcegroups/rg-app/providers/MICROSOFT.WEB/sites/a"));
    assert!(written.contains(&child));
    let mut set = std::collections::HashSet::new();
    set.insert(written.clone());
    assert!(set.contains(&exported));
}

#[test]
fn the_root_contains_everything_and_a_management_group_applies_to_subscriptions_only_by_inheritance(
) {
    let root = scope("/");
    let mg = scope("/providers/Microsoft.Management/managementGroups/mg");
    let sub = scope(&format!("/subscriptions/{S}"));
    let rg = scope(&format!("/subscriptions/{S}/resourceGroups/rg"));
    assert!(root.contains(&mg) && root.contains(&sub) && root.contains(&rg));
    // The hierarchy is not in the ids: lexically a management group contains no subscription.
    assert!(!mg.contains(&sub));
    // An --include-inherited export lists it because it applies there.
    assert!(mg.applies_to(&sub) && mg.applies_to(&rg));
    assert!(!sub.contains(&mg) && !sub.applies_to(&mg));
    let tenant_resource = scope("/providers/Microsoft.Capacity/reservationOrders/r1");
    assert!(!mg.applies_to(&tenant_resource));
    assert!(root.applies_to(&tenant_resource));
}

#[test]
fn malformed_scopes_are_refused_with_what_to_change() {
    assert_eq!(error(""), ScopeError::Empty);
    assert_eq!(error("subscriptions/x").kind(), "scope-missing-leading-slash");
    let repeated = error(&format!("/subscriptions/{S}//resourceGroups/rg"));
    assert_eq!(
        repeated,
        ScopeError::RepeatedSlash {
            value: format!("/subscriptions/{S}//resourceGroups/rg"),
            position: 52
        }
    );
    assert!(repeated.to_string().contains("remove the extra `/`"));
    assert_eq!(error("//").kind(), "scope-repeated-slash");
    assert_eq!(
        error(&format!("/subscriptions/{S}/resourceGroups/rg//")).kind(),
        "scope-repeated-slash"
    );
    assert_eq!(error(&format!("/subscriptions/{S} ")).kind(), "scope-whitespace");
    assert_eq!(error("/subscriptions\t/x").kind(), "scope-whitespace");
    let missing = error("/subscriptions/");
    assert_eq!(
        missing,
        ScopeError::MissingName {
            value: "/subscriptions/".to_owned(),
            after: "/subscriptions".to_owned()
        }
    );
    assert!(missing.to_string().contains("add it (/subscriptions/<name>)"));
    assert_eq!(
        error(&format!("/subscriptions/{S}/resourceGroups")),
        ScopeError::MissingName {
            value: format!("/subscriptions/{S}/resourceGroups"),
            after: format!("/subscriptions/{S}/resourceGroups"),
        }
    );
    assert_eq!(
        error("/providers/Microsoft.Management/managementGroups").kind(),
        "scope-missing-name"
    );
    assert_eq!(
        error(&format!("/subscriptions/{S}/resourceGroups/rg/providers/Microsoft.Web/sites")),
        ScopeError::IncompleteType {
            value: format!("/subscriptions/{S}/resourceGroups/rg/providers/Microsoft.Web/sites"),
            provider: "Microsoft.Web".to_owned(),
        }
    );
    assert_eq!(
        error(&format!("/subscriptions/{S}/providers/Microsoft.Web")).kind(),
        "scope-incomplete-type"
    );
    let unexpected = error("/tenants/x");
    assert_eq!(unexpected.kind(), "scope-unexpected-segment");
    assert!(unexpected.to_string().contains("`tenants` cannot stand here"));
    assert_eq!(error(&format!("/subscriptions/{S}/rg/x")).kind(), "scope-unexpected-segment");
    let long = format!("/subscriptions/{S}/resourceGroups/{}", "a".repeat(MAX_SCOPE_LEN));
    assert_eq!(error(&long).kind(), "scope-too-long");
}

#[test]
fn levels_order_from_widest_to_narrowest() {
    assert!(ScopeLevel::Root < ScopeLevel::ManagementGroup);
    assert!(ScopeLevel::ManagementGroup < ScopeLevel::Subscription);
    assert!(ScopeLevel::ResourceGroup < ScopeLevel::Resource);
    assert_eq!(ScopeLevel::ManagementGroup.to_string(), "management group");
}
