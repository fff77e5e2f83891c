//! The `.gitlab-ci.yml` linter on JSON documents (the host turns YAML into them,
//! host-test/src/pipeline_yaml.rs): the input is the root document, linted with and without the
//! planted policy and federated credentials of src/pipeline/testdata.
//!
//! Invariants: no panic; the report renders as text, JSON and Code Quality; a client secret
//! written into `variables` (the names `AZURE_CLIENT_SECRET` and `ARM_CLIENT_SECRET`, a value of
//! at least 16 characters occurring once in the input) is never quoted in any of them (quoted:
//! the reports show a different secret of the same shape instead when given one, so linter text
//! copied into a value cannot fire).
#![no_main]

use std::sync::OnceLock;

use gitlab_azure_oidc::entra::federated::FederatedCredential;
use gitlab_azure_oidc::pipeline::{lint, Document, LintContext, Pipeline};
use gitlab_azure_oidc::policy::Policy;
use gitlab_azure_oidc_fuzz::{occurrences, rotate, MIN_SECRET_CHARS};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn fixtures() -> &'static (Policy, Vec<FederatedCredential>) {
    static FIXTURES: OnceLock<(Policy, Vec<FederatedCredential>)> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let policy =
            Policy::parse(include_bytes!("../../src/pipeline/testdata/planted.policy.json"))
                .unwrap();
        let creds = FederatedCredential::parse_list(include_bytes!(
            "../../src/pipeline/testdata/planted.credentials.json"
        ))
        .unwrap();
        (policy, creds)
    })
}

/// Literal secrets in `variables` maps anywhere in the document.
fn secrets(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(vars)) = map.get("variables") {
                for name in ["AZURE_CLIENT_SECRET", "ARM_CLIENT_SECRET"] {
                    if let Some(Value::String(s)) = vars.get(name) {
                        if s.len() >= MIN_SECRET_CHARS
                            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"~_.-".contains(&b))
                        {
                            out.push(s.clone());
                        }
                    }
                }
            }
            map.values().for_each(|v| secrets(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| secrets(v, out)),
        _ => {}
    }
}

/// The report for `data` in both forms (without, then with the policy and credentials).
fn reports(data: &[u8]) -> Option<Vec<String>> {
    let document = Document::from_json(".gitlab-ci.yml", data).ok()?;
    let pipeline = Pipeline::resolve(document, Vec::new()).ok()?;
    let (policy, creds) = fixtures();
    let context = LintContext::new("acme/app");
    let mut out = Vec::new();
    for (policy, creds) in [(None, None), (Some(policy), Some(creds.as_slice()))] {
        let report = lint(&pipeline, &context, policy, creds).expect("the context is valid");
        out.extend([
            report.to_text(),
            report.to_json().to_string(),
            report.to_code_quality().to_string(),
        ]);
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Ok(document) = Document::from_json(".gitlab-ci.yml", data) else { return };
    let mut found = Vec::new();
    secrets(document.value(), &mut found);
    found.retain(|s| occurrences(data, s.as_bytes()) == 1);
    let Some(outputs) = reports(data) else { return };
    for secret in &found {
        if !outputs.iter().any(|o| o.contains(secret.as_str())) {
            continue;
        }
        // Shown: is it quoted (the report follows a different secret of the same shape) or is it
        // text the linter writes itself, which the fuzzer copied into the value?
        let other = String::from_utf8(rotate(secret.as_bytes())).expect("ASCII");
        let at =
            data.windows(secret.len()).position(|w| w == secret.as_bytes()).expect("in the input");
        let mut swapped = data.to_vec();
        swapped[at..at + secret.len()].copy_from_slice(other.as_bytes());
        let again = reports(&swapped).unwrap_or_default();
        let quoted = again.iter().any(|o| o.contains(&other))
            && !again.iter().any(|o| o.contains(secret.as_str()));
        assert!(!quoted, "secret {secret:?} is in the report:\n{}", outputs.join("\n"));
    }
});
