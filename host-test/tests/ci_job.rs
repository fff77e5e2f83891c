//! The CLI as a CI job runs it (issue 15): it starts from its precompiled component, writes the
//! Azure token to a private file with nothing on stdout, fails loudly, and keeps the file fresh
//! for a long job without outliving it. Against the loopback GitLab and Entra stand-ins.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::entra::{Behaviour, Entra};
use testkit::issuer::Issuer;
use testkit::{RsaKey, CLIENT_ID, TENANT};

const BIN: &str = env!("CARGO_BIN_EXE_gitlab-azure-oidc");

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh folder for one test.
fn folder(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gao-ci-job-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Stage {
    issuer: Issuer,
    entra: Entra,
}

impl Stage {
    fn new() -> Self {
        let (issuer, entra) = testkit::stand_ins(&RsaKey::fixture_2048());
        Self { issuer, entra }
    }

    /// A job's environment: the token, the target and the issuer, nothing from outside.
    fn env(&self, token: &str) -> Vec<(String, String)> {
        vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("GITLAB_OIDC_TOKEN".into(), token.into()),
            ("AZURE_TENANT_ID".into(), TENANT.into()),
            ("AZURE_CLIENT_ID".into(), CLIENT_ID.into()),
            ("CI_SERVER_URL".into(), self.issuer.url()),
        ]
    }

    /// `exchange --verify` against the stand-ins, in a job's environment.
    fn command(&self, token: &str, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .arg("exchange")
            .args(["--authority-url", &self.entra.url(), "--verify"])
            .args(args)
            .env_clear()
            .envs(self.env(token))
            .stdin(Stdio::null());
        command
    }

    /// A job script run by `sh -e`, as GitLab runs one, with `$BIN` and `$AUTHORITY` set.
    fn script(&self, token: &str, body: &str, vars: &[(&str, &std::path::Path)]) -> Command {
        let mut command = Command::new("sh");
        command
            .arg("-ec")
            .arg(body)
            .env_clear()
            .envs(self.env(token))
            .env("BIN", BIN)
            .env("AUTHORITY", self.entra.url())
            .stdin(Stdio::null());
        for (name, value) in vars {
            command.env(name, value);
        }
        command
    }

    fn exchange(&self, token: &str, args: &[&str]) -> Output {
        self.command(token, args).output().unwrap()
    }
}

