//! How a command ends: the exit code, the one error line on stderr, and the JSON document for
//! `--json` calls.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | refused: the token, the policy, Entra or the network said no (the line says which) |
//! | 2 | usage: a flag, an environment variable or an input file must change |
//! | 3 | internal: the component trapped or could not be loaded (please report it) |

use gitlab_azure_oidc_host::{Category, Failure, HostError};
use serde_json::json;

use crate::out;

/// Why the program stops early.
#[derive(Debug)]
pub(crate) enum Exit {
    /// Exit 1: something judged or unreachable said no.
    Refused {
        /// Stable kind, e.g. `expired`, `policy-denied`, `unreachable`.
        kind: String,
        /// What happened, naming the values involved.
        message: String,
        /// What to change or try, when there is more than the message says.
        hint: Option<String>,
    },
    /// Exit 2: the invocation or its inputs must change.
    Usage {
        /// Stable kind: `usage`, or the component's kind for a configuration it refused.
        kind: String,
        /// What is wrong, naming the flag, variable or file and where its value came from.
        message: String,
    },
    /// Exit 3: the host could not get an answer from the component.
    Internal(HostError),
    /// Standard output was closed by its reader: stop quietly with success, as `head` expects.
    Closed,
}

impl Exit {
    pub(crate) fn refused(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Refused { kind: kind.into(), message: message.into(), hint: None }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::Usage { kind: "usage".to_owned(), message: message.into() }
    }

    /// The component's failure: configuration problems are usage errors (exit 2), everything
    /// else is a refusal (exit 1). `context` (e.g. the file) prefixes the message.
    pub(crate) fn failure(failure: Failure, context: Option<&str>) -> Self {
        let message = match context {
            Some(context) => format!("{context}: {}", failure.message),
            None => failure.message,
        };
        let message = match &failure.location {
            Some(at) if !message.contains(&at.field) => match &at.rule {
                Some(rule) => format!("{message} (rule {rule}, field {})", at.field),
                None => format!("{message} (field {})", at.field),
            },
            _ => message,
        };
        match failure.category {
            Category::Config => Self::Usage { kind: failure.kind, message },
            _ => Self::Refused { kind: failure.kind, message, hint: failure.hint },
        }
    }

    /// The exit code.
    pub(crate) fn code(&self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::Refused { .. } => 1,
            Self::Usage { .. } => 2,
            Self::Internal(_) => 3,
        }
    }

    /// Prints the error: one line on stderr (plus a `hint:` line when the hint adds to the
    /// message), and for `--json` calls one JSON document on stdout unless one was printed.
    pub(crate) fn report(&self, json_errors: bool) {
        let (kind, message, hint) = match self {
            Self::Closed => return,
            Self::Refused { kind, message, hint } => (kind.as_str(), message.clone(), hint.clone()),
            Self::Usage { kind, message } => {
                ("usage", format!("{}{message}", kind_prefix(kind)), None)
            }
            Self::Internal(err) => ("internal", err.to_string(), None),
        };
        eprintln!("error: {kind}: {message}");
        let hint = hint.filter(|h| !message.contains(h.as_str()));
        if let Some(hint) = &hint {
            for line in hint.lines() {
                eprintln!("  hint: {line}");
            }
        }
        if json_errors && !out::json_printed() {
            let _ = out::json(&json!({"error": kind, "message": message, "hint": hint}));
        }
    }
}

/// A configuration error keeps the component's kind in the message: `usage: policy-unknown-field: ...`.
fn kind_prefix(kind: &str) -> String {
    if kind == "usage" {
        String::new()
    } else {
        format!("{kind}: ")
    }
}

impl From<HostError> for Exit {
    fn from(err: HostError) -> Self {
        Self::Internal(err)
    }
}

impl From<out::Closed> for Exit {
    fn from(closed: out::Closed) -> Self {
        match closed {
            out::Closed::Pipe => Self::Closed,
            out::Closed::Other(e) => Self::usage(format!("cannot write to standard output: {e}")),
        }
    }
}
