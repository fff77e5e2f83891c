//! A trap on request, compiled only with the `trap-test` feature into a separate test build of
//! the filter (`make envoy-filter-trap-test`), never into the shipped module. The real-Envoy
//! tests use it to show that `failure_policy: FAIL_RELOAD` answers the trapping request and
//! serves the next ones from a new VM (examples/envoy/tests/test_fail_reload.py).

use std::sync::atomic::{AtomicBool, Ordering};

/// The request header that asks for a trap: `panic` (a Rust panic, which `panic = "abort"` turns
/// into a Wasm trap), `oom` (memory grows until allocation fails, then the same), or `callout`
/// (the trap comes in the next answer to a call out, to Entra or GitLab, while the request waits).
pub(crate) const HEADER: &str = "x-gitlab-azure-oidc-trap-test";

static TRAP_ON_CALL_RESPONSE: AtomicBool = AtomicBool::new(false);

/// Traps when `value` asks for it; otherwise does nothing.
#[allow(clippy::panic)]
pub(crate) fn on_request(value: Option<String>) {
    match value.as_deref() {
        Some("panic") => panic!("trap-test: a trap on request"),
        Some("callout") => TRAP_ON_CALL_RESPONSE.store(true, Ordering::SeqCst),
        Some("oom") => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 64 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        _ => {}
    }
}

/// Traps in an answer to a call out when a request asked for it.
#[allow(clippy::panic)]
pub(crate) fn on_call_response() {
    if TRAP_ON_CALL_RESPONSE.swap(false, Ordering::SeqCst) {
        panic!("trap-test: a trap in a call-out answer");
    }
}
