"""The staging stack on podman, standing in for a Kubernetes namespace.

Pods are podman containers on a private network, labelled with their app and their
``rollouts_pod_template_hash`` (the image version: v1, v2, ...). What a cluster's API server
would hold (pods, Service selectors, rollout status) is kept in ``state.json`` under the run's
directory, so that the one-command rollbacks (``python -m rehearsal rollback ...``) act on the
stack a running rehearsal serves. Every command run against the stack is logged
(``commands.log``): the operations pages are checked against that log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rehearsal.manifests import Manifests, container
from rehearsal.stack import ROOT, build_images, free_port, podman_env, revision

RUN_DIR = ROOT / "build" / "rehearsal"
PATCHES = Path(__file__).resolve().parent / "patches"
PACKAGE_DIRS = {  # where a patch of each image applies
    "searcher": "/opt/arbx/lib/python3.11/site-packages",
    "web": "",  # paths from the root: the files and nginx.conf.template
}
PG_PASSWORD_BYTES = 16
KEYS_IN_POD = "/var/lib/arbx/keys"  # where the stack's keys directory is mounted
# the engine's keys on the devnet (files in the keys directory), by the variable naming each
DEVNET_KEYS = {"ARBX_SIGNING_KEY_FILE": "devnet-signing.key", "ARBX_RELAY_KEY_FILE": "relay.key"}
POD_USER = 10001  # the images' user: owner of the secret files it reads


class StackError(RuntimeError):
    """The stack could not do what was asked (one line, for the command line)."""


class Overdue(BaseException):
    """A run past its deadline. Not an Exception: every wait retries on StackError and
    OSError, and a deadline must end the run wherever it is."""


def run_dir() -> Path:
    """The directory of the stack in use (``ARBX_REHEARSAL_DIR`` moves it)."""
    return Path(os.environ.get("ARBX_REHEARSAL_DIR", str(RUN_DIR)))


def log_command(argv: list[str], where: Path | None = None) -> None:
    """Append a command the rehearsal ran to its log (one shell-quoted line)."""
    path = (where or run_dir()) / "commands.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(shlex.join(argv) + "\n")


def podman(*args: str, timeout: float = 300, check: bool = True) -> str:
    """Run podman with the project's containers.conf; its standard output."""
    try:
        done = subprocess.run(
            ["podman", *args], env=podman_env(), capture_output=True, text=True, check=False,
            timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise StackError(f"podman {args[0]}: no answer within {timeout:g} s") from None
    if check and done.returncode != 0:
        line = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise StackError(f"podman {' '.join(args[:2])}: {line}")
    return done.stdout


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    """GET ``url``: its status and the start of its body (OSError or ValueError when nothing
    answers)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return int(answer.status), answer.read(512)
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read(512)


def http_status(url: str, timeout: float = 2.0) -> int:
    """The HTTP status of GET ``url`` (0 when nothing answers)."""
    try:
        return _get(url, timeout)[0]
    except (OSError, ValueError):
        return 0


def http_answer(url: str, timeout: float = 2.0) -> str:
    """GET ``url``'s status and the first line of its body, or why nothing answered: what a
    failed readiness probe said, for the message that reports it."""
    try:
        status, body = _get(url, timeout)
    except (OSError, ValueError) as exc:
        return f"no answer ({type(exc).__name__}: {exc})"
    line = (body.decode("utf-8", "replace").strip().splitlines() or [""])[0]
    return f"{status} {line}".strip()


def wait_until(what: str, check: Any, timeout: float, every: float = 0.5) -> Any:
    """``check()``'s first truthy answer within ``timeout`` s, else StackError."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(StackError, OSError, ValueError):
            answer = check()
            if answer:
                return answer
        if time.monotonic() > deadline:
            raise StackError(f"{what}: not within {timeout:g} s")
        time.sleep(every)


# --- state ------------------------------------------------------------------------------------


@contextlib.contextmanager
def state_lock(directory: Path) -> Iterator[dict[str, Any]]:
    """The stack's state, locked for reading and changing; written back on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "state.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = directory / "state.json"
        state = json.loads(path.read_text()) if path.exists() else {}
        yield state
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        tmp.replace(path)


def read_state(directory: Path) -> dict[str, Any]:
    """A snapshot of the stack's state (StackError when no stack runs there)."""
    path = directory / "state.json"
    if not path.exists():
        raise StackError(
            f"no staging stack in {directory}: start one with `python -m rehearsal up`"
        )
    with (directory / "state.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        return dict(json.loads(path.read_text()))


# --- the registry and the versions of the images ------------------------------------------------


def registry_tags(registry: str, image: str) -> list[str]:
    """The tags the registry keeps for ``image`` (GET /v2/NAME/tags/list)."""
    url = f"http://{registry}/v2/{image}/tags/list"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            body = json.loads(answer.read(1_000_000))
    except (OSError, ValueError) as exc:
        raise StackError(f"the registry at {registry} does not answer: {exc}") from None
    return sorted(str(t) for t in body.get("tags") or [])


def image_tag() -> str:
    """The tag of the local images v1 is made of: this tree's revision, built now by
    ``make images`` (cached), unless ``ARBX_REHEARSAL_IMAGE_TAG`` names images built before."""
    given = os.environ.get("ARBX_REHEARSAL_IMAGE_TAG")
    if given:
        return given
    log_command(["make", "images", "REGISTRY="])
    build_images()
    return revision()


def publish_v1(registry: str, tag: str) -> None:
    """The local images tagged ``tag``, pushed as version v1."""
    for name in ("searcher", "web"):
        podman("push", "--quiet", "--tls-verify=false", f"localhost/arbx-{name}:{tag}",
               f"{registry}/arbx-{name}:v1")  # fmt: skip


def patched_files(patch: Path) -> list[str]:
    """The files a unified diff changes, relative to its tree (``-p1``)."""
    return [
        line.split()[1].split("/", 1)[1]
        for line in patch.read_text().splitlines()
        if line.startswith("+++ ")
    ]


def apply_patch(patch: Path, tree: Path, onto: str) -> None:
    """Apply ``patch`` to the files under ``tree``, exactly; StackError naming ``onto`` if it
    does not apply. No fuzz: a hunk whose context moved must fail here, not land elsewhere
    (v3's slower pipeline once landed inside a signature and the engine never started)."""
    done = subprocess.run(
        ["patch", "-p1", "--forward", "--fuzz=0", "--no-backup-if-mismatch", "-i", str(patch)],
        cwd=tree, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise StackError(f"{patch.name} does not apply to {onto}: {done.stdout.strip()[-200:]}")


def build_version(registry: str, image: str, version: str, patch: Path) -> float:
    """Version ``version`` of ``image``: a thin layer on v1 that carries the files ``patch``
    changes (applied to v1's files here), pushed to the registry; the seconds it took."""
    start = time.monotonic()
    base = f"{registry}/arbx-{image}:v1"
    prefix = PACKAGE_DIRS[image]
    files = patched_files(patch)
    with tempfile.TemporaryDirectory(prefix="arbx-layer-") as tmp:
        tree = Path(tmp) / "tree"
        made = podman("create", "--tls-verify=false", base).strip()
        try:
            for name in files:
                (tree / name).parent.mkdir(parents=True, exist_ok=True)
                podman("cp", f"{made}:{prefix}/{name}", str(tree / name))
        finally:
            podman("rm", "-f", made, check=False)
        apply_patch(patch, tree, "v1")
        containerfile = Path(tmp) / "Containerfile"
        lines = [f"FROM {base}"]
        lines += [f"COPY tree/{name} {prefix}/{name}" for name in files]
        if image == "searcher":
            lines.append(f"ENV ARBX_RELEASE={version}")
        lines.append(f'LABEL org.opencontainers.image.version="{version}"')
        containerfile.write_text("\n".join(lines) + "\n")
        tagged = f"{registry}/arbx-{image}:{version}"
        podman("build", "--quiet", "--format", "docker", "--network", "none", "--tls-verify=false",
               "-f", str(containerfile), "-t", tagged, tmp)  # fmt: skip
        podman("push", "--quiet", "--tls-verify=false", tagged)
    return time.monotonic() - start


# --- the stack ----------------------------------------------------------------------------------


@dataclass
class Stack:
    """The staging stack of one run directory."""

    directory: Path

    @property
    def state(self) -> dict[str, Any]:
        return read_state(self.directory)

    # infrastructure: network, registry, PostgreSQL, migrations, devnet, Prometheus -------------

    @classmethod
    def up(cls, directory: Path, manifests: Manifests) -> Stack:
        """Start the infrastructure the Rollouts run on; the stack."""
        if (directory / "state.json").exists():
            raise StackError(
                f"a stack already runs in {directory}: `python -m rehearsal down` first"
            )
        directory.mkdir(parents=True, exist_ok=True)
        tag = image_tag()
        prefix = f"arbxrh{uuid.uuid4().hex[:6]}"
        password = uuid.uuid4().hex[:PG_PASSWORD_BYTES]
        stack = cls(directory)
        with state_lock(directory) as state:
            state.update(prefix=prefix, network=prefix, pods={}, services={}, rollouts={},
                         containers=[], volumes=[])  # fmt: skip
        try:
            podman("network", "create", prefix)
            gateway = json.loads(podman("network", "inspect", prefix))[0]["subnets"][0]["gateway"]
            registry = f"127.0.0.1:{free_port()}"
            env = {**podman_env(), "REGISTRY_DIR": str(directory / "registry")}
            subprocess.run([str(ROOT / "deploy/images/registry.sh"), "start", registry], cwd=ROOT,
                           env=env, check=True, capture_output=True)  # fmt: skip
            db_url = f"postgresql+psycopg://arbx:{password}@arbx-postgres:5432/arbx"
            with state_lock(directory) as state:
                state.update(gateway=gateway, registry=registry, db_url=db_url)
            stack.infra("arbx-postgres", f"localhost/arbx-postgres:{tag}", [],
                        {"POSTGRES_PASSWORD": password}, tmpfs_data=True)  # fmt: skip
            wait_until("PostgreSQL", lambda: stack.sql("SELECT 1") == "1", 90)
            settings = stack.write_settings(manifests)
            # the devnet as the staging overlay runs it (its Deployment's args)
            devnet = container(manifests.get("Deployment", "arbx-devnet")["spec"]["template"])
            stack.infra("arbx-devnet", f"localhost/arbx-devnet:{tag}",
                        [str(a) for a in devnet.get("args", [])], {}, data_volume=True)  # fmt: skip
            publish_v1(registry, tag)
            # the migrations (the staging Job) from v1
            stack.migrate("v1", settings)
            stack.start_prometheus()
        except BaseException:
            stack.down()
            raise
        return stack

    def write_settings(self, manifests: Manifests) -> Path:
        """The ConfigMap arbx-settings as the files its pods mount."""
        names = [n for n in manifests.names("ConfigMap") if n.startswith("arbx-settings")]
        if not names:
            raise StackError("the staging overlay renders no arbx-settings ConfigMap")
        data = manifests.get("ConfigMap", names[0]).get("data", {})
        folder = self.directory / "settings"
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in data.items():
            (folder / name).write_text(str(text))
            (folder / name).chmod(0o644)
        folder.chmod(0o755)
        return folder

    def infra(self, name: str, image: str, args: list[str], env: dict[str, str],
              tmpfs_data: bool = False, data_volume: bool = False) -> None:  # fmt: skip
        """A container of the infrastructure, reachable by ``name`` on the network."""
        state = self.state
        full = f"{state['prefix']}-{name}"
        flags = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL"]
        if tmpfs_data:
            flags += ["-v", f"{full}-data:/var/lib/postgresql/data"]  # a volume: owned by its user
        if data_volume:
            flags += ["-v", "/var/lib/arbx"]
        for key, value in env.items():
            flags += ["-e", f"{key}={value}"]
        podman("run", "-d", "--name", full, "--network", state["network"],
               "--network-alias", name, "--label", f"arbx.rehearsal={state['prefix']}",
               *flags, image, *args)  # fmt: skip
        with state_lock(self.directory) as st:
            st["containers"].append(full)

    def sql(self, query: str) -> str:
        """One value from the stack's PostgreSQL."""
        name = f"{self.state['prefix']}-arbx-postgres"
        out = podman("exec", name, "/usr/lib/postgresql/15/bin/psql", "-h", "/tmp", "-U", "arbx",
                     "-d", "arbx", "-tAc", query, timeout=30)  # fmt: skip
        return out.strip()

    def searcher_flags(self, version: str) -> list[str]:
        """The podman flags of a searcher container of ``version`` (settings, secret, release)."""
        state = self.state
        return [
            "--network", state["network"], "--read-only", "--tmpfs", "/tmp",
            "-v", "/var/lib/arbx", "--cap-drop", "ALL",
            "-v", f"{self.directory / 'settings'}:/etc/arbx:ro",
            "-e", f"ARBX_DATABASE_URL={state['db_url']}", "-e", f"ARBX_RELEASE={version}",
        ]  # fmt: skip

    def image(self, kind: str, version: str) -> str:
        """The registry reference of image ``kind`` (searcher, web) at ``version``."""
        return f"{self.state['registry']}/arbx-{kind}:{version}"

    def migrate(self, version: str, settings: Path) -> None:
        """``arbx db upgrade`` from ``version``'s image (the migration Job)."""
        del settings
        image = self.image("searcher", version)
        wait_until("the migrations", lambda: podman(
            "run", "--rm", "--tls-verify=false", *self.searcher_flags(version), image,
            "db", "upgrade", timeout=120,
        ) is not None, 90, every=2)  # fmt: skip

    def start_prometheus(self) -> None:
        """Prometheus on loopback, scraping the pods listed in its targets file (each target
        labelled with its app and ``rollouts_pod_template_hash``)."""
        folder = self.directory / "prometheus"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "targets.json").write_text("[]")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "pods",
                "scrape_timeout": "1s",
                "file_sd_configs": [{"files": [str(folder / "targets.json")],
                                     "refresh_interval": "1s"}],
            }],
        }  # fmt: skip
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        binary = shutil.which("prometheus")
        if binary is None:
            raise StackError("prometheus not found: run make prometheus first")
        log = (folder / "log").open("a")
        process = subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--storage.tsdb.retention.time=1d"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        address = f"http://127.0.0.1:{port}"
        with state_lock(self.directory) as state:
            state.update(prometheus=address, prometheus_pid=process.pid)
        wait_until("Prometheus", lambda: http_status(f"{address}/-/ready") == 200, 60)

    # pods ------------------------------------------------------------------------------------

    def run_pod(self, app: str, version: str, template: dict[str, Any]) -> dict[str, Any]:
        """A pod of ``app`` (its Rollout's pod template) at ``version``; its record."""
        state = self.state
        spec = container(template)
        name = f"{state['prefix']}-{app}-{version}-{uuid.uuid4().hex[:5]}"
        kind = "web" if "arbx-web" in str(spec.get("image", "")) else "searcher"
        image = self.image(kind, version)
        flags = ["--name", name, "--label", f"arbx.rehearsal={state['prefix']}",
                 "--label", f"app={app}",
                 "--label", f"rollouts-pod-template-hash={version}"]  # fmt: skip
        if kind == "web":
            # the API Service's address on the network (the stand-in's, in place of its DNS name)
            upstream = f"http://{state['gateway']}:{state.get('api_port', 8000)}"
            flags += ["--network", state["network"], "--read-only", "--tmpfs", "/tmp",
                      "--cap-drop", "ALL", "-e", f"ARBX_API_UPSTREAM={upstream}"]  # fmt: skip
            args: list[str] = []
        else:
            flags += self.searcher_flags(version)
            command = [str(c) for c in spec.get("command", [])]
            args = [str(a) for a in spec.get("args", [])]
            if command:
                flags += ["--entrypoint", command[0]]
                args = command[1:] + args
            for env in spec.get("env", []) or []:
                if "value" in env and env["name"] != "ARBX_DATABASE_URL":
                    flags += ["-e", f"{env['name']}={env['value']}"]
            keys = state.get("engine_keys")
            if keys and app == state.get("engine_app"):  # the engine's Secret: its keys alone
                flags += ["-v", f"{self.directory / 'keys'}:{KEYS_IN_POD}:ro"]
                flags += [f"-e{name}={value}" for name, value in keys.items()]
        podman("run", "-d", "--tls-verify=false", *flags, image, *args, timeout=180)
        ip = json.loads(podman("inspect", name))[0]["NetworkSettings"]["Networks"][
            state["network"]
        ]["IPAddress"]
        port = int((spec.get("ports") or [{"containerPort": 8000}])[0]["containerPort"])
        record = {"name": name, "app": app, "version": version, "ip": ip, "port": port,
                  "kind": kind, "started": time.time()}  # fmt: skip
        with state_lock(self.directory) as st:
            st["pods"][name] = record
        self.write_targets()
        return record

    def why_not_ready(self, pod: dict[str, Any], path: str, timeout: float) -> str:
        """What a pod that did not become ready says: its readiness probe's answer now, and
        its container's log, kept in ``logs/<pod>.log`` under the run directory (the pod is
        removed when its release is rolled back), with the log's last line."""
        answer = http_answer(f"http://{pod['ip']}:{pod['port']}{path}", timeout)
        try:
            log = podman("logs", "--tail", "200", pod["name"], check=True, timeout=30)
        except StackError as exc:
            return f"its probe: {answer}; its log: none ({exc})"
        kept = self.directory / "logs" / f"{pod['name']}.log"
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(log)
        last = (log.strip().splitlines() or ["(empty)"])[-1][:200]
        return f"its probe: {answer}; its log: {kept} (last line: {last})"

    def stop_pod(self, name: str, grace: float = 30.0) -> None:
        """SIGTERM, then after ``grace`` s SIGKILL (the pod's terminationGracePeriodSeconds)."""
        with state_lock(self.directory) as state:
            state["pods"].pop(name, None)
        podman("stop", "-t", str(int(grace)), name, check=False, timeout=grace + 30)
        podman("rm", "-f", "-v", name, check=False)
        self.write_targets()

    def pods(self, app: str, version: str | None = None) -> list[dict[str, Any]]:
        """The pods of ``app`` (of one version), oldest first."""
        pods = [p for p in self.state["pods"].values() if p["app"] == app]
        if version is not None:
            pods = [p for p in pods if p["version"] == version]
        return sorted(pods, key=lambda p: p["started"])

    def write_targets(self) -> None:
        """Prometheus's targets: every pod that serves metrics, with its labels."""
        state = self.state
        targets = []
        for pod in state["pods"].values():
            if pod["kind"] == "web":
                continue
            targets.append({
                "targets": [f"{pod['ip']}:{pod['port']}"],
                "labels": {"job": pod["app"], "pod": pod["name"],
                           "rollouts_pod_template_hash": pod["version"]},
            })  # fmt: skip
        path = self.directory / "prometheus" / "targets.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(targets))
        tmp.replace(path)

    def ready(self, pod: dict[str, Any], path: str, timeout: float) -> bool:
        """The pod's readiness probe (HTTP GET on its address within the probe's timeout)
        passes."""
        return 200 <= http_status(f"http://{pod['ip']}:{pod['port']}{path}", timeout) < 400

    # operators' commands ----------------------------------------------------------------------

    def arbx(
        self, args: list[str], version: str | None = None, timeout: float = 300
    ) -> tuple[int, str, str]:
        """``arbx ARGS`` in a searcher container of ``version`` (the API's stable one) on the
        staging network, with the settings, the database and the stack's keys directory; the
        exit status, standard output and standard error."""
        state = self.state
        version = version or state["rollouts"].get("arbx-api", {}).get("stable", "v1")
        flags = [*self.searcher_flags(version), "-v", f"{self.keys()}:{KEYS_IN_POD}"]
        for name in ("ARBX_KEYSTORE_PASSWORD", "ARBX_RELAY_KEYSTORE_PASSWORD",
                     "ARBX_SIGNING_KEY_FILE"):  # fmt: skip
            if name in os.environ:
                flags += ["-e", name]
        try:
            done = subprocess.run(
                ["podman", "run", "--rm", "-i", "--tls-verify=false", "--no-healthcheck", *flags,
                 "--entrypoint", "arbx", self.image("searcher", version), *args],
                env=podman_env(), capture_output=True, text=True, check=False, timeout=timeout,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise StackError(f"arbx {' '.join(args[:2])}: no end within {timeout:g} s") from None
        return done.returncode, done.stdout, done.stderr

    def keys(self) -> Path:
        """The stack's keys directory (mounted at ``KEYS_IN_POD`` where a key is needed)."""
        keys = self.directory / "keys"
        keys.mkdir(exist_ok=True)
        keys.chmod(0o777)
        return keys

    def write_devnet_keys(self) -> dict[str, str]:
        """The engine's Secret for the devnet: its signing key (anvil account 9: play money)
        and a fresh relay key, each a file of the pods' user, mode 0600, in the keys
        directory, emptied first of an earlier run's keystores (the rotation's ``key new``
        rightly refuses to overwrite one); the variables that name them inside a pod."""
        from eth_account import Account  # noqa: PLC0415

        from arbx.devnet.deployment import (  # noqa: PLC0415
            ANVIL_MNEMONIC,
            SEARCHER_ACCOUNT_INDEX,
            write_searcher_key,
        )

        Account.enable_unaudited_hdwallet_features()
        path = f"m/44'/60'/0'/0/{SEARCHER_ACCOUNT_INDEX}"
        address = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=path).address
        keys = self.keys()
        for earlier in keys.iterdir():  # a new stack's keys: none of an earlier run's (rotated)
            if earlier.is_file() or earlier.is_symlink():
                earlier.unlink()
        write_searcher_key(keys / DEVNET_KEYS["ARBX_SIGNING_KEY_FILE"], address)
        relay = keys / DEVNET_KEYS["ARBX_RELAY_KEY_FILE"]
        fd = os.open(relay, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"0x{bytes(Account.create().key).hex()}\n")
        for name in DEVNET_KEYS.values():
            os.chmod(keys / name, 0o600)
            os.chown(keys / name, POD_USER, POD_USER)
        return {var: f"{KEYS_IN_POD}/{name}" for var, name in DEVNET_KEYS.items()}

    def go_live(self, executor: str, mode: str, keys: dict[str, str], engine_app: str) -> None:
        """The staging settings in ``mode`` with ``executor``, as an operator edits the
        overlay's settings for a live engine, and the engine's pods given ``keys`` (variables
        naming the key files)."""
        path = self.directory / "settings" / "settings.toml"
        text = path.read_text()
        lines = text.splitlines()
        top = next((i for i, line in enumerate(lines) if line.startswith("[")), len(lines))
        modes = [i for i, line in enumerate(lines[:top]) if line.startswith("mode = ")]
        tables = [i for i, line in enumerate(lines) if line.strip() == "[execution]"]
        if len(modes) != 1 or len(tables) != 1:
            raise StackError(f"{path}: no single top-level mode and [execution] table to edit")
        lines[modes[0]] = f'mode = "{mode}"'
        lines.insert(tables[0] + 1, f'executor = "{executor}"')
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.chmod(0o644)
        tmp.replace(path)
        with state_lock(self.directory) as state:
            state.update(engine_keys=keys, engine_app=engine_app, executor=executor)

    def backup(self, path: Path) -> int:
        """The database in PostgreSQL's custom format (pg_dump -Fc) into ``path`` (a relative
        path is under the stack's directory); its size."""
        path = self.directory / path
        name = f"{self.state['prefix']}-arbx-postgres"
        with path.open("wb") as out:
            done = subprocess.run(
                ["podman", "exec", name, "/usr/lib/postgresql/15/bin/pg_dump", "-h", "/tmp",
                 "-U", "arbx", "-d", "arbx", "-Fc"],
                env=podman_env(), stdout=out, stderr=subprocess.PIPE, check=False, timeout=300,
            )  # fmt: skip
        if done.returncode != 0:
            raise StackError(f"pg_dump: {done.stderr.decode(errors='replace').strip()[-200:]}")
        return path.stat().st_size

    def restore(self, path: Path) -> None:
        """The database as ``path`` (a backup) holds it: every object dropped and restored."""
        path = self.directory / path
        if not path.is_file():
            raise StackError(f"{path}: no such backup")
        name = f"{self.state['prefix']}-arbx-postgres"
        with path.open("rb") as source:
            done = subprocess.run(
                ["podman", "exec", "-i", name, "/usr/lib/postgresql/15/bin/pg_restore", "-h",
                 "/tmp", "-U", "arbx", "-d", "arbx", "--clean", "--if-exists",
                 "--single-transaction", "--no-owner"],
                env=podman_env(), stdin=source, capture_output=True, check=False, timeout=300,
            )  # fmt: skip
        if done.returncode != 0:
            raise StackError(f"pg_restore: {done.stderr.decode(errors='replace').strip()[-200:]}")

    # teardown --------------------------------------------------------------------------------

    def down(self) -> None:
        """Remove every container, the network, the registry and Prometheus of the stack."""
        path = self.directory / "state.json"
        if not path.exists():
            return
        state = read_state(self.directory)
        names = podman("ps", "-a", "--filter", f"label=arbx.rehearsal={state['prefix']}",
                       "--format", "{{.Names}}", check=False).split()  # fmt: skip
        for name in names:
            podman("rm", "-f", "-v", "-t", "2", name, check=False)
        podman("network", "rm", "-f", state["network"], check=False)
        podman("volume", "rm", "-f", f"{state['prefix']}-arbx-postgres-data", check=False)
        # the versions pulled from this stack's registry (its address dies with it)
        pulled = podman("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).split()
        mine = [ref for ref in pulled if ref.startswith(f"{state['registry']}/")]
        if mine:
            podman("rmi", "-f", *mine, check=False)
        pid = state.get("prometheus_pid")
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 15)
        env = {**podman_env(), "REGISTRY_DIR": str(self.directory / "registry")}
        subprocess.run([str(ROOT / "deploy/images/registry.sh"), "stop", state["registry"]],
                       cwd=ROOT, env=env, check=False, capture_output=True)  # fmt: skip
        path.rename(self.directory / "state.last.json")
