//! A loopback stand-in for Microsoft Entra's token endpoint (`/{tenant}/oauth2/v2.0/token`)
//! for the client-credentials grant with a federated client assertion.
//!
//! It judges the request as Entra does (reference: `gitlab-azure-facts.md` 2.1-2.5): the form
//! fields, the tenant, the scope, the application, then the assertion against the app's federated
//! credentials (issuer, audience, case-sensitive subject) and the issuer's keys, which it fetches
//! over HTTP from the issuer's discovery document as Entra does. Errors come back in Entra's JSON
//! shape with the AADSTS code, OAuth error class and HTTP status Entra uses. The assertion's
//! signature is checked with RustCrypto's `rsa`, independent of the code under test.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::http::{Request, Response, Server};
use crate::uuid;

/// The `client_assertion_type` Entra requires.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A federated identity credential on an app registration (classic, exact match).
#[derive(Clone, Debug)]
pub struct FederatedCredential {
    /// Must equal the assertion's `iss` exactly.
    pub issuer: String,
    /// Must equal the assertion's `sub` exactly (case-sensitive).
    pub subject: String,
    /// Must be one of the assertion's `aud`.
    pub audience: String,
}

/// How the stand-in answers, for tests of the client's error handling.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Judge every request as Entra would.
    Normal,
    /// Answer every request with this AADSTS error.
    Error(u64),
    /// Answer with this status (429, 500, ...) and an optional `Retry-After`.
    Status(u16, Option<String>),
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Answer 200 with an HTML page, as a captive portal or a misrouted proxy does.
    Garbage,
}

/// The stand-in's state.
pub struct EntraState {
    /// The directory tenant id.
    pub tenant: String,
    /// App registrations: client id to federated credentials.
    pub apps: BTreeMap<String, Vec<FederatedCredential>>,
    /// How to answer.
    pub behaviour: Behaviour,
    /// When set, `behaviour` applies to this many more requests, then `Normal` again.
    pub behaviour_times: Option<usize>,
    /// The lifetime of the access tokens it issues, in seconds (`expires_in`). Defaults to 3599,
    /// as Entra; tests of renewal make it short.
    pub expires_in: u64,
    /// Token requests received.
    pub token_requests: usize,
    /// The form fields of the last token request (the assertion replaced by its length).
    pub last_form: BTreeMap<String, String>,
}

/// A running Entra-like endpoint on 127.0.0.1; stops when dropped.
pub struct Entra {
    server: Server,
    state: Arc<Mutex<EntraState>>,
}

impl Entra {
    /// Starts an endpoint for `tenant` with one app and its credentials.
    pub fn start(tenant: &str, client_id: &str, credentials: Vec<FederatedCredential>) -> Self {
        let state = Arc::new(Mutex::new(EntraState {
            tenant: tenant.to_owned(),
            apps: BTreeMap::from([(client_id.to_owned(), credentials)]),
            behaviour: Behaviour::Normal,
            behaviour_times: None,
            expires_in: 3599,
            token_requests: 0,
            last_form: BTreeMap::new(),
        }));
        let shared = state.clone();
        let server = Server::start(move |request| respond(&shared, request));
        Self { server, state }
    }

    /// `http://127.0.0.1:PORT`: the authority URL to use instead of `https://login.microsoftonline.com`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Changes the state (behaviour, apps).
    pub fn update(&self, edit: impl FnOnce(&mut EntraState)) {
        edit(&mut self.state.lock().unwrap());
    }

    /// Token requests received so far.
    pub fn token_requests(&self) -> usize {
        self.state.lock().unwrap().token_requests
    }

