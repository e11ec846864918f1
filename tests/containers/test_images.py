"""The images ``make images`` builds: labelled with the version and the revision, non-root, and
kept by version in the local registry, from which an earlier version can be pulled back."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from rehearsal.stack import ROOT, build_images, free_port, podman_env, version
from rehearsal.stack import revision as tree_revision

pytestmark = [pytest.mark.e2e, pytest.mark.containers]

IMAGES = ("searcher", "web", "devnet", "postgres", "prometheus")


def _podman(*args: str) -> str:
    done = subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, text=True, check=True,
        timeout=300,
    )  # fmt: skip
    return done.stdout.strip()


@pytest.fixture(scope="module")
def built() -> str:
    build_images()
    return version()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    script = ROOT / "deploy" / "images" / "registry.sh"
    env = {**podman_env(), "REGISTRY_DIR": str(tmp_path)}
    subprocess.run([str(script), "start", address], cwd=ROOT, env=env, check=True)
    try:
        yield address
    finally:
        subprocess.run([str(script), "stop", address], cwd=ROOT, env=env, check=True)


def test_every_image_is_labelled_and_runs_as_a_user(built: str) -> None:
    revision = tree_revision()
    for name in IMAGES:
        # the revision's tag: the version's may be retagged meanwhile by a build of another tree
        image = f"localhost/arbx-{name}:{revision}"
        inspected = json.loads(_podman("image", "inspect", image))[0]
        config, labels = inspected["Config"], inspected["Config"]["Labels"]
        assert labels["org.opencontainers.image.version"] == built, name
        assert labels["org.opencontainers.image.revision"].startswith(revision), name
        assert config.get("User") not in (None, "", "0", "root", "0:0"), name
        assert inspected.get("Healthcheck", {}).get("Test", ["NONE"])[0] == "CMD", name
        same = json.loads(_podman("image", "inspect", f"localhost/arbx-{name}:{built}"))[0]
        assert same["Config"]["Labels"]["org.opencontainers.image.version"] == built


def test_the_registry_keeps_earlier_versions_for_rollback(built: str, registry: str) -> None:
    image = f"localhost/arbx-web:{built}"
    old_id = json.loads(_podman("image", "inspect", image))[0]["Id"]
    _podman("push", "--quiet", "--tls-verify=false", image, f"{registry}/arbx-web:0.0.9")
    # a newer version with other contents, pushed after it
    newer = f"localhost/arbx-web:test-{registry.rsplit(':', 1)[1]}"
    container = _podman("create", image)
    try:
        _podman("commit", "--quiet", "--change", "LABEL newer=yes", container, newer)
    finally:
        _podman("rm", "-f", container)
    _podman("push", "--quiet", "--tls-verify=false", newer, f"{registry}/arbx-web:0.1.0-next")
    with urllib.request.urlopen(f"http://{registry}/v2/arbx-web/tags/list", timeout=5) as answer:
        tags = json.loads(answer.read())["tags"]
    assert sorted(tags) == ["0.0.9", "0.1.0-next"]
    # rollback: the earlier version comes back as it was pushed
    _podman("rmi", newer)
    _podman("pull", "--quiet", "--tls-verify=false", f"{registry}/arbx-web:0.0.9")
    pulled = json.loads(_podman("image", "inspect", f"{registry}/arbx-web:0.0.9"))[0]["Id"]
    assert pulled == old_id
    _podman("rmi", f"{registry}/arbx-web:0.0.9")


def _web(built: str, *env: str) -> subprocess.CompletedProcess[str]:
    port = free_port()
    args = ["run", "-d", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL"]
    args += [*(x for e in env for x in ("-e", e)), "-p", f"127.0.0.1:{port}:8080"]
    done = subprocess.run(
        ["podman", *args, f"localhost/arbx-web:{built}"], env=podman_env(), capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    name = done.stdout.strip()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            state = _podman("inspect", "--format", "{{.State.Running}}", name)
            if state != "true":  # refused its settings and exited
                logs = _podman("logs", name) + subprocess.run(
                    ["podman", "logs", name], env=podman_env(), capture_output=True, text=True,
                    check=False,
                ).stderr  # fmt: skip
                code = int(_podman("inspect", "--format", "{{.State.ExitCode}}", name))
                return subprocess.CompletedProcess(args, code, "", logs)
            try:
                url = f"http://127.0.0.1:{port}/config.js"
                with urllib.request.urlopen(url, timeout=2) as answer:
                    return subprocess.CompletedProcess(args, 0, answer.read().decode(), "")
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the web container neither served nor exited")
    finally:
        subprocess.run(
            ["podman", "rm", "-f", "-t", "0", name], env=podman_env(), capture_output=True,
            check=False,
        )  # fmt: skip


def test_the_dashboard_learns_the_api_address_at_start(built: str) -> None:
    assert 'api: ""' in _web(built).stdout  # this origin: nginx passes /api/ on
    served = _web(built, "ARBX_API_URL=https://api.example.org/arbx")
    assert 'window.ARBX_CONFIG = { api: "https://api.example.org/arbx" };' in served.stdout
    hostile = _web(built, 'ARBX_API_URL=https://x.example/";alert(1)//')
    assert hostile.returncode == 2
    assert hostile.stderr.strip().splitlines()[-1].startswith("arbx-web: error: ARBX_API_URL")
