//! What a gate is built from: how tokens are verified, who decides the Azure identity, and what
//! proves the app's identity to Entra. Checked once, when built.

use std::fmt;
use std::sync::Arc;

use crate::broker::{
    self, BrokerConfig, BrokerConfigError, BrokerIssuer, IdentityEndpoint, IssuerCredential,
    ManagedIdentityCredential,
};
use crate::entra::{AzureTarget, CertificateCredential, TargetError};
use crate::policy::{Policy, PolicyError, RuleCredential};
use crate::verify::offload::SignatureBackend;
use crate::{ConfigError, VerifierConfig};

/// What proves the application's identity to Entra in the token request.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Credential {
    /// Workload identity federation: the job's GitLab token is the client assertion, verbatim.
    /// Entra matches its `iss`, `sub` and `aud` against the app's federated credentials; any
    /// other condition of the policy is advisory, because the job holds a token Entra accepts.
    Federated,
    /// A certificate registered on the app: the gate signs its own client assertion with it.
    Certificate(Arc<CertificateCredential>),
    /// The broker is its own OIDC issuer: it signs an assertion for the rule's subject, and the
    /// app's federated credential trusts the broker's issuer URL and that subject.
    Issuer(IssuerCredential),
    /// The broker's user-assigned managed identity: its token for `api://AzureADTokenExchange`
    /// is the client assertion, and the app's federated credential trusts the identity.
    ManagedIdentity(ManagedIdentityCredential),
}

impl Credential {
    /// The credential's name, as in configurations: `federated`, `certificate`, `issuer` or
    /// `managed-identity`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Federated => "federated",
            Self::Certificate(_) => "certificate",
            Self::Issuer(_) => "issuer",
            Self::ManagedIdentity(_) => "managed-identity",
        }
    }
}

/// The credential one allow rule (or the fixed target) uses, resolved when the gate is built.
#[derive(Clone, Debug)]
pub(crate) struct Binding {
    /// The allow rule; `None` for the fixed target.
    pub(crate) rule: Option<String>,
    pub(crate) credential: Credential,
    /// True when only the broker holds the credential (the broker audience rule applies).
    pub(crate) broker: bool,
    /// The token-exchange audience of the target's cloud (`issuer` assertions and
    /// `managed-identity` tokens are for it).
    pub(crate) audience: &'static str,
}

/// Who decides the Azure identity of an admitted job.
#[derive(Clone, Debug)]
pub(crate) enum Authorization {
    /// The policy's first matching allow rule (deny by default).
    Policy(Arc<Policy>),
    /// One fixed identity for every job whose token verifies (or, without verification, for
    /// every token: Entra then does all the judging).
    Target(AzureTarget),
}

/// A checked gate configuration. Build it with [`GateConfig::builder`] or
/// [`GateConfig::unverified`].
#[derive(Clone, Debug)]
pub struct GateConfig {
    pub(crate) verifier: Option<VerifierConfig>,
    pub(crate) authorization: Authorization,
    pub(crate) credential: Credential,
    pub(crate) decision_cache: usize,
    pub(crate) signature_backend: Option<Arc<dyn SignatureBackend>>,
    /// The targets as the policy (or the caller) names them, and as requests are sent: equal
    /// unless the authority URL is overridden.
    pub(crate) effective: Vec<(AzureTarget, AzureTarget)>,
    /// The credential of each allow rule (by name), or of the fixed target (no name).
    pub(crate) bindings: Vec<Binding>,
}

impl GateConfig {
    /// Starts a configuration that verifies every token with `verifier` before anything else.
    pub fn builder(verifier: VerifierConfig) -> GateConfigBuilder {
        GateConfigBuilder::new(Some(verifier))
    }

    /// Starts a configuration that does not verify tokens, for the one case where that is sound:
    /// a federated exchange for one fixed `target`, where Entra verifies the token itself. No
    /// policy can be used (it would judge claims nobody checked).
    pub fn unverified(target: AzureTarget) -> GateConfigBuilder {
        GateConfigBuilder::new(None).target(target)
    }

