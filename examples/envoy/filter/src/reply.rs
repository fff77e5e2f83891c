//! Local replies: every refusal as an HTTP status, a few headers and a small JSON body that names
//! the error kind and a hint. Bodies never contain the token.

use gitlab_azure_oidc::entra::EntraError;
use gitlab_azure_oidc::policy::Decision;
use gitlab_azure_oidc::{token_fingerprint, VerifyError};
use serde_json::{json, Value};

use crate::request::MissingToken;

/// A reply the filter sends instead of forwarding the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u32,
    /// The headers, `content-type` first.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: String,
    /// The error kind, as in the body's `error` member (kept for the audit line).
    kind: String,
}

impl Reply {
    fn new(status: u32, kind: &str, hint: &str) -> Self {
        Self::json(status, kind, json!({ "hint": hint }))
    }

    /// A reply whose body is `body` (an object) with `error` set to `kind`.
    fn json(status: u32, kind: &str, mut body: Value) -> Self {
        body["error"] = json!(kind);
        Self {
            status,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: body.to_string(),
            kind: kind.to_owned(),
        }
    }

    fn header(mut self, name: &str, value: String) -> Self {
        self.headers.push((name.to_owned(), value));
        self
    }

    /// The error kind in the body, for logs and tests.
    pub fn kind(&self) -> &str {
        &self.kind
    }
}

/// 401: no token in the request.
pub fn missing_token(header: &str, why: MissingToken) -> Reply {
    let hint = match why {
        MissingToken::NoHeader => {
            format!("send the GitLab CI ID token (id_tokens) in the `{header}` header")
        }
        MissingToken::WrongScheme => {
            format!("the `{header}` header must carry the GitLab ID token as `Bearer <token>`")
        }
    };
    Reply::new(401, "missing-token", &hint).header("www-authenticate", "Bearer".to_owned())
}

/// 401: the token did not verify. The hint is the core's message, which names claims and keys but
/// never holds the token.
pub fn invalid_token(error: &VerifyError) -> Reply {
    Reply::new(401, error.kind(), &error.to_string()).header(
        "www-authenticate",
        format!("Bearer error=\"invalid_token\", error_description=\"{}\"", error.kind()),
    )
}

/// 403: the policy denied the job. The hint is the decision's summary; the per-rule explanation
/// goes to the audit log only, so callers do not learn the policy.
pub fn denied(decision: &Decision) -> Reply {
    Reply::new(403, "policy-denied", &decision.summary()).header(
        "www-authenticate",
        "Bearer error=\"insufficient_scope\", error_description=\"policy-denied\"".to_owned(),
    )
}

/// 503: no JWKS yet (the issuer is unreachable); `Retry-After` says when the next fetch may run.
pub fn jwks_unavailable(detail: &str, retry_after: u64) -> Reply {
    Reply::new(
        503,
        "jwks-unavailable",
        &format!("the issuer's signing keys could not be fetched ({detail}); retry later"),
    )
    .header("retry-after", retry_after.max(1).to_string())
}

/// 503: too many requests are already waiting for the JWKS.
pub fn overloaded() -> Reply {
    Reply::new(503, "overloaded", "too many requests are waiting for the issuer's keys; retry")
        .header("retry-after", "1".to_owned())
}

/// 503: Entra did not answer in time, or the call could not be made.
pub fn entra_unreachable(detail: &str) -> Reply {
    Reply::new(503, "entra-unreachable", &format!("Entra did not answer ({detail}); retry later"))
}

/// 502: the token request could not be built (the core refused the token's shape), or the
/// configuration names no target for the rule.
pub fn internal(kind: &str, detail: &str) -> Reply {
    Reply::new(502, kind, detail)
}

/// Maps Entra's refusal: 403 with the AADSTS hint for client errors; 503 with `Retry-After` for
/// throttling, timeouts (504) and temporary failures; 502 for other server errors and answers
/// that are not Entra's.
pub fn entra_error(error: &EntraError) -> Reply {
    let status = match error {
        EntraError::RateLimited { .. } => 503,
        // 503 is Entra's "try later"; 504 is also what Envoy answers a callout that timed out.
        EntraError::ServerError { status: 503 | 504, .. } => 503,
        EntraError::Entra(e) if e.is_retryable() => 503,
        EntraError::Entra(_) => 403,
        _ => 502,
    };
    let mut body = json!({});
    if let Some(entra) = error.entra_response() {
        body["entra_error"] = json!(entra.error);
        body["aadsts"] = json!(entra.error_codes);
        if let Some(trace) = &entra.trace_id {
            body["trace_id"] = json!(trace);
        }
        body["hint"] = json!(entra.hint());
    } else {
        body["hint"] = json!(error.to_string());
    }
    let reply = Reply::json(status, error.kind(), body);
    match error.retry_after() {
        Some(retry) => reply.header("retry-after", retry.raw.clone()),
        None => reply,
    }
}

/// The audit line of a request refused before the policy ran (no token, invalid token, keys
/// unavailable): JSON with the status, the error kind and the token's fingerprint, never the token.
pub fn reject_event(reply: &Reply, token: Option<&str>, now: u64) -> String {
    json!({
        "time": now,
        "decision": "reject",
        "status": reply.status,
        "error": reply.kind(),
        "token_sha256": token.map(token_fingerprint),
    })
    .to_string()
}

#[cfg(test)]
mod tests;
