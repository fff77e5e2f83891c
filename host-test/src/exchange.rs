//! `gitlab-azure-oidc exchange`: what a GitLab CI job runs instead of
//! `az login --federated-token`. The component's gate judges; this module fetches the keys,
//! sends the request Entra gets, reads the clock and prints.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgMatches, Args, ValueEnum};
use gitlab_azure_oidc_host::{
    AccessToken, Admission, AzureTarget, Credential, GateConfig, GateHandle, Host,
};
use serde_json::json;

use crate::exit::Exit;
use crate::fetch::{self, Client};
use crate::flags::{CheckFlags, Source, TokenFlags, ENTRA_AUDIENCE};
use crate::{files, out, renew, unix_now};

/// The longest `Retry-After` honoured before the single retry; longer waits fail instead.
const MAX_RETRY_WAIT: u64 = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// The bare access token.
    Token,
    /// The fields of `az account get-access-token`.
    Json,
    /// `export AZURE_ACCESS_TOKEN='...'` lines, for `. FILE` (with --out) or `eval`.
    Env,
    /// `AZURE_ACCESS_TOKEN=...` lines, for a GitLab `artifacts:reports:dotenv` file.
    Dotenv,
}

#[derive(Args, Clone, Debug)]
pub(crate) struct ExchangeArgs {
    /// The Entra tenant (GUID or domain). Ignored with --policy (the rule names it) unless it
    /// conflicts.
    #[arg(long, value_name = "TENANT", env = "AZURE_TENANT_ID")]
    pub(crate) tenant: Option<String>,
    /// The app registration or managed identity client id. Ignored with --policy unless it
    /// conflicts.
    #[arg(long, value_name = "GUID", env = "AZURE_CLIENT_ID")]
    pub(crate) client_id: Option<String>,
    /// A scope, `<resource>/.default` (repeatable; all of one resource).
    #[arg(long = "scope", value_name = "SCOPE")]
    pub(crate) scopes: Vec<String>,
    /// The Entra authority host of a known cloud, e.g. login.microsoftonline.us.
    #[arg(long, value_name = "HOST", env = "AZURE_AUTHORITY_HOST")]
    pub(crate) authority_host: Option<String>,
    /// DANGEROUS: send the token request to this base URL instead of Entra (private clouds,
    /// proxies, tests; plain http:// only on loopback). It receives the GitLab token.
    #[arg(long, value_name = "URL")]
    pub(crate) authority_url: Option<String>,
    /// Verify the GitLab token before sending it (implied by --policy).
    #[arg(long)]
    pub(crate) verify: bool,
    /// Decide the Azure target with this policy (implies --verify); the audit events (the
    /// decision, then each Entra answer) go to stderr or --audit-log.
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<String>,
    /// Append audit events (JSON lines) to this file instead of stderr; without --policy, the
    /// Entra answers alone.
    #[arg(long, value_name = "FILE")]
    pub(crate) audit_log: Option<String>,
    /// How to print the access token.
    #[arg(long, value_enum, default_value = "token")]
    pub(crate) output: Output,
    /// Write the output to FILE instead of stdout: atomically, readable by the owner only (0600),
    /// and only on success. Scripts then need no command substitution, which would hide a failed
    /// exchange (`export VAR="$(...)"` always succeeds).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// With --out: after the first exchange, keep FILE fresh from a background process, which
    /// exchanges the GitLab token again before the Azure token expires (at 80% of its
    /// lifetime), and stops when the job's shell exits, the GitLab token expires or Entra
    /// refuses. The command itself returns as soon as FILE holds the first token.
    #[arg(long, requires = "out")]
    pub(crate) renew: bool,
    /// Set by --renew on the background process it starts (PID:START of the job's shell).
    #[arg(long, hide = true, value_name = "PID:START")]
    pub(crate) renewer_of: Option<String>,
    /// Seconds to wait for Entra's answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub(crate) timeout: u64,
    /// Print each step on stderr (never a token).
    #[arg(long, short)]
    pub(crate) verbose: bool,
    /// Ask this broker instead of Entra: POST the job's token to URL/token (or to URL itself when
    /// it has a path) and print the Azure token it answers with. The broker's policy binds; the
    /// job's `id_tokens:` audience is the broker's URL. https://, or http:// on loopback.
    #[arg(long, value_name = "URL", env = "GITLAB_AZURE_OIDC_BROKER")]
    pub(crate) broker: Option<String>,
    /// With --broker: ask for the broker-signed assertion instead and write it to FILE (mode
    /// 0600, replaced atomically), where `az login --federated-token "$(cat FILE)"`, Terraform
    /// (ARM_OIDC_TOKEN_FILE_PATH) and Azure Identity (AZURE_FEDERATED_TOKEN_FILE) read it.
    #[arg(long, value_name = "FILE", requires = "broker")]
    pub(crate) assertion_file: Option<String>,
    #[command(flatten)]
    pub(crate) check: CheckFlags,
    #[command(flatten)]
    pub(crate) token: TokenFlags,
}

