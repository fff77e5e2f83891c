#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::rbac::RbacError;

const CUSTOM: &str = include_str!("../testdata/definitions-custom.json");
const S: &str = "6f1c3a5e-2d4b-4c8a-9e7f-1a2b3c4d5e6f";

fn builtin() -> &'static Catalogue {
    Catalogue::builtin().unwrap()
}

#[test]
fn the_vendored_catalogue_loads_with_unique_names_and_guids_and_its_source() {
    let roles = builtin().roles();
    assert_eq!(roles.len(), 37);
    let mut names: Vec<String> = roles.iter().map(|r| r.role_name.to_ascii_lowercase()).collect();
    let mut guids: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
    names.dedup();
    guids.sort_unstable();
    guids.dedup();
    assert_eq!((names.len(), guids.len()), (37, 37));
    for role in roles {
        assert!(role.is_builtin(), "{}", role.role_name);
        assert_eq!(
            role.id,
            format!("/providers/Microsoft.Authorization/roleDefinitions/{}", role.name)
        );
        assert_eq!(parse_guid(&role.name).as_deref(), Some(role.name.as_str()));
        assert!(!role.permissions.is_empty());
    }
    let document: Value = serde_json::from_str(BUILTIN_ROLES).unwrap();
    assert!(document["source"]["document"].as_str().unwrap().contains("MicrosoftDocs/azure-docs"));
    assert_eq!(document["source"]["retrieved"], "2026-11");
}

