"""Several Envoys at once (issue 17): three Envoy processes, one GitLab and one Entra stand-in,
one ECDS file. Each proxy keeps its own caches (it fetches the keys, checks a token's signature
and asks Entra once per identity itself), so the load on Entra grows with the number of proxies:
one token request per proxy and identity per Azure token lifetime, counted by the stand-in. A
policy change through the shared file reaches all three."""

import itertools
import time

import pytest

from harness import plugin_config, policy_fingerprint, wait_for
from test_ecds import release_only
from test_envoy import assert_refused

PROXIES = 3
LIFETIME = 8  # seconds: the Azure tokens' `expires_in`, so a test sees two lifetimes
_jobs = itertools.count(9_000_000)


@pytest.fixture
def fleet(start_envoy, stand_in, ecds):
    """Three Envoys (one worker each) that take their configuration from one ECDS file. Azure
    tokens are reused until they expire (no margin), and live `LIFETIME` seconds."""
    stand_in.token_lifetime(LIFETIME)
    ecds.write(fleet_config(stand_in))
    return [start_envoy(ecds=ecds) for _ in range(PROXIES)]


def fleet_config(stand_in, config=None):
    config = config or plugin_config(stand_in)
    config["cache"] = {"azure_token_margin_seconds": 0}
    return config


def test_each_proxy_keeps_its_own_caches_so_entra_sees_one_request_per_proxy_and_identity(fleet, stand_in):
    jobs = [str(next(_jobs)) for _ in range(2)]
    tokens = {job: stand_in.mint(job_id=job) for job in jobs}
    started = time.monotonic()
    for envoy in fleet:
        for token in tokens.values():
            for _ in range(5):
                assert envoy.get(token)[0] == 200
    assert time.monotonic() - started < LIFETIME, "the first round must fit in one token lifetime"
    by_job = stand_in.token_requests_by_job()
    assert {job: by_job.get(job) for job in jobs} == {job: PROXIES for job in jobs}, by_job
    for envoy in fleet:
        counters = envoy.filter_counters()
        # Each proxy fetches the keys itself. Envoy's main thread runs a root context too, and on
        # the first tick it and the worker may both fetch before either has shared the keys.
        assert counters["jwks_fetch.ok"] in (1, 2), counters
        assert counters["verify_signature.valid"] == len(jobs), "one signature check per token"
        assert counters["entra.ok"] == len(jobs), "one Azure token per identity"
        assert counters["requests.allowed"] == 5 * len(jobs)

    # Once the Azure tokens expire, each proxy asks again: once per proxy, identity and lifetime.
    time.sleep(max(0.0, LIFETIME + 0.5 - (time.monotonic() - started)))
    for envoy in fleet:
        for token in tokens.values():
            for _ in range(3):
                assert envoy.get(token)[0] == 200
    by_job = stand_in.token_requests_by_job()
    assert {job: by_job.get(job) for job in jobs} == {job: 2 * PROXIES for job in jobs}, by_job
    for envoy in fleet:
        counters = envoy.filter_counters()
        assert counters["entra.ok"] == 2 * len(jobs)
        assert counters["verify_signature.valid"] == len(jobs), "the verified tokens are still kept"


def test_a_policy_change_through_the_shared_file_reaches_every_proxy(fleet, stand_in, ecds):
    stand_in.token_lifetime(3599)  # No Azure token expires during this test.
    token = stand_in.mint(job_id=str(next(_jobs)))
    for envoy in fleet:
        assert envoy.get(token)[0] == 200
    pids = [envoy.process.pid for envoy in fleet]
    before = stand_in.token_requests()

    new = fleet_config(stand_in, release_only(stand_in))
    ecds.write(new)
    for envoy in fleet:
        wait_for("the new policy on every proxy", lambda: envoy.get(token)[0] == 403, timeout=10, interval=0.02)
        assert_refused(envoy.get(token), 403, "policy-denied")
        envoy.wait_log(f"configured: policy {policy_fingerprint(new['policy'])} ")
        assert envoy.ecds_stats()["update_success"] == 2
    assert [envoy.process.pid for envoy in fleet] == pids, "no proxy restarted"

    ecds.write(fleet_config(stand_in))
    for envoy in fleet:
        wait_for("the first policy again", lambda: envoy.get(token)[0] == 200, timeout=10, interval=0.02)
    assert stand_in.token_requests() == before, \
        "the Azure tokens outlive the policy change (the decisions do not): Entra was not asked again"
