"""Shared by the benchmarks that measure a live gunicorn over HTTP."""
from __future__ import annotations

import http.client
import time


def wait_until_healthy(port: int, timeout: float = 60) -> None:
    """Poll `/api/v1/health` until it answers 200; stop the benchmark if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            probe.request("GET", "/api/v1/health")
            if probe.getresponse().status == 200:
                probe.close()
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")
