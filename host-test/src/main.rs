//! `gitlab-azure-oidc`: verify a GitLab CI ID token with the embedded WebAssembly component.
//!
//! Exit codes: 0 success, 1 the token (or configuration, or JWKS) was refused, 2 usage or
//! environment errors (bad flags, unreadable files, no component).
#![forbid(unsafe_code)]

mod fetch;

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand, ValueEnum};
use gitlab_azure_oidc_host::{
    Algorithm, Failure, Host, HostError, Limits, VerifierConfig, VerifyOptions,
};
use serde_json::json;

/// Let GitLab CI jobs reach Azure with no stored secret: verify GitLab ID tokens (and, soon,
/// exchange them for Azure tokens) with a sandboxed WebAssembly component.
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
    Verify(VerifyArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Alg {
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "RS384")]
    Rs384,
    #[value(name = "RS512")]
    Rs512,
    #[value(name = "PS256")]
    Ps256,
    #[value(name = "PS384")]
    Ps384,
    #[value(name = "PS512")]
    Ps512,
    #[value(name = "ES256")]
    Es256,
    #[value(name = "ES384")]
    Es384,
}

impl From<Alg> for Algorithm {
    fn from(alg: Alg) -> Self {
        match alg {
            Alg::Rs256 => Self::Rs256,
            Alg::Rs384 => Self::Rs384,
            Alg::Rs512 => Self::Rs512,
            Alg::Ps256 => Self::Ps256,
            Alg::Ps384 => Self::Ps384,
            Alg::Ps512 => Self::Ps512,
            Alg::Es256 => Self::Es256,
            Alg::Es384 => Self::Es384,
        }
    }
}

#[derive(Args)]
struct VerifyArgs {
    /// The issuer's JWKS: a file, or an https:// URL such as https://gitlab.com/oauth/discovery/keys.
    #[arg(long, value_name = "FILE|URL")]
    jwks: String,
    /// The expected `iss`: the GitLab URL without a trailing slash, e.g. https://gitlab.com.
    #[arg(long, value_name = "ISS", env = "CI_SERVER_URL")]
    issuer: String,
    /// An accepted audience, as set in `id_tokens:<NAME>:aud` (repeatable).
    #[arg(long = "audience", value_name = "AUD")]
    audiences: Vec<String>,
    /// An allowed algorithm (repeatable). Defaults to RS256, which GitLab uses.
    #[arg(long = "alg", value_name = "ALG")]
    algorithms: Vec<Alg>,
    /// Clock-skew leeway in seconds for exp, nbf and iat.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    leeway: u64,
    /// Refuse tokens issued more than this many seconds ago.
    #[arg(long, value_name = "SECONDS")]
    max_age: Option<u64>,
    /// Verify as of this time (seconds since the Unix epoch) instead of now.
    #[arg(long, value_name = "UNIX")]
    now: Option<u64>,
    /// Accept tokens without `aud` (legacy CI_JOB_JWT). INSECURE: tokens minted for any other
    /// service pass too.
    #[arg(long)]
    insecure_skip_audience: bool,
    /// Print results and errors as JSON objects on stdout.
    #[arg(long)]
    json: bool,
    /// Read the token from this environment variable when TOKEN is not given.
    #[arg(long, value_name = "NAME", default_value = "GITLAB_OIDC_TOKEN")]
    token_env: String,
    /// The token, or `-` to read it from stdin. Prefer stdin or --token-env: arguments are
    /// visible to other processes on the machine.
    #[arg(value_name = "TOKEN")]
    token: Option<String>,
}

/// An error of this program, with its exit code.
enum Exit {
    /// The component refused something: exit 1.
    Refused(Failure),
    /// Usage or environment: exit 2.
    Usage(String),
    /// The host failed: exit 2.
    Host(HostError),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_errors = match &cli.command {
        Command::Verify(args) => args.json,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Exit::Refused(failure)) => {
            eprintln!("error: {}: {}", failure.kind, failure.message);
            if json_errors {
                let doc = json!({"error": failure.kind, "message": failure.message, "refresh_jwks": failure.refresh_jwks});
                println!("{doc}");
            }
            ExitCode::from(1)
        }
        Err(Exit::Usage(message)) => {
            eprintln!("error: usage: {message}");
            ExitCode::from(2)
        }
        Err(Exit::Host(err)) => {
            eprintln!("error: host: {err}");
            ExitCode::from(2)
        }
    }
}

fn host(component: Option<&str>) -> Result<Host, Exit> {
    match component {
        Some(path) => {
            let bytes =
                std::fs::read(path).map_err(|e| Exit::Usage(format!("cannot read {path}: {e}")))?;
            Host::new(&bytes, Limits::default()).map_err(Exit::Host)
        }
        None => Host::embedded(Limits::default()).map_err(Exit::Host),
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn read_token(args: &VerifyArgs) -> Result<String, Exit> {
    let token = match args.token.as_deref() {
        Some("-") => {
            if io::stdin().is_terminal() {
                return Err(Exit::Usage("TOKEN is `-` but stdin is a terminal; pipe the token in".into()));
            }
            fetch::read_bounded(io::stdin().lock(), "stdin").map_err(Exit::Usage)?
        }
        Some(token) => token.to_owned(),
        None => std::env::var(&args.token_env).map_err(|_| {
            Exit::Usage(format!("no TOKEN given and ${} is not set; pass the token, `-` for stdin, or --token-env NAME", args.token_env))
        })?,
    };
    Ok(token.trim().to_owned())
}

fn run(cli: Cli) -> Result<(), Exit> {
    match cli.command {
        Command::Verify(args) => verify(cli.component.as_deref(), &args),
    }
}

fn verify(component: Option<&str>, args: &VerifyArgs) -> Result<(), Exit> {
    let token = read_token(args)?;
    let jwks = fetch::document(&args.jwks).map_err(Exit::Usage)?;
    let options = VerifyOptions {
        config: VerifierConfig {
            issuer: args.issuer.clone(),
            audiences: args.audiences.clone(),
            algorithms: args.algorithms.iter().copied().map(Algorithm::from).collect(),
            leeway: Some(args.leeway),
            max_age: args.max_age,
            insecure_skip_audience: args.insecure_skip_audience,
        },
        now: args.now.unwrap_or_else(unix_now),
    };
    let verified = host(component)?
        .verify_gitlab_token(&token, &jwks, &options)
        .map_err(Exit::Host)?
        .map_err(Exit::Refused)?;
    let claims: serde_json::Value = serde_json::from_str(&verified.claims.raw_json)
        .map_err(|e| Exit::Usage(format!("component returned bad JSON: {e}")))?;
    let out = if args.json {
        serde_json::to_string(&claims)
    } else {
        serde_json::to_string_pretty(&claims)
    };
    println!("{}", out.unwrap_or_default());
    Ok(())
}
