//! `check` (would this job get an Azure identity, and why) and `plan` (the federated
//! credentials a policy needs).

use clap::Args;
use gitlab_azure_oidc_host::bindings::exports::gitlab_azure::oidc::verify::GitlabClaims;
use gitlab_azure_oidc_host::{Claims, Session};
use serde_json::Value;

use crate::exchange::write_audit;
use crate::flags::{CheckFlags, TokenFlags, ENTRA_AUDIENCE};
use crate::{load_host, unix_now, Exit};

#[derive(Args)]
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
    /// Print the decision as JSON on stdout.
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

#[derive(Args)]
pub(crate) struct PlanArgs {
    /// The policy document (JSON).
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: String,
    /// The issuer the credentials name: the GitLab URL.
    #[arg(long, value_name = "ISS", env = "CI_SERVER_URL")]
    pub(crate) issuer: String,
    /// The audience the credentials name.
    #[arg(long, value_name = "AUD", default_value = ENTRA_AUDIENCE)]
    pub(crate) audience: String,
}

fn read(path: &str, what: &str) -> Result<String, Exit> {
    let file = std::fs::File::open(path)
        .map_err(|e| Exit::Usage(format!("cannot open {what} {path}: {e}")))?;
    crate::fetch::read_bounded(file, path).map_err(Exit::Usage)
}

fn load_policy(
    session: &mut Session,
    path: &str,
) -> Result<gitlab_azure_oidc_host::PolicyRef, Exit> {
    let document = read(path, "--policy")?;
    let policy = session.load_policy(&document)?.map_err(|f| {
        let at = match (&f.rule, &f.field) {
            (Some(rule), Some(field)) => format!(" (rule {rule}, field {field})"),
            (None, Some(field)) => format!(" (field {field})"),
            _ => String::new(),
        };
        Exit::refused(f.kind, format!("{path}{at}: {}", f.message))
    })?;
    for warning in session.policy_warnings(policy)? {
        eprintln!("warning: {warning}");
    }
    Ok(policy)
}

/// A claims record for unverified what-if claims: the policy reads `raw-json`.
fn claims_from_json(text: &str) -> Result<Claims, Exit> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Exit::Usage(format!("--claims is not JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(Exit::Usage("--claims must be a JSON object of claims".into()));
    };
    let text_of = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(Claims {
        iss: text_of("iss").unwrap_or_default(),
        sub: text_of("sub"),
        aud: match object.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => {
                a.iter().filter_map(Value::as_str).map(str::to_owned).collect()
            }
            _ => Vec::new(),
        },
        exp: object.get("exp").and_then(Value::as_u64).unwrap_or(0),
        nbf: object.get("nbf").and_then(Value::as_u64),
        iat: object.get("iat").and_then(Value::as_u64),
        jti: text_of("jti"),
        gitlab: GitlabClaims {
            namespace_id: None,
            namespace_path: None,
            project_id: None,
            project_path: None,
            job_project_id: None,
            job_project_path: None,
            job_namespace_id: None,
            job_namespace_path: None,
            user_id: None,
            user_login: None,
            user_email: None,
            user_access_level: None,
            user_identities: None,
            pipeline_id: None,
            pipeline_source: None,
            job_id: None,
            ref_: None,
            ref_type: None,
            ref_path: None,
            ref_protected: None,
            groups_direct: None,
            environment: None,
            environment_protected: None,
            deployment_tier: None,
            environment_action: None,
            runner_id: None,
            runner_environment: None,
            sha: None,
            ci_config_ref_uri: None,
            ci_config_sha: None,
            project_visibility: None,
            job_source: None,
            job_config: None,
            target_audience: None,
        },
        raw_json: value.to_string(),
    })
}

pub(crate) fn check_command(component: Option<&str>, args: &CheckArgs) -> Result<(), Exit> {
    let mut session = load_host(component)?.session()?;
    let now = args.now.unwrap_or_else(unix_now);
    let policy = load_policy(&mut session, &args.policy)?;
    let (claims, token) = match &args.claims {
        Some(path) => (claims_from_json(&read(path, "--claims")?)?, String::new()),
        None => {
            let token = args.token.read(args.token_arg.as_deref())?;
            let verified = args.check.verify(&mut session, &token, now, Some(ENTRA_AUDIENCE))?;
            (verified.claims, token)
        }
    };
    let decision = session
        .decide(policy, &claims, &token, now)?
        .map_err(|f| Exit::refused(f.kind, f.message))?;
    let preflight = match &args.credentials {
        Some(path) => Some(
            session
                .preflight(&claims, &read(path, "--credentials")?)?
                .map_err(|f| Exit::refused(f.kind, format!("{path}: {}", f.message)))?,
        ),
        None => None,
    };
    if args.json {
        let doc = serde_json::json!({
            "allow": decision.allow,
            "rule": decision.rule,
            "summary": decision.summary,
            "explanation": decision.lines,
            "preflight": preflight.as_ref().map(|p| serde_json::json!({"accepted": p.accepted, "accepted_by": p.accepted_by, "nearest": p.nearest, "differences": p.differences})),
        });
        println!("{doc}");
    } else {
        println!("{}", decision.summary);
        for line in &decision.lines {
            println!("  {line}");
        }
        if let Some(p) = &preflight {
            println!("{}", p.report);
        }
    }
    if !token.is_empty() {
        write_audit(None, &decision.audit_json)?;
    }
    if !decision.allow {
        return Err(Exit::refused("policy-denied", decision.summary));
    }
    if let Some(p) = preflight.filter(|p| !p.accepted) {
        return Err(Exit::refused("preflight-refused", p.differences.join("; ")));
    }
    Ok(())
}

pub(crate) fn plan_command(component: Option<&str>, args: &PlanArgs) -> Result<(), Exit> {
    let mut session = load_host(component)?.session()?;
    let policy = load_policy(&mut session, &args.policy)?;
    let plan = session.plan(policy, &args.issuer, &args.audience)?;
    let doc: Value = serde_json::from_str(&plan.credentials_json)
        .map_err(|e| Exit::Usage(format!("the component returned bad JSON: {e}")))?;
    println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    println!();
    println!("# Commands that create them:");
    for command in &plan.commands {
        println!("{command}");
    }
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}
