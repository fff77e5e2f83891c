"""Issue 13: the broker runs on Envoy. The filter holds the only credentials Entra accepts for the
app (its own issuer's keys, its managed identity, the app's certificate, all from the VM's
environment), answers `POST /token` itself and serves its issuer's documents, and the Entra
stand-in trusts the broker and nothing else: the app has no federated credential for the GitLab
issuer. For each broker credential:

- a job that posts its GitLab token straight to Entra is refused, while the same job through the
  broker gets its Azure token, vended or forwarded upstream;
- a job the policy denies gets 403 and Entra (and the identity endpoint) sees no request;
- a token with the audience Entra accepts (`api://AzureADTokenExchange`) is refused by the
  broker, and a broker configured to accept it is refused at load.

Then vending (the success shape, each error, 429 with `Retry-After`, many concurrent requests
of one job making one Entra request), the issuer's key rotation through ECDS (the next key is in
the JWKS before it signs; every assertion verifies against the published JWKS with Python's
`cryptography`), and the keys' way in through `vm_config.environment_variables`. The secrets
check (conftest.py) covers everything this file produces: keys, assertions, tokens."""

import concurrent.futures
import itertools

import pytest

from brokerkit import (APP_KEY, ISSUER_SUBJECT, REFS, RULES, TOKEN_EXCHANGE, UAMI_CLIENT,
                       BrokerEcdsFile, broker_bootstrap, broker_plugin, documents, entra_stats,
                       free_port, kid_of, new_key_pem, secret_environment, straight_to_entra,
                       trust_broker, vend, verify_rs256)
from harness import Envoy, wait_for
from schemas import assert_plugin_config_valid, plugin_config_errors

CREDENTIALS = ["issuer", "managed-identity", "certificate"]
AZ_MEMBERS = ["accessToken", "expiresOn", "expires_on", "subscription", "tenant", "tokenType"]
_jobs = itertools.count(9_100_000)


def fresh_job():
    return str(next(_jobs))


@pytest.fixture(scope="module")
def keys():
    """The broker issuer's two keys for this module: A signs first, B is published next."""
    return new_key_pem(), new_key_pem()


class Broker:
    """The stand-in set up for a broker, and the broker (Envoy with the filter) on a port chosen
    first, since its URL is the issuer's and the jobs' audience."""

    def __init__(self, tmp_path, stand_in, echo, keys, secrets, monkeypatch):
        self.tmp_path, self.stand_in, self.echo, self.keys = tmp_path, stand_in, echo, keys
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.envoys = []
        for name, value in secret_environment(*keys).items():
            monkeypatch.setenv(name, value)  # Envoy's environment: host_env_keys passes them on
        for pem in (*keys, APP_KEY):
            secrets.add_pem(pem)
        self.secrets = secrets
        trust_broker(stand_in, self.url)

    def plugin(self, **overrides):
        return broker_plugin(self.stand_in, self.url, **overrides)

    def start(self, plugin=None, expect_ready=True, key_values=None, ecds=None):
        plugin = plugin if plugin is not None else self.plugin()
        if ecds is None:
            if expect_ready:
                assert_plugin_config_valid(plugin)
            boot = broker_bootstrap(self.stand_in, self.echo.port, plugin, self.port, key_values)
        else:
            boot = broker_bootstrap(self.stand_in, self.echo.port, {}, self.port, key_values)
            hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            hcm["http_filters"][0] = ecds.http_filter()
        envoy = Envoy(self.tmp_path, boot, expect_ready=expect_ready)
        self.envoys.append(envoy)
        return envoy

    def token(self, **claims):
        """A GitLab token for the broker: its `aud` is the broker's URL."""
        claims.setdefault("job_id", fresh_job())
        return self.stand_in.mint(aud=self.url, **claims)

    def close(self):
        for envoy in self.envoys:
            envoy.close()


@pytest.fixture
def broker(tmp_path, stand_in, echo, keys, secrets, monkeypatch):
    b = Broker(tmp_path, stand_in, echo, keys, secrets, monkeypatch)
    try:
        yield b
    finally:
        b.close()


