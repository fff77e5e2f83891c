//! From documents to jobs: `include:local`, `!reference`, `extends` and `default:`, in GitLab's
//! order (includes merged, then tags resolved over the merged configuration, then `extends`,
//! then the defaults each job inherits).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::document::{
    deep_merge, Document, IncludeNote, Loader, Origin, MAX_DOCUMENTS, MAX_DOCUMENT_DEPTH,
};
use super::error::{JobError, PipelineError};
use crate::text::json::yaml_type_name;

/// Most jobs linted in one pipeline.
pub const MAX_JOBS: usize = 1000;
/// GitLab's limit on `extends` levels.
pub const MAX_EXTENDS_DEPTH: usize = 11;
/// GitLab's limit on nested `!reference` tags.
pub const MAX_REFERENCE_DEPTH: usize = 10;
/// Most JSON values that `!reference` and `extends` may produce in all.
pub const MAX_RESOLVED_VALUES: usize = 2_000_000;

/// Top-level keys that are keywords, not jobs.
const RESERVED: [&str; 12] = [
    "after_script",
    "before_script",
    "cache",
    "default",
    "image",
    "include",
    "services",
    "spec",
    "stages",
    "types",
    "variables",
    "workflow",
];

/// Keys a job inherits from `default:` when it does not set them (GitLab's list).
pub(crate) const DEFAULT_KEYS: [&str; 12] = [
    "after_script",
    "artifacts",
    "before_script",
    "cache",
    "hooks",
    "id_tokens",
    "image",
    "interruptible",
    "retry",
    "services",
    "tags",
    "timeout",
];

/// Top-level keys that GitLab still reads as defaults (deprecated in favour of `default:`).
const LEGACY_DEFAULTS: [&str; 5] = ["after_script", "before_script", "cache", "image", "services"];

/// One job after `include`, `!reference`, `extends` and `default:`.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedJob {
    name: String,
    file: String,
    line: Option<u32>,
    config: Map<String, Value>,
    uses_inherited_variables: InheritVariables,
}

/// Which global variables a job inherits (`inherit:variables`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum InheritVariables {
    All,
    None,
    Only(Vec<String>),
}

impl ResolvedJob {
    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file that defines the job (the last one, when an including file overrides it).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The line of the job's key, when the host gave key lines.
    pub fn line(&self) -> Option<u32> {
        self.line
    }

    /// The job's configuration as GitLab would run it (without global variables).
    pub fn config(&self) -> &Map<String, Value> {
        &self.config
    }

    pub(crate) fn inherit_variables(&self) -> &InheritVariables {
        &self.uses_inherited_variables
    }
}

/// A job that could not be resolved, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BrokenJob {
    pub(crate) name: String,
    pub(crate) file: String,
    pub(crate) line: Option<u32>,
    pub(crate) error: JobError,
}

/// A resolved pipeline: every job, the global keywords, and what could not be followed.
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    root: String,
    jobs: Vec<ResolvedJob>,
    pub(crate) broken: Vec<BrokenJob>,
    pub(crate) variables: Map<String, Value>,
    pub(crate) workflow: Option<Value>,
    pub(crate) origins: BTreeMap<String, Origin>,
    pub(crate) notes: Vec<IncludeNote>,
}

struct Budget(usize);

impl Budget {
    fn spend(&mut self, value: &Value) -> Result<(), PipelineError> {
        let mut stack = vec![value];
        while let Some(v) = stack.pop() {
            self.0 = self.0.saturating_add(1);
            match v {
                Value::Array(items) => stack.extend(items),
                Value::Object(map) => stack.extend(map.values()),
                _ => {}
            }
        }
        if self.0 > MAX_RESOLVED_VALUES {
            return Err(PipelineError::ExpansionTooLarge { limit: MAX_RESOLVED_VALUES });
        }
        Ok(())
    }

