//! The plugin configuration: parsed once in `on_configure` into a checked [`FilterConfig`].
//!
//! Everything that can be wrong with a configuration is found here, so a bad one is rejected at
//! load (Envoy refuses it) instead of failing requests later.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use gitlab_azure_oidc::broker::vend::Explain;
use gitlab_azure_oidc::broker::{BrokerConfig, BrokerConfigError, ConfigMode, IdentityEndpoint};
use gitlab_azure_oidc::gate::{Credential, GateConfigError};
use gitlab_azure_oidc::offload::SignatureBackend;
use gitlab_azure_oidc::policy::{BrokerPlanWarning, Policy, PolicyError, RuleCredential};
use gitlab_azure_oidc::{GateConfig, Jwks, JwksError, VerifierConfig};
use serde::Deserialize;
use serde_json::Value;

use crate::request::{split_url, HeaderSpec};

/// Why a plugin configuration was refused. Each message names the field.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration is not the expected JSON.
    Json(String),
    /// A field has a value that cannot work.
    Invalid {
        /// The field, e.g. `jwks.cluster`.
        field: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The verifier settings are refused by the core.
    Verifier(gitlab_azure_oidc::ConfigError),
    /// The inline JWKS does not parse.
    Jwks(JwksError),
    /// The policy document does not parse (its Azure targets are checked with it).
    Policy(PolicyError),
    /// The broker's configuration (`broker`) was refused: a key, a certificate, an unset
    /// environment variable. The message never quotes a secret.
    Broker(BrokerConfigError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(detail) => write!(f, "the plugin configuration is not valid: {detail}"),
            Self::Invalid { field, reason } => write!(f, "`{field}`: {reason}"),
            Self::Verifier(e) => write!(f, "verifier settings: {e}"),
            Self::Jwks(e) => write!(f, "`jwks.inline`: {e}"),
            Self::Policy(e) => write!(f, "`policy`: {e}"),
            Self::Broker(e) => write!(f, "`broker`: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where the JWKS comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// Given in the configuration (checked at load); never refetched.
    Inline(String),
    /// Fetched from an Envoy cluster with `dispatch_http_call`.
    Remote(RemoteJwks),
}

/// A JWKS fetched from an Envoy cluster, and how it is cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteJwks {
    /// The Envoy cluster name.
    pub cluster: String,
    /// The `:authority` sent. Defaults to the issuer's host.
    pub authority: String,
    /// The `:path`. Defaults to GitLab's `/oauth/discovery/keys`.
    pub path: String,
    /// The fetch timeout in milliseconds. Defaults to 5000.
    pub timeout_ms: u64,
    /// Lower bound on `Cache-Control: max-age`, seconds. Defaults to 60.
    pub min_max_age: u64,
    /// Upper bound on `Cache-Control: max-age`, seconds. Defaults to 86400.
    pub max_max_age: u64,
    /// Cache lifetime when the answer has no `max-age`, seconds. Defaults to 300.
    pub default_max_age: u64,
    /// The longest the keys are used, whatever `max-age` says, seconds: they are refreshed in
    /// the background once three quarters of their lifetime have passed, and verify nothing once
    /// it is over. Defaults to 3600.
    pub max_lifetime: u64,
    /// A token with an unknown `kid` triggers a refetch at most once per this many seconds.
    /// Defaults to 60.
    pub unknown_kid_interval: u64,
    /// After a failed fetch, requests get 503 for this many seconds before the next try.
    /// Defaults to 5.
    pub retry_interval: u64,
}

impl RemoteJwks {
    /// Where the keys are fetched: the cluster, the `:authority` and the `:path`.
    pub fn location(&self) -> (&str, &str, &str) {
        (&self.cluster, &self.authority, &self.path)
    }
}

/// The checked configuration.
#[derive(Debug)]
pub struct FilterConfig {
    /// The core's part: the verifier settings (the verified-token cache is
    /// `cache.verified_tokens`, and so is the decision cache), the policy, the authority
    /// override and, with `envoy_verify_signature`, Envoy's signature check.
    pub gate: GateConfig,
    /// Where the keys come from.
    pub jwks: JwksSource,
    /// The Envoy cluster that reaches Entra.
    pub entra_cluster: String,
    /// The token request timeout in milliseconds.
    pub entra_timeout_ms: u64,
    /// Where the GitLab token is read.
    pub token_header: HeaderSpec,
    /// Where the Azure token is written.
    pub azure_header: HeaderSpec,
    /// Request header name → claim name, sorted by header.
    pub claim_headers: Vec<(String, String)>,
    /// Azure tokens are reused until their expiry minus this many seconds.
    pub azure_margin: u64,
    /// Number of shared-data slots for Azure tokens (bounds the memory used).
    pub azure_slots: u32,
    /// Most requests waiting for a JWKS fetch per worker; beyond it they get 503.
    pub max_waiters: usize,
    /// Root tick period in milliseconds: how often fetches start and waiters are checked.
    pub tick_ms: u64,
    /// Whether RS256/RS384/RS512 signatures go to Envoy's `verify_signature` foreign function
    /// (BoringSSL) when the running Envoy has it; otherwise `ring` checks them in the filter.
    pub envoy_verify_signature: bool,
    /// Log the full audit event for every request, not only when a decision is made.
    pub audit_every_request: bool,
    /// How often the requests that reused a kept decision are summarized, seconds.
    pub audit_summary_seconds: u64,
    /// The policy's fingerprint, logged when the configuration is taken: the first 16 hex
    /// digits of the SHA-256 of the policy document (a string as given, an object as compact
    /// JSON), so an operator sees which policy each proxy runs.
    pub policy_fingerprint: String,
    /// The token-vending route (`vending`), when the filter answers one.
    pub vending: Option<Vending>,
    /// The broker issuer's discovery document and JWKS, when the filter serves them.
    pub issuer_documents: Option<IssuerDocuments>,
    /// The Envoy cluster in front of the managed identity endpoint (`identity_endpoint`).
    pub identity: Option<IdentityCluster>,
    /// The allow rules whose credential is `federated`: advisory, as a job holding a token
    /// Entra accepts can skip the filter. Empty when the policy binds.
    pub advisory_rules: Vec<String>,
}

/// The token-vending route: a path the filter answers itself (never forwarded upstream) with the
/// Azure access token in the JSON of `az account get-access-token`, or with the broker-signed
/// assertion (`{"kind": "assertion"}` in the body, `issuer` rules only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vending {
    /// The path, compared with the request's `:path` without its query, e.g. `/token`.
    pub path: String,
    /// Whether the route also vends assertions. Defaults to true.
    pub assertions: bool,
    /// How much a 403 explains: every rule's outcome (the default, so the job's owner sees what
    /// to change) or the verdict only.
    pub explain: Explain,
}

