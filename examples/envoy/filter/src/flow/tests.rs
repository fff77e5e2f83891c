//! Whole requests through the flow, natively: a driver plays Envoy's dispatcher (it creates
//! contexts, calls them with the active and effective context set, delivers callout answers to
//! the context that dispatched them) over the recording mock host.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use super::*;
use crate::host::mock::{Call, MockHost, Request, Sent};
use crate::testutil::{self, config_json, NOW};

const ROOT: u32 = 1;
const GITLAB: &str = "gitlab";
const ENTRA: &str = "entra";

/// One Envoy worker: its root context, its request contexts and its host.
struct Proxy {
    host: MockHost,
    root: Root<MockHost>,
    streams: HashMap<u32, Stream<MockHost>>,
    answered: HashSet<u32>,
    next_id: u32,
}

impl Proxy {
    fn start(config: &Value) -> Self {
        Self::configure(MockHost::new(NOW * 1000), config)
    }

    /// A second worker of the same VM: it shares the shared data with `other`.
    fn start_beside(other: &Self, config: &Value) -> Self {
        Self::configure(MockHost::sharing_with(&other.host, other.now_ms()), config)
    }

    fn configure(host: MockHost, config: &Value) -> Self {
        host.state().plugin_configuration = Some(config.to_string().into_bytes());
        let mut proxy = Self {
            root: Root::new(host.clone(), ROOT),
            host,
            streams: HashMap::new(),
            answered: HashSet::new(),
            next_id: ROOT + 1,
        };
        proxy.enter(ROOT);
        assert!(proxy.root.on_configure(), "{:?}", proxy.host.logs_with("rejected"));
        proxy
    }

    fn now_ms(&self) -> u64 {
        self.host.state().now_ms
    }

    /// Configures the live root context again (`on_configure` on it, as a host other than
    /// Envoy may do); true when accepted.
    fn reconfigure(&mut self, config: &[u8]) -> bool {
        self.host.state().plugin_configuration = Some(config.to_vec());
        self.enter(ROOT);
        self.root.on_configure()
    }

    fn advance(&mut self, seconds: u64) {
        self.host.state().now_ms += seconds * 1000;
    }

    /// What Envoy's dispatcher does before it calls into a context.
    fn enter(&self, context_id: u32) {
        let mut state = self.host.state();
        state.active = context_id;
        state.effective = context_id;
    }

    /// A request with these headers: its context id and the action the filter returned.
    fn request(&mut self, headers: &[(&str, &str)]) -> (u32, Action) {
        let id = self.next_id;
        self.next_id += 1;
        let headers = headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        self.host.state().requests.insert(id, Request { headers, ..Request::default() });
        self.enter(id);
        let mut stream = self.root.create_http_context(id);
        let action = stream.on_http_request_headers(true);
        self.streams.insert(id, stream);
        (id, action)
    }

    /// A request with `Authorization: Bearer <token>` and a spoofed claim header.
    fn get(&mut self, token: &str) -> (u32, Action) {
        let bearer = format!("Bearer {token}");
        self.request(&[("authorization", &bearer), ("x-gitlab-project-path", "spoofed")])
    }

    fn tick(&mut self) {
        self.enter(ROOT);
        self.root.on_tick();
    }

    fn end(&mut self, id: u32) {
        self.enter(id);
        if let Some(mut stream) = self.streams.remove(&id) {
            stream.on_done();
        }
        self.host.state().gone.insert(id);
    }

    /// What happened to the request.
    fn seen(&self, id: u32) -> Request {
        self.host.state().requests.get(&id).cloned().unwrap_or_default()
    }

    fn sent(&self, id: u32) -> Sent {
        self.seen(id).sent.unwrap_or_else(|| panic!("request {id} got no reply"))
    }

    /// The callouts to `cluster` not answered yet.
    fn pending(&self, cluster: &str) -> Vec<Call> {
        let state = self.host.state();
        let calls = state.calls.iter().filter(|c| c.cluster == cluster);
        calls.filter(|c| !self.answered.contains(&c.token)).cloned().collect()
    }

    fn calls_to(&self, cluster: &str) -> usize {
        self.host.state().calls.iter().filter(|c| c.cluster == cluster).count()
    }

    /// The one unanswered callout to `cluster`.
    fn only_pending(&self, cluster: &str) -> Call {
        let pending = self.pending(cluster);
        assert_eq!(pending.len(), 1, "one callout to {cluster}: {pending:?}");
        pending.into_iter().next().expect("one")
    }

    /// Delivers an answer (no status: the call failed) to the context that dispatched `call`.
    fn answer(&mut self, call: &Call, status: Option<u16>, headers: &[(&str, &str)], body: &str) {
        assert!(self.answered.insert(call.token), "answered twice");
        let mut all: Vec<(String, String)> =
            status.map(|s| vec![(":status".to_owned(), s.to_string())]).unwrap_or_default();
        all.extend(headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())));
        self.host.state().answer = (all, body.as_bytes().to_vec());
        self.enter(call.owner);
        if call.owner == ROOT {
            self.root.on_http_call_response(call.token, body.len());
        } else if let Some(stream) = self.streams.get_mut(&call.owner) {
            stream.on_http_call_response(call.token, body.len());
        }
    }

    /// The issuer answers the pending JWKS fetch with `keys`.
    fn serve_jwks(&mut self, keys: &[&testkit::RsaKey]) {
        let call = self.only_pending(GITLAB);
        assert_eq!(call.header(":path"), Some("/oauth/discovery/keys"));
        assert_eq!(call.header(":authority"), Some("gitlab.example.com"));
        let jwks = testutil::jwks(keys);
        self.answer(&call, Some(200), &[("cache-control", "max-age=3600")], &jwks);
    }

    /// Fetches the keys: a tick starts the fetch, the issuer answers.
    fn fetch_keys(&mut self) {
        self.tick();
        self.serve_jwks(&[&testutil::key()]);
    }

    /// Entra answers the pending token request.
    fn entra_answers(&mut self, status: u16, headers: &[(&str, &str)], body: &str) {
        let call = self.only_pending(ENTRA);
        self.answer(&call, Some(status), headers, body);
    }

    fn entra_grants(&mut self, azure_token: &str) {
        let body = json!({"token_type": "Bearer", "expires_in": 3599, "access_token": azure_token});
        self.entra_answers(200, &[("content-type", "application/json")], &body.to_string());
    }

    /// Audit events logged (JSON lines).
    fn audit(&self) -> Vec<Value> {
        let state = self.host.state();
        let lines = state.logs.iter().filter(|(_, l)| l.starts_with('{'));
        lines.map(|(_, l)| serde_json::from_str(l).expect("an audit line is JSON")).collect()
    }
}

fn remote() -> Value {
    config_json(|_| {})
}

/// The JWKS source of [`remote`].
fn remote_source() -> crate::config::RemoteJwks {
    match testutil::parse(&remote()).jwks {
        crate::config::JwksSource::Remote(remote) => remote,
        crate::config::JwksSource::Inline(_) => unreachable!("a remote JWKS"),
    }
}

fn token() -> String {
    testutil::token(&testutil::key(), json!({}))
}

fn token_with(overrides: Value) -> String {
    testutil::token(&testutil::key(), overrides)
}

/// A worker with its keys fetched.
fn ready(config: &Value) -> Proxy {
    let mut proxy = Proxy::start(config);
    proxy.fetch_keys();
    proxy
}

/// No token in the request.
const NO_TOKEN: &str = "\u{0}";

/// Asserts a JSON refusal: status, `error`, a hint, and never the token.
fn assert_refused(sent: &Sent, status: u32, kind: &str, token: &str) -> Value {
    let body = sent.json();
    assert_eq!((sent.status, body["error"].as_str()), (status, Some(kind)), "{body}");
    assert!(body["hint"].as_str().is_some_and(|h| !h.is_empty()), "{body}");
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert!(!String::from_utf8_lossy(&sent.body).contains(token), "the token is never echoed");
    body
}

// --- Allowed --------------------------------------------------------------------------------

#[test]
fn an_allowed_job_is_exchanged_once_then_forwarded_from_the_cache() {
    let mut proxy = ready(&remote());
    let token = token();
    let (id, action) = proxy.get(&token);
    assert_eq!(action, Action::Pause, "waiting for Entra");
    let call = proxy.only_pending(ENTRA);
    assert_eq!(call.owner, id, "the request's own callout");
    assert_eq!(call.header(":method"), Some("POST"));
    assert_eq!(call.header(":authority"), Some("127.0.0.1:9"));
    assert_eq!(call.header(":path"), Some("/contoso.onmicrosoft.com/oauth2/v2.0/token"));
    let form = &call.body;
    assert!(form.contains(&format!("client_assertion={token}")), "{form}");
    assert!(form.contains(&format!("client_id={}", testutil::CLIENT_ID)), "{form}");
    proxy.entra_grants("azure-1");

    let seen = proxy.seen(id);
    assert_eq!(seen.resumed, 1);
    assert!(seen.sent.is_none());
    assert_eq!(seen.header("authorization"), Some("Bearer azure-1"));
    assert_eq!(seen.header("x-gitlab-project-path"), Some("acme/payments"), "spoof replaced");
    assert_eq!(seen.header("x-gitlab-ref"), Some("main"));

    // The next requests are answered from the worker's copy: no callout, no pause.
    for _ in 0..3 {
        let (again, action) = proxy.get(&token);
        assert_eq!(action, Action::Continue);
        assert_eq!(proxy.seen(again).header("authorization"), Some("Bearer azure-1"));
        assert_eq!(proxy.seen(again).header("x-gitlab-project-path"), Some("acme/payments"));
    }
    assert_eq!(proxy.calls_to(ENTRA), 1);
    // The Azure token is shared with the other workers, under the core's key.
    let shared: Vec<Vec<u8>> = proxy.host.shared().values().cloned().collect();
    assert!(shared.iter().any(|v| String::from_utf8_lossy(v).contains("azure-1")));
}

