//! What one resolved job says about identity: its `id_tokens`, `environment`, variables, and
//! what its scripts do with Azure.

use serde_json::{Map, Value};

use super::error::JobError;
use super::reach::{compile_rules, flatten, variable_value, Rule};
use super::resolve::{InheritVariables, ResolvedJob};
use crate::text::json::yaml_type_name;

/// The legacy JWT variables, removed in GitLab 17.0 (facts 1.1), longest first.
pub(crate) const LEGACY_JWT: [&str; 3] = ["CI_JOB_JWT_V2", "CI_JOB_JWT_V1", "CI_JOB_JWT"];

/// Variables whose names say they hold a static Azure credential, and what kind.
const SECRET_NAMES: [(&str, SecretKind); 8] = [
    ("ARM_CLIENT_CERTIFICATE", SecretKind::Certificate),
    ("ARM_CLIENT_CERTIFICATE_PASSWORD", SecretKind::CertificatePassword),
    ("ARM_CLIENT_CERTIFICATE_PATH", SecretKind::Certificate),
    ("ARM_CLIENT_SECRET", SecretKind::ClientSecret),
    ("AZURE_CLIENT_CERTIFICATE", SecretKind::Certificate),
    ("AZURE_CLIENT_CERTIFICATE_PASSWORD", SecretKind::CertificatePassword),
    ("AZURE_CLIENT_CERTIFICATE_PATH", SecretKind::Certificate),
    ("AZURE_CLIENT_SECRET", SecretKind::ClientSecret),
];

/// Variables that make Azure SDKs, the CLI or Terraform use a federated token directly.
const DIRECT_VARIABLES: [&str; 6] = [
    "ARM_OIDC_TOKEN",
    "ARM_OIDC_TOKEN_FILE_PATH",
    "ARM_USE_OIDC",
    "AZURE_FEDERATED_TOKEN",
    "AZURE_FEDERATED_TOKEN_FILE",
    "ARM_OIDC_REQUEST_TOKEN",
];

/// Variables that name an Azure identity (job-level use means the job talks to Azure).
const IDENTITY_VARIABLES: [&str; 6] = [
    "ARM_CLIENT_ID",
    "ARM_SUBSCRIPTION_ID",
    "ARM_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_TENANT_ID",
];

/// What a static credential is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SecretKind {
    Certificate,
    CertificatePassword,
    ClientSecret,
    PrivateKey,
}

impl SecretKind {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Certificate => "a client certificate",
            Self::CertificatePassword => "a client certificate password",
            Self::ClientSecret => "a client secret",
            Self::PrivateKey => "a PEM private key",
        }
    }
}

/// A static credential found in variables or a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SecretHit {
    /// The variable's name, or `script` for a script line.
    pub(crate) name: String,
    /// The key path, e.g. `variables.AZURE_CLIENT_SECRET` or `script[3]`.
    pub(crate) key: String,
    pub(crate) kind: SecretKind,
    /// True when the value itself is in the file; false when it names another variable.
    pub(crate) literal: bool,
    /// The referenced variable, when not literal.
    pub(crate) from: Option<String>,
    /// The value, only to hash it and to scrub it from every output; never shown.
    pub(crate) value: Option<String>,
}

/// One `id_tokens:` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IdToken {
    pub(crate) name: String,
    /// `aud` as written (one or several).
    pub(crate) audiences: Vec<String>,
}

/// `environment:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Environment {
    /// As written (may hold variables).
    pub(crate) name: String,
    /// `start` unless set.
    pub(crate) action: String,
    /// `deployment_tier`, if set.
    pub(crate) tier: Option<String>,
}

/// What the job does with Azure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AzureUse {
    /// Why the linter thinks the job uses Azure, for people.
    pub(crate) signals: Vec<&'static str>,
    /// The job hands a federated token to Entra itself (az, SDK, Terraform, Key Vault).
    pub(crate) direct: bool,
    /// The job exchanges through `gitlab-azure-oidc exchange` (the policy is enforced).
    pub(crate) via_exchange: bool,
    /// The job logs in with a client secret or certificate.
    pub(crate) secret_login: bool,
    /// The job logs in with the runner's managed identity.
    pub(crate) managed_identity: bool,
    /// `id_tokens` names the job hands to Azure.
    pub(crate) bound_tokens: Vec<String>,
    /// True when `bound_tokens` is the job's only token, assumed rather than seen.
    pub(crate) assumed: bool,
}

