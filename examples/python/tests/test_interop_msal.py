"""Interop: Python `msal` (ConfidentialClientApplication with a client assertion) accepts the
Entra stand-in's answers, success and error.

MSAL only takes an https authority, so the authority stays https://login.microsoftonline.com/
{tenant} and MSAL's HTTP client (a requests.Session, MSAL's `http_client` option) rewrites that
origin to the stand-in's loopback URL. The token request is MSAL's own, sent over HTTP to the
stand-in unchanged. The stand-in has no OpenID discovery document, so this session answers
`GET .../v2.0/.well-known/openid-configuration` itself with Entra's endpoints."""

from __future__ import annotations

import json

import msal
import pytest
import requests

from conftest import ARM

LOGIN = "https://login.microsoftonline.com"


class ToStandIn(requests.Session):
    def __init__(self, entra: str, tenant: str) -> None:
        super().__init__()
        self.entra, self.tenant = entra, tenant
        self.token_posts = 0

    def request(self, method, url, *args, **kwargs):
        if url.endswith("/.well-known/openid-configuration"):
            response = requests.Response()
            response.status_code = 200
            response._content = json.dumps({
                "token_endpoint": f"{LOGIN}/{self.tenant}/oauth2/v2.0/token",
                "authorization_endpoint": f"{LOGIN}/{self.tenant}/oauth2/v2.0/authorize",
                "issuer": f"{LOGIN}/{self.tenant}/v2.0",
            }).encode()
            response.headers["Content-Type"] = "application/json"
            return response
        assert url.startswith(LOGIN + "/"), url
        if method.upper() == "POST":
            self.token_posts += 1
        return super().request(method, self.entra + url[len(LOGIN):], *args, **kwargs)


def app(stand_in, assertion: str, session: ToStandIn) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        stand_in.client_id, authority=f"{LOGIN}/{stand_in.tenant}",
        client_credential={"client_assertion": lambda: assertion}, http_client=session,
        instance_discovery=False, token_cache=msal.TokenCache())


def test_msal_python_accepts_the_stand_in_token(entra):
    session = ToStandIn(entra.entra, entra.tenant)
    token = entra.mint()
    result = app(entra, token, session).acquire_token_for_client(scopes=[ARM])
    assert "error" not in result, result
    assert result["token_type"] == "Bearer" and result["access_token"].count(".") == 2
    assert 3500 <= result["expires_in"] <= 3599
    assert session.token_posts == 1
    form = entra.entra_stats()["last_form"]
    assert form["client_assertion"] == f"<{len(token)} bytes>"
    assert form["client_id"] == entra.client_id and form["scope"] == ARM


@pytest.mark.parametrize("code,error", [(700213, "invalid_client"), (70011, "invalid_scope")])
def test_msal_python_reads_the_stand_in_error(entra, code, error):
    entra.entra_behaviour(mode="error", code=code)
    result = app(entra, entra.mint(), ToStandIn(entra.entra, entra.tenant)).acquire_token_for_client(scopes=[ARM])
    assert result["error"] == error and result["error_codes"] == [code]
    assert result["error_description"].startswith(f"AADSTS{code}:")
    assert result.get("correlation_id") and result.get("trace_id")
