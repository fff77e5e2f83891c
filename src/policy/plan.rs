//! What Entra and Azure need so that every job a policy allows gets its identity, and nothing
//! more: the federated credentials of each app, and the role assignments of each identity.
//!
//! **Credentials.** Entra sees only `iss`, `aud` and `sub` (and, in flexible credentials,
//! `project_id` beside `sub`). A GitLab `sub` is, by default,
//! `project_path:{group}/{project}:ref_type:{branch|tag}:ref:{name}`, or, for a project whose
//! `ci_id_token_sub_claim_components` is `["project_id", "ref_type", "ref"]`,
//! `project_id:{id}:ref_type:...` ([`SubjectForm`], facts 1.5). The plan reads each allow rule's
//! conditions on those parts: where all are pinned to values it plans classic credentials with
//! exact subjects (GA); where they use globs or are left open, flexible credentials with
//! `claims['sub'] matches '...' and claims['project_id'] eq '<id>'` (preview, Graph beta). A
//! flexible credential is planned only for an issuer Entra documents them for and for a rule
//! that pins `project_id` (Entra's newest pages require it); otherwise the rule gets exact
//! credentials where it can, and a warning. Credentials are never narrower than the rule, and
//! every condition Entra cannot see is reported: only this policy enforces it.
//!
//! **Role assignments.** Each app is one identity (rules that name the same client id are
//! merged); the roles its rules declare (`azure.roles`) become `az role assignment create`
//! commands and `Microsoft.Authorization/roleAssignments` resources ([`crate::rbac::plan`]),
//! weighted by who can become the identity ([`Reachability`]): any branch, when a rule lets
//! Entra accept a pattern of refs.
//!
//! Output is deterministic: the same policy and options give byte-identical text and JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::condition::{Condition, Test};
use super::decision::Effect;
use super::glob::{entra_literal, Glob};
use super::{Policy, PolicyWarning, Rule};
use crate::entra::federated::{
    check_issuer, default_gitlab_subject, flexible_issuer_eligible, project_id_gitlab_subject,
    ClaimsMatchingExpression, Expression, FederatedCredential, IssuerError,
    MAX_CREDENTIALS_PER_APP,
};
use crate::entra::AzureTarget;
use crate::rbac::{self, Catalogue, Identity, RbacPlan, Reachability};

mod broker;

pub use broker::{
    plan_broker, BrokerApp, BrokerPlan, BrokerPlanError, BrokerPlanInput, BrokerPlanWarning,
    CertificateUpload, IssuerDocuments,
};

/// Most alternative subjects planned for one rule before the plan gives up on it.
const MAX_TERMS: usize = 64;

/// The issuer the policy's own evidence and the RBAC audit plan with: one Entra accepts
/// flexible credentials for, so reachability is judged as the widest it can be.
pub(crate) const REFERENCE_ISSUER: &str = "https://gitlab.com";

/// How the projects of the policy build their `sub` claim (GitLab's
/// `ci_id_token_sub_claim_components`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SubjectForm {
    /// GitLab's default, `project_path:{path}:ref_type:{type}:ref:{ref}`: mutable, since a path
    /// can be re-registered by someone else after a rename or deletion.
    #[default]
    ProjectPath,
    /// `project_id:{id}:ref_type:{type}:ref:{ref}` (components `project_id`, `ref_type`,
    /// `ref`): immutable. Every allow rule must pin `project_id`.
    ProjectId,
}

impl SubjectForm {
    /// `project-path` or `project-id`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ProjectPath => "project-path",
            Self::ProjectId => "project-id",
        }
    }

    /// The claim `sub` starts with.
    fn lead(self) -> &'static str {
        match self {
            Self::ProjectPath => "project_path",
            Self::ProjectId => "project_id",
        }
    }

    fn subject(self, lead: &str, ref_type: &str, r#ref: &str) -> String {
        match self {
            Self::ProjectPath => default_gitlab_subject(lead, ref_type, r#ref),
            Self::ProjectId => project_id_gitlab_subject(lead, ref_type, r#ref),
        }
    }
}

/// What a plan is made for: the issuer, the audience and the subject form.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct PlanOptions {
    issuer: String,
    audience: Option<String>,
    subject_form: SubjectForm,
}

impl PlanOptions {
    /// Options for tokens from `issuer`: the GitLab URL, exactly as tokens carry it in `iss`.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self { issuer: issuer.into(), audience: None, subject_form: SubjectForm::ProjectPath }
    }

    /// The audience every credential names (the jobs' `id_tokens:<NAME>:aud`). Defaults to the
    /// audience of each app's cloud: `api://AzureADTokenExchange`, or `...USGov` / `...China`
    /// for an `authority_host` of a sovereign cloud.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// How the projects build `sub`. Defaults to [`SubjectForm::ProjectPath`].
    pub fn subject_form(mut self, form: SubjectForm) -> Self {
        self.subject_form = form;
        self
    }
}

/// Why no plan was made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanError {
    /// The audience is empty or has whitespace.
    Audience {
        /// The audience as given.
        audience: String,
    },
    /// The issuer would make credentials Entra accepts but never matches.
    Issuer(IssuerError),
}

