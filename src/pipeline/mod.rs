#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! # Pipeline lint: GitLab CI identity, checked before it runs
//!
//! Reads a `.gitlab-ci.yml` (and the local files it includes) and reports, per job: ID-token
//! audiences that Entra or the verifier will refuse; jobs that use Azure without `id_tokens:` or
//! with the removed `CI_JOB_JWT*`; static client secrets and certificates; jobs that merge
//! requests or unprotected branches can run and that reach a credential or policy rule meant for
//! protected refs; and the subject each job would present, checked against the app's federated
//! credentials and the policy, with the exact credential to add.
//!
//! ## What the host does, and what the core does
//!
//! The core reads no file and parses no YAML. The host:
//!
//! 1. reads `.gitlab-ci.yml` and parses it as YAML with anchors, aliases and `<<` merge keys
//!    resolved, keeping each `!reference [job, key]` tag as the JSON object
//!    `{"!reference": ["job", "key"]}` (other tags: their value, untagged);
//! 2. asks [`local_includes`] which local files that document includes, reads each (paths are
//!    from the repository root; a leading `/` is dropped; `*` and `**` are globs; never a path
//!    outside the repository; only `.yml`/`.yaml`), and repeats for every file read until no new
//!    path appears, at most [`MAX_DOCUMENTS`] files;
//! 3. passes every [`Document`] to [`Pipeline::resolve`], then [`lint`] with a [`LintContext`]
//!    (the project path, default branch, protected refs, issuer, `sub` components, accepted
//!    audiences) and, optionally, a [`Policy`] and the app's [`FederatedCredential`]s;
//! 4. prints [`Report::to_text`], [`Report::to_json`] or [`Report::to_code_quality`], and exits
//!    non-zero when [`Report::fails`] at the chosen [`Severity`].
//!
//! ```
//! use gitlab_azure_oidc::pipeline::{self, Document, LintContext, Pipeline, Severity};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let root = Document::new(".gitlab-ci.yml", serde_json::json!({
//!     "deploy": {
//!         "id_tokens": {"GITLAB_OIDC_TOKEN": {"aud": "https://gitlab.com"}},
//!         "script": ["az login --service-principal -u $AZURE_CLIENT_ID --tenant $AZURE_TENANT_ID --federated-token $GITLAB_OIDC_TOKEN"],
//!     }
//! }));
//! let pipeline = Pipeline::resolve(root, Vec::new())?;
//! let report = pipeline::lint(&pipeline, &LintContext::new("acme/app"), None, None)?;
//! assert!(report.fails(Severity::High)); // the audience is not Entra's
//! print!("{}", report.to_text());
//! # Ok(()) }
//! ```
//!
//! ## How it reads a pipeline
//!
//! As GitLab does: includes merged in order under the including file (mappings merge, lists and
//! scalars replace), `!reference` resolved over the merged configuration, then `extends`
//! (single or several, at most [`MAX_EXTENDS_DEPTH`] levels, cycles refused), then the `default:`
//! keys each job inherits (`inherit:default`, `inherit:variables`). Hidden jobs (`.name`) are
//! only templates. `workflow:rules`, `rules:` (`if:`, `changes:`, `exists:`, `when: never`) and
//! `only:`/`except:` (`branches`, `tags`, `merge_requests`, sources, names, `/regex/`) are
//! evaluated for every pipeline the linter imagines: push, web, schedule, API, trigger and
//! multi-project pipelines on every branch and tag name and pattern the file compares against,
//! the default and protected branches and "any other" branch and tag, and merge-request
//! pipelines from every such branch. What depends on something the file does not say (a project
//! variable, `changes:`, a regex feature it does not implement) is reported as `not-evaluated`
//! and counted as possible, never guessed.
//!
//! ## What it does not do
//!
//! It does not follow remote, project, template or component includes (reported as
//! `include-not-followed`), does not interpolate `$[[ inputs ]]`, does not evaluate
//! `include:rules`, and takes YAML variable values as written (a project variable of the same
//! name would override them). Each regex in the file is stood for by one example name.

mod check;
mod context;
mod document;
mod error;
mod expr;
mod job;
mod reach;
mod regex;
mod report;
mod resolve;

pub use check::lint;
pub use context::{LintContext, ENTRA_AUDIENCE, SOVEREIGN_AUDIENCES, SUB_CLAIM_COMPONENTS};
pub use document::{
    local_includes, Document, MAX_DOCUMENTS, MAX_DOCUMENT_BYTES, MAX_DOCUMENT_DEPTH,
    MAX_INCLUDE_DEPTH,
};
pub use error::{JobError, PipelineError};
pub use report::{
    Finding, FindingKind, JobSummary, Report, RunSummary, Severity, SubjectSummary, TokenSummary,
};
pub use resolve::{
    Pipeline, ResolvedJob, MAX_EXTENDS_DEPTH, MAX_JOBS, MAX_REFERENCE_DEPTH, MAX_RESOLVED_VALUES,
};

#[cfg(doc)]
use crate::{entra::federated::FederatedCredential, policy::Policy};

#[cfg(test)]
mod tests;
