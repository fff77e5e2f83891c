"""The filter loaded as `remote` code: Envoy fetches the module over HTTP from a cluster and checks
it against `sha256` before running it, as Envoy Gateway's Envoys do (they fetch from Envoy
Gateway's module server) and as a raw Envoy fleet can.

Measured on Envoy 1.40 (these tests assert it): the fetch runs while the listener initializes.
When it fails (a module whose SHA-256 differs, or a module server that cannot be reached), Envoy
retries `retry_policy.num_retries` times, logs `Retry limit exceeded for fetching data from remote
data source.`, then `Plugin gitlab-azure-oidc failed to load` and `Plugin configured to fail
closed failed to load` (critical), counts `wasm.remote_load_fetch_failures`, and still starts
the listener: every request on it gets a 503 with an empty body (response code details
`wasm_fail_stream`), and none reaches the upstream. That is the default failure policy
(FAIL_CLOSED); FAIL_OPEN would pass every request unverified, which the last test shows.
"""

import hashlib
import json
import socket

import pytest

from harness import WASM, Echo, Envoy, Started, bootstrap, call, plugin_config, wait_for
from schemas import assert_plugin_config_valid

MODULE_PATH = "/gitlab_azure_oidc_envoy.wasm"


@pytest.fixture
def module_server():
    server = Echo(WASM.read_bytes())
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def upstream():
    server = Echo()
    try:
        yield server
    finally:
        server.close()


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def remote_bootstrap(plugin, clusters, module_port, sha256, access_log, failure_policy=None):
    """The harness's bootstrap with the module as `remote` code from the `wasm_server` cluster,
    bounded retries, and an access log with each response's code details and upstream host
    (`-`: no upstream was contacted)."""
    config = bootstrap(plugin, dict(clusters, wasm_server=module_port))
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    wasm = hcm["http_filters"][0]["typed_config"]["config"]
    wasm["vm_config"]["code"] = {"remote": {
        "http_uri": {"uri": f"http://127.0.0.1:{module_port}{MODULE_PATH}", "cluster": "wasm_server",
                     "timeout": "2s"},
        "sha256": sha256,
        "retry_policy": {"num_retries": 1,
                         "retry_back_off": {"base_interval": "0.1s", "max_interval": "0.2s"}},
    }}
    if failure_policy:
        wasm["failure_policy"] = failure_policy
    hcm["access_log"] = [{"name": "envoy.access_loggers.file", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": str(access_log),
        "log_format": {"text_format_source": {
            "inline_string": "%RESPONSE_CODE% %RESPONSE_CODE_DETAILS% %UPSTREAM_HOST%\n"}}}}]
    return config


@pytest.fixture
def start_remote(tmp_path, stand_in, upstream):
    """Starts Envoy with the filter as remote code (see remote_bootstrap); stops it at the end."""
    started = Started()

    def start(module_port, sha256, failure_policy=None):
        plugin = plugin_config(stand_in)
        assert_plugin_config_valid(plugin)
        access_log = tmp_path / f"access-{len(started)}.log"
        clusters = {"upstream": upstream.port, "gitlab": stand_in.issuer_port, "entra": stand_in.entra_port}
        # The listener starts only once the fetch has finished, well or badly: its port means the
        # module is loaded or has failed for good.
        envoy = Envoy(tmp_path, remote_bootstrap(plugin, clusters, module_port, sha256, access_log,
                                                 failure_policy))
        envoy.access_log = access_log
        return started.add(envoy)

    with started:
        yield start


def stats(envoy, pattern):
    port = int(envoy.admin_path.read_text().strip().rsplit(":", 1)[1])
    status, _, data = call(port, f"/stats?format=json&filter={pattern}", timeout=5)
    assert status == 200, status
    return {s["name"]: s["value"] for s in json.loads(data)["stats"] if "value" in s}


def access_lines(envoy, count):
    """The access log's first `count` lines, once written (flushed every 100 ms)."""
    def lines():
        text = envoy.access_log.read_text() if envoy.access_log.exists() else ""
        got = text.splitlines()
        return got if len(got) >= count else None
    return wait_for(f"{count} access log lines", lines, timeout=10)[:count]


MODULE_SHA256 = hashlib.sha256(WASM.read_bytes()).hexdigest()


def test_remote_module_with_its_sha256_runs_the_filter(start_remote, module_server, upstream, stand_in):
    envoy = start_remote(module_server.port, MODULE_SHA256)
    status, _, body = envoy.get()
    assert status == 401 and body["error"] == "missing-token", (status, body)
    assert upstream.hits == [], "a request without a token reached the upstream"
    status, _, body = envoy.get(stand_in.mint())
    assert status == 200, (status, body)
    assert body["headers"]["x-gitlab-project-path"] == "acme/payments"
    assert len(upstream.hits) == 1
    assert module_server.hits == [MODULE_PATH], "fetched once, at load"
    counters = stats(envoy, "^wasm\\.remote_load_fetch_")
    assert counters["wasm.remote_load_fetch_successes"] == 1, counters
    assert counters["wasm.remote_load_fetch_failures"] == 0, counters


def assert_fails_closed(envoy, upstream, stand_in):
    """Every request, with a valid token or none, is refused with Envoy's 503 and never reaches
    the upstream."""
    envoy.wait_log("Plugin configured to fail closed failed to load")
    log = envoy.log()
    assert "Retry limit exceeded for fetching data from remote data source." in log, log[-3000:]
    assert "Plugin gitlab-azure-oidc failed to load" in log, log[-3000:]
    token = stand_in.mint()
    for headers in ({}, {"authorization": f"Bearer {token}"}, {"authorization": "Bearer not-a-jwt"}):
        status, response_headers, body = call(envoy.port, "/resource", headers)
        assert status == 503, (status, body)
        assert body == b"", body
    assert upstream.hits == [], f"requests reached the upstream: {upstream.hits}"
    assert access_lines(envoy, 3) == ["503 wasm_fail_stream -"] * 3
    counters = stats(envoy, "^wasm\\.remote_load_fetch_")
    assert counters["wasm.remote_load_fetch_failures"] == 1, counters
    assert counters["wasm.remote_load_fetch_successes"] == 0, counters


def test_wrong_sha256_fails_closed(start_remote, module_server, upstream, stand_in):
    wrong = hashlib.sha256(b"another module").hexdigest()
    envoy = start_remote(module_server.port, wrong)
    assert_fails_closed(envoy, upstream, stand_in)
    # The module was served, twice (the first try and the one retry), and refused both times.
    assert module_server.hits == [MODULE_PATH, MODULE_PATH]
    assert "Plugin configured to fail closed failed to load" in envoy.log()


def test_unreachable_module_server_fails_closed(start_remote, upstream, stand_in):
    envoy = start_remote(closed_port(), MODULE_SHA256)
    assert_fails_closed(envoy, upstream, stand_in)
    failures = stats(envoy, "^cluster\\.wasm_server\\.upstream_cx_connect_fail$")
    assert failures["cluster.wasm_server.upstream_cx_connect_fail"] == 2, failures


def test_fail_open_would_pass_requests_unverified(start_remote, module_server, upstream):
    """Why every manifest here keeps the default: with FAIL_OPEN the same failed fetch lets a
    request with no token at all through to the upstream."""
    envoy = start_remote(module_server.port, "0" * 64, failure_policy="FAIL_OPEN")
    envoy.wait_log("failed to load")
    status, _, body = envoy.get()
    assert status == 200, (status, body)
    assert upstream.hits == ["/"], "FAIL_OPEN passed the request without a token"
