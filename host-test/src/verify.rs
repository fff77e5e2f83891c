//! `gitlab-azure-oidc verify`: verify a GitLab ID token, print its claims exactly as signed.

use clap::{ArgMatches, Args};
use gitlab_azure_oidc_host::{Category, Host};

use crate::exit::Exit;
use crate::flags::{CheckFlags, TokenFlags};
use crate::{out, unix_now};

#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) check: CheckFlags,
    #[command(flatten)]
    pub(crate) token: TokenFlags,
    /// Verify as of this time (seconds since the Unix epoch) instead of now.
    #[arg(long, value_name = "UNIX")]
    pub(crate) now: Option<u64>,
    /// Print the claims (or the error) as one compact JSON document on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// The token, or `-` to read it from stdin. Prefer stdin, --token-file or --token-env:
    /// arguments are visible to other processes on the machine.
    #[arg(value_name = "TOKEN")]
    pub(crate) token_arg: Option<String>,
}

pub(crate) fn command(host: &Host, args: &VerifyArgs, matches: &ArgMatches) -> Result<(), Exit> {
    let config = args.check.config(matches, None)?;
    let token = args.token.read(args.token_arg.as_deref())?;
    let jwks = args.check.fetch_jwks(matches, &config.issuer)?;
    let verified = host
        .session()?
        .verify_gitlab_token(&token, &jwks, &config, args.now.unwrap_or_else(unix_now))?
        .map_err(|f| {
            // A JWKS the user handed over is named: the file or URL is what must change.
            let source = args.check.jwks.as_deref().map(|s| format!("--jwks {s}"));
            let context = source.filter(|_| f.category == Category::Jwks);
            Exit::failure(f, context.as_deref())
        })?;
    // The payload as signed, never re-serialized: a claim such as an integer beyond 64 bits
    // comes out with its exact digits.
    if args.json {
        crate::out::json_mark();
        out::line(&verified.payload_json)?;
    } else {
        out::line(&out::pretty(&verified.payload_json))?;
    }
    Ok(())
}
