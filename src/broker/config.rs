//! The broker configuration document: what the broker holds (its issuer's keys, its managed
//! identity endpoint, the apps' certificates), never the policy. One reader for every host: the
//! Envoy filter's plugin configuration embeds it, and `plan --broker-config` reads the same file
//! to print the issuer's documents and the certificates' thumbprints.
//!
//! ```json
//! {
//!   "issuer": {
//!     "url": "https://broker.example.com",
//!     "assertion_lifetime": 300,
//!     "keys": [
//!       { "private_key": { "env": "BROKER_KEY_2026_05" }, "use": "signing" },
//!       { "private_key": { "env": "BROKER_KEY_2026_11" }, "use": "published" },
//!       { "public_key": { "value": "-----BEGIN PUBLIC KEY-----..." }, "kid": "2025-11" }
//!     ]
//!   },
//!   "managed_identity": { "endpoint": "imds" },
//!   "certificates": {
//!     "payments-app": { "private_key": { "env": "PAYMENTS_KEY" },
//!                       "certificate": { "env": "PAYMENTS_CERT" }, "algorithm": "PS256" }
//!   }
//! }
//! ```
//!
//! A secret is `{"env": "NAME"}` (the host's environment: Envoy's
//! `vm_config.environment_variables`, which a Kubernetes secret can fill) or `{"value": "..."}`
//! (inline, in a configuration that is itself a secret). The document never holds the policy.
//! `managed_identity.endpoint` is `imds` (VMs, scale sets, AKS) or `app-service` (App Service,
//! Functions, Container Apps; `url` and `header` default to `$IDENTITY_ENDPOINT` and
//! `$IDENTITY_HEADER`). Unknown members are refused: a typo would drop a setting silently.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::error::{BrokerConfigError, IdentityError};
use super::identity::IdentityEndpoint;
use super::issuer::{BrokerIssuer, KeyUse};
use super::secret::Secret;
use crate::entra::{
    certificate_thumbprints, AssertionAlgorithm, CertificateCredential, CertificateThumbprints,
};
use crate::text::json::{self, JsonProblem};

/// Largest broker configuration read (100 keys of 4096 bits fit easily).
const MAX_CONFIG_BYTES: usize = 2 * 1024 * 1024;

const TOP_FIELDS: &[&str] = &["issuer", "managed_identity", "certificates"];
const ISSUER_FIELDS: &[&str] = &["url", "assertion_lifetime", "keys"];
const KEY_FIELDS: &[&str] = &["private_key", "public_key", "kid", "use"];
const IDENTITY_FIELDS: &[&str] = &["endpoint", "url", "header", "dangerous_url"];
const CERTIFICATE_FIELDS: &[&str] =
    &["private_key", "certificate", "algorithm", "assertion_lifetime"];
const SOURCE_FIELDS: &[&str] = &["env", "value"];

/// What the document is read for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigMode {
    /// For a running broker: every private key is required.
    Broker,
    /// For `plan`: public keys and certificates suffice; private keys are read only when their
    /// source is at hand (their public half is published).
    Plan,
}

/// A checked broker configuration.
#[derive(Clone, Debug, Default)]
pub struct BrokerConfig {
    /// The broker's issuer (`issuer` credential).
    pub issuer: Option<Arc<BrokerIssuer>>,
    /// The managed identity endpoint (`managed-identity` credential).
    pub identity: Option<Arc<IdentityEndpoint>>,
    /// Certificates by name (`certificate` credential), with their private keys; empty in
    /// [`ConfigMode::Plan`].
    pub certificates: Vec<(String, Arc<CertificateCredential>)>,
    /// Every certificate's thumbprints, by name.
    pub thumbprints: Vec<(String, CertificateThumbprints)>,
}

impl BrokerConfig {
    /// Reads a broker configuration document; `env` looks up `{"env": NAME}` values (the
    /// host's environment; the core reads none itself).
    ///
    /// # Errors
    /// A [`BrokerConfigError`] naming the member: JSON, unknown members, unset variables,
    /// unusable keys, certificates, issuer URL or identity endpoint. None quotes a secret.
    pub fn parse(
        document: &[u8],
        env: &dyn Fn(&str) -> Option<String>,
        mode: ConfigMode,
    ) -> Result<Self, BrokerConfigError> {
        if document.len() > MAX_CONFIG_BYTES {
            return Err(BrokerConfigError::Json {
                detail: format!("larger than {MAX_CONFIG_BYTES} bytes"),
            });
        }
        let value = json::parse(document, 8).map_err(|p| BrokerConfigError::Json {
            detail: match p {
                JsonProblem::Syntax(detail) => detail,
                JsonProblem::DuplicateMember(name) => format!("member `{name}` appears twice"),
                JsonProblem::TooDeep(limit) => format!("nested deeper than {limit}"),
            },
        })?;
        let reader = Reader { env, mode };
        let top = reader.object(&value, "(document)", TOP_FIELDS)?;
        let mut config = Self::default();
        if let Some(issuer) = top.get("issuer") {
            config.issuer = Some(Arc::new(reader.issuer(issuer)?));
        }
        if let Some(identity) = top.get("managed_identity") {
            if mode == ConfigMode::Broker {
                config.identity = Some(Arc::new(reader.identity(identity)?));
            }
        }
        if let Some(certificates) = top.get("certificates") {
            let Value::Object(certificates) = certificates else {
                return Err(invalid("certificates", "an object of named certificates"));
            };
            for (name, entry) in certificates {
                reader.certificate(&mut config, name, entry)?;
            }
        }
        Ok(config)
    }

