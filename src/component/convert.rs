//! Conversions of the shared `types` interface: the one failure record, verifier settings,
//! verified tokens, targets and HTTP values.

use std::sync::Arc;

use super::gitlab_azure::oidc::signatures as host;
use super::gitlab_azure::oidc::types as wit;
use crate as core;
use crate::entra::{self, AzureTarget};
use crate::gate::{Category, Failure, GateConfigError};
use crate::offload::{KeyMaterial, Offloaded, SignatureBackend, SignatureCheck};

/// Any core failure as the one WIT failure record.
pub(super) fn failure(f: &Failure) -> wit::Failure {
    wit::Failure {
        kind: f.kind().to_owned(),
        category: match f.category() {
            Category::Config => wit::Category::Config,
            Category::Jwks => wit::Category::Jwks,
            Category::Token => wit::Category::Token,
            Category::Denied => wit::Category::Denied,
            Category::Request => wit::Category::Request,
            Category::Entra => wit::Category::Entra,
        },
        message: f.to_string(),
        hint: f.hint(),
        refetch_jwks: f.refetch_jwks(),
        retryable: f.retryable(),
        retry_after: f.retry_after(),
        http_status: f.http_status(),
        location: f
            .location()
            .map(|l| wit::Location { rule: l.rule.clone(), field: l.field.clone() }),
        entra: f.entra_response().map(|e| wit::EntraDetails {
            status: e.status,
            error: e.error.clone(),
            error_description: e.error_description.clone(),
            error_codes: e.error_codes.clone(),
            trace_id: e.trace_id.clone(),
            correlation_id: e.correlation_id.clone(),
        }),
    }
}

/// A failure from anything the core's [`Failure`] can be made of.
pub(super) fn fail(e: impl Into<Failure>) -> wit::Failure {
    failure(&e.into())
}

pub(super) fn verifier_config(
    c: wit::VerifierConfig,
) -> Result<core::VerifierConfig, wit::Failure> {
    let mut builder = core::VerifierConfig::builder(c.issuer);
    for audience in c.audiences {
        builder = builder.audience(audience);
    }
    if !c.algorithms.is_empty() {
        builder = builder.algorithms(c.algorithms.into_iter().map(alg_in));
    }
    if let Some(leeway) = c.leeway {
        builder = builder.leeway(leeway);
    }
    if let Some(max_age) = c.max_age {
        builder = builder.max_age(max_age);
    }
    if c.dangerous_skip_audience_check {
        builder = builder.dangerous().skip_audience_check();
    }
    builder.build().map_err(|e| fail(GateConfigError::Verifier(e)))
}

pub(super) fn target_in(t: wit::AzureTarget) -> Result<AzureTarget, wit::Failure> {
    let mut builder = AzureTarget::builder(t.tenant, t.client_id);
    for scope in t.scopes {
        builder = builder.scope(scope);
    }
    if let Some(host) = t.authority_host {
        builder = builder.authority_host(host);
    }
    builder.build().map_err(|e| fail(GateConfigError::Target(e)))
}

pub(super) fn target_out(t: &AzureTarget) -> wit::AzureTarget {
    wit::AzureTarget {
        tenant: t.tenant().to_owned(),
        client_id: t.client_id().to_owned(),
        scopes: t.scopes().to_vec(),
        authority_host: t.authority_host().map(str::to_owned),
    }
}

pub(super) fn request_out(r: entra::TokenRequest) -> wit::HttpRequest {
    wit::HttpRequest { method: r.method.to_owned(), url: r.url, headers: r.headers, body: r.body }
}

pub(super) fn access_out(t: &entra::AccessToken) -> wit::AccessToken {
    wit::AccessToken {
        token: t.token.secret().to_owned(),
        token_type: t.token_type.clone(),
        expires_in: t.expires_in,
        ext_expires_in: t.ext_expires_in,
        expires_at: t.expires_at,
    }
}

pub(super) fn verified(v: &core::VerifiedToken) -> wit::VerifiedToken {
    let c = &v.claims;
    wit::VerifiedToken {
        header: wit::Header {
            alg: alg_out(v.header.alg),
            kid: v.header.kid.clone(),
            typ: v.header.typ.clone(),
        },
        claims: wit::RegisteredClaims {
            iss: c.iss.clone(),
            sub: c.sub.clone(),
            aud: match &c.aud {
                None => Vec::new(),
                Some(core::Audience::One(one)) => vec![one.clone()],
                Some(core::Audience::Many(many)) => many.clone(),
            },
            exp: c.exp,
            nbf: c.nbf,
            iat: c.iat,
            jti: c.jti.clone(),
        },
        // The payload as signed: no re-serialization on every call.
        payload_json: v.payload_json.clone(),
        fingerprint: v.fingerprint.clone(),
    }
}

