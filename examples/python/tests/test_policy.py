"""The `policy` interface, for tooling: Policy.decide, warnings, plan, audit_rbac and preflight."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import DEMO_POLICY
from gitlab_azure_oidc import (AuditOptions, Decision, Location, OidcError, Policy,
                               PreflightReport, RbacReport, audit_rbac, preflight)

REPO = Path(__file__).resolve().parents[3]
MONOREPO = REPO / "examples/policies/monorepo.json"
MONOREPO_EXPORT = REPO / "host-test/tests/data/monorepo-assignments.json"


@pytest.fixture
def policy():
    with Policy.from_file(DEMO_POLICY) as p:
        yield p


def test_allow_on_protected_main(stand_in, verifier, policy):
    raw = stand_in.mint()
    verified = verifier.verify(raw)
    decision = policy.decide(verified)
    assert isinstance(decision, Decision) and decision.allow
    assert decision.rule == "deploy-production"
    assert stand_in.client_id in decision.target and stand_in.tenant in decision.target
    assert any("deploy-production: matched" in line for line in decision.lines)
    audit = json.loads(decision.audit_json)
    assert audit["decision"] == "allow" and raw not in decision.audit_json
    assert audit["token_sha256"] == verified.fingerprint


def test_deny_explains_every_rule(stand_in, verifier, policy):
    verified = verifier.verify(stand_in.mint(pipeline_source="merge_request_event"))
    decision = policy.decide(verified, now=verified.claims.iat)
    assert not decision.allow and decision.rule == "no-merge-requests" and decision.target is None
    assert [o.rule for o in decision.outcomes] == ["no-merge-requests", "deploy-production", "release-tags"]
    assert [o.matched for o in decision.outcomes] == [True, True, False]
    assert "ref is main" in decision.outcomes[2].reason


def test_what_if_claims_written_by_hand(stand_in, verifier, policy):
    claims = verifier.verify(stand_in.mint()).payload
    assert policy.decide(claims, fingerprint="what-if").allow
    assert json.loads(policy.decide(claims, fingerprint="what-if").audit_json)["token_sha256"] == "what-if"
    claims["ref_protected"] = "false"
    decision = policy.decide(json.dumps(claims))
    assert not decision.allow and any("ref_protected is false" in line for line in decision.lines)
    with pytest.raises(OidcError) as e:
        policy.decide("not json")
    # Claims written by hand are tooling input: a usage problem, not a refused token.
    assert (e.value.category, e.value.http_status) == ("config", 400)


@pytest.mark.parametrize("document,kind,location", [
    ("{", "policy-json", None),
    ({"rules": [{"name": "x", "effect": "allow", "when": {"project_path": "a/b"}}]},
     "policy-missing-field", Location("x", "azure")),
])
def test_policy_errors(document, kind, location):
    with pytest.raises(OidcError) as e:
        Policy(document)
    assert (e.value.category, e.value.kind, e.value.location) == ("config", kind, location)


def test_a_typo_in_a_claim_name_is_refused_with_a_suggestion():
    document = {"rules": [{"name": "x", "effect": "deny", "when": {"project_pth": "a/b"}}]}
    with pytest.raises(OidcError) as e:
        Policy(document)
    assert e.value.location.rule == "x" and "project_path" in e.value.message


def test_warnings_and_plan(stand_in, policy):
    assert isinstance(policy.warnings(), list)
    plan = policy.plan(stand_in.issuer)
    credentials = json.loads(plan.credentials_json)
    assert credentials["apps"][0]["client_id"] == stand_in.client_id
    assert plan.commands and all(c.startswith("az ") for c in plan.commands)
    assert any("federated-credential create" in c for c in plan.commands)
    lines = [line for group in plan.warnings for line in group.warnings]
    assert any("deny rules" in w for w in lines)
    assert json.loads(plan.document)["issuer"] == stand_in.issuer
    assert plan.warnings[0].rule == "no-merge-requests"


def test_plan_role_assignments_and_issuer_near_misses():
    with Policy.from_file(MONOREPO) as p:
        plan = p.plan("https://gitlab.com")
        assert len(json.loads(plan.role_assignments_json)) == 6
        assert any("--role 8311e382-0749-4cb8-b61a-304f252e45ec" in c for c in plan.role_commands)
        assert plan.document == p.plan("https://gitlab.com").document
        immutable = p.plan("https://gitlab.com", subject_form="project-id")
        assert "project_id:4242:ref_type:branch:ref:main" in immutable.credentials_json
        with pytest.raises(OidcError) as e:
            p.plan("https://gitlab.com/")
        assert e.value.kind == "issuer-near-miss" and "use `https://gitlab.com`" in e.value.message


def test_audit_rbac_reports_the_done_means_finding():
    policy = MONOREPO.read_text(encoding="utf-8")
    report = audit_rbac(policy, MONOREPO_EXPORT.read_text(encoding="utf-8"),
                        options=AuditOptions(fail_on="critical", code_quality_path="policy.json"))
    assert isinstance(report, RbacReport) and report.fails and report.findings == 1
    assert "critical privileged-wide-scope" in report.text
    assert json.loads(report.code_quality)[0]["severity"] == "blocker"
    with pytest.raises(OidcError) as e:
        audit_rbac(policy, "{}")
    assert e.value.kind == "rbac-not-an-array"


def test_preflight(stand_in, verifier):
    token = verifier.verify(stand_in.mint())
    creds = [{"name": "gitlab", "issuer": stand_in.issuer, "subject": stand_in.subject,
              "audiences": [stand_in.audience]}]
    report = preflight(token, json.dumps(creds))
    assert isinstance(report, PreflightReport) and report.accepted and report.accepted_by == "gitlab"
    creds[0]["subject"] = stand_in.subject.replace(":main", ":dev")
    report = preflight(token.payload, json.dumps(creds))
    assert not report.accepted and report.nearest == "gitlab"
    assert any("AADSTS700213" in d for d in report.differences)
    with pytest.raises(OidcError) as e:
        preflight(token, "not json")
    assert (e.value.kind, e.value.category) == ("credentials-json", "config")
