//! The broker end to end on loopback: a small broker built from the core's public API (what the
//! Envoy filter does, minus Envoy), the GitLab and Entra stand-ins, and the CLI's job side.
//!
//! For each broker credential (issuer, managed identity, certificate): the job's own token is
//! refused at Entra while the same job gets its token through the broker; a denied job gets 403
//! and Entra sees nothing; a token for `api://AzureADTokenExchange` is refused by the broker.
//! Assertions verify against the published JWKS with openssl, rotation publishes before it
//! signs, and no log line, reply or upstream header holds a key, an assertion or a token.

use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gitlab_azure_oidc::broker::vend::{self, Explain, VendReply};
use gitlab_azure_oidc::broker::{BrokerConfig, ConfigMode, VendKind, VendRequest};
use gitlab_azure_oidc::policy::Policy;
use gitlab_azure_oidc::{Failure, Gate, GateConfig, Jwks, VerifierConfig};
use ring::rand::SystemRandom;
use serde_json::{json, Value};
use testkit::entra::{Behaviour, Entra};
use testkit::http::{Request, Response, Server};
use testkit::issuer::Issuer;
use testkit::{RsaKey, CLIENT_ID, TENANT};

const BIN: &str = env!("CARGO_BIN_EXE_gitlab-azure-oidc");
const UAMI_CLIENT: &str = "0b9a3c6e-8f1d-4e2a-9c7b-5d4e3f2a1b0c";
const UAMI_PRINCIPAL: &str = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
const SCOPE: &str = "https://management.azure.com/.default";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn testdata(name: &str) -> String {
    let path = format!("{}/../src/entra/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

/// The next key of the broker's issuer, generated once per test run.
fn next_key() -> &'static RsaKey {
    static KEY: OnceLock<RsaKey> = OnceLock::new();
    KEY.get_or_init(|| RsaKey::generate(2048))
}

fn policy(broker_rules: bool) -> Policy {
    let azure = |credential: Value| json!({"tenant": TENANT, "client_id": CLIENT_ID, "scopes": [SCOPE], "credential": credential});
    let mut rules = vec![
        json!({"name": "no-merge-requests", "effect": "deny", "when": {"pipeline_source": "merge_request_event"}}),
        json!({"name": "via-issuer", "effect": "allow", "when": {"project_id": "4242", "ref": "main", "ref_protected": true}, "azure": azure(json!("issuer"))}),
        json!({"name": "via-identity", "effect": "allow", "when": {"project_id": "4242", "ref": "identity"},
               "azure": azure(json!({"type": "managed-identity", "client_id": UAMI_CLIENT, "principal_id": UAMI_PRINCIPAL}))}),
        json!({"name": "via-certificate", "effect": "allow", "when": {"project_id": "4242", "ref": "certificate"},
               "azure": azure(json!({"type": "certificate", "name": "app-cert"}))}),
    ];
    if !broker_rules {
        rules.truncate(1);
    }
    Policy::parse(json!({"rules": rules}).to_string().as_bytes()).unwrap()
}

/// What the broker logs, answers and sends upstream, for the secrets check.
type Log = Arc<Mutex<Vec<String>>>;

/// The issuer's documents, served without the gate's lock (Entra fetches them while the gate
/// waits for Entra).
struct Documents {
    discovery_path: String,
    discovery: String,
    jwks_path: String,
    jwks: String,
}

/// A broker on loopback: the core's gate behind `POST /token`, the issuer's documents beside.
struct Broker {
    server: Server,
    gate: Arc<Mutex<Option<Gate>>>,
    documents: Arc<Mutex<Option<Documents>>>,
    log: Log,
}

impl Broker {
    fn start(stage: &Stage, signing: &RsaKey, published: &RsaKey) -> Self {
        let gate: Arc<Mutex<Option<Gate>>> = Arc::new(Mutex::new(None));
        let documents: Arc<Mutex<Option<Documents>>> = Arc::new(Mutex::new(None));
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let server = {
            let (gate, documents, log) = (gate.clone(), documents.clone(), log.clone());
            Server::start(move |request| handle(&gate, &documents, &log, request))
        };
        let broker = Self { server, gate, documents, log };
        broker.configure(stage, signing, published);
        broker
    }

    /// (Re)configures the broker: its issuer signs with `signing` and publishes `published`.
    fn configure(&self, stage: &Stage, signing: &RsaKey, published: &RsaKey) {
        let env = |name: &str| match name {
            "SIGNING_KEY" => Some(signing.private_pem()),
            "NEXT_KEY" => Some(published.private_pem()),
            "APP_KEY" => Some(testdata("rsa-2048.key.pem")),
            "APP_CERT" => Some(testdata("rsa-2048.cert.pem")),
            _ => None,
        };
        let document = json!({
            "issuer": {"url": self.url(), "keys": [
                {"private_key": {"env": "SIGNING_KEY"}, "use": "signing"},
                {"private_key": {"env": "NEXT_KEY"}, "use": "published"}]},
            "managed_identity": {"endpoint": "imds", "dangerous_url": stage.entra.imds_url()},
            "certificates": {"app-cert": {"private_key": {"env": "APP_KEY"}, "certificate": {"env": "APP_CERT"}}},
        });
        let config =
            BrokerConfig::parse(document.to_string().as_bytes(), &env, ConfigMode::Broker).unwrap();
        let issuer = config.issuer.clone().unwrap();
        let verifier =
            VerifierConfig::builder(stage.issuer.url()).audience(self.url()).build().unwrap();
        let gate_config = GateConfig::builder(verifier)
            .policy(policy(true))
            .broker(&config)
            .dangerous()
            .authority_url(stage.entra.url())
            .build()
            .unwrap();
        let mut gate = Gate::new(gate_config);
        let jwks = ureq::get(&stage.issuer.jwks_url()).call().unwrap().into_string().unwrap();
        gate.install_jwks(Jwks::parse(jwks.as_bytes()).unwrap());
        *self.documents.lock().unwrap() = Some(Documents {
            discovery_path: issuer.discovery_path(),
            discovery: issuer.discovery_document(),
            jwks_path: issuer.jwks_path(),
            jwks: issuer.jwks_document(),
        });
        *self.gate.lock().unwrap() = Some(gate);
    }

    fn url(&self) -> String {
        self.server.url()
    }

    fn jwks(&self) -> String {
        self.documents.lock().unwrap().as_ref().unwrap().jwks.clone()
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn handle(
    gate: &Mutex<Option<Gate>>,
    documents: &Mutex<Option<Documents>>,
    log: &Mutex<Vec<String>>,
    request: &Request,
) -> Response {
    let path = request.path.split('?').next().unwrap_or_default();
    if let Some(docs) = documents.lock().unwrap().as_ref() {
        if path == docs.discovery_path {
            return Response::json(200, &docs.discovery);
        }
        if path == docs.jwks_path {
            return Response::json(200, &docs.jwks);
        }
    }
    if path != "/token" {
        return Response::json(404, r#"{"error":"not-found"}"#);
    }
    let headers: Vec<(String, String)> =
        request.headers.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    let mut guard = gate.lock().unwrap();
    let Some(gate) = guard.as_mut() else { return Response::json(503, "{}") };
    let reply = match vend_one(gate, &request.method, &headers, &request.body, log) {
        Ok(reply) => reply,
        Err(failure) => {
            let reply = vend::error_reply(&failure, Explain::Rules);
            log.lock().unwrap().push(format!("refused: {failure} ({failure:?}) -> {}", reply.body));
            reply
        }
    };
    log.lock().unwrap().extend(gate.take_audit());
    log.lock().unwrap().push(format!("reply: {reply:?}"));
    Response {
        status: reply.status,
        headers: reply.headers,
        body: reply.body.into_bytes(),
        delay: None,
    }
}

/// One vending request, in the order the core's module documentation gives.
fn vend_one(
    gate: &mut Gate,
    method: &str,
    headers: &[(String, String)],
    body: &[u8],
    log: &Mutex<Vec<String>>,
) -> Result<VendReply, Failure> {
    let rng = SystemRandom::new();
    let request = VendRequest::parse(method, headers, body)?;
    log.lock().unwrap().push(format!("vend: {request:?}"));
    let now = now();
    let admission = gate.admit(request.token(), now)?;
    vend::check_scope(&admission, request.scope())?;
    if request.kind() == VendKind::Assertion {
        let vended = gate.vend_assertion(&admission, now, &rng)?;
        log.lock().unwrap().push(format!("vended: {vended:?}"));
        return Ok(vend::assertion_reply(&vended));
    }
    if let Some(identity) = gate.identity_request(&admission, now) {
        log.lock().unwrap().push(format!("upstream: {identity:?}"));
        let (status, headers, body) = send(identity.method, &identity.url, &identity.headers, "");
        gate.install_identity_token(&identity, status, &headers, &body, now)?;
    }
    let entra = gate.request(&admission, request.token(), now, &rng)?;
    log.lock().unwrap().push(format!("upstream: {entra:?}"));
    let (status, headers, body) = send(entra.method, &entra.url, &entra.headers, &entra.body);
    let access =
        gate.finish(entra.request_id().unwrap_or_default(), status, &headers, &body, now)?;
    let tenant = admission.target().map(|t| t.tenant().to_owned()).unwrap_or_default();
    Ok(vend::access_token_reply(&access, &tenant))
}

fn send(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &str,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    let mut request = agent.request(method, url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = if method == "GET" { request.call() } else { request.send_string(body) };
    let response = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return (599, Vec::new(), e.to_string().into_bytes()),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_owned())))
        .collect();
    let mut bytes = Vec::new();
    let _ = std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes);
    (status, headers, bytes)
}

/// The stand-ins, with an Entra app that does not trust the GitLab issuer: only the broker's
/// credentials reach it.
struct Stage {
    issuer: Issuer,
    entra: Entra,
}

fn stage() -> Stage {
    let (issuer, entra) = testkit::stand_ins(&RsaKey::fixture_2048());
    entra.distrust(CLIENT_ID, Some(&issuer.url()));
    Stage { issuer, entra }
}

/// The stage and a broker that Entra trusts with all three credentials.
fn broker_stage() -> (Stage, Broker) {
    let stage = stage();
    let broker = Broker::start(&stage, &RsaKey::fixture_3072(), next_key());
    stage.entra.trust_issuer(CLIENT_ID, &broker.url(), "gitlab-azure-oidc:rule:via-issuer");
    stage.entra.trust_managed_identity(CLIENT_ID, UAMI_CLIENT, UAMI_PRINCIPAL);
    assert!(stage.entra.trust_certificate(CLIENT_ID, &testdata("rsa-2048.cert.pem")));
    (stage, broker)
}

fn mint(stage: &Stage, broker: &Broker, overrides: Value) -> String {
    let mut claims = json!({"aud": broker.url()});
    for (k, v) in overrides.as_object().unwrap() {
        claims[k] = v.clone();
    }
    stage.issuer.mint(&claims)
}

fn cli(args: &[&str], token: &str) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITLAB_OIDC_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The job posts its own token to Entra, as `az login --federated-token` would.
fn straight_to_entra(stage: &Stage, token: &str) -> Output {
    cli(
        &[
            "exchange",
            "--authority-url",
            &stage.entra.url(),
            "--tenant",
            TENANT,
            "--client-id",
            CLIENT_ID,
        ],
        token,
    )
}

fn post(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Vec<(String, String)>, Value) {
    let headers: Vec<(String, String)> =
        headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
    let (status, headers, body) = send("POST", url, &headers, body);
    (status, headers, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[test]
fn each_broker_credential_serves_the_job_while_its_own_token_is_refused() {
    let (stage, broker) = broker_stage();
    let cases = [
        ("main", "via-issuer", broker.url()),
        ("identity", "via-identity", stage.entra.entra_issuer()),
        ("certificate", "via-certificate", CLIENT_ID.to_owned()),
    ];
    for (git_ref, rule, assertion_issuer) in cases {
        let token = mint(&stage, &broker, json!({"ref": git_ref}));
        // Straight to Entra: refused, whatever audience the job asked GitLab for.
        for own in [token.clone(), stage.issuer.mint(&json!({"ref": git_ref}))] {
            let out = straight_to_entra(&stage, &own);
            assert_eq!(out.status.code(), Some(1), "{rule}: {}", text(&out.stderr));
            assert!(text(&out.stderr).contains("AADSTS700211"), "{rule}: {}", text(&out.stderr));
        }
        // Through the broker: the token, in az's JSON.
        let out = cli(&["exchange", "--broker", &broker.url(), "--output", "json"], &token);
        assert_eq!(out.status.code(), Some(0), "{rule}: {}", text(&out.stderr));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["tenant"], TENANT);
        assert_eq!(doc["tokenType"], "Bearer");
        assert!(doc["accessToken"].as_str().unwrap().split('.').count() == 3);
        assert!(doc["expires_on"].as_u64().unwrap() > now());
        let seen = stage.entra.last_assertion();
        assert_eq!(seen["claims"]["iss"], assertion_issuer.as_str(), "{rule}: {seen}");
        assert!(!text(&out.stderr).contains(&token));
    }
    // The managed identity's token was fetched once and reused.
    assert_eq!(stage.entra.identity_requests(), 1);
    // The stand-in fetched the broker's documents through the broker's own routes.
    assert!(stage.entra.issuer_fetches() >= 1);
}

#[test]
fn a_denied_job_gets_403_and_entra_sees_no_request() {
    let (stage, broker) = broker_stage();
    let before = stage.entra.token_requests();
    for overrides in [json!({"pipeline_source": "merge_request_event"}), json!({"ref": "feature"})]
    {
        let token = mint(&stage, &broker, overrides);
        let out = cli(&["exchange", "--broker", &broker.url()], &token);
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with("error: policy-denied: the broker refused (HTTP 403): deny:"),
            "{stderr}"
        );
        assert!(stderr.contains("hint: rule via-issuer:"), "the rules' explanation: {stderr}");
        let (status, headers, body) = post(
            &format!("{}/token", broker.url()),
            &[("Authorization", &format!("Bearer {token}"))],
            "",
        );
        assert_eq!((status, body["error"].as_str()), (403, Some("policy-denied")));
        assert!(headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("www-authenticate")
                && v.contains("insufficient_scope")));
    }
    assert_eq!(stage.entra.token_requests(), before, "Entra saw nothing");
    assert_eq!(stage.entra.identity_requests(), 0);
}

