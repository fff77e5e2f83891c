use serde_json::{Map, Value};
use testkit::{gitlab_claims, mint, Key, RsaKey, AUDIENCE};

use super::*;
use crate::internal::default_gitlab_subject;
use crate::{Claims, GitLabClaims, Jwks, Verifier, VerifierConfig};

const ISS: &str = "https://gitlab.example.com";
const NOW: u64 = 1_760_000_000;

fn claims_with_sub(sub: Option<&str>) -> Claims {
    Claims {
        iss: ISS.into(),
        sub: sub.map(str::to_owned),
        aud: None,
        exp: NOW,
        nbf: None,
        iat: None,
        jti: None,
        gitlab: GitLabClaims::default(),
        raw: Map::new(),
    }
}

#[test]
fn the_federated_subject_is_the_sub_claim_verbatim() {
    let sub = "project_path:Acme/Payments:ref_type:branch:ref:feature/x";
    assert_eq!(claims_with_sub(Some(sub)).sub.as_deref(), Some(sub));
    assert_eq!(claims_with_sub(None).sub, None);
}

#[test]
fn the_default_subject_matches_what_gitlab_mints() {
    assert_eq!(
        default_gitlab_subject("acme/payments", "branch", "main"),
        "project_path:acme/payments:ref_type:branch:ref:main"
    );
    assert_eq!(
        default_gitlab_subject("g/sub/p", "tag", "v1.2.3"),
        "project_path:g/sub/p:ref_type:tag:ref:v1.2.3"
    );
    // Through the verifier: a token minted as GitLab mints it.
    let key = RsaKey::fixture_2048();
    let token = mint(&Key::Rsa(&key, "RS256"), &gitlab_claims(ISS, NOW - 10));
    let jwks = Jwks::parse(testkit::jwks(&[key.jwk()]).as_bytes()).unwrap();
    let verifier =
        Verifier::new(VerifierConfig::builder(ISS).audience(AUDIENCE).build().unwrap(), jwks);
    let claims = verifier.verify(&token, NOW).unwrap().claims;
    let g = &claims.gitlab;
    let rendered = default_gitlab_subject(
        g.project_path.as_deref().unwrap(),
        g.ref_type.as_deref().unwrap(),
        g.r#ref.as_deref().unwrap(),
    );
    assert_eq!(claims.sub, Some(rendered));
    // And the verified token goes into the request unchanged.
    let target =
        AzureTarget::builder("contoso.onmicrosoft.com", "11111111-2222-3333-4444-555555555555")
            .build()
            .unwrap();
    let request = build_federated_request(&target, &token).unwrap();
    assert!(request.body.ends_with(&format!("&client_assertion={token}")));
    assert_eq!(claims.raw.get("aud"), Some(&Value::from(AUDIENCE)));
}