def assert_az_json(status, headers, body, tenant):
    assert status == 200, body
    assert list(body) == AZ_MEMBERS, body
    assert body["tenant"] == tenant and body["tokenType"] == "Bearer" and body["subscription"] is None
    assert body["accessToken"].count(".") == 2
    assert headers.get("cache-control") == "no-store"


def assert_error(reply, status, kind):
    got, headers, body = reply
    assert (got, body.get("error") if isinstance(body, dict) else body) == (status, kind), body
    assert isinstance(body.get("message"), str) and "hint" in body, body
    assert headers.get("cache-control") == "no-store"
    return headers, body


# --- For each broker credential ----------------------------------------------------------------

@pytest.mark.parametrize("credential", CREDENTIALS)
def test_a_job_refused_at_entra_gets_its_token_through_the_broker(broker, stand_in, credential, secrets):
    envoy = broker.start()
    token = broker.token(ref=REFS[credential])
    # Straight to Entra, as `az login --federated-token` would: refused, whatever the audience.
    for own in (token, stand_in.mint(ref=REFS[credential])):
        status, body = straight_to_entra(stand_in, own)
        assert (status, body["error_codes"]) == (401, [700211]), body

    # Through the broker's vending route: the token, in az's JSON.
    before = entra_stats(stand_in)["token_requests"]
    status, headers, body = vend(envoy.port, token)
    assert_az_json(status, headers, body, stand_in.tenant)
    assertion = entra_stats(stand_in)["last_assertion"]
    expected_issuer = {"issuer": broker.url, "certificate": stand_in.client_id,
                       "managed-identity": f"https://login.microsoftonline.com/{stand_in.tenant}/v2.0"}
    assert assertion["claims"]["iss"] == expected_issuer[credential], assertion
    if credential == "issuer":
        assert assertion["claims"]["sub"] == ISSUER_SUBJECT
        # The stand-in fetched the broker's discovery document and JWKS through Envoy, as Entra does.
        assert entra_stats(stand_in)["issuer_fetches"] >= 1
        assert envoy.filter_counters()["issuer_documents.served"] >= 2
    if credential == "managed-identity":
        assert assertion["claims"]["sub"] != UAMI_CLIENT and entra_stats(stand_in)["identity_requests"] == 1

    # Through the proxy: the same job's request goes upstream with the Azure token, shared.
    status, _, echoed = envoy.get(token)
    assert status == 200, echoed
    assert echoed["headers"]["authorization"] == f"Bearer {body['accessToken']}"
    assert token not in str(echoed)
    assert entra_stats(stand_in)["token_requests"] == before + 1, "vending and the proxy share it"
    counters = envoy.filter_counters()
    assert counters["vend.access_token"] == 1 and counters["requests.allowed"] == 2, counters


def broker_job(token):
    """The job id of a token minted by `Broker.token` (the stand-in counts Entra requests by the
    assertion's `job_id`: the broker's issuer copies it; other credentials' assertions have none)."""
    import base64
    import json
    payload = token.split(".")[1]
    job = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["job_id"]
    return job


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_a_denied_job_gets_403_and_entra_sees_no_request(broker, stand_in, credential):
    envoy = broker.start()
    before = entra_stats(stand_in)
    token = broker.token(ref=REFS[credential], pipeline_source="merge_request_event")
    headers, body = assert_error(vend(envoy.port, token), 403, "policy-denied")
    assert "insufficient_scope" in headers.get("www-authenticate", "")
    assert f"rule {RULES[credential]}:" in body["hint"], "each rule's outcome, for the job's owner"
    status, _, echoed = envoy.get(token)
    assert status == 403, echoed
    status, _, _ = vend(envoy.port, token, {"kind": "assertion"})
    assert status == 403
    after = entra_stats(stand_in)
    assert after["token_requests"] == before["token_requests"], "Entra saw nothing"
    assert after["identity_requests"] == before["identity_requests"] == 0
    assert envoy.filter_counters()["requests.denied"] == 3


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_a_token_for_entras_audience_is_refused_by_the_broker(broker, stand_in, credential):
    envoy = broker.start()
    token = stand_in.mint(ref=REFS[credential])  # aud: api://AzureADTokenExchange
    _, body = assert_error(vend(envoy.port, token), 401, "audience-mismatch")
    assert TOKEN_EXCHANGE in body["message"]
    assert envoy.get(token)[0] == 401
    assert entra_stats(stand_in)["token_requests"] == 0
    envoy.close()
    # And a broker configured to accept it does not start: it would let jobs skip it.
    refused = broker.plugin(only=credential, audiences=[broker.url, TOKEN_EXCHANGE])
    assert not plugin_config_errors(refused), "the schema cannot see it; the filter does"
    failed = broker.start(refused, expect_ready=False)
    log = failed.wait_log("rejected the plugin configuration")
    assert "`audiences`" in log and f"rule {RULES[credential]} uses a broker credential" in log
    wait_for("Envoy to exit", lambda: failed.process.poll() is not None, timeout=30)