impl PlanError {
    /// A stable, kebab-case name for this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Audience { .. } => "plan-audience",
            Self::Issuer(e) => e.kind(),
        }
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Audience { audience } => write!(
                f,
                "audience `{}` is empty or has whitespace; use the value of the jobs' \
                 `id_tokens:<NAME>:aud`, e.g. api://AzureADTokenExchange",
                audience.escape_debug()
            ),
            Self::Issuer(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PlanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Issuer(e) => Some(e),
            Self::Audience { .. } => None,
        }
    }
}

/// Something about the plan that the operator must know.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanWarning {
    /// A planned flexible credential accepts more than the rule: Entra's `*` also crosses `/`,
    /// and Entra has no escape for literal `*`, `?` or `'`.
    BroaderInEntra {
        /// The rule.
        rule: String,
        /// The credential's expression.
        expression: String,
    },
    /// Entra cannot express deny rules.
    DenyRule {
        /// The rule.
        rule: String,
    },
    /// The rule needs a flexible credential, and Entra documents them only for
    /// `https://gitlab.com` and `https://gitlab.<name>.com` or `.ca` issuers: none is planned.
    FlexibleIssuer {
        /// The rule.
        rule: String,
        /// The issuer.
        issuer: String,
    },
    /// Flexible credentials are preview: created through Graph beta, and they break
    /// `az ad app federated-credential list` for the apps that have one.
    FlexiblePreview {
        /// The client ids of the apps with a flexible credential.
        client_ids: Vec<String>,
        /// The Graph host of their cloud.
        graph_host: String,
    },
    /// The rule needs a flexible credential but pins no `project_id`, which Entra now requires
    /// next to `sub` for GitLab: none is planned.
    FlexibleWithoutProjectId {
        /// The rule.
        rule: String,
    },
    /// Rules pin `project_id` while the plan uses the mutable `project_path` subject.
    ImmutableSubjects {
        /// The project id.
        project_id: String,
        /// The rules that pin it.
        rules: Vec<String>,
    },
    /// A `not` on parts of `sub` cannot be expressed; the credentials ignore it.
    Negation {
        /// The rule.
        rule: String,
    },
    /// Conditions or guards on things Entra cannot see.
    NotVisibleToEntra {
        /// The rule.
        rule: String,
        /// The claims and guards, e.g. `ref_protected`, `same_project`, in rule order.
        what: Vec<String>,
    },
    /// The subject form needs `project_id` and the rule does not pin it to values: no
    /// credential is planned.
    SubjectFormUnpinned {
        /// The rule.
        rule: String,
    },
    /// An app needs more credentials than Entra allows.
    TooManyCredentials {
        /// The app's client id.
        client_id: String,
        /// How many it needs.
        count: usize,
    },
    /// The rule's conditions on `sub` parts combine into too many alternatives; no credentials
    /// are planned for it.
    TooManyCombinations {
        /// The rule.
        rule: String,
        /// The limit.
        limit: usize,
    },
    /// The rule's conditions on `sub` parts contradict each other: it can never match.
    Unsatisfiable {
        /// The rule.
        rule: String,
    },
    /// A planned credential accepts any project on the issuer.
    UnpinnedProject {
        /// The rule.
        rule: String,
    },
}

impl PlanWarning {
    /// A stable, kebab-case name for this kind of warning.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BroaderInEntra { .. } => "broader-in-entra",
            Self::DenyRule { .. } => "deny-rule",
            Self::FlexibleIssuer { .. } => "flexible-issuer",
            Self::FlexiblePreview { .. } => "flexible-preview",
            Self::FlexibleWithoutProjectId { .. } => "flexible-without-project-id",
            Self::ImmutableSubjects { .. } => "immutable-subjects",
            Self::Negation { .. } => "negation",
            Self::NotVisibleToEntra { .. } => "not-visible-to-entra",
            Self::SubjectFormUnpinned { .. } => "subject-form-unpinned",
            Self::TooManyCredentials { .. } => "too-many-credentials",
            Self::TooManyCombinations { .. } => "too-many-combinations",
            Self::Unsatisfiable { .. } => "unsatisfiable",
            Self::UnpinnedProject { .. } => "unpinned-project",
        }
    }

    /// The rule the warning is about; `None` for an app or the whole plan.
    pub fn rule(&self) -> Option<&str> {
        match self {
            Self::BroaderInEntra { rule, .. }
            | Self::DenyRule { rule }
            | Self::FlexibleIssuer { rule, .. }
            | Self::FlexibleWithoutProjectId { rule }
            | Self::Negation { rule }
            | Self::NotVisibleToEntra { rule, .. }
            | Self::SubjectFormUnpinned { rule }
            | Self::TooManyCombinations { rule, .. }
            | Self::Unsatisfiable { rule }
            | Self::UnpinnedProject { rule } => Some(rule),
            Self::FlexiblePreview { .. }
            | Self::ImmutableSubjects { .. }
            | Self::TooManyCredentials { .. } => None,
        }
    }
}

const THROUGH_POLICY: &str =
    "only this policy enforces it, so the token must be exchanged through it (a job that sends \
     its token straight to Entra skips this check)";

