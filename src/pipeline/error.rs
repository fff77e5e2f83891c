//! Why the linter refused its input: the whole pipeline ([`PipelineError`]) or one job
//! ([`JobError`], reported as an `invalid-job` finding while the other jobs are still linted).
//!
//! Every variant carries the offending value and where it is (the file, the job, the key path);
//! `Display` is lowercase and ends with what to change.

use std::fmt;

/// The pipeline as a whole cannot be linted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PipelineError {
    /// A [`super::LintContext`] field is not usable.
    Context {
        /// The field, e.g. `sub_claim_components`.
        field: String,
        /// The value as given.
        value: String,
        /// What it must be.
        expected: String,
    },
    /// Two documents have the same path.
    DuplicateDocument {
        /// The normalised path.
        path: String,
    },
    /// Resolving `!reference` and `extends` produced more configuration than the limit
    /// (a reference or template that multiplies itself).
    ExpansionTooLarge {
        /// The limit, in JSON nodes.
        limit: usize,
    },
    /// A document is not valid JSON (only from [`super::Document::from_json`]).
    Json {
        /// The file.
        file: String,
        /// The parser's message (with line and column).
        detail: String,
    },
    /// A top-level keyword has the wrong shape (`include`, `default`, `variables`, `workflow`).
    Keyword {
        /// The file.
        file: String,
        /// The key path, e.g. `include[2]` or `workflow.rules`.
        key: String,
        /// What it must be.
        expected: String,
    },
    /// A document's top level is not a mapping of keywords and jobs.
    NotAMapping {
        /// The file.
        file: String,
        /// The JSON type found.
        found: &'static str,
    },
    /// A `!reference` outside any job (in `default`, `variables` or `workflow`) cannot be
    /// resolved.
    Reference {
        /// The top-level keyword that holds it.
        key: String,
        /// What is wrong.
        error: Box<JobError>,
    },
    /// More documents than the limit (GitLab's include limit plus the root file).
    TooManyDocuments {
        /// How many were given.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// More jobs than the limit.
    TooManyJobs {
        /// How many.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A document is larger than the limit.
    TooLarge {
        /// The file.
        file: String,
        /// Its size, in bytes of JSON text (estimated for a parsed value).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A document nests deeper than the limit.
    TooDeep {
        /// The file.
        file: String,
        /// The limit.
        limit: usize,
    },
}

impl PipelineError {
    /// A stable, kebab-case name for this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Context { .. } => "context",
            Self::DuplicateDocument { .. } => "duplicate-document",
            Self::ExpansionTooLarge { .. } => "expansion-too-large",
            Self::Json { .. } => "json",
            Self::Keyword { .. } => "keyword",
            Self::NotAMapping { .. } => "not-a-mapping",
            Self::Reference { .. } => "reference",
            Self::TooManyDocuments { .. } => "too-many-documents",
            Self::TooManyJobs { .. } => "too-many-jobs",
            Self::TooLarge { .. } => "too-large",
            Self::TooDeep { .. } => "too-deep",
        }
    }
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Context { field, value, expected } => {
                write!(f, "lint context: `{field}` is `{value}`, expected {expected}")
            }
            Self::DuplicateDocument { path } => write!(
                f,
                "the document {path} was given twice; pass each CI file once, by its path from \
                 the repository root"
            ),
            Self::ExpansionTooLarge { limit } => write!(
                f,
                "resolving !reference and extends produced more than {limit} values; look for a \
                 template or reference that includes itself many times over"
            ),
            Self::Json { file, detail } => write!(f, "{file}: not valid JSON: {detail}"),
            Self::Keyword { file, key, expected } => {
                write!(
                    f,
                    "{file}: `{key}` must be {expected}; fix it as GitLab would refuse it too"
                )
            }
            Self::NotAMapping { file, found } => write!(
                f,
                "{file}: the top level is {found}, expected a mapping of keywords and jobs"
            ),
            Self::Reference { key, error } => write!(f, "`{key}`: {error}"),
            Self::TooManyDocuments { count, limit } => write!(
                f,
                "{count} documents, more than the limit of {limit} (GitLab's 150 includes plus \
                 the root file); lint a smaller part of the configuration"
            ),
            Self::TooManyJobs { count, limit } => write!(
                f,
                "{count} jobs, more than the limit of {limit}; split the pipeline (child \
                 pipelines) and lint each file"
            ),
            Self::TooLarge { file, size, limit } => write!(
                f,
                "{file}: about {size} bytes, more than the limit of {limit} (GitLab refuses \
                 configurations over 2 MiB too)"
            ),
            Self::TooDeep { file, limit } => write!(
                f,
                "{file}: nested deeper than {limit} levels (GitLab's max_yaml_depth is 100); \
                 flatten the structure"
            ),
        }
    }
}