fn alg_in(alg: wit::Algorithm) -> core::Algorithm {
    match alg {
        wit::Algorithm::Rs256 => core::Algorithm::Rs256,
        wit::Algorithm::Rs384 => core::Algorithm::Rs384,
        wit::Algorithm::Rs512 => core::Algorithm::Rs512,
        wit::Algorithm::Ps256 => core::Algorithm::Ps256,
        wit::Algorithm::Ps384 => core::Algorithm::Ps384,
        wit::Algorithm::Ps512 => core::Algorithm::Ps512,
        wit::Algorithm::Es256 => core::Algorithm::Es256,
        wit::Algorithm::Es384 => core::Algorithm::Es384,
    }
}

fn alg_out(alg: core::Algorithm) -> wit::Algorithm {
    // `core::Algorithm` is non_exhaustive for downstream crates only; inside this crate the
    // match is exhaustive, so a new algorithm breaks this build until the WIT has it.
    match alg {
        core::Algorithm::Rs256 => wit::Algorithm::Rs256,
        core::Algorithm::Rs384 => wit::Algorithm::Rs384,
        core::Algorithm::Rs512 => wit::Algorithm::Rs512,
        core::Algorithm::Ps256 => wit::Algorithm::Ps256,
        core::Algorithm::Ps384 => wit::Algorithm::Ps384,
        core::Algorithm::Ps512 => wit::Algorithm::Ps512,
        core::Algorithm::Es256 => wit::Algorithm::Es256,
        core::Algorithm::Es384 => wit::Algorithm::Es384,
    }
}

/// The host's `signatures` import as the core's signature backend. The core has made every
/// refusal before it asks; `unsupported` hands the check back to ring inside the component.
pub(super) struct HostSignatures;

impl HostSignatures {
    pub(super) fn backend() -> Arc<dyn SignatureBackend> {
        Arc::new(Self)
    }
}

impl SignatureBackend for HostSignatures {
    fn verify(&self, check: &SignatureCheck<'_>) -> Offloaded {
        let key = match check.key {
            KeyMaterial::Rsa { n, e } => {
                host::PublicKey::Rsa(host::RsaKey { n: n.to_vec(), e: e.to_vec() })
            }
            KeyMaterial::Ec { curve: _, x, y } => {
                host::PublicKey::Ec(host::EcKey { x: x.to_vec(), y: y.to_vec() })
            }
        };
        let scheme = match check.alg.scheme() {
            core::Scheme::RsaPkcs1Sha256 => host::Scheme::RsaPkcs1Sha256,
            core::Scheme::RsaPkcs1Sha384 => host::Scheme::RsaPkcs1Sha384,
            core::Scheme::RsaPkcs1Sha512 => host::Scheme::RsaPkcs1Sha512,
            core::Scheme::RsaPssSha256 => host::Scheme::RsaPssSha256,
            core::Scheme::RsaPssSha384 => host::Scheme::RsaPssSha384,
            core::Scheme::RsaPssSha512 => host::Scheme::RsaPssSha512,
            core::Scheme::EcdsaP256Sha256 => host::Scheme::EcdsaP256Sha256,
            core::Scheme::EcdsaP384Sha384 => host::Scheme::EcdsaP384Sha384,
        };
        match host::verify_signature(scheme, &key, check.message, check.signature) {
            host::Verdict::Valid => Offloaded::Valid,
            host::Verdict::Invalid => Offloaded::Invalid,
            host::Verdict::Unsupported => Offloaded::Unsupported,
        }
    }
}

/// A tooling report's severity threshold.
pub(super) fn severity(s: wit::Severity) -> crate::findings::Severity {
    use crate::findings::Severity;
    match s {
        wit::Severity::Info => Severity::Info,
        wit::Severity::Low => Severity::Low,
        wit::Severity::Medium => Severity::Medium,
        wit::Severity::High => Severity::High,
        wit::Severity::Critical => Severity::Critical,
    }
}
