//! The linter on real-world pipeline shapes. Fixtures are `testdata/*.json`, converted from the
//! YAML beside them by the host's `pipeline_yaml` (host-test checks they stay in sync).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};

use super::*;
use crate::entra::federated::FederatedCredential;
use crate::policy::Policy;

fn testdata(name: &str) -> Vec<u8> {
    let path = format!("{}/src/pipeline/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&testdata(name)).unwrap()
}

fn pipeline(name: &str) -> Pipeline {
    Pipeline::resolve(Document::new(".gitlab-ci.yml", fixture(name)), Vec::new()).unwrap()
}

fn inline(config: Value) -> Pipeline {
    Pipeline::resolve(Document::new(".gitlab-ci.yml", config), Vec::new()).unwrap()
}

fn context() -> LintContext {
    LintContext::new("acme/app")
}

fn credentials(value: Value) -> Vec<FederatedCredential> {
    FederatedCredential::parse_list(value.to_string().as_bytes()).unwrap()
}

fn classic(name: &str, subject: &str, audience: &str) -> Value {
    json!({"name": name, "issuer": "https://gitlab.com", "subject": subject, "audiences": [audience]})
}

fn flexible(name: &str, expression: &str) -> Value {
    json!({"name": name, "issuer": "https://gitlab.com", "subject": null,
           "audiences": [ENTRA_AUDIENCE],
           "claimsMatchingExpression": {"value": expression, "languageVersion": 1}})
}

const MAIN: &str = "project_path:acme/app:ref_type:branch:ref:main";

fn main_credential() -> Value {
    classic("deploy-main", MAIN, ENTRA_AUDIENCE)
}

/// `(job, kind)` of every finding, in report order.
fn kinds(report: &Report) -> Vec<(String, &'static str)> {
    report.findings.iter().map(|f| (f.job.clone().unwrap_or_default(), f.kind.name())).collect()
}

fn pairs(expected: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    expected.iter().map(|(j, k)| ((*j).to_owned(), *k)).collect()
}

fn job<'r>(report: &'r Report, name: &str) -> &'r JobSummary {
    report.jobs.iter().find(|j| j.name == name).unwrap_or_else(|| panic!("no job {name}"))
}

fn azure_job(script: &str, rules: Value) -> Value {
    json!({
        "id_tokens": {"AZURE_ID_TOKEN": {"aud": ENTRA_AUDIENCE}},
        "script": [format!("az login --service-principal -u $AZURE_CLIENT_ID --tenant $AZURE_TENANT_ID --federated-token $AZURE_ID_TOKEN"), script],
        "rules": rules,
    })
}

fn main_only() -> Value {
    json!([{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}])
}

// --- Real-world shapes --------------------------------------------------------------------

#[test]
fn gitlab_azure_tutorial_job_has_the_wrong_audience_for_entra() {
    let report = lint(&pipeline("gitlab-azure-tutorial.json"), &context(), None, None).unwrap();
    assert_eq!(kinds(&report), pairs(&[("auth", "audience-not-accepted")]));
    let finding = &report.findings[0];
    assert_eq!(finding.key, "id_tokens.GITLAB_OIDC_TOKEN.aud");
    assert!(finding.message.contains("`https://gitlab.com`"), "{}", finding.message);
    assert!(finding.fix.contains("aud: api://AzureADTokenExchange"), "{}", finding.fix);
    let auth = job(&report, "auth");
    assert_eq!(auth.azure, ["az login --federated-token", "az CLI"]);
    assert!(auth.id_tokens[0].azure);
    assert_eq!(auth.subjects[0].subject, MAIN);
    assert_eq!(auth.subjects[1].subject, "project_path:acme/app:ref_type:branch:ref:<any branch>");
}

#[test]
fn gitlab_azure_tutorial_audience_is_fine_when_the_credential_names_it() {
    let creds = credentials(json!([classic("tutorial", MAIN, "https://gitlab.com")]));
    let report =
        lint(&pipeline("gitlab-azure-tutorial.json"), &context(), None, Some(&creds)).unwrap();
    assert_eq!(report.of_kind(FindingKind::AudienceNotAccepted).count(), 0);
    let auth = job(&report, "auth");
    assert_eq!(auth.subjects[0].accepted_by.as_deref(), Some("tutorial"));
    // The job also runs on every other branch and tag, which no credential accepts.
    let misses: Vec<&Finding> = report.of_kind(FindingKind::NoMatchingCredential).collect();
    assert_eq!(misses.len(), 2);
    assert!(misses.iter().all(|f| f.severity == Severity::Medium));
    assert!(misses[0].fix.contains("restrict the job's `rules:`"), "{}", misses[0].fix);
}

