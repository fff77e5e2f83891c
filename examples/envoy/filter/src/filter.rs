//! The proxy-wasm glue: host calls in, core and helpers out. No decision is made here.
//!
//! The root context owns the worker state (configuration, keys, waiting requests) and does every
//! JWKS fetch, on its tick. An HTTP context handles one request: it verifies from the worker's
//! keys, or parks itself when there are none yet; the root re-runs parked requests for them once
//! the fetch completes (`set_effective_context`), so their callouts belong to the root, which
//! outlives them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use gitlab_azure_oidc::entra;
use log::{error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};

use crate::admission::{Admission, AzureRoute, Forwarding, Route};
use crate::cache::{self, AzureRecord, JwksRecord};
use crate::config::{self, JwksSource};
use crate::foreign::{self, CallError, NativeRsa, Outcome};
use crate::reply::{self, Reply};
use crate::request::{self, HeaderPlan};
use crate::worker::{Check, Worker};

type Shared = Rc<RefCell<Worker>>;

/// The root context: one per worker.
pub(crate) struct Root {
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
    /// The request's admission; its route is `Route::Azure`.
    admission: Rc<Admission>,
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

fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_millis()).ok())
        .unwrap_or(0)
}

fn send(reply: &Reply) {
    let headers: Vec<(&str, &str)> =
        reply.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    if let Err(status) =
        hostcalls::send_http_response(reply.status, headers, Some(reply.body.as_bytes()))
    {
        warn!("gitlab-azure-oidc: could not send the local reply: {status:?}");
    }
}

fn reject(shared: &Shared, reply: &Reply, token: Option<&str>, now: u64) -> Flow {
    if shared.borrow().audit_enabled() {
        audit(&reply::reject_event(reply, token, now));
    }
    send(reply);
    Flow::Replied
}

/// Logs an audit event at info level. Straight to the host: the `log` macros would format and
/// copy the (about 1 KiB) line once more on every request.
fn audit(event: &str) {
    if let Err(status) = hostcalls::log(LogLevel::Info, event) {
        warn!("gitlab-azure-oidc: could not log the audit event: {status:?}");
    }
}

/// Logs audit summaries, when audit events are logged.
fn log_audit(shared: &Shared, lines: &[String]) {
    if shared.borrow().audit_enabled() {
        for line in lines {
            audit(line);
        }
    }
}

/// True when the host logs at info level or finer (or cannot say).
fn info_enabled() -> bool {
    hostcalls::get_log_level()
        .map_or(true, |level| matches!(level, LogLevel::Trace | LogLevel::Debug | LogLevel::Info))
}

fn apply(plan: &HeaderPlan) {
    for name in &plan.remove {
        if let Err(status) = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None) {
            warn!("gitlab-azure-oidc: could not remove header {name}: {status:?}");
        }
    }
    for (name, value) in &plan.set {
        if let Err(status) =
            hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
        {
            warn!("gitlab-azure-oidc: could not set header {name}: {status:?}");
        }
    }
}

/// Forwards with `azure_token`, and keeps the header changes for the token's next requests.
fn forward(worker: &Worker, admission: &Admission, azure_token: &str, use_until: Option<u64>) {
    let config = worker.config();
    let plan = request::plan_headers(
        &config.token_header,
        &config.azure_header,
        azure_token,
        &config.claim_headers,
        &admission.verified.claims,
    );
    apply(&plan);
    if let Some(use_until) = use_until {
        admission.keep(Forwarding { use_until, plan });
    }
}

