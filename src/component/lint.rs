//! WIT glue for `gitlab-azure:oidc/lint`: conversions only.

use std::collections::{BTreeMap, BTreeSet};

use super::convert::fail;
use super::convert::severity;
use super::exports::gitlab_azure::oidc::lint as wit;
use super::gitlab_azure::oidc::types::Failure;
use super::Component;
use crate::entra::federated::FederatedCredential;
use crate::gate::GateConfigError;
use crate::pipeline::{self, Document, LintContext, Pipeline, Report, Severity};
use crate::policy::Policy;

/// A count as `u32`; no CI file comes near its limit (saturates instead of wrapping).
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn document(file: wit::CiFile) -> Result<Document, Failure> {
    let wit::CiFile { path, json, key_lines } = file;
    let document = Document::from_json(&path, json.as_bytes()).map_err(fail)?;
    Ok(document.with_key_lines(key_lines.into_iter().collect::<BTreeMap<_, _>>()))
}

fn context(c: wit::LintContext) -> LintContext {
    let wit::LintContext {
        project_path,
        project_id,
        namespace_id,
        default_branch,
        default_branch_protected,
        protected_branches,
        protected_tags,
        protected_environments,
        issuer,
        sub_claim_components,
        extra_audiences,
        app_id,
    } = c;
    let defaults = LintContext::new(&project_path);
    let mut accepted_audiences = defaults.accepted_audiences;
    for audience in extra_audiences {
        if !accepted_audiences.contains(&audience) {
            accepted_audiences.push(audience);
        }
    }
    LintContext {
        project_path: defaults.project_path,
        project_id,
        namespace_id,
        default_branch: default_branch.unwrap_or(defaults.default_branch),
        default_branch_protected: default_branch_protected
            .unwrap_or(defaults.default_branch_protected),
        protected_branches,
        protected_tags,
        protected_environments,
        issuer: issuer.unwrap_or(defaults.issuer),
        sub_claim_components: if sub_claim_components.is_empty() {
            defaults.sub_claim_components
        } else {
            sub_claim_components
        },
        accepted_audiences,
        app_id,
    }
}

fn report_out(report: &Report, fail_on: Severity) -> wit::LintReport {
    wit::LintReport {
        text: report.to_text(),
        json: report.to_json().to_string(),
        code_quality: report.to_code_quality().to_string(),
        fails: report.fails(fail_on),
        counts: wit::SeverityCounts {
            critical: count(report.count(Severity::Critical)),
            high: count(report.count(Severity::High)),
            medium: count(report.count(Severity::Medium)),
            low: count(report.count(Severity::Low)),
            info: count(report.count(Severity::Info)),
        },
        jobs: count(report.jobs.len()),
        azure_jobs: count(report.jobs.iter().filter(|j| !j.azure.is_empty()).count()),
    }
}

impl wit::Guest for Component {
    fn local_includes(
        json: String,
        repository_files: Vec<String>,
    ) -> Result<wit::Includes, Failure> {
        let document = Document::from_json("ci-file", json.as_bytes()).map_err(fail)?;
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut paths = Vec::new();
        let mut globs = Vec::new();
        for include in pipeline::local_includes(document.value()) {
            if include.contains('*') {
                for file in &repository_files {
                    if pipeline::glob_matches(&include, file) && seen.insert(file.clone()) {
                        paths.push(file.clone());
                    }
                }
                globs.push(include);
            } else if seen.insert(include.clone()) {
                paths.push(include);
            }
        }
        Ok(wit::Includes { paths, globs })
    }

    fn max_files() -> u32 {
        count(pipeline::MAX_DOCUMENTS)
    }

    fn lint_pipeline(
        root: wit::CiFile,
        included: Vec<wit::CiFile>,
        context_in: wit::LintContext,
        policy: Option<String>,
        credentials: Option<String>,
        fail_on: wit::Severity,
    ) -> Result<wit::LintReport, Failure> {
        let root = document(root)?;
        let included = included.into_iter().map(document).collect::<Result<Vec<_>, _>>()?;
        let policy = policy
            .map(|p| Policy::parse(p.as_bytes()).map_err(|e| fail(GateConfigError::Policy(e))))
            .transpose()?;
        let credentials = credentials
            .map(|c| FederatedCredential::parse_list(c.as_bytes()).map_err(fail))
            .transpose()?;
        let pipeline = Pipeline::resolve(root, included).map_err(fail)?;
        let report = pipeline::lint(
            &pipeline,
            &context(context_in),
            policy.as_ref(),
            credentials.as_deref(),
        )
        .map_err(fail)?;
        Ok(report_out(&report, severity(fail_on)))
    }
}
