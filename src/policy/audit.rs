//! Audit events: one JSON object per decision, for a log that a security team can query.

use serde_json::{json, Value};

use super::decision::{Decision, Verdict};
use crate::{token_fingerprint, Claims};

/// What to record about one decision. It holds the token's SHA-256 fingerprint, never the token
/// (a bearer credential until it expires), and no secret.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEvent {
    value: Value,
}

impl AuditEvent {
    /// Builds the event for `decision` about the verified `claims` of `token`, decided at `now`.
    pub fn new(decision: &Decision, claims: &Claims, token: &str, now: u64) -> Self {
        Self::with_fingerprint(decision, claims, &token_fingerprint(token), now)
    }

    /// Like [`AuditEvent::new`], with the token's [`token_fingerprint`] already at hand (a
    /// [`crate::VerifiedToken`] carries it): hashing a 2 KiB token again costs more in
    /// WebAssembly than the rest of the event.
    pub fn with_fingerprint(
        decision: &Decision,
        claims: &Claims,
        fingerprint: &str,
        now: u64,
    ) -> Self {
        let claim = |name: &str| match claims.raw.get(name) {
            Some(Value::String(s)) => Value::String(s.clone()),
            Some(Value::Number(n)) => Value::String(n.to_string()),
            _ => Value::Null,
        };
        let (outcome, azure) = match &decision.verdict {
            Verdict::Allow { target, .. } => (
                "allow",
                json!({
                    "tenant": target.tenant(),
                    "client_id": target.client_id(),
                    "scopes": target.scopes(),
                }),
            ),
            Verdict::Deny { .. } => ("deny", Value::Null),
        };
        let value = json!({
            "time": now,
            "decision": outcome,
            "rule": decision.rule(),
            "summary": decision.summary(),
            "issuer": claims.iss,
            "subject": claims.sub,
            "project_id": claim("project_id"),
            "project_path": claim("project_path"),
            "job_project_path": claim("job_project_path"),
            "pipeline_id": claim("pipeline_id"),
            "pipeline_source": claim("pipeline_source"),
            "job_id": claim("job_id"),
            "ref": claim("ref"),
            "ref_type": claim("ref_type"),
            "sha": claim("sha"),
            "environment": claim("environment"),
            "user_login": claim("user_login"),
            "jti": claims.jti,
            "token_sha256": fingerprint,
            "azure": azure,
            "explanation": decision.lines(),
        });
        Self { value }
    }

    /// The event as a JSON value.
    pub fn as_json(&self) -> &Value {
        &self.value
    }

    /// The event as one line of compact JSON (for JSON-lines logs).
    pub fn to_json(&self) -> String {
        self.value.to_string()
    }
}
