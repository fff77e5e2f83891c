//! A loopback stand-in for a GitLab instance's OIDC endpoints, answering as GitLab does
//! (`app/controllers/jwks_controller.rb`, doorkeeper-openid_connect discovery): the discovery
//! document at `/.well-known/openid-configuration` and the JWKS at `/oauth/discovery/keys` and
//! `/-/jwks`, with `Cache-Control: max-age=86400, public, must-revalidate, no-transform`.
//!
//! Tests in other languages steer it over HTTP under `/_control/` (see the `stand-in` binary).

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::http::{Request, Response, Server};
use crate::{gitlab_claims, mint, Key, RsaKey};

/// What the stand-in serves; change it while it runs (key rotation, outages).
#[derive(Clone)]
pub struct IssuerState {
    /// The key that signs tokens minted through `/_control/mint`.
    pub signer: RsaKey,
    /// The public keys in the JWKS.
    pub keys: Vec<Value>,
    /// When true, every non-control endpoint answers 503 (GitLab down or unreachable).
    pub down: bool,
}

/// A running GitLab-like issuer on 127.0.0.1; stops when dropped.
pub struct Issuer {
    server: Server,
    state: Arc<Mutex<IssuerState>>,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Issuer {
    /// Serves the public JWKs of `keys`; the first one signs minted tokens.
    pub fn start(keys: &[&RsaKey]) -> Self {
        let state = Arc::new(Mutex::new(IssuerState {
            signer: keys[0].clone(),
            keys: keys.iter().map(|k| k.jwk()).collect(),
            down: false,
        }));
        let shared = state.clone();
        let server = Server::start(move |request| respond(&shared, request));
        Self { server, state }
    }

    /// The issuer URL (`http://127.0.0.1:PORT`), i.e. the `iss` of its tokens.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The JWKS URL.
    pub fn jwks_url(&self) -> String {
        format!("{}/oauth/discovery/keys", self.url())
    }

    /// Replaces what is served.
    pub fn update(&self, edit: impl FnOnce(&mut IssuerState)) {
        edit(&mut self.state.lock().unwrap());
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.server.requests()
    }

    /// Mints a GitLab ID token for the default job, with claim overrides (`null` removes).
    pub fn mint(&self, overrides: &Value) -> String {
        mint_with(&self.state.lock().unwrap(), &self.url(), overrides)
    }
}

fn mint_with(state: &IssuerState, issuer: &str, overrides: &Value) -> String {
    let mut claims = gitlab_claims(issuer, unix_now());
    // Every GitLab token has its own `jti` (a UUID).
    claims["jti"] = Value::String(crate::uuid());
    if let (Some(claims), Some(overrides)) = (claims.as_object_mut(), overrides.as_object()) {
        for (name, value) in overrides {
            if value.is_null() {
                claims.remove(name);
            } else {
                claims.insert(name.clone(), value.clone());
            }
        }
    }
    mint(&Key::Rsa(&state.signer, "RS256"), &claims)
}

fn respond(shared: &Mutex<IssuerState>, request: &Request) -> Response {
    let mut state = shared.lock().unwrap();
    let host = request.headers.get("host").cloned().unwrap_or_default();
    let issuer = format!("http://{host}");
    let path = request.path.split('?').next().unwrap_or("");
    if let Some(control) = path.strip_prefix("/_control/") {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        return match control {
            "mint" => Response::json(
                200,
                &json!({ "token": mint_with(&state, &issuer, &body) }).to_string(),
            ),
            "rotate" => {
                let key = RsaKey::generate(2048);
                state.keys = vec![key.jwk()];
                state.signer = key;
                Response::json(200, &json!({ "kid": state.signer.kid() }).to_string())
            }
            "down" => {
                state.down = body["down"].as_bool().unwrap_or(true);
                Response::json(200, &json!({ "down": state.down }).to_string())
            }
            _ => Response::json(404, r#"{"error":"unknown control"}"#),
        };
    }
    if state.down {
        return Response::json(503, r#"{"message":"503 Service Unavailable"}"#);
    }
    if request.method != "GET" && request.method != "HEAD" {
        return Response::json(405, r#"{"error":"405 Method Not Allowed"}"#);
    }
    match path {
        "/.well-known/openid-configuration" => Response::json(200, &discovery(&issuer).to_string()),
        "/oauth/discovery/keys" | "/-/jwks" => {
            Response::json(200, &json!({ "keys": state.keys }).to_string())
                .header("Cache-Control", "max-age=86400, public, must-revalidate, no-transform")
        }
        _ => Response::json(404, r#"{"error":"404 Not Found"}"#),
    }
}

/// GitLab's discovery document, as doorkeeper-openid_connect renders it.
fn discovery(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "jwks_uri": format!("{issuer}/oauth/discovery/keys"),
        "scopes_supported": ["api", "read_api", "read_user", "openid", "profile", "email"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": ["authorization_code", "password", "client_credentials", "device_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claim_types_supported": ["normal"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "sub_legacy", "name", "nickname", "preferred_username", "email", "email_verified", "website", "profile", "picture", "groups", "groups_direct", "https://gitlab.org/claims/groups/owner", "https://gitlab.org/claims/groups/maintainer", "https://gitlab.org/claims/groups/developer"]
    })
}
