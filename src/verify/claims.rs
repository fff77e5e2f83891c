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

/// What a claim holds, as GitLab sends it: drives claims parsing, the policy's matchers and the
/// claim documentation, from one table ([`CLAIMS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClaimKind {
    /// A string: a path, a ref, a login.
    Text,
    /// A numeric id that GitLab sends as a string of digits (`"42"`).
    Id,
    /// `"true"` or `"false"`, as strings.
    Flag,
    /// A JSON integer (`runner_id`, the one id GitLab sends as a number).
    Integer,
    /// A NumericDate: seconds since the epoch (RFC 7519 section 2).
    Time,
    /// An array of strings (`groups_direct`).
    TextList,
    /// A string or an array of strings (`aud`, RFC 7519 4.1.3).
    Audience,
    /// `user_identities`: an array of `{provider, extern_uid}`.
    Identities,
    /// `job_config`: an object `{url, sha}`.
    Object,
}

impl ClaimKind {
    /// The kind's name, as in the claim documentation and the WIT `claim-spec`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Id => "id",
            Self::Flag => "flag",
            Self::Integer => "integer",
            Self::Time => "time",
            Self::TextList => "text-list",
            Self::Audience => "audience",
            Self::Identities => "identities",
            Self::Object => "object",
        }
    }
}

/// One claim a GitLab CI ID token can carry (facts 1.3 and 1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimSpec {
    /// The claim's name in the token.
    pub name: &'static str,
    /// What it holds.
    pub kind: ClaimKind,
    /// GitLab sends `null` when it does not apply (treated as absent).
    pub nullable: bool,
    /// The GitLab version that added it, when known and later than 15.7 (`id_tokens:`).
    pub since: Option<&'static str>,
    /// A registered claim of RFC 7519, not one of GitLab's own.
    pub registered: bool,
    /// The values GitLab documents for the claim, when it takes a fixed set (`ref_type`:
    /// `branch`, `tag`); empty for free-form claims. Policy values are checked against them.
    pub values: &'static [&'static str],
    /// Whether [`values`](Self::values) is every value GitLab sends. When it is not (GitLab does
    /// not document the full `pipeline_source` list), other values are accepted unless they look
    /// like a typo of a listed one.
    pub values_complete: bool,
}

impl ClaimSpec {
    /// Whether a policy may compare the claim with `value`: one of the documented values, or,
    /// for an incomplete list, any value that is not a near miss of one.
    ///
    /// # Errors
    /// The closest documented value when there is one (for "did you mean"), `None` otherwise.
    pub fn check_value(&self, value: &str) -> Result<(), Option<String>> {
        if self.values.is_empty() || self.values.contains(&value) {
            return Ok(());
        }
        let suggestion = crate::text::ident::suggest(value, self.values.iter().copied());
        match (self.values_complete, suggestion) {
            (true, suggestion) => Err(suggestion),
            (false, Some(suggestion)) => Err(Some(suggestion)),
            (false, None) => Ok(()),
        }
    }
}

