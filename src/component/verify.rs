//! WIT glue for `gitlab-azure:oidc/verify`: conversions only.

use std::cell::RefCell;

use super::convert::{fail, verified, verifier_config, HostSignatures};
use super::exports::gitlab_azure::oidc::verify as wit;
use super::gitlab_azure::oidc::types::{Failure, VerifiedToken, VerifierConfig};
use super::Component;
use crate as core;

/// The `verifier` resource: a core verifier behind a `RefCell`, because WIT resource methods
/// take `&self` and `replace-jwks` mutates.
pub(super) struct VerifierResource(RefCell<core::Verifier>);

fn build(config: VerifierConfig, jwks: &str) -> Result<core::Verifier, Failure> {
    let config = verifier_config(config)?;
    let jwks = core::Jwks::parse_with_limits(jwks.as_bytes(), config.limits()).map_err(fail)?;
    let mut verifier = core::Verifier::new(config, jwks);
    verifier.dangerous().set_signature_backend(Some(HostSignatures::backend()));
    Ok(verifier)
}

impl wit::Guest for Component {
    type Verifier = VerifierResource;

    fn verify_gitlab_token(
        token: String,
        jwks: String,
        config: VerifierConfig,
        now: u64,
    ) -> Result<VerifiedToken, Failure> {
        let verifier = build(config, &jwks)?;
        verifier.verify(&token, now).map(|v| verified(&v)).map_err(fail)
    }

    fn claim_table() -> Vec<wit::ClaimSpec> {
        core::CLAIMS
            .iter()
            .map(|spec| wit::ClaimSpec {
                name: spec.name.to_owned(),
                kind: match spec.kind {
                    core::ClaimKind::Text => wit::ClaimKind::Text,
                    core::ClaimKind::Id => wit::ClaimKind::Id,
                    core::ClaimKind::Flag => wit::ClaimKind::Flag,
                    core::ClaimKind::Integer => wit::ClaimKind::Integer,
                    core::ClaimKind::Time => wit::ClaimKind::Time,
                    core::ClaimKind::TextList => wit::ClaimKind::TextList,
                    core::ClaimKind::Audience => wit::ClaimKind::Audience,
                    core::ClaimKind::Identities => wit::ClaimKind::Identities,
                    core::ClaimKind::Object => wit::ClaimKind::Object,
                },
                nullable: spec.nullable,
                since: spec.since.map(str::to_owned),
                registered: spec.registered,
                values: spec.values.iter().map(|v| (*v).to_owned()).collect(),
                values_complete: spec.values_complete,
            })
            .collect()
    }
}

impl wit::GuestVerifier for VerifierResource {
    fn new(config: VerifierConfig, jwks: String) -> Result<Self, Failure> {
        build(config, &jwks).map(|v| Self(RefCell::new(v)))
    }

    fn replace_jwks(&self, jwks: String) -> Result<(), Failure> {
        let limits = self.0.borrow().config().limits().clone();
        let parsed = core::Jwks::parse_with_limits(jwks.as_bytes(), &limits).map_err(fail)?;
        self.0.borrow_mut().replace_jwks(parsed);
        Ok(())
    }

    fn verify(&self, token: String, now: u64) -> Result<VerifiedToken, Failure> {
        self.0.borrow_mut().verify_cached(&token, now).map(|v| verified(&v)).map_err(fail)
    }

    fn check(&self, token: String, now: u64) -> Result<wit::CheckedToken, Failure> {
        let v = self.0.borrow_mut().verify_cached(&token, now).map_err(fail)?;
        Ok(wit::CheckedToken {
            fingerprint: v.fingerprint.clone(),
            jti: v.claims.jti.clone(),
            expires_at: v.claims.exp,
        })
    }

    fn keys(&self) -> (Vec<wit::KeyInfo>, Vec<String>) {
        let verifier = self.0.borrow();
        let usable = verifier
            .jwks()
            .keys()
            .into_iter()
            .map(|k| wit::KeyInfo {
                kid: k.kid,
                alg: k.alg,
                kind: match k.kind {
                    core::KeyKind::Rsa { bits } => format!("RSA-{bits}"),
                    core::KeyKind::Ec { curve } => format!("EC-{curve}"),
                },
            })
            .collect();
        let skipped = verifier
            .jwks()
            .skipped()
            .iter()
            .map(|s| {
                format!("key {} ({}): {}", s.index, s.kid.as_deref().unwrap_or("no kid"), s.reason)
            })
            .collect();
        (usable, skipped)
    }
}
