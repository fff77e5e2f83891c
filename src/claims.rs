//! Typed claims of a GitLab CI ID token.
//!
//! The registered claims (RFC 7519 section 4.1) are in [`Claims`]; GitLab's own claims are in
//! [`GitLabClaims`]. Every GitLab claim is optional here because GitLab adds claims over time
//! (the version each appeared in is in its doc) and legacy `CI_JOB_JWT` tokens lack most of them:
//! what is absent is `None`, what is present with the wrong type is an error. Claims this version
//! does not name never fail and stay readable through [`Claims::raw`].

use serde_json::{Map, Value};

use crate::VerifyError;

/// The `aud` claim: one string, or an array of strings (RFC 7519 4.1.3). GitLab emits a string
/// when `id_tokens:<NAME>:aud` is a string and an array when it is a list, so both are accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// The audiences as a slice-like list.
    pub fn values(&self) -> Vec<&str> {
        match self {
            Self::One(one) => vec![one.as_str()],
            Self::Many(many) => many.iter().map(String::as_str).collect(),
        }
    }
}

/// One of the user's external identities (`user_identities`, GitLab 16.0+, opt-in per user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserIdentity {
    /// The identity provider, e.g. `github` or a SAML provider name.
    pub provider: String,
    /// The user's id at that provider.
    pub extern_uid: String,
}

/// The policy file that triggered a security-policy job (`job_config`, GitLab 18.9+).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobConfig {
    /// Blob URL of the policy file.
    pub url: Option<String>,
    /// Commit of the policy file.
    pub sha: Option<String>,
}

/// The claims GitLab adds to CI ID tokens. All IDs except `runner_id` are strings, as GitLab
/// sends them; `ref_protected` and `environment_protected` are parsed from `"true"`/`"false"`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // Each field is the GitLab claim of the same name; see the GitLab docs.
pub struct GitLabClaims {
    pub namespace_id: Option<String>,
    pub namespace_path: Option<String>,
    pub project_id: Option<String>,
    /// `group/subgroup/project`. For merge-request pipelines from forks (GitLab 18.2.2+) this is
    /// the fork; [`GitLabClaims::job_project_path`] is the project that runs the job.
    pub project_path: Option<String>,
    /// GitLab 18.4+: the project that runs the job.
    pub job_project_id: Option<String>,
    /// GitLab 18.4+.
    pub job_project_path: Option<String>,
    /// GitLab 18.4+.
    pub job_namespace_id: Option<String>,
    /// GitLab 18.4+.
    pub job_namespace_path: Option<String>,
    pub user_id: Option<String>,
    pub user_login: Option<String>,
    pub user_email: Option<String>,
    /// GitLab 16.9+: `developer`, `maintainer`, `owner`, ...
    pub user_access_level: Option<String>,
    /// GitLab 16.0+, only when the user opted in.
    pub user_identities: Option<Vec<UserIdentity>>,
    pub pipeline_id: Option<String>,
    /// `push`, `web`, `schedule`, `merge_request_event`, ...
    pub pipeline_source: Option<String>,
    pub job_id: Option<String>,
    /// Branch or tag name, without `refs/heads/`.
    pub r#ref: Option<String>,
    /// `branch` or `tag`.
    pub ref_type: Option<String>,
    /// GitLab 16.0+: e.g. `refs/heads/main`.
    pub ref_path: Option<String>,
    pub ref_protected: Option<bool>,
    /// GitLab 16.11+: omitted above 200 groups.
    pub groups_direct: Option<Vec<String>>,
    /// Only when the job has an environment.
    pub environment: Option<String>,
    pub environment_protected: Option<bool>,
    /// `production`, `staging`, `testing`, `development` or `other`.
    pub deployment_tier: Option<String>,
    /// GitLab 16.5+: `start`, `prepare`, `stop`, `verify` or `access`.
    pub environment_action: Option<String>,
    /// GitLab 16.0+; an integer, unlike every other id.
    pub runner_id: Option<u64>,
    /// GitLab 16.0+: `gitlab-hosted` or `self-hosted`.
    pub runner_environment: Option<String>,
    /// GitLab 16.0+.
    pub sha: Option<String>,
    /// GitLab 16.2+; null unless the pipeline definition lives in the same project.
    pub ci_config_ref_uri: Option<String>,
    /// GitLab 16.2+; null like `ci_config_ref_uri`.
    pub ci_config_sha: Option<String>,
    /// GitLab 16.3+: `internal`, `private` or `public`.
    pub project_visibility: Option<String>,
    /// GitLab 18.9+.
    pub job_source: Option<String>,
    /// GitLab 18.9+, only for jobs triggered by a security policy.
    pub job_config: Option<JobConfig>,
    /// Only when GitLab minted the token with a target audience.
    pub target_audience: Option<String>,
}

