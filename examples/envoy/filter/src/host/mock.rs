//! A recording [`Host`] for native tests: it plays Envoy's side of every host call and records
//! what the filter did, per request context. The test driver in `flow/tests.rs` calls the
//! contexts as Envoy's dispatcher would (setting the active and effective context first).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{Host, LogLevel, Status};

/// A foreign function: arguments in, result (or a status) out.
pub(crate) type ForeignFn = Box<dyn Fn(&[u8]) -> Result<Option<Vec<u8>>, Status> + Send>;

/// One callout the filter dispatched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Call {
    /// The token the host returned.
    pub token: u32,
    /// The context whose callback dispatched it: where the answer goes.
    pub owner: u32,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
    pub timeout: Duration,
}

impl Call {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A local reply the filter sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sent {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Sent {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON reply")
    }
}

/// What happened to one request context.
#[derive(Clone, Debug, Default)]
pub(crate) struct Request {
    /// The request headers, as the filter left them.
    pub headers: Vec<(String, String)>,
    /// The request body Envoy buffered.
    pub body: Vec<u8>,
    /// The local reply, when one was sent.
    pub sent: Option<Sent>,
    /// How often the request was resumed.
    pub resumed: u32,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Everything the mock records and serves.
pub(crate) struct State {
    pub now_ms: u64,
    pub log_level: LogLevel,
    pub logs: Vec<(LogLevel, String)>,
    pub plugin_configuration: Option<Vec<u8>>,
    /// The VM's environment variables.
    pub env: HashMap<String, String>,
    pub tick_period: Option<Duration>,
    /// The context Envoy called into: it owns the callouts dispatched now.
    pub active: u32,
    /// The context header, reply and resume calls act on.
    pub effective: u32,
    pub requests: HashMap<u32, Request>,
    /// Request contexts whose stream ended.
    pub gone: HashSet<u32>,
    pub calls: Vec<Call>,
    next_token: u32,
    /// When set, `dispatch_http_call` fails with it.
    pub refuse_calls: Option<Status>,
    /// The callout answer being delivered: headers and body.
    pub answer: (Vec<(String, String)>, Vec<u8>),
    pub foreign: Option<ForeignFn>,
    /// Counters by name, in the order first defined.
    pub counters: Vec<(String, i64)>,
}

/// The mock host: one per worker. Clones share the worker's state; `shared` is the VM's shared
/// data, which several workers' mocks may share.
#[derive(Clone)]
pub(crate) struct MockHost {
    state: Arc<Mutex<State>>,
    shared: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    /// The shared data's compare-and-swap versions.
    versions: Arc<Mutex<HashMap<String, u32>>>,
}

impl MockHost {
    pub(crate) fn new(now_ms: u64) -> Self {
        Self::with_shared_data(now_ms, Arc::default())
    }

    /// A worker's host that shares the VM's shared data with `other`.
    pub(crate) fn sharing_with(other: &Self, now_ms: u64) -> Self {
        let mut host = Self::with_shared_data(now_ms, Arc::clone(&other.shared));
        host.versions = Arc::clone(&other.versions);
        host
    }

    fn with_shared_data(now_ms: u64, shared: Arc<Mutex<HashMap<String, Vec<u8>>>>) -> Self {
        let state = State {
            now_ms,
            log_level: LogLevel::Info,
            logs: Vec::new(),
            plugin_configuration: None,
            env: HashMap::new(),
            tick_period: None,
            active: 0,
            effective: 0,
            requests: HashMap::new(),
            gone: HashSet::new(),
            calls: Vec::new(),
            next_token: 100,
            refuse_calls: None,
            answer: (Vec::new(), Vec::new()),
            foreign: None,
            counters: Vec::new(),
        };
        Self { state: Arc::new(Mutex::new(state)), shared, versions: Arc::default() }
    }

    /// The mock's state, to set up or inspect.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("the mock's lock")
    }

    /// The VM's shared data, to set up or inspect.
    pub(crate) fn shared(&self) -> MutexGuard<'_, HashMap<String, Vec<u8>>> {
        self.shared.lock().expect("the shared data's lock")
    }

    /// The log lines that contain `text`.
    pub(crate) fn logs_with(&self, text: &str) -> Vec<String> {
        self.state().logs.iter().filter(|(_, l)| l.contains(text)).map(|(_, l)| l.clone()).collect()
    }
}

impl State {
    fn request(&mut self) -> &mut Request {
        let effective = self.effective;
        self.requests.entry(effective).or_default()
    }
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
}

