//! Errors of the federated-credential model: a credential list that does not load, and a
//! flexible credential's `claimsMatchingExpression` that does not parse.

use std::fmt;

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
                write!(f, "column {column}: the claim name is empty; write 'sub' or 'project_id'")
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

/// Why an issuer cannot go into a federated credential: Entra compares it exactly with the
/// token's `iss`, so a near miss is accepted when the credential is created and refuses every
/// token later (AADSTS700211).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssuerError {
    /// The issuer differs from a well-formed GitLab issuer URL only in a way people commonly get
    /// wrong (whitespace, the scheme, letter case, a trailing slash).
    NearMiss {
        /// The issuer as given.
        issuer: String,
        /// The first of its differences, in that order.
        near_miss: crate::IssuerNearMiss,
        /// The issuer as GitLab's `iss` carries it.
        fix: String,
    },
    /// The issuer is not an `https://` URL with a host.
    NotUrl {
        /// The issuer as given.
        issuer: String,
    },
}

impl IssuerError {
    /// A stable, kebab-case name for this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NearMiss { .. } => "issuer-near-miss",
            Self::NotUrl { .. } => "issuer-not-url",
        }
    }
}

impl fmt::Display for IssuerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::IssuerNearMiss;
        match self {
            Self::NearMiss { issuer, near_miss, fix } => {
                let what = match near_miss {
                    IssuerNearMiss::Whitespace => {
                        "contains whitespace (Entra blocks an issuer with whitespace around it)"
                    }
                    IssuerNearMiss::Scheme => {
                        "does not start with `https://` (GitLab ID tokens carry the https URL)"
                    }
                    IssuerNearMiss::Case => {
                        "has capital letters in its scheme or host (GitLab's `iss` has none)"
                    }
                    IssuerNearMiss::TrailingSlash => {
                        "ends in `/` (GitLab's `iss` has no trailing slash)"
                    }
                };
                write!(
                    f,
                    "issuer `{}` {what}; Entra compares a credential's issuer exactly with the \
                     token's `iss`, so such a credential is created but refuses every token \
                     (AADSTS700211): use `{fix}`",
                    issuer.escape_debug()
                )
            }
            Self::NotUrl { issuer } => write!(
                f,
                "issuer `{}` is not an https URL with a host; use the GitLab instance URL, \
                 e.g. `https://gitlab.com` (CI_SERVER_URL in a job)",
                issuer.escape_debug()
            ),
        }
    }
}

impl std::error::Error for IssuerError {}
