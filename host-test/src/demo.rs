//! `gitlab-azure-oidc demo` (and `make demo`): the real flow, on loopback, with no account.
//!
//! A GitLab stand-in with a freshly generated RSA key mints ID tokens with GitLab's full claim
//! set; an Entra stand-in checks token requests as Entra does (form, federated credential,
//! signature against the issuer's JWKS fetched through discovery, time range). The flow itself
//! is exactly `gitlab-azure-oidc exchange --verify --policy`, with the embedded demo policy.

use std::io::Write;

use clap::{CommandFactory, FromArgMatches};
use gitlab_azure_oidc_host::Host;
use serde_json::{json, Value};
use testkit::{RsaKey, AUDIENCE, CLIENT_ID, SUBJECT, TENANT};

use crate::exchange;
use crate::exit::Exit;
use crate::{unix_now, Cli};

/// The policy the demo decides with (`examples/policies/demo.json`).
const DEMO_POLICY: &str = include_str!("../../examples/policies/demo.json");

struct Case {
    title: &'static str,
    claims: Value,
    /// `None`: an access token is expected; otherwise the error kind.
    expect: Option<&'static str>,
}

pub(crate) fn command(host: &Host) -> Result<(), Exit> {
    let mut out = std::io::stdout();
    let ok = run(host, &mut out)?;
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
        .map_err(|e| Exit::usage(format!("cannot create {}: {e}", dir.display())))?;
    let policy_path = dir.join("policy.json");
    std::fs::write(&policy_path, DEMO_POLICY)
        .map_err(|e| Exit::usage(format!("cannot write the demo policy: {e}")))?;
    let audit_path = dir.join("audit.jsonl");

    // The exchange exactly as a job runs it: the same command line, parsed by the same parser.
    let command_line = [
        "gitlab-azure-oidc".to_owned(),
        "exchange".to_owned(),
        "--verify".to_owned(),
        "--policy".to_owned(),
        policy_path.display().to_string(),
        "--audit-log".to_owned(),
        audit_path.display().to_string(),
        "--issuer".to_owned(),
        issuer.url(),
        "--authority-url".to_owned(),
        entra.url(),
        "--timeout".to_owned(),
        "10".to_owned(),
        "--verbose".to_owned(),
    ];
    let matches = Cli::command()
        .try_get_matches_from(&command_line)
        .map_err(|e| Exit::usage(format!("the demo's own command line: {e}")))?;
    let (args, sub) = match (Cli::from_arg_matches(&matches), matches.subcommand()) {
        (Ok(Cli { command: crate::Command::Exchange(args), .. }), Some((_, sub))) => {
            (args, sub.clone())
        }
        _ => return Err(Exit::usage("the demo's own command line is not an exchange")),
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
        let outcome = exchange::run(host, &args, &sub, &token, out);
        let (line, ok) = match (&outcome, case.expect) {
            (Ok(exchanged), None) => (
                format!(
                    "OK: an Azure access token for tenant {TENANT}, valid {} s (not printed)",
                    exchanged.access.expires_in
                ),
                true,
            ),
            (Err(Exit::Refused { kind, message, hint }), expected) => {
                let mut line = format!("error: {kind}: {message}");
                if let Some(hint) = hint.as_ref().filter(|h| !message.contains(h.as_str())) {
                    line.push_str(&format!("\n  hint: {hint}"));
                }
                (line, Some(kind.as_str()) == expected)
            }
            (Err(exit), _) => (format!("error: {exit:?}"), false),
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
