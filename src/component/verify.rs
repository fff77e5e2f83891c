//! WIT glue for `gitlab-azure:oidc/verify`: conversions only.

use std::cell::RefCell;
use std::sync::Arc;

use super::exports::gitlab_azure::oidc::verify as wit;
use super::gitlab_azure::oidc::signatures as host;
use super::Component;
use crate as core;
use crate::offload::{KeyMaterial, Offloaded, SignatureBackend, SignatureCheck};

/// The `verifier` resource: a core verifier behind a `RefCell`, because WIT resource methods
/// take `&self` and `replace-jwks` mutates.
pub(super) struct VerifierResource(RefCell<core::Verifier>);

impl wit::Guest for Component {
    type Verifier = VerifierResource;

    fn verify_gitlab_token(
        token: String,
        jwks: String,
        options: wit::VerifyOptions,
    ) -> Result<wit::VerifiedToken, wit::Failure> {
        let verifier = build(options.config, &jwks)?;
        verifier.verify(&token, options.now).map(|v| verified(&v)).map_err(verify_failure)
    }
}

impl wit::GuestVerifier for VerifierResource {
    fn new(config: wit::VerifierConfig, jwks: String) -> Result<Self, wit::Failure> {
        build(config, &jwks).map(|v| Self(RefCell::new(v)))
    }

    fn replace_jwks(&self, jwks: String) -> Result<(), wit::Failure> {
        let limits = self.0.borrow().config().limits().clone();
        let parsed =
            core::Jwks::parse_with_limits(jwks.as_bytes(), &limits).map_err(jwks_failure)?;
        self.0.borrow_mut().replace_jwks(parsed);
        Ok(())
    }

    fn verify(&self, token: String, now: u64) -> Result<wit::VerifiedToken, wit::Failure> {
        self.0.borrow_mut().verify_cached(&token, now).map(|v| verified(&v)).map_err(verify_failure)
    }

