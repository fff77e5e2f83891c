//! `gitlab-azure-oidc demo` (and `make demo`): the real flow, on loopback, with no account.
//!
//! A GitLab stand-in with a freshly generated RSA key mints ID tokens with GitLab's full claim
//! set; an Entra stand-in checks token requests as Entra does (form, federated credential,
//! signature against the issuer's JWKS fetched through discovery, time range). The flow itself
//! is exactly `gitlab-azure-oidc exchange --verify --policy`, with the embedded demo policy.

use std::io::Write;

use gitlab_azure_oidc_host::Host;
use serde_json::{json, Value};
use testkit::{RsaKey, AUDIENCE, CLIENT_ID, SUBJECT, TENANT};

use crate::exchange::{self, ExchangeArgs, Output};
use crate::flags::{CheckFlags, TokenFlags};
use crate::{load_host, unix_now, Exit};

/// The policy the demo decides with (`examples/policies/demo.json`).
const DEMO_POLICY: &str = include_str!("../../examples/policies/demo.json");

struct Case {
    title: &'static str,
    claims: Value,
    /// `None`: an access token is expected; otherwise the error kind.
    expect: Option<&'static str>,
}

pub(crate) fn command(component: Option<&str>) -> Result<(), Exit> {
    let host = load_host(component)?;
    let mut out = std::io::stdout();
    let ok = run(&host, &mut out)?;
    if ok {
        Ok(())
    } else {
        Err(Exit::refused("demo", "a step did not behave as expected (see above)"))
    }
}

/// Runs every case, printing to `out`; true when each ended as expected.
pub(crate) fn run(host: &Host, out: &mut dyn Write) -> Result<bool, Exit> {
    let _ = writeln!(out, "==> Starting loopback stand-ins: a GitLab instance (fresh RSA-2048 key) and Microsoft Entra");
    let key = RsaKey::generate(2048);
    let (issuer, entra) = testkit::stand_ins(&key);
    let _ =
        writeln!(out, "    gitlab  {} (discovery and JWKS as GitLab serves them)", issuer.url());
    let _ = writeln!(out, "    entra   {} (tenant {TENANT}, app {CLIENT_ID})", entra.url());
    let _ = writeln!(out, "    the app trusts iss {} sub {SUBJECT} aud {AUDIENCE}", issuer.url());

    let dir = std::env::temp_dir().join(format!("gitlab-azure-oidc-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Exit::Usage(format!("cannot create {}: {e}", dir.display())))?;
    let policy_path = dir.join("policy.json");
    std::fs::write(&policy_path, DEMO_POLICY)
        .map_err(|e| Exit::Usage(format!("cannot write the demo policy: {e}")))?;
    let audit_path = dir.join("audit.jsonl");

    let args = ExchangeArgs {
        tenant: None,
        client_id: None,
        scopes: Vec::new(),
        authority_host: None,
        authority_url: Some(entra.url()),
        verify: true,
        policy: Some(policy_path.display().to_string()),
        audit_log: Some(audit_path.display().to_string()),
        output: Output::Token,
        timeout: 10,
        verbose: true,
        check: CheckFlags {
            issuer: Some(issuer.url()),
            jwks: None,
            audiences: Vec::new(),
            algorithms: Vec::new(),
            leeway: 60,
            max_age: None,
            insecure_skip_audience: false,
            ca_file: None,
        },
        token: TokenFlags { token_file: None, token_env: "GITLAB_OIDC_TOKEN".into() },
    };
    let now = unix_now();
    let cases = [
        Case {
            title: "A deploy job on protected main, environment production",
            claims: json!({}),
            expect: None,
        },
        Case {
            title: "The same job, but `id_tokens: aud:` is the GitLab URL (the GitLab tutorial's default)",
            claims: json!({"aud": issuer.url()}),
            expect: Some("audience-mismatch"),
        },
        Case {
            title: "A protected release tag v1.4.0: the policy allows it, but no federated credential names its subject",
            claims: json!({"ref": "v1.4.0", "ref_type": "tag", "ref_path": "refs/tags/v1.4.0", "environment": null,
                "environment_protected": null, "deployment_tier": null, "environment_action": null,
                "sub": "project_path:acme/payments:ref_type:tag:ref:v1.4.0"}),
            expect: Some("entra-error"),
        },
        Case {
            title: "A token from a job that ended an hour ago",
            claims: json!({"iat": now - 7200, "nbf": now - 7205, "exp": now - 3600}),
            expect: Some("expired"),
        },
    ];
    let mut all_ok = true;
    for (n, case) in cases.iter().enumerate() {
        let _ = writeln!(out, "\n==> {}. {}", n + 1, case.title);
        let token = issuer.mint(&case.claims);
        let _ = writeln!(out, "$ gitlab-azure-oidc exchange --verify --policy demo.json --issuer {} --authority-url {}", issuer.url(), entra.url());
        let outcome = exchange::run(host, &args, &token, out);
        let (line, ok) = match (&outcome, case.expect) {
            (Ok((access, _)), None) => (
                format!(
                    "OK: an Azure access token for tenant {TENANT}, valid {} s (not printed)",
                    access.expires_in
                ),
                true,
            ),
            (Err(exit), expected) => {
                let (line, _, _) = exit.report();
                let kind_ok =
                    matches!(exit, Exit::Refused { kind, .. } if Some(kind.as_str()) == expected);
                (line, kind_ok)
            }
            (Ok(_), Some(_)) => ("unexpected: an access token was issued".to_owned(), false),
        };
        let _ = writeln!(out, "{line}");
        if !ok {
            let _ = writeln!(out, "!! expected {}", case.expect.unwrap_or("an access token"));
        }
        all_ok &= ok;
    }
    let audit = std::fs::read_to_string(&audit_path).unwrap_or_default();
    let _ = writeln!(
        out,
        "\n==> Audit log: {} decisions (JSON lines; no token, only its jti and SHA-256)",
        audit.lines().count()
    );
    if let Some(first) = audit.lines().next() {
        let _ = writeln!(out, "{first}");
    }
    let _ = writeln!(
        out,
        "\n==> Entra saw {} token requests; GitLab answered {} requests",
        entra.token_requests(),
        issuer.requests()
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = writeln!(
        out,
        "{}",
        if all_ok { "demo: every step behaved as expected" } else { "demo: FAILED" }
    );
    Ok(all_ok)
}
