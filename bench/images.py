"""The container images: size, and the time from ``podman run`` to ready.

Run after ``make images`` (``make bench`` builds them first). For each image: its size as podman
stores it; for the searcher, the web and PostgreSQL images, the seconds from ``podman run -d``
(read-only root, a tmpfs for /tmp and the data) until the service answers: the API's
``/healthz``, nginx's ``/web-healthz``, ``pg_isready`` (first start: the cluster is made). Each
start is measured ``RUNS`` times; the median and the worst are shown, against the targets (the
searcher image under 300 MB, ready within 5 s). Prints a table; JSON in
``build/bench/images.json``.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "build" / "bench" / "images.json"
ENV = {**os.environ, "CONTAINERS_CONF": str(ROOT / "deploy" / "images" / "containers.conf")}
IMAGES = ("searcher", "web", "devnet", "postgres", "prometheus")
RUNS = 5
TARGET_MB = 300
TARGET_READY_S = 5.0
HARDENED = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL"]


def _podman(*args: str) -> str:
    done = subprocess.run(
        ["podman", *args], env=ENV, capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.strip()


def _version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _time_to_ready(run_args: list[str], ready: Callable[[str], bool], timeout: float = 60) -> float:
    """Seconds from ``podman run -d`` to ``ready(container)``; the container is removed."""
    name = f"arbx-bench-{uuid.uuid4().hex[:8]}"
    start = time.monotonic()
    _podman("run", "-d", "--name", name, *run_args)
    try:
        while time.monotonic() - start < timeout:
            if ready(name):
                return time.monotonic() - start
            time.sleep(0.05)
        logs = subprocess.run(
            ["podman", "logs", "--tail", "5", name], env=ENV, capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        raise RuntimeError(f"{name} not ready within {timeout:g} s: {logs.stdout}{logs.stderr}")
    finally:
        subprocess.run(
            ["podman", "rm", "-f", "-t", "0", name], env=ENV, capture_output=True, check=False
        )


def _starts(tag: str) -> dict[str, list[float]]:
    api_port, web_port = _free_port(), _free_port()
    searcher = [
        *HARDENED, "--tmpfs", "/var/lib/arbx:mode=1777", "-p", f"127.0.0.1:{api_port}:8000",
        f"localhost/arbx-searcher:{tag}", "api",
    ]  # fmt: skip
    web = [
        *HARDENED, "-e", "ARBX_API_UPSTREAM=http://127.0.0.1:9", "-p",
        f"127.0.0.1:{web_port}:8080", f"localhost/arbx-web:{tag}",
    ]  # fmt: skip
    postgres = [
        *HARDENED, "-e", "POSTGRES_PASSWORD=bench", "-e", "PGDATA=/tmp/pgdata",
        f"localhost/arbx-postgres:{tag}",
    ]  # fmt: skip

    def pg_ready(name: str) -> bool:
        done = subprocess.run(
            ["podman", "exec", name, "/usr/lib/postgresql/15/bin/pg_isready", "-h", "/tmp", "-q"],
            env=ENV, capture_output=True, check=False,
        )  # fmt: skip
        return done.returncode == 0

    checks: dict[str, tuple[list[str], Callable[[str], bool]]] = {
        "searcher (API /healthz)": (
            searcher, lambda _: _http_ok(f"http://127.0.0.1:{api_port}/healthz")
        ),
        "web (nginx)": (web, lambda _: _http_ok(f"http://127.0.0.1:{web_port}/web-healthz")),
        "postgres (first start)": (postgres, pg_ready),
    }  # fmt: skip
    return {
        what: [_time_to_ready(args, ready) for _ in range(RUNS)]
        for what, (args, ready) in checks.items()
    }


def main() -> None:
    """Measure, print the table, write the JSON."""
    tag = _version()
    sizes = {
        name: int(
            _podman("image", "inspect", "--format", "{{.Size}}", f"localhost/arbx-{name}:{tag}")
        )
        for name in IMAGES
    }
    starts = _starts(tag)
    print(f"images localhost/arbx-*:{tag}")
    print(f"{'image':<12}{'size MB':>10}")
    for name, size in sizes.items():
        target = f"  (target < {TARGET_MB} MB)" if name == "searcher" else ""
        print(f"{name:<12}{size / 1e6:>10.0f}{target}")
    print(f"\n{'start to ready, s':<28}{'median':>8}{'worst':>8}   ({RUNS} runs)")
    for what, times in starts.items():
        target = f"  (target < {TARGET_READY_S:g} s)" if what.startswith("searcher") else ""
        print(f"{what:<28}{statistics.median(times):>8.2f}{max(times):>8.2f}{target}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"tag": tag, "size_bytes": sizes, "start_to_ready_s": starts}, indent=2) + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
