//! Which pipelines a job can run in: the refs (by name, by pattern, the default branch, any
//! other) and pipeline sources, from `workflow:rules`, `rules:` and `only:`/`except:`.
//!
//! The linter imagines one pipeline per source and ref it can tell apart: every branch and tag
//! name the configuration compares against, one example name per regex it matches against, the
//! default and protected branches, and "any other" branch and tag. Each job's rules are evaluated
//! in each with three values (yes, no, unknown), so a rule that depends on something the file
//! does not say makes the job "may run" there instead of a guess. Each pattern is stood for by one
//! example name, so a job that tells two names of one pattern apart is judged by the example.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::context::LintContext;
use super::expr::{Expr, Literal, SyntaxError, Tri, Var};
use super::regex::{split_literal, Regex};

/// Most distinct ref names (or patterns) per ref type before the rest count as "any other".
const MAX_CANDIDATES: usize = 32;
/// Most target branches imagined for merge-request pipelines.
const MAX_TARGETS: usize = 8;
/// Deepest variable-in-variable expansion.
const MAX_EXPANSION_DEPTH: usize = 10;

/// A branch or a tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum RefType {
    Branch,
    Tag,
}

impl RefType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Branch => "branch",
            Self::Tag => "tag",
        }
    }

    pub(crate) fn ref_path(self, name: &str) -> String {
        match self {
            Self::Branch => format!("refs/heads/{name}"),
            Self::Tag => format!("refs/tags/{name}"),
        }
    }
}

/// Where a pipeline comes from (`CI_PIPELINE_SOURCE`, the `pipeline_source` claim).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Source {
    Push,
    Web,
    Schedule,
    Api,
    Trigger,
    Pipeline,
    MergeRequestEvent,
}

impl Source {
    pub(crate) const REF_SOURCES: [Self; 6] =
        [Self::Push, Self::Web, Self::Schedule, Self::Api, Self::Trigger, Self::Pipeline];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Web => "web",
            Self::Schedule => "schedule",
            Self::Api => "api",
            Self::Trigger => "trigger",
            Self::Pipeline => "pipeline",
            Self::MergeRequestEvent => "merge_request_event",
        }
    }
}

/// How a candidate ref came to be imagined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The default branch.
    Default,
    /// A protected ref from the context: a name, or an example of a wildcard.
    Protected(Option<String>),
    /// A name the configuration compares against.
    Named,
    /// An example of a regex the configuration matches against: `/pattern/flags`.
    Pattern(String, Option<(String, bool)>),
    /// Any ref that no name or pattern above covers.
    Other,
}

/// One ref the linter imagines a pipeline for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) ref_type: RefType,
    /// A concrete name (an example for patterns and "any other").
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// `Some(true)` protected, `Some(false)` unprotected, `None` unknown.
    pub(crate) protected: Option<bool>,
}

impl Candidate {
    /// For people: `main (default branch)`, `a branch matching /^release/ (e.g. release1)`.
    pub(crate) fn describe(&self) -> String {
        let t = self.ref_type.as_str();
        match &self.kind {
            Kind::Default => format!("{} (default branch)", self.name),
            Kind::Protected(None) => format!("{} (protected {t})", self.name),
            Kind::Protected(Some(glob)) => {
                format!("a protected {t} matching {glob} (e.g. {})", self.name)
            }
            Kind::Named => format!("{t} {}", self.name),
            Kind::Pattern(regex, _) => format!("a {t} matching {regex} (e.g. {})", self.name),
            Kind::Other => format!("any other {t}"),
        }
    }

    /// Whether the candidate stands for one concrete ref.
    pub(crate) fn is_exact(&self) -> bool {
        matches!(self.kind, Kind::Default | Kind::Protected(None) | Kind::Named)
    }
}

/// One imagined pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scenario {
    pub(crate) source: Source,
    pub(crate) candidate: usize,
    /// Merge-request pipelines: the target branch.
    pub(crate) target: Option<usize>,
}

/// Every ref and pipeline the linter imagines for one configuration.
#[derive(Clone, Debug)]
pub(crate) struct Universe {
    pub(crate) candidates: Vec<Candidate>,
    pub(crate) scenarios: Vec<Scenario>,
}