#[test]
fn the_cli_starts_from_its_precompiled_component() {
    let out = Command::new(BIN).arg("self-check").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // An ordinary command uses it too: no note about compiling.
    let s = Stage::new();
    let out = s.exchange(&s.issuer.mint(&json!({})), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("note:"), "{}", text(&out.stderr));
    // `--component FILE` compiles at run time, as before.
    let component = gitlab_azure_oidc_host::EMBEDDED_COMPONENT.unwrap();
    let dir = folder("component");
    let path = dir.join("component.wasm");
    std::fs::write(&path, component).unwrap();
    let token = s.issuer.mint(&json!({}));
    let out = s.command(&token, &[]).arg("--component").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn out_writes_the_token_to_a_private_file_and_nothing_to_stdout() {
    let s = Stage::new();
    let token = s.issuer.mint(&json!({}));
    let dir = folder("out");
    let file = dir.join("access-token");
    let path = file.to_str().unwrap();
    let out = s.exchange(&token, &["--out", path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", text(&out.stdout));
    let access = std::fs::read_to_string(&file).unwrap();
    assert_eq!(access.split('.').count(), 3);
    assert!(!access.ends_with('\n'), "a bare token file has no newline");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let out = s.exchange(&token, &["--out", path, "--output", "dotenv"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dotenv = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = dotenv.lines().collect();
    assert!(lines[0].starts_with("AZURE_ACCESS_TOKEN=ey") && !lines[0].contains('\''), "{dotenv}");
    assert!(lines[1].starts_with("AZURE_ACCESS_TOKEN_EXPIRES_ON="), "{dotenv}");

    let out = s.exchange(&token, &["--out", path, "--output", "json"]);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(doc["tenant"], TENANT, "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());

    // A refusal fails with its exit code, and the file keeps what it had: never half a token.
    let before = std::fs::read_to_string(&file).unwrap();
    s.entra.update(|e| e.behaviour = Behaviour::Error(700213));
    let out = s.exchange(&token, &["--out", path, "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: entra-error: "), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "no JSON error document on stdout with --out");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    let fresh = dir.join("never-written");
    let out = s.exchange(&token, &["--out", fresh.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!fresh.exists());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file is left");
}

/// The README's job script, run by `sh -e` as GitLab runs it: a failed exchange stops the job
/// at its line; `export VAR="$(...)"` would have hidden it.
#[test]
fn the_readme_ci_example_fails_loudly_and_the_old_form_did_not() {
    let s = Stage::new();
    let token = s.issuer.mint(&json!({}));
    let dir = folder("readme");
    let file = dir.join("token");
    let script = |body: &str| {
        s.script(&token, body, &[("AZURE_ACCESS_TOKEN_FILE", &file)]).output().unwrap()
    };
    let safe = r#"
"$BIN" exchange --verify --authority-url "$AUTHORITY" --out "$AZURE_ACCESS_TOKEN_FILE"
AZURE_ACCESS_TOKEN="$(cat "$AZURE_ACCESS_TOKEN_FILE")"
export AZURE_ACCESS_TOKEN
echo "used the token: ${#AZURE_ACCESS_TOKEN} characters"
"#;
    let out = script(safe);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("used the token"));
    s.entra.update(|e| e.behaviour = Behaviour::Error(700213));
    std::fs::remove_file(&file).unwrap();
    let out = script(safe);
    assert_eq!(out.status.code(), Some(1), "the job fails with the exchange's exit code");
    assert!(!text(&out.stdout).contains("used the token"));
    assert!(text(&out.stderr).contains("AADSTS700213"));
    let old = r#"
export AZURE_ACCESS_TOKEN="$("$BIN" exchange --verify --authority-url "$AUTHORITY")"
echo "used the token: ${#AZURE_ACCESS_TOKEN} characters"
"#;
    let out = script(old);
    assert_eq!(out.status.code(), Some(0), "the old form hid the failure");
    assert!(text(&out.stdout).contains("used the token: 0 characters"));
}

#[test]
fn renew_needs_out() {
    let s = Stage::new();
    let out = s.exchange(&s.issuer.mint(&json!({})), &["--renew"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--out"), "{}", text(&out.stderr));
}

/// `--renew` under a job shell (`sh`): the command returns once the file holds a token; the
/// background renewer replaces it before each token expires and exits when the shell does.
#[test]
fn renew_keeps_the_file_fresh_while_the_shell_lives_and_then_stops() {
    let s = Stage::new();
    s.entra.update(|e| e.token_lifetime = 4);
    let token = s.issuer.mint(&json!({}));
    let dir = folder("renew");
    let file = dir.join("access-token");
    let log = dir.join("stderr");
    // The job: the exchange with --renew, then a script that outlives two token lifetimes and
    // keeps the token it sees at each step.
    let body = r#""$BIN" exchange --verify --authority-url "$AUTHORITY" --out "$FILE" --renew -v
cp "$FILE" "$FILE.first"
sleep 7
cp "$FILE" "$FILE.last"
"#;
    let started = Instant::now();
    let status = s
        .script(&token, body, &[("FILE", &file)])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "the command itself returned at once");
    let first = std::fs::read_to_string(dir.join("access-token.first")).unwrap();
    let last = std::fs::read_to_string(dir.join("access-token.last")).unwrap();
    assert_eq!(first.split('.').count(), 3);
    assert_ne!(first, last, "renewed during the job: {stderr}");
    assert!(s.entra.token_requests() >= 3, "the first exchange and renewals: {stderr}");
    let pid: u32 = stderr
        .split("in the background (pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the renewer's pid: {stderr}"));
    // The shell has exited: the renewer notices within about a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.contains("--renewer-of"))
    };
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let survived = alive();
    if survived {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    assert!(!survived, "the renewer outlived the job's shell");
    let renewals = s.entra.token_requests();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(s.entra.token_requests(), renewals, "nothing renews after the job");
}
