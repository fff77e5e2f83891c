"""demo.py runs the whole flow against the stand-ins and says every case behaved as expected."""

import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end():
    here = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, str(here / "demo.py")], cwd=here, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "access token: Bearer" in out.stdout and "==> demo passed" in out.stdout
    assert out.stdout.count("[as expected]") == 5
    assert "audit: deny by rule no-merge-requests" in out.stdout