/// The claims of a verified token.
#[derive(Clone, Debug, PartialEq)]
pub struct Claims {
    /// The issuer; compared exactly with the configured one.
    pub iss: String,
    /// The subject: `project_path:{group}/{project}:ref_type:{type}:ref:{name}` by default.
    pub sub: Option<String>,
    /// The audience; absent only in legacy `CI_JOB_JWT` tokens.
    pub aud: Option<Audience>,
    /// Expiry (seconds since the epoch): `iat` plus the job timeout.
    pub exp: u64,
    /// Not before: `iat - 5` in GitLab tokens.
    pub nbf: Option<u64>,
    /// Issued at.
    pub iat: Option<u64>,
    /// The token's unique id (a UUID): what to log instead of the token.
    pub jti: Option<String>,
    /// GitLab's own claims.
    pub gitlab: GitLabClaims,
    /// Every claim, as sent, including those this version does not name.
    pub raw: Map<String, Value>,
}

/// Reads claims from a payload object with precise errors.
struct Reader<'a>(&'a Map<String, Value>);

fn invalid(claim: &str, expected: &str) -> VerifyError {
    VerifyError::ClaimInvalid { claim: claim.to_owned(), expected: expected.to_owned() }
}

impl Reader<'_> {
    fn string(&self, name: &str) -> Result<Option<String>, VerifyError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(name, "a string")),
        }
    }

    /// A string that GitLab sends as `null` when it does not apply.
    fn nullable_string(&self, name: &str) -> Result<Option<String>, VerifyError> {
        match self.0.get(name) {
            Some(Value::Null) => Ok(None),
            _ => self.string(name),
        }
    }

    fn bool_string(&self, name: &str) -> Result<Option<bool>, VerifyError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(_) => Err(invalid(name, "the string \"true\" or \"false\"")),
        }
    }

    fn integer(&self, name: &str) -> Result<Option<u64>, VerifyError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                n.as_u64().map(Some).ok_or_else(|| invalid(name, "a non-negative integer"))
            }
            Some(_) => Err(invalid(name, "a non-negative integer")),
        }
    }

    /// A NumericDate (RFC 7519 section 2): seconds since the epoch, possibly fractional; the
    /// fraction is dropped.
    fn numeric_date(&self, name: &str) -> Result<Option<u64>, VerifyError> {
        let expected = "a NumericDate (non-negative seconds since the epoch)";
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                if let Some(v) = n.as_u64() {
                    return Ok(Some(v));
                }
                match n.as_f64() {
                    // In range and finite: the truncating conversion is exact for the integer part.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    Some(f) if f.is_finite() && (0.0..1.8e19).contains(&f) => Ok(Some(f as u64)),
                    _ => Err(invalid(name, expected)),
                }
            }
            Some(_) => Err(invalid(name, expected)),
        }
    }

    fn string_list(&self, name: &str) -> Result<Option<Vec<String>>, VerifyError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| invalid(name, "an array of strings")),
            Some(_) => Err(invalid(name, "an array of strings")),
        }
    }

    fn audience(&self) -> Result<Option<Audience>, VerifyError> {
        match self.0.get("aud") {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(Audience::One(s.clone()))),
            Some(Value::Array(_)) => Ok(self.string_list("aud")?.map(Audience::Many)),
            Some(_) => Err(invalid("aud", "a string or an array of strings")),
        }
    }

    fn user_identities(&self) -> Result<Option<Vec<UserIdentity>>, VerifyError> {
        let expected = "an array of objects with string `provider` and `extern_uid`";
        let Some(value) = self.0.get("user_identities") else { return Ok(None) };
        let items = value.as_array().ok_or_else(|| invalid("user_identities", expected))?;
        items
            .iter()
            .map(|item| {
                let field = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_owned);
                match (field("provider"), field("extern_uid")) {
                    (Some(provider), Some(extern_uid)) => Ok(UserIdentity { provider, extern_uid }),
                    _ => Err(invalid("user_identities", expected)),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn job_config(&self) -> Result<Option<JobConfig>, VerifyError> {
        match self.0.get("job_config") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(obj)) => {
                let inner = Reader(obj);
                let url =
                    inner.string("url").map_err(|_| invalid("job_config", "`url` a string"))?;
                let sha =
                    inner.string("sha").map_err(|_| invalid("job_config", "`sha` a string"))?;
                Ok(Some(JobConfig { url, sha }))
            }
            Some(_) => Err(invalid("job_config", "an object with `url` and `sha`")),
        }
    }
}

