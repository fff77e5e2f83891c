//! [`Host`] in Envoy: each method is one `proxy_wasm::hostcalls` call (wasm32 only).

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType};

use super::{Host, LogLevel, Status};

/// The proxy-wasm host the module runs in. The host calls are global, so it holds nothing.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Envoy;

impl Host for Envoy {
    fn now_ms(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| u64::try_from(d.as_millis()).ok())
            .unwrap_or(0)
    }

    fn log(&self, level: LogLevel, message: &str) {
        // Nowhere to report a failed log call but the log.
        let _ = hostcalls::log(level, message);
    }

    fn log_level(&self) -> Option<LogLevel> {
        hostcalls::get_log_level().ok()
    }

    fn plugin_configuration(&self) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten()
    }

    fn set_tick_period(&self, period: Duration) -> Result<(), Status> {
        hostcalls::set_tick_period(period)
    }

    fn set_effective_context(&self, context_id: u32) -> Result<(), Status> {
        hostcalls::set_effective_context(context_id)
    }

    fn env_var(&self, name: &str) -> Option<String> {
        // WASI `environ_get`: Envoy fills it from `vm_config.environment_variables`.
        std::env::var(name).ok()
    }

    fn request_header(&self, name: &str) -> Option<String> {
        hostcalls::get_map_value(MapType::HttpRequestHeaders, name).ok().flatten()
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn set_request_header(&self, name: &str, value: &str) -> Result<(), Status> {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
    }

    fn remove_request_header(&self, name: &str) -> Result<(), Status> {
        hostcalls::remove_map_value(MapType::HttpRequestHeaders, name)
    }

    fn send_http_response(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), Status> {
        hostcalls::send_http_response(status, headers.to_vec(), Some(body))
    }

    fn resume_http_request(&self) -> Result<(), Status> {
        hostcalls::resume_http_request()
    }

    fn dispatch_http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, Status> {
        // Registers the callout with the SDK's dispatcher for the context it called into, which
        // then delivers the answer there.
        hostcalls::dispatch_http_call(cluster, headers.to_vec(), body, vec![], timeout)
    }

    fn call_response_headers(&self) -> Vec<(String, String)> {
        hostcalls::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default()
    }

    fn call_response_body(&self, size: usize) -> Vec<u8> {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        hostcalls::get_shared_data(key).ok().and_then(|(bytes, _)| bytes)
    }

    fn set_shared_data(&self, key: &str, value: &[u8]) -> Result<(), Status> {
        hostcalls::set_shared_data(key, Some(value), None)
    }

    fn shared_data_cas(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn set_shared_data_cas(&self, key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
        // Envoy takes a CAS of 0 as "no check"; a read never returns 0 for a written key.
        hostcalls::set_shared_data(key, Some(value), Some(cas).filter(|c| *c != 0))
    }

    fn call_foreign_function(
        &self,
        name: &str,
        arguments: &[u8],
    ) -> Result<Option<Vec<u8>>, Status> {
        // proxy-wasm 0.2.5 panics on a status the ABI does not list for this call; Envoy's
        // foreign functions return only listed ones (Ok, NotFound, SerializationFailure).
        hostcalls::call_foreign_function(name, Some(arguments))
    }

    fn define_counter(&self, name: &str) -> Result<u32, Status> {
        hostcalls::define_metric(MetricType::Counter, name)
    }

    fn increment_counter(&self, id: u32, by: i64) -> Result<(), Status> {
        hostcalls::increment_metric(id, by)
    }
}
