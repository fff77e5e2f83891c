//! The request flow, generic over the proxy-wasm [`Host`]: what the root context and an HTTP
//! context do on each callback. The proxy-wasm glue (`filter.rs`, wasm32 only) only forwards
//! Envoy's callbacks here, so native tests drive whole requests through a mock host.
//!
//! The exchange itself is the core's [`Gate`](gitlab_azure_oidc::Gate): fetch the keys, `admit`
//! the token, send the token request, `finish` with Entra's answer. The retry rule is the
//! client's: a failure Entra may clear later is answered 503 with Entra's `Retry-After`, and the
//! filter itself never repeats a token request. What is Envoy's alone stays here: the JWKS fetch
//! schedule and sharing it across workers, parked requests, the Azure tokens in shared data, the
//! header plans and the replies.
//!
//! The root context (one per worker) owns the worker state and does every JWKS fetch, on its
//! tick. An HTTP context handles one request: it admits from the worker's keys, or parks itself
//! when there are none yet; the root re-runs parked requests for them once the fetch completes
//! (`set_effective_context`), so their callouts belong to the root, which outlives them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use gitlab_azure_oidc::{Admission, Failure, VerifiedToken};
use proxy_wasm::types::Action;
use ring::rand::SystemRandom;

use crate::cache::{self, AzureRecord, JwksRecord};
use crate::config::{self, JwksSource};
use crate::foreign::{HostCalls, NativeRsa};
use crate::host::{Host, LogLevel, Status};
use crate::reply::{self, Reply};
use crate::request::{self, HeaderPlan};
use crate::stats::{Counter, Counters};
use crate::worker::{Check, Worker};

type Shared = Rc<RefCell<Worker>>;

/// Logs `message` with the filter's prefix.
pub(crate) fn log<H: Host>(host: &H, level: LogLevel, message: &str) {
    host.log(level, &format!("gitlab-azure-oidc: {message}"));
}

fn warn<H: Host>(host: &H, message: &str) {
    log(host, LogLevel::Warn, message);
}

/// Logs a host call that failed; the flow goes on.
fn or_warn<H: Host>(host: &H, result: Result<(), Status>, what: &str) {
    if let Err(status) = result {
        warn(host, &format!("could not {what}: {status:?}"));
    }
}

/// The root context: one per worker.
pub struct Root<H> {
    host: H,
    /// The root's own context id, to make it effective again after serving parked requests.
    context_id: u32,
    worker: Option<Shared>,
    /// The JWKS fetch in flight.
    jwks_call: Option<u32>,
    /// Token exchanges the root dispatched for parked requests, by callout token.
    exchanges: HashMap<u32, Exchange>,
}

/// What a token exchange in flight needs when Entra answers.
struct Exchange {
    context_id: u32,
    admission: Admission,
    verified: Arc<VerifiedToken>,
}

/// How a request went on.
enum Flow {
    /// Allowed with a cached Azure token: headers rewritten, continue.
    Forward,
    /// A local reply was sent.
    Replied,
    /// Parked until the JWKS fetch completes.
    Parked,
    /// Waiting for Entra.
    Exchanging(u32, Exchange),
}

/// Answers the request with `reply`, and counts it (rejected, denied or refused).
fn send<H: Host>(host: &H, shared: &Shared, reply: &Reply) {
    count(host, shared, Counter::for_reply(reply));
    send_reply(host, reply);
}

fn send_reply<H: Host>(host: &H, reply: &Reply) {
    let headers: Vec<(&str, &str)> =
        reply.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let sent = host.send_http_response(reply.status, &headers, reply.body.as_bytes());
    or_warn(host, sent, "send the local reply");
}

/// Adds one to a counter of the worker's root context.
fn count<H: Host>(host: &H, shared: &Shared, counter: Counter) {
    let counters = shared.borrow().counters();
    counters.add(host, counter);
}

/// Replies and logs the refusal's audit line (a request refused without a decision to audit).
fn refuse<H: Host>(
    host: &H,
    shared: &Shared,
    reply: &Reply,
    token: Option<&str>,
    now: u64,
) -> Flow {
    if shared.borrow().audit_enabled() {
        audit(host, &reply::reject_event(reply, token, now));
    }
    send(host, shared, reply);
    Flow::Replied
}