impl AzureUse {
    pub(crate) fn uses(&self) -> bool {
        !self.signals.is_empty()
    }

    fn signal(&mut self, signal: &'static str) {
        if !self.signals.contains(&signal) {
            self.signals.push(signal);
        }
    }
}

/// How the job decides where it runs.
#[derive(Clone, Debug)]
pub(crate) enum RuleSpec<'a> {
    Rules(Vec<Rule<'a>>),
    OnlyExcept { only: Option<&'a Value>, except: Option<&'a Value> },
}

/// One job, read for the linter.
#[derive(Clone, Debug)]
pub(crate) struct JobModel<'a> {
    pub(crate) job: &'a ResolvedJob,
    /// Global variables the job inherits.
    pub(crate) globals: Map<String, Value>,
    /// The job's own `variables:` (after `extends`).
    pub(crate) own: Map<String, Value>,
    pub(crate) id_tokens: Vec<IdToken>,
    pub(crate) environment: Option<Environment>,
    /// Script lines: `before_script`, `script`, `after_script`, `hooks`.
    pub(crate) lines: Vec<(String, String)>,
    pub(crate) azure: AzureUse,
    /// Legacy JWT variables the job reads, with where.
    pub(crate) legacy: Vec<(&'static str, String)>,
    pub(crate) rules: RuleSpec<'a>,
}

/// Whether `text` reads the variable `name` (`$NAME`, `${NAME}`, `%NAME%`, `$env:NAME`).
pub(crate) fn reads(text: &str, name: &str) -> bool {
    let boundary = |rest: &str| !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
    for prefix in ["$", "$env:", "%"] {
        let needle = format!("{prefix}{name}");
        let mut from = 0;
        while let Some(at) = text.get(from..).and_then(|t| t.find(&needle)) {
            let end = from + at + needle.len();
            if boundary(text.get(end..).unwrap_or_default()) {
                return true;
            }
            from = end;
        }
    }
    text.contains(&format!("${{{name}}}"))
}

/// Whether `text` has `name` as a whole word (`--token-env AZURE_ID_TOKEN`).
fn mentions(text: &str, name: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|w| w == name)
}

/// The commands of a shell line: for each segment between `;`, `&&`, `||`, `|`, `$(` and
/// backquotes, the words after environment assignments and `sudo`/`exec`/`time`/`env`.
fn commands(line: &str) -> Vec<Vec<&str>> {
    line.split([';', '|', '&', '`', '('])
        .map(|segment| {
            segment
                .split_whitespace()
                .skip_while(|w| w.contains('=') || matches!(*w, "sudo" | "exec" | "time" | "env"))
                .collect::<Vec<_>>()
        })
        .filter(|words| !words.is_empty())
        .collect()
}

/// An Entra client secret as Entra issues them today: three characters, a digit, `Q~`, then
/// 31 to 34 more (Microsoft's secret-scanning pattern).
pub(crate) fn looks_like_client_secret(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    (37..=40).contains(&chars.len())
        && chars.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '~' | '.' | '-'))
        && chars.get(3).is_some_and(char::is_ascii_digit)
        && chars.get(4) == Some(&'Q')
        && chars.get(5) == Some(&'~')
}

pub(crate) fn looks_like_private_key(text: &str) -> bool {
    text.contains("-----BEGIN") && text.contains("PRIVATE KEY-----")
}

/// A value that only names another variable: `$X` or `${X}`.
fn reference_only(value: &str) -> Option<String> {
    let v = value.trim();
    let name =
        v.strip_prefix("${").and_then(|r| r.strip_suffix('}')).or_else(|| v.strip_prefix('$'))?;
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| name.to_owned())
}

/// Legacy JWT variables read by a `variables:` mapping: `(name, key path)`.
pub(crate) fn legacy_in_variables(vars: &Map<String, Value>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for name in LEGACY_JWT {
        for (var, value) in vars {
            if variable_value(value).is_some_and(|(v, _)| reads(&v, name)) {
                out.push((name, format!("variables.{var}")));
                break;
            }
        }
    }
    out
}