#[test]
fn terraform_pipeline_hands_arm_oidc_token_and_plan_reaches_main_from_merge_requests() {
    let p = pipeline("terraform-azurerm.json");
    let creds = credentials(json!([main_credential()]));
    let report = lint(&p, &context(), None, Some(&creds)).unwrap();
    assert_eq!(
        kinds(&report),
        pairs(&[("", "include-not-followed"), ("plan", "protected-ref-reachable")])
    );
    let apply = job(&report, "apply");
    assert!(apply.azure.contains(&"terraform with azurerm".to_owned()), "{:?}", apply.azure);
    assert_eq!(apply.id_tokens[0].name, "ARM_OIDC_TOKEN");
    assert!(apply.id_tokens[0].azure);
    assert_eq!(apply.deployment_tier.as_deref(), Some("production"));
    assert_eq!(apply.subjects[0].accepted_by.as_deref(), Some("deploy-main"));
    assert!(job(&report, "fmt").azure.is_empty(), "terraform fmt reaches no provider");
    let plan = report.of_kind(FindingKind::ProtectedRefReachable).next().unwrap();
    assert_eq!(plan.severity, Severity::Critical);
    assert!(plan.message.contains("merge-request pipelines"), "{}", plan.message);
    let runs = &job(&report, "plan").runs;
    assert!(runs.iter().any(|r| r.sources.contains(&"merge_request_event".to_owned())));
}

#[test]
fn templates_resolve_extends_default_references_and_local_includes() {
    let root = Document::new(".gitlab-ci.yml", fixture("templates/root.json"));
    let azure = Document::new("ci/azure.yml", fixture("templates/ci/azure.json"));
    let p = Pipeline::resolve(root, vec![azure]).unwrap();
    let staging = p.job("deploy-staging").unwrap().config();
    assert_eq!(staging["environment"], json!({"name": "staging", "deployment_tier": "staging"}));
    assert_eq!(staging["script"], json!(["az deployment group create -g rg-app -f main.bicep"]));
    assert_eq!(staging["rules"][0]["if"], json!(r"$CI_COMMIT_TAG =~ /^v\d+\.\d+\.\d+$/"));
    assert_eq!(staging["id_tokens"]["AZURE_ID_TOKEN"]["aud"], json!(ENTRA_AUDIENCE));
    assert_eq!(
        staging["before_script"],
        json!([["az login --service-principal -u $AZURE_CLIENT_ID --tenant $AZURE_TENANT_ID --federated-token $AZURE_ID_TOKEN"]])
    );
    let tests = p.job("unit-tests").unwrap().config();
    assert_eq!(tests.get("id_tokens"), None);
    assert_eq!(tests.get("before_script"), None);
    assert_eq!(tests["image"], json!("node:20"));

    let mut ctx = context();
    ctx.protected_tags = vec!["v*".into()];
    let creds = credentials(json!([
        main_credential(),
        flexible(
            "release-tags",
            "claims['sub'] matches 'project_path:acme/app:ref_type:tag:ref:v*'"
        ),
    ]));
    let report = lint(&p, &ctx, None, Some(&creds)).unwrap();
    assert_eq!(kinds(&report), pairs(&[("", "include-not-followed")]));
    let prod = job(&report, "deploy-prod");
    assert_eq!(prod.runs.len(), 1);
    assert_eq!(prod.runs[0].reference, r"a tag matching /^v\d+\.\d+\.\d+$/ (e.g. v1.1.1)");
    assert_eq!(prod.subjects[0].accepted_by.as_deref(), Some("release-tags"));
    assert!(job(&report, "unit-tests").azure.is_empty());
    assert_eq!(job(&report, "deploy-staging").subjects.len(), 2);
}

