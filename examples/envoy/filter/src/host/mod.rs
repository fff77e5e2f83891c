//! Every proxy-wasm host call the filter makes, behind one trait.
//!
//! The request flow ([`crate::flow`]) is generic over [`Host`], so the same code runs in Envoy
//! (`envoy.rs`, wasm32 only: each method is one `proxy_wasm::hostcalls` call) and in native unit
//! tests (`mock.rs`: a recording mock that plays Envoy), as Kuadrant's wasm-shim does with its
//! `resolver/mod.rs` and `resolver/mock.rs`.
//!
//! Calls that act on a request (headers, replies, resuming) act on the *effective* context: the
//! one Envoy called into, or the one [`Host::set_effective_context`] chose. A callout belongs to
//! the context whose callback dispatched it, and its answer is delivered there.

use std::time::Duration;

pub use proxy_wasm::types::{LogLevel, Status};

#[cfg(target_arch = "wasm32")]
mod envoy;
#[cfg(target_arch = "wasm32")]
pub(crate) use envoy::Envoy;

#[cfg(test)]
pub(crate) mod mock;

/// What the filter asks of its proxy-wasm host. Methods that can fail return the host's
/// [`Status`]; the flow logs it and goes on, as a failed host call must not stop a worker.
pub trait Host: Clone + Send + Sync + 'static {
    /// The host's clock, milliseconds since the Unix epoch (0 if it cannot be read).
    fn now_ms(&self) -> u64;
    /// Writes a line to the host's log.
    fn log(&self, level: LogLevel, message: &str);
    /// The host's log level, when it says.
    fn log_level(&self) -> Option<LogLevel>;

    /// The plugin configuration (the root context's, in `on_configure`).
    fn plugin_configuration(&self) -> Option<Vec<u8>>;
    /// How often the root context's `on_tick` runs.
    fn set_tick_period(&self, period: Duration) -> Result<(), Status>;
    /// Makes `context_id` the context that later calls act on.
    fn set_effective_context(&self, context_id: u32) -> Result<(), Status>;

    /// A variable of the VM's environment (Envoy: `vm_config.environment_variables`, read
    /// through WASI): where the broker's keys come from.
    fn env_var(&self, name: &str) -> Option<String>;

    /// A request header of the effective context.
    fn request_header(&self, name: &str) -> Option<String>;
    /// The request body of the effective context buffered so far, at most `size` bytes.
    fn request_body(&self, size: usize) -> Vec<u8>;
    /// Sets a request header of the effective context, replacing any value.
    fn set_request_header(&self, name: &str, value: &str) -> Result<(), Status>;
    /// Removes a request header of the effective context.
    fn remove_request_header(&self, name: &str) -> Result<(), Status>;
    /// Answers the effective context's request locally.
    fn send_http_response(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), Status>;
    /// Lets the effective context's paused request go on upstream.
    fn resume_http_request(&self) -> Result<(), Status>;

    /// Calls out to an Envoy cluster; the answer comes to the calling context's
    /// `on_http_call_response` with the returned token.
    fn dispatch_http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, Status>;
    /// The headers of the callout answer being delivered (`:status` among them; none when the
    /// call failed).
    fn call_response_headers(&self) -> Vec<(String, String)>;
    /// The body of the callout answer being delivered, at most `size` bytes.
    fn call_response_body(&self, size: usize) -> Vec<u8>;

    /// A value shared by every worker of the VM.
    fn shared_data(&self, key: &str) -> Option<Vec<u8>>;
    /// Shares a value with every worker of the VM (the last write wins).
    fn set_shared_data(&self, key: &str, value: &[u8]) -> Result<(), Status>;
    /// A shared value and its compare-and-swap version (`None` for a key never written).
    fn shared_data_cas(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Shares a value only if the key's version is still `cas` ([`Status::CasMismatch`]
    /// otherwise): one worker wins when several write at once.
    fn set_shared_data_cas(&self, key: &str, value: &[u8], cas: u32) -> Result<(), Status>;

    /// Calls a host-provided function by name (Envoy's `verify_signature`).
    fn call_foreign_function(
        &self,
        name: &str,
        arguments: &[u8],
    ) -> Result<Option<Vec<u8>>, Status>;
    /// Defines a counter in the host's stats; its id.
    fn define_counter(&self, name: &str) -> Result<u32, Status>;
    /// Adds `by` to a counter.
    fn increment_counter(&self, id: u32, by: i64) -> Result<(), Status>;
}
