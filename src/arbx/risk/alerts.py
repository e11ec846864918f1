"""The arbx alerts firing in Prometheus, for the stage gates: one bounded HTTP call.

``firing_alerts(url)`` asks Prometheus's query API for ``ALERTS{alertstate="firing"}`` with an
``Arbx`` name and answers ``Alerts``: the names firing, or why they could not be read (refused,
timed out, too large, not Prometheus's answer). It never raises: a gate treats an unreadable
Prometheus as a failed condition (it cannot tell silence from absence). The answer is read up to
``MAX_BYTES`` and decoded by ``arbx.safejson``.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Final

from arbx import safejson
from arbx.domain.stages import Alerts

QUERY: Final = 'ALERTS{alertstate="firing",alertname=~"Arbx.*"}'
MAX_BYTES: Final = 256 * 1024
MAX_NAMES: Final = 50


def firing_alerts(url: str | None, *, timeout: float = 2.0) -> Alerts:
    """The firing arbx alerts of the Prometheus at ``url``; ``Alerts()`` (not checked) when None."""
    if not url:
        return Alerts()
    query = urllib.parse.urlencode({"query": QUERY})
    request = urllib.request.Request(  # noqa: S310 - the settings allow http(s) URLs only
        f"{url}/api/v1/query?{query}", headers={"Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            body = answer.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        return Alerts(checked=True, error=f"Prometheus answered HTTP {exc.code}")
    except (OSError, ValueError) as exc:  # refused, unreachable, timed out, bad URL
        reason = getattr(exc, "reason", exc)
        return Alerts(checked=True, error=f"Prometheus unreachable: {_line(reason)}")
    if len(body) > MAX_BYTES:
        return Alerts(checked=True, error=f"Prometheus answer over {MAX_BYTES} bytes")
    try:
        doc = safejson.loads(body, max_bytes=MAX_BYTES)
    except ValueError as exc:
        return Alerts(checked=True, error=f"Prometheus answer is not JSON: {_line(exc)}")
    names = _names(doc)
    if names is None:
        return Alerts(checked=True, error="Prometheus answer is not a vector query result")
    return Alerts(checked=True, firing=names)


def _names(doc: Any) -> tuple[str, ...] | None:
    """The sorted alert names of an instant vector answer, or None when it is not one."""
    if not isinstance(doc, dict) or doc.get("status") != "success":
        return None
    data = doc.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        return None
    result = data.get("result")
    if not isinstance(result, list):
        return None
    names: set[str] = set()
    for sample in result:
        metric = sample.get("metric") if isinstance(sample, dict) else None
        name = metric.get("alertname") if isinstance(metric, dict) else None
        if not isinstance(name, str):
            return None
        names.add(name[:128])
    return tuple(sorted(names)[:MAX_NAMES])


def _line(reason: object) -> str:
    text = str(reason).strip()
    return (text.splitlines()[0] if text else type(reason).__name__)[:200]


class CachedAlerts:
    """``firing_alerts`` at most once per ``ttl`` seconds (the API answers many readers with one
    call to Prometheus); thread-safe, and one caller asks while the others wait for its answer."""

    def __init__(self, url: str | None, *, timeout: float = 2.0, ttl: float = 5.0) -> None:
        self.url, self.timeout, self.ttl = url, timeout, ttl
        self._lock = threading.Lock()
        self._answer: tuple[float, Alerts] | None = None

    def __call__(self) -> Alerts:
        if not self.url:
            return Alerts()
        with self._lock:
            now = time.monotonic()
            if self._answer is None or now - self._answer[0] >= self.ttl:
                self._answer = (now, firing_alerts(self.url, timeout=self.timeout))
            return self._answer[1]
