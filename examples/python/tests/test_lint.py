"""The `lint` interface: the core's sample pipeline with planted problems, through the wrapper."""

from __future__ import annotations

import json

import pytest

from conftest import REPO
from gitlab_azure_oidc import CiFile, LintContext, LintReport, OidcError, lint_pipeline

TESTDATA = REPO / "src" / "pipeline" / "testdata"


def test_lint_pipeline_finds_each_planted_problem():
    report = lint_pipeline(
        CiFile(".gitlab-ci.yml", (TESTDATA / "planted.json").read_text(), [("secret", 42)]),
        LintContext("acme/app", project_id="4242", protected_branches=["release"]),
        policy=(TESTDATA / "planted.policy.json").read_text(),
        credentials=(TESTDATA / "planted.credentials.json").read_text(),
        fail_on="critical")
    assert isinstance(report, LintReport) and report.fails
    assert (report.jobs, report.azure_jobs) == (8, 8)
    assert (report.counts.critical, report.counts.high, report.counts.info) == (2, 6, 0)
    findings = json.loads(report.json)["findings"]
    assert sorted(f["kind"] for f in findings) == sorted([
        "policy-condition-not-in-entra", "legacy-job-jwt", "azure-without-id-token",
        "no-matching-credential", "protected-ref-reachable", "static-secret", "policy-denies",
        "audience-not-accepted"])
    secret = next(f for f in findings if f["kind"] == "static-secret")
    assert secret["line"] == 42
    assert "Xk73Q~AbeuEchsVEoR7TJYHSDATOCN1D61_k7U4O" not in report.text + report.json + report.code_quality
    assert len(json.loads(report.code_quality)) == 8
    assert report.text.endswith("8 jobs (8 using Azure): 2 critical, 6 high, 0 medium, 0 low, 0 info\n")
    with pytest.raises(OidcError) as e:
        lint_pipeline(CiFile(".gitlab-ci.yml", "[]"), LintContext("acme/app"))
    assert (e.value.kind, e.value.category) == ("not-a-mapping", "config")
