//! An audit's findings, and the three ways to print them: text for people, one JSON document,
//! and a GitLab Code Quality report.
//!
//! The Code Quality report is a JSON array of issues with `description`, `check_name`,
//! `fingerprint`, `severity` (`info`, `minor`, `major`, `critical` or `blocker`) and
//! `location.path` / `location.lines.begin`, the fields GitLab reads
//! (<https://docs.gitlab.com/ci/testing/code_quality/#code-quality-report-format>).

use std::fmt;
use std::fmt::Write as _;

use crate::findings::{code_quality_issue, fingerprint};
use serde_json::{json, Value};

use super::need::Reachability;

pub use crate::findings::Severity;

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingKind {
    /// Owner, Contributor or a role with `*` at the root, a management group or a subscription.
    PrivilegedWideScope,
    /// A role that can write role assignments or definitions: the identity can grant itself
    /// anything.
    Escalation,
    /// A grant above the scope the need names (the resource group or subscription above the
    /// resource).
    ScopeWiderThanNeeded,
    /// A grant whose actions go beyond every declared need it serves (or that serves none).
    ActionsWiderThanNeeded,
    /// A declared need no assignment grants: the job will get a 403.
    MissingGrant,
    /// A grant that reaches the identity through a group or from above the subscription.
    IndirectGrant,
    /// A service principal with role assignments that the policy does not know.
    UnknownPrincipal,
}

impl FindingKind {
    /// The stable kebab-case name: `privileged-wide-scope`, `escalation`,
    /// `scope-wider-than-needed`, `actions-wider-than-needed`, `missing-grant`,
    /// `indirect-grant`, `unknown-principal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PrivilegedWideScope => "privileged-wide-scope",
            Self::Escalation => "escalation",
            Self::ScopeWiderThanNeeded => "scope-wider-than-needed",
            Self::ActionsWiderThanNeeded => "actions-wider-than-needed",
            Self::MissingGrant => "missing-grant",
            Self::IndirectGrant => "indirect-grant",
            Self::UnknownPrincipal => "unknown-principal",
        }
    }

    /// Whether the finding is about what the identity can do, so that who can become it
    /// matters: every kind but `missing-grant` and `unknown-principal`.
    pub fn is_risk(self) -> bool {
        !matches!(self, Self::MissingGrant | Self::UnknownPrincipal)
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding of an audit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What it is about.
    pub kind: FindingKind,
    /// The severity reported (after weighting by reachability).
    pub severity: Severity,
    /// The severity before weighting.
    pub base_severity: Severity,
    /// Whether the severity was raised because the identity is reachable from any branch.
    pub raised: bool,
    /// The identity, or `None` for an unknown principal.
    pub identity: Option<String>,
    /// The role assignment's `id`, or `None` for a missing grant.
    pub assignment_id: Option<String>,
    /// The role, by name when known.
    pub role: String,
    /// The scope of the assignment (or of the need).
    pub scope: String,
    /// One line saying what is wrong.
    pub message: String,
    /// The exact command(s) that fix it.
    pub fix: String,
    /// A stable identifier: SHA-256 of kind, identity, assignment id (or role and scope), in
    /// hex. The same finding in a later run has the same fingerprint.
    pub fingerprint: String,
}

impl Finding {
    /// A finding with its fingerprint; `role_key` is what identifies the role (its GUID).
    #[allow(clippy::too_many_arguments)] // every part is a different field of the finding.
    pub(crate) fn new(
        kind: FindingKind,
        severity: Severity,
        identity: Option<&str>,
        assignment_id: Option<&str>,
        (role, role_key): (&str, &str),
        scope: &str,
        message: String,
        fix: String,
    ) -> Finding {
        let fingerprint = fingerprint(&[
            kind.as_str(),
            identity.unwrap_or_default(),
            &assignment_id.unwrap_or_default().to_ascii_lowercase(),
            &role_key.to_ascii_lowercase(),
            &scope.to_ascii_lowercase(),
        ]);
        Finding {
            kind,
            severity,
            base_severity: severity,
            raised: false,
            identity: identity.map(str::to_owned),
            assignment_id: assignment_id.map(str::to_owned),
            role: role.to_owned(),
            scope: scope.to_owned(),
            message,
            fix,
            fingerprint,
        }
    }

    /// Raises a risk finding one step for an identity any branch can reach, and says so.
    pub(crate) fn weigh(mut self, reachability: &Reachability) -> Finding {
        if let (true, Reachability::AnyBranch { reason }) = (self.kind.is_risk(), reachability) {
            self.severity = self.base_severity.raised();
            self.raised = true;
            let how = if self.base_severity == Severity::Critical {
                "severity raised (capped at critical)".to_owned()
            } else {
                format!("severity raised from {} to {}", self.base_severity, self.severity)
            };
            self.message = format!(
                "{} [{how}: the identity is reachable from any branch: {reason}]",
                self.message
            );
        }
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "kind": self.kind.as_str(),
            "severity": self.severity.as_str(),
            "base_severity": self.base_severity.as_str(),
            "raised": self.raised,
            "identity": self.identity,
            "assignment_id": self.assignment_id,
            "role": self.role,
            "scope": self.scope,
            "message": self.message,
            "fix": self.fix,
            "fingerprint": self.fingerprint,
        })
    }
}

