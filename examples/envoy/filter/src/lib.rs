//! # gitlab-azure-oidc-envoy: an Envoy proxy-wasm filter
//!
//! A GitLab CI job calls a service through Envoy with its GitLab ID token; this filter verifies
//! the token, applies the policy, exchanges the token for a Microsoft Entra access token and
//! forwards the request with the Azure token and the configured claim headers. No job ever holds
//! an Azure credential.
//!
//! With a `broker` configuration the filter is also the broker of issue 13: it holds the only
//! credentials Entra accepts for the apps (its own issuer's keys, its managed identity, the apps'
//! certificates, from the VM's environment), answers a vending route (`POST /token`) itself with
//! the Azure token in `az`'s JSON or the broker-signed assertion, and serves its issuer's
//! discovery document and JWKS. The policy then binds: Entra refuses the jobs' own tokens.
//!
//! ## Design
//!
//! The exchange is the core's [`Gate`](gitlab_azure_oidc::Gate), in the order it owns: the
//! filter fetches the keys and installs them, `admit`s the token (verification, the policy, the
//! verified-token and decision caches, the audit queue), sends the gate's token request to Entra
//! and `finish`es with the answer; every refusal is the core's
//! [`Failure`](gitlab_azure_oidc::Failure), which gives the reply's status, kind, hint and
//! `Retry-After`. This crate adds only what an Envoy filter needs:
//!
//! - [`flow`]: the root context's and an HTTP context's callbacks, generic over
//!   [`host::Host`], the trait behind which every proxy-wasm host call sits (Envoy's in
//!   `host/envoy.rs`, a recording mock in `host/mock.rs`), so native tests drive whole requests;
//! - [`worker`]: one worker's state around its gate: the JWKS fetch schedule, parked requests,
//!   the worker's copy of a token's header changes;
//! - [`config`] (the plugin configuration, parsed into a `GateConfig` and Envoy's settings),
//!   [`cache`] (the JWKS and Azure token records in shared data, `Cache-Control`), [`reply`],
//!   [`request`] (the token header, header plans), [`foreign`] (Envoy's `verify_signature`) and
//!   [`stats`] (the counters in Envoy's stats).
//!
//! The proxy-wasm glue (`filter`, wasm32 only) forwards Envoy's callbacks to [`flow`].
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

pub mod cache;
pub mod config;
pub mod flow;
pub mod foreign;
pub mod host;
pub mod reply;
pub mod request;
pub mod stats;
pub mod worker;

#[cfg(test)]
mod testutil;

#[cfg(target_arch = "wasm32")]
mod filter;

#[cfg(all(feature = "trap-test", target_arch = "wasm32"))]
mod trap_test;

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