#[test]
fn a_second_worker_reuses_the_shared_azure_token_and_keys() {
    let mut first = ready(&remote());
    let token = token();
    first.get(&token);
    first.entra_grants("azure-shared");

    let mut second = Proxy::start_beside(&first, &remote());
    let (id, action) = second.get(&token);
    assert_eq!(action, Action::Pause, "no keys yet");
    second.tick();
    assert_eq!(second.calls_to(GITLAB), 0, "the other worker's JWKS is adopted, not fetched");
    let seen = second.seen(id);
    assert_eq!(seen.resumed, 1);
    assert_eq!(seen.header("authorization"), Some("Bearer azure-shared"));
    assert_eq!(second.calls_to(ENTRA), 0, "the shared Azure token is used");
}

#[test]
fn an_azure_token_near_its_expiry_is_used_once_and_not_cached() {
    let mut proxy = ready(&remote());
    let token = token();
    proxy.get(&token);
    // expires_in 200 is within the 300 s margin.
    let body = json!({"token_type": "Bearer", "expires_in": 200, "access_token": "short"});
    proxy.entra_answers(200, &[], &body.to_string());
    let (_, action) = proxy.get(&token);
    assert_eq!(action, Action::Pause, "exchanged again");
    assert_eq!(proxy.calls_to(ENTRA), 2);
}

// --- Refused before the policy ----------------------------------------------------------------

#[test]
fn a_missing_token_is_401_with_a_bearer_challenge() {
    let mut proxy = ready(&remote());
    for headers in [vec![], vec![("authorization", "Basic dXNlcjpwYXNz")]] {
        let (id, action) = proxy.request(&headers);
        assert_eq!(action, Action::Pause);
        let sent = proxy.sent(id);
        assert_refused(&sent, 401, "missing-token", NO_TOKEN);
        assert_eq!(sent.header("www-authenticate"), Some("Bearer"));
    }
    let rejects: Vec<Value> =
        proxy.audit().into_iter().filter(|e| e["decision"] == "reject").collect();
    assert_eq!(rejects.len(), 2);
    assert!(rejects[0]["token_sha256"].is_null());
}

#[test]
fn refused_tokens_are_401_with_the_cores_kind() {
    let mut proxy = ready(&remote());
    let good = token();
    let (header, payload, signature) = {
        let parts: Vec<&str> = good.split('.').collect();
        (parts[0].to_owned(), parts[1].to_owned(), parts[2].to_owned())
    };
    let other_payload = token_with(json!({"project_path": "acme/other"}));
    let other_payload = other_payload.split('.').nth(1).expect("a payload");
    let cases = [
        ("not-a-jwt".to_owned(), "not-compact"),
        (token_with(json!({"exp": NOW - 3600, "iat": NOW - 7200, "nbf": NOW - 7200})), "expired"),
        (token_with(json!({"aud": "https://vault.example.com"})), "audience-mismatch"),
        (token_with(json!({"iss": "https://gitlab.evil.example"})), "issuer-mismatch"),
        (format!("{header}.{other_payload}.{signature}"), "bad-signature"),
        (format!("{header}.{payload}.{}AAAA", &signature[..signature.len() - 4]), "bad-signature"),
    ];
    for (token, kind) in cases {
        let (id, _) = proxy.get(&token);
        let sent = proxy.sent(id);
        assert_refused(&sent, 401, kind, &token);
        let challenge = sent.header("www-authenticate").expect("a challenge");
        assert_eq!(
            challenge,
            format!("Bearer error=\"invalid_token\", error_description=\"{kind}\"")
        );
    }
    assert_eq!(proxy.calls_to(ENTRA), 0);
    let rejects = proxy.audit().into_iter().filter(|e| e["decision"] == "reject").count();
    assert_eq!(rejects, 6, "each refusal is audited");
    assert!(proxy.host.logs_with(&good).is_empty(), "the token is never logged");
}

// --- Policy ---------------------------------------------------------------------------------

#[test]
fn a_denied_job_is_403_with_the_decisions_summary_and_its_audit_event() {
    let mut proxy = ready(&remote());
    let token = token_with(json!({"ref": "feature/x"}));
    let (id, action) = proxy.get(&token);
    assert_eq!(action, Action::Pause);
    let sent = proxy.sent(id);
    let body = assert_refused(&sent, 403, "policy-denied", &token);
    assert!(body["hint"].as_str().is_some_and(|h| h.contains("no-feature")), "{body}");
    assert_eq!(
        sent.header("www-authenticate"),
        Some("Bearer error=\"insufficient_scope\", error_description=\"policy-denied\"")
    );
    assert_eq!(proxy.calls_to(ENTRA), 0, "denied jobs never reach Entra");
    let events = proxy.audit();
    assert_eq!(events.len(), 1, "the decision's event, not a reject line: {events:?}");
    assert_eq!(events[0]["decision"], "deny");
    assert_eq!(events[0]["token_sha256"], gitlab_azure_oidc::token_fingerprint(&token));
}

// --- The JWKS: first fetch, outage, rotation ------------------------------------------------

#[test]
fn first_requests_are_parked_until_the_first_fetch_then_served() {
    let mut proxy = Proxy::start(&remote());
    let token = token();
    let (a, action) = proxy.get(&token);
    assert_eq!(action, Action::Pause);
    let (b, _) = proxy.get(&token);
    assert_eq!(proxy.calls_to(GITLAB), 0, "the fetch starts on the tick");
    proxy.tick();
    assert_eq!(proxy.only_pending(GITLAB).owner, ROOT, "the root owns the fetch");
    proxy.serve_jwks(&[&testutil::key()]);
    // Both parked requests ran for the root; the root owns their one token request (the
    // second request of the job waits on the first one's).
    let call = proxy.only_pending(ENTRA);
    assert_eq!(call.owner, ROOT);
    let body = json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "azure-1"});
    proxy.answer(&call, Some(200), &[], &body.to_string());
    assert_eq!(proxy.seen(a).resumed, 1);
    assert_eq!(proxy.seen(a).header("authorization"), Some("Bearer azure-1"));
    assert_eq!(proxy.seen(b).resumed, 1);
    assert_eq!(proxy.seen(b).header("authorization"), Some("Bearer azure-1"));
    assert!(proxy.seen(a).sent.is_none() && proxy.seen(b).sent.is_none());
    assert_eq!(proxy.host.state().effective, ROOT, "the root is effective again");
    let key = cache::jwks_key(&remote_source());
    assert!(proxy.host.shared().contains_key(&key), "shared with the other workers");
}

#[test]
fn while_the_issuer_is_down_parked_and_new_requests_get_503_with_retry_after() {
    let mut proxy = Proxy::start(&remote());
    let token = token();
    let (parked, _) = proxy.get(&token);
    proxy.tick();
    let call = proxy.only_pending(GITLAB);
    proxy.answer(&call, Some(500), &[], "down");
    let sent = proxy.sent(parked);
    let body = assert_refused(&sent, 503, "jwks-unavailable", &token);
    assert!(body["hint"].as_str().is_some_and(|h| h.contains("HTTP 500")), "{body}");
    assert_eq!(sent.header("retry-after"), Some("5"));

    proxy.advance(2);
    let (id, _) = proxy.get(&token);
    assert_eq!(proxy.sent(id).header("retry-after"), Some("3"));
    // After the retry interval the next request waits for the next fetch, which succeeds.
    proxy.advance(3);
    let (id, action) = proxy.get(&token);
    assert_eq!(action, Action::Pause);
    proxy.fetch_keys();
    proxy.entra_grants("azure-1");
    assert_eq!(proxy.seen(id).resumed, 1);
}

#[test]
fn a_fetch_that_gets_no_answer_or_is_refused_is_a_failure_too() {
    let mut proxy = Proxy::start(&remote());
    let token = token();
    let (parked, _) = proxy.get(&token);
    proxy.tick();
    let call = proxy.only_pending(GITLAB);
    proxy.answer(&call, None, &[], "");
    assert_refused(&proxy.sent(parked), 503, "jwks-unavailable", &token);
    proxy.advance(5);
    proxy.host.state().refuse_calls = Some(crate::host::Status::BadArgument);
    let (parked, _) = proxy.get(&token);
    proxy.tick();
    let body = assert_refused(&proxy.sent(parked), 503, "jwks-unavailable", &token);
    assert!(body["hint"].as_str().is_some_and(|h| h.contains("cluster gitlab refused")), "{body}");
}

#[test]
fn parked_requests_are_bounded_in_number_and_time() {
    let mut proxy = Proxy::start(&config_json(|c| {
        c["max_waiting_requests"] = json!(2);
        c["jwks"]["timeout_ms"] = json!(1000);
    }));
    let token = token();
    let (a, _) = proxy.get(&token);
    let (b, _) = proxy.get(&token);
    let (c, _) = proxy.get(&token);
    assert_refused(&proxy.sent(c), 503, "overloaded", &token);
    proxy.end(b); // The client gave up: forgotten.
    proxy.tick();
    // The fetch never answers; after the fetch timeout plus slack the request gets 503.
    proxy.advance(3);
    proxy.tick();
    let sent = proxy.sent(a);
    let body = assert_refused(&sent, 503, "jwks-unavailable", &token);
    assert!(body["hint"].as_str().is_some_and(|h| h.contains("took too long")), "{body}");
    assert!(proxy.seen(b).sent.is_none());
}

