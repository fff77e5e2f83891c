//! CI documents as the host hands them over, and `include:local` resolution.
//!
//! The host parses each YAML file (anchors, aliases and `<<` merge keys resolved) into JSON,
//! keeps `!reference [a, b]` as `{"!reference": ["a", "b"]}`, and names each document by its path
//! from the repository root. Which local files to read is said by [`local_includes`]; the host
//! calls it on every document it reads until no new path appears.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::error::PipelineError;
use crate::text::json::yaml_type_name;

/// Largest accepted document: GitLab's default `max_yaml_size_bytes` is 2 MiB.
pub const MAX_DOCUMENT_BYTES: usize = 2 * 1024 * 1024;
/// Deepest accepted nesting: GitLab's default `max_yaml_depth` is 100.
pub const MAX_DOCUMENT_DEPTH: usize = 100;
/// Most documents: GitLab's default of 150 includes, plus the root file.
pub const MAX_DOCUMENTS: usize = 151;
/// Deepest accepted chain of nested includes (GitLab: 100).
pub const MAX_INCLUDE_DEPTH: usize = 100;

/// One CI file: its path from the repository root and its content as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    path: String,
    value: Value,
    key_lines: BTreeMap<String, u32>,
}

impl Document {
    /// A document the host parsed. `path` is the file's path from the repository root (a
    /// leading `/` or `./` is dropped, as GitLab does for `include:local`).
    pub fn new(path: &str, value: Value) -> Self {
        Self {
            path: normalize(path).unwrap_or_else(|| path.to_owned()),
            value,
            key_lines: BTreeMap::new(),
        }
    }

    /// A document from JSON text.
    ///
    /// # Errors
    /// [`PipelineError::TooLarge`] over [`MAX_DOCUMENT_BYTES`], [`PipelineError::Json`] for text
    /// that does not parse (serde_json also refuses nesting deeper than 128).
    pub fn from_json(path: &str, json: &[u8]) -> Result<Self, PipelineError> {
        if json.len() > MAX_DOCUMENT_BYTES {
            return Err(PipelineError::TooLarge {
                file: path.to_owned(),
                size: json.len(),
                limit: MAX_DOCUMENT_BYTES,
            });
        }
        let value = serde_json::from_slice(json)
            .map_err(|e| PipelineError::Json { file: path.to_owned(), detail: e.to_string() })?;
        Ok(Self::new(path, value))
    }

    /// Adds the 1-based line of each top-level key (job names, `variables`, ...) in the YAML
    /// source, so findings can point at lines; without it they point at line 1.
    #[must_use]
    pub fn with_key_lines(mut self, key_lines: BTreeMap<String, u32>) -> Self {
        self.key_lines = key_lines;
        self
    }

    /// The normalised path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The content.
    pub fn value(&self) -> &Value {
        &self.value
    }

    pub(crate) fn line(&self, key: &str) -> Option<u32> {
        self.key_lines.get(key).copied()
    }

    /// Checks size and depth without recursion (the value may come from anywhere).
    pub(crate) fn check_limits(&self) -> Result<(), PipelineError> {
        let mut stack: Vec<(&Value, usize)> = vec![(&self.value, 1)];
        let mut size = 0usize;
        while let Some((value, depth)) = stack.pop() {
            if depth > MAX_DOCUMENT_DEPTH {
                return Err(PipelineError::TooDeep {
                    file: self.path.clone(),
                    limit: MAX_DOCUMENT_DEPTH,
                });
            }
            size = size.saturating_add(match value {
                Value::String(s) => s.len() + 2,
                Value::Object(map) => {
                    stack.extend(map.values().map(|v| (v, depth + 1)));
                    map.keys().map(|k| k.len() + 4).sum::<usize>() + 2
                }
                Value::Array(items) => {
                    stack.extend(items.iter().map(|v| (v, depth + 1)));
                    items.len() + 2
                }
                _ => 5,
            });
            if size > MAX_DOCUMENT_BYTES {
                return Err(PipelineError::TooLarge {
                    file: self.path.clone(),
                    size,
                    limit: MAX_DOCUMENT_BYTES,
                });
            }
        }
        Ok(())
    }
}