    /// The verifier configuration, when tokens are verified.
    pub fn verifier(&self) -> Option<&VerifierConfig> {
        self.verifier.as_ref()
    }

    /// The policy, when one decides.
    pub fn policy(&self) -> Option<&Policy> {
        match &self.authorization {
            Authorization::Policy(policy) => Some(policy),
            Authorization::Target(_) => None,
        }
    }

    /// The default credential: the fixed target's, and that of every allow rule whose policy
    /// names none.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// The credential an allow rule uses (`None`: the fixed target's), after the policy's
    /// `azure.credential` and the broker's configuration were applied.
    pub fn credential_of(&self, rule: Option<&str>) -> &Credential {
        self.binding(rule).map_or(&self.credential, |b| &b.credential)
    }

    /// True when the policy binds: every allow rule (or the fixed target) uses a credential only
    /// the broker holds, so no job can get a token for it without the gate's decision.
    pub fn binds(&self) -> bool {
        !self.bindings.is_empty() && self.bindings.iter().all(|b| b.broker)
    }

    pub(crate) fn binding(&self, rule: Option<&str>) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.rule.as_deref() == rule)
    }

    /// The target requests are sent for, for a target as the policy names it.
    pub(crate) fn effective(&self, named: &AzureTarget) -> AzureTarget {
        self.effective
            .iter()
            .find(|(n, _)| n == named)
            .map_or_else(|| named.clone(), |(_, e)| e.clone())
    }
}

/// Builds a [`GateConfig`] with safe defaults.
#[derive(Clone, Debug)]
#[must_use]
pub struct GateConfigBuilder {
    verifier: Option<VerifierConfig>,
    policy: Option<Policy>,
    target: Option<AzureTarget>,
    credential: Credential,
    decision_cache: Option<usize>,
    signature_backend: Option<Arc<dyn SignatureBackend>>,
    authority_url: Option<String>,
    authority_host: Option<String>,
    issuer: Option<Arc<BrokerIssuer>>,
    identity_endpoint: Option<Arc<IdentityEndpoint>>,
    certificates: Vec<(String, Arc<CertificateCredential>)>,
}

impl GateConfigBuilder {
    fn new(verifier: Option<VerifierConfig>) -> Self {
        Self {
            verifier,
            policy: None,
            target: None,
            credential: Credential::Federated,
            decision_cache: None,
            signature_backend: None,
            authority_url: None,
            authority_host: None,
            issuer: None,
            identity_endpoint: None,
            certificates: Vec::new(),
        }
    }

    /// The broker's own issuer, for rules whose credential is `issuer`.
    pub fn issuer(mut self, issuer: Arc<BrokerIssuer>) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// The managed identity endpoint, for rules whose credential is `managed-identity`.
    pub fn identity_endpoint(mut self, endpoint: Arc<IdentityEndpoint>) -> Self {
        self.identity_endpoint = Some(endpoint);
        self
    }

    /// A certificate the policy names (`{"type": "certificate", "name": ...}`).
    pub fn named_certificate(
        mut self,
        name: impl Into<String>,
        certificate: Arc<CertificateCredential>,
    ) -> Self {
        self.certificates.push((name.into(), certificate));
        self
    }

    /// Everything a broker configuration holds: its issuer, its managed identity endpoint and
    /// its certificates.
    pub fn broker(mut self, broker: &BrokerConfig) -> Self {
        if let Some(issuer) = &broker.issuer {
            self.issuer = Some(Arc::clone(issuer));
        }
        if let Some(endpoint) = &broker.identity {
            self.identity_endpoint = Some(Arc::clone(endpoint));
        }
        for (name, certificate) in &broker.certificates {
            self.certificates.push((name.clone(), Arc::clone(certificate)));
        }
        self
    }