const BRANCH_VARS: [&str; 4] = [
    "CI_COMMIT_BRANCH",
    "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
    "CI_MERGE_REQUEST_TARGET_BRANCH_NAME",
    "CI_DEFAULT_BRANCH",
];
const TAG_VARS: [&str; 1] = ["CI_COMMIT_TAG"];
const REF_VARS: [&str; 2] = ["CI_COMMIT_REF_NAME", "CI_COMMIT_REF_SLUG"];

/// Every `if:` expression and `only`/`except` ref entry in a rules-bearing mapping.
fn expressions_in(config: &Map<String, Value>, exprs: &mut Vec<String>, refs: &mut Vec<String>) {
    if let Some(rules) = config.get("rules") {
        for rule in flatten(rules) {
            if let Some(text) = rule.get("if").and_then(Value::as_str) {
                exprs.push(text.to_owned());
            }
        }
    }
    for key in ["only", "except"] {
        match config.get(key) {
            Some(Value::Array(items)) => {
                refs.extend(items.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            Some(Value::Object(map)) => {
                if let Some(Value::Array(items)) = map.get("refs") {
                    refs.extend(items.iter().filter_map(Value::as_str).map(str::to_owned));
                }
                if let Some(Value::Array(items)) = map.get("variables") {
                    exprs.extend(items.iter().filter_map(Value::as_str).map(str::to_owned));
                }
            }
            Some(Value::String(s)) => refs.push(s.clone()),
            _ => {}
        }
    }
}

/// A list with nested lists flattened (GitLab flattens `!reference` results in `rules` and
/// scripts), at most 10 levels.
pub(crate) fn flatten(value: &Value) -> Vec<&Value> {
    fn walk<'a>(value: &'a Value, depth: usize, out: &mut Vec<&'a Value>) {
        match value {
            Value::Array(items) if depth < 10 => items.iter().for_each(|i| walk(i, depth + 1, out)),
            Value::Array(_) => {}
            other => out.push(other),
        }
    }
    let mut out = Vec::new();
    if let Value::Array(items) = value {
        items.iter().for_each(|i| walk(i, 1, &mut out));
    }
    out
}

const ONLY_KEYWORDS: [&str; 12] = [
    "api",
    "branches",
    "chat",
    "external",
    "external_pull_requests",
    "merge_requests",
    "pipelines",
    "pushes",
    "schedules",
    "tags",
    "triggers",
    "web",
];

struct Builder<'a> {
    context: &'a LintContext,
    candidates: Vec<Candidate>,
}

impl Builder<'_> {
    fn count(&self, ref_type: RefType) -> usize {
        self.candidates.iter().filter(|c| c.ref_type == ref_type).count()
    }

    fn protected(&self, ref_type: RefType, name: &str) -> Option<bool> {
        match ref_type {
            RefType::Branch => self.context.branch_protected(name),
            RefType::Tag => self.context.tag_protected(name),
        }
    }

    fn name(&mut self, ref_type: RefType, name: &str) {
        if name.is_empty()
            || self.count(ref_type) >= MAX_CANDIDATES
            || self.candidates.iter().any(|c| c.ref_type == ref_type && c.name == name)
        {
            return;
        }
        let protected = self.protected(ref_type, name);
        let kind = if protected == Some(true) { Kind::Protected(None) } else { Kind::Named };
        self.candidates.push(Candidate { ref_type, name: name.to_owned(), kind, protected });
    }

    fn pattern(&mut self, ref_type: RefType, pattern: &str, flags: &str) {
        let display = format!("/{pattern}/{flags}");
        if self.count(ref_type) >= MAX_CANDIDATES
            || self.candidates.iter().any(|c| {
                c.ref_type == ref_type && matches!(&c.kind, Kind::Pattern(d, _) if *d == display)
            })
        {
            return;
        }
        let Ok(regex) = Regex::new(pattern, flags) else { return };
        let Some(example) = regex.example() else { return };
        if self.candidates.iter().any(|c| c.ref_type == ref_type && c.name == example) {
            return;
        }
        let protected = self.protected(ref_type, &example);
        self.candidates.push(Candidate {
            ref_type,
            name: example,
            kind: Kind::Pattern(display, regex.to_wildcard()),
            protected,
        });
    }

    fn other(&mut self, ref_type: RefType) {
        let mut name = match ref_type {
            RefType::Branch => "some-feature-branch".to_owned(),
            RefType::Tag => "some-tag".to_owned(),
        };
        while self.candidates.iter().any(|c| c.ref_type == ref_type && c.name == name) {
            name.push_str("-x");
        }
        // A new ref that no protection rule covers: unprotected, unless a wildcard covers all.
        let protected = Some(self.protected(ref_type, &name) == Some(true));
        self.candidates.push(Candidate { ref_type, name, kind: Kind::Other, protected });
    }
}

