use serde_json::{json, Value};

use super::*;
use crate::entra::federated::preflight;
use crate::policy::Verdict;
use crate::Claims;

const ISS: &str = "https://gitlab.com";
const AUD: &str = "api://AzureADTokenExchange";
const NOW: u64 = 1_760_000_000;

fn claims_with(edit: impl FnOnce(&mut Value)) -> Claims {
    Claims::test_job(ISS, NOW - 10, edit)
}

fn job(project: &str, ref_type: &str, r: &str) -> Claims {
    claims_with(|c| {
        c["project_path"] = json!(project);
        c["job_project_path"] = json!(project);
        c["ref_type"] = json!(ref_type);
        c["ref"] = json!(r);
        c["sub"] = json!(format!("project_path:{project}:ref_type:{ref_type}:ref:{r}"));
    })
}

fn example(name: &str) -> Policy {
    let path = format!("{}/examples/policies/{name}", env!("CARGO_MANIFEST_DIR"));
    Policy::parse(&std::fs::read(path).unwrap()).unwrap()
}

fn policy(rules: Value) -> Policy {
    Policy::parse(json!({"rules": rules}).to_string().as_bytes()).unwrap()
}

fn app(client: &str) -> Value {
    json!({"tenant": "t.example", "client_id": client, "scopes": ["https://management.azure.com/.default"]})
}

const A: &str = "11111111-0000-0000-0000-00000000000a";
const B: &str = "11111111-0000-0000-0000-00000000000b";