/// Defines [`GitLabClaims`], the claim table [`CLAIMS`] and the reader that fills the struct
/// from the table, so a claim is named in exactly one place.
macro_rules! claim_table {
    (
        registered { $( $rname:literal : $rkind:ident ),* $(,)? }
        gitlab {
            $(
                $(#[doc = $doc:literal])*
                $name:literal => $field:ident : $ty:ty = $kind:ident
                    $(, nullable $nullable:literal)? $(, since $since:literal)?
                    $(, all [ $( $all:literal ),* $(,)? ])?
                    $(, some [ $( $some:literal ),* $(,)? ])? ;
            )*
        }
    ) => {
        /// The claims GitLab adds to CI ID tokens, each the claim of the same name (the table is
        /// [`CLAIMS`]). All ids except `runner_id` are strings, as GitLab sends them;
        /// `ref_protected` and `environment_protected` are parsed from `"true"`/`"false"`.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct GitLabClaims {
            $( #[doc = concat!("`", $name, "`.")] $(#[doc = $doc])* pub $field: Option<$ty>, )*
        }

        /// Every claim this version names, registered claims first, in GitLab's documented order.
        pub const CLAIMS: &[ClaimSpec] = &[
            $( ClaimSpec { name: $rname, kind: ClaimKind::$rkind, nullable: false, since: None,
                           registered: true, values: &[], values_complete: false }, )*
            $( ClaimSpec {
                name: $name,
                kind: ClaimKind::$kind,
                nullable: claim_table!(@flag $($nullable)?),
                since: claim_table!(@since $($since)?),
                registered: false,
                values: &[ $($( $all, )*)? $($( $some, )*)? ],
                values_complete: claim_table!(@complete $( [ $( $all )* ] )?),
            }, )*
        ];

        impl GitLabClaims {
            fn read(r: &Reader<'_>) -> Result<Self, VerifyError> {
                Ok(Self { $( $field: r.typed($name)?, )* })
            }
        }
    };
    (@flag) => { false };
    (@flag $value:literal) => { $value };
    (@since) => { None };
    (@complete) => { false };
    (@complete [ $( $value:literal )* ]) => { true };
    (@since $value:literal) => { Some($value) };
}

claim_table! {
    registered {
        "iss": Text, "sub": Text, "aud": Audience, "exp": Time, "nbf": Time, "iat": Time,
        "jti": Text,
    }
    gitlab {
        "namespace_id" => namespace_id: String = Id;
        "namespace_path" => namespace_path: String = Text;
        "project_id" => project_id: String = Id;
        /// `group/subgroup/project`. For merge-request pipelines from forks (GitLab 18.2.2+) this
        /// is the fork; [`GitLabClaims::job_project_path`] is the project that runs the job.
        "project_path" => project_path: String = Text;
        /// GitLab 18.4+: the project that runs the job.
        "job_project_id" => job_project_id: String = Id, since "18.4";
        /// GitLab 18.4+.
        "job_project_path" => job_project_path: String = Text, since "18.4";
        /// GitLab 18.4+.
        "job_namespace_id" => job_namespace_id: String = Id, since "18.4";
        /// GitLab 18.4+.
        "job_namespace_path" => job_namespace_path: String = Text, since "18.4";
        "user_id" => user_id: String = Id;
        "user_login" => user_login: String = Text;
        "user_email" => user_email: String = Text;
        /// GitLab 16.9+: the user's role in the project, lowercase (`developer`, `maintainer`,
        /// `owner`, ...; `human_max_access(...).downcase`, so the list is not closed).
        "user_access_level" => user_access_level: String = Text, nullable true, since "16.9",
            some ["guest", "planner", "reporter", "developer", "maintainer", "owner"];
        /// GitLab 16.0+, only when the user opted in.
        "user_identities" => user_identities: Vec<UserIdentity> = Identities, since "16.0";
        "pipeline_id" => pipeline_id: String = Id;
        /// `push`, `web`, `schedule`, `merge_request_event`, ... (`Enums::Ci::Pipeline.sources`;
        /// GitLab adds sources, so the list is not closed).
        "pipeline_source" => pipeline_source: String = Text,
            some [
                "push", "web", "trigger", "schedule", "api", "external", "pipeline", "chat",
                "webide", "merge_request_event", "external_pull_request_event",
                "parent_pipeline", "ondemand_dast_scan", "security_orchestration_policy",
            ];
        "job_id" => job_id: String = Id;
        /// Branch or tag name, without `refs/heads/`.
        "ref" => r#ref: String = Text;
        /// `branch` or `tag`.
        "ref_type" => ref_type: String = Text, all ["branch", "tag"];
        /// GitLab 16.0+: e.g. `refs/heads/main`.
        "ref_path" => ref_path: String = Text, since "16.0";
        "ref_protected" => ref_protected: bool = Flag;
        /// GitLab 16.11+: omitted above 200 groups.
        "groups_direct" => groups_direct: Vec<String> = TextList, since "16.11";
        /// Only when the job has an environment.
        "environment" => environment: String = Text;
        "environment_protected" => environment_protected: bool = Flag;
        /// `production`, `staging`, `testing`, `development` or `other`.
        "deployment_tier" => deployment_tier: String = Text,
            all ["production", "staging", "testing", "development", "other"];
        /// GitLab 16.5+: `start`, `prepare`, `stop`, `verify` or `access`.
        "environment_action" => environment_action: String = Text, since "16.5",
            all ["start", "prepare", "stop", "verify", "access"];
        /// GitLab 16.0+; an integer, unlike every other id.
        "runner_id" => runner_id: u64 = Integer, since "16.0";
        /// GitLab 16.0+: `gitlab-hosted` or `self-hosted`.
        "runner_environment" => runner_environment: String = Text, since "16.0",
            all ["gitlab-hosted", "self-hosted"];
        /// GitLab 16.0+.
        "sha" => sha: String = Text, since "16.0";
        /// GitLab 16.2+; null unless the pipeline definition lives in the same project.
        "ci_config_ref_uri" => ci_config_ref_uri: String = Text, nullable true, since "16.2";
        /// GitLab 16.2+; null like `ci_config_ref_uri`.
        "ci_config_sha" => ci_config_sha: String = Text, nullable true, since "16.2";
        /// GitLab 16.3+: `internal`, `private` or `public`.
        "project_visibility" => project_visibility: String = Text, since "16.3",
            all ["internal", "private", "public"];
        /// GitLab 18.9+.
        "job_source" => job_source: String = Text, since "18.9";
        /// GitLab 18.9+, only for jobs triggered by a security policy.
        "job_config" => job_config: JobConfig = Object, nullable true, since "18.9";
        /// Only when GitLab minted the token with a target audience.
        "target_audience" => target_audience: String = Text;
    }
}

/// The table entry of a claim this version names.
pub(crate) fn claim_spec(name: &str) -> Option<&'static ClaimSpec> {
    CLAIMS.iter().find(|spec| spec.name == name)
}

