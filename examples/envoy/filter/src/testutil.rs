//! Fixtures shared by the unit tests: a configuration, keys and tokens.

use serde_json::{json, Value};
use testkit::{Key, RsaKey};

pub(crate) const ISSUER: &str = "https://gitlab.example.com";
pub(crate) const NOW: u64 = 1_800_000_000;
pub(crate) const CLIENT_ID: &str = "22222222-0000-0000-0000-000000000001";

pub(crate) fn policy() -> Value {
    json!({
        "rules": [
            { "name": "no-feature", "effect": "deny", "when": { "ref": { "glob": "feature/*" } } },
            { "name": "deploy-main", "effect": "allow",
              "when": { "project_path": "acme/payments", "project_id": "4242", "ref": "main",
                        "ref_protected": true },
              "azure": { "tenant": "contoso.onmicrosoft.com", "client_id": CLIENT_ID,
                         "scopes": ["https://management.azure.com/.default"] } }
        ]
    })
}

/// A configuration with a remote JWKS; `edit` changes it before it is returned.
pub(crate) fn config_json(edit: impl FnOnce(&mut Value)) -> Value {
    let mut config = json!({
        "issuer": ISSUER,
        "audiences": [testkit::AUDIENCE],
        "jwks": { "cluster": "gitlab" },
        "policy": policy(),
        "entra": { "cluster": "entra", "insecure_authority_url": "http://127.0.0.1:9" },
        "claim_headers": { "x-gitlab-project-path": "project_path", "x-gitlab-ref": "ref" }
    });
    edit(&mut config);
    config
}

pub(crate) fn parse(config: &Value) -> crate::config::FilterConfig {
    crate::config::parse(config.to_string().as_bytes()).expect("the configuration parses")
}

pub(crate) fn key() -> RsaKey {
    RsaKey::fixture_2048()
}

pub(crate) fn rotated() -> RsaKey {
    RsaKey::fixture_2048_rotated()
}

pub(crate) fn jwks(keys: &[&RsaKey]) -> String {
    testkit::jwks(&keys.iter().map(|k| k.jwk()).collect::<Vec<_>>())
}

/// A fetched JWKS of `keys`, fetched at `fetched_at` and kept for an hour.
pub(crate) fn record(keys: &[&RsaKey], fetched_at: u64) -> crate::cache::JwksRecord {
    crate::cache::JwksRecord { fetched_at, expires_at: fetched_at + 3600, jwks: jwks(keys) }
}

/// A GitLab token from `key`, issued a minute before [`NOW`], with claim overrides.
pub(crate) fn token(key: &RsaKey, overrides: Value) -> String {
    let mut claims = testkit::gitlab_claims(ISSUER, NOW - 60);
    if let (Some(claims), Some(overrides)) = (claims.as_object_mut(), overrides.as_object()) {
        for (name, value) in overrides {
            claims.insert(name.clone(), value.clone());
        }
    }
    testkit::mint(&Key::Rsa(key, "RS256"), &claims)
}