#[test]
fn a_parked_request_whose_stream_ended_is_not_answered() {
    let mut proxy = Proxy::start(&remote());
    let (id, _) = proxy.get(&token());
    proxy.tick();
    proxy.host.state().gone.insert(id); // Gone without on_done reaching the worker.
    proxy.serve_jwks(&[&testutil::key()]);
    assert!(proxy.seen(id).sent.is_none() && proxy.seen(id).resumed == 0);
    assert_eq!(proxy.calls_to(ENTRA), 0);
}

#[test]
fn an_unknown_kid_is_refused_within_the_interval_then_refetches_once_and_verifies() {
    let mut proxy = ready(&remote());
    let old = token();
    proxy.get(&old);
    proxy.entra_grants("azure-old");
    let rotated = testutil::token(&testutil::rotated(), json!({"job_id": "2"}));
    proxy.advance(10);
    let (id, _) = proxy.get(&rotated);
    let body = assert_refused(&proxy.sent(id), 401, "unknown-kid", &rotated);
    assert!(body["hint"].as_str().is_some_and(|h| h.contains("kid")), "{body}");
    assert_eq!(proxy.calls_to(GITLAB), 1, "no refetch within the interval");

    proxy.advance(51);
    let (id, action) = proxy.get(&rotated);
    assert_eq!(action, Action::Pause, "parked for the refetch");
    proxy.tick();
    proxy.serve_jwks(&[&testutil::rotated()]);
    proxy.entra_grants("azure-new");
    assert_eq!(proxy.seen(id).header("authorization"), Some("Bearer azure-new"));
    // The old key left the set: its tokens no longer verify.
    let (id, _) = proxy.get(&old);
    assert_refused(&proxy.sent(id), 401, "unknown-kid", &old);
}

#[test]
fn keys_are_refreshed_in_the_background_while_they_still_verify() {
    let mut proxy = ready(&remote()); // max-age=3600
    let token = token_with(json!({"exp": NOW + 7200}));
    proxy.advance(2700);
    let (id, _) = proxy.get(&token);
    assert_eq!(proxy.calls_to(ENTRA), 1, "admitted: {:?}", proxy.seen(id));
    proxy.tick();
    assert_eq!(proxy.pending(GITLAB).len(), 1, "refreshed at three quarters of the lifetime");
}

// --- Entra's answers ------------------------------------------------------------------------

/// A worker with keys, whose first request waits for Entra; Entra answers; the reply.
fn entra_says(status: u16, headers: &[(&str, &str)], body: &str) -> (Sent, Proxy) {
    let mut proxy = ready(&remote());
    let (id, _) = proxy.get(&token());
    proxy.entra_answers(status, headers, body);
    (proxy.sent(id), proxy)
}

#[test]
fn an_aadsts_refusal_is_403_with_its_hint_and_trace() {
    let body = json!({"error": "invalid_client",
        "error_description": "AADSTS700213: No matching federated identity record found",
        "error_codes": [700213], "trace_id": "t-1"});
    let (sent, proxy) = entra_says(400, &[("content-type", "application/json")], &body.to_string());
    let body = assert_refused(&sent, 403, "entra-error", &token());
    assert_eq!(body["aadsts"], json!([700213]));
    assert_eq!(body["entra_error"], "invalid_client");
    assert_eq!(body["trace_id"], "t-1");
    assert!(body["hint"].as_str().is_some_and(|h| h.contains("subject")), "{body}");
    assert!(sent.header("www-authenticate").is_none());
    assert_eq!(proxy.host.logs_with("token exchange for").len(), 1);
}

#[test]
fn throttling_is_503_with_entras_retry_after_and_nothing_is_cached() {
    let (sent, mut proxy) = entra_says(429, &[("retry-after", "7")], "");
    assert_refused(&sent, 503, "rate-limited", &token());
    assert_eq!(sent.header("retry-after"), Some("7"));
    // The client retries; the filter asks Entra again (failures are not cached).
    let (id, _) = proxy.get(&token());
    proxy.entra_grants("azure-1");
    assert_eq!(proxy.seen(id).resumed, 1);
}

#[test]
fn server_errors_timeouts_and_pages_that_are_not_entras_are_told_apart() {
    let (sent, _) = entra_says(500, &[], "");
    assert_refused(&sent, 502, "server-error", &token());
    // Envoy answers a callout that timed out with its own 504.
    let (sent, _) = entra_says(504, &[], "upstream request timeout");
    let body = assert_refused(&sent, 503, "server-error", &token());
    assert!(body["hint"].as_str().is_some_and(|h| h.contains("504")), "{body}");
    let page = "<html><title>Sign in to the Wi-Fi</title></html>";
    let (sent, _) = entra_says(200, &[("content-type", "text/html")], page);
    let body = assert_refused(&sent, 502, "html-page", &token());
    assert!(body["hint"].as_str().is_some_and(|h| h.contains("HTML")), "{body}");
}

#[test]
fn no_answer_or_no_call_at_all_is_503_entra_unreachable() {
    let mut proxy = ready(&remote());
    let (id, _) = proxy.get(&token());
    let call = proxy.only_pending(ENTRA);
    proxy.answer(&call, None, &[], "");
    assert_refused(&proxy.sent(id), 503, "entra-unreachable", &token());

    proxy.host.state().refuse_calls = Some(crate::host::Status::BadArgument);
    let (id, _) = proxy.get(&token_with(json!({"job_id": "2"})));
    let body = assert_refused(&proxy.sent(id), 503, "entra-unreachable", NO_TOKEN);
    assert!(body["hint"].as_str().is_some_and(|h| h.contains("cluster entra")), "{body}");
}

// --- Audit ----------------------------------------------------------------------------------

#[test]
fn a_decision_is_audited_once_and_its_reuses_are_summarized_on_the_tick() {
    let mut proxy = ready(&config_json(|c| c["audit"] = json!({"summary_seconds": 5})));
    let token = token();
    proxy.get(&token);
    proxy.entra_grants("azure-1");
    for _ in 0..4 {
        proxy.get(&token);
    }
    let events = proxy.audit();
    assert_eq!(events.len(), 2, "one full event and Entra's answer: {events:?}");
    assert_eq!(events[0]["decision"], "allow");
    assert_eq!(events[0]["time"], NOW);
    // Entra's answer, joined to the decision it was asked for (the gate's `finish`).
    let answer = &events[1];
    assert_eq!(answer["event"], "entra_answer");
    assert_eq!(answer["outcome"], "access-token");
    assert_eq!(answer["status"], 200);
    assert!(answer["client_request_id"].as_str().is_some_and(|id| id.len() == 36), "{answer}");
    for member in ["rule", "token_sha256", "jti", "job_id", "project_id"] {
        assert_eq!(answer[member], events[0][member], "{member}");
    }
    proxy.advance(5);
    proxy.tick();
    let events = proxy.audit();
    assert_eq!(events.len(), 3, "{events:?}");
    let summary = &events[2];
    assert_eq!(summary["event"], "decision_reused");
    assert_eq!(summary["requests"], 4);
    for member in ["decision", "rule", "token_sha256", "jti", "project_path", "job_id"] {
        assert_eq!(summary[member], events[0][member], "{member}");
    }
    assert!(proxy.host.logs_with(&token).is_empty(), "the token is never logged");
}

#[test]
fn pending_reuse_counts_are_logged_when_the_vm_stops() {
    let mut proxy = ready(&config_json(|c| c["audit"] = json!({"summary_seconds": 3600})));
    proxy.tick(); // The first tick's summary; the next is an hour away.
    let token = token();
    proxy.get(&token);
    proxy.entra_grants("azure-1");
    proxy.get(&token);
    proxy.get(&token);
    assert_eq!(proxy.audit().len(), 2, "the decision and Entra's answer");
    proxy.enter(ROOT);
    assert!(proxy.root.on_done());
    let events = proxy.audit();
    assert_eq!(events.last().map(|e| e["requests"].clone()), Some(json!(2)), "{events:?}");
}

#[test]
fn every_request_mode_logs_the_full_event_per_request() {
    let mut proxy = ready(&config_json(|c| c["audit"] = json!({"every_request": true})));
    let token = token();
    proxy.get(&token);
    proxy.entra_grants("azure-1");
    proxy.get(&token);
    proxy.get(&token);
    proxy.advance(10);
    proxy.tick();
    let events = proxy.audit();
    let (answers, decisions): (Vec<_>, Vec<_>) =
        events.iter().partition(|e| e["event"] == "entra_answer");
    assert_eq!((decisions.len(), answers.len()), (3, 1), "{events:?}");
    assert!(decisions.iter().all(|e| e["decision"] == "allow" && e["event"].is_null()));
}

#[test]
fn above_info_no_audit_event_is_built_or_logged() {
    let mut proxy = ready(&remote());
    proxy.host.state().log_level = crate::host::LogLevel::Warn;
    proxy.tick();
    let (id, _) = proxy.get(&token_with(json!({"ref": "feature/x"})));
    assert_eq!(proxy.sent(id).status, 403);
    proxy.request(&[]);
    assert!(proxy.audit().is_empty());
}

// --- Configuration and Envoy's signature check ------------------------------------------------

#[test]
fn a_bad_configuration_is_refused_with_the_reason() {
    let host = MockHost::new(NOW * 1000);
    let mut root = Root::new(host.clone(), ROOT);
    assert!(!root.on_configure(), "no configuration");
    host.state().plugin_configuration = Some(b"not json".to_vec());
    assert!(!root.on_configure());
    let policy =
        config_json(|c| c["policy"] = json!({"rules": [{"name": "x", "effect": "allow"}]}));
    host.state().plugin_configuration = Some(policy.to_string().into_bytes());
    assert!(!root.on_configure());
    let rejected = host.logs_with("rejected the plugin configuration");
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    assert!(rejected[1].contains("not valid") && rejected[2].contains("`policy`"), "{rejected:?}");
    assert!(host.state().tick_period.is_none());
}