    fn spend_map(&mut self, map: &Map<String, Value>) -> Result<(), PipelineError> {
        map.values().try_for_each(|v| self.spend(v))
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(0);
            let left = row.get(j).copied().unwrap_or(0);
            let value = (prev + usize::from(ca != *cb)).min(above + 1).min(left + 1);
            prev = above;
            if let Some(slot) = row.get_mut(j + 1) {
                *slot = value;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

fn reference_text(path: &[Value]) -> String {
    let names: Vec<String> =
        path.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect();
    format!("[{}]", names.join(", "))
}

struct Resolver<'a> {
    config: &'a Map<String, Value>,
    budget: Budget,
}

impl Resolver<'_> {
    /// Replaces every `{"!reference": [...]}` in `value`.
    /// `depth` counts nested references, `level` the nesting of the value being walked (a
    /// reference can graft a deep value into a deep place; the total stays bounded).
    fn references(
        &mut self,
        value: &mut Value,
        job: &str,
        depth: usize,
        level: usize,
    ) -> Result<(), ResolveError> {
        if level > MAX_DOCUMENT_DEPTH {
            return Err(ResolveError::Job(JobError::ReferenceInvalid {
                job: job.to_owned(),
                reference: String::new(),
                reason: format!(
                    "makes the configuration nest deeper than {MAX_DOCUMENT_DEPTH} levels"
                ),
            }));
        }
        let reference = match value {
            Value::Object(map) if map.len() == 1 && map.contains_key("!reference") => {
                map.get("!reference").cloned()
            }
            Value::Object(map) => {
                for v in map.values_mut() {
                    self.references(v, job, depth, level + 1)?;
                }
                return Ok(());
            }
            Value::Array(items) => {
                for v in items {
                    self.references(v, job, depth, level + 1)?;
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        let Some(reference) = reference else { return Ok(()) };
        let invalid = |reason: &str| {
            ResolveError::Job(JobError::ReferenceInvalid {
                job: job.to_owned(),
                reference: reference.to_string(),
                reason: reason.to_owned(),
            })
        };
        let Value::Array(path) = &reference else {
            return Err(invalid("must be a list of names, e.g. `!reference [.setup, script]`"));
        };
        if path.is_empty() || path.iter().any(|p| !p.is_string()) {
            return Err(invalid("must be a non-empty list of names"));
        }
        if depth >= MAX_REFERENCE_DEPTH {
            return Err(invalid(&format!(
                "nests more than {MAX_REFERENCE_DEPTH} references deep (GitLab's limit); a \
                 reference may also point back at itself"
            )));
        }
        let mut target: Option<&Value> = None;
        for name in path.iter().filter_map(Value::as_str) {
            let next = match target {
                None => self.config.get(name),
                Some(Value::Object(map)) => map.get(name),
                Some(_) => None,
            };
            let Some(next) = next else {
                return Err(ResolveError::Job(JobError::ReferenceUnknown {
                    job: job.to_owned(),
                    reference: reference_text(path),
                    missing: name.to_owned(),
                }));
            };
            target = Some(next);
        }
        let Some(target) = target else { return Ok(()) };
        let mut replacement = target.clone();
        self.budget.spend(&replacement).map_err(ResolveError::Pipeline)?;
        self.references(&mut replacement, job, depth + 1, level)?;
        *value = replacement;
        Ok(())
    }
}

enum ResolveError {
    Job(JobError),
    Pipeline(PipelineError),
}

struct Extender<'a> {
    entries: &'a BTreeMap<String, Result<Value, JobError>>,
    /// Templates already merged, with their height (the longest `extends` chain below them).
    /// A result that resolved is the same from every path, except for the depth it adds.
    done: BTreeMap<String, (Map<String, Value>, usize)>,
    budget: Budget,
}

type Extended = Result<(Map<String, Value>, usize), JobError>;

impl Extender<'_> {
    /// `chain` holds the jobs being merged above `name`, from the linted job down.
    fn resolve(&mut self, name: &str, chain: &mut Vec<String>) -> Result<Extended, PipelineError> {
        if let Some((map, height)) = self.done.get(name) {
            if chain.len() + height > MAX_EXTENDS_DEPTH {
                let mut deep = chain.clone();
                deep.push(name.to_owned());
                return Ok(Err(JobError::ExtendsTooDeep { chain: deep, limit: MAX_EXTENDS_DEPTH }));
            }
            return Ok(Ok((map.clone(), *height)));
        }
        let result = self.compute(name, chain)?;
        if let Ok((map, height)) = &result {
            self.budget.spend_map(map)?;
            self.done.insert(name.to_owned(), (map.clone(), *height));
        }
        Ok(result)
    }

    fn compute(&mut self, name: &str, chain: &mut Vec<String>) -> Result<Extended, PipelineError> {
        let own = match self.entries.get(name) {
            Some(Ok(Value::Object(map))) => map.clone(),
            Some(Ok(other)) => {
                return Ok(Err(JobError::NotAMapping {
                    job: name.to_owned(),
                    found: yaml_type_name(other),
                }))
            }
            Some(Err(e)) => return Ok(Err(e.clone())),
            None => {
                return Ok(Err(JobError::NotAMapping { job: name.to_owned(), found: "undefined" }))
            }
        };
        let parents: Vec<String> = match own.get("extends") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(p)) => vec![p.clone()],
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                items.iter().filter_map(Value::as_str).map(str::to_owned).collect()
            }
            Some(_) => {
                return Ok(Err(JobError::Keyword {
                    job: name.to_owned(),
                    key: "extends".to_owned(),
                    expected: "a job name or a list of job names".to_owned(),
                }))
            }
        };
        chain.push(name.to_owned());
        let result = self.merge_parents(name, &parents, chain);
        chain.pop();
        let (mut merged, height) = match result? {
            Ok(ok) => ok,
            Err(e) => return Ok(Err(e)),
        };
        let mut own = own;
        own.remove("extends");
        deep_merge(&mut merged, own);
        Ok(Ok((merged, height)))
    }

    fn merge_parents(
        &mut self,
        name: &str,
        parents: &[String],
        chain: &mut Vec<String>,
    ) -> Result<Extended, PipelineError> {
        let mut merged = Map::new();
        let mut height = 0;
        for parent in parents {
            if chain.contains(parent) {
                let mut cycle = chain.clone();
                cycle.push(parent.clone());
                return Ok(Err(JobError::ExtendsCycle { chain: cycle }));
            }
            if chain.len() > MAX_EXTENDS_DEPTH {
                let mut deep = chain.clone();
                deep.push(parent.clone());
                return Ok(Err(JobError::ExtendsTooDeep { chain: deep, limit: MAX_EXTENDS_DEPTH }));
            }
            if !self.entries.contains_key(parent) {
                let suggestion = self
                    .entries
                    .keys()
                    .filter(|k| k.as_str() != name)
                    .map(|k| (edit_distance(k, parent), k))
                    .filter(|(d, _)| *d <= 2)
                    .min()
                    .map(|(_, k)| k.clone());
                return Ok(Err(JobError::ExtendsUnknown {
                    job: name.to_owned(),
                    parent: parent.clone(),
                    suggestion,
                }));
            }
            match self.resolve(parent, chain)? {
                Ok((map, h)) => {
                    deep_merge(&mut merged, map);
                    height = height.max(h + 1);
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok((merged, height)))
    }
}

fn inherit(job: &Map<String, Value>, key: &str) -> Result<Option<Result<bool, Vec<String>>>, ()> {
    let Some(inherit) = job.get("inherit") else { return Ok(None) };
    let Value::Object(inherit) = inherit else { return Err(()) };
    match inherit.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(Ok(*b))),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok(Some(Err(items.iter().filter_map(Value::as_str).map(str::to_owned).collect())))
        }
        Some(_) => Err(()),
    }
}

