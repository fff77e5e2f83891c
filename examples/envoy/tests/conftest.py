"""Fixtures for the real-Envoy tests; each one stops what it starts."""

import pytest

from harness import Echo, EcdsFile, Envoy, StandIn, bootstrap, plugin_config
from schemas import assert_plugin_config_valid, plugin_config_errors


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
    started = []

    def start(plugin=None, concurrency=1, expect_ready=True, ecds=None, **overrides):
        """With `ecds` (the `ecds` fixture), the configuration comes from that file instead."""
        if ecds is None:
            plugin = plugin if plugin is not None else plugin_config(stand_in, **overrides)
            if expect_ready:
                assert_plugin_config_valid(plugin)
        clusters = {"upstream": echo.port, "gitlab": stand_in.issuer_port, "entra": stand_in.entra_port}
        envoy = Envoy(tmp_path, bootstrap(plugin, clusters, ecds=ecds), concurrency, expect_ready)
        started.append(envoy)
        return envoy

    try:
        yield start
    finally:
        for envoy in started:
            envoy.close()


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