#[test]
fn a_token_for_entras_audience_is_refused_by_the_broker() {
    let (stage, broker) = broker_stage();
    let old = stage.issuer.mint(&json!({}));
    let out = cli(&["exchange", "--broker", &broker.url()], &old);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: audience-mismatch: the broker refused (HTTP 401)"),
        "{stderr}"
    );
    assert!(stderr.contains("api://AzureADTokenExchange"), "{stderr}");
    assert_eq!(stage.entra.token_requests(), 0);
    // And a broker cannot be configured to accept it.
    let verifier = VerifierConfig::builder(stage.issuer.url())
        .audience("api://AzureADTokenExchange")
        .build()
        .unwrap();
    let config = BrokerConfig::parse(
        json!({"certificates": {"app-cert": {"private_key": {"value": testdata("rsa-2048.key.pem")}, "certificate": {"value": testdata("rsa-2048.cert.pem")}}}, "managed_identity": {"endpoint": "imds"}, "issuer": {"url": broker.url(), "keys": [{"private_key": {"value": RsaKey::fixture_3072().private_pem()}, "use": "signing"}]}}).to_string().as_bytes(),
        &|_| None,
        ConfigMode::Broker,
    )
    .unwrap();
    let error =
        GateConfig::builder(verifier).policy(policy(true)).broker(&config).build().unwrap_err();
    assert_eq!(error.kind(), "broker-audience", "{error}");
}

