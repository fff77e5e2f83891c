use serde_json::{json, Value};

use super::*;
use crate::entra::federated::preflight;
use crate::policy::Verdict;
use crate::rbac::PlanWarning as RoleWarning;
use crate::{Claims, IssuerNearMiss};

const ISS: &str = "https://gitlab.com";
const AUD: &str = "api://AzureADTokenExchange";
const NOW: u64 = 1_760_000_000;
const S: &str = "6f1c3a5e-2d4b-4c8a-9e7f-1a2b3c4d5e6f";

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

fn options() -> PlanOptions {
    PlanOptions::new(ISS).audience(AUD)
}

fn plan_of(p: &Policy, issuer: &str) -> Plan {
    plan(p, &PlanOptions::new(issuer).audience(AUD)).unwrap()
}

fn kinds(p: &Plan) -> Vec<&'static str> {
    p.warnings.iter().map(PlanWarning::kind).collect()
}

const A: &str = "11111111-0000-0000-0000-00000000000a";
const B: &str = "11111111-0000-0000-0000-00000000000b";

#[test]
fn pinned_subjects_become_classic_credentials() {
    let p = plan(&example("single-project.json"), &options()).unwrap();
    assert_eq!(p.apps.len(), 1);
    let json = p.credentials_json();
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
    // One warning per rule for everything Entra cannot check, not one per condition.
    let hidden: Vec<&PlanWarning> =
        p.warnings.iter().filter(|w| w.kind() == "not-visible-to-entra").collect();
    assert_eq!(hidden.len(), 1);
    assert_eq!(
        hidden[0].to_string(),
        "rule deploy-main: Entra cannot check project_id, ref_protected, same_project \
         (project_path equals job_project_path); only this policy enforces them, so the token \
         must be exchanged through it (a job that sends its token straight to Entra skips these \
         checks)"
    );
    assert_eq!(
        p.credential_commands(),
        [format!(
            "az ad app federated-credential create --id 22222222-0000-0000-0000-000000000001 \
             --parameters '{}'",
            json["apps"][0]["federatedIdentityCredentials"][0]
        )]
    );
    // The rule pins project_id: the plan recommends the immutable subject.
    assert!(kinds(&p).contains(&"immutable-subjects"), "{:?}", kinds(&p));
    assert!(p.apps[0].reachability.reason().contains("exact credentials only"));
}