/// Static credentials in a `variables:` mapping (`prefix` is its key path).
pub(crate) fn secrets_in_variables(vars: &Map<String, Value>, prefix: &str) -> Vec<SecretHit> {
    let mut out = Vec::new();
    for (name, value) in vars {
        let Some((text, _)) = variable_value(value) else { continue };
        let by_name = SECRET_NAMES.iter().find(|(n, _)| n == name).map(|(_, k)| *k);
        let by_value = if looks_like_private_key(&text) {
            Some(SecretKind::PrivateKey)
        } else if looks_like_client_secret(text.trim()) {
            Some(SecretKind::ClientSecret)
        } else {
            None
        };
        let Some(kind) = by_value.or(by_name) else { continue };
        if text.trim().is_empty() {
            continue;
        }
        let from = reference_only(&text);
        out.push(SecretHit {
            name: name.clone(),
            key: format!("{prefix}.{name}"),
            kind,
            literal: from.is_none(),
            from,
            value: Some(text),
        });
    }
    out
}

/// Static credentials written into script lines.
pub(crate) fn secrets_in_lines(lines: &[(String, String)]) -> Vec<SecretHit> {
    let mut out = Vec::new();
    for (key, line) in lines {
        if looks_like_private_key(line) {
            out.push(SecretHit {
                name: "script".to_owned(),
                key: key.clone(),
                kind: SecretKind::PrivateKey,
                literal: true,
                from: None,
                value: Some(line.clone()),
            });
            continue;
        }
        let token = line
            .split(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '=' | ','))
            .find(|t| looks_like_client_secret(t));
        if let Some(token) = token {
            out.push(SecretHit {
                name: "script".to_owned(),
                key: key.clone(),
                kind: SecretKind::ClientSecret,
                literal: true,
                from: None,
                value: Some(token.to_owned()),
            });
        }
    }
    out
}

