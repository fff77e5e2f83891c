//! # Policy: which GitLab jobs may become which Azure identity
//!
//! Entra's federated credentials can match only `iss`, `aud` and `sub`, exactly (or `sub` with
//! `*`/`?` in the preview flexible form), at most 20 per app. This module decides on **any**
//! claim, explains every decision, writes an audit event for it, and checks a token against an
//! app's federated credentials before Entra answers with an opaque AADSTS code. It is pure: no
//! I/O, no clock (`now` is a parameter).
//!
//! - [`Policy::parse`] loads a JSON document (schema: `schema/policy.schema.json`, examples:
//!   `examples/policies/`); [`Policy::decide`] returns a [`Decision`] with its explanation.
//! - [`AuditEvent`] is one JSON object per decision: never the token, only its fingerprint.
//! - [`FederatedCredential::parse_list`](crate::entra::federated::FederatedCredential::parse_list) reads `az ad app federated-credential list` output;
//!   [`preflight`](crate::entra::federated::preflight) says whether Entra would accept a token, and if not, what differs.
//! - [`plan`] derives the federated credentials each app needs (for an issuer checked for near
//!   misses, in either subject form), with a warning for everything Entra cannot check, and the
//!   role assignments each identity needs ([`crate::rbac::plan`]).
//! - [`audit_rbac`] checks an `az role assignment list` export against the roles the policy
//!   declares, weighted by who can become each identity.
//!
//! ## The policy document
//!
//! ```json
//! {
//!   "description": "payments: production deploys",
//!   "rules": [
//!     { "name": "no-self-hosted-prod", "effect": "deny",
//!       "when": { "environment": "production", "runner_environment": "self-hosted" } },
//!     { "name": "deploy-prod", "effect": "allow",
//!       "when": { "project_path": "acme/payments", "project_id": 4242, "ref": "main",
//!                 "ref_protected": true, "environment": "production" },
//!       "same_project": true, "max_token_age": 600,
//!       "azure": { "tenant": "contoso.onmicrosoft.com",
//!                  "client_id": "11111111-2222-3333-4444-555555555555",
//!                  "scopes": ["https://management.azure.com/.default"] } }
//!   ]
//! }
//! ```
//!
//! **Evaluation.** Deny rules are checked first: if any matches, the job is denied. Then the
//! first allow rule that matches wins. If nothing matches, the job is denied. Every rule is
//! evaluated anyway, so the explanation covers all of them.
//!
//! **Rule fields.** `name` (unique; letters, digits, `-`, `_`), `description`, `effect`
//! (`allow` or `deny`), `when` (required), `azure` (`{tenant, client_id, scopes}`, and for the
//! RBAC side `principal_id`, `groups` and `roles` ([`Access`]); required on allow rules, refused
//! on deny rules: one rule, one identity), and the guards:
//! - `same_project: true`: `project_path` must equal `job_project_path` (GitLab 18.4+). For
//!   merge-request pipelines from forks, `project_path` (and `sub`) name the fork while
//!   `job_project_path` names the project running the job: this refuses them.
//! - `max_token_age: 600`: `now - iat` must be at most this many seconds.
//! - `runner_environment: ["gitlab-hosted"]`, `pipeline_source: ["push", "web"]`: allowed values.
//!
//! A rule matches when `when` holds, then each guard in the order above.
//!
//! **Conditions.** A condition is an object whose members must all hold, or an array of
//! conditions that must all hold in that order. Each member is a claim name (any claim,
//! including those this version does not name) with a matcher, or a combinator:
//!
//! | member | holds when |
//! |---|---|
//! | `"ref": "main"` | the claim equals the value |
//! | `"project_id": 42` or `"42"` | ids compare as ids: both match GitLab's `"42"` |
//! | `"ref_protected": true` | flags: matches GitLab's `"true"` (a JSON bool is accepted) |
//! | `"ref": ["main", "develop"]` | the claim equals one of the values |
//! | `"ref": {"equals": "main"}` / `{"one_of": [...]}` | the same, spelled out |
//! | `"project_path": {"glob": "acme/**"}` | the claim matches the glob (or one of a list) |
//! | `"environment": {"present": true}` | the claim is present (`false`: absent; `null` is absent) |
//! | `"all": [c, ...]` / `"any": [c, ...]` | every / at least one condition holds |
//! | `"not": c` | the condition does not hold |
//!
//! Globs: `*` within a path segment, `?` one character, `**` across `/`, `\` escapes. When a
//! claim is an array (`groups_direct`), a matcher holds when any element matches. Members of one
//! object are evaluated in name order (JSON objects are unordered); use an array to choose the
//! order in which failures are reported. The explicit form `{"claim": "name", "glob": "..."}`
//! reaches any claim name, including `all`, `any`, `not`, `claim` and names that look like a typo
//! of a known claim (those are refused in the short form, since a misspelt claim never matches
//! and a deny rule with one would silently deny nothing).
//!
//! **Values.** Values are checked like claim names, against GitLab's documented values in the
//! claim table ([`crate::ClaimSpec::values`]): `ref_type` is `branch` or `tag`, a
//! `deployment_tier` of `Production` is refused with "did you mean `production`?", and a glob on
//! a closed list must match one of its values.
//!
//! **Pin ids.** Paths can be re-registered after a project is deleted or renamed; ids cannot.
//! Put `project_id` (or `namespace_id`) next to `project_path` (or `namespace_path`):
//! [`Policy::warnings`] flags rules that do not.

