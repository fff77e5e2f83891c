//! What Entra needs for the rules whose credential only the broker holds, and what is left
//! advisory or open elsewhere.
//!
//! - `issuer`: one classic federated credential per allow rule on its app (issuer = the
//!   broker's URL, subject = the rule's, audience = the cloud's token-exchange audience), at
//!   most 20 per app; and the issuer's discovery document and JWKS for static hosting.
//! - `managed-identity`: the one credential trusting the identity (issuer
//!   `https://login.microsoftonline.com/{tenant}/v2.0`, subject = its principal id).
//! - `certificate`: `az ad app credential reset --id APP --cert @cert.pem --append` and the
//!   thumbprint Entra will show.
//! - `federated` rules: a warning that they are advisory and what makes them binding.
//! - the app's current credentials (`az ad app federated-credential list`): a warning for each
//!   one on a broker app that trusts another issuer (GitLab's, typically), a way around the
//!   broker.

use std::fmt;

use serde_json::{json, Value};

use super::super::{Policy, RuleCredential};
use crate::broker::{entra_issuer, token_exchange_audience, BrokerIssuer};
use crate::entra::federated::{FederatedCredential, MAX_CREDENTIALS_PER_APP};
use crate::entra::{AzureTarget, CertificateThumbprints};
use crate::policy::decision::Effect;
use crate::text::shell_quote;

/// What `plan` knows besides the policy.
#[derive(Clone, Copy, Debug, Default)]
pub struct BrokerPlanInput<'a> {
    /// The GitLab issuer (`CI_SERVER_URL`): credentials trusting it bypass a broker.
    pub gitlab_issuer: &'a str,
    /// The broker's issuer, for `issuer` rules (URL and public keys).
    pub issuer: Option<&'a BrokerIssuer>,
    /// Certificates by the name the policy uses, with the file they came from (for the
    /// upload command).
    pub certificates: &'a [(String, CertificateThumbprints, Option<String>)],
    /// Apps' current federated credentials: the client id (`None`: the one broker app of the
    /// policy) and the list.
    pub credentials: &'a [(Option<String>, Vec<FederatedCredential>)],
}

/// A certificate to upload to an app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateUpload {
    /// Its name in the policy and the broker configuration.
    pub name: String,
    /// Its thumbprints, when the certificate was given.
    pub thumbprints: Option<CertificateThumbprints>,
    /// The file to upload (`cert.pem` when not given).
    pub file: String,
}

/// What one app needs for its broker rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerApp {
    /// The tenant.
    pub tenant: String,
    /// The application (client) id.
    pub client_id: String,
    /// The broker rules that target it.
    pub rules: Vec<String>,
    /// The federated credentials to create (issuer and managed identity rules).
    pub credentials: Vec<FederatedCredential>,
    /// The certificates to upload (certificate rules).
    pub certificates: Vec<CertificateUpload>,
}

/// Something about the broker plan that the operator must know.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerPlanWarning {
    /// A federated rule: only `iss`, `sub` and `aud` bind.
    Advisory {
        /// The rule.
        rule: String,
    },
    /// An existing credential on a broker app trusts another issuer: a way around the broker.
    Bypass {
        /// The app.
        client_id: String,
        /// The credential's name.
        name: String,
        /// Its issuer.
        issuer: String,
        /// True when it is the GitLab issuer.
        gitlab: bool,
    },
    /// A certificate rule whose certificate was not given: its thumbprint is unknown.
    CertificateNotGiven {
        /// The certificate's name.
        name: String,
    },
    /// An app has both federated and broker rules: its GitLab credentials let jobs skip the
    /// broker for every rule of the app.
    Mixed {
        /// The app.
        client_id: String,
        /// Its federated rules.
        federated: Vec<String>,
    },
    /// A managed identity rule whose tenant is a domain name: Entra's issuer names the tenant
    /// by its GUID.
    TenantNotGuid {
        /// The rule.
        rule: String,
        /// The tenant as written.
        tenant: String,
    },
}

impl BrokerPlanWarning {
    /// The rule the warning is about, when it is about one rule.
    pub fn rule(&self) -> Option<&str> {
        match self {
            Self::Advisory { rule } | Self::TenantNotGuid { rule, .. } => Some(rule),
            Self::Bypass { .. } | Self::CertificateNotGiven { .. } | Self::Mixed { .. } => None,
        }
    }

