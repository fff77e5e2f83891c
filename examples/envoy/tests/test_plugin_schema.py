"""schema/envoy-filter.schema.json against the configurations the tests use and the ones the
filter refuses. Every configuration a test starts Envoy with is also checked when it is loaded
(conftest.py's start_envoy, test_remote_code.py); the mesh manifests' and envoy.yaml's in
test_mesh.py."""

import copy

import jsonschema
import pytest

from harness import plugin_config
from schemas import PLUGIN_SCHEMA, plugin_config_errors, plugin_validator


class FakeStandIn:
    """What plugin_config reads from a stand-in, without starting one."""
    issuer = "http://127.0.0.1:40001"
    entra = "http://127.0.0.1:40002"
    audience = "api://AzureADTokenExchange"
    tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    client_id = "2b3c4d5e-6f70-4a81-9b2c-3d4e5f607182"


def config(**overrides):
    return plugin_config(FakeStandIn, **overrides)


def test_the_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(plugin_validator().schema)
    assert PLUGIN_SCHEMA.exists()


# Configurations of the shapes the parser accepts (test_envoy.py's start_envoy overrides and
# config.rs's unit tests), built as the harness builds them. The schema checks their shape only:
# whether a key is a real RSA key is the parser's business.
ACCEPTED = {
    "default": {},
    "audit summary": {"audit": {"summary_seconds": 1}},
    "audit every request": {"audit": {"every_request": True}},
    "slow tick": {"tick_ms": 1500},
    "inline jwks": {"jwks": {"inline": {"keys": [{"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB"}]}}},
    "inline jwks as text": {"jwks": {"inline": '{"keys": []}'}},
    "no verify_signature": {"envoy_verify_signature": False},
    "bare token header": {"token_header": {"name": "X-GitLab-Token", "scheme": None}},
    "azure header": {"azure_token_header": {"name": "x-azure-token", "scheme": "Bearer"}},
    "policy as text": {"policy": '{"rules": [{"name": "d", "effect": "deny", "when": {"ref": "x"}}]}'},
    "cache": {"cache": {"verified_tokens": 0, "azure_token_margin_seconds": 60, "azure_token_slots": 1}},
    "jwks tuning": {"jwks": {"cluster": "gitlab", "authority": "gitlab.example.com", "path": "/-/jwks",
                             "timeout_ms": 1, "min_max_age": 0, "max_max_age": 10, "default_max_age": 5,
                             "unknown_kid_interval": 0, "retry_interval": 0}},
    "leeway": {"leeway_seconds": 0, "max_waiting_requests": 0},
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_configurations_the_filter_accepts_satisfy_the_schema(name):
    assert plugin_config_errors(config(**ACCEPTED[name])) == []


def without(key):
    c = config()
    del c[key]
    return c


# What config.rs refuses at load (its unit tests), refused by the schema too.
REFUSED = {
    "not json": ("not json", "not JSON"),
    "only the issuer": ({"issuer": "https://gitlab.example.com"}, "required"),
    "no audiences key": (without("audiences"), "'audiences' is a required property"),
    "no audience": (config(audiences=[]), "should be non-empty"),
    "unknown field": (config(audience="x"), "'audience' was unexpected"),
    "unknown nested field": (config(audit={"every_requests": True}), "'every_requests' was unexpected"),
    "jwks with both sources": (config(jwks={"cluster": "g", "inline": {"keys": []}}), "should not be valid"),
    "jwks with neither": (config(jwks={}), "'cluster' is a required property"),
    "jwks path": (config(jwks={"cluster": "g", "path": "keys"}), "does not match"),
    "rule without when": (config(policy={"rules": [{"name": "x", "effect": "allow"}]}), "not valid under any"),
    "policy of another type": (config(policy=["rules"]), "not valid under any"),
    "no entra cluster": (config(entra={"insecure_authority_url": "http://127.0.0.1:1"}), "'cluster' is a required"),
    "claim header name": (config(claim_headers={"x y": "ref"}), "does not match"),
    "empty claim": (config(claim_headers={"x-ref": ""}), "should be non-empty"),
    "scheme": (config(token_header={"name": "x-token", "scheme": "Bearer token"}), "not valid under any"),
    "zero slots": (config(cache={"azure_token_slots": 0}), "less than the minimum"),
    "silly tick": (config(tick_ms=1), "less than the minimum"),
    "verify_signature as text": (config(envoy_verify_signature="yes"), "is not of type 'boolean'"),
    "summary 0": (config(audit={"summary_seconds": 0}), "less than the minimum"),
    "summary 3601": (config(audit={"summary_seconds": 3601}), "greater than the maximum"),
    "zero timeout": (config(entra={"cluster": "entra", "timeout_ms": 0}), "less than the minimum"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_configurations_the_filter_refuses_are_refused_by_the_schema(name):
    bad, expected = REFUSED[name]
    errors = plugin_config_errors(copy.deepcopy(bad))
    assert any(expected in e for e in errors), errors