impl fmt::Display for PlanWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BroaderInEntra { rule, expression } => write!(
                f,
                "rule {rule}: `{expression}` accepts more than the rule (in Entra `*` also \
                 matches `/`); {THROUGH_POLICY}"
            ),
            Self::DenyRule { rule } => {
                write!(f, "rule {rule}: Entra cannot express deny rules; {THROUGH_POLICY}")
            }
            Self::FlexibleIssuer { rule, issuer } => write!(
                f,
                "rule {rule}: needs a flexible credential, and Entra documents those only for \
                 https://gitlab.com and https://gitlab.<name>.com or .ca issuers, not {issuer}: \
                 none is planned; pin project_path, ref_type and ref to values to get exact \
                 credentials, or exchange the token through this policy"
            ),
            Self::FlexiblePreview { client_ids, graph_host } => write!(
                f,
                "flexible credentials (apps {}) are a preview feature, created through Microsoft \
                 Graph's beta endpoint (the `az rest` commands); once an app has one, `az ad app \
                 federated-credential list` fails for it, so list them with `az rest --method GET \
                 --uri \"https://{graph_host}/beta/applications(appId='<client-id>')/\
                 federatedIdentityCredentials\"`",
                client_ids.join(", ")
            ),
            Self::FlexibleWithoutProjectId { rule } => write!(
                f,
                "rule {rule}: needs a flexible credential but pins no project_id, and Entra now \
                 requires claims['project_id'] eq next to claims['sub'] for GitLab: none is \
                 planned; pin project_id (one value, or a list for one credential per project)"
            ),
            Self::ImmutableSubjects { project_id, rules } => write!(
                f,
                "project {project_id} (rules {}): its subjects name the project by path, which \
                 someone else can re-register after a rename or deletion; set the project's \
                 ci_id_token_sub_claim_components to [\"project_id\", \"ref_type\", \"ref\"] and \
                 plan with the project-id subject form",
                rules.join(", ")
            ),
            Self::Negation { rule } => write!(
                f,
                "rule {rule}: Entra cannot express `not`, so the credentials ignore it; \
                 {THROUGH_POLICY}"
            ),
            Self::NotVisibleToEntra { rule, what } => write!(
                f,
                "rule {rule}: Entra cannot check {}; only this policy enforces {}, so the token \
                 must be exchanged through it (a job that sends its token straight to Entra \
                 skips {})",
                what.join(", "),
                if what.len() == 1 { "it" } else { "them" },
                if what.len() == 1 { "this check" } else { "these checks" }
            ),
            Self::SubjectFormUnpinned { rule } => write!(
                f,
                "rule {rule}: the project-id subject form names the project by id, and the rule \
                 pins no project_id: no credential is planned; pin project_id"
            ),
            Self::TooManyCredentials { client_id, count } => write!(
                f,
                "app {client_id} needs {count} federated credentials, more than Entra's limit of \
                 {MAX_CREDENTIALS_PER_APP}; use globs (flexible credentials) or split the rules \
                 across apps"
            ),
            Self::TooManyCombinations { rule, limit } => write!(
                f,
                "rule {rule}: its conditions on project_path, project_id, ref_type and ref \
                 combine into more than {limit} subjects, so no credentials are planned for it; \
                 use globs"
            ),
            Self::Unsatisfiable { rule } => write!(
                f,
                "rule {rule}: its conditions on project_path, project_id, ref_type and ref \
                 contradict each other, so it never matches; fix or remove it"
            ),
            Self::UnpinnedProject { rule } => write!(
                f,
                "rule {rule}: project_path is not pinned, so its credential accepts jobs of any \
                 project on the issuer; pin project_path (and project_id)"
            ),
        }
    }
}

/// The credentials of one app, and who can become it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppPlan {
    /// The tenant.
    pub tenant: String,
    /// The application (client) id.
    pub client_id: String,
    /// The audience its credentials name.
    pub audience: String,
    /// The Graph host of its cloud, where flexible credentials are created.
    pub graph_host: String,
    /// The allow rules that target this app, in document order.
    pub rules: Vec<String>,
    /// The credentials to create, in rule order.
    pub credentials: Vec<FederatedCredential>,
    /// Who can become the app, as far as Entra enforces it.
    pub reachability: Reachability,
}

/// The warnings of one rule (or, with `rule` `None`, of the plan as a whole), one line each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleWarnings {
    /// The rule; `None` for warnings about apps or the whole plan.
    pub rule: Option<String>,
    /// `(kind, message)`, in the order found.
    pub warnings: Vec<(String, String)>,
}

/// The federated credentials and role assignments a policy needs, and what Entra cannot enforce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The issuer every credential names.
    pub issuer: String,
    /// The subject form the credentials are planned for.
    pub subject_form: SubjectForm,
    /// One entry per app, in the order the rules first name them.
    pub apps: Vec<AppPlan>,
    /// The role assignments of each identity (one per app), by identity name.
    pub roles: RbacPlan,
    /// The plan's warnings, in rule order, then those about apps and the plan.
    pub warnings: Vec<PlanWarning>,
    /// The policy's own warnings (unpinned paths, risky roles) and the plan's, grouped per
    /// rule in document order, then those about apps and the plan: what to print.
    pub grouped_warnings: Vec<RuleWarnings>,
}

