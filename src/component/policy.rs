//! WIT glue for `gitlab-azure:oidc/policy`: conversions only.

use super::exports::gitlab_azure::oidc::policy as wit;
use super::exports::gitlab_azure::oidc::verify::Claims as WitClaims;
use crate::policy;

/// The `policy` resource: a compiled policy document.
pub(super) struct PolicyResource(policy::Policy);

fn failure(kind: &str, message: String) -> wit::PolicyFailure {
    wit::PolicyFailure { kind: kind.to_owned(), message, rule: None, field: None }
}

/// The core claims behind a WIT claims record: re-read from `raw-json`, which carries every
/// claim the token had, so conditions on claims the record does not name still work.
fn core_claims(claims: &WitClaims) -> Result<crate::Claims, wit::PolicyFailure> {
    let limits = crate::Limits::default();
    match crate::json::parse(claims.raw_json.as_bytes(), limits.max_json_depth) {
        Ok(serde_json::Value::Object(map)) => crate::Claims::from_payload(map)
            .map_err(|e| failure("claims-invalid", format!("the claims do not parse: {e}"))),
        _ => Err(failure("claims-invalid", "`raw-json` is not a JSON object of claims".to_owned())),
    }
}

impl wit::Guest for super::Component {
    type Policy = PolicyResource;

    fn preflight(
        claims: WitClaims,
        credentials_json: String,
    ) -> Result<wit::PreflightReport, wit::PolicyFailure> {
        let claims = core_claims(&claims)?;
        let credentials = policy::FederatedCredential::parse_list(credentials_json.as_bytes())
            .map_err(|e| failure(e.kind(), e.to_string()))?;
        let report = policy::preflight(&claims, &credentials);
        Ok(wit::PreflightReport {
            accepted: report.accepted(),
            accepted_by: report.accepted_by.clone(),
            nearest: report.nearest.as_ref().map(|n| n.name.clone()),
            differences: report
                .nearest
                .as_ref()
                .map(|n| n.differences.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            report: report.to_string(),
        })
    }
}

impl wit::GuestPolicy for PolicyResource {
    fn new(document: String) -> Result<Self, wit::PolicyFailure> {
        policy::Policy::parse(document.as_bytes()).map(Self).map_err(|e| {
            let at = e.location();
            wit::PolicyFailure {
                kind: e.kind().to_owned(),
                message: e.to_string(),
                rule: at.and_then(|l| l.rule.clone()),
                field: at.map(|l| l.field.clone()),
            }
        })
    }

    fn decide(
        &self,
        claims: WitClaims,
        token: String,
        now: u64,
    ) -> Result<wit::Decision, wit::PolicyFailure> {
        let claims = core_claims(&claims)?;
        let decision = self.0.decide(&claims, now);
        let audit = policy::AuditEvent::new(&decision, &claims, &token, now);
        Ok(wit::Decision {
            allow: decision.is_allow(),
            rule: decision.rule().map(str::to_owned),
            target: decision.target().map(|t| wit::AzureTarget {
                tenant: t.tenant.clone(),
                client_id: t.client_id.clone(),
                scopes: t.scopes.clone(),
            }),
            summary: decision.summary(),
            outcomes: decision
                .explanation
                .iter()
                .map(|o| wit::RuleOutcome {
                    rule: o.rule.clone(),
                    effect: o.effect.name().to_owned(),
                    matched: o.result.is_ok(),
                    reason: o.result.as_ref().err().map(ToString::to_string),
                })
                .collect(),
            lines: decision.lines(),
            audit_json: audit.to_json(),
        })
    }

    fn warnings(&self) -> Vec<String> {
        self.0.warnings().iter().map(ToString::to_string).collect()
    }

    fn plan(&self, issuer: String, audience: String) -> wit::PlanReport {
        let plan = policy::plan(&self.0, &issuer, &audience);
        wit::PlanReport {
            credentials_json: plan.to_json().to_string(),
            commands: plan.commands(),
            warnings: plan.warnings.iter().map(ToString::to_string).collect(),
        }
    }
}
