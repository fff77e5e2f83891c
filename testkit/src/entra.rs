//! A loopback stand-in for Microsoft Entra's token endpoint (`/{tenant}/oauth2/v2.0/token`)
//! for the client-credentials grant with a federated client assertion.
//!
//! It judges the request as Entra does (reference: `gitlab-azure-facts.md` 2.1-2.5): the form
//! fields, the tenant, the scope, the application, then the assertion against the app's federated
//! credentials (issuer, audience, case-sensitive subject) and the issuer's keys, which it fetches
//! over HTTP from the issuer's discovery document as Entra does. Errors come back in Entra's JSON
//! shape with the AADSTS code, OAuth error class and HTTP status Entra uses. The assertion's
//! signature is checked with RustCrypto's `rsa`, independent of the code under test.
//!
//! Besides federated credentials that trust an external issuer (GitLab, or a broker that is
//! its own issuer: the stand-in fetches that issuer's discovery document and JWKS over HTTP,
//! keeps the first 100 keys and answers AADSTS7000272 for an unknown `kid` and AADSTS50166 when
//! the issuer cannot be reached), an app can trust:
//!
//! - a managed identity: the credential names Entra's own issuer for the tenant
//!   (`https://login.microsoftonline.com/{tenant}/v2.0`) and the identity's principal id, and the
//!   stand-in also serves the identity endpoint that issues that identity's tokens, signed with
//!   its own key, as IMDS (`/metadata/identity/oauth2/token`, `Metadata: true`) and App Service
//!   (`/msi/token`, `X-IDENTITY-HEADER`) do;
//! - a certificate: a client assertion with `iss` = `sub` = the client id, the certificate's
//!   `x5t#S256` (PS256) or `x5t` (RS256), and `aud` = the token endpoint.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::http::{Request, Response, Server};
use crate::{uuid, RsaKey};

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

/// A certificate registered on an app (`az ad app credential reset --cert`).
#[derive(Clone, Debug)]
pub struct RegisteredCertificate {
    /// base64url SHA-256 of the DER: the `x5t#S256` of PS256 assertions.
    pub x5t_s256: String,
    /// base64url SHA-1 of the DER: the `x5t` of RS256 assertions.
    pub x5t: String,
    /// The certificate's public key.
    pub key: rsa::RsaPublicKey,
}

