//! `gitlab-azure-oidc lint`, run as a CI job or a developer would run it: the sample pipeline
//! with planted problems (`tests/data/lint/`), the core's real-world shapes
//! (`src/pipeline/testdata/`), includes inside and outside the repository, and the three outputs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_gitlab-azure-oidc");
/// The planted client secret (fake, never issued): it must appear in no output.
const SECRET: &str = "Xk73Q~AbeuEchsVEoR7TJYHSDATOCN1D61_k7U4O";

fn data(path: &str) -> String {
    format!("{}/tests/data/lint/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn core_testdata(path: &str) -> String {
    format!("{}/../src/pipeline/testdata/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs the CLI with a clean environment (no CI_* variables from the outside).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        command.env(k, v);
    }
    command.stdin(Stdio::null()).output().expect("run the CLI")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory for one test.
fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gao-lint-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, path: &str, content: &str) {
    let file = dir.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, content).unwrap();
}

/// The sample's project settings: acme/app, id 4242, main and release protected.
fn planted(extra: &[&str]) -> Output {
    let (policy, credentials) = (data("policy.json"), data("credentials.json"));
    let root = data("planted/.gitlab-ci.yml");
    let mut args = vec!["lint", root.as_str(), "--project-id", "4242"];
    args.extend(["--protected-branch", "release", "--policy", &policy]);
    args.extend(["--credentials", &credentials]);
    args.extend(extra);
    run(&args, &[("CI_PROJECT_PATH", "acme/app")])
}

fn json_report(out: &Output) -> Value {
    serde_json::from_str(&text(&out.stdout))
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", text(&out.stdout)))
}

/// `(job, kind)` of every finding, sorted.
fn kinds(report: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["job"].as_str().unwrap_or_default().to_owned(),
                f["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        expected.iter().map(|(j, k)| ((*j).to_owned(), (*k).to_owned())).collect();
    out.sort();
    out
}

fn job<'r>(report: &'r Value, name: &str) -> &'r Value {
    report["jobs"].as_array().unwrap().iter().find(|j| j["name"] == name).unwrap()
}

// --- The sample with planted problems -------------------------------------------------------