impl Claims {
    /// Reads typed claims from a payload object. `iss` and `exp` are required (RFC 7519 and
    /// OIDC Core 2 require both in ID tokens).
    pub(crate) fn from_payload(raw: Map<String, Value>) -> Result<Self, VerifyError> {
        let r = Reader(&raw);
        let iss =
            r.string("iss")?.ok_or_else(|| VerifyError::ClaimMissing { claim: "iss".into() })?;
        let exp = r
            .numeric_date("exp")?
            .ok_or_else(|| VerifyError::ClaimMissing { claim: "exp".into() })?;
        let gitlab = GitLabClaims {
            namespace_id: r.string("namespace_id")?,
            namespace_path: r.string("namespace_path")?,
            project_id: r.string("project_id")?,
            project_path: r.string("project_path")?,
            job_project_id: r.string("job_project_id")?,
            job_project_path: r.string("job_project_path")?,
            job_namespace_id: r.string("job_namespace_id")?,
            job_namespace_path: r.string("job_namespace_path")?,
            user_id: r.string("user_id")?,
            user_login: r.string("user_login")?,
            user_email: r.string("user_email")?,
            user_access_level: r.nullable_string("user_access_level")?,
            user_identities: r.user_identities()?,
            pipeline_id: r.string("pipeline_id")?,
            pipeline_source: r.string("pipeline_source")?,
            job_id: r.string("job_id")?,
            r#ref: r.string("ref")?,
            ref_type: r.string("ref_type")?,
            ref_path: r.string("ref_path")?,
            ref_protected: r.bool_string("ref_protected")?,
            groups_direct: r.string_list("groups_direct")?,
            environment: r.string("environment")?,
            environment_protected: r.bool_string("environment_protected")?,
            deployment_tier: r.string("deployment_tier")?,
            environment_action: r.string("environment_action")?,
            runner_id: r.integer("runner_id")?,
            runner_environment: r.string("runner_environment")?,
            sha: r.string("sha")?,
            ci_config_ref_uri: r.nullable_string("ci_config_ref_uri")?,
            ci_config_sha: r.nullable_string("ci_config_sha")?,
            project_visibility: r.string("project_visibility")?,
            job_source: r.string("job_source")?,
            job_config: r.job_config()?,
            target_audience: r.string("target_audience")?,
        };
        Ok(Self {
            iss,
            sub: r.string("sub")?,
            aud: r.audience()?,
            exp,
            nbf: r.numeric_date("nbf")?,
            iat: r.numeric_date("iat")?,
            jti: r.string("jti")?,
            gitlab,
            raw,
        })
    }

    /// The claims as compact JSON, exactly the members the token carried.
    pub fn raw_json(&self) -> String {
        Value::Object(self.raw.clone()).to_string()
    }
}

#[cfg(test)]
impl Claims {
    /// Test claims: testkit's realistic GitLab job (acme/payments, protected `main`,
    /// production), issued by `issuer` at `iat`, then edited.
    pub(crate) fn test_job(issuer: &str, iat: u64, edit: impl FnOnce(&mut Value)) -> Self {
        let mut raw = testkit::gitlab_claims(issuer, iat);
        edit(&mut raw);
        match raw {
            Value::Object(map) => Self::from_payload(map).expect("testkit's claims parse"),
            other => panic!("claims must be an object, not {other}"),
        }
    }
}

#[cfg(test)]
mod tests;