mod audit;
mod condition;
mod credential;
mod decision;
mod document;
mod error;
mod glob;
mod plan;
mod rbac;

use std::fmt;

use std::collections::BTreeMap;

use crate::entra::federated;
use crate::entra::AzureTarget;
use crate::rbac::{Catalogue, RoleNeed};
use crate::text::hex;
use crate::Claims;

pub use audit::{AuditEvent, EntraAnswer};
pub use credential::RuleCredential;
pub use decision::{
    CredentialEvidence, Decision, Effect, Evidence, Mismatch, RoleEvidence, RuleOutcome, Verdict,
};
pub use error::{Location, PolicyError};
pub use plan::{
    plan, plan_broker, AppPlan, BrokerApp, BrokerPlan, BrokerPlanError, BrokerPlanInput,
    BrokerPlanWarning, CertificateUpload, IssuerDocuments, Plan, PlanError, PlanOptions,
    PlanWarning, RuleWarnings, SubjectForm,
};
pub use rbac::audit_rbac;

use condition::Condition;

/// One rule of a policy, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    name: String,
    description: Option<String>,
    effect: Effect,
    when: Condition,
    same_project: bool,
    max_token_age: Option<u64>,
    guards: Vec<Condition>,
    target: Option<AzureTarget>,
    credential: Option<RuleCredential>,
    access: Option<Access>,
}

/// What an allow rule says about its identity in Azure (the RBAC members of its `azure` block):
/// the service principal's object id, its groups and the role assignments it needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    principal_id: Option<String>,
    groups: Vec<String>,
    roles: Vec<RoleNeed>,
}

impl Access {
    /// `azure.principal_id`: the object id of the app's service principal, lowercase (not the
    /// client id: `az ad sp show --id <client-id> --query id -o tsv`).
    pub fn principal_id(&self) -> Option<&str> {
        self.principal_id.as_deref()
    }

    /// `azure.groups`: object ids of the Entra groups the service principal is a member of, so
    /// that role assignments of those groups count for it.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// `azure.roles`: the role assignments the identity needs.
    pub fn roles(&self) -> &[RoleNeed] {
        &self.roles
    }
}

impl Rule {
    /// The rule's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rule's description, if it has one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Allow or deny.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The Azure target of an allow rule.
    pub fn target(&self) -> Option<&AzureTarget> {
        self.target.as_ref()
    }