#[test]
fn globs_become_flexible_credentials_with_the_project_id_entra_requires() {
    let p = plan(&example("monorepo.json"), &options()).unwrap();
    assert_eq!(p.apps.len(), 6);
    let subjects = |i: usize| -> Vec<String> {
        p.apps[i].credentials.iter().map(|c| c.matcher().to_owned()).collect()
    };
    assert_eq!(
        subjects(0),
        ["claims['sub'] matches 'project_path:acme/platform:ref_type:branch:ref:*' and \
          claims['project_id'] eq '4242'"]
    );
    assert_eq!(subjects(1), ["project_path:acme/platform:ref_type:branch:ref:main"]);
    assert_eq!(
        subjects(2),
        ["claims['sub'] matches 'project_path:acme/platform:ref_type:tag:ref:v*' and \
          claims['project_id'] eq '4242'"]
    );
    assert_eq!(
        subjects(4),
        [
            "project_path:acme/platform:ref_type:branch:ref:main",
            "claims['sub'] matches 'project_path:acme/platform:ref_type:branch:ref:release/*' \
             and claims['project_id'] eq '4242'"
        ]
    );
    assert_eq!(p.apps[4].credentials[0].name, "read-secrets-1");
    let flexible = p.apps[2].credentials[0].to_json();
    assert_eq!(flexible["subject"], Value::Null);
    assert_eq!(flexible["claimsMatchingExpression"]["languageVersion"], 1);
    let kinds = kinds(&p);
    assert_eq!(kinds.iter().filter(|k| **k == "deny-rule").count(), 2);
    assert!(kinds.contains(&"broader-in-entra"), "v* and release/* widen in Entra: {kinds:?}");
    assert!(!kinds.contains(&"flexible-issuer"));
    // Preview: said once per app that has a flexible credential, with how to list them.
    let preview: Vec<String> = p
        .warnings
        .iter()
        .filter(|w| w.kind() == "flexible-preview")
        .map(ToString::to_string)
        .collect();
    assert_eq!(preview.len(), 1, "{preview:#?}");
    assert!(preview[0].contains("Graph's beta endpoint"), "{}", preview[0]);
    assert!(preview[0].contains("`az ad app federated-credential list` fails"), "{}", preview[0]);
    assert!(preview[0].contains("https://graph.microsoft.com/beta/applications(appId="));
    assert!(preview[0].contains("(apps 11111111-0000-0000-0000-000000000001, "), "{}", preview[0]);
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
        let p = plan(&policy, &options()).unwrap();
        // Rules whose flexible credential is refused (no project_id) are reached only through
        // the policy: Entra must refuse their jobs.
        let refused: Vec<&str> = p
            .warnings
            .iter()
            .filter(|w| w.kind() == "flexible-without-project-id")
            .filter_map(PlanWarning::rule)
            .collect();
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
                let Verdict::Allow { target, rule } = &decision.verdict else { continue };
                let app = p.apps.iter().find(|a| a.client_id == target.client_id()).unwrap();
                let check = preflight(&c, &app.credentials);
                if refused.contains(&rule.as_str()) {
                    assert!(!check.accepted(), "{name}: {rule} has no credential: {check}");
                    assert!(decision.evidence.credential.is_none());
                } else {
                    assert!(check.accepted(), "{name}: {project} {ref_type} {r} {env:?}: {check}");
                    // The evidence names the credential Entra matches.
                    let relied = decision.evidence.credential.as_ref().unwrap();
                    assert_eq!(check.accepted_by.as_deref(), Some(relied.name.as_str()));
                }
            }
        }
    }
    // A sample of jobs the plan must not let in.
    let p = plan(&example("monorepo.json"), &options()).unwrap();
    let prod = &p.apps[2].credentials;
    assert!(!preflight(&job("acme/platform", "branch", "v1"), prod).accepted());
    assert!(!preflight(&job("acme/other", "tag", "v1"), prod).accepted());
    let other_id = claims_with(|c| {
        c["project_id"] = json!("4243");
        c["sub"] = json!("project_path:acme/platform:ref_type:tag:ref:v1");
    });
    assert!(!preflight(&other_id, prod).accepted(), "project_id eq pins the project");
    let staging = &p.apps[1].credentials;
    assert!(!preflight(&job("acme/platform", "branch", "develop"), staging).accepted());
}

#[test]
fn unpinned_ref_type_gives_two_classic_credentials() {
    let p = plan(
        &policy(
            json!([{"name": "r", "effect": "allow", "when": {"project_path": "g/p", "project_id": 1, "ref": "main"}, "azure": app(A)}]),
        ),
        &options(),
    )
    .unwrap();
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
    let p = plan_of(&policy(rules.clone()), "https://git.example.org");
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
    // Flexible credentials: refused for an issuer Entra does not document them for.
    assert!(has("flexible-issuer: rule neg: needs a flexible credential"), "{text:#?}");
    assert!(p.apps[0].credentials.iter().all(|c| c.subject.is_some()));
    assert!(p.apps[1].credentials.is_empty());

    // On gitlab.com: the `not` is dropped, so the credential is broader, never narrower.
    let p = plan_of(&policy(rules), ISS);
    let neg: Vec<&str> = p.apps[0].credentials.iter().map(FederatedCredential::matcher).collect();
    assert!(
        neg.contains(
            &"claims['sub'] matches 'project_path:g/p:ref_type:*:ref:*' and claims['project_id'] eq '1'"
        ),
        "{neg:?}"
    );
    // ... and both rules make the app reachable from any branch.
    assert!(p.apps[0].reachability.is_any_branch());
}

