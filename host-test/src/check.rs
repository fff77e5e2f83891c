//! `check` (would this job get an Azure identity, and why) and `plan` (the federated
//! credentials and role assignments a policy needs).

use clap::{ArgMatches, Args, ValueEnum};
use gitlab_azure_oidc_host::{Host, PlanOptions, PolicyRef, RuleWarnings, Session, SubjectForm};
use serde_json::{json, Value};

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
    /// The broker configuration document, as the broker reads it: its issuer's URL and keys
    /// (only the public halves are printed) and its certificates. `{"env": NAME}` values come
    /// from this environment; a key whose variable is unset needs a `public_key`.
    #[arg(long, value_name = "FILE")]
    pub(crate) broker_config: Option<String>,
    /// The broker's issuer URL, instead of --broker-config.
    #[arg(long, value_name = "URL", conflicts_with = "broker_config")]
    pub(crate) broker_issuer: Option<String>,
    /// A key of the broker's issuer (PEM, public or private; the first one signs; repeatable).
    #[arg(long = "broker-key", value_name = "FILE", requires = "broker_issuer")]
    pub(crate) broker_keys: Vec<String>,
    /// A certificate that a rule's `certificate` credential names: NAME=FILE (PEM; repeatable).
    #[arg(long = "certificate", value_name = "NAME=FILE")]
    pub(crate) certificates: Vec<String>,
    /// An app's current federated credentials, as `az ad app federated-credential list` prints
    /// them: [CLIENT_ID=]FILE (repeatable). Warns about any that lets jobs skip the broker.
    #[arg(long = "credentials", value_name = "[CLIENT_ID=]FILE")]
    pub(crate) credentials: Vec<String>,
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
    if let Some(rule) = decision.rule.as_deref().filter(|_| decision.allow) {
        advisory_note(&mut session, policy, rule)?;
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
    let broker = plan_broker(&mut session, policy, args)?;
    let broker_commands = broker["commands"].as_array().cloned().unwrap_or_default();
    if args.json {
        // One document: the federated plan, with the broker's part as its `broker` member.
        let mut doc: Value = serde_json::from_str(&plan.document)
            .map_err(|e| Exit::usage(format!("the component returned bad JSON: {e}")))?;
        doc["broker"] = broker.clone();
        out::json(&doc)?;
    } else if args.commands {
        for command in plan.commands.iter().chain(&plan.role_commands) {
            out::line(command)?;
        }
        for command in &broker_commands {
            out::line(command.as_str().unwrap_or_default())?;
        }
    } else {
        out::line(plan.text.trim_end())?;
        print_broker(&broker)?;
    }
    // One list, grouped per rule in document order: the broker's warnings join their rule's.
    let mut groups = plan.warnings.clone();
    for warning in broker["warnings"].as_array().into_iter().flatten() {
        let rule = warning["rule"].as_str().map(str::to_owned);
        let message = warning["message"].as_str().unwrap_or_default().to_owned();
        match groups.iter_mut().find(|g| g.rule.is_some() && g.rule == rule) {
            Some(group) => group.warnings.push(message),
            None => groups.push(RuleWarnings { rule, warnings: vec![message] }),
        }
    }
    print_warnings(&groups);
    Ok(())
}