/// Runs one request on the effective context: verify, decide, then forward with a cached Azure
/// token or dispatch the token request (the callout belongs to `ctx`).
fn process(ctx: &dyn Context, shared: &Shared, context_id: u32, token: &str, now_ms: u64) -> Flow {
    let now = now_ms / 1000;
    let check = shared.borrow_mut().check(token, now);
    let verified = match check {
        Check::Verified(verified) => verified,
        Check::Wait => {
            let parked = shared.borrow_mut().park(context_id, token, now_ms);
            return match parked {
                Ok(()) => Flow::Parked,
                Err(reply) => reject(shared, &reply, Some(token), now),
            };
        }
        Check::Reject(reply) => return reject(shared, &reply, Some(token), now),
    };
    let admitted = shared.borrow_mut().admit(&verified, now);
    let admission = admitted.admission;
    if admitted.fresh {
        // A new decision may have evicted an admission whose reuses are not summarized yet.
        let retired = shared.borrow_mut().retired_audit_summaries(now);
        log_audit(shared, &retired);
    }
    let worker = shared.borrow();
    if worker.audit_enabled() && (admitted.fresh || worker.config().audit_every_request) {
        audit(&admission.audit_line(now));
    }
    let route = match &admission.route {
        Route::Azure(route) => route,
        Route::Deny => {
            send(&reply::denied(&admission.decision));
            return Flow::Replied;
        }
        Route::NoTarget => {
            send(&reply::internal("no-target", "the configuration has no target for this rule"));
            return Flow::Replied;
        }
    };
    // The worker's copy first, then the copy shared by every worker, then Entra.
    if let Some(plan) = admission.forwarding(now) {
        apply(&plan);
        return Flow::Forward;
    }
    if let Ok((Some(bytes), _)) = hostcalls::get_shared_data(&route.slot) {
        if let Some(record) = AzureRecord::lookup(&bytes, &route.key, now) {
            forward(&worker, &admission, &record.token, Some(record.use_until));
            return Flow::Forward;
        }
    }
    exchange(ctx, &worker, &admission, route, token, context_id, now)
}

