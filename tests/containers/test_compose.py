"""The compose stack under podman, from the images ``make images`` builds: the engine follows the
devnet in shadow mode, the dashboard and the API answer through the web container, Prometheus
scrapes every target; then every container restarts, PostgreSQL included, and nothing recorded
is lost; one command takes the API alone back to an older build the image store keeps (a rollback:
a distinct image, a layer on this tree's whose package is stamped with the previous release's
version), which the running API then reports, and forward again."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from rehearsal.cluster import PACKAGE_DIRS
from rehearsal.stack import ROOT, Stack, build_images, revision, version, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.containers]

START_TIMEOUT = 240.0  # first start: the cluster is made, the devnet's world deployed
RECORDED = "SELECT count(*) FROM opportunities"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: run `make images` once (it installs it, as root)")
    took = build_images()
    print(f"make images: {took:.0f} s")
    running = Stack()
    try:
        running.compose("up", "-d")
        yield running
    finally:
        for service in ("engine", "devnet", "api", "web"):
            print(f"--- {service}\n{running.logs(service)}")
        running.compose("down", "-v", "-t", "5")
        left = running.containers()  # once seen after the rollback: postgres and migrate
        if left:
            print(f"left by podman-compose down: {left}; removed with the project's pod")
            running.podman("pod", "rm", "-f", f"pod_{running.project}", check=False)
            running.podman("rm", "-f", *left, check=False)
            running.podman("volume", "rm", f"{running.project}_pgdata", check=False)
            running.podman("network", "rm", f"{running.project}_default", check=False)
        earlier = f"localhost/arbx-searcher:{running.project}-earlier"  # the rollback's build
        running.podman("rmi", "-f", earlier, check=False)


def _previous_version() -> str:
    """The previous release's version (deploy/releases.toml)."""
    with (ROOT / "deploy" / "releases.toml").open("rb") as handle:
        return str(tomllib.load(handle)["previous"]["version"])


def _build_earlier(stack: Stack, tag: str, stamped: str) -> str:
    """A distinct, older build of the searcher image, tagged ``tag`` in the local image store: a
    layer on this tree's image whose ``arbx`` package says it is ``stamped`` (its
    ``__version__``, which the API serves as its OpenAPI version, and the default release name:
    1-64 of ``[A-Za-z0-9._-]``); the new image's id."""
    source = (ROOT / "src" / "arbx" / "__init__.py").read_text()
    current = f'__version__ = "{version()}"'
    assert current in source
    with tempfile.TemporaryDirectory(prefix="arbx-earlier-") as tmp:
        (Path(tmp) / "__init__.py").write_text(
            source.replace(current, f'__version__ = "{stamped}"')
        )
        (Path(tmp) / "Containerfile").write_text(
            f"FROM localhost/arbx-searcher:{revision()}\n"
            f"COPY __init__.py {PACKAGE_DIRS['searcher']}/arbx/__init__.py\n"
            f'LABEL org.opencontainers.image.version="{stamped}"\n'
        )
        stack.podman("build", "--quiet", "--format", "docker", "--network", "none",
                     "-f", str(Path(tmp) / "Containerfile"), "-t",
                     f"localhost/arbx-searcher:{tag}", tmp)  # fmt: skip
    return stack.podman("image", "inspect", "-f", "{{.Id}}", f"localhost/arbx-searcher:{tag}")


def _api_version(stack: Stack) -> str:
    """The version the running API process reports (its OpenAPI document's, asked inside its
    container)."""
    probe = (
        "import json, sys, urllib.request as u\n"
        "print(json.load(u.urlopen(sys.argv[1], timeout=5))['info']['version'])"
    )
    out = stack.podman("exec", stack.container("api"), "python3", "-c", probe,
                       "http://127.0.0.1:8000/openapi.json")  # fmt: skip
    return out.strip()


def _engine_recording(stack: Stack) -> int:
    count = int(stack.sql(RECORDED) or 0)
    blocks = int(stack.sql("SELECT count(*) FROM blocks") or 0)
    return count if blocks > 3 and count > 0 else 0


# the scrape jobs of deploy/compose/prometheus.yml: the container and the port it serves on
JOBS = {"arbx-engine": ("engine", 9464), "arbx-api": ("api", 8000)}


def _served(stack: Stack, service: str, port: int) -> bool:
    """True when ``service`` answers 200 on its own /metrics (asked inside its container)."""
    probe = (
        "import sys, urllib.request as u\n"
        "try: sys.exit(u.urlopen(sys.argv[1], timeout=3).status != 200)\n"
        "except OSError: sys.exit(1)"
    )
    url = f"http://127.0.0.1:{port}/metrics"
    stack.podman("exec", stack.container(service), "python3", "-c", probe, url, check=False)
    return stack.last_returncode == 0


