use serde_json::{json, Value};
use testkit::RsaKey;

use super::*;
use crate::broker::KeyUse;
use crate::entra::certificate_thumbprints;
use crate::policy::plan;

const GITLAB: &str = "https://gitlab.com";
const BROKER: &str = "https://broker.example.com";
const TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const A: &str = "11111111-0000-0000-0000-00000000000a";
const B: &str = "11111111-0000-0000-0000-00000000000b";
const C: &str = "11111111-0000-0000-0000-00000000000c";
const PRINCIPAL: &str = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
const UAMI: &str = "0b9a3c6e-8f1d-4e2a-9c7b-5d4e3f2a1b0c";

fn rule(name: &str, app: &str, credential: Value) -> Value {
    json!({"name": name, "effect": "allow", "when": {"project_id": "1", "project_path": "g/p", "ref_type": "branch", "ref": name},
           "azure": {"tenant": TENANT, "client_id": app, "scopes": "https://management.azure.com/.default", "credential": credential}})
}

fn policy(rules: Vec<Value>) -> Policy {
    Policy::parse(json!({"rules": rules}).to_string().as_bytes()).unwrap()
}

fn issuer() -> BrokerIssuer {
    BrokerIssuer::builder(BROKER)
        .public_key(&RsaKey::fixture_2048().private_pem(), KeyUse::Signing, None)
        .build_for_publishing()
        .unwrap()
}

fn cert() -> CertificateThumbprints {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/entra/testdata/");
    certificate_thumbprints(&std::fs::read_to_string(format!("{dir}rsa-2048.cert.pem")).unwrap())
        .unwrap()
}

#[test]
fn each_broker_credential_gets_what_entra_needs() {
    let p = policy(vec![
        rule("main", A, json!("issuer")),
        rule("release", A, json!({"type": "issuer", "subject": "payments-release"})),
        rule("hotfix", A, json!({"type": "issuer", "subject": "payments-release"})),
        rule(
            "tags",
            B,
            json!({"type": "managed-identity", "client_id": UAMI, "principal_id": PRINCIPAL}),
        ),
        rule("certs", C, json!({"type": "certificate", "name": "payments"})),
        rule("legacy", C, json!("federated")),
    ]);
    let issuer = issuer();
    let certificates = [("payments".to_owned(), cert(), Some("/secrets/payments.pem".to_owned()))];
    let input = BrokerPlanInput {
        gitlab_issuer: GITLAB,
        issuer: Some(&issuer),
        certificates: &certificates,
        credentials: &[],
    };
    let plan = plan_broker(&p, &input).unwrap();
    let json = plan.to_json();
    assert_eq!(
        json["apps"][0]["federatedIdentityCredentials"],
        json!([
            {"name": "broker-main", "issuer": BROKER, "subject": "gitlab-azure-oidc:rule:main", "audiences": ["api://AzureADTokenExchange"], "description": "gitlab-azure-oidc broker: rule main"},
            {"name": "broker-release", "issuer": BROKER, "subject": "payments-release", "audiences": ["api://AzureADTokenExchange"], "description": "gitlab-azure-oidc broker: rule release"},
        ]),
        "one credential per subject: hotfix shares release's"
    );
    assert_eq!(json["apps"][0]["rules"], json!(["main", "release", "hotfix"]));
    assert_eq!(
        json["apps"][1]["federatedIdentityCredentials"][0],
        json!({"name": "broker-managed-identity-7c1d2e3f", "issuer": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
               "subject": PRINCIPAL, "audiences": ["api://AzureADTokenExchange"],
               "description": format!("gitlab-azure-oidc broker: managed identity {PRINCIPAL}")})
    );
    let certificate = &json["apps"][2]["certificates"][0];
    assert_eq!(certificate["thumbprint"], cert().sha1_hex);
    assert_eq!(
        certificate["command"],
        format!("az ad app credential reset --id {C} --cert @/secrets/payments.pem --append")
    );
    assert_eq!(
        json["issuer"]["openid-configuration"]["jwks_uri"],
        format!("{BROKER}/openid/v1/jwks")
    );
    assert_eq!(json["issuer"]["jwks"]["keys"][0]["kid"], RsaKey::fixture_2048().kid());
    let kinds: Vec<&str> = plan.warnings.iter().map(BrokerPlanWarning::kind).collect();
    assert_eq!(kinds, ["advisory", "mixed-credentials"]);
    assert!(plan.warnings[0]
        .to_string()
        .contains("rule legacy: the federated credential is advisory"));
    let commands = plan.commands();
    assert_eq!(commands.len(), 4);
    assert!(commands[0]
        .starts_with(&format!("az ad app federated-credential create --id {A} --parameters '")));

    // The federated plan leaves the broker rules' apps alone: no GitLab credential for them.
    let federated = plan::plan(&p, &plan::PlanOptions::new(GITLAB)).unwrap();
    let apps: Vec<&str> = federated.apps.iter().map(|a| a.client_id.as_str()).collect();
    assert_eq!(apps, [C]);
    assert_eq!(federated.apps[0].rules, ["legacy"]);
}

