//! The filter's counters, in Envoy's stats under `wasmcustom.gitlab_azure_oidc.`: what an
//! operator watches to see the issuer's keys, Entra and the requests' outcomes without reading
//! the log. Envoy adds up a counter across workers and across plugin configurations (a counter
//! is found by name), so each root context defines them once and they keep counting through a
//! policy change.
//!
//! Every request of a job is counted once, in one of
//! `requests.{allowed,denied,rejected,refused}`: the four add up to the jobs' requests the filter
//! saw (forwarded or vended counts as allowed). Requests for the broker issuer's documents are
//! counted apart, in `issuer_documents.served`.

use gitlab_azure_oidc::entra::EntraError;
use gitlab_azure_oidc::Failure;

use crate::host::{Host, LogLevel};
use crate::reply::Reply;

/// One counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// A JWKS fetch brought keys the gate installed.
    JwksFetchOk,
    /// A JWKS fetch failed: no answer, an HTTP error, a document that does not parse, or the
    /// call could not be made.
    JwksFetchFailed,
    /// Entra issued an Azure token.
    EntraOk,
    /// Entra refused the identity (an AADSTS client error: 403 to the client).
    EntraRefused,
    /// Entra said to come back later (429, 503, `temporarily_unavailable`: 503 to the client).
    EntraThrottled,
    /// Entra failed (another 5xx), or the answer was not Entra's (HTML, not JSON, ...).
    EntraFailed,
    /// No answer from Entra: the call could not be made, failed, or timed out (Envoy's 504).
    EntraUnreachable,
    /// A request forwarded upstream with an Azure token.
    RequestsAllowed,
    /// A request the policy denied (403 `policy-denied`).
    RequestsDenied,
    /// A request without a token, or with a token that did not verify (401).
    RequestsRejected,
    /// A request refused because the filter could not decide or exchange: the keys unavailable,
    /// too many waiting, Entra refusing or out of reach (every other 4xx and 5xx): the filter
    /// fails closed.
    RequestsRefused,
    /// A vending request answered with an Azure access token (also counted as allowed).
    VendAccessToken,
    /// A vending request answered with the broker's assertion (also counted as allowed).
    VendAssertion,
    /// A request that waited for another request's Entra call instead of making its own.
    EntraCoalesced,
    /// The managed identity endpoint gave the broker its identity's token.
    IdentityOk,
    /// The managed identity endpoint gave no token (an error status, no answer, a bad answer).
    IdentityFailed,
    /// The broker issuer's discovery document or JWKS was served (not a job's request).
    IssuerDocuments,
}

impl Counter {
    /// Every counter, in the order they are defined.
    pub const ALL: [Self; 17] = [
        Self::JwksFetchOk,
        Self::JwksFetchFailed,
        Self::EntraOk,
        Self::EntraRefused,
        Self::EntraThrottled,
        Self::EntraFailed,
        Self::EntraUnreachable,
        Self::RequestsAllowed,
        Self::RequestsDenied,
        Self::RequestsRejected,
        Self::RequestsRefused,
        Self::VendAccessToken,
        Self::VendAssertion,
        Self::EntraCoalesced,
        Self::IdentityOk,
        Self::IdentityFailed,
        Self::IssuerDocuments,
    ];

    /// The counter's name, without Envoy's `wasmcustom.` prefix.
    pub fn name(self) -> &'static str {
        match self {
            Self::JwksFetchOk => "gitlab_azure_oidc.jwks_fetch.ok",
            Self::JwksFetchFailed => "gitlab_azure_oidc.jwks_fetch.failed",
            Self::EntraOk => "gitlab_azure_oidc.entra.ok",
            Self::EntraRefused => "gitlab_azure_oidc.entra.refused",
            Self::EntraThrottled => "gitlab_azure_oidc.entra.throttled",
            Self::EntraFailed => "gitlab_azure_oidc.entra.failed",
            Self::EntraUnreachable => "gitlab_azure_oidc.entra.unreachable",
            Self::RequestsAllowed => "gitlab_azure_oidc.requests.allowed",
            Self::RequestsDenied => "gitlab_azure_oidc.requests.denied",
            Self::RequestsRejected => "gitlab_azure_oidc.requests.rejected",
            Self::RequestsRefused => "gitlab_azure_oidc.requests.refused",
            Self::VendAccessToken => "gitlab_azure_oidc.vend.access_token",
            Self::VendAssertion => "gitlab_azure_oidc.vend.assertion",
            Self::EntraCoalesced => "gitlab_azure_oidc.entra.coalesced",
            Self::IdentityOk => "gitlab_azure_oidc.identity.ok",
            Self::IdentityFailed => "gitlab_azure_oidc.identity.failed",
            Self::IssuerDocuments => "gitlab_azure_oidc.issuer_documents.served",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }

    /// The counter of Entra's answer that gave no Azure token.
    pub fn for_entra_failure(failure: &Failure) -> Self {
        match failure {
            // Envoy's own answer to a callout that timed out.
            Failure::Entra(EntraError::ServerError { status: 504, .. }) => Self::EntraUnreachable,
            f if f.http_status() == 403 => Self::EntraRefused,
            f if f.http_status() == 503 => Self::EntraThrottled,
            _ => Self::EntraFailed,
        }
    }

    /// The counter of a request answered with `reply` instead of being forwarded.
    pub fn for_reply(reply: &Reply) -> Self {
        match (reply.status, reply.kind()) {
            (200..=299, _) => Self::RequestsAllowed,
            (401, _) => Self::RequestsRejected,
            (_, "policy-denied") => Self::RequestsDenied,
            _ => Self::RequestsRefused,
        }
    }
}

/// The counters' ids in the host: defined once per root context, shared with its requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// `None` when the host would not define them (nothing is counted then).
    ids: Option<[u32; Counter::ALL.len()]>,
}

impl Counters {
    /// Defines every counter in the host; a failure is logged once and nothing is counted.
    pub fn define<H: Host>(host: &H) -> Self {
        let mut ids = [0; Counter::ALL.len()];
        for (id, counter) in ids.iter_mut().zip(Counter::ALL) {
            match host.define_counter(counter.name()) {
                Ok(defined) => *id = defined,
                Err(status) => {
                    let name = counter.name();
                    let message = format!("could not define the counter {name}: {status:?}");
                    crate::flow::log(host, LogLevel::Warn, &message);
                    return Self { ids: None };
                }
            }
        }
        Self { ids: Some(ids) }
    }

    /// Adds one to `counter` (a failed host call is logged; the request goes on).
    pub fn add<H: Host>(&self, host: &H, counter: Counter) {
        let Some(ids) = self.ids else { return };
        if let Err(status) = host.increment_counter(ids[counter.index()], 1) {
            let message = format!("could not count {}: {status:?}", counter.name());
            crate::flow::log(host, LogLevel::Warn, &message);
        }
    }
}

#[cfg(test)]
mod tests;
