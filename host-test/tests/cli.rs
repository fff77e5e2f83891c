//! The built `gitlab-azure-oidc` binary, run as a CI job would run it, against the loopback
//! GitLab and Entra stand-ins.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use testkit::entra::{Behaviour, Entra};
use testkit::issuer::Issuer;
use testkit::{RsaKey, AUDIENCE, CLIENT_ID, SUBJECT, TENANT};

const BIN: &str = env!("CARGO_BIN_EXE_gitlab-azure-oidc");

fn corpus(path: &str) -> Value {
    let file = format!("{}/../tests/third-party/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

/// Runs the CLI with a clean environment (no CI_SERVER_URL or AZURE_* from the outside).
fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        command.env(k, v);
    }
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("run the CLI");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tmp(name: &str, content: &str) -> String {
    let dir = std::env::temp_dir().join(format!("gao-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

fn gitlab_jwks_file() -> String {
    tmp("gitlab_com_jwks.json", &corpus("gitlab/gitlab_com_jwks.json")["jwks"].to_string())
}

#[test]
fn verify_prints_the_claims_of_a_real_gitlab_com_token() {
    let entry = &corpus("gitlab/gitlab_com_tokens.json")["tokens"][1];
    let iat = entry["claims"]["iat"].as_u64().unwrap().to_string();
    let out = run(
        &[
            "verify",
            "--jwks",
            &gitlab_jwks_file(),
            "--issuer",
            "gitlab.com",
            "--insecure-skip-audience",
            "--now",
            &iat,
            "-",
        ],
        &[],
        Some(entry["token"].as_str().unwrap()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let claims: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(claims, entry["claims"]);
}

#[test]
fn verify_refuses_the_fake_gitlab_token_with_one_error_line() {
    let entry = &corpus("gitlab/gitlab_com_tokens.json")["tokens"][3];
    let iat = entry["claims"]["iat"].as_u64().unwrap().to_string();
    let token = entry["token"].as_str().unwrap();
    let out = run(
        &[
            "verify",
            "--jwks",
            &gitlab_jwks_file(),
            "--issuer",
            "https://gitlab.com",
            "--audience",
            "pypi",
            "--now",
            &iat,
        ],
        &[("GITLAB_OIDC_TOKEN", token)],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: bad-signature: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1);
    assert!(!stderr.contains(token) && !text(&out.stdout).contains(token));
    let json = run(
        &[
            "verify",
            "--json",
            "--jwks",
            &gitlab_jwks_file(),
            "--issuer",
            "https://gitlab.com",
            "--audience",
            "pypi",
            "--now",
            &iat,
            "--token-file",
            &tmp("fake.jwt", token),
        ],
        &[],
        None,
    );
    let doc: Value = serde_json::from_str(&text(&json.stdout)).unwrap();
    assert_eq!(doc["error"], "bad-signature");
    assert_eq!(json.status.code(), Some(1));
}

#[test]
fn usage_errors_exit_2_and_help_covers_every_flag() {
    let out = run(&["verify", "--jwks", "x.json"], &[("GITLAB_OIDC_TOKEN", "a.b.c")], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no issuer"));
    assert_eq!(run(&["verify", "--bogus"], &[], None).status.code(), Some(2));
    // Without an audience, the message names the flags that set one (not a config field).
    let gitlab = ["verify", "--issuer", "https://gitlab.com", "--jwks"];
    let out = run(
        &[&gitlab[..], &[&gitlab_jwks_file()]].concat(),
        &[("GITLAB_OIDC_TOKEN", "a.b.c")],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--audience") && stderr.contains("--insecure-skip-audience"),
        "{stderr}"
    );
    // A broken --jwks file is named in the one error line.
    let token =
        corpus("gitlab/gitlab_com_tokens.json")["tokens"][1]["token"].as_str().unwrap().to_owned();
    let broken = tmp("broken-jwks.json", "{\"keys\": [");
    let out = run(
        &[&gitlab[..], &[&broken, "--audience", "pypi"]].concat(),
        &[("GITLAB_OIDC_TOKEN", &token)],
        None,
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: jwks-json: --jwks ") && stderr.contains(&broken),
        "{stderr}"
    );
    assert!(!stderr.contains(&token));
    let out = run(
        &[
            "verify",
            "--issuer",
            "https://gitlab.com",
            "--audience",
            "a",
            "--jwks",
            "http://gitlab.example.com/keys",
            "a.b.c",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("refusing"), "{}", text(&out.stderr));
    let help = text(&run(&["verify", "--help"], &[], None).stdout);
    for flag in [
        "--jwks",
        "--issuer",
        "--audience",
        "--alg",
        "--leeway",
        "--now",
        "--insecure-skip-audience",
        "--json",
        "--max-age",
        "--token-file",
        "--token-env",
        "--ca-file",
        "--component",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
    let help = text(&run(&["exchange", "--help"], &[], None).stdout);
    for flag in [
        "--tenant",
        "--client-id",
        "--scope",
        "--authority-host",
        "--authority-url",
        "--verify",
        "--policy",
        "--audit-log",
        "--output",
        "--timeout",
        "--ca-file",
    ] {
        assert!(help.contains(flag), "exchange help lacks {flag}");
    }
}

#[test]
fn verify_fetches_the_jwks_from_a_url_or_through_discovery() {
    let key = RsaKey::fixture_2048();
    let issuer = Issuer::start(&[&key]);
    let token = issuer.mint(&json!({}));
    let url = issuer.url();
    for jwks in [Some(issuer.jwks_url()), None] {
        let mut args = vec!["verify", "--issuer", &url, "--audience", AUDIENCE];
        if let Some(url) = &jwks {
            args.extend(["--jwks", url]);
        }
        let out = run(&args, &[("GITLAB_OIDC_TOKEN", &token)], None);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    issuer.update(|s| s.down = true);
    let out = run(
        &["verify", "--issuer", &issuer.url(), "--audience", AUDIENCE],
        &[("GITLAB_OIDC_TOKEN", &token)],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "an unreachable issuer is a refusal, not a usage error");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("503"), "{stderr}");
    assert!(stderr.contains("hint: check the issuer"), "{stderr}");
}

struct Stage {
    issuer: Issuer,
    entra: Entra,
}

fn stage() -> Stage {
    let (issuer, entra) = testkit::stand_ins(&RsaKey::fixture_2048());
    Stage { issuer, entra }
}

fn exchange(stage: &Stage, token: &str, extra: &[&str]) -> Output {
    let entra = stage.entra.url();
    let issuer = stage.issuer.url();
    let mut args = vec!["exchange", "--authority-url", &entra];
    args.extend_from_slice(extra);
    run(
        &args,
        &[
            ("GITLAB_OIDC_TOKEN", token),
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_CLIENT_ID", CLIENT_ID),
            ("CI_SERVER_URL", &issuer),
        ],
        None,
    )
}

#[test]
fn exchange_gets_an_azure_token_and_prints_it_as_asked() {
    let s = stage();
    let token = s.issuer.mint(&json!({}));
    let out = exchange(&s, &token, &["--verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let access = text(&out.stdout).trim().to_owned();
    assert_eq!(access.split('.').count(), 3);
    assert!(!text(&out.stderr).contains(&token));
    let form = s.entra.last_form();
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["scope"], "https://management.azure.com/.default");
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_assertion_type"], testkit::entra::JWT_BEARER);

    let out = exchange(&s, &token, &["--output", "json"]);
    let doc: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    for field in ["accessToken", "expiresOn", "expires_on", "tenant", "tokenType"] {
        assert!(doc.get(field).is_some(), "json output lacks {field}");
    }
    assert_eq!(doc["tenant"], TENANT);
    assert_eq!(doc["tokenType"], "Bearer");
    let out = exchange(&s, &token, &["--output", "env"]);
    assert!(text(&out.stdout).starts_with("export AZURE_ACCESS_TOKEN='ey"));
}

#[test]
fn exchange_reports_every_aadsts_code_with_its_hint() {
    let s = stage();
    let token = s.issuer.mint(&json!({}));
    let codes = [
        70021, 700211, 700212, 700213, 7002137, 7002138, 700024, 700016, 50027, 90002, 9001023,
        90061, 501661, 700027, 70011, 700022, 7000215, 7000218, 900144,
    ];
    let mut hints = std::collections::BTreeSet::new();
    for code in codes {
        s.entra.update(|e| e.behaviour = Behaviour::Error(code));
        let out = exchange(&s, &token, &[]);
        assert_eq!(out.status.code(), Some(1), "AADSTS{code}");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("error: entra-error: "), "{stderr}");
        assert!(stderr.contains(&format!("AADSTS{code}")), "{stderr}");
        let hint = stderr.lines().find_map(|l| l.strip_prefix("  hint: ")).unwrap().to_owned();
        assert!(!stderr.lines().next().unwrap().contains(&hint), "the hint is printed once");
        hints.insert(hint);
    }
    assert_eq!(hints.len(), codes.len(), "each code has its own hint");
}

#[test]
fn entra_judges_real_mismatches_like_entra() {
    let s = stage();
    // A branch no federated credential names.
    let token =
        s.issuer.mint(&json!({"sub": "project_path:acme/payments:ref_type:branch:ref:feature"}));
    let stderr = text(&exchange(&s, &token, &[]).stderr);
    assert!(stderr.contains("AADSTS700213"), "{stderr}");
    // The subject in another case.
    let token = s.issuer.mint(&json!({"sub": SUBJECT.to_uppercase()}));
    assert!(text(&exchange(&s, &token, &[]).stderr).contains("AADSTS7002138"));
    // The GitLab URL as audience (the GitLab tutorial's default) and no --verify: Entra says so.
    let token = s.issuer.mint(&json!({"aud": s.issuer.url()}));
    assert!(text(&exchange(&s, &token, &[]).stderr).contains("AADSTS700212"));
    // With --verify, the same mistake is caught before anything is sent.
    let before = s.entra.token_requests();
    let out = exchange(&s, &token, &["--verify"]);
    assert!(text(&out.stderr).starts_with("error: audience-mismatch"));
    assert_eq!(s.entra.token_requests(), before);
    // A reserved tenant never leaves the machine.
    let out = exchange(&s, &token, &["--tenant", "common"]);
    assert_eq!(out.status.code(), Some(2), "a target Entra would refuse is a usage error");
    assert!(text(&out.stderr).contains("AADSTS9001023"), "{}", text(&out.stderr));
}

#[test]
fn exchange_retries_once_after_429_and_fails_on_5xx_timeouts_and_garbage() {
    let s = stage();
    let token = s.issuer.mint(&json!({}));
    s.entra.update(|e| {
        e.behaviour = Behaviour::Status(429, Some("1".into()));
        e.behaviour_times = Some(1);
    });
    let before = s.entra.token_requests();
    let out = exchange(&s, &token, &["-v"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("retrying once in 1 s"));
    assert_eq!(s.entra.token_requests() - before, 2);

    s.entra.update(|e| e.behaviour = Behaviour::Status(503, Some("0".into())));
    let out = exchange(&s, &token, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).starts_with("error: server-error"), "{}", text(&out.stderr));

    s.entra.update(|e| e.behaviour = Behaviour::Garbage);
    let out = exchange(&s, &token, &[]);
    assert!(text(&out.stderr).starts_with("error: html-page"), "{}", text(&out.stderr));

    s.entra.update(|e| e.behaviour = Behaviour::Delay(Duration::from_secs(5)));
    let out = exchange(&s, &token, &["--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).starts_with("error: timeout"), "{}", text(&out.stderr));
}

fn policy_file() -> String {
    tmp("demo-policy.json", include_str!("../../examples/policies/demo.json"))
}

#[test]
fn exchange_with_a_policy_decides_the_target_and_audits_without_the_token() {
    let s = stage();
    let audit = tmp("audit.jsonl", "");
    let token = s.issuer.mint(&json!({}));
    let run_with_policy = |token: &str| {
        let entra = s.entra.url();
        let issuer = s.issuer.url();
        run(
            &[
                "exchange",
                "--policy",
                &policy_file(),
                "--audit-log",
                &audit,
                "--authority-url",
                &entra,
            ],
            &[("GITLAB_OIDC_TOKEN", token), ("CI_SERVER_URL", &issuer)],
            None,
        )
    };
    let out = run_with_policy(&token);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let denied = s.issuer.mint(&json!({"pipeline_source": "merge_request_event"}));
    let out = run_with_policy(&denied);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: policy-denied: deny:") && stderr.contains("no-merge-requests"),
        "{stderr}"
    );
    let log = std::fs::read_to_string(&audit).unwrap();
    let events: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 3, "{log}");
    assert_eq!(events[0]["decision"], "allow");
    // Entra's answer, joined to the decision by the token's fingerprint and the request id.
    assert_eq!(events[1]["event"], "entra_answer");
    assert_eq!(events[1]["outcome"], "access-token");
    assert_eq!(events[1]["token_sha256"], events[0]["token_sha256"]);
    assert_eq!(events[1]["client_request_id"].as_str().map(str::len), Some(36));
    assert_eq!(events[2]["decision"], "deny");
    assert!(!log.contains(&token) && !log.contains(&denied));
}

#[test]
fn check_explains_and_preflights_and_plan_prints_credentials() {
    let s = stage();
    let claims =
        tmp("claims.json", &testkit::gitlab_claims(&s.issuer.url(), 1_760_000_000).to_string());
    let credentials = tmp(
        "credentials.json",
        &json!([{"name": "main", "issuer": s.issuer.url(), "subject": SUBJECT.to_uppercase(), "audiences": [AUDIENCE]}]).to_string(),
    );
    let out = run(
        &[
            "check",
            "--policy",
            &policy_file(),
            "--claims",
            &claims,
            "--now",
            "1760000100",
            "--credentials",
            &credentials,
        ],
        &[],
        None,
    );
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("allow: rule deploy-production"), "{stdout}");
    assert!(stdout.contains("rule release-tags: ref is main, expected a match for v*"), "{stdout}");
    assert!(
        stdout.contains("7002138"),
        "preflight names the case-only subject difference: {stdout}"
    );
    assert_eq!(out.status.code(), Some(1), "preflight refused");

    let out = run(&["plan", "--policy", &policy_file(), "--issuer", &s.issuer.url()], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(SUBJECT), "{stdout}");
    assert!(stdout.contains("az ad app federated-credential create"), "{stdout}");
    assert!(text(&out.stderr).contains("warning:"), "conditions Entra cannot see are warned about");

    let bad = tmp(
        "bad-policy.json",
        r#"{"rules":[{"name":"x","effect":"allow","when":{"project_pth":"a"}}]}"#,
    );
    let out = run(&["plan", "--policy", &bad, "--issuer", "https://gitlab.com"], &[], None);
    assert_eq!(out.status.code(), Some(2), "a policy that does not load is a usage error");
    assert!(text(&out.stderr).contains("project_path"), "a did-you-mean: {}", text(&out.stderr));
}

#[test]
fn the_demo_runs_end_to_end() {
    let out = run(&["demo"], &[], None);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("demo: every step behaved as expected"));
    assert!(stdout.contains("AADSTS700213"));
}

// Issue 14: the plan Entra accepts, the role assignments, and the drift check.

const MONOREPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/policies/monorepo.json");
const MONOREPO_EXPORT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/monorepo-assignments.json");
const RELEASE_ACRPUSH: &str = "az role assignment create --assignee-object-id \
     a6a6a6a6-0000-4000-8000-000000000006 --assignee-principal-type ServicePrincipal --role \
     8311e382-0749-4cb8-b61a-304f252e45ec --scope /subscriptions/6f1c3a5e-2d4b-4c8a-9e7f-1a2b3c4d5e6f\
     /resourceGroups/rg-app/providers/Microsoft.ContainerRegistry/registries/acrapp --name \
     37002897-b83e-55c9-ae7a-55c4cdec2eae";

fn plan_monorepo(extra: &[&str]) -> Output {
    let mut args = vec!["plan", "--policy", MONOREPO, "--issuer", "https://gitlab.com"];
    args.extend_from_slice(extra);
    run(&args, &[], None)
}

#[test]
fn done_means_plan_prints_credentials_and_acrpush_on_the_registry_for_the_release_job() {
    let out = plan_monorepo(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("# federated credentials: 7 for 6 apps"), "{stdout}");
    assert!(stdout.contains("\"name\": \"release\""), "{stdout}");
    assert!(stdout.contains(RELEASE_ACRPUSH), "{stdout}");
    // Nothing wider: the release identity gets exactly that one role assignment.
    let release: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("az role assignment create --assignee-object-id a6a6a6a6"))
        .collect();
    assert_eq!(release, [RELEASE_ACRPUSH]);
    assert_eq!(stdout.matches("az role assignment create").count(), 6, "one role per identity");
}

#[test]
fn plan_output_is_byte_identical_run_after_run() {
    for extra in [&[][..], &["--json"], &["--commands"]] {
        let first = plan_monorepo(extra);
        let second = plan_monorepo(extra);
        assert_eq!(first.status.code(), Some(0), "{extra:?}: {}", text(&first.stderr));
        assert!(!first.stdout.is_empty());
        assert_eq!(first.stdout, second.stdout, "{extra:?}");
        assert_eq!(first.stderr, second.stderr, "{extra:?}");
    }
}

#[test]
fn plan_json_is_one_document_and_warnings_go_to_stderr_one_line_per_rule_and_kind() {
    let out = plan_monorepo(&["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The whole of stdout is one JSON document: nothing before or after it.
    let doc: Value = serde_json::from_slice(&out.stdout).expect("stdout is exactly one document");
    assert_eq!(doc["issuer"], "https://gitlab.com");
    let apps = doc["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 6);
    let release = apps.iter().find(|a| a["identity"] == "release").unwrap();
    assert_eq!(release["role_assignments"][0]["role"], "AcrPush");
    assert_eq!(release["role_assignments"][0]["command"], RELEASE_ACRPUSH);
    assert_eq!(
        release["role_assignments"][0]["arm"]["name"],
        "37002897-b83e-55c9-ae7a-55c4cdec2eae"
    );
    assert_eq!(release["reachable_from_any_branch"], true);
    assert!(doc["commands"].as_array().unwrap().len() >= 13);

    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with("warning: ")), "{stderr}");
    // Grouped per rule, in document order; the conditions Entra cannot check are one line.
    let hidden: Vec<&str> =
        lines.iter().copied().filter(|l| l.contains("Entra cannot check")).collect();
    assert_eq!(hidden.len(), 6, "one line per allow rule: {stderr}");
    assert!(hidden[2].starts_with(
        "warning: rule deploy-prod: Entra cannot check ref_protected, environment, \
         environment_protected, same_project"
    ));
    let first_release = lines.iter().position(|l| l.contains("rule release:")).unwrap();
    let last_prod = lines.iter().rposition(|l| l.contains("rule deploy-prod:")).unwrap();
    assert!(last_prod < first_release, "{stderr}");
    assert!(stderr.contains("flexible credentials (apps "), "{stderr}");
    assert!(stderr.contains("preview feature, created through Microsoft Graph's beta endpoint"));
    assert!(stderr.contains("`az ad app federated-credential list` fails"), "{stderr}");
}

#[test]
fn plan_commands_prints_only_the_commands() {
    let out = plan_monorepo(&["--commands"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 7 + 6, "{stdout}");
    assert!(lines.iter().all(|l| l.starts_with("az ")), "{stdout}");
    assert_eq!(lines.last(), Some(&RELEASE_ACRPUSH));
    let out = plan_monorepo(&["--commands", "--json"]);
    assert_eq!(out.status.code(), Some(2), "the two outputs exclude each other");
}

#[test]
fn plan_refuses_issuer_near_misses_with_the_fix() {
    for (issuer, what) in [
        ("https://gitlab.com/", "ends in `/`"),
        ("gitlab.com", "does not start with `https://`"),
        ("https://GitLab.com", "has capital letters"),
        (" https://gitlab.com", "contains whitespace"),
    ] {
        let out = run(&["plan", "--policy", MONOREPO, "--issuer", issuer], &[], None);
        assert_eq!(out.status.code(), Some(2), "{issuer:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("error: usage: issuer-near-miss: --issuer: "), "{stderr}");
        assert!(stderr.contains(what) && stderr.contains("AADSTS700211"), "{stderr}");
        assert!(stderr.trim_end().ends_with("use `https://gitlab.com`"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    // From $CI_SERVER_URL too, and as JSON for a --json call.
    let out = run(
        &["plan", "--policy", MONOREPO, "--json"],
        &[("CI_SERVER_URL", "https://gitlab.example.com/")],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"], "usage");
}

#[test]
fn plan_for_immutable_subjects_and_sovereign_clouds() {
    let out = plan_monorepo(&["--subject", "project-id", "--commands"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\"subject\":\"project_id:4242:ref_type:branch:ref:main\""));
    let gov = tmp(
        "gov-policy.json",
        &json!({"rules": [{"name": "gov", "effect": "allow",
            "when": {"project_path": "g/p", "project_id": 7, "ref_type": "branch", "ref": "main"},
            "azure": {"tenant": "contoso.onmicrosoft.us", "client_id": CLIENT_ID,
                      "authority_host": "login.microsoftonline.us"}}]})
        .to_string(),
    );
    let out =
        run(&["plan", "--policy", &gov, "--issuer", "https://gitlab.com", "--json"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["apps"][0]["audience"], "api://AzureADTokenExchangeUSGov");
}

#[test]
fn done_means_audit_rbac_reports_contributor_on_the_subscription_as_critical_and_raised() {
    let report = tmp("gl-code-quality-report.json", "");
    let out = run(
        &[
            "audit-rbac",
            "--policy",
            MONOREPO,
            "--assignments",
            MONOREPO_EXPORT,
            "--code-quality",
            &report,
        ],
        &[("CI_PROJECT_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/.."))],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "a critical finding fails at --fail-on high");
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("rbac audit: 1 finding (1 critical)"), "{stdout}");
    let finding = stdout.lines().find(|l| l.contains("privileged-wide-scope")).unwrap();
    assert!(finding.trim_start().starts_with("critical privileged-wide-scope: Contributor at subscription scope /subscriptions/6f1c3a5e-2d4b-4c8a-9e7f-1a2b3c4d5e6f"), "{finding}");
    assert!(
        finding.contains("the identity is reachable from any branch: rule release"),
        "{finding}"
    );
    assert!(finding.ends_with(
        "-- fix: az role assignment delete --ids /subscriptions/6f1c3a5e-2d4b-4c8a-9e7f-1a2b3c4d5e6f/providers/Microsoft.Authorization/roleAssignments/7b2d4f60-1a3c-4e5f-8d9b-0c1e2f3a4b5c"
    ), "{finding}");
    // Only that: every planned assignment is in place.
    assert_eq!(stdout.matches("ok: 1 assignment(s), nothing to report").count(), 5, "{stdout}");
    assert!(text(&out.stderr).starts_with("error: rbac-findings: 1 finding(s)"));
    // The Code Quality report, valid against the fields GitLab reads.
    let issues: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let schema: Value = serde_json::from_str(include_str!("data/codequality.schema.json")).unwrap();
    validate(&issues, &schema, "$");
    assert_eq!(issues.as_array().unwrap().len(), 1);
    assert_eq!(issues[0]["severity"], "blocker");
    assert_eq!(issues[0]["check_name"], "gitlab-azure-oidc/rbac/privileged-wide-scope");
    // The issue points at the policy, relative to the repository ($CI_PROJECT_DIR).
    assert_eq!(issues[0]["location"]["path"], "examples/policies/monorepo.json");

    // At --fail-on critical it still fails; the JSON report is one document.
    let out = run(
        &[
            "audit-rbac",
            "--policy",
            MONOREPO,
            "--assignments",
            MONOREPO_EXPORT,
            "--json",
            "--fail-on",
            "critical",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["summary"]["critical"], 1);
    assert_eq!(doc["findings"][0]["raised"], true);
    assert_eq!(doc["findings"][0]["identity"], "release");
}

#[test]
fn audit_rbac_passes_when_the_export_matches_the_plan_and_refuses_bad_input_with_2() {
    // The export without the extra Contributor: exactly what the plan creates.
    let mut rows: Value =
        serde_json::from_str(&std::fs::read_to_string(MONOREPO_EXPORT).unwrap()).unwrap();
    rows.as_array_mut().unwrap().retain(|r| r["roleDefinitionName"] != "Contributor");
    let clean = tmp("clean-assignments.json", &rows.to_string());
    let out = run(&["audit-rbac", "--policy", MONOREPO, "--assignments", &clean], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).starts_with("rbac audit: no findings"));

    // Bad input is a usage error naming the file, before anything is judged.
    let missing =
        run(&["audit-rbac", "--policy", MONOREPO, "--assignments", "/nonexistent.json"], &[], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("cannot open --assignments /nonexistent.json"));
    let not_a_list = tmp("not-a-list.json", r#"{"value": 1}"#);
    let out = run(&["audit-rbac", "--policy", MONOREPO, "--assignments", &not_a_list], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(&format!("{not_a_list}: ")), "{}", text(&out.stderr));
    let typo = tmp(
        "typo-policy.json",
        r#"{"rules":[{"name":"d","effect":"deny","when":{"pipeline_source":"merge_request_events"}}]}"#,
    );
    let out = run(&["audit-rbac", "--policy", &typo, "--assignments", MONOREPO_EXPORT], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("did you mean `merge_request_event`?"),
        "{}",
        text(&out.stderr)
    );
}

/// A validator for the JSON Schema keywords `codequality.schema.json` uses.
fn validate(value: &Value, schema: &Value, at: &str) {
    if let Some(kind) = schema["type"].as_str() {
        let ok = match kind {
            "array" => value.is_array(),
            "object" => value.is_object(),
            "string" => value.is_string(),
            "integer" => value.is_u64() || value.is_i64(),
            other => panic!("schema type {other} not supported here"),
        };
        assert!(ok, "{at}: expected {kind}, found {value}");
    }
    if let Some(values) = schema["enum"].as_array() {
        assert!(values.contains(value), "{at}: {value} not in {values:?}");
    }
    if let Some(min) = schema["minLength"].as_u64() {
        assert!(value.as_str().unwrap().chars().count() as u64 >= min, "{at}: too short");
    }
    if let Some(min) = schema["minimum"].as_i64() {
        assert!(value.as_i64().unwrap() >= min, "{at}: below {min}");
    }
    if let Some(pattern) = schema["pattern"].as_str() {
        assert_eq!(pattern, "^[^/.]", "only the pattern the schema uses");
        assert!(!value.as_str().unwrap().starts_with(['/', '.']), "{at}: not relative");
    }
    for key in schema["required"].as_array().into_iter().flatten() {
        assert!(value.get(key.as_str().unwrap()).is_some(), "{at}: {key} is required");
    }
    if let Some(properties) = schema["properties"].as_object() {
        for (key, sub) in properties {
            if let Some(v) = value.get(key) {
                validate(v, sub, &format!("{at}.{key}"));
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, item) in list.iter().enumerate() {
            validate(item, items, &format!("{at}[{i}]"));
        }
    }
}