/// Logs an audit event at info level, without the prefix: one JSON object per line.
fn audit<H: Host>(host: &H, event: &str) {
    host.log(LogLevel::Info, event);
}

/// Logs the audit events the gate queued.
fn log_audit<H: Host>(host: &H, lines: Vec<String>) {
    for line in lines {
        audit(host, &line);
    }
}

/// True when the host logs at info level or finer (or cannot say).
fn info_enabled<H: Host>(host: &H) -> bool {
    host.log_level()
        .is_none_or(|level| matches!(level, LogLevel::Trace | LogLevel::Debug | LogLevel::Info))
}

fn apply<H: Host>(host: &H, plan: &HeaderPlan) {
    for name in &plan.remove {
        or_warn(host, host.remove_request_header(name), &format!("remove header {name}"));
    }
    for (name, value) in &plan.set {
        or_warn(host, host.set_request_header(name, value), &format!("set header {name}"));
    }
}

/// Forwards with `azure_token`, and keeps the header changes for the token's next requests.
fn forward<H: Host>(
    host: &H,
    shared: &Shared,
    admission: &Admission,
    verified: &VerifiedToken,
    azure_token: &str,
    now: u64,
    use_until: Option<u64>,
) {
    let config = Rc::clone(shared.borrow().config());
    let plan = request::plan_headers(
        &config.token_header,
        &config.azure_header,
        azure_token,
        &config.claim_headers,
        &verified.claims,
    );
    apply(host, &plan);
    count(host, shared, Counter::RequestsAllowed);
    if let Some(use_until) = use_until {
        shared.borrow_mut().keep_forwarding(admission, now, use_until, plan);
    }
}

/// Runs one request on the effective context: admit, then forward with a cached Azure token or
/// send the gate's token request to Entra (the callout belongs to the calling context).
fn process<H: Host>(host: &H, shared: &Shared, context_id: u32, token: &str, now_ms: u64) -> Flow {
    let now = now_ms / 1000;
    let check = shared.borrow_mut().check(token, now);
    log_audit(host, shared.borrow_mut().gate_mut().take_audit());
    let admission = match check {
        Check::Admitted(admission) => admission,
        Check::Wait => {
            if shared.borrow_mut().park(context_id, token, now_ms) {
                return Flow::Parked;
            }
            return refuse(host, shared, &reply::overloaded(), Some(token), now);
        }
        Check::Unavailable { detail, retry_after } => {
            let reply = reply::jwks_unavailable(&detail, retry_after);
            return refuse(host, shared, &reply, Some(token), now);
        }
        // The gate audited the decision.
        Check::Refuse(failure @ Failure::Denied(_)) => {
            send(host, shared, &reply::failure(&failure));
            return Flow::Replied;
        }
        Check::Refuse(failure) => {
            return refuse(host, shared, &reply::failure(&failure), Some(token), now);
        }
    };
    let Some(verified) = admission.verified.clone() else {
        // The filter's gate always verifies; never forward a token nobody checked.
        let reply = reply::internal("not-verified", "the token was admitted without verification");
        return refuse(host, shared, &reply, Some(token), now);
    };
    // The worker's copy first, then the copy shared by every worker, then Entra.
    if let Some(plan) = shared.borrow().forwarding(&admission, now) {
        apply(host, plan);
        count(host, shared, Counter::RequestsAllowed);
        return Flow::Forward;
    }
    if let Some(key) = admission.decided.azure_key() {
        let slot = cache::azure_slot(key, shared.borrow().config().azure_slots);
        let shared_record = host.shared_data(&slot);
        if let Some(record) = shared_record.and_then(|b| AzureRecord::lookup(&b, key, now)) {
            let use_until = Some(record.use_until);
            forward(host, shared, &admission, &verified, &record.token, now, use_until);
            return Flow::Forward;
        }
    }
    exchange(host, shared, Exchange { context_id, admission, verified }, token, now)
}

