//! Why a policy document was refused.
//!
//! Each variant carries the offending value and where it is (the rule and the field path, such
//! as `when.any[1].ref.glob`); `Display` is lowercase and ends with what to do next.

use std::fmt;

/// Where in a policy document a problem is: the rule (by name, or `rules[3]` before its name is
/// known) and the field path inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The rule's name, `rules[N]` when it has none yet, or `None` for top-level fields.
    pub rule: Option<String>,
    /// The field path, e.g. `when.ref_protected` or `azure.client_id`.
    pub field: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(rule) => write!(f, "rule {rule}, field `{}`", self.field),
            None => write!(f, "field `{}`", self.field),
        }
    }
}

/// Why a policy document was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// A claim name is not one this version knows but is close to one it does: most likely a
    /// typo, which in a deny rule would silently deny nothing.
    ClaimTypo {
        /// Where.
        at: Location,
        /// The claim name as written.
        claim: String,
        /// The known claim it is close to.
        suggestion: String,
    },
    /// Two rules have the same name.
    DuplicateRule {
        /// The name.
        name: String,
    },
    /// A member name appears twice in one object.
    DuplicateMember {
        /// The repeated name.
        name: String,
    },
    /// A glob pattern does not compile.
    Glob {
        /// Where.
        at: Location,
        /// The pattern.
        glob: String,
        /// The 0-based character position of the problem.
        position: usize,
        /// What is wrong.
        reason: String,
    },
    /// A value has the right type but is not acceptable.
    InvalidValue {
        /// Where.
        at: Location,
        /// The value as written (JSON).
        value: String,
        /// What it must be.
        expected: String,
    },
    /// The document is not valid JSON.
    Json {
        /// The parser's message (with line and column).
        detail: String,
    },
    /// JSON nesting exceeds the limit.
    JsonTooDeep {
        /// The limit.
        limit: usize,
    },
    /// A required field is absent.
    MissingField {
        /// Where: the field that is missing.
        at: Location,
    },
    /// The document has no rules, so it would deny every job.
    NoRules,
    /// The document is larger than the limit.
    TooLarge {
        /// The size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// An allow rule's Azure target is one Entra would refuse.
    Target {
        /// Where: the field of the `azure` block.
        at: Location,
        /// What Entra's side says is wrong with it.
        error: crate::entra::TargetError,
    },
    /// More rules than the limit.
    TooManyRules {
        /// How many.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A declared role assignment (`azure.roles`) or the identity it is for is not valid.
    Role {
        /// Where: the field of the `azure` block.
        at: Location,
        /// What is wrong with it.
        error: Box<crate::rbac::RbacError>,
    },
    /// A value GitLab never sends for this claim: the condition would never hold (and a deny
    /// rule with it would silently deny nothing).
    UnknownValue {
        /// Where.
        at: Location,
        /// The claim.
        claim: &'static str,
        /// The value (or glob) as written.
        value: String,
        /// The documented value it is close to.
        suggestion: Option<&'static str>,
        /// GitLab's documented values for the claim.
        values: &'static [&'static str],
    },
    /// A field that the policy language does not have.
    UnknownField {
        /// Where: the unknown field.
        at: Location,
        /// A known field with a close name.
        suggestion: Option<String>,
        /// The fields allowed here.
        allowed: Vec<String>,
    },
    /// A field has the wrong JSON type.
    WrongType {
        /// Where.
        at: Location,
        /// The JSON type it must have, e.g. "a string".
        expected: String,
        /// The JSON type found.
        found: String,
    },
}