#[test]
fn assertion_vending_lets_the_jobs_own_tools_redeem_it() {
    let (stage, broker) = broker_stage();
    let token = mint(&stage, &broker, json!({}));
    let dir = std::env::temp_dir().join(format!("gao-broker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("azure-federated-token");
    let path = file.display().to_string();
    let out = cli(
        &["exchange", "--broker", &broker.url(), "--assertion-file", &path, "--output", "env"],
        &token,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        format!("export AZURE_FEDERATED_TOKEN_FILE='{path}'"),
        format!("export AZURE_CLIENT_ID='{CLIENT_ID}'"),
        format!("export AZURE_TENANT_ID='{TENANT}'"),
        format!("export ARM_OIDC_TOKEN_FILE_PATH='{path}'"),
    ] {
        assert!(stdout.contains(&line), "{line} in {stdout}");
    }
    let assertion = std::fs::read_to_string(&file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(!stdout.contains(&assertion));
    // The job's own tool posts it to Entra as `az login --federated-token` does.
    let form = format!(
        "client_id={CLIENT_ID}&scope={}&grant_type=client_credentials&client_assertion_type={}&client_assertion={assertion}",
        SCOPE.replace(':', "%3A").replace('/', "%2F"),
        "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
    );
    let (status, _, body) = post(
        &format!("{}/{TENANT}/oauth2/v2.0/token", stage.entra.url()),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &form,
    );
    assert_eq!(status, 200, "{body}");
    let claims = &stage.entra.last_assertion()["claims"];
    assert_eq!(claims["sub"], "gitlab-azure-oidc:rule:via-issuer");
    assert_eq!(claims["job_id"], "5550001");
    // An assertion is only for issuer rules.
    let identity = mint(&stage, &broker, json!({"ref": "identity"}));
    let out = cli(&["exchange", "--broker", &broker.url(), "--assertion-file", &path], &identity);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: assertion-unavailable:"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn vending_answers_as_az_and_refuses_as_documented() {
    let (stage, broker) = broker_stage();
    let url = format!("{}/token", broker.url());
    let token = mint(&stage, &broker, json!({}));
    let bearer = format!("Bearer {token}");
    let (status, headers, body) = post(&url, &[("Authorization", &bearer)], "");
    assert_eq!(status, 200, "{body}");
    let members: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        members,
        ["accessToken", "expiresOn", "expires_on", "subscription", "tenant", "tokenType"]
    );
    assert!(body["subscription"].is_null());
    assert!(headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("cache-control") && v == "no-store"));
    let expected = vend::az_utc(body["expires_on"].as_u64().unwrap());
    assert_eq!(body["expiresOn"], expected.as_str());

    let no_headers: &[(&str, &str)] = &[];
    let basic: &[(&str, &str)] = &[("Authorization", "Basic dXNlcjpwYXNz")];
    let ours: &[(&str, &str)] = &[("Authorization", &bearer)];
    let garbage: &[(&str, &str)] = &[("Authorization", "Bearer not.a.token")];
    let cases = [
        (no_headers, "", 401, "missing-token"),
        (basic, "", 401, "missing-token"),
        (ours, r#"{"scope":"https://vault.azure.net/.default"}"#, 403, "scope-not-allowed"),
        (ours, r#"{"kind":"refresh_token"}"#, 400, "bad-request"),
        (garbage, "", 401, "base64"),
    ];
    for (headers, body, status, kind) in cases {
        let (got, _, doc) = post(&url, headers, body);
        assert_eq!((got, doc["error"].as_str().unwrap_or_default()), (status, kind), "{doc}");
        assert!(doc["message"].is_string(), "{doc}");
    }
    let (status, headers, _) = send("GET", &url, &[], "");
    assert_eq!(status, 405);
    assert!(headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("allow") && v == "POST"));

    // Entra throttles: 429 with Retry-After; Entra is down: 503.
    let tag = mint(&stage, &broker, json!({"ref": "certificate"}));
    stage.entra.update(|s| {
        s.behaviour = Behaviour::Status(429, Some("7".into()));
        s.behaviour_times = Some(1);
    });
    let (status, headers, doc) = post(&url, &[("Authorization", &format!("Bearer {tag}"))], "");
    assert_eq!((status, doc["error"].as_str()), (429, Some("rate-limited")), "{doc}");
    assert!(headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("retry-after") && v == "7"));
    stage.entra.update(|s| {
        s.behaviour = Behaviour::Status(503, None);
        s.behaviour_times = Some(1);
    });
    let (status, _, _) = post(&url, &[("Authorization", &format!("Bearer {tag}"))], "");
    assert_eq!(status, 503);
    // The CLI honours the broker's Retry-After once.
    stage.entra.update(|s| {
        s.behaviour = Behaviour::Status(429, Some("1".into()));
        s.behaviour_times = Some(1);
    });
    let out = cli(&["exchange", "--broker", &broker.url(), "--verbose"], &tag);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("retrying once in 1 s"), "{}", text(&out.stderr));
}