impl RegisteredCertificate {
    /// Reads a PEM certificate (the first of a chain).
    pub fn from_pem(pem: &str) -> Option<Self> {
        use rsa::pkcs8::DecodePublicKey as _;
        let body: String = pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD.decode(body.trim()).ok()?;
        let spki = certificate_spki(&der)?;
        let thumb = |alg| URL_SAFE_NO_PAD.encode(ring::digest::digest(alg, &der));
        Some(Self {
            x5t_s256: thumb(&ring::digest::SHA256),
            x5t: thumb(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
            key: rsa::RsaPublicKey::from_public_key_der(spki).ok()?,
        })
    }
}

/// The SubjectPublicKeyInfo DER of an X.509 certificate (RFC 5280 4.1).
fn certificate_spki(der: &[u8]) -> Option<&[u8]> {
    /// A TLV: tag, contents, the whole TLV, and what follows it.
    type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);
    fn tlv(input: &[u8]) -> Option<Tlv<'_>> {
        let (&tag, rest) = input.split_first()?;
        let (&first, mut rest) = rest.split_first()?;
        let mut header = 2;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            let (bytes, after) = rest.split_at_checked(count)?;
            rest = after;
            header += count;
            bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        let (contents, after) = rest.split_at_checked(len)?;
        Some((tag, contents, input.get(..header + len)?, after))
    }
    let (_, certificate, _, _) = tlv(der)?;
    let (_, tbs, _, _) = tlv(certificate)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.3;
    }
    for _ in 0..5 {
        // serialNumber, signature, issuer, validity, subject
        rest = tlv(rest)?.3;
    }
    Some(tlv(rest)?.2)
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
    /// Token requests received.
    pub token_requests: usize,
    /// Token requests received, by the `job_id` claim of the client assertion (read, not
    /// verified; `-` without one): how often each job's identity was asked for.
    pub token_requests_by_job: BTreeMap<String, usize>,
    /// The lifetime of the access tokens issued, seconds (`expires_in`). Defaults to 3599.
    pub token_lifetime: u64,
    /// The form fields of the last token request (the assertion replaced by its length).
    pub last_form: BTreeMap<String, String>,
    /// Certificates registered on apps: client id to certificates.
    pub certificates: BTreeMap<String, Vec<RegisteredCertificate>>,
    /// User-assigned identities the identity endpoint issues tokens for: client id to principal
    /// id.
    pub identities: BTreeMap<String, String>,
    /// When set, the App Service form of the identity endpoint requires this
    /// `X-IDENTITY-HEADER`.
    pub identity_header: Option<String>,
    /// Requests to the identity endpoint.
    pub identity_requests: usize,
    /// Fetches of external issuers' discovery documents and JWKS.
    pub issuer_fetches: usize,
    /// The claims of the last client assertion judged (never its signature), for tests.
    pub last_assertion: Value,
    /// The key that signs the managed identities' tokens (Entra's own).
    signer: RsaKey,
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
            token_requests: 0,
            token_requests_by_job: BTreeMap::new(),
            token_lifetime: 3599,
            last_form: BTreeMap::new(),
            certificates: BTreeMap::new(),
            identities: BTreeMap::new(),
            identity_header: None,
            identity_requests: 0,
            issuer_fetches: 0,
            last_assertion: Value::Null,
            signer: RsaKey::fixture_2048_rotated().with_kid("entra-stand-in"),
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

    /// Entra's issuer for the tenant, as a managed identity's tokens name it.
    pub fn entra_issuer(&self) -> String {
        let tenant = self.state.lock().unwrap().tenant.clone();
        entra_issuer(&tenant)
    }

    /// The IMDS-like identity endpoint (`Metadata: true`).
    pub fn imds_url(&self) -> String {
        format!("{}/metadata/identity/oauth2/token", self.url())
    }

    /// The App Service-like identity endpoint (`X-IDENTITY-HEADER`), i.e. `IDENTITY_ENDPOINT`.
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.url())
    }

    /// Lets `app` be reached with assertions from `issuer` for `subject`, audience
    /// `api://AzureADTokenExchange` (a broker that is its own issuer, or any other).
    pub fn trust_issuer(&self, app: &str, issuer: &str, subject: &str) {
        self.update(|s| trust(s, app, issuer, subject));
    }

    /// Registers the user-assigned identity (`client_id`, `principal_id`) with the identity
    /// endpoint and lets `app` be reached with its tokens.
    pub fn trust_managed_identity(&self, app: &str, client_id: &str, principal_id: &str) {
        self.update(|s| {
            s.identities.insert(client_id.to_owned(), principal_id.to_owned());
            let issuer = entra_issuer(&s.tenant);
            trust(s, app, &issuer, principal_id);
        });
    }

    /// Registers a PEM certificate on `app`; `false` when it does not parse.
    pub fn trust_certificate(&self, app: &str, pem: &str) -> bool {
        let Some(certificate) = RegisteredCertificate::from_pem(pem) else { return false };
        self.update(|s| s.certificates.entry(app.to_owned()).or_default().push(certificate));
        true
    }

    /// Removes `app`'s federated credentials for `issuer` (all of them for `None`).
    pub fn distrust(&self, app: &str, issuer: Option<&str>) {
        self.update(|s| {
            if let Some(list) = s.apps.get_mut(app) {
                list.retain(|c| issuer.is_some_and(|i| c.issuer != i));
            }
        });
    }

    /// Requires this `X-IDENTITY-HEADER` at the App Service form of the identity endpoint.
    pub fn set_identity_header(&self, header: &str) {
        self.update(|s| s.identity_header = Some(header.to_owned()));
    }

    /// Requests to the identity endpoint so far.
    pub fn identity_requests(&self) -> usize {
        self.state.lock().unwrap().identity_requests
    }

    /// Fetches of external issuers' documents so far.
    pub fn issuer_fetches(&self) -> usize {
        self.state.lock().unwrap().issuer_fetches
    }

    /// The claims of the last client assertion judged.
    pub fn last_assertion(&self) -> Value {
        self.state.lock().unwrap().last_assertion.clone()
    }
}

