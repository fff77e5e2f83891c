//! Flags shared by the commands that read and verify a GitLab ID token, and where each value
//! came from (a flag, an environment variable, a default), so messages can say which to change.

use std::io::{self, IsTerminal};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, ValueEnum};
use gitlab_azure_oidc_host::{Algorithm, VerifierConfig};

use crate::exit::Exit;
use crate::fetch::{self, Client};

/// The audience Entra expects by default in federated credentials.
pub(crate) const ENTRA_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A command-line flag, e.g. `--tenant`.
    Flag(String),
    /// An environment variable, e.g. `AZURE_TENANT_ID`.
    Env(String),
    /// The flag's default.
    Default,
}

impl Source {
    /// How a message names it: `--tenant`, `$AZURE_TENANT_ID`, `the default`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Flag(flag) => flag.clone(),
            Self::Env(var) => format!("${var}"),
            Self::Default => "the default".to_owned(),
        }
    }

    /// Where the argument `id` (flag `--{flag}`, environment variable `env`) got its value.
    pub(crate) fn of(matches: &ArgMatches, id: &str, flag: &str, env: Option<&str>) -> Self {
        match matches.value_source(id) {
            Some(ValueSource::EnvVariable) => Self::Env(env.unwrap_or(id).to_owned()),
            Some(ValueSource::DefaultValue) | None => Self::Default,
            Some(_) => Self::Flag(format!("--{flag}")),
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
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
#[derive(Args, Clone, Debug)]
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

impl CheckFlags {
    /// The verifier settings; `matches` says where the issuer came from for the messages.
    pub(crate) fn config(
        &self,
        matches: &ArgMatches,
        default_audience: Option<&str>,
    ) -> Result<VerifierConfig, Exit> {
        let issuer = self.issuer.clone().filter(|i| !i.is_empty()).ok_or_else(|| {
            Exit::usage("no issuer: pass --issuer (the GitLab URL, e.g. https://gitlab.com) or set CI_SERVER_URL")
        })?;
        if issuer.trim() != issuer {
            return Err(Exit::usage(format!(
                "the issuer from {} has leading or trailing whitespace: {issuer:?}; remove it",
                self.issuer_source(matches).describe()
            )));
        }
        let mut audiences = self.audiences.clone();
        if audiences.is_empty() {
            audiences.extend(default_audience.map(str::to_owned));
        }
        if audiences.is_empty() && !self.insecure_skip_audience {
            // Said here, with the flags: the component's message names the configuration field.
            return Err(Exit::usage(
                "no audience: pass --audience AUD, the audience your jobs request in \
                 `id_tokens:<NAME>:aud` (e.g. api://AzureADTokenExchange); only legacy CI_JOB_JWT \
                 tokens lack `aud`, for those pass --insecure-skip-audience",
            ));
        }
        Ok(VerifierConfig {
            issuer,
            audiences,
            algorithms: self.algorithms.iter().copied().map(Algorithm::from).collect(),
            leeway: Some(self.leeway),
            max_age: self.max_age,
            dangerous_skip_audience_check: self.insecure_skip_audience,
        })
    }

    /// Where `--issuer` came from.
    pub(crate) fn issuer_source(&self, matches: &ArgMatches) -> Source {
        Source::of(matches, "issuer", "issuer", Some("CI_SERVER_URL"))
    }

    pub(crate) fn client(&self) -> Result<Client, Exit> {
        Client::new(self.ca_file.as_deref(), Duration::from_secs(15)).map_err(Exit::usage)
    }

    /// The issuer's JWKS: `--jwks` (file or URL), or through the issuer's discovery document.
    pub(crate) fn fetch_jwks(&self, matches: &ArgMatches, issuer: &str) -> Result<String, Exit> {
        match &self.jwks {
            Some(source) => fetch::document(&self.client()?, source, "--jwks"),
            None => {
                let client = self.client()?;
                let what = format!(
                    "the issuer {issuer} (from {})",
                    self.issuer_source(matches).describe()
                );
                fetch::discover_jwks(&client, issuer, &what)
            }
        }
    }
}

/// Where the GitLab token comes from.
#[derive(Args, Clone, Debug)]
pub(crate) struct TokenFlags {
    /// Read the token from this file (e.g. a file-type `id_tokens:` variable).
    #[arg(long, value_name = "FILE")]
    pub(crate) token_file: Option<String>,
    /// Read the token from this environment variable.
    #[arg(long, value_name = "NAME", default_value = "GITLAB_OIDC_TOKEN")]
    pub(crate) token_env: String,
}

impl TokenFlags {
    /// The token from, in order: the argument (`-` is stdin), `--token-file`, `--token-env`
    /// (unless empty), and the Azure Identity convention `AZURE_FEDERATED_TOKEN_FILE`. A token
    /// wrapped in quotes or prefixed with `Bearer ` is refused with the fix.
    pub(crate) fn read(&self, argument: Option<&str>) -> Result<String, Exit> {
        let (token, from) = match (argument, &self.token_file) {
            (Some("-"), _) => {
                if io::stdin().is_terminal() {
                    return Err(Exit::usage(
                        "TOKEN is `-` but stdin is a terminal; pipe the token in",
                    ));
                }
                (
                    fetch::read_bounded(io::stdin().lock(), "stdin").map_err(Exit::usage)?,
                    "stdin".to_owned(),
                )
            }
            (Some(token), _) => (token.to_owned(), "the TOKEN argument".to_owned()),
            (None, Some(path)) => {
                (fetch::read_file(path, "--token-file")?, format!("--token-file {path}"))
            }
            (None, None) => {
                let env = std::env::var(&self.token_env).ok();
                let federated_file =
                    std::env::var("AZURE_FEDERATED_TOKEN_FILE").ok().filter(|p| !p.is_empty());
                match (env.as_deref(), federated_file) {
                    (Some(token), _) if !token.trim().is_empty() => (token.to_owned(), format!("${}", self.token_env)),
                    (_, Some(path)) => (
                        fetch::read_file(&path, "$AZURE_FEDERATED_TOKEN_FILE")?,
                        format!("$AZURE_FEDERATED_TOKEN_FILE ({path})"),
                    ),
                    (Some(_), None) => {
                        return Err(Exit::usage(format!(
                            "${} is set but empty: the job's `id_tokens:` does not define it, or \
                             its name differs (in .gitlab-ci.yml: `id_tokens: {}: aud: \
                             {ENTRA_AUDIENCE}`), or pass --token-env NAME",
                            self.token_env, self.token_env
                        )))
                    }
                    (None, None) => {
                        return Err(Exit::usage(format!(
                            "no token: pass it as an argument, `-` for stdin, --token-file FILE, \
                             or set ${} (in .gitlab-ci.yml: `id_tokens: {}: aud: {ENTRA_AUDIENCE}`)",
                            self.token_env, self.token_env
                        )))
                    }
                }
            }
        };
        clean(&token, &from)
    }
}

/// The token without surrounding whitespace; a pasted `Bearer ` prefix or quotes are refused
/// with the fix (they would otherwise surface as an opaque base64 error).
fn clean(token: &str, from: &str) -> Result<String, Exit> {
    let token = token.trim();
    if token.is_empty() {
        return Err(Exit::usage(format!("the token from {from} is empty")));
    }
    if token.len() > 7 && token.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("bearer ")) {
        return Err(Exit::usage(format!(
            "the token from {from} starts with `Bearer `: pass the ID token alone, without the \
             HTTP authorization scheme"
        )));
    }
    if token.starts_with(['"', '\'']) || token.ends_with(['"', '\'']) {
        return Err(Exit::usage(format!(
            "the token from {from} is wrapped in quotes: pass the ID token alone (in a shell, \
             the quotes around \"$VAR\" are not part of the value)"
        )));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn pasted_decorations_are_refused_with_the_fix() {
        assert_eq!(clean("  a.b.c\n", "x").unwrap(), "a.b.c");
        let message = |t: &str| match clean(t, "$T") {
            Err(crate::exit::Exit::Usage { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        assert!(message("Bearer a.b.c").contains("starts with `Bearer `"));
        assert!(message("bearer a.b.c").contains("starts with `Bearer `"));
        assert!(message("\"a.b.c\"").contains("wrapped in quotes"));
        assert!(message("'a.b.c'").contains("wrapped in quotes"));
        assert!(message("   ").contains("is empty"));
    }
}