impl Host for MockHost {
    fn now_ms(&self) -> u64 {
        self.state().now_ms
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.state().logs.push((level, message.to_owned()));
    }

    fn log_level(&self) -> Option<LogLevel> {
        Some(self.state().log_level)
    }

    fn plugin_configuration(&self) -> Option<Vec<u8>> {
        self.state().plugin_configuration.clone()
    }

    fn set_tick_period(&self, period: Duration) -> Result<(), Status> {
        self.state().tick_period = Some(period);
        Ok(())
    }

    fn set_effective_context(&self, context_id: u32) -> Result<(), Status> {
        let mut state = self.state();
        // Envoy refuses a context that is gone.
        if state.gone.contains(&context_id) {
            return Err(Status::BadArgument);
        }
        state.effective = context_id;
        Ok(())
    }

    fn env_var(&self, name: &str) -> Option<String> {
        self.state().env.get(name).cloned()
    }

    fn request_header(&self, name: &str) -> Option<String> {
        self.state().request().header(name).map(str::to_owned)
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        let mut state = self.state();
        let body = &state.request().body;
        body[..size.min(body.len())].to_vec()
    }

    fn set_request_header(&self, name: &str, value: &str) -> Result<(), Status> {
        let mut state = self.state();
        let request = state.request();
        request.headers.retain(|(n, _)| n != name);
        request.headers.push((name.to_owned(), value.to_owned()));
        Ok(())
    }

    fn remove_request_header(&self, name: &str) -> Result<(), Status> {
        self.state().request().headers.retain(|(n, _)| n != name);
        Ok(())
    }

    fn send_http_response(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), Status> {
        let sent = Sent { status, headers: owned(headers), body: body.to_vec() };
        let mut state = self.state();
        let request = state.request();
        assert!(request.sent.is_none(), "a second reply for one request: {sent:?}");
        request.sent = Some(sent);
        Ok(())
    }

    fn resume_http_request(&self) -> Result<(), Status> {
        self.state().request().resumed += 1;
        Ok(())
    }

    fn dispatch_http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, Status> {
        let mut state = self.state();
        if let Some(status) = state.refuse_calls {
            return Err(status);
        }
        state.next_token += 1;
        let call = Call {
            token: state.next_token,
            owner: state.active,
            cluster: cluster.to_owned(),
            headers: owned(headers),
            body: String::from_utf8_lossy(body.unwrap_or_default()).into_owned(),
            timeout,
        };
        state.calls.push(call);
        Ok(state.next_token)
    }

    fn call_response_headers(&self) -> Vec<(String, String)> {
        self.state().answer.0.clone()
    }

    fn call_response_body(&self, size: usize) -> Vec<u8> {
        let state = self.state();
        state.answer.1[..size.min(state.answer.1.len())].to_vec()
    }

    fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        self.shared().get(key).cloned()
    }

    fn set_shared_data(&self, key: &str, value: &[u8]) -> Result<(), Status> {
        self.shared().insert(key.to_owned(), value.to_vec());
        let mut versions = self.versions.lock().expect("the versions' lock");
        *versions.entry(key.to_owned()).or_insert(0) += 1;
        Ok(())
    }

    fn shared_data_cas(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        let value = self.shared().get(key).cloned();
        let version = self.versions.lock().expect("the versions' lock").get(key).copied();
        (value, version)
    }

    fn set_shared_data_cas(&self, key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
        let current = self.versions.lock().expect("the versions' lock").get(key).copied();
        if current.is_some_and(|v| v != cas) {
            return Err(Status::CasMismatch);
        }
        self.set_shared_data(key, value)
    }

    fn call_foreign_function(
        &self,
        name: &str,
        arguments: &[u8],
    ) -> Result<Option<Vec<u8>>, Status> {
        let state = self.state();
        match (&state.foreign, name) {
            (Some(function), "verify_signature") => function(arguments),
            _ => Err(Status::NotFound),
        }
    }

    fn define_counter(&self, name: &str) -> Result<u32, Status> {
        let mut state = self.state();
        // Envoy finds a counter by name: a second definition is the same counter.
        let index = match state.counters.iter().position(|(n, _)| n == name) {
            Some(index) => index,
            None => {
                state.counters.push((name.to_owned(), 0));
                state.counters.len() - 1
            }
        };
        u32::try_from(index).map_err(|_| Status::InternalFailure)
    }

    fn increment_counter(&self, id: u32, by: i64) -> Result<(), Status> {
        let mut state = self.state();
        let counter = state.counters.get_mut(id as usize).ok_or(Status::NotFound)?;
        counter.1 += by;
        Ok(())
    }
}
