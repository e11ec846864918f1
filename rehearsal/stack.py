"""Podman for the rehearsal and the tests: build the images (``make images``), bring
``deploy/compose.yaml`` up under a project name of its own, and read what it says."""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "deploy" / "compose.yaml"
CONTAINERS_CONF = ROOT / "deploy" / "images" / "containers.conf"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def podman_env() -> dict[str, str]:
    """The environment podman and podman-compose run with: the project's containers.conf."""
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


@functools.cache
def build_images() -> float:
    """``make images`` without pushing (once per test session); the seconds it took."""
    start = time.monotonic()
    subprocess.run(["make", "-s", "images", "REGISTRY="], cwd=ROOT, env=podman_env(), check=True)
    return time.monotonic() - start


def revision() -> str:
    """The short git revision: the images' other tag (unique to the tree that built them)."""
    done = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return done.stdout.strip()


def version() -> str:
    """The project's version: the images' tag."""
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    """``check()``'s first truthy answer within ``timeout`` seconds, else AssertionError."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            answer = check()
        except (OSError, subprocess.CalledProcessError, ValueError) as exc:
            answer, last = None, exc
        if answer:
            return answer
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:g} s (last error: {last})")


@dataclass
class Stack:
    """A running compose project."""

    project: str = field(default_factory=lambda: f"arbxtest{uuid.uuid4().hex[:8]}")
    web_port: int = field(default_factory=free_port)
    prometheus_port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: uuid.uuid4().hex)
    last_returncode: int = 0
    tags: dict[str, str] = field(default_factory=dict)  # ARBX_API_TAG...: one component's tag

    def env(self) -> dict[str, str]:
        """The variables the compose file reads."""
        return {
            **podman_env(),
            "POSTGRES_PASSWORD": self.password,
            "ARBX_WEB_PORT": str(self.web_port),
            "ARBX_PROMETHEUS_PORT": str(self.prometheus_port),
            "ARBX_TAG": revision(),
            "ARBX_DEVNET_PACE": "0.5",
            **self.tags,
        }

    def compose(self, *args: str) -> str:
        """Run ``podman-compose`` on the project; its standard output."""
        binary = ROOT / ".venv" / "bin" / "podman-compose"
        done = subprocess.run(
            [str(binary), "-f", str(COMPOSE), "-p", self.project, "--profile", "devnet", *args],
            env=self.env(), capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"podman-compose {args}: {done.stderr[-2000:]}")
        return done.stdout

    def podman(self, *args: str, check: bool = True) -> str:
        """Run ``podman``; its standard output."""
        done = subprocess.run(
            ["podman", *args], env=podman_env(), capture_output=True, text=True, check=check,
            timeout=120,
        )  # fmt: skip
        self.last_returncode = done.returncode
        return done.stdout

    def container(self, service: str) -> str:
        """The container name of ``service``."""
        return f"{self.project}_{service}_1"

    def containers(self) -> list[str]:
        """Every container of the project."""
        label = f"label=io.podman.compose.project={self.project}"
        out = self.podman("ps", "-a", "--filter", label, "--format", "{{.Names}}")
        return sorted(out.split())

    def sql(self, query: str) -> str:
        """One value from the stack's PostgreSQL (psql inside its container)."""
        psql = "/usr/lib/postgresql/15/bin/psql"
        out = self.podman(
            "exec", self.container("postgres"), psql, "-h", "/tmp", "-U", "arbx", "-d", "arbx",
            "-tAc", query,
        )  # fmt: skip
        return out.strip()

    def logs(self, service: str) -> str:
        """The last lines a service printed."""
        return self.podman("logs", "--tail", "30", self.container(service), check=False)

    def get(self, port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
        """GET ``path`` on 127.0.0.1:``port``: the status and body."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def get_json(self, port: int, path: str, token: str | None = None) -> Any:
        """GET ``path`` and decode its JSON body (AssertionError unless 200)."""
        status, body = self.get(port, path, token)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)
