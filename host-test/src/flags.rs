//! Flags shared by the commands that read and verify a GitLab ID token, and `verify` itself.

use std::io::{self, IsTerminal};
use std::time::Duration;

use clap::{Args, ValueEnum};
use gitlab_azure_oidc_host::{Algorithm, Session, VerifiedToken, VerifierConfig, VerifyOptions};

use crate::fetch::{self, Client};
use crate::{load_host, unix_now, Exit};

/// The audience Entra expects by default in federated credentials.
pub(crate) const ENTRA_AUDIENCE: &str = "api://AzureADTokenExchange";

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Alg {
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

/// How to check the token: the issuer, its keys and the claims rules.
#[derive(Args, Clone)]
pub(crate) struct CheckFlags {
    /// The expected `iss`: the GitLab URL without a trailing slash, e.g. https://gitlab.com.
    #[arg(long, value_name = "ISS", env = "CI_SERVER_URL")]
    pub(crate) issuer: Option<String>,
    /// The issuer's JWKS: a file or an https:// URL. Default: the `jwks_uri` of the issuer's
    /// /.well-known/openid-configuration, as Entra fetches it.
    #[arg(long, value_name = "FILE|URL")]
    pub(crate) jwks: Option<String>,
    /// An accepted audience, as set in `id_tokens:<NAME>:aud` (repeatable).
    #[arg(long = "audience", value_name = "AUD")]
    pub(crate) audiences: Vec<String>,
    /// An allowed algorithm (repeatable). Default: RS256, which GitLab uses.
    #[arg(long = "alg", value_name = "ALG")]
    pub(crate) algorithms: Vec<Alg>,
    /// Clock-skew leeway in seconds for exp, nbf and iat.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub(crate) leeway: u64,
    /// Refuse tokens issued more than this many seconds ago.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) max_age: Option<u64>,
    /// Accept tokens without `aud` (legacy CI_JOB_JWT). INSECURE: tokens minted for any other
    /// service pass too.
    #[arg(long)]
    pub(crate) insecure_skip_audience: bool,
    /// Trust these PEM CA certificates too, besides the system's (private GitLab or clouds).
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_file: Option<String>,
}

/// Where the GitLab token comes from.
#[derive(Args, Clone)]
pub(crate) struct TokenFlags {
    /// Read the token from this file (e.g. a file-type `id_tokens:` variable).
    #[arg(long, value_name = "FILE")]
    pub(crate) token_file: Option<String>,
    /// Read the token from this environment variable.
    #[arg(long, value_name = "NAME", default_value = "GITLAB_OIDC_TOKEN")]
    pub(crate) token_env: String,
}

impl TokenFlags {
    /// The token from, in order: the argument (`-` is stdin), `--token-file`, `--token-env`, and
    /// the Azure Identity convention `AZURE_FEDERATED_TOKEN_FILE`.
    pub(crate) fn read(&self, argument: Option<&str>) -> Result<String, Exit> {
        let token = match (argument, &self.token_file) {
            (Some("-"), _) => {
                if io::stdin().is_terminal() {
                    return Err(Exit::Usage("TOKEN is `-` but stdin is a terminal; pipe the token in".into()));
                }
                fetch::read_bounded(io::stdin().lock(), "stdin").map_err(Exit::Usage)?
            }
            (Some(token), _) => token.to_owned(),
            (None, Some(path)) => read_file(path)?,
            (None, None) => match std::env::var(&self.token_env) {
                Ok(token) => token,
                Err(_) => match std::env::var("AZURE_FEDERATED_TOKEN_FILE") {
                    Ok(path) => read_file(&path)?,
                    Err(_) => {
                        return Err(Exit::Usage(format!(
                            "no token: pass it as an argument, `-` for stdin, --token-file FILE, or set ${} \
                             (in .gitlab-ci.yml: `id_tokens: {}: aud: {ENTRA_AUDIENCE}`)",
                            self.token_env, self.token_env
                        )))
                    }
                },
            },
        };
        Ok(token.trim().to_owned())
    }
}

fn read_file(path: &str) -> Result<String, Exit> {
    let file =
        std::fs::File::open(path).map_err(|e| Exit::Usage(format!("cannot open {path}: {e}")))?;
    fetch::read_bounded(file, path).map_err(Exit::Usage)
}

impl CheckFlags {
    pub(crate) fn config(&self, default_audience: Option<&str>) -> Result<VerifierConfig, Exit> {
        let issuer = self.issuer.clone().ok_or_else(|| {
            Exit::Usage("no issuer: pass --issuer (the GitLab URL) or set CI_SERVER_URL".into())
        })?;
        let mut audiences = self.audiences.clone();
        if audiences.is_empty() {
            audiences.extend(default_audience.map(str::to_owned));
        }
        Ok(VerifierConfig {
            issuer,
            audiences,
            algorithms: self.algorithms.iter().copied().map(Algorithm::from).collect(),
            leeway: Some(self.leeway),
            max_age: self.max_age,
            insecure_skip_audience: self.insecure_skip_audience,
        })
    }

    pub(crate) fn client(&self) -> Result<Client, Exit> {
        Client::new(self.ca_file.as_deref(), Duration::from_secs(15)).map_err(Exit::Usage)
    }

    /// Fetches the JWKS and verifies the token in `session`.
    pub(crate) fn verify(
        &self,
        session: &mut Session,
        token: &str,
        now: u64,
        default_audience: Option<&str>,
    ) -> Result<VerifiedToken, Exit> {
        let config = self.config(default_audience)?;
        let client = self.client()?;
        let jwks = match &self.jwks {
            Some(source) => fetch::document(&client, source),
            None => fetch::discover_jwks(&client, &config.issuer),
        }
        .map_err(Exit::Usage)?;
        let options = VerifyOptions { config, now };
        session
            .verify_gitlab_token(token, &jwks, &options)?
            .map_err(|f| Exit::refused(f.kind, f.message))
    }
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) check: CheckFlags,
    #[command(flatten)]
    pub(crate) token: TokenFlags,
    /// Verify as of this time (seconds since the Unix epoch) instead of now.
    #[arg(long, value_name = "UNIX")]
    pub(crate) now: Option<u64>,
    /// Print results and errors as JSON objects on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// The token, or `-` to read it from stdin. Prefer stdin, --token-file or --token-env:
    /// arguments are visible to other processes on the machine.
    #[arg(value_name = "TOKEN")]
    pub(crate) token_arg: Option<String>,
}

pub(crate) fn verify_command(component: Option<&str>, args: &VerifyArgs) -> Result<(), Exit> {
    let token = args.token.read(args.token_arg.as_deref())?;
    let mut session = load_host(component)?.session()?;
    let verified =
        args.check.verify(&mut session, &token, args.now.unwrap_or_else(unix_now), None)?;
    let claims: serde_json::Value = serde_json::from_str(&verified.claims.raw_json)
        .map_err(|e| Exit::Usage(format!("the component returned bad JSON: {e}")))?;
    let out = if args.json {
        serde_json::to_string(&claims)
    } else {
        serde_json::to_string_pretty(&claims)
    };
    println!("{}", out.unwrap_or_default());
    Ok(())
}