fn entra_issuer(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/v2.0")
}

fn trust(state: &mut EntraState, app: &str, issuer: &str, subject: &str) {
    let list = state.apps.entry(app.to_owned()).or_default();
    if !list.iter().any(|c| c.issuer == issuer && c.subject == subject) {
        list.push(FederatedCredential {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            audience: crate::AUDIENCE.to_owned(),
        });
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
        50166 => ("invalid_client", 401, "Request to External OIDC endpoint failed."),
        7000272 => ("invalid_client", 401, "The signing key with identifier was not found in the metadata of the issuer of the assertion."),
        700023 => ("invalid_client", 401, "Client assertion audience claim does not match Realm issuer."),
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
            "stats" => Response::json(
                200,
                &json!({"token_requests": state.token_requests, "last_form": state.last_form,
                        "token_requests_by_job": state.token_requests_by_job,
                        "identity_requests": state.identity_requests,
                        "issuer_fetches": state.issuer_fetches,
                        "last_assertion": state.last_assertion})
                .to_string(),
            ),
            "lifetime" => {
                state.token_lifetime = body["seconds"].as_u64().unwrap_or(3599);
                Response::json(200, &json!({"seconds": state.token_lifetime}).to_string())
            }
            "trust" => control_trust(&mut state, &body),
            "distrust" => {
                let app = body["client_id"].as_str().unwrap_or_default().to_owned();
                let issuer = body["issuer"].as_str();
                if let Some(list) = state.apps.get_mut(&app) {
                    list.retain(|c| issuer.is_some_and(|i| c.issuer != i));
                }
                if issuer.is_none() {
                    state.certificates.remove(&app);
                }
                Response::json(200, &json!({"client_id": app}).to_string())
            }
            "identity" => {
                if let Some(header) = body["header"].as_str() {
                    state.identity_header = Some(header.to_owned());
                }
                if let (Some(client), Some(principal)) =
                    (body["client_id"].as_str(), body["principal_id"].as_str())
                {
                    state.identities.insert(client.to_owned(), principal.to_owned());
                }
                Response::json(200, &json!({"identities": state.identities}).to_string())
            }
            _ => Response::json(404, r#"{"error":"unknown control"}"#),
        };
    }
    if path == "/metadata/identity/oauth2/token" || path == "/msi/token" {
        return identity_endpoint(shared, request, &path);
    }
    let form = form_decode(&request.body);
    let behaviour = {
        let mut state = shared.lock().unwrap();
        state.token_requests += 1;
        let job = form
            .get("client_assertion")
            .and_then(|a| split_jwt(a))
            .and_then(|(_, claims, _, _)| {
                claims
                    .get("job_id")
                    .map(|j| j.as_str().map_or_else(|| j.to_string(), str::to_owned))
            })
            .unwrap_or_else(|| "-".to_owned());
        *state.token_requests_by_job.entry(job).or_default() += 1;
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
    let (tenant, apps, lifetime) = {
        let state = shared.lock().unwrap();
        (state.tenant.clone(), state.apps.clone(), state.token_lifetime)
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
    let client_id = form["client_id"].clone();
    let certificates = shared.lock().unwrap().certificates.get(&client_id).cloned();
    let credentials = match (apps.get(&client_id), &certificates) {
        (Some(credentials), _) => credentials.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => {
            return entra_error(700016, &format!(" Application '{client_id}'."));
        }
    };
    let credentials = &credentials;
    let Some((header, claims, signing_input, signature)) = split_jwt(assertion) else {
        return entra_error(50027, "");
    };
    {
        let mut state = shared.lock().unwrap();
        state.last_assertion = json!({"header": header, "claims": claims});
    }
    let own_assertion = claims["iss"].as_str() == Some(client_id.as_str())
        && claims["sub"].as_str() == Some(client_id.as_str());
    if own_assertion && (header.get("x5t#S256").is_some() || header.get("x5t").is_some()) {
        return judge_certificate(
            &tenant,
            &client_id,
            certificates.as_deref().unwrap_or_default(),
            (&header, &claims, signing_input.as_bytes(), &signature),
            (&resources, lifetime),
        );
    }
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
    // Entra checks its own tokens (a managed identity's) itself; for any other issuer it fetches
    // the discovery document and JWKS, and keeps the first 100 keys.
    let jwks = if iss == entra_issuer(&tenant) {
        let state = shared.lock().unwrap();
        json!({"keys": [state.signer.jwk()]})
    } else {
        shared.lock().unwrap().issuer_fetches += 1;
        let Some(mut jwks) = fetch_jwks(iss) else {
            return entra_error(50166, &format!(" Issuer '{iss}'."));
        };
        if let Some(keys) = jwks["keys"].as_array_mut() {
            keys.truncate(100);
        }
        jwks
    };
    let known =
        jwks["keys"].as_array().is_some_and(|keys| keys.iter().any(|k| k["kid"] == header["kid"]));
    if !known {
        return entra_error(
            7000272,
            &format!(" Key id '{}'.", header["kid"].as_str().unwrap_or_default()),
        );
    }
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
    issue(&tenant, &client_id, sub, &resources, lifetime)
}

/// The certificate branch: `iss` = `sub` = the client id, signed with a registered certificate.
fn judge_certificate(
    tenant: &str,
    client_id: &str,
    certificates: &[RegisteredCertificate],
    (header, claims, input, signature): (&Value, &Value, &[u8], &[u8]),
    (resources, lifetime): (&std::collections::BTreeSet<&str>, u64),
) -> Response {
    use rsa::signature::Verifier as _;
    let aud = claims["aud"].as_str().unwrap_or_default();
    if !aud.ends_with(&format!("/{tenant}/oauth2/v2.0/token")) {
        return entra_error(700023, &format!(" Audience '{aud}'."));
    }
    let (certificate, verified) = match header["alg"].as_str() {
        Some("PS256") => {
            let found = certificates.iter().find(|c| header["x5t#S256"] == c.x5t_s256.as_str());
            let ok = found.is_some_and(|c| {
                let key =
                    rsa::pss::VerifyingKey::<sha2::Sha256>::new_with_salt_len(c.key.clone(), 32);
                rsa::pss::Signature::try_from(signature)
                    .is_ok_and(|sig| key.verify(input, &sig).is_ok())
            });
            (found, ok)
        }
        Some("RS256") => {
            let found = certificates.iter().find(|c| header["x5t"] == c.x5t.as_str());
            let ok = found.is_some_and(|c| {
                let key = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(c.key.clone());
                rsa::pkcs1v15::Signature::try_from(signature)
                    .is_ok_and(|sig| key.verify(input, &sig).is_ok())
            });
            (found, ok)
        }
        _ => (None, false),
    };
    if certificate.is_none() {
        return entra_error(700027, " [Reason - The key was not found.]");
    }
    if !verified {
        return entra_error(700027, "");
    }
    let now = unix_now();
    let (exp, nbf) = (claims["exp"].as_u64().unwrap_or(0), claims["nbf"].as_u64().unwrap_or(0));
    if now > exp + 300 || now + 300 < nbf {
        return entra_error(700024, "");
    }
    issue(tenant, client_id, client_id, resources, lifetime)
}

/// The success answer: an access token for the app and resource.
fn issue(
    tenant: &str,
    client_id: &str,
    sub: &str,
    resources: &std::collections::BTreeSet<&str>,
    lifetime: u64,
) -> Response {
    let now = unix_now();
    let trace = uuid();
    let resource = resources.iter().next().copied().unwrap_or_default();
    let access = json!({"aud": resource, "iss": format!("https://sts.windows.net/{tenant}/"), "appid": client_id, "sub": sub, "tid": tenant, "iat": now, "exp": now + lifetime, "uti": trace});
    let access_token = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"RS256","kid":"stand-in"}"#),
        URL_SAFE_NO_PAD.encode(access.to_string()),
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    let body = json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access_token});
    entra_headers(Response::json(200, &body.to_string()), &trace)
}

