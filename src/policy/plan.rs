//! The federated credentials each app needs so Entra accepts every job a policy allows.
//!
//! Entra sees only `iss`, `aud` and `sub`. A GitLab `sub` is, by default,
//! `project_path:{group}/{project}:ref_type:{branch|tag}:ref:{name}` (facts 1.5), so the plan
//! reads each allow rule's conditions on `project_path`, `ref_type`, `ref` (and `sub` itself):
//! where all three are pinned to values it plans classic credentials with exact subjects (GA);
//! where they use globs or are left open, flexible credentials with
//! `claims['sub'] matches '...'` (preview). The credentials are never narrower than the rule,
//! and every condition Entra cannot see is reported: only this policy enforces it, so the token
//! must be exchanged through it. Projects that customise `ci_id_token_sub_claim_components` get
//! other subjects; the plan assumes GitLab's default.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Value};

use super::condition::{Condition, Test};
use super::decision::Effect;
use super::glob::{entra_literal, Glob};
use super::{Policy, Rule};
use crate::entra::federated::{
    default_gitlab_subject, ClaimsMatchingExpression, Expression, FederatedCredential,
    MAX_CREDENTIALS_PER_APP,
};

mod broker;

pub use broker::{
    plan_broker, BrokerApp, BrokerPlan, BrokerPlanError, BrokerPlanInput, BrokerPlanWarning,
    CertificateUpload, IssuerDocuments,
};

/// Most alternative subjects planned for one rule before the plan gives up on it.
const MAX_TERMS: usize = 64;

/// The claims that make up GitLab's default `sub`, in order.
const SUB_PARTS: [&str; 3] = ["project_path", "ref_type", "ref"];

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
    /// Flexible credentials are documented only for `https://gitlab.com` and
    /// `https://gitlab.<name>.com` or `.ca` issuers.
    FlexibleIssuer {
        /// The issuer.
        issuer: String,
    },
    /// A `not` on parts of `sub` cannot be expressed; the credentials ignore it.
    Negation {
        /// The rule.
        rule: String,
    },
    /// A condition or guard on something Entra cannot see.
    NotVisibleToEntra {
        /// The rule.
        rule: String,
        /// The claim or guard, e.g. `ref_protected` or `same_project`.
        what: String,
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
            Self::Negation { .. } => "negation",
            Self::NotVisibleToEntra { .. } => "not-visible-to-entra",
            Self::TooManyCredentials { .. } => "too-many-credentials",
            Self::TooManyCombinations { .. } => "too-many-combinations",
            Self::Unsatisfiable { .. } => "unsatisfiable",
            Self::UnpinnedProject { .. } => "unpinned-project",
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
            Self::FlexibleIssuer { issuer } => write!(
                f,
                "flexible credentials are documented only for https://gitlab.com and \
                 https://gitlab.<name>.com or .ca issuers, not {issuer}; Entra may refuse them, \
                 so pin project_path, ref_type and ref to get classic credentials"
            ),
            Self::Negation { rule } => write!(
                f,
                "rule {rule}: Entra cannot express `not`, so the credentials ignore it; \
                 {THROUGH_POLICY}"
            ),
            Self::NotVisibleToEntra { rule, what } => {
                write!(f, "rule {rule}: Entra cannot check {what}; {THROUGH_POLICY}")
            }
            Self::TooManyCredentials { client_id, count } => write!(
                f,
                "app {client_id} needs {count} federated credentials, more than Entra's limit of \
                 {MAX_CREDENTIALS_PER_APP}; use globs (flexible credentials) or split the rules \
                 across apps"
            ),
            Self::TooManyCombinations { rule, limit } => write!(
                f,
                "rule {rule}: its conditions on project_path, ref_type and ref combine into more \
                 than {limit} subjects, so no credentials are planned for it; use globs"
            ),
            Self::Unsatisfiable { rule } => write!(
                f,
                "rule {rule}: its conditions on project_path, ref_type and ref contradict each \
                 other, so it never matches; fix or remove it"
            ),
            Self::UnpinnedProject { rule } => write!(
                f,
                "rule {rule}: project_path is not pinned, so its credential accepts jobs of any \
                 project on the issuer; pin project_path (and project_id)"
            ),
        }
    }
}