/// The broker issuer's documents, as the filter serves them to Entra (and anyone: they are
/// public).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerDocuments {
    /// The discovery document's path, `{issuer path}/.well-known/openid-configuration`.
    pub discovery_path: String,
    /// The discovery document.
    pub discovery: String,
    /// The JWKS's path, `{issuer path}/openid/v1/jwks`.
    pub jwks_path: String,
    /// The JWKS: the signing key and every published key, public halves only.
    pub jwks: String,
    /// `Cache-Control: max-age` of both. Defaults to 300.
    pub max_age: u64,
}

/// The Envoy cluster that reaches the managed identity endpoint (IMDS, or App Service's
/// `IDENTITY_ENDPOINT`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityCluster {
    /// The cluster name.
    pub cluster: String,
    /// The `:authority` sent; defaults to the endpoint URL's host (`169.254.169.254` for IMDS).
    pub authority: Option<String>,
    /// The request timeout in milliseconds. Defaults to 5000.
    pub timeout_ms: u64,
}

/// Which part of the filter a request's path belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The identity-aware proxy: admit, exchange, forward upstream.
    Proxy,
    /// The token-vending route.
    Vend,
    /// The broker issuer's discovery document.
    Discovery,
    /// The broker issuer's JWKS.
    Jwks,
}

