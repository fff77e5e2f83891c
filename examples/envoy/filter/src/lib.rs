//! # gitlab-azure-oidc-envoy: an Envoy proxy-wasm filter
//!
//! A GitLab CI job calls a service through Envoy with its GitLab ID token; this filter verifies
//! the token, applies the policy, exchanges the token for a Microsoft Entra access token and
//! forwards the request with the Azure token and the configured claim headers. No job ever holds
//! an Azure credential.
//!
//! ## Design
//!
//! The decisions are the core's ([`gitlab_azure_oidc`]): verification, policy, the Entra token
//! request and its answer. This crate adds what an Envoy filter needs, in plain functions with
//! native tests: the configuration ([`config`]), cache keys and expiry ([`cache`]), what the
//! requests of one verified token share ([`admission`]), the replies
//! ([`reply`]), header plans ([`request`]) and one worker's state ([`worker`]). The proxy-wasm
//! glue (`filter`, wasm32 only) wires host calls to them.
//!
//! - The root context owns the configuration, the JWKS (fetched with `dispatch_http_call`,
//!   shared across workers with `set_shared_data`) and the requests waiting for it. An HTTP
//!   context handles one request.
//! - Time comes from the host (`get_current_time`) and is passed to the core as `now`.
//!
//! ## What this crate does not do
//!
//! It does not run outside Envoy (or another proxy-wasm host), does not read files, and does not
//! keep Azure tokens anywhere but Envoy's shared data.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod cache;
pub mod config;
pub mod foreign;
pub mod reply;
pub mod request;
pub mod worker;

#[cfg(test)]
mod testutil;

#[cfg(target_arch = "wasm32")]
mod filter;

/// The module's entry point. `proxy_wasm::main!` expands to a `#[no_mangle]` export and an
/// `unsafe` call to the WASI constructors, hence the one `allow`.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
        proxy_wasm::set_root_context(|context_id| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(crate::filter::Root::new(context_id))
        });
    }}
}
