"""`make bench-envoy`: requests/s and latency of Envoy (one worker, loopback) with no auth filter,
with Envoy's native jwt_authn (with and without its cache), and with this filter (verified-token
cache on and off; Azure token cached), all with the same issuer, JWKS and token. Upstream is a
`direct_response`, so only the filters' cost is measured. Prints a table, the ratios to jwt_authn
and one `BENCH <name> <value> <unit>` line per figure.

    .venv/bin/python examples/envoy/bench.py [--seconds 10] [--connections 32]
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))

from harness import Envoy, StandIn, bootstrap, call, plugin_config  # noqa: E402

DIRECT = [{"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}]


def config(http_filters, clusters):
    """A bootstrap whose route answers directly, with `http_filters` before the router."""
    boot = bootstrap("{}", clusters)
    hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["route_config"]["virtual_hosts"][0]["routes"] = DIRECT
    hcm["http_filters"] = http_filters + [hcm["http_filters"][-1]]
    return boot


def jwt_authn(stand_in, cache):
    provider = {
        "issuer": stand_in.issuer,
        "audiences": [stand_in.audience],
        "local_jwks": {"inline_string": json.dumps(stand_in.jwks())},
        "forward": False,
        "claim_to_headers": [{"header_name": "x-gitlab-project-path", "claim_name": "project_path"}],
    }
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": 1000}
    return {"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {"gitlab": provider},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "gitlab"}}]}}


def ours(stand_in, clusters, verified_tokens):
    plugin = plugin_config(stand_in, cache={"verified_tokens": verified_tokens})
    return bootstrap(plugin, clusters)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]["http_filters"][0]


def seconds(value):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def run_wrk(port, token, duration, connections):
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-H", f"Authorization: Bearer {token}",
         f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = seconds(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = seconds(re.search(r"\s99%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} requests failed:\n{out}")
    return rps, p50, p99


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is missing (apt-get install wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="gitlab-azure-oidc-bench-"))
    stand_in = StandIn(workdir)
    try:
        clusters = {"gitlab": stand_in.issuer_port, "entra": stand_in.entra_port}
        token = stand_in.mint()
        cases = [
            ("no_filter", config([], clusters)),
            ("jwt_authn_cache", config([jwt_authn(stand_in, True)], clusters)),
            ("jwt_authn_nocache", config([jwt_authn(stand_in, False)], clusters)),
            ("ours_verified_cache", config([ours(stand_in, clusters, 1024)], clusters)),
            ("ours_no_verified_cache", config([ours(stand_in, clusters, 0)], clusters)),
        ]
        results = {}
        for name, boot in cases:
            envoy = Envoy(workdir, boot, concurrency=1)
            try:
                status, _, body = call(envoy.port, "/", {"authorization": f"Bearer {token}"})
                assert status == 200, (name, status, body)  # also warms the caches
                results[name] = run_wrk(envoy.port, token, args.seconds, args.connections)
            finally:
                envoy.close()
    finally:
        stand_in.close()
    print(f"{'case':<24} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'vs jwt_authn':>14}")
    anchors = {"no_filter": "jwt_authn_cache", "jwt_authn_cache": "jwt_authn_cache",
               "jwt_authn_nocache": "jwt_authn_nocache", "ours_verified_cache": "jwt_authn_cache",
               "ours_no_verified_cache": "jwt_authn_nocache"}
    for name, (rps, p50, p99) in results.items():
        anchor = anchors[name]
        ratio = rps / results[anchor][0]
        print(f"{name:<24} {rps:>10.0f} {p50 * 1e3:>8.2f} {p99 * 1e3:>8.2f} {ratio:>9.2f} ({anchor})")
    for name, (rps, p50, p99) in results.items():
        print(f"BENCH {name}_rps {rps:.0f} req/s")
        print(f"BENCH {name}_p50 {p50 * 1e3:.3f} ms")
        print(f"BENCH {name}_p99 {p99 * 1e3:.3f} ms")
    print(f"BENCH ratio_ours_cached_to_jwt_authn_cached "
          f"{results['ours_verified_cache'][0] / results['jwt_authn_cache'][0]:.3f} ratio")
    print(f"BENCH ratio_ours_uncached_to_jwt_authn_uncached "
          f"{results['ours_no_verified_cache'][0] / results['jwt_authn_nocache'][0]:.3f} ratio")


if __name__ == "__main__":
    main()
