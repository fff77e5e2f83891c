#!/usr/bin/env python3
"""`make soak-envoy`: real Envoy with the filter, the Rust stand-ins for GitLab and Entra and an
echo upstream, all on 127.0.0.1, under a bounded mixed load through fault phases.

    soak.py [--seconds N] [--max-requests N] [--workers N] [--verbose] [--keep-logs]
            (SOAK_SECONDS, SOAK_MAX_REQUESTS, SOAK_WORKERS)

Two Envoys, each with the filter's configuration from its own ECDS file: the gate (the proxy
with federated rules: the job's GitLab token is the Entra assertion) and the broker (binding
rules with the broker's three credentials: its issuer, whose keys come from Envoy's environment,
its managed identity and the app's certificate; Entra trusts it too). The load goes to the
gate's proxy route and to the broker's: `POST /token` for an Azure token or (`kind=assertion`)
an assertion, and its proxy route. It mixes valid tokens (reused, and fresh jobs that need
Entra), expired, wrong-audience (for the broker: Entra's `api://AzureADTokenExchange`),
tampered (payload edited, signature kept), forged (signed with another key, under the issuer's
key id or an unknown one), denied (a deny rule, or no allow rule), garbage
tokens, requests with no token, and tokens of a user whose access the policy reload revokes.

The phases, in equal parts of the time: normal; a policy reload under load; Entra answering
500, 429, too late (past the filter's timeout) and garbage; GitLab's JWKS down; key rotation;
rotation while GitLab is down; recovery. The reload, through both ECDS files: a policy with a
deny rule for that user, taken when Envoy's ECDS stats count it (`update_success`, measured),
then a settling window of a second (SETTLE); a broken policy, which must be rejected
(`update_rejected`) with the reason in the log while the last good one keeps serving (requests
allowed, none answered 5xx); then the first policy again.

Counted: responses by status, kind and route; wrong allows (a token the filter must refuse that
got a 200, a vended token or assertion included, or reached the upstream; a vending request that
reached the upstream; a 200 for the revoked user's token sent after the settling window and
before the restore); Envoy crashes or restarts (the processes and their uptime); leaks (a GitLab
token, which is also the gate's Entra assertion, in Envoy's log, in any reply or in a header the
upstream received; an Azure token or a vended assertion in Envoy's log or in a refusal; the
broker's keys anywhere; any JWS in a log, a refusal or an upstream header but `authorization`;
one Azure token or assertion given to two jobs); each Envoy's RSS over the run. A token is
matched by its signature's first 32 characters and its other base64url segments of 32 or more
exactly, a key by its PEM lines, so nothing fires by coincidence. One summary line (`--verbose`:
counts by phase, route and kind, and the refusals' reasons); exit 1 on any wrong allow, crash,
restart, leak or failed reload step."""

import argparse
import base64
import collections
import itertools
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))
from brokerkit import (APP_CERT, APP_KEY, ISSUER_SUBJECT, REFS, UAMI_CLIENT, UAMI_PRINCIPAL,  # noqa: E402
                       BrokerEcdsFile, broker_bootstrap, broker_plugin, free_port, new_key_pem, pem_lines,
                       secret_environment)
from harness import (WASM, EcdsFile, Envoy, Loopback, StandIn, bootstrap, call, call_json,  # noqa: E402
                     plugin_config)
from schemas import assert_plugin_config_valid  # noqa: E402

REFUSED = ("expired", "wrong-aud", "tampered", "forged", "denied", "garbage", "missing")
MIX = ["valid"] * 7 + ["fresh"] * 2 + ["revoked", "expired", "wrong-aud", "tampered", "forged", "denied",
                                       "denied", "garbage", "missing"]
# Where a request goes: the gate's proxy route, or the broker's vending (Azure token, assertion)
# and proxy routes.
ROUTES = ["gate"] * 10 + ["vend"] * 4 + ["vend-assertion"] * 3 + ["broker-proxy"] * 3
VENDING = ("vend", "vend-assertion")
PHASES = ["normal", "policy-reload", "entra-500", "entra-429", "entra-timeout", "entra-garbage", "jwks-down",
          "key-rotation", "rotation-while-down", "recovery"]
