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
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["decision"], "allow");
    assert_eq!(events[1]["decision"], "deny");
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
