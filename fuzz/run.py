#!/usr/bin/env python3
"""Builds the fuzz targets and runs each for a bounded time (`make fuzz`, `make fuzz-smoke`).

    fuzz/run.py [--seconds N] [--component] [TARGET ...]

Per target it prints one line: executions, executions per second, libFuzzer's coverage (`cov`,
edges) and features (`ft`), the corpus size and the findings, with the artifact path of each
crash. It exits 1 when any target crashed, leaked memory, timed out on one input or did not
start. Seeds come from fuzz/corpus/<target>/ (committed); what libFuzzer adds goes to
fuzz/work/<target>/ (not committed), so a longer run continues where the last one stopped.

The build uses cargo-fuzz's nightly flags on the stable toolchain through RUSTC_BOOTSTRAP=1 and
its default sanitizer (AddressSanitizer)."""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
CARGO_FUZZ_VERSION = "0.13.1"
TARGETS = ["verify_token", "token_mutation", "jwks", "policy", "glob", "expression",
           "entra_response", "entra_request", "credential", "rbac_export", "pipeline",
           "vend_request", "identity_response", "broker_config"]
COMPONENT = "component"


def ensure_cargo_fuzz():
    try:
        out = subprocess.run(["cargo", "fuzz", "--version"], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    if CARGO_FUZZ_VERSION not in out:
        print(f"fuzz: installing cargo-fuzz {CARGO_FUZZ_VERSION}", flush=True)
        subprocess.run(["cargo", "install", "--quiet", "--locked", "cargo-fuzz", "--version", CARGO_FUZZ_VERSION],
                       check=True)


def build(targets, component):
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    # cargo-fuzz uses fuzz/target; the workspace's CARGO_TARGET_DIR must not redirect it.
    env.pop("CARGO_TARGET_DIR", None)
    cmd = ["cargo", "fuzz", "build", "--fuzz-dir", str(FUZZ)]
    if component:
        cmd += ["--features", "component"]
    if len(targets) == 1:
        cmd.append(targets[0])
    started = time.monotonic()
    subprocess.run(cmd, cwd=FUZZ.parent, env=env, check=True)
    print(f"fuzz: built in {time.monotonic() - started:.0f} s", flush=True)


def binary(target):
    triple = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    host = re.search(r"^host: (\S+)", triple, re.M).group(1)
    return FUZZ / "target" / host / "release" / target


def run(target, seconds):
    seeds = FUZZ / "corpus" / target
    work = FUZZ / "work" / target
    artifacts = FUZZ / "artifacts" / target
    for folder in (work, artifacts):
        folder.mkdir(parents=True, exist_ok=True)
    log_path = work.parent / f"{target}.log"
    cmd = [str(binary(target)), f"-max_total_time={seconds}", "-timeout=25", "-rss_limit_mb=2560",
           "-print_final_stats=1", f"-artifact_prefix={artifacts}/", str(work), str(seeds)]
    started = time.monotonic()
    with open(log_path, "w") as log:
        # libFuzzer stops itself at max_total_time; the outer bound only catches a wedged process.
        try:
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=seconds + 300).returncode
        except subprocess.TimeoutExpired:
            code = -1
    elapsed = time.monotonic() - started
    text = log_path.read_text(errors="replace")
    execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
    status = re.findall(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)", text, re.M)
    crashes = re.findall(r"Test unit written to (\S+)", text)
    execs = int(execs[-1]) if execs else (int(status[-1][0]) if status else 0)
    cov, ft, corpus = (status[-1][1:] if status else ("?", "?", "?"))
    findings = [c for c in crashes]
    failed = code != 0
    line = (f"fuzz: {target:<15} execs={execs:<10} exec/s={execs / max(elapsed, 1):<8.0f} cov={cov:<6} ft={ft:<7} "
            f"corpus={corpus:<6} findings={len(findings)}")
    if failed and not findings:
        line += f" (exit {code}; log {log_path})"
    for path in findings:
        line += f"\n      artifact {path} (reproduce: {binary(target)} {path}; log {log_path})"
    print(line, flush=True)
    if failed:
        tail = "\n".join(text.splitlines()[-40:])
        print(f"----- {target}: last lines of {log_path}\n{tail}\n-----", file=sys.stderr, flush=True)
    return not failed, execs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "60")))
    parser.add_argument("--component", action="store_true", help="also build and run the component target")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("targets", nargs="*")
    args = parser.parse_args()
    targets = args.targets or TARGETS + ([COMPONENT] if args.component else [])
    component = args.component or COMPONENT in targets
    ensure_cargo_fuzz()
    if not args.no_build:
        build(targets, component)
    results = [run(t, args.seconds) for t in targets]
    failed = [t for t, (ok, _) in zip(targets, results) if not ok]
    total = sum(execs for _, execs in results)
    print(f"fuzz: {len(targets)} targets, {args.seconds} s each, {total} executions, "
          f"{len(failed)} failed{': ' + ', '.join(failed) if failed else ''}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
