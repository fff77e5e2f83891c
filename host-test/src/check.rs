//! `check` (would this job get an Azure identity, and why) and `plan` (the federated
//! credentials and role assignments a policy needs).

use clap::{ArgMatches, Args, ValueEnum};
use gitlab_azure_oidc_host::{Host, PlanOptions, PolicyRef, RuleWarnings, Session, SubjectForm};
use serde_json::json;

use crate::exchange::write_audit;
use crate::exit::Exit;
use crate::fetch::read_file;
use crate::flags::{CheckFlags, TokenFlags, ENTRA_AUDIENCE};
use crate::{out, unix_now};

#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    /// The policy document (JSON).
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: String,
    /// The app's federated credentials as `az ad app federated-credential list` prints them:
    /// also say whether Entra would accept the token.
    #[arg(long, value_name = "FILE")]
    pub(crate) credentials: Option<String>,
    /// Decide for these claims (a JSON object) instead of a verified token: for what-if
    /// questions. Nothing is verified.
    #[arg(long, value_name = "FILE", conflicts_with = "token_arg")]
    pub(crate) claims: Option<String>,
    /// Decide as of this time (seconds since the Unix epoch) instead of now.
    #[arg(long, value_name = "UNIX")]
    pub(crate) now: Option<u64>,
    /// Print the decision as one JSON document on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) check: CheckFlags,
    #[command(flatten)]
    pub(crate) token: TokenFlags,
    /// The token (verified first with the flags above), or `-` for stdin.
    #[arg(value_name = "TOKEN")]
    pub(crate) token_arg: Option<String>,
}

/// How the projects build `sub` (their `ci_id_token_sub_claim_components`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Subject {
    /// `project_path:<path>:ref_type:<type>:ref:<ref>`: GitLab's default.
    ProjectPath,
    /// `project_id:<id>:ref_type:<type>:ref:<ref>`: immutable (components `project_id`,
    /// `ref_type`, `ref`); every allow rule must pin project_id.
    ProjectId,
}

#[derive(Args, Debug)]
pub(crate) struct PlanArgs {
    /// The policy document (JSON).
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: String,
    /// The issuer the credentials name: the GitLab URL exactly as tokens carry it (no trailing
    /// slash); a near miss is refused with the fix.
    #[arg(long, value_name = "ISS", env = "CI_SERVER_URL")]
    pub(crate) issuer: String,
    /// The audience the credentials name [default: each app's cloud's, api://AzureADTokenExchange
    /// for the public cloud].
    #[arg(long, value_name = "AUD")]
    pub(crate) audience: Option<String>,
    /// How the projects build `sub`.
    #[arg(long, value_enum, value_name = "FORM", default_value = "project-path")]
    pub(crate) subject: Subject,
    /// Print the plan as one JSON document on stdout (warnings still go to stderr).
    #[arg(long, conflicts_with = "commands")]
    pub(crate) json: bool,
    /// Print only the shell commands: the federated credentials, then the role assignments.
    #[arg(long)]
    pub(crate) commands: bool,
}

/// Loads a policy file into `session`, printing its lint warnings on stderr when `lint`.
fn load_policy(session: &mut Session, path: &str, lint: bool) -> Result<PolicyRef, Exit> {
    let document = read_file(path, "--policy")?;
    let policy = session.load_policy(&document)?.map_err(|f| Exit::failure(f, Some(path)))?;
    if lint {
        for warning in session.policy_warnings(policy)? {
            eprintln!("warning: {warning}");
        }
    }
    Ok(policy)
}

/// Prints warnings on stderr, grouped per rule, one line each.
fn print_warnings(groups: &[RuleWarnings]) {
    for group in groups {
        for warning in &group.warnings {
            eprintln!("warning: {warning}");
        }
    }
}

pub(crate) fn check_command(
    host: &Host,
    args: &CheckArgs,
    matches: &ArgMatches,
) -> Result<(), Exit> {
    let mut session = host.session()?;
    let now = args.now.unwrap_or_else(unix_now);
    // Every input file is read and judged before any network call.
    let policy = load_policy(&mut session, &args.policy, true)?;
    let credentials =
        args.credentials.as_deref().map(|path| read_file(path, "--credentials")).transpose()?;
    let (claims_json, fingerprint) = match &args.claims {
        Some(path) => (read_file(path, "--claims")?, String::new()),
        None => {
            let config = args.check.config(matches, Some(ENTRA_AUDIENCE))?;
            let token = args.token.read(args.token_arg.as_deref())?;
            let jwks = args.check.fetch_jwks(matches, &config.issuer)?;
            let verified = session
                .verify_gitlab_token(&token, &jwks, &config, now)?
                .map_err(|f| Exit::failure(f, None))?;
            (verified.payload_json, verified.fingerprint)
        }
    };
    let context = args.claims.as_deref().map(|path| format!("--claims {path}"));
    let decision = session
        .decide(policy, &claims_json, &fingerprint, now)?
        .map_err(|f| Exit::failure(f, context.as_deref()))?;
    let preflight = match (&credentials, &args.credentials) {
        (Some(document), Some(path)) => Some(
            session.preflight(&claims_json, document)?.map_err(|f| Exit::failure(f, Some(path)))?,
        ),
        _ => None,
    };
    if args.json {
        out::json(&json!({
            "allow": decision.allow,
            "rule": decision.rule,
            "target": decision.target,
            "summary": decision.summary,
            "explanation": decision.lines,
            "preflight": preflight.as_ref().map(|p| json!({
                "accepted": p.accepted,
                "accepted_by": p.accepted_by,
                "nearest": p.nearest,
                "differences": p.differences,
            })),
        }))?;
    } else {
        out::line(&decision.summary)?;
        for line in &decision.lines {
            out::line(&format!("  {line}"))?;
        }
        if let Some(p) = &preflight {
            out::line(&p.report)?;
        }
    }
    if !fingerprint.is_empty() {
        write_audit(None, std::slice::from_ref(&decision.audit_json))?;
    }
    if !decision.allow {
        return Err(Exit::refused("policy-denied", decision.summary));
    }
    if let Some(p) = preflight.filter(|p| !p.accepted) {
        return Err(Exit::refused("preflight-refused", p.differences.join("; ")));
    }
    Ok(())
}

pub(crate) fn plan_command(host: &Host, args: &PlanArgs) -> Result<(), Exit> {
    let mut session = host.session()?;
    let policy = load_policy(&mut session, &args.policy, false)?;
    let options = PlanOptions {
        issuer: args.issuer.clone(),
        audience: args.audience.clone(),
        subject_form: match args.subject {
            Subject::ProjectPath => SubjectForm::ProjectPath,
            Subject::ProjectId => SubjectForm::ProjectId,
        },
    };
    let plan = session.plan(policy, &options)?.map_err(|f| {
        let flag = if f.kind == "plan-audience" { "--audience" } else { "--issuer" };
        Exit::failure(f, Some(flag))
    })?;
    if args.json {
        out::json_mark();
        out::line(&out::pretty(&plan.document))?;
    } else if args.commands {
        for command in plan.commands.iter().chain(&plan.role_commands) {
            out::line(command)?;
        }
    } else {
        out::line(plan.text.trim_end())?;
    }
    print_warnings(&plan.warnings);
    Ok(())
}