#[test]
fn a_missing_local_include_is_reported_with_what_it_breaks() {
    let config = json!({
        "include": [{"local": "ci/azure.yml"}],
        "deploy": {"extends": ".deploy", "rules": main_only()},
        "test": {"script": ["make test"]},
    });
    let report = lint(&inline(config), &context(), None, None).unwrap();
    assert_eq!(kinds(&report), pairs(&[("", "include-missing"), ("deploy", "invalid-job")]));
    assert!(
        report.findings[0].message.contains("`ci/azure.yml`"),
        "{}",
        report.findings[0].message
    );
    assert!(report.findings[1].message.contains("include the file that defines it"));

    // A `default:` that references the missing file refuses the whole pipeline, by name.
    let root = Document::new(".gitlab-ci.yml", fixture("templates/root.json"));
    let err = Pipeline::resolve(root, Vec::new()).unwrap_err();
    assert_eq!(err.kind(), "reference");
    assert!(err.to_string().contains("`.azure-login`, which is not defined"), "{err}");
}

#[test]
fn merge_request_deploy_reaches_the_main_credential() {
    let p = pipeline("mr-deploy.json");
    let creds = credentials(json!([main_credential()]));
    let report = lint(&p, &context(), None, Some(&creds)).unwrap();
    assert_eq!(
        kinds(&report),
        pairs(&[("", "not-evaluated"), ("deploy-review", "protected-ref-reachable")])
    );
    let f = report.of_kind(FindingKind::ProtectedRefReachable).next().unwrap();
    assert!(f.message.contains("whose source branch is main"), "{}", f.message);
    assert!(f.fix.contains("merge_request_event"), "{}", f.fix);
    // The workflow's `$CI_OPEN_MERGE_REQUESTS` is reported, not guessed.
    let note = report.of_kind(FindingKind::NotEvaluated).next().unwrap();
    assert!(note.message.contains("$CI_OPEN_MERGE_REQUESTS"), "{}", note.message);
}

#[test]
fn a_flexible_credential_for_every_branch_is_reachable_from_any_push() {
    let config =
        json!({"deploy": azure_job("az group list", json!([{"if": "$CI_COMMIT_BRANCH"}]))});
    let creds = credentials(json!([flexible(
        "all-branches",
        "claims['sub'] matches 'project_path:acme/app:ref_type:branch:ref:*'"
    )]));
    let report = lint(&inline(config), &context(), None, Some(&creds)).unwrap();
    assert_eq!(kinds(&report), pairs(&[("deploy", "protected-ref-reachable")]));
    let f = &report.findings[0];
    assert!(f.message.contains("any other branch"), "{}", f.message);
    assert!(f.fix.contains("exact subjects of protected refs"), "{}", f.fix);
}

#[test]
fn ref_protected_in_the_subject_keeps_merge_requests_out() {
    let mut ctx = context();
    ctx.sub_claim_components =
        vec!["project_path".into(), "ref_type".into(), "ref".into(), "ref_protected".into()];
    let creds = credentials(json!([classic(
        "deploy-main",
        &format!("{MAIN}:ref_protected:true"),
        ENTRA_AUDIENCE
    )]));
    let report = lint(&pipeline("mr-deploy.json"), &ctx, None, Some(&creds)).unwrap();
    assert_eq!(report.of_kind(FindingKind::ProtectedRefReachable).count(), 0);
    assert_eq!(
        job(&report, "deploy-review").subjects[0].accepted_by.as_deref(),
        Some("deploy-main")
    );
}

