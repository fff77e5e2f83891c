//! WIT glue for `gitlab-azure:oidc/gate`: conversions only. The sequence is the core's
//! [`crate::Gate`]; `admit` here is the core's `admit` and `request` in one call, since every
//! host of the component sends the request it gets.

use std::cell::RefCell;
use std::sync::Arc;

use ring::rand::SystemRandom;

use super::convert::{
    access_out, fail, request_out, target_in, target_out, verified, verifier_config, HostSignatures,
};
use super::exports::gitlab_azure::oidc::gate as wit;
use super::gitlab_azure::oidc::types::{AccessToken, Failure};
use super::Component;
use crate as core;
use crate::entra::{AssertionAlgorithm, CertificateCredential};
use crate::gate::{Credential, GateConfig, GateConfigError};
use crate::policy::Policy;

/// The `gate` resource: a core gate behind a `RefCell` (WIT methods take `&self`).
pub(super) struct GateResource(RefCell<core::Gate>);

impl wit::Guest for Component {
    type Gate = GateResource;
}

fn credential(c: wit::Credential) -> Result<Credential, Failure> {
    match c {
        wit::Credential::Federated => Ok(Credential::Federated),
        wit::Credential::Certificate(cert) => {
            let certificate = |e| fail(GateConfigError::Certificate(e));
            let mut credential =
                CertificateCredential::from_pem(&cert.private_key_pem, &cert.certificate_pem)
                    .map_err(certificate)?
                    .algorithm(match cert.algorithm {
                        wit::AssertionAlgorithm::Ps256 => AssertionAlgorithm::Ps256,
                        wit::AssertionAlgorithm::Rs256 => AssertionAlgorithm::Rs256,
                    });
            if let Some(lifetime) = cert.lifetime {
                credential = credential.lifetime(lifetime).map_err(certificate)?;
            }
            Ok(Credential::Certificate(Arc::new(credential)))
        }
    }
}

fn config(c: wit::GateConfig) -> Result<GateConfig, Failure> {
    let mut builder = match (c.verifier, c.target) {
        (Some(verifier), target) => {
            let builder = GateConfig::builder(verifier_config(verifier)?);
            match target {
                Some(target) => builder.target(target_in(target)?),
                None => builder,
            }
        }
        (None, _) if c.policy.is_some() => {
            return Err(fail(GateConfigError::PolicyWithoutVerification))
        }
        (None, Some(target)) => GateConfig::unverified(target_in(target)?),
        (None, None) => return Err(fail(GateConfigError::NoTarget)),
    };
    if let Some(document) = c.policy {
        let policy =
            Policy::parse(document.as_bytes()).map_err(|e| fail(GateConfigError::Policy(e)))?;
        builder = builder.policy(policy);
    }
    builder = builder.credential(credential(c.credential)?);
    builder = builder.dangerous().signature_backend(HostSignatures::backend());
    if let Some(url) = c.dangerous_authority_url {
        builder = builder.dangerous().authority_url(url);
    }
    builder.build().map_err(fail)
}

impl wit::GuestGate for GateResource {
    fn new(config_in: wit::GateConfig, jwks: Option<String>) -> Result<Self, Failure> {
        let config = config(config_in)?;
        let limits = config.verifier().map(|v| v.limits().clone()).unwrap_or_default();
        let mut gate = core::Gate::new(config);
        if let Some(jwks) = jwks {
            gate.install_jwks(
                core::Jwks::parse_with_limits(jwks.as_bytes(), &limits).map_err(fail)?,
            );
        }
        Ok(Self(RefCell::new(gate)))
    }

    fn install_jwks(&self, jwks: String) -> Result<(), Failure> {
        let limits =
            self.0.borrow().config().verifier().map(|v| v.limits().clone()).unwrap_or_default();
        let parsed = core::Jwks::parse_with_limits(jwks.as_bytes(), &limits).map_err(fail)?;
        self.0.borrow_mut().install_jwks(parsed);
        Ok(())
    }

    fn ready(&self) -> bool {
        self.0.borrow().ready()
    }

    fn admit(&self, token: String, now: u64) -> Result<wit::Admission, Failure> {
        let mut gate = self.0.borrow_mut();
        let admission = gate.admit(&token, now).map_err(fail)?;
        let request = gate.request(&admission, &token, now, &SystemRandom::new()).map_err(fail)?;
        let decided = &admission.decided;
        let decision = decided.decision();
        let named = match (decision.and_then(|d| d.target()), decided.target()) {
            (Some(named), _) | (None, Some(named)) => named,
            (None, None) => return Err(fail(GateConfigError::NoTarget)),
        };
        Ok(wit::Admission {
            verified: admission.verified.as_deref().map(verified),
            rule: decision.and_then(|d| d.rule()).map(str::to_owned),
            explanation: decision.map(|d| d.lines()).unwrap_or_default(),
            target: target_out(named),
            fresh: admission.fresh,
            azure_key: decided.azure_key().map(str::to_owned),
            request_id: request.request_id().unwrap_or_default().to_owned(),
            request: request_out(request),
        })
    }

    fn finish(
        &self,
        request_id: String,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        now: u64,
    ) -> Result<AccessToken, Failure> {
        let mut gate = self.0.borrow_mut();
        gate.finish(&request_id, status, &headers, &body, now).map(|t| access_out(&t)).map_err(fail)
    }

    fn take_audit(&self) -> Vec<String> {
        self.0.borrow_mut().take_audit()
    }

    fn summarize(&self, now: u64) {
        self.0.borrow_mut().summarize(now);
    }
}