#[test]
fn the_roles_the_checks_need_are_there_with_their_published_guids() {
    for (name, guid) in [
        ("Owner", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"),
        ("Contributor", "b24988ac-6180-42a0-ab88-20f7382dd24c"),
        ("Reader", "acdd72a7-3385-48ef-bd42-f606fba81ae7"),
        ("User Access Administrator", "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"),
        ("Role Based Access Control Administrator", "f58310d9-a9f6-439a-9e8d-f62e7b41a168"),
        ("AcrPush", "8311e382-0749-4cb8-b61a-304f252e45ec"),
        ("AcrPull", "7f951dda-4ed3-4680-a7ca-43fe172d538d"),
        ("AcrDelete", "c2f4ef07-c644-48eb-af81-4b1b4947fb11"),
        ("Container Registry Repository Reader", "b93aa761-3e63-49ed-ac28-beffa264f7ac"),
        ("Container Registry Repository Writer", "2a1e307c-b015-4ebd-883e-5b7698a07328"),
        ("Container Registry Repository Contributor", "2efddaa5-3f1f-4df3-97df-af3f13818f4c"),
        ("Storage Blob Data Reader", "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"),
        ("Storage Blob Data Contributor", "ba92f5b4-2d11-453d-a403-e96b0029c9fe"),
        ("Storage Blob Data Owner", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"),
        ("Key Vault Secrets User", "4633458b-17de-408a-b874-0445c86b69e6"),
        ("Key Vault Secrets Officer", "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"),
        ("Key Vault Administrator", "00482a5a-887f-4fb3-b363-3b7fe8e74483"),
        ("Website Contributor", "de139f84-1756-47ae-9be6-808fbbe84772"),
        ("Azure Kubernetes Service Cluster User Role", "4abbcc35-e782-43d8-92c5-2d3f1bd2253f"),
        ("Azure Kubernetes Service RBAC Writer", "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb"),
        ("Azure Kubernetes Service RBAC Admin", "3498e952-d568-435e-9b2c-8d77e338d7f7"),
        ("Virtual Machine Contributor", "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"),
        ("Network Contributor", "4d97b98b-1d4f-4787-a291-c67834d212e7"),
        ("Monitoring Reader", "43d0d8ad-25c7-4714-9337-8ba259a9fe05"),
        ("Log Analytics Reader", "73c42c96-874c-492b-b04d-ab87d138a893"),
        ("Managed Identity Operator", "f1a07417-d97a-45cb-824c-7a7467783830"),
        ("Azure Service Bus Data Sender", "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39"),
    ] {
        assert_eq!(builtin().by_name(name).map(|r| r.name.as_str()), Some(guid), "{name}");
    }
    let push = builtin().by_name("AcrPush").unwrap();
    assert_eq!(
        push.permissions[0].actions,
        [
            "Microsoft.ContainerRegistry/registries/pull/read",
            "Microsoft.ContainerRegistry/registries/push/write"
        ]
    );
}

#[test]
fn lookup_works_by_name_guid_and_both_definition_id_forms() {
    let catalogue = builtin();
    let push = "8311e382-0749-4cb8-b61a-304f252e45ec";
    assert_eq!(catalogue.by_name("acrpush").unwrap().name, push);
    assert_eq!(catalogue.by_guid(&push.to_uppercase()).unwrap().role_name, "AcrPush");
    let tenant_form = format!("/providers/Microsoft.Authorization/roleDefinitions/{push}");
    let subscription_form =
        format!("/subscriptions/{S}/providers/microsoft.authorization/roledefinitions/{push}/");
    assert_eq!(catalogue.by_definition_id(&tenant_form).unwrap().role_name, "AcrPush");
    assert_eq!(catalogue.by_definition_id(&subscription_form).unwrap().role_name, "AcrPush");
    assert_eq!(
        role_guid_from_definition_id("/providers/Microsoft.Authorization/roleAssignments/x"),
        None
    );
    assert_eq!(role_guid_from_definition_id(push), None, "a bare GUID is not an id");
    for reference in ["AcrPush", push, tenant_form.as_str()] {
        assert_eq!(catalogue.resolve(reference, "role").unwrap().name, push);
    }
}

#[test]
fn unknown_names_get_the_closest_built_in_name() {
    let catalogue = builtin();
    for (typo, expected) in [
        ("AcrPsuh", "AcrPush"),
        ("acr push", "AcrPush"),
        ("Storage Blob Data Contibutor", "Storage Blob Data Contributor"),
        ("Key Vault Secret User", "Key Vault Secrets User"),
        ("Contributer", "Contributor"),
    ] {
        assert_eq!(catalogue.suggest(typo), Some(expected), "{typo}");
    }
    assert_eq!(catalogue.suggest("Deploy Everything Please"), None);
    let error = catalogue.resolve("AcrPsuh", "rules[2].azure.roles[0].role").unwrap_err();
    assert_eq!(
        error,
        RbacError::UnknownRole {
            at: "rules[2].azure.roles[0].role".to_owned(),
            role: "AcrPsuh".to_owned(),
            suggestion: Some("AcrPush".to_owned()),
        }
    );
    assert!(error.to_string().contains("did you mean `AcrPush`?"));
    assert!(error.to_string().contains("a custom role is named by its GUID"));
}

#[test]
fn distances_count_characters() {
    use crate::text::ident::distance;
    assert_eq!(distance("", ""), 0);
    assert_eq!(distance("kitten", "sitting"), 3);
    assert_eq!(distance("ä", "a"), 1);
    assert_eq!(distance("abc", ""), 3);
}

#[test]
fn custom_roles_come_from_the_definitions_export_and_override_by_guid() {
    let catalogue = Catalogue::with_definitions(CUSTOM.as_bytes()).unwrap();
    assert_eq!(catalogue.roles().len(), 39);
    let deployer = catalogue.by_name("platform web deployer").unwrap();
    assert!(!deployer.is_builtin());
    assert_eq!(deployer.permissions[0].not_actions, ["Microsoft.Web/sites/delete"]);
    assert_eq!(
        catalogue.by_guid("d8b2f3c4-5e6a-4b7c-8d9e-0f1a2b3c4d5e").unwrap().permissions[0]
            .data_actions,
        Vec::<String>::new(),
        "null is an empty list"
    );
    // A tenant's copy of a built-in role replaces the vendored one.
    let newer = r#"[{"name": "8311e382-0749-4cb8-b61a-304f252e45ec", "roleName": "AcrPush",
        "roleType": "BuiltInRole", "permissions": [{"actions": ["Microsoft.ContainerRegistry/registries/push/write"]}]}]"#;
    let catalogue = Catalogue::with_definitions(newer.as_bytes()).unwrap();
    assert_eq!(catalogue.roles().len(), 37);
    assert_eq!(catalogue.by_name("AcrPush").unwrap().permissions[0].actions.len(), 1);
    assert_eq!(
        catalogue.by_name("AcrPush").unwrap().id,
        "/providers/Microsoft.Authorization/roleDefinitions/8311e382-0749-4cb8-b61a-304f252e45ec",
        "an absent id is the tenant form"
    );
}

