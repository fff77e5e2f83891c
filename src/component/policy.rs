//! WIT glue for `gitlab-azure:oidc/policy`: conversions only.

use super::convert::fail;
use super::exports::gitlab_azure::oidc::policy as wit;
use super::gitlab_azure::oidc::types::Failure;
use super::Component;
use crate::broker::{BrokerConfig, ConfigMode};
use crate::entra::certificate_thumbprints;
use crate::entra::federated::{self, FederatedCredential};
use crate::gate::{self, GateConfigError};
use crate::policy;
use crate::Claims;

/// The `policy` resource: a compiled policy document.
pub(super) struct PolicyResource(policy::Policy);

fn claims(json: &str) -> Result<Claims, Failure> {
    Claims::from_json(json.as_bytes()).map_err(|e| fail(gate::Failure::Claims(e)))
}

impl wit::Guest for Component {
    type Policy = PolicyResource;

    fn preflight(
        claims_json: String,
        credentials_json: String,
    ) -> Result<wit::PreflightReport, Failure> {
        let claims = claims(&claims_json)?;
        let credentials =
            FederatedCredential::parse_list(credentials_json.as_bytes()).map_err(fail)?;
        let report = federated::preflight(&claims, &credentials);
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
    fn new(document: String) -> Result<Self, Failure> {
        policy::Policy::parse(document.as_bytes())
            .map(Self)
            .map_err(|e| fail(GateConfigError::Policy(e)))
    }

    fn decide(
        &self,
        claims_json: String,
        fingerprint: String,
        now: u64,
    ) -> Result<wit::Decision, Failure> {
        let claims = claims(&claims_json)?;
        let decision = self.0.decide(&claims, now);
        let audit = policy::AuditEvent::with_fingerprint(&decision, &claims, &fingerprint, now);
        Ok(wit::Decision {
            allow: decision.is_allow(),
            rule: decision.rule().map(str::to_owned),
            target: decision.target().map(ToString::to_string),
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

    fn plan_broker(
        &self,
        gitlab_issuer: String,
        broker_config: Option<String>,
        certificates: Vec<(String, String, String)>,
        credentials: Vec<(String, String)>,
    ) -> Result<String, Failure> {
        let broker = match broker_config {
            Some(document) => Some(
                BrokerConfig::parse(document.as_bytes(), &|_| None, ConfigMode::Plan)
                    .map_err(|e| fail(GateConfigError::Broker(e)))?,
            ),
            None => None,
        };
        let mut given = Vec::new();
        for (name, file, pem) in certificates {
            let thumbprints =
                certificate_thumbprints(&pem).map_err(|e| fail(GateConfigError::Certificate(e)))?;
            given.push((name, thumbprints, Some(file)));
        }
        for (name, thumbprints) in broker.iter().flat_map(|b| b.thumbprints.iter()) {
            if !given.iter().any(|(n, _, _)| n == name) {
                given.push((name.clone(), thumbprints.clone(), None));
            }
        }
        let mut lists = Vec::new();
        for (client_id, document) in credentials {
            let list = FederatedCredential::parse_list(document.as_bytes()).map_err(fail)?;
            lists.push(((!client_id.is_empty()).then_some(client_id), list));
        }
        let input = policy::BrokerPlanInput {
            gitlab_issuer: &gitlab_issuer,
            issuer: broker.as_ref().and_then(|b| b.issuer.as_deref()),
            certificates: &given,
            credentials: &lists,
        };
        let plan =
            policy::plan_broker(&self.0, &input).map_err(|e| fail(gate::Failure::Plan(e)))?;
        let mut doc = plan.to_json();
        doc["commands"] = serde_json::json!(plan.commands());
        Ok(doc.to_string())
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