/// The credentials of one app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppPlan {
    /// The tenant.
    pub tenant: String,
    /// The application (client) id.
    pub client_id: String,
    /// The allow rules that target this app.
    pub rules: Vec<String>,
    /// The credentials to create, classic first where possible.
    pub credentials: Vec<FederatedCredential>,
}

/// The federated credentials a policy needs, per app, and what Entra cannot enforce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The issuer every credential names.
    pub issuer: String,
    /// The audience every credential names.
    pub audience: String,
    /// One entry per app, in the order the rules first name them.
    pub apps: Vec<AppPlan>,
    /// Everything the operator must know, in rule order.
    pub warnings: Vec<PlanWarning>,
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Plan {
    /// The plan as JSON: each app's credentials in the shape Graph takes in
    /// `POST /applications/{id}/federatedIdentityCredentials` (and
    /// `az ad app federated-credential create --parameters`), and the warnings.
    pub fn to_json(&self) -> Value {
        let apps: Vec<Value> = self
            .apps
            .iter()
            .map(|app| {
                json!({
                    "tenant": app.tenant,
                    "client_id": app.client_id,
                    "rules": app.rules,
                    "federatedIdentityCredentials":
                        app.credentials.iter().map(FederatedCredential::to_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        let warnings: Vec<Value> = self
            .warnings
            .iter()
            .map(|w| json!({"kind": w.kind(), "message": w.to_string()}))
            .collect();
        json!({"issuer": self.issuer, "audience": self.audience, "apps": apps, "warnings": warnings})
    }

    /// Shell commands that create the credentials: `az ad app federated-credential create` for
    /// classic ones, `az rest` against Graph beta for flexible ones (the CLI does not create
    /// those).
    pub fn commands(&self) -> Vec<String> {
        let mut out = Vec::new();
        for app in &self.apps {
            for credential in &app.credentials {
                let body = shell_quote(&credential.to_json().to_string());
                if credential.claims_matching_expression.is_some() {
                    out.push(format!(
                        "az rest --method POST --uri \"https://graph.microsoft.com/beta/\
                         applications(appId='{}')/federatedIdentityCredentials\" --headers \
                         Content-Type=application/json --body {body}",
                        app.client_id
                    ));
                } else {
                    out.push(format!(
                        "az ad app federated-credential create --id {} --parameters {body}",
                        app.client_id
                    ));
                }
            }
        }
        out
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
    ["sub", "project_path", "ref_type", "ref"].into_iter().find(|p| *p == claim)
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

struct Walker<'a> {
    rule: &'a str,
    hidden: Vec<String>,
    negation: bool,
}

impl Walker<'_> {
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

/// What a credential matches: an exact subject, or a `matches` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Matcher {
    Subject(String),
    Pattern(String),
}

fn matchers(term: &Term, rule: &str, warnings: &mut Vec<PlanWarning>) -> Vec<Matcher> {
    let mut broader = false;
    let out = match term.get("sub") {
        Some(Part::Exact(sub)) => vec![Matcher::Subject(sub.clone())],
        Some(Part::Glob(g)) => {
            let (pattern, wider) = g.to_entra();
            broader |= wider;
            vec![Matcher::Pattern(pattern)]
        }
        None => {
            let exact = |p: &str| match term.get(p) {
                Some(Part::Exact(v)) => Some(v.clone()),
                _ => None,
            };
            if !term.contains_key("project_path") {
                warnings.push(PlanWarning::UnpinnedProject { rule: rule.to_owned() });
            }
            match (exact("project_path"), exact("ref_type"), exact("ref")) {
                (Some(p), Some(t), Some(r)) => {
                    vec![Matcher::Subject(default_gitlab_subject(&p, &t, &r))]
                }
                (Some(p), None, Some(r)) if !term.contains_key("ref_type") => ["branch", "tag"]
                    .iter()
                    .map(|t| Matcher::Subject(default_gitlab_subject(&p, t, &r)))
                    .collect(),
                _ => {
                    let mut pieces = Vec::new();
                    for part in SUB_PARTS {
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
                    vec![Matcher::Pattern(pieces.join(":"))]
                }
            }
        }
    };
    if broader {
        for m in &out {
            if let Matcher::Pattern(p) = m {
                warnings.push(PlanWarning::BroaderInEntra {
                    rule: rule.to_owned(),
                    expression: Expression::sub_matches(p),
                });
            }
        }
    }
    out
}

fn flexible_issuer_documented(issuer: &str) -> bool {
    if issuer == "https://gitlab.com" {
        return true;
    }
    issuer
        .strip_prefix("https://gitlab.")
        .and_then(|rest| rest.strip_suffix(".com").or_else(|| rest.strip_suffix(".ca")))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

fn plan_rule(rule: &Rule, warnings: &mut Vec<PlanWarning>) -> Vec<Matcher> {
    let mut walker = Walker { rule: rule.name(), hidden: Vec::new(), negation: false };
    let terms = walker.terms(&rule.when);
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
    let name = walker.rule.to_owned();
    for what in &walker.hidden {
        warnings.push(PlanWarning::NotVisibleToEntra { rule: name.clone(), what: what.clone() });
    }
    if walker.negation {
        warnings.push(PlanWarning::Negation { rule: name.clone() });
    }
    let Ok(terms) = terms else {
        warnings.push(PlanWarning::TooManyCombinations { rule: name, limit: MAX_TERMS });
        return Vec::new();
    };
    if terms.is_empty() {
        warnings.push(PlanWarning::Unsatisfiable { rule: name });
        return Vec::new();
    }
    let mut out: Vec<Matcher> = Vec::new();
    for term in &terms {
        for m in matchers(term, &name, warnings) {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

/// Plans the federated credentials each app (client id) needs so that Entra accepts every job
/// `policy` allows, for tokens from `issuer` with audience `audience`.
pub fn plan(policy: &Policy, issuer: &str, audience: &str) -> Plan {
    let mut warnings = Vec::new();
    let mut apps: Vec<AppPlan> = Vec::new();
    let mut seen: Vec<(String, Matcher)> = Vec::new();
    for rule in policy.rules() {
        if rule.effect() == Effect::Deny {
            warnings.push(PlanWarning::DenyRule { rule: rule.name().to_owned() });
            continue;
        }
        let Some(target) = rule.target() else { continue };
        // A broker rule's app must not trust GitLab: `plan_broker` plans it.
        if rule.credential().is_some_and(|c| c.is_broker()) {
            continue;
        }
        let (tenant, client_id) = (target.tenant(), target.client_id());
        let matchers = plan_rule(rule, &mut warnings);
        let index = match apps.iter().position(|a| a.client_id == client_id && a.tenant == tenant) {
            Some(i) => i,
            None => {
                apps.push(AppPlan {
                    tenant: tenant.to_owned(),
                    client_id: client_id.to_owned(),
                    rules: Vec::new(),
                    credentials: Vec::new(),
                });
                apps.len() - 1
            }
        };
        let Some(app) = apps.get_mut(index) else { continue };
        app.rules.push(rule.name().to_owned());
        let fresh: Vec<Matcher> = matchers
            .into_iter()
            .filter(|m| !seen.iter().any(|(c, s)| c == client_id && s == m))
            .collect();
        let count = fresh.len();
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
            let mut credential = match m {
                Matcher::Subject(subject) => {
                    FederatedCredential::classic(name, issuer, subject, audience)
                }
                Matcher::Pattern(pattern) => {
                    let source = Expression::sub_matches(&pattern);
                    let mut c = FederatedCredential::classic(name, issuer, String::new(), audience);
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
    }
    for app in &apps {
        if app.credentials.len() > MAX_CREDENTIALS_PER_APP {
            warnings.push(PlanWarning::TooManyCredentials {
                client_id: app.client_id.clone(),
                count: app.credentials.len(),
            });
        }
    }
    let any_flexible =
        apps.iter().flat_map(|a| &a.credentials).any(|c| c.claims_matching_expression.is_some());
    if any_flexible && !flexible_issuer_documented(issuer) {
        warnings.push(PlanWarning::FlexibleIssuer { issuer: issuer.to_owned() });
    }
    Plan { issuer: issuer.to_owned(), audience: audience.to_owned(), apps, warnings }
}

#[cfg(test)]
mod tests;