impl FilterConfig {
    /// One line about the configuration, for the log: the policy's fingerprint and size, and
    /// the issuer.
    pub fn describe(&self) -> String {
        let rules = self.gate.policy().map_or(0, |p| p.rules().len());
        let issuer = self.gate.verifier().map_or("", |v| v.issuer());
        let mut line =
            format!("policy {} ({rules} rules), issuer {issuer}", self.policy_fingerprint);
        let mode = if self.gate.binds() { "binding (broker credentials)" } else { "advisory" };
        line.push_str(&format!(", policy {mode}"));
        if let Some(vending) = &self.vending {
            line.push_str(&format!(", vending at {}", vending.path));
        }
        if let Some(docs) = &self.issuer_documents {
            line.push_str(&format!(
                ", issuer documents at {} and {}",
                docs.discovery_path, docs.jwks_path
            ));
        }
        if let Some(identity) = &self.identity {
            line.push_str(&format!(", managed identity through cluster {}", identity.cluster));
        }
        line
    }

    /// The route of a request whose `:path` is `path` (the query is ignored).
    pub fn route(&self, path: &str) -> Route {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        if let Some(docs) = &self.issuer_documents {
            if path == docs.discovery_path {
                return Route::Discovery;
            }
            if path == docs.jwks_path {
                return Route::Jwks;
            }
        }
        match &self.vending {
            Some(vending) if path == vending.path => Route::Vend,
            _ => Route::Proxy,
        }
    }

    /// What the configuration makes binding and what stays advisory, for the log: `None` when
    /// there is nothing to say (no allow rule).
    pub fn advisory_notice(&self) -> Option<String> {
        if self.advisory_rules.is_empty() {
            return None;
        }
        let notes: Vec<String> = self
            .advisory_rules
            .iter()
            .map(|rule| BrokerPlanWarning::Advisory { rule: rule.clone() }.to_string())
            .collect();
        Some(notes.join("; "))
    }