impl Universe {
    /// Imagines the refs and pipelines for a configuration: `configs` are the workflow and every
    /// job.
    pub(crate) fn build<'a>(
        configs: impl Iterator<Item = &'a Map<String, Value>>,
        context: &LintContext,
    ) -> Self {
        let mut exprs = Vec::new();
        let mut refs = Vec::new();
        for config in configs {
            expressions_in(config, &mut exprs, &mut refs);
        }
        let mut b = Builder { context, candidates: Vec::new() };
        b.candidates.push(Candidate {
            ref_type: RefType::Branch,
            name: context.default_branch.clone(),
            kind: Kind::Default,
            protected: Some(context.default_branch_protected),
        });
        for (ref_type, list) in [
            (RefType::Branch, &context.protected_branches),
            (RefType::Tag, &context.protected_tags),
        ] {
            for entry in list {
                if entry.contains('*') {
                    let example = entry.replace('*', "x");
                    if !b.candidates.iter().any(|c| c.ref_type == ref_type && c.name == example) {
                        b.candidates.push(Candidate {
                            ref_type,
                            name: example,
                            kind: Kind::Protected(Some(entry.clone())),
                            protected: Some(true),
                        });
                    }
                } else {
                    b.name(ref_type, entry);
                }
            }
        }
        for text in &exprs {
            let Ok(expr) = Expr::parse(text) else { continue };
            let mut pairs = Vec::new();
            expr.comparisons(&mut pairs);
            for (var, literal) in pairs {
                let types: &[RefType] = if BRANCH_VARS.contains(&var.as_str()) {
                    &[RefType::Branch]
                } else if TAG_VARS.contains(&var.as_str()) {
                    &[RefType::Tag]
                } else if REF_VARS.contains(&var.as_str()) {
                    &[RefType::Branch, RefType::Tag]
                } else {
                    &[]
                };
                for t in types {
                    match &literal {
                        Literal::Name(n) => b.name(*t, n),
                        Literal::Pattern(p, f) => b.pattern(*t, p, f),
                    }
                }
            }
        }
        for entry in &refs {
            if ONLY_KEYWORDS.contains(&entry.as_str()) {
                continue;
            }
            if let Some((pattern, flags)) = split_literal(entry) {
                b.pattern(RefType::Branch, pattern, flags);
                b.pattern(RefType::Tag, pattern, flags);
            } else {
                let name = entry.split_once('@').map_or(entry.as_str(), |(n, _)| n);
                b.name(RefType::Branch, name);
            }
        }
        b.other(RefType::Branch);
        b.other(RefType::Tag);
        let mut candidates = b.candidates;
        // Branches first, then tags, each in the order above.
        candidates.sort_by_key(|c| c.ref_type);

        let mut scenarios = Vec::new();
        for i in 0..candidates.len() {
            for source in Source::REF_SOURCES {
                scenarios.push(Scenario { source, candidate: i, target: None });
            }
        }
        let branches: Vec<usize> = candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.ref_type == RefType::Branch)
            .map(|(i, _)| i)
            .collect();
        let mut targets: Vec<usize> = branches
            .iter()
            .copied()
            .filter(|i| candidates.get(*i).is_some_and(|c| c.kind != Kind::Other))
            .take(MAX_TARGETS)
            .collect();
        targets.extend(
            branches
                .iter()
                .copied()
                .filter(|i| candidates.get(*i).is_some_and(|c| c.kind == Kind::Other)),
        );
        for &source in &branches {
            for &target in &targets {
                scenarios.push(Scenario {
                    source: Source::MergeRequestEvent,
                    candidate: source,
                    target: Some(target),
                });
            }
        }
        Self { candidates, scenarios }
    }

    pub(crate) fn candidate(&self, index: usize) -> Option<&Candidate> {
        self.candidates.get(index)
    }
}