#[test]
fn a_request_before_any_configuration_is_answered() {
    let host = MockHost::new(NOW * 1000);
    let root = Root::new(host.clone(), ROOT);
    host.state().requests.insert(7, Request::default());
    host.state().effective = 7;
    assert_eq!(root.create_http_context(7).on_http_request_headers(true), Action::Pause);
    assert_eq!(host.state().requests[&7].sent.as_ref().map(|s| s.status), Some(502));
}

/// A `VerifySignatureResult` message: `result` and `error`.
fn verdict(result: bool, error: &str) -> Vec<u8> {
    let mut out = vec![0x08, u8::from(result), 0x12, u8::try_from(error.len()).expect("short")];
    out.extend_from_slice(error.as_bytes());
    out
}

fn counters(proxy: &Proxy) -> Vec<(String, i64)> {
    proxy.host.state().counters.clone()
}

/// The value of the counter `gitlab_azure_oidc.<name>`.
fn counter(proxy: &Proxy, name: &str) -> i64 {
    let name = format!("gitlab_azure_oidc.{name}");
    let state = proxy.host.state();
    let found = state.counters.iter().find(|(n, _)| *n == name);
    found.map(|(_, v)| *v).unwrap_or_else(|| panic!("no counter {name}: {:?}", state.counters))
}

#[test]
fn rs256_goes_to_envoys_verify_signature_when_it_exists() {
    let host = MockHost::new(NOW * 1000);
    host.state().foreign = Some(Box::new(|_: &[u8]| Ok(Some(verdict(true, "")))));
    let mut proxy = Proxy::configure(host, &remote());
    proxy.fetch_keys();
    let token = token();
    proxy.get(&token);
    proxy.get(&token); // From the verified-token cache: not checked again.
    assert_eq!(counter(&proxy, "verify_signature.valid"), 1, "{:?}", counters(&proxy));
    assert_eq!(proxy.host.logs_with("checked by Envoy's verify_signature").len(), 1);

    // Envoy's word is final: a signature it refuses is a bad signature.
    proxy.host.state().foreign = Some(Box::new(|_: &[u8]| {
        Ok(Some(verdict(false, "Failed to verify digest. Error code: 0")))
    }));
    let other = token_with(json!({"job_id": "2"}));
    let (id, _) = proxy.get(&other);
    assert_refused(&proxy.sent(id), 401, "bad-signature", &other);
    assert_eq!(counter(&proxy, "verify_signature.invalid"), 1);
}

#[test]
fn without_verify_signature_ring_checks_and_says_so_once() {
    let mut proxy = ready(&remote());
    let token = token();
    let (id, _) = proxy.get(&token);
    assert!(proxy.seen(id).sent.is_none(), "verified by ring");
    proxy.get(&token_with(json!({"job_id": "2"})));
    assert_eq!(proxy.host.logs_with("no verify_signature foreign function").len(), 1);
    let checks = counters(&proxy);
    let native = checks.iter().filter(|(n, _)| n.contains(".verify_signature."));
    assert!(native.clone().count() == 3 && native.clone().all(|(_, n)| *n == 0), "{checks:?}");
}

#[test]
fn with_the_native_check_off_no_signature_counter_is_defined() {
    let proxy = ready(&config_json(|c| c["envoy_verify_signature"] = json!(false)));
    let defined = counters(&proxy);
    assert!(!defined.iter().any(|(n, _)| n.contains(".verify_signature.")), "{defined:?}");
}

// --- Issue 16: the JWKS during outages, withdrawals and forged kids ---------------------------

/// Issue 16, "JWKS outage reported as a bad token": while the issuer is down and a refetch has
/// just failed, a token signed with a new key cannot be judged; it gets 503 with `Retry-After`
/// (when the next refetch may run), so a job can tell an outage from a bad token.
#[test]
fn issue_16_an_outage_during_a_refetch_is_503_jwks_unavailable_not_unknown_kid() {
    let mut proxy = ready(&remote());
    let rotated = testutil::token(&testutil::rotated(), json!({"job_id": "2"}));
    proxy.advance(61);
    let (parked, action) = proxy.get(&rotated);
    assert_eq!(action, Action::Pause, "parked for the refetch");
    proxy.tick();
    let call = proxy.only_pending(GITLAB);
    proxy.answer(&call, Some(503), &[], "down for maintenance");
    let sent = proxy.sent(parked);
    let body = assert_refused(&sent, 503, "jwks-unavailable", &rotated);
    assert!(body["hint"].as_str().is_some_and(|h| h.contains("HTTP 503")), "{body}");
    assert_eq!(sent.header("retry-after"), Some("60"), "when the next refetch may run");
    proxy.advance(20);
    let (id, _) = proxy.get(&rotated);
    let sent = proxy.sent(id);
    assert_refused(&sent, 503, "jwks-unavailable", &rotated);
    assert_eq!(sent.header("retry-after"), Some("40"));
    // The keys in use still verify their tokens meanwhile.
    let (ok, _) = proxy.get(&token());
    proxy.entra_grants("azure-1");
    assert_eq!(proxy.seen(ok).resumed, 1);
    // Once the interval has passed, the next such token refetches, and the issuer is back.
    proxy.advance(40);
    let (id, action) = proxy.get(&rotated);
    assert_eq!(action, Action::Pause);
    proxy.tick();
    proxy.serve_jwks(&[&testutil::key(), &testutil::rotated()]);
    proxy.entra_grants("azure-2");
    assert_eq!(proxy.seen(id).header("authorization"), Some("Bearer azure-2"));
}

/// The issuer answers the pending JWKS fetch with `keys` and the `max-age` GitLab sends.
fn serve_jwks_for_a_day(proxy: &mut Proxy, keys: &[&testkit::RsaKey]) {
    let call = proxy.only_pending(GITLAB);
    let jwks = testutil::jwks(keys);
    proxy.answer(&call, Some(200), &[("cache-control", "max-age=86400")], &jwks);
}

/// Issue 16, "a withdrawn key stays trusted": GitLab's `max-age=86400` no longer keeps a key for
/// a day. The keys are refreshed in the background before `jwks.max_lifetime` (an hour by
/// default) lapses, so a key the issuer withdrew stops verifying within the hour.
#[test]
fn issue_16_a_withdrawn_key_is_dropped_by_a_background_refresh_within_the_hour() {
    let mut proxy = Proxy::start(&remote());
    proxy.tick();
    serve_jwks_for_a_day(&mut proxy, &[&testutil::key()]);
    let old = token_with(json!({"exp": NOW + 86_400}));
    proxy.get(&old);
    proxy.entra_grants("azure-1");
    proxy.advance(2700);
    proxy.tick();
    assert_eq!(proxy.pending(GITLAB).len(), 1, "refreshed before the hour is out");
    serve_jwks_for_a_day(&mut proxy, &[&testutil::rotated()]);
    let (id, _) = proxy.get(&old);
    assert_refused(&proxy.sent(id), 401, "unknown-kid", &old);
}

/// Issue 16: keys that cannot be refreshed lapse after `jwks.max_lifetime` (an hour by
/// default); they verify nothing after it (503 until the issuer answers), so revocation is
/// bounded in time even when the refresh is blocked.
#[test]
fn issue_16_keys_that_cannot_be_refreshed_lapse_after_the_max_lifetime() {
    let mut proxy = Proxy::start(&remote());
    proxy.tick();
    serve_jwks_for_a_day(&mut proxy, &[&testutil::key()]);
    let old = token_with(json!({"exp": NOW + 86_400}));
    proxy.get(&old);
    proxy.entra_grants("azure-1");
    proxy.advance(3599);
    proxy.tick();
    if let Some(call) = proxy.pending(GITLAB).first() {
        proxy.answer(call, None, &[], "");
    }
    let (id, _) = proxy.get(&old);
    assert!(proxy.seen(id).sent.is_none(), "the keys still stand at 3599 s");
    proxy.entra_grants("azure-2");
    proxy.advance(1);
    let (id, _) = proxy.get(&old);
    let sent = proxy.sent(id);
    assert_refused(&sent, 503, "jwks-unavailable", &old);
    assert_eq!(sent.header("retry-after"), Some("4"));
    // A second worker does not adopt the lapsed keys from shared data either.
    let mut second = Proxy::start_beside(&proxy, &remote());
    second.get(&old);
    second.tick();
    assert_eq!(second.pending(GITLAB).len(), 1, "it fetches instead");
}

/// Issue 16, "forged `kid`s flush the caches": a token naming an unknown key makes the worker
/// refetch, and installing the same keys again keeps what they vouch for: the verified token
/// and its decision stay, so the next request is neither verified nor decided again.
#[test]
fn issue_16_a_forged_kid_refetch_keeps_the_caches_of_unchanged_keys() {
    let host = MockHost::new(NOW * 1000);
    host.state().foreign = Some(Box::new(|_: &[u8]| Ok(Some(verdict(true, "")))));
    let mut proxy = Proxy::configure(host, &remote());
    proxy.fetch_keys();
    let token = token();
    proxy.get(&token);
    proxy.entra_grants("azure-1");
    assert_eq!(counter(&proxy, "verify_signature.valid"), 1, "one signature checked");
    let decisions = proxy.audit().into_iter().filter(|e| e["decision"] == "allow").count();
    assert_eq!(decisions, 1, "one decision");

    // Anyone can write one: a header naming a key nobody has, any payload, any signature.
    let header = testkit::b64(json!({"alg": "RS256", "kid": "forged"}).to_string().as_bytes());
    let forged = format!("{header}.{}.AAAA", token.split('.').nth(1).expect("a payload"));
    proxy.advance(61);
    let (id, _) = proxy.get(&forged);
    proxy.tick();
    proxy.serve_jwks(&[&testutil::key()]);
    assert_refused(&proxy.sent(id), 401, "unknown-kid", &forged);

    let (id, action) = proxy.get(&token);
    assert_eq!(action, Action::Continue, "{:?}", proxy.seen(id));
    assert_eq!(counter(&proxy, "verify_signature.valid"), 1, "not verified again");
    let decisions = proxy.audit().into_iter().filter(|e| e["decision"] == "allow").count();
    assert_eq!(decisions, 1, "not decided again");
}