    /// The allow rule's `azure.credential`; `None` when the policy names none (the gate's
    /// default credential then applies: `federated` unless the host gives another).
    pub fn credential(&self) -> Option<&RuleCredential> {
        self.credential.as_ref()
    }

    /// The RBAC side of an allow rule's `azure` block.
    pub fn access(&self) -> Option<&Access> {
        self.access.as_ref()
    }

    /// The rule's `max_token_age` in seconds: the only check that depends on the time, so a host
    /// that keeps decisions knows how long one stands.
    pub fn max_token_age(&self) -> Option<u64> {
        self.max_token_age
    }

    /// Checks the rule's conditions, then its guards; the first that fails.
    fn check(&self, claims: &Claims, now: u64) -> Result<(), Mismatch> {
        self.when.check(&claims.raw)?;
        if self.same_project {
            check_same_project(claims)?;
        }
        self.guards.iter().try_for_each(|g| g.check(&claims.raw))?;
        if let Some(max_age) = self.max_token_age {
            let Some(iat) = claims.iat else {
                return Err(Mismatch::Claim {
                    claim: "iat".to_owned(),
                    found: None,
                    expected: "present (max_token_age needs it)".to_owned(),
                });
            };
            let age = now.saturating_sub(iat);
            if age > max_age {
                return Err(Mismatch::TokenTooOld { age, max_age });
            }
        }
        Ok(())
    }

    /// Every claim the rule tests, in order, guards included.
    fn claims(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.when.claims(&mut out);
        if self.same_project {
            out.extend(["project_path", "job_project_path"]);
        }
        self.guards.iter().for_each(|g| g.claims(&mut out));
        if self.max_token_age.is_some() {
            out.push("iat");
        }
        out
    }
}

fn check_same_project(claims: &Claims) -> Result<(), Mismatch> {
    let g = &claims.gitlab;
    let Some(project_path) = &g.project_path else {
        return Err(Mismatch::Claim {
            claim: "project_path".to_owned(),
            found: None,
            expected: "present (same_project compares it with job_project_path)".to_owned(),
        });
    };
    let Some(job_project_path) = &g.job_project_path else {
        return Err(Mismatch::Claim {
            claim: "job_project_path".to_owned(),
            found: None,
            expected: "present (same_project needs GitLab 18.4 or later, which adds it)".to_owned(),
        });
    };
    if project_path == job_project_path {
        Ok(())
    } else {
        Err(Mismatch::ForkPipeline {
            project_path: project_path.clone(),
            job_project_path: job_project_path.clone(),
        })
    }
}

/// Something legal but risky in a policy, found when it is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyWarning {
    /// An allow rule tests a path but not the matching id: paths can be re-registered by someone
    /// else after a deletion or rename, ids cannot.
    PathWithoutId {
        /// The rule.
        rule: String,
        /// `project_path` or `namespace_path`.
        path_claim: String,
        /// `project_id` or `namespace_id`.
        id_claim: String,
    },
    /// A role assignment an allow rule declares is risky or unusual (write access at a
    /// subscription, escalation, broader than a task-sized role, the ACR ABAC-mode caveat).
    Role {
        /// The rule.
        rule: String,
        /// What is wrong with the role.
        warning: crate::rbac::PlanWarning,
    },
    /// An allow rule tests no project or namespace at all: any project on the issuer can match.
    Unscoped {
        /// The rule.
        rule: String,
    },
}

impl PolicyWarning {
    /// A stable, kebab-case name for this kind of warning.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PathWithoutId { .. } => "path-without-id",
            Self::Role { warning, .. } => warning.kind(),
            Self::Unscoped { .. } => "unscoped",
        }
    }

    /// The rule the warning is about.
    pub fn rule(&self) -> &str {
        match self {
            Self::PathWithoutId { rule, .. }
            | Self::Role { rule, .. }
            | Self::Unscoped { rule } => rule,
        }
    }
}