    /// Decides with `policy`: its first matching allow rule names the Azure identity.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Grants one fixed Azure identity to every job whose token verifies (no policy).
    pub fn target(mut self, target: AzureTarget) -> Self {
        self.target = Some(target);
        self
    }

    /// What proves the app's identity to Entra. Defaults to [`Credential::Federated`].
    pub fn credential(mut self, credential: Credential) -> Self {
        self.credential = credential;
        self
    }

    /// How many decisions are kept, by token, so repeated requests of one job are not decided
    /// again. Defaults to the verifier's verified-token cache size; 0 keeps none.
    pub fn decision_cache(mut self, entries: usize) -> Self {
        self.decision_cache = Some(entries);
        self
    }

    /// Sends every token request to the authority of one Microsoft cloud, whatever the targets
    /// say: one of [`crate::entra::KNOWN_AUTHORITY_HOSTS`] (a `https://` prefix and a trailing
    /// slash are accepted, as in `AZURE_AUTHORITY_HOST`). For a proxy that serves one cloud.
    /// Defaults to each target's own host; [`DangerousGateConfig::authority_url`] takes
    /// precedence.
    pub fn authority_host(mut self, host: impl Into<String>) -> Self {
        self.authority_host = Some(host.into());
        self
    }

    /// The switches that weaken a check or send credentials somewhere unusual.
    pub fn dangerous(self) -> DangerousGateConfig {
        DangerousGateConfig(self)
    }

    /// Checks and returns the configuration.
    ///
    /// # Errors
    /// A [`GateConfigError`] that says what to change.
    pub fn build(self) -> Result<GateConfig, GateConfigError> {
        let authorization = match (self.policy, self.target) {
            (Some(_), Some(_)) => return Err(GateConfigError::PolicyAndTarget),
            (None, None) => return Err(GateConfigError::NoTarget),
            (Some(_), None) if self.verifier.is_none() => {
                return Err(GateConfigError::PolicyWithoutVerification)
            }
            (Some(policy), None) => Authorization::Policy(Arc::new(policy)),
            (None, Some(target)) => Authorization::Target(target),
        };
        // Without verification only a federated exchange is sound: Entra verifies the job's
        // token. A gate that signs its own assertion would vouch for any string it is handed.
        if self.verifier.is_none() && !matches!(self.credential, Credential::Federated) {
            return Err(GateConfigError::UnverifiedCredential {
                credential: self.credential.name(),
            });
        }
        let named: Vec<AzureTarget> = match &authorization {
            Authorization::Policy(policy) => {
                let mut targets: Vec<AzureTarget> = Vec::new();
                for target in policy.rules().iter().filter_map(|r| r.target()) {
                    if !targets.contains(target) {
                        targets.push(target.clone());
                    }
                }
                targets
            }
            Authorization::Target(target) => vec![target.clone()],
        };
        let effective = named
            .into_iter()
            .map(|target| {
                let effective = match (&self.authority_url, &self.authority_host) {
                    (Some(url), _) => target.with_authority_url(url)?,
                    (None, Some(host)) => target.with_authority_host(host)?,
                    (None, None) => target.clone(),
                };
                Ok((target, effective))
            })
            .collect::<Result<Vec<_>, TargetError>>()
            .map_err(GateConfigError::AuthorityUrl)?;
        let material = Material {
            credential: &self.credential,
            issuer: self.issuer.as_ref(),
            identity_endpoint: self.identity_endpoint.as_ref(),
            certificates: &self.certificates,
        };
        let bindings = material.bindings(&authorization, &effective)?;
        if bindings.iter().any(|b| b.broker) {
            if let Some(verifier) = &self.verifier {
                check_broker_audience(verifier, &bindings)?;
            }
        }
        let decision_cache = self.decision_cache.unwrap_or_else(|| {
            self.verifier.as_ref().map_or(0, |v| v.limits().verified_cache_entries)
        });
        Ok(GateConfig {
            verifier: self.verifier,
            authorization,
            credential: self.credential,
            decision_cache,
            signature_backend: self.signature_backend,
            effective,
            bindings,
        })
    }
}

