//! `gitlab-azure-oidc exchange`: what a GitLab CI job runs instead of
//! `az login --federated-token`. The component judges; this module reads, sends and prints.

use std::io::Write;
use std::time::Duration;

use clap::{Args, ValueEnum};
use gitlab_azure_oidc_host::{AccessToken, AzureTarget, Credential, Host, Session};
use serde_json::json;

use crate::fetch::Client;
use crate::flags::{CheckFlags, TokenFlags, ENTRA_AUDIENCE};
use crate::{load_host, unix_now, Exit};

/// The longest `Retry-After` honoured before the single retry; longer waits fail instead.
const MAX_RETRY_WAIT: u64 = 60;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// The bare access token.
    Token,
    /// The fields of `az account get-access-token`.
    Json,
    /// `export AZURE_ACCESS_TOKEN=...` lines for `eval`.
    Env,
}

#[derive(Args, Clone)]
pub(crate) struct ExchangeArgs {
    /// The Entra tenant (GUID or domain).
    #[arg(long, value_name = "TENANT", env = "AZURE_TENANT_ID")]
    pub(crate) tenant: Option<String>,
    /// The app registration or managed identity client id.
    #[arg(long, value_name = "GUID", env = "AZURE_CLIENT_ID")]
    pub(crate) client_id: Option<String>,
    /// A scope, `<resource>/.default` (repeatable; all of one resource).
    #[arg(long = "scope", value_name = "SCOPE")]
    pub(crate) scopes: Vec<String>,
    /// The Entra authority host of a known cloud, e.g. login.microsoftonline.us.
    #[arg(long, value_name = "HOST", env = "AZURE_AUTHORITY_HOST")]
    pub(crate) authority_host: Option<String>,
    /// Replace `https://{authority-host}` as the token endpoint base (private clouds, proxies,
    /// tests; plain http:// only on loopback).
    #[arg(long, value_name = "URL")]
    pub(crate) authority_url: Option<String>,
    /// Verify the GitLab token before sending it (implied by --policy).
    #[arg(long)]
    pub(crate) verify: bool,
    /// Decide the Azure target with this policy (implies --verify); the audit event goes to
    /// stderr or --audit-log.
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<String>,
    /// Append audit events (JSON lines) to this file instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub(crate) audit_log: Option<String>,
    /// How to print the access token.
    #[arg(long, value_enum, default_value = "token")]
    pub(crate) output: Output,
    /// Seconds to wait for Entra's answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub(crate) timeout: u64,
    /// Print each step on stderr (never a token).
    #[arg(long, short)]
    pub(crate) verbose: bool,
    #[command(flatten)]
    pub(crate) check: CheckFlags,
    #[command(flatten)]
    pub(crate) token: TokenFlags,
}