impl fmt::Display for PolicyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PathWithoutId { rule, path_claim, id_claim } => write!(
                f,
                "rule {rule}: tests {path_claim} without {id_claim}; paths can be re-registered \
                 after a deletion or rename, so pin {id_claim} too"
            ),
            Self::Role { rule, warning } => write!(f, "rule {rule}: {warning}"),
            Self::Unscoped { rule } => write!(
                f,
                "rule {rule}: tests no project or namespace, so jobs of any project on the \
                 issuer can match; add project_id or namespace_id"
            ),
        }
    }
}

/// A loaded policy: an ordered list of rules, compiled once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    warnings: Vec<PolicyWarning>,
    sha256: String,
    /// Per app (client id): the credentials the plan gives it, in both subject forms, for the
    /// evidence of each decision.
    credentials: BTreeMap<String, Vec<federated::FederatedCredential>>,
    /// Per app (client id): the role assignments its identity holds per the plan.
    roles: BTreeMap<String, Vec<RoleEvidence>>,
}

impl Policy {
    /// Parses and compiles a policy document (JSON; see the module docs for its shape).
    ///
    /// # Errors
    /// A [`PolicyError`] naming the rule, the field and what is wrong: invalid JSON, unknown
    /// fields (with a suggestion), wrong types, bad globs, missing Azure targets, documents over
    /// 256 KiB or nested deeper than 32.
    pub fn parse(input: &[u8]) -> Result<Self, PolicyError> {
        let rules = document::parse(input)?;
        let warnings = lint(&rules);
        let sha256 = hex(ring::digest::digest(&ring::digest::SHA256, input).as_ref());
        let mut policy =
            Self { rules, warnings, sha256, credentials: BTreeMap::new(), roles: BTreeMap::new() };
        policy.credentials = evidence_credentials(&policy.rules);
        policy.roles = evidence_roles(&policy);
        Ok(policy)
    }

    /// SHA-256 of the document's bytes, hex: names the exact policy a decision was made under.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The rules, in document order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Risky but legal things found at load.
    pub fn warnings(&self) -> &[PolicyWarning] {
        &self.warnings
    }

    /// Decides whether the job behind `claims` may become an Azure identity, at time `now`
    /// (seconds since the epoch; used only by `max_token_age`). The claims must come from a
    /// verified token.
    pub fn decide(&self, claims: &Claims, now: u64) -> Decision {
        let explanation: Vec<RuleOutcome> = self
            .rules
            .iter()
            .map(|rule| RuleOutcome {
                rule: rule.name.clone(),
                effect: rule.effect,
                result: rule.check(claims, now),
            })
            .collect();
        let matched = |effect: Effect| {
            self.rules
                .iter()
                .zip(&explanation)
                .find(|(rule, outcome)| rule.effect == effect && outcome.result.is_ok())
                .map(|(rule, _)| rule)
        };
        let mut evidence = Evidence {
            policy_sha256: self.sha256.clone(),
            principal_id: None,
            credential: None,
            role_assignments: Vec::new(),
        };
        let verdict = if let Some(deny) = matched(Effect::Deny) {
            Verdict::Deny { rule: Some(deny.name.clone()) }
        } else if let Some((allow, target)) =
            matched(Effect::Allow).and_then(|r| r.target.as_ref().map(|t| (r, t)))
        {
            let client = target.client_id();
            evidence.principal_id = self
                .rules
                .iter()
                .filter(|r| r.target.as_ref().is_some_and(|t| t.client_id() == client))
                .find_map(|r| r.access.as_ref().and_then(|a| a.principal_id.clone()));
            evidence.credential = self
                .credentials
                .get(client)
                .and_then(|list| list.iter().find(|c| relies_on(c, claims)))
                .map(CredentialEvidence::from);
            evidence.role_assignments = self.roles.get(client).cloned().unwrap_or_default();
            Verdict::Allow { rule: allow.name.clone(), target: target.clone() }
        } else {
            Verdict::Deny { rule: None }
        };
        Decision { verdict, explanation, evidence }
    }
}