#[test]
fn a_bad_definitions_export_is_refused_at_the_entry_that_is_wrong() {
    let kind = |json: &str| Catalogue::with_definitions(json.as_bytes()).unwrap_err().kind();
    assert_eq!(kind("{"), "rbac-json");
    assert_eq!(kind(r#"{"value": []}"#), "rbac-not-an-array");
    assert_eq!(
        Catalogue::with_definitions(br#"[{"roleName": "x", "permissions": []}]"#).unwrap_err(),
        RbacError::MissingField { at: "[0].name".to_owned() }
    );
    assert_eq!(
        Catalogue::with_definitions(br#"[{"name": "not-a-guid", "roleName": "x"}]"#)
            .unwrap_err()
            .kind(),
        "rbac-invalid-value"
    );
    assert_eq!(
        Catalogue::with_definitions(
            br#"[{"name": "d8b2f3c4-5e6a-4b7c-8d9e-0f1a2b3c4d5e", "roleName": "x", "permissions": [{"actions": [1]}]}]"#
        )
        .unwrap_err(),
        RbacError::WrongType {
            at: "[0].permissions[0].actions[0]".to_owned(),
            expected: "a string",
            found: "a number"
        }
    );
    let too_large = vec![b' '; MAX_EXPORT_BYTES + 1];
    assert_eq!(
        Catalogue::with_definitions(&too_large).unwrap_err(),
        RbacError::TooLarge {
            what: "the role definitions export",
            size: MAX_EXPORT_BYTES + 1,
            limit: MAX_EXPORT_BYTES
        }
    );
}

#[test]
fn the_narrowest_covering_built_in_role_is_the_task_role() {
    let catalogue = builtin();
    let by = |name: &str| catalogue.by_name(name).unwrap();
    assert_eq!(catalogue.narrowest_covering(&[by("AcrPush")]).unwrap().role_name, "AcrPush");
    assert_eq!(catalogue.narrowest_covering(&[by("AcrPull")]).unwrap().role_name, "AcrPull");
    assert_eq!(
        catalogue.narrowest_covering(&[by("AcrPull"), by("AcrDelete")]).unwrap().role_name,
        "Contributor",
        "no task role does both; Contributor is the narrowest that does"
    );
    assert_eq!(
        catalogue.narrowest_covering(&[by("AcrPush"), by("Key Vault Secrets User")]),
        None,
        "no built-in role has both registry actions and secret data actions"
    );
}

#[test]
fn the_narrowest_role_for_a_set_of_operations() {
    let catalogue = builtin();
    let name = |actions: &[&str], data: &[&str]| {
        catalogue.narrowest_for_actions(actions, data).map(|r| r.role_name.as_str())
    };
    assert_eq!(name(&["Microsoft.ContainerRegistry/registries/push/write"], &[]), Some("AcrPush"));
    assert_eq!(name(&["Microsoft.ContainerRegistry/registries/pull/read"], &[]), Some("AcrPull"));
    assert_eq!(
        name(&[], &["Microsoft.KeyVault/vaults/secrets/getSecret/action"]),
        Some("Key Vault Secrets User")
    );
    assert_eq!(
        name(&[], &["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"]),
        Some("Storage Blob Data Contributor")
    );
    assert_eq!(name(&["Microsoft.Web/sites/write"], &[]), Some("Website Contributor"));
    assert_eq!(
        name(&["Microsoft.Authorization/roleAssignments/write"], &[]),
        Some("Role Based Access Control Administrator")
    );
    assert_eq!(name(&[], &["Microsoft.Nothing/at/all"]), None);
}