    /// The form fields of the last token request (the assertion replaced by `<N bytes>`).
    pub fn last_form(&self) -> BTreeMap<String, String> {
        self.state.lock().unwrap().last_form.clone()
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The OAuth error class, HTTP status and description template Entra uses for each code.
fn catalogue(code: u64) -> (&'static str, u16, &'static str) {
    match code {
        70011 => ("invalid_scope", 400, "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid."),
        70021 => ("invalid_request", 400, "No matching federated identity record found for presented assertion."),
        700016 => ("unauthorized_client", 400, "Application with identifier was not found in the directory. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."),
        700022 => ("invalid_scope", 400, "The provided value for the input parameter scope is not valid because it contains more than one resource."),
        700024 => ("invalid_client", 400, "Client assertion is not within its valid time range."),
        700027 => ("invalid_client", 401, "Client assertion failed signature validation."),
        700211 => ("invalid_client", 401, "No matching federated identity record found for presented assertion issuer. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion."),
        700212 => ("invalid_client", 401, "No matching federated identity record found for presented assertion audience. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion."),
        700213 => ("invalid_client", 401, "No matching federated identity record found for presented assertion subject. Please note that matching is done using a case-sensitive comparison. Check your federated identity credential Subject, Audience, and Issuer against the presented assertion."),
        7002137 => ("invalid_client", 401, "No matching federated identity record found for presented assertion subject. Please make sure the federated identity credential Subject is correct."),
        7002138 => ("invalid_client", 401, "No matching federated identity record found for presented assertion subject. The subject matches with case-insensitive comparison, but not with case-sensitive comparison."),
        50027 => ("invalid_request", 400, "Invalid JWT token. Token format not valid."),
        90002 => ("invalid_request", 400, "Tenant not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        9001023 => ("invalid_request", 400, "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint."),
        90061 => ("invalid_request", 400, "Request to External OIDC endpoint failed."),
        501661 => ("invalid_client", 401, "Request to External OIDC endpoint failed."),
        7000215 => ("invalid_client", 401, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."),
        7000218 => ("invalid_client", 401, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
        900144 => ("invalid_request", 400, "The request body must contain the following parameter."),
        70003 => ("unsupported_grant_type", 400, "The app requested an unsupported grant type."),
        _ => ("invalid_request", 400, "The request is not valid."),
    }
}

/// Entra's error JSON; `detail` is appended to the description as Entra quotes values.
fn entra_error(code: u64, detail: &str) -> Response {
    let (error, status, text) = catalogue(code);
    let (trace, correlation) = (uuid(), uuid());
    let timestamp = "2026-11-25 12:00:00Z";
    let description = format!(
        "AADSTS{code}: {text}{detail}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"
    );
    let body = json!({
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    entra_headers(Response::json(status, &body.to_string()), &trace)
}

fn entra_headers(response: Response, trace: &str) -> Response {
    response
        .header("Cache-Control", "no-store, no-cache")
        .header("Pragma", "no-cache")
        .header("x-ms-request-id", trace)
        .header("x-ms-ests-server", "2.1.stand-in")
}

fn form_decode(body: &[u8]) -> BTreeMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                },
                other => out.push(other),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn respond(shared: &Mutex<EntraState>, request: &Request) -> Response {
    let path = request.path.split('?').next().unwrap_or("").to_owned();
    if let Some(control) = path.strip_prefix("/_control/") {
        let mut state = shared.lock().unwrap();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        return match control {
            "behaviour" => {
                state.behaviour = match body["mode"].as_str() {
                    Some("error") => Behaviour::Error(body["code"].as_u64().unwrap_or(70021)),
                    Some("status") => Behaviour::Status(
                        u16::try_from(body["status"].as_u64().unwrap_or(500)).unwrap_or(500),
                        body["retry_after"].as_str().map(str::to_owned),
                    ),
                    Some("delay") => {
                        Behaviour::Delay(Duration::from_millis(body["ms"].as_u64().unwrap_or(5000)))
                    }
                    Some("garbage") => Behaviour::Garbage,
                    _ => Behaviour::Normal,
                };
                state.behaviour_times =
                    body["times"].as_u64().and_then(|t| usize::try_from(t).ok());
                Response::json(200, &json!({"mode": format!("{:?}", state.behaviour)}).to_string())
            }
            "tokens" => {
                state.expires_in = body["expires_in"].as_u64().unwrap_or(3599);
                Response::json(200, &json!({"expires_in": state.expires_in}).to_string())
            }
            "stats" => Response::json(
                200,
                &json!({"token_requests": state.token_requests, "last_form": state.last_form})
                    .to_string(),
            ),
            _ => Response::json(404, r#"{"error":"unknown control"}"#),
        };
    }
    let form = form_decode(&request.body);
    let behaviour = {
        let mut state = shared.lock().unwrap();
        state.token_requests += 1;
        state.last_form = form
            .iter()
            .map(|(k, v)| {
                let shown = if k == "client_assertion" {
                    format!("<{} bytes>", v.len())
                } else {
                    v.clone()
                };
                (k.clone(), shown)
            })
            .collect();
        let behaviour = state.behaviour.clone();
        if let Some(times) = state.behaviour_times {
            if times <= 1 {
                state.behaviour = Behaviour::Normal;
                state.behaviour_times = None;
            } else {
                state.behaviour_times = Some(times - 1);
            }
        }
        behaviour
    };
    match behaviour {
        Behaviour::Normal => {}
        Behaviour::Error(code) => return entra_error(code, ""),
        Behaviour::Status(status, retry_after) => {
            let trace = uuid();
            let mut response = if status == 429 {
                Response::json(429, &json!({"error": "temporarily_unavailable", "error_description": format!("AADSTS50196: The server terminated an operation because it encountered a client request loop.\r\nTrace ID: {trace}"), "error_codes": [50196], "trace_id": trace}).to_string())
            } else {
                Response::json(status, &json!({"error": "temporarily_unavailable", "error_description": format!("AADSTS90033: A transient error has occurred. Please try again.\r\nTrace ID: {trace}"), "error_codes": [90033], "trace_id": trace}).to_string())
            };
            if let Some(value) = retry_after {
                response = response.header("Retry-After", &value);
            }
            return entra_headers(response, &trace);
        }
        Behaviour::Delay(delay) => {
            let mut answer = judge(shared, request, &path, &form);
            answer.delay = Some(delay);
            return answer;
        }
        Behaviour::Garbage => {
            let mut page = Response::json(200, "<html><head><title>Sign in to the network</title></head><body><h1>Captive portal</h1></body></html>");
            page.headers = vec![("Content-Type".into(), "text/html".into())];
            return page;
        }
    }
    judge(shared, request, &path, &form)
}

fn judge(
    shared: &Mutex<EntraState>,
    request: &Request,
    path: &str,
    form: &BTreeMap<String, String>,
) -> Response {
    let (tenant, apps, expires_in) = {
        let state = shared.lock().unwrap();
        (state.tenant.clone(), state.apps.clone(), state.expires_in)
    };
    // /{tenant}/oauth2/v2.0/token
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segments.len() != 4 || segments[1..] != ["oauth2", "v2.0", "token"] {
        return Response::json(404, r#"{"error":"not_found"}"#);
    }
    if request.method != "POST" {
        return entra_error(900561, " The endpoint only accepts POST requests.");
    }
    match segments[0] {
        "common" | "consumers" | "organizations" => return entra_error(9001023, ""),
        t if t != tenant => return entra_error(90002, &format!(" Tenant '{t}' not found.")),
        _ => {}
    }
    let content_type = request.headers.get("content-type").map(String::as_str).unwrap_or("");
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return entra_error(900144, " 'grant_type'.");
    }
    for field in ["grant_type", "client_id", "scope"] {
        if form.get(field).is_none_or(String::is_empty) {
            return entra_error(900144, &format!(" '{field}'."));
        }
    }
    if form["grant_type"] != "client_credentials" {
        return entra_error(70003, "");
    }
    if form.contains_key("client_secret") {
        return entra_error(7000215, "");
    }
    let Some(assertion) = form.get("client_assertion").filter(|a| !a.is_empty()) else {
        return entra_error(7000218, "");
    };
    if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
        return entra_error(900144, " 'client_assertion_type'.");
    }
    let scopes: Vec<&str> = form["scope"].split(' ').filter(|s| !s.is_empty()).collect();
    if scopes.iter().any(|s| !s.ends_with("/.default")) {
        return entra_error(70011, &format!(" The scope '{}' is not valid.", form["scope"]));
    }
    let resources: std::collections::BTreeSet<&str> =
        scopes.iter().map(|s| s.trim_end_matches("/.default")).collect();
    if resources.len() > 1 {
        return entra_error(700022, "");
    }
    let Some(credentials) = apps.get(&form["client_id"]) else {
        return entra_error(700016, &format!(" Application '{}'.", form["client_id"]));
    };
    let Some((header, claims, signing_input, signature)) = split_jwt(assertion) else {
        return entra_error(50027, "");
    };
    let iss = claims["iss"].as_str().unwrap_or("");
    let sub = claims["sub"].as_str().unwrap_or("");
    let auds: Vec<&str> = match &claims["aud"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    // Federated credential match, in Entra's order: issuer, audience, subject.
    let by_issuer: Vec<&FederatedCredential> =
        credentials.iter().filter(|c| c.issuer == iss).collect();
    if by_issuer.is_empty() {
        return entra_error(700211, &format!(" Assertion issuer '{iss}'."));
    }
    let by_audience: Vec<&&FederatedCredential> =
        by_issuer.iter().filter(|c| auds.contains(&c.audience.as_str())).collect();
    if by_audience.is_empty() {
        return entra_error(700212, &format!(" Assertion audience '{}'.", auds.join(",")));
    }
    if !by_audience.iter().any(|c| c.subject == sub) {
        let code = if by_audience.iter().any(|c| c.subject.eq_ignore_ascii_case(sub)) {
            7002138
        } else {
            700213
        };
        return entra_error(code, &format!(" Assertion subject '{sub}'."));
    }
    // Entra fetches the issuer's discovery document and JWKS to check the signature.
    let Some(jwks) = fetch_jwks(iss) else {
        return entra_error(501661, &format!(" Issuer '{iss}'."));
    };
    if !signature_ok(&header, &jwks, signing_input.as_bytes(), &signature) {
        return entra_error(700027, "");
    }
    let now = unix_now();
    let skew = 300;
    let exp = claims["exp"].as_u64().unwrap_or(0);
    let nbf = claims["nbf"].as_u64().unwrap_or(0);
    if now > exp + skew || now + skew < nbf {
        return entra_error(
            700024,
            &format!(
                " Current time: {now}, assertion valid from {nbf}, expiry time of assertion {exp}."
            ),
        );
    }
    let trace = uuid();
    let resource = resources.into_iter().next().unwrap_or_default();
    let access = json!({"aud": resource, "iss": format!("https://sts.windows.net/{tenant}/"), "appid": form["client_id"], "sub": sub, "tid": tenant, "iat": now, "exp": now + expires_in, "uti": trace});
    let access_token = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"RS256","kid":"stand-in"}"#),
        URL_SAFE_NO_PAD.encode(access.to_string()),
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    let body = json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": access_token});
    entra_headers(Response::json(200, &body.to_string()), &trace)
}

type Jwt = (Value, Value, String, Vec<u8>);

fn split_jwt(token: &str) -> Option<Jwt> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
    Some((header, claims, format!("{h}.{p}"), URL_SAFE_NO_PAD.decode(s).ok()?))
}

fn fetch_jwks(issuer: &str) -> Option<Value> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(5)).build();
    let get = |url: &str| -> Option<Value> {
        serde_json::from_str(&agent.get(url).call().ok()?.into_string().ok()?).ok()
    };
    let discovery = get(&format!("{issuer}/.well-known/openid-configuration"))?;
    get(discovery["jwks_uri"].as_str()?)
}

fn signature_ok(header: &Value, jwks: &Value, input: &[u8], signature: &[u8]) -> bool {
    use rsa::signature::Verifier as _;
    if header["alg"] != "RS256" {
        return false;
    }
    let Some(keys) = jwks["keys"].as_array() else { return false };
    keys.iter().filter(|k| k["kid"] == header["kid"]).any(|k| {
        let field = |name: &str| k[name].as_str().and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
        let (Some(n), Some(e)) = (field("n"), field("e")) else { return false };
        let Ok(public) = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(&n),
            rsa::BigUint::from_bytes_be(&e),
        ) else {
            return false;
        };
        let Ok(sig) = rsa::pkcs1v15::Signature::try_from(signature) else { return false };
        rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(public).verify(input, &sig).is_ok()
    })
}