impl Pipeline {
    /// Resolves the root document and the local files it includes (directly or not), as GitLab
    /// would: includes merged in order under the including file, `!reference` tags replaced,
    /// `extends` merged (mappings merge, lists and scalars replace), `default:` inherited.
    /// Hidden jobs (`.name`) serve only as templates. A job that cannot be resolved (not a
    /// mapping, `extends` unknown or cyclic, a broken `!reference`) is kept as an `invalid-job`
    /// finding while the other jobs are linted.
    ///
    /// # Errors
    /// A [`PipelineError`] for input the linter cannot use at all: a document that is not a
    /// mapping, too large or too deep; too many documents or jobs; a malformed `include`,
    /// `default`, `variables` or `workflow`; a broken `!reference` outside a job; or an
    /// expansion over [`MAX_RESOLVED_VALUES`].
    pub fn resolve(root: Document, included: Vec<Document>) -> Result<Self, PipelineError> {
        let count = included.len() + 1;
        if count > MAX_DOCUMENTS {
            return Err(PipelineError::TooManyDocuments { count, limit: MAX_DOCUMENTS });
        }
        root.check_limits()?;
        let mut documents = BTreeMap::new();
        for doc in &included {
            doc.check_limits()?;
            if doc.path() == root.path() || documents.insert(doc.path(), doc).is_some() {
                return Err(PipelineError::DuplicateDocument { path: doc.path().to_owned() });
            }
        }
        let mut loader = Loader {
            documents,
            visited: BTreeSet::from([root.path().to_owned()]),
            notes: Vec::new(),
            origins: BTreeMap::new(),
        };
        let config = loader.expand(&root, 0)?;
        let Loader { notes, origins, .. } = loader;
        let origin = |key: &str| {
            origins.get(key).cloned().unwrap_or(Origin { file: root.path().to_owned(), line: None })
        };

        let mut resolver = Resolver { config: &config, budget: Budget(0) };
        let mut entries: BTreeMap<String, Result<Value, JobError>> = BTreeMap::new();
        let mut globals: BTreeMap<&str, Value> = BTreeMap::new();
        for (key, value) in &config {
            let mut value = value.clone();
            match resolver.references(&mut value, key, 0, 1) {
                Ok(()) => {}
                Err(ResolveError::Pipeline(e)) => return Err(e),
                Err(ResolveError::Job(error)) if RESERVED.contains(&key.as_str()) => {
                    return Err(PipelineError::Reference {
                        key: key.clone(),
                        error: Box::new(error),
                    })
                }
                Err(ResolveError::Job(error)) => {
                    entries.insert(key.clone(), Err(error));
                    continue;
                }
            }
            if RESERVED.contains(&key.as_str()) {
                globals.insert(key.as_str(), value);
            } else {
                entries.insert(key.clone(), Ok(value));
            }
        }

        let keyword = |key: &str, expected: &str| PipelineError::Keyword {
            file: origin(key).file,
            key: key.to_owned(),
            expected: expected.to_owned(),
        };
        let variables = match globals.get("variables") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => return Err(keyword("variables", "a mapping of names to values")),
        };
        let workflow = match globals.get("workflow") {
            None | Some(Value::Null) => None,
            Some(w @ Value::Object(_)) => Some(w.clone()),
            Some(_) => return Err(keyword("workflow", "a mapping with `rules`")),
        };
        let mut defaults = Map::new();
        for key in LEGACY_DEFAULTS {
            if let Some(v) = globals.get(key) {
                defaults.insert(key.to_owned(), v.clone());
            }
        }
        match globals.get("default") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    if DEFAULT_KEYS.contains(&k.as_str()) {
                        defaults.insert(k.clone(), v.clone());
                    }
                }
            }
            Some(_) => return Err(keyword("default", "a mapping of job keywords")),
        }

        let visible: Vec<&String> = entries.keys().filter(|k| !k.starts_with('.')).collect();
        if visible.len() > MAX_JOBS {
            return Err(PipelineError::TooManyJobs { count: visible.len(), limit: MAX_JOBS });
        }
        let names: Vec<String> = visible.into_iter().cloned().collect();
        let mut extender =
            Extender { entries: &entries, done: BTreeMap::new(), budget: resolver.budget };
        let mut jobs = Vec::new();
        let mut broken = Vec::new();
        for name in names {
            let Origin { file, line } = origin(&name);
            let mut chain = Vec::new();
            let resolved = match extender.resolve(&name, &mut chain)? {
                Ok((map, _)) => apply_defaults(&name, map, &defaults),
                Err(error) => Err(error),
            };
            match resolved {
                Ok((config, inherit_variables)) => jobs.push(ResolvedJob {
                    name,
                    file,
                    line,
                    config,
                    uses_inherited_variables: inherit_variables,
                }),
                Err(error) => broken.push(BrokenJob { name, file, line, error }),
            }
        }
        Ok(Self { root: root.path().to_owned(), jobs, broken, variables, workflow, origins, notes })
    }

    /// The root document's path.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The jobs that resolved, by name.
    pub fn jobs(&self) -> &[ResolvedJob] {
        &self.jobs
    }

    /// A job by name.
    pub fn job(&self, name: &str) -> Option<&ResolvedJob> {
        self.jobs.iter().find(|j| j.name == name)
    }

    /// Jobs that could not be resolved, with why.
    pub fn invalid_jobs(&self) -> impl Iterator<Item = (&str, &JobError)> {
        self.broken.iter().map(|b| (b.name.as_str(), &b.error))
    }

    pub(crate) fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin { file: self.root.clone(), line: None })
    }
}

fn apply_defaults(
    name: &str,
    mut job: Map<String, Value>,
    defaults: &Map<String, Value>,
) -> Result<(Map<String, Value>, InheritVariables), JobError> {
    let bad_inherit = || JobError::Keyword {
        job: name.to_owned(),
        key: "inherit".to_owned(),
        expected: "a mapping whose `default` and `variables` are true, false or a list of names"
            .to_owned(),
    };
    let inherit_default = inherit(&job, "default").map_err(|()| bad_inherit())?;
    let inherit_variables = inherit(&job, "variables").map_err(|()| bad_inherit())?;
    for (key, value) in defaults {
        let allowed = match &inherit_default {
            None | Some(Ok(true)) => true,
            Some(Ok(false)) => false,
            Some(Err(list)) => list.iter().any(|k| k == key),
        };
        if allowed && !job.contains_key(key) {
            job.insert(key.clone(), value.clone());
        }
    }
    let variables = match inherit_variables {
        None | Some(Ok(true)) => InheritVariables::All,
        Some(Ok(false)) => InheritVariables::None,
        Some(Err(list)) => InheritVariables::Only(list),
    };
    Ok((job, variables))
}

#[cfg(test)]
mod tests;