impl Plan {
    /// Every warning, flattened in group order.
    pub fn warning_lines(&self) -> Vec<String> {
        self.grouped_warnings
            .iter()
            .flat_map(|g| g.warnings.iter().map(|(_, m)| m.clone()))
            .collect()
    }

    /// The credentials in the shape Graph takes in `POST /applications/{id}/
    /// federatedIdentityCredentials` (and `az ad app federated-credential create
    /// --parameters`), per app.
    pub fn credentials_json(&self) -> Value {
        let apps: Vec<Value> = self
            .apps
            .iter()
            .map(|app| {
                json!({
                    "tenant": app.tenant,
                    "client_id": app.client_id,
                    "audience": app.audience,
                    "rules": app.rules,
                    "reachable_from_any_branch": app.reachability.is_any_branch(),
                    "reachability": app.reachability.reason(),
                    "federatedIdentityCredentials":
                        app.credentials.iter().map(FederatedCredential::to_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "issuer": self.issuer,
            "subject_form": self.subject_form.name(),
            "apps": apps,
        })
    }

    /// Every planned `Microsoft.Authorization/roleAssignments` resource, identity by identity.
    pub fn role_assignments_arm(&self) -> Value {
        Value::Array(
            self.roles
                .identities
                .iter()
                .flat_map(|i| i.assignments.iter().map(|a| a.arm.clone()))
                .collect(),
        )
    }

    /// The whole plan as one JSON document: `issuer`, `subject_form`, `apps` (each with its
    /// credentials and its identity's role assignments: command and ARM resource), `warnings`
    /// grouped per rule, and `commands` (the script, in order). Deterministic.
    pub fn to_json(&self) -> Value {
        let mut document = self.credentials_json();
        let roles: Value = serde_json::from_str(&self.roles.to_json()).unwrap_or(Value::Null);
        let identities = roles["identities"].as_array().cloned().unwrap_or_default();
        if let Some(apps) = document["apps"].as_array_mut() {
            for app in apps {
                let client = app["client_id"].clone();
                let identity = identities.iter().find(|i| i["client_id"] == client);
                if let (Some(object), Some(identity)) = (app.as_object_mut(), identity) {
                    for member in ["name", "principal_id", "lookup", "role_assignments"] {
                        let key = if member == "name" { "identity" } else { member };
                        object.insert(key.to_owned(), identity[member].clone());
                    }
                    object.insert("identity_warnings".to_owned(), identity["warnings"].clone());
                }
            }
        }
        if let Value::Object(object) = &mut document {
            let warnings: Vec<Value> = self
                .grouped_warnings
                .iter()
                .map(|g| {
                    json!({
                        "rule": g.rule,
                        "warnings": g.warnings.iter().map(|(kind, message)| {
                            json!({"kind": kind, "message": message})
                        }).collect::<Vec<_>>(),
                    })
                })
                .collect();
            object.insert("warnings".to_owned(), Value::Array(warnings));
            object.insert("commands".to_owned(), json!(self.commands()));
        }
        document
    }

    /// Shell commands that create the credentials, then the role assignments: `az ad app
    /// federated-credential create` for classic credentials, `az rest` against Graph beta for
    /// flexible ones (the CLI does not create those), then per identity the object id lookup
    /// (when the policy lacks `principal_id`) and `az role assignment create`.
    pub fn commands(&self) -> Vec<String> {
        let mut out = self.credential_commands();
        out.extend(self.role_commands());
        out
    }

    /// The federated credential commands alone.
    pub fn credential_commands(&self) -> Vec<String> {
        let mut out = Vec::new();
        for app in &self.apps {
            for credential in &app.credentials {
                out.push(credential.create_command(&app.client_id, &app.graph_host));
            }
        }
        out
    }

    /// The role assignment commands alone (object id lookups first where needed).
    pub fn role_commands(&self) -> Vec<String> {
        let mut out = Vec::new();
        for identity in &self.roles.identities {
            if identity.assignments.is_empty() {
                continue;
            }
            out.extend(identity.lookup.clone());
            out.extend(identity.assignments.iter().map(|a| a.command.clone()));
        }
        out
    }

    /// The plan for people: per app its credentials (JSON) and who can become it, the commands,
    /// then the role assignments as a commented script. Warnings are not included (they go to
    /// stderr, grouped per rule). Deterministic.
    pub fn to_text(&self) -> String {
        let count: usize = self.apps.iter().map(|a| a.credentials.len()).sum();
        let mut out = format!(
            "# federated credentials: {count} for {} app{} (issuer {}, {} subjects)\n",
            self.apps.len(),
            if self.apps.len() == 1 { "" } else { "s" },
            self.issuer,
            self.subject_form.name()
        );
        for app in &self.apps {
            let _ = write!(
                out,
                "\n# app {} in tenant {} (rules {}; audience {})\n# {}\n",
                app.client_id,
                app.tenant,
                app.rules.join(", "),
                app.audience,
                app.reachability
            );
            if app.credentials.is_empty() {
                out.push_str("# no credential planned (see the warnings)\n");
            }
            for credential in &app.credentials {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&credential.to_json()).unwrap_or_default()
                );
            }
        }
        out.push_str("\n# Commands that create them:\n");
        for command in self.credential_commands() {
            let _ = writeln!(out, "{command}");
        }
        out.push('\n');
        out.push_str(&self.roles.to_text());
        out
    }

    /// The identities of the plan, for [`crate::rbac::audit`]: one per app, with the roles its
    /// rules declare and who can become it.
    pub fn identities(&self, policy: &Policy) -> Vec<Identity> {
        identities(policy, &self.apps)
    }
}

/// One part of `sub` as a rule constrains it.
#[derive(Clone, Debug)]
enum Part {
    Exact(String),
    Glob(Glob),
}

/// One alternative: the constraints on `sub` and its parts that must hold together.
type Term = BTreeMap<&'static str, Part>;

fn part_name(claim: &str) -> Option<&'static str> {
    ["sub", "project_path", "project_id", "ref_type", "ref"].into_iter().find(|p| *p == claim)
}

