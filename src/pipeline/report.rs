//! Findings and the report: for people, as one JSON document, and as GitLab Code Quality.

use std::fmt;
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::findings::code_quality_issue;
pub use crate::findings::Severity;

/// What a finding is about. The names ([`FindingKind::name`]) are stable: scripts and
/// Code Quality fingerprints rely on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum FindingKind {
    /// An `id_tokens` audience that no federated credential, Entra default or verifier accepts.
    AudienceNotAccepted,
    /// A job uses Azure but has no `id_tokens`.
    AzureWithoutIdToken,
    /// An `include:local` file the host did not provide.
    IncludeMissing,
    /// A remote, project, template or component include: not linted.
    IncludeNotFollowed,
    /// A job GitLab would refuse (not a mapping, `extends` unknown or cyclic, ...).
    InvalidJob,
    /// A job reads `CI_JOB_JWT`, `CI_JOB_JWT_V1` or `CI_JOB_JWT_V2` (removed in GitLab 17.0).
    LegacyJobJwt,
    /// No federated credential accepts a subject the job presents.
    NoMatchingCredential,
    /// Something the linter could not evaluate (a variable it cannot know, `changes:`, ...).
    NotEvaluated,
    /// The policy allows the job only on a condition Entra cannot check, and the job hands its
    /// token to Entra directly, so the condition is not enforced.
    PolicyConditionNotInEntra,
    /// The job uses Azure but no policy rule allows it anywhere it runs.
    PolicyDenies,
    /// Code that is not on a protected ref (a merge request, any pushed branch) can reach a
    /// credential or policy rule meant for protected refs.
    ProtectedRefReachable,
    /// A client secret, certificate or private key in `variables:` or a script.
    StaticSecret,
}

impl FindingKind {
    /// A stable, kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::AudienceNotAccepted => "audience-not-accepted",
            Self::AzureWithoutIdToken => "azure-without-id-token",
            Self::IncludeMissing => "include-missing",
            Self::IncludeNotFollowed => "include-not-followed",
            Self::InvalidJob => "invalid-job",
            Self::LegacyJobJwt => "legacy-job-jwt",
            Self::NoMatchingCredential => "no-matching-credential",
            Self::NotEvaluated => "not-evaluated",
            Self::PolicyConditionNotInEntra => "policy-condition-not-in-entra",
            Self::PolicyDenies => "policy-denies",
            Self::ProtectedRefReachable => "protected-ref-reachable",
            Self::StaticSecret => "static-secret",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One problem, where it is, and the exact fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What it is about.
    pub kind: FindingKind,
    /// How bad.
    pub severity: Severity,
    /// The job, or `None` for the pipeline as a whole (global `variables`, `workflow`,
    /// `include`).
    pub job: Option<String>,
    /// The file that defines the job or key.
    pub file: String,
    /// The line of the job's (or keyword's) key, when the host gave key lines.
    pub line: Option<u32>,
    /// The key path inside the job or the file, e.g. `id_tokens.AZURE.aud`.
    pub key: String,
    /// What is wrong, with the values involved (never a secret's value).
    pub message: String,
    /// What to change: a YAML edit or the exact command.
    pub fix: String,
    /// Stable across runs while the finding stays (Code Quality uses it to track findings).
    pub fingerprint: String,
}

/// One `id_tokens` entry of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSummary {
    /// The token's name (the CI/CD variable that holds it).
    pub name: String,
    /// Its audiences, with static variables expanded.
    pub audiences: Vec<String>,
    /// Whether the job hands this token to Azure.
    pub azure: bool,
}

/// Where a job can run: one ref (or kind of ref) and the pipeline sources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSummary {
    /// For people: `main (default branch)`, `any other branch`, `a tag matching /^v/ (e.g. v1)`.
    pub reference: String,
    /// `branch` or `tag`.
    pub ref_type: String,
    /// The ref's name when it is one concrete ref.
    pub ref_name: Option<String>,
    /// Whether the ref is protected, when known.
    pub protected: Option<bool>,
    /// The pipeline sources (`push`, `merge_request_event`, ...) the job runs for.
    pub sources: Vec<String>,
    /// False when the job only may run (a rule the linter could not evaluate).
    pub certain: bool,
}