def test_the_managed_identity_endpoint_can_be_app_services_with_its_secret_header(broker, stand_in, secrets):
    header = "app-service-identity-header-" + fresh_job()
    secrets.add(header)
    call_identity_header(stand_in, header)
    plugin = broker.plugin(identity="app-service")
    envoy = broker.start(plugin, key_values={"IDENTITY_ENDPOINT": f"{stand_in.entra}/msi/token",
                                              "IDENTITY_HEADER": header})
    status, headers, body = vend(envoy.port, broker.token(ref=REFS["managed-identity"]))
    assert_az_json(status, headers, body, stand_in.tenant)
    assert entra_stats(stand_in)["identity_requests"] == 1


def call_identity_header(stand_in, header):
    from harness import call_json
    call_json(stand_in.entra_port, "/_control/identity", {"header": header})


# --- Vending ---------------------------------------------------------------------------------

def test_vending_answers_as_az_and_refuses_as_documented(broker, stand_in):
    envoy = broker.start()
    token = broker.token(ref=REFS["certificate"])
    status, headers, body = vend(envoy.port, token, {"scope": "https://management.azure.com/.default"})
    assert_az_json(status, headers, body, stand_in.tenant)
    assert body["expires_on"] > 0 and len(body["expiresOn"]) == len("2026-01-01 00:00:00.000000")

    bearer = {"authorization": f"Bearer {token}"}
    cases = [
        (vend(envoy.port), 401, "missing-token"),
        (vend(envoy.port, headers={"authorization": "Basic dXNlcjpwYXNz"}), 401, "missing-token"),
        (vend(envoy.port, token, {"scope": "https://vault.azure.net/.default"}), 403, "scope-not-allowed"),
        (vend(envoy.port, token, {"kind": "refresh_token"}), 400, "bad-request"),
        (vend(envoy.port, token, "kind=assertion&x=1", {"content-type": "application/x-www-form-urlencoded"}),
         400, "bad-request"),
        (vend(envoy.port, "not.a.token"), 401, "base64"),
        (vend(envoy.port, token, {"kind": "assertion"}), 400, "assertion-unavailable"),
        (vend(envoy.port, token, "x" * (20 * 1024), {"content-type": "text/plain"}), 413, "body-too-large"),
    ]
    for reply, status, kind in cases:
        assert_error(reply, status, kind)
    headers, _ = assert_error(vend(envoy.port, method="GET", headers=bearer), 405, "method-not-allowed")
    assert headers["allow"] == "POST"

    # Entra throttles: 429 with its Retry-After (the proxy route says 503); fails: 503 and 502.
    for mode, status, kind in [({"mode": "status", "status": 429, "retry_after": "7"}, 429, "rate-limited"),
                               ({"mode": "status", "status": 503}, 503, "server-error"),
                               ({"mode": "garbage"}, 502, "html-page")]:
        stand_in.behaviour(times=1, **mode)
        headers, _ = assert_error(vend(envoy.port, broker.token(ref=REFS["certificate"])), status, kind)
        if status == 429:
            assert headers["retry-after"] == "7"
    stand_in.behaviour(mode="error", code=700213, times=1)
    _, body = assert_error(vend(envoy.port, broker.token(ref=REFS["certificate"])), 403, "entra-error")
    assert body["aadsts"] == [700213]
    # Nothing on the vending route reaches the upstream.
    assert envoy.counters("cluster.upstream.upstream_rq_total").get("", 0) == 0