/// Both constraints at once, or `None` when they contradict. Two globs keep the first, which is
/// broader than both together: the credentials may accept more, never less.
fn merge(a: &Part, b: &Part) -> Option<Part> {
    match (a, b) {
        (Part::Exact(x), Part::Exact(y)) => (x == y).then(|| a.clone()),
        (Part::Exact(x), Part::Glob(g)) | (Part::Glob(g), Part::Exact(x)) => {
            g.matches(x).then(|| Part::Exact(x.clone()))
        }
        (Part::Glob(_), Part::Glob(_)) => Some(a.clone()),
    }
}

struct Walker {
    hidden: Vec<String>,
    negation: bool,
}

impl Walker {
    fn hide(&mut self, what: &str) {
        if !self.hidden.iter().any(|h| h == what) {
            self.hidden.push(what.to_owned());
        }
    }

    /// The condition as alternatives over `sub` parts; `Err` when there are too many.
    fn terms(&mut self, condition: &Condition) -> Result<Vec<Term>, ()> {
        match condition {
            Condition::Claim { claim, test } => {
                let Some(part) = part_name(claim) else {
                    self.hide(claim);
                    return Ok(vec![Term::new()]);
                };
                let single = |p: Part| Term::from([(part, p)]);
                Ok(match test {
                    Test::OneOf(values) => {
                        values.iter().map(|v| single(Part::Exact(v.clone()))).collect()
                    }
                    Test::Glob(globs) => globs
                        .iter()
                        .map(|g| {
                            single(g.literal().map_or_else(|| Part::Glob(g.clone()), Part::Exact))
                        })
                        .collect(),
                    Test::Present(_) => vec![Term::new()],
                })
            }
            Condition::Not(inner) => {
                let mut claims = Vec::new();
                inner.claims(&mut claims);
                for claim in claims {
                    if part_name(claim).is_some() {
                        self.negation = true;
                    } else {
                        self.hide(claim);
                    }
                }
                Ok(vec![Term::new()])
            }
            Condition::Any(conditions) => {
                let mut out = Vec::new();
                for c in conditions {
                    out.extend(self.terms(c)?);
                    if out.len() > MAX_TERMS {
                        return Err(());
                    }
                }
                Ok(out)
            }
            Condition::All(conditions) => {
                let mut acc = vec![Term::new()];
                for c in conditions {
                    let next = self.terms(c)?;
                    let mut product = Vec::new();
                    for left in &acc {
                        'pairs: for right in &next {
                            let mut term = left.clone();
                            for (k, v) in right {
                                let merged = match term.get(k) {
                                    Some(existing) => merge(existing, v),
                                    None => Some(v.clone()),
                                };
                                match merged {
                                    Some(m) => {
                                        term.insert(k, m);
                                    }
                                    None => continue 'pairs,
                                }
                            }
                            product.push(term);
                            if product.len() > MAX_TERMS {
                                return Err(());
                            }
                        }
                    }
                    acc = product;
                }
                Ok(acc)
            }
        }
    }
}

/// What a credential matches: an exact subject, or a `matches` pattern (with the project id
/// the rule pins, when it pins one).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Matcher {
    Subject(String),
    Pattern { sub: String, project_id: Option<String> },
}

impl Matcher {
    /// The flexible credential's expression: `sub matches`, and `project_id eq` when known.
    fn expression(sub: &str, project_id: Option<&str>) -> String {
        let mut source = Expression::sub_matches(sub);
        if let Some(id) = project_id {
            let _ = write!(source, " and claims['project_id'] eq '{id}'");
        }
        source
    }
}

