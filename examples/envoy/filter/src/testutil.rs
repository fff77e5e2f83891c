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

// --- A broker: the three broker credentials, its keys from the VM's environment ------------------

/// The broker's URL: its issuer, and the audience of the jobs' GitLab tokens.
pub(crate) const BROKER_URL: &str = "https://broker.example.com";
/// The user-assigned identity of the `managed-identity` rule.
pub(crate) const UAMI_CLIENT: &str = "0b9a3c6e-8f1d-4e2a-9c7b-5d4e3f2a1b0c";
pub(crate) const UAMI_PRINCIPAL: &str = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
pub(crate) const SCOPE: &str = "https://management.azure.com/.default";

/// The app certificate and its key (the core's test data).
pub(crate) const APP_KEY: &str = include_str!("../../../../src/entra/testdata/rsa-2048.key.pem");
pub(crate) const APP_CERT: &str = include_str!("../../../../src/entra/testdata/rsa-2048.cert.pem");

/// The broker issuer's signing key, and the next one (published before it signs).
pub(crate) fn signing_key() -> RsaKey {
    RsaKey::fixture_3072()
}

pub(crate) fn next_key() -> RsaKey {
    RsaKey::fixture_2048_rotated()
}

/// The VM environment that holds the broker's secrets.
pub(crate) fn broker_env() -> Vec<(String, String)> {
    vec![
        ("BROKER_SIGNING_KEY".to_owned(), signing_key().private_pem()),
        ("BROKER_NEXT_KEY".to_owned(), next_key().private_pem()),
        ("APP_KEY".to_owned(), APP_KEY.to_owned()),
        ("APP_CERT".to_owned(), APP_CERT.to_owned()),
    ]
}

/// A binding policy: a deny rule, then one allow rule per broker credential.
pub(crate) fn broker_policy() -> Value {
    let azure = |credential: Value| {
        json!({"tenant": "contoso.onmicrosoft.com", "client_id": CLIENT_ID, "scopes": [SCOPE],
               "credential": credential})
    };
    json!({"rules": [
        {"name": "no-merge-requests", "effect": "deny",
         "when": {"pipeline_source": "merge_request_event"}},
        {"name": "via-issuer", "effect": "allow",
         "when": {"project_id": "4242", "ref": "main", "ref_protected": true},
         "azure": azure(json!("issuer"))},
        {"name": "via-identity", "effect": "allow", "when": {"project_id": "4242", "ref": "identity"},
         "azure": azure(json!({"type": "managed-identity", "client_id": UAMI_CLIENT,
                               "principal_id": UAMI_PRINCIPAL}))},
        {"name": "via-certificate", "effect": "allow",
         "when": {"project_id": "4242", "ref": "certificate"},
         "azure": azure(json!({"type": "certificate", "name": "app-cert"}))}
    ]})
}

/// A broker's configuration: vending at `/token`, the issuer's documents, the identity endpoint
/// behind the `azure-identity` cluster; `edit` changes it before it is returned.
pub(crate) fn broker_json(edit: impl FnOnce(&mut Value)) -> Value {
    config_json(|c| {
        c["audiences"] = json!([BROKER_URL]);
        c["policy"] = broker_policy();
        c["broker"] = json!({
            "issuer": {"url": BROKER_URL, "keys": [
                {"private_key": {"env": "BROKER_SIGNING_KEY"}, "use": "signing"},
                {"private_key": {"env": "BROKER_NEXT_KEY"}, "use": "published"}]},
            "managed_identity": {"endpoint": "imds"},
            "certificates": {"app-cert": {"private_key": {"env": "APP_KEY"},
                                          "certificate": {"env": "APP_CERT"}}}
        });
        c["vending"] = json!({"path": "/token"});
        c["identity_endpoint"] = json!({"cluster": "azure-identity"});
        edit(c);
    })
}

/// A GitLab token for the broker (`aud` is its URL), with claim overrides.
pub(crate) fn broker_token(overrides: Value) -> String {
    let mut claims = json!({"aud": BROKER_URL});
    if let (Some(claims), Some(overrides)) = (claims.as_object_mut(), overrides.as_object()) {
        for (name, value) in overrides {
            claims.insert(name.clone(), value.clone());
        }
    }
    token(&key(), claims)
}