/// `CI_COMMIT_REF_SLUG`: lowercased, everything but `0-9a-z` replaced by `-`, at most 63
/// characters, no leading or trailing `-`.
pub(crate) fn slug(name: &str) -> String {
    let lowered: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    lowered.trim_matches('-').to_owned()
}

fn yes_no(b: bool) -> String {
    if b { "true" } else { "false" }.to_owned()
}

/// A YAML variable's value: a scalar, or `{value: ...}`; `expand: false` keeps `$` literal.
pub(crate) fn variable_value(value: &Value) -> Option<(String, bool)> {
    match value {
        Value::String(s) => Some((s.clone(), true)),
        Value::Number(n) => Some((n.to_string(), true)),
        Value::Bool(b) => Some((yes_no(*b), true)),
        Value::Object(map) => {
            let expand = map.get("expand").and_then(Value::as_bool).unwrap_or(true);
            variable_value(map.get("value")?).map(|(v, _)| (v, expand))
        }
        _ => None,
    }
}

/// The variables one imagined pipeline sees, most specific last.
pub(crate) struct Scope<'a> {
    pub(crate) universe: &'a Universe,
    pub(crate) context: &'a LintContext,
    pub(crate) scenario: Scenario,
    /// YAML variables in order of precedence: global, then workflow rule, then job, then rule.
    pub(crate) layers: Vec<&'a Map<String, Value>>,
}