fn matchers(
    term: &Term,
    rule: &str,
    form: SubjectForm,
    warnings: &mut Vec<PlanWarning>,
) -> Vec<Matcher> {
    let exact = |p: &str| match term.get(p) {
        Some(Part::Exact(v)) => Some(v.clone()),
        _ => None,
    };
    let project_id = exact("project_id");
    let mut broader = false;
    let out = match term.get("sub") {
        Some(Part::Exact(sub)) => vec![Matcher::Subject(sub.clone())],
        Some(Part::Glob(g)) => {
            let (pattern, wider) = g.to_entra();
            broader |= wider;
            vec![Matcher::Pattern { sub: pattern, project_id }]
        }
        None => {
            if form == SubjectForm::ProjectId && project_id.is_none() {
                warnings.push(PlanWarning::SubjectFormUnpinned { rule: rule.to_owned() });
                return Vec::new();
            }
            if form == SubjectForm::ProjectPath && !term.contains_key("project_path") {
                warnings.push(PlanWarning::UnpinnedProject { rule: rule.to_owned() });
            }
            let lead = form.lead();
            match (exact(lead), exact("ref_type"), exact("ref")) {
                (Some(p), Some(t), Some(r)) => vec![Matcher::Subject(form.subject(&p, &t, &r))],
                (Some(p), None, Some(r)) if !term.contains_key("ref_type") => ["branch", "tag"]
                    .iter()
                    .map(|t| Matcher::Subject(form.subject(&p, t, &r)))
                    .collect(),
                _ => {
                    let mut pieces = Vec::new();
                    for part in [lead, "ref_type", "ref"] {
                        let piece = match term.get(part) {
                            Some(Part::Exact(v)) => {
                                let (literal, wider) = entra_literal(v);
                                broader |= wider;
                                literal
                            }
                            Some(Part::Glob(g)) => {
                                let (pattern, wider) = g.to_entra();
                                broader |= wider;
                                pattern
                            }
                            None => "*".to_owned(),
                        };
                        pieces.push(format!("{part}:{piece}"));
                    }
                    vec![Matcher::Pattern { sub: pieces.join(":"), project_id }]
                }
            }
        }
    };
    if broader {
        for m in &out {
            if let Matcher::Pattern { sub, project_id } = m {
                warnings.push(PlanWarning::BroaderInEntra {
                    rule: rule.to_owned(),
                    expression: Matcher::expression(sub, project_id.as_deref()),
                });
            }
        }
    }
    out
}

/// One rule's matchers, the warnings it raises, and who Entra lets become its app through it.
struct RulePlan {
    matchers: Vec<Matcher>,
    warnings: Vec<PlanWarning>,
    /// `Some(reason)` when Entra accepts a pattern of refs (or projects) for the rule.
    any_branch: Option<String>,
    /// The exact subjects, for a narrow rule's reason.
    exact: Vec<String>,
}

fn plan_rule(rule: &Rule, form: SubjectForm) -> RulePlan {
    let name = rule.name().to_owned();
    let mut warnings = Vec::new();
    let mut walker = Walker { hidden: Vec::new(), negation: false };
    let terms = walker.terms(&rule.when);
    let mut rule_claims = Vec::new();
    rule.when.claims(&mut rule_claims);
    if rule.same_project {
        walker.hide("same_project (project_path equals job_project_path)");
    }
    for guard in &rule.guards {
        let mut claims = Vec::new();
        guard.claims(&mut claims);
        claims.into_iter().for_each(|c| walker.hide(c));
    }
    if rule.max_token_age.is_some() {
        walker.hide("max_token_age");
    }
    let mut matchers_out: Vec<Matcher> = Vec::new();
    let mut structural = Vec::new();
    match terms {
        Err(()) => structural
            .push(PlanWarning::TooManyCombinations { rule: name.clone(), limit: MAX_TERMS }),
        Ok(terms) if terms.is_empty() => {
            structural.push(PlanWarning::Unsatisfiable { rule: name.clone() });
        }
        Ok(terms) => {
            for term in &terms {
                for m in matchers(term, &name, form, &mut structural) {
                    if !matchers_out.contains(&m) {
                        matchers_out.push(m);
                    }
                }
            }
        }
    }
    // project_id is seen by Entra only in flexible credentials and project-id subjects.
    let classic_default = form == SubjectForm::ProjectPath
        && matchers_out.iter().any(|m| matches!(m, Matcher::Subject(_)));
    let mut hidden = walker.hidden;
    if classic_default && rule_claims.contains(&"project_id") {
        hidden.insert(0, "project_id".to_owned());
    }
    if !hidden.is_empty() {
        warnings.push(PlanWarning::NotVisibleToEntra { rule: name.clone(), what: hidden.clone() });
    }
    if walker.negation {
        warnings.push(PlanWarning::Negation { rule: name.clone() });
    }
    warnings.extend(structural);

    let patterns: Vec<String> = matchers_out
        .iter()
        .filter_map(|m| match m {
            Matcher::Pattern { sub, .. } => Some(sub.clone()),
            Matcher::Subject(_) => None,
        })
        .collect();
    let exact: Vec<String> = matchers_out
        .iter()
        .filter_map(|m| match m {
            Matcher::Subject(s) => Some(s.clone()),
            Matcher::Pattern { .. } => None,
        })
        .collect();
    let unchecked = if hidden.is_empty() {
        String::new()
    } else {
        format!("; Entra cannot check {}", hidden.join(", "))
    };
    let any_branch = if let Some(first) = patterns.first() {
        Some(format!(
            "rule {name}: Entra accepts every job whose sub matches `{first}`{}{unchecked}",
            if patterns.len() > 1 {
                format!(" (and {} more)", patterns.len() - 1)
            } else {
                String::new()
            }
        ))
    } else if warnings.iter().any(|w| matches!(w, PlanWarning::Negation { .. })) {
        Some(format!("rule {name}: Entra cannot express its `not`{unchecked}"))
    } else {
        None
    };
    RulePlan { matchers: matchers_out, warnings, any_branch, exact }
}