    /// A stable, kebab-case kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Advisory { .. } => "advisory",
            Self::Bypass { .. } => "bypasses-broker",
            Self::CertificateNotGiven { .. } => "certificate-not-given",
            Self::Mixed { .. } => "mixed-credentials",
            Self::TenantNotGuid { .. } => "tenant-not-guid",
        }
    }
}

impl fmt::Display for BrokerPlanWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Advisory { rule } => write!(
                f,
                "rule {rule}: the federated credential is advisory: Entra checks only iss, sub \
                 and aud, and the job holds a token Entra accepts, so every other condition and \
                 every deny rule can be skipped; give the rule a broker credential (issuer, \
                 managed-identity or certificate) and remove the app's GitLab credentials to \
                 make it binding"
            ),
            Self::Bypass { client_id, name, issuer, gitlab } => {
                let whose = if *gitlab { "the GitLab issuer" } else { "another issuer" };
                write!(
                    f,
                    "app {client_id}: federated credential `{name}` trusts {whose} ({issuer}) \
                     directly, a way around the broker; delete it: az ad app \
                     federated-credential delete --id {client_id} --federated-credential-id \
                     {name}"
                )
            }
            Self::CertificateNotGiven { name } => write!(
                f,
                "certificate {name}: not given, so its thumbprint is unknown; pass --certificate \
                 {name}=FILE"
            ),
            Self::Mixed { client_id, federated } => write!(
                f,
                "app {client_id} also has federated rules ({}): their GitLab credentials let \
                 any job they match skip the broker for this app; give them a broker credential \
                 or another app",
                federated.join(", ")
            ),
            Self::TenantNotGuid { rule, tenant } => write!(
                f,
                "rule {rule}: the tenant {tenant} is a domain name, but the managed identity's \
                 tokens name the tenant's GUID in their issuer; write the tenant id in the policy"
            ),
        }
    }
}

/// Why the broker plan cannot be made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerPlanError {
    /// `issuer` rules but no broker issuer given.
    NoIssuer {
        /// The rules.
        rules: Vec<String>,
    },
    /// An app would need more federated credentials than Entra allows.
    TooManyCredentials {
        /// The app.
        client_id: String,
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// `--credentials` without an app id while several apps use broker credentials.
    WhichApp {
        /// The broker apps.
        apps: Vec<String>,
    },
}

impl BrokerPlanError {
    /// A stable, kebab-case kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoIssuer { .. } => "plan-no-issuer",
            Self::TooManyCredentials { .. } => "too-many-credentials",
            Self::WhichApp { .. } => "plan-which-app",
        }
    }
}

impl fmt::Display for BrokerPlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoIssuer { rules } => write!(
                f,
                "rules {} use the issuer credential, but no broker issuer was given; pass \
                 --broker-config FILE (or --broker-issuer URL with --broker-key FILE)",
                rules.join(", ")
            ),
            Self::TooManyCredentials { client_id, count, max } => write!(
                f,
                "app {client_id} needs {count} federated credentials for its issuer rules, more \
                 than Entra's {max}; give several rules one `subject` (the broker still decides \
                 per rule) or split them across apps"
            ),
            Self::WhichApp { apps } => write!(
                f,
                "several apps use broker credentials ({}); name the app of the credentials \
                 list: --credentials CLIENT_ID=FILE",
                apps.join(", ")
            ),
        }
    }
}

impl std::error::Error for BrokerPlanError {}

/// What Entra needs for the broker rules of a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerPlan {
    /// One entry per app with broker rules, in the order the rules first name them.
    pub apps: Vec<BrokerApp>,
    /// The broker's issuer, when given: its documents are printed for static hosting.
    pub issuer: Option<IssuerDocuments>,
    /// Everything the operator must know.
    pub warnings: Vec<BrokerPlanWarning>,
}

/// The documents Entra fetches from the broker's issuer, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerDocuments {
    /// The issuer URL.
    pub url: String,
    /// The path of the discovery document below the host.
    pub discovery_path: String,
    /// The discovery document (JSON).
    pub discovery: String,
    /// The path of the JWKS below the host.
    pub jwks_path: String,
    /// The JWKS (JSON; public keys only).
    pub jwks: String,
}

