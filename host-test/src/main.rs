//! `gitlab-azure-oidc`: let a GitLab CI job reach Azure with no stored secret.
//!
//! Every judgement (token verification, policy, the Entra request and answer) happens in the
//! embedded WebAssembly component; this binary only reads files, talks to the network and the
//! clock, and prints. Exit codes (see `exit.rs`): 0 success, 1 refused, 2 usage, 3 internal.
#![forbid(unsafe_code)]

mod broker;
mod check;
mod demo;
mod exchange;
mod exit;
mod fetch;
mod files;
mod flags;
mod lint;
mod out;
mod pipeline_yaml;
mod precompiled;
mod rbac;
mod renew;
mod report;
mod time;
mod verify;

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use gitlab_azure_oidc_host::{Host, Limits, Origin, Tuning};

use crate::exit::Exit;

/// Let GitLab CI jobs reach Azure with no stored secret: verify the job's GitLab ID token,
/// decide with a policy, and exchange it for an Azure access token through workload identity
/// federation. All judging runs in a sandboxed WebAssembly component.
///
/// Exit codes: 0 success; 1 refused (token, policy, Entra, or a server unreachable); 2 usage (a
/// flag, a variable or an input file must change); 3 internal (the component failed: report it).
#[derive(Parser, Debug)]
#[command(name = "gitlab-azure-oidc", version)]
pub(crate) struct Cli {
    /// Use this component file instead of the embedded one.
    #[arg(long, global = true, value_name = "FILE")]
    component: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Verify a GitLab ID token; print its claims as signed.
    Verify(verify::VerifyArgs),
    /// Exchange the job's GitLab ID token for an Azure access token (instead of
    /// `az login --federated-token`).
    Exchange(exchange::ExchangeArgs),
    /// Decide with a policy: would this job get an Azure identity, and why (or why not)?
    Check(check::CheckArgs),
    /// Print the Entra federated credentials and the Azure role assignments a policy needs.
    Plan(check::PlanArgs),
    /// Lint a `.gitlab-ci.yml`: audiences, subjects and credentials, secrets, legacy tokens,
    /// and merge requests that reach protected-ref identities, per job, with the fix.
    Lint(lint::LintArgs),
    /// Audit Azure role assignments against the roles a policy declares, weighted by who can
    /// become each identity.
    AuditRbac(rbac::AuditRbacArgs),
    /// Run the whole flow against loopback stand-ins for GitLab and Entra (no account needed).
    Demo,
    /// Build step (`make`): compile the component ahead of time for this binary.
    #[command(hide = true)]
    Precompile(precompiled::PrecompileArgs),
    /// Build step (`make`): fail unless the embedded precompiled component loads and runs.
    #[command(hide = true)]
    SelfCheck,
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The component: `--component FILE` (compiled now), or the one embedded in this binary (its
/// build-time compiled copy, or compiled now with a note when that copy cannot be used).
pub(crate) fn load_host(component: Option<&str>) -> Result<Host, Exit> {
    match component {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| Exit::usage(format!("cannot read --component {path}: {e}")))?;
            Host::with_tuning(&bytes, Limits::default(), Tuning::one_shot()).map_err(Exit::Internal)
        }
        None => {
            let host = Host::embedded_with_tuning(Limits::default(), Tuning::one_shot())
                .map_err(Exit::Internal)?;
            if let Origin::Fallback(why) = host.origin() {
                eprintln!("note: {why}; compiled the component instead (about a second)");
            }
            Ok(host)
        }
    }
}

fn run(cli: &Cli, matches: &ArgMatches) -> Result<(), Exit> {
    let sub = matches.subcommand().map(|(_, m)| m).unwrap_or(matches);
    let host = || load_host(cli.component.as_deref());
    match &cli.command {
        Command::Verify(args) => verify::command(&host()?, args, sub),
        // With --broker the broker judges: the job side needs no component.
        Command::Exchange(args) if args.broker.is_some() => broker::command(args),
        Command::Exchange(args) => exchange::command(&host()?, args, sub),
        Command::Check(args) => check::check_command(&host()?, args, sub),
        Command::Plan(args) => check::plan_command(&host()?, args),
        Command::Lint(args) => lint::command(&host()?, args, sub),
        Command::AuditRbac(args) => rbac::command(&host()?, args),
        Command::Demo => demo::command(&host()?),
        Command::Precompile(args) => {
            precompiled::precompile_command(cli.component.as_deref(), args)
        }
        Command::SelfCheck => precompiled::self_check_command(),
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let json_errors = match &cli.command {
        Command::Verify(args) => args.json,
        // With --out, stdout stays empty even on failure.
        Command::Exchange(args) => args.output == exchange::Output::Json && args.out.is_none(),
        Command::Check(args) => args.json,
        Command::Lint(args) => args.report.json,
        Command::Plan(args) => args.json,
        Command::AuditRbac(args) => args.report.json,
        Command::Demo => false,
        Command::Precompile(_) | Command::SelfCheck => false,
    };
    match run(&cli, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(exit) => {
            exit.report(json_errors);
            ExitCode::from(exit.code())
        }
    }
}
