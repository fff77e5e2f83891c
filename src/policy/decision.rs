//! Decisions and their explanations.

use std::fmt;

use crate::entra::federated::FederatedCredential;
use crate::entra::AzureTarget;

/// What a rule does when it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Effect {
    /// Grant the rule's Azure target.
    Allow,
    /// Refuse, whatever any allow rule says.
    Deny,
}

impl Effect {
    /// `allow` or `deny`, as in the policy document.
    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// Why one rule did not match: the first of its conditions that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mismatch {
    /// A claim's value, or its absence, is not what the condition expects.
    Claim {
        /// The claim.
        claim: String,
        /// The value found, as shown in messages; `None` when the claim is absent.
        found: Option<String>,
        /// What the condition expects, e.g. `true`, `one of main, develop`.
        expected: String,
    },
    /// The token names another project than the one that runs the job (`same_project`).
    ForkPipeline {
        /// `project_path`: the project the token names (for merge-request pipelines from forks,
        /// the fork).
        project_path: String,
        /// `job_project_path`: the project that runs the job.
        job_project_path: String,
    },
    /// The condition under `not` holds.
    Negated {
        /// What the negated condition requires.
        condition: String,
    },
    /// No alternative of an `any` holds; the first failure of each.
    NoAlternative {
        /// One mismatch per alternative, in order.
        failures: Vec<Mismatch>,
    },
    /// The token is older than `max_token_age`.
    TokenTooOld {
        /// `now - iat`, in seconds.
        age: u64,
        /// The rule's maximum, in seconds.
        max_age: u64,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Claim { claim, found, expected } => {
                write!(
                    f,
                    "{claim} is {}, expected {expected}",
                    found.as_deref().unwrap_or("absent")
                )
            }
            Self::ForkPipeline { project_path, job_project_path } => write!(
                f,
                "project_path is {project_path} but job_project_path is {job_project_path}, \
                 expected the same project (same_project refuses merge-request pipelines from \
                 forks)"
            ),
            Self::Negated { condition } => write!(f, "{condition}, which `not` excludes"),
            Self::NoAlternative { failures } => {
                f.write_str("no alternative of `any` holds: ")?;
                for (i, failure) in failures.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{failure}")?;
                }
                Ok(())
            }
            Self::TokenTooOld { age, max_age } => {
                write!(f, "token age is {age} s, expected at most {max_age} s (max_token_age)")
            }
        }
    }
}

/// How one rule fared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleOutcome {
    /// The rule's name.
    pub rule: String,
    /// The rule's effect.
    pub effect: Effect,
    /// `Ok` when every condition held, otherwise the first that failed.
    pub result: Result<(), Mismatch>,
}

impl fmt::Display for RuleOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.result {
            Ok(()) => write!(f, "rule {}: matched", self.rule),
            Err(mismatch) => write!(f, "rule {}: {mismatch}", self.rule),
        }
    }
}

/// The outcome of a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The job may become the target.
    Allow {
        /// The allow rule that matched first.
        rule: String,
        /// Its Azure target.
        target: AzureTarget,
    },
    /// The job may not become any Azure identity.
    Deny {
        /// The deny rule that matched, or `None` when no rule matched.
        rule: Option<String>,
    },
}

/// The federated credential a job relies on: the one the plan gives its app that Entra would
/// match the job's token with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialEvidence {
    /// The credential's name.
    pub name: String,
    /// Its exact subject (classic credentials).
    pub subject: Option<String>,
    /// Its `claimsMatchingExpression` (flexible credentials).
    pub expression: Option<String>,
}

impl From<&FederatedCredential> for CredentialEvidence {
    fn from(c: &FederatedCredential) -> Self {
        Self {
            name: c.name.clone(),
            subject: c.subject.clone(),
            expression: c.claims_matching_expression.as_ref().map(|e| e.value.as_str().to_owned()),
        }
    }
}

/// A role assignment the identity holds per the plan (the policy's `azure.roles`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleEvidence {
    /// The role's name (its GUID for a custom role).
    pub role: String,
    /// The role's GUID.
    pub role_guid: String,
    /// The scope.
    pub scope: String,
}

/// What an auditor needs besides the verdict: which policy decided, which federated credential
/// the job relies on and what the identity may do in Azure per the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// SHA-256 of the policy document, hex.
    pub policy_sha256: String,
    /// The object id of the identity's service principal, when the policy gives it.
    pub principal_id: Option<String>,
    /// The credential the plan gives the app that matches the job; `None` for a deny, or when
    /// no planned credential matches (the job must be exchanged through this policy).
    pub credential: Option<CredentialEvidence>,
    /// The role assignments the identity holds per the plan; empty for a deny.
    pub role_assignments: Vec<RoleEvidence>,
}

/// A decision and its explanation: how every rule fared, in document order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allow or deny.
    pub verdict: Verdict,
    /// One outcome per rule, in document order.
    pub explanation: Vec<RuleOutcome>,
    /// The evidence for an audit.
    pub evidence: Evidence,
}

impl Decision {
    /// True when the job may become an Azure identity.
    pub fn is_allow(&self) -> bool {
        matches!(self.verdict, Verdict::Allow { .. })
    }

    /// The rule that decided, if any rule matched.
    pub fn rule(&self) -> Option<&str> {
        match &self.verdict {
            Verdict::Allow { rule, .. } => Some(rule),
            Verdict::Deny { rule } => rule.as_deref(),
        }
    }

    /// The Azure target, when allowed.
    pub fn target(&self) -> Option<&AzureTarget> {
        match &self.verdict {
            Verdict::Allow { target, .. } => Some(target),
            Verdict::Deny { .. } => None,
        }
    }

    /// The first line of the display: the verdict alone.
    pub fn summary(&self) -> String {
        match &self.verdict {
            Verdict::Allow { rule, target } => format!("allow: rule {rule} grants {target}"),
            Verdict::Deny { rule: Some(rule) } => format!("deny: deny rule {rule} matched"),
            Verdict::Deny { rule: None } => "deny: no allow rule matched".to_owned(),
        }
    }

    /// The explanation as lines, one per rule: `rule deploy-prod: ref_protected is false,
    /// expected true` or `rule deploy-prod: matched`.
    pub fn lines(&self) -> Vec<String> {
        self.explanation.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for Decision {
    /// The summary line, then one line per rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())?;
        for outcome in &self.explanation {
            write!(f, "\n{outcome}")?;
        }
        Ok(())
    }
}