impl Scope<'_> {
    fn predefined(&self, name: &str) -> Option<Var> {
        let known = |v: Option<String>| Some(Var::Known(v));
        let candidate = self.universe.candidate(self.scenario.candidate)?;
        let mr = self.scenario.source == Source::MergeRequestEvent;
        let branch = candidate.ref_type == RefType::Branch;
        let ctx = self.context;
        match name {
            "CI_COMMIT_BRANCH" => known((branch && !mr).then(|| candidate.name.clone())),
            "CI_COMMIT_TAG" => known((!branch).then(|| candidate.name.clone())),
            "CI_COMMIT_REF_NAME" => known(Some(candidate.name.clone())),
            "CI_COMMIT_REF_SLUG" => known(Some(slug(&candidate.name))),
            "CI_COMMIT_REF_PROTECTED" => {
                if mr {
                    known(Some(yes_no(false)))
                } else {
                    match candidate.protected {
                        Some(p) => known(Some(yes_no(p))),
                        None => Some(Var::Unknown(format!(
                            "whether {} is protected (list it in the protected refs)",
                            candidate.describe()
                        ))),
                    }
                }
            }
            "CI_DEFAULT_BRANCH" => known(Some(ctx.default_branch.clone())),
            "CI_PIPELINE_SOURCE" => known(Some(self.scenario.source.as_str().to_owned())),
            "CI_PIPELINE_TRIGGERED" => {
                known((self.scenario.source == Source::Trigger).then(|| yes_no(true)))
            }
            "CI_MERGE_REQUEST_IID" | "CI_MERGE_REQUEST_ID" => known(mr.then(|| "1".to_owned())),
            "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME" => known(mr.then(|| candidate.name.clone())),
            "CI_MERGE_REQUEST_TARGET_BRANCH_NAME" => {
                let target = self.scenario.target.and_then(|t| self.universe.candidate(t));
                known(if mr { target.map(|t| t.name.clone()) } else { None })
            }
            "CI_PROJECT_PATH" => known(Some(ctx.project_path.clone())),
            "CI_PROJECT_NAMESPACE" => known(Some(ctx.namespace_path().to_owned())),
            "CI_PROJECT_NAME" => known(ctx.project_path.rsplit('/').next().map(str::to_owned)),
            "CI_PROJECT_ID" => ctx.project_id.clone().map(|id| Var::Known(Some(id))),
            "CI_SERVER_URL" => known(Some(ctx.issuer.clone())),
            "CI_SERVER_HOST" | "CI_SERVER_FQDN" => {
                known(ctx.issuer.strip_prefix("https://").map(str::to_owned))
            }
            "CI_SERVER_PROTOCOL" => known(Some("https".to_owned())),
            "CI" | "GITLAB_CI" => known(Some(yes_no(true))),
            "CI_EXTERNAL_PULL_REQUEST_IID" => known(None),
            n if n.starts_with("CI_MERGE_REQUEST_") && !mr => known(None),
            n if n.starts_with("CI_") || n.starts_with("GITLAB_") => Some(Var::Unknown(format!(
                "${n}, which the linter does not model (it depends on the commit, the user or \
                 the merge request)"
            ))),
            _ => None,
        }
    }

    /// A variable's value, expanded.
    pub(crate) fn lookup(&self, name: &str) -> Var {
        self.lookup_depth(name, 0)
    }

    fn lookup_depth(&self, name: &str, depth: usize) -> Var {
        for layer in self.layers.iter().rev() {
            if let Some(value) = layer.get(name) {
                return match variable_value(value) {
                    Some((text, true)) if depth < MAX_EXPANSION_DEPTH => {
                        self.expand_depth(&text, depth + 1)
                    }
                    Some((text, _)) => Var::Known(Some(text)),
                    None if value.is_null() => Var::Known(None),
                    None => Var::Unknown(format!("${name}, whose value is not a string")),
                };
            }
        }
        self.predefined(name).unwrap_or_else(|| {
            Var::Unknown(format!(
                "${name}, which the file does not define (a project, group or trigger variable \
                 may set it)"
            ))
        })
    }

    /// Expands `$NAME` and `${NAME}` in `text`.
    pub(crate) fn expand(&self, text: &str) -> Var {
        self.expand_depth(text, 0)
    }

    fn expand_depth(&self, text: &str, depth: usize) -> Var {
        let mut out = String::new();
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            if c != '$' {
                out.push(c);
                i += 1;
                continue;
            }
            let braced = chars.get(i + 1) == Some(&'{');
            let start = if braced { i + 2 } else { i + 1 };
            let mut end = start;
            while chars.get(end).is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_') {
                end += 1;
            }
            if end == start || (braced && chars.get(end) != Some(&'}')) {
                // `$$` escapes a dollar; a lone `$` stays.
                if chars.get(i + 1) == Some(&'$') {
                    i += 1;
                }
                out.push('$');
                i += 1;
                continue;
            }
            let name: String = chars.get(start..end).unwrap_or_default().iter().collect();
            match self.lookup_depth(&name, depth) {
                Var::Known(value) => out.push_str(value.as_deref().unwrap_or("")),
                unknown @ Var::Unknown(_) => return unknown,
            }
            i = if braced { end + 1 } else { end };
        }
        Var::Known(Some(out))
    }
}

/// The outcome of one list of rules in one imagined pipeline.
pub(crate) struct RulesOutcome<'a> {
    pub(crate) runs: Tri,
    /// The `variables:` of the rule that certainly matched first, if any.
    pub(crate) variables: Option<&'a Map<String, Value>>,
}

/// One entry of `rules:`, its `if:` parsed once.
#[derive(Clone, Debug)]
pub(crate) struct Rule<'a> {
    text: &'a str,
    condition: Option<Result<Expr, SyntaxError>>,
    changes: bool,
    exists: bool,
    never: bool,
    variables: Option<&'a Map<String, Value>>,
}

/// Reads `rules:` entries (non-mappings are skipped; job rules are checked before).
pub(crate) fn compile_rules<'a>(rules: &[&'a Value]) -> Vec<Rule<'a>> {
    rules
        .iter()
        .filter_map(|rule| rule.as_object())
        .map(|rule| {
            let text = rule.get("if").map(|c| c.as_str().unwrap_or_default()).unwrap_or_default();
            Rule {
                text,
                condition: rule.get("if").map(|_| Expr::parse(text)),
                changes: rule.contains_key("changes"),
                exists: rule.contains_key("exists"),
                never: rule.get("when").and_then(Value::as_str) == Some("never"),
                variables: rule.get("variables").and_then(Value::as_object),
            }
        })
        .collect()
}