def _targets_up(stack: Stack, jobs: set[str]) -> list[str]:
    targets = stack.get_json(stack.prometheus_port, "/api/v1/targets")["data"]["activeTargets"]
    health = {t["labels"]["job"]: t["health"] for t in targets}
    assert set(health) == {*JOBS, "prometheus"}, health
    return sorted(jobs) if all(health[job] == "up" for job in jobs) else []


def _serving(stack: Stack) -> bool:
    status, page = stack.get(stack.web_port, "/")
    ready, _ = stack.get(stack.web_port, "/readyz")
    return status == 200 and b"arbx dashboard" in page and ready == 200


def test_stack_follows_the_devnet_serves_and_survives_restarts(stack: Stack) -> None:
    recorded = wait_for("the engine records blocks", lambda: _engine_recording(stack), 240)
    assert stack.sql("SELECT DISTINCT mode FROM runs") == "shadow"
    wait_for("the dashboard and /readyz through nginx", lambda: _serving(stack), 60)
    token = stack.podman(
        "exec", stack.container("api"), "arbx", "token", "add", "--name", "ci", "--role", "viewer"
    ).strip()
    status = stack.get_json(stack.web_port, "/api/v1/status", token)
    assert (status["chain_id"], status["mode"]) == (31337, "shadow")
    page = stack.get_json(stack.web_port, "/api/v1/opportunities?limit=5", token)
    assert page["items"]
    # every endpoint the searcher serves is scraped, the alert rules are loaded, and every
    # container's own health check passes (podman runs them on demand: no systemd timers here)
    served = {job for job, (service, port) in JOBS.items() if _served(stack, service, port)}
    print(f"metrics endpoints served: {sorted(served) or 'none'}")
    wait_for(
        "Prometheus scrapes every target", lambda: _targets_up(stack, served | {"prometheus"}), 60
    )
    rules = stack.get_json(stack.prometheus_port, "/api/v1/rules")["data"]["groups"]
    assert sum(len(group["rules"]) for group in rules) > 0
    for service in ("postgres", "devnet", "api", "web", "prometheus"):
        stack.podman("healthcheck", "run", stack.container(service))
    if "arbx-engine" in served:
        stack.podman("healthcheck", "run", stack.container("engine"))

    # every container restarts, PostgreSQL included: what was recorded is still there
    before, last = (
        int(v) for v in stack.sql("SELECT count(*), max(id) FROM opportunities").split("|")
    )
    assert before >= recorded
    started = time.monotonic()
    for name in stack.containers():
        stack.podman("restart", "-t", "10", name)
    kept = f"SELECT count(*) FROM opportunities WHERE id <= {last}"
    assert wait_for("PostgreSQL after the restart", lambda: stack.sql(kept), 60) == str(before)
    wait_for("the dashboard after the restart", lambda: _serving(stack), 90)
    wait_for(
        "the engine records again", lambda: int(stack.sql(RECORDED)) > before, 120
    )  # fmt: skip
    token_again = stack.get_json(stack.web_port, "/api/v1/whoami", token)
    assert token_again["name"] == "ci"
    print(f"restart to recording again: {time.monotonic() - started:.0f} s")

    # one command per component: the API alone back to an older build (a distinct image the
    # local image store keeps), then forward again; the running API reports each version
    assert _api_version(stack) == version()
    engine = stack.podman("inspect", "-f", "{{.Id}}", stack.container("engine")).strip()
    current = stack.podman("image", "inspect", "-f", "{{.Id}}",
                           f"localhost/arbx-searcher:{revision()}").strip()  # fmt: skip
    earlier, older = f"{stack.project}-earlier", f"{_previous_version()}-earlier"
    assert _build_earlier(stack, earlier, older).strip() != current
    stack.tags["ARBX_API_TAG"] = earlier
    stack.compose("up", "-d", "--no-deps", "api")
    api_image = stack.podman("inspect", "-f", "{{.ImageName}}", stack.container("api")).strip()
    assert api_image == f"localhost/arbx-searcher:{earlier}"
    assert stack.podman("inspect", "-f", "{{.Id}}", stack.container("engine")).strip() == engine
    wait_for("the dashboard after the API's rollback", lambda: _serving(stack), 90)
    assert _api_version(stack) == older
    assert stack.get_json(stack.web_port, "/api/v1/whoami", token)["name"] == "ci"
    del stack.tags["ARBX_API_TAG"]
    stack.compose("up", "-d", "--no-deps", "api")
    wait_for("the dashboard after the API's roll forward", lambda: _serving(stack), 90)
    assert _api_version(stack) == version()
    assert stack.podman("inspect", "-f", "{{.Id}}", stack.container("engine")).strip() == engine
    print(json.dumps({"rolled back to": older, "forward to": version()}))
