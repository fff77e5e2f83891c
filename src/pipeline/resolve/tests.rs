#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};

use super::*;
use crate::pipeline::{local_includes, MAX_DOCUMENT_DEPTH};

fn resolve(root: Value) -> Pipeline {
    Pipeline::resolve(Document::new(".gitlab-ci.yml", root), Vec::new()).unwrap()
}

fn config(p: &Pipeline, job: &str) -> Value {
    Value::Object(p.job(job).unwrap_or_else(|| panic!("no job {job}")).config().clone())
}

fn error(p: &Pipeline, job: &str) -> JobError {
    p.invalid_jobs().find(|(n, _)| *n == job).map(|(_, e)| e.clone()).unwrap()
}

#[test]
fn extends_merges_mappings_and_replaces_lists() {
    let p = resolve(json!({
        ".base": {"variables": {"A": "1", "B": "1"}, "script": ["one"], "tags": ["x"]},
        ".more": {"variables": {"B": "2"}, "script": ["two"]},
        "job": {"extends": [".base", ".more"], "variables": {"C": "3"}, "tags": ["y"]},
    }));
    assert_eq!(
        config(&p, "job"),
        json!({"variables": {"A": "1", "B": "2", "C": "3"}, "script": ["two"], "tags": ["y"]})
    );
    assert!(p.job(".base").is_none(), "hidden jobs are templates, not jobs");
}

