"""Container health check: exit 0 when the API's or the engine's ``/healthz`` answers 200.

``ARBX_HEALTH_URL`` names the one to ask; by default the API's port, then the engine's metrics
port (so one image checks whichever role it runs).
"""

import os
import sys
import urllib.request

URLS = ("http://127.0.0.1:8000/healthz", "http://127.0.0.1:9464/healthz")


def healthy(url: str) -> bool:
    """True when ``url`` answers 200 within 2 s."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 (fixed loopback URLs)
            return bool(answer.status == 200)
    except OSError:
        return False


if __name__ == "__main__":
    chosen = os.environ.get("ARBX_HEALTH_URL")
    sys.exit(0 if any(healthy(u) for u in ((chosen,) if chosen else URLS)) else 1)
