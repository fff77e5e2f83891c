#!/usr/bin/env python3
"""`make soak-envoy`: real Envoy with the filter, the Rust stand-ins for GitLab and Entra and an
echo upstream, all on 127.0.0.1, under a bounded mixed load through fault phases.

    soak.py [--seconds N] [--max-requests N] [--workers N]    (SOAK_SECONDS, SOAK_MAX_REQUESTS)

The load mixes valid tokens (reused, and fresh jobs that need Entra), expired, wrong-audience,
tampered (payload edited, signature kept), denied (a deny rule, or no allow rule) and garbage
tokens, and requests with no token. The phases, in equal parts of the time: normal; Entra
answering 500, 429, too late (past the filter's timeout) and garbage; GitLab's JWKS down; key
rotation; rotation while GitLab is down; recovery.

Counted: responses by status and kind; wrong allows (a token the filter must refuse that got a 200
or reached the upstream); Envoy crashes or restarts (the process and its uptime); leaks (a GitLab
token, which is also the Entra assertion, in Envoy's log, in a reply or in a header the upstream
received; an Azure token in Envoy's log or in a reply Envoy made); Envoy's RSS over the run.
Secrets are matched as exact base64url segments of 32 characters or more, so nothing fires by
coincidence. One summary line; exit 1 on any wrong allow, crash, restart or leak."""

import argparse
import base64
import collections
import itertools
import json
import os
import re
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))
from harness import Envoy, StandIn, bootstrap, call, plugin_config  # noqa: E402

REFUSED = ("expired", "wrong-aud", "tampered", "denied", "garbage", "missing")
MIX = ["valid"] * 7 + ["fresh"] * 2 + ["expired", "wrong-aud", "tampered", "tampered", "denied", "denied",
                                          "garbage", "missing"]
PHASES = ["normal", "entra-500", "entra-429", "entra-timeout", "entra-garbage", "jwks-down",
          "key-rotation", "rotation-while-down", "recovery"]
SEGMENT = re.compile(r"[A-Za-z0-9_-]{32,}")
PREFIX = 32


class Secrets:
    """Base64url segments (32+ characters) of the tokens the run produced, by their first 32
    characters; a run of such characters anywhere that starts with one is a leak."""

    def __init__(self):
        self.lock = threading.Lock()
        self.gitlab = set()
        self.azure = set()

    @staticmethod
    def segments(token):
        return [s[:PREFIX] for s in token.split(".") if len(s) >= PREFIX]

    def add(self, kind, token):
        with self.lock:
            (self.gitlab if kind == "gitlab" else self.azure).update(self.segments(token))

    def find(self, text, which=("gitlab", "azure")):
        sets = [getattr(self, w) for w in which]
        return [m for m in SEGMENT.findall(text) if any(m[:PREFIX] in s for s in sets)]


class Upstream:
    """The echo upstream, recording which soak ids reached it and scanning its headers."""

    def __init__(self, secrets):
        self.ids = set()
        self.leaks = []
        self.azure_tokens = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                headers = {k.lower(): v for k, v in self.headers.items()}
                text = "\n".join(f"{k}: {v}" for k, v in headers.items())
                leaked = secrets.find(text, ("gitlab",))
                auth = headers.get("authorization", "")
                with lock:
                    outer.ids.add(headers.get("x-soak-id"))
                    outer.leaks.extend(f"upstream header: {m[:12]}..." for m in leaked)
                    if auth.startswith("Bearer "):
                        outer.azure_tokens += 1
                if auth.startswith("Bearer "):
                    secrets.add("azure", auth[len("Bearer "):])
                body = b'{"ok":true}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def tamper(token):
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["project_path"] = "acme/not-payments"
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}.{signature}"