#[test]
fn a_flexible_credential_needs_a_pinned_project_id() {
    let p = plan_of(&example("group-wide.json"), ISS);
    assert!(p.apps[0].credentials.is_empty());
    let refused: Vec<String> = p
        .warnings
        .iter()
        .filter(|w| w.kind() == "flexible-without-project-id")
        .map(ToString::to_string)
        .collect();
    assert_eq!(refused.len(), 1);
    assert!(refused[0].contains("Entra now requires claims['project_id'] eq"), "{}", refused[0]);
    // A list of ids gives one flexible credential per project.
    let p = plan_of(
        &policy(
            json!([{"name": "g", "effect": "allow", "when": {"project_path": {"glob": "acme/**"}, "project_id": [1, 2], "ref_type": "branch", "ref": "main"}, "azure": app(A)}]),
        ),
        ISS,
    );
    let matchers: Vec<&str> =
        p.apps[0].credentials.iter().map(FederatedCredential::matcher).collect();
    assert_eq!(
        matchers,
        [
            "claims['sub'] matches 'project_path:acme/*:ref_type:branch:ref:main' and claims['project_id'] eq '1'",
            "claims['sub'] matches 'project_path:acme/*:ref_type:branch:ref:main' and claims['project_id'] eq '2'"
        ]
    );
}

#[test]
fn flexible_credentials_only_for_documented_issuer_shapes() {
    let monorepo = example("monorepo.json");
    for (issuer, flexible) in [
        ("https://gitlab.com", true),
        ("https://gitlab.acme.com", true),
        ("https://gitlab.acme.ca", true),
        ("https://git.acme.io", false),
        ("https://gitlab.acme.io", false),
    ] {
        let p = plan_of(&monorepo, issuer);
        let any = p.apps.iter().flat_map(|a| &a.credentials).any(|c| c.subject.is_none());
        assert_eq!(any, flexible, "{issuer}");
        assert_eq!(kinds(&p).contains(&"flexible-issuer"), !flexible, "{issuer}");
        // Exact credentials are still planned where the rule pins the subject.
        assert!(p.apps[1].credentials.iter().any(|c| c.subject.is_some()), "{issuer}");
    }
}

#[test]
fn issuer_near_misses_are_errors_with_the_fix() {
    let monorepo = example("monorepo.json");
    for (issuer, near_miss) in [
        ("https://gitlab.com/", IssuerNearMiss::TrailingSlash),
        ("gitlab.com", IssuerNearMiss::Scheme),
        ("http://gitlab.com", IssuerNearMiss::Scheme),
        ("https://GitLab.com", IssuerNearMiss::Case),
        ("https://gitlab.com ", IssuerNearMiss::Whitespace),
    ] {
        let error = plan(&monorepo, &PlanOptions::new(issuer)).unwrap_err();
        assert_eq!(
            error,
            PlanError::Issuer(IssuerError::NearMiss {
                issuer: issuer.to_owned(),
                near_miss,
                fix: ISS.to_owned()
            }),
            "{issuer:?}"
        );
        assert!(error.to_string().ends_with("use `https://gitlab.com`"), "{error}");
    }
    let error = plan(&monorepo, &PlanOptions::new(ISS).audience(" ")).unwrap_err();
    assert_eq!(error.kind(), "plan-audience");
}

#[test]
fn immutable_subjects_use_the_project_id() {
    let options = PlanOptions::new(ISS).subject_form(SubjectForm::ProjectId);
    let p = plan(&example("monorepo.json"), &options).unwrap();
    assert_eq!(
        p.apps[1].credentials[0].matcher(),
        "project_id:4242:ref_type:branch:ref:main",
        "staging"
    );
    assert_eq!(
        p.apps[0].credentials[0].matcher(),
        "claims['sub'] matches 'project_id:4242:ref_type:branch:ref:*' and claims['project_id'] eq '4242'"
    );
    // Entra sees project_id now: it is no longer among what only the policy checks.
    let hidden: Vec<&PlanWarning> =
        p.warnings.iter().filter(|w| w.kind() == "not-visible-to-entra").collect();
    assert!(hidden.iter().all(|w| !w.to_string().contains("check project_id")), "{hidden:?}");
    assert!(!kinds(&p).contains(&"immutable-subjects"));
    // A job of such a project presents that subject, and Entra accepts it.
    let c = claims_with(|c| {
        c["project_path"] = json!("acme/platform");
        c["job_project_path"] = json!("acme/platform");
        c["sub"] = json!("project_id:4242:ref_type:branch:ref:main");
        c.as_object_mut().unwrap().remove("environment");
    });
    assert!(preflight(&c, &p.apps[1].credentials).accepted());
    assert!(preflight(&c, &p.apps[0].credentials).accepted());
    // A rule that pins no project id cannot have such a subject.
    let p = plan(&example("group-wide.json"), &options).unwrap();
    assert!(kinds(&p).contains(&"subject-form-unpinned"), "{:?}", kinds(&p));
    assert!(p.apps[0].credentials.is_empty());
}