#[test]
fn a_gitlab_credential_on_a_broker_app_is_a_way_around_it() {
    let p = policy(vec![rule("main", A, json!("issuer"))]);
    let issuer = issuer();
    let existing = FederatedCredential::parse_list(json!([
        {"name": "gitlab-main", "issuer": "https://gitlab.com/", "subject": "project_path:g/p:ref_type:branch:ref:main", "audiences": ["api://AzureADTokenExchange"]},
        {"name": "broker-main", "issuer": BROKER, "subject": "gitlab-azure-oidc:rule:main", "audiences": ["api://AzureADTokenExchange"]},
        {"name": "github", "issuer": "https://token.actions.githubusercontent.com", "subject": "repo:o/r:ref:refs/heads/main", "audiences": ["api://AzureADTokenExchange"]},
    ]).to_string().as_bytes()).unwrap();
    let credentials = [(None, existing)];
    let input = BrokerPlanInput {
        gitlab_issuer: GITLAB,
        issuer: Some(&issuer),
        certificates: &[],
        credentials: &credentials,
    };
    let plan = plan_broker(&p, &input).unwrap();
    let bypasses: Vec<String> = plan
        .warnings
        .iter()
        .filter(|w| w.kind() == "bypasses-broker")
        .map(ToString::to_string)
        .collect();
    assert_eq!(bypasses.len(), 2, "{bypasses:?}");
    assert!(bypasses[0].contains("`gitlab-main` trusts the GitLab issuer"), "{}", bypasses[0]);
    assert!(bypasses[0].contains(&format!(
        "federated-credential delete --id {A} --federated-credential-id gitlab-main"
    )));
    assert!(bypasses[1].contains("another issuer"));
}

#[test]
fn what_cannot_be_planned_is_an_error_with_the_fix() {
    let p = policy(vec![rule("main", A, json!("issuer"))]);
    let error = plan_broker(&p, &BrokerPlanInput { gitlab_issuer: GITLAB, ..Default::default() })
        .unwrap_err();
    assert_eq!(error.kind(), "plan-no-issuer");
    assert!(error.to_string().contains("--broker-config"), "{error}");

    let many: Vec<Value> = (0..21).map(|i| rule(&format!("r{i}"), A, json!("issuer"))).collect();
    let issuer = issuer();
    let input =
        BrokerPlanInput { gitlab_issuer: GITLAB, issuer: Some(&issuer), ..Default::default() };
    let error = plan_broker(&policy(many), &input).unwrap_err();
    assert_eq!(error.kind(), "too-many-credentials");
    assert!(error.to_string().contains("21") && error.to_string().contains("`subject`"), "{error}");

    let two = policy(vec![rule("main", A, json!("issuer")), rule("dev", B, json!("issuer"))]);
    let credentials = [(None, Vec::new())];
    let input = BrokerPlanInput {
        gitlab_issuer: GITLAB,
        issuer: Some(&issuer),
        credentials: &credentials,
        ..Default::default()
    };
    assert_eq!(plan_broker(&two, &input).unwrap_err().kind(), "plan-which-app");
}

#[test]
fn sovereign_clouds_and_domain_tenants() {
    let mut us = rule(
        "main",
        A,
        json!({"type": "managed-identity", "client_id": UAMI, "principal_id": PRINCIPAL}),
    );
    us["azure"]["authority_host"] = json!("login.microsoftonline.us");
    us["azure"]["scopes"] = json!("https://management.usgovcloudapi.net/.default");
    us["azure"]["tenant"] = json!("contoso.onmicrosoft.us");
    let plan = plan_broker(
        &policy(vec![us]),
        &BrokerPlanInput { gitlab_issuer: GITLAB, ..Default::default() },
    )
    .unwrap();
    let fic = &plan.apps[0].credentials[0];
    assert_eq!(fic.issuer, "https://login.microsoftonline.us/contoso.onmicrosoft.us/v2.0");
    assert_eq!(fic.audiences, ["api://AzureADTokenExchangeUSGov"]);
    assert_eq!(plan.warnings[0].kind(), "tenant-not-guid");
    let certificate = policy(vec![rule("c", A, json!({"type": "certificate", "name": "x"}))]);
    let plan =
        plan_broker(&certificate, &BrokerPlanInput { gitlab_issuer: GITLAB, ..Default::default() })
            .unwrap();
    assert_eq!(plan.warnings[0].kind(), "certificate-not-given");
    assert!(plan.commands()[0].ends_with("--cert @cert.pem --append"));
}