/// The reachability of an app from its rules' plans.
fn reachability(rules: &[(&str, &RulePlan)]) -> Reachability {
    let wide: Vec<&str> = rules.iter().filter_map(|(_, p)| p.any_branch.as_deref()).collect();
    if !wide.is_empty() {
        return Reachability::AnyBranch { reason: wide.join("; ") };
    }
    let narrow: Vec<String> = rules
        .iter()
        .map(|(name, p)| {
            if p.exact.is_empty() {
                format!("rule {name}: no credential, so only through this policy")
            } else {
                format!("rule {name}: exact credentials only ({})", p.exact.join(", "))
            }
        })
        .collect();
    Reachability::ProtectedRefsOnly { reason: narrow.join("; ") }
}

/// Plans the federated credentials and role assignments of `policy`. See the module
/// documentation.
///
/// # Errors
/// [`PlanError::Issuer`] when the issuer is a near miss of a GitLab URL (a trailing slash, no
/// `https://`, capitals, whitespace) or no URL; [`PlanError::Audience`] for an empty audience.
pub fn plan(policy: &Policy, options: &PlanOptions) -> Result<Plan, PlanError> {
    check_issuer(&options.issuer).map_err(PlanError::Issuer)?;
    if let Some(audience) = &options.audience {
        if audience.is_empty() || audience.chars().any(char::is_whitespace) {
            return Err(PlanError::Audience { audience: audience.clone() });
        }
    }
    Ok(plan_unchecked(policy, options))
}

/// [`plan`] without checking the options: for the policy's own evidence and the RBAC audit.
pub(crate) fn plan_unchecked(policy: &Policy, options: &PlanOptions) -> Plan {
    let (apps, plan_warnings) = plan_credentials(policy.rules(), options);
    let identities = identities(policy, &apps);
    // The policy has checked what `rbac::plan` refuses (names, GUIDs, counts) when it loaded,
    // so neither branch below drops anything a loaded policy holds.
    let roles = match Catalogue::builtin() {
        Ok(catalogue) => {
            rbac::plan(&identities, catalogue).unwrap_or(RbacPlan { identities: Vec::new() })
        }
        Err(_) => RbacPlan { identities: Vec::new() },
    };
    let grouped_warnings = group(policy, policy.warnings(), &plan_warnings);
    Plan {
        issuer: options.issuer.clone(),
        subject_form: options.subject_form,
        apps,
        roles,
        warnings: plan_warnings,
        grouped_warnings,
    }
}

/// The credentials of every app, and the plan's warnings in rule order.
pub(crate) fn plan_credentials(
    rules: &[Rule],
    options: &PlanOptions,
) -> (Vec<AppPlan>, Vec<PlanWarning>) {
    let issuer = options.issuer.as_str();
    let form = options.subject_form;
    let mut warnings = Vec::new();
    let mut apps: Vec<AppPlan> = Vec::new();
    let mut rule_plans: Vec<(usize, String, RulePlan)> = Vec::new();
    let mut seen: Vec<(String, Matcher)> = Vec::new();
    let mut pinned_ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rule in rules {
        if rule.effect() == Effect::Deny {
            warnings.push(PlanWarning::DenyRule { rule: rule.name().to_owned() });
            continue;
        }
        let Some(target) = rule.target() else { continue };
        // A broker rule's app must not trust GitLab: `plan_broker` plans it.
        if rule.credential().is_some_and(|c| c.is_broker()) {
            continue;
        }
        let client_id = target.client_id();
        let rule_plan = plan_rule(rule, form);
        warnings.extend(rule_plan.warnings.iter().cloned());
        let index = app_index(&mut apps, target, options);
        let Some(app) = apps.get_mut(index) else { continue };
        app.rules.push(rule.name().to_owned());
        let fresh: Vec<Matcher> = rule_plan
            .matchers
            .iter()
            .filter(|m| !seen.iter().any(|(c, s)| c == client_id && s == *m))
            .cloned()
            .collect();
        let count = fresh.len();
        let mut refused = (false, false);
        for (i, m) in fresh.into_iter().enumerate() {
            seen.push((client_id.to_owned(), m.clone()));
            let mut name = if count == 1 {
                rule.name().to_owned()
            } else {
                format!("{}-{}", rule.name(), i + 1)
            };
            while app.credentials.iter().any(|c| c.name == name) {
                name.push_str("-x");
            }
            let mut credential = match &m {
                Matcher::Subject(subject) => {
                    FederatedCredential::classic(name, issuer, subject.clone(), &app.audience)
                }
                Matcher::Pattern { project_id: None, .. } => {
                    refused.0 = true;
                    continue;
                }
                Matcher::Pattern { .. } if !flexible_issuer_eligible(issuer) => {
                    refused.1 = true;
                    continue;
                }
                Matcher::Pattern { sub, project_id } => {
                    let source = Matcher::expression(sub, project_id.as_deref());
                    let mut c =
                        FederatedCredential::classic(name, issuer, String::new(), &app.audience);
                    c.subject = None;
                    c.claims_matching_expression = Expression::parse(&source)
                        .ok()
                        .map(|value| ClaimsMatchingExpression { value, language_version: 1 });
                    c
                }
            };
            credential.description = Some(format!("gitlab-azure-oidc plan: rule {}", rule.name()));
            if credential.subject.is_some() || credential.claims_matching_expression.is_some() {
                app.credentials.push(credential);
            }
        }
        if refused.0 {
            warnings.push(PlanWarning::FlexibleWithoutProjectId { rule: rule.name().to_owned() });
        }
        if refused.1 {
            warnings.push(PlanWarning::FlexibleIssuer {
                rule: rule.name().to_owned(),
                issuer: issuer.to_owned(),
            });
        }
        if form == SubjectForm::ProjectPath {
            if let Some(id) = pinned_project_id(rule) {
                pinned_ids.entry(id).or_default().push(rule.name().to_owned());
            }
        }
        rule_plans.push((index, rule.name().to_owned(), rule_plan));
    }
    for (index, app) in apps.iter_mut().enumerate() {
        let mine: Vec<(&str, &RulePlan)> = rule_plans
            .iter()
            .filter(|(i, _, _)| *i == index)
            .map(|(_, name, p)| (name.as_str(), p))
            .collect();
        app.reachability = reachability(&mine);
    }
    let mut flexible: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for app in &apps {
        if app.credentials.len() > MAX_CREDENTIALS_PER_APP {
            warnings.push(PlanWarning::TooManyCredentials {
                client_id: app.client_id.clone(),
                count: app.credentials.len(),
            });
        }
        if app.credentials.iter().any(|c| c.claims_matching_expression.is_some()) {
            flexible.entry(app.graph_host.clone()).or_default().push(app.client_id.clone());
        }
    }
    for (graph_host, client_ids) in flexible {
        warnings.push(PlanWarning::FlexiblePreview { client_ids, graph_host });
    }
    for (project_id, rules) in pinned_ids {
        warnings.push(PlanWarning::ImmutableSubjects { project_id, rules });
    }
    (apps, warnings)
}