impl BrokerPlan {
    /// The plan as one JSON document: apps (federated credentials in Graph's shape,
    /// certificates with thumbprint and upload command), the issuer's documents, warnings.
    pub fn to_json(&self) -> Value {
        let apps: Vec<Value> = self
            .apps
            .iter()
            .map(|app| {
                let certificates: Vec<Value> = app
                    .certificates
                    .iter()
                    .map(|c| {
                        json!({
                            "name": c.name,
                            "thumbprint": c.thumbprints.as_ref().map(|t| t.sha1_hex.clone()),
                            "x5t#S256": c.thumbprints.as_ref().map(|t| t.x5t_s256.clone()),
                            "command": certificate_command(&app.client_id, &c.file),
                        })
                    })
                    .collect();
                json!({
                    "tenant": app.tenant,
                    "client_id": app.client_id,
                    "rules": app.rules,
                    "federatedIdentityCredentials":
                        app.credentials.iter().map(FederatedCredential::to_json).collect::<Vec<_>>(),
                    "certificates": certificates,
                })
            })
            .collect();
        let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
        let issuer = self.issuer.as_ref().map(|d| {
            json!({
                "url": d.url,
                "discovery_path": d.discovery_path,
                "openid-configuration": parse(&d.discovery),
                "jwks_path": d.jwks_path,
                "jwks": parse(&d.jwks),
            })
        });
        let warnings: Vec<Value> = self
            .warnings
            .iter()
            .map(|w| json!({"kind": w.kind(), "rule": w.rule(), "message": w.to_string()}))
            .collect();
        json!({"apps": apps, "issuer": issuer, "warnings": warnings})
    }

    /// Shell commands that create what the plan lists.
    pub fn commands(&self) -> Vec<String> {
        let mut out = Vec::new();
        for app in &self.apps {
            for credential in &app.credentials {
                out.push(format!(
                    "az ad app federated-credential create --id {} --parameters {}",
                    app.client_id,
                    shell_quote(&credential.to_json().to_string())
                ));
            }
            for certificate in &app.certificates {
                out.push(certificate_command(&app.client_id, &certificate.file));
            }
        }
        out
    }
}

fn certificate_command(client_id: &str, file: &str) -> String {
    format!("az ad app credential reset --id {client_id} --cert @{file} --append")
}