#[test]
fn every_planted_problem_is_found_and_nothing_else() {
    let out = planted(&["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report = json_report(&out);
    assert_eq!(
        kinds(&report),
        pairs(&[
            ("direct", "policy-condition-not-in-entra"),
            ("legacy", "legacy-job-jwt"),
            ("no-token", "azure-without-id-token"),
            ("release", "no-matching-credential"),
            ("review", "protected-ref-reachable"),
            ("secret", "static-secret"),
            ("staging", "policy-denies"),
            ("wrong-audience", "audience-not-accepted"),
        ])
    );
    assert_eq!(
        report["summary"],
        json!({"critical": 2, "high": 6, "medium": 0, "low": 0, "info": 0})
    );
    // The exact credential to add, for the release branch.
    let release = report["findings"].as_array().unwrap().iter().find(|f| f["job"] == "release");
    let fix = release.unwrap()["fix"].as_str().unwrap();
    assert!(
        fix.contains("\"subject\":\"project_path:acme/app:ref_type:branch:ref:release\""),
        "{fix}"
    );
    // The `.exchange` template came through the glob include: every job that extends it
    // resolved (no invalid-job), and findings point at the root file's lines.
    assert_eq!(job(&report, "review")["id_tokens"][0]["name"], json!("AZURE_ID_TOKEN"));
    assert_eq!(job(&report, "wrong-audience")["line"], json!(12));
    let stderr = text(&out.stderr);
    assert_eq!(stderr, "error: lint-failed: 8 finding(s) at high or above (--fail-on); fix them, or lint with a higher --fail-on\n");
}

#[test]
fn the_human_report_names_each_job_its_line_and_the_fix() {
    let out = planted(&[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "job review (.gitlab-ci.yml:48)\n  critical protected-ref-reachable [rules]: "
        ),
        "{stdout}"
    );
    assert!(stdout.contains(" -> fix: az ad app federated-credential create --id 11111111-2222-3333-4444-555555555555 "), "{stdout}");
    assert!(stdout.contains(
        "subject release: project_path:acme/app:ref_type:branch:ref:release on release (protected branch)\n"
    ));
    assert!(
        stdout.ends_with("8 jobs (8 using Azure): 2 critical, 6 high, 0 medium, 0 low, 0 info\n")
    );
}

#[test]
fn fail_on_sets_the_threshold_of_the_exit_code() {
    // The sample has critical findings: 1 even at --fail-on critical.
    assert_eq!(planted(&["--fail-on", "critical"]).status.code(), Some(1));
    // The legacy-token pipeline has only a high finding.
    let legacy = core_testdata("legacy-jwt.yml");
    let args = ["lint", legacy.as_str(), "--project", "acme/app"];
    assert_eq!(run(&args, &[]).status.code(), Some(1));
    let out = run(&[&args[..], &["--fail-on", "critical"]].concat(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("high legacy-job-jwt"));
    assert_eq!(text(&out.stderr), "");
    let out = run(&[&args[..], &["--fail-on", "fatal"]].concat(), &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn code_quality_goes_to_its_file_and_the_text_to_stdout() {
    let dir = tmp_dir("code-quality");
    let path = dir.join("gl-code-quality-report.json");
    let out = planted(&["--code-quality", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("job secret (.gitlab-ci.yml:38)"));
    let issues: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let issues = issues.as_array().unwrap();
    assert_eq!(issues.len(), 8);
    let mut fingerprints = BTreeSet::new();
    for issue in issues {
        let keys: BTreeSet<&str> = issue.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["description", "check_name", "fingerprint", "severity", "location"])
        );
        assert!(["info", "minor", "major", "critical", "blocker"]
            .contains(&issue["severity"].as_str().unwrap()));
        assert_eq!(issue["location"]["path"], json!(".gitlab-ci.yml"));
        assert!(issue["location"]["lines"]["begin"].as_u64().unwrap() > 1);
        assert!(fingerprints.insert(issue["fingerprint"].as_str().unwrap().to_owned()));
    }
    // The same findings give the same fingerprints: GitLab tracks them across merge requests.
    let again = dir.join("again.json");
    planted(&["--code-quality", again.to_str().unwrap(), "--json"]);
    assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn the_planted_secret_is_in_no_output() {
    let dir = tmp_dir("secret");
    let cq = dir.join("cq.json");
    let mut outputs = Vec::new();
    for extra in [&[][..], &["--json"][..], &["--code-quality", cq.to_str().unwrap()][..]] {
        let out = planted(extra);
        outputs.push(text(&out.stdout));
        outputs.push(text(&out.stderr));
    }
    outputs.push(std::fs::read_to_string(&cq).unwrap());
    // A file that does not parse, with the secret on the broken line.
    write(&dir, ".gitlab-ci.yml", &format!("job:\n  variables: {{AZURE_CLIENT_SECRET: {SECRET}\n"));
    let broken =
        run(&["lint", dir.join(".gitlab-ci.yml").to_str().unwrap(), "--project", "a/b"], &[]);
    assert_eq!(broken.status.code(), Some(2));
    assert!(text(&broken.stderr).starts_with("error: usage: .gitlab-ci.yml: not valid YAML"));
    outputs.push(text(&broken.stdout));
    outputs.push(text(&broken.stderr));
    for output in outputs {
        assert!(!output.contains(SECRET), "the secret leaked:\n{output}");
        assert!(!output.contains("AbeuEchsVEoR7"), "part of the secret leaked:\n{output}");
    }
}

// --- Includes ------------------------------------------------------------------------------

#[test]
fn a_local_include_is_followed_with_extends_default_and_references() {
    let dir = tmp_dir("templates");
    let credentials = dir.join("credentials.json");
    let subject = "project_path:acme/app:ref_type:branch:ref:main";
    std::fs::write(
        &credentials,
        json!([
            {"name": "deploy-main", "issuer": "https://gitlab.com", "subject": subject,
             "audiences": ["api://AzureADTokenExchange"]},
            {"name": "release-tags", "issuer": "https://gitlab.com", "subject": null,
             "audiences": ["api://AzureADTokenExchange"],
             "claimsMatchingExpression": {"languageVersion": 1,
                "value": "claims['sub'] matches 'project_path:acme/app:ref_type:tag:ref:v*'"}},
        ])
        .to_string(),
    )
    .unwrap();
    let root = core_testdata("templates/root.yml");
    let args = ["lint", &root, "--project", "acme/app", "--protected-tag", "v*", "--json"];
    let out = run(&[&args[..], &["--credentials", credentials.to_str().unwrap()]].concat(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = json_report(&out);
    assert_eq!(kinds(&report), pairs(&[("", "include-not-followed")]));
    let prod = job(&report, "deploy-prod");
    assert_eq!(prod["subjects"][0]["accepted_by"], json!("release-tags"));
    assert_eq!(job(&report, "deploy-staging")["subjects"].as_array().unwrap().len(), 2);
    // Without the include, the `default:` reference to `.azure-login` cannot resolve.
    let alone = tmp_dir("templates-alone");
    std::fs::copy(&root, alone.join(".gitlab-ci.yml")).unwrap();
    let out =
        run(&["lint", alone.join(".gitlab-ci.yml").to_str().unwrap(), "--project", "a/b"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("error: usage: reference: "), "{}", text(&out.stderr));
}

#[test]
fn includes_outside_the_repository_are_refused() {
    let base = tmp_dir("outside");
    let repo = base.join("repo");
    write(&base, "outside.yml", &format!("stolen:\n  variables: {{AZURE_CLIENT_SECRET: '{SECRET}'}}\n  script: [az group list]\n"));
    write(
        &repo,
        ".gitlab-ci.yml",
        "include:\n  - local: ../outside.yml\n  - local: ci/link.yml\n  - local: notes.txt\n\
         test:\n  script: [make test]\n",
    );
    write(&repo, "notes.txt", "hidden:\n  script: [az group list]\n");
    std::fs::create_dir_all(repo.join("ci")).unwrap();
    std::os::unix::fs::symlink(base.join("outside.yml"), repo.join("ci/link.yml")).unwrap();
    let out = run(
        &["lint", repo.join(".gitlab-ci.yml").to_str().unwrap(), "--project", "a/b", "--json"],
        &[],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let report = json_report(&out);
    let names: Vec<&str> =
        report["jobs"].as_array().unwrap().iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["test"], "nothing from outside the repository or from a .txt file");
    assert_eq!(
        kinds(&report),
        pairs(&[("", "include-not-followed"), ("", "include-missing"), ("", "include-missing"),])
    );
    assert!(stderr.contains("warning: include `ci/link.yml` not read: it is a link to a file outside the repository\n"), "{stderr}");
    assert!(stderr.contains("warning: include `notes.txt` not read: GitLab includes only `.yml` and `.yaml` files\n"), "{stderr}");
    assert!(!stderr.contains(SECRET) && !text(&out.stdout).contains(SECRET));
}

#[test]
fn include_paths_start_at_the_repository_root() {
    let repo = tmp_dir("repo-root");
    write(&repo, "pipelines/.gitlab-ci.yml", "include: /ci/deploy.yml\n");
    write(
        &repo,
        "ci/deploy.yml",
        "include: 'ci/**/*.yaml'\ndeploy:\n  extends: .login\n  rules: [{if: $CI_COMMIT_BRANCH == \"main\"}]\n",
    );
    write(
        &repo,
        "ci/shared/login.yaml",
        "# included twice, read once\ninclude: [ci/deploy.yml, ci/shared/login.yaml]\n.login:\n  id_tokens: {T: {aud: api://AzureADTokenExchange}}\n  script: [az login --federated-token $T]\n",
    );
    let root = repo.join("pipelines/.gitlab-ci.yml");
    let args = ["lint", root.to_str().unwrap(), "--project", "a/b", "--json"];
    let out = run(&[&args[..], &["--repo", repo.to_str().unwrap()]].concat(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = json_report(&out);
    assert_eq!(kinds(&report), pairs(&[]));
    let deploy = job(&report, "deploy");
    assert_eq!(deploy["file"], json!("ci/deploy.yml"));
    assert_eq!(
        deploy["subjects"][0]["subject"],
        json!("project_path:a/b:ref_type:branch:ref:main")
    );
    // Without --repo, the root is the file's directory, where ci/deploy.yml is not.
    let out = run(&args, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(kinds(&json_report(&out)), pairs(&[("", "include-missing")]));
    // A file outside --repo is refused.
    let out = run(&[&args[..], &["--repo", repo.join("ci").to_str().unwrap()]].concat(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not inside the repository"), "{}", text(&out.stderr));
}

#[test]
fn more_files_than_gitlab_allows_are_refused_by_the_component() {
    let repo = tmp_dir("too-many");
    write(&repo, ".gitlab-ci.yml", "include: 'ci/*.yml'\n");
    for i in 0..160 {
        write(&repo, &format!("ci/{i:03}.yml"), &format!(".t{i}:\n  script: [x]\n"));
    }
    let out = run(
        &["lint", repo.join(".gitlab-ci.yml").to_str().unwrap(), "--project", "a/b", "--json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let error = json_report(&out);
    assert_eq!(error["error"], json!("usage"));
    assert!(error["message"].as_str().unwrap().starts_with("too-many-documents: "), "{error}");
}

// --- Real-world shapes ----------------------------------------------------------------------

#[test]
fn gitlab_azure_tutorial_job_has_the_gitlab_url_as_audience() {
    let root = core_testdata("gitlab-azure-tutorial.yml");
    let out = run(&["lint", &root, "--json"], &[("CI_PROJECT_PATH", "acme/app")]);
    assert_eq!(out.status.code(), Some(1));
    let report = json_report(&out);
    assert_eq!(kinds(&report), pairs(&[("auth", "audience-not-accepted")]));
    // The audience is fine when a broker in front of Entra accepts it.
    let out = run(
        &["lint", &root, "--audience", "https://gitlab.com"],
        &[("CI_PROJECT_PATH", "acme/app")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn terraform_plan_reaches_the_production_credential_from_merge_requests() {
    let dir = tmp_dir("terraform");
    let credentials = dir.join("credentials.json");
    std::fs::copy(data("credentials.json"), &credentials).unwrap();
    let root = core_testdata("terraform-azurerm.yml");
    let out = run(
        &[
            "lint",
            &root,
            "--project",
            "acme/app",
            "--json",
            "--credentials",
            credentials.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let report = json_report(&out);
    assert_eq!(
        kinds(&report),
        pairs(&[("", "include-not-followed"), ("plan", "protected-ref-reachable")])
    );
    assert_eq!(report["summary"]["critical"], json!(1));
    assert!(job(&report, "apply")["azure"]
        .as_array()
        .unwrap()
        .contains(&json!("terraform with azurerm")));
}

#[test]
fn a_merge_request_deploy_job_reaches_the_main_credential() {
    let root = core_testdata("mr-deploy.yml");
    let credentials = data("credentials.json");
    let args = ["lint", root.as_str(), "--project", "acme/app", "--credentials", &credentials];
    let out = run(&[&args[..], &["--json"]].concat(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        kinds(&json_report(&out)),
        pairs(&[("", "not-evaluated"), ("deploy-review", "protected-ref-reachable")])
    );
    // With ref_protected in the subject, merge-request tokens no longer match main's.
    let dir = tmp_dir("mr-protected");
    let strict = dir.join("credentials.json");
    std::fs::write(
        &strict,
        json!([{"name": "deploy-main", "issuer": "https://gitlab.com",
                "subject": "project_path:acme/app:ref_type:branch:ref:main:ref_protected:true",
                "audiences": ["api://AzureADTokenExchange"]}])
        .to_string(),
    )
    .unwrap();
    let args =
        ["lint", root.as_str(), "--project", "acme/app", "--credentials", strict.to_str().unwrap()];
    let out = run(
        &[&args[..], &["--sub-components", "project_path,ref_type,ref,ref_protected", "--json"]]
            .concat(),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(kinds(&json_report(&out)), pairs(&[("", "not-evaluated")]));
}

// --- Refused inputs --------------------------------------------------------------------------

#[test]
fn refused_inputs_name_the_flag_or_file_and_exit_2() {
    let root = data("planted/.gitlab-ci.yml");
    let out = run(&["lint", &root], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--project group/project (or set CI_PROJECT_PATH)"));

    let out = run(
        &["lint", &root, "--project", "a/b"],
        &[("CI_SERVER_URL", "http://gitlab.example.com")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: usage: context: lint context: `issuer` is `http://gitlab.example.com`, expected \
         the GitLab URL as tokens carry it, `https://host` without a trailing slash (from \
         $CI_SERVER_URL)\n"
    );

    let dir = tmp_dir("refused");
    write(
        &dir,
        "policy.json",
        "{\"rules\": [{\"name\": \"x\", \"effect\": \"allow\", \"wen\": {}}]}",
    );
    let policy = dir.join("policy.json");
    let out = run(
        &["lint", &root, "--project", "a/b", "--json", "--policy", policy.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let error = json_report(&out);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("policy-unknown-field: --policy {}: ", policy.display())),
        "{message}"
    );

    write(&dir, "credentials.json", "{}");
    let credentials = dir.join("credentials.json");
    let out = run(
        &["lint", &root, "--project", "a/b", "--credentials", credentials.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(&format!("--credentials {}: ", credentials.display())));

    let out = run(&["lint", "/nonexistent/.gitlab-ci.yml", "--project", "a/b"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("error: usage: cannot read /nonexistent/.gitlab-ci.yml: ")
    );
}

// --- The `lint` interface through the library --------------------------------------------------

mod interface {
    use gitlab_azure_oidc_host::{Category, CiFile, Host, Limits, LintContext, Session, Severity};
    use serde_json::json;

    fn session() -> Session {
        Host::embedded(Limits::default())
            .expect("run `make component` before these tests")
            .session()
            .unwrap()
    }

    fn context() -> LintContext {
        LintContext {
            project_path: "acme/app".into(),
            project_id: None,
            namespace_id: None,
            default_branch: None,
            default_branch_protected: None,
            protected_branches: Vec::new(),
            protected_tags: Vec::new(),
            protected_environments: Vec::new(),
            issuer: None,
            sub_claim_components: Vec::new(),
            extra_audiences: Vec::new(),
            app_id: None,
        }
    }

    #[test]
    fn local_includes_names_literal_paths_and_expands_globs_over_the_files_given() {
        let mut s = session();
        let doc = json!({"include": [
            "ci/a.yml", {"local": "/ci/*.yml"}, {"remote": "https://example.com/x.yml"},
            {"local": "../up.yml"}, {"local": "$DIR/z.yml"}, {"project": "g/p", "file": "f.yml"},
            "./ci/a.yml",
        ]})
        .to_string();
        let first = s.local_includes(&doc, &[]).unwrap().unwrap();
        assert_eq!(first.paths, ["ci/a.yml"]);
        assert_eq!(first.globs, ["ci/*.yml"]);
        let files = ["ci/a.yml", "ci/b.yml", "ci/sub/c.yml", "d.yml"].map(String::from);
        let second = s.local_includes(&doc, &files).unwrap().unwrap();
        assert_eq!(second.paths, ["ci/a.yml", "ci/b.yml"], "each once, `*` within one directory");
        assert_eq!(s.lint_max_files().unwrap(), 151);
        let refused = s.local_includes("{", &[]).unwrap().unwrap_err();
        assert_eq!((refused.kind.as_str(), refused.category), ("json", Category::Config));
    }

    /// The CLI runs the linter under the default limits (64 MiB, 2e9 fuel): GitLab's largest
    /// pipeline must fit.
    #[test]
    fn a_pipeline_at_the_job_limit_is_linted_within_the_default_limits() {
        let mut jobs = serde_json::Map::new();
        for i in 0..1000 {
            jobs.insert(
                format!("job{i}"),
                json!({
                    "id_tokens": {"AZURE_ID_TOKEN": {"aud": "api://AzureADTokenExchange"}},
                    "script": ["az login --service-principal -u $C --tenant $T --federated-token $AZURE_ID_TOKEN"],
                    "rules": [
                        {"if": format!("$CI_PIPELINE_SOURCE == \"merge_request_event\" && $CI_MERGE_REQUEST_TARGET_BRANCH_NAME == \"b{}\"", i % 40)},
                        {"if": format!("$CI_COMMIT_BRANCH =~ /^team{}\\//", i % 40), "when": "manual"},
                        {"if": "$CI_COMMIT_TAG", "changes": ["src/**"]},
                    ],
                }),
            );
        }
        let root = CiFile {
            path: ".gitlab-ci.yml".into(),
            json: serde_json::Value::Object(jobs).to_string(),
            key_lines: vec![("job1".into(), 7)],
        };
        let credentials = json!([{"name": "main", "issuer": "https://gitlab.com",
            "subject": "project_path:acme/app:ref_type:branch:ref:main",
            "audiences": ["api://AzureADTokenExchange"]}])
        .to_string();
        let started = std::time::Instant::now();
        let report = session()
            .lint_pipeline(&root, &[], &context(), None, Some(&credentials), Severity::Critical)
            .unwrap()
            .unwrap();
        eprintln!("1000 jobs linted in the component in {:?}", started.elapsed());
        assert_eq!((report.jobs, report.azure_jobs), (1000, 1000));
        let value: serde_json::Value = serde_json::from_str(&report.json).unwrap();
        let job1 = value["jobs"].as_array().unwrap().iter().find(|j| j["name"] == "job1").unwrap();
        assert_eq!(job1["line"], json!(7));
        let c = &report.counts;
        assert_eq!(
            u64::from(c.critical + c.high + c.medium + c.low + c.info),
            value["findings"].as_array().unwrap().len() as u64
        );
        assert_eq!(report.fails, c.critical > 0);
    }
}
