#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::rbac::tests::{acr, S};
use crate::rbac::{RbacError, ScopeError, ScopeLevel};

const SHAPES: &str = include_str!("../testdata/assignments-shapes.json");
const MONOREPO: &str = include_str!("../testdata/assignments-monorepo.json");

#[test]
fn the_cli_export_parses_with_every_member_it_prints() {
    let assignments = parse_assignments(MONOREPO.as_bytes()).unwrap();
    assert_eq!(assignments.len(), 6);
    let push = &assignments[0];
    assert_eq!(push.principal_id, "a6a6a6a6-0000-4000-8000-000000000006");
    assert_eq!(push.principal_name.as_deref(), Some("11111111-0000-0000-0000-000000000006"));
    assert_eq!(push.principal_type, PrincipalType::ServicePrincipal);
    assert_eq!(push.role_guid, "8311e382-0749-4cb8-b61a-304f252e45ec");
    assert_eq!(push.role_label(), "AcrPush");
    assert_eq!(push.scope.as_str(), acr());
    assert_eq!(push.condition, None);
    assert!(assignments[3].principal_type.is_group());
    assert_eq!(assignments[4].principal_type, PrincipalType::User);
    assert_eq!(assignments[2].scope.level(), ScopeLevel::ManagementGroup);
}

#[test]
fn rest_shapes_nulls_lowercase_ids_and_missing_scopes_are_tolerated() {
    let assignments = parse_assignments(SHAPES.as_bytes()).unwrap();
    // REST shape: members under `properties`; the object id is lowercased.
    assert_eq!(assignments[0].principal_id, "a6a6a6a6-0000-4000-8000-000000000006");
    assert_eq!(assignments[0].role_guid, "7f951dda-4ed3-4680-a7ca-43fe172d538d");
    assert_eq!(assignments[0].principal_name, None);
    assert_eq!(assignments[0].role_label(), "7f951dda-4ed3-4680-a7ca-43fe172d538d");
    // `resourcegroups` in lowercase and a trailing slash.
    assert_eq!(assignments[1].scope.level(), ScopeLevel::ResourceGroup);
    assert_eq!(assignments[1].scope.as_str(), format!("/subscriptions/{S}/resourcegroups/RG-App"));
    assert_eq!(
        assignments[1].scope,
        crate::rbac::Scope::parse(&format!("/subscriptions/{S}/resourceGroups/rg-app")).unwrap()
    );
    // No `scope`: derived from `id`.
    assert_eq!(assignments[2].scope.as_str(), acr());
    // An ABAC condition on the assignment.
    assert!(assignments[3].condition.as_deref().unwrap().contains("repositories:name"));
}

#[test]
fn a_bad_export_is_refused_with_the_entry_and_member() {
    let error = |json: &str| parse_assignments(json.as_bytes()).unwrap_err();
    assert_eq!(error("[").kind(), "rbac-json");
    assert_eq!(
        error(r#"{"value": []}"#),
        RbacError::NotAnArray { what: "the role assignments export", found: "an object" }
    );
    assert!(error("{}").to_string().contains("must be a JSON array"));
    assert_eq!(
        error("[1]"),
        RbacError::WrongType { at: "[0]".to_owned(), expected: "an object", found: "a number" }
    );
    let without_principal = format!(
        r#"[{{"id": "{}/providers/Microsoft.Authorization/roleAssignments/x", "principalId": null,
             "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/8311e382-0749-4cb8-b61a-304f252e45ec"}}]"#,
        acr()
    );
    assert_eq!(
        error(&without_principal),
        RbacError::MissingField { at: "[0].principalId".to_owned() }
    );
    let bad_role = format!(
        r#"[{{"id": "{}/providers/Microsoft.Authorization/roleAssignments/x", "principalId": "a6a6a6a6-0000-4000-8000-000000000006",
             "roleDefinitionId": "AcrPush"}}]"#,
        acr()
    );
    assert_eq!(error(&bad_role).kind(), "rbac-invalid-value");
    let bad_scope = r#"[{"id": "x", "scope": "/subscriptions//x", "principalId": "a6a6a6a6-0000-4000-8000-000000000006",
         "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/8311e382-0749-4cb8-b61a-304f252e45ec"}]"#;
    assert!(matches!(
        error(bad_scope),
        RbacError::Scope { at, error: ScopeError::RepeatedSlash { .. } } if at == "[0].scope"
    ));
    let no_scope = r#"[{"id": "x", "principalId": "a6a6a6a6-0000-4000-8000-000000000006",
         "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/8311e382-0749-4cb8-b61a-304f252e45ec"}]"#;
    assert_eq!(error(no_scope), RbacError::MissingField { at: "[0].scope".to_owned() });
    let too_large = vec![b' '; crate::rbac::MAX_EXPORT_BYTES + 1];
    assert_eq!(parse_assignments(&too_large).unwrap_err().kind(), "rbac-too-large");
}

#[test]
fn an_assignment_at_the_root_has_the_root_scope() {
    assert_eq!(
        scope_of_assignment_id("/providers/Microsoft.Authorization/roleAssignments/x").as_deref(),
        Some("/")
    );
    assert_eq!(scope_of_assignment_id("/subscriptions/s/nothing"), None);
}