/// A path from the repository root as GitLab reads `include:local`: a leading `/` and `./`
/// segments dropped; `None` when it leaves the repository (`..`) or is empty.
pub(crate) fn normalize(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in path.trim().split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// One `include:` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Include {
    /// `include: path` or `include: {local: path}`; a glob when it has `*`.
    Local { path: String, conditional: bool, inputs: bool },
    /// A local path that cannot be followed (`..`, `$VARIABLE`).
    Unresolvable { path: String, reason: &'static str },
    /// Remote, project, template or component: not followed.
    Elsewhere { kind: &'static str, what: String },
}

fn local(path: &str, conditional: bool, inputs: bool) -> Include {
    if path.contains('$') {
        return Include::Unresolvable {
            path: path.to_owned(),
            reason: "it uses a variable, which only GitLab expands",
        };
    }
    match normalize(path) {
        Some(path) => Include::Local { path, conditional, inputs },
        None => Include::Unresolvable {
            path: path.to_owned(),
            reason: "it leaves the repository or is empty",
        },
    }
}

fn entry(value: &Value, file: &str, key: &str) -> Result<Include, PipelineError> {
    let bad = |expected: &str| PipelineError::Keyword {
        file: file.to_owned(),
        key: key.to_owned(),
        expected: expected.to_owned(),
    };
    match value {
        Value::String(s) if s.contains("://") => {
            Ok(Include::Elsewhere { kind: "remote", what: s.clone() })
        }
        Value::String(s) => Ok(local(s, false, false)),
        Value::Object(map) => {
            let conditional = map.contains_key("rules");
            let inputs = map.contains_key("inputs");
            let text = |k: &str| map.get(k).and_then(Value::as_str);
            if let Some(path) = text("local") {
                return Ok(local(path, conditional, inputs));
            }
            if let Some(url) = text("remote") {
                return Ok(Include::Elsewhere { kind: "remote", what: url.to_owned() });
            }
            if let Some(template) = text("template") {
                return Ok(Include::Elsewhere { kind: "template", what: template.to_owned() });
            }
            if let Some(component) = text("component") {
                return Ok(Include::Elsewhere { kind: "component", what: component.to_owned() });
            }
            if let Some(project) = text("project") {
                let files = match map.get("file") {
                    Some(Value::String(f)) => f.clone(),
                    Some(Value::Array(items)) => {
                        items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
                    }
                    _ => return Err(bad("`project` with `file`")),
                };
                let at = text("ref").map(|r| format!("@{r}")).unwrap_or_default();
                return Ok(Include::Elsewhere {
                    kind: "project",
                    what: format!("{project}{at}: {files}"),
                });
            }
            Err(bad("one of `local`, `remote`, `project`, `template` or `component`"))
        }
        other => Err(bad(&format!("a path or a mapping, not {}", yaml_type_name(other)))),
    }
}

/// The entries of a document's `include:`.
pub(crate) fn includes(
    doc: &Map<String, Value>,
    file: &str,
) -> Result<Vec<Include>, PipelineError> {
    match doc.get("include") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| entry(item, file, &format!("include[{i}]")))
            .collect(),
        Some(other) => Ok(vec![entry(other, file, "include")?]),
    }
}

/// The local files a document includes, as paths from the repository root (a path with `*` is a
/// glob: `*` within one directory, `**` across directories). The host reads each (only `.yml`
/// and `.yaml` files, never outside the repository), then asks again for the files it read,
/// until no new path appears. Malformed `include:` entries are skipped here; linting reports
/// them.
pub fn local_includes(document: &Value) -> Vec<String> {
    let Some(map) = document.as_object() else { return Vec::new() };
    let Ok(entries) = includes(map, "") else { return Vec::new() };
    entries
        .into_iter()
        .filter_map(|e| match e {
            Include::Local { path, .. } => Some(path),
            _ => None,
        })
        .collect()
}

/// Whether `path` (from the repository root) matches the `include:local` glob `pattern`, as
/// [`local_includes`] returns it (GitLab uses `fnmatch` with `FNM_PATHNAME`: `*` and `?` stay
/// within one directory, `**/` spans any number of them). The host expands globs with it.
pub fn glob_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    segments_match(&pattern, &path)
}

fn segments_match(pattern: &[&str], path: &[&str]) -> bool {
    // Iterative over `**` positions: reach[i][j] would be quadratic; inputs are short paths.
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => {
            (0..=path.len()).any(|skip| segments_match(rest, path.get(skip..).unwrap_or_default()))
        }
        Some((first, rest)) => match path.split_first() {
            Some((name, tail)) => segment_matches(first, name) && segments_match(rest, tail),
            None => false,
        },
    }
}

