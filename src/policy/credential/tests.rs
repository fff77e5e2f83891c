use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::*;
use crate::policy::Policy;

const TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const APP: &str = "11111111-0000-0000-0000-00000000000a";
const UAMI: &str = "0B9A3C6E-8F1D-4E2A-9C7B-5D4E3F2A1B0C";
const PRINCIPAL: &str = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";

fn rule_with(credential: Value) -> Result<Policy, PolicyError> {
    let azure = json!({"tenant": TENANT, "client_id": APP,
                       "scopes": ["https://management.azure.com/.default"], "credential": credential});
    Policy::parse(
        json!({"rules": [{"name": "deploy", "effect": "allow", "when": {"project_id": "1"}, "azure": azure}]})
            .to_string()
            .as_bytes(),
    )
}

fn credential(value: Value) -> RuleCredential {
    rule_with(value).unwrap().rules()[0].credential().unwrap().clone()
}

#[test]
fn every_credential_form_reads() {
    assert_eq!(credential(json!("federated")), RuleCredential::Federated);
    assert_eq!(
        credential(json!("issuer")),
        RuleCredential::Issuer { subject: "gitlab-azure-oidc:rule:deploy".into() }
    );
    assert_eq!(
        credential(json!({"type": "issuer", "subject": "payments-deploy"})),
        RuleCredential::Issuer { subject: "payments-deploy".into() }
    );
    assert_eq!(
        credential(
            json!({"type": "managed-identity", "client_id": UAMI, "principal_id": PRINCIPAL})
        ),
        RuleCredential::ManagedIdentity {
            client_id: UAMI.to_ascii_lowercase(),
            principal_id: PRINCIPAL.into()
        }
    );
    assert_eq!(
        credential(json!({"type": "certificate", "name": "payments-app"})),
        RuleCredential::Certificate { name: "payments-app".into() }
    );
    assert!(credential(json!("issuer")).is_broker());
    assert!(!credential(json!({"type": "federated"})).is_broker());
    // Without `credential` the rule names none: the gate's default applies.
    let plain = Policy::parse(
        json!({"rules": [{"name": "d", "effect": "allow", "when": {"project_id": "1"},
            "azure": {"tenant": TENANT, "client_id": APP, "scopes": "https://management.azure.com/.default"}}]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(plain.rules()[0].credential(), None);
}

#[test]
fn mistakes_are_refused_with_the_field_and_the_fix() {
    let cases = [
        (json!("isuer"), "azure.credential.type", "did you mean `issuer`"),
        (json!("managed-identity"), "azure.credential", "principal_id"),
        (json!("certificate"), "azure.credential", "never the key itself"),
        (
            json!({"type": "managed-identity", "client_id": "x", "principal_id": PRINCIPAL}),
            "azure.credential.client_id",
            "GUID",
        ),
        (
            json!({"type": "managed-identity", "client_id": UAMI}),
            "azure.credential.principal_id",
            "",
        ),
        (json!({"type": "issuer", "subject": "has space"}), "azure.credential.subject", "exactly"),
        (json!({"type": "issuer", "name": "x"}), "azure.credential.name", "no `name` on a issuer"),
        (
            json!({"type": "certificate", "name": "-----BEGIN PRIVATE KEY-----"}),
            "azure.credential.name",
            "never",
        ),
        (json!({"kind": "issuer"}), "azure.credential.kind", ""),
        (json!(42), "azure.credential", ""),
    ];
    for (value, field, words) in cases {
        let error = rule_with(value.clone()).unwrap_err();
        let at = error.location().map(|l| l.field.clone()).unwrap_or_default();
        assert_eq!(at, field, "{value}: {error}");
        assert!(error.to_string().contains(words), "{value}: {error}");
    }
}

#[test]
fn the_schema_names_every_credential_member_and_type() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/policy.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let object = &schema["$defs"]["credential"]["oneOf"][1];
    let members: BTreeSet<&str> =
        object["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(members, CREDENTIAL_FIELDS.iter().copied().collect());
    let types: BTreeSet<&str> = object["properties"]["type"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(types, CREDENTIAL_TYPES.iter().copied().collect());
}