/// Plans what Entra needs for the rules of `policy` whose credential only the broker holds.
///
/// # Errors
/// [`BrokerPlanError::NoIssuer`] for `issuer` rules without the broker's issuer,
/// [`BrokerPlanError::TooManyCredentials`] beyond 20 per app, [`BrokerPlanError::WhichApp`]
/// for an anonymous credentials list with several broker apps.
pub fn plan_broker(
    policy: &Policy,
    input: &BrokerPlanInput<'_>,
) -> Result<BrokerPlan, BrokerPlanError> {
    let mut apps: Vec<BrokerApp> = Vec::new();
    let mut warnings = Vec::new();
    let mut federated: Vec<(&AzureTarget, String)> = Vec::new();
    let mut issuer_rules = Vec::new();
    for rule in policy.rules().iter().filter(|r| r.effect() == Effect::Allow) {
        let Some(target) = rule.target() else { continue };
        let name = rule.name().to_owned();
        let credential = match rule.credential() {
            None | Some(RuleCredential::Federated) => {
                warnings.push(BrokerPlanWarning::Advisory { rule: name.clone() });
                federated.push((target, name));
                continue;
            }
            Some(credential) => credential,
        };
        let index = match apps
            .iter()
            .position(|a| a.client_id == target.client_id() && a.tenant == target.tenant())
        {
            Some(index) => index,
            None => {
                apps.push(BrokerApp {
                    tenant: target.tenant().to_owned(),
                    client_id: target.client_id().to_owned(),
                    rules: Vec::new(),
                    credentials: Vec::new(),
                    certificates: Vec::new(),
                });
                apps.len() - 1
            }
        };
        let Some(app) = apps.get_mut(index) else { continue };
        app.rules.push(name.clone());
        let audience = token_exchange_audience(target.authority_host());
        let fic = |fic_name: String, issuer: &str, subject: &str, description: String| {
            let mut c =
                FederatedCredential::classic(fic_name, issuer, subject.to_owned(), audience);
            c.description = Some(description);
            c
        };
        let planned = match credential {
            RuleCredential::Issuer { subject } => {
                issuer_rules.push(name.clone());
                let Some(issuer) = input.issuer else { continue };
                Some(fic(
                    format!("broker-{name}"),
                    issuer.url(),
                    subject,
                    format!("gitlab-azure-oidc broker: rule {name}"),
                ))
            }
            RuleCredential::ManagedIdentity { principal_id, .. } => {
                if !crate::text::ident::is_guid(target.tenant()) {
                    warnings.push(BrokerPlanWarning::TenantNotGuid {
                        rule: name.clone(),
                        tenant: target.tenant().to_owned(),
                    });
                }
                let short = principal_id.get(..8).unwrap_or(principal_id);
                Some(fic(
                    format!("broker-managed-identity-{short}"),
                    &entra_issuer(target),
                    principal_id,
                    format!("gitlab-azure-oidc broker: managed identity {principal_id}"),
                ))
            }
            RuleCredential::Certificate { name: certificate } => {
                if !app.certificates.iter().any(|c| &c.name == certificate) {
                    let given = input.certificates.iter().find(|(n, _, _)| n == certificate);
                    if given.is_none() {
                        warnings.push(BrokerPlanWarning::CertificateNotGiven {
                            name: certificate.clone(),
                        });
                    }
                    app.certificates.push(CertificateUpload {
                        name: certificate.clone(),
                        thumbprints: given.map(|(_, t, _)| t.clone()),
                        file: given
                            .and_then(|(_, _, file)| file.clone())
                            .unwrap_or_else(|| "cert.pem".to_owned()),
                    });
                }
                None
            }
            RuleCredential::Federated => None,
        };
        if let Some(planned) = planned {
            let same = |c: &FederatedCredential| {
                c.issuer == planned.issuer && c.subject == planned.subject
            };
            if !app.credentials.iter().any(same) {
                app.credentials.push(planned);
            }
        }
    }
    if !issuer_rules.is_empty() && input.issuer.is_none() {
        return Err(BrokerPlanError::NoIssuer { rules: issuer_rules });
    }
    for app in &apps {
        if app.credentials.len() > MAX_CREDENTIALS_PER_APP {
            return Err(BrokerPlanError::TooManyCredentials {
                client_id: app.client_id.clone(),
                count: app.credentials.len(),
                max: MAX_CREDENTIALS_PER_APP,
            });
        }
        let mixed: Vec<String> = federated
            .iter()
            .filter(|(t, _)| t.client_id() == app.client_id && t.tenant() == app.tenant)
            .map(|(_, rule)| rule.clone())
            .collect();
        if !mixed.is_empty() {
            warnings.push(BrokerPlanWarning::Mixed {
                client_id: app.client_id.clone(),
                federated: mixed,
            });
        }
    }
    for (client_id, list) in input.credentials {
        let app = match client_id {
            Some(id) => apps.iter().find(|a| a.client_id.eq_ignore_ascii_case(id)),
            None if apps.len() <= 1 => apps.first(),
            None => {
                return Err(BrokerPlanError::WhichApp {
                    apps: apps.iter().map(|a| a.client_id.clone()).collect(),
                })
            }
        };
        let Some(app) = app else { continue };
        let trusted: Vec<&str> = app.credentials.iter().map(|c| c.issuer.as_str()).collect();
        for existing in list {
            if trusted.contains(&existing.issuer.as_str()) {
                continue;
            }
            let gitlab = same_issuer(&existing.issuer, input.gitlab_issuer);
            warnings.push(BrokerPlanWarning::Bypass {
                client_id: app.client_id.clone(),
                name: existing.name.clone(),
                issuer: existing.issuer.clone(),
                gitlab,
            });
        }
    }
    let issuer = input.issuer.map(|issuer| IssuerDocuments {
        url: issuer.url().to_owned(),
        discovery_path: issuer.discovery_path(),
        discovery: issuer.discovery_document(),
        jwks_path: issuer.jwks_path(),
        jwks: issuer.jwks_document(),
    });
    Ok(BrokerPlan { apps, issuer, warnings })
}

/// The GitLab issuer, as Entra might be told it: exact, or with a trailing slash or another
/// letter case (all still GitLab's).
fn same_issuer(issuer: &str, gitlab: &str) -> bool {
    !gitlab.is_empty()
        && issuer.trim_end_matches('/').eq_ignore_ascii_case(gitlab.trim_end_matches('/'))
}

#[cfg(test)]
mod tests;