/// An identity as the audit saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditedIdentity {
    /// The identity's name.
    pub name: String,
    /// Its client id.
    pub client_id: String,
    /// Its object id: as declared, or as found in the export through `principalName`.
    pub principal_id: Option<String>,
    /// Who can become it.
    pub reachability: Reachability,
    /// How many role assignments in the export reach it (directly or through a declared group).
    pub assignments: usize,
}

/// The result of [`audit`](super::audit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The identities audited, by name.
    pub identities: Vec<AuditedIdentity>,
    /// The findings: by identity (unknown principals last), then highest severity first.
    pub findings: Vec<Finding>,
    /// What the audit could not judge and why (unattributed group assignments, unknown custom
    /// roles, a missing `--include-inherited`).
    pub notes: Vec<String>,
}

impl Report {
    /// Whether some finding is at or above `threshold`: `audit-rbac --fail-on` exits 1 then.
    pub fn fails(&self, threshold: Severity) -> bool {
        self.findings.iter().any(|f| f.severity >= threshold)
    }

    /// How many findings have this severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == severity).count()
    }

    fn summary(&self) -> String {
        let parts: Vec<String> = Severity::ALL
            .iter()
            .rev()
            .filter(|&&s| self.count(s) > 0)
            .map(|&s| format!("{} {s}", self.count(s)))
            .collect();
        match self.findings.len() {
            0 => "no findings".to_owned(),
            1 => format!("1 finding ({})", parts.join(", ")),
            n => format!("{n} findings ({})", parts.join(", ")),
        }
    }

    /// The report for people: a summary line, then each identity with one line per finding,
    /// then unknown principals and notes. Deterministic.
    pub fn to_text(&self) -> String {
        let mut out = format!("rbac audit: {}\n", self.summary());
        let line = |out: &mut String, f: &Finding| {
            let _ = writeln!(
                out,
                "  {:<8} {}: {} -- fix: {}",
                f.severity.as_str(),
                f.kind,
                f.message,
                f.fix
            );
        };
        for identity in &self.identities {
            let _ = writeln!(
                out,
                "\nidentity {} (client {}, object {}; {})",
                identity.name,
                identity.client_id,
                identity.principal_id.as_deref().unwrap_or("unknown"),
                identity.reachability
            );
            let mine: Vec<&Finding> = self
                .findings
                .iter()
                .filter(|f| f.identity.as_deref() == Some(identity.name.as_str()))
                .collect();
            if mine.is_empty() {
                let _ = writeln!(
                    out,
                    "  ok: {} assignment(s), nothing to report",
                    identity.assignments
                );
            }
            for finding in mine {
                line(&mut out, finding);
            }
        }
        let unknown: Vec<&Finding> =
            self.findings.iter().filter(|f| f.identity.is_none()).collect();
        if !unknown.is_empty() {
            out.push_str("\nprincipals the policy does not know\n");
            for finding in unknown {
                line(&mut out, finding);
            }
        }
        if !self.notes.is_empty() {
            out.push_str("\nnotes\n");
            for note in &self.notes {
                let _ = writeln!(out, "  - {note}");
            }
        }
        out
    }

    /// The report as one JSON document: `identities`, `findings`, `notes` and `summary`
    /// (a count per severity). Deterministic.
    pub fn to_json(&self) -> String {
        let mut summary = serde_json::Map::new();
        for severity in Severity::ALL {
            summary.insert(severity.as_str().to_owned(), json!(self.count(severity)));
        }
        summary.insert("total".to_owned(), json!(self.findings.len()));
        let identities: Vec<Value> = self
            .identities
            .iter()
            .map(|i| {
                json!({
                    "name": i.name,
                    "client_id": i.client_id,
                    "principal_id": i.principal_id,
                    "reachable_from_any_branch": i.reachability.is_any_branch(),
                    "reachability": i.reachability.reason(),
                    "assignments": i.assignments,
                })
            })
            .collect();
        let document = json!({
            "identities": identities,
            "findings": self.findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
            "notes": self.notes,
            "summary": summary,
        });
        format!("{document:#}\n")
    }

    /// The report as a GitLab Code Quality artifact (`artifacts:reports:codequality`): one
    /// issue per finding, located at line 1 of `path` (the policy file or the export, relative
    /// to the repository; a leading `./` is dropped).
    pub fn to_code_quality(&self, path: &str) -> String {
        let path = path.strip_prefix("./").unwrap_or(path);
        let issues: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                let who = f.identity.as_deref().unwrap_or("unknown principal");
                code_quality_issue(
                    &format!("{who}: {}. Fix: {}", f.message, f.fix),
                    &format!("gitlab-azure-oidc/rbac/{}", f.kind),
                    &f.fingerprint,
                    f.severity,
                    path,
                    1,
                )
            })
            .collect();
        format!("{:#}\n", Value::Array(issues))
    }
}

#[cfg(test)]
mod tests;