/// A claim value of one Rust type, read as its [`ClaimKind`] says.
trait FromClaim: Sized {
    fn from_claim(name: &str, value: &Value) -> Result<Self, VerifyError>;
}

impl FromClaim for String {
    fn from_claim(name: &str, value: &Value) -> Result<Self, VerifyError> {
        value.as_str().map(str::to_owned).ok_or_else(|| invalid(name, "a string"))
    }
}

impl FromClaim for bool {
    fn from_claim(name: &str, value: &Value) -> Result<Self, VerifyError> {
        match value.as_str() {
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            _ => Err(invalid(name, "the string \"true\" or \"false\"")),
        }
    }
}

impl FromClaim for u64 {
    fn from_claim(name: &str, value: &Value) -> Result<Self, VerifyError> {
        value.as_u64().ok_or_else(|| invalid(name, "a non-negative integer"))
    }
}

impl FromClaim for Vec<String> {
    fn from_claim(name: &str, value: &Value) -> Result<Self, VerifyError> {
        value
            .as_array()
            .and_then(|items| items.iter().map(|i| i.as_str().map(str::to_owned)).collect())
            .ok_or_else(|| invalid(name, "an array of strings"))
    }
}

impl FromClaim for Vec<UserIdentity> {
    fn from_claim(name: &str, value: &Value) -> Result<Self, VerifyError> {
        let expected = "an array of objects with string `provider` and `extern_uid`";
        let items = value.as_array().ok_or_else(|| invalid(name, expected))?;
        items
            .iter()
            .map(|item| {
                let field = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_owned);
                match (field("provider"), field("extern_uid")) {
                    (Some(provider), Some(extern_uid)) => Ok(UserIdentity { provider, extern_uid }),
                    _ => Err(invalid(name, expected)),
                }
            })
            .collect()
    }
}

impl FromClaim for JobConfig {
    fn from_claim(name: &str, value: &Value) -> Result<Self, VerifyError> {
        let Value::Object(obj) = value else {
            return Err(invalid(name, "an object with `url` and `sha`"));
        };
        let inner = Reader(obj);
        let url = inner.string("url").map_err(|_| invalid(name, "`url` a string"))?;
        let sha = inner.string("sha").map_err(|_| invalid(name, "`sha` a string"))?;
        Ok(Self { url, sha })
    }
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
    /// A claim of the table, typed: absent (or `null` where GitLab sends it) is `None`.
    fn typed<T: FromClaim>(&self, name: &str) -> Result<Option<T>, VerifyError> {
        let Some(spec) = claim_spec(name) else { return Ok(None) };
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Null) if spec.nullable => Ok(None),
            Some(value) => T::from_claim(name, value).map(Some),
        }
    }

    fn string(&self, name: &str) -> Result<Option<String>, VerifyError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(name, "a string")),
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

    fn audience(&self) -> Result<Option<Audience>, VerifyError> {
        match self.0.get("aud") {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(Audience::One(s.clone()))),
            Some(list @ Value::Array(_)) => {
                Ok(Some(Audience::Many(Vec::<String>::from_claim("aud", list)?)))
            }
            Some(_) => Err(invalid("aud", "a string or an array of strings")),
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
        let gitlab = GitLabClaims::read(&r)?;
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

    /// Reads claims from a JSON object: a verified token's payload, or claims written by hand to
    /// ask "what would the policy decide for this job". Strict as the verifier is: duplicate
    /// members, deep nesting and oversized input are refused. The signature and the time claims
    /// are not checked (there is no token).
    ///
    /// # Errors
    /// A [`VerifyError`] naming the claim or the JSON problem.
    pub fn from_json(json: &[u8]) -> Result<Self, VerifyError> {
        let limits = crate::Limits::default();
        if json.len() > limits.max_token_bytes {
            return Err(VerifyError::TooLarge { size: json.len(), limit: limits.max_token_bytes });
        }
        Self::from_payload(super::jws::json_object(json, crate::Part::Payload, &limits)?)
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