#[test]
fn extends_chains_up_to_eleven_levels() {
    let mut root = serde_json::Map::new();
    for i in 0..12 {
        let parent = if i < 11 {
            json!({"extends": format!(".t{}", i + 1)})
        } else {
            json!({"script": ["x"]})
        };
        root.insert(format!(".t{i}"), parent);
    }
    root.insert("ok".into(), json!({"extends": ".t1"}));
    root.insert("deep".into(), json!({"extends": ".t0"}));
    let p = resolve(Value::Object(root));
    assert_eq!(config(&p, "ok"), json!({"script": ["x"]}));
    match error(&p, "deep") {
        JobError::ExtendsTooDeep { chain, limit } => {
            assert_eq!(limit, MAX_EXTENDS_DEPTH);
            assert_eq!(chain.first().map(String::as_str), Some("deep"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_extends_cycle_is_refused_with_the_chain() {
    let p = resolve(json!({
        ".a": {"extends": ".b"}, ".b": {"extends": ".a"},
        "job": {"extends": ".a", "script": ["x"]},
        "fine": {"script": ["y"]},
    }));
    let err = error(&p, "job");
    assert_eq!(
        err,
        JobError::ExtendsCycle { chain: vec!["job".into(), ".a".into(), ".b".into(), ".a".into()] }
    );
    assert!(err.to_string().contains("job -> .a -> .b -> .a"), "{err}");
    assert!(p.job("fine").is_some(), "other jobs are still linted");
}

#[test]
fn an_unknown_parent_suggests_a_close_name() {
    let p = resolve(json!({".deploy": {"script": ["x"]}, "job": {"extends": "deploy"}}));
    let err = error(&p, "job");
    assert_eq!(err.kind(), "extends-unknown");
    assert!(err.to_string().contains("did you mean `.deploy`?"), "{err}");
}

#[test]
fn references_resolve_before_extends_and_nest() {
    let p = resolve(json!({
        ".setup": {"script": ["az version"], "variables": {"X": "1"}},
        ".login": {"script": [{"!reference": [".setup", "script"]}, "az login"]},
        "job": {
            "script": [{"!reference": [".login", "script"]}, "az group list"],
            "variables": {"X": {"!reference": [".setup", "variables", "X"]}},
        },
    }));
    assert_eq!(
        config(&p, "job"),
        json!({"script": [[["az version"], "az login"], "az group list"],
               "variables": {"X": "1"}})
    );
}

#[test]
fn broken_references_name_what_is_missing() {
    let p = resolve(json!({
        "job": {"script": [{"!reference": [".nope", "script"]}]},
        "self": {"script": [{"!reference": ["self", "script"]}]},
        "shape": {"script": {"!reference": ".x"}},
    }));
    match error(&p, "job") {
        JobError::ReferenceUnknown { missing, reference, .. } => {
            assert_eq!(missing, ".nope");
            assert_eq!(reference, "[.nope, script]");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(error(&p, "self").kind(), "reference-invalid");
    assert_eq!(error(&p, "shape").kind(), "reference-invalid");
}

#[test]
fn a_reference_in_a_global_keyword_refuses_the_pipeline() {
    let err = Pipeline::resolve(
        Document::new("ci.yml", json!({"variables": {"A": {"!reference": [".x", "y"]}}})),
        Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), "reference");
}

#[test]
fn default_keys_are_inherited_unless_set_or_refused() {
    let p = resolve(json!({
        "before_script": ["legacy"],
        "default": {"image": "az", "id_tokens": {"T": {"aud": "x"}}, "variables": {"NO": "1"}},
        "plain": {"script": ["a"]},
        "own": {"script": ["a"], "image": "mine"},
        "none": {"script": ["a"], "inherit": {"default": false}},
        "some": {"script": ["a"], "inherit": {"default": ["image"]}},
    }));
    assert_eq!(
        config(&p, "plain"),
        json!({"script": ["a"], "image": "az", "id_tokens": {"T": {"aud": "x"}}, "before_script": ["legacy"]})
    );
    assert_eq!(config(&p, "own")["image"], json!("mine"));
    assert_eq!(config(&p, "none").get("id_tokens"), None);
    assert_eq!(config(&p, "some").get("id_tokens"), None);
    assert_eq!(config(&p, "some")["image"], json!("az"));
}

#[test]
fn includes_merge_in_order_under_the_including_file() {
    let root = Document::new(
        "/.gitlab-ci.yml",
        json!({"include": ["ci/a.yml", {"local": "/ci/b.yml"}], "job": {"variables": {"R": "root"}}}),
    );
    let a = Document::new(
        "ci/a.yml",
        json!({"job": {"script": ["a"], "variables": {"R": "a", "A": "a"}}, "include": "ci/c.yml"}),
    );
    let b = Document::new("./ci/b.yml", json!({"job": {"script": ["b"]}}));
    let c = Document::new("ci/c.yml", json!({"from_c": {"script": ["c"]}}));
    let unused = Document::new("ci/unused.yml", json!({"never": {"script": ["x"]}}));
    let p = Pipeline::resolve(root, vec![a, b, c, unused]).unwrap();
    assert_eq!(config(&p, "job"), json!({"script": ["b"], "variables": {"R": "root", "A": "a"}}));
    assert_eq!(p.job("job").unwrap().file(), ".gitlab-ci.yml");
    assert_eq!(p.job("from_c").unwrap().file(), "ci/c.yml");
    assert!(p.job("never").is_none());
}

#[test]
fn include_globs_match_paths_from_the_repository_root() {
    let root = Document::new(".gitlab-ci.yml", json!({"include": [{"local": "ci/**/*.yml"}]}));
    let docs = vec![
        Document::new("ci/deploy.yml", json!({"one": {"script": ["1"]}})),
        Document::new("ci/envs/prod.yml", json!({"two": {"script": ["2"]}})),
        Document::new("other/x.yml", json!({"three": {"script": ["3"]}})),
    ];
    let p = Pipeline::resolve(root, docs).unwrap();
    let names: Vec<&str> = p.jobs().iter().map(ResolvedJob::name).collect();
    assert_eq!(names, ["one", "two"]);
}

#[test]
fn document_errors_are_typed() {
    let err = Pipeline::resolve(Document::new("x.yml", json!(["a"])), Vec::new()).unwrap_err();
    assert_eq!(err, PipelineError::NotAMapping { file: "x.yml".into(), found: "a list" });
    let err = Pipeline::resolve(
        Document::new("x.yml", json!({})),
        vec![Document::new("/x.yml", json!({}))],
    )
    .unwrap_err();
    assert_eq!(err.kind(), "duplicate-document");
    let err =
        Pipeline::resolve(Document::new("x.yml", json!({"include": 3})), Vec::new()).unwrap_err();
    assert_eq!(err.kind(), "keyword");
    let err =
        Pipeline::resolve(Document::new("x.yml", json!({"default": []})), Vec::new()).unwrap_err();
    assert!(err.to_string().contains("`default` must be a mapping"), "{err}");
    let mut deep = json!("leaf");
    for _ in 0..MAX_DOCUMENT_DEPTH {
        deep = json!({"k": deep});
    }
    let err = Pipeline::resolve(Document::new("x.yml", deep), Vec::new()).unwrap_err();
    assert_eq!(err.kind(), "too-deep");
    let many: serde_json::Map<String, Value> =
        (0..=MAX_JOBS).map(|i| (format!("job{i}"), json!({"script": ["x"]}))).collect();
    let err =
        Pipeline::resolve(Document::new("x.yml", Value::Object(many)), Vec::new()).unwrap_err();
    assert_eq!(err, PipelineError::TooManyJobs { count: MAX_JOBS + 1, limit: MAX_JOBS });
    let docs: Vec<Document> =
        (0..MAX_DOCUMENTS).map(|i| Document::new(&format!("d{i}.yml"), json!({}))).collect();
    let err = Pipeline::resolve(Document::new("x.yml", json!({})), docs).unwrap_err();
    assert_eq!(err.kind(), "too-many-documents");
    let err = Document::from_json("x.json", b"{nope").unwrap_err();
    assert_eq!(err.kind(), "json");
}

#[test]
fn self_multiplying_references_hit_the_expansion_limit() {
    let mut root = serde_json::Map::new();
    root.insert(".l0".into(), json!({"v": vec!["x"; 200]}));
    for i in 1..10 {
        let refs: Vec<Value> =
            (0..20).map(|_| json!({"!reference": [format!(".l{}", i - 1), "v"]})).collect();
        root.insert(format!(".l{i}"), json!({ "v": refs }));
    }
    root.insert("job".into(), json!({"script": {"!reference": [".l9", "v"]}}));
    let err =
        Pipeline::resolve(Document::new("x.yml", Value::Object(root)), Vec::new()).unwrap_err();
    assert_eq!(err.kind(), "expansion-too-large");
}

#[test]
fn a_job_that_is_not_a_mapping_is_reported_alone() {
    let p = resolve(json!({"job": ["script"], "ok": {"script": ["x"]}, ".hidden": "anything"}));
    assert_eq!(error(&p, "job"), JobError::NotAMapping { job: "job".into(), found: "a list" });
    assert!(p.job("ok").is_some());
}

#[test]
fn local_includes_lists_the_paths_the_host_must_read() {
    let doc = json!({"include": [
        "ci/a.yml",
        {"local": "/ci/b.yml"},
        {"local": "ci/*.yml", "rules": [{"if": "$X"}]},
        "https://example.com/ci.yml",
        {"project": "acme/templates", "file": ["/a.yml"]},
        {"template": "Auto-DevOps.gitlab-ci.yml"},
        {"component": "gitlab.com/acme/c/x@1.0"},
        {"local": "../outside.yml"},
        {"local": "ci/$ENV.yml"},
    ]});
    assert_eq!(local_includes(&doc), ["ci/a.yml", "ci/b.yml", "ci/*.yml"]);
    assert_eq!(local_includes(&json!({"include": "ci/one.yml"})), ["ci/one.yml"]);
    assert_eq!(local_includes(&json!({"include": {"local": "x.yml"}})), ["x.yml"]);
    assert!(local_includes(&json!({"include": 5})).is_empty());
}
