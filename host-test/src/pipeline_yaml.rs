//! `.gitlab-ci.yml` to the JSON documents the core's `pipeline` linter reads.
//!
//! The core parses no YAML. This converts one CI file: anchors and aliases resolved, `<<` merge
//! keys applied, and GitLab's `!reference [job, key, ...]` tag kept as the JSON object
//! `{"!reference": ["job", "key", ...]}` (the core resolves it, as GitLab does, after merging
//! the includes). Other tags are dropped and their values kept. Mapping keys that are numbers or
//! booleans become strings; a file with a `spec:` header (`---` then the pipeline) yields the
//! pipeline document.
//!
//! Collecting includes is `lint.rs`'s loop: it asks the component (`local-includes`) which
//! local files each parsed file includes and reads them.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};
use serde_yaml::Value as Yaml;

/// Largest CI file accepted: GitLab's default `max_yaml_size_bytes` (2 MiB).
pub(crate) const MAX_YAML_BYTES: usize = 2 * 1024 * 1024;

/// Parses one CI file into the JSON value the core's `pipeline::Document` takes.
///
/// # Errors
/// A message naming the problem: a file over [`MAX_YAML_BYTES`], YAML that does not parse (with
/// line and column), more than one document (other than a `spec:` header), a mapping key that
/// is itself a list or mapping, a number JSON cannot hold, or a malformed `!reference`.
pub(crate) fn yaml_to_json(text: &str) -> Result<Value, String> {
    if text.len() > MAX_YAML_BYTES {
        return Err(format!(
            "the file is {} bytes, more than GitLab's limit of {MAX_YAML_BYTES}",
            text.len()
        ));
    }
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value: Yaml = serde::Deserialize::deserialize(document)
            .map_err(|e| format!("not valid YAML: {e}"))?;
        documents.push(value);
    }
    let mut value = match documents.len() {
        0 => Yaml::Null,
        1 => documents.remove(0),
        2 if documents.first().and_then(|d| d.get("spec")).is_some() => documents.remove(1),
        n => {
            return Err(format!(
                "{n} YAML documents; a CI file has one (after an optional `spec:` header)"
            ))
        }
    };
    value.apply_merge().map_err(|e| format!("a `<<` merge key cannot be applied: {e}"))?;
    convert(value, 0)
}

/// Deepest nesting converted (serde_yaml itself stops at 128).
const MAX_DEPTH: usize = 128;

fn convert(value: Yaml, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    Ok(match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => number(&n)?,
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(
            items.into_iter().map(|i| convert(i, depth + 1)).collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let key = match key {
                    Yaml::String(s) => s,
                    Yaml::Bool(b) => b.to_string(),
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Null => "null".to_owned(),
                    other => return Err(format!("a mapping key must be a scalar, not {other:?}")),
                };
                out.insert(key, convert(value, depth + 1)?);
            }
            Value::Object(out)
        }
        Yaml::Tagged(tagged) => {
            let inner = convert(tagged.value, depth + 1)?;
            if tagged.tag == "!reference" {
                let valid = inner
                    .as_array()
                    .is_some_and(|items| !items.is_empty() && items.iter().all(Value::is_string));
                if !valid {
                    return Err(format!(
                        "`!reference {inner}` must be a list of names, e.g. `!reference [.setup, \
                         script]`"
                    ));
                }
                Value::Object(Map::from_iter([("!reference".to_owned(), inner)]))
            } else {
                inner
            }
        }
    })
}

