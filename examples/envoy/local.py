"""Starts the Rust stand-ins (GitLab issuer, Entra), an upstream that echoes request headers and
Envoy with the filter, all on 127.0.0.1, for trying the filter by hand; see README.md.

    .venv/bin/python examples/envoy/local.py [--seconds N]

It prints the addresses, then runs until Ctrl-C or N seconds (default 600), and stops everything.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))

from harness import Echo, Envoy, StandIn, bootstrap, plugin_config  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gitlab-azure-oidc-envoy-"))
    stand_in = StandIn(workdir)
    echo = Echo()
    envoy = None
    try:
        clusters = {"upstream": echo.port, "gitlab": stand_in.issuer_port, "entra": stand_in.entra_port}
        envoy = Envoy(workdir, bootstrap(plugin_config(stand_in), clusters), concurrency=2)
        print(json.dumps({"envoy": f"http://127.0.0.1:{envoy.port}", "issuer": stand_in.issuer,
                          "entra": stand_in.entra, "envoy_config": str(envoy.config_path),
                          "envoy_log": str(envoy.log_path)}, indent=1), flush=True)
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline and envoy.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if envoy is not None:
            envoy.close()
        echo.close()
        stand_in.close()


if __name__ == "__main__":
    main()