/// `POST /_control/trust`: `{"client_id", "issuer", "subject"}`, `{"client_id",
/// "managed_identity": {"client_id", "principal_id"}}` or `{"client_id", "certificate": PEM}`.
fn control_trust(state: &mut EntraState, body: &Value) -> Response {
    let Some(app) = body["client_id"].as_str().map(str::to_owned) else {
        return Response::json(400, r#"{"error":"client_id is required"}"#);
    };
    if let (Some(issuer), Some(subject)) = (body["issuer"].as_str(), body["subject"].as_str()) {
        trust(state, &app, issuer, subject);
    } else if let Some(mi) = body.get("managed_identity") {
        let (Some(client), Some(principal)) =
            (mi["client_id"].as_str(), mi["principal_id"].as_str())
        else {
            return Response::json(
                400,
                r#"{"error":"managed_identity needs client_id and principal_id"}"#,
            );
        };
        state.identities.insert(client.to_owned(), principal.to_owned());
        let issuer = entra_issuer(&state.tenant);
        trust(state, &app, &issuer, principal);
    } else if let Some(pem) = body["certificate"].as_str() {
        let Some(certificate) = RegisteredCertificate::from_pem(pem) else {
            return Response::json(400, r#"{"error":"certificate is not a PEM RSA certificate"}"#);
        };
        state.certificates.entry(app.clone()).or_default().push(certificate);
    } else {
        return Response::json(
            400,
            r#"{"error":"give issuer and subject, managed_identity or certificate"}"#,
        );
    }
    let issuers: Vec<&str> =
        state.apps.get(&app).into_iter().flatten().map(|c| c.issuer.as_str()).collect();
    Response::json(200, &json!({"client_id": app, "issuers": issuers, "certificates": state.certificates.get(&app).map_or(0, Vec::len)}).to_string())
}

/// The identity endpoint: IMDS (`/metadata/identity/oauth2/token`, `Metadata: true`) or App
/// Service (`/msi/token`, `X-IDENTITY-HEADER`), issuing a registered identity's token for the
/// requested resource, signed with Entra's own key.
fn identity_endpoint(shared: &Mutex<EntraState>, request: &Request, path: &str) -> Response {
    let mut state = shared.lock().unwrap();
    state.identity_requests += 1;
    let query: BTreeMap<String, String> =
        form_decode(request.path.split_once('?').map_or("", |(_, q)| q).as_bytes());
    let imds = path == "/metadata/identity/oauth2/token";
    if request.method != "GET" {
        return Response::json(
            405,
            r#"{"error":"invalid_request","error_description":"GET only"}"#,
        );
    }
    if imds && request.headers.get("metadata").map(String::as_str) != Some("true") {
        return Response::json(
            400,
            r#"{"error":"invalid_request","error_description":"Required metadata header not specified"}"#,
        );
    }
    if !imds && request.headers.get("x-identity-header") != state.identity_header.as_ref() {
        return Response::json(401, r#"{"statusCode":401,"message":"Unauthorized"}"#);
    }
    let version = if imds { "2018-02-01" } else { "2019-08-01" };
    if query.get("api-version").map(String::as_str) != Some(version) {
        return Response::json(400, &json!({"error": "invalid_request", "error_description": format!("api-version {version} is required")}).to_string());
    }
    let Some(resource) = query.get("resource").filter(|r| !r.is_empty()).cloned() else {
        return Response::json(
            400,
            r#"{"error":"invalid_request","error_description":"resource is required"}"#,
        );
    };
    let client = query.get("client_id").cloned().unwrap_or_default();
    let Some(principal) = state.identities.get(&client).cloned() else {
        return Response::json(
            400,
            r#"{"error":"invalid_request","error_description":"Identity not found"}"#,
        );
    };
    let now = unix_now();
    let claims = json!({"aud": resource, "iss": entra_issuer(&state.tenant), "iat": now, "nbf": now,
        "exp": now + 86_399, "sub": principal, "oid": principal, "tid": state.tenant,
        "azp": client, "appid": client, "idtyp": "app", "uti": uuid()});
    let token = crate::mint(&crate::Key::Rsa(&state.signer, "RS256"), &claims);
    let expires_on = now + 86_399;
    // IMDS sends every number as a string; the App Service form sends `expires_on` as a number.
    let expires: Value = if imds { json!(expires_on.to_string()) } else { json!(expires_on) };
    Response::json(
        200,
        &json!({"access_token": token, "client_id": client, "expires_in": "86399",
        "expires_on": expires, "ext_expires_in": "86399", "not_before": now.to_string(),
        "resource": resource, "token_type": "Bearer"})
        .to_string(),
    )
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