@pytest.mark.parametrize("concurrency", [1, 2])
def test_many_concurrent_requests_of_one_job_make_one_entra_request(broker, stand_in, concurrency):
    envoy = broker.start()
    if concurrency == 2:
        envoy.close()
        envoy = broker_envoy_with_workers(broker, 2)
    stand_in.behaviour(mode="delay", ms=800)
    token = broker.token(ref=REFS["issuer"])
    # The proxied requests are few: the echo upstream's listen backlog is 5, and they all go
    # upstream at the same moment.
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        vending = [pool.submit(vend, envoy.port, token) for _ in range(16)]
        proxying = [pool.submit(envoy.get, token) for _ in range(4)]
        vended = [f.result() for f in vending]
        proxied = [f.result() for f in proxying]
    stand_in.behaviour(mode="normal")
    tokens = {body["accessToken"] for status, _, body in vended if status == 200}
    assert [status for status, _, _ in vended] == [200] * 16, vended
    assert [status for status, _, _ in proxied] == [200] * 4, [b for s, _, b in proxied if s != 200]
    assert len(tokens) == 1, "one Azure token for the job"
    assert stand_in.token_requests_by_job()[broker_job(token)] == 1
    counters = envoy.filter_counters()
    assert counters["entra.ok"] == 1 and counters["entra.coalesced"] == 19, counters


def broker_envoy_with_workers(broker, workers, bodies=True):
    boot = broker_bootstrap(broker.stand_in, broker.echo.port, broker.plugin(), broker.port,
                            bodies=bodies)
    envoy = Envoy(broker.tmp_path, boot, concurrency=workers)
    broker.envoys.append(envoy)
    return envoy


def test_without_allow_on_headers_stop_iteration_the_query_works_and_a_body_is_answered(broker):
    # Envoy holds the body of a request whose headers the filter paused unless the plugin sets
    # allow_on_headers_stop_iteration (Istio's WasmPlugin cannot): the query carries kind and
    # scope instead, and a body gets a 500 that says so rather than a hang.
    envoy = broker_envoy_with_workers(broker, 1, bodies=False)
    token = broker.token()
    status, _, body = vend(envoy.port, token, path="/token?kind=assertion")
    assert status == 200 and body["assertion"], body
    broker.secrets.add(body["assertion"])
    status, _, body = vend(envoy.port, token, path="/token")
    assert status == 200 and body["accessToken"], body
    _, body = assert_error(vend(envoy.port, token, {"kind": "assertion"}), 500, "body-withheld")
    assert "allow_on_headers_stop_iteration" in body["hint"]


# --- The issuer: documents, assertions, rotation ---------------------------------------------

def test_rotation_publishes_the_next_key_before_it_signs_and_every_assertion_verifies(
        broker, stand_in, tmp_path, keys, secrets):
    ecds = BrokerEcdsFile(tmp_path, check=assert_plugin_config_valid)
    ecds.write(broker.plugin(signing="BROKER_KEY_A", published="BROKER_KEY_B"))
    envoy = broker.start(ecds=ecds)
    assertions = []

    def vend_assertion():
        status, headers, body = vend(envoy.port, broker.token(), {"kind": "assertion"})
        assert status == 200, body
        assert headers["cache-control"] == "no-store"
        assert body["issuer"] == broker.url and body["subject"] == ISSUER_SUBJECT
        secrets.add(body["assertion"])
        assertions.append(body["assertion"])
        return body["assertion"]

    # Step 1: A signs; B is already published, so Entra will know its kid before it signs.
    discovery, step1 = documents(envoy.port)
    assert discovery["issuer"] == broker.url and discovery["jwks_uri"] == f"{broker.url}/openid/v1/jwks"
    kid_a, kid_b = [k["kid"] for k in step1["keys"]]
    first = vend_assertion()
    assert kid_of(first) == kid_a
    assert verify_rs256(first, step1)["iss"] == broker.url
    assert vend(envoy.port, broker.token())[0] == 200, "Entra accepts A's assertions"

    # Step 2, through ECDS without a restart: B signs, A stays published until its assertions
    # expired.
    ecds.write(broker.plugin(signing="BROKER_KEY_B", published="BROKER_KEY_A"))
    wait_for("B to sign", lambda: kid_of(vend_assertion()) == kid_b, timeout=15, interval=0.1)
    _, step2 = documents(envoy.port)
    assert {k["kid"] for k in step2["keys"]} == {kid_a, kid_b}
    for assertion in assertions:
        claims = verify_rs256(assertion, step2)
        assert claims and claims["aud"] == TOKEN_EXCHANGE and claims["sub"] == ISSUER_SUBJECT, assertion
    # Entra accepts B's assertions at once: it has seen B's kid.
    status, _, body = vend(envoy.port, broker.token())
    assert status == 200, body
    assert entra_stats(stand_in)["last_assertion"]["header"]["kid"] == kid_b
    # What A's key did not sign does not verify with it.
    assert verify_rs256(assertions[-1], {"keys": [k for k in step2["keys"] if k["kid"] == kid_a]}) is None