/// A subject a job would present to Entra.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectSummary {
    /// The `sub` claim, built as GitLab does.
    pub subject: String,
    /// The ref it is for, for people.
    pub reference: String,
    /// What the subject assumes (e.g. `if main is protected`), when a component is unknown.
    pub assuming: Vec<String>,
    /// The federated credential that accepts it, when credentials were given.
    pub accepted_by: Option<String>,
}

/// What the linter learned about one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSummary {
    /// The job's name.
    pub name: String,
    /// The file that defines it.
    pub file: String,
    /// The line of its key, when known.
    pub line: Option<u32>,
    /// Why the linter thinks the job uses Azure (empty: it does not).
    pub azure: Vec<String>,
    /// Its `id_tokens`.
    pub id_tokens: Vec<TokenSummary>,
    /// `environment:name` as written.
    pub environment: Option<String>,
    /// `environment:deployment_tier`, as set or as GitLab guesses it from the name.
    pub deployment_tier: Option<String>,
    /// `environment:action` (`start` unless set).
    pub environment_action: Option<String>,
    /// Where it can run.
    pub runs: Vec<RunSummary>,
    /// The subjects it would present on the refs it runs on (outside merge requests), for jobs
    /// that hand a token to Azure.
    pub subjects: Vec<SubjectSummary>,
}

/// The linter's answer: per job, what it found, in three formats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The project linted.
    pub project: String,
    /// Every job, by name.
    pub jobs: Vec<JobSummary>,
    /// Every finding, by job (pipeline-wide ones first), then severity (worst first).
    pub findings: Vec<Finding>,
}

/// SHA-256 of `text`, hex, first `chars` characters.
pub(crate) fn sha256_hex(text: &str, chars: usize) -> String {
    let mut out = crate::token_fingerprint(text);
    out.truncate(chars);
    out
}

fn scrub(text: &mut String, secrets: &[String]) {
    for secret in secrets {
        if text.contains(secret.as_str()) {
            *text = text.replace(secret.as_str(), "[redacted]");
        }
    }
}

impl Report {
    /// Assembles the report; every string is scrubbed of `secrets` (values found in the
    /// configuration), whatever put them there.
    pub(crate) fn new(
        project: String,
        mut jobs: Vec<JobSummary>,
        mut findings: Vec<Finding>,
        secrets: &[String],
    ) -> Self {
        let secrets: Vec<String> =
            secrets.iter().filter(|s| s.trim().len() >= 6).map(|s| s.trim().to_owned()).collect();
        for f in &mut findings {
            for text in [&mut f.message, &mut f.fix, &mut f.key] {
                scrub(text, &secrets);
            }
        }
        for job in &mut jobs {
            for token in &mut job.id_tokens {
                token.audiences.iter_mut().for_each(|a| scrub(a, &secrets));
            }
            if let Some(env) = &mut job.environment {
                scrub(env, &secrets);
            }
            for s in &mut job.subjects {
                scrub(&mut s.subject, &secrets);
            }
        }
        findings.sort_by(|a, b| {
            a.job
                .is_some()
                .cmp(&b.job.is_some())
                .then_with(|| a.job.cmp(&b.job))
                .then_with(|| b.severity.cmp(&a.severity))
                .then_with(|| a.kind.cmp(&b.kind))
                .then_with(|| a.key.cmp(&b.key))
                .then_with(|| a.fingerprint.cmp(&b.fingerprint))
        });
        findings.dedup_by(|a, b| a.fingerprint == b.fingerprint);
        jobs.sort_by(|a, b| a.name.cmp(&b.name));
        Self { project, jobs, findings }
    }

    /// Whether any finding is at least as severe as `threshold`: the exit code's question.
    pub fn fails(&self, threshold: Severity) -> bool {
        self.findings.iter().any(|f| f.severity >= threshold)
    }

