#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;

use super::*;
use crate::rbac::tests::{acr, S};
use crate::rbac::ScopeError;

#[test]
fn a_role_is_a_built_in_name_a_guid_or_a_definition_id() {
    let push = "8311e382-0749-4cb8-b61a-304f252e45ec";
    for written in [
        "AcrPush".to_owned(),
        "acrpush".to_owned(),
        push.to_uppercase(),
        format!("/providers/Microsoft.Authorization/roleDefinitions/{push}"),
        format!("/subscriptions/{S}/providers/Microsoft.Authorization/roleDefinitions/{push}"),
    ] {
        let need = RoleNeed::parse(&json!({ "role": written, "scope": acr() })).unwrap();
        assert_eq!(need.role, RoleRef { guid: push.to_owned(), name: Some("AcrPush".to_owned()) });
        assert_eq!(need.scope.as_str(), acr());
    }
    let custom = RoleNeed::parse(&json!({
        "role": "c7a1e2b3-4d5f-4a6b-9c8d-7e6f5a4b3c2d", "scope": acr()
    }))
    .unwrap();
    assert_eq!(custom.role.name, None, "a custom role is known by GUID until its definition is");
    assert_eq!(custom.role.to_string(), "custom role c7a1e2b3-4d5f-4a6b-9c8d-7e6f5a4b3c2d");
}

#[test]
fn a_custom_role_name_resolves_with_the_definitions_export() {
    let catalogue =
        Catalogue::with_definitions(include_bytes!("../testdata/definitions-custom.json")).unwrap();
    let need = RoleNeed::parse_with(
        &json!({ "role": "Platform Web Deployer", "scope": acr() }),
        &catalogue,
    )
    .unwrap();
    assert_eq!(need.role.guid, "c7a1e2b3-4d5f-4a6b-9c8d-7e6f5a4b3c2d");
    assert_eq!(
        RoleNeed::parse(&json!({ "role": "Platform Web Deployer", "scope": acr() }))
            .unwrap_err()
            .kind(),
        "rbac-unknown-role"
    );
}

#[test]
fn errors_name_the_member_and_say_what_to_change() {
    let error = |value: serde_json::Value| RoleNeed::parse(&value).unwrap_err();
    assert_eq!(
        error(json!({ "role": "AcrPsuh", "scope": acr() })),
        RbacError::UnknownRole {
            at: "role".to_owned(),
            role: "AcrPsuh".to_owned(),
            suggestion: Some("AcrPush".to_owned())
        }
    );
    assert_eq!(error(json!({ "scope": acr() })), RbacError::MissingField { at: "role".to_owned() });
    assert_eq!(
        error(json!({ "role": "AcrPush", "scope": null })),
        RbacError::MissingField { at: "scope".to_owned() }
    );
    assert_eq!(
        error(json!({ "role": "AcrPush", "scope": acr(), "scopes": [] })),
        RbacError::UnknownField {
            at: String::new(),
            field: "scopes".to_owned(),
            allowed: &["role", "scope"]
        }
    );
    assert_eq!(
        error(json!({ "role": 7, "scope": acr() })),
        RbacError::WrongType { at: "role".to_owned(), expected: "a string", found: "a number" }
    );
    assert_eq!(error(json!("AcrPush")).kind(), "rbac-wrong-type");
    assert_eq!(error(json!({ "role": " ", "scope": acr() })).kind(), "rbac-invalid-value");
    assert_eq!(
        error(json!({ "role": "/providers/Microsoft.Authorization/roleDefinitions/nope", "scope": acr() })).kind(),
        "rbac-invalid-value"
    );
    let scope = error(json!({ "role": "AcrPush", "scope": "subscriptions/x" }));
    assert_eq!(
        scope,
        RbacError::Scope {
            at: "scope".to_owned(),
            error: ScopeError::MissingLeadingSlash { value: "subscriptions/x".to_owned() }
        }
    );
    assert!(scope
        .to_string()
        .starts_with("`scope`: scope `subscriptions/x` does not start with `/`"));
}

#[test]
fn a_list_of_needs_names_the_index_of_the_bad_one() {
    let list = json!([
        { "role": "AcrPush", "scope": acr() },
        { "role": "Reader", "scope": "/subscriptions//x" },
    ]);
    let error = RoleNeed::parse_list(&list).unwrap_err();
    assert!(matches!(&error, RbacError::Scope { at, .. } if at == "[1].scope"), "{error:?}");
    assert_eq!(
        RoleNeed::parse_list(&json!([{ "role": "AcrPull", "scope": acr() }])).unwrap().len(),
        1
    );
    assert_eq!(RoleNeed::parse_list(&json!({})).unwrap_err().kind(), "rbac-wrong-type");
    let many =
        serde_json::Value::Array(vec![json!({ "role": "AcrPull", "scope": acr() }); MAX_NEEDS + 1]);
    assert_eq!(
        RoleNeed::parse_list(&many).unwrap_err(),
        RbacError::TooMany { what: "role needs", count: MAX_NEEDS + 1, limit: MAX_NEEDS }
    );
}

#[test]
fn identities_are_checked_and_normalised() {
    let mut identity = Identity::new(
        "release",
        "11111111-0000-0000-0000-00000000000A",
        Reachability::AnyBranch { reason: "ref:*".to_owned() },
    );
    identity.principal_id = Some("{A6A6A6A6-0000-4000-8000-000000000006}".to_owned());
    let checked = validated(std::slice::from_ref(&identity)).unwrap();
    assert_eq!(checked[0].client_id, "11111111-0000-0000-0000-00000000000a");
    assert_eq!(checked[0].principal_id.as_deref(), Some("a6a6a6a6-0000-4000-8000-000000000006"));
    assert!(identity.reachability.is_any_branch());
    assert_eq!(identity.reachability.to_string(), "reachable from any branch: ref:*");

    let duplicate = validated(&[identity.clone(), identity.clone()]).unwrap_err();
    assert_eq!(duplicate.kind(), "rbac-invalid-value");
    let mut bad = identity.clone();
    bad.client_id = "my-app".to_owned();
    assert_eq!(
        validated(&[bad]).unwrap_err(),
        RbacError::InvalidValue {
            at: "identities[release].client_id".to_owned(),
            value: "my-app".to_owned(),
            expected: "a GUID".to_owned()
        }
    );
    let mut twin = identity.clone();
    twin.name = "release-tags".to_owned();
    let shared = validated(&[identity.clone(), twin]).unwrap_err();
    assert!(
        shared.to_string().contains("merge the rules of one app into one identity"),
        "{shared}"
    );
    let mut group = identity;
    group.groups = vec!["platform-deployers".to_owned()];
    assert!(validated(&[group]).unwrap_err().to_string().contains("groups[]"));
}