/// An exchange's result.
pub(crate) struct Exchanged {
    pub(crate) access: AccessToken,
    pub(crate) tenant: String,
    /// When the GitLab token expires, when it was verified.
    pub(crate) gitlab_expires_at: Option<u64>,
}

pub(crate) fn command(host: &Host, args: &ExchangeArgs, matches: &ArgMatches) -> Result<(), Exit> {
    if let Some(shell) = &args.renewer_of {
        return renew::renewer(host, args, matches, shell);
    }
    // Before the exchange, so a job that cannot renew fails before it relies on renewal.
    let shell = if args.renew { Some(renew::Shell::of_this_process()?) } else { None };
    let token = args.token.read(None)?;
    let exchanged = run(host, args, matches, &token, &mut std::io::stderr())?;
    deliver(args, &exchanged)?;
    if let (Some(shell), Some(path)) = (shell, &args.out) {
        renew::start(&shell, path, &exchanged)?;
    }
    Ok(())
}

/// Prints the token as `--output` asks, or writes it to `--out`.
pub(crate) fn deliver(args: &ExchangeArgs, exchanged: &Exchanged) -> Result<(), Exit> {
    let text = render(args.output, exchanged);
    match &args.out {
        None => {
            if args.output == Output::Json {
                out::json_mark();
            }
            Ok(out::line(&text)?)
        }
        Some(path) => {
            // A bare token file ends without a newline, as token files do (Kubernetes,
            // AZURE_FEDERATED_TOKEN_FILE); the line-based formats end with one.
            let text = if args.output == Output::Token { text } else { format!("{text}\n") };
            files::write_atomically(path, text.as_bytes(), 0o600)
                .map_err(|e| Exit::usage(format!("cannot write --out {}: {e}", path.display())))
        }
    }
}

fn render(output: Output, exchanged: &Exchanged) -> String {
    let access = &exchanged.access;
    match output {
        Output::Token => access.token.clone(),
        Output::Json => json!({
            "accessToken": access.token,
            "expiresOn": crate::time::az_local(access.expires_at),
            "expires_on": access.expires_at,
            "subscription": null,
            "tenant": exchanged.tenant,
            "tokenType": access.token_type,
        })
        .to_string(),
        Output::Env => format!(
            "export AZURE_ACCESS_TOKEN='{}'\nexport AZURE_ACCESS_TOKEN_EXPIRES_ON='{}'",
            access.token, access.expires_at
        ),
        // GitLab keeps quotes in dotenv values as part of the value, so none are written.
        Output::Dotenv => format!(
            "AZURE_ACCESS_TOKEN={}\nAZURE_ACCESS_TOKEN_EXPIRES_ON={}",
            access.token, access.expires_at
        ),
    }
}

