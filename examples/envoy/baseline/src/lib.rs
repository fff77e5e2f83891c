//! # proxy-wasm-baseline: the floor under any proxy-wasm filter, for `make bench-envoy`
//!
//! A filter that reads the `authorization` header and lets the request go on. It does what every
//! proxy-wasm token filter pays for in Envoy (a context created and destroyed per request, the
//! calls into V8, the token header copied into the module) and nothing else, so the benchmark
//! can show how much of our filter's cost is proxy-wasm itself. The figures name the
//! same reference ("a proxy-wasm filter that only reads a header").
//!
//! With a plugin configuration of `{"set_headers": {"name": "value", ...}}` it also replaces
//! those request headers on every request, as any filter that forwards a new credential and
//! claim headers must: each write is a host call, and Envoy clears its route cache after each.
//!
//! With `{"reply": "body"}` it answers every request itself (200, a JSON body, `Cache-Control:
//! no-store`) after reading the header: the floor under a filter that answers a route locally,
//! as token vending does (the local reply costs Envoy more than letting the request go on).
//!
//! It is built with the same profile and SDK as the real filter; it is not shipped.
#![deny(unsafe_code)]

/// The module's entry point (`proxy_wasm::main!` expands to an export and an `unsafe` call).
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod entry {
    use std::rc::Rc;

    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
            Box::new(Root { set_headers: Rc::new(Vec::new()), reply: Rc::new(None) })
        });
    }}

    struct Root {
        set_headers: Rc<Vec<(String, String)>>,
        reply: Rc<Option<String>>,
    }

    impl Context for Root {}

    impl RootContext for Root {
        fn on_configure(&mut self, _: usize) -> bool {
            let Some(bytes) = self.get_plugin_configuration() else { return true };
            let Ok(config) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                log::error!("proxy-wasm-baseline: the configuration is not JSON");
                return false;
            };
            let headers = config.get("set_headers").and_then(serde_json::Value::as_object);
            self.set_headers = Rc::new(
                headers
                    .into_iter()
                    .flatten()
                    .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
                    .collect(),
            );
            let reply = config.get("reply").and_then(serde_json::Value::as_str);
            self.reply = Rc::new(reply.map(str::to_owned));
            true
        }

        fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Request {
                set_headers: Rc::clone(&self.set_headers),
                reply: Rc::clone(&self.reply),
            }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Request {
        set_headers: Rc<Vec<(String, String)>>,
        reply: Rc<Option<String>>,
    }

    impl Context for Request {}

    impl HttpContext for Request {
        fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
            // Read, as every token filter must; a missing header is not this filter's business.
            let _token = self.get_http_request_header("authorization");
            for (name, value) in self.set_headers.iter() {
                self.set_http_request_header(name, Some(value));
            }
            if let Some(body) = self.reply.as_ref() {
                let headers =
                    vec![("content-type", "application/json"), ("cache-control", "no-store")];
                self.send_http_response(200, headers, Some(body.as_bytes()));
                return Action::Pause;
            }
            Action::Continue
        }
    }
}