/// Whether Entra would accept `claims` with `credential` (issuer and audience aside: the plan
/// names the token's own).
fn relies_on(credential: &federated::FederatedCredential, claims: &Claims) -> bool {
    match (&credential.subject, &credential.claims_matching_expression) {
        (Some(subject), _) => claims.sub.as_deref() == Some(subject.as_str()),
        (None, Some(cme)) => cme.value.evaluate(claims),
        (None, None) => false,
    }
}

/// The credentials of every app in both subject forms (for an issuer Entra accepts flexible
/// credentials for, so that no credential the job may rely on is missing).
fn evidence_credentials(rules: &[Rule]) -> BTreeMap<String, Vec<federated::FederatedCredential>> {
    let mut out: BTreeMap<String, Vec<federated::FederatedCredential>> = BTreeMap::new();
    for form in [SubjectForm::ProjectPath, SubjectForm::ProjectId] {
        let options = PlanOptions::new(plan::REFERENCE_ISSUER).subject_form(form);
        for app in plan::plan_credentials(rules, &options).0 {
            out.entry(app.client_id).or_default().extend(app.credentials);
        }
    }
    out
}

/// The role assignments each app's identity holds per the plan.
fn evidence_roles(policy: &Policy) -> BTreeMap<String, Vec<RoleEvidence>> {
    let mut out: BTreeMap<String, Vec<RoleEvidence>> = BTreeMap::new();
    for rule in &policy.rules {
        let (Some(target), Some(access)) = (&rule.target, &rule.access) else { continue };
        let list = out.entry(target.client_id().to_owned()).or_default();
        for need in &access.roles {
            let evidence = RoleEvidence {
                role: need.role.name.clone().unwrap_or_else(|| need.role.guid.clone()),
                role_guid: need.role.guid.clone(),
                scope: need.scope.to_string(),
            };
            if !list.contains(&evidence) {
                list.push(evidence);
            }
        }
    }
    for list in out.values_mut() {
        list.sort_by(|a, b| (&a.scope, &a.role_guid).cmp(&(&b.scope, &b.role_guid)));
    }
    out
}

fn lint(rules: &[Rule]) -> Vec<PolicyWarning> {
    let mut warnings = Vec::new();
    let catalogue = Catalogue::builtin().ok();
    for rule in rules.iter().filter(|r| r.effect == Effect::Allow) {
        let needs = rule.access.as_ref().map(|a| a.roles.as_slice()).unwrap_or_default();
        for need in needs {
            for warning in
                catalogue.map(|c| crate::rbac::need_warnings(need, c)).unwrap_or_default()
            {
                warnings.push(PolicyWarning::Role { rule: rule.name.clone(), warning });
            }
        }
        let claims = rule.claims();
        let has = |c: &str| claims.contains(&c);
        // Either id pins a path: a project id fixes the namespace too, and a namespace id stops
        // a re-registered path outside it.
        let pinned = has("project_id") || has("namespace_id");
        for (path, id) in [("project_path", "project_id"), ("namespace_path", "namespace_id")] {
            if has(path) && !pinned {
                warnings.push(PolicyWarning::PathWithoutId {
                    rule: rule.name.clone(),
                    path_claim: path.to_owned(),
                    id_claim: id.to_owned(),
                });
            }
        }
        let scoped = ["project_path", "project_id", "namespace_path", "namespace_id", "sub"]
            .iter()
            .any(|c| has(c));
        if !scoped {
            warnings.push(PolicyWarning::Unscoped { rule: rule.name.clone() });
        }
    }
    warnings
}

#[cfg(test)]
mod tests;
