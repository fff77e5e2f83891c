"""Issue 16: one guest trap closed the listener for good. With Envoy's default failure policy
(FAIL_CLOSED) every request after a trap got an empty 503 until Envoy restarted, and a request the
filter was holding when it trapped hung until the client gave up. envoy.yaml and the harness now set
`failure_policy: FAIL_RELOAD` (a new VM after a short backoff) and `request_timeout` (Envoy answers
a held request whose VM died).

The trap comes from a test build of the filter (`--features trap-test`, profile `trap-test`,
src/trap_test.rs): the request header `x-gitlab-azure-oidc-trap-test` asks for a panic, memory
exhaustion, or a panic in the next call-out answer. The shipped module has no such trigger."""

import os
import time
from pathlib import Path

import pytest

from harness import TARGET, WASM, Envoy, Started, bootstrap, call, plugin_config, wait_for

TRAP_WASM = Path(os.environ.get("GITLAB_AZURE_OIDC_ENVOY_TRAP_TEST_WASM",
                                TARGET / "wasm32-wasip1/trap-test/gitlab_azure_oidc_envoy.wasm"))
TRAP = "x-gitlab-azure-oidc-trap-test"


@pytest.fixture
def start_trap_envoy(tmp_path, stand_in, echo):
    if not TRAP_WASM.exists():
        pytest.fail(f"{TRAP_WASM} is missing: make envoy-filter-trap-test")
    started = Started()

    def start(**options):
        clusters = {"upstream": echo.port, "gitlab": stand_in.issuer_port, "entra": stand_in.entra_port}
        envoy = Envoy(tmp_path, bootstrap(plugin_config(stand_in), clusters, wasm=TRAP_WASM, **options))
        return started.add(envoy)

    with started:
        yield start


def trap(envoy, token, mode, timeout=20):
    started = time.monotonic()
    status, _, body = call(envoy.port, "/", {"authorization": f"Bearer {token}", TRAP: mode}, timeout=timeout)
    return status, body, time.monotonic() - started


def served_again(envoy, token, within=15):
    """Seconds until a normal request is served 200 again."""
    started = time.monotonic()
    wait_for("a 200 after the trap", lambda: envoy.get(token)[0] == 200, timeout=within, interval=0.1)
    return time.monotonic() - started


def test_the_shipped_module_has_no_trap_trigger():
    assert TRAP.encode() not in WASM.read_bytes(), "the trap-test feature leaked into the shipped module"
    assert TRAP.encode() in TRAP_WASM.read_bytes(), "the test build has the trigger"


@pytest.mark.parametrize("mode", ["panic", "oom"])
def test_after_a_trap_the_vm_is_reloaded_and_serves_again(start_trap_envoy, stand_in, mode):
    envoy = start_trap_envoy()
    token = stand_in.mint()
    assert envoy.get(token)[0] == 200
    status, body, seconds = trap(envoy, token, mode)
    assert status == 503 and seconds < 10, (status, body, seconds)
    recovered = served_again(envoy, token)
    assert recovered < 10, recovered
    for _ in range(3):
        assert envoy.get(token)[0] == 200
    assert envoy.process.poll() is None, "Envoy itself did not restart"
    counters = envoy.counters("wasm.gitlab-azure-oidc.")
    assert counters["vm_reload_success"] >= 1, counters
    assert "proxy_on_request_headers failed" in envoy.log()


def test_a_trap_while_a_request_waits_for_entra_is_answered(start_trap_envoy, stand_in):
    """The hang of issue 16: the trap comes while the filter holds the request (waiting for
    Entra's answer), so no callback will ever resume or refuse it. `request_timeout` answers it."""
    envoy = start_trap_envoy(request_timeout="4s")
    assert envoy.get(stand_in.mint())[0] == 200  # the JWKS is fetched
    before = stand_in.token_requests()
    status, body, seconds = trap(envoy, stand_in.mint(job_id="8100001"), "callout")
    assert stand_in.token_requests() > before, "the request did wait for Entra"
    assert status in (408, 503) and 3 < seconds < 9, (status, body, seconds)
    assert served_again(envoy, stand_in.mint(job_id="8100002")) < 10
    assert envoy.process.poll() is None


def test_fail_closed_refuses_every_request_after_one_trap(start_trap_envoy, stand_in):
    """What the defaults did before (no `failure_policy`): the listener is closed for good."""
    envoy = start_trap_envoy(failure_policy="FAIL_CLOSED")
    token = stand_in.mint()
    assert envoy.get(token)[0] == 200
    assert trap(envoy, token, "panic")[0] == 503
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        status, _, body = envoy.get(token)
        assert (status, body) == (503, ""), (status, body)
        time.sleep(0.25)
    assert envoy.counters("wasm.gitlab-azure-oidc.")["vm_reload_success"] == 0