// --- Issue 17: the configuration changes while the filter serves -----------------------------

/// The test policy with the allow rule limited to the `release` branch: it denies `main`.
fn release_only() -> Value {
    let mut policy = testutil::policy();
    policy["rules"][1]["when"]["ref"] = json!("release");
    config_json(|c| c["policy"] = policy)
}

fn bytes(config: &Value) -> Vec<u8> {
    config.to_string().into_bytes()
}

/// Issue 17 on a host that configures a live root context again: the same token, allowed
/// under the first policy, is denied under the second (and allowed again after), so neither
/// the kept decision nor the worker's header copy outlives its policy; the keys stay.
#[test]
fn issue_17_a_live_root_takes_a_new_policy_and_never_reuses_an_old_decision() {
    let mut proxy = ready(&remote());
    let token = token();
    proxy.get(&token);
    proxy.entra_grants("azure-1");
    let (id, action) = proxy.get(&token);
    assert_eq!((action, proxy.seen(id).sent), (Action::Continue, None), "cached and forwarded");

    assert!(proxy.reconfigure(&bytes(&release_only())));
    let lines = proxy.host.logs_with("reconfigured: policy ");
    assert!(lines.len() == 1 && lines[0].contains("the keys stay"), "{lines:?}");
    let (id, action) = proxy.get(&token);
    assert_eq!(action, Action::Pause);
    assert_refused(&proxy.sent(id), 403, "policy-denied", &token);

    assert!(proxy.reconfigure(&bytes(&remote())));
    let (id, action) = proxy.get(&token);
    assert_eq!(action, Action::Continue, "allowed again: {:?}", proxy.seen(id));
    assert_eq!(proxy.calls_to(GITLAB), 1, "the keys were never fetched again");
    assert_eq!(proxy.calls_to(ENTRA), 1, "the Azure token in shared data still serves");
    let decisions: Vec<Value> =
        proxy.audit().into_iter().filter(|e| e.get("rule").is_some()).collect();
    let fresh = decisions.iter().filter(|e| e.get("event").is_none()).count();
    assert_eq!(fresh, 3, "decided once under each configuration: {decisions:?}");
    assert!(
        decisions.iter().any(|e| e["event"] == "decision_reused" && e["requests"] == 1),
        "the first decision's reuse is summarized when it is forgotten: {decisions:?}"
    );
}

/// Issue 17: a refused configuration on a live root changes nothing; the reason is logged and
/// the current policy keeps serving from its caches.
#[test]
fn issue_17_a_broken_configuration_on_a_live_root_keeps_the_current_one_serving() {
    let mut proxy = ready(&remote());
    let token = token();
    proxy.get(&token);
    proxy.entra_grants("azure-1");
    let broken =
        config_json(|c| c["policy"] = json!({"rules": [{"name": "x", "effect": "permit"}]}));
    assert!(!proxy.reconfigure(&bytes(&broken)));
    assert!(!proxy.reconfigure(b"{not json"));
    let rejected = proxy.host.logs_with("rejected the plugin configuration");
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(rejected[0].contains("`policy`"), "the reason: {rejected:?}");
    assert!(rejected.iter().all(|l| l.ends_with("the current configuration keeps serving")));
    let (id, action) = proxy.get(&token);
    assert_eq!(action, Action::Continue, "{:?}", proxy.seen(id));
    assert_eq!(proxy.calls_to(ENTRA), 1);
    assert_eq!(proxy.audit().iter().filter(|e| e["decision"] == "allow").count(), 1, "kept");
}

/// Issue 17: requests in flight when the configuration changes complete: one waiting for
/// Entra is forwarded with the token Entra gives; one parked for the keys is judged under the
/// new policy once they are there (it was never decided under the old one).
#[test]
fn issue_17_requests_in_flight_complete_across_a_new_configuration() {
    let mut proxy = ready(&remote());
    let token = token();
    let (exchanging, _) = proxy.get(&token);
    assert!(proxy.reconfigure(&bytes(&release_only())));
    proxy.entra_grants("azure-1");
    assert_eq!(proxy.seen(exchanging).resumed, 1, "admitted before the change, completed");
    assert_eq!(proxy.seen(exchanging).header("authorization"), Some("Bearer azure-1"));
    let (after, _) = proxy.get(&token);
    assert_refused(&proxy.sent(after), 403, "policy-denied", &token);

    // No keys yet: parked. A configuration with another issuer drops the fetch in flight.
    let mut proxy = Proxy::start(&remote());
    let (parked, action) = proxy.get(&token);
    assert_eq!(action, Action::Pause);
    proxy.tick();
    let stale = proxy.only_pending(GITLAB);
    let other = config_json(|c| {
        c["policy"] = release_only()["policy"].clone();
        c["jwks"]["path"] = json!("/-/jwks");
    });
    assert!(proxy.reconfigure(&bytes(&other)));
    assert_eq!(proxy.host.logs_with("the keys are fetched again").len(), 1);
    let jwks = testutil::jwks(&[&testutil::key()]);
    proxy.answer(&stale, Some(200), &[], &jwks);
    assert!(proxy.seen(parked).sent.is_none(), "an answer for the old source is ignored");
    proxy.tick();
    let call = proxy.only_pending(GITLAB);
    assert_eq!(call.header(":path"), Some("/-/jwks"));
    proxy.answer(&call, Some(200), &[], &jwks);
    assert_refused(&proxy.sent(parked), 403, "policy-denied", &token);
}

/// Issue 17 as Envoy does it: a new configuration gets a new root context in the same VM. It
/// adopts the keys another root fetched from the same place (no fetch), keeps its own
/// decisions, and never adopts keys fetched from elsewhere.
#[test]
fn issue_17_a_new_root_context_adopts_the_shared_keys_and_decides_afresh() {
    let mut old = ready(&remote());
    let token = token();
    old.get(&token);
    old.entra_grants("azure-1");

    let mut new = Proxy::start_beside(&old, &release_only());
    let (id, _) = new.get(&token);
    new.tick();
    assert_eq!(new.calls_to(GITLAB), 0, "adopted from shared data");
    assert_refused(&new.sent(id), 403, "policy-denied", &token);
    let (id, action) = old.get(&token);
    assert_eq!(action, Action::Continue, "the old root still serves its own: {:?}", old.seen(id));

    let elsewhere = config_json(|c| c["jwks"]["cluster"] = json!("gitlab-mirror"));
    let mut third = Proxy::start_beside(&old, &elsewhere);
    third.get(&token);
    third.tick();
    assert_eq!(third.pending("gitlab-mirror").len(), 1, "keys from another place are fetched");
    let lines = third.host.logs_with("configured: policy ");
    assert!(lines.len() == 1 && lines[0].ends_with(&format!("root context {ROOT}")), "{lines:?}");
}

/// Every request is counted once by outcome, next to the JWKS and Entra counters.
#[test]
fn every_request_is_counted_once_by_outcome_and_so_are_fetches_and_exchanges() {
    let mut proxy = Proxy::start(&remote());
    proxy.tick();
    let call = proxy.only_pending(GITLAB);
    proxy.answer(&call, Some(503), &[], "down");
    assert_eq!(counter(&proxy, "jwks_fetch.failed"), 1);
    let (id, _) = proxy.get(&token());
    assert_refused(&proxy.sent(id), 503, "jwks-unavailable", &token());
    proxy.advance(6);
    proxy.fetch_keys();
    assert_eq!(counter(&proxy, "jwks_fetch.ok"), 1);

    let token = token();
    proxy.get(&token);
    proxy.entra_grants("azure-1"); // allowed
    proxy.get(&token); // allowed, from the worker's copy
    proxy.request(&[]); // rejected
    proxy.get(&token_with(json!({"ref": "feature/x"}))); // denied
    proxy.get(&token_with(json!({"job_id": "2"})));
    proxy.entra_answers(429, &[("retry-after", "7")], ""); // refused: throttled
    proxy.get(&token_with(json!({"job_id": "3"})));
    let call = proxy.only_pending(ENTRA);
    proxy.answer(&call, None, &[], ""); // refused: unreachable
    assert_eq!(
        ["allowed", "denied", "rejected", "refused"]
            .map(|o| counter(&proxy, &format!("requests.{o}"))),
        [2, 1, 1, 3]
    );
    assert_eq!(
        ["ok", "refused", "throttled", "failed", "unreachable"]
            .map(|o| counter(&proxy, &format!("entra.{o}"))),
        [1, 0, 1, 0, 1]
    );
}

// --- The broker: token vending, assertion vending, the managed identity, issuer documents ------

const IDENTITY: &str = "azure-identity";

/// A broker with its keys fetched, its secrets in the VM's environment.
fn broker(edit: impl FnOnce(&mut Value)) -> Proxy {
    let host = MockHost::new(NOW * 1000);
    host.state().env.extend(testutil::broker_env());
    let mut proxy = Proxy::configure(host, &testutil::broker_json(edit));
    proxy.fetch_keys();
    proxy
}