def test_an_assertion_redeemed_by_the_jobs_own_tool_is_accepted(broker, stand_in, secrets):
    envoy = broker.start()
    token = broker.token()
    status, _, body = vend(envoy.port, token, {"kind": "assertion"})
    assert status == 200, body
    secrets.add(body["assertion"])
    assert body["clientId"] == stand_in.client_id and body["tenant"] == stand_in.tenant
    _, jwks = documents(envoy.port)
    claims = verify_rs256(body["assertion"], jwks)
    assert claims["job_id"] == broker_job(token) and claims["project_path"] == "acme/payments"
    # `az login --federated-token`, Terraform and Azure Identity post it as the client assertion.
    status, answer = straight_to_entra(stand_in, body["assertion"])
    assert status == 200, answer


def test_the_keys_come_from_the_vm_environment(broker, stand_in, monkeypatch):
    # Not in Envoy's environment, and not set in the configuration: refused at load, naming the
    # variable and never a value.
    monkeypatch.delenv("BROKER_KEY_A")
    failed = broker.start(expect_ready=False)
    log = failed.wait_log("rejected the plugin configuration")
    assert "BROKER_KEY_A" in log and "is not set" in log or "BROKER_KEY_A" in log, log
    wait_for("Envoy to exit", lambda: failed.process.poll() is not None, timeout=30)
    # Set in the configuration itself (`key_values`), it works too.
    envoy = broker.start(key_values={"BROKER_KEY_A": broker.keys[0]})
    status, headers, body = vend(envoy.port, broker.token())
    assert_az_json(status, headers, body, stand_in.tenant)


def test_the_loader_says_the_broker_binds_and_federated_rules_are_advisory(broker, start_envoy):
    envoy = broker.start()
    configured = envoy.wait_log("configured: policy")
    assert "policy binding (broker credentials)" in configured and "vending at /token" in configured
    assert "is advisory" not in envoy.log()
    federated = start_envoy()
    log = federated.wait_log("is advisory")
    assert "rule deploy-main: the federated credential is advisory" in log
    assert "give the rule a broker credential" in log


# --- The shipped example ---------------------------------------------------------------------

def test_the_example_broker_yaml_validates_with_its_keys_from_the_environment(tmp_path, keys):
    """examples/envoy/broker.yaml, checked as its header says: the module beside it, the secrets
    in Envoy's environment, then `envoy --mode validate`, which runs the filter's on_configure
    (the keys, the certificate and the policy of examples/policies/broker.json)."""
    import os
    import shutil
    import subprocess
    from harness import ENVOY, EXAMPLE_DIR, WASM
    from brokerkit import APP_CERT
    shutil.copy(EXAMPLE_DIR / "broker.yaml", tmp_path / "broker.yaml")
    shutil.copy(WASM, tmp_path / "gitlab_azure_oidc_envoy.wasm")
    env = dict(os.environ, BROKER_SIGNING_KEY=keys[0], BROKER_NEXT_KEY=keys[1], PAYMENTS_KEY=APP_KEY,
               PAYMENTS_CERT=APP_CERT)
    result = subprocess.run([str(ENVOY), "--mode", "validate", "-c", "broker.yaml", "--disable-hot-restart"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "policy binding (broker credentials), vending at /token" in output, output[-3000:]
    assert "configuration 'broker.yaml' OK" in output, output[-3000:]
    for pem in keys:
        assert not any(line in output for line in pem.splitlines()[1:-1]), "a key in Envoy's output"
