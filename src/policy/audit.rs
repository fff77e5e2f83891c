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
use crate::entra::{parse_token_response, AccessToken, EntraError};
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

    /// The members of this decision event that an Entra answer event repeats (`rule`,
    /// `token_sha256`, `jti`, `project_id`, `job_id`, `sha` and the identity's `client_id`), so
    /// the answer joins its decision without a lookup.
    pub fn joined(&self) -> Map<String, Value> {
        let mut joined: Map<String, Value> = JOINED_MEMBERS
            .iter()
            .map(|&member| (member.to_owned(), self.value[member].clone()))
            .collect();
        joined.insert("client_id".to_owned(), self.value["azure"]["client_id"].clone());
        joined
    }

    /// The event of Entra's answer to the token request of a decision: the decision's members
    /// (see [`AuditEvent::joined`]), the `client-request-id` the request carried
    /// (`request_headers`), the HTTP status, the outcome (`access-token`, or the failure's kind
    /// with Entra's `error_codes`), and Entra's `correlation_id` and `trace_id`: from an error
    /// body, else from the answer's `client-request-id` (echoed when the request asked with
    /// `return-client-request-id`) and `x-ms-request-id` headers. Never the token or the access
    /// token. The gate queues this event itself when it reads an answer ([`crate::Gate::finish`]);
    /// this is for joining logs after the fact.
    pub fn entra_answer(
        decision: &AuditEvent,
        request_headers: &[(String, String)],
        status: u16,
        response_headers: &[(String, String)],
        body: &[u8],
        now: u64,
    ) -> Self {
        let outcome = parse_token_response(status, response_headers, body, now);
        let answer = EntraAnswer { status, headers: response_headers, outcome: outcome.as_ref() };
        Self::answered(
            Some(&decision.joined()),
            header(request_headers, CLIENT_REQUEST_ID),
            &answer,
            now,
        )
    }

    /// The event of an Entra answer already read: `joined` are the decision's members (`None`
    /// when the request was not made for a policy decision, or is no longer known: they are
    /// then `null`), `request_id` the `client-request-id` the request carried.
    pub fn answered(
        joined: Option<&Map<String, Value>>,
        request_id: Option<String>,
        answer: &EntraAnswer<'_>,
        now: u64,
    ) -> Self {
        let mut value = Map::new();
        value.insert("time".to_owned(), json!(now));
        value.insert("event".to_owned(), json!("entra_answer"));
        for member in JOINED_MEMBERS.iter().copied().chain(["client_id"]) {
            let found = joined.and_then(|j| j.get(member)).cloned().unwrap_or(Value::Null);
            value.insert(member.to_owned(), found);
        }
        value.insert("client_request_id".to_owned(), json!(request_id));
        value.insert("status".to_owned(), json!(answer.status));
        let (outcome, codes, ids) = match answer.outcome {
            Ok(token) => {
                value.insert("expires_at".to_owned(), json!(token.expires_at));
                ("access-token".to_owned(), Vec::new(), None)
            }
            Err(error) => {
                let entra = error.entra_response();
                let codes = entra.map(|e| e.error_codes.clone()).unwrap_or_default();
                let ids = entra.map(|e| (e.correlation_id.clone(), e.trace_id.clone()));
                (error.kind().to_owned(), codes, ids)
            }
        };
        value.insert("outcome".to_owned(), json!(outcome));
        value.insert("error_codes".to_owned(), json!(codes));
        let (correlation, trace) = ids.unwrap_or((None, None));
        value.insert(
            "correlation_id".to_owned(),
            json!(correlation.or_else(|| header(answer.headers, CLIENT_REQUEST_ID))),
        );
        value.insert(
            "trace_id".to_owned(),
            json!(trace.or_else(|| header(answer.headers, "x-ms-request-id"))),
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

/// Entra's answer to a token request, read: its status, its headers and what they gave.
#[derive(Clone, Copy, Debug)]
pub struct EntraAnswer<'a> {
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: &'a [(String, String)],
    /// The Azure token, or why there is none.
    pub outcome: Result<&'a AccessToken, &'a EntraError>,
}

/// The header that carries the request's correlation id, both ways.
const CLIENT_REQUEST_ID: &str = "client-request-id";

/// The trimmed value of the first header called `name` (any case).
fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned())
}
