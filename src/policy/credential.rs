//! An allow rule's `azure.credential`: what proves the app's identity to Entra when the rule
//! allows a job. `federated` (the default) presents the job's own GitLab token, so Entra's
//! federated credential is the only check that binds; the broker credentials (`issuer`,
//! `managed-identity`, `certificate`) make the broker the only party Entra trusts, so the whole
//! rule binds.
//!
//! ```json
//! "credential": "federated"
//! "credential": "issuer"
//! "credential": { "type": "issuer", "subject": "payments-deploy" }
//! "credential": { "type": "managed-identity",
//!                 "client_id": "<the identity's client id>",
//!                 "principal_id": "<its principal (object) id>" }
//! "credential": { "type": "certificate", "name": "payments-app" }
//! ```
//!
//! The policy names a certificate; the broker's configuration supplies it. Key material never
//! sits in a policy.

use serde_json::Value;

use super::document::Ctx;
use super::PolicyError;
use crate::broker::default_rule_subject;
use crate::text::ident::{did_you_mean, is_guid};

/// The members of a credential object.
pub(crate) const CREDENTIAL_FIELDS: &[&str] =
    &["type", "subject", "client_id", "principal_id", "name"];
/// The credential types.
pub(crate) const CREDENTIAL_TYPES: &[&str] =
    &["federated", "issuer", "managed-identity", "certificate"];
/// Longest subject: a federated credential's `subject` holds at most 600 characters.
const MAX_SUBJECT: usize = 600;
/// Longest certificate name.
const MAX_CERTIFICATE_NAME: usize = 64;

/// What proves the app's identity to Entra for one allow rule.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleCredential {
    /// The job's GitLab token, verbatim (workload identity federation). Advisory: only `iss`,
    /// `sub`, `aud` (and `project_id` for flexible credentials) bind.
    Federated,
    /// An assertion the broker signs as its own issuer, with this `sub`.
    Issuer {
        /// The assertion's subject: the rule's `subject`, or `gitlab-azure-oidc:rule:<name>`.
        subject: String,
    },
    /// The broker's user-assigned managed identity.
    ManagedIdentity {
        /// The identity's client id (what the identity endpoint is asked for).
        client_id: String,
        /// The identity's principal (object) id: the subject the app's credential trusts.
        principal_id: String,
    },
    /// A certificate of the app that the broker's configuration supplies under this name.
    Certificate {
        /// The certificate's name in the broker configuration.
        name: String,
    },
}

impl RuleCredential {
    /// `federated`, `issuer`, `managed-identity` or `certificate`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Federated => "federated",
            Self::Issuer { .. } => "issuer",
            Self::ManagedIdentity { .. } => "managed-identity",
            Self::Certificate { .. } => "certificate",
        }
    }

    /// True for the credentials only a broker holds: with them the policy binds.
    pub fn is_broker(&self) -> bool {
        !matches!(self, Self::Federated)
    }
}

/// Reads `azure.credential` of the rule `rule`.
pub(super) fn parse(ctx: &Ctx, value: &Value, rule: &str) -> Result<RuleCredential, PolicyError> {
    const AT: &str = "azure.credential";
    let (kind, object) = match value {
        Value::String(kind) => (kind.as_str(), None),
        Value::Object(object) => {
            ctx.known_fields(object, AT, CREDENTIAL_FIELDS)?;
            let kind = object.get("type").ok_or_else(|| ctx.missing(&format!("{AT}.type")))?;
            (ctx.string(kind, &format!("{AT}.type"))?, Some(object))
        }
        other => {
            return Err(ctx.wrong_type(AT, "a credential type or an object with `type`", other))
        }
    };
    let field = |name: &str| object.and_then(|o| o.get(name));
    let allowed: &[&str] = match kind {
        "federated" => &["type"],
        "issuer" => &["type", "subject"],
        "managed-identity" => &["type", "client_id", "principal_id"],
        "certificate" => &["type", "name"],
        other => {
            let hint = did_you_mean(other, CREDENTIAL_TYPES.iter().copied());
            return Err(ctx.invalid(
                &format!("{AT}.type"),
                &Value::String(other.to_owned()),
                format!("`federated`, `issuer`, `managed-identity` or `certificate`{hint}"),
            ));
        }
    };
    if let Some(object) = object {
        if let Some(extra) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ctx.invalid(
                &format!("{AT}.{extra}"),
                object.get(extra).unwrap_or(&Value::Null),
                format!("no `{extra}` on a {kind} credential (it takes {})", allowed.join(", ")),
            ));
        }
    }
    Ok(match kind {
        "federated" => RuleCredential::Federated,
        "issuer" => {
            let subject = match field("subject") {
                None => default_rule_subject(rule),
                Some(v) => {
                    let path = format!("{AT}.subject");
                    let subject = ctx.string(v, &path)?;
                    if subject.is_empty()
                        || subject.len() > MAX_SUBJECT
                        || !subject.bytes().all(|b| b.is_ascii_graphic())
                    {
                        return Err(ctx.invalid(
                            &path,
                            v,
                            "1 to 600 printable ASCII characters without spaces (Entra matches \
                             the subject exactly)",
                        ));
                    }
                    subject.to_owned()
                }
            };
            RuleCredential::Issuer { subject }
        }
        "managed-identity" => {
            let guid = |name: &str| -> Result<String, PolicyError> {
                let path = format!("{AT}.{name}");
                let v = field(name).ok_or_else(|| ctx.missing(&path))?;
                let s = ctx.string(v, &path)?;
                if !is_guid(s) {
                    return Err(ctx.invalid(&path, v, "a GUID (`az identity show` prints it)"));
                }
                Ok(s.to_ascii_lowercase())
            };
            if object.is_none() {
                return Err(ctx.invalid(
                    AT,
                    value,
                    "an object: {\"type\": \"managed-identity\", \"client_id\": ..., \
                     \"principal_id\": ...}",
                ));
            }
            RuleCredential::ManagedIdentity {
                client_id: guid("client_id")?,
                principal_id: guid("principal_id")?,
            }
        }
        _ => {
            let path = format!("{AT}.name");
            let Some(v) = field("name") else {
                return Err(ctx.invalid(
                    AT,
                    value,
                    "an object: {\"type\": \"certificate\", \"name\": ...} naming a certificate of \
                     the broker's configuration (never the key itself)",
                ));
            };
            let name = ctx.string(v, &path)?;
            let ok = !name.is_empty()
                && name.len() <= MAX_CERTIFICATE_NAME
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok {
                return Err(ctx.invalid(
                    &path,
                    v,
                    "1 to 64 letters, digits, `-`, `_` or `.`: the certificate's name in the \
                     broker configuration (never key material: the broker holds the key)",
                ));
            }
            RuleCredential::Certificate { name: name.to_owned() }
        }
    })
}

#[cfg(test)]
mod tests;
