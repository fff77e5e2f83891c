#!/usr/bin/env python3
"""The whole flow in Python against the loopback stand-ins: a GitLab job's ID token is verified,
a policy decides, the Entra token request is built, sent and Entra's answer judged.

    python demo.py            # starts the stand-in itself (cargo build --release -p testkit --bin stand-in)
"""

from __future__ import annotations

import sys
from pathlib import Path

from gitlab_azure_oidc import (Policy, Verifier, VerifierConfig, VerifyError, ExchangeError,
                               build_azure_assertion, parse_token_response)
from standin import REPO, StandIn, http

POLICY = REPO / "examples" / "policies" / "demo.json"


def exchange(s: StandIn, verifier: Verifier, policy: Policy, token: str) -> str:
    """One job's token through verify, decide, build, send and parse; returns the outcome."""
    verified = verifier.verify(token)  # now = the current time
    print(f"    verified: sub={verified.claims.sub} jti={verified.claims.jti} "
          f"fingerprint={verified.fingerprint[:16]}...")
    decision = policy.decide(verified.claims, token)
    for line in decision.lines:
        print(f"    policy: {line}")
    if not decision.allow:
        return f"denied: {decision.summary}"
    request = build_azure_assertion(decision.azure_target(insecure_authority_url=s.entra), token)
    print(f"    request: {request.method} {request.url} ({len(request.body)} bytes of form)")
    status, headers, body = http(request.method, request.url, request.body.encode(),
                                 dict(request.headers))
    access = parse_token_response(status, headers, body)
    return f"access token: {access.token_type}, expires in {access.expires_in} s (token not shown)"


def main() -> int:
    with StandIn(max_seconds=120) as s:
        print(f"==> stand-ins: gitlab {s.issuer}, entra {s.entra} (tenant {s.tenant})")
        config = VerifierConfig(issuer=s.issuer, audiences=[s.audience])
        cases = [
            ("deploy job on protected main, environment production", {}, "access token"),
            ("merge-request pipeline", {"pipeline_source": "merge_request_event"}, "denied"),
            ("token whose `aud` is the GitLab URL", {"aud": s.issuer}, "audience-mismatch"),
            ("protected tag v1.4.0 (allowed by policy; no federated credential for its subject)",
             {"ref": "v1.4.0", "ref_type": "tag", "ref_path": "refs/tags/v1.4.0",
              "environment": None, "environment_protected": None, "deployment_tier": None,
              "environment_action": None,
              "sub": "project_path:acme/payments:ref_type:tag:ref:v1.4.0"}, "AADSTS700213"),
        ]
        all_ok = True
        with Verifier(config, s.jwks()) as verifier, Policy.from_file(POLICY) as policy:
            for n, (title, claims, expect) in enumerate(cases, 1):
                print(f"\n==> {n}. {title}")
                token = s.mint(**claims)
                try:
                    outcome = exchange(s, verifier, policy, token)
                except VerifyError as e:
                    outcome = f"refused by verify: {e.kind}: {e.message}"
                except ExchangeError as e:
                    codes = e.entra.error_codes if e.entra else []
                    outcome = (f"refused by Entra: {e.kind} AADSTS{codes[0] if codes else '?'}"
                               f" (hint: {e.entra.hint if e.entra else '-'})")
                ok = expect in outcome
                all_ok &= ok
                print(f"    => {outcome}  [{'as expected' if ok else 'UNEXPECTED'}]")
        print("\n==> demo " + ("passed" if all_ok else "FAILED"))
        return 0 if all_ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
