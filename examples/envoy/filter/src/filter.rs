//! The proxy-wasm glue (wasm32 only): Envoy's callbacks, forwarded to the flow on the real host.
//! Nothing is decided here; `flow` holds the logic and its native tests.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

use crate::flow;
use crate::host::Envoy;

/// The root context: one per worker.
pub(crate) struct Root(flow::Root<Envoy>);

impl Root {
    pub(crate) fn new(context_id: u32) -> Self {
        Self(flow::Root::new(Envoy, context_id))
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token_id: u32, _: usize, body_size: usize, _: usize) {
        #[cfg(feature = "trap-test")]
        crate::trap_test::on_call_response();
        self.0.on_http_call_response(token_id, body_size);
    }

    fn on_done(&mut self) -> bool {
        self.0.on_done()
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        self.0.on_configure()
    }

    fn on_tick(&mut self) {
        self.0.on_tick();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http(self.0.create_http_context(context_id))))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
struct Http(flow::Stream<Envoy>);

impl Context for Http {
    fn on_http_call_response(&mut self, token_id: u32, _: usize, body_size: usize, _: usize) {
        #[cfg(feature = "trap-test")]
        crate::trap_test::on_call_response();
        self.0.on_http_call_response(token_id, body_size);
    }

    fn on_done(&mut self) -> bool {
        self.0.on_done()
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        // Test builds only (`--features trap-test`, never the shipped module): trap on request.
        #[cfg(feature = "trap-test")]
        crate::trap_test::on_request(self.get_http_request_header(crate::trap_test::HEADER));
        self.0.on_http_request_headers(end_of_stream)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.0.on_http_request_body(body_size, end_of_stream)
    }
}
