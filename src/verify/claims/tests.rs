use serde_json::Value;

use super::*;

fn claims(json: &str) -> Result<Claims, VerifyError> {
    match serde_json::from_str::<Value>(json).unwrap() {
        Value::Object(map) => Claims::from_payload(map),
        _ => unreachable!(),
    }
}

#[test]
fn parses_fulcios_unsigned_gitlab_claim_set() {
    // sigstore/fulcio's modern GitLab claims (tests/third-party/gitlab), as they are.
    // Read at run time, not with include_str!: building (e.g. for `make demo`) must not need
    // the corpora beside the checkout; only running the tests does.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/third-party/gitlab/fulcio_gitlab_claims_unsigned.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    let set = doc.get("claims").cloned().unwrap_or(doc);
    let c = claims(&set.to_string()).expect("claims parse");
    assert!(c.gitlab.project_path.is_some());
    assert!(c.gitlab.ref_protected.is_some());
}

#[test]
fn parses_a_legacy_ci_job_jwt_claim_set() {
    let c = claims(
        r#"{"namespace_id":"1","namespace_path":"g","project_id":"2","project_path":"g/p",
        "user_id":"3","user_login":"u","user_email":"u@x","pipeline_id":"4","job_id":"5",
        "ref":"master","ref_type":"branch","ref_protected":"true","jti":"j","iss":"gitlab.com",
        "iat":1600105774,"nbf":1600105769,"exp":1600109374,"sub":"job_5"}"#,
    )
    .unwrap();
    assert_eq!(c.aud, None);
    assert_eq!(c.iss, "gitlab.com");
    assert_eq!(c.gitlab.ref_protected, Some(true));
    assert_eq!(c.gitlab.runner_id, None);
}

#[test]
fn missing_and_malformed_are_different_errors() {
    assert_eq!(
        claims(r#"{"exp":1}"#).unwrap_err(),
        VerifyError::ClaimMissing { claim: "iss".into() }
    );
    assert!(matches!(
        claims(r#"{"iss":"x","exp":1,"runner_id":1.5}"#).unwrap_err(),
        VerifyError::ClaimInvalid { claim, .. } if claim == "runner_id"
    ));
}