/// The index of `target`'s app in `apps`, adding it when new.
fn app_index(apps: &mut Vec<AppPlan>, target: &AzureTarget, options: &PlanOptions) -> usize {
    if let Some(i) = apps.iter().position(|a| a.client_id == target.client_id()) {
        return i;
    }
    apps.push(AppPlan {
        tenant: target.tenant().to_owned(),
        client_id: target.client_id().to_owned(),
        audience: options
            .audience
            .clone()
            .unwrap_or_else(|| target.federation_audience().to_owned()),
        graph_host: target.graph_host().to_owned(),
        rules: Vec::new(),
        credentials: Vec::new(),
        reachability: Reachability::ProtectedRefsOnly { reason: String::new() },
    });
    apps.len() - 1
}

/// The one project id a rule pins everywhere (every alternative of its condition), if any.
fn pinned_project_id(rule: &Rule) -> Option<String> {
    let mut walker = Walker { hidden: Vec::new(), negation: false };
    let terms = walker.terms(&rule.when).ok()?;
    let mut ids = terms.iter().map(|t| match t.get("project_id") {
        Some(Part::Exact(v)) => Some(v.clone()),
        _ => None,
    });
    let first = ids.next()??;
    ids.all(|id| id.as_deref() == Some(first.as_str())).then_some(first)
}

/// The identities of the policy: one per app, with every rule's roles, the object id and groups
/// the rules give, and the app's reachability.
fn identities(policy: &Policy, apps: &[AppPlan]) -> Vec<Identity> {
    let mut out = Vec::with_capacity(apps.len());
    for app in apps {
        let rules: Vec<&Rule> =
            policy.rules().iter().filter(|r| app.rules.iter().any(|n| n == r.name())).collect();
        let mut identity =
            Identity::new(&app.rules.join("+"), &app.client_id, app.reachability.clone());
        for rule in rules {
            let Some(access) = rule.access() else { continue };
            if identity.principal_id.is_none() {
                identity.principal_id = access.principal_id().map(str::to_owned);
            }
            for group in access.groups() {
                if !identity.groups.contains(group) {
                    identity.groups.push(group.clone());
                }
            }
            identity.needs.extend(access.roles().iter().cloned());
        }
        out.push(identity);
    }
    out
}

/// The policy's warnings and the plan's, grouped per rule in document order, then the rest.
fn group(policy: &Policy, lint: &[PolicyWarning], plan: &[PlanWarning]) -> Vec<RuleWarnings> {
    let mut groups: Vec<RuleWarnings> = Vec::new();
    let mut push = |rule: Option<&str>, kind: &str, message: String| {
        let entry = (kind.to_owned(), message);
        match groups.iter_mut().find(|g| g.rule.as_deref() == rule) {
            Some(g) => {
                if !g.warnings.contains(&entry) {
                    g.warnings.push(entry);
                }
            }
            None => {
                groups.push(RuleWarnings { rule: rule.map(str::to_owned), warnings: vec![entry] })
            }
        }
    };
    for rule in policy.rules() {
        for w in lint.iter().filter(|w| w.rule() == rule.name()) {
            push(Some(rule.name()), w.kind(), w.to_string());
        }
        for w in plan.iter().filter(|w| w.rule() == Some(rule.name())) {
            push(Some(rule.name()), w.kind(), w.to_string());
        }
    }
    for w in plan.iter().filter(|w| w.rule().is_none()) {
        push(None, w.kind(), w.to_string());
    }
    groups
}

#[cfg(test)]
mod tests;