fn number(n: &serde_yaml::Number) -> Result<Value, String> {
    if let Some(i) = n.as_i64() {
        return Ok(Value::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Ok(Value::from(u));
    }
    n.as_f64()
        .and_then(Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| format!("the number {n} has no JSON form"))
}

/// The 1-based line of each top-level key, so findings can point at lines (the core's
/// `Document::with_key_lines`). Keys are read from lines that start in column 1.
pub(crate) fn top_level_key_lines(text: &str) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let Some(first) = line.chars().next() else { continue };
        if first.is_whitespace() || matches!(first, '#' | '-' | '&' | '*' | '!' | '%' | '{' | '[') {
            continue;
        }
        let Some((key, rest)) = line.split_once(':') else { continue };
        if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
            continue;
        }
        let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
        if key.is_empty() {
            continue;
        }
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        out.entry(key.to_owned()).or_insert(number);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn anchors_aliases_and_merge_keys_are_resolved() {
        let yaml = "
.base: &base
  image: alpine
  variables: {A: '1'}
deploy:
  <<: *base
  script: [echo hi]
";
        let value = yaml_to_json(yaml).unwrap();
        assert_eq!(
            value["deploy"],
            json!({"image": "alpine", "variables": {"A": "1"}, "script": ["echo hi"]})
        );
    }

    #[test]
    fn reference_tags_become_objects() {
        let yaml = "
.setup:
  script: [az version]
deploy:
  script:
    - !reference [.setup, script]
    - az group list
";
        let value = yaml_to_json(yaml).unwrap();
        assert_eq!(
            value["deploy"]["script"],
            json!([{"!reference": [".setup", "script"]}, "az group list"])
        );
    }

    #[test]
    fn a_reference_that_is_not_a_list_of_names_is_refused() {
        let err = yaml_to_json("job:\n  script: !reference .setup\n").unwrap_err();
        assert!(err.contains("must be a list of names"), "{err}");
    }

    #[test]
    fn other_tags_keep_their_value() {
        let value = yaml_to_json("a: !custom 3\nb: !!str 4\n").unwrap();
        assert_eq!(value, json!({"a": 3, "b": "4"}));
    }

    #[test]
    fn scalar_keys_become_strings() {
        let value = yaml_to_json("1: a\ntrue: b\n").unwrap();
        assert_eq!(value, json!({"1": "a", "true": "b"}));
    }

    #[test]
    fn a_spec_header_yields_the_pipeline_document() {
        let yaml = "spec:\n  inputs:\n    stage: {}\n---\njob:\n  script: [x]\n";
        assert_eq!(yaml_to_json(yaml).unwrap(), json!({"job": {"script": ["x"]}}));
    }

    #[test]
    fn two_pipeline_documents_are_refused() {
        let err = yaml_to_json("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(err.contains("2 YAML documents"), "{err}");
    }

    #[test]
    fn invalid_yaml_names_the_place() {
        let err = yaml_to_json("job:\n  script: [unclosed\n").unwrap_err();
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn alias_bombs_are_refused_not_expanded() {
        let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            yaml.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(yaml_to_json(&yaml).is_err());
    }

    #[test]
    fn oversized_files_are_refused() {
        let text = "#".repeat(MAX_YAML_BYTES + 1);
        assert!(yaml_to_json(&text).unwrap_err().contains("more than GitLab's limit"));
    }

    #[test]
    fn top_level_keys_have_lines() {
        let lines = top_level_key_lines("# c\nvariables:\n  A: 1\n\n.tpl: &t\n  x: 1\ndeploy:\n");
        assert_eq!(lines.get("variables"), Some(&2));
        assert_eq!(lines.get(".tpl"), Some(&5));
        assert_eq!(lines.get("deploy"), Some(&7));
        assert_eq!(lines.get("A"), None);
    }

    /// The core's fixtures are this conversion of the YAML beside them: regenerate the JSON
    /// with `cargo test --release -p gitlab-azure-oidc-host --bin gitlab-azure-oidc
    /// pipeline_yaml -- --ignored` after editing a YAML file.
    fn fixtures() -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../src/pipeline/testdata");
        let mut out = Vec::new();
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "yml") {
                    out.push((path.clone(), path.with_extension("json")));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn core_fixtures_match_this_conversion() {
        let fixtures = fixtures();
        assert!(!fixtures.is_empty());
        for (yaml, json_path) in fixtures {
            let converted = yaml_to_json(&std::fs::read_to_string(&yaml).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", yaml.display()));
            let stored: Value =
                serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
            assert_eq!(converted, stored, "{} is stale; regenerate it", json_path.display());
        }
    }

    #[test]
    #[ignore = "writes the core's JSON fixtures from their YAML originals"]
    fn regenerate_core_fixtures() {
        for (yaml, json_path) in fixtures() {
            let converted = yaml_to_json(&std::fs::read_to_string(&yaml).unwrap()).unwrap();
            let text = serde_json::to_string_pretty(&converted).unwrap();
            std::fs::write(json_path, text + "\n").unwrap();
        }
    }
}
