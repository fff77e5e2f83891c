"""`make bench-envoy`: requests/s and latency of Envoy (one worker, loopback) with no auth filter,
with Envoy's native jwt_authn (with and without its cache), and with this filter (verified-token
cache on and off; Azure token cached), all with the same issuer, JWKS and token. Upstream is a
`direct_response`, so only the filters' cost is measured. Two more cases show a lever each: the
uncached filter with Envoy's `verify_signature` turned off (ring in V8 checks every signature),
and the cached filter with Envoy logging at warn, which turns the per-request audit event off
(the cost of the info log line). Prints a table, the ratios to jwt_authn, Envoy's CPU time per
request (user + system, from /proc: steadier than req/s when other work shares the machine)
and one `BENCH <name> <value> <unit>` line per figure.

    .venv/bin/python examples/envoy/bench.py [--seconds 5] [--rounds 3] [--connections 32]
"""

import argparse
import json
import os
import re
import shutil
import statistics
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


def ours(stand_in, clusters, verified_tokens, envoy_verify_signature=True):
    # The same claim header as jwt_authn's claim_to_headers, so both rewrite the same headers
    # (each header write is a host call and a route-cache reset in Envoy).
    plugin = plugin_config(stand_in, cache={"verified_tokens": verified_tokens},
                           envoy_verify_signature=envoy_verify_signature,
                           claim_headers={"x-gitlab-project-path": "project_path"})
    return bootstrap(plugin, clusters)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]["http_filters"][0]


def seconds(value):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(port, token, duration, connections):
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-H", f"Authorization: Bearer {token}",
         f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = seconds(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = seconds(re.search(r"\s99%\s+(\S+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} requests failed:\n{out}")
    return rps, p50, p99, requests


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is missing (apt-get install wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="gitlab-azure-oidc-bench-"))
    stand_in = StandIn(workdir)
    try:
        clusters = {"gitlab": stand_in.issuer_port, "entra": stand_in.entra_port}
        token = stand_in.mint()
        # (name, bootstrap, Envoy's log level, the jwt_authn case it is compared with)
        cases = [
            ("no_filter", config([], clusters), "info", "jwt_authn_cache"),
            ("jwt_authn_cache", config([jwt_authn(stand_in, True)], clusters), "info", "jwt_authn_cache"),
            ("jwt_authn_nocache", config([jwt_authn(stand_in, False)], clusters), "info",
             "jwt_authn_nocache"),
            ("ours_verified_cache", config([ours(stand_in, clusters, 1024)], clusters), "info",
             "jwt_authn_cache"),
            ("ours_no_verified_cache", config([ours(stand_in, clusters, 0)], clusters), "info",
             "jwt_authn_nocache"),
            ("ours_no_verified_cache_ring", config([ours(stand_in, clusters, 0, False)], clusters),
             "info", "jwt_authn_nocache"),
            ("ours_verified_cache_no_audit", config([ours(stand_in, clusters, 1024)], clusters), "warn",
             "jwt_authn_cache"),
        ]
        # Rounds interleave the cases, and each figure is the median over the rounds: on a shared
        # machine a single run of one case can land in a busy moment and swing by a third.
        rounds, anchors = {}, {}
        for _ in range(args.rounds):
            for name, boot, log_level, anchor in cases:
                envoy = Envoy(workdir, boot, concurrency=1, log_level=log_level)
                try:
                    status, _, body = call(envoy.port, "/", {"authorization": f"Bearer {token}"})
                    assert status == 200, (name, status, body)  # also warms the caches
                    before = cpu_seconds(envoy.process.pid)
                    rps, p50, p99, requests = run_wrk(envoy.port, token, args.seconds,
                                                      args.connections)
                    cpu_us = (cpu_seconds(envoy.process.pid) - before) / requests * 1e6
                    rounds.setdefault(name, []).append((rps, p50, p99, cpu_us))
                    anchors[name] = anchor
                finally:
                    envoy.close()
    finally:
        stand_in.close()
    results = {name: tuple(statistics.median(figures) for figures in zip(*runs))
               for name, runs in rounds.items()}
    spread = {name: (min(r[0] for r in runs), max(r[0] for r in runs)) for name, runs in rounds.items()}
    print(f"{args.rounds} rounds of {args.seconds} s per case; medians, and the range of req/s")
    print(f"{'case':<30} {'req/s':>8} {'range':>13} {'p50 ms':>7} {'p99 ms':>7} {'cpu us/req':>10} "
          f"{'vs jwt_authn':>14}")
    for name, (rps, p50, p99, cpu_us) in results.items():
        anchor = anchors[name]
        ratio = rps / results[anchor][0]
        low, high = spread[name]
        print(f"{name:<30} {rps:>8.0f} {low:>6.0f}-{high:<6.0f} {p50 * 1e3:>7.2f} {p99 * 1e3:>7.2f} "
              f"{cpu_us:>10.1f} {ratio:>6.2f} ({anchor})")
    for name, (rps, p50, p99, cpu_us) in results.items():
        print(f"BENCH {name}_rps {rps:.0f} req/s")
        print(f"BENCH {name}_p50 {p50 * 1e3:.3f} ms")
        print(f"BENCH {name}_p99 {p99 * 1e3:.3f} ms")
        print(f"BENCH {name}_envoy_cpu {cpu_us:.1f} us/req")
    for ours_case, label in [("ours_verified_cache", "ours_cached"),
                             ("ours_no_verified_cache", "ours_uncached"),
                             ("ours_no_verified_cache_ring", "ours_uncached_ring"),
                             ("ours_verified_cache_no_audit", "ours_cached_no_audit")]:
        anchor = anchors[ours_case]
        anchor_label = "jwt_authn_cached" if anchor == "jwt_authn_cache" else "jwt_authn_uncached"
        print(f"BENCH ratio_{label}_to_{anchor_label} "
              f"{results[ours_case][0] / results[anchor][0]:.3f} ratio")


if __name__ == "__main__":
    main()