    /// How long a request may wait for a JWKS fetch, in milliseconds.
    pub fn max_wait_ms(&self) -> u64 {
        match &self.jwks {
            JwksSource::Inline(_) => 0,
            JwksSource::Remote(r) => r.timeout_ms.saturating_add(2 * self.tick_ms + 1000),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    issuer: String,
    audiences: Vec<String>,
    #[serde(default)]
    leeway_seconds: Option<u64>,
    jwks: RawJwks,
    policy: Value,
    entra: RawEntra,
    #[serde(default)]
    token_header: Option<RawHeader>,
    #[serde(default)]
    azure_token_header: Option<RawHeader>,
    #[serde(default)]
    claim_headers: BTreeMap<String, String>,
    #[serde(default)]
    cache: RawCache,
    #[serde(default = "default_tick_ms")]
    tick_ms: u64,
    #[serde(default = "default_true")]
    envoy_verify_signature: bool,
    #[serde(default = "default_max_waiters")]
    max_waiting_requests: usize,
    #[serde(default)]
    audit: RawAudit,
    /// The core's broker configuration document (`BrokerConfig`).
    #[serde(default)]
    broker: Option<Value>,
    #[serde(default)]
    vending: Option<RawVending>,
    #[serde(default)]
    issuer_documents: Option<RawDocuments>,
    #[serde(default)]
    identity_endpoint: Option<RawIdentity>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVending {
    path: String,
    #[serde(default = "default_true")]
    assertions: bool,
    #[serde(default)]
    explain: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocuments {
    #[serde(default = "default_true")]
    serve: bool,
    #[serde(default)]
    discovery_path: Option<String>,
    #[serde(default)]
    jwks_path: Option<String>,
    #[serde(default = "default_documents_max_age")]
    max_age_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    cluster: String,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    #[serde(default)]
    every_request: bool,
    #[serde(default = "default_summary_seconds")]
    summary_seconds: u64,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self { every_request: false, summary_seconds: default_summary_seconds() }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwks {
    #[serde(default)]
    inline: Option<Value>,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_min_max_age")]
    min_max_age: u64,
    #[serde(default = "default_max_max_age")]
    max_max_age: u64,
    #[serde(default = "default_default_max_age")]
    default_max_age: u64,
    #[serde(default = "default_max_lifetime")]
    max_lifetime: u64,
    #[serde(default = "default_unknown_kid_interval")]
    unknown_kid_interval: u64,
    #[serde(default = "default_retry_interval")]
    retry_interval: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntra {
    cluster: String,
    #[serde(default)]
    authority_host: Option<String>,
    #[serde(default)]
    insecure_authority_url: Option<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: String,
    /// `Bearer` (the default) or `null` for a header that holds the bare token.
    #[serde(default = "default_scheme")]
    scheme: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    #[serde(default = "default_verified_tokens")]
    verified_tokens: usize,
    #[serde(default = "default_azure_margin")]
    azure_token_margin_seconds: u64,
    #[serde(default = "default_azure_slots")]
    azure_token_slots: u32,
}

impl Default for RawCache {
    fn default() -> Self {
        Self {
            verified_tokens: default_verified_tokens(),
            azure_token_margin_seconds: default_azure_margin(),
            azure_token_slots: default_azure_slots(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_summary_seconds() -> u64 {
    5
}
fn default_tick_ms() -> u64 {
    50
}
fn default_max_waiters() -> usize {
    1024
}
fn default_timeout_ms() -> u64 {
    5000
}
fn default_min_max_age() -> u64 {
    60
}
fn default_max_max_age() -> u64 {
    86_400
}
fn default_default_max_age() -> u64 {
    300
}
fn default_max_lifetime() -> u64 {
    3600
}
fn default_unknown_kid_interval() -> u64 {
    60
}
fn default_retry_interval() -> u64 {
    5
}
fn default_scheme() -> Option<String> {
    Some("Bearer".to_owned())
}
fn default_verified_tokens() -> usize {
    1024
}
fn default_azure_margin() -> u64 {
    300
}
fn default_azure_slots() -> u32 {
    1024
}
fn default_documents_max_age() -> u64 {
    300
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, reason: reason.into() }
}

/// Parses and checks the plugin configuration (JSON bytes), with every signature checked in the
/// filter and no environment (`{"env": ...}` secrets are unset).
///
/// # Errors
/// The first problem found, as a [`ConfigError`] naming the field.
pub fn parse(bytes: &[u8]) -> Result<FilterConfig, ConfigError> {
    parse_with_backend(bytes, &|_| None, || None)
}

/// Like [`parse`]; `env` reads the VM's environment variables (Envoy's
/// `vm_config.environment_variables`) for the broker's `{"env": NAME}` secrets, and when
/// `envoy_verify_signature` is on, `backend` is asked once for the signature backend that calls
/// Envoy's `verify_signature`.
///
/// # Errors
/// The first problem found, as a [`ConfigError`] naming the field.
pub fn parse_with_backend(
    bytes: &[u8],
    env: &dyn Fn(&str) -> Option<String>,
    backend: impl FnOnce() -> Option<Arc<dyn SignatureBackend>>,
) -> Result<FilterConfig, ConfigError> {
    let raw: RawConfig =
        serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;

    let mut builder = VerifierConfig::builder(raw.issuer.clone());
    for audience in &raw.audiences {
        builder = builder.audience(audience.clone());
    }
    if let Some(leeway) = raw.leeway_seconds {
        builder = builder.leeway(leeway);
    }
    // The core's verifier keeps the verified-token cache, bounded by `cache.verified_tokens`.
    builder = builder.limits(gitlab_azure_oidc::Limits {
        verified_cache_entries: raw.cache.verified_tokens,
        ..gitlab_azure_oidc::Limits::default()
    });
    let verifier = builder.build().map_err(ConfigError::Verifier)?;

    let jwks = jwks_source(raw.jwks, &raw.issuer, verifier.limits())?;

    let policy_bytes = match &raw.policy {
        Value::String(text) => text.clone().into_bytes(),
        Value::Object(_) => raw.policy.to_string().into_bytes(),
        _ => return Err(invalid("policy", "expected the policy document (an object or a string)")),
    };
    let policy = Policy::parse(&policy_bytes).map_err(ConfigError::Policy)?;
    let policy_fingerprint =
        gitlab_azure_oidc::token_fingerprint(&String::from_utf8_lossy(&policy_bytes))[..16]
            .to_owned();
    if raw.entra.cluster.is_empty() {
        return Err(invalid("entra.cluster", "name the Envoy cluster that reaches Entra"));
    }
    if raw.entra.timeout_ms == 0 {
        return Err(invalid("entra.timeout_ms", "must be positive"));
    }

    let token_header = header_spec("token_header", raw.token_header)?;
    let azure_header = header_spec("azure_token_header", raw.azure_token_header)?;
    let mut claim_headers = Vec::new();
    for (header, claim) in raw.claim_headers {
        let header = header.to_ascii_lowercase();
        if !crate::request::is_header_name(&header) || header.starts_with(':') {
            return Err(invalid("claim_headers", format!("`{header}` is not a header name")));
        }
        if header == token_header.name || header == azure_header.name {
            return Err(invalid(
                "claim_headers",
                format!("`{header}` is the token header; choose another name"),
            ));
        }
        if claim.is_empty() {
            return Err(invalid("claim_headers", format!("`{header}` names no claim")));
        }
        claim_headers.push((header, claim));
    }
    if raw.cache.azure_token_slots == 0 {
        return Err(invalid("cache.azure_token_slots", "must be at least 1"));
    }
    if raw.tick_ms < 10 || raw.tick_ms > 10_000 {
        return Err(invalid("tick_ms", "must be between 10 and 10000"));
    }
    if !(1..=3600).contains(&raw.audit.summary_seconds) {
        return Err(invalid("audit.summary_seconds", "must be between 1 and 3600"));
    }
    let broker = match &raw.broker {
        None => None,
        Some(Value::Object(_)) | Some(Value::String(_)) => {
            let document = match &raw.broker {
                Some(Value::String(text)) => text.clone().into_bytes(),
                Some(other) => other.to_string().into_bytes(),
                None => Vec::new(),
            };
            Some(
                BrokerConfig::parse(&document, env, ConfigMode::Broker)
                    .map_err(ConfigError::Broker)?,
            )
        }
        Some(_) => {
            return Err(invalid("broker", "expected the broker's configuration (an object)"))
        }
    };
    let uses_identity = policy
        .rules()
        .iter()
        .any(|r| matches!(r.credential(), Some(RuleCredential::ManagedIdentity { .. })));
    let identity = identity_cluster(raw.identity_endpoint, broker.as_ref(), uses_identity)?;
    let issuer_documents = issuer_documents(raw.issuer_documents, broker.as_ref())?;
    let vending = vending(raw.vending, issuer_documents.as_ref())?;
    // Last: the backend defines Envoy counters, for a configuration that is used.
    let mut gate = GateConfig::builder(verifier).policy(policy);
    if let Some(broker) = &broker {
        gate = gate.broker(broker);
    }
    if let Some(host) = &raw.entra.authority_host {
        gate = gate.authority_host(host.clone());
    }
    let authority_field = match &raw.entra.insecure_authority_url {
        Some(url) => {
            gate = gate.dangerous().authority_url(url.clone());
            "entra.insecure_authority_url"
        }
        None => "entra.authority_host",
    };
    if raw.envoy_verify_signature {
        if let Some(backend) = backend() {
            gate = gate.dangerous().signature_backend(backend);
        }
    }
    let gate = gate.build().map_err(|e| match e {
        GateConfigError::AuthorityUrl(e) => invalid(authority_field, e.to_string()),
        e @ GateConfigError::BrokerAudience { .. } => invalid("audiences", e.to_string()),
        e @ (GateConfigError::BrokerCredentialMissing { .. }
        | GateConfigError::UnknownCertificate { .. }) => invalid("broker", e.to_string()),
        other => invalid("policy", other.to_string()),
    })?;
    let advisory_rules = gate
        .policy()
        .map(|p| {
            p.rules()
                .iter()
                .filter(|r| r.target().is_some())
                .filter(|r| matches!(gate.credential_of(Some(r.name())), Credential::Federated))
                .map(|r| r.name().to_owned())
                .collect()
        })
        .unwrap_or_default();
    Ok(FilterConfig {
        gate,
        jwks,
        entra_cluster: raw.entra.cluster,
        entra_timeout_ms: raw.entra.timeout_ms,
        token_header,
        azure_header,
        claim_headers,
        azure_margin: raw.cache.azure_token_margin_seconds,
        azure_slots: raw.cache.azure_token_slots,
        max_waiters: raw.max_waiting_requests,
        tick_ms: raw.tick_ms,
        envoy_verify_signature: raw.envoy_verify_signature,
        audit_every_request: raw.audit.every_request,
        audit_summary_seconds: raw.audit.summary_seconds,
        policy_fingerprint,
        vending,
        issuer_documents,
        identity,
        advisory_rules,
    })
}

/// A path the filter answers itself: absolute, without a query or fragment.
fn route_path(field: &'static str, path: &str) -> Result<String, ConfigError> {
    if !path.starts_with('/') || path.contains(['?', '#']) || path.chars().any(char::is_whitespace)
    {
        return Err(invalid(field, format!("`{path}` is not a path (`/token`, no query)")));
    }
    Ok(path.to_owned())
}

fn vending(
    raw: Option<RawVending>,
    documents: Option<&IssuerDocuments>,
) -> Result<Option<Vending>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let path = route_path("vending.path", &raw.path)?;
    if documents.is_some_and(|d| d.discovery_path == path || d.jwks_path == path) {
        return Err(invalid("vending.path", "is an issuer document's path; choose another"));
    }
    let explain = match raw.explain.as_deref() {
        None | Some("rules") => Explain::Rules,
        Some("summary") => Explain::Summary,
        Some(other) => {
            return Err(invalid("vending.explain", format!("`{other}`: `rules` or `summary`")))
        }
    };
    Ok(Some(Vending { path, assertions: raw.assertions, explain }))
}

fn issuer_documents(
    raw: Option<RawDocuments>,
    broker: Option<&BrokerConfig>,
) -> Result<Option<IssuerDocuments>, ConfigError> {
    let issuer = broker.and_then(|b| b.issuer.as_ref());
    let raw = match (raw, issuer) {
        (Some(_), None) => {
            return Err(invalid(
                "issuer_documents",
                "the broker has no issuer (`broker.issuer`): there are no documents to serve",
            ))
        }
        (None, None) => return Ok(None),
        (raw, Some(_)) => raw.unwrap_or(RawDocuments {
            serve: true,
            discovery_path: None,
            jwks_path: None,
            max_age_seconds: default_documents_max_age(),
        }),
    };
    let Some(issuer) = issuer.filter(|_| raw.serve) else { return Ok(None) };
    let discovery_path = match raw.discovery_path {
        Some(path) => route_path("issuer_documents.discovery_path", &path)?,
        None => issuer.discovery_path(),
    };
    let jwks_path = match raw.jwks_path {
        Some(path) => route_path("issuer_documents.jwks_path", &path)?,
        None => issuer.jwks_path(),
    };
    if discovery_path == jwks_path {
        return Err(invalid("issuer_documents.jwks_path", "is the discovery document's path"));
    }
    if raw.max_age_seconds > 86_400 {
        return Err(invalid("issuer_documents.max_age_seconds", "must be at most 86400"));
    }
    Ok(Some(IssuerDocuments {
        discovery_path,
        discovery: issuer.discovery_document(),
        jwks_path,
        jwks: issuer.jwks_document(),
        max_age: raw.max_age_seconds,
    }))
}

fn identity_cluster(
    raw: Option<RawIdentity>,
    broker: Option<&BrokerConfig>,
    used: bool,
) -> Result<Option<IdentityCluster>, ConfigError> {
    let endpoint: Option<&IdentityEndpoint> = broker.and_then(|b| b.identity.as_deref());
    match (raw, endpoint) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(invalid(
            "identity_endpoint",
            "the broker has no managed identity endpoint (`broker.managed_identity`)",
        )),
        (None, Some(_)) if !used => Ok(None),
        (None, Some(endpoint)) => Err(invalid(
            "identity_endpoint",
            format!(
                "name the Envoy cluster that reaches the {} endpoint ({}): \
                 {{\"cluster\": \"azure-identity\"}}",
                endpoint.name(),
                endpoint.url()
            ),
        )),
        (Some(raw), Some(endpoint)) => {
            if raw.cluster.is_empty() {
                return Err(invalid("identity_endpoint.cluster", "name the Envoy cluster"));
            }
            if raw.timeout_ms == 0 {
                return Err(invalid("identity_endpoint.timeout_ms", "must be positive"));
            }
            if raw.authority.is_none() && split_url(endpoint.url()).is_none() {
                return Err(invalid("identity_endpoint.authority", "the endpoint is not a URL"));
            }
            Ok(Some(IdentityCluster {
                cluster: raw.cluster,
                authority: raw.authority,
                timeout_ms: raw.timeout_ms,
            }))
        }
    }
}

fn jwks_source(
    raw: RawJwks,
    issuer: &str,
    limits: &gitlab_azure_oidc::Limits,
) -> Result<JwksSource, ConfigError> {
    match (raw.inline, raw.cluster) {
        (Some(_), Some(_)) => Err(invalid("jwks", "set either `inline` or `cluster`, not both")),
        (None, None) => Err(invalid(
            "jwks",
            "set `cluster` (an Envoy cluster serving the issuer's JWKS) or `inline` (a JWKS)",
        )),
        (Some(inline), None) => {
            let bytes = match inline {
                Value::String(text) => text.into_bytes(),
                other => other.to_string().into_bytes(),
            };
            Jwks::parse_with_limits(&bytes, limits).map_err(ConfigError::Jwks)?;
            Ok(JwksSource::Inline(String::from_utf8_lossy(&bytes).into_owned()))
        }
        (None, Some(cluster)) => {
            if cluster.is_empty() {
                return Err(invalid("jwks.cluster", "name the Envoy cluster of the issuer"));
            }
            let authority = match raw.authority {
                Some(a) => a,
                None => split_url(issuer).map(|(a, _)| a).ok_or_else(|| {
                    invalid("jwks.authority", "the issuer is not a URL; set the authority")
                })?,
            };
            let path = raw.path.unwrap_or_else(|| "/oauth/discovery/keys".to_owned());
            if !path.starts_with('/') {
                return Err(invalid("jwks.path", "must start with `/`"));
            }
            if raw.min_max_age > raw.max_max_age {
                return Err(invalid("jwks.min_max_age", "must not exceed `max_max_age`"));
            }
            if raw.timeout_ms == 0 {
                return Err(invalid("jwks.timeout_ms", "must be positive"));
            }
            if !(60..=86_400).contains(&raw.max_lifetime) {
                return Err(invalid("jwks.max_lifetime", "must be between 60 and 86400 seconds"));
            }
            Ok(JwksSource::Remote(RemoteJwks {
                cluster,
                authority,
                path,
                timeout_ms: raw.timeout_ms,
                min_max_age: raw.min_max_age,
                max_max_age: raw.max_max_age,
                default_max_age: raw.default_max_age,
                max_lifetime: raw.max_lifetime,
                unknown_kid_interval: raw.unknown_kid_interval,
                retry_interval: raw.retry_interval,
            }))
        }
    }
}

fn header_spec(field: &'static str, raw: Option<RawHeader>) -> Result<HeaderSpec, ConfigError> {
    let Some(raw) = raw else { return Ok(HeaderSpec::default()) };
    let name = raw.name.to_ascii_lowercase();
    if !crate::request::is_header_name(&name) || name.starts_with(':') {
        return Err(invalid(field, format!("`{name}` is not a header name")));
    }
    if let Some(scheme) = &raw.scheme {
        if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid(field, format!("scheme `{scheme}` is not a token")));
        }
    }
    Ok(HeaderSpec { name, scheme: raw.scheme })
}

#[cfg(test)]
mod tests;
