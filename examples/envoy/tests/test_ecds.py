"""Live policy changes (issue 17): the filter's configuration comes from Envoy's extension
config discovery (ECDS) with a file as its source, so no control plane is needed. A new policy
takes effect without a restart, requests in flight complete, a refused configuration leaves the
last good one serving, and no decision made under an old policy is served after the switch.

What Envoy 1.40 does, as these tests show and the log lines they read say: each accepted
configuration is first configured in a throwaway copy of the VM on the main thread; if the
filter's `on_configure` refuses it, Envoy rejects the update (`update_rejected`) and nothing
changes. Otherwise every worker gets a new root context for it in its existing VM (same `vm_id`
and code: no new VM), with empty verified-token and decision caches; streams that started
before keep the old root, which is done once they end."""

import concurrent.futures
import itertools
import re
import time

from harness import plugin_config, policy_fingerprint, wait_for
from test_envoy import assert_refused

_jobs = itertools.count(8_000_000)


def fresh_job():
    return str(next(_jobs))


def release_only(stand_in):
    """The test policy with the allow rule limited to the `release` branch: it denies `main`."""
    config = plugin_config(stand_in)
    config["policy"]["rules"][1]["when"]["ref"] = "release"
    return config


def configured(envoy, config):
    """The `configured: policy ...` lines of `config`'s policy in Envoy's log."""
    line = f"configured: policy {policy_fingerprint(config['policy'])} "
    return [l for l in envoy.log().splitlines() if line in l]


def test_a_new_policy_takes_effect_without_a_restart_and_requests_in_flight_complete(
        start_envoy, stand_in, ecds):
    a, b = plugin_config(stand_in), release_only(stand_in)
    ecds.write(a)
    envoy = start_envoy(ecds=ecds, concurrency=2)
    pid = envoy.process.pid
    token = stand_in.mint(job_id=fresh_job())
    assert envoy.get(token)[0] == 200
    assert envoy.get(token)[0] == 200, "decided once, then from the caches"

    # A request waiting for Entra while the policy changes.
    stand_in.behaviour(mode="delay", ms=1500)
    in_flight_token = stand_in.mint(job_id=fresh_job())
    before = stand_in.token_requests()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(envoy.get, in_flight_token)
        wait_for("the request in flight to reach Entra", lambda: stand_in.token_requests() > before)
        ecds.write(b)
        denied = wait_for("the same token to be denied under the new policy",
                          lambda: (r := envoy.get(token))[0] == 403 and r, timeout=10, interval=0.02)
        status, _, body = in_flight.result(timeout=10)
    stand_in.behaviour(mode="normal")
    assert_refused(denied, 403, "policy-denied")
    assert status == 200, f"the request in flight was dropped: {body}"
    assert body["headers"]["authorization"].startswith("Bearer "), "forwarded with its Azure token"

    # From the switch on, every request is decided under the new policy: the kept allow is gone.
    for _ in range(5):
        assert_refused(envoy.get(token), 403, "policy-denied")
    assert_refused(envoy.get(in_flight_token), 403, "policy-denied")
    assert envoy.get(stand_in.mint(job_id=fresh_job(), ref="release"))[0] == 200, "what B allows"

    # And back: the deny is not kept either.
    ecds.write(a)
    wait_for("the token to be allowed again", lambda: envoy.get(token)[0] == 200, timeout=10, interval=0.02)
    for _ in range(3):
        assert envoy.get(token)[0] == 200

    assert envoy.process.poll() is None and envoy.process.pid == pid, "the same Envoy, never restarted"
    stats = envoy.ecds_stats()
    assert (stats["update_success"], stats["update_rejected"]) == (3, 0), stats
    # Each worker (and the main thread) took each configuration in a new root context, and
    # the roots of the replaced configurations are done.
    assert len(configured(envoy, b)) >= 2 and len(configured(envoy, a)) >= 4
    roots = {int(n) for n in re.findall(r"configured: policy \w+ .*; root context (\d+)", envoy.log())}
    done = {int(n) for n in re.findall(r"root context (\d+) is done", envoy.log())}
    assert len(roots) >= 3 and done, (roots, done)


BROKEN_POLICY = {"rules": [{"name": "anything", "effect": "permit", "when": {}}]}


def test_a_broken_policy_is_refused_with_the_reason_and_the_last_good_one_keeps_serving(
        start_envoy, stand_in, ecds):
    ecds.write(plugin_config(stand_in))
    envoy = start_envoy(ecds=ecds)
    token = stand_in.mint(job_id=fresh_job())
    assert envoy.get(token)[0] == 200
    ecds.write(release_only(stand_in))
    wait_for("the new policy", lambda: envoy.get(token)[0] == 403, timeout=10, interval=0.02)

    ecds.write(plugin_config(stand_in, policy=BROKEN_POLICY), expect_valid=False)
    wait_for("Envoy to reject the update", lambda: envoy.ecds_stats()["update_rejected"] == 1, timeout=10)
    envoy.wait_log("rejected the plugin configuration: `policy`: rule anything, field `effect`")
    envoy.wait_log("Filesystem config update rejected: Unable to create Wasm plugin gitlab-azure-oidc")
    # The last good policy keeps serving, and nothing in between was Envoy's 503 for a plugin
    # that failed to load.
    for _ in range(5):
        assert_refused(envoy.get(token), 403, "policy-denied")
    assert envoy.get(stand_in.mint(job_id=fresh_job(), ref="release"))[0] == 200

    # Not even the filter's JSON: refused the same way.
    ecds.write("{\"issuer\": 1}", expect_valid=False)
    wait_for("the second rejection", lambda: envoy.ecds_stats()["update_rejected"] == 2, timeout=10)
    envoy.wait_log("rejected the plugin configuration: the plugin configuration is not valid")
    assert_refused(envoy.get(token), 403, "policy-denied")

    # A good configuration after broken ones is taken.
    ecds.write(plugin_config(stand_in))
    wait_for("the first policy again", lambda: envoy.get(token)[0] == 200, timeout=10, interval=0.02)
    assert envoy.ecds_stats()["update_success"] == 3


def test_until_a_first_configuration_is_accepted_every_request_is_refused(start_envoy, stand_in, ecds, echo):
    """Fail closed from the start: with no good configuration yet, Envoy opens the listener
    after the initial fetch timeout (5 s here) and refuses every request with a 500 of its own;
    none reaches the upstream."""
    ecds.write(plugin_config(stand_in, policy=BROKEN_POLICY), expect_valid=False)
    envoy = start_envoy(ecds=ecds)
    token = stand_in.mint(job_id=fresh_job())
    for headers in ({}, {"authorization": f"Bearer {token}"}):
        status, _, body = envoy.get(headers=headers)
        assert status == 500 and body == "", (status, body)
    assert envoy.ecds_stats()["update_rejected"] == 1
    envoy.wait_log("rejected the plugin configuration: `policy`")
    ecds.write(plugin_config(stand_in))
    wait_for("the first good configuration", lambda: envoy.get(token)[0] == 200, timeout=15, interval=0.1)
    assert_refused(envoy.get(), 401, "missing-token")