/// The broker part of `plan`: what Entra needs for the rules whose credential only the broker
/// holds, the issuer's documents, and what stays advisory.
fn plan_broker(session: &mut Session, policy: PolicyRef, args: &PlanArgs) -> Result<Value, Exit> {
    let broker_config = match (&args.broker_config, &args.broker_issuer) {
        (Some(path), _) => {
            let text = read_file(path, "--broker-config")?;
            let mut document: Value = serde_json::from_str(&text)
                .map_err(|e| Exit::usage(format!("--broker-config {path}: not JSON: {e}")))?;
            resolve_env(&mut document);
            Some(document.to_string())
        }
        (None, Some(url)) => {
            let mut keys = Vec::new();
            for (i, path) in args.broker_keys.iter().enumerate() {
                let pem = read_file(path, "--broker-key")?;
                let key_use = if i == 0 { "signing" } else { "published" };
                keys.push(json!({"public_key": {"value": pem}, "use": key_use}));
            }
            Some(json!({"issuer": {"url": url, "keys": keys}}).to_string())
        }
        (None, None) => None,
    };
    let mut certificates = Vec::new();
    for pair in &args.certificates {
        let (name, path) = pair
            .split_once('=')
            .ok_or_else(|| Exit::usage(format!("--certificate {pair}: expected NAME=FILE")))?;
        certificates.push((name.to_owned(), path.to_owned(), read_file(path, "--certificate")?));
    }
    let mut credentials = Vec::new();
    for item in &args.credentials {
        let (app, path) = match item.split_once('=') {
            Some((app, path)) => (app.to_owned(), path),
            None => (String::new(), item.as_str()),
        };
        credentials.push((app, read_file(path, "--credentials")?));
    }
    let document = session
        .plan_broker(policy, &args.issuer, broker_config.as_deref(), &certificates, &credentials)?
        .map_err(|f| Exit::failure(f, None))?;
    serde_json::from_str(&document)
        .map_err(|e| Exit::usage(format!("the component returned bad JSON: {e}")))
}

/// The broker part of `plan` for people: the apps, the issuer's documents to host, the commands.
fn print_broker(doc: &Value) -> Result<(), Exit> {
    let apps = doc["apps"].as_array().map_or(0, Vec::len);
    if apps > 0 || !doc["issuer"].is_null() {
        out::line("")?;
        out::line("# Broker: what Entra needs for the rules only the broker serves (binding)")?;
        let shown = json!({"apps": doc["apps"], "issuer": doc["issuer"]["url"]});
        out::line(&serde_json::to_string_pretty(&shown).unwrap_or_default())?;
        if let Some(issuer) = doc["issuer"].as_object() {
            let url = issuer.get("url").and_then(Value::as_str).unwrap_or_default();
            // The paths are below the host: serve them at the issuer's origin.
            let origin = url.split_once("://").map_or(String::new(), |(scheme, rest)| {
                format!("{scheme}://{}", rest.split('/').next().unwrap_or_default())
            });
            for (path, body) in [("discovery_path", "openid-configuration"), ("jwks_path", "jwks")]
            {
                let path = issuer.get(path).and_then(Value::as_str).unwrap_or_default();
                out::line("")?;
                out::line(&format!("# Serve at {origin}{path} over HTTPS (Entra fetches it):"))?;
                out::line(&serde_json::to_string_pretty(&issuer[body]).unwrap_or_default())?;
            }
        }
        out::line("")?;
        out::line("# Commands that create them:")?;
        for command in doc["commands"].as_array().into_iter().flatten() {
            out::line(command.as_str().unwrap_or_default())?;
        }
    }
    Ok(())
}

/// Says on stderr when the allowing rule is federated: Entra would accept the job's token
/// without this decision, so the rule is advisory (the broker plan's warning says what binds).
fn advisory_note(session: &mut Session, policy: PolicyRef, rule: &str) -> Result<(), Exit> {
    // Without a broker issuer an `issuer` rule cannot be planned; that rule is not advisory.
    let Ok(document) = session.plan_broker(policy, "", None, &[], &[])? else { return Ok(()) };
    let doc: Value = serde_json::from_str(&document).unwrap_or(Value::Null);
    let prefix = format!("rule {rule}: ");
    for warning in doc["warnings"].as_array().into_iter().flatten() {
        let message = warning["message"].as_str().unwrap_or_default();
        if warning["kind"] == "advisory" && message.starts_with(&prefix) {
            eprintln!("note: {message}");
        }
    }
    Ok(())
}

/// Replaces every `{"env": NAME}` whose variable is set with `{"value": ...}`: the component
/// reads no environment.
fn resolve_env(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let name = match (object.len(), object.get("env")) {
                (1, Some(Value::String(name))) => Some(name.clone()),
                _ => None,
            };
            match name.and_then(|n| std::env::var(n).ok()) {
                Some(resolved) => {
                    object.clear();
                    object.insert("value".to_owned(), Value::String(resolved));
                }
                None => object.values_mut().for_each(resolve_env),
            }
        }
        Value::Array(items) => items.iter_mut().for_each(resolve_env),
        _ => {}
    }
}
