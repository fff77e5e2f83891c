//! Audit events: one JSON object per decision, for a log that a security team can query, and
//! one per answer from Entra, joined to its decision.
//!
//! An allow decision's event joins the three things an auditor asks about one deploy:
//!
//! - **who ran it**: the GitLab identity of the job (`project_id`, `pipeline_id`, `job_id`,
//!   `sha`, `ci_config_ref_uri`, `runner_environment`, `jti`, the token's SHA-256);
//! - **why it was let in**: the rule, the SHA-256 of the policy document, and the federated
//!   credential the plan gives the app that Entra matches the job's token with;
//! - **with what rights**: the identity (`azure.client_id`, `azure.principal_id`) and the role
//!   assignments it holds per the plan (`azure.role_assignments`).
//!
//! [`AuditEvent::entra_answer`] then records what Entra said (`correlation_id`, `trace_id`), keyed
//! by the `client-request-id` the gate sent and the decision's `token_sha256`, `jti` and `rule`.

use serde_json::{json, Map, Value};

use super::decision::{Decision, Verdict};
use crate::entra::{parse_token_response, EntraError};
use crate::{token_fingerprint, Claims};

/// The members of a decision event an Entra answer event repeats, so it joins without a lookup.
const JOINED_MEMBERS: [&str; 6] = ["rule", "token_sha256", "jti", "project_id", "job_id", "sha"];

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
        let evidence = &decision.evidence;
        let (outcome, azure) = match &decision.verdict {
            Verdict::Allow { target, .. } => (
                "allow",
                json!({
                    "tenant": target.tenant(),
                    "client_id": target.client_id(),
                    "scopes": target.scopes(),
                    "principal_id": evidence.principal_id,
                    "federated_credential": evidence.credential.as_ref().map(|c| json!({
                        "name": c.name,
                        "subject": c.subject,
                        "claims_matching_expression": c.expression,
                    })),
                    "role_assignments": evidence.role_assignments.iter().map(|r| json!({
                        "role": r.role,
                        "role_guid": r.role_guid,
                        "scope": r.scope,
                    })).collect::<Vec<_>>(),
                }),
            ),
            Verdict::Deny { .. } => ("deny", Value::Null),
        };
        let value = json!({
            "time": now,
            "decision": outcome,
            "rule": decision.rule(),
            "summary": decision.summary(),
            "policy_sha256": evidence.policy_sha256,
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
            "ci_config_ref_uri": claim("ci_config_ref_uri"),
            "runner_environment": claim("runner_environment"),
            "environment": claim("environment"),
            "user_login": claim("user_login"),
            "jti": claims.jti,
            "token_sha256": fingerprint,
            "azure": azure,
            "explanation": decision.lines(),
        });
        Self { value }
    }

    /// The event of Entra's answer to the token request of a decision: the decision's `rule`,
    /// `token_sha256`, `jti`, `project_id`, `job_id` and `sha` (from `decision`, its event), the
    /// `client-request-id` the request carried (`request_headers`), the HTTP status, the outcome
    /// (`access-token`, or the failure's kind with Entra's `error_codes`), and Entra's
    /// `correlation_id` and `trace_id`: from an error body, else from the answer's
    /// `client-request-id` (echoed when the request asked with `return-client-request-id`) and
    /// `x-ms-request-id` headers. Never the token or the access token.
    pub fn entra_answer(
        decision: &AuditEvent,
        request_headers: &[(String, String)],
        status: u16,
        response_headers: &[(String, String)],
        body: &[u8],
        now: u64,
    ) -> Self {
        let header = |headers: &[(String, String)], name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
        };
        let mut value = Map::new();
        value.insert("time".to_owned(), json!(now));
        value.insert("event".to_owned(), json!("entra_answer"));
        for member in JOINED_MEMBERS {
            value.insert(member.to_owned(), decision.value[member].clone());
        }
        value.insert("client_id".to_owned(), decision.value["azure"]["client_id"].clone());
        value.insert(
            "client_request_id".to_owned(),
            json!(header(request_headers, "client-request-id")),
        );
        value.insert("status".to_owned(), json!(status));
        let (outcome, codes, ids) = match parse_token_response(status, response_headers, body, now)
        {
            Ok(token) => {
                value.insert("expires_at".to_owned(), json!(token.expires_at));
                ("access-token".to_owned(), Vec::new(), None)
            }
            Err(error) => {
                let entra = error.entra_response();
                let codes = entra.map(|e| e.error_codes.clone()).unwrap_or_default();
                let ids = entra.map(|e| (e.correlation_id.clone(), e.trace_id.clone()));
                (failure_kind(&error), codes, ids)
            }
        };
        value.insert("outcome".to_owned(), json!(outcome));
        value.insert("error_codes".to_owned(), json!(codes));
        let (correlation, trace) = ids.unwrap_or((None, None));
        value.insert(
            "correlation_id".to_owned(),
            json!(correlation.or_else(|| header(response_headers, "client-request-id"))),
        );
        value.insert(
            "trace_id".to_owned(),
            json!(trace.or_else(|| header(response_headers, "x-ms-request-id"))),
        );
        Self { value: Value::Object(value) }
    }

    /// An event read back from one line of JSON (as [`AuditEvent::to_json`] or the gate's
    /// `take_audit` wrote it); `None` when the line is not a JSON object.
    pub fn from_json_line(line: &str) -> Option<Self> {
        match serde_json::from_str::<Value>(line) {
            Ok(value @ Value::Object(_)) => Some(Self { value }),
            _ => None,
        }
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

fn failure_kind(error: &EntraError) -> String {
    error.kind().to_owned()
}
