"""Clients on loopback: steady requests to the API and the dashboard through their Services,
counting every answer that is not a success (an HTTP error or a failed connection) and which
release answered (the API's ``X-Arbx-Release`` header, from v2 on)."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Target:
    name: str
    url: str
    token: str | None = None
    expect: bytes = b""


@dataclass
class Load:
    """Requests to ``targets`` from ``workers`` threads each, ``pace`` s apart."""

    targets: list[Target]
    workers: int = 2
    pace: float = 0.05
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    releases: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for target in self.targets:
            for _ in range(self.workers):
                thread = threading.Thread(target=self._work, args=(target,), daemon=True)
                thread.start()
                self.threads.append(thread)
        return self

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(10)

    def snapshot(self) -> tuple[int, int]:
        """Requests and errors so far (all targets)."""
        with self.lock:
            return sum(self.requests.values()), sum(self.errors.values())

    def errors_since(self, mark: tuple[int, int]) -> int:
        return self.snapshot()[1] - mark[1]

    def _work(self, target: Target) -> None:
        headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
        while not self.stop_event.is_set():
            problem, release = "", ""
            try:
                request = urllib.request.Request(target.url, headers=headers)
                with urllib.request.urlopen(request, timeout=5) as answer:
                    body = answer.read(1_000_000)
                    release = answer.headers.get("X-Arbx-Release", "")
                    if target.expect and target.expect not in body:
                        problem = "unexpected body"
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}"[:120]
            with self.lock:
                self.requests[target.name] += 1
                if release:
                    self.releases[release] += 1
                if problem:
                    self.errors[target.name] += 1
                    if len(self.samples) < 20:
                        self.samples.append(f"{time.strftime('%H:%M:%S')} {target.name}: {problem}")
            self.stop_event.wait(self.pace)
