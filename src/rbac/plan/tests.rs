#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::rbac::tests::{
    acr, any_branch, builtin, need, protected, release, rg_app, subscription, S,
};

fn kinds(warnings: &[PlanWarning]) -> Vec<&'static str> {
    warnings.iter().map(PlanWarning::kind).collect()
}

#[test]
fn the_same_input_gives_byte_identical_output_whatever_the_order() {
    let mut identity = release();
    identity.needs = vec![
        need(
            "Storage Blob Data Contributor",
            &format!("{}/providers/Microsoft.Storage/storageAccounts/st", rg_app()),
        ),
        need("AcrPush", &acr()),
        need(
            "Key Vault Secrets User",
            &format!("{}/providers/Microsoft.KeyVault/vaults/kv", rg_app()),
        ),
    ];
    let mut other = Identity::new("deploy", "11111111-0000-0000-0000-000000000001", protected());
    other.needs = vec![need(
        "Website Contributor",
        &format!("{}/providers/Microsoft.Web/sites/app", rg_app()),
    )];
    let first = plan(&[identity.clone(), other.clone()], builtin()).unwrap();
    identity.needs.reverse();
    let second = plan(&[other, identity], builtin()).unwrap();
    assert_eq!(first.to_text(), second.to_text());
    assert_eq!(first.to_json(), second.to_json());
    assert_eq!(first, second);
    let names: Vec<&str> = first.identities.iter().map(|i| i.identity.as_str()).collect();
    assert_eq!(names, ["deploy", "release"]);
    // Sorted by scope: the registry, the vault, the storage account.
    let roles: Vec<&str> =
        first.identities[1].assignments.iter().map(|a| a.role_name.as_deref().unwrap()).collect();
    assert_eq!(roles, ["AcrPush", "Key Vault Secrets User", "Storage Blob Data Contributor"]);
}

#[test]
fn the_assignment_name_is_guid_of_scope_principal_and_role_definition() {
    let planned = plan(&[release()], builtin()).unwrap();
    let assignment = &planned.identities[0].assignments[0];
    let definition = format!("/subscriptions/{S}/providers/Microsoft.Authorization/roleDefinitions/8311e382-0749-4cb8-b61a-304f252e45ec");
    assert_eq!(assignment.role_definition_id, definition);
    // Python: uuid.uuid5(ARM namespace, f"{scope}-{principal}-{definition}".lower())
    assert_eq!(assignment.name.as_deref(), Some("37002897-b83e-55c9-ae7a-55c4cdec2eae"));
    // Case and a trailing slash in the policy do not change it.
    let mut shouting = release();
    shouting.needs = vec![need(
        "acrpush",
        &format!("{}/", acr().to_uppercase().replace("SUBSCRIPTIONS", "subscriptions")),
    )];
    let again = plan(&[shouting], builtin()).unwrap();
    assert_eq!(again.identities[0].assignments[0].name, assignment.name);
}

#[test]
fn the_arm_json_is_a_role_assignment_resource_at_api_2022_04_01() {
    let planned = plan(&[release()], builtin()).unwrap();
    let arm = &planned.identities[0].assignments[0].arm;
    assert_eq!(arm["type"], "Microsoft.Authorization/roleAssignments");
    assert_eq!(arm["apiVersion"], "2022-04-01");
    assert_eq!(arm["name"], "37002897-b83e-55c9-ae7a-55c4cdec2eae");
    assert_eq!(arm["scope"], acr());
    assert_eq!(
        arm["id"],
        format!("{}/providers/Microsoft.Authorization/roleAssignments/37002897-b83e-55c9-ae7a-55c4cdec2eae", acr())
    );
    assert_eq!(arm["properties"]["principalId"], "a6a6a6a6-0000-4000-8000-000000000006");
    assert_eq!(arm["properties"]["principalType"], "ServicePrincipal");
    assert_eq!(
        arm["properties"]["roleDefinitionId"],
        format!("/subscriptions/{S}/providers/Microsoft.Authorization/roleDefinitions/8311e382-0749-4cb8-b61a-304f252e45ec")
    );
}

#[test]
fn without_the_object_id_the_commands_read_it_and_the_template_takes_it_as_a_parameter() {
    let mut identity = release();
    identity.principal_id = None;
    let planned = plan(&[identity], builtin()).unwrap();
    let lookup = planned.identities[0].lookup.as_deref().unwrap();
    assert_eq!(
        lookup,
        "RELEASE_OBJECT_ID=\"$(az ad sp show --id 11111111-0000-0000-0000-000000000006 --query id -o tsv)\""
    );
    let assignment = &planned.identities[0].assignments[0];
    assert_eq!(assignment.name, None);
    assert!(assignment
        .command
        .starts_with("az role assignment create --assignee-object-id \"$RELEASE_OBJECT_ID\" "));
    assert!(!assignment.command.contains("--name"));
    assert_eq!(assignment.arm["properties"]["principalId"], "[parameters('releasePrincipalId')]");
    assert_eq!(
        assignment.arm["name"],
        format!(
            "[guid(toLower(concat('{}', '-', parameters('releasePrincipalId'), '-', '{}')))]",
            acr(),
            assignment.role_definition_id
        )
    );
    assert!(assignment.arm.get("id").is_none());
    let text = planned.to_text();
    assert!(text.contains(&format!("\n{lookup}\n")), "{text}");
}

