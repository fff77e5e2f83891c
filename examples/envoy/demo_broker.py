"""`make demo`, second part: the broker on Envoy. The same GitLab job is refused when it posts its
token straight to Entra, gets its Azure token through the broker, and a job the policy denies
gets nothing (Entra never hears of it).

Everything runs on loopback: the Rust stand-ins for GitLab and Entra, Envoy 1.40 from .venv with
the filter, and the `gitlab-azure-oidc` CLI on the job's side. The stand-in's app trusts only
the broker: its federated credential for the GitLab issuer is gone, and it trusts the broker's
own issuer (the filter signs the assertion and serves the discovery document and JWKS Entra
fetches, through Envoy). The broker's signing keys reach the filter through Envoy's
`vm_config.environment_variables`. No token is printed.

    .venv/bin/python examples/envoy/demo_broker.py --cli target/release/gitlab-azure-oidc
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))

import brokerkit  # noqa: E402
from harness import Envoy, Echo, StandIn  # noqa: E402


def run(cli, args, token):
    env = {"PATH": os.environ.get("PATH", ""), "GITLAB_OIDC_TOKEN": token}
    return subprocess.run([cli, *args], env=env, capture_output=True, text=True, timeout=60)


def show(result, *, hide=()):
    for line in (result.stdout + result.stderr).strip().splitlines():
        for secret in hide:
            line = line.replace(secret, f"<{len(secret)} characters, not shown>")
        print(f"     {line}")
    print(f"     (exit {result.returncode})")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cli", type=Path, required=True, help="the gitlab-azure-oidc binary")
    args = parser.parse_args()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="gitlab-azure-oidc-demo-broker-"))
    stand_in = StandIn(workdir)
    echo = Echo()
    envoy = None
    try:
        port = brokerkit.free_port()
        url = f"http://127.0.0.1:{port}"
        for name, value in brokerkit.secret_environment(brokerkit.new_key_pem(),
                                                        brokerkit.new_key_pem()).items():
            os.environ[name] = value  # Envoy's environment; host_env_keys hands them to the filter
        brokerkit.trust_broker(stand_in, url)
        plugin = brokerkit.broker_plugin(stand_in, url)
        envoy = Envoy(workdir, brokerkit.broker_bootstrap(stand_in, echo.port, plugin, port))
        print(f"== The broker on Envoy ({url}): POST /token, the issuer's documents, the policy in "
              "Envoy's configuration")
        print("   Entra (stand-in) trusts the broker's issuer, its managed identity and its certificate;"
              " no credential trusts GitLab.\n")

        job = stand_in.mint(aud=url, job_id="7770001")
        before = brokerkit.entra_stats(stand_in)["token_requests"]
        print("1. The deploy job (protected main) posts its GitLab token straight to Entra, as "
              "`az login --federated-token` would:")
        straight = run(args.cli, ["exchange", "--authority-url", stand_in.entra, "--tenant",
                                  stand_in.tenant, "--client-id", stand_in.client_id], job)
        show(straight, hide=[job])
        assert straight.returncode == 1 and "AADSTS700211" in straight.stderr, straight.stderr

        print(f"\n2. The same job through the broker: gitlab-azure-oidc exchange --broker {url} --output json")
        brokered = run(args.cli, ["exchange", "--broker", url, "--output", "json"], job)
        token = next((line.split('"')[3] for line in brokered.stdout.splitlines()
                      if '"accessToken"' in line), "")
        show(brokered, hide=[job, token] if token else [job])
        assert brokered.returncode == 0 and token, brokered.stderr
        seen = brokerkit.entra_stats(stand_in)
        print(f"     Entra saw the broker's assertion: iss {seen['last_assertion']['claims']['iss']}, "
              f"sub {seen['last_assertion']['claims']['sub']}; it fetched the broker's JWKS through "
              f"Envoy ({envoy.filter_counters()['issuer_documents.served']} document requests)")

        denied = stand_in.mint(aud=url, job_id="7770002", pipeline_source="merge_request_event")
        before = brokerkit.entra_stats(stand_in)["token_requests"]
        print(f"\n3. A merge-request pipeline asks the broker (the policy's deny rule no-merge-requests):")
        refused = run(args.cli, ["exchange", "--broker", url], denied)
        show(refused, hide=[denied])
        after = brokerkit.entra_stats(stand_in)["token_requests"]
        assert refused.returncode == 1 and "policy-denied" in refused.stderr, refused.stderr
        assert after == before, "Entra saw a request for a denied job"
        print(f"     Entra token requests before and after: {before} and {after}: it never heard of the job.")
        print(f"\nThe broker demo took {time.monotonic() - started:.1f} s.")
    finally:
        if envoy is not None:
            envoy.close()
        echo.close()
        stand_in.close()


if __name__ == "__main__":
    main()
