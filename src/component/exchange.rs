//! WIT glue for `gitlab-azure:oidc/exchange`: conversions only.

use ring::rand::SystemRandom;

use super::exports::gitlab_azure::oidc::exchange as wit;
use super::exports::gitlab_azure::oidc::verify::Claims as WitClaims;
use crate::entra;

impl wit::Guest for super::Component {
    fn build_azure_assertion(
        target: wit::AzureTarget,
        credential: wit::Credential,
        now: u64,
    ) -> Result<wit::HttpRequest, wit::ExchangeFailure> {
        let target = azure_target(target)?;
        let request = match credential {
            wit::Credential::Federated(token) => entra::build_federated_request(&target, &token),
            wit::Credential::Certificate(cert) => {
                let mut credential = entra::CertificateCredential::from_pem(
                    &cert.private_key_pem,
                    &cert.certificate_pem,
                )
                .map_err(|e| {
                    simple(wit::ExchangeError::Credential(e.kind().into()), e.kind(), e.to_string())
                })?
                .algorithm(match cert.algorithm {
                    wit::AssertionAlgorithm::Ps256 => entra::AssertionAlgorithm::Ps256,
                    wit::AssertionAlgorithm::Rs256 => entra::AssertionAlgorithm::Rs256,
                });
                if let Some(lifetime) = cert.lifetime {
                    credential = credential.lifetime(lifetime).map_err(|e| {
                        simple(
                            wit::ExchangeError::Credential(e.kind().into()),
                            e.kind(),
                            e.to_string(),
                        )
                    })?;
                }
                entra::build_certificate_request(&target, &credential, now, &SystemRandom::new())
            }
        }
        .map_err(|e| {
            simple(wit::ExchangeError::Request(e.kind().into()), e.kind(), e.to_string())
        })?;
        Ok(wit::HttpRequest {
            method: request.method.to_owned(),
            url: request.url,
            headers: request.headers,
            body: request.body,
        })
    }

    fn parse_token_response(
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        now: u64,
    ) -> Result<wit::AccessToken, wit::ExchangeFailure> {
        match entra::parse_token_response(status, &headers, &body, now) {
            Ok(token) => Ok(wit::AccessToken {
                token: token.token.secret().to_owned(),
                token_type: token.token_type,
                expires_in: token.expires_in,
                ext_expires_in: token.ext_expires_in,
                expires_at: token.expires_at,
            }),
            Err(e) => Err(entra_failure(&e)),
        }
    }

    fn federated_subject(claims: WitClaims) -> Option<String> {
        // The subject Entra matches is the token's `sub`, verbatim (entra::federated_subject).
        claims.sub
    }
}

fn simple(error: wit::ExchangeError, kind: &str, message: String) -> wit::ExchangeFailure {
    wit::ExchangeFailure {
        error,
        kind: kind.to_owned(),
        message,
        retryable: false,
        retry_after: None,
        retry_after_seconds: None,
    }
}

fn azure_target(t: wit::AzureTarget) -> Result<entra::AzureTarget, wit::ExchangeFailure> {
    let mut builder = entra::AzureTarget::builder(t.tenant, t.client_id);
    for scope in t.scopes {
        builder = builder.scope(scope);
    }
    if let Some(host) = t.authority_host {
        builder = builder.authority_host(host);
    }
    if let Some(url) = t.insecure_authority_url {
        builder = builder.insecure_authority_url(url);
    }
    builder
        .build()
        .map_err(|e| simple(wit::ExchangeError::Target(e.kind().into()), e.kind(), e.to_string()))
}

fn entra_error(e: &entra::EntraErrorResponse) -> wit::EntraError {
    wit::EntraError {
        status: e.status,
        error: e.error.clone(),
        error_description: e.error_description.clone(),
        error_codes: e.error_codes.clone(),
        trace_id: e.trace_id.clone(),
        correlation_id: e.correlation_id.clone(),
        timestamp: e.timestamp.clone(),
        error_uri: e.error_uri.clone(),
        hint: e.hint(),
    }
}

fn entra_failure(e: &entra::EntraError) -> wit::ExchangeFailure {
    use entra::EntraError as E;
    let typed = match e {
        E::Entra(response) => wit::ExchangeError::Entra(entra_error(response)),
        E::RateLimited { entra, .. } => {
            wit::ExchangeError::RateLimited(entra.as_deref().map(entra_error))
        }
        E::ServerError { entra, .. } => {
            wit::ExchangeError::ServerError(entra.as_deref().map(entra_error))
        }
        E::BodyTooLarge { .. }
        | E::EmptyBody { .. }
        | E::HtmlPage { .. }
        | E::InvalidField { .. }
        | E::MissingAccessToken
        | E::NotBearer { .. }
        | E::NotJson { .. }
        | E::UnexpectedStatus { .. } => wit::ExchangeError::BadResponse(e.kind().to_owned()),
    };
    wit::ExchangeFailure {
        error: typed,
        kind: e.kind().to_owned(),
        message: e.to_string(),
        retryable: e.is_retryable(),
        retry_after: e.retry_after().map(|r| r.raw.clone()),
        retry_after_seconds: e.retry_after().and_then(|r| r.seconds),
    }
}