impl Proxy {
    /// A vending request: `POST /token` with `headers` and `body` (sent in two chunks, as a
    /// client may), the context id and the last action.
    fn vend_with(&mut self, headers: &[(&str, &str)], body: &str) -> (u32, Action) {
        let mut all = vec![(":method", "POST"), (":path", "/token")];
        all.extend_from_slice(headers);
        let id = self.next_id;
        self.next_id += 1;
        let headers = all.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        let body = body.as_bytes().to_vec();
        let request = Request { headers, body: body.clone(), ..Request::default() };
        self.host.state().requests.insert(id, request);
        self.enter(id);
        let mut stream = self.root.create_http_context(id);
        let mut action = stream.on_http_request_headers(body.is_empty());
        if !body.is_empty() {
            assert_eq!(action, Action::Pause, "the filter waits for the body");
            assert_eq!(stream.on_http_request_body(body.len() / 2, false), Action::Pause);
            action = stream.on_http_request_body(body.len(), true);
        }
        self.streams.insert(id, stream);
        (id, action)
    }

    /// The job's vending request for an access token (no body).
    fn vend(&mut self, token: &str) -> (u32, Action) {
        let bearer = format!("Bearer {token}");
        self.vend_with(&[("authorization", &bearer)], "")
    }

    /// A GET of `path`, without a token.
    fn fetch(&mut self, method: &str, path: &str) -> Sent {
        let (id, action) = self.request(&[(":method", method), (":path", path)]);
        assert_eq!(action, Action::Pause);
        self.sent(id)
    }

    /// The identity endpoint answers the pending identity request with a token for a day.
    fn identity_grants(&mut self) -> String {
        let claims = json!({"iss": "https://login.microsoftonline.com/t/v2.0", "sub": testutil::UAMI_PRINCIPAL,
                            "aud": "api://AzureADTokenExchange", "iat": NOW, "exp": NOW + 86_399});
        let token = testkit::mint(&testkit::Key::Rsa(&testutil::rotated(), "RS256"), &claims);
        let body = json!({"access_token": token, "expires_on": (NOW + 86_399).to_string(),
                          "resource": "api://AzureADTokenExchange", "token_type": "Bearer"});
        let call = self.only_pending(IDENTITY);
        self.answer(&call, Some(200), &[], &body.to_string());
        token
    }
}

/// The `client_assertion` of an Entra call.
fn client_assertion(call: &Call) -> String {
    let value = call.body.split('&').find_map(|p| p.strip_prefix("client_assertion="));
    value.expect("a client assertion").to_owned()
}

/// The claims of a broker-signed assertion, verified against the broker's published JWKS.
fn verify_assertion(assertion: &str, jwks: &str) -> gitlab_azure_oidc::Claims {
    let config = gitlab_azure_oidc::VerifierConfig::builder(testutil::BROKER_URL)
        .audience("api://AzureADTokenExchange")
        .build()
        .expect("a verifier");
    let jwks = gitlab_azure_oidc::Jwks::parse(jwks.as_bytes()).expect("the published JWKS");
    let verifier = gitlab_azure_oidc::Verifier::new(config, jwks);
    verifier.verify(assertion, NOW).expect("the assertion verifies").claims
}

fn published_jwks(proxy: &mut Proxy) -> String {
    let sent = proxy.fetch("GET", "/openid/v1/jwks");
    String::from_utf8(sent.body).expect("UTF-8")
}

#[test]
fn token_vending_answers_azs_json_with_no_store_and_never_goes_upstream() {
    let mut proxy = broker(|_| {});
    let token = testutil::broker_token(json!({}));
    let (id, action) = proxy.vend(&token);
    assert_eq!(action, Action::Pause);
    let call = proxy.only_pending(ENTRA);
    let assertion = client_assertion(&call);
    assert_ne!(assertion, token, "the broker's assertion, not the job's token");
    let claims = verify_assertion(&assertion, &published_jwks(&mut proxy));
    assert_eq!(claims.sub.as_deref(), Some("gitlab-azure-oidc:rule:via-issuer"));
    proxy.entra_grants("azure-vended");
    let seen = proxy.seen(id);
    assert_eq!(seen.resumed, 0, "never forwarded");
    let sent = seen.sent.expect("answered by the filter");
    assert_eq!(sent.status, 200);
    assert_eq!(sent.header("cache-control"), Some("no-store"));
    let body = sent.json();
    let members: Vec<&str> =
        body.as_object().expect("an object").keys().map(String::as_str).collect();
    assert_eq!(
        members,
        ["accessToken", "expiresOn", "expires_on", "subscription", "tenant", "tokenType"]
    );
    assert_eq!(body["accessToken"], "azure-vended");
    assert_eq!(body["expires_on"], NOW + 3599);
    assert_eq!(body["expiresOn"], vend::az_utc(NOW + 3599).as_str());
    assert_eq!(body["tenant"], "contoso.onmicrosoft.com");
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(counter(&proxy, "vend.access_token"), 1);
    assert_eq!(counter(&proxy, "requests.allowed"), 1);

    // The next request of the job (vending or through the proxy) uses the shared token.
    let (again, _) = proxy.vend_with(
        &[("authorization", &format!("Bearer {token}")), ("content-type", "application/json")],
        &json!({"scope": testutil::SCOPE}).to_string(),
    );
    assert_eq!(proxy.sent(again).json()["accessToken"], "azure-vended");
    let (forwarded, action) = proxy.get(&token);
    assert_eq!(action, Action::Continue);
    assert_eq!(proxy.seen(forwarded).header("authorization"), Some("Bearer azure-vended"));
    assert_eq!(proxy.calls_to(ENTRA), 1);
}

#[test]
fn many_concurrent_requests_of_one_job_share_one_entra_request() {
    let mut proxy = broker(|_| {});
    let token = testutil::broker_token(json!({"ref": "certificate"}));
    let mut ids: Vec<u32> = (0..5).map(|_| proxy.vend(&token).0).collect();
    ids.push(proxy.get(&token).0); // the proxy joins the same request
    let call = proxy.only_pending(ENTRA);
    assert_eq!(call.owner, ids[0], "the first request's callout");
    assert_eq!(counter(&proxy, "entra.coalesced"), 5);
    // Another job does not share it.
    let other = testutil::broker_token(json!({"ref": "certificate", "job_id": "5550002"}));
    let (other_id, _) = proxy.vend(&other);
    assert_eq!(proxy.pending(ENTRA).len(), 2);
    proxy.answer(
        &call,
        Some(200),
        &[],
        &json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "one"}).to_string(),
    );
    for id in &ids[..5] {
        assert_eq!(proxy.sent(*id).json()["accessToken"], "one");
    }
    assert_eq!(proxy.seen(ids[5]).resumed, 1);
    assert_eq!(proxy.seen(ids[5]).header("authorization"), Some("Bearer one"));
    assert!(proxy.seen(other_id).sent.is_none(), "still waiting for its own");
    assert_eq!(proxy.host.state().effective, ids[0], "the owner is effective again");
    assert_eq!(counter(&proxy, "entra.ok"), 1);
}

#[test]
fn waiting_requests_are_bounded_and_served_even_when_the_first_one_left() {
    let mut proxy = broker(|c| c["max_waiting_requests"] = json!(3));
    let token = testutil::broker_token(json!({"ref": "certificate"}));
    let (first, _) = proxy.vend(&token);
    let (second, _) = proxy.vend(&token);
    let (third, _) = proxy.vend(&token);
    let (fourth, _) = proxy.vend(&token);
    let sent = proxy.sent(fourth);
    assert_eq!((sent.status, sent.json()["error"].as_str()), (503, Some("overloaded")));
    assert_eq!(sent.header("retry-after"), Some("1"));
    assert!(sent.json()["message"].is_string(), "the vending route's shape");
    // The request that owns the callout leaves: its answer is lost, so the root asks again.
    let lost = proxy.only_pending(ENTRA);
    proxy.end(first);
    proxy.answered.insert(lost.token);
    proxy.tick();
    let call = proxy.only_pending(ENTRA);
    assert_eq!(call.owner, ROOT, "the root owns the new request");
    proxy.answer(
        &call,
        Some(200),
        &[],
        &json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "again"}).to_string(),
    );
    assert_eq!(proxy.sent(second).json()["accessToken"], "again");
    assert_eq!(proxy.sent(third).json()["accessToken"], "again");
    assert_eq!(proxy.host.state().effective, ROOT);
}

#[test]
fn vending_refuses_as_documented() {
    let mut proxy = broker(|_| {});
    let token = testutil::broker_token(json!({}));
    let bearer = format!("Bearer {token}");
    let json_body = ("content-type", "application/json");
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, u32, &'a str);
    let cases: [Case<'_>; 6] = [
        (&[], "", 401, "missing-token"),
        (&[("authorization", "Basic dXNlcjpwYXNz")], "", 401, "missing-token"),
        (
            &[("authorization", &bearer), json_body],
            r#"{"scope":"https://vault.azure.net/.default"}"#,
            403,
            "scope-not-allowed",
        ),
        (
            &[("authorization", &bearer), json_body],
            r#"{"kind":"refresh_token"}"#,
            400,
            "bad-request",
        ),
        (&[("authorization", &bearer), json_body], "[1]", 400, "bad-request"),
        (&[("authorization", "Bearer not.a.token")], "", 401, "base64"),
    ];
    for (headers, body, status, kind) in cases {
        let (id, _) = proxy.vend_with(headers, body);
        let sent = proxy.sent(id);
        let doc = sent.json();
        assert_eq!(
            (sent.status, doc["error"].as_str().unwrap_or_default()),
            (status, kind),
            "{doc}"
        );
        assert!(doc["message"].is_string() && doc.get("hint").is_some(), "{doc}");
        assert_eq!(sent.header("cache-control"), Some("no-store"));
        assert!(!String::from_utf8_lossy(&sent.body).contains(&token));
    }
    let (id, _) =
        proxy.request(&[(":method", "GET"), (":path", "/token?x=1"), ("authorization", &bearer)]);
    let sent = proxy.sent(id);
    assert_eq!((sent.status, sent.header("allow")), (405, Some("POST")));
    let (id, _) = proxy.vend_with(&[("authorization", &bearer)], &"x".repeat(20 * 1024));
    assert_eq!(proxy.sent(id).status, 413);
    assert_eq!(proxy.calls_to(ENTRA), 0, "nothing reached Entra");

    // Entra throttles: 429 with its Retry-After (the proxy says 503); Entra fails: 503.
    let (id, _) = proxy.vend(&token);
    proxy.entra_answers(429, &[("retry-after", "7")], "");
    let sent = proxy.sent(id);
    assert_eq!((sent.status, sent.header("retry-after")), (429, Some("7")));
    assert_eq!(sent.json()["error"], "rate-limited");
    let (id, _) = proxy.vend(&token);
    proxy.entra_answers(503, &[], "");
    assert_eq!(proxy.sent(id).status, 503);
    let (id, _) = proxy.vend(&token);
    let call = proxy.only_pending(ENTRA);
    proxy.answer(&call, None, &[], "");
    let sent = proxy.sent(id);
    assert_eq!((sent.status, sent.json()["error"].as_str()), (503, Some("entra-unreachable")));
    let aadsts = json!({"error": "invalid_client", "error_description": "AADSTS700213: no match",
                        "error_codes": [700213]});
    let (id, _) = proxy.vend(&token);
    proxy.entra_answers(400, &[("content-type", "application/json")], &aadsts.to_string());
    let sent = proxy.sent(id);
    assert_eq!((sent.status, sent.json()["aadsts"][0].as_u64()), (403, Some(700213)));
}

