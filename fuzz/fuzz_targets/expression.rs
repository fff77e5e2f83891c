//! Flexible federated credential expressions (`claimsMatchingExpression`), differentially: the
//! first line is an expression, every further line a claim `name=value`. The core's parser and
//! evaluator are compared with a reference written from Entra's documentation (fuzz/src/lib.rs).
//!
//! Invariants: the core accepts exactly the expressions the reference accepts, reads the same
//! claims, and evaluates to the same answer on the claims.
#![no_main]

use gitlab_azure_oidc::entra::federated::Expression;
use gitlab_azure_oidc::Claims;
use gitlab_azure_oidc_fuzz::{ref_expression_eval, ref_expression_parse};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let source = lines.next().unwrap_or_default();
    let core = Expression::parse(source);
    let reference = ref_expression_parse(source);
    assert_eq!(
        core.is_ok(),
        reference.is_some(),
        "expression {source:?}: core {:?}",
        core.as_ref().err()
    );
    let (Ok(core), Some(reference)) = (core, reference) else { return };
    let names: Vec<&str> = reference.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(core.claims(), names);
    assert_eq!(core.as_str(), source);

    let mut raw = json!({"iss": "https://gitlab.com", "exp": 2_000_000_000u64});
    for line in lines.take(8) {
        let (name, value) = line.split_once('=').unwrap_or((line, ""));
        // A value written `#N` is the number N: not a string, so it matches nothing.
        raw[name] = match value.strip_prefix('#').and_then(|n| n.parse::<u64>().ok()) {
            Some(n) => Value::from(n),
            None => Value::from(value),
        };
    }
    let Ok(claims) = Claims::from_json(raw.to_string().as_bytes()) else { return };
    let Value::Object(map) = serde_json::from_str(&claims.raw_json()).expect("raw json") else {
        return;
    };
    assert_eq!(
        core.evaluate(&claims),
        ref_expression_eval(&reference, &map),
        "{source:?} on {map:?}"
    );
});