/// Sends the gate's token request to Entra; the callout belongs to the calling context.
fn exchange<H: Host>(host: &H, shared: &Shared, pending: Exchange, token: &str, now: u64) -> Flow {
    let rng = SystemRandom::new();
    let built = shared.borrow_mut().gate_mut().request(&pending.admission, token, now, &rng);
    let token_request = match built {
        Ok(r) => r,
        Err(failure) => return refuse(host, shared, &reply::failure(&failure), Some(token), now),
    };
    let Some((authority, path)) = request::split_url(&token_request.url) else {
        let reply = reply::internal("token-endpoint", "the token endpoint is not a URL");
        return refuse(host, shared, &reply, Some(token), now);
    };
    let mut headers: Vec<(&str, &str)> =
        vec![(":method", token_request.method), (":path", &path), (":authority", &authority)];
    headers.extend(token_request.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let config = Rc::clone(shared.borrow().config());
    let timeout = Duration::from_millis(config.entra_timeout_ms);
    let body = Some(token_request.body.as_bytes());
    match host.dispatch_http_call(&config.entra_cluster, &headers, body, timeout) {
        Ok(call) => Flow::Exchanging(call, pending),
        Err(status) => {
            let detail = format!("cluster {} refused the call: {status:?}", config.entra_cluster);
            warn(host, &format!("no answer from Entra: {detail}"));
            count(host, shared, Counter::EntraUnreachable);
            refuse(host, shared, &reply::entra_unreachable(&detail), Some(token), now)
        }
    }
}

/// The status, headers and body of the callout answer being delivered; no status means the call
/// failed (timeout, reset, no healthy host).
fn call_response<H: Host>(
    host: &H,
    body_size: usize,
) -> (Option<u16>, Vec<(String, String)>, Vec<u8>) {
    let headers = host.call_response_headers();
    let status =
        headers.iter().find(|(n, _)| n == ":status").and_then(|(_, v)| v.parse::<u16>().ok());
    (status, headers, host.call_response_body(body_size))
}

/// Entra answered (or did not): share the Azure token and forward, or reply with the failure.
fn finish_exchange<H: Host>(host: &H, shared: &Shared, exchange: &Exchange, body_size: usize) {
    let now = host.now_ms() / 1000;
    let (status, headers, body) = call_response(host, body_size);
    let Some(status) = status else {
        warn(host, "no answer from Entra (timeout or connection failure)");
        count(host, shared, Counter::EntraUnreachable);
        send(host, shared, &reply::entra_unreachable("timeout or connection failure"));
        return;
    };
    let finished = shared.borrow().gate().finish(status, &headers, &body, now);
    match finished {
        Ok(access) => {
            count(host, shared, Counter::EntraOk);
            let config = Rc::clone(shared.borrow().config());
            let use_until = cache::azure_use_until(access.expires_at, config.azure_margin, now);
            if let (Some(use_until), Some(key)) =
                (use_until, exchange.admission.decided.azure_key())
            {
                let token = access.token.secret().to_owned();
                let record = AzureRecord { key: key.to_owned(), use_until, token };
                let slot = cache::azure_slot(key, config.azure_slots);
                let shared_data = host.set_shared_data(&slot, &record.encode());
                or_warn(host, shared_data, "cache the Azure token");
            }
            let (admission, verified) = (&exchange.admission, &exchange.verified);
            forward(host, shared, admission, verified, access.token.secret(), now, use_until);
            or_warn(host, host.resume_http_request(), "resume the request");
        }
        Err(failure) => {
            let target = exchange.admission.target().map(ToString::to_string).unwrap_or_default();
            warn(host, &format!("token exchange for {target} failed: {failure}"));
            count(host, shared, Counter::for_entra_failure(&failure));
            send(host, shared, &reply::failure(&failure));
        }
    }
}

impl<H: Host> Root<H> {
    /// The root context `context_id`, before it is configured.
    pub fn new(host: H, context_id: u32) -> Self {
        Self { host, context_id, worker: None, jwks_call: None, exchanges: HashMap::new() }
    }

    /// Makes the root the effective context again, after acting for a parked request.
    fn restore_effective_context(&self) {
        let restored = self.host.set_effective_context(self.context_id);
        or_warn(&self.host, restored, "restore the root context");
    }

    /// Logs every pending audit event and summary: the worker is going away (reconfigured, or
    /// the VM is stopping).
    fn flush_audit(&self) {
        if let Some(shared) = &self.worker {
            let lines = shared.borrow_mut().flush_audit(self.host.now_ms() / 1000);
            log_audit(&self.host, lines);
        }
    }

    /// Re-runs parked requests once no fetch is in flight.
    fn run_waiters(&mut self, shared: &Shared, now_ms: u64) {
        let waiters = shared.borrow_mut().take_waiters();
        for waiter in waiters {
            if self.host.set_effective_context(waiter.context_id).is_err() {
                continue; // The stream is gone.
            }
            match process(&self.host, shared, waiter.context_id, &waiter.token, now_ms) {
                Flow::Forward => {
                    or_warn(&self.host, self.host.resume_http_request(), "resume the request");
                }
                Flow::Exchanging(call, exchange) => {
                    self.exchanges.insert(call, exchange);
                }
                Flow::Replied | Flow::Parked => {}
            }
        }
        self.restore_effective_context();
    }

    fn on_jwks_response(&mut self, shared: &Shared, body_size: usize) {
        let now = self.host.now_ms() / 1000;
        let (status, headers, body) = call_response(&self.host, body_size);
        let remote = match &shared.borrow().config().jwks {
            JwksSource::Remote(r) => r.clone(),
            JwksSource::Inline(_) => return,
        };
        let failure = match status {
            Some(200) => {
                let cache_control =
                    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("cache-control"));
                let lifetime =
                    cache::jwks_lifetime(&remote, cache_control.map(|(_, v)| v.as_str()));
                let record = JwksRecord {
                    fetched_at: now,
                    expires_at: now + lifetime,
                    jwks: String::from_utf8_lossy(&body).into_owned(),
                };
                let installed = shared.borrow_mut().install(&record, now);
                log_audit(&self.host, shared.borrow_mut().gate_mut().take_audit());
                match installed {
                    Ok(()) => {
                        let message = format!("fetched the JWKS; cached for {lifetime} s");
                        log(&self.host, LogLevel::Info, &message);
                        count(&self.host, shared, Counter::JwksFetchOk);
                        let key = cache::jwks_key(&remote);
                        let shared_data = self.host.set_shared_data(&key, &record.encode());
                        or_warn(&self.host, shared_data, "share the JWKS");
                        None
                    }
                    Err(e) => Some(format!("the JWKS does not parse: {e}")),
                }
            }
            Some(status) => Some(format!("the issuer answered HTTP {status}")),
            None => Some("no answer from the issuer (timeout or connection failure)".to_owned()),
        };
        if let Some(detail) = failure {
            warn(&self.host, &format!("JWKS fetch failed: {detail}"));
            count(&self.host, shared, Counter::JwksFetchFailed);
            shared.borrow_mut().fetch_failed(now, detail);
        }
    }

    /// Adopts a newer JWKS another worker fetched; true when one was installed.
    fn adopt_shared(&self, shared: &Shared, now: u64) -> bool {
        let key = match &shared.borrow().config().jwks {
            JwksSource::Remote(remote) => cache::jwks_key(remote),
            JwksSource::Inline(_) => return false,
        };
        let Some(bytes) = self.host.shared_data(&key) else { return false };
        let Some(record) = JwksRecord::decode(&bytes) else { return false };
        let adopted = {
            let mut worker = shared.borrow_mut();
            now < record.expires_at
                && worker.is_newer(&record)
                && worker.install(&record, now).is_ok()
        };
        log_audit(&self.host, shared.borrow_mut().gate_mut().take_audit());
        adopted
    }

    fn start_fetch(&mut self, shared: &Shared, now_ms: u64) {
        let remote = match &shared.borrow().config().jwks {
            JwksSource::Remote(r) => r.clone(),
            JwksSource::Inline(_) => return,
        };
        let headers = [
            (":method", "GET"),
            (":path", remote.path.as_str()),
            (":authority", remote.authority.as_str()),
            ("accept", "application/json"),
        ];
        let timeout = Duration::from_millis(remote.timeout_ms);
        match self.host.dispatch_http_call(&remote.cluster, &headers, None, timeout) {
            Ok(call) => {
                self.jwks_call = Some(call);
                shared.borrow_mut().fetch_started(now_ms);
            }
            Err(status) => {
                let detail = format!("cluster {} refused the call: {status:?}", remote.cluster);
                warn(&self.host, &format!("JWKS fetch failed: {detail}"));
                count(&self.host, shared, Counter::JwksFetchFailed);
                let mut worker = shared.borrow_mut();
                worker.fetch_started(now_ms);
                worker.fetch_failed(now_ms / 1000, detail);
            }
        }
    }

    /// `on_configure`: parses the plugin configuration; false refuses it, with the reason in
    /// the log.
    ///
    /// Envoy (1.40, measured) gives each plugin configuration its own root context: a changed
    /// configuration (ECDS, or a listener update) is first configured in a throwaway copy of
    /// the VM on the main thread, and only if that `on_configure` returns true does every
    /// worker get a new root context with a new worker state, while the old one keeps serving
    /// the requests it has until they end. A refused configuration never reaches a live root.
    ///
    /// Another host may configure a live root context again; then the worker takes the new
    /// configuration in place ([`Worker::reconfigure`]): requests in flight complete, no
    /// decision made under the old policy is reused, and the keys stay when they can. A refused
    /// configuration changes nothing: the current one keeps serving.
    pub fn on_configure(&mut self) -> bool {
        let id = self.context_id;
        let Some(bytes) = self.host.plugin_configuration() else {
            self.reject("it is empty");
            return false;
        };
        let host = self.host.clone();
        let native = move || -> Option<Arc<dyn gitlab_azure_oidc::offload::SignatureBackend>> {
            Some(Arc::new(NativeRsa::new(HostCalls::new(host))))
        };
        let config = match config::parse_with_backend(&bytes, native) {
            Ok(config) => Rc::new(config),
            Err(e) => {
                self.reject(&e.to_string());
                return false;
            }
        };
        for warning in config.gate.policy().map(|p| p.warnings()).unwrap_or_default() {
            warn(&self.host, &format!("policy: {warning}"));
        }
        let tick = Duration::from_millis(config.tick_ms);
        let described = config.describe();
        match self.worker.clone() {
            None => {
                let mut worker = Worker::new(config);
                worker.set_audit_enabled(info_enabled(&self.host));
                worker.set_counters(Counters::define(&self.host));
                self.worker = Some(Rc::new(RefCell::new(worker)));
                log(
                    &self.host,
                    LogLevel::Info,
                    &format!("configured: {described}; root context {id}"),
                );
            }
            Some(shared) => {
                self.flush_audit();
                let kept = shared.borrow_mut().reconfigure(config, self.host.now_ms() / 1000);
                log_audit(&self.host, shared.borrow_mut().gate_mut().take_audit());
                if !kept {
                    // A fetch in flight is for the old keys: its answer is ignored.
                    self.jwks_call = None;
                }
                let keys = if kept { "the keys stay" } else { "the keys are fetched again" };
                let message = format!("reconfigured: {described}; {keys}; root context {id}");
                log(&self.host, LogLevel::Info, &message);
            }
        }
        or_warn(&self.host, self.host.set_tick_period(tick), "set the tick period");
        true
    }

    /// Logs why a configuration was refused, and what serves instead.
    fn reject(&self, reason: &str) {
        let serving =
            if self.worker.is_some() { "; the current configuration keeps serving" } else { "" };
        let message = format!("rejected the plugin configuration: {reason}{serving}");
        log(&self.host, LogLevel::Error, &message);
    }

    /// `on_tick`: audit summaries, parked requests that waited too long, the JWKS fetch (or
    /// adopting another worker's), and parked requests once keys are there.
    pub fn on_tick(&mut self) {
        let Some(shared) = self.worker.clone() else { return };
        shared.borrow_mut().set_audit_enabled(info_enabled(&self.host));
        let now_ms = self.host.now_ms();
        let lines = shared.borrow_mut().audit_summaries(now_ms / 1000);
        log_audit(&self.host, lines);
        let expired = shared.borrow_mut().expired_waiters(now_ms);
        for waiter in expired {
            if self.host.set_effective_context(waiter.context_id).is_ok() {
                let reply = reply::jwks_unavailable("the fetch took too long", 1);
                refuse(&self.host, &shared, &reply, Some(&waiter.token), now_ms / 1000);
            }
        }
        self.restore_effective_context();
        let wants_fetch = shared.borrow_mut().wants_fetch(now_ms);
        if wants_fetch && !self.adopt_shared(&shared, now_ms / 1000) {
            self.start_fetch(&shared, now_ms);
        }
        self.run_waiters(&shared, now_ms);
    }

    /// `on_http_call_response` of the root: the JWKS fetch, or an exchange for a parked request.
    pub fn on_http_call_response(&mut self, token_id: u32, body_size: usize) {
        let Some(shared) = self.worker.clone() else { return };
        if self.jwks_call == Some(token_id) {
            self.jwks_call = None;
            self.on_jwks_response(&shared, body_size);
            self.run_waiters(&shared, self.host.now_ms());
        } else if let Some(exchange) = self.exchanges.remove(&token_id) {
            if self.host.set_effective_context(exchange.context_id).is_ok() {
                finish_exchange(&self.host, &shared, &exchange, body_size);
                self.restore_effective_context();
            }
        }
    }

    /// `on_done` of the root: its configuration was replaced and its last request ended, or
    /// the VM is stopping.
    pub fn on_done(&mut self) -> bool {
        self.flush_audit();
        if self.worker.is_some() {
            let message = format!("root context {} is done", self.context_id);
            log(&self.host, LogLevel::Info, &message);
        }
        true
    }

    /// A context for the request `context_id`, sharing this worker.
    pub fn create_http_context(&self, context_id: u32) -> Stream<H> {
        Stream { host: self.host.clone(), context_id, worker: self.worker.clone(), exchange: None }
    }
}