#[test]
fn a_denied_job_gets_403_with_the_rules_explanation_and_entra_sees_nothing() {
    let mut proxy = broker(|_| {});
    for overrides in [json!({"pipeline_source": "merge_request_event"}), json!({"ref": "feature"})]
    {
        let token = testutil::broker_token(overrides);
        let (id, _) = proxy.vend(&token);
        let sent = proxy.sent(id);
        let body = sent.json();
        assert_eq!((sent.status, body["error"].as_str()), (403, Some("policy-denied")), "{body}");
        assert!(body["hint"].as_str().is_some_and(|h| h.contains("rule via-issuer")), "{body}");
        assert!(sent.header("www-authenticate").is_some_and(|v| v.contains("insufficient_scope")));
        let (id, _) = proxy.get(&token);
        assert_eq!(proxy.sent(id).status, 403, "the proxy refuses it too");
    }
    assert_eq!(proxy.calls_to(ENTRA) + proxy.calls_to(IDENTITY), 0);
    // Summary only, when the operator says so.
    let mut quiet = broker(|c| c["vending"]["explain"] = json!("summary"));
    let token = testutil::broker_token(json!({"ref": "feature"}));
    let (id, _) = quiet.vend(&token);
    assert!(quiet.sent(id).json()["hint"].is_null());
}

#[test]
fn assertion_vending_answers_the_rules_assertion_for_issuer_rules_only() {
    let mut proxy = broker(|_| {});
    let token = testutil::broker_token(json!({}));
    let bearer = format!("Bearer {token}");
    let (id, _) = proxy.vend_with(
        &[("authorization", &bearer), ("content-type", "application/x-www-form-urlencoded")],
        "kind=assertion",
    );
    let sent = proxy.sent(id);
    assert_eq!(sent.status, 200);
    assert_eq!(sent.header("cache-control"), Some("no-store"));
    let body = sent.json();
    assert_eq!(body["clientId"], testutil::CLIENT_ID);
    assert_eq!(body["subject"], "gitlab-azure-oidc:rule:via-issuer");
    let claims = verify_assertion(
        body["assertion"].as_str().expect("an assertion"),
        &published_jwks(&mut proxy),
    );
    assert_eq!(claims.iss, testutil::BROKER_URL);
    assert_eq!(claims.gitlab.job_id.as_deref(), Some("5550001"));
    assert_eq!(proxy.calls_to(ENTRA), 0, "the job's own tool redeems it");
    assert_eq!(counter(&proxy, "vend.assertion"), 1);
    // Only issuer rules have one.
    let identity = testutil::broker_token(json!({"ref": "identity"}));
    let (id, _) = proxy
        .vend_with(&[("authorization", &format!("Bearer {identity}"))], r#"{"kind":"assertion"}"#);
    assert_eq!(proxy.sent(id).json()["error"], "assertion-unavailable");
    // And not at all when the operator turns them off.
    let mut off = broker(|c| c["vending"]["assertions"] = json!(false));
    let (id, _) = off.vend_with(&[("authorization", &bearer)], r#"{"kind":"assertion"}"#);
    let sent = off.sent(id);
    assert_eq!((sent.status, sent.json()["error"].as_str()), (403, Some("assertion-vending-off")));
}

#[test]
fn the_managed_identity_token_is_fetched_once_for_every_waiting_job_then_cached() {
    let mut proxy = broker(|_| {});
    let first = testutil::broker_token(json!({"ref": "identity"}));
    let second = testutil::broker_token(json!({"ref": "identity", "job_id": "5550002"}));
    let (a, _) = proxy.vend(&first);
    let (b, _) = proxy.vend(&first);
    let (c, _) = proxy.get(&second);
    let call = proxy.only_pending(IDENTITY);
    assert_eq!(proxy.calls_to(ENTRA), 0, "Entra waits for the identity's token");
    assert_eq!(call.header(":method"), Some("GET"));
    assert_eq!(call.header(":authority"), Some("169.254.169.254"));
    assert_eq!(call.header("Metadata"), Some("true"));
    let path = call.header(":path").expect("a path");
    assert!(path.starts_with("/metadata/identity/oauth2/token?api-version=2018-02-01"), "{path}");
    assert!(path.contains(&format!("client_id={}", testutil::UAMI_CLIENT)), "{path}");
    let identity_token = proxy.identity_grants();
    // One Entra request per job, each with the identity's token as the assertion.
    let calls = proxy.pending(ENTRA);
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| client_assertion(c) == identity_token));
    for call in calls {
        proxy.answer(
            &call,
            Some(200),
            &[],
            &json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "by-identity"})
                .to_string(),
        );
    }
    assert_eq!(proxy.sent(a).json()["accessToken"], "by-identity");
    assert_eq!(proxy.sent(b).json()["accessToken"], "by-identity");
    assert_eq!(proxy.seen(c).header("authorization"), Some("Bearer by-identity"));
    // A third job: the identity's token is reused.
    let third = testutil::broker_token(json!({"ref": "identity", "job_id": "5550003"}));
    proxy.vend(&third);
    assert_eq!(proxy.calls_to(IDENTITY), 1);
    assert_eq!(proxy.pending(ENTRA).len(), 1);
    assert_eq!(counter(&proxy, "identity.ok"), 1);
}

#[test]
fn an_identity_endpoint_failure_refuses_every_job_waiting_on_it() {
    let mut proxy = broker(|_| {});
    let token = testutil::broker_token(json!({"ref": "identity"}));
    let (a, _) = proxy.vend(&token);
    let (b, _) = proxy.get(&token);
    let call = proxy.only_pending(IDENTITY);
    let body = r#"{"error":"invalid_request","error_description":"Identity not found"}"#;
    proxy.answer(&call, Some(400), &[], body);
    let sent = proxy.sent(a);
    assert_eq!((sent.status, sent.json()["error"].as_str()), (502, Some("identity-not-assigned")));
    assert!(sent.json()["hint"].as_str().is_some_and(|h| h.contains(testutil::UAMI_CLIENT)));
    assert_eq!(proxy.sent(b).status, 502);
    // No answer at all: 503, retry later.
    let (c, _) = proxy.vend(&token);
    let call = proxy.only_pending(IDENTITY);
    proxy.answer(&call, None, &[], "");
    assert_eq!(proxy.sent(c).status, 503);
    assert_eq!(counter(&proxy, "identity.failed"), 2);
    assert_eq!(proxy.calls_to(ENTRA), 0);
}