pub(crate) fn command(component: Option<&str>, args: &ExchangeArgs) -> Result<(), Exit> {
    let host = load_host(component)?;
    let token = args.token.read(None)?;
    let (access, tenant) = run(&host, args, &token, &mut std::io::stderr())?;
    let out = match args.output {
        Output::Token => access.token.clone(),
        Output::Json => json!({
            "accessToken": access.token,
            "expiresOn": civil_time(access.expires_at),
            "expires_on": access.expires_at,
            "subscription": null,
            "tenant": tenant,
            "tokenType": access.token_type,
        })
        .to_string(),
        Output::Env => format!(
            "export AZURE_ACCESS_TOKEN='{}'\nexport AZURE_ACCESS_TOKEN_EXPIRES_ON='{}'",
            access.token, access.expires_at
        ),
    };
    println!("{out}");
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS.000000` in UTC, as `az account get-access-token` prints `expiresOn`.
fn civil_time(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let secs = unix % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.000000",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The whole flow in one component instance. Returns the access token and the tenant.
pub(crate) fn run(
    host: &Host,
    args: &ExchangeArgs,
    token: &str,
    log: &mut dyn Write,
) -> Result<(AccessToken, String), Exit> {
    let mut say = |line: String| {
        if args.verbose {
            let _ = writeln!(log, "{line}");
        }
    };
    let mut session = host.session()?;
    let mut target = AzureTarget {
        tenant: args.tenant.clone().unwrap_or_default(),
        client_id: args.client_id.clone().unwrap_or_default(),
        scopes: args.scopes.clone(),
        authority_host: args.authority_host.clone(),
        insecure_authority_url: args.authority_url.clone(),
    };
    if args.verify || args.policy.is_some() {
        let now = unix_now();
        let verified = args.check.verify(&mut session, token, now, Some(ENTRA_AUDIENCE))?;
        let c = &verified.claims;
        say(format!(
            "verified: iss {} sub {} jti {} (token sha256 {}), expires in {} s",
            c.iss,
            c.sub.as_deref().unwrap_or("-"),
            c.jti.as_deref().unwrap_or("-"),
            &verified.fingerprint[..16],
            c.exp.saturating_sub(now)
        ));
        if let Some(path) = &args.policy {
            let decided = decide(
                &mut session,
                path,
                &verified.claims,
                token,
                now,
                args.audit_log.as_deref(),
            )?;
            for line in &decided.1 {
                say(format!("policy: {line}"));
            }
            let granted = decided.0;
            for (flag, given, wanted) in [
                ("--tenant", &args.tenant, &granted.tenant),
                ("--client-id", &args.client_id, &granted.client_id),
            ] {
                if given.as_ref().is_some_and(|g| g != wanted) {
                    return Err(Exit::Usage(format!(
                        "{flag} {} conflicts with the policy's target {wanted}; drop the flag or change the policy",
                        given.as_deref().unwrap_or_default()
                    )));
                }
            }
            target.tenant = granted.tenant;
            target.client_id = granted.client_id;
            if target.scopes.is_empty() {
                target.scopes = granted.scopes;
            } else if target.scopes != granted.scopes {
                return Err(Exit::Usage(
                    "--scope differs from the scopes the policy grants".into(),
                ));
            }
        }
    }
    if target.tenant.is_empty() || target.client_id.is_empty() {
        return Err(Exit::Usage(
            "no Azure target: pass --tenant and --client-id (or set AZURE_TENANT_ID and AZURE_CLIENT_ID), or --policy".into(),
        ));
    }
    let request = session
        .build_azure_assertion(&target, &Credential::Federated(token.to_owned()), unix_now())?
        .map_err(|f| Exit::refused(f.kind, f.message))?;
    say(format!(
        "request: {} {} (client_id {}, scope {})",
        request.method,
        request.url,
        target.client_id,
        scope_of(&target)
    ));
    let client =
        Client::new(args.check.ca_file.as_deref(), Duration::from_secs(args.timeout.max(1)))
            .map_err(Exit::Usage)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let answer = client
            .send(&request.method, &request.url, &request.headers, &request.body)
            .map_err(|e| match e.strip_prefix("timeout: ") {
                Some(detail) => Exit::refused(
                    "timeout",
                    format!(
                        "{detail}; Entra or the network is slow: retry later, or raise --timeout"
                    ),
                ),
                None => Exit::refused(
                    "unreachable",
                    format!("{e}; check the authority URL and the network"),
                ),
            })?;
        match session.parse_token_response(
            answer.status,
            &answer.headers,
            &answer.body,
            unix_now(),
        )? {
            Ok(access) => {
                say(format!(
                    "entra: HTTP {}: {} token, expires in {} s (never printed here)",
                    answer.status, access.token_type, access.expires_in
                ));
                return Ok((access, target.tenant));
            }
            Err(failure) => {
                let wait = failure.retry_after_seconds.unwrap_or(1);
                if failure.retryable && attempt == 1 && wait <= MAX_RETRY_WAIT {
                    say(format!("entra: {} (retrying once in {wait} s)", failure.kind));
                    std::thread::sleep(Duration::from_secs(wait));
                    continue;
                }
                return Err(Exit::refused(failure.kind, failure.message));
            }
        }
    }
}

fn scope_of(target: &AzureTarget) -> String {
    if target.scopes.is_empty() {
        "https://management.azure.com/.default".to_owned()
    } else {
        target.scopes.join(" ")
    }
}

/// Loads the policy, decides, writes the audit event; a deny is an [`Exit::Refused`].
fn decide(
    session: &mut Session,
    path: &str,
    claims: &gitlab_azure_oidc_host::Claims,
    token: &str,
    now: u64,
    audit_log: Option<&str>,
) -> Result<
    (
        gitlab_azure_oidc_host::bindings::exports::gitlab_azure::oidc::policy::AzureTarget,
        Vec<String>,
    ),
    Exit,
> {
    let document = std::fs::read_to_string(path)
        .map_err(|e| Exit::Usage(format!("cannot read --policy {path}: {e}")))?;
    let policy = session
        .load_policy(&document)?
        .map_err(|f| Exit::refused(f.kind, format!("{path}: {}", f.message)))?;
    let decision = session
        .decide(policy, claims, token, now)?
        .map_err(|f| Exit::refused(f.kind, f.message))?;
    write_audit(audit_log, &decision.audit_json)?;
    match decision.target {
        Some(target) if decision.allow => Ok((target, decision.lines)),
        _ => Err(Exit::refused(
            "policy-denied",
            format!("{}\n{}", decision.summary, decision.lines.join("\n")),
        )),
    }
}

pub(crate) fn write_audit(audit_log: Option<&str>, event: &str) -> Result<(), Exit> {
    match audit_log {
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| Exit::Usage(format!("cannot open --audit-log {path}: {e}")))?;
            writeln!(file, "{event}")
                .map_err(|e| Exit::Usage(format!("cannot write --audit-log {path}: {e}")))
        }
        None => {
            eprintln!("{event}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::civil_time;

    #[test]
    fn civil_time_matches_known_dates() {
        assert_eq!(civil_time(0), "1970-01-01 00:00:00.000000");
        assert_eq!(civil_time(951_782_400), "2000-02-29 00:00:00.000000");
        assert_eq!(civil_time(1_764_115_200 + 3661), "2025-11-26 01:01:01.000000");
    }
}