SEGMENT = re.compile(r"[A-Za-z0-9_-]{32,}")
PREFIX = 32
# A compact JWS (tests/conftest.py): what a token or an assertion looks like in a log line.
JWS = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
# The user whose access the reload revokes; the stand-in's tokens are ada's.
REVOKED_USER = "mallory"
# How long after Envoy counts an update a request may still be decided under the old policy.
SETTLE = 1.0
BROKEN_POLICY = {"rules": [{"name": "anything", "effect": "permit", "when": {}}]}
BROKEN_REASON = "rejected the plugin configuration: `policy`: rule anything, field `effect`"


def claims_of(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class Secrets:
    """The tokens the run produced, by kind: each token's signature by its first 32 characters
    (random, so a truncated one counts and nothing matches by coincidence) and its other
    base64url segments of 32 characters or more exactly (two tokens' payloads may start alike:
    the same claims, sorted). A run of base64url characters anywhere that matches is a leak. Also
    the broker's keys (their PEM lines), and which job each Azure token or assertion was given to."""

    def __init__(self):
        self.lock = threading.Lock()
        self.signatures = {"gitlab": set(), "azure": set()}
        self.segments = {"gitlab": set(), "azure": set()}
        self.pem = set()
        self.keys = 0
        self.owners = {}
        self.shared = []

    def add(self, kind, token):
        *rest, signature = token.split(".")
        with self.lock:
            if len(signature) >= PREFIX:
                self.signatures[kind].add(signature[:PREFIX])
            self.segments[kind].update(s for s in rest if len(s) >= PREFIX)

    def count(self, kind):
        return len(self.signatures[kind])

    def add_pem(self, pem):
        self.keys += 1
        self.pem.update(line for line in pem_lines(pem) if len(line) >= PREFIX)

    def given(self, token, job):
        """`token` (an Azure token or an assertion) was given to `job`: one job each."""
        self.add("azure", token)
        with self.lock:
            owner = self.owners.setdefault(token, job)
            if owner != job:
                self.shared.append(f"an Azure token or assertion of job {owner} given to job {job}: "
                                   f"{token.split('.')[-1][:12]}...")

    def find(self, text, which=("gitlab", "azure")):
        found = [m for m in SEGMENT.findall(text)
                 if any(m[:PREFIX] in self.signatures[w] or m in self.segments[w] for w in which)]
        return found + [line for line in self.pem if line in text]


class Upstream(Loopback):
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
                others = "\n".join(f"{k}: {v}" for k, v in headers.items() if k != "authorization")
                if JWS.search(others):
                    leaked.append(JWS.search(others).group(0))
                auth = headers.get("authorization", "")
                with lock:
                    outer.ids.add(headers.get("x-soak-id"))
                    outer.leaks.extend(f"upstream header: {m[:12]}..." for m in leaked)
                    if auth.startswith("Bearer "):
                        outer.azure_tokens += 1
                if auth.startswith("Bearer "):
                    secrets.given(auth[len("Bearer "):], headers.get("x-gitlab-job-id"))
                body = b'{"ok":true}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(Handler, daemon_threads=True)


def forge(token, key, kid=None):
    """`token`'s header (with `kid`, if given) and claims, signed with `key`, which is not the
    issuer's: a forgery under the issuer's key id, or under one it never published."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    header, payload, _ = token.split(".")
    if kid is not None:
        fields = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
        fields["kid"] = kid
        header = base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()
    signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def tamper(token):
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["project_path"] = "acme/not-payments"
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}.{signature}"


class Tokens:
    """Tokens of every kind for the gate and for the broker (whose URL is their audience),
    minted by the GitLab stand-in with its current key. The broker's valid tokens are for each
    of its credentials (by ref); an assertion needs the issuer rule's (`main`)."""

    def __init__(self, stand_in, secrets, broker_url):
        self.stand_in = stand_in
        self.secrets = secrets
        self.broker_url = broker_url
        self.jobs = itertools.count(9_000_000)
        self.lock = threading.Lock()
        self.pool = {}
        from cryptography.hazmat.primitives.asymmetric import rsa
        self.forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def mint(self, **claims):
        token = self.stand_in.mint(**claims)
        self.secrets.add("gitlab", token)
        return token

    def job(self):
        return str(next(self.jobs))

    def refill(self):
        """New pools after a change of key: tokens minted with a withdrawn key are not valid."""
        now = int(time.time())
        old = {"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}
        url = self.broker_url
        gate = {
            "valid": [self.mint(job_id=self.job()) for _ in range(12)],
            "revoked": [self.mint(job_id=self.job(), user_login=REVOKED_USER) for _ in range(3)],
            "expired": [self.mint(**old)],
            "wrong-aud": [self.mint(aud="https://gitlab.example.com")],
            "denied": [self.mint(ref="feature/soak"), self.mint(ref_protected="false")],
        }
        broker = {
            "valid": [self.mint(aud=url, job_id=self.job(), ref=ref) for ref in REFS.values() for _ in range(4)],
            "revoked": [self.mint(aud=url, job_id=self.job(), ref=ref, user_login=REVOKED_USER)
                        for ref in REFS.values()],
            "expired": [self.mint(aud=url, **old)],
            "wrong-aud": [self.mint()],  # api://AzureADTokenExchange: Entra's, never the broker's
            "denied": [self.mint(aud=url, pipeline_source="merge_request_event"),
                       self.mint(aud=url, ref="feature/soak"), self.mint(aud=url, ref_protected="false")],
        }
        for pool in (gate, broker):
            pool["tampered"] = [tamper(t) for t in pool["valid"][:4]]
            pool["forged"] = [forge(pool["valid"][0], self.forger), forge(pool["valid"][1], self.forger, "soak-forged")]
            for token in pool["forged"]:
                self.secrets.add("gitlab", token)
        for kind in ("valid", "revoked"):
            broker[f"{kind}-issuer"] = [t for t in broker[kind] if claims_of(t)["ref"] == REFS["issuer"]]
        with self.lock:
            self.pool = {"gate": gate, "broker": broker}

    def pick(self, target, kind, rng, issuer=False):
        if kind == "missing":
            return None
        if kind == "garbage":
            return rng.choice(["not-a-token", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "." * 64])
        if kind == "fresh":
            if target == "gate":
                return self.mint(job_id=self.job())
            ref = REFS["issuer"] if issuer else rng.choice(list(REFS.values()))
            return self.mint(aud=self.broker_url, job_id=self.job(), ref=ref)
        if issuer and kind in ("valid", "revoked"):
            kind = f"{kind}-issuer"
        with self.lock:
            return rng.choice(self.pool[target][kind])


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.status = collections.Counter()
        self.by_kind = collections.defaultdict(collections.Counter)
        self.by_phase = collections.defaultdict(collections.Counter)
        self.by_route = collections.defaultdict(collections.Counter)
        self.detail = collections.defaultdict(collections.Counter)  # (phase, route, kind)
        self.reasons = collections.defaultdict(collections.Counter)  # (kind, status): error
        self.vended = collections.Counter()
        self.wrong_allows = []
        self.reply_leaks = []
        self.errors = collections.Counter()
        self.sent = 0
        self.refused_ids = set()
        self.vending_ids = set()
        # The requests of the reload phase: (sent, target, kind, status, empty body).
        self.reload_requests = []


def reason(text):
    """The `error` member of a refusal, or the start of its body."""
    try:
        return json.loads(text).get("error") or "?"
    except (ValueError, AttributeError):
        return text[:40] or "(empty)"


def request(envoy, route, headers):
    if route in VENDING:
        body = b'{"kind":"assertion"}' if route == "vend-assertion" else None
        if body:
            headers["content-type"] = "application/json"
        return call(envoy.port, "/token", headers, "POST", body, timeout=40)
    return call(envoy.port, "/", headers, timeout=40)


def worker(n, envoys, tokens, secrets, counters, state, deadline, max_requests):
    rng = random.Random(n)
    ids = itertools.count(n, 1000)
    while time.monotonic() < deadline and not state["stop"]:
        with counters.lock:
            if counters.sent >= max_requests:
                return
            counters.sent += 1
        route = rng.choice(ROUTES)
        target = "gate" if route == "gate" else "broker"
        kind = rng.choice(MIX)
        phase = state["phase"]
        try:
            token = tokens.pick(target, kind, rng, issuer=route == "vend-assertion")
        except Exception as error:  # the stand-in's control endpoint; not the system under test
            with counters.lock:
                counters.errors[f"mint: {type(error).__name__}"] += 1
            continue
        soak_id = f"{next(ids)}"
        headers = {"x-soak-id": soak_id}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        with counters.lock:
            if kind in REFUSED:
                counters.refused_ids.add(soak_id)
            if route in VENDING:
                counters.vending_ids.add(soak_id)
        sent = time.monotonic()
        try:
            status, reply_headers, body = request(envoys[target], route, headers)
        except Exception as error:
            with counters.lock:
                counters.errors[type(error).__name__] += 1
            continue
        text = "\n".join(f"{k}: {v}" for k, v in reply_headers.items())
        leaked = secrets.find(text)
        body_text = body.decode(errors="replace")
        vended = None
        if status == 200 and route in VENDING:
            # The credential the job asked for: no GitLab token in it, and it is this job's.
            leaked += secrets.find(body_text, ("gitlab",))
            try:
                answer = json.loads(body_text)
                vended = answer.get("assertion" if route == "vend-assertion" else "accessToken")
            except (ValueError, AttributeError):
                pass
            if vended and kind in REFUSED:
                secrets.add("azure", vended)
            elif vended:
                secrets.given(vended, claims_of(token)["job_id"])
        elif status != 200:
            leaked += secrets.find(body_text)
            if JWS.search(text + "\n" + body_text):
                leaked.append(JWS.search(text + "\n" + body_text).group(0))
        with counters.lock:
            counters.status[status] += 1
            counters.by_kind[kind][status] += 1
            counters.by_phase[phase][status] += 1
            counters.by_route[route][status] += 1
            counters.detail[(phase, route, kind)][status] += 1
            if status != 200:
                counters.reasons[(kind, status)][reason(body_text)] += 1
            if vended:
                counters.vended[route] += 1
            elif status == 200 and route in VENDING:
                counters.errors[f"{route} 200 without a credential"] += 1
            if kind in REFUSED and status == 200:
                counters.wrong_allows.append(f"{kind} token got 200 on route {route} in phase {phase}")
            if phase == "policy-reload":
                counters.reload_requests.append((sent, target, kind, status, not body))
            counters.reply_leaks.extend(f"reply ({route}, {kind}, {status}): {m[:12]}..." for m in leaked)


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
        stand_in.down(True)  # first: a job minted with the new key must not let Envoy fetch it
        stand_in.rotate()
    elif phase == "recovery":
        stand_in.down(False)
    if phase in ("normal", "key-rotation", "rotation-while-down"):
        tokens.refill()


def trust_broker_too(stand_in, url):
    """brokerkit.trust_broker without removing the GitLab credential: the gate still needs it."""
    entra, app = stand_in.entra_port, stand_in.client_id
    call_json(entra, "/_control/trust", {"client_id": app, "issuer": url, "subject": ISSUER_SUBJECT})
    call_json(entra, "/_control/trust", {"client_id": app, "managed_identity": {
        "client_id": UAMI_CLIENT, "principal_id": UAMI_PRINCIPAL}})
    call_json(entra, "/_control/trust", {"client_id": app, "certificate": APP_CERT})


def revoking(plugin):
    """`plugin` with a deny rule for REVOKED_USER first: a user who was allowed no longer is."""
    revised = json.loads(json.dumps(plugin))
    revised["policy"]["rules"].insert(0, {"name": "soak-revoked-user", "effect": "deny",
                                          "when": {"user_login": REVOKED_USER}})
    return revised


class Reload:
    """The policy reload of the `policy-reload` phase, on every Envoy through its ECDS file, and
    what came of it."""

    def __init__(self, envoys, files, plugins):
        self.envoys, self.files, self.plugins = envoys, files, plugins
        self.problems = []
        self.deny_written = self.broken_written = self.restored = None
        self.acks = {}  # target: seconds from the write to Envoy's count of the update
        self.deny_from = {}  # target: when the revoked user must be refused (monotonic)
        self.rejected = {}
        self.restore_acks = {}

    def write(self, plugin_of):
        """Serves the next version to every Envoy; returns when the first write began."""
        began = time.monotonic()
        for target, file in self.files.items():
            file.write(plugin_of(target))
        return began

    def await_count(self, stat, before, written, state):
        """Seconds from `written` until each Envoy's ECDS `stat` passed `before` (at most 10 s)."""
        counted = {}
        deadline = written + 10
        while len(counted) < len(self.envoys) and time.monotonic() < deadline and not state["stop"]:
            for target, envoy in self.envoys.items():
                if target not in counted and envoy.process.poll() is None and \
                        envoy.ecds_stats().get(stat, 0) > before[target].get(stat, 0):
                    counted[target] = time.monotonic() - written
            time.sleep(0.02)
        for target in self.envoys:
            if target not in counted:
                self.problems.append(f"reload: {target} did not count {stat} within 10 s")
        return counted

    def run(self, start, end, watch, state):
        span = end - start
        stats = {t: e.ecds_stats() for t, e in self.envoys.items()}
        for target, plugin in self.plugins.items():
            assert_plugin_config_valid(revoking(plugin), "the revoking policy")
        self.deny_written = self.write(lambda t: revoking(self.plugins[t]))
        self.acks = self.await_count("update_success", stats, self.deny_written, state)
        self.deny_from = {t: self.deny_written + s + SETTLE for t, s in self.acks.items()}
        if not watch(start + 0.4 * span):
            return
        stats = {t: e.ecds_stats() for t, e in self.envoys.items()}
        self.broken_written = self.write(lambda t: dict(revoking(self.plugins[t]), policy=BROKEN_POLICY))
        self.rejected = self.await_count("update_rejected", stats, self.broken_written, state)
        for target, envoy in self.envoys.items():
            try:
                envoy.wait_log(BROKEN_REASON, timeout=5)
            except TimeoutError:
                self.problems.append(f"reload: {target}'s log does not say why the broken policy was refused")
        if not watch(start + 0.7 * span):
            return
        stats = {t: e.ecds_stats() for t, e in self.envoys.items()}
        self.restored = self.write(lambda t: self.plugins[t])
        self.restore_acks = self.await_count("update_success", stats, self.restored, state)
        watch(end)

    def judge(self, requests):
        """Wrong allows and problems from the reload phase's requests; and a summary."""
        wrong = []
        stale_before = stale_after = 0
        latest = None  # the latest stale 200's send time after the count, in seconds
        broken = collections.defaultdict(collections.Counter)
        revoked_refused = 0
        end = self.restored if self.restored is not None else float("inf")
        for sent, target, kind, status, empty in requests:
            if kind == "revoked" and self.deny_written is not None and self.deny_written <= sent < end:
                counted = self.deny_written + self.acks[target] if target in self.acks else None
                if status != 200:
                    revoked_refused += 1
                elif target in self.deny_from and sent >= self.deny_from[target]:
                    wrong.append(f"the revoked user's token got 200 from the {target}, sent "
                                 f"{(sent - counted) * 1000:.0f} ms after it counted the policy that denies it")
                elif counted is not None and sent >= counted:
                    stale_after += 1
                    latest = max(latest or 0.0, sent - counted)
                else:
                    stale_before += 1
            if self.broken_written is not None and self.broken_written <= sent < end:
                if status >= 500:
                    broken[target]["5xx"] += 1
                    broken[target]["empty"] += empty
                elif status == 200 and kind in ("valid", "fresh"):
                    broken[target]["allowed"] += 1
        problems = list(self.problems)
        for target in self.envoys:
            if self.broken_written is not None and broken[target]["5xx"]:
                problems.append(f"reload: the {target} answered {broken[target]['5xx']} requests 5xx "
                                f"({broken[target]['empty']} with Envoy's empty body) while the broken "
                                "policy was refused")
            if self.broken_written is not None and not broken[target]["allowed"]:
                problems.append(f"reload: the {target} allowed nothing while the broken policy was refused")
        if self.deny_written is not None and not revoked_refused:
            problems.append("reload: no request of the revoked user was refused")

        def times(measured):
            return "/".join(f"{measured[t] * 1000:.0f}" if t in measured else "never" for t in self.envoys) + " ms"

        later = f" (the last {latest * 1000:.0f} ms after)" if latest is not None else ""
        summary = (
            f"reload {'ok' if not problems and not wrong else 'FAILED'} ({'/'.join(self.envoys)}: deny counted "
            f"in {times(self.acks)}, the revoked user refused {revoked_refused} times, stale 200s "
            f"{stale_before} before the count and {stale_after} within {SETTLE * 1000:.0f} ms after it{later}; "
            f"broken policy rejected in {times(self.rejected)} with "
            f"{sum(b['allowed'] for b in broken.values())} allows and {sum(b['5xx'] for b in broken.values())} "
            f"5xx meanwhile; restored in {times(self.restore_acks)})")
        return wrong, problems, summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("SOAK_SECONDS", "300")))
    parser.add_argument("--max-requests", type=int, default=int(os.environ.get("SOAK_MAX_REQUESTS", "200000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("SOAK_WORKERS", "6")))
    parser.add_argument("--concurrency", type=int, default=2, help="Envoy worker threads")
    parser.add_argument("--verbose", action="store_true", help="counts by phase, route and kind, and why")
    parser.add_argument("--keep-logs", action="store_true", help="keep the logs (kept anyway on failure)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="soak-envoy-"))
    secrets = Secrets()
    counters = Counters()
    stand_in = StandIn(workdir)
    upstream = Upstream(secrets)
    envoys = {}
    failed = True
    started = time.monotonic()
    try:
        # A copy of the filter: every ECDS version loads the module again, and a rebuild must
        # not swap it under the run.
        wasm = workdir / "gitlab_azure_oidc_envoy.wasm"
        shutil.copy(WASM, wasm)
        clusters = {"upstream": upstream.port, "gitlab": stand_in.issuer_port, "entra": stand_in.entra_port}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        keys = new_key_pem(), new_key_pem()
        for pem in (*keys, APP_KEY):
            secrets.add_pem(pem)
        os.environ.update(secret_environment(*keys))  # Envoy's environment: host_env_keys
        trust_broker_too(stand_in, url)
        plugins = {"gate": plugin_config(stand_in), "broker": broker_plugin(stand_in, url)}
        files = {"gate": EcdsFile(workdir / "gate", wasm), "broker": BrokerEcdsFile(workdir / "broker")}
        files["broker"].wasm = wasm
        for target, file in files.items():
            file.path.parent.mkdir()
            assert_plugin_config_valid(plugins[target], f"the {target}'s configuration")
            file.write(plugins[target])
        envoys["gate"] = Envoy(workdir, bootstrap(None, clusters, ecds=files["gate"]), concurrency=args.concurrency)
        boot = broker_bootstrap(stand_in, upstream.port, {}, port)
        boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
            "http_filters"][0] = files["broker"].http_filter()
        envoys["broker"] = Envoy(workdir, boot, concurrency=args.concurrency)
        pids = {t: e.process.pid for t, e in envoys.items()}
        first_uptime = {t: uptime(e) for t, e in envoys.items()}
        tokens = Tokens(stand_in, secrets, url)
        tokens.refill()
        reload = Reload(envoys, files, plugins)
        state = {"phase": "normal", "stop": False}
        deadline = time.monotonic() + args.seconds
        threads = [threading.Thread(target=worker, daemon=True,
                                    args=(n, envoys, tokens, secrets, counters, state, deadline, args.max_requests))
                   for n in range(args.workers)]
        for t in threads:
            t.start()
        rss, crashes = collections.defaultdict(list), []

        def watch(until):
            """Samples RSS until `until`; False once an Envoy exited or the workers are done."""
            while time.monotonic() < until and any(t.is_alive() for t in threads):
                for target, envoy in envoys.items():
                    if envoy.process.poll() is not None:
                        crashes.append(f"the {target} Envoy exited with {envoy.process.returncode} "
                                       f"in phase {state['phase']}")
                        state["stop"] = True
                        return False
                    sample = rss_kib(pids[target])
                    if sample:
                        rss[target].append(sample)
                time.sleep(min(0.5, max(0.0, until - time.monotonic())))
            return not state["stop"]

        phase_seconds = args.seconds / len(PHASES)
        for phase in PHASES:
            state["phase"] = phase
            enter(phase, stand_in, tokens)
            if args.verbose:
                print(f"soak: {time.strftime('%H:%M:%S')} phase {phase}", flush=True)
            start = time.monotonic()
            phase_end = min(deadline, start + phase_seconds)
            if phase == "policy-reload":
                reload.run(start, phase_end, watch, state)
            else:
                watch(phase_end)
            if state["stop"]:
                break
        state["stop"] = True
        for t in threads:
            t.join(timeout=60)
        stand_in.behaviour(mode="normal")
        stand_in.down(False)
        reloads = {}
        for target, envoy in envoys.items():
            if envoy.process.poll() is None:
                later = uptime(envoy)
                if first_uptime[target] is not None and later is not None and later < first_uptime[target]:
                    crashes.append(f"the {target} Envoy's uptime went back from {first_uptime[target]} s "
                                   f"to {later} s (restart)")
                reloads[target] = envoy.counters("wasm.gitlab-azure-oidc.").get("vm_reload_success", 0)
            else:
                reloads[target] = "?"
                if not any(target in c for c in crashes):
                    crashes.append(f"the {target} Envoy exited with {envoy.process.returncode}")
            envoy.close()
        log_leaks = []
        for target, envoy in envoys.items():
            log = envoy.log()
            log_leaks += [f"the {target}'s log: {m[:12]}..." for m in secrets.find(log)]
            log_leaks += [f"the {target}'s log: a JWS {m[:16]}..." for m in JWS.findall(log)]
        reload_wrong, reload_problems, reload_summary = reload.judge(counters.reload_requests)
        wrong = counters.wrong_allows + reload_wrong + [
            f"refused request {i} reached the upstream" for i in sorted(counters.refused_ids & upstream.ids)] + [
            f"vending request {i} reached the upstream" for i in sorted(counters.vending_ids & upstream.ids)]
        leaks = log_leaks + counters.reply_leaks + upstream.leaks + secrets.shared
        elapsed = time.monotonic() - started
        total = sum(counters.status.values())
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(counters.status.items()))
        vending = collections.Counter()
        for route in VENDING:
            vending.update(counters.by_route[route])
        vend_statuses = ", ".join(f"{s}: {n}" for s, n in sorted(vending.items()))
        errors = sum(counters.errors.values())
        mib = lambda kib: f"{kib / 1024:.0f}"  # noqa: E731

        def memory(samples):
            warm = samples[len(samples) // 10:] or samples
            return f"{mib(warm[0])}->{mib(samples[-1])} MiB (max {mib(max(samples))})" if samples else "?"

        for kind in sorted(counters.by_kind):
            print(f"soak: {kind:<14} " + ", ".join(f"{s}: {n}" for s, n in sorted(counters.by_kind[kind].items())))
        for route in sorted(counters.by_route):
            print(f"soak: route {route:<14} " + ", ".join(
                f"{s}: {n}" for s, n in sorted(counters.by_route[route].items())))
        for phase in PHASES:
            if phase in counters.by_phase:
                print(f"soak: phase {phase:<20} " + ", ".join(f"{s}: {n}" for s, n in sorted(counters.by_phase[phase].items())))
        if args.verbose:
            for (phase, route, kind), by_status in sorted(counters.detail.items(), key=lambda i: (
                    PHASES.index(i[0][0]), i[0][1], i[0][2])):
                print(f"soak: {phase:<20} {route:<14} {kind:<10} "
                      + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())))
            for (kind, status), why in sorted(counters.reasons.items()):
                print(f"soak: {kind:<10} {status} " + ", ".join(f"{e}: {n}" for e, n in why.most_common()))
        for problem in (wrong + crashes + leaks + reload_problems)[:20]:
            print(f"soak: FAIL {problem}")
        if counters.errors:
            print(f"soak: client errors {dict(counters.errors)}")
        print(f"soak: {elapsed:.0f} s, {total} requests ({statuses}; {errors} client errors), "
              f"of which {sum(vending.values())} vending ({vend_statuses}; {counters.vended['vend']} Azure tokens and "
              f"{counters.vended['vend-assertion']} assertions vended), "
              f"{len(PHASES)} phases, wrong allows {len(wrong)}, crashes/restarts {len(crashes)}, "
              f"leaks {len(leaks)} (scanned {secrets.count('gitlab')} GitLab and {secrets.count('azure')} Azure tokens "
              f"and assertions, {secrets.keys} keys), {reload_summary}, "
              f"VM reloads {'/'.join(str(reloads.get(t, '?')) for t in envoys)}, "
              "Envoy RSS " + ", ".join(f"{t} {memory(rss[t])}" for t in envoys), flush=True)
        failed = bool(wrong or crashes or leaks or reload_problems)
        if failed or args.keep_logs:
            print(f"soak: the logs are in {workdir}")
        return 1 if failed else 0
    finally:
        for envoy in envoys.values():
            envoy.close()
        stand_in.close()
        upstream.close()
        if not failed and not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
