"""The `gate` interface: admit -> send -> finish against the stand-ins, its failures, its audit
events, certificate assertions checked by `openssl`, and the `exchange` helper's retry rule."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import subprocess
import urllib.parse

import pytest

from conftest import ARM, TESTDATA, send
from gitlab_azure_oidc import (AccessToken, Admission, AzureTarget, Certificate, Gate, GateConfig,
                               OidcError, VerifierConfig, exchange)
from standin import StandIn

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def form(body: str) -> dict:
    return dict(urllib.parse.parse_qsl(body, strict_parsing=True))


def certificate(**kw) -> Certificate:
    return Certificate((TESTDATA / "rsa-2048.key.pem").read_text(),
                       (TESTDATA / "rsa-2048.cert.pem").read_text(), **kw)


def target(s, **kw) -> AzureTarget:
    return AzureTarget(s.tenant, s.client_id, [ARM], **kw)


def test_the_whole_sequence_against_the_stand_ins(entra, gate_config):
    with Gate(gate_config, entra.jwks()) as gate:
        raw = entra.mint()
        admission = gate.admit(raw)
        assert isinstance(admission, Admission) and admission.fresh
        assert admission.rule == "deploy-production"
        assert "rule deploy-production: matched" in admission.explanation
        assert admission.target == AzureTarget(entra.tenant, entra.client_id, [ARM])
        assert admission.verified.claims.sub == entra.subject
        assert admission.verified.gitlab.project_path == "acme/payments"
        assert len(admission.azure_key) == 64
        request = admission.request
        assert request.url == f"{entra.entra}/{entra.tenant}/oauth2/v2.0/token"
        assert form(request.body)["client_assertion"] == raw and raw not in repr(admission)
        now = admission.verified.claims.iat
        access = gate.finish(admission, *send(request), now=now)
        assert (access.token_type, access.expires_in, access.expires_at) == ("Bearer", 3599, now + 3599)
        assert access.token.count(".") == 2 and access.token not in repr(access)
        # The decision, then Entra's answer joined to it by the request id; never a token.
        decision, answer = (json.loads(line) for line in gate.take_audit())
        assert (decision["decision"], answer["event"]) == ("allow", "entra_answer")
        assert answer["client_request_id"] == admission.request_id
        assert dict(request.headers)["client-request-id"] == admission.request_id
        assert (answer["rule"], answer["jti"], answer["outcome"]) == \
            (decision["rule"], decision["jti"], "access-token")
        assert raw not in json.dumps(answer) and access.token not in json.dumps(answer)
        last = entra.entra_stats()["last_form"]
        assert last["client_assertion"] == f"<{len(raw)} bytes>" and last["client_id"] == entra.client_id


def test_federated_request_is_the_documented_form(stand_in, config):
    with Gate(GateConfig(config, target=target(stand_in)), stand_in.jwks()) as gate:
        token = stand_in.mint()
        admission = gate.admit(token)
        request = admission.request
        assert admission.rule is None and admission.explanation == []
        assert request.method == "POST"
        assert request.url == f"https://login.microsoftonline.com/{stand_in.tenant}/oauth2/v2.0/token"
        assert ("Content-Type", "application/x-www-form-urlencoded") in request.headers
        assert form(request.body) == {
            "client_id": stand_in.client_id, "scope": ARM, "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER, "client_assertion": token}
        assert token not in repr(request)
        assert gate.take_audit() == []  # no policy, no decision to audit


def test_an_unverifying_gate_forwards_to_its_default_scope_and_sovereign_authority(stand_in):
    unverified = GateConfig(None, target=AzureTarget(stand_in.tenant, stand_in.client_id,
                                                     authority_host="login.microsoftonline.us"))
    with Gate(unverified) as gate:
        assert gate.ready()
        admission = gate.admit("a.b.c")
        assert admission.verified is None and admission.rule is None
        assert admission.request.url.startswith("https://login.microsoftonline.us/")
        # The default scope follows the authority host: that cloud's Resource Manager.
        assert form(admission.request.body)["scope"] == "https://management.usgovcloudapi.net/.default"
        with pytest.raises(OidcError) as e:
            gate.admit("a b")
        assert (e.value.category, e.value.kind, e.value.http_status) == (
            "request", "assertion-invalid-character", 502)


@pytest.mark.parametrize("tenant,client_id,kind", [
    ("common", "2b3c4d5e-6f70-4a81-9b2c-3d4e5f607182", "reserved-tenant"),
    ("72f988bf-86f1-41af-91ab-2d7cd011db47", "not-a-guid", "invalid-client-id"),
])
def test_target_errors(config, tenant, client_id, kind):
    with pytest.raises(OidcError) as e:
        Gate(GateConfig(config, target=AzureTarget(tenant, client_id)))
    assert (e.value.category, e.value.kind, e.value.retryable) == ("config", kind, False)


def test_configurations_that_cannot_work_are_refused(stand_in, config, gate_config):
    cases = [(GateConfig(None), "no-target"),
             (GateConfig(config, policy=gate_config.policy, target=target(stand_in)), "policy-and-target"),
             (GateConfig(config, policy="{"), "policy-json"),
             (GateConfig(VerifierConfig("", ["x"]), target=target(stand_in)), "empty-issuer")]
    for bad, kind in cases:
        with pytest.raises(OidcError) as e:
            Gate(bad)
        assert (e.value.category, e.value.kind, e.value.http_status) == ("config", kind, 500)
    with pytest.raises(OidcError) as e:
        Gate(gate_config, '{"keys": 1}')
    assert (e.value.category, e.value.kind) == ("jwks", "jwks-no-keys-array")


@pytest.mark.parametrize("algorithm,thumbprint,digest", [("ps256", "x5t#S256", "sha256"),
                                                        ("rs256", "x5t", "sha1")])
def test_certificate_assertions_verify_with_openssl(stand_in, config, tmp_path, algorithm,
                                                    thumbprint, digest):
    cert_pem = (TESTDATA / "rsa-2048.cert.pem").read_text()
    gate = Gate(GateConfig(config, target=target(stand_in), credential=certificate(algorithm=algorithm)),
                stand_in.jwks())
    token = stand_in.mint()
    now = gate.admit(token).verified.claims.iat
    fields = form(gate.admit(token, now).request.body)
    assert fields["client_assertion_type"] == JWT_BEARER and token not in fields["client_assertion"]
    head, payload, signature = fields["client_assertion"].split(".")
    h, p = json.loads(b64(head)), json.loads(b64(payload))
    assert h["alg"] == algorithm.upper()
    der = ssl.PEM_cert_to_DER_cert(cert_pem)
    assert b64(h[thumbprint]) == hashlib.new(digest, der).digest()
    assert p["aud"] == f"https://login.microsoftonline.com/{stand_in.tenant}/oauth2/v2.0/token"
    assert p["iss"] == p["sub"] == stand_in.client_id
    assert (p["nbf"], p["exp"]) == (now, now + 300)
    (tmp_path / "cert.pem").write_text(cert_pem)
    (tmp_path / "sig").write_bytes(b64(signature))
    pss = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"] if algorithm == "ps256" else []
    pub = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "cert.pem"), "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    (tmp_path / "pub.pem").write_bytes(pub)
    verify = ["openssl", "dgst", "-sha256", "-verify", str(tmp_path / "pub.pem"), *pss,
              "-signature", str(tmp_path / "sig")]
    ok = subprocess.run(verify, input=f"{head}.{payload}".encode(), capture_output=True)
    assert ok.returncode == 0 and b"Verified OK" in ok.stdout, ok.stderr
    tampered = subprocess.run(verify, input=f"{head}.{payload}x".encode(), capture_output=True)
    assert tampered.returncode != 0


def test_a_certificate_assertion_is_reused_while_valid(stand_in, config):
    gate = Gate(GateConfig(config, target=target(stand_in), credential=certificate(lifetime=600)),
                stand_in.jwks())
    token = stand_in.mint()
    now = gate.admit(token).verified.claims.iat
    first = form(gate.admit(token, now).request.body)["client_assertion"]
    assert json.loads(b64(first.split(".")[1]))["exp"] - now <= 600
    assert form(gate.admit(token, now + 500).request.body)["client_assertion"] == first
    assert form(gate.admit(token, now + 541).request.body)["client_assertion"] != first


@pytest.mark.parametrize("cert,kind", [
    (Certificate("junk", "junk"), "no-pem-block"),
    (None, "lifetime-out-of-range"),
])
def test_credential_errors(stand_in, config, cert, kind):
    cert = cert or certificate(lifetime=100_000)
    with pytest.raises(OidcError) as e:
        Gate(GateConfig(config, target=target(stand_in), credential=cert))
    assert (e.value.category, e.value.kind) == ("config", kind)
    assert "PRIVATE KEY-----" not in str(e.value) and "PRIVATE" not in repr(cert)


@pytest.fixture
def gate(stand_in, gate_config):
    with Gate(gate_config, stand_in.jwks()) as g:
        yield g


def test_finish_reads_a_success(gate):
    body = b'{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ.x.y"}'
    token = gate.finish("", 200, {"Content-Type": "application/json"}, body, now=1000)
    assert token == AccessToken("eyJ.x.y", "Bearer", 3599, 3599, 4599)
    assert "eyJ.x.y" not in repr(token)
    assert gate.finish("", 200, [("content-type", "application/json")], body.decode()).token == "eyJ.x.y"


@pytest.mark.parametrize("status,headers,body,kind,retryable,http_status", [
    (401, {"Content-Type": "application/json"},
     b'{"error":"invalid_client","error_description":"AADSTS700213: no match","error_codes":[700213]}',
     "entra-error", False, 403),
    (429, {"Retry-After": "7"}, b"", "rate-limited", True, 503),
    (503, {"Content-Type": "application/json"}, b'{"error":"temporarily_unavailable","error_codes":[90033]}',
     "server-error", True, 503),
    (200, {"Content-Type": "text/html"}, b"<html><body>portal</body></html>", "html-page", False, 502),
    (200, {"Content-Type": "application/json"}, b"{}", "missing-access-token", False, 502),
])
def test_finish_failures(gate, status, headers, body, kind, retryable, http_status):
    with pytest.raises(OidcError) as e:
        gate.finish("", status, headers, body)
    err = e.value
    assert (err.category, err.kind, err.retryable, err.http_status) == ("entra", kind, retryable, http_status)
    assert not err.refetch_jwks
    if status == 401:
        assert err.entra.error_codes == [700213] and err.entra.status == 401 and "subject" in err.hint
    assert err.retry_after == (7 if status == 429 else None)


@pytest.mark.parametrize("behaviour,kind,retryable", [
    ({"mode": "error", "code": 700213}, "entra-error", False),
    ({"mode": "status", "status": 429, "retry_after": "1", "times": 1}, "rate-limited", True),
    ({"mode": "status", "status": 500, "times": 1}, "server-error", True),
    ({"mode": "garbage"}, "html-page", False),
])
def test_stand_in_refusals(entra, gate, behaviour, kind, retryable):
    entra.entra_behaviour(**behaviour)
    with pytest.raises(OidcError) as e:
        admission = gate.admit(entra.mint())
        gate.finish(admission, *send(admission.request))
    assert (e.value.category, e.value.kind, e.value.retryable) == ("entra", kind, retryable)
    if kind == "entra-error":
        assert e.value.entra.error_codes == [700213] and e.value.entra.trace_id
    if kind == "rate-limited":
        assert e.value.retry_after == 1


def test_a_denied_job_is_a_failure_with_its_explanation_and_one_audit_event(stand_in, gate):
    raw = stand_in.mint(pipeline_source="merge_request_event")
    with pytest.raises(OidcError) as e:
        gate.admit(raw)
    err = e.value
    assert (err.kind, err.category, err.http_status) == ("policy-denied", "denied", 403)
    assert not err.retryable and not err.refetch_jwks
    assert "rule no-merge-requests: matched" in err.hint
    (event,) = gate.take_audit()
    assert json.loads(event)["decision"] == "deny" and raw not in event
    with pytest.raises(OidcError):
        gate.admit(raw)  # the kept decision: denied again, no second full event
    assert gate.take_audit() == []


def test_audit_events_name_the_token_by_fingerprint_and_count_reuses(stand_in, gate):
    first, second = stand_in.mint(), stand_in.mint()
    admissions = [gate.admit(t) for t in (first, first, first, second)]
    assert [a.fresh for a in admissions] == [True, False, False, True]
    events = [json.loads(line) for line in gate.take_audit()]
    assert [e["decision"] for e in events] == ["allow", "allow"]
    assert [e["token_sha256"] for e in events] == [admissions[0].verified.fingerprint,
                                                   admissions[3].verified.fingerprint]
    assert all(first not in json.dumps(e) and second not in json.dumps(e) for e in events)
    gate.summarize()
    (summary,) = [json.loads(line) for line in gate.take_audit()]
    assert summary["event"] == "decision_reused" and summary["requests"] == 2
    assert summary["token_sha256"] == admissions[0].verified.fingerprint
    assert gate.take_audit() == []


def test_without_keys_the_gate_asks_for_them(entra, gate_config):
    with Gate(gate_config) as gate:
        assert not gate.ready()
        with pytest.raises(OidcError) as e:
            gate.admit(entra.mint())
        assert (e.value.kind, e.value.category, e.value.http_status) == ("jwks-unavailable", "jwks", 503)
        assert e.value.refetch_jwks and "JWKS" in e.value.hint
        fetched = []
        access = exchange(gate, entra.mint(), send, fetch_jwks=lambda: fetched.append(1) or entra.jwks())
        assert access.token_type == "Bearer" and fetched == [1] and gate.ready()


def test_an_unknown_kid_is_refetched_then_admitted(config):
    with StandIn(max_seconds=120) as own:  # its own issuer: rotation must not disturb others
        own_config = GateConfig(VerifierConfig(own.issuer, config.audiences), target=target(own),
                                dangerous_authority_url=own.entra)
        with Gate(own_config, own.jwks()) as gate:
            gate.admit(own.mint())
            own.rotate()
            token = own.mint()
            with pytest.raises(OidcError) as e:
                gate.admit(token)
            assert (e.value.kind, e.value.http_status) == ("unknown-kid", 401) and e.value.refetch_jwks
            with pytest.raises(OidcError):
                exchange(gate, token, send)  # no fetch_jwks: the failure is the caller's
            fetches = []
            access = exchange(gate, token, send, fetch_jwks=lambda: fetches.append(1) or own.jwks())
            assert access.token_type == "Bearer" and fetches == [1]
            assert gate.admit(token).verified.claims.sub == own.subject


def test_exchange_sends_again_after_entra_throttles(entra, gate):
    entra.entra_behaviour(mode="status", status=429, retry_after="2", times=1)
    before, waits = entra.entra_stats()["token_requests"], []
    access = exchange(gate, entra.mint(), send, sleep=waits.append)
    assert access.token_type == "Bearer"
    assert waits == [2] and entra.entra_stats()["token_requests"] == before + 2


@pytest.mark.parametrize("behaviour,kind,waits,sent", [
    ({"mode": "status", "status": 429, "retry_after": "120", "times": 1}, "rate-limited", [], 1),
    ({"mode": "status", "status": 500, "times": 2}, "server-error", [1], 2),
    ({"mode": "error", "code": 700213}, "entra-error", [], 1),
])
def test_exchange_retries_once_and_only_when_it_may_help(entra, gate, behaviour, kind, waits, sent):
    entra.entra_behaviour(**behaviour)
    before, slept = entra.entra_stats()["token_requests"], []
    with pytest.raises(OidcError) as e:
        exchange(gate, entra.mint(), send, sleep=slept.append, max_wait=30)
    assert e.value.kind == kind and slept == waits
    assert entra.entra_stats()["token_requests"] == before + sent


def test_gate_failures_never_carry_the_token(stand_in, gate):
    for token in (stand_in.mint(aud="someone-else"), stand_in.mint(pipeline_source="merge_request_event")):
        with pytest.raises(OidcError) as e:
            gate.admit(token)
        assert token not in str(e.value) and token.split(".")[2] not in repr(vars(e.value))
    assert all(token not in line for line in gate.take_audit())