/// Sends the core's token request to Entra; the callout belongs to `ctx`.
fn exchange(
    ctx: &dyn Context,
    worker: &Worker,
    admission: &Rc<Admission>,
    route: &AzureRoute,
    token: &str,
    context_id: u32,
    now: u64,
) -> Flow {
    let fail = |reply: &Reply| {
        if worker.audit_enabled() {
            audit(&reply::reject_event(reply, Some(token), now));
        }
        send(reply);
        Flow::Replied
    };
    let token_request = match entra::build_federated_request(&route.target.entra, token) {
        Ok(r) => r,
        Err(e) => return fail(&reply::internal(e.kind(), &e.to_string())),
    };
    let Some((authority, path)) = request::split_url(&token_request.url) else {
        return fail(&reply::internal("token-endpoint", "bad token endpoint"));
    };
    let mut headers: Vec<(&str, &str)> =
        vec![(":method", token_request.method), (":path", &path), (":authority", &authority)];
    headers.extend(token_request.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let config = worker.config();
    let timeout = Duration::from_millis(config.entra_timeout_ms);
    match ctx.dispatch_http_call(
        &config.entra_cluster,
        headers,
        Some(token_request.body.as_bytes()),
        vec![],
        timeout,
    ) {
        Ok(call) => {
            Flow::Exchanging(call, Exchange { context_id, admission: Rc::clone(admission) })
        }
        Err(status) => {
            let detail = format!("cluster {} refused the call: {status:?}", config.entra_cluster);
            fail(&reply::entra_unreachable(&detail))
        }
    }
}

/// The status, headers and body of the callout answer being delivered; no status means the call
/// failed (timeout, reset, no healthy host).
fn call_response(body_size: usize) -> (Option<u16>, Vec<(String, String)>, Vec<u8>) {
    let headers = hostcalls::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default();
    let status =
        headers.iter().find(|(n, _)| n == ":status").and_then(|(_, v)| v.parse::<u16>().ok());
    let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default();
    (status, headers, body)
}

/// Entra answered (or did not): cache the Azure token and forward, or reply with the error.
fn finish_exchange(shared: &Shared, exchange: &Exchange, body_size: usize) {
    let now = now_ms() / 1000;
    let (status, headers, body) = call_response(body_size);
    let Some(status) = status else {
        warn!("gitlab-azure-oidc: no answer from Entra (timeout or connection failure)");
        send(&reply::entra_unreachable("timeout or connection failure"));
        return;
    };
    let Route::Azure(route) = &exchange.admission.route else {
        // Only an Azure route dispatches an exchange; answer rather than leave the request paused.
        send(&reply::internal("no-target", "the exchange has no Azure target"));
        return;
    };
    match entra::parse_token_response(status, &headers, &body, now) {
        Ok(access) => {
            let worker = shared.borrow();
            let config = worker.config();
            let use_until = cache::azure_use_until(access.expires_at, config.azure_margin, now);
            if let Some(use_until) = use_until {
                let record = AzureRecord {
                    key: route.key.clone(),
                    use_until,
                    token: access.token.secret().to_owned(),
                };
                if let Err(status) =
                    hostcalls::set_shared_data(&route.slot, Some(&record.encode()), None)
                {
                    warn!("gitlab-azure-oidc: could not cache the Azure token: {status:?}");
                }
            }
            forward(&worker, &exchange.admission, access.token.secret(), use_until);
            if let Err(status) = hostcalls::resume_http_request() {
                warn!("gitlab-azure-oidc: could not resume the request: {status:?}");
            }
        }
        Err(e) => {
            warn!("gitlab-azure-oidc: token exchange for {} failed: {e}", route.target.policy);
            send(&reply::entra_error(&e));
        }
    }
}

/// Envoy's side of the native signature check: the `verify_signature` foreign function, a
/// counter per outcome (`gitlab_azure_oidc.verify_signature.{valid,invalid,not_checked}`, under
/// Envoy's `wasmcustom.` stats) and info logs.
struct EnvoyHost {
    counters: Option<[u32; 3]>,
}

impl EnvoyHost {
    const COUNTERS: [&'static str; 3] = [
        "gitlab_azure_oidc.verify_signature.valid",
        "gitlab_azure_oidc.verify_signature.invalid",
        "gitlab_azure_oidc.verify_signature.not_checked",
    ];

    fn new() -> Self {
        let mut ids = [0; 3];
        for (id, name) in ids.iter_mut().zip(Self::COUNTERS) {
            match hostcalls::define_metric(MetricType::Counter, name) {
                Ok(defined) => *id = defined,
                Err(status) => {
                    warn!("gitlab-azure-oidc: could not define the counter {name}: {status:?}");
                    return Self { counters: None };
                }
            }
        }
        Self { counters: Some(ids) }
    }
}

impl foreign::Host for EnvoyHost {
    fn call(&self, arguments: &[u8]) -> Result<Vec<u8>, CallError> {
        // proxy-wasm 0.2.5 panics on a status the ABI does not list for this call; Envoy's
        // foreign functions return only listed ones (Ok, NotFound, SerializationFailure).
        match hostcalls::call_foreign_function("verify_signature", Some(arguments)) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(CallError::Failed("no result".to_owned())),
            Err(Status::NotFound) => Err(CallError::NotFound),
            Err(status) => Err(CallError::Failed(format!("{status:?}"))),
        }
    }

    fn count(&self, outcome: Outcome) {
        let Some(ids) = self.counters else { return };
        let id = match outcome {
            Outcome::Valid => ids[0],
            Outcome::Invalid => ids[1],
            Outcome::NotChecked => ids[2],
        };
        if let Err(status) = hostcalls::increment_metric(id, 1) {
            warn!("gitlab-azure-oidc: could not count a signature check: {status:?}");
        }
    }

    fn note(&self, message: &str) {
        info!("gitlab-azure-oidc: {message}");
    }
}

impl Root {
    pub(crate) fn new(context_id: u32) -> Self {
        Self { context_id, worker: None, jwks_call: None, exchanges: HashMap::new() }
    }

