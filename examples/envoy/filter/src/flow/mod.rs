//! The request flow, generic over the proxy-wasm [`Host`]: what the root context and an HTTP
//! context do on each callback. The proxy-wasm glue (`filter.rs`, wasm32 only) only forwards
//! Envoy's callbacks here, so native tests drive whole requests through a mock host.
//!
//! The exchange itself is the core's [`Gate`](gitlab_azure_oidc::Gate): fetch the keys, `admit`
//! the token, send the token request, `finish` with Entra's answer. The retry rule is the
//! client's: a failure Entra may clear later is answered 503 (429 on the vending route) with
//! Entra's `Retry-After`, and the filter itself never repeats a token request. What is Envoy's
//! alone stays here: the JWKS fetch schedule and sharing it across workers, parked requests, the
//! Azure tokens in shared data, one callout for many waiting requests, the header plans and the
//! replies.
//!
//! Three kinds of request reach the filter:
//!
//! - **the proxy** (any path but the two below): admit the job's token, then forward upstream
//!   with its Azure token;
//! - **token vending** (`vending.path`, e.g. `POST /token`): admit, then answer with the Azure
//!   token in the JSON of `az account get-access-token`, or with the broker-signed assertion;
//!   never forwarded;
//! - **the broker issuer's documents** (its discovery document and JWKS): answered from the
//!   core's documents, for Entra to fetch.
//!
//! The proxy and vending share the Azure tokens (shared data, keyed by the decision's
//! `azure_key`), and the requests of one job that miss the cache wait on one Entra request: the
//! first dispatches it, the others join it (bounded by `max_waiting_requests`), and its answer
//! serves them all. A `managed-identity` rule first needs the broker's identity token, fetched
//! the same way, once per identity.
//!
//! The root context (one per worker) owns the worker state and does every JWKS fetch, on its
//! tick. An HTTP context handles one request: it admits from the worker's keys, or parks itself
//! when there are none yet; the root re-runs parked requests for them once the fetch completes
//! (`set_effective_context`), so their callouts belong to the root, which outlives them. A
//! callout is delivered to the context that dispatched it (its owner), which then acts for every
//! job waiting on it, each on its own context; a callout whose owner ended is lost, and the root
//! runs its other jobs again on its tick.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use gitlab_azure_oidc::broker::vend::{self, MAX_VEND_BODY};
use gitlab_azure_oidc::broker::{IdentityError, IdentityRequest, VendError, VendKind, VendRequest};
use gitlab_azure_oidc::{Admission, Failure, VerifiedToken};
use proxy_wasm::types::Action;
use ring::rand::{SecureRandom, SystemRandom};

use crate::cache::{self, AzureLease, AzureRecord, JwksRecord};
use crate::config::{self, JwksSource, Route};
use crate::foreign::{HostCalls, NativeRsa};
use crate::host::{Host, LogLevel, Status};
use crate::reply::{self, Reply};
use crate::request::{self, HeaderPlan};
use crate::stats::{Counter, Counters};
use crate::worker::{Call, Check, InFlight, Job, Purpose, RemoteWait, VendAsk, Worker};

type Shared = Rc<RefCell<Worker>>;

/// How long a vending request with a body may wait for the host to hand over the first part of
/// it, in milliseconds. Envoy holds the body of a request whose headers callback paused unless
/// the plugin sets `allow_on_headers_stop_iteration` (Envoy 1.35 and later); without it the body
/// never comes, and the request is answered 500 with that fix instead of hanging.
const BODY_WAIT_MS: u64 = 2000;

/// How long past its timeouts a worker's claim to fetch an Azure token stands (milliseconds),
/// and how long the replies of a failed fetch stay for the other workers' waiting requests.
const LEASE_SLACK_MS: u64 = 5000;

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
}

/// How a request went on.
enum Flow {
    /// Allowed with a cached Azure token: headers rewritten, continue.
    Forward,
    /// A local reply was sent.
    Replied,
    /// Parked until the JWKS fetch completes.
    Parked,
    /// Waiting for a callout (Entra, or the identity endpoint) that serves it.
    Waiting,
}

/// An Azure token ready for a job.
struct Granted {
    token: String,
    expires_at: u64,
    token_type: String,
    /// When the cached token stops being used; `None`: used once, not cached.
    use_until: Option<u64>,
}

/// Answers the request with `reply`, and counts it (allowed, rejected, denied or refused).
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

/// Refuses with a reply of the filter's own, shaped for the request's route.
fn refuse_as<H: Host>(
    host: &H,
    shared: &Shared,
    purpose: &Purpose,
    reply: Reply,
    token: Option<&str>,
    now: u64,
) -> Flow {
    let reply = match purpose {
        Purpose::Forward => reply,
        Purpose::Vend(_) => reply::vend_style(reply),
    };
    refuse(host, shared, &reply, token, now)
}

