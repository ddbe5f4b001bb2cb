"""Check the sample service: /health answers 200 with the expected version and schema."""

from __future__ import annotations

import json
import sys
import urllib.request


def main(port: str, version: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            body = json.load(response)
    except OSError as exc:
        print(f"health check failed: {exc}", file=sys.stderr)
        return 75  # EX_TEMPFAIL: the service may still be starting; worth retrying
    print(f"health: {body}")
    if body.get("version") != version:
        print(f"expected version {version}, got {body.get('version')}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
