//! Conditions on claims: compiled from the policy document, evaluated against a token's claims.

use serde_json::{Map, Value};

use super::decision::Mismatch;
use super::glob::Glob;
use crate::verify::claim_spec;
use crate::ClaimKind;

/// How the policy compares a claim's value, derived from the claim table ([`crate::CLAIMS`]), so
/// the policy can refuse values that could never match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MatchKind {
    /// A string such as a path, a ref or a login (or a list of them, or `aud`).
    Text,
    /// A numeric id: GitLab sends digits as a string (`runner_id` as a number).
    Id,
    /// `"true"` or `"false"`.
    Flag,
    /// A NumericDate; conditions on it can only test presence or exact values.
    Time,
    /// A structured claim, or a claim this version does not name: any scalar is accepted.
    Other,
}

impl MatchKind {
    /// The kind of `claim`; [`MatchKind::Other`] for claims this version does not name.
    pub(crate) fn of(claim: &str) -> Self {
        match claim_spec(claim).map(|spec| spec.kind) {
            Some(ClaimKind::Text | ClaimKind::TextList | ClaimKind::Audience) => Self::Text,
            Some(ClaimKind::Id | ClaimKind::Integer) => Self::Id,
            Some(ClaimKind::Flag) => Self::Flag,
            Some(ClaimKind::Time) => Self::Time,
            Some(ClaimKind::Identities | ClaimKind::Object) | None => Self::Other,
        }
    }

    /// True when the claim table names the claim.
    pub(crate) fn known(claim: &str) -> bool {
        claim_spec(claim).is_some()
    }
}

/// A test on one claim's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Test {
    /// The value equals one of these (canonical strings: ids as digits, flags as true/false).
    OneOf(Vec<String>),
    /// The value matches one of these globs.
    Glob(Vec<Glob>),
    /// The claim is present (true) or absent (false); `null` counts as absent.
    Present(bool),
}

/// A compiled condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Condition {
    /// Every condition holds (in order; the first that fails is reported).
    All(Vec<Condition>),
    /// At least one condition holds.
    Any(Vec<Condition>),
    /// The condition does not hold.
    Not(Box<Condition>),
    /// A test on one claim.
    Claim {
        /// The claim name.
        claim: String,
        /// The test.
        test: Test,
    },
}

/// A claim's value as conditions see it.
enum Found {
    Absent,
    /// Scalars as canonical strings; an array claim contributes each scalar element.
    Values(Vec<String>),
    /// An object: only presence can be tested.
    Opaque,
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn found(raw: &Map<String, Value>, claim: &str) -> Found {
    match raw.get(claim) {
        None | Some(Value::Null) => Found::Absent,
        Some(Value::Array(items)) => Found::Values(items.iter().filter_map(scalar).collect()),
        Some(Value::Object(_)) => Found::Opaque,
        Some(other) => Found::Values(scalar(other).into_iter().collect()),
    }
}

/// A value for messages: bare, unless empty or containing spaces or commas (then JSON-quoted).
pub(crate) fn show(value: &str) -> String {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c == ',' || c == ';') {
        Value::String(value.to_owned()).to_string()
    } else {
        value.to_owned()
    }
}

fn show_list<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    values.into_iter().map(show).collect::<Vec<_>>().join(", ")
}

fn show_found(raw: &Map<String, Value>, claim: &str) -> Option<String> {
    match raw.get(claim) {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let shown: Vec<String> = items
                .iter()
                .map(|i| scalar(i).map_or_else(|| i.to_string(), |s| show(&s)))
                .collect();
            Some(format!("[{}]", shown.join(", ")))
        }
        Some(Value::Object(_)) => Some("an object".to_owned()),
        Some(other) => Some(scalar(other).map_or_else(|| other.to_string(), |s| show(&s))),
    }
}

impl Test {
    /// What the test expects, for "expected ..." in explanations.
    pub(crate) fn expected(&self) -> String {
        match self {
            Self::OneOf(values) => match values.as_slice() {
                [one] => show(one),
                many => format!("one of {}", show_list(many.iter().map(String::as_str))),
            },
            Self::Glob(globs) => match globs.as_slice() {
                [one] => format!("a match for {}", show(one.as_str())),
                many => format!("a match for one of {}", show_list(many.iter().map(Glob::as_str))),
            },
            Self::Present(true) => "present".to_owned(),
            Self::Present(false) => "absent".to_owned(),
        }
    }

    fn holds(&self, found: &Found) -> bool {
        match (self, found) {
            (Self::Present(want), f) => *want != matches!(f, Found::Absent),
            (Self::OneOf(values), Found::Values(vs)) => vs.iter().any(|v| values.contains(v)),
            (Self::Glob(globs), Found::Values(vs)) => {
                vs.iter().any(|v| globs.iter().any(|g| g.matches(v)))
            }
            (_, Found::Absent | Found::Opaque) => false,
        }
    }
}

impl Condition {
    /// Evaluates the condition; on failure, the first condition that failed.
    pub(crate) fn check(&self, raw: &Map<String, Value>) -> Result<(), Mismatch> {
        match self {
            Self::All(conditions) => conditions.iter().try_for_each(|c| c.check(raw)),
            Self::Any(conditions) => {
                let mut failures = Vec::with_capacity(conditions.len());
                for c in conditions {
                    match c.check(raw) {
                        Ok(()) => return Ok(()),
                        Err(m) => failures.push(m),
                    }
                }
                Err(Mismatch::NoAlternative { failures })
            }
            Self::Not(inner) => match inner.check(raw) {
                Ok(()) => Err(Mismatch::Negated { condition: inner.describe() }),
                Err(_) => Ok(()),
            },
            Self::Claim { claim, test } => {
                if test.holds(&found(raw, claim)) {
                    Ok(())
                } else {
                    Err(Mismatch::Claim {
                        claim: claim.clone(),
                        found: show_found(raw, claim),
                        expected: test.expected(),
                    })
                }
            }
        }
    }

    /// A short description of what the condition requires.
    pub(crate) fn describe(&self) -> String {
        let join = |cs: &[Self]| cs.iter().map(Self::describe).collect::<Vec<_>>().join("; ");
        match self {
            Self::All(cs) => format!("all of ({})", join(cs)),
            Self::Any(cs) => format!("any of ({})", join(cs)),
            Self::Not(inner) => format!("not ({})", inner.describe()),
            Self::Claim { claim, test } => format!("{claim} is {}", test.expected()),
        }
    }

    /// Every claim the condition tests, in order, with duplicates.
    pub(crate) fn claims<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Self::All(cs) | Self::Any(cs) => cs.iter().for_each(|c| c.claims(out)),
            Self::Not(inner) => inner.claims(out),
            Self::Claim { claim, .. } => out.push(claim),
        }
    }
}
