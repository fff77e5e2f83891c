#!/usr/bin/env python3
"""The whole flow in Python against the loopback stand-ins: a gate verifies a GitLab job's ID
token, its policy decides, it builds the Entra token request, this sends it and the gate judges
Entra's answer, retrying once when Entra throttles.

    python demo.py            # starts the stand-in itself (cargo build --release -p testkit --bin stand-in)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gitlab_azure_oidc import Gate, GateConfig, HttpRequest, OidcError, VerifierConfig, exchange
from standin import REPO, StandIn, http

POLICY = REPO / "examples" / "policies" / "demo.json"


def send(request: HttpRequest):
    print(f"    send: {request.method} {request.url} ({len(request.body)} bytes of form)")
    return http(request.method, request.url, request.body.encode(), dict(request.headers))


def main() -> int:
    with StandIn(max_seconds=120) as s:
        print(f"==> stand-ins: gitlab {s.issuer}, entra {s.entra} (tenant {s.tenant})")
        config = GateConfig(VerifierConfig(issuer=s.issuer, audiences=[s.audience]),
                            policy=POLICY.read_text(), dangerous_authority_url=s.entra)
        tag = {"ref": "v1.4.0", "ref_type": "tag", "ref_path": "refs/tags/v1.4.0", "environment": None,
               "environment_protected": None, "deployment_tier": None, "environment_action": None,
               "sub": "project_path:acme/payments:ref_type:tag:ref:v1.4.0"}
        cases = [
            ("deploy job on protected main, environment production", {}, None, "access token"),
            ("merge-request pipeline", {"pipeline_source": "merge_request_event"}, None, "policy-denied"),
            ("token whose `aud` is the GitLab URL", {"aud": s.issuer}, None, "audience-mismatch"),
            ("protected tag v1.4.0 (allowed by policy; no federated credential for its subject)",
             tag, None, "AADSTS700213"),
            ("Entra throttles once (429, Retry-After: 1): sent again after a second", {},
             {"mode": "status", "status": 429, "retry_after": "1", "times": 1}, "access token"),
        ]
        all_ok = True
        with Gate(config) as gate:  # no keys yet: `exchange` fetches them on first use
            for n, (title, claims, entra, expect) in enumerate(cases, 1):
                print(f"\n==> {n}. {title}")
                if entra:
                    s.entra_behaviour(**entra)
                try:
                    access = exchange(gate, s.mint(**claims), send, fetch_jwks=s.jwks)
                    outcome = (f"access token: {access.token_type}, expires in {access.expires_in} s"
                               " (token not shown)")
                except OidcError as e:
                    codes = e.entra.error_codes if e.entra else []
                    outcome = (f"refused ({e.category}, HTTP {e.http_status}): {e.kind}"
                               + (f" AADSTS{codes[0]}" if codes else "") + f": {e.message}")
                # One event per decision, then one per Entra answer joined to it; never the token.
                for line in gate.take_audit():
                    event = json.loads(line)
                    if event.get("event") == "entra_answer":
                        codes = "".join(f" AADSTS{c}" for c in event["error_codes"])
                        print(f"    audit: Entra answered HTTP {event['status']}: {event['outcome']}{codes} "
                              f"(rule {event['rule']}, request {event['client_request_id']})")
                        continue
                    print(f"    audit: {event['decision']} by rule {event['rule']}, "
                          f"{event['project_path']}@{event['ref']}, token {event['token_sha256'][:16]}...")
                ok = expect in outcome
                all_ok &= ok
                print(f"    => {outcome}  [{'as expected' if ok else 'UNEXPECTED'}]")
        print("\n==> demo " + ("passed" if all_ok else "FAILED"))
        return 0 if all_ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
