"""The wrapper names what the component's WIT names: every record's fields, the claim table's
claims (with their kinds), and the signature schemes. A field, claim or scheme added to the WIT or
the core's table without the wrapper fails here, not in a user's job."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import List, Optional

import pytest

import gitlab_azure_oidc as oidc
from gitlab_azure_oidc import GitlabClaims, JobConfig, RegisteredClaims, Runtime, UserIdentity

#: WIT record -> the wrapper's class. `rsa-key` and `ec-key` are read by `_NativeSignatures`;
#: `includes` is for hosts that read the included files themselves (the CLI).
RECORDS = {
    "failure": oidc.OidcError, "location": oidc.Location, "entra-details": oidc.EntraDetails,
    "verifier-config": oidc.VerifierConfig, "header": oidc.Header,
    "registered-claims": RegisteredClaims, "verified-token": oidc.VerifiedToken,
    "azure-target": oidc.AzureTarget, "http-request": oidc.HttpRequest,
    "access-token": oidc.AccessToken, "checked-token": oidc.CheckedToken,
    "key-info": oidc.KeyInfo, "claim-spec": oidc.ClaimSpec, "certificate": oidc.Certificate,
    "gate-config": oidc.GateConfig, "admission": oidc.Admission,
    "rule-outcome": oidc.RuleOutcome, "decision": oidc.Decision,
    "preflight-report": oidc.PreflightReport, "plan-report": oidc.PlanReport,
    "ci-file": oidc.CiFile, "lint-context": oidc.LintContext, "lint-report": oidc.LintReport,
    "severity-counts": oidc.SeverityCounts, "includes": None,
    "plan-options": oidc.PlanOptions, "rule-warnings": oidc.RuleWarnings,
    "audit-options": oidc.AuditOptions, "rbac-report": oidc.RbacReport,
    "rsa-key": None, "ec-key": None,
}

#: A claim kind as a `GitlabClaims` field type.
KIND_TYPES = {
    "text": Optional[str], "id": Optional[str], "flag": Optional[bool], "integer": Optional[int],
    "text-list": Optional[List[str]], "identities": Optional[List[UserIdentity]],
    "object": Optional[JobConfig],
}


@pytest.fixture(scope="module")
def wit_types():
    """Every named type of the component's interfaces, imported and exported."""
    rt = Runtime()
    engine, ty = rt._engine, rt._component.type
    named = {}
    for externs in (ty.imports(engine), ty.exports(engine)):
        for interface, extern in externs.items():
            if interface.startswith("gitlab-azure:oidc/"):
                for name, item in extern.ty.exports(engine).items():
                    named.setdefault(name, item.ty)
    return named


def python_fields(cls) -> List[str]:
    if cls is oidc.OidcError:
        return [name for name in inspect.signature(cls).parameters]
    return [f.name for f in dataclasses.fields(cls)]


def test_every_wit_record_has_a_class_with_its_fields(wit_types):
    records = {name: t for name, t in wit_types.items() if type(t).__name__ == "RecordType"}
    assert set(records) == set(RECORDS), "a WIT record without a class here (or one removed)"
    for name, record in records.items():
        if RECORDS[name] is not None:
            wit = [field.replace("-", "_") for field, _ in record.fields]
            assert python_fields(RECORDS[name]) == wit, name


def test_every_signature_scheme_is_checked_natively(wit_types):
    assert set(wit_types["scheme"].names) == set(oidc._NativeSignatures.SCHEMES)


def test_failure_categories_are_the_documented_ones(wit_types):
    assert wit_types["category"].names == ["config", "jwks", "token", "denied", "request", "entra"]


def test_gitlab_claims_are_the_claim_table():
    table = oidc.claim_table()
    hints = typing.get_type_hints(GitlabClaims)
    ours = [(f.name, hints[f.name]) for f in dataclasses.fields(GitlabClaims)]
    theirs = [(c.name, KIND_TYPES[c.kind]) for c in table if not c.registered]
    add = "\n".join(f"    {name}: {str(tp).replace('typing.', '')} = None"
                    for name, tp in theirs if (name, tp) not in ours)
    assert ours == theirs, f"GitlabClaims differs from the component's claim table; add:\n{add}"
    registered = [c.name for c in table if c.registered]
    assert registered == [f.name for f in dataclasses.fields(RegisteredClaims)]


def test_every_claim_kind_converts_to_its_field_type(stand_in, verifier):
    job_config = {"url": "https://gitlab.example.com/acme/policies/-/blob/main/policy.yml", "sha": "abc"}
    token = verifier.verify(stand_in.mint(job_config=job_config, target_audience="x"))
    hints = typing.get_type_hints(GitlabClaims)
    kinds = {c.name: c.kind for c in oidc.claim_table()}
    seen = set()
    for f in dataclasses.fields(GitlabClaims):
        value = getattr(token.gitlab, f.name)
        if value is not None:
            inner = typing.get_args(hints[f.name])[0]
            assert isinstance(value, typing.get_origin(inner) or inner), f.name
            seen.add(kinds[f.name])
    assert seen == set(KIND_TYPES)
    assert token.gitlab.job_config == JobConfig(job_config["url"], "abc")
    assert token.gitlab.groups_direct == ["acme", "acme/platform"]