impl PolicyError {
    /// Where in the document the error is, when it is inside a rule or field.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::ClaimTypo { at, .. }
            | Self::Glob { at, .. }
            | Self::InvalidValue { at, .. }
            | Self::MissingField { at, .. }
            | Self::Target { at, .. }
            | Self::Role { at, .. }
            | Self::UnknownValue { at, .. }
            | Self::UnknownField { at, .. }
            | Self::WrongType { at, .. } => Some(at),
            Self::DuplicateRule { .. }
            | Self::DuplicateMember { .. }
            | Self::Json { .. }
            | Self::JsonTooDeep { .. }
            | Self::NoRules
            | Self::TooLarge { .. }
            | Self::TooManyRules { .. } => None,
        }
    }

    /// A stable, kebab-case name for this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ClaimTypo { .. } => "policy-claim-typo",
            Self::DuplicateRule { .. } => "policy-duplicate-rule",
            Self::DuplicateMember { .. } => "policy-duplicate-member",
            Self::Glob { .. } => "policy-glob",
            Self::InvalidValue { .. } => "policy-invalid-value",
            Self::Json { .. } => "policy-json",
            Self::JsonTooDeep { .. } => "policy-json-too-deep",
            Self::MissingField { .. } => "policy-missing-field",
            Self::NoRules => "policy-no-rules",
            Self::Role { .. } => "policy-role",
            Self::Target { .. } => "policy-target",
            Self::TooLarge { .. } => "policy-too-large",
            Self::TooManyRules { .. } => "policy-too-many-rules",
            Self::UnknownField { .. } => "policy-unknown-field",
            Self::UnknownValue { .. } => "policy-unknown-value",
            Self::WrongType { .. } => "policy-wrong-type",
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClaimTypo { at, claim, suggestion } => write!(
                f,
                "{at}: unknown claim `{claim}`; did you mean `{suggestion}`? (to match a claim \
                 this version does not know, write {{\"claim\": \"{claim}\", \"equals\": ...}})"
            ),
            Self::DuplicateRule { name } => {
                write!(f, "two rules are named `{name}`; give each rule a unique name")
            }
            Self::DuplicateMember { name } => write!(
                f,
                "the policy has member `{name}` twice in one object; remove one (parsers \
                 disagree on which one wins)"
            ),
            Self::Glob { at, glob, position, reason } => write!(
                f,
                "{at}: glob `{glob}` is invalid at character {}: {reason}",
                position.saturating_add(1)
            ),
            Self::InvalidValue { at, value, expected } => {
                write!(f, "{at}: {value} is not valid; expected {expected}")
            }
            Self::Json { detail } => write!(f, "the policy is not JSON: {detail}"),
            Self::JsonTooDeep { limit } => write!(
                f,
                "the policy nests deeper than the limit of {limit}; flatten nested `all`/`any`"
            ),
            Self::MissingField { at } => write!(f, "{at}: required field is missing; add it"),
            Self::NoRules => f.write_str(
                "the policy has no rules, so it would deny every job; add at least one allow rule",
            ),
            Self::TooLarge { size, limit } => write!(
                f,
                "the policy is {size} bytes, more than the limit of {limit}; split it per team"
            ),
            Self::Target { at, error } => write!(f, "{at}: {error}"),
            // The error names the field itself (`azure.roles[0].role`).
            Self::Role { at, error } => match &at.rule {
                Some(rule) => write!(f, "rule {rule}: {error}"),
                None => write!(f, "{error}"),
            },
            Self::UnknownValue { at, claim, value, suggestion, values } => {
                write!(f, "{at}: GitLab never sends {claim} {value}")?;
                if let Some(s) = suggestion {
                    write!(f, "; did you mean `{s}`?")?;
                }
                write!(
                    f,
                    " (GitLab's values: {}; a condition on a value GitLab never sends never holds)",
                    values.join(", ")
                )
            }
            Self::TooManyRules { count, limit } => write!(
                f,
                "the policy has {count} rules, more than the limit of {limit}; merge rules with \
                 `any` or list values"
            ),
            Self::UnknownField { at, suggestion, allowed } => {
                write!(f, "{at}: unknown field")?;
                match suggestion {
                    Some(s) => write!(f, "; did you mean `{s}`?"),
                    None => write!(f, "; allowed here: {}", allowed.join(", ")),
                }
            }
            Self::WrongType { at, expected, found } => {
                write!(f, "{at}: expected {expected}, found {found}")
            }
        }
    }
}

impl std::error::Error for PolicyError {}
