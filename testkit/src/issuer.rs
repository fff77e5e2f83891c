//! A loopback stand-in for a GitLab instance's OIDC endpoints, answering as GitLab does
//! (`app/controllers/jwks_controller.rb`, doorkeeper-openid_connect discovery): the discovery
//! document at `/.well-known/openid-configuration` and the JWKS at `/oauth/discovery/keys` and
//! `/-/jwks`, with `Cache-Control: max-age=86400, public, must-revalidate, no-transform`.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::http::{Request, Response, Server};
use crate::RsaKey;

/// What the stand-in serves; change it while it runs (key rotation, outages).
#[derive(Clone, Debug)]
pub struct IssuerState {
    /// The public keys in the JWKS.
    pub keys: Vec<Value>,
    /// When true, every endpoint answers 503 (GitLab down or unreachable).
    pub down: bool,
}

/// A running GitLab-like issuer on 127.0.0.1; stops when dropped.
pub struct Issuer {
    server: Server,
    state: Arc<Mutex<IssuerState>>,
}

impl Issuer {
    /// Serves the public JWKs of `keys`.
    pub fn start(keys: &[&RsaKey]) -> Self {
        let state = Arc::new(Mutex::new(IssuerState {
            keys: keys.iter().map(|k| k.jwk()).collect(),
            down: false,
        }));
        let shared = state.clone();
        // The issuer URL is only known once bound; the handler derives it from the Host header.
        let server = Server::start(move |request| respond(&shared.lock().unwrap(), request));
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
}

fn respond(state: &IssuerState, request: &Request) -> Response {
    if state.down {
        return Response::json(503, r#"{"message":"503 Service Unavailable"}"#);
    }
    if request.method != "GET" && request.method != "HEAD" {
        return Response::json(405, r#"{"error":"405 Method Not Allowed"}"#);
    }
    let host = request.headers.get("host").cloned().unwrap_or_default();
    let issuer = format!("http://{host}");
    let path = request.path.split('?').next().unwrap_or("");
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