/// Refuses with the core's failure, shaped for the request's route. A deny was audited by the
/// gate with its decision; anything else gets a refusal line.
fn fail<H: Host>(
    host: &H,
    shared: &Shared,
    purpose: &Purpose,
    failure: &Failure,
    token: Option<&str>,
    now: u64,
) -> Flow {
    let reply = match purpose {
        Purpose::Forward => reply::failure(failure),
        Purpose::Vend(_) => {
            let explain = shared.borrow().config().vending.as_ref().map(|v| v.explain);
            reply::vend_failure(failure, explain.unwrap_or_default())
        }
    };
    if matches!(failure, Failure::Denied(_)) {
        send(host, shared, &reply);
        return Flow::Replied;
    }
    refuse(host, shared, &reply, token, now)
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

/// Gives an admitted job its Azure token: forwards it upstream (the caller continues or
/// resumes it) or answers it with az's JSON.
fn deliver<H: Host>(
    host: &H,
    shared: &Shared,
    purpose: &Purpose,
    admission: &Admission,
    granted: &Granted,
    now: u64,
) -> Flow {
    match purpose {
        Purpose::Forward => {
            let Some(verified) = &admission.verified else {
                let reply = reply::internal("not-verified", "the token was admitted unverified");
                return refuse(host, shared, &reply, None, now);
            };
            let use_until = granted.use_until;
            forward(host, shared, admission, verified, &granted.token, now, use_until);
            Flow::Forward
        }
        Purpose::Vend(_) => {
            let tenant = admission.target().map_or("", |t| t.tenant());
            let (token, expires_at, kind) =
                (&granted.token, granted.expires_at, &granted.token_type);
            let vended = vend::kept_token_reply(token, expires_at, kind, tenant);
            let reply = reply::vended(vended, "access-token");
            count(host, shared, Counter::VendAccessToken);
            send(host, shared, &reply);
            if let Some(use_until) = granted.use_until {
                shared.borrow_mut().keep_vended(admission, now, use_until, reply);
            }
            Flow::Replied
        }
    }
}

/// Runs one request on the effective context: admit, then forward or answer with a cached Azure
/// token, vend the assertion, or wait for the callout that brings the token. `owner` is the
/// context whose callback runs this (it owns any callout dispatched now).
fn process<H: Host>(
    host: &H,
    shared: &Shared,
    owner: u32,
    context_id: u32,
    token: &str,
    purpose: Purpose,
    now_ms: u64,
) -> Flow {
    let now = now_ms / 1000;
    let check = shared.borrow_mut().check(token, now);
    log_audit(host, shared.borrow_mut().gate_mut().take_audit());
    let admission = match check {
        Check::Admitted(admission) => admission,
        Check::Wait => {
            if shared.borrow_mut().park(context_id, token, &purpose, now_ms) {
                return Flow::Parked;
            }
            return refuse_as(host, shared, &purpose, reply::overloaded(), Some(token), now);
        }
        Check::Unavailable { detail, retry_after } => {
            let reply = reply::jwks_unavailable(&detail, retry_after);
            return refuse_as(host, shared, &purpose, reply, Some(token), now);
        }
        Check::Refuse(failure) => return fail(host, shared, &purpose, &failure, Some(token), now),
    };
    if admission.verified.is_none() {
        // The filter's gate always verifies; never forward a token nobody checked.
        let reply = reply::internal("not-verified", "the token was admitted without verification");
        return refuse_as(host, shared, &purpose, reply, Some(token), now);
    }
    match &purpose {
        Purpose::Forward => {
            // The worker's copy first, then the copy shared by every worker, then Entra.
            if let Some(plan) = shared.borrow().forwarding(&admission, now) {
                apply(host, plan);
                count(host, shared, Counter::RequestsAllowed);
                return Flow::Forward;
            }
        }
        Purpose::Vend(ask) => {
            if let Err(failure) = vend::check_scope(&admission, ask.scope.as_deref()) {
                return fail(host, shared, &purpose, &failure, Some(token), now);
            }
            if ask.kind == VendKind::Assertion {
                return vend_assertion(host, shared, &purpose, &admission, token, now);
            }
            // The worker's copy of the reply first, then the token every worker shares.
            let kept = shared.borrow().vended(&admission, now).cloned();
            if let Some(reply) = kept {
                count(host, shared, Counter::VendAccessToken);
                send(host, shared, &reply);
                return Flow::Replied;
            }
        }
    }
    if let Some(granted) = cached(host, shared, &admission, now) {
        return deliver(host, shared, &purpose, &admission, &granted, now);
    }
    let job = Job { context_id, token: token.to_owned(), purpose, admission };
    obtain(host, shared, owner, job, now_ms)
}

/// The Azure token every worker shares for the admission's `azure_key`, while usable.
fn cached<H: Host>(host: &H, shared: &Shared, admission: &Admission, now: u64) -> Option<Granted> {
    let key = admission.decided.azure_key()?;
    let slot = cache::azure_slot(key, shared.borrow().config().azure_slots);
    let record = AzureRecord::lookup(&host.shared_data(&slot)?, key, now)?;
    Some(Granted {
        token: record.token,
        expires_at: record.expires_at,
        token_type: record.token_type,
        use_until: Some(record.use_until),
    })
}

/// Answers with the broker-signed assertion of the rule that allowed the job (`issuer` rules).
fn vend_assertion<H: Host>(
    host: &H,
    shared: &Shared,
    purpose: &Purpose,
    admission: &Admission,
    token: &str,
    now: u64,
) -> Flow {
    if shared.borrow().config().vending.as_ref().is_some_and(|v| !v.assertions) {
        return refuse(host, shared, &reply::assertions_off(), Some(token), now);
    }
    let rng = SystemRandom::new();
    let vended = shared.borrow_mut().gate_mut().vend_assertion(admission, now, &rng);
    match vended {
        Ok(vended) => {
            let reply = reply::vended(vend::assertion_reply(&vended), "assertion");
            count(host, shared, Counter::VendAssertion);
            send(host, shared, &reply);
            Flow::Replied
        }
        Err(failure) => fail(host, shared, purpose, &failure, Some(token), now),
    }
}

/// Gets the job its Azure token: join the Entra request in flight for its key, or fetch the
/// managed identity's token first (joining that fetch if one is in flight), or send the gate's
/// token request.
fn obtain<H: Host>(host: &H, shared: &Shared, owner: u32, job: Job, now_ms: u64) -> Flow {
    let now = now_ms / 1000;
    let Some(key) = job.admission.decided.azure_key().map(str::to_owned) else {
        let reply = reply::internal("no-cache-key", "an allowed job without an Azure cache key");
        return refuse_as(host, shared, &job.purpose, reply, Some(&job.token), now);
    };
    if !shared.borrow().may_wait() {
        let reply = reply::overloaded_tokens();
        return refuse_as(host, shared, &job.purpose, reply, Some(&job.token), now);
    }
    let entra = Call::Entra { key: key.clone(), request_id: String::new() };
    let Some(job) = shared.borrow_mut().join(&entra, job) else {
        count(host, shared, Counter::EntraCoalesced);
        return Flow::Waiting;
    };
    // Another worker may be fetching the same token: one Entra request for every worker.
    if let Claim::Theirs(lease) = claim(host, shared, &key, now_ms) {
        shared.borrow_mut().wait_remote(job, lease, now_ms);
        count(host, shared, Counter::EntraCoalesced);
        return Flow::Waiting;
    }
    let identity = shared.borrow().gate().identity_request(&job.admission, now);
    if let Some(request) = identity {
        let call = Call::Identity { request: request.clone() };
        let Some(job) = shared.borrow_mut().join(&call, job) else { return Flow::Waiting };
        return fetch_identity(host, shared, owner, request, job, now_ms);
    }
    exchange(host, shared, owner, key, job, now_ms)
}

/// Whose fetch of an Azure token it is.
enum Claim {
    /// This worker's: it fetches.
    Mine,
    /// Another worker's, under this lease id: wait for the shared token.
    Theirs(String),
    /// Nobody's: shared data could not be used; fetch anyway.
    Unclaimed,
}

/// Claims the fetch of the Azure token `key` for this worker, with compare-and-swap on the
/// slot's lease, unless another worker's claim stands.
fn claim<H: Host>(host: &H, shared: &Shared, key: &str, now_ms: u64) -> Claim {
    let config = Rc::clone(shared.borrow().config());
    let lease_key = cache::lease_key(key, config.azure_slots);
    let identity_ms = config.identity.as_ref().map_or(0, |i| i.timeout_ms);
    let until_ms = now_ms + config.entra_timeout_ms + identity_ms + LEASE_SLACK_MS;
    for _ in 0..4 {
        let (bytes, cas) = host.shared_data_cas(&lease_key);
        let current = bytes.as_deref().and_then(AzureLease::decode);
        if let Some(lease) = current.filter(|l| now_ms < l.until_ms && l.failed.is_none()) {
            if lease.key != key {
                // Another token's fetch shares the slot: leave its claim alone.
                return Claim::Unclaimed;
            }
            if shared.borrow().lease(key) == Some(lease.id.as_str()) {
                return Claim::Mine;
            }
            return Claim::Theirs(lease.id);
        }
        let Some(cas) = cas else {
            // Never written: a placeholder first, so the claim itself is compared and swapped.
            if host.set_shared_data(&lease_key, b"").is_err() {
                return Claim::Unclaimed;
            }
            continue;
        };
        let mut random = [0u8; 8];
        if SystemRandom::new().fill(&mut random).is_err() {
            return Claim::Unclaimed;
        }
        let id: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let lease = AzureLease { key: key.to_owned(), id: id.clone(), until_ms, failed: None };
        match host.set_shared_data_cas(&lease_key, &lease.encode(), cas) {
            Ok(()) => {
                shared.borrow_mut().set_lease(key, Some(id));
                return Claim::Mine;
            }
            Err(Status::CasMismatch) => continue,
            Err(_) => return Claim::Unclaimed,
        }
    }
    Claim::Unclaimed
}

/// Ends this worker's claim on `key`: the token is shared (`failed: None`), or the fetch failed
/// and the other workers' waiting requests get these replies (the proxy's, the vending route's).
fn settle<H: Host>(
    host: &H,
    shared: &Shared,
    key: &str,
    failed: Option<(Reply, Reply)>,
    now_ms: u64,
) {
    let Some(id) = shared.borrow().lease(key).map(str::to_owned) else { return };
    shared.borrow_mut().set_lease(key, None);
    let lease_key = cache::lease_key(key, shared.borrow().config().azure_slots);
    let (bytes, cas) = host.shared_data_cas(&lease_key);
    let ours = bytes.as_deref().and_then(AzureLease::decode).is_some_and(|l| l.id == id);
    let (Some(cas), true) = (cas, ours) else { return };
    let value = match failed {
        None => Vec::new(),
        Some(replies) => {
            let until_ms = now_ms + LEASE_SLACK_MS;
            AzureLease { key: key.to_owned(), id, until_ms, failed: Some(replies) }.encode()
        }
    };
    // A mismatch means another worker claimed the slot since: nothing of ours is left.
    let _ = host.set_shared_data_cas(&lease_key, &value, cas);
}

/// The replies a failure gives the proxy's and the vending route's requests.
fn failure_replies(shared: &Shared, failure: &Failure) -> (Reply, Reply) {
    let explain = shared.borrow().config().vending.as_ref().map(|v| v.explain);
    (reply::failure(failure), reply::vend_failure(failure, explain.unwrap_or_default()))
}

/// The replies of a failure of the filter's own.
fn own_replies(reply: Reply) -> (Reply, Reply) {
    (reply.clone(), reply::vend_style(reply))
}

/// Sends the gate's token request to Entra for `job` (and every job that joins it).
fn exchange<H: Host>(
    host: &H,
    shared: &Shared,
    owner: u32,
    key: String,
    job: Job,
    now_ms: u64,
) -> Flow {
    let now = now_ms / 1000;
    let rng = SystemRandom::new();
    let built = shared.borrow_mut().gate_mut().request(&job.admission, &job.token, now, &rng);
    let token_request = match built {
        Ok(r) => r,
        Err(failure) => {
            settle(host, shared, &key, Some(failure_replies(shared, &failure)), now_ms);
            return fail(host, shared, &job.purpose, &failure, Some(&job.token), now);
        }
    };
    let Some((authority, path)) = request::split_url(&token_request.url) else {
        let reply = reply::internal("token-endpoint", "the token endpoint is not a URL");
        settle(host, shared, &key, Some(own_replies(reply.clone())), now_ms);
        return refuse_as(host, shared, &job.purpose, reply, Some(&job.token), now);
    };
    let mut headers: Vec<(&str, &str)> =
        vec![(":method", token_request.method), (":path", &path), (":authority", &authority)];
    headers.extend(token_request.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let config = Rc::clone(shared.borrow().config());
    let timeout = Duration::from_millis(config.entra_timeout_ms);
    let body = Some(token_request.body.as_bytes());
    let request_id = token_request.request_id().unwrap_or_default().to_owned();
    match host.dispatch_http_call(&config.entra_cluster, &headers, body, timeout) {
        Ok(call) => {
            let in_flight = InFlight {
                call: Call::Entra { key, request_id },
                owner,
                started_ms: now_ms,
                timeout_ms: config.entra_timeout_ms,
                jobs: vec![job],
            };
            shared.borrow_mut().start(call, in_flight);
            Flow::Waiting
        }
        Err(status) => {
            let detail = format!("cluster {} refused the call: {status:?}", config.entra_cluster);
            warn(host, &format!("no answer from Entra: {detail}"));
            count(host, shared, Counter::EntraUnreachable);
            let reply = reply::entra_unreachable(&detail);
            settle(host, shared, &key, Some(own_replies(reply.clone())), now_ms);
            refuse_as(host, shared, &job.purpose, reply, Some(&job.token), now)
        }
    }
}

/// Asks the managed identity endpoint (through its Envoy cluster) for the broker's identity
/// token, for `job` and every job that joins it.
fn fetch_identity<H: Host>(
    host: &H,
    shared: &Shared,
    owner: u32,
    identity: IdentityRequest,
    job: Job,
    now_ms: u64,
) -> Flow {
    let now = now_ms / 1000;
    let config = Rc::clone(shared.borrow().config());
    let (Some(cluster), Some((authority, path))) =
        (config.identity.as_ref(), request::split_url(&identity.url))
    else {
        let reply =
            reply::internal("identity-endpoint", "no cluster reaches the identity endpoint");
        return refuse_as(host, shared, &job.purpose, reply, Some(&job.token), now);
    };
    let authority = cluster.authority.clone().unwrap_or(authority);
    let mut headers: Vec<(&str, &str)> =
        vec![(":method", identity.method), (":path", &path), (":authority", &authority)];
    headers.extend(identity.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let timeout = Duration::from_millis(cluster.timeout_ms);
    match host.dispatch_http_call(&cluster.cluster, &headers, None, timeout) {
        Ok(call) => {
            let in_flight = InFlight {
                call: Call::Identity { request: identity },
                owner,
                started_ms: now_ms,
                timeout_ms: cluster.timeout_ms,
                jobs: vec![job],
            };
            shared.borrow_mut().start(call, in_flight);
            Flow::Waiting
        }
        Err(status) => {
            let detail = format!("cluster {} refused the call: {status:?}", cluster.cluster);
            warn(host, &format!("no answer from the managed identity endpoint: {detail}"));
            count(host, shared, Counter::IdentityFailed);
            let failure = identity_unreachable(&detail);
            if let Some(key) = job.admission.decided.azure_key() {
                settle(host, shared, key, Some(failure_replies(shared, &failure)), now_ms);
            }
            fail(host, shared, &job.purpose, &failure, Some(&job.token), now)
        }
    }
}

/// The identity endpoint gave no answer: retryable, 503.
fn identity_unreachable(detail: &str) -> Failure {
    Failure::Identity(IdentityError::Endpoint {
        status: 503,
        error: None,
        description: Some(format!("no answer ({detail})")),
        retry_after: None,
    })
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

/// Lets a held request go on upstream (the effective context is its own).
fn resume<H: Host>(host: &H, shared: &Shared, context_id: u32) {
    shared.borrow_mut().release(context_id);
    or_warn(host, host.resume_http_request(), "resume the request");
}

/// Makes the job's context the effective one; false when its stream is gone.
fn enter<H: Host>(host: &H, job: &Job) -> bool {
    host.set_effective_context(job.context_id).is_ok()
}

/// A callout of the worker's answered (or failed): serve every job waiting on it. Returns false
/// when `token` is not one of the worker's callouts. `owner` is the context it was delivered
/// to, made effective again at the end.
fn on_call_answer<H: Host>(
    host: &H,
    shared: &Shared,
    owner: u32,
    token: u32,
    body_size: usize,
) -> bool {
    let Some(in_flight) = shared.borrow_mut().take_in_flight(token) else { return false };
    let answer = call_response(host, body_size);
    match in_flight.call {
        Call::Entra { key, request_id } => {
            finish_exchange(host, shared, (&key, &request_id), in_flight.jobs, answer);
        }
        Call::Identity { request } => {
            finish_identity(host, shared, owner, &request, in_flight.jobs, answer);
        }
    }
    or_warn(host, host.set_effective_context(owner), "restore the effective context");
    true
}

type Answer = (Option<u16>, Vec<(String, String)>, Vec<u8>);

/// Entra answered (or did not): share the Azure token and serve every job, or refuse them all.
/// `call` is the Azure cache key and the request's `client-request-id`, which joins Entra's
/// answer to the decision in the audit log.
fn finish_exchange<H: Host>(
    host: &H,
    shared: &Shared,
    call: (&str, &str),
    jobs: Vec<Job>,
    answer: Answer,
) {
    let (key, request_id) = call;
    let now_ms = host.now_ms();
    let now = now_ms / 1000;
    let (status, headers, body) = answer;
    let Some(status) = status else {
        warn(host, "no answer from Entra (timeout or connection failure)");
        count(host, shared, Counter::EntraUnreachable);
        let reply = reply::entra_unreachable("timeout or connection failure");
        settle(host, shared, key, Some(own_replies(reply.clone())), now_ms);
        for job in jobs.iter().filter(|job| enter(host, job)) {
            refuse_as(host, shared, &job.purpose, reply.clone(), Some(&job.token), now);
        }
        return;
    };
    let finished = shared.borrow_mut().gate_mut().finish(request_id, status, &headers, &body, now);
    log_audit(host, shared.borrow_mut().gate_mut().take_audit());
    match finished {
        Ok(access) => {
            count(host, shared, Counter::EntraOk);
            let config = Rc::clone(shared.borrow().config());
            let use_until = cache::azure_use_until(access.expires_at, config.azure_margin, now);
            if let Some(use_until) = use_until {
                let record = AzureRecord {
                    key: key.to_owned(),
                    use_until,
                    token: access.token.secret().to_owned(),
                    expires_at: access.expires_at,
                    token_type: access.token_type.clone(),
                };
                let slot = cache::azure_slot(key, config.azure_slots);
                let shared_data = host.set_shared_data(&slot, &record.encode());
                or_warn(host, shared_data, "cache the Azure token");
            }
            // Shared (or, too short-lived to share, not: the other workers' requests then fetch
            // their own once the claim is gone).
            settle(host, shared, key, None, now_ms);
            let granted = Granted {
                token: access.token.secret().to_owned(),
                expires_at: access.expires_at,
                token_type: access.token_type.clone(),
                use_until,
            };
            for job in jobs.iter().filter(|job| enter(host, job)) {
                let flow = deliver(host, shared, &job.purpose, &job.admission, &granted, now);
                if matches!(flow, Flow::Forward) {
                    resume(host, shared, job.context_id);
                }
            }
        }
        Err(failure) => {
            let target = jobs
                .first()
                .and_then(|j| j.admission.target())
                .map(ToString::to_string)
                .unwrap_or_default();
            warn(host, &format!("token exchange for {target} failed: {failure}"));
            count(host, shared, Counter::for_entra_failure(&failure));
            settle(host, shared, key, Some(failure_replies(shared, &failure)), now_ms);
            for job in jobs.iter().filter(|job| enter(host, job)) {
                fail(host, shared, &job.purpose, &failure, Some(&job.token), now);
            }
        }
    }
}

/// The identity endpoint answered (or did not): install the identity token and go on to Entra
/// for every job, or refuse them all.
fn finish_identity<H: Host>(
    host: &H,
    shared: &Shared,
    owner: u32,
    identity: &IdentityRequest,
    jobs: Vec<Job>,
    answer: Answer,
) {
    let now_ms = host.now_ms();
    let now = now_ms / 1000;
    let (status, headers, body) = answer;
    let installed = match status {
        Some(status) => shared
            .borrow_mut()
            .gate_mut()
            .install_identity_token(identity, status, &headers, &body, now),
        None => Err(identity_unreachable("timeout or connection failure")),
    };
    match installed {
        Ok(()) => {
            count(host, shared, Counter::IdentityOk);
            for job in jobs {
                if enter(host, &job) {
                    obtain(host, shared, owner, job, now_ms);
                }
            }
        }
        Err(failure) => {
            warn(
                host,
                &format!("managed identity token for {} failed: {failure}", identity.client_id),
            );
            count(host, shared, Counter::IdentityFailed);
            for key in jobs.iter().filter_map(|j| j.admission.decided.azure_key()) {
                settle(host, shared, key, Some(failure_replies(shared, &failure)), now_ms);
            }
            for job in jobs.iter().filter(|job| enter(host, job)) {
                fail(host, shared, &job.purpose, &failure, Some(&job.token), now);
            }
        }
    }
}

impl<H: Host> Root<H> {
    /// The root context `context_id`, before it is configured.
    pub fn new(host: H, context_id: u32) -> Self {
        Self { host, context_id, worker: None, jwks_call: None }
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
            let (id, token) = (waiter.context_id, &waiter.token);
            match process(&self.host, shared, self.context_id, id, token, waiter.purpose, now_ms) {
                Flow::Forward => resume(&self.host, shared, id),
                Flow::Waiting | Flow::Replied | Flow::Parked => {}
            }
        }
        self.restore_effective_context();
    }

    /// Runs again the jobs whose callout was lost with its owner, and answers those whose
    /// callout never came back.
    fn run_orphans(&mut self, shared: &Shared, now_ms: u64) {
        let lost = shared.borrow_mut().expired_in_flight(now_ms);
        for in_flight in lost {
            warn(&self.host, "a callout got no answer in time");
            for key in in_flight.jobs.iter().filter_map(|j| j.admission.decided.azure_key()) {
                settle(&self.host, shared, key, None, now_ms);
            }
            for job in in_flight.jobs.iter().filter(|job| enter(&self.host, job)) {
                let (host, token, now) = (&self.host, Some(job.token.as_str()), now_ms / 1000);
                match in_flight.call {
                    Call::Entra { .. } => {
                        let reply = reply::entra_unreachable("no answer in time");
                        refuse_as(host, shared, &job.purpose, reply, token, now);
                    }
                    Call::Identity { .. } => {
                        let failure = identity_unreachable("no answer in time");
                        fail(host, shared, &job.purpose, &failure, token, now);
                    }
                }
            }
        }
        let orphans = shared.borrow_mut().take_orphans();
        for job in orphans {
            if enter(&self.host, &job) {
                obtain(&self.host, shared, self.context_id, job, now_ms);
            }
        }
        let remote = shared.borrow_mut().take_remote();
        for wait in remote {
            self.check_remote(shared, wait, now_ms);
        }
        self.restore_effective_context();
    }

    /// A job waiting for another worker's fetch: serve it once the token is shared, refuse it
    /// with that fetch's failure, keep waiting while the claim stands, or fetch itself.
    fn check_remote(&mut self, shared: &Shared, wait: RemoteWait, now_ms: u64) {
        let (host, now) = (&self.host, now_ms / 1000);
        let job = &wait.job;
        if let Some(granted) = cached(host, shared, &job.admission, now) {
            if enter(host, job) {
                let flow = deliver(host, shared, &job.purpose, &job.admission, &granted, now);
                if matches!(flow, Flow::Forward) {
                    resume(host, shared, job.context_id);
                }
            }
            return;
        }
        let Some(key) = job.admission.decided.azure_key() else { return };
        let lease_key = cache::lease_key(key, shared.borrow().config().azure_slots);
        let lease = host.shared_data(&lease_key).as_deref().and_then(AzureLease::decode);
        let waited_too_long = {
            let config = shared.borrow().config().clone();
            let identity_ms = config.identity.as_ref().map_or(0, |i| i.timeout_ms);
            now_ms >= wait.since_ms + config.entra_timeout_ms + identity_ms + LEASE_SLACK_MS
        };
        match lease {
            Some(lease) if lease.key == key && lease.id == wait.lease && lease.failed.is_some() => {
                if let (Some((proxy, vend)), true) = (lease.failed, enter(host, job)) {
                    let reply = if matches!(job.purpose, Purpose::Forward) { proxy } else { vend };
                    refuse(host, shared, &reply, Some(&job.token), now);
                }
                return;
            }
            Some(lease) if lease.in_flight(key, now_ms) && !waited_too_long => {
                let again = RemoteWait { lease: lease.id, ..wait };
                let mut worker = shared.borrow_mut();
                worker.wait_remote(again.job, again.lease, again.since_ms);
                return;
            }
            _ => {}
        }
        if enter(host, job) {
            obtain(host, shared, self.context_id, wait.job, now_ms);
        }
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
    /// the log. The broker's `{"env": NAME}` secrets are read from the VM's environment
    /// (Envoy's `vm_config.environment_variables`). Rules whose credential is `federated` are
    /// logged as advisory, with what would make them binding.
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
        let env = |name: &str| self.host.env_var(name);
        let config = match config::parse_with_backend(&bytes, &env, native) {
            Ok(config) => Rc::new(config),
            Err(e) => {
                self.reject(&e.to_string());
                return false;
            }
        };
        for warning in config.gate.policy().map(|p| p.warnings()).unwrap_or_default() {
            warn(&self.host, &format!("policy: {warning}"));
        }
        if let Some(notice) = config.advisory_notice() {
            warn(&self.host, &format!("policy: {notice}"));
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

    /// `on_tick`: audit summaries, parked requests that waited too long, lost callouts, the
    /// JWKS fetch (or adopting another worker's), and parked requests once keys are there.
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
                let token = Some(waiter.token.as_str());
                refuse_as(&self.host, &shared, &waiter.purpose, reply, token, now_ms / 1000);
            }
        }
        let withheld = shared.borrow_mut().bodies_withheld(now_ms, BODY_WAIT_MS);
        for id in withheld {
            if self.host.set_effective_context(id).is_ok() {
                warn(&self.host, "a vending request's body never reached the filter: set allow_on_headers_stop_iteration: true on the wasm filter");
                refuse(&self.host, &shared, &reply::body_withheld(), None, now_ms / 1000);
            }
        }
        self.restore_effective_context();
        self.run_orphans(&shared, now_ms);
        let wants_fetch = shared.borrow_mut().wants_fetch(now_ms);
        if wants_fetch && !self.adopt_shared(&shared, now_ms / 1000) {
            self.start_fetch(&shared, now_ms);
        }
        self.run_waiters(&shared, now_ms);
    }

    /// `on_http_call_response` of the root: the JWKS fetch, or a callout the root dispatched
    /// for parked requests.
    pub fn on_http_call_response(&mut self, token_id: u32, body_size: usize) {
        let Some(shared) = self.worker.clone() else { return };
        if self.jwks_call == Some(token_id) {
            self.jwks_call = None;
            self.on_jwks_response(&shared, body_size);
            self.run_waiters(&shared, self.host.now_ms());
        } else {
            on_call_answer(&self.host, &shared, self.context_id, token_id, body_size);
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
        Stream {
            host: self.host.clone(),
            context_id,
            worker: self.worker.clone(),
            awaiting_body: false,
            path: String::new(),
        }
    }
}

/// One request (an HTTP context).
pub struct Stream<H> {
    host: H,
    context_id: u32,
    worker: Option<Shared>,
    /// A vending request whose body is still arriving.
    awaiting_body: bool,
    /// Its `:path`, read when it was routed.
    path: String,
}

impl<H: Host> Stream<H> {
    /// `on_http_request_headers`: route the request, read the token and run the flow.
    /// `end_of_stream` is true when the request has no body.
    pub fn on_http_request_headers(&mut self, end_of_stream: bool) -> Action {
        let Some(shared) = self.worker.clone() else {
            let reply = reply::internal("not-configured", "the filter has no configuration");
            send_reply(&self.host, &reply);
            return Action::Pause;
        };
        let now_ms = self.host.now_ms();
        let config = Rc::clone(shared.borrow().config());
        // Only a broker reads the path: the proxy's warm path makes no host call it needs not.
        let path = if config.vending.is_some() || config.issuer_documents.is_some() {
            self.host.request_header(":path").unwrap_or_default()
        } else {
            String::new()
        };
        let route = if path.is_empty() { Route::Proxy } else { config.route(&path) };
        match route {
            Route::Discovery | Route::Jwks => {
                self.serve_document(&shared, route);
                return Action::Pause;
            }
            Route::Vend if end_of_stream => return self.vend(&shared, &path, &[]),
            Route::Vend => {
                self.awaiting_body = true;
                self.path = path;
                shared.borrow_mut().await_body(self.context_id, now_ms);
                return Action::Pause;
            }
            Route::Proxy => {}
        }
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
        let (id, purpose) = (self.context_id, Purpose::Forward);
        match process(&self.host, &shared, id, id, token, purpose, now_ms) {
            Flow::Forward => Action::Continue,
            Flow::Replied => Action::Pause,
            Flow::Parked | Flow::Waiting => {
                shared.borrow_mut().hold(id);
                Action::Pause
            }
        }
    }

    /// `on_http_request_body`: the body of a vending request, read once it is complete (at most
    /// the core's `MAX_VEND_BODY`). Another request's body waits while the filter holds the
    /// request (a body let through would resume it), then passes.
    ///
    /// Envoy calls this for a request whose headers callback paused only when the plugin sets
    /// `allow_on_headers_stop_iteration: true` (Envoy 1.35 and later); otherwise it holds the body
    /// until the request is resumed, and a vending request with a body is answered 500 with that
    /// fix on the root's tick ([`BODY_WAIT_MS`]).
    pub fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(shared) = self.worker.clone() else { return Action::Continue };
        let id = self.context_id;
        if !self.awaiting_body {
            let held = shared.borrow().is_held(id);
            return if held { Action::Pause } else { Action::Continue };
        }
        if !shared.borrow_mut().body_arrived(id) {
            // Answered already (its body was withheld too long).
            return Action::Pause;
        }
        if body_size > MAX_VEND_BODY {
            self.awaiting_body = false;
            shared.borrow_mut().body_done(id);
            let failure =
                Failure::Vend(VendError::BodyTooLarge { size: body_size, limit: MAX_VEND_BODY });
            let purpose = Purpose::Vend(VendAsk { scope: None, kind: VendKind::AccessToken });
            fail(&self.host, &shared, &purpose, &failure, None, self.host.now_ms() / 1000);
            return Action::Pause;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.awaiting_body = false;
        shared.borrow_mut().body_done(id);
        let body = self.host.request_body(body_size);
        let path = std::mem::take(&mut self.path);
        self.vend(&shared, &path, &body)
    }

    /// A complete vending request: read it as the core does, then run the flow. Without a body,
    /// the query's `kind` and `scope` are read as the body would be (for a proxy that cannot let
    /// the filter read bodies).
    fn vend(&mut self, shared: &Shared, path: &str, body: &[u8]) -> Action {
        let now_ms = self.host.now_ms();
        let method = self.host.request_header(":method").unwrap_or_default();
        // The content type matters only for a body: no host call for it on a bare POST.
        let names: &[&str] =
            if body.is_empty() { &["authorization"] } else { &["authorization", "content-type"] };
        let mut headers: Vec<(String, String)> = names
            .iter()
            .filter_map(|name| self.host.request_header(name).map(|v| ((*name).to_owned(), v)))
            .collect();
        let query = path.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or_default());
        let body = match query.filter(|q| body.is_empty() && !q.is_empty()) {
            Some(query) => {
                headers.retain(|(n, _)| n != "content-type");
                let form = "application/x-www-form-urlencoded";
                headers.push(("content-type".to_owned(), form.to_owned()));
                query.as_bytes()
            }
            None => body,
        };
        let parsed = VendRequest::parse(&method, &headers, body);
        let request = match parsed {
            Ok(request) => request,
            Err(error) => {
                let purpose = Purpose::Vend(VendAsk { scope: None, kind: VendKind::AccessToken });
                let failure = Failure::Vend(error);
                fail(&self.host, shared, &purpose, &failure, None, now_ms / 1000);
                return Action::Pause;
            }
        };
        let ask = VendAsk { scope: request.scope().map(str::to_owned), kind: request.kind() };
        let id = self.context_id;
        process(&self.host, shared, id, id, request.token(), Purpose::Vend(ask), now_ms);
        Action::Pause
    }

    /// Answers with the broker issuer's discovery document or JWKS.
    fn serve_document(&self, shared: &Shared, route: Route) {
        let config = Rc::clone(shared.borrow().config());
        let Some(docs) = &config.issuer_documents else { return };
        let method = self.host.request_header(":method").unwrap_or_default();
        let body = if route == Route::Jwks { &docs.jwks } else { &docs.discovery };
        count(&self.host, shared, Counter::IssuerDocuments);
        send_reply(&self.host, &reply::document(&method, body, docs.max_age));
    }

    /// `on_http_call_response` of the request: the answer to a callout it dispatched, for
    /// itself and every request that joined it.
    pub fn on_http_call_response(&mut self, token_id: u32, body_size: usize) {
        let Some(shared) = self.worker.clone() else { return };
        on_call_answer(&self.host, &shared, self.context_id, token_id, body_size);
    }

    /// `on_done`: the stream ended; a parked or waiting request is forgotten, and the jobs
    /// that waited on a callout it owned are run again by the root.
    pub fn on_done(&mut self) -> bool {
        if let Some(shared) = &self.worker {
            if let Ok(mut worker) = shared.try_borrow_mut() {
                worker.forget(self.context_id);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
