"""Fixtures: one stand-in process (GitLab-like issuer and Entra-like endpoint) for the session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gitlab_azure_oidc import GateConfig, HttpRequest, Verifier, VerifierConfig  # noqa: E402
from standin import REPO, StandIn, http  # noqa: E402

TESTDATA = REPO / "src" / "entra" / "testdata"
DEMO_POLICY = REPO / "examples" / "policies" / "demo.json"
ARM = "https://management.azure.com/.default"


def send(request: HttpRequest):
    """What every host does with the gate's request: POST it as is."""
    return http(request.method, request.url, request.body.encode(), dict(request.headers))


@pytest.fixture(scope="session")
def stand_in():
    s = StandIn(max_seconds=900)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def entra(stand_in):
    """The stand-in's Entra, reset to normal behaviour before and after the test."""
    stand_in.entra_behaviour(mode="normal")
    yield stand_in
    stand_in.entra_behaviour(mode="normal")


@pytest.fixture(scope="session")
def config(stand_in) -> VerifierConfig:
    return VerifierConfig(issuer=stand_in.issuer, audiences=[stand_in.audience])


@pytest.fixture(scope="session")
def gate_config(stand_in, config) -> GateConfig:
    """The demo policy, federated, every request sent to the stand-in's Entra."""
    return GateConfig(config, policy=DEMO_POLICY.read_text(), dangerous_authority_url=stand_in.entra)


@pytest.fixture
def verifier(stand_in, config):
    with Verifier(config, stand_in.jwks()) as v:
        yield v