    /// The certificate named `name`, if configured (with its private key).
    pub fn certificate(&self, name: &str) -> Option<&Arc<CertificateCredential>> {
        self.certificates.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }
}

fn invalid(at: &str, expected: &str) -> BrokerConfigError {
    BrokerConfigError::Invalid { at: at.to_owned(), expected: expected.to_owned() }
}

struct Reader<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    mode: ConfigMode,
}

impl Reader<'_> {
    fn object<'v>(
        &self,
        value: &'v Value,
        at: &str,
        allowed: &[&'static str],
    ) -> Result<&'v Map<String, Value>, BrokerConfigError> {
        let Value::Object(object) = value else { return Err(invalid(at, "an object")) };
        if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
            let at = if at == "(document)" { unknown.clone() } else { format!("{at}.{unknown}") };
            return Err(BrokerConfigError::UnknownField { at, allowed: allowed.to_vec() });
        }
        Ok(object)
    }

    /// A secret: `{"env": NAME}` or `{"value": "..."}`; `Ok(None)` for an unset variable in
    /// plan mode, where the caller falls back.
    fn secret(&self, value: &Value, at: &str) -> Result<Option<Secret>, BrokerConfigError> {
        let object = self.object(value, at, SOURCE_FIELDS)?;
        match (object.get("env"), object.get("value")) {
            (Some(Value::String(name)), None) => match (self.env)(name) {
                Some(value) if !value.is_empty() => Ok(Some(Secret::new(value))),
                _ if self.mode == ConfigMode::Plan => Ok(None),
                _ => Err(BrokerConfigError::EnvNotSet { at: at.to_owned(), name: name.clone() }),
            },
            (None, Some(Value::String(value))) => Ok(Some(Secret::new(value.clone()))),
            _ => Err(invalid(at, "{\"env\": \"NAME\"} or {\"value\": \"...\"}")),
        }
    }

    /// A plain setting: a string, or a secret source.
    fn setting(&self, value: &Value, at: &str) -> Result<Option<String>, BrokerConfigError> {
        match value {
            Value::String(s) => Ok(Some(s.clone())),
            other => Ok(self.secret(other, at)?.map(|s| s.secret().to_owned())),
        }
    }

    fn lifetime(
        &self,
        object: &Map<String, Value>,
        at: &str,
    ) -> Result<Option<u64>, BrokerConfigError> {
        match object.get("assertion_lifetime") {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                invalid(&format!("{at}.assertion_lifetime"), "a number of seconds (1 to 600)")
            }),
        }
    }

    fn issuer(&self, value: &Value) -> Result<BrokerIssuer, BrokerConfigError> {
        let object = self.object(value, "issuer", ISSUER_FIELDS)?;
        let url = match object.get("url") {
            Some(Value::String(url)) => url.clone(),
            _ => return Err(invalid("issuer.url", "the issuer URL, a string")),
        };
        let mut builder = BrokerIssuer::builder(url);
        if let Some(lifetime) = self.lifetime(object, "issuer")? {
            builder = builder.lifetime(lifetime);
        }
        let keys = match object.get("keys") {
            Some(Value::Array(keys)) if !keys.is_empty() => keys,
            _ => return Err(invalid("issuer.keys", "a non-empty array of keys")),
        };
        for (i, key) in keys.iter().enumerate() {
            let at = format!("issuer.keys[{i}]");
            let key = self.object(key, &at, KEY_FIELDS)?;
            let key_use = match key.get("use").map(Value::as_str) {
                None => KeyUse::Published,
                Some(Some("signing")) => KeyUse::Signing,
                Some(Some("published")) => KeyUse::Published,
                Some(_) => return Err(invalid(&format!("{at}.use"), "`signing` or `published`")),
            };
            let kid = match key.get("kid") {
                None => None,
                Some(Value::String(kid)) => Some(kid.as_str()),
                Some(_) => return Err(invalid(&format!("{at}.kid"), "a string")),
            };
            let private = match key.get("private_key") {
                Some(v) => self.secret(v, &format!("{at}.private_key"))?,
                None => None,
            };
            let public = match key.get("public_key") {
                Some(v) => self.secret(v, &format!("{at}.public_key"))?,
                None => None,
            };
            builder = match (private, public, self.mode) {
                (Some(private), _, _) => builder.key(private.secret(), key_use, kid),
                (None, Some(public), _) => builder.public_key(public.secret(), key_use, kid),
                (None, None, ConfigMode::Plan) => {
                    return Err(invalid(
                        &at,
                        "a `public_key` (or its private key's variable set) to publish",
                    ))
                }
                (None, None, ConfigMode::Broker) => {
                    return Err(invalid(&at, "`private_key` (or `public_key` for a published key)"))
                }
            };
        }
        Ok(match self.mode {
            ConfigMode::Broker => builder.build()?,
            ConfigMode::Plan => builder.build_for_publishing()?,
        })
    }

    fn identity(&self, value: &Value) -> Result<IdentityEndpoint, BrokerConfigError> {
        let object = self.object(value, "managed_identity", IDENTITY_FIELDS)?;
        let endpoint = object.get("endpoint").and_then(Value::as_str).unwrap_or("imds");
        match endpoint {
            "imds" => match object.get("dangerous_url") {
                None => Ok(IdentityEndpoint::imds()),
                Some(Value::String(url)) => Ok(IdentityEndpoint::dangerous_imds_at(url)?),
                Some(_) => Err(invalid("managed_identity.dangerous_url", "a URL")),
            },
            "app-service" => {
                let default_env = |name: &str| {
                    Value::Object(
                        [("env".to_owned(), Value::String(name.to_owned()))].into_iter().collect(),
                    )
                };
                let url_value =
                    object.get("url").cloned().unwrap_or_else(|| default_env("IDENTITY_ENDPOINT"));
                let header_value =
                    object.get("header").cloned().unwrap_or_else(|| default_env("IDENTITY_HEADER"));
                let url = self.setting(&url_value, "managed_identity.url")?.unwrap_or_default();
                let header = self
                    .secret(&header_value, "managed_identity.header")?
                    .unwrap_or_else(|| Secret::new(""));
                IdentityEndpoint::app_service(&url, header).map_err(BrokerConfigError::Identity)
            }
            _ => Err(BrokerConfigError::Identity(IdentityError::InvalidEndpoint {
                url: endpoint.to_owned(),
                reason: "`endpoint` is `imds` or `app-service`",
            })),
        }
    }

    fn certificate(
        &self,
        config: &mut BrokerConfig,
        name: &str,
        value: &Value,
    ) -> Result<(), BrokerConfigError> {
        let at = format!("certificates.{name}");
        let object = self.object(value, &at, CERTIFICATE_FIELDS)?;
        let wrap = |error| BrokerConfigError::Certificate { name: name.to_owned(), error };
        let certificate = match object.get("certificate") {
            Some(v) => self.secret(v, &format!("{at}.certificate"))?,
            None => return Err(invalid(&format!("{at}.certificate"), "the certificate (PEM)")),
        };
        let Some(certificate) = certificate else {
            // Plan mode, variable not set: nothing to print for it.
            return Ok(());
        };
        config
            .thumbprints
            .push((name.to_owned(), certificate_thumbprints(certificate.secret()).map_err(wrap)?));
        if self.mode == ConfigMode::Plan {
            return Ok(());
        }
        let private_key = match object.get("private_key") {
            Some(v) => {
                self.secret(v, &format!("{at}.private_key"))?.unwrap_or_else(|| Secret::new(""))
            }
            None => {
                return Err(invalid(&format!("{at}.private_key"), "the private key (PKCS#8 PEM)"))
            }
        };
        let mut credential =
            CertificateCredential::from_pem(private_key.secret(), certificate.secret())
                .map_err(wrap)?;
        credential = match object.get("algorithm").map(Value::as_str) {
            None | Some(Some("PS256")) => credential.algorithm(AssertionAlgorithm::Ps256),
            Some(Some("RS256")) => credential.algorithm(AssertionAlgorithm::Rs256),
            Some(_) => return Err(invalid(&format!("{at}.algorithm"), "`PS256` or `RS256`")),
        };
        if let Some(lifetime) = self.lifetime(object, &at)? {
            credential = credential.lifetime(lifetime).map_err(wrap)?;
        }
        config.certificates.push((name.to_owned(), Arc::new(credential)));
        Ok(())
    }
}
