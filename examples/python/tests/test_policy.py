"""The `policy` interface: Policy.decide, warnings, plan, and preflight."""

from __future__ import annotations

import json

import pytest

from conftest import DEMO_POLICY
from gitlab_azure_oidc import (AzureTarget, Decision, Policy, PolicyError, PreflightReport,
                               preflight)


@pytest.fixture
def policy():
    with Policy.from_file(DEMO_POLICY) as p:
        yield p


def test_allow_on_protected_main(stand_in, verifier, policy):
    raw = stand_in.mint()
    decision = policy.decide(verifier.verify(raw), raw)
    assert isinstance(decision, Decision) and decision.allow
    assert decision.rule == "deploy-production"
    assert decision.target.client_id == stand_in.client_id
    assert isinstance(decision.azure_target(), AzureTarget)
    assert any("deploy-production: matched" in line for line in decision.lines)
    audit = json.loads(decision.audit_json)
    assert audit["decision"] == "allow" and raw not in decision.audit_json


def test_deny_explains_every_rule(stand_in, verifier, policy):
    claims = verifier.verify(stand_in.mint(pipeline_source="merge_request_event")).claims
    decision = policy.decide(claims, now=claims.iat)
    assert not decision.allow and decision.rule == "no-merge-requests"
    assert [o.rule for o in decision.outcomes] == ["no-merge-requests", "deploy-production", "release-tags"]
    with pytest.raises(ValueError):
        decision.azure_target()


@pytest.mark.parametrize("document,kind,rule,field", [
    ("{", "policy-json", None, None),
    ({"rules": [{"name": "x", "effect": "allow", "when": {"project_path": "a/b"}}]},
     "policy-missing-field", "x", "azure"),
])
def test_policy_errors(document, kind, rule, field):
    with pytest.raises(PolicyError) as e:
        Policy(document)
    assert (e.value.kind, e.value.rule, e.value.field) == (kind, rule, field)


def test_warnings_and_plan(stand_in, policy):
    assert isinstance(policy.warnings(), list)
    plan = policy.plan(stand_in.issuer)
    credentials = json.loads(plan.credentials_json)
    assert credentials["apps"][0]["client_id"] == stand_in.client_id
    assert plan.commands and all(c.startswith("az ") for c in plan.commands)
    assert any("federated-credential create" in c for c in plan.commands)
    assert any("deny rules" in w for w in plan.warnings)


def test_preflight(stand_in, verifier):
    token = verifier.verify(stand_in.mint())
    creds = [{"name": "gitlab", "issuer": stand_in.issuer, "subject": stand_in.subject,
              "audiences": [stand_in.audience]}]
    report = preflight(token, json.dumps(creds))
    assert isinstance(report, PreflightReport) and report.accepted and report.accepted_by == "gitlab"
    creds[0]["subject"] = stand_in.subject.replace(":main", ":dev")
    report = preflight(token.claims, json.dumps(creds))
    assert not report.accepted and report.nearest == "gitlab"
    assert any("AADSTS700213" in d for d in report.differences)
    with pytest.raises(PolicyError) as e:
        preflight(token, "not json")
    assert e.value.kind == "credentials-json"
