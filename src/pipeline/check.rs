//! The checks: one pass over the resolved pipeline, producing findings and job summaries.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::context::{LintContext, ENTRA_AUDIENCE};
use super::document::IncludeNote;
use super::error::PipelineError;
use super::expr::{Tri, Var};
use super::job::{
    guess_tier, legacy_in_variables, secrets_in_lines, secrets_in_variables, JobModel, RuleSpec,
    SecretHit,
};
use super::reach::{
    compile_rules, eval_only_except, eval_rules, flatten, group_runs, slug, Candidate, Kind,
    RefType, Rule, Scenario, Scope, Source, Universe,
};
use super::report::{
    sha256_hex, Finding, FindingKind, JobSummary, Report, RunSummary, Severity, SubjectSummary,
    TokenSummary,
};
use super::resolve::{Pipeline, ResolvedJob};
use crate::entra::federated::{
    preflight, ClaimsMatchingExpression, Expression, FederatedCredential, Preflight,
};
use crate::policy::{plan, Decision, Effect, Mismatch, PlanOptions, PlanWarning, Policy, Verdict};
use crate::Claims;

/// Claims a CI file cannot tell; a policy rule that tests one is "not evaluated", not "denied".
const UNKNOWABLE: [&str; 21] = [
    "ci_config_ref_uri",
    "ci_config_sha",
    "groups_direct",
    "job_config",
    "job_id",
    "job_namespace_id",
    "job_project_id",
    "job_source",
    "jti",
    "namespace_id",
    "pipeline_id",
    "project_id",
    "project_visibility",
    "ref_protected",
    "runner_environment",
    "runner_id",
    "sha",
    "user_access_level",
    "user_email",
    "user_id",
    "user_login",
];

/// Lints a resolved pipeline.
///
/// `policy` (a [`Policy`]) and `credentials` (`az ad app federated-credential list` output, read
/// with [`FederatedCredential::parse_list`]) are optional: without them the checks that need
/// them are skipped and the job summaries still list the subjects each job would present.
///
/// # Errors
/// [`PipelineError::Context`] when `context` fails [`LintContext::validate`].
pub fn lint(
    pipeline: &Pipeline,
    context: &LintContext,
    policy: Option<&Policy>,
    credentials: Option<&[FederatedCredential]>,
) -> Result<Report, PipelineError> {
    context.validate()?;
    let workflow_config = pipeline.workflow.as_ref().and_then(Value::as_object);
    let universe = Universe::build(
        workflow_config.into_iter().chain(pipeline.jobs().iter().map(ResolvedJob::config)),
        context,
    );
    let app_id = context.app_id.clone().unwrap_or_else(|| {
        let ids: BTreeSet<&str> = policy
            .map(|p| p.rules().iter().filter_map(|r| r.target()).map(|t| t.client_id()).collect())
            .unwrap_or_default();
        match ids.into_iter().collect::<Vec<_>>().as_slice() {
            [only] => (*only).to_owned(),
            _ => "<APP_ID>".to_owned(),
        }
    });
    let mut hidden: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(policy) = policy {
        let options = PlanOptions::new(context.issuer.as_str()).audience(ENTRA_AUDIENCE);
        for warning in plan(policy, &options).map(|p| p.warnings).unwrap_or_default() {
            if let PlanWarning::NotVisibleToEntra { rule, what } = warning {
                hidden.entry(rule).or_default().extend(what);
            }
        }
    }
    let mut linter = Linter {
        pipeline,
        context,
        policy,
        credentials,
        universe,
        workflow: Vec::new(),
        hidden,
        app_id,
    };
    let (workflow, workflow_why) = linter.workflow();
    linter.workflow = workflow;
    let mut sink = Sink::default();
    linter.run(&mut sink, workflow_why);
    let Sink { findings, jobs, secrets } = sink;
    Ok(Report::new(context.project_path.clone(), jobs, findings, &secrets))
}

struct Linter<'a> {
    pipeline: &'a Pipeline,
    context: &'a LintContext,
    policy: Option<&'a Policy>,
    credentials: Option<&'a [FederatedCredential]>,
    universe: Universe,
    /// Per scenario: whether `workflow:rules` creates the pipeline, and its variables.
    workflow: Vec<Gate<'a>>,
    /// Per policy rule: what it tests that Entra cannot see.
    hidden: BTreeMap<String, Vec<String>>,
    app_id: String,
}

/// Whether `workflow:rules` creates one imagined pipeline, and the variables its rule sets.
type Gate<'a> = (Tri, Option<&'a Map<String, Value>>);

/// One `sub` being built: its parts so far, what it assumes, and the claims to match.
struct Draft {
    parts: Vec<String>,
    assuming: Vec<String>,
    claims: Map<String, Value>,
}

/// What the checks produce.
#[derive(Default)]
struct Sink {
    findings: Vec<Finding>,
    jobs: Vec<JobSummary>,
    /// Secret values found, to scrub from every output.
    secrets: Vec<String>,
}

impl Sink {
    #[allow(clippy::too_many_arguments)] // One finding has this many parts.
    fn push(
        &mut self,
        kind: FindingKind,
        severity: Severity,
        at: &At<'_>,
        key: &str,
        id: &str,
        message: String,
        fix: String,
    ) {
        let fingerprint = sha256_hex(
            &format!("{}\0{}\0{}\0{key}\0{id}", kind.name(), at.file, at.job.unwrap_or("")),
            32,
        );
        self.findings.push(Finding {
            kind,
            severity,
            job: at.job.map(str::to_owned),
            file: at.file.to_owned(),
            line: at.line,
            key: key.to_owned(),
            message,
            fix,
            fingerprint,
        });
    }
}

/// Where a finding is.
struct At<'s> {
    job: Option<&'s str>,
    file: &'s str,
    line: Option<u32>,
}