class Tokens:
    """Tokens of every kind, minted by the GitLab stand-in with its current key."""

    def __init__(self, stand_in, secrets):
        self.stand_in = stand_in
        self.secrets = secrets
        self.jobs = itertools.count(9_000_000)
        self.lock = threading.Lock()
        self.pool = {}

    def mint(self, **claims):
        token = self.stand_in.mint(**claims)
        self.secrets.add("gitlab", token)
        return token

    def refill(self):
        """New pools after a change of key: tokens minted with a withdrawn key are not valid."""
        now = int(time.time())
        pool = {
            "valid": [self.mint(job_id=str(next(self.jobs))) for _ in range(12)],
            "expired": [self.mint(iat=now - 7200, nbf=now - 7200, exp=now - 3600)],
            "wrong-aud": [self.mint(aud="https://gitlab.example.com")],
            "denied": [self.mint(ref="feature/soak"), self.mint(ref_protected="false")],
        }
        pool["tampered"] = [tamper(t) for t in pool["valid"][:4]]
        with self.lock:
            self.pool = pool

    def pick(self, kind, rng):
        if kind == "missing":
            return None
        if kind == "garbage":
            return rng.choice(["not-a-token", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "." * 64])
        if kind == "fresh":
            return self.mint(job_id=str(next(self.jobs)))
        with self.lock:
            return rng.choice(self.pool[kind])


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.status = collections.Counter()
        self.by_kind = collections.defaultdict(collections.Counter)
        self.by_phase = collections.defaultdict(collections.Counter)
        self.wrong_allows = []
        self.reply_leaks = []
        self.errors = collections.Counter()
        self.sent = 0
        self.refused_ids = set()


def worker(n, envoy, tokens, secrets, counters, state, deadline, max_requests):
    import random
    rng = random.Random(n)
    ids = itertools.count(n, 1000)
    while time.monotonic() < deadline and not state["stop"]:
        with counters.lock:
            if counters.sent >= max_requests:
                return
            counters.sent += 1
        kind = rng.choice(MIX)
        phase = state["phase"]
        try:
            token = tokens.pick(kind, rng)
        except Exception as error:  # the stand-in's control endpoint; not the system under test
            counters.errors[f"mint: {type(error).__name__}"] += 1
            continue
        soak_id = f"{next(ids)}"
        headers = {"x-soak-id": soak_id}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        if kind in REFUSED:
            with counters.lock:
                counters.refused_ids.add(soak_id)
        try:
            status, reply_headers, body = call(envoy.port, "/", headers, timeout=40)
        except Exception as error:
            with counters.lock:
                counters.errors[type(error).__name__] += 1
            continue
        text = "\n".join(f"{k}: {v}" for k, v in reply_headers.items())
        if status != 200:
            text += "\n" + body.decode(errors="replace")
        leaked = secrets.find(text)
        with counters.lock:
            counters.status[status] += 1
            counters.by_kind[kind][status] += 1
            counters.by_phase[phase][status] += 1
            if kind in REFUSED and status == 200:
                counters.wrong_allows.append(f"{kind} token got 200 in phase {phase}")
            counters.reply_leaks.extend(f"reply ({kind}, {status}): {m[:12]}..." for m in leaked)


def rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def uptime(envoy):
    port = int(envoy.admin_path.read_text().strip().rsplit(":", 1)[1])
    status, _, data = call(port, "/server_info", timeout=5)
    return int(json.loads(data)["uptime_current_epoch"].rstrip("s")) if status == 200 else None


