//! `audit-rbac`: what the policy's identities may do in Azure, against what it says they need,
//! weighted by who can become them.

use std::io::Read;

use clap::Args;
use gitlab_azure_oidc_host::{AuditOptions, Host};

use crate::exit::Exit;
use crate::fetch::read_file;
use crate::report::{Rendered, ReportArgs};

/// Largest role assignments or definitions export read, in bytes: some thousands of
/// assignments (each about 1 KiB as `az` prints it).
const MAX_EXPORT_BYTES: u64 = 8 << 20;

#[derive(Args, Debug)]
pub(crate) struct AuditRbacArgs {
    /// The policy document (JSON): its allow rules name the identities and their roles.
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: String,
    /// The role assignments: `az role assignment list --all --include-inherited
    /// --include-groups -o json` (all three flags, or inherited and group grants are missed).
    #[arg(long, value_name = "FILE")]
    pub(crate) assignments: String,
    /// The role definitions, for custom roles: `az role definition list -o json`.
    #[arg(long, value_name = "FILE")]
    pub(crate) definitions: Option<String>,
    #[command(flatten)]
    pub(crate) report: ReportArgs,
}

/// Reads an `az` export, bounded.
fn read_export(path: &str, what: &str) -> Result<String, Exit> {
    let file = std::fs::File::open(path)
        .map_err(|e| Exit::usage(format!("cannot open {what} {path}: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_EXPORT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Exit::usage(format!("cannot read {what} {path}: {e}")))?;
    if bytes.len() as u64 > MAX_EXPORT_BYTES {
        return Err(Exit::usage(format!(
            "{what} {path} is larger than {MAX_EXPORT_BYTES} bytes; export one subscription at a \
             time (`az role assignment list --subscription <id> ...`)"
        )));
    }
    String::from_utf8(bytes).map_err(|_| Exit::usage(format!("{what} {path} is not UTF-8")))
}

/// `path` as GitLab wants it in a Code Quality report: relative to the repository, which is
/// `$CI_PROJECT_DIR` in a job and the working directory elsewhere. A path outside it stays as
/// given.
fn repository_path(path: &str) -> String {
    let base = std::env::var_os("CI_PROJECT_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::current_dir().ok());
    let (Some(base), Ok(full)) = (base, std::fs::canonicalize(path)) else {
        return path.to_owned();
    };
    let base = std::fs::canonicalize(&base).unwrap_or(base);
    match full.strip_prefix(&base) {
        Ok(relative) => relative.to_string_lossy().into_owned(),
        Err(_) => path.to_owned(),
    }
}

pub(crate) fn command(host: &Host, args: &AuditRbacArgs) -> Result<(), Exit> {
    // Every input is read before anything is judged: a bad file is a usage error (exit 2),
    // never a half-printed report.
    let policy = read_file(&args.policy, "--policy")?;
    let assignments = read_export(&args.assignments, "--assignments")?;
    let definitions =
        args.definitions.as_deref().map(|p| read_export(p, "--definitions")).transpose()?;
    let options = AuditOptions {
        fail_on: args.report.fail_on.severity(),
        code_quality_path: repository_path(&args.policy),
    };
    let mut session = host.session()?;
    let report = session
        .audit_rbac(&policy, &assignments, definitions.as_deref(), &options)?
        .map_err(|f| {
            // Name the file the failure is about.
            let file = if f.kind.starts_with("policy-") {
                args.policy.as_str()
            } else if f.message.contains("role definitions") {
                args.definitions.as_deref().unwrap_or(&args.assignments)
            } else {
                args.assignments.as_str()
            };
            Exit::failure(f, Some(file))
        })?;
    let rendered =
        Rendered { text: &report.text, json: &report.json, code_quality: &report.code_quality };
    args.report.print(&rendered)?;
    if report.fails {
        let threshold = args.report.fail_on.name();
        return Err(Exit::refused(
            "rbac-findings",
            format!(
                "{} finding(s), at least one at or above --fail-on {threshold}; each line above \
                 says the command that fixes it",
                report.findings
            ),
        ));
    }
    Ok(())
}
