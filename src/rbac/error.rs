//! Two error types: [`ScopeError`] for an Azure resource id that does not parse, and
//! [`RbacError`] for everything read from JSON (a declared need, an `az` export, the identity
//! model). Each variant carries the offending value and where it is; `Display` is lowercase and
//! ends with what to change.

use std::error::Error as StdError;
use std::fmt;

/// Why a string is not an Azure scope (resource id).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScopeError {
    /// The string is empty.
    Empty,
    /// A resource type under a provider has no name (types and names come in pairs).
    IncompleteType {
        /// The scope as written.
        value: String,
        /// The provider namespace whose type has no name, e.g. `Microsoft.Storage`.
        provider: String,
    },
    /// The id is relative.
    MissingLeadingSlash {
        /// The scope as written.
        value: String,
    },
    /// A segment that needs a name after it is the last one (`/subscriptions`,
    /// `/resourceGroups`, `/providers`).
    MissingName {
        /// The scope as written.
        value: String,
        /// The segment that lacks its name.
        after: String,
    },
    /// Two slashes in a row: an empty segment, which Azure does not produce.
    RepeatedSlash {
        /// The scope as written.
        value: String,
        /// The 0-based byte position of the second slash.
        position: usize,
    },
    /// Longer than [`MAX_SCOPE_LEN`](super::MAX_SCOPE_LEN).
    TooLong {
        /// The length in bytes.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// A segment that cannot be at this position.
    UnexpectedSegment {
        /// The scope as written.
        value: String,
        /// The segment found.
        segment: String,
        /// What may stand there.
        expected: &'static str,
    },
    /// Whitespace or a control character: a copy-and-paste accident.
    Whitespace {
        /// The scope as written.
        value: String,
    },
}

impl ScopeError {
    /// A stable kebab-case name for the variant, for logs and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "scope-empty",
            Self::IncompleteType { .. } => "scope-incomplete-type",
            Self::MissingLeadingSlash { .. } => "scope-missing-leading-slash",
            Self::MissingName { .. } => "scope-missing-name",
            Self::RepeatedSlash { .. } => "scope-repeated-slash",
            Self::TooLong { .. } => "scope-too-long",
            Self::UnexpectedSegment { .. } => "scope-unexpected-segment",
            Self::Whitespace { .. } => "scope-whitespace",
        }
    }
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const FORMS: &str = "/, /providers/Microsoft.Management/managementGroups/<name>, \
                             /subscriptions/<id>, /subscriptions/<id>/resourceGroups/<name>, or a \
                             resource id from `az resource show --query id -o tsv`";
        match self {
            Self::Empty => write!(f, "the scope is empty; write one of {FORMS}"),
            Self::IncompleteType { value, provider } => write!(
                f,
                "scope `{value}`: the resource under provider `{provider}` has a type without a \
                 name; types and names come in pairs ({provider}/<type>/<name>)"
            ),
            Self::MissingLeadingSlash { value } => write!(
                f,
                "scope `{value}` does not start with `/`; resource ids are absolute: one of {FORMS}"
            ),
            Self::MissingName { value, after } => write!(
                f,
                "scope `{value}` ends after `{after}` without a name; add it ({after}/<name>)"
            ),
            Self::RepeatedSlash { value, position } => write!(
                f,
                "scope `{value}` has an empty segment (`//` at byte {position}); remove the extra `/`"
            ),
            Self::TooLong { length, limit } => write!(
                f,
                "the scope is {length} bytes long, more than the limit of {limit}; Azure resource \
                 ids are shorter: check that it is one id, not several"
            ),
            Self::UnexpectedSegment { value, segment, expected } => write!(
                f,
                "scope `{value}`: `{segment}` cannot stand here, expected {expected}; a scope is \
                 one of {FORMS}"
            ),
            Self::Whitespace { value } => write!(
                f,
                "scope `{}` contains whitespace or a control character; remove it (copy ids from \
                 `az resource show --query id -o tsv`)",
                value.escape_debug()
            ),
        }
    }
}

impl StdError for ScopeError {}