#[test]
fn a_policy_rule_without_ref_protected_is_reachable_from_merge_requests() {
    let loose = Policy::parse(
        json!({"rules": [{"name": "deploy", "effect": "allow",
            "when": {"project_path": "acme/app", "project_id": "4242", "ref": "main"},
            "azure": {"tenant": "contoso.onmicrosoft.com", "client_id": "11111111-2222-3333-4444-555555555555",
                      "scopes": ["https://management.azure.com/.default"]}}]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let mut ctx = context();
    ctx.project_id = Some("4242".into());
    let report = lint(&pipeline("mr-deploy.json"), &ctx, Some(&loose), None).unwrap();
    let f = report.of_kind(FindingKind::ProtectedRefReachable).next().unwrap();
    assert_eq!(f.severity, Severity::High);
    assert!(f.message.contains("policy rule deploy"), "{}", f.message);
    assert!(f.fix.contains("\"ref_protected\": true"), "{}", f.fix);

    let strict = Policy::parse(&testdata("planted.policy.json")).unwrap();
    let report = lint(&pipeline("mr-deploy.json"), &ctx, Some(&strict), None).unwrap();
    assert_eq!(report.of_kind(FindingKind::ProtectedRefReachable).count(), 0);
    assert_eq!(report.of_kind(FindingKind::PolicyDenies).count(), 0);
}

#[test]
fn a_policy_rule_on_an_unknown_claim_is_not_evaluated_rather_than_denied() {
    let policy = Policy::parse(
        json!({"rules": [{"name": "deploy", "effect": "allow",
            "when": {"project_path": "acme/app", "project_id": "4242", "ref": "main"},
            "azure": {"tenant": "t.onmicrosoft.com", "client_id": "11111111-2222-3333-4444-555555555555",
                      "scopes": ["https://management.azure.com/.default"]}}]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let config = json!({"deploy": azure_job("az group list", main_only())});
    let report = lint(&inline(config), &context(), Some(&policy), None).unwrap();
    assert_eq!(kinds(&report), pairs(&[("deploy", "not-evaluated")]));
    assert!(report.findings[0].message.contains("`project_id`"), "{}", report.findings[0].message);
}

#[test]
fn legacy_ci_job_jwt_is_reported_once() {
    let report = lint(&pipeline("legacy-jwt.json"), &context(), None, None).unwrap();
    assert_eq!(kinds(&report), pairs(&[("deploy", "legacy-job-jwt")]));
    assert!(report.findings[0].message.contains("CI_JOB_JWT_V2"));
    assert_eq!(report.findings[0].key, "script[0]");
    let runs = &job(&report, "deploy").runs;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].ref_name.as_deref(), Some("main"));
}

#[test]
fn a_global_variable_on_the_legacy_jwt_is_reported_once_for_the_pipeline() {
    let config = json!({
        "variables": {"VAULT_JWT": "$CI_JOB_JWT"},
        "a": {"script": ["vault login"]},
        "b": {"script": ["vault read x"]},
    });
    let report = lint(&inline(config), &context(), None, None).unwrap();
    assert_eq!(kinds(&report), pairs(&[("", "legacy-job-jwt")]));
    assert_eq!(report.findings[0].key, "variables.VAULT_JWT");
}

#[test]
fn static_client_secrets_are_found_by_name_and_by_value() {
    let report = lint(&pipeline("client-secret.json"), &context(), None, None).unwrap();
    assert_eq!(kinds(&report), pairs(&[("", "static-secret"), ("deploy", "static-secret")]));
    let global = &report.findings[0];
    assert_eq!(global.severity, Severity::High);
    assert!(global.message.contains("CI/CD variable `SP_SECRET`"), "{}", global.message);
    let literal = &report.findings[1];
    assert_eq!(literal.severity, Severity::Critical);
    assert_eq!(literal.key, "variables.AZURE_CLIENT_SECRET");
    assert!(literal.message.contains("sha256:"), "{}", literal.message);
    assert!(literal.fix.contains("rotate it now"), "{}", literal.fix);

    let pem =
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
    let config = json!({"job": {"variables": {"SP_KEY": pem}, "script": ["echo"]},
                        "login": {"script": ["az login --service-principal -u x -p Ab12Q~abcdefghijklmnopqrstuvwxyz0123456 --tenant t"]}});
    let report = lint(&inline(config), &context(), None, None).unwrap();
    assert_eq!(kinds(&report), pairs(&[("job", "static-secret"), ("login", "static-secret")]));
    assert!(report.findings[0].message.contains("PEM private key"));
    assert_eq!(report.findings[1].key, "script[0]");
}

#[test]
fn a_secret_login_without_a_secret_in_the_file_is_still_reported() {
    let config = json!({"deploy": {"script": ["az login --service-principal -u $ID -p $SP_PASSWORD --tenant $T"]}});
    let report = lint(&inline(config), &context(), None, None).unwrap();
    assert_eq!(kinds(&report), pairs(&[("deploy", "static-secret")]));
    assert_eq!(report.findings[0].severity, Severity::High);
}

#[test]
fn only_and_except_forms() {
    let report = lint(&pipeline("only-except.json"), &context(), None, None).unwrap();
    let refs = |name: &str| -> Vec<(String, Vec<String>, bool)> {
        job(&report, name)
            .runs
            .iter()
            .map(|r| (r.reference.clone(), r.sources.clone(), r.certain))
            .collect()
    };
    let all = ["push", "web", "schedule", "api", "trigger", "pipeline"].map(str::to_owned).to_vec();
    let release_branch = r"a branch matching /^release\/.*$/ (e.g. release/x)".to_owned();
    let release_tag = r"a tag matching /^release\/.*$/ (e.g. release/x)".to_owned();
    assert_eq!(
        refs("build").into_iter().map(|r| r.0).collect::<Vec<_>>(),
        [
            "main (default branch)",
            &release_branch,
            "any other branch",
            &release_tag,
            "any other tag"
        ]
    );
    assert_eq!(
        refs("deploy-prod"),
        [(release_tag.clone(), all.clone(), true), ("any other tag".to_owned(), all, true)]
    );
    // `only:variables` on a variable the file does not define: may run; `except: schedules`.
    let no_schedule = ["push", "web", "api", "trigger", "pipeline"].map(str::to_owned).to_vec();
    assert_eq!(
        refs("deploy-release"),
        [(release_branch, no_schedule.clone(), false), (release_tag, no_schedule, false)]
    );
    assert!(refs("mr-check").iter().all(|r| r.1 == ["merge_request_event"]));
    assert_eq!(refs("main-only").len(), 1);
    assert!(refs("elsewhere").is_empty());
    let note = report.of_kind(FindingKind::NotEvaluated).next().unwrap();
    assert!(note.message.contains("$DEPLOY"), "{}", note.message);
}

#[test]
fn workflow_rules_decide_which_pipelines_exist() {
    let config = json!({
        "workflow": {"rules": [{"if": "$CI_COMMIT_TAG", "when": "never"}, {"when": "always"}]},
        "deploy": azure_job("az group list", json!([{"when": "on_success"}])),
    });
    let report = lint(&inline(config), &context(), None, None).unwrap();
    let runs = &job(&report, "deploy").runs;
    assert!(runs.iter().all(|r| r.ref_type == "branch"), "{runs:?}");
    assert!(runs.iter().any(|r| r.sources.contains(&"merge_request_event".to_owned())));
}

#[test]
fn rules_variables_feed_the_environment() {
    let config = json!({"deploy": {
        "id_tokens": {"T": {"aud": ENTRA_AUDIENCE}},
        "script": ["az login --federated-token $T"],
        "environment": {"name": "$TARGET"},
        "rules": [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", "variables": {"TARGET": "production"}}],
    }});
    let mut ctx = context();
    ctx.sub_claim_components = vec!["project_path".into(), "ref".into(), "deployment_tier".into()];
    let report = lint(&inline(config), &ctx, None, None).unwrap();
    assert_eq!(
        job(&report, "deploy").subjects[0].subject,
        "project_path:acme/app:ref:main:deployment_tier:production"
    );
}

#[test]
fn unknown_protection_gives_one_subject_per_assumption() {
    let config = json!({"deploy": azure_job("az group list", json!([{"if": "$CI_COMMIT_BRANCH == \"develop\""}]))});
    let mut ctx = context();
    ctx.sub_claim_components = vec!["project_path".into(), "ref".into(), "ref_protected".into()];
    let report = lint(&inline(config), &ctx, None, None).unwrap();
    let subjects: Vec<(String, Vec<String>)> = job(&report, "deploy")
        .subjects
        .iter()
        .map(|s| (s.subject.clone(), s.assuming.clone()))
        .collect();
    assert_eq!(
        subjects,
        [
            (
                "project_path:acme/app:ref:develop:ref_protected:true".to_owned(),
                vec!["develop is protected".to_owned()]
            ),
            (
                "project_path:acme/app:ref:develop:ref_protected:false".to_owned(),
                vec!["develop is not protected".to_owned()]
            ),
        ]
    );
}

#[test]
fn audiences_expand_static_variables() {
    let config = json!({
        "variables": {"AUD": "$CI_SERVER_URL"},
        "a": {"id_tokens": {"T": {"aud": "$AUD"}}, "script": ["az login --federated-token $T"]},
        "b": {"id_tokens": {"T": {"aud": "$FROM_SETTINGS"}}, "script": ["az login --federated-token $T"]},
    });
    let report = lint(&inline(config), &context(), None, None).unwrap();
    assert_eq!(kinds(&report), pairs(&[("a", "audience-not-accepted"), ("b", "not-evaluated")]));
    assert!(report.findings[0].message.contains("`https://gitlab.com`"));
    assert_eq!(job(&report, "a").id_tokens[0].audiences, ["https://gitlab.com"]);
}

#[test]
fn only_the_token_handed_to_azure_is_judged() {
    let config = json!({"deploy": {
        "id_tokens": {"VAULT_ID_TOKEN": {"aud": "https://vault.example.com"},
                      "AZURE_ID_TOKEN": {"aud": ENTRA_AUDIENCE}},
        "script": ["vault write auth/jwt/login jwt=$VAULT_ID_TOKEN",
                   "az login --federated-token $AZURE_ID_TOKEN"],
        "rules": main_only(),
    }});
    let report = lint(&inline(config), &context(), None, None).unwrap();
    assert!(report.findings.is_empty(), "{:?}", kinds(&report));
    let tokens = &job(&report, "deploy").id_tokens;
    assert_eq!(
        tokens.iter().filter(|t| t.azure).map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["AZURE_ID_TOKEN"]
    );
}

#[test]
fn key_vault_secrets_count_as_azure_use() {
    let config = json!({"read": {
        "id_tokens": {"KV": {"aud": "https://gitlab.com"}},
        "secrets": {"DB": {"azure_key_vault": {"name": "db"}, "token": "$KV"}},
        "script": ["use-db"],
    }});
    let report = lint(&inline(config), &context(), None, None).unwrap();
    assert_eq!(kinds(&report), pairs(&[("read", "audience-not-accepted")]));
}

#[test]
fn jobs_without_azure_are_left_alone() {
    let config = json!({
        "variables": {"AZURE_CLIENT_ID": "x"},
        "test": {"script": ["cargo test"], "rules": [{"changes": ["src/**"]}]},
        ".tpl": {"script": ["az login"]},
    });
    let report = lint(&inline(config), &context(), None, None).unwrap();
    assert!(report.findings.is_empty(), "{:?}", kinds(&report));
    assert_eq!(report.jobs.len(), 1);
}

#[test]
fn invalid_jobs_are_reported_and_the_rest_linted() {
    let config = json!({
        "cycle": {"extends": ".a"}, ".a": {"extends": "cycle"},
        "mixed": {"script": ["x"], "rules": [{"when": "always"}], "only": ["main"]},
        "tokens": {"script": ["x"], "id_tokens": {"T": {}}},
        "deploy": azure_job("az group list", main_only()),
    });
    let report = lint(&inline(config), &context(), None, None).unwrap();
    assert_eq!(
        kinds(&report),
        pairs(&[("cycle", "invalid-job"), ("mixed", "invalid-job"), ("tokens", "invalid-job")])
    );
    assert!(
        report.findings[1].message.contains("both `rules` and `only`"),
        "{}",
        report.findings[1].message
    );
    assert!(
        report.findings[2].message.contains("`id_tokens.T.aud` must be"),
        "{}",
        report.findings[2].message
    );
}

#[test]
fn a_bad_context_is_refused_with_the_field() {
    let p = inline(json!({}));
    let mut ctx = context();
    ctx.sub_claim_components = vec!["ref".into()];
    let err = lint(&p, &ctx, None, None).unwrap_err();
    assert!(err.to_string().contains("`sub_claim_components`"), "{err}");
    let mut ctx = context();
    ctx.issuer = "https://gitlab.com/".into();
    assert_eq!(lint(&p, &ctx, None, None).unwrap_err().kind(), "context");
    assert!(lint(&p, &LintContext::new("app"), None, None).is_err());
}

// --- The sample with planted problems -----------------------------------------------------

fn planted() -> Report {
    let mut ctx = context();
    ctx.project_id = Some("4242".into());
    ctx.protected_branches = vec!["release".into()];
    let creds = FederatedCredential::parse_list(&testdata("planted.credentials.json")).unwrap();
    let policy = Policy::parse(&testdata("planted.policy.json")).unwrap();
    lint(&pipeline("planted.json"), &ctx, Some(&policy), Some(&creds)).unwrap()
}

#[test]
fn planted_problems_are_found_and_nothing_else() {
    let report = planted();
    let mut found = kinds(&report);
    found.sort();
    let mut expected = pairs(&[
        ("direct", "policy-condition-not-in-entra"),
        ("legacy", "legacy-job-jwt"),
        ("no-token", "azure-without-id-token"),
        ("release", "no-matching-credential"),
        ("review", "protected-ref-reachable"),
        ("secret", "static-secret"),
        ("staging", "policy-denies"),
        ("wrong-audience", "audience-not-accepted"),
    ]);
    expected.sort();
    assert_eq!(found, expected, "\n{}", report.to_text());
    let release = report.of_kind(FindingKind::NoMatchingCredential).next().unwrap();
    assert_eq!(
        release.fix,
        "az ad app federated-credential create --id 11111111-2222-3333-4444-555555555555 \
         --parameters '{\"audiences\":[\"api://AzureADTokenExchange\"],\"description\":\
         \"gitlab-azure-oidc lint\",\"issuer\":\"https://gitlab.com\",\"name\":\
         \"gitlab-acme-app-branch-release\",\"subject\":\
         \"project_path:acme/app:ref_type:branch:ref:release\"}'"
    );
    assert!(report.fails(Severity::Critical));
    assert_eq!(report.count(Severity::Critical), 2);
}

#[test]
fn secret_values_never_appear_in_any_output() {
    let secret = "Xk73Q~AbeuEchsVEoR7TJYHSDATOCN1D61_k7U4O";
    let mut config = fixture("planted.json");
    // Also where a careless message could echo it: an audience and an environment name.
    config["secret"]["id_tokens"] = json!({"T": {"aud": "$AZURE_CLIENT_SECRET"}});
    config["secret"]["environment"] = json!({"name": "env-$AZURE_CLIENT_SECRET"});
    let reports = [
        planted(),
        lint(&inline(config), &context(), None, None).unwrap(),
        lint(&pipeline("client-secret.json"), &context(), None, None).unwrap(),
    ];
    for report in reports {
        for output in [
            report.to_text(),
            report.to_json().to_string(),
            report.to_code_quality().to_string(),
            format!("{report:?}"),
        ] {
            assert!(!output.contains(secret), "secret leaked:\n{output}");
            assert!(!output.contains("AbeuEchsVEoR7"), "part of the secret leaked:\n{output}");
        }
    }
}

// --- Output formats ---------------------------------------------------------------------

#[test]
fn code_quality_has_gitlab_fields_and_stable_fingerprints() {
    let first = planted().to_code_quality();
    let second = planted().to_code_quality();
    assert_eq!(first, second);
    let items = first.as_array().unwrap();
    assert_eq!(items.len(), 8);
    let mut fingerprints = std::collections::BTreeSet::new();
    for item in items {
        let keys: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 5, "{item}");
        for key in ["description", "check_name", "fingerprint", "severity", "location"] {
            assert!(item.get(key).is_some(), "{key} missing in {item}");
        }
        assert!(["info", "minor", "major", "critical", "blocker"]
            .contains(&item["severity"].as_str().unwrap()));
        assert_eq!(item["location"]["path"], json!(".gitlab-ci.yml"));
        assert!(item["location"]["lines"]["begin"].as_u64().unwrap() >= 1);
        assert!(fingerprints.insert(item["fingerprint"].as_str().unwrap().to_owned()));
    }
}

#[test]
fn key_lines_reach_findings() {
    let lines = std::collections::BTreeMap::from([("deploy".to_owned(), 12)]);
    let doc = Document::new(".gitlab-ci.yml", fixture("legacy-jwt.json")).with_key_lines(lines);
    let report =
        lint(&Pipeline::resolve(doc, Vec::new()).unwrap(), &context(), None, None).unwrap();
    assert_eq!(report.findings[0].line, Some(12));
    assert_eq!(report.to_code_quality()[0]["location"]["lines"]["begin"], json!(12));
    assert!(
        report.to_text().starts_with("job deploy (.gitlab-ci.yml:12)\n"),
        "{}",
        report.to_text()
    );
}

#[test]
fn json_report_carries_jobs_findings_and_summary() {
    let value = planted().to_json();
    assert_eq!(value["version"], json!(1));
    assert_eq!(value["project"], json!("acme/app"));
    assert_eq!(
        value["summary"],
        json!({"critical": 2, "high": 6, "medium": 0, "low": 0, "info": 0}),
        "every severity is counted"
    );
    assert_eq!(value["findings"].as_array().unwrap().len(), 8);
    let review = value["jobs"].as_array().unwrap().iter().find(|j| j["name"] == "review").unwrap();
    assert_eq!(review["environment"], json!("review/$CI_COMMIT_REF_SLUG"));
    assert_eq!(review["deployment_tier"], json!("development"));
}

#[test]
fn text_report_groups_by_job_one_line_per_finding() {
    let text = planted().to_text();
    assert!(text.contains("job secret (.gitlab-ci.yml)\n  critical static-secret [variables.AZURE_CLIENT_SECRET]: "), "{text}");
    assert!(
        text.ends_with("8 jobs (8 using Azure): 2 critical, 6 high, 0 medium, 0 low, 0 info\n"),
        "{text}"
    );
}

#[test]
fn fails_at_the_threshold() {
    let report = lint(&pipeline("legacy-jwt.json"), &context(), None, None).unwrap();
    assert!(report.fails(Severity::High));
    assert!(!report.fails(Severity::Critical));
    assert_eq!(Severity::parse("medium"), Some(Severity::Medium));
    assert_eq!(Severity::parse("fatal"), None);
}

#[test]
fn a_pipeline_at_the_job_limit_is_linted() {
    let mut config = serde_json::Map::new();
    for i in 0..MAX_JOBS {
        let rules = json!([
            {"if": format!("$CI_PIPELINE_SOURCE == \"merge_request_event\" && $CI_MERGE_REQUEST_TARGET_BRANCH_NAME == \"b{}\"", i % 40)},
            {"if": format!("$CI_COMMIT_BRANCH =~ /^team{}\\//", i % 40), "when": "manual"},
            {"if": "$CI_COMMIT_TAG", "changes": ["src/**"]},
        ]);
        config.insert(format!("job{i}"), azure_job("az group list", rules));
    }
    let started = std::time::Instant::now();
    let creds = credentials(json!([main_credential()]));
    let report = lint(&inline(Value::Object(config)), &context(), None, Some(&creds)).unwrap();
    assert_eq!(report.jobs.len(), MAX_JOBS);
    eprintln!("{} jobs linted in {:?}", MAX_JOBS, started.elapsed());
}

/// A small deterministic generator of hostile configurations: whatever the shape, the linter
/// answers with a report or a typed error, never a panic.
#[test]
fn arbitrary_configurations_never_panic() {
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            usize::try_from(self.0 % n as u64).unwrap_or(0)
        }
    }
    const KEYS: [&str; 16] = [
        "script",
        "rules",
        "if",
        "extends",
        "!reference",
        "only",
        "except",
        "variables",
        "id_tokens",
        "aud",
        "environment",
        "name",
        "include",
        "local",
        "default",
        "when",
    ];
    const STRINGS: [&str; 12] = [
        "$CI_COMMIT_BRANCH == \"main\"",
        "az login --federated-token $T",
        "/^v\\d+(/",
        ".a",
        "never",
        "$CI_PIPELINE_SOURCE =~ /merge/",
        "api://AzureADTokenExchange",
        "main",
        "((($A",
        "${X}",
        "-----BEGIN PRIVATE KEY-----",
        "merge_requests",
    ];
    fn value(rng: &mut Rng, depth: usize) -> Value {
        match if depth > 5 { rng.next(3) } else { rng.next(6) } {
            0 => Value::from(STRINGS[rng.next(STRINGS.len())]),
            1 => Value::from(rng.next(3) as u64),
            2 => Value::Null,
            3 | 4 => {
                let mut map = serde_json::Map::new();
                for _ in 0..rng.next(4) {
                    map.insert(KEYS[rng.next(KEYS.len())].to_owned(), value(rng, depth + 1));
                }
                Value::Object(map)
            }
            _ => Value::Array((0..rng.next(4)).map(|_| value(rng, depth + 1)).collect()),
        }
    }
    let creds =
        credentials(json!([main_credential(), flexible("any", "claims['sub'] matches '*'")]));
    let policy = Policy::parse(&testdata("planted.policy.json")).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut linted = 0;
    for _ in 0..1000 {
        let mut root = serde_json::Map::new();
        for name in ["a", "b", ".a", "c", "default", "workflow", "variables", "include"] {
            if rng.next(3) == 0 {
                root.insert(name.to_owned(), value(&mut rng, 1));
            }
        }
        let included = vec![Document::new("main", value(&mut rng, 0))];
        if let Ok(p) = Pipeline::resolve(Document::new("ci.yml", Value::Object(root)), included) {
            let report = lint(&p, &context(), Some(&policy), Some(&creds)).unwrap();
            let _ = (report.to_text(), report.to_json(), report.to_code_quality());
            linted += 1;
        }
    }
    assert!(linted > 200, "only {linted} configurations got past resolve");
}