    /// Makes the root the effective context again, after acting for a parked request.
    fn restore_effective_context(&self) {
        if let Err(status) = hostcalls::set_effective_context(self.context_id) {
            warn!("gitlab-azure-oidc: could not restore the root context: {status:?}");
        }
    }

    /// Logs every pending audit summary: the worker is going away (reconfigured, or the VM is
    /// stopping).
    fn flush_audit(&self) {
        if let Some(shared) = &self.worker {
            let summaries = shared.borrow_mut().flush_audit_summaries(now_ms() / 1000);
            log_audit(shared, &summaries);
        }
    }

    /// Re-runs parked requests once no fetch is in flight.
    fn run_waiters(&mut self, shared: &Shared, now_ms: u64) {
        let waiters = shared.borrow_mut().take_waiters();
        for waiter in waiters {
            if hostcalls::set_effective_context(waiter.context_id).is_err() {
                continue; // The stream is gone.
            }
            match process(self, shared, waiter.context_id, &waiter.token, now_ms) {
                Flow::Forward => {
                    if let Err(status) = hostcalls::resume_http_request() {
                        warn!("gitlab-azure-oidc: could not resume the request: {status:?}");
                    }
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
        let now = now_ms() / 1000;
        let (status, headers, body) = call_response(body_size);
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
                match shared.borrow_mut().install(&record) {
                    Ok(()) => {
                        info!("gitlab-azure-oidc: fetched the JWKS; cached for {lifetime} s");
                        if let Err(status) = hostcalls::set_shared_data(
                            cache::JWKS_KEY,
                            Some(&record.encode()),
                            None,
                        ) {
                            warn!("gitlab-azure-oidc: could not share the JWKS: {status:?}");
                        }
                        None
                    }
                    Err(e) => Some(format!("the JWKS does not parse: {e}")),
                }
            }
            Some(status) => Some(format!("the issuer answered HTTP {status}")),
            None => Some("no answer from the issuer (timeout or connection failure)".to_owned()),
        };
        if let Some(detail) = failure {
            warn!("gitlab-azure-oidc: JWKS fetch failed: {detail}");
            shared.borrow_mut().fetch_failed(now, detail);
        }
    }

    /// Adopts a newer JWKS another worker fetched; true when one was installed.
    fn adopt_shared(shared: &Shared, now: u64) -> bool {
        let Ok((Some(bytes), _)) = hostcalls::get_shared_data(cache::JWKS_KEY) else {
            return false;
        };
        let Some(record) = JwksRecord::decode(&bytes) else { return false };
        let mut worker = shared.borrow_mut();
        now < record.expires_at && worker.is_newer(&record) && worker.install(&record).is_ok()
    }

    fn start_fetch(&mut self, shared: &Shared, now_ms: u64) {
        let remote = match &shared.borrow().config().jwks {
            JwksSource::Remote(r) => r.clone(),
            JwksSource::Inline(_) => return,
        };
        let headers = vec![
            (":method", "GET"),
            (":path", remote.path.as_str()),
            (":authority", remote.authority.as_str()),
            ("accept", "application/json"),
        ];
        let timeout = Duration::from_millis(remote.timeout_ms);
        match self.dispatch_http_call(&remote.cluster, headers, None, vec![], timeout) {
            Ok(call) => {
                self.jwks_call = Some(call);
                shared.borrow_mut().fetch_started(now_ms);
            }
            Err(status) => {
                let detail = format!("cluster {} refused the call: {status:?}", remote.cluster);
                warn!("gitlab-azure-oidc: JWKS fetch failed: {detail}");
                let mut worker = shared.borrow_mut();
                worker.fetch_started(now_ms);
                worker.fetch_failed(now_ms / 1000, detail);
            }
        }
    }
}

impl Context for Root {
    fn on_done(&mut self) -> bool {
        self.flush_audit();
        true
    }

