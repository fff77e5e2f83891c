//! One error type per policy boundary: loading a policy, loading federated credentials, and
//! parsing a flexible credential's `claimsMatchingExpression`.
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
    /// More rules than the limit.
    TooManyRules {
        /// How many.
        count: usize,
        /// The limit.
        limit: usize,
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
            Self::TooLarge { .. } => "policy-too-large",
            Self::TooManyRules { .. } => "policy-too-many-rules",
            Self::UnknownField { .. } => "policy-unknown-field",
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

/// Why a flexible credential's `claimsMatchingExpression` does not parse.
///
/// The grammar is Entra's language version 1, exactly as documented: one or more
/// `claims['<name>'] <operator> '<comparand>'` joined by ` and `, with exactly one space around
/// each operator and each `and`, the operator `matches` or `eq`, and the comparand in single
/// quotes. Positions are 1-based character columns.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpressionError {
    /// The expression is empty.
    Empty,
    /// The comparand or claim name has no closing `'`.
    Unterminated {
        /// Column of the opening quote.
        column: usize,
    },
    /// Something other than what the grammar requires at this point.
    Unexpected {
        /// The column.
        column: usize,
        /// What the grammar requires here.
        expected: String,
        /// What is there (a short excerpt, or "the end").
        found: String,
    },
    /// An operator other than `matches` and `eq`.
    UnknownOperator {
        /// The column.
        column: usize,
        /// The operator as written.
        operator: String,
    },
    /// A claim name is empty: `claims['']`.
    EmptyClaimName {
        /// The column.
        column: usize,
    },
    /// The expression is longer than the limit.
    TooLong {
        /// The length in characters.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// `languageVersion` is not 1.
    UnsupportedVersion {
        /// The version found.
        version: i64,
    },
}

impl ExpressionError {
    /// A stable, kebab-case name for this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "expression-empty",
            Self::Unterminated { .. } => "expression-unterminated",
            Self::Unexpected { .. } => "expression-unexpected",
            Self::UnknownOperator { .. } => "expression-unknown-operator",
            Self::EmptyClaimName { .. } => "expression-empty-claim-name",
            Self::TooLong { .. } => "expression-too-long",
            Self::UnsupportedVersion { .. } => "expression-unsupported-version",
        }
    }
}

impl fmt::Display for ExpressionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const FORM: &str = "write claims['sub'] matches '<pattern>' (or eq), joined by ` and `";
        match self {
            Self::Empty => write!(f, "the expression is empty; {FORM}"),
            Self::Unterminated { column } => write!(
                f,
                "column {column}: the quote opened here is never closed; close it with `'`"
            ),
            Self::Unexpected { column, expected, found } => {
                write!(f, "column {column}: expected {expected}, found {found}; {FORM}")
            }
            Self::UnknownOperator { column, operator } => write!(
                f,
                "column {column}: unknown operator `{operator}`; language version 1 has only \
                 `matches` (wildcards `*` and `?`) and `eq`"
            ),
            Self::EmptyClaimName { column } => {
                write!(f, "column {column}: the claim name is empty; GitLab supports only 'sub'")
            }
            Self::TooLong { length, limit } => write!(
                f,
                "the expression is {length} characters, more than the limit of {limit}; match \
                 fewer parts"
            ),
            Self::UnsupportedVersion { version } => write!(
                f,
                "languageVersion {version} is not supported; Entra documents only version 1"
            ),
        }
    }
}

impl std::error::Error for ExpressionError {}

/// Why a list of federated identity credentials was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialError {
    /// The document is not valid JSON.
    Json {
        /// The parser's message.
        detail: String,
    },
    /// The document is neither an array of credentials nor Graph's `{"value": [...]}`.
    NotAList,
    /// A credential lacks a required field or has it with the wrong type.
    Field {
        /// The credential's index in the list.
        index: usize,
        /// The credential's name, when it has one.
        name: Option<String>,
        /// The field.
        field: String,
        /// What the field must be.
        expected: String,
    },
    /// A credential sets both `subject` and `claimsMatchingExpression`, or neither.
    SubjectAndExpression {
        /// The credential's name.
        name: String,
        /// True when both are set, false when neither is.
        both: bool,
    },
    /// A flexible credential's expression does not parse.
    Expression {
        /// The credential's name.
        name: String,
        /// The parse error.
        error: ExpressionError,
    },
    /// The document is larger than the limit.
    TooLarge {
        /// The size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl CredentialError {
    /// A stable, kebab-case name for this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Json { .. } => "credentials-json",
            Self::NotAList => "credentials-not-a-list",
            Self::Field { .. } => "credentials-field",
            Self::SubjectAndExpression { .. } => "credentials-subject-and-expression",
            Self::Expression { .. } => "credentials-expression",
            Self::TooLarge { .. } => "credentials-too-large",
        }
    }
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json { detail } => write!(f, "the credentials are not JSON: {detail}"),
            Self::NotAList => f.write_str(
                "the credentials are neither a JSON array nor Graph's {\"value\": [...]}; pass \
                 the output of `az ad app federated-credential list --id <client-id>`",
            ),
            Self::Field { index, name, field, expected } => {
                write!(f, "credential {index}")?;
                if let Some(name) = name {
                    write!(f, " ({name})")?;
                }
                write!(f, ": field `{field}` must be {expected}")
            }
            Self::SubjectAndExpression { name, both: true } => write!(
                f,
                "credential {name} sets both `subject` and `claimsMatchingExpression`; Entra \
                 requires exactly one, so set `subject` to null"
            ),
            Self::SubjectAndExpression { name, both: false } => write!(
                f,
                "credential {name} sets neither `subject` nor `claimsMatchingExpression`; set \
                 exactly one"
            ),
            Self::Expression { name, error } => {
                write!(f, "credential {name}: claimsMatchingExpression: {error}")
            }
            Self::TooLarge { size, limit } => {
                write!(f, "the credentials are {size} bytes, more than the limit of {limit}")
            }
        }
    }
}

impl std::error::Error for CredentialError {}