/// Why a declared need, an `az` export or the identity model was refused.
///
/// `at` names where the problem is: a JSON path such as `[3].scope` or `identities[ci].needs[0]`,
/// relative to the value that was parsed (the caller prefixes its own path).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RbacError {
    /// The embedded built-in role catalogue does not load: a bug in this build.
    Catalogue {
        /// What is wrong with it.
        detail: String,
    },
    /// A value has the right JSON type but is not acceptable.
    InvalidValue {
        /// Where.
        at: String,
        /// The value as written.
        value: String,
        /// What it must be.
        expected: String,
    },
    /// The input is not JSON.
    Json {
        /// What was being read, e.g. "the role assignments export".
        what: &'static str,
        /// The parser's message (with line and column).
        detail: String,
    },
    /// A required member is absent (or `null`).
    MissingField {
        /// Where: the member that is missing.
        at: String,
    },
    /// An export is not a JSON array.
    NotAnArray {
        /// What was being read.
        what: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A scope does not parse.
    Scope {
        /// Where.
        at: String,
        /// Why.
        error: ScopeError,
    },
    /// The input is larger than the limit.
    TooLarge {
        /// What was being read.
        what: &'static str,
        /// The size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// More entries than the limit.
    TooMany {
        /// What was being counted.
        what: &'static str,
        /// How many.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A member this format does not have.
    UnknownField {
        /// Where: the object.
        at: String,
        /// The member's name.
        field: String,
        /// The members allowed here.
        allowed: &'static [&'static str],
    },
    /// A role name that is not built in (custom roles are named by GUID or definition id).
    UnknownRole {
        /// Where.
        at: String,
        /// The role as written.
        role: String,
        /// A built-in role with a close name.
        suggestion: Option<String>,
    },
    /// A member has the wrong JSON type.
    WrongType {
        /// Where.
        at: String,
        /// The JSON type it must have, e.g. "a string".
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
}

impl RbacError {
    /// A stable kebab-case name for the variant, for logs and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Catalogue { .. } => "rbac-catalogue",
            Self::InvalidValue { .. } => "rbac-invalid-value",
            Self::Json { .. } => "rbac-json",
            Self::MissingField { .. } => "rbac-missing-field",
            Self::NotAnArray { .. } => "rbac-not-an-array",
            Self::Scope { .. } => "rbac-scope",
            Self::TooLarge { .. } => "rbac-too-large",
            Self::TooMany { .. } => "rbac-too-many",
            Self::UnknownField { .. } => "rbac-unknown-field",
            Self::UnknownRole { .. } => "rbac-unknown-role",
            Self::WrongType { .. } => "rbac-wrong-type",
        }
    }
}

/// `at` for display: "the value" when the error is about the top-level value itself.
fn place(at: &str) -> String {
    if at.is_empty() {
        "the value".to_owned()
    } else {
        format!("`{at}`")
    }
}

impl fmt::Display for RbacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Catalogue { detail } => write!(
                f,
                "the built-in role catalogue of this build does not load ({detail}); this is a \
                 bug, please report it"
            ),
            Self::InvalidValue { at, value, expected } => {
                write!(f, "{}: `{value}` is not {expected}", place(at))
            }
            Self::Json { what, detail } => {
                write!(
                    f,
                    "{what} is not valid JSON: {detail}; pass the file `az ... -o json` wrote"
                )
            }
            Self::MissingField { at } => write!(f, "{} is missing; add it", place(at)),
            Self::NotAnArray { what, found } => write!(
                f,
                "{what} must be a JSON array (as `az ... -o json` prints it), found {found}"
            ),
            Self::Scope { at, error } => write!(f, "{}: {error}", place(at)),
            Self::TooLarge { what, size, limit } => write!(
                f,
                "{what} is {size} bytes, more than the limit of {limit}; export one subscription \
                 at a time"
            ),
            Self::TooMany { what, count, limit } => {
                write!(f, "{count} {what}, more than the limit of {limit}; split the input")
            }
            Self::UnknownField { at, field, allowed } => write!(
                f,
                "{}: unknown member `{field}`; the members are {}",
                place(at),
                allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
            ),
            Self::UnknownRole { at, role, suggestion } => {
                write!(f, "{}: `{role}` is not a built-in role", place(at))?;
                if let Some(suggestion) = suggestion {
                    write!(f, "; did you mean `{suggestion}`?")?;
                }
                write!(
                    f,
                    " (a custom role is named by its GUID or definition id: \
                     `az role definition list --custom-role-only true --query \"[].[roleName,name]\" -o tsv`)"
                )
            }
            Self::WrongType { at, expected, found } => {
                write!(f, "{} must be {expected}, found {found}", place(at))
            }
        }
    }
}

impl StdError for RbacError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Scope { error, .. } => Some(error),
            _ => None,
        }
    }
}