/// What the builder holds for resolving credentials.
struct Material<'a> {
    credential: &'a Credential,
    issuer: Option<&'a Arc<BrokerIssuer>>,
    identity_endpoint: Option<&'a Arc<IdentityEndpoint>>,
    certificates: &'a [(String, Arc<CertificateCredential>)],
}

impl Material<'_> {
    /// Resolves each allow rule's credential (or the fixed target's) against what the broker
    /// holds.
    fn bindings(
        &self,
        authorization: &Authorization,
        effective: &[(AzureTarget, AzureTarget)],
    ) -> Result<Vec<Binding>, GateConfigError> {
        let audience = |named: &AzureTarget| {
            let sent = effective.iter().find(|(n, _)| n == named).map(|(_, e)| e);
            broker::token_exchange_audience(
                sent.and_then(AzureTarget::authority_host).or(named.authority_host()),
            )
        };
        let default = |rule: Option<String>, named: &AzureTarget| Binding {
            rule,
            broker: matches!(
                self.credential,
                Credential::Issuer(_) | Credential::ManagedIdentity(_)
            ),
            credential: self.credential.clone(),
            audience: audience(named),
        };
        let rules = match authorization {
            Authorization::Target(target) => return Ok(vec![default(None, target)]),
            Authorization::Policy(policy) => policy.rules(),
        };
        let mut bindings = Vec::new();
        for rule in rules {
            let Some(named) = rule.target() else { continue };
            let name = rule.name().to_owned();
            let credential = match rule.credential() {
                None => {
                    bindings.push(default(Some(name), named));
                    continue;
                }
                Some(RuleCredential::Federated) => Credential::Federated,
                Some(RuleCredential::Issuer { subject }) => {
                    let issuer = self.issuer.cloned().ok_or_else(|| {
                        GateConfigError::BrokerCredentialMissing {
                            rule: name.clone(),
                            credential: "issuer",
                        }
                    })?;
                    Credential::Issuer(IssuerCredential { issuer, subject: subject.clone() })
                }
                Some(RuleCredential::ManagedIdentity { client_id, principal_id }) => {
                    let endpoint = self.identity_endpoint.cloned().ok_or_else(|| {
                        GateConfigError::BrokerCredentialMissing {
                            rule: name.clone(),
                            credential: "managed-identity",
                        }
                    })?;
                    Credential::ManagedIdentity(ManagedIdentityCredential {
                        endpoint,
                        client_id: client_id.clone(),
                        principal_id: principal_id.clone(),
                    })
                }
                Some(RuleCredential::Certificate { name: certificate }) => {
                    let found = self.certificates.iter().find(|(n, _)| n == certificate);
                    let Some((_, found)) = found else {
                        return Err(GateConfigError::UnknownCertificate {
                            rule: name,
                            name: certificate.clone(),
                            known: self.certificates.iter().map(|(n, _)| n.clone()).collect(),
                        });
                    };
                    Credential::Certificate(Arc::clone(found))
                }
            };
            let broker = rule.credential().is_some_and(RuleCredential::is_broker);
            bindings.push(Binding {
                rule: Some(name),
                credential,
                broker,
                audience: audience(named),
            });
        }
        Ok(bindings)
    }
}

/// The broker audience rule: a gate whose credential only the broker holds must not accept the
/// job tokens Entra accepts, or a job could skip the broker with the very token it was given.
fn check_broker_audience(
    verifier: &VerifierConfig,
    bindings: &[Binding],
) -> Result<(), GateConfigError> {
    let rule = bindings.iter().find(|b| b.broker).and_then(|b| b.rule.clone());
    if verifier.skips_audience_check() {
        return Err(GateConfigError::BrokerAudience { audience: None, rule });
    }
    match verifier.audiences().iter().find(|a| broker::is_token_exchange_audience(a)) {
        Some(audience) => {
            Err(GateConfigError::BrokerAudience { audience: Some(audience.clone()), rule })
        }
        None => Ok(()),
    }
}