    /// How many findings have this severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == severity).count()
    }

    /// The findings of one kind.
    pub fn of_kind(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.kind == kind)
    }

    /// For people: grouped by job, one line per finding, then a summary line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut current: Option<Option<&str>> = None;
        for f in &self.findings {
            let job = f.job.as_deref();
            if current != Some(job) {
                current = Some(job);
                let line = f.line.map(|l| format!(":{l}")).unwrap_or_default();
                match job {
                    Some(name) => {
                        let _ = writeln!(out, "job {name} ({}{line})", f.file);
                    }
                    None => {
                        let _ = writeln!(out, "pipeline ({}{line})", f.file);
                    }
                }
            }
            let key = if f.key.is_empty() { String::new() } else { format!(" [{}]", f.key) };
            let _ =
                writeln!(out, "  {} {}{key}: {} -> fix: {}", f.severity, f.kind, f.message, f.fix);
        }
        let azure_jobs: Vec<&JobSummary> =
            self.jobs.iter().filter(|j| !j.azure.is_empty()).collect();
        for job in &azure_jobs {
            for s in &job.subjects {
                let accepted = match &s.accepted_by {
                    Some(c) => format!(" (credential {c})"),
                    None => String::new(),
                };
                let assuming = if s.assuming.is_empty() {
                    String::new()
                } else {
                    format!(" assuming {}", s.assuming.join(", "))
                };
                let _ = writeln!(
                    out,
                    "subject {}: {} on {}{assuming}{accepted}",
                    job.name, s.subject, s.reference
                );
            }
        }
        let _ = writeln!(
            out,
            "{} jobs ({} using Azure): {} critical, {} high, {} medium, {} low, {} info",
            self.jobs.len(),
            azure_jobs.len(),
            self.count(Severity::Critical),
            self.count(Severity::High),
            self.count(Severity::Medium),
            self.count(Severity::Low),
            self.count(Severity::Info)
        );
        out
    }

    /// One JSON document: `{"version": 1, "project", "summary", "jobs", "findings"}`.
    pub fn to_json(&self) -> Value {
        let findings: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                json!({
                    "kind": f.kind.name(),
                    "severity": f.severity.as_str(),
                    "job": f.job,
                    "file": f.file,
                    "line": f.line,
                    "key": f.key,
                    "message": f.message,
                    "fix": f.fix,
                    "fingerprint": f.fingerprint,
                })
            })
            .collect();
        let jobs: Vec<Value> = self
            .jobs
            .iter()
            .map(|j| {
                json!({
                    "name": j.name,
                    "file": j.file,
                    "line": j.line,
                    "azure": j.azure,
                    "id_tokens": j.id_tokens.iter().map(|t| json!({
                        "name": t.name, "aud": t.audiences, "azure": t.azure,
                    })).collect::<Vec<_>>(),
                    "environment": j.environment,
                    "deployment_tier": j.deployment_tier,
                    "environment_action": j.environment_action,
                    "runs": j.runs.iter().map(|r| json!({
                        "ref": r.reference,
                        "ref_type": r.ref_type,
                        "ref_name": r.ref_name,
                        "protected": r.protected,
                        "sources": r.sources,
                        "certain": r.certain,
                    })).collect::<Vec<_>>(),
                    "subjects": j.subjects.iter().map(|s| json!({
                        "subject": s.subject,
                        "ref": s.reference,
                        "assuming": s.assuming,
                        "accepted_by": s.accepted_by,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let summary: serde_json::Map<String, Value> = Severity::ALL
            .into_iter()
            .map(|s| (s.as_str().to_owned(), Value::from(self.count(s))))
            .collect();
        json!({
            "version": 1,
            "project": self.project,
            "summary": summary,
            "jobs": jobs,
            "findings": findings,
        })
    }

    /// GitLab Code Quality (a CodeClimate subset): an array of
    /// `{description, check_name, fingerprint, severity, location: {path, lines: {begin}}}`.
    /// Findings without a known line point at line 1 of their file.
    pub fn to_code_quality(&self) -> Value {
        Value::Array(
            self.findings
                .iter()
                .map(|f| {
                    let job = f.job.as_deref().map(|j| format!("job {j}: ")).unwrap_or_default();
                    code_quality_issue(
                        &format!("{job}{}; fix: {}", f.message, f.fix),
                        f.kind.name(),
                        &f.fingerprint,
                        f.severity,
                        &f.file,
                        u64::from(f.line.unwrap_or(1)),
                    )
                })
                .collect(),
        )
    }
}