/// An RSA public key in SubjectPublicKeyInfo PEM from a JWK's `n` and `e`: what openssl reads.
fn spki_pem(jwk: &Value) -> String {
    use base64::Engine as _;
    let b64url = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap();
    fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = contents.len();
        if len < 0x80 {
            out.push(u8::try_from(len).unwrap());
        } else {
            let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
            out.push(0x80 | u8::try_from(bytes.len()).unwrap());
            out.extend(bytes);
        }
        out.extend_from_slice(contents);
        out
    }
    let integer = |bytes: Vec<u8>| {
        let mut v = bytes;
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        der(0x02, &v)
    };
    let rsa_key = der(
        0x30,
        &[integer(b64url(jwk["n"].as_str().unwrap())), integer(b64url(jwk["e"].as_str().unwrap()))]
            .concat(),
    );
    let algorithm = der(
        0x30,
        &[der(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]), vec![0x05, 0x00]]
            .concat(),
    );
    let spki = der(0x30, &[algorithm, der(0x03, &[&[0u8][..], &rsa_key].concat())].concat());
    let body = base64::engine::general_purpose::STANDARD.encode(spki);
    let lines: Vec<&str> =
        body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
}

/// Verifies an RS256 JWS with openssl against the key of its `kid` in `jwks`.
fn openssl_verifies(jws: &str, jwks: &str) -> bool {
    use base64::Engine as _;
    let decode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap();
    let header: Value = serde_json::from_slice(&decode(jws.split('.').next().unwrap())).unwrap();
    let jwks: Value = serde_json::from_str(jwks).unwrap();
    let Some(jwk) = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"])
    else {
        return false;
    };
    let dir = std::env::temp_dir().join(format!(
        "gao-openssl-{}-{}",
        std::process::id(),
        testkit::uuid()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, signature) = jws.rsplit_once('.').unwrap();
    std::fs::write(dir.join("pub.pem"), spki_pem(jwk)).unwrap();
    std::fs::write(dir.join("sig"), decode(signature)).unwrap();
    std::fs::write(dir.join("input"), input).unwrap();
    let ok = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(dir.join("pub.pem"))
        .arg("-signature")
        .arg(dir.join("sig"))
        .arg(dir.join("input"))
        .output()
        .unwrap()
        .status
        .success();
    let _ = std::fs::remove_dir_all(dir);
    ok
}

fn vend_assertion(broker: &Broker, token: &str) -> String {
    let (status, _, body) = post(
        &format!("{}/token", broker.url()),
        &[("Authorization", &format!("Bearer {token}"))],
        r#"{"kind":"assertion"}"#,
    );
    assert_eq!(status, 200, "{body}");
    body["assertion"].as_str().unwrap().to_owned()
}

#[test]
fn rotation_publishes_the_next_key_before_it_signs_and_openssl_verifies_every_assertion() {
    let (stage, broker) = broker_stage();
    let (old, new) = (RsaKey::fixture_3072(), next_key().clone());
    // Step 1: the old key signs, the new one is published.
    let first = vend_assertion(&broker, &mint(&stage, &broker, json!({})));
    let step1 = broker.jwks();
    assert!(step1.contains(new.kid()), "the next key is in the JWKS before it signs");
    assert!(openssl_verifies(&first, &step1));
    // Step 2: the new key signs, the old one stays published; Entra accepts at once, because
    // it has seen the new kid.
    broker.configure(&stage, &new, &old);
    let second = vend_assertion(&broker, &mint(&stage, &broker, json!({"job_id": "2"})));
    let step2 = broker.jwks();
    assert!(openssl_verifies(&second, &step2));
    assert!(openssl_verifies(&first, &step2), "the old key still verifies what it signed");
    assert!(!openssl_verifies(&second, &step1.replace(new.kid(), "gone")));
    let out = cli(
        &["exchange", "--broker", &broker.url()],
        &mint(&stage, &broker, json!({"job_id": "3"})),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(stage.entra.last_assertion()["header"]["kid"], new.kid());
}

/// An issuer that serves `jwks` (or nothing), to show how Entra judges a bad rotation.
fn fake_issuer(jwks: Option<String>) -> Server {
    let url: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let inner = url.clone();
    let server = Server::start(move |request| {
        match (request.path.as_str(), &jwks) {
        ("/.well-known/openid-configuration", Some(_)) => Response::json(
            200,
            &json!({"issuer": inner.get(), "jwks_uri": format!("{}/openid/v1/jwks", inner.get().unwrap())}).to_string(),
        ),
        ("/openid/v1/jwks", Some(jwks)) => Response::json(200, jwks),
        _ => Response::json(503, "{}"),
    }
    });
    url.set(server.url()).unwrap();
    server
}

#[test]
fn entra_refuses_a_kid_it_has_not_seen_and_an_issuer_it_cannot_reach() {
    use gitlab_azure_oidc::broker::{BrokerIssuer, JobTrace, KeyUse, TOKEN_EXCHANGE_AUDIENCE};
    let stage = stage();
    let signer = RsaKey::fixture_3072();
    let redeem = |issuer_url: &str| {
        let issuer = BrokerIssuer::builder(issuer_url)
            .key(&signer.private_pem(), KeyUse::Signing, None)
            .build()
            .unwrap();
        let signed = issuer
            .sign("s", TOKEN_EXCHANGE_AUDIENCE, &JobTrace::default(), now(), &SystemRandom::new())
            .unwrap();
        stage.entra.trust_issuer(CLIENT_ID, issuer_url, "s");
        let form = format!(
            "client_id={CLIENT_ID}&scope=https%3A%2F%2Fmanagement.azure.com%2F.default&grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}",
            signed.assertion.secret()
        );
        let (status, _, body) = post(
            &format!("{}/{TENANT}/oauth2/v2.0/token", stage.entra.url()),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &form,
        );
        (status, body["error_codes"][0].as_u64().unwrap_or_default())
    };
    // The signing key was never published (rotation done in the wrong order).
    let unpublished = fake_issuer(Some(testkit::jwks(&[RsaKey::fixture_2048().jwk()])));
    assert_eq!(redeem(&unpublished.url()), (401, 7000272));
    // Published, but beyond the first 100 keys Entra keeps.
    let mut keys: Vec<Value> =
        (0..100).map(|i| RsaKey::fixture_2048().with_kid(&format!("k{i}")).jwk()).collect();
    keys.push(signer.jwk());
    let crowded = fake_issuer(Some(testkit::jwks(&keys)));
    assert_eq!(redeem(&crowded.url()), (401, 7000272));
    // Within the first 100: accepted.
    keys.rotate_right(1);
    let fine = fake_issuer(Some(testkit::jwks(&keys)));
    assert_eq!(redeem(&fine.url()).0, 200);
    // The issuer cannot be reached.
    let down = fake_issuer(None);
    assert_eq!(redeem(&down.url()), (401, 50166));
}

#[test]
fn no_key_assertion_or_token_in_any_log_line_error_reply_or_upstream_header() {
    let (stage, broker) = broker_stage();
    let dir = std::env::temp_dir().join(format!("gao-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("assertion").display().to_string();
    let mut outputs: Vec<String> = Vec::new();
    let mut tokens = Vec::new();
    for overrides in [
        json!({}),
        json!({"ref": "identity"}),
        json!({"ref": "certificate"}),
        json!({"pipeline_source": "merge_request_event"}),
        json!({"aud": "api://AzureADTokenExchange"}),
    ] {
        let token = mint(&stage, &broker, overrides);
        for args in [
            vec!["exchange", "--broker", &broker.url(), "--verbose", "--output", "json"],
            vec!["exchange", "--broker", &broker.url(), "--verbose", "--assertion-file", &file],
        ] {
            let out = cli(&args, &token);
            outputs.push(text(&out.stderr));
        }
        tokens.push(token);
    }
    let assertion = std::fs::read_to_string(&file).unwrap();
    outputs.extend(broker.log());
    let key_lines: Vec<String> = [
        RsaKey::fixture_3072().private_pem(),
        next_key().private_pem(),
        testdata("rsa-2048.key.pem"),
    ]
    .iter()
    .flat_map(|pem| {
        pem.lines().filter(|l| !l.starts_with("-----")).map(str::to_owned).collect::<Vec<_>>()
    })
    .collect();
    let mut secrets: Vec<String> = tokens.clone();
    secrets.push(assertion);
    secrets.extend(key_lines);
    let signatures: Vec<String> = secrets
        .iter()
        .filter(|s| s.split('.').count() == 3)
        .map(|s| s.rsplit('.').next().unwrap().to_owned())
        .collect();
    assert!(
        outputs.iter().any(|o| o.contains("upstream: TokenRequest")),
        "the log has upstream requests"
    );
    for output in &outputs {
        for secret in secrets.iter().chain(&signatures) {
            assert!(
                !output.contains(secret.as_str()),
                "a secret ({}...) in: {output}",
                &secret[..10.min(secret.len())]
            );
        }
    }
}

#[test]
fn plan_prints_what_entra_needs_for_each_broker_credential_and_warns_about_bypasses() {
    let dir = std::env::temp_dir().join(format!("gao-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, content: &str| {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let document: Value = json!({"rules": [
        {"name": "via-issuer", "effect": "allow", "when": {"project_id": "4242", "ref": "main"},
         "azure": {"tenant": TENANT, "client_id": CLIENT_ID, "scopes": [SCOPE], "credential": "issuer"}},
        {"name": "via-identity", "effect": "allow", "when": {"project_id": "4242", "ref": "identity"},
         "azure": {"tenant": TENANT, "client_id": CLIENT_ID, "scopes": [SCOPE],
                   "credential": {"type": "managed-identity", "client_id": UAMI_CLIENT, "principal_id": UAMI_PRINCIPAL}}},
        {"name": "via-certificate", "effect": "allow", "when": {"project_id": "4242", "ref": "certificate"},
         "azure": {"tenant": TENANT, "client_id": CLIENT_ID, "scopes": [SCOPE], "credential": {"type": "certificate", "name": "app-cert"}}},
    ]});
    let policy_file = write("policy.json", &document.to_string());
    let config = write(
        "broker.json",
        &json!({"issuer": {"url": "https://broker.example.com", "keys": [
            {"private_key": {"env": "BROKER_SIGNING_KEY"}, "use": "signing"},
            {"private_key": {"env": "UNSET_IN_PLAN"}, "public_key": {"value": next_key().private_pem()}, "use": "published"}]}})
        .to_string(),
    );
    let cert = write("app.pem", &testdata("rsa-2048.cert.pem"));
    let credentials = write(
        "current.json",
        &json!([{"name": "gitlab-main", "issuer": "https://gitlab.example.com", "subject": "project_path:acme/payments:ref_type:branch:ref:main", "audiences": ["api://AzureADTokenExchange"]}]).to_string(),
    );
    let output = Command::new(BIN)
        .args([
            "plan",
            "--policy",
            &policy_file,
            "--issuer",
            "https://gitlab.example.com",
            "--broker-config",
            &config,
            "--certificate",
            &format!("app-cert={cert}"),
            "--credentials",
            &format!("{CLIENT_ID}={credentials}"),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BROKER_SIGNING_KEY", RsaKey::fixture_3072().private_pem())
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    for expected in [
        "\"subject\": \"gitlab-azure-oidc:rule:via-issuer\"",
        "\"issuer\": \"https://broker.example.com\"",
        &format!("\"issuer\": \"https://login.microsoftonline.com/{TENANT}/v2.0\""),
        &format!("\"subject\": \"{UAMI_PRINCIPAL}\""),
        &format!("az ad app credential reset --id {CLIENT_ID} --cert @{cert} --append"),
        "# Serve at https://broker.example.com/.well-known/openid-configuration over HTTPS",
        "# Serve at https://broker.example.com/openid/v1/jwks over HTTPS",
        RsaKey::fixture_3072().kid(),
        next_key().kid(),
    ] {
        assert!(stdout.contains(expected), "{expected} in {stdout}");
    }
    assert!(!stdout.contains("\"d\""), "public keys only");
    for pem in [RsaKey::fixture_3072().private_pem(), next_key().private_pem()] {
        let line = pem.lines().nth(2).unwrap();
        assert!(!stdout.contains(line) && !stderr.contains(line));
    }
    assert!(stderr.contains("`gitlab-main` trusts the GitLab issuer"), "{stderr}");
    assert!(
        stdout.starts_with("# federated credentials: 0 for 0 apps"),
        "no GitLab credential for a broker app: {stdout}"
    );

    // Without the broker's issuer, the issuer rule cannot be planned.
    let output = Command::new(BIN)
        .args(["plan", "--policy", &policy_file, "--issuer", "https://gitlab.example.com"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("plan-no-issuer"), "{}", text(&output.stderr));
}

#[test]
fn check_says_when_the_allowing_rule_is_only_advisory() {
    let dir = std::env::temp_dir().join(format!("gao-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let claims = dir.join("claims.json");
    std::fs::write(
        &claims,
        testkit::gitlab_claims("https://gitlab.example.com", now()).to_string(),
    )
    .unwrap();
    let demo = format!("{}/../examples/policies/demo.json", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(BIN)
        .args(["check", "--policy", &demo, "--claims", &claims.display().to_string()])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("note: rule deploy-production: the federated credential is advisory"),
        "{stderr}"
    );
    assert!(stderr.contains("give the rule a broker credential"), "{stderr}");
}