#[test]
fn sovereign_clouds_get_their_audience_and_graph() {
    let rules = |host: &str| {
        json!([{"name": "gov", "effect": "allow",
            "when": {"project_path": "g/p", "project_id": 1, "ref_type": "branch", "ref": {"glob": "*"}},
            "azure": {"tenant": "t.example", "client_id": A, "authority_host": host}}])
    };
    for (host, audience, graph) in [
        ("login.microsoftonline.us", "api://AzureADTokenExchangeUSGov", "graph.microsoft.us"),
        (
            "login.chinacloudapi.cn",
            "api://AzureADTokenExchangeChina",
            "microsoftgraph.chinacloudapi.cn",
        ),
        ("login.microsoftonline.com", AUD, "graph.microsoft.com"),
    ] {
        let p = plan(&policy(rules(host)), &PlanOptions::new(ISS)).unwrap();
        assert_eq!(p.apps[0].audience, audience);
        assert_eq!(p.apps[0].credentials[0].audiences, [audience]);
        assert!(p.credential_commands()[0].contains(&format!("https://{graph}/beta/")), "{host}");
        // An explicit audience wins.
        let p = plan(&policy(rules(host)), &PlanOptions::new(ISS).audience("aud")).unwrap();
        assert_eq!(p.apps[0].audience, "aud");
    }
}

#[test]
fn more_than_twenty_credentials_for_one_app_is_reported() {
    let refs: Vec<String> = (0..21).map(|i| format!("b{i}")).collect();
    let p = plan(
        &policy(
            json!([{"name": "r", "effect": "allow", "when": {"project_path": "g/p", "project_id": 1, "ref_type": "branch", "ref": refs}, "azure": app(A)}]),
        ),
        &options(),
    )
    .unwrap();
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
        &options(),
    )
    .unwrap();
    assert_eq!(p.apps.len(), 2);
    assert_eq!(p.apps[0].credentials.len(), 1);
    assert_eq!(p.apps[0].rules, ["one", "two"]);
    assert_eq!(p.apps[1].credentials.len(), 1);
}

// Role assignments.

#[test]
fn done_means_the_release_job_gets_acrpush_on_the_registry_and_nothing_wider() {
    let p = plan(&example("monorepo.json"), &options()).unwrap();
    let release = p.roles.identities.iter().find(|i| i.identity == "release").unwrap();
    assert_eq!(release.assignments.len(), 1);
    let acr = &release.assignments[0];
    assert_eq!(acr.role_name.as_deref(), Some("AcrPush"));
    assert_eq!(
        acr.scope.as_str(),
        format!(
            "/subscriptions/{S}/resourceGroups/rg-app/providers/Microsoft.ContainerRegistry/registries/acrapp"
        )
    );
    assert_eq!(
        acr.command,
        format!(
            "az role assignment create --assignee-object-id a6a6a6a6-0000-4000-8000-000000000006 \
             --assignee-principal-type ServicePrincipal --role 8311e382-0749-4cb8-b61a-304f252e45ec \
             --scope {} --name 37002897-b83e-55c9-ae7a-55c4cdec2eae",
            acr.scope
        )
    );
    assert_eq!(acr.arm["name"], "37002897-b83e-55c9-ae7a-55c4cdec2eae");
    assert_eq!(acr.arm["type"], "Microsoft.Authorization/roleAssignments");
    let kinds: Vec<&str> = acr.warnings.iter().map(RoleWarning::kind).collect();
    assert_eq!(kinds, ["acr-abac-mode"]);
    // Who can become it: any branch, through its flexible credential.
    assert!(release.reachability.is_any_branch());
    assert!(
        release
            .reachability
            .reason()
            .contains("matches `project_path:acme/platform:ref_type:branch:ref:*`"),
        "{}",
        release.reachability
    );
    // Every identity gets its one role, at a resource scope.
    assert_eq!(p.roles.len(), 6);
    assert!(p
        .roles
        .identities
        .iter()
        .flat_map(|i| &i.assignments)
        .all(|a| a.scope.resource_type().is_some()));
    // The ABAC caveat shows under the rule, with the policy's warnings.
    let release_group =
        p.grouped_warnings.iter().find(|g| g.rule.as_deref() == Some("release")).unwrap();
    assert!(release_group.warnings.iter().any(|(kind, _)| kind == "acr-abac-mode"));
}