/// One request (an HTTP context).
pub struct Stream<H> {
    host: H,
    context_id: u32,
    worker: Option<Shared>,
    exchange: Option<(u32, Exchange)>,
}

impl<H: Host> Stream<H> {
    /// `on_http_request_headers`: read the token and run the flow.
    pub fn on_http_request_headers(&mut self) -> Action {
        let Some(shared) = self.worker.clone() else {
            let reply = reply::internal("not-configured", "the filter has no configuration");
            send_reply(&self.host, &reply);
            return Action::Pause;
        };
        let now_ms = self.host.now_ms();
        let config = Rc::clone(shared.borrow().config());
        let spec = &config.token_header;
        let value = self.host.request_header(&spec.name);
        let token = match request::extract_token(spec, value.as_deref()) {
            Ok(token) => token,
            Err(why) => {
                let reply = reply::missing_token(&spec.name, why);
                refuse(&self.host, &shared, &reply, None, now_ms / 1000);
                return Action::Pause;
            }
        };
        match process(&self.host, &shared, self.context_id, token, now_ms) {
            Flow::Forward => Action::Continue,
            Flow::Replied | Flow::Parked => Action::Pause,
            Flow::Exchanging(call, exchange) => {
                self.exchange = Some((call, exchange));
                Action::Pause
            }
        }
    }

    /// `on_http_call_response` of the request: Entra's answer to its exchange.
    pub fn on_http_call_response(&mut self, token_id: u32, body_size: usize) {
        let Some(shared) = self.worker.clone() else { return };
        match self.exchange.take() {
            Some((call, exchange)) if call == token_id => {
                finish_exchange(&self.host, &shared, &exchange, body_size);
            }
            other => self.exchange = other,
        }
    }

    /// `on_done`: the stream ended; a parked request is forgotten.
    pub fn on_done(&mut self) -> bool {
        if let Some(shared) = &self.worker {
            if let Ok(mut worker) = shared.try_borrow_mut() {
                worker.unpark(self.context_id);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
