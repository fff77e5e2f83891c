"""Starts and steers the project's loopback stand-ins (`stand-in`: a GitLab-like issuer and an
Entra-like token endpoint) for the demo and the tests. Not part of the library."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parent.parent.parent


def stand_in_binary() -> Path:
    """``$GITLAB_AZURE_OIDC_STAND_IN`` (set by the Makefile) or ``$STAND_IN``, else
    ``$CARGO_TARGET_DIR/release/stand-in``, else the repo's target/."""
    for var in ("GITLAB_AZURE_OIDC_STAND_IN", "STAND_IN"):
        if os.environ.get(var):
            return Path(os.environ[var])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    path = target / "release" / "stand-in"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `cargo build --release -p testkit --bin stand-in` "
                                "or set STAND_IN")
    return path


def http(method: str, url: str, body: Optional[bytes] = None,
         headers: Optional[Dict[str, str]] = None, timeout: float = 15) -> Tuple[int, List[Tuple[str, str]], bytes]:
    """One HTTP request; 4xx/5xx answers are returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, list(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, list(error.headers.items()), error.read()


def post_json(url: str, payload: Any) -> Any:
    status, _, body = http("POST", url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    if status != 200:
        raise RuntimeError(f"POST {url}: HTTP {status}: {body[:200]!r}")
    return json.loads(body)


def get_json(url: str) -> Any:
    status, _, body = http("GET", url)
    if status != 200:
        raise RuntimeError(f"GET {url}: HTTP {status}")
    return json.loads(body)


class StandIn:
    """A running `stand-in` process; use as a context manager (it is killed on exit)."""

    def __init__(self, max_seconds: int = 900) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="stand-in-")
        ready = Path(self._dir.name) / "ready.json"
        self.process = subprocess.Popen(
            [str(stand_in_binary()), "--ready-file", str(ready), "--max-seconds", str(max_seconds)],
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("stand-in did not start")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        self.issuer: str = info["issuer"]
        self.entra: str = info["entra"]
        self.tenant: str = info["tenant"]
        self.client_id: str = info["client_id"]
        self.audience: str = info["audience"]
        self.subject: str = info["subject"]

    def mint(self, **overrides: Any) -> str:
        """A GitLab ID token for the default job; ``None`` removes a claim."""
        return post_json(f"{self.issuer}/_control/mint", overrides)["token"]

    def jwks(self) -> str:
        """The JWKS as GitLab serves it, found through discovery."""
        discovery = get_json(f"{self.issuer}/.well-known/openid-configuration")
        status, _, body = http("GET", discovery["jwks_uri"])
        if status != 200:
            raise RuntimeError(f"JWKS: HTTP {status}")
        return body.decode()

    def rotate(self) -> str:
        return post_json(f"{self.issuer}/_control/rotate", {})["kid"]

    def entra_behaviour(self, **behaviour: Any) -> None:
        post_json(f"{self.entra}/_control/behaviour", behaviour)

    def entra_stats(self) -> Dict[str, Any]:
        return get_json(f"{self.entra}/_control/stats")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._dir.cleanup()

    def __enter__(self) -> "StandIn":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
