//! `gitlab-azure-oidc`: let a GitLab CI job reach Azure with no stored secret.
//!
//! Every judgement (token verification, policy, the Entra request and answer) happens in the
//! embedded WebAssembly component; this binary only reads files, talks to the network and the
//! clock, and prints. Exit codes: 0 success, 1 refused (token, policy, Entra), 2 usage or
//! environment errors.
#![forbid(unsafe_code)]

mod check;
mod demo;
mod exchange;
mod fetch;
mod flags;

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use gitlab_azure_oidc_host::{Host, HostError, Limits, Tuning};
use serde_json::{json, Value};

/// Let GitLab CI jobs reach Azure with no stored secret: verify the job's GitLab ID token,
/// decide with a policy, and exchange it for an Azure access token through workload identity
/// federation. All judging runs in a sandboxed WebAssembly component.
#[derive(Parser)]
#[command(name = "gitlab-azure-oidc", version)]
struct Cli {
    /// Use this component file instead of the embedded one.
    #[arg(long, global = true, value_name = "FILE")]
    component: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify a GitLab ID token; print its claims as JSON.
    Verify(flags::VerifyArgs),
    /// Exchange the job's GitLab ID token for an Azure access token (instead of
    /// `az login --federated-token`).
    Exchange(exchange::ExchangeArgs),
    /// Decide with a policy: would this job get an Azure identity, and why (or why not)?
    Check(check::CheckArgs),
    /// Print the Entra federated credentials a policy needs.
    Plan(check::PlanArgs),
    /// Run the whole flow against loopback stand-ins for GitLab and Entra (no account needed).
    Demo,
}

/// Why the program stops early, and with which exit code.
pub(crate) enum Exit {
    /// The component refused something: exit 1.
    Refused {
        /// Stable kind.
        kind: String,
        /// What happened and what to do.
        message: String,
    },
    /// Usage or environment: exit 2.
    Usage(String),
    /// The host failed: exit 2.
    Host(HostError),
}

impl Exit {
    pub(crate) fn refused(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Refused { kind: kind.into(), message: message.into() }
    }

    /// The one-line error and, for `--json`, the JSON object.
    pub(crate) fn report(&self) -> (String, Value, u8) {
        match self {
            Self::Refused { kind, message } => {
                (format!("error: {kind}: {message}"), json!({"error": kind, "message": message}), 1)
            }
            Self::Usage(message) => (
                format!("error: usage: {message}"),
                json!({"error": "usage", "message": message}),
                2,
            ),
            Self::Host(err) => (
                format!("error: host: {err}"),
                json!({"error": "host", "message": err.to_string()}),
                2,
            ),
        }
    }
}

impl From<HostError> for Exit {
    fn from(err: HostError) -> Self {
        Self::Host(err)
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub(crate) fn load_host(component: Option<&str>) -> Result<Host, Exit> {
    match component {
        Some(path) => {
            let bytes =
                std::fs::read(path).map_err(|e| Exit::Usage(format!("cannot read {path}: {e}")))?;
            Host::with_tuning(&bytes, Limits::default(), Tuning::one_shot()).map_err(Exit::Host)
        }
        None => {
            Host::embedded_with_tuning(Limits::default(), Tuning::one_shot()).map_err(Exit::Host)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_errors = match &cli.command {
        Command::Verify(args) => args.json,
        Command::Exchange(args) => args.output == exchange::Output::Json,
        Command::Check(args) => args.json,
        Command::Plan(_) | Command::Demo => false,
    };
    let component = cli.component.as_deref();
    let result = match &cli.command {
        Command::Verify(args) => flags::verify_command(component, args),
        Command::Exchange(args) => exchange::command(component, args),
        Command::Check(args) => check::check_command(component, args),
        Command::Plan(args) => check::plan_command(component, args),
        Command::Demo => demo::command(component),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(exit) => {
            let (line, doc, code) = exit.report();
            eprintln!("{line}");
            if json_errors {
                println!("{doc}");
            }
            ExitCode::from(code)
        }
    }
}