#[test]
fn plans_are_byte_identical_for_identical_input() {
    let first = plan(&example("monorepo.json"), &options()).unwrap();
    let second = plan(&example("monorepo.json"), &options()).unwrap();
    assert_eq!(first.to_text(), second.to_text());
    assert_eq!(first.to_json().to_string(), second.to_json().to_string());
    assert_eq!(first.commands(), second.commands());
}

#[test]
fn the_json_document_holds_credentials_roles_warnings_and_commands() {
    let p = plan(&example("monorepo.json"), &options()).unwrap();
    let doc = p.to_json();
    let release = doc["apps"].as_array().unwrap().iter().find(|a| a["identity"] == "release");
    let release = release.unwrap();
    assert_eq!(release["principal_id"], "a6a6a6a6-0000-4000-8000-000000000006");
    assert_eq!(release["reachable_from_any_branch"], true);
    assert_eq!(release["role_assignments"][0]["role"], "AcrPush");
    assert_eq!(release["role_assignments"][0]["arm"]["apiVersion"], "2022-04-01");
    assert_eq!(release["federatedIdentityCredentials"][0]["name"], "release");
    let groups = doc["warnings"].as_array().unwrap();
    let rules: Vec<&Value> = groups.iter().map(|g| &g["rule"]).collect();
    assert_eq!(rules.first().unwrap(), &&json!("no-merge-request-pipelines"));
    assert_eq!(rules.last().unwrap(), &&Value::Null, "app and plan warnings come last");
    assert_eq!(doc["commands"].as_array().unwrap().len(), p.commands().len());
    let text = p.to_text();
    assert!(text.contains("# AcrPush at /subscriptions/"), "{text}");
    assert!(text.contains("# Commands that create them:"), "{text}");
}

#[test]
fn identities_without_an_object_id_get_a_visible_lookup() {
    let p = plan(
        &policy(json!([{"name": "ci", "effect": "allow",
            "when": {"project_path": "g/p", "project_id": 1, "ref_type": "branch", "ref": "main"},
            "azure": {"tenant": "t.example", "client_id": A,
                      "roles": [{"role": "Reader", "scope": format!("/subscriptions/{S}/resourceGroups/rg")}]}}])),
        &options(),
    )
    .unwrap();
    let commands = p.role_commands();
    assert_eq!(
        commands[0],
        format!("CI_OBJECT_ID=\"$(az ad sp show --id {A} --query id -o tsv)\"")
    );
    assert!(commands[1].contains("--assignee-object-id \"$CI_OBJECT_ID\""), "{}", commands[1]);
    assert!(!commands[1].contains("--name"), "no deterministic name without the object id");
}

#[test]
fn rules_sharing_an_app_are_one_identity_with_every_role() {
    let scope = |rg: &str| format!("/subscriptions/{S}/resourceGroups/{rg}");
    let p = plan(
        &policy(json!([
            {"name": "a", "effect": "allow", "when": {"project_path": "g/p", "project_id": 1, "ref_type": "branch", "ref": "main"},
             "azure": {"tenant": "t.example", "client_id": A, "principal_id": "a6a6a6a6-0000-4000-8000-000000000006",
                       "roles": [{"role": "Reader", "scope": scope("one")}]}},
            {"name": "b", "effect": "allow", "when": {"project_path": "g/p", "project_id": 1, "ref_type": "branch", "ref": {"glob": "*"}},
             "azure": {"tenant": "t.example", "client_id": A, "roles": [{"role": "Reader", "scope": scope("two")}]}}
        ])),
        &options(),
    )
    .unwrap();
    assert_eq!(p.roles.identities.len(), 1);
    let identity = &p.roles.identities[0];
    assert_eq!(identity.identity, "a+b");
    assert_eq!(identity.assignments.len(), 2);
    assert_eq!(identity.principal_id.as_deref(), Some("a6a6a6a6-0000-4000-8000-000000000006"));
    // The widest reachability of the rules: b accepts any branch.
    assert!(identity.reachability.is_any_branch());
}
