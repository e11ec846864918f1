"""The Kubernetes Service stand-in: a small TCP load balancer on the host over the ready pods
its selector matches, as kube-proxy sends each new connection to one of a Service's endpoints.

A pod is an endpoint once its readiness probe (the pod template's ``readinessProbe``: path and
``periodSeconds``) passes, and stops being one at its first failed probe (failureThreshold 1):
an API pod that begins to drain answers 503 on /readyz and receives no new connections while
it finishes the ones it has. The selector (the app and, for blue/green, the
``rollouts-pod-template-hash`` the Rollout sets) is read from the stack's state, so a switch
made by another process takes effect at the next probe round.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rehearsal.cluster import Stack, http_status, state_lock

BUFFER = 65536


@dataclass
class Service:
    """One Service: its name (the key of its selector in the state), the listening addresses
    and the readiness probe of its pods."""

    name: str
    listen: list[tuple[str, int]]
    probe_path: str
    probe_period: float
    probe_timeout: float = 1.0
    endpoints: list[tuple[str, int]] = field(default_factory=list)
    ready: dict[str, bool] = field(default_factory=dict)
    next_probe: dict[str, float] = field(default_factory=dict)
    turn: itertools.count[int] = field(default_factory=itertools.count)

    def pick(self) -> tuple[str, int] | None:
        """The next endpoint, round robin (None when there is none)."""
        endpoints = list(self.endpoints)
        if not endpoints:
            return None
        return endpoints[next(self.turn) % len(endpoints)]


def selected(state: dict[str, Any], service: str) -> list[dict[str, Any]]:
    """The pods ``service``'s selector matches."""
    selector = state.get("services", {}).get(service, {}).get("selector", {})
    if not selector:
        return []
    pods = []
    for pod in state.get("pods", {}).values():
        if pod["app"] != selector.get("app"):
            continue
        if selector.get("hash") and pod["version"] != selector["hash"]:
            continue
        pods.append(pod)
    return pods


class Balancer:
    """Every Service of the stack, served by one event loop in a thread."""

    def __init__(self, stack: Stack, log: Callable[[str], None] = print) -> None:
        self.stack = stack
        self.log = log
        self.services: dict[str, Service] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.prober = threading.Thread(target=self._probe_forever, daemon=True)
        self.stopping = threading.Event()
        self.servers: list[asyncio.AbstractServer] = []
        self.published: dict[str, bool] | None = None

    def start(self) -> None:
        self.thread.start()
        self.prober.start()

    def add(self, service: Service) -> None:
        """Listen for ``service`` on its addresses."""
        self.services[service.name] = service
        for host, port in service.listen:
            future = asyncio.run_coroutine_threadsafe(
                asyncio.start_server(
                    functools.partial(self._connect, service), host, port, reuse_address=True
                ),
                self.loop,
            )
            self.servers.append(future.result(10))

    def stop(self) -> None:
        self.stopping.set()
        with contextlib.suppress(OSError, ValueError), state_lock(self.stack.directory) as state:
            state["prober"] = False
        if not self.thread.is_alive():
            return
        for server in self.servers:
            self.loop.call_soon_threadsafe(server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    # readiness --------------------------------------------------------------------------------

    def _probe_forever(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(Exception):
                self.probe_once()
            self.stopping.wait(0.25)

    def probe_once(self) -> None:
        """Probe every pod whose probe is due; update each Service's endpoints."""
        state = self.stack.state
        now = time.monotonic()
        for service in list(self.services.values()):
            pods = selected(state, service.name)
            names = {p["name"] for p in pods}
            for name in list(service.ready):
                if name not in names:
                    service.ready.pop(name, None)
                    service.next_probe.pop(name, None)
            for pod in pods:
                if now >= service.next_probe.get(pod["name"], 0.0):
                    url = f"http://{pod['ip']}:{pod['port']}{service.probe_path}"
                    status = http_status(url, service.probe_timeout)
                    service.ready[pod["name"]] = 200 <= status < 400
                    service.next_probe[pod["name"]] = now + service.probe_period
            endpoints = [(p["ip"], int(p["port"])) for p in pods if service.ready.get(p["name"])]
            if sorted(endpoints) != sorted(service.endpoints):
                versions = sorted(p["version"] for p in pods if service.ready.get(p["name"]))
                self.log(f"service {service.name}: endpoints {versions or 'none'}")
            service.endpoints = endpoints
        self._publish()

    def _publish(self) -> None:
        """Each pod's readiness into the stack's state (as a kubelet reports it), so that a
        controller in any process waits for what the Services see, not for its own probe."""
        seen: dict[str, bool] = {}
        for service in self.services.values():
            for name, ready in service.ready.items():
                seen[name] = seen.get(name, False) or ready
        if seen != self.published:
            apps = sorted({
                p["app"] for p in self.stack.state.get("pods", {}).values() if p["name"] in seen
            })  # fmt: skip
            with state_lock(self.stack.directory) as state:
                state["ready"] = seen
                state["prober"] = True
                state["probed_apps"] = sorted({*state.get("probed_apps", []), *apps})
            self.published = seen

    def ready_versions(self, service: str) -> dict[str, int]:
        """How many ready endpoints of each version ``service`` has now."""
        state = self.stack.state
        counts: dict[str, int] = {}
        for pod in selected(state, service):
            if self.services[service].ready.get(pod["name"]):
                counts[pod["version"]] = counts.get(pod["version"], 0) + 1
        return counts

    # proxying ---------------------------------------------------------------------------------

    async def _connect(
        self, service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        target = service.pick()
        if target is None:
            self.log(f"service {service.name}: a connection found no endpoint")
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*target), 3)
        except (OSError, TimeoutError) as exc:
            self.log(f"service {service.name}: {target[0]}:{target[1]} refused ({exc})")
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(BUFFER):
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()