/// The risky switches of a gate, each documented with what it gives up. Every method returns the
/// builder.
#[derive(Clone, Debug)]
#[must_use]
pub struct DangerousGateConfig(GateConfigBuilder);

impl DangerousGateConfig {
    /// Accepts tokens without `aud` (legacy `CI_JOB_JWT`), and any audience when none is
    /// configured.
    ///
    /// # Security Warning
    /// A token GitLab minted for any other relying party (another cloud, Vault, a third-party
    /// service) is accepted here.
    pub fn skip_audience_check(mut self) -> GateConfigBuilder {
        if let Some(verifier) = &mut self.0.verifier {
            verifier.set_insecure_skip_audience();
        }
        self.0
    }

    /// Hands the signature arithmetic to the host's native crypto. Every refusal stays the
    /// core's: the backend is asked only about a signature the core would check itself.
    ///
    /// # Security Warning
    /// A backend that answers "valid" wrongly lets forged tokens through: it is as trusted as
    /// the JWKS and the clock the host provides.
    pub fn signature_backend(mut self, backend: Arc<dyn SignatureBackend>) -> GateConfigBuilder {
        self.0.signature_backend = Some(backend);
        self.0
    }

    /// Sends every token request to `url` instead of the target's Entra authority: a private
    /// cloud, a proxy, or a loopback stand-in in tests (`https://`, or `http://` on loopback).
    ///
    /// # Security Warning
    /// The token endpoint receives the client assertion (for a federated credential, the job's
    /// GitLab token, an Azure credential until it expires) and answers with the access token.
    pub fn authority_url(mut self, url: impl Into<String>) -> GateConfigBuilder {
        self.0.authority_url = Some(url.into());
        self.0
    }
}

/// Why a gate configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GateConfigError {
    /// The authority URL or authority host override is not usable.
    AuthorityUrl(TargetError),
    /// A broker credential with a verifier that accepts a token-exchange audience
    /// (`api://AzureADTokenExchange` and its sovereign forms) or any audience: a job's token
    /// would then be worth an Azure token at Entra without the broker.
    BrokerAudience {
        /// The audience accepted; `None` when the audience check is off.
        audience: Option<String>,
        /// An allow rule with a broker credential (`None`: the fixed target).
        rule: Option<String>,
    },
    /// The broker configuration document was refused.
    Broker(BrokerConfigError),
    /// A rule's credential needs something the broker's configuration does not hold (its
    /// issuer, its managed identity endpoint).
    BrokerCredentialMissing {
        /// The rule.
        rule: String,
        /// `issuer` or `managed-identity`.
        credential: &'static str,
    },
    /// The certificate credential is not usable.
    Certificate(crate::entra::CredentialError),
    /// A target given on its own (not through the policy) is one Entra would refuse.
    Target(TargetError),
    /// Neither a policy nor a target: the gate would not know which identity to request.
    NoTarget,
    /// A policy without token verification would decide on claims nobody checked.
    PolicyWithoutVerification,
    /// Both a policy and a fixed target: only one may name the identity.
    PolicyAndTarget,
    /// A credential other than federated on a gate that does not verify tokens: it would vouch
    /// for any string.
    UnverifiedCredential {
        /// The credential's name.
        credential: &'static str,
    },
    /// The policy document was refused.
    Policy(PolicyError),
    /// A rule names a certificate the broker's configuration does not hold.
    UnknownCertificate {
        /// The rule.
        rule: String,
        /// The name it gives.
        name: String,
        /// The names configured.
        known: Vec<String>,
    },
    /// The verifier settings were refused.
    Verifier(ConfigError),
}