impl std::error::Error for PipelineError {}

/// One job cannot be linted (GitLab would refuse the pipeline for it too).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobError {
    /// `extends` forms a cycle.
    ExtendsCycle {
        /// The chain, from the job back to the repeated name.
        chain: Vec<String>,
    },
    /// `extends` chains more than GitLab's 11 levels.
    ExtendsTooDeep {
        /// The chain, from the job.
        chain: Vec<String>,
        /// The limit.
        limit: usize,
    },
    /// `extends` names a job or template that does not exist.
    ExtendsUnknown {
        /// The job that extends.
        job: String,
        /// The missing name.
        parent: String,
        /// A known name close to it.
        suggestion: Option<String>,
    },
    /// A job key has the wrong shape.
    Keyword {
        /// The job.
        job: String,
        /// The key path inside the job, e.g. `id_tokens.AZURE.aud`.
        key: String,
        /// What it must be.
        expected: String,
    },
    /// A job (or a template it extends) is not a mapping.
    NotAMapping {
        /// The job or template.
        job: String,
        /// The JSON type found.
        found: &'static str,
    },
    /// A `!reference` is not a list of names, or nests deeper than GitLab's 10 levels.
    ReferenceInvalid {
        /// The job.
        job: String,
        /// The reference as written.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// A `!reference` points at a job or key that does not exist.
    ReferenceUnknown {
        /// The job.
        job: String,
        /// The reference, e.g. `[.setup, script]`.
        reference: String,
        /// The first name that was not found.
        missing: String,
    },
    /// `rules` and `only`/`except` in one job.
    RulesWithOnly {
        /// The job.
        job: String,
    },
}

impl JobError {
    /// A stable, kebab-case name for this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ExtendsCycle { .. } => "extends-cycle",
            Self::ExtendsTooDeep { .. } => "extends-too-deep",
            Self::ExtendsUnknown { .. } => "extends-unknown",
            Self::Keyword { .. } => "keyword",
            Self::NotAMapping { .. } => "not-a-mapping",
            Self::ReferenceInvalid { .. } => "reference-invalid",
            Self::ReferenceUnknown { .. } => "reference-unknown",
            Self::RulesWithOnly { .. } => "rules-with-only",
        }
    }

    /// The key path inside the job where the problem is, for reports.
    pub fn key(&self) -> &str {
        match self {
            Self::ExtendsCycle { .. }
            | Self::ExtendsTooDeep { .. }
            | Self::ExtendsUnknown { .. } => "extends",
            Self::Keyword { key, .. } => key,
            Self::NotAMapping { .. } => "",
            Self::ReferenceInvalid { .. } | Self::ReferenceUnknown { .. } => "!reference",
            Self::RulesWithOnly { .. } => "rules",
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExtendsCycle { chain } => write!(
                f,
                "`extends` forms a cycle: {}; remove one of these `extends`",
                chain.join(" -> ")
            ),
            Self::ExtendsTooDeep { chain, limit } => write!(
                f,
                "`extends` chains {} levels ({}), more than GitLab's {limit}; flatten the \
                 templates",
                chain.len().saturating_sub(1),
                chain.join(" -> ")
            ),
            Self::ExtendsUnknown { job, parent, suggestion } => {
                write!(f, "job {job} extends `{parent}`, which is not defined")?;
                match suggestion {
                    Some(s) => write!(f, "; did you mean `{s}`?"),
                    None => f.write_str(
                        "; define it, or include the file that defines it (include:local)",
                    ),
                }
            }
            Self::Keyword { job, key, expected } => {
                write!(f, "job {job}: `{key}` must be {expected}")
            }
            Self::NotAMapping { job, found } => write!(
                f,
                "`{job}` is {found}, expected a job (a mapping with `script`); hide it with a \
                 leading `.` if it is not a job"
            ),
            Self::ReferenceInvalid { job, reference, reason } => {
                write!(f, "job {job}: `!reference {reference}` {reason}")
            }
            Self::ReferenceUnknown { job, reference, missing } => write!(
                f,
                "job {job}: `!reference {reference}` points at `{missing}`, which is not \
                 defined; fix the name or include the file that defines it"
            ),
            Self::RulesWithOnly { job } => write!(
                f,
                "job {job} has both `rules` and `only`/`except`, which GitLab refuses; keep \
                 `rules`"
            ),
        }
    }
}

impl std::error::Error for JobError {}