#[test]
fn role_definition_ids_follow_the_scope() {
    let guid = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
    let reader = builtin().by_guid(guid);
    let mg = Scope::parse("/providers/Microsoft.Management/managementGroups/mg").unwrap();
    let rg = Scope::parse(&rg_app()).unwrap();
    assert_eq!(
        role_definition_id(guid, &mg, reader),
        format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}")
    );
    assert_eq!(
        role_definition_id(guid, &rg, reader),
        format!("/subscriptions/{S}/providers/Microsoft.Authorization/roleDefinitions/{guid}")
    );
    let custom = crate::rbac::Catalogue::with_definitions(include_bytes!(
        "../testdata/definitions-custom.json"
    ))
    .unwrap();
    let deployer = custom.by_name("Platform Web Deployer");
    assert_eq!(
        role_definition_id("c7a1e2b3-4d5f-4a6b-9c8d-7e6f5a4b3c2d", &mg, deployer),
        deployer.unwrap().id,
        "a custom role keeps its own id"
    );
}

#[test]
fn warnings_come_from_the_declared_need_alone() {
    let warn = |role: &str, scope: &str| kinds(&need_warnings(&need(role, scope), builtin()));
    let registry = acr();
    assert_eq!(warn("Contributor", &subscription()), ["write-at-wide-scope"]);
    assert_eq!(warn("Owner", &subscription()), ["write-at-wide-scope", "escalation-capable"]);
    assert_eq!(
        warn("Reader", &subscription()),
        Vec::<&str>::new(),
        "reading everything is not writing"
    );
    assert_eq!(warn("User Access Administrator", &rg_app()), ["escalation-capable"]);
    assert_eq!(warn("Contributor", &registry), ["broader-than-needed"]);
    assert_eq!(warn("AcrPush", &registry), ["acr-abac-mode"]);
    assert_eq!(warn("AcrPull", &registry), ["acr-abac-mode"]);
    assert_eq!(warn("Container Registry Repository Writer", &registry), Vec::<&str>::new());
    assert_eq!(
        warn("Contributor", &rg_app()),
        Vec::<&str>::new(),
        "no resource type, no task role"
    );
    assert_eq!(
        warn(
            "Key Vault Data Access Administrator",
            &format!("{}/providers/Microsoft.KeyVault/vaults/kv", rg_app())
        ),
        ["escalation-capable"]
    );
    let unknown = RoleNeed {
        role: crate::rbac::RoleRef {
            guid: "c7a1e2b3-4d5f-4a6b-9c8d-7e6f5a4b3c2d".to_owned(),
            name: None,
        },
        scope: Scope::parse(&registry).unwrap(),
    };
    assert_eq!(kinds(&need_warnings(&unknown, builtin())), ["unknown-role"]);
}

#[test]
fn warning_messages_say_what_to_do() {
    let broader = need_warnings(&need("Contributor", &acr()), builtin());
    assert_eq!(
        broader[0].to_string(),
        format!(
            "Contributor at {} grants every control-plane action on this \
             Microsoft.ContainerRegistry/registries and everything under it; if the job only needs \
             to push images, AcrPush is enough; to pull images, AcrPull is enough; to push to a \
             registry in ABAC mode, Container Registry Repository Writer is enough",
            acr()
        )
    );
    let wide = need_warnings(&need("Contributor", &subscription()), builtin());
    assert!(wide[0]
        .to_string()
        .contains("allows more than reads (`*`) and is declared at subscription scope"));
    let escalation =
        need_warnings(&need("Key Vault Data Access Administrator", &rg_app()), builtin());
    assert!(escalation[0]
        .to_string()
        .contains("an ABAC condition in the role narrows which roles"));
    let storage = need_warnings(
        &need("Owner", &format!("{}/providers/Microsoft.Storage/storageAccounts/st/blobServices/default/containers/c", rg_app())),
        builtin(),
    );
    assert!(storage
        .iter()
        .any(|w| w.to_string().contains("write blobs, Storage Blob Data Contributor is enough")));
}

#[test]
fn a_need_declared_twice_is_planned_once_with_a_warning() {
    let mut identity = release();
    identity.needs.push(need("acrpush", &format!("{}/", acr())));
    let planned = plan(&[identity], builtin()).unwrap();
    assert_eq!(planned.len(), 1);
    assert_eq!(kinds(&planned.identities[0].warnings), ["duplicate-need"]);
    assert!(planned.to_text().contains("# warning (duplicate-need): AcrPush at"));
}

#[test]
fn an_identity_without_needs_gets_a_comment_and_no_commands() {
    let identity = Identity::new("idle", "11111111-0000-0000-0000-000000000009", any_branch());
    let planned = plan(&[identity], builtin()).unwrap();
    assert!(planned.is_empty());
    assert!(planned.to_text().contains("# no role assignments declared\n"));
    assert!(planned.to_text().starts_with("# role assignments: 0 for 1 identity\n"));
}

#[test]
fn shell_words_are_quoted_only_when_needed() {
    assert_eq!(
        shell_quote("/subscriptions/s/resourceGroups/rg"),
        "/subscriptions/s/resourceGroups/rg"
    );
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote("a$b"), "'a$b'");
    assert_eq!(shell_quote(""), "''");
    assert_eq!(shell_variable("deploy-prod.eu"), "DEPLOY_PROD_EU_OBJECT_ID");
    assert_eq!(shell_variable("1st"), "_1ST_OBJECT_ID");
    assert_eq!(camel("deploy-prod"), "deployProd");
    assert_eq!(camel("--"), "identity");
}