/// The environment claims of one imagined pipeline.
#[derive(Clone, Debug)]
struct EnvClaims {
    /// `None` when the name depends on something unknown.
    name: Option<String>,
    tier: Option<String>,
    action: String,
    protected: Option<bool>,
}

/// One token GitLab would mint, as far as the linter can tell.
struct Variant {
    claims: Claims,
    sub: String,
    assuming: Vec<String>,
    /// Claims left out because the file cannot tell them.
    unknown: Vec<&'static str>,
}

/// One place a job runs: a ref and a pipeline source.
struct Place<'c> {
    candidate: &'c Candidate,
    source: Source,
    runs: Tri,
    env: Option<EnvClaims>,
}

impl Place<'_> {
    fn mr(&self) -> bool {
        self.source == Source::MergeRequestEvent
    }

    /// `for push pipelines on main (default branch)`, `in merge-request pipelines whose source
    /// branch is main (default branch)`, with `(if it runs there)` when a rule was not evaluated.
    fn describe(&self) -> String {
        let may = if self.runs == Tri::Unknown {
            " (if it runs there: a rule was not evaluated)"
        } else {
            ""
        };
        if self.mr() {
            format!(
                "in merge-request pipelines whose source branch is {}{may}",
                self.candidate.describe()
            )
        } else {
            format!("for {} pipelines on {}{may}", self.source.as_str(), self.candidate.describe())
        }
    }

    /// The subject as shown: for "any other" refs, the example name becomes `<any branch>`.
    fn shown(&self, sub: &str) -> String {
        let c = self.candidate;
        if c.kind == Kind::Other {
            sub.replacen(
                &format!("ref:{}", c.name),
                &format!("ref:<any {}>", c.ref_type.as_str()),
                1,
            )
        } else {
            sub.to_owned()
        }
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn quote_list(items: &[String]) -> String {
    items.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
}

/// A federated credential name from a subject's parts: letters, digits and `-`, at most 120.
fn credential_name(project: &str, ref_type: RefType, name: &str) -> String {
    let mut out = format!("gitlab-{}-{}-{}", slug(project), ref_type.as_str(), slug(name));
    out.truncate(120);
    out.trim_end_matches('-').to_owned()
}

impl<'a> Linter<'a> {
    fn run(&self, sink: &mut Sink, workflow_why: Vec<String>) {
        let pipeline = self.pipeline;
        self.includes(sink);
        for broken in &pipeline.broken {
            let at = At { job: Some(&broken.name), file: &broken.file, line: broken.line };
            sink.push(
                FindingKind::InvalidJob,
                Severity::High,
                &at,
                broken.error.key(),
                broken.error.kind(),
                broken.error.to_string(),
                "fix the job as the message says; GitLab refuses the whole pipeline until then"
                    .to_owned(),
            );
        }
        let origin = pipeline.origin("variables");
        let hits = secrets_in_variables(&pipeline.variables, "variables");
        let at = At { job: None, file: &origin.file, line: origin.line };
        self.secrets_found(sink, &at, hits, false);
        for (name, key) in legacy_in_variables(&pipeline.variables) {
            sink.push(
                FindingKind::LegacyJobJwt,
                Severity::High,
                &at,
                &key,
                name,
                format!(
                    "the global `{key}` reads `{name}`, which GitLab removed in 17.0: it is \
                     empty now in every job"
                ),
                format!(
                    "remove it, and give the jobs that need a token `id_tokens: AZURE_ID_TOKEN: \
                     {{aud: {ENTRA_AUDIENCE}}}`"
                ),
            );
        }

        let mut any_azure = false;
        for job in pipeline.jobs() {
            any_azure |= self.job(sink, job);
        }
        if any_azure {
            let origin = pipeline.origin("workflow");
            let at = At { job: None, file: &origin.file, line: origin.line };
            for reason in workflow_why {
                sink.push(
                    FindingKind::NotEvaluated,
                    Severity::Info,
                    &at,
                    "workflow.rules",
                    &reason,
                    format!("could not evaluate {reason}; pipelines that depend on it are counted as possible"),
                    "nothing to change: the linter counts such pipelines as possible".to_owned(),
                );
            }
        }
    }

    fn includes(&self, sink: &mut Sink) {
        for note in self.pipeline.notes.clone() {
            match note {
                IncludeNote::Missing { file, key, path } => {
                    let at = At { job: None, file: &file, line: None };
                    sink.push(
                        FindingKind::IncludeMissing,
                        Severity::High,
                        &at,
                        &key,
                        &path,
                        format!("include:local `{path}` was not provided to the linter, so the jobs it defines were not linted"),
                        format!("make sure `{path}` exists in the repository (GitLab fails the pipeline otherwise) and lint from the repository root"),
                    );
                }
                IncludeNote::NotFollowed { file, key, kind, what, reason } => {
                    let at = At { job: None, file: &file, line: None };
                    sink.push(
                        FindingKind::IncludeNotFollowed,
                        Severity::Info,
                        &at,
                        &key,
                        &what,
                        format!("include:{kind} `{what}` was not followed: {reason}"),
                        "lint that configuration where it lives, or copy it locally to lint it here"
                            .to_owned(),
                    );
                }
                IncludeNote::Unconditional { file, key, path, what } => {
                    let at = At { job: None, file: &file, line: None };
                    sink.push(
                        FindingKind::NotEvaluated,
                        Severity::Info,
                        &at,
                        &key,
                        &format!("{path}:{what}"),
                        format!("include:local `{path}` has `{what}:`, which the linter does not evaluate; it was linted as if included unchanged"),
                        "nothing to change".to_owned(),
                    );
                }
            }
        }
    }

    fn workflow(&self) -> (Vec<Gate<'a>>, Vec<String>) {
        let rules: Option<Vec<Rule<'a>>> = self
            .pipeline
            .workflow
            .as_ref()
            .and_then(|w| w.get("rules"))
            .map(|r| compile_rules(&flatten(r)));
        let mut why = Vec::new();
        let mut out = Vec::with_capacity(self.universe.scenarios.len());
        for scenario in &self.universe.scenarios {
            let Some(rules) = &rules else {
                out.push((Tri::Yes, None));
                continue;
            };
            let scope = Scope {
                universe: &self.universe,
                context: self.context,
                scenario: *scenario,
                layers: vec![&self.pipeline.variables],
            };
            let outcome = eval_rules(rules, &scope, "workflow.rules", &mut why);
            out.push((outcome.runs, outcome.variables));
        }
        (out, why)
    }

    fn secrets_found(&self, sink: &mut Sink, at: &At<'_>, hits: Vec<SecretHit>, job_level: bool) {
        for hit in hits {
            if let (Some(value), true) = (&hit.value, hit.literal) {
                sink.secrets.push(value.clone());
            }
            let hash = hit
                .value
                .as_deref()
                .filter(|_| hit.literal)
                .map(|v| format!(" (value sha256:{}…)", sha256_hex(v.trim(), 12)))
                .unwrap_or_default();
            let (severity, message) = match (&hit.from, hit.name.as_str()) {
                (Some(from), name) => (
                    Severity::High,
                    format!(
                        "`{name}` passes {} from the CI/CD variable `{from}`: a static credential \
                         that works from any job, any ref and any machine until it expires",
                        hit.kind.describe()
                    ),
                ),
                (None, "script") => (
                    Severity::Critical,
                    format!(
                        "a script line holds {} in clear text{hash}: it is in the repository \
                         history and the job log",
                        hit.kind.describe()
                    ),
                ),
                (None, name) => (
                    Severity::Critical,
                    format!(
                        "`{name}` holds {} in clear text{hash}: anyone who can read the \
                         repository can use it",
                        hit.kind.describe()
                    ),
                ),
            };
            let rotate =
                if hit.literal { "rotate it now (it is in the repository history), " } else { "" };
            let scope = if job_level { "the job" } else { "the jobs that need Azure" };
            let fix = format!(
                "remove `{}` from the file, {rotate}delete the secret or certificate from the app \
                 registration, and give {scope} `id_tokens: AZURE_ID_TOKEN: {{aud: \
                 {ENTRA_AUDIENCE}}}` with a federated credential (workload identity federation)",
                hit.name
            );
            sink.push(FindingKind::StaticSecret, severity, at, &hit.key, &hit.name, message, fix);
        }
    }

    /// Lints one job; true when it uses Azure.
    fn job(&self, sink: &mut Sink, job: &'a ResolvedJob) -> bool {
        let at = At { job: Some(job.name()), file: job.file(), line: job.line() };
        let model = match JobModel::read(job, &self.pipeline.variables) {
            Ok(model) => model,
            Err(error) => {
                sink.push(
                    FindingKind::InvalidJob,
                    Severity::High,
                    &at,
                    error.key(),
                    error.kind(),
                    error.to_string(),
                    "fix the job as the message says; GitLab refuses the whole pipeline until then"
                        .to_owned(),
                );
                return false;
            }
        };
        let mut hits = secrets_in_variables(&model.own, "variables");
        hits.extend(secrets_in_lines(&model.lines));
        let named_secret = !hits.is_empty();
        self.secrets_found(sink, &at, hits, true);
        for (name, key) in &model.legacy {
            sink.push(
                FindingKind::LegacyJobJwt,
                Severity::High,
                &at,
                key,
                name,
                format!(
                    "the job reads `{name}`, which GitLab removed in 17.0: it is empty now, so \
                     whatever uses it fails"
                ),
                format!(
                    "add `id_tokens: AZURE_ID_TOKEN: {{aud: {ENTRA_AUDIENCE}}}` to the job and \
                     use `$AZURE_ID_TOKEN` instead of `${name}`"
                ),
            );
        }

        let mut why = Vec::new();
        let runs = self.runs(&model, &mut why);
        let uses = model.azure.uses() || !model.id_tokens.is_empty();
        if uses {
            for reason in &why {
                sink.push(
                    FindingKind::NotEvaluated,
                    Severity::Info,
                    &at,
                    "rules",
                    reason,
                    format!("could not evaluate {reason}; the refs and pipelines that depend on it are counted as possible"),
                    "nothing to change: the linter counts such pipelines as possible (a \
                     protected ref the lint context does not list counts as unknown)"
                        .to_owned(),
                );
            }
        }
        let azure = &model.azure;
        if azure.uses()
            && model.id_tokens.is_empty()
            && model.legacy.is_empty()
            && !azure.managed_identity
            && !azure.secret_login
        {
            sink.push(
                FindingKind::AzureWithoutIdToken,
                Severity::High,
                &at,
                "id_tokens",
                "",
                format!(
                    "the job uses Azure ({}) but has no `id_tokens:`, so it has no federated \
                     token to log in with",
                    azure.signals.join(", ")
                ),
                format!(
                    "add `id_tokens: AZURE_ID_TOKEN: {{aud: {ENTRA_AUDIENCE}}}` and log in with \
                     it, e.g. `az login --service-principal -u $AZURE_CLIENT_ID --tenant \
                     $AZURE_TENANT_ID --federated-token $AZURE_ID_TOKEN`"
                ),
            );
        }
        if azure.secret_login && !named_secret {
            sink.push(
                FindingKind::StaticSecret,
                Severity::High,
                &at,
                "script",
                "secret-login",
                format!(
                    "the job logs in to Azure with a client secret or certificate ({}): a static \
                     credential that works from any ref and any machine",
                    azure.signals.join(", ")
                ),
                format!(
                    "log in with a federated token instead: `id_tokens: AZURE_ID_TOKEN: {{aud: \
                     {ENTRA_AUDIENCE}}}` and `az login --service-principal -u $AZURE_CLIENT_ID \
                     --tenant $AZURE_TENANT_ID --federated-token $AZURE_ID_TOKEN`, then delete \
                     the secret from the app registration"
                ),
            );
        }
        if azure.uses() && azure.bound_tokens.is_empty() && model.id_tokens.len() > 1 {
            sink.push(
                FindingKind::NotEvaluated,
                Severity::Info,
                &at,
                "id_tokens",
                "which-token",
                "could not tell which of the job's ID tokens goes to Azure (none is read by an Azure command or variable)".to_owned(),
                "pass the token to Azure explicitly, e.g. `--federated-token $AZURE_ID_TOKEN`".to_owned(),
            );
        }

        let default_scope = self.scope(&model, 0, None);
        let mut tokens = Vec::new();
        let mut bad_audience = BTreeSet::new();
        for token in &model.id_tokens {
            let mut audiences = Vec::new();
            for raw in &token.audiences {
                match default_scope.expand(raw) {
                    Var::Known(value) => audiences.push(value.unwrap_or_default()),
                    Var::Unknown(reason) => {
                        let key = format!("id_tokens.{}.aud", token.name);
                        sink.push(
                            FindingKind::NotEvaluated,
                            Severity::Info,
                            &at,
                            &key,
                            raw,
                            format!(
                                "could not evaluate the audience `{raw}`: it depends on {reason}"
                            ),
                            "write the audience literally, e.g. `aud: api://AzureADTokenExchange`"
                                .to_owned(),
                        );
                    }
                }
            }
            let bound = azure.bound_tokens.contains(&token.name);
            if bound && !audiences.is_empty() && !self.audience_accepted(&audiences) {
                bad_audience.insert(token.name.clone());
                self.audience_finding(sink, &at, &token.name, &audiences, azure.assumed);
            }
            tokens.push(TokenSummary { name: token.name.clone(), audiences, azure: bound });
        }

        let grouped = group_runs(&self.universe, &runs);
        let mut places = Vec::new();
        for (candidate, sources) in &grouped {
            let Some(c) = self.universe.candidate(*candidate) else { continue };
            for (source, tri) in sources {
                // Runs are in the order of the imagined pipelines: the index is the pipeline's.
                let index = runs.iter().position(|(s, t)| {
                    s.candidate == *candidate && s.source == *source && *t != Tri::No
                });
                let Some(index) = index else { continue };
                let rule_vars = self.rule_variables(&model, index);
                let env = self.environment(&model, index, rule_vars);
                places.push(Place { candidate: c, source: *source, runs: *tri, env });
            }
        }
        let run_summaries = self.run_summaries(&grouped);
        let mut subjects = Vec::new();
        if azure.uses() {
            for token in tokens.iter().filter(|t| t.azure) {
                let flagged = bad_audience.contains(&token.name);
                subjects.extend(self.identity(
                    sink,
                    &at,
                    &model,
                    &places,
                    &token.audiences,
                    flagged,
                ));
            }
        }
        let environment = model.environment.as_ref();
        sink.jobs.push(JobSummary {
            name: job.name().to_owned(),
            file: job.file().to_owned(),
            line: job.line(),
            azure: azure.signals.iter().map(|s| (*s).to_owned()).collect(),
            id_tokens: tokens,
            environment: environment.map(|e| e.name.clone()),
            deployment_tier: environment
                .map(|e| e.tier.clone().unwrap_or_else(|| guess_tier(&e.name).to_owned())),
            environment_action: environment.map(|e| e.action.clone()),
            runs: run_summaries,
            subjects,
        });
        azure.uses()
    }

    /// The variables of the `index`th imagined pipeline, for one job.
    fn scope<'s>(
        &'s self,
        model: &'s JobModel<'a>,
        index: usize,
        rule: Option<&'a Map<String, Value>>,
    ) -> Scope<'s> {
        let scenario = self.universe.scenarios.get(index).copied().unwrap_or(Scenario {
            source: Source::Push,
            candidate: 0,
            target: None,
        });
        let workflow = self.workflow.get(index).and_then(|(_, v)| *v);
        let [globals, own] = model.layers();
        let mut layers: Vec<&Map<String, Value>> = vec![globals];
        layers.extend(workflow);
        layers.push(own);
        layers.extend(rule);
        Scope { universe: &self.universe, context: self.context, scenario, layers }
    }

    fn runs(&self, model: &JobModel<'a>, why: &mut Vec<String>) -> Vec<(Scenario, Tri)> {
        let mut out = Vec::with_capacity(self.universe.scenarios.len());
        for (i, scenario) in self.universe.scenarios.iter().enumerate() {
            let workflow = self.workflow.get(i).map_or(Tri::Yes, |(t, _)| *t);
            if workflow == Tri::No {
                out.push((*scenario, Tri::No));
                continue;
            }
            let scope = self.scope(model, i, None);
            let job = match &model.rules {
                RuleSpec::Rules(rules) => eval_rules(rules, &scope, "rules", why).runs,
                RuleSpec::OnlyExcept { only, except } => {
                    eval_only_except(*only, *except, &scope, why)
                }
            };
            out.push((*scenario, workflow.and(job)));
        }
        out
    }

    fn rule_variables(&self, model: &JobModel<'a>, index: usize) -> Option<&'a Map<String, Value>> {
        let RuleSpec::Rules(rules) = &model.rules else { return None };
        let scope = self.scope(model, index, None);
        eval_rules(rules, &scope, "rules", &mut Vec::new()).variables
    }

    fn environment(
        &self,
        model: &JobModel<'a>,
        index: usize,
        rule: Option<&'a Map<String, Value>>,
    ) -> Option<EnvClaims> {
        let env = model.environment.as_ref()?;
        let scope = self.scope(model, index, rule);
        let name = match scope.expand(&env.name) {
            Var::Known(Some(n)) if !n.is_empty() => Some(n),
            _ => None,
        };
        let tier = env.tier.clone().or_else(|| name.as_deref().map(|n| guess_tier(n).to_owned()));
        let protected = name.as_deref().and_then(|n| self.context.environment_protected(n));
        Some(EnvClaims { name, tier, action: env.action.clone(), protected })
    }

    fn run_summaries(&self, grouped: &BTreeMap<usize, BTreeMap<Source, Tri>>) -> Vec<RunSummary> {
        let mut out = Vec::new();
        for (candidate, sources) in grouped {
            let Some(c) = self.universe.candidate(*candidate) else { continue };
            out.push(RunSummary {
                reference: c.describe(),
                ref_type: c.ref_type.as_str().to_owned(),
                ref_name: c.is_exact().then(|| c.name.clone()),
                protected: c.protected,
                sources: sources.keys().map(|s| s.as_str().to_owned()).collect(),
                certain: sources.values().any(|t| *t == Tri::Yes),
            });
        }
        out
    }

    fn accepted_audiences(&self) -> Vec<String> {
        let mut out = self.context.accepted_audiences.clone();
        for c in self.credentials.unwrap_or_default() {
            for a in &c.audiences {
                if !out.contains(a) {
                    out.push(a.clone());
                }
            }
        }
        out
    }

    fn audience_accepted(&self, audiences: &[String]) -> bool {
        let accepted = self.accepted_audiences();
        audiences.iter().any(|a| accepted.contains(a))
    }

    fn suggested_audience(&self) -> String {
        self.credentials
            .unwrap_or_default()
            .iter()
            .flat_map(|c| c.audiences.first())
            .next()
            .cloned()
            .unwrap_or_else(|| ENTRA_AUDIENCE.to_owned())
    }

    fn audience_finding(
        &self,
        sink: &mut Sink,
        at: &At<'_>,
        token: &str,
        audiences: &[String],
        assumed: bool,
    ) {
        let accepted = self.accepted_audiences();
        let by = if self.credentials.is_some() {
            "no federated credential names it, and it is not Entra's audience"
        } else {
            "it is not the audience Entra's federated credentials use"
        };
        let assumed = if assumed {
            " (the job's only ID token; the linter assumes it is the one handed to Azure)"
        } else {
            ""
        };
        let suggested = self.suggested_audience();
        sink.push(
            FindingKind::AudienceNotAccepted,
            Severity::High,
            at,
            &format!("id_tokens.{token}.aud"),
            token,
            format!(
                "ID token `{token}`{assumed} has the audience {}, but {by} (accepted: {}); Entra \
                 refuses the token with AADSTS700212",
                quote_list(audiences),
                quote_list(&accepted)
            ),
            format!(
                "set `id_tokens: {token}: aud: {suggested}` in the job (and the same audience in \
                 the federated credential)"
            ),
        );
    }

    /// The tokens the job would get in one place: one per assumption about unknown `sub`
    /// components.
    fn variants(
        &self,
        place: &Place<'_>,
        aud: &[String],
        ref_protected: Option<bool>,
    ) -> Vec<Variant> {
        let ctx = self.context;
        let c = place.candidate;
        let mut base = Map::new();
        let mut unknown: Vec<&'static str> = UNKNOWABLE.to_vec();
        let mut set = |k: &str, v: Value, unknown: &mut Vec<&'static str>| {
            unknown.retain(|u| *u != k);
            base.insert(k.to_owned(), v);
        };
        set("iss", Value::from(ctx.issuer.clone()), &mut unknown);
        let aud_value = match aud {
            [one] => Value::from(one.clone()),
            many => Value::from(many.to_vec()),
        };
        set("aud", aud_value, &mut unknown);
        set("exp", Value::from(3600), &mut unknown);
        set("iat", Value::from(0), &mut unknown);
        set("nbf", Value::from(0), &mut unknown);
        for prefix in ["", "job_"] {
            set(
                &format!("{prefix}project_path"),
                Value::from(ctx.project_path.clone()),
                &mut unknown,
            );
            set(
                &format!("{prefix}namespace_path"),
                Value::from(ctx.namespace_path().to_owned()),
                &mut unknown,
            );
        }
        if let Some(id) = &ctx.project_id {
            set("project_id", Value::from(id.clone()), &mut unknown);
            set("job_project_id", Value::from(id.clone()), &mut unknown);
        }
        if let Some(id) = &ctx.namespace_id {
            set("namespace_id", Value::from(id.clone()), &mut unknown);
            set("job_namespace_id", Value::from(id.clone()), &mut unknown);
        }
        set("ref", Value::from(c.name.clone()), &mut unknown);
        set("ref_type", Value::from(c.ref_type.as_str()), &mut unknown);
        set("ref_path", Value::from(c.ref_type.ref_path(&c.name)), &mut unknown);
        set("pipeline_source", Value::from(place.source.as_str()), &mut unknown);
        let protected = if place.mr() { Some(false) } else { ref_protected.or(c.protected) };
        if let Some(p) = protected {
            set("ref_protected", Value::from(yes_no(p)), &mut unknown);
        }
        let mut env_protected = None;
        let mut env_present = false;
        if let Some(env) = &place.env {
            match &env.name {
                Some(name) => {
                    env_present = true;
                    set("environment", Value::from(name.clone()), &mut unknown);
                    set("environment_action", Value::from(env.action.clone()), &mut unknown);
                    if let Some(tier) = &env.tier {
                        set("deployment_tier", Value::from(tier.clone()), &mut unknown);
                    }
                    env_protected = env.protected;
                    match env.protected {
                        Some(p) => {
                            set("environment_protected", Value::from(yes_no(p)), &mut unknown)
                        }
                        None => unknown.push("environment_protected"),
                    }
                }
                None => unknown.extend([
                    "environment",
                    "environment_protected",
                    "deployment_tier",
                    "environment_action",
                ]),
            }
        }
        // Subjects: one per combination of unknown boolean components.
        let mut subs = vec![Draft { parts: Vec::new(), assuming: Vec::new(), claims: base }];
        for component in &ctx.sub_claim_components {
            let mut next = Vec::new();
            for Draft { parts, assuming, claims } in subs {
                let (value, choices): (Option<String>, Vec<(bool, String)>) =
                    match component.as_str() {
                        "project_path" => (Some(ctx.project_path.clone()), Vec::new()),
                        "ref_type" => (Some(c.ref_type.as_str().to_owned()), Vec::new()),
                        "ref" => (Some(c.name.clone()), Vec::new()),
                        "ref_protected" => match protected {
                            Some(p) => (Some(yes_no(p).to_owned()), Vec::new()),
                            None => (
                                None,
                                vec![
                                    (true, format!("{} is protected", c.name)),
                                    (false, format!("{} is not protected", c.name)),
                                ],
                            ),
                        },
                        "environment_protected" if env_present => match env_protected {
                            Some(p) => (Some(yes_no(p).to_owned()), Vec::new()),
                            None => (
                                None,
                                vec![
                                    (true, "the environment is protected".to_owned()),
                                    (false, "the environment is not protected".to_owned()),
                                ],
                            ),
                        },
                        "deployment_tier" if env_present => {
                            (place.env.as_ref().and_then(|e| e.tier.clone()), Vec::new())
                        }
                        _ => (None, Vec::new()),
                    };
                if let Some(v) = value {
                    let mut parts = parts;
                    parts.push(format!("{component}:{v}"));
                    next.push(Draft { parts, assuming, claims });
                } else if choices.is_empty() {
                    // GitLab skips components whose claim is absent.
                    next.push(Draft { parts, assuming, claims });
                } else {
                    for (choice, text) in choices {
                        let mut parts = parts.clone();
                        let mut assuming = assuming.clone();
                        let mut claims = claims.clone();
                        parts.push(format!("{component}:{}", yes_no(choice)));
                        assuming.push(text);
                        claims.insert(component.clone(), Value::from(yes_no(choice)));
                        next.push(Draft { parts, assuming, claims });
                    }
                }
            }
            subs = next;
        }
        subs.into_iter()
            .filter_map(|Draft { parts, assuming, mut claims }| {
                let sub = parts.join(":");
                claims.insert("sub".to_owned(), Value::from(sub.clone()));
                let mut unknown = unknown.clone();
                unknown.retain(|u| !claims.contains_key(*u));
                let claims = Claims::from_payload(claims).ok()?;
                Some(Variant { claims, sub, assuming, unknown })
            })
            .collect()
    }

    /// Subjects, credentials and policy for one token the job hands to Azure.
    fn identity(
        &self,
        sink: &mut Sink,
        at: &At<'_>,
        model: &JobModel<'a>,
        places: &[Place<'_>],
        aud: &[String],
        audience_flagged: bool,
    ) -> Vec<SubjectSummary> {
        let credentials = self.credentials;
        let all_credential_audiences: Vec<String> =
            credentials.unwrap_or_default().iter().flat_map(|c| c.audiences.clone()).collect();
        // With the audience already reported, judge only the subject.
        let check_aud: Vec<String> = if audience_flagged && !all_credential_audiences.is_empty() {
            all_credential_audiences
        } else {
            aud.to_vec()
        };
        let mut summaries: Vec<SubjectSummary> = Vec::new();
        let mut reported = BTreeSet::new();
        for place in places.iter().filter(|p| !p.mr()) {
            for variant in self.variants(place, &check_aud, None) {
                let verdict = credentials.map(|creds| preflight(&variant.claims, creds));
                let accepted_by = verdict.as_ref().and_then(|p| p.accepted_by.clone());
                let shown = place.shown(&variant.sub);
                if let Some(s) = summaries.iter_mut().find(|s| s.subject == shown) {
                    if !s.reference.contains(&place.candidate.describe()) {
                        s.reference.push_str(&format!(", {}", place.candidate.describe()));
                    }
                } else {
                    summaries.push(SubjectSummary {
                        subject: shown,
                        reference: place.candidate.describe(),
                        assuming: variant.assuming.clone(),
                        accepted_by: accepted_by.clone(),
                    });
                }
                if let (Some(p), None) = (&verdict, &accepted_by) {
                    if reported.insert(variant.sub.clone()) {
                        self.no_credential(sink, at, place, &variant, p, &check_aud);
                    }
                }
            }
        }
        if let Some(creds) = credentials {
            self.reachable_credentials(sink, at, places, creds);
        }
        if let Some(policy) = self.policy {
            self.policy_checks(sink, at, model, places, aud, policy);
        }
        summaries
    }

    fn no_credential(
        &self,
        sink: &mut Sink,
        at: &At<'_>,
        place: &Place<'_>,
        variant: &Variant,
        verdict: &Preflight,
        aud: &[String],
    ) {
        let c = place.candidate;
        let nearest = match &verdict.nearest {
            Some(n) => format!(
                "; nearest is credential `{}`: {}",
                n.name,
                n.differences.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            ),
            None => "; the app has no federated credentials".to_owned(),
        };
        let assuming = if variant.assuming.is_empty() {
            String::new()
        } else {
            format!(" (assuming {})", variant.assuming.join(", "))
        };
        let audience = aud
            .iter()
            .find(|a| self.accepted_audiences().contains(a))
            .cloned()
            .unwrap_or_else(|| self.suggested_audience());
        let message = format!(
            "no federated credential accepts the subject `{}`{assuming}, which the job presents \
             {}{nearest}",
            place.shown(&variant.sub),
            place.describe()
        );
        let (severity, fix) = match &c.kind {
            Kind::Other => (
                Severity::Medium,
                "restrict the job's `rules:` to the refs that deploy, e.g. `- if: \
                 $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH`; a credential for every branch would \
                 let any pushed branch reach Azure"
                    .to_owned(),
            ),
            Kind::Pattern(regex, wildcard) => {
                let fix = match wildcard {
                    Some((w, broader)) => {
                        let mut parts: Vec<String> =
                            variant.sub.split(':').map(str::to_owned).collect();
                        // Replace the ref value (the component after `ref`) with the wildcard.
                        if let Some(i) = parts.iter().position(|p| p == "ref") {
                            if let Some(slot) = parts.get_mut(i + 1) {
                                *slot = w.clone();
                            }
                        }
                        let pattern = parts.join(":");
                        let broader =
                            if *broader { " (broader than the regex: check it)" } else { "" };
                        format!(
                            "add a credential per name, or one flexible credential{broader}: {}",
                            self.command(Err(pattern), c, &audience)
                        )
                    }
                    None => format!("add a credential for each name that matches {regex}"),
                };
                (Severity::Medium, fix)
            }
            _ => (Severity::High, self.command(Ok(variant.sub.clone()), c, &audience)),
        };
        sink.push(
            FindingKind::NoMatchingCredential,
            severity,
            at,
            "id_tokens",
            &variant.sub,
            message,
            fix,
        );
    }

    /// The command that creates a credential: `Ok(subject)` classic, `Err(pattern)` flexible.
    fn command(&self, matcher: Result<String, String>, c: &Candidate, audience: &str) -> String {
        let name = credential_name(&self.context.project_path, c.ref_type, &c.name);
        let mut credential = FederatedCredential {
            name,
            issuer: self.context.issuer.clone(),
            subject: None,
            audiences: vec![audience.to_owned()],
            claims_matching_expression: None,
            description: Some("gitlab-azure-oidc lint".to_owned()),
        };
        match matcher {
            Ok(subject) => credential.subject = Some(subject),
            Err(pattern) => {
                credential.claims_matching_expression =
                    Expression::parse(&format!("claims['sub'] matches '{pattern}'"))
                        .ok()
                        .map(|value| ClaimsMatchingExpression { value, language_version: 1 });
            }
        }
        credential.create_command(&self.app_id, "graph.microsoft.com")
    }

    /// Credentials meant for protected refs that unprotected code can reach.
    fn reachable_credentials(
        &self,
        sink: &mut Sink,
        at: &At<'_>,
        places: &[Place<'_>],
        creds: &[FederatedCredential],
    ) {
        let accepts = |c: &FederatedCredential, v: &Variant| {
            let mut claims = v.claims.clone();
            claims.aud = Some(crate::Audience::Many(c.audiences.clone()));
            claims.raw.insert("aud".to_owned(), Value::from(c.audiences.clone()));
            preflight(&claims, std::slice::from_ref(c)).accepted()
        };
        // What each credential serves among protected refs, whether or not this job runs there.
        let env = places.iter().find_map(|p| p.env.clone());
        let protected: Vec<&Candidate> =
            self.universe.candidates.iter().filter(|c| c.protected == Some(true)).collect();
        let mut meant: BTreeMap<usize, String> = BTreeMap::new();
        for (i, credential) in creds.iter().enumerate() {
            for c in &protected {
                let place =
                    Place { candidate: c, source: Source::Push, runs: Tri::Yes, env: env.clone() };
                if self.variants(&place, &[], Some(true)).iter().any(|v| accepts(credential, v)) {
                    meant.insert(i, c.describe());
                    break;
                }
            }
        }
        if meant.is_empty() {
            return;
        }
        // Unprotected places: merge-request pipelines (any source branch) and unprotected refs,
        // plus names near the protected ones that anyone who can push could create.
        let mut probes: Vec<Candidate> = Vec::new();
        let open = places.iter().any(|p| p.mr() || p.candidate.kind == Kind::Other);
        if open {
            for c in &protected {
                for name in [format!("{}-x", c.name), format!("x-{}", c.name)] {
                    let unprotected = match c.ref_type {
                        RefType::Branch => self.context.branch_protected(&name),
                        RefType::Tag => self.context.tag_protected(&name),
                    } != Some(true);
                    if unprotected {
                        probes.push(Candidate {
                            ref_type: c.ref_type,
                            name,
                            kind: Kind::Other,
                            protected: Some(false),
                        });
                    }
                }
            }
        }
        let mut found: BTreeMap<usize, (String, String)> = BTreeMap::new();
        let mut check = |place: &Place<'_>, how: String, this: &Self| {
            for variant in this.variants(place, &[], None) {
                for (i, credential) in creds.iter().enumerate() {
                    if meant.contains_key(&i)
                        && !found.contains_key(&i)
                        && accepts(credential, &variant)
                    {
                        found.insert(i, (variant.sub.clone(), how.clone()));
                    }
                }
            }
        };
        for place in places {
            let unprotected = place.mr() || place.candidate.protected == Some(false);
            if unprotected {
                let how = if place.mr() {
                    format!(
                        "{}: a merge-request pipeline runs the merge request's code (merged \
                         results included), and before GitLab 18.2.2 a fork's branch of that \
                         name presented this subject too",
                        place.describe()
                    )
                } else {
                    place.describe()
                };
                check(place, how, self);
            }
        }
        for probe in &probes {
            let mr = places.iter().find(|p| p.mr());
            let (source, how) = match mr {
                Some(_) => (
                    Source::MergeRequestEvent,
                    format!("in a merge-request pipeline from a branch named `{}`", probe.name),
                ),
                None => (
                    Source::Push,
                    format!(
                        "on a pushed {} named `{}`, which no protection covers",
                        probe.ref_type.as_str(),
                        probe.name
                    ),
                ),
            };
            let place = Place { candidate: probe, source, runs: Tri::Yes, env: env.clone() };
            check(&place, how, self);
        }
        for (i, (sub, how)) in found {
            let Some(credential) = creds.get(i) else { continue };
            let serves = meant.get(&i).cloned().unwrap_or_default();
            let flexible = credential.claims_matching_expression.is_some();
            let fix = if flexible {
                format!(
                    "replace credential `{}`'s expression with exact subjects of protected refs \
                     (one classic credential per ref), and keep this job to protected refs: \
                     `- if: $CI_COMMIT_REF_PROTECTED == \"true\" && $CI_PIPELINE_SOURCE != \
                     \"merge_request_event\"`",
                    credential.name
                )
            } else {
                "keep this job out of merge-request pipelines and unprotected refs (first rule \
                 `- if: $CI_PIPELINE_SOURCE == \"merge_request_event\"` with `when: never`, then \
                 `- if: $CI_COMMIT_REF_PROTECTED == \"true\"`), or add `ref_protected` to the \
                 project's ci_id_token_sub_claim_components so such tokens carry \
                 `ref_protected:false`"
                    .to_owned()
            };
            sink.push(
                FindingKind::ProtectedRefReachable,
                Severity::Critical,
                at,
                "rules",
                &credential.name,
                format!(
                    "federated credential `{}` (`{}`) is meant for {serves}, but this job also \
                     presents `{sub}` {how}",
                    credential.name,
                    credential.matcher()
                ),
                fix,
            );
        }
    }

    fn policy_checks(
        &self,
        sink: &mut Sink,
        at: &At<'_>,
        model: &JobModel<'a>,
        places: &[Place<'_>],
        aud: &[String],
        policy: &Policy,
    ) {
        struct Outcome {
            allowed: Option<String>,
            undetermined: Option<(String, String)>,
            nearest: Option<String>,
            protected: bool,
            unprotected: bool,
            place: String,
        }
        let mut outcomes = Vec::new();
        for place in places {
            for variant in self.variants(place, aud, None) {
                let decision: Decision = policy.decide(&variant.claims, 0);
                let undetermined = match &decision.verdict {
                    Verdict::Deny { rule: None } => {
                        decision.explanation.iter().filter(|o| o.effect == Effect::Allow).find_map(
                            |o| {
                                let claim = o
                                    .result
                                    .as_ref()
                                    .err()
                                    .and_then(|m| unknown_claim(m, &variant.unknown))?;
                                Some((o.rule.clone(), claim))
                            },
                        )
                    }
                    _ => None,
                };
                let nearest = decision
                    .explanation
                    .iter()
                    .find(|o| o.effect == Effect::Allow && o.result.is_err())
                    .map(ToString::to_string);
                let allowed = match &decision.verdict {
                    Verdict::Allow { rule, .. } => Some(rule.clone()),
                    Verdict::Deny { .. } => None,
                };
                outcomes.push(Outcome {
                    allowed,
                    undetermined,
                    nearest,
                    protected: !place.mr() && place.candidate.protected == Some(true),
                    unprotected: place.mr() || place.candidate.protected == Some(false),
                    place: place.describe(),
                });
            }
        }
        if outcomes.is_empty() {
            return;
        }
        if outcomes.iter().all(|o| o.allowed.is_none()) {
            if let Some((rule, claim)) = outcomes.iter().find_map(|o| o.undetermined.clone()) {
                sink.push(
                    FindingKind::NotEvaluated,
                    Severity::Info,
                    at,
                    "policy",
                    &rule,
                    format!("could not tell whether policy rule {rule} allows the job: it tests `{claim}`, which the CI file does not determine"),
                    format!("pass `{claim}` in the lint context if it is a project setting (project id, protected refs)"),
                );
            } else {
                let first = outcomes.first();
                let nearest = first
                    .and_then(|o| o.nearest.clone())
                    .unwrap_or_else(|| "the policy has no allow rule".to_owned());
                let place = first.map(|o| o.place.clone()).unwrap_or_default();
                sink.push(
                    FindingKind::PolicyDenies,
                    Severity::High,
                    at,
                    "policy",
                    "",
                    format!("the job uses Azure, but no policy rule allows it anywhere it runs (e.g. {place}): {nearest}"),
                    "add an allow rule for this job's project, ref and environment, or change the job's rules so it runs where a rule allows it".to_owned(),
                );
            }
            return;
        }
        let rules: BTreeSet<String> = outcomes.iter().filter_map(|o| o.allowed.clone()).collect();
        for rule in rules {
            let mine = outcomes.iter().filter(|o| o.allowed.as_deref() == Some(rule.as_str()));
            let (mut protected, mut open) = (false, None);
            for o in mine {
                protected |= o.protected;
                if o.unprotected && open.is_none() {
                    open = Some(o.place.clone());
                }
            }
            if let (true, Some(open)) = (protected, open) {
                sink.push(
                    FindingKind::ProtectedRefReachable,
                    Severity::High,
                    at,
                    "policy",
                    &rule,
                    format!("policy rule {rule} allows this job on protected refs and also {open}, so code that is not on a protected ref gets the same Azure identity"),
                    format!("add `\"ref_protected\": true` and `\"pipeline_source\": [\"push\", \"web\", \"schedule\"]` to rule {rule}, or keep the job out of merge-request pipelines and unprotected refs"),
                );
            }
            let direct = model.azure.direct && !model.azure.via_exchange;
            if let (Some(what), true) = (self.hidden.get(&rule).cloned(), direct) {
                sink.push(
                    FindingKind::PolicyConditionNotInEntra,
                    Severity::High,
                    at,
                    "policy",
                    &rule,
                    format!(
                        "policy rule {rule} allows this job on conditions Entra cannot check ({}), \
                         but the job hands its token to Entra itself ({}), so nothing enforces \
                         them",
                        what.join(", "),
                        model.azure.signals.join(", ")
                    ),
                    "exchange the token through the policy (`gitlab-azure-oidc exchange`) \
                     instead, or make the federated credential itself as narrow as the rule \
                     (e.g. add `ref_protected` to ci_id_token_sub_claim_components)"
                        .to_owned(),
                );
            }
        }
    }
}

/// The unknown claim a mismatch turns on, if any.
fn unknown_claim(m: &Mismatch, unknown: &[&str]) -> Option<String> {
    match m {
        Mismatch::Claim { claim, found: None, .. } if unknown.contains(&claim.as_str()) => {
            Some(claim.clone())
        }
        Mismatch::NoAlternative { failures } => {
            failures.iter().find_map(|f| unknown_claim(f, unknown))
        }
        _ => None,
    }
}