    fn on_http_call_response(&mut self, token_id: u32, _: usize, body_size: usize, _: usize) {
        let Some(shared) = self.worker.clone() else { return };
        if self.jwks_call == Some(token_id) {
            self.jwks_call = None;
            self.on_jwks_response(&shared, body_size);
            self.run_waiters(&shared, now_ms());
        } else if let Some(exchange) = self.exchanges.remove(&token_id) {
            if hostcalls::set_effective_context(exchange.context_id).is_ok() {
                finish_exchange(&shared, &exchange, body_size);
            }
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            error!("gitlab-azure-oidc: rejected the plugin configuration: it is empty");
            return false;
        };
        match config::parse(&bytes) {
            Ok(config) => {
                self.flush_audit();
                for warning in config.policy.warnings() {
                    warn!("gitlab-azure-oidc: policy: {warning}");
                }
                let tick = Duration::from_millis(config.tick_ms);
                let native = config.envoy_verify_signature;
                let mut worker = Worker::new(Rc::new(config));
                worker.set_audit_enabled(info_enabled());
                if native {
                    worker.set_signature_backend(Some(Arc::new(NativeRsa::new(EnvoyHost::new()))));
                }
                self.worker = Some(Rc::new(RefCell::new(worker)));
                self.jwks_call = None;
                self.set_tick_period(tick);
                info!("gitlab-azure-oidc: configured");
                true
            }
            Err(e) => {
                error!("gitlab-azure-oidc: rejected the plugin configuration: {e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let Some(shared) = self.worker.clone() else { return };
        shared.borrow_mut().set_audit_enabled(info_enabled());
        let now_ms = now_ms();
        let summaries = shared.borrow_mut().audit_summaries(now_ms / 1000);
        log_audit(&shared, &summaries);
        let expired = shared.borrow_mut().expired_waiters(now_ms);
        for waiter in expired {
            if hostcalls::set_effective_context(waiter.context_id).is_ok() {
                let reply = reply::jwks_unavailable("the fetch took too long", 1);
                reject(&shared, &reply, Some(&waiter.token), now_ms / 1000);
            }
        }
        self.restore_effective_context();
        let wants_fetch = shared.borrow_mut().wants_fetch(now_ms);
        if wants_fetch && !Self::adopt_shared(&shared, now_ms / 1000) {
            self.start_fetch(&shared, now_ms);
        }
        self.run_waiters(&shared, now_ms);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http { context_id, worker: self.worker.clone(), exchange: None }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
struct Http {
    context_id: u32,
    worker: Option<Shared>,
    exchange: Option<(u32, Exchange)>,
}

impl Context for Http {
    fn on_http_call_response(&mut self, token_id: u32, _: usize, body_size: usize, _: usize) {
        let Some(shared) = self.worker.clone() else { return };
        match self.exchange.take() {
            Some((call, exchange)) if call == token_id => {
                finish_exchange(&shared, &exchange, body_size);
            }
            other => self.exchange = other,
        }
    }

    fn on_done(&mut self) -> bool {
        if let Some(shared) = &self.worker {
            if let Ok(mut worker) = shared.try_borrow_mut() {
                worker.unpark(self.context_id);
            }
        }
        true
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let Some(shared) = self.worker.clone() else {
            send(&reply::internal("not-configured", "the filter has no configuration"));
            return Action::Pause;
        };
        let now_ms = now_ms();
        let config = Rc::clone(shared.borrow().config());
        let spec = &config.token_header;
        let value =
            hostcalls::get_map_value(MapType::HttpRequestHeaders, &spec.name).ok().flatten();
        let token = match request::extract_token(spec, value.as_deref()) {
            Ok(token) => token,
            Err(why) => {
                reject(&shared, &reply::missing_token(&spec.name, why), None, now_ms / 1000);
                return Action::Pause;
            }
        };
        match process(self, &shared, self.context_id, token, now_ms) {
            Flow::Forward => Action::Continue,
            Flow::Replied | Flow::Parked => Action::Pause,
            Flow::Exchanging(call, exchange) => {
                self.exchange = Some((call, exchange));
                Action::Pause
            }
        }
    }
}