fn script_lines(config: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |key: &str, value: &Value| {
        let items: Vec<&Value> = match value {
            Value::Array(_) => flatten(value),
            other => vec![other],
        };
        for (i, item) in items.iter().enumerate() {
            let text = match item {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            for line in text.lines() {
                out.push((format!("{key}[{i}]"), line.to_owned()));
            }
        }
    };
    for key in ["before_script", "script", "after_script"] {
        if let Some(v) = config.get(key) {
            add(key, v);
        }
    }
    if let Some(Value::Object(hooks)) = config.get("hooks") {
        for (name, v) in hooks {
            add(&format!("hooks.{name}"), v);
        }
    }
    out
}

impl<'a> JobModel<'a> {
    /// Reads a resolved job.
    ///
    /// # Errors
    /// A [`JobError::Keyword`] for keys GitLab would refuse: `variables`, `id_tokens`,
    /// `environment` or `rules` of the wrong shape, `rules` with `only`/`except`.
    pub(crate) fn read(
        job: &'a ResolvedJob,
        globals: &Map<String, Value>,
    ) -> Result<Self, JobError> {
        let config = job.config();
        let name = job.name();
        let bad = |key: &str, expected: &str| JobError::Keyword {
            job: name.to_owned(),
            key: key.to_owned(),
            expected: expected.to_owned(),
        };
        let own = match config.get("variables") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(other) => {
                return Err(bad("variables", &format!("a mapping, not {}", yaml_type_name(other))))
            }
        };
        let globals = match job.inherit_variables() {
            InheritVariables::All => globals.clone(),
            InheritVariables::None => Map::new(),
            InheritVariables::Only(names) => globals
                .iter()
                .filter(|(k, _)| names.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let mut id_tokens = Vec::new();
        match config.get("id_tokens") {
            None | Some(Value::Null) => {}
            Some(Value::Object(tokens)) => {
                for (token, spec) in tokens {
                    let key = format!("id_tokens.{token}.aud");
                    let aud = spec.as_object().and_then(|s| s.get("aud"));
                    let audiences = match aud {
                        Some(Value::String(a)) => vec![a.clone()],
                        Some(Value::Array(items))
                            if !items.is_empty() && items.iter().all(Value::is_string) =>
                        {
                            items.iter().filter_map(Value::as_str).map(str::to_owned).collect()
                        }
                        _ => return Err(bad(&key, "a string or a list of strings (the audience)")),
                    };
                    id_tokens.push(IdToken { name: token.clone(), audiences });
                }
            }
            Some(_) => return Err(bad("id_tokens", "a mapping of token names to `{aud: ...}`")),
        }
        let environment = match config.get("environment") {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) => {
                Some(Environment { name: n.clone(), action: "start".to_owned(), tier: None })
            }
            Some(Value::Object(env)) => {
                let Some(n) = env.get("name").and_then(Value::as_str) else {
                    return Err(bad("environment.name", "a string"));
                };
                Some(Environment {
                    name: n.to_owned(),
                    action: env.get("action").and_then(Value::as_str).unwrap_or("start").to_owned(),
                    tier: env.get("deployment_tier").and_then(Value::as_str).map(str::to_owned),
                })
            }
            Some(_) => return Err(bad("environment", "a name or a mapping with `name`")),
        };
        let rules = match (config.get("rules"), config.get("only"), config.get("except")) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(JobError::RulesWithOnly { job: name.to_owned() })
            }
            (Some(rules @ Value::Array(_)), None, None) => {
                let items = flatten(rules);
                if let Some(i) = items.iter().position(|r| !r.is_object()) {
                    return Err(bad(
                        &format!("rules[{i}]"),
                        "a mapping with `if`, `changes`, `exists` or `when`",
                    ));
                }
                RuleSpec::Rules(compile_rules(&items))
            }
            (Some(_), None, None) => return Err(bad("rules", "a list of rules")),
            (None, only, except) => RuleSpec::OnlyExcept { only, except },
        };
        let lines = script_lines(config);
        let mut model = Self {
            job,
            globals,
            own,
            id_tokens,
            environment,
            lines,
            azure: AzureUse::default(),
            legacy: Vec::new(),
            rules,
        };
        model.azure = model.azure_use();
        model.legacy = model.legacy_reads();
        Ok(model)
    }

    fn legacy_reads(&self) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        let mut note = |name: &'static str, key: String| {
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, key));
            }
        };
        for name in LEGACY_JWT {
            for (key, line) in &self.lines {
                if reads(line, name) {
                    note(name, key.clone());
                }
            }
        }
        for found in legacy_in_variables(&self.own) {
            note(found.0, found.1);
        }
        out
    }

    fn azure_use(&self) -> AzureUse {
        let mut use_ = AzureUse::default();
        let mut azure_lines: Vec<&str> = Vec::new();
        let mut terraform = false;
        for (_, line) in &self.lines {
            let lower = line.to_lowercase();
            let mut azure_line = false;
            for words in commands(line) {
                let Some(first) = words.first() else { continue };
                let has = |flag: &str| {
                    words.iter().any(|w| *w == flag || w.starts_with(&format!("{flag}=")))
                };
                match *first {
                    "az" => {
                        azure_line = true;
                        if words.get(1) == Some(&"login") {
                            if has("--federated-token") {
                                use_.signal("az login --federated-token");
                                use_.direct = true;
                            } else if has("--identity") {
                                use_.signal("az login --identity");
                                use_.managed_identity = true;
                            } else if has("-p") || has("--password") || has("--certificate") {
                                use_.signal("az login with a client secret or certificate");
                                use_.secret_login = true;
                            } else {
                                use_.signal("az login");
                            }
                        } else {
                            use_.signal("az CLI");
                        }
                    }
                    "terraform" | "tofu" | "gitlab-terraform" | "gitlab-tofu" => {
                        // `fmt`, `validate`, `version` and the like never reach a provider.
                        let offline =
                            words.iter().skip(1).find(|w| !w.starts_with('-')).is_some_and(|sub| {
                                matches!(
                                    *sub,
                                    "fmt" | "validate" | "version" | "graph" | "providers" | "get"
                                )
                            }) || words
                                .get(1)
                                .is_some_and(|w| matches!(*w, "-version" | "--version" | "-v"));
                        terraform |= !offline;
                    }
                    "gitlab-azure-oidc" => {
                        azure_line = true;
                        if words.get(1) == Some(&"exchange") {
                            use_.signal("gitlab-azure-oidc exchange");
                            use_.via_exchange = true;
                        }
                    }
                    _ => {}
                }
            }
            if lower.contains("connect-azaccount") {
                azure_line = true;
                if lower.contains("-federatedtoken") {
                    use_.signal("Connect-AzAccount -FederatedToken");
                    use_.direct = true;
                } else if lower.contains("-identity") {
                    use_.signal("Connect-AzAccount -Identity");
                    use_.managed_identity = true;
                } else if lower.contains("-credential") || lower.contains("-certificate") {
                    use_.signal("Connect-AzAccount with a client secret or certificate");
                    use_.secret_login = true;
                } else {
                    use_.signal("Connect-AzAccount");
                }
            }
            if DIRECT_VARIABLES.iter().any(|v| line.contains(v)) {
                azure_line = true;
                use_.signal("federated token handed to an Azure SDK or Terraform");
                use_.direct = true;
            }
            if azure_line {
                azure_lines.push(line);
            }
        }
        // Job-level variables are a strong signal; global ones alone are not (every job inherits
        // them), except for Terraform, which reads ARM_* from the environment.
        for name in self.own.keys() {
            if DIRECT_VARIABLES.contains(&name.as_str()) {
                use_.signal("federated token handed to an Azure SDK or Terraform");
                use_.direct = true;
            } else if IDENTITY_VARIABLES.contains(&name.as_str()) {
                use_.signal("Azure identity variables");
            }
        }
        let arm_anywhere =
            self.own.keys().chain(self.globals.keys()).any(|k| k.starts_with("ARM_"))
                || self.lines.iter().any(|(_, l)| l.contains("ARM_") || l.contains("azurerm"));
        if terraform && arm_anywhere {
            use_.signal("terraform with azurerm");
            let oidc = self
                .own
                .keys()
                .chain(self.globals.keys())
                .any(|k| DIRECT_VARIABLES.contains(&k.as_str()))
                || self.id_tokens.iter().any(|t| DIRECT_VARIABLES.contains(&t.name.as_str()));
            if oidc {
                use_.direct = true;
            }
        }
        let mut key_vault_tokens = Vec::new();
        if let Some(Value::Object(secrets)) = self.job.config().get("secrets") {
            for spec in secrets.values() {
                if let Some(spec) = spec.as_object().filter(|s| s.contains_key("azure_key_vault")) {
                    use_.signal("GitLab's Azure Key Vault secrets");
                    use_.direct = true;
                    if let Some(token) = spec.get("token").and_then(Value::as_str) {
                        key_vault_tokens.push(token.to_owned());
                    }
                }
            }
        }
        if self.id_tokens.iter().any(|t| DIRECT_VARIABLES.contains(&t.name.as_str())) {
            use_.signal("federated token handed to an Azure SDK or Terraform");
            use_.direct = true;
        }
        // Which tokens go to Azure.
        let azure_values: Vec<String> = self
            .own
            .iter()
            .chain(self.globals.iter())
            .filter(|(k, _)| k.starts_with("ARM_") || k.starts_with("AZURE_"))
            .filter_map(|(_, v)| variable_value(v).map(|(text, _)| text))
            .collect();
        for token in &self.id_tokens {
            let name = token.name.as_str();
            let bound = DIRECT_VARIABLES.contains(&name)
                || azure_lines.iter().any(|l| reads(l, name) || mentions(l, name))
                || azure_values.iter().any(|v| reads(v, name))
                || key_vault_tokens.iter().any(|v| reads(v, name));
            if bound {
                use_.bound_tokens.push(token.name.clone());
            }
        }
        if use_.uses() && use_.bound_tokens.is_empty() {
            if let [only] = self.id_tokens.as_slice() {
                use_.bound_tokens.push(only.name.clone());
                use_.assumed = true;
            }
        }
        use_
    }

    /// The variable layers for `rules:if` and expansion: inherited globals, then the job's own.
    pub(crate) fn layers(&self) -> [&Map<String, Value>; 2] {
        [&self.globals, &self.own]
    }
}

/// GitLab's guess of a deployment tier from an environment name (`Environment#guess_tier`).
pub(crate) fn guess_tier(name: &str) -> &'static str {
    let n = name.to_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| n.contains(w));
    if any(&["dev", "review", "trunk"]) {
        "development"
    } else if any(&["test", "tst", "int", "acpt", "accept", "qa", "qc", "control", "quality"]) {
        "testing"
    } else if any(&["stg", "stag", "model", "modl", "pre", "demo", "non"]) {
        "staging"
    } else if any(&["prod", "prd", "live"]) {
        "production"
    } else {
        "other"
    }
}