/// The gate's configuration from the flags: read and checked before any network call, so a
/// broken policy or target fails at once.
fn gate_config(args: &ExchangeArgs, matches: &ArgMatches) -> Result<GateConfig, Exit> {
    let verifying = args.verify || args.policy.is_some();
    let verifier =
        if verifying { Some(args.check.config(matches, Some(ENTRA_AUDIENCE))?) } else { None };
    let policy =
        args.policy.as_deref().map(|path| fetch::read_file(path, "--policy")).transpose()?;
    let target = match &policy {
        Some(_) => None,
        None => {
            let missing = |flag: &str, env: &str| {
                Exit::usage(format!(
                    "no Azure target: pass {flag} (or set {env}), or decide it with --policy FILE"
                ))
            };
            Some(AzureTarget {
                tenant: args
                    .tenant
                    .clone()
                    .ok_or_else(|| missing("--tenant", "AZURE_TENANT_ID"))?,
                client_id: args
                    .client_id
                    .clone()
                    .ok_or_else(|| missing("--client-id", "AZURE_CLIENT_ID"))?,
                scopes: args.scopes.clone(),
                authority_host: args.authority_host.clone(),
            })
        }
    };
    Ok(GateConfig {
        verifier,
        policy,
        target,
        credential: Credential::Federated,
        dangerous_authority_url: args.authority_url.clone(),
    })
}

/// The whole flow: fetch the keys, admit, send, finish, with one retry when Entra says so.
pub(crate) fn run(
    host: &Host,
    args: &ExchangeArgs,
    matches: &ArgMatches,
    token: &str,
    log: &mut dyn Write,
) -> Result<Exchanged, Exit> {
    let mut say = |line: String| {
        if args.verbose {
            let _ = writeln!(log, "{line}");
        }
    };
    let config = gate_config(args, matches)?;
    let issuer = config.verifier.as_ref().map(|v| v.issuer.clone());
    let context = args.policy.as_deref();
    let mut gate = GateHandle::new(host, config, None)?.map_err(|f| Exit::failure(f, context))?;
    if let Some(issuer) = &issuer {
        // Fetched for this run, so an unknown `kid` afterwards is not a stale cache: the gate's
        // `refetch-jwks` advice has nothing more to fetch.
        let jwks = args.check.fetch_jwks(matches, issuer)?;
        gate.install_jwks(jwks)?.map_err(|f| Exit::failure(f, Some("the issuer's JWKS")))?;
    }
    let now = unix_now();
    let admitted = gate.admit(token, now)?;
    write_audit(args.audit_log.as_deref(), &gate.take_audit()?)?;
    let admission = admitted.map_err(|f| Exit::failure(f, None))?;
    describe(&admission, now, &mut say);
    check_conflicts(args, matches, &admission.target, &mut say)?;
    let tenant = admission.target.tenant.clone();
    let gitlab_expires_at = admission.verified.as_ref().map(|v| v.claims.exp);
    let request = &admission.request;
    let client =
        Client::new(args.check.ca_file.as_deref(), Duration::from_secs(args.timeout.max(1)))
            .map_err(Exit::usage)?;
    let authority = match &args.authority_url {
        Some(url) => format!("--authority-url {url}"),
        None => "the Entra authority and the network".to_owned(),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let answer = client
            .send(&request.method, &request.url, &request.headers, &request.body)
            .map_err(|e| e.exit(&authority))?;
        let finished = gate.finish(
            &admission.request_id,
            answer.status,
            &answer.headers,
            &answer.body,
            unix_now(),
        )?;
        let answered = gate.take_audit()?;
        // Without a policy there is no decision to join the answer to: it goes to --audit-log
        // when one is asked for, and stderr keeps only the run's own lines.
        if args.policy.is_some() || args.audit_log.is_some() {
            write_audit(args.audit_log.as_deref(), &answered)?;
        }
        match finished {
            Ok(access) => {
                say(format!(
                    "entra: HTTP {}: {} token, expires in {} s (never printed here)",
                    answer.status, access.token_type, access.expires_in
                ));
                return Ok(Exchanged { access, tenant, gitlab_expires_at });
            }
            Err(failure) => {
                let wait = failure.retry_after.unwrap_or(1);
                if failure.retryable && attempt == 1 && wait <= MAX_RETRY_WAIT {
                    say(format!("entra: {} (retrying once in {wait} s)", failure.kind));
                    std::thread::sleep(Duration::from_secs(wait));
                    continue;
                }
                return Err(Exit::failure(failure, None));
            }
        }
    }
}