impl GateConfigError {
    /// A stable, kebab-case name for this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AuthorityUrl(e) | Self::Target(e) => e.kind(),
            Self::BrokerAudience { .. } => "broker-audience",
            Self::Broker(e) => e.kind(),
            Self::BrokerCredentialMissing { .. } => "broker-credential-missing",
            Self::UnknownCertificate { .. } => "unknown-certificate",
            Self::Certificate(e) => e.kind(),
            Self::NoTarget => "no-target",
            Self::PolicyWithoutVerification => "policy-without-verification",
            Self::PolicyAndTarget => "policy-and-target",
            Self::UnverifiedCredential { .. } => "unverified-credential",
            Self::Policy(e) => e.kind(),
            Self::Verifier(e) => e.kind(),
        }
    }

    /// Where in the policy document the error is, for a policy error inside a rule or field.
    pub fn location(&self) -> Option<&crate::policy::Location> {
        match self {
            Self::Policy(e) => e.location(),
            _ => None,
        }
    }
}

impl fmt::Display for GateConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AuthorityUrl(e) | Self::Target(e) => write!(f, "{e}"),
            Self::BrokerAudience { audience, rule } => {
                let whose = match rule {
                    Some(rule) => format!("rule {rule} uses a broker credential"),
                    None => "the gate uses a broker credential".to_owned(),
                };
                match audience {
                    Some(audience) => write!(
                        f,
                        "{whose}, but the verifier accepts GitLab tokens with the audience \
                         `{audience}`, which Entra accepts too: a job could skip the broker and \
                         redeem its token at Entra; accept only the broker's own audience (its \
                         URL, as in the job's `id_tokens:` `aud`)"
                    ),
                    None => write!(
                        f,
                        "{whose}, but the verifier's audience check is off, so it accepts tokens \
                         minted for Entra (`api://AzureADTokenExchange`); turn the check on with \
                         the broker's own audience"
                    ),
                }
            }
            Self::Broker(e) => write!(f, "{e}"),
            Self::BrokerCredentialMissing { rule, credential } => {
                let what = match *credential {
                    "issuer" => "an issuer (its URL and signing key)",
                    _ => "a managed identity endpoint (`imds` or `app-service`)",
                };
                write!(
                    f,
                    "rule {rule} uses the {credential} credential, but the broker's configuration \
                     has no {what}; add it, or change the rule's credential"
                )
            }
            Self::UnknownCertificate { rule, name, known } => write!(
                f,
                "rule {rule} names the certificate `{name}`, which the broker's configuration \
                 does not hold (it holds {}); add it under `certificates`",
                crate::text::list(known)
            ),
            Self::Certificate(e) => write!(f, "certificate credential: {e}"),
            Self::NoTarget => f.write_str(
                "no Azure identity to request: give a policy, or a tenant and a client id",
            ),
            Self::PolicyWithoutVerification => f.write_str(
                "a policy needs verified claims: turn token verification on (give the issuer and \
                 the audience)",
            ),
            Self::PolicyAndTarget => f.write_str(
                "both a policy and a fixed target name the Azure identity; drop one (with a \
                 policy, its allow rule names the identity)",
            ),
            Self::UnverifiedCredential { credential } => write!(
                f,
                "a {credential} credential needs token verification: without it the gate would \
                 sign an assertion for any string; give the issuer and the audience"
            ),
            Self::Policy(e) => write!(f, "{e}"),
            Self::Verifier(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for GateConfigError {}

impl From<PolicyError> for GateConfigError {
    fn from(e: PolicyError) -> Self {
        Self::Policy(e)
    }
}

impl From<BrokerConfigError> for GateConfigError {
    fn from(e: BrokerConfigError) -> Self {
        Self::Broker(e)
    }
}

impl From<ConfigError> for GateConfigError {
    fn from(e: ConfigError) -> Self {
        Self::Verifier(e)
    }
}