    fn check(&self, token: String, now: u64) -> Result<wit::CheckedToken, wit::Failure> {
        let v = self.0.borrow_mut().verify_cached(&token, now).map_err(verify_failure)?;
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

fn build(config: wit::VerifierConfig, jwks: &str) -> Result<core::Verifier, wit::Failure> {
    let mut builder = core::VerifierConfig::builder(config.issuer);
    for audience in config.audiences {
        builder = builder.audience(audience);
    }
    if !config.algorithms.is_empty() {
        builder = builder.algorithms(config.algorithms.into_iter().map(alg_in));
    }
    if let Some(leeway) = config.leeway {
        builder = builder.leeway(leeway);
    }
    if let Some(max_age) = config.max_age {
        builder = builder.max_age(max_age);
    }
    if config.insecure_skip_audience {
        builder = builder.insecure_skip_audience();
    }
    let config = builder.build().map_err(config_failure)?;
    let jwks =
        core::Jwks::parse_with_limits(jwks.as_bytes(), config.limits()).map_err(jwks_failure)?;
    let mut verifier = core::Verifier::new(config, jwks);
    verifier.dangerous().set_signature_backend(Some(Arc::new(HostSignatures)));
    Ok(verifier)
}

/// The host's `signatures` import as the core's signature backend. The core has made every
/// refusal before it asks; `unsupported` hands the check back to ring inside the component.
struct HostSignatures;

impl SignatureBackend for HostSignatures {
    fn verify(&self, check: &SignatureCheck<'_>) -> Offloaded {
        let key = match check.key {
            KeyMaterial::Rsa { n, e } => {
                host::PublicKey::Rsa(host::RsaKey { n: n.to_vec(), e: e.to_vec() })
            }
            KeyMaterial::Ec { curve, x, y } => host::PublicKey::Ec(host::EcKey {
                curve: curve.name().to_owned(),
                x: x.to_vec(),
                y: y.to_vec(),
            }),
        };
        match host::verify_signature(check.alg.name(), &key, check.message, check.signature) {
            host::Verdict::Valid => Offloaded::Valid,
            host::Verdict::Invalid => Offloaded::Invalid,
            host::Verdict::Unsupported => Offloaded::Unsupported,
        }
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

fn part(p: core::Part) -> wit::Part {
    match p {
        core::Part::Header => wit::Part::Header,
        core::Part::Payload => wit::Part::Payload,
        core::Part::Signature => wit::Part::Signature,
    }
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn u64_of(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn verified(v: &core::VerifiedToken) -> wit::VerifiedToken {
    let c = &v.claims;
    let g = &c.gitlab;
    // The payload as signed: no re-serialization on every call (a cache hit copies only this).
    let raw_json = v.payload_json.clone();
    wit::VerifiedToken {
        header: wit::Header {
            alg: alg_out(v.header.alg),
            kid: v.header.kid.clone(),
            typ: v.header.typ.clone(),
        },
        claims: wit::Claims {
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
            gitlab: wit::GitlabClaims {
                namespace_id: g.namespace_id.clone(),
                namespace_path: g.namespace_path.clone(),
                project_id: g.project_id.clone(),
                project_path: g.project_path.clone(),
                job_project_id: g.job_project_id.clone(),
                job_project_path: g.job_project_path.clone(),
                job_namespace_id: g.job_namespace_id.clone(),
                job_namespace_path: g.job_namespace_path.clone(),
                user_id: g.user_id.clone(),
                user_login: g.user_login.clone(),
                user_email: g.user_email.clone(),
                user_access_level: g.user_access_level.clone(),
                user_identities: g.user_identities.as_ref().map(|ids| {
                    ids.iter()
                        .map(|i| wit::UserIdentity {
                            provider: i.provider.clone(),
                            extern_uid: i.extern_uid.clone(),
                        })
                        .collect()
                }),
                pipeline_id: g.pipeline_id.clone(),
                pipeline_source: g.pipeline_source.clone(),
                job_id: g.job_id.clone(),
                ref_: g.r#ref.clone(),
                ref_type: g.ref_type.clone(),
                ref_path: g.ref_path.clone(),
                ref_protected: g.ref_protected,
                groups_direct: g.groups_direct.clone(),
                environment: g.environment.clone(),
                environment_protected: g.environment_protected,
                deployment_tier: g.deployment_tier.clone(),
                environment_action: g.environment_action.clone(),
                runner_id: g.runner_id,
                runner_environment: g.runner_environment.clone(),
                sha: g.sha.clone(),
                ci_config_ref_uri: g.ci_config_ref_uri.clone(),
                ci_config_sha: g.ci_config_sha.clone(),
                project_visibility: g.project_visibility.clone(),
                job_source: g.job_source.clone(),
                job_config: g
                    .job_config
                    .as_ref()
                    .map(|j| wit::JobConfig { url: j.url.clone(), sha: j.sha.clone() }),
                target_audience: g.target_audience.clone(),
            },
            raw_json,
        },
        fingerprint: v.fingerprint.clone(),
    }
}

fn failure(error: wit::Error, kind: &str, message: String, refresh_jwks: bool) -> wit::Failure {
    wit::Failure { error, kind: kind.to_owned(), message, refresh_jwks }
}

fn config_failure(e: core::ConfigError) -> wit::Failure {
    let typed = match &e {
        core::ConfigError::NoAlgorithms => wit::ConfigError::NoAlgorithms,
        core::ConfigError::NoAudience => wit::ConfigError::NoAudience,
        core::ConfigError::EmptyIssuer => wit::ConfigError::EmptyIssuer,
        core::ConfigError::UnknownAlgorithm { name } => {
            wit::ConfigError::UnknownAlgorithm(name.clone())
        }
    };
    failure(wit::Error::Config(typed), e.kind(), e.to_string(), false)
}

fn jwks_failure(e: core::JwksError) -> wit::Failure {
    let typed = match &e {
        core::JwksError::Json { detail } => wit::JwksError::Json(detail.clone()),
        core::JwksError::DuplicateMember { name } => wit::JwksError::DuplicateMember(name.clone()),
        core::JwksError::JsonTooDeep { limit } => wit::JwksError::JsonTooDeep(u32_of(*limit)),
        core::JwksError::NoKeysArray => wit::JwksError::NoKeysArray,
        core::JwksError::TooLarge { size, limit } => {
            wit::JwksError::TooLarge(wit::SizeLimit { size: u64_of(*size), limit: u64_of(*limit) })
        }
        core::JwksError::TooManyKeys { count, limit } => {
            wit::JwksError::TooManyKeys(wit::CountLimit {
                count: u64_of(*count),
                limit: u64_of(*limit),
            })
        }
    };
    failure(wit::Error::Jwks(typed), e.kind(), e.to_string(), false)
}

fn verify_failure(e: core::VerifyError) -> wit::Failure {
    use core::VerifyError as E;
    use wit::VerifyError as W;
    let window =
        |claim_time: u64, now: u64, leeway: u64| wit::TimeWindow { claim_time, now, leeway };
    let typed = match &e {
        E::AlgorithmNotAllowed { alg, allowed } => {
            W::AlgorithmNotAllowed(wit::AlgorithmNotAllowed {
                alg: alg_out(*alg),
                allowed: allowed.iter().copied().map(alg_out).collect(),
            })
        }
        E::AlgorithmRefused { alg } => W::AlgorithmRefused(alg.clone()),
        E::AudienceMismatch { expected, found } => W::AudienceMismatch(wit::AudienceMismatch {
            expected: expected.clone(),
            found: found.clone(),
        }),
        E::Base64 { part: p } => W::Base64(part(*p)),
        E::BadSignature { kid, alg, keys_tried } => W::BadSignature(wit::BadSignature {
            kid: kid.clone(),
            alg: alg_out(*alg),
            keys_tried: u32_of(*keys_tried),
        }),
        E::ClaimInvalid { claim, expected } => {
            W::ClaimInvalid(wit::ClaimInvalid { claim: claim.clone(), expected: expected.clone() })
        }
        E::ClaimMissing { claim } => W::ClaimMissing(claim.clone()),
        E::DuplicateMember { part: p, name } => {
            W::DuplicateMember(wit::DuplicateMember { part: part(*p), name: name.clone() })
        }
        E::Expired { exp, now, leeway } => W::Expired(window(*exp, *now, *leeway)),
        E::HeaderInvalid { detail } => W::HeaderInvalid(detail.clone()),
        E::IssuedInFuture { iat, now, leeway } => W::IssuedInFuture(window(*iat, *now, *leeway)),
        E::IssuerMismatch { expected, found, near_miss } => {
            W::IssuerMismatch(wit::IssuerMismatch {
                expected: expected.clone(),
                found: found.clone(),
                near_miss: near_miss.map(|n| match n {
                    core::IssuerNearMiss::Case => wit::IssuerNearMiss::Case,
                    core::IssuerNearMiss::Scheme => wit::IssuerNearMiss::Scheme,
                    core::IssuerNearMiss::TrailingSlash => wit::IssuerNearMiss::TrailingSlash,
                }),
            })
        }
        E::Json { part: p, detail } => {
            W::Json(wit::JsonError { part: part(*p), detail: detail.clone() })
        }
        E::JsonTooDeep { part: p, limit } => {
            W::JsonTooDeep(wit::JsonTooDeep { part: part(*p), limit: u32_of(*limit) })
        }
        E::KeyMismatch { kid, alg, reason } => W::KeyMismatch(wit::KeyMismatch {
            kid: kid.clone(),
            alg: alg_out(*alg),
            reason: reason.clone(),
        }),
        E::KeyRefused { kid, reason } => {
            W::KeyRefused(wit::KeyRefused { kid: kid.clone(), reason: reason.clone() })
        }
        E::NoCompatibleKey { alg } => W::NoCompatibleKey(alg_out(*alg)),
        E::NotAnObject { part: p } => W::NotAnObject(part(*p)),
        E::NotCompact { parts } => W::NotCompact(u32_of(*parts)),
        E::NotYetValid { nbf, now, leeway } => W::NotYetValid(window(*nbf, *now, *leeway)),
        E::TooOld { iat, now, max_age } => {
            W::TooOld(wit::TooOld { iat: *iat, now: *now, max_age: *max_age })
        }
        E::TooLarge { size, limit } => {
            W::TooLarge(wit::SizeLimit { size: u64_of(*size), limit: u64_of(*limit) })
        }
        E::TooManyCandidateKeys { candidates, limit } => W::TooManyCandidateKeys(wit::CountLimit {
            count: u64_of(*candidates),
            limit: u64_of(*limit),
        }),
        E::UnknownCritical { names } => W::UnknownCritical(names.clone()),
        E::UnknownKid { kid } => W::UnknownKid(kid.clone()),
        E::UnsupportedAlgorithm { alg } => W::UnsupportedAlgorithm(alg.clone()),
    };
    failure(wit::Error::Verify(typed), e.kind(), e.to_string(), e.suggests_jwks_refresh())
}
