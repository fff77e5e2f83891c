"""Fixtures for the real-Envoy tests; each one stops what it starts.

The secrets check of issue 13 lives here because it spans the whole suite: every GitLab token the
stand-in mints, and every key, assertion and endpoint secret a test registers (the `secrets`
fixture), must appear in no Envoy log line, no reply Envoy sent (but the vending route's successes,
whose body is the credential asked for) and no request header the echo upstream received. The
check runs when the session ends and fails it (an error at the last test's teardown). Values no
test can register (the managed identity's tokens, the assertions the broker sends Entra) are
caught by their shape: no JWS may appear in a log line, an error reply, or an upstream header
other than `authorization` (the Azure token)."""

import json
import re

import pytest

import harness
from harness import Echo, EcdsFile, Envoy, StandIn, Started, bootstrap, plugin_config
from schemas import assert_plugin_config_valid, plugin_config_errors

# A compact JWS: what an assertion, an identity token or a GitLab token looks like in a log line.
JWS = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
# Shorter values match too much by chance (a kid, a hash prefix).
MIN_SECRET = 20


class SecretsRegistry:
    """What the suite produced that must never leak, and where it could have leaked to."""

    def __init__(self):
        self.secrets = set()
        self.envoys = []
        self.replies = []  # (path, status, headers, body) from a running Envoy
        self.upstream = []  # request headers the echo upstream received

    def add(self, *values):
        for value in values:
            if isinstance(value, str) and len(value) >= MIN_SECRET:
                self.secrets.add(value)

    def add_pem(self, pem):
        self.add(*[l for l in pem.splitlines() if l and not l.startswith("-----")])

    def envoy_port(self, port):
        return any(e.port == port and e.process.poll() is None for e in self.envoys)

    def leaks(self):
        """Every place a registered secret, or any JWS in a log or an error, was found."""
        found = []

        def search(where, text, any_jws):
            for secret in self.secrets:
                if secret in text:
                    found.append(f"{where}: a secret ({secret[:12]}...)")
            if any_jws and (match := JWS.search(text)):
                found.append(f"{where}: a JWS ({match.group(0)[:16]}...)")

        for envoy in self.envoys:
            search(f"Envoy log {envoy.log_path}", envoy.log(), any_jws=True)
        for path, status, headers, body in self.replies:
            text = body.decode(errors="replace")
            if status == 200 and _vended(text):
                continue  # the credential the job asked for
            search(f"reply {status} to {path}", json.dumps(headers) + text, any_jws=status >= 400)
        for headers in self.upstream:
            search("an upstream request", json.dumps(headers), any_jws=False)
            # Only the Azure token (in `authorization`) may look like a JWS upstream: an
            # assertion or an identity token anywhere else is a leak, registered or not.
            others = {k: v for k, v in headers.items() if k != "authorization"}
            search("an upstream request", json.dumps(others), any_jws=True)
        return found


def _vended(text):
    try:
        body = json.loads(text)
    except ValueError:
        return False
    return isinstance(body, dict) and ("accessToken" in body or "assertion" in body)


REGISTRY = SecretsRegistry()

_call = harness.call


def _recording_call(port, path="/", headers=None, method="GET", body=None, timeout=20):
    status, reply_headers, data = _call(port, path, headers, method, body, timeout)
    if REGISTRY.envoy_port(port):
        REGISTRY.replies.append((path, status, reply_headers, data))
    return status, reply_headers, data


_envoy_init = harness.Envoy.__init__


def _tracked_envoy(self, *args, **kwargs):
    REGISTRY.envoys.append(self)
    _envoy_init(self, *args, **kwargs)


_mint = harness.StandIn.mint


def _registered_mint(self, **overrides):
    token = _mint(self, **overrides)
    REGISTRY.add(token)
    return token


# Patched before the test modules import from harness, so they all record.
harness.call = _recording_call
harness.Envoy.__init__ = _tracked_envoy
harness.StandIn.mint = _registered_mint


@pytest.fixture(scope="session")
def secrets():
    """The suite's secrets registry: `secrets.add(value)`, `secrets.add_pem(pem)`."""
    return REGISTRY


@pytest.fixture(scope="session", autouse=True)
def no_secret_leaks():
    """Issue 13: no key, assertion or token in any log line, reply or upstream header of the
    whole suite (checked once every test has run)."""
    yield
    if REGISTRY.envoys:
        assert REGISTRY.secrets and REGISTRY.replies, "the registry recorded nothing: the check is broken"
    leaks = REGISTRY.leaks()
    assert not leaks, "secrets leaked:\n  " + "\n  ".join(leaks[:20])


def pytest_terminal_summary(terminalreporter):
    r = REGISTRY
    if r.envoys:
        terminalreporter.write_line(
            f"secrets check: {len(r.secrets)} secrets against {len(r.envoys)} Envoy logs, "
            f"{len(r.replies)} replies and {len(r.upstream)} upstream requests")


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("envoy")


@pytest.fixture
def stand_in(tmp_path):
    s = StandIn(tmp_path)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def echo():
    e = Echo()
    handler = e.server.RequestHandlerClass

    class Recording(handler):
        def do_GET(self):
            REGISTRY.upstream.append({k.lower(): v for k, v in self.headers.items()})
            handler.do_GET(self)

        do_POST = do_GET

    e.server.RequestHandlerClass = Recording
    try:
        yield e
    finally:
        e.close()


@pytest.fixture
def start_envoy(tmp_path, stand_in, echo):
    """Starts Envoy with the filter configured for the stand-in (overrides as keyword
    arguments); every Envoy started is stopped at the end of the test. A configuration the
    filter is expected to accept must also satisfy schema/envoy-filter.schema.json, so the
    schema is checked against every configuration the tests load."""
    started = Started()

    def start(plugin=None, concurrency=1, expect_ready=True, ecds=None, **overrides):
        """With `ecds` (the `ecds` fixture), the configuration comes from that file instead."""
        if ecds is None:
            plugin = plugin if plugin is not None else plugin_config(stand_in, **overrides)
            if expect_ready:
                assert_plugin_config_valid(plugin)
        clusters = {"upstream": echo.port, "gitlab": stand_in.issuer_port, "entra": stand_in.entra_port}
        envoy = Envoy(tmp_path, bootstrap(plugin, clusters, ecds=ecds), concurrency, expect_ready)
        return started.add(envoy)

    with started:
        yield start


@pytest.fixture
def envoy(start_envoy):
    return start_envoy()


class CheckedEcdsFile(EcdsFile):
    """An ECDS file (harness.EcdsFile) that checks every configuration against the schema
    before serving it: one the filter should accept must satisfy it, and one it should refuse
    must not."""

    def write(self, plugin, expect_valid=True):
        if expect_valid:
            assert_plugin_config_valid(plugin, "this ECDS configuration")
        else:
            assert plugin_config_errors(plugin), "the schema accepts a configuration the filter refuses"
        super().write(plugin)


@pytest.fixture
def ecds(tmp_path):
    """The filter's configuration served through ECDS from a file in the test's directory."""
    return CheckedEcdsFile(tmp_path)