def enter(phase, stand_in, tokens):
    stand_in.behaviour(mode="normal")
    if phase == "entra-500":
        stand_in.behaviour(mode="status", status=500)
    elif phase == "entra-429":
        stand_in.behaviour(mode="status", status=429, retry_after="1")
    elif phase == "entra-timeout":
        stand_in.behaviour(mode="delay", ms=3000)  # the filter gives Entra 2000 ms
    elif phase == "entra-garbage":
        stand_in.behaviour(mode="garbage")
    elif phase == "jwks-down":
        stand_in.down(True)
    elif phase == "key-rotation":
        stand_in.down(False)
        stand_in.rotate()
    elif phase == "rotation-while-down":
        stand_in.rotate()
        stand_in.down(True)
    elif phase == "recovery":
        stand_in.down(False)
    if phase in ("normal", "key-rotation", "rotation-while-down"):
        tokens.refill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("SOAK_SECONDS", "300")))
    parser.add_argument("--max-requests", type=int, default=int(os.environ.get("SOAK_MAX_REQUESTS", "200000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("SOAK_WORKERS", "6")))
    parser.add_argument("--concurrency", type=int, default=2, help="Envoy worker threads")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="soak-envoy-")
    secrets = Secrets()
    counters = Counters()
    stand_in = StandIn(workdir)
    upstream = Upstream(secrets)
    envoy = None
    started = time.monotonic()
    try:
        clusters = {"upstream": upstream.port, "gitlab": stand_in.issuer_port, "entra": stand_in.entra_port}
        envoy = Envoy(workdir, bootstrap(plugin_config(stand_in), clusters), concurrency=args.concurrency)
        pid, first_uptime = envoy.process.pid, uptime(envoy)
        tokens = Tokens(stand_in, secrets)
        tokens.refill()
        state = {"phase": "normal", "stop": False}
        deadline = time.monotonic() + args.seconds
        threads = [threading.Thread(target=worker, daemon=True,
                                    args=(n, envoy, tokens, secrets, counters, state, deadline, args.max_requests))
                   for n in range(args.workers)]
        for t in threads:
            t.start()
        rss, crashes = [], []
        phase_seconds = args.seconds / len(PHASES)
        for index, phase in enumerate(PHASES):
            enter(phase, stand_in, tokens)
            state["phase"] = phase
            phase_end = min(deadline, time.monotonic() + phase_seconds)
            while time.monotonic() < phase_end and any(t.is_alive() for t in threads):
                if envoy.process.poll() is not None:
                    crashes.append(f"Envoy exited with {envoy.process.returncode} in phase {phase}")
                    state["stop"] = True
                    break
                sample = rss_kib(pid)
                if sample:
                    rss.append(sample)
                time.sleep(0.5)
            if state["stop"]:
                break
        state["stop"] = True
        for t in threads:
            t.join(timeout=60)
        stand_in.behaviour(mode="normal")
        stand_in.down(False)
        if envoy.process.poll() is None:
            later = uptime(envoy)
            if first_uptime is not None and later is not None and later < first_uptime:
                crashes.append(f"Envoy's uptime went back from {first_uptime} s to {later} s (restart)")
            reloads = envoy.counters("wasm.gitlab-azure-oidc.").get("vm_reload_success", 0)
        else:
            reloads = "?"
            if not crashes:
                crashes.append(f"Envoy exited with {envoy.process.returncode}")
        envoy.close()
        log = envoy.log()
        log_leaks = [f"Envoy log: {m[:12]}..." for m in secrets.find(log)]
        wrong = counters.wrong_allows + [f"refused request {i} reached the upstream"
                                         for i in sorted(counters.refused_ids & upstream.ids)]
        leaks = log_leaks + counters.reply_leaks + upstream.leaks
        elapsed = time.monotonic() - started
        total = sum(counters.status.values())
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(counters.status.items()))
        errors = sum(counters.errors.values())
        mib = lambda kib: f"{kib / 1024:.0f}"  # noqa: E731
        warm = rss[len(rss) // 10:] or rss
        memory = (f"Envoy RSS {mib(warm[0])}->{mib(rss[-1])} MiB (max {mib(max(rss))})" if rss else "Envoy RSS ?")
        for kind in sorted(counters.by_kind):
            print(f"soak: {kind:<10} " + ", ".join(f"{s}: {n}" for s, n in sorted(counters.by_kind[kind].items())))
        for phase in PHASES:
            if phase in counters.by_phase:
                print(f"soak: phase {phase:<20} " + ", ".join(f"{s}: {n}" for s, n in sorted(counters.by_phase[phase].items())))
        for problem in (wrong + crashes + leaks)[:20]:
            print(f"soak: FAIL {problem}")
        if counters.errors:
            print(f"soak: client errors {dict(counters.errors)}")
        print(f"soak: {elapsed:.0f} s, {total} requests ({statuses}; {errors} client errors), "
              f"{len(PHASES)} phases, wrong allows {len(wrong)}, crashes/restarts {len(crashes)}, "
              f"leaks {len(leaks)} (scanned {len(secrets.gitlab)} GitLab and {len(secrets.azure)} Azure tokens), "
              f"VM reloads {reloads}, {memory}", flush=True)
        return 1 if wrong or crashes or leaks else 0
    finally:
        if envoy is not None:
            envoy.close()
        stand_in.close()
        upstream.close()


if __name__ == "__main__":
    sys.exit(main())