fn describe(admission: &Admission, now: u64, say: &mut dyn FnMut(String)) {
    if let Some(v) = &admission.verified {
        let c = &v.claims;
        say(format!(
            "verified: iss {} sub {} jti {} (token sha256 {}), expires in {} s",
            c.iss,
            c.sub.as_deref().unwrap_or("-"),
            c.jti.as_deref().unwrap_or("-"),
            v.fingerprint.get(..16).unwrap_or_default(),
            c.exp.saturating_sub(now)
        ));
    }
    for line in &admission.explanation {
        say(format!("policy: {line}"));
    }
    let target = &admission.target;
    say(format!(
        "request: POST {} (client_id {}, scope {})",
        admission.request.url,
        target.client_id,
        if target.scopes.is_empty() {
            "ARM's .default".to_owned()
        } else {
            target.scopes.join(" ")
        }
    ));
}

/// Tenant, client id or scopes given beside a policy: an explicit flag that contradicts the
/// policy's rule is an error; a value from the environment (often set project-wide) is only a
/// note, since the rule decides. Ids compare without case, as Entra compares them.
fn check_conflicts(
    args: &ExchangeArgs,
    matches: &ArgMatches,
    granted: &AzureTarget,
    say: &mut dyn FnMut(String),
) -> Result<(), Exit> {
    if args.policy.is_none() {
        return Ok(());
    }
    let fields = [
        ("tenant", "tenant", "AZURE_TENANT_ID", &args.tenant, &granted.tenant),
        ("client_id", "client-id", "AZURE_CLIENT_ID", &args.client_id, &granted.client_id),
    ];
    for (id, flag, env, given, wanted) in fields {
        let Some(given) = given.as_deref().filter(|g| !g.eq_ignore_ascii_case(wanted)) else {
            continue;
        };
        match Source::of(matches, id, flag, Some(env)) {
            Source::Flag(flag) => {
                return Err(Exit::usage(format!(
                    "{flag} {given} conflicts with {wanted}, which the policy's rule grants; drop \
                     the flag or change the rule"
                )))
            }
            source => say(format!(
                "note: {} is {given}, but the policy's rule grants {wanted}: the rule decides",
                source.describe()
            )),
        }
    }
    if !args.scopes.is_empty() && args.scopes != granted.scopes {
        return Err(Exit::usage(format!(
            "--scope {} differs from the scopes the policy's rule grants ({}); drop --scope or \
             change the rule",
            args.scopes.join(" "),
            granted.scopes.join(" ")
        )));
    }
    Ok(())
}

/// Appends audit events (JSON lines) to `audit_log`, or writes them to stderr.
pub(crate) fn write_audit(audit_log: Option<&str>, events: &[String]) -> Result<(), Exit> {
    if events.is_empty() {
        return Ok(());
    }
    match audit_log {
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| Exit::usage(format!("cannot open --audit-log {path}: {e}")))?;
            for event in events {
                writeln!(file, "{event}")
                    .map_err(|e| Exit::usage(format!("cannot write --audit-log {path}: {e}")))?;
            }
            Ok(())
        }
        None => {
            for event in events {
                eprintln!("{event}");
            }
            Ok(())
        }
    }
}