/// Evaluates `rules:` (workflow or job): the first rule that matches decides; `when: never`
/// stops the job; no match leaves the job out.
pub(crate) fn eval_rules<'a>(
    rules: &[Rule<'a>],
    scope: &Scope<'_>,
    label: &str,
    why: &mut Vec<String>,
) -> RulesOutcome<'a> {
    let mut outcomes = (false, false); // (can run, can be left out)
    let mut variables = None;
    let mut reachable = true;
    let mut uncertain_before = false;
    for (i, rule) in rules.iter().enumerate() {
        let text = rule.text;
        let cond = match &rule.condition {
            None => Tri::Yes,
            Some(Ok(expr)) => {
                let lookup = |name: &str| scope.lookup(name);
                let mut reasons = Vec::new();
                let result = expr.eval(&lookup, &mut reasons);
                for r in reasons {
                    push_reason(why, format!("{label}[{i}].if `{text}`: depends on {r}"));
                }
                result
            }
            Some(Err(e)) => {
                push_reason(why, format!("{label}[{i}].if `{text}` does not parse ({e})"));
                Tri::Unknown
            }
        };
        let mut cond = cond;
        for (present, key, what) in [
            (rule.changes, "changes", "the files the push or merge request changes"),
            (rule.exists, "exists", "which files exist in the repository"),
        ] {
            if cond != Tri::No && present {
                push_reason(why, format!("{label}[{i}].{key}: depends on {what}"));
                cond = cond.and(Tri::Unknown);
            }
        }
        let run = !rule.never;
        match cond {
            Tri::No => continue,
            Tri::Unknown => {
                if run {
                    outcomes.0 = true;
                } else {
                    outcomes.1 = true;
                }
                uncertain_before = true;
            }
            Tri::Yes => {
                if run {
                    outcomes.0 = true;
                } else {
                    outcomes.1 = true;
                }
                if !uncertain_before {
                    variables = rule.variables;
                }
                reachable = false;
                break;
            }
        }
    }
    if reachable {
        outcomes.1 = true;
    }
    let runs = match outcomes {
        (true, false) => Tri::Yes,
        (false, _) => Tri::No,
        (true, true) => Tri::Unknown,
    };
    RulesOutcome { runs, variables }
}

fn push_reason(why: &mut Vec<String>, reason: String) {
    if !why.contains(&reason) {
        why.push(reason);
    }
}

/// One `only`/`except` refs entry in one imagined pipeline.
fn ref_entry(entry: &str, scope: &Scope<'_>, label: &str, why: &mut Vec<String>) -> Tri {
    let Some(candidate) = scope.universe.candidate(scope.scenario.candidate) else {
        return Tri::No;
    };
    let source = scope.scenario.source;
    let mr = source == Source::MergeRequestEvent;
    let branch = candidate.ref_type == RefType::Branch;
    let is = |s: Source| Tri::from_bool(source == s);
    match entry {
        "branches" => Tri::from_bool(branch && !mr),
        "tags" => Tri::from_bool(!branch),
        "merge_requests" => Tri::from_bool(mr),
        "api" => is(Source::Api),
        "pipelines" => is(Source::Pipeline),
        "pushes" => is(Source::Push),
        "schedules" => is(Source::Schedule),
        "triggers" => is(Source::Trigger),
        "web" => is(Source::Web),
        "chat" | "external" | "external_pull_requests" => Tri::No,
        _ if mr => Tri::No,
        _ => {
            let (name, project) = match entry.split_once('@') {
                Some((n, p)) if !entry.starts_with('/') => (n, Some(p)),
                _ => (entry, None),
            };
            if project.is_some_and(|p| p != scope.context.project_path) {
                return Tri::No;
            }
            match split_literal(name) {
                Some((pattern, flags)) => match Regex::new(pattern, flags) {
                    Ok(regex) => Tri::from_bool(regex.is_match(&candidate.name)),
                    Err(e) => {
                        push_reason(
                            why,
                            format!("{label}: /{pattern}/ uses syntax the linter does not evaluate ({e})"),
                        );
                        Tri::Unknown
                    }
                },
                None => Tri::from_bool(name == candidate.name),
            }
        }
    }
}