fn segment_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let mut reach = vec![false; n.len() + 1];
    if let Some(first) = reach.first_mut() {
        *first = true;
    }
    for c in &p {
        let mut next = vec![false; n.len() + 1];
        for j in 0..=n.len() {
            let before = j.checked_sub(1);
            let from_before = before.and_then(|k| reach.get(k)).copied().unwrap_or(false);
            let hit = match c {
                '*' => {
                    reach.get(j).copied().unwrap_or(false)
                        || before.and_then(|k| next.get(k)).copied().unwrap_or(false)
                }
                '?' => from_before,
                c => from_before && before.and_then(|k| n.get(k)) == Some(c),
            };
            if let Some(slot) = next.get_mut(j) {
                *slot = hit;
            }
        }
        reach = next;
    }
    reach.last().copied().unwrap_or(false)
}

/// GitLab's deep merge: mappings merge key by key, everything else (lists, scalars, `null`) is
/// replaced by the right side.
pub(crate) fn deep_merge(left: &mut Map<String, Value>, right: Map<String, Value>) {
    for (key, value) in right {
        match (left.get_mut(&key), value) {
            (Some(Value::Object(l)), Value::Object(r)) => deep_merge(l, r),
            (_, value) => {
                left.insert(key, value);
            }
        }
    }
}

/// Where a top-level key was last defined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) file: String,
    pub(crate) line: Option<u32>,
}

/// Something about `include:` the report must say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IncludeNote {
    /// A local include the host did not provide.
    Missing { file: String, key: String, path: String },
    /// Not followed: remote, project, template, component, or a path with a variable.
    NotFollowed { file: String, key: String, kind: &'static str, what: String, reason: String },
    /// Followed, but its `rules:` or `inputs:` were not evaluated.
    Unconditional { file: String, key: String, path: String, what: &'static str },
}

/// Merges the root document with everything it includes (depth first, in order; a file
/// included twice is merged once), then the including file on top, as GitLab does.
pub(crate) struct Loader<'a> {
    pub(crate) documents: BTreeMap<&'a str, &'a Document>,
    pub(crate) visited: BTreeSet<String>,
    pub(crate) notes: Vec<IncludeNote>,
    pub(crate) origins: BTreeMap<String, Origin>,
}

impl<'a> Loader<'a> {
    pub(crate) fn expand(
        &mut self,
        doc: &'a Document,
        depth: usize,
    ) -> Result<Map<String, Value>, PipelineError> {
        let Value::Object(own) = &doc.value else {
            return Err(PipelineError::NotAMapping {
                file: doc.path.clone(),
                found: yaml_type_name(&doc.value),
            });
        };
        let mut merged = Map::new();
        for (index, include) in includes(own, &doc.path)?.into_iter().enumerate() {
            let key = format!("include[{index}]");
            match include {
                Include::Local { path, conditional, inputs } => {
                    let matched: Vec<&'a Document> = if path.contains('*') {
                        self.documents
                            .iter()
                            .filter(|(p, _)| glob_matches(&path, p))
                            .map(|(_, d)| *d)
                            .collect()
                    } else {
                        self.documents.get(path.as_str()).copied().into_iter().collect()
                    };
                    if matched.is_empty() {
                        self.notes.push(IncludeNote::Missing {
                            file: doc.path.clone(),
                            key,
                            path: path.clone(),
                        });
                        continue;
                    }
                    for (flag, what) in [(conditional, "rules"), (inputs, "inputs")] {
                        if flag {
                            self.notes.push(IncludeNote::Unconditional {
                                file: doc.path.clone(),
                                key: key.clone(),
                                path: path.clone(),
                                what,
                            });
                        }
                    }
                    for included in matched {
                        if depth + 1 > MAX_INCLUDE_DEPTH {
                            return Err(PipelineError::Keyword {
                                file: doc.path.clone(),
                                key,
                                expected: format!(
                                    "nested at most {MAX_INCLUDE_DEPTH} includes deep"
                                ),
                            });
                        }
                        if self.visited.insert(included.path.clone()) {
                            let content = self.expand(included, depth + 1)?;
                            deep_merge(&mut merged, content);
                        }
                    }
                }
                Include::Unresolvable { path, reason } => {
                    self.notes.push(IncludeNote::NotFollowed {
                        file: doc.path.clone(),
                        key,
                        kind: "local",
                        what: path,
                        reason: reason.to_owned(),
                    })
                }
                Include::Elsewhere { kind, what } => self.notes.push(IncludeNote::NotFollowed {
                    file: doc.path.clone(),
                    key,
                    kind,
                    what,
                    reason: "the linter reads only files from this repository".to_owned(),
                }),
            }
        }
        let mut own = own.clone();
        own.remove("include");
        for key in own.keys() {
            self.origins
                .insert(key.clone(), Origin { file: doc.path.clone(), line: doc.line(key) });
        }
        deep_merge(&mut merged, own);
        Ok(merged)
    }
}