#[test]
fn pinned_subjects_become_classic_credentials() {
    let p = plan(&example("single-project.json"), ISS, AUD);
    assert_eq!(p.apps.len(), 1);
    let json = p.to_json();
    assert_eq!(
        json["apps"][0]["federatedIdentityCredentials"],
        json!([{
            "name": "deploy-main",
            "issuer": ISS,
            "subject": "project_path:acme/payments:ref_type:branch:ref:main",
            "audiences": [AUD],
            "description": "gitlab-azure-oidc plan: rule deploy-main",
        }])
    );
    let whats: Vec<String> = p
        .warnings
        .iter()
        .filter_map(|w| match w {
            PlanWarning::NotVisibleToEntra { what, .. } => Some(what.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        whats,
        ["project_id", "ref_protected", "same_project (project_path equals job_project_path)"]
    );
    assert_eq!(
        p.warnings[0].to_string(),
        "rule deploy-main: Entra cannot check project_id; only this policy enforces it, so the \
         token must be exchanged through it (a job that sends its token straight to Entra skips \
         this check)"
    );
    assert_eq!(
        p.commands(),
        [format!(
            "az ad app federated-credential create --id 22222222-0000-0000-0000-000000000001 \
             --parameters '{}'",
            json["apps"][0]["federatedIdentityCredentials"][0]
        )]
    );
}

#[test]
fn globs_become_flexible_credentials() {
    let p = plan(&example("monorepo.json"), ISS, AUD);
    assert_eq!(p.apps.len(), 5);
    let subjects = |i: usize| -> Vec<String> {
        p.apps[i].credentials.iter().map(|c| c.matcher().to_owned()).collect()
    };
    assert_eq!(
        subjects(0),
        ["claims['sub'] matches 'project_path:acme/platform:ref_type:branch:ref:*'"]
    );
    assert_eq!(subjects(1), ["project_path:acme/platform:ref_type:branch:ref:main"]);
    assert_eq!(
        subjects(2),
        ["claims['sub'] matches 'project_path:acme/platform:ref_type:tag:ref:v*'"]
    );
    assert_eq!(
        subjects(4),
        [
            "project_path:acme/platform:ref_type:branch:ref:main",
            "claims['sub'] matches 'project_path:acme/platform:ref_type:branch:ref:release/*'"
        ]
    );
    assert_eq!(p.apps[4].credentials[0].name, "read-secrets-1");
    let flexible = p.apps[2].credentials[0].to_json();
    assert_eq!(flexible["subject"], Value::Null);
    assert_eq!(flexible["claimsMatchingExpression"]["languageVersion"], 1);
    let kinds: Vec<&str> = p.warnings.iter().map(PlanWarning::kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "deny-rule").count(), 2);
    assert!(kinds.contains(&"broader-in-entra"), "v* and release/* widen in Entra: {kinds:?}");
    assert!(!kinds.contains(&"flexible-issuer"));
    assert!(p.commands().iter().any(|c| c.starts_with(
        "az rest --method POST --uri \"https://graph.microsoft.com/beta/applications(appId='11111111-0000-0000-0000-000000000001')/federatedIdentityCredentials\""
    )));
    // The expression's quotes survive shell quoting.
    assert!(p.commands().iter().any(|c| c.contains("claims['\\''sub'\\''] matches")));
}

#[test]
fn every_allowed_job_passes_preflight_and_denied_ones_do_not() {
    for name in ["monorepo.json", "single-project.json", "group-wide.json"] {
        let policy = example(name);
        let p = plan(&policy, ISS, AUD);
        let jobs = [
            ("acme/platform", "tag", "v1.4.0"),
            ("acme/platform", "branch", "main"),
            ("acme/platform", "branch", "feature/x"),
            ("acme/platform", "branch", "release/2"),
            ("acme/payments", "branch", "main"),
            ("acme/team/tool", "branch", "main"),
            ("acme/platform", "tag", "x1"),
            ("other/platform", "branch", "main"),
        ];
        let envs = [Some("dev"), Some("staging"), Some("production"), None];
        for (project, ref_type, r) in jobs {
            for env in envs {
                let c = {
                    let base = job(project, ref_type, r);
                    let mut raw = base.raw.clone();
                    match env {
                        Some(e) => {
                            raw.insert("environment".into(), json!(e));
                            let tier = if e == "production" { "production" } else { "staging" };
                            raw.insert("deployment_tier".into(), json!(tier));
                        }
                        None => {
                            for k in ["environment", "environment_protected", "deployment_tier"] {
                                raw.remove(k);
                            }
                        }
                    }
                    Claims::from_payload(raw).unwrap()
                };
                let decision = policy.decide(&c, NOW);
                let Verdict::Allow { target, .. } = &decision.verdict else { continue };
                let app = p.apps.iter().find(|a| a.client_id == target.client_id()).unwrap();
                let check = preflight(&c, &app.credentials);
                assert!(check.accepted(), "{name}: {project} {ref_type} {r} {env:?}: {check}");
            }
        }
    }
    // A sample of jobs the plan must not let in.
    let p = plan(&example("monorepo.json"), ISS, AUD);
    let prod = &p.apps[2].credentials;
    assert!(!preflight(&job("acme/platform", "branch", "v1"), prod).accepted());
    assert!(!preflight(&job("acme/other", "tag", "v1"), prod).accepted());
    let staging = &p.apps[1].credentials;
    assert!(!preflight(&job("acme/platform", "branch", "develop"), staging).accepted());
}

#[test]
fn unpinned_ref_type_gives_two_classic_credentials() {
    let p = plan(
        &policy(
            json!([{"name": "r", "effect": "allow", "when": {"project_path": "g/p", "project_id": 1, "ref": "main"}, "azure": app(A)}]),
        ),
        ISS,
        AUD,
    );
    let subjects: Vec<&str> =
        p.apps[0].credentials.iter().map(FederatedCredential::matcher).collect();
    assert_eq!(
        subjects,
        ["project_path:g/p:ref_type:branch:ref:main", "project_path:g/p:ref_type:tag:ref:main"]
    );
    assert_eq!(p.apps[0].credentials[1].name, "r-2");
}

#[test]
fn warnings_for_what_entra_cannot_express() {
    let rules = json!([
        {"name": "anyproject", "effect": "allow", "when": {"ref": "main", "ref_protected": true}, "azure": app(A)},
        {"name": "neg", "effect": "allow", "when": {"project_path": "g/p", "project_id": 1, "not": {"ref": "main"}}, "azure": app(A)},
        {"name": "never", "effect": "allow", "when": [{"project_path": "g/p"}, {"project_path": "g/q"}, {"project_id": 1}], "azure": app(B)},
        {"name": "many", "effect": "allow", "when": {"project_path": {"one_of": (0..10).map(|i| format!("g/{i}")).collect::<Vec<_>>()}, "ref": {"one_of": (0..10).map(|i| format!("b{i}")).collect::<Vec<_>>()}, "project_id": 1}, "azure": app(B)},
        {"name": "no", "effect": "deny", "when": {"user_login": "eve"}}
    ]);
    let p = plan(&policy(rules), "https://git.example.org", AUD);
    let text: Vec<String> = p.warnings.iter().map(|w| format!("{}: {w}", w.kind())).collect();
    let has = |prefix: &str| text.iter().any(|t| t.starts_with(prefix));
    assert!(
        has("not-visible-to-entra: rule anyproject: Entra cannot check ref_protected"),
        "{text:#?}"
    );
    assert!(has("unpinned-project: rule anyproject: project_path is not pinned"), "{text:#?}");
    assert!(has("negation: rule neg: Entra cannot express `not`"), "{text:#?}");
    assert!(has("unsatisfiable: rule never"), "{text:#?}");
    assert!(has("too-many-combinations: rule many"), "{text:#?}");
    assert!(has("deny-rule: rule no: Entra cannot express deny rules"), "{text:#?}");
    assert!(has("flexible-issuer: flexible credentials are documented only for"), "{text:#?}");
    // The `not` is dropped, so the credential is broader, never narrower.
    let neg: Vec<&str> = p.apps[0].credentials.iter().map(FederatedCredential::matcher).collect();
    assert!(neg.contains(&"claims['sub'] matches 'project_path:g/p:ref_type:*:ref:*'"), "{neg:?}");
    assert!(p.apps[1].credentials.is_empty());
}

#[test]
fn more_than_twenty_credentials_for_one_app_is_reported() {
    let refs: Vec<String> = (0..21).map(|i| format!("b{i}")).collect();
    let p = plan(
        &policy(
            json!([{"name": "r", "effect": "allow", "when": {"project_path": "g/p", "project_id": 1, "ref_type": "branch", "ref": refs}, "azure": app(A)}]),
        ),
        ISS,
        AUD,
    );
    assert_eq!(p.apps[0].credentials.len(), 21);
    assert!(p
        .warnings
        .iter()
        .any(|w| *w == PlanWarning::TooManyCredentials { client_id: A.into(), count: 21 }));
}

#[test]
fn identical_subjects_are_planned_once_per_app() {
    let when = json!({"project_path": "g/p", "project_id": 1, "ref_type": "branch", "ref": "main"});
    let p = plan(
        &policy(json!([
            {"name": "one", "effect": "allow", "when": when, "azure": app(A)},
            {"name": "two", "effect": "allow", "when": when, "azure": app(A)},
            {"name": "three", "effect": "allow", "when": when, "azure": app(B)}
        ])),
        ISS,
        AUD,
    );
    assert_eq!(p.apps.len(), 2);
    assert_eq!(p.apps[0].credentials.len(), 1);
    assert_eq!(p.apps[0].rules, ["one", "two"]);
    assert_eq!(p.apps[1].credentials.len(), 1);
}