/// `only:` or `except:` as (refs matched, the other keys matched); `None` when absent.
fn only_part(
    value: &Value,
    scope: &Scope<'_>,
    label: &str,
    why: &mut Vec<String>,
) -> (Option<Tri>, Vec<Tri>) {
    let refs_of = |items: &[Value], why: &mut Vec<String>| {
        items
            .iter()
            .filter_map(Value::as_str)
            .fold(Tri::No, |acc, e| acc.or(ref_entry(e, scope, label, why)))
    };
    match value {
        Value::String(s) => (Some(ref_entry(s, scope, label, why)), Vec::new()),
        Value::Array(items) => (Some(refs_of(items, why)), Vec::new()),
        Value::Object(map) => {
            let refs = match map.get("refs") {
                Some(Value::Array(items)) => Some(refs_of(items, why)),
                Some(Value::String(s)) => Some(ref_entry(s, scope, label, why)),
                _ => None,
            };
            let mut others = Vec::new();
            if let Some(Value::Array(items)) = map.get("variables") {
                let mut any = Tri::No;
                for (i, text) in items.iter().filter_map(Value::as_str).enumerate() {
                    any = any.or(match Expr::parse(text) {
                        Ok(expr) => {
                            let lookup = |name: &str| scope.lookup(name);
                            let mut reasons = Vec::new();
                            let r = expr.eval(&lookup, &mut reasons);
                            for reason in reasons {
                                push_reason(
                                    why,
                                    format!("{label}.variables[{i}] `{text}`: depends on {reason}"),
                                );
                            }
                            r
                        }
                        Err(e) => {
                            push_reason(
                                why,
                                format!("{label}.variables[{i}] does not parse ({e})"),
                            );
                            Tri::Unknown
                        }
                    });
                }
                others.push(any);
            }
            for key in ["changes", "kubernetes"] {
                if map.contains_key(key) {
                    push_reason(why, format!("{label}.{key}: not evaluated"));
                    others.push(Tri::Unknown);
                }
            }
            (refs, others)
        }
        _ => (None, Vec::new()),
    }
}

/// Evaluates `only:`/`except:`. Without `only` (or without `only:refs`), GitLab uses
/// `only: [branches, tags]`, which leaves merge-request pipelines out.
pub(crate) fn eval_only_except(
    only: Option<&Value>,
    except: Option<&Value>,
    scope: &Scope<'_>,
    why: &mut Vec<String>,
) -> Tri {
    let default_refs = |why: &mut Vec<String>| {
        ref_entry("branches", scope, "only", why).or(ref_entry("tags", scope, "only", why))
    };
    let included = match only {
        None => default_refs(why),
        Some(value) => {
            let (refs, others) = only_part(value, scope, "only", why);
            let refs = refs.unwrap_or_else(|| default_refs(why));
            others.into_iter().fold(refs, Tri::and)
        }
    };
    let excluded = match except {
        None => Tri::No,
        Some(value) => {
            let (refs, others) = only_part(value, scope, "except", why);
            others.into_iter().fold(refs.unwrap_or(Tri::No), Tri::or)
        }
    };
    included.and(excluded.not())
}

/// Groups imagined pipelines by candidate: for each, the sources and whether the job runs.
pub(crate) fn group_runs(
    universe: &Universe,
    runs: &[(Scenario, Tri)],
) -> BTreeMap<usize, BTreeMap<Source, Tri>> {
    let mut out: BTreeMap<usize, BTreeMap<Source, Tri>> = BTreeMap::new();
    for (scenario, tri) in runs {
        if *tri == Tri::No || universe.candidate(scenario.candidate).is_none() {
            continue;
        }
        let slot =
            out.entry(scenario.candidate).or_default().entry(scenario.source).or_insert(Tri::No);
        *slot = slot.or(*tri);
    }
    out
}
