//! The report flags of the commands that judge inputs into findings (`lint`, `audit-rbac`):
//! `--json`, `--code-quality FILE` and `--fail-on SEVERITY`, parsed once and printed one way.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use gitlab_azure_oidc_host::Severity;

use crate::exit::Exit;
use crate::out;

#[derive(Args, Debug)]
pub(crate) struct ReportArgs {
    /// Print the report as one JSON document on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also write the findings as a GitLab Code Quality report (a JSON array) to FILE, for
    /// `artifacts:reports:codequality`.
    #[arg(long, value_name = "FILE")]
    pub(crate) code_quality: Option<PathBuf>,
    /// Exit 1 when a finding has this severity or a higher one.
    #[arg(long, value_name = "SEVERITY", value_enum, default_value_t = FailOn::High)]
    pub(crate) fail_on: FailOn,
}

/// `--fail-on`: the component's severities, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub(crate) enum FailOn {
    /// Any finding.
    Info,
    /// Low and above.
    Low,
    /// Medium and above.
    Medium,
    /// High and critical.
    High,
    /// Critical only.
    Critical,
}

impl FailOn {
    /// The component's severity of the same name.
    pub(crate) fn severity(self) -> Severity {
        match self {
            Self::Info => Severity::Info,
            Self::Low => Severity::Low,
            Self::Medium => Severity::Medium,
            Self::High => Severity::High,
            Self::Critical => Severity::Critical,
        }
    }

    /// The flag's value as typed (clap's name for the variant).
    pub(crate) fn name(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
    }
}

/// A report as the component rendered it.
pub(crate) struct Rendered<'a> {
    /// For people.
    pub(crate) text: &'a str,
    /// One JSON document.
    pub(crate) json: &'a str,
    /// The Code Quality array.
    pub(crate) code_quality: &'a str,
}

impl ReportArgs {
    /// Writes the Code Quality file (when asked), then prints the report as text or JSON.
    ///
    /// # Errors
    /// A usage error when the Code Quality file cannot be written; stdout closing early.
    pub(crate) fn print(&self, report: &Rendered<'_>) -> Result<(), Exit> {
        if let Some(path) = &self.code_quality {
            std::fs::write(path, format!("{}\n", report.code_quality.trim_end())).map_err(|e| {
                Exit::usage(format!("cannot write --code-quality {}: {e}", path.display()))
            })?;
        }
        if self.json {
            out::json_mark();
            out::line(report.json.trim_end())?;
        } else {
            out::line(report.text.trim_end())?;
        }
        Ok(())
    }
}
