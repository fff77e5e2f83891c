"""The `exchange` interface: build_azure_assertion, parse_token_response, federated_subject,
alone and against the Entra stand-in."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest

from conftest import ARM, TESTDATA
from gitlab_azure_oidc import (AccessToken, AzureTarget, Certificate, ExchangeError, HttpRequest,
                               build_azure_assertion, federated_subject, parse_token_response)
from standin import http

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def certificate(**kw) -> Certificate:
    return Certificate((TESTDATA / "rsa-2048.key.pem").read_text(),
                       (TESTDATA / "rsa-2048.cert.pem").read_text(), **kw)


def send(request: HttpRequest):
    return http(request.method, request.url, request.body.encode(), dict(request.headers))


def test_federated_request_is_the_documented_form(stand_in):
    token = stand_in.mint()
    target = AzureTarget(stand_in.tenant, stand_in.client_id, [ARM])
    request = build_azure_assertion(target, token)
    assert request.method == "POST"
    assert request.url == f"https://login.microsoftonline.com/{stand_in.tenant}/oauth2/v2.0/token"
    assert ("Content-Type", "application/x-www-form-urlencoded") in request.headers
    form = dict(urllib.parse.parse_qsl(request.body, strict_parsing=True))
    assert form == {"client_id": stand_in.client_id, "scope": ARM, "grant_type": "client_credentials",
                    "client_assertion_type": JWT_BEARER, "client_assertion": token}
    assert token not in repr(request)


def test_default_scope_and_sovereign_authority(stand_in):
    request = build_azure_assertion(AzureTarget(stand_in.tenant, stand_in.client_id,
                                                authority_host="login.microsoftonline.us"), "a.b.c")
    assert request.url.startswith("https://login.microsoftonline.us/")
    assert dict(urllib.parse.parse_qsl(request.body))["scope"] == ARM


@pytest.mark.parametrize("tenant,client_id,kind", [
    ("common", "2b3c4d5e-6f70-4a81-9b2c-3d4e5f607182", "reserved-tenant"),
    ("72f988bf-86f1-41af-91ab-2d7cd011db47", "not-a-guid", "invalid-client-id"),
])
def test_target_errors(tenant, client_id, kind):
    with pytest.raises(ExchangeError) as e:
        build_azure_assertion(AzureTarget(tenant, client_id), "a.b.c")
    assert (e.value.category, e.value.kind, e.value.retryable) == ("target", kind, False)


def test_certificate_assertion(stand_in):
    target = AzureTarget(stand_in.tenant, stand_in.client_id, [ARM])
    request = build_azure_assertion(target, certificate(), now=1_700_000_000)
    form = dict(urllib.parse.parse_qsl(request.body))
    header, payload, _ = form["client_assertion"].split(".")
    h, p = b64json(header), b64json(payload)
    assert h["alg"] == "PS256" and "x5t#S256" in h
    assert p["aud"] == request.url and p["iss"] == p["sub"] == stand_in.client_id
    assert p["nbf"] == 1_700_000_000 and p["exp"] == 1_700_000_300
    rs = build_azure_assertion(target, certificate(algorithm="rs256", lifetime=600), now=1_700_000_000)
    h = b64json(dict(urllib.parse.parse_qsl(rs.body))["client_assertion"].split(".")[0])
    assert h["alg"] == "RS256" and "x5t" in h


@pytest.mark.parametrize("cert,kind", [
    (Certificate("junk", "junk"), "no-pem-block"),
    (None, "lifetime-out-of-range"),
])
def test_credential_errors(stand_in, cert, kind):
    cert = cert or certificate(lifetime=100_000)
    with pytest.raises(ExchangeError) as e:
        build_azure_assertion(AzureTarget(stand_in.tenant, stand_in.client_id), cert)
    assert (e.value.category, e.value.kind) == ("credential", kind)
    assert "PRIVATE KEY-----" not in str(e.value) and "PRIVATE" not in repr(cert)


def test_parse_success():
    body = b'{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ.x.y"}'
    token = parse_token_response(200, {"Content-Type": "application/json"}, body, now=1000)
    assert token == AccessToken("eyJ.x.y", "Bearer", 3599, 3599, 4599)
    assert "eyJ.x.y" not in repr(token)
    assert parse_token_response(200, [("content-type", "application/json")], body.decode()).token == "eyJ.x.y"


@pytest.mark.parametrize("status,headers,body,category,kind,retryable", [
    (401, {"Content-Type": "application/json"},
     b'{"error":"invalid_client","error_description":"AADSTS700213: no match","error_codes":[700213]}',
     "entra", "entra-error", False),
    (429, {"Retry-After": "7"}, b"", "rate-limited", "rate-limited", True),
    (503, {"Content-Type": "application/json"}, b'{"error":"temporarily_unavailable","error_codes":[90033]}',
     "server-error", "server-error", True),
    (200, {"Content-Type": "text/html"}, b"<html><body>portal</body></html>", "bad-response", "html-page", False),
    (200, {"Content-Type": "application/json"}, b"{}", "bad-response", None, False),
])
def test_parse_errors(status, headers, body, category, kind, retryable):
    with pytest.raises(ExchangeError) as e:
        parse_token_response(status, headers, body)
    assert e.value.category == category and e.value.retryable == retryable
    if kind:
        assert e.value.kind == kind
    if status == 401:
        assert e.value.entra.error_codes == [700213] and e.value.entra.hint
    if status == 429:
        assert (e.value.retry_after, e.value.retry_after_seconds) == ("7", 7)


def test_federated_subject(stand_in, verifier):
    token = verifier.verify(stand_in.mint())
    assert federated_subject(token) == stand_in.subject == federated_subject(token.claims)


def test_round_trip_through_the_entra_stand_in(entra, verifier):
    raw = entra.mint()
    target = AzureTarget(entra.tenant, entra.client_id, [ARM], insecure_authority_url=entra.entra)
    status, headers, body = send(build_azure_assertion(target, verifier.verify(raw) and raw))
    token = parse_token_response(status, headers, body)
    assert token.token_type == "Bearer" and token.expires_in == 3599
    last = entra.entra_stats()["last_form"]
    assert last["client_assertion"] == f"<{len(raw)} bytes>" and last["client_id"] == entra.client_id


@pytest.mark.parametrize("behaviour,category,kind", [
    ({"mode": "error", "code": 700213}, "entra", "entra-error"),
    ({"mode": "status", "status": 429, "retry_after": "1", "times": 1}, "rate-limited", "rate-limited"),
    ({"mode": "status", "status": 500, "times": 1}, "server-error", "server-error"),
    ({"mode": "garbage"}, "bad-response", "html-page"),
])
def test_stand_in_refusals(entra, behaviour, category, kind):
    entra.entra_behaviour(**behaviour)
    target = AzureTarget(entra.tenant, entra.client_id, [ARM], insecure_authority_url=entra.entra)
    with pytest.raises(ExchangeError) as e:
        parse_token_response(*send(build_azure_assertion(target, entra.mint())))
    assert (e.value.category, e.value.kind) == (category, kind)
    if category == "entra":
        assert e.value.entra.error_codes == [700213] and e.value.entra.trace_id
    if category == "rate-limited":
        assert e.value.retryable and e.value.retry_after_seconds == 1