#[test]
fn the_issuer_documents_are_the_cores_and_need_no_token() {
    let mut proxy = broker(|_| {});
    let sent = proxy.fetch("GET", "/.well-known/openid-configuration");
    assert_eq!(sent.status, 200);
    assert_eq!(sent.header("cache-control"), Some("public, max-age=300"));
    let discovery = sent.json();
    assert_eq!(discovery["issuer"], testutil::BROKER_URL);
    assert_eq!(discovery["jwks_uri"], format!("{}/openid/v1/jwks", testutil::BROKER_URL));
    let jwks: Value = serde_json::from_str(&published_jwks(&mut proxy)).expect("JSON");
    let kids: Vec<&str> =
        jwks["keys"].as_array().expect("keys").iter().filter_map(|k| k["kid"].as_str()).collect();
    assert_eq!(
        kids,
        [testutil::signing_key().kid(), testutil::next_key().kid()],
        "the next key is published"
    );
    assert!(
        jwks["keys"].as_array().expect("keys").iter().all(|k| k.get("d").is_none()),
        "public halves only"
    );
    let sent = proxy.fetch("POST", "/openid/v1/jwks");
    assert_eq!((sent.status, sent.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(counter(&proxy, "issuer_documents.served"), 3);
    assert_eq!(counter(&proxy, "requests.rejected"), 0, "not a job's request");
    // Under a path of the issuer URL, and on paths the operator chooses.
    let mut custom = broker(|c| {
        c["broker"]["issuer"]["url"] = json!("https://broker.example.com/tenant-a");
        c["issuer_documents"] = json!({"jwks_path": "/keys", "max_age_seconds": 60});
    });
    assert_eq!(custom.fetch("GET", "/tenant-a/.well-known/openid-configuration").status, 200);
    assert_eq!(custom.fetch("GET", "/keys").header("cache-control"), Some("public, max-age=60"));
}

#[test]
fn broker_configurations_are_checked_at_load() {
    let refused = |edit: &dyn Fn(&mut Value), env: bool| -> String {
        let host = MockHost::new(NOW * 1000);
        if env {
            host.state().env.extend(testutil::broker_env());
        }
        host.state().plugin_configuration =
            Some(testutil::broker_json(|c| edit(c)).to_string().into_bytes());
        let mut root = Root::new(host.clone(), ROOT);
        assert!(!root.on_configure(), "refused");
        host.logs_with("rejected the plugin configuration").join("\n")
    };
    // A token Entra accepts must not be accepted by a broker.
    let log = refused(&|c| c["audiences"] = json!(["api://AzureADTokenExchange"]), true);
    assert!(log.contains("`audiences`") && log.contains("skip the broker"), "{log}");
    // Keys come from the VM's environment; an unset one names the variable, never a value.
    let log = refused(&|_| {}, false);
    assert!(log.contains("BROKER_SIGNING_KEY"), "{log}");
    let log =
        refused(&|c| c.as_object_mut().map_or((), |c| drop(c.remove("identity_endpoint"))), true);
    assert!(log.contains("`identity_endpoint`"), "{log}");
    let log = refused(&|c| c["vending"]["path"] = json!("/openid/v1/jwks"), true);
    assert!(log.contains("`vending.path`"), "{log}");
    let log = refused(&|c| c["broker"]["certificates"] = json!({}), true);
    assert!(log.contains("app-cert"), "{log}");
    let log = refused(
        &|c| {
            c["broker"]["issuer"]["keys"][0]["private_key"] =
                json!({"value": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"})
        },
        true,
    );
    assert!(!log.contains("AAAA"), "{log}");
}

#[test]
fn the_loader_says_which_rules_are_advisory_and_what_makes_them_binding() {
    let proxy = Proxy::start(&remote());
    let notes = proxy.host.logs_with("advisory");
    assert!(
        notes.iter().any(|l| l.contains("rule deploy-main: the federated credential is advisory")),
        "{notes:?}"
    );
    assert!(notes.iter().any(|l| l.contains("give the rule a broker credential")), "{notes:?}");
    assert!(proxy.host.logs_with("configured: ").iter().any(|l| l.contains("policy advisory")));
    let broker = broker(|_| {});
    assert!(broker.host.logs_with("is advisory").is_empty());
    let configured = broker.host.logs_with("configured: ");
    assert!(
        configured.iter().any(|l| l.contains("binding") && l.contains("vending at /token")),
        "{configured:?}"
    );
}

#[test]
fn no_key_assertion_or_token_reaches_a_log_line_or_an_error_reply() {
    let mut proxy = broker(|_| {});
    let tokens: Vec<String> = [
        json!({}),
        json!({"ref": "identity"}),
        json!({"ref": "certificate"}),
        json!({"pipeline_source": "merge_request_event"}),
        json!({"aud": "api://AzureADTokenExchange"}),
    ]
    .into_iter()
    .map(testutil::broker_token)
    .collect();
    let mut replies = Vec::new();
    for token in &tokens {
        let (id, _) = proxy.vend(token);
        if !proxy.pending(IDENTITY).is_empty() {
            proxy.identity_grants();
        }
        if !proxy.pending(ENTRA).is_empty() {
            proxy.entra_answers(400, &[("content-type", "application/json")], r#"{"error":"invalid_client","error_description":"AADSTS700213: x","error_codes":[700213]}"#);
        }
        replies.push(String::from_utf8_lossy(&proxy.sent(id).body).into_owned());
        let (id, _) = proxy
            .vend_with(&[("authorization", &format!("Bearer {token}"))], r#"{"kind":"assertion"}"#);
        let sent = proxy.sent(id);
        if sent.status == 200 {
            let assertion = sent.json()["assertion"].as_str().expect("assertion").to_owned();
            let logs = proxy.host.state().logs.clone();
            assert!(logs.iter().all(|(_, l)| !l.contains(&assertion)), "an assertion in the log");
        } else {
            replies.push(String::from_utf8_lossy(&sent.body).into_owned());
        }
    }
    let mut secrets: Vec<String> = tokens.clone();
    for (_, value) in testutil::broker_env() {
        secrets.extend(value.lines().filter(|l| !l.starts_with("-----")).map(str::to_owned));
    }
    secrets.extend(
        proxy.host.state().calls.iter().filter(|c| c.cluster == ENTRA).map(client_assertion),
    );
    let logs: Vec<String> = proxy.host.state().logs.iter().map(|(_, l)| l.clone()).collect();
    for text in logs.iter().chain(&replies) {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a secret ({}...) in: {text}", &secret[..12]);
        }
    }
}

impl Proxy {
    /// Envoy hands the request `id` (part of) its body.
    fn body(&mut self, id: u32, size: usize, end_of_stream: bool) -> Action {
        self.enter(id);
        let stream = self.streams.get_mut(&id).expect("a live request");
        stream.on_http_request_body(size, end_of_stream)
    }
}

#[test]
fn two_workers_share_one_entra_request_and_its_failure() {
    let mut a = broker(|_| {});
    let host = MockHost::sharing_with(&a.host, a.now_ms());
    host.state().env.extend(testutil::broker_env());
    let mut b = Proxy::configure(host, &testutil::broker_json(|_| {}));
    b.tick(); // adopts A's keys
    let token = testutil::broker_token(json!({"ref": "certificate"}));
    let (on_a, _) = a.vend(&token);
    let (on_b, action) = b.get(&token);
    assert_eq!(action, Action::Pause);
    assert_eq!((a.calls_to(ENTRA), b.calls_to(ENTRA)), (1, 0), "worker B waits for A's request");
    assert_eq!(counter(&b, "entra.coalesced"), 1);
    a.entra_grants("for-both");
    assert_eq!(a.sent(on_a).json()["accessToken"], "for-both");
    b.tick();
    assert_eq!(b.seen(on_b).resumed, 1);
    assert_eq!(b.seen(on_b).header("authorization"), Some("Bearer for-both"));

    // A failed fetch: the other worker's request gets the same answer, in its route's shape.
    let other = testutil::broker_token(json!({"ref": "certificate", "job_id": "5550002"}));
    let (on_a, _) = a.get(&other);
    let (on_b, _) = b.vend(&other);
    assert_eq!(b.calls_to(ENTRA), 0);
    a.entra_answers(429, &[("retry-after", "9")], "");
    assert_eq!(a.sent(on_a).status, 503, "the proxy route says 503");
    b.tick();
    let sent = b.sent(on_b);
    assert_eq!((sent.status, sent.header("retry-after")), (429, Some("9")), "vending says 429");
    // Once it failed, the next request fetches again.
    b.vend(&other);
    assert_eq!(b.calls_to(ENTRA), 1);
}

#[test]
fn a_held_requests_body_waits_until_it_is_resumed() {
    let mut proxy = broker(|_| {});
    let token = testutil::broker_token(json!({"ref": "certificate"}));
    let bearer = format!("Bearer {token}");
    let id = proxy.next_id;
    proxy.next_id += 1;
    let headers =
        vec![("authorization".to_owned(), bearer), (":path".to_owned(), "/upload".to_owned())];
    proxy.host.state().requests.insert(id, Request { headers, ..Request::default() });
    proxy.enter(id);
    let mut stream = proxy.root.create_http_context(id);
    assert_eq!(stream.on_http_request_headers(false), Action::Pause);
    proxy.streams.insert(id, stream);
    assert_eq!(proxy.body(id, 10, false), Action::Pause, "not before its Azure token");
    proxy.entra_grants("azure-1");
    assert_eq!(proxy.seen(id).resumed, 1);
    assert_eq!(proxy.body(id, 20, true), Action::Continue, "then it passes");
}

#[test]
fn vending_reads_the_query_when_there_is_no_body_and_answers_a_withheld_body() {
    let mut proxy = broker(|_| {});
    let token = testutil::broker_token(json!({}));
    let bearer = format!("Bearer {token}");
    let (id, _) = proxy.request(&[
        (":method", "POST"),
        (":path", "/token?kind=assertion"),
        ("authorization", &bearer),
    ]);
    assert!(proxy.sent(id).json()["assertion"].is_string());
    let (id, _) = proxy.request(&[
        (":method", "POST"),
        (":path", "/token?scope=x"),
        ("authorization", &bearer),
    ]);
    assert_eq!(proxy.sent(id).json()["error"], "scope-not-allowed");
    // A body Envoy never hands over (no allow_on_headers_stop_iteration): 500 with the fix.
    let id = proxy.next_id;
    proxy.next_id += 1;
    let headers = vec![
        (":method".to_owned(), "POST".to_owned()),
        (":path".to_owned(), "/token".to_owned()),
        ("authorization".to_owned(), bearer),
    ];
    proxy.host.state().requests.insert(id, Request { headers, ..Request::default() });
    proxy.enter(id);
    let mut stream = proxy.root.create_http_context(id);
    assert_eq!(stream.on_http_request_headers(false), Action::Pause);
    proxy.streams.insert(id, stream);
    proxy.advance(1);
    proxy.tick();
    assert!(proxy.seen(id).sent.is_none(), "a slow client gets time");
    proxy.advance(2);
    proxy.tick();
    let sent = proxy.sent(id);
    assert_eq!((sent.status, sent.json()["error"].as_str()), (500, Some("body-withheld")));
    assert!(sent.json()["hint"]
        .as_str()
        .is_some_and(|h| h.contains("allow_on_headers_stop_iteration")));
    assert_eq!(proxy.body(id, 2, true), Action::Pause, "a late body changes nothing");
}
