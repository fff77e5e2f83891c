//! Local replies: every refusal as an HTTP status, a few headers and a small JSON body that names
//! the error kind and a hint. The core's [`Failure`] gives the status, the kind, the hint and
//! `Retry-After`; only what happens before the core is asked (no token, too many waiting, Entra
//! out of reach) is the filter's own. Bodies never contain the token.

use gitlab_azure_oidc::broker::vend::{self, Explain, VendReply};
use gitlab_azure_oidc::gate::Category;
use gitlab_azure_oidc::{token_fingerprint, Failure};
use serde_json::{json, Value};

use crate::request::MissingToken;

/// A reply the filter sends instead of forwarding the request. Serializable: a failed shared
/// fetch leaves its replies for the other workers' waiting requests.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

impl std::fmt::Debug for Reply {
    /// A success's body is the credential vended (or a public document): redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = if self.status == 200 { "[redacted]" } else { self.body.as_str() };
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &body)
            .field("kind", &self.kind)
            .finish()
    }
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

/// The reply for a failure of the gate, as the core classifies it: 401 for a refused token and
/// 403 for a deny (each with a `WWW-Authenticate` challenge), 403 for Entra's refusal of the
/// identity with its AADSTS hint, 503 with `Retry-After` for what may pass later, 502 for the
/// rest. The hint is the core's message (it names claims and keys, never the token); a deny's
/// is the decision's summary, as the per-rule explanation goes to the audit log only, so callers
/// do not learn the policy.
pub fn failure(failure: &Failure) -> Reply {
    let mut body = json!({});
    let hint = match failure.entra_response() {
        Some(entra) => {
            body["entra_error"] = json!(entra.error);
            body["aadsts"] = json!(entra.error_codes);
            if let Some(trace) = &entra.trace_id {
                body["trace_id"] = json!(trace);
            }
            failure.hint()
        }
        None => None,
    };
    body["hint"] = json!(hint.unwrap_or_else(|| failure.to_string()));
    let reply = Reply::json(u32::from(failure.http_status()), failure.kind(), body);
    let reply = match failure.category() {
        Category::Token => reply.header(
            "www-authenticate",
            format!("Bearer error=\"invalid_token\", error_description=\"{}\"", failure.kind()),
        ),
        Category::Denied => reply.header(
            "www-authenticate",
            "Bearer error=\"insufficient_scope\", error_description=\"policy-denied\"".to_owned(),
        ),
        _ => reply,
    };
    match failure.retry_after() {
        Some(seconds) => reply.header("retry-after", seconds.to_string()),
        None => reply,
    }
}

/// The gate has no keys because the issuer could not be reached ([`Failure::NoKeys`]);
/// `Retry-After` says when the next fetch may run, and the hint says why the last one failed.
pub fn jwks_unavailable(detail: &str, retry_after: u64) -> Reply {
    let failure = Failure::NoKeys;
    Reply::new(
        u32::from(failure.http_status()),
        failure.kind(),
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

/// 502: the filter cannot handle the request (no configuration, a token endpoint that is not a
/// URL); neither happens with a configuration Envoy accepted.
pub fn internal(kind: &str, detail: &str) -> Reply {
    Reply::new(502, kind, detail)
}

/// 503: too many requests are already waiting for Azure tokens (or the managed identity's).
pub fn overloaded_tokens() -> Reply {
    Reply::new(503, "overloaded", "too many requests are waiting for Azure tokens; retry")
        .header("retry-after", "1".to_owned())
}

/// A reply of the token-vending route, built by the core (`accessToken`... on success, `error`,
/// `message`, `hint` on failure; `Cache-Control: no-store` always). `kind` is what the audit
/// line and the counters see. The body of a success holds a credential: never log it.
pub fn vended(reply: VendReply, kind: &str) -> Reply {
    Reply {
        status: u32::from(reply.status),
        headers: reply.headers,
        body: reply.body,
        kind: kind.to_owned(),
    }
}

/// The vending route's reply for `failure`: the core's error JSON, 429 with `Retry-After` when
/// Entra throttles, and a deny explained as `explain` says.
pub fn vend_failure(failure: &Failure, explain: Explain) -> Reply {
    vended(vend::error_reply(failure, explain), failure.kind())
}

/// A reply of the filter's own (the keys unavailable, too many waiting, Entra out of reach) in
/// the vending route's shape: `message` beside `error` and `hint`, and `Cache-Control:
/// no-store`.
pub fn vend_style(mut reply: Reply) -> Reply {
    if let Ok(Value::Object(mut body)) = serde_json::from_str::<Value>(&reply.body) {
        if !body.contains_key("message") {
            let message = body.get("hint").cloned().unwrap_or_else(|| json!(reply.kind));
            body.insert("message".to_owned(), message);
        }
        reply.body = Value::Object(body).to_string();
    }
    reply.headers.push(("cache-control".to_owned(), "no-store".to_owned()));
    reply
}

/// 500: Envoy never handed the vending request's body to the filter (see
/// `flow::Stream::on_http_request_body`).
pub fn body_withheld() -> Reply {
    vend_style(Reply::new(
        500,
        "body-withheld",
        "Envoy did not pass the request body to the filter: set `allow_on_headers_stop_iteration: \
         true` in the wasm filter's plugin config (Envoy 1.35 and later), or send `kind` and \
         `scope` as query parameters with no body",
    ))
}

/// 403: the route vends access tokens only (`vending.assertions` is false).
pub fn assertions_off() -> Reply {
    vend_style(Reply::new(
        403,
        "assertion-vending-off",
        "this broker answers Azure access tokens only; ask without `kind` (or `kind: \
         access_token`)",
    ))
}

/// An issuer document (the discovery document or the JWKS), public and cacheable; 405 for a
/// method other than GET and HEAD.
pub fn document(method: &str, body: &str, max_age: u64) -> Reply {
    if !(method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD")) {
        return Reply::new(405, "method-not-allowed", "the issuer's documents answer GET")
            .header("allow", "GET, HEAD".to_owned());
    }
    Reply {
        status: 200,
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("cache-control".to_owned(), format!("public, max-age={max_age}")),
        ],
        body: body.to_owned(),
        kind: "issuer-document".to_owned(),
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
