//! WIT glue for `gitlab-azure:oidc/policy`: conversions only.

use super::convert::{fail, severity};
use super::exports::gitlab_azure::oidc::policy as wit;
use super::gitlab_azure::oidc::types::Failure;
use super::Component;
use crate::broker::{BrokerConfig, ConfigMode};
use crate::entra::certificate_thumbprints;
use crate::entra::federated::{self, FederatedCredential};
use crate::gate::{self, GateConfigError};
use crate::policy::{self, PlanOptions, SubjectForm};
use crate::Claims;

/// The `policy` resource: a compiled policy document.
pub(super) struct PolicyResource(policy::Policy);

fn load(document: &str) -> Result<policy::Policy, Failure> {
    policy::Policy::parse(document.as_bytes()).map_err(|e| fail(GateConfigError::Policy(e)))
}

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

    fn audit_rbac(
        policy: String,
        assignments: String,
        definitions: Option<String>,
        options: wit::AuditOptions,
    ) -> Result<wit::RbacReport, Failure> {
        let policy = load(&policy)?;
        let report = policy::audit_rbac(
            &policy,
            assignments.as_bytes(),
            definitions.as_deref().map(str::as_bytes),
        )
        .map_err(fail)?;
        let threshold = severity(options.fail_on);
        Ok(wit::RbacReport {
            text: report.to_text(),
            json: report.to_json(),
            code_quality: report.to_code_quality(&options.code_quality_path),
            fails: report.fails(threshold),
            findings: u32::try_from(report.findings.len()).unwrap_or(u32::MAX),
        })
    }
}

impl wit::GuestPolicy for PolicyResource {
    fn new(document: String) -> Result<Self, Failure> {
        load(&document).map(Self)
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
            policy::plan_broker(&self.0, &input).map_err(|e| fail(gate::Failure::BrokerPlan(e)))?;
        let mut doc = plan.to_json();
        doc["commands"] = serde_json::json!(plan.commands());
        Ok(doc.to_string())
    }

    fn plan(&self, options: wit::PlanOptions) -> Result<wit::PlanReport, Failure> {
        let mut plan_options =
            PlanOptions::new(options.issuer).subject_form(match options.subject_form {
                wit::SubjectForm::ProjectPath => SubjectForm::ProjectPath,
                wit::SubjectForm::ProjectId => SubjectForm::ProjectId,
            });
        if let Some(audience) = options.audience {
            plan_options = plan_options.audience(audience);
        }
        let plan = policy::plan(&self.0, &plan_options).map_err(fail)?;
        Ok(wit::PlanReport {
            document: plan.to_json().to_string(),
            text: plan.to_text(),
            credentials_json: plan.credentials_json().to_string(),
            commands: plan.credential_commands(),
            role_commands: plan.role_commands(),
            role_assignments_json: plan.role_assignments_arm().to_string(),
            warnings: plan
                .grouped_warnings
                .iter()
                .map(|g| wit::RuleWarnings {
                    rule: g.rule.clone(),
                    warnings: g.warnings.iter().map(|(_, message)| message.clone()).collect(),
                })
                .collect(),
        })
    }
}
