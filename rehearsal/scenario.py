"""The rehearsal: the staging stack, the releases of v2 and v3, the rollbacks, the report."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rehearsal.cluster import (
    PATCHES,
    Stack,
    StackError,
    build_version,
    log_command,
    podman,
    read_state,
    registry_tags,
    state_lock,
)
from rehearsal.controller import PROMOTED, ROLLED_BACK, Controller, Result
from rehearsal.loadgen import Load, Target
from rehearsal.manifests import Manifests, readiness
from rehearsal.service import Balancer, Service
from rehearsal.stack import ROOT, free_port

# the Rollouts each component name stands for (the rollback command's first argument)
COMPONENTS = {"api": "arbx-api", "web": "arbx-web", "engine": "arbx-engine"}
REPORT_KEYS = ("releases", "stages", "double_signatures", "records_lost", "trades_lost")


@dataclass
class Options:
    directory: Path
    scale: float = 0.1  # the rehearsal's clock: durations of the manifests times this
    short: bool = False  # the short form: one canary that passes, one rolled back, one by hand
    keep: bool = False  # leave the stack running at the end
    log: Callable[[str], None] = print


@dataclass
class Rehearsal:
    options: Options
    manifests: Manifests = field(default_factory=Manifests.staging)
    releases: list[dict[str, Any]] = field(default_factory=list)
    stack: Stack | None = None
    balancer: Balancer | None = None
    controller: Controller | None = None
    load: Load | None = None
    started: float = field(default_factory=time.monotonic)
    drill_results: dict[str, Any] = field(default_factory=dict)
    exits: list[dict[str, Any]] = field(default_factory=list)
    engine_records: dict[str, Any] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)

    def log(self, line: str) -> None:
        stamp = time.monotonic() - self.started
        self.options.log(f"[{stamp:6.1f}s] {line}")

    # the stack --------------------------------------------------------------------------------

    def up(self) -> None:
        directory = self.options.directory
        self.log("staging stack: network, registry, PostgreSQL, devnet, migrations, Prometheus")
        self.stack = Stack.up(directory, self.manifests)
        with state_lock(directory) as state:
            state["scale"] = self.options.scale  # the clock the one-command rollbacks keep
        registry = self.stack.state["registry"]
        for image, version in (("searcher", "v2"), ("searcher", "v3"), ("web", "v2")):
            took = build_version(registry, image, version, PATCHES / f"{image}-{version}.patch")
            self.log(f"built and pushed arbx-{image}:{version} ({took:.1f} s)")
        self.log(f"registry keeps arbx-searcher {registry_tags(registry, 'arbx-searcher')}")
        self.balancer = Balancer(self.stack, self.log)
        self.balancer.start()
        hosts = self._services()
        self.controller = Controller(self.stack, self.manifests, self.options.scale, self.log,
                                     hosts)  # fmt: skip

    def _services(self) -> dict[str, str]:
        """A load balancer for every Service that selects a Rollout's pods (headless ones
        excepted); the cluster DNS names of each, mapped to its address."""
        assert self.stack is not None
        assert self.balancer is not None
        state = self.stack.state
        apps: dict[str, str] = {}
        for name in self.manifests.names("Rollout"):
            controller = Controller(self.stack, self.manifests)
            apps[controller.app(name)] = name
        hosts: dict[str, str] = {}
        for service in self.manifests.objects:
            if service.get("kind") != "Service":
                continue
            spec = service.get("spec", {})
            app = (spec.get("selector") or {}).get("app.kubernetes.io/name")
            if app not in apps or spec.get("clusterIP") == "None":
                continue
            name = service["metadata"]["name"]
            namespace = service["metadata"].get("namespace", "default")
            port = int(spec["ports"][0]["port"])
            template = Controller(self.stack, self.manifests).template(apps[app])
            path, period, timeout = readiness(template)
            listen = [("127.0.0.1", free_port())]
            if name == "arbx-api":  # what the dashboard's nginx reaches the API at
                listen.append((state["gateway"], free_port()))
            self.balancer.add(Service(name, listen, path, period, timeout))
            with state_lock(self.stack.directory) as st:
                st["services"][name] = {"selector": {"app": app}, "address": listen[0]}
                if name == "arbx-api":
                    st["api_port"] = listen[1][1]
            for host in (f"{name}.{namespace}.svc.cluster.local:{port}", f"{name}:{port}"):
                hosts[host] = f"{listen[0][0]}:{listen[0][1]}"
        return hosts

    def address(self, service: str) -> str:
        assert self.stack is not None
        host, port = self.stack.state["services"][service]["address"]
        return f"http://{host}:{port}"

    def token(self) -> str:
        assert self.stack is not None
        pod = self.stack.pods("arbx-api")[0]
        argv = [
            "arbx",
            "token",
            "add",
            "--name",
            f"rehearsal{int(time.time())}",
            "--role",
            "viewer",
        ]
        return podman("exec", pod["name"], *argv).strip()

    # releases ---------------------------------------------------------------------------------

    def release(self, component: str, version: str, full: bool = False) -> Result:
        """Release ``version`` of ``component`` under load; its entry in the report."""
        assert self.controller is not None
        assert self.load is not None
        mark = self.load.snapshot()
        result = self.controller.set_image(COMPONENTS[component], version, full)
        self._record(component, result, self.load.errors_since(mark))
        return result

    def _record(self, component: str, result: Result, errors: int) -> None:
        entry = {
            "version": result.version,
            "component": component,
            "strategy": result.strategy,
            "outcome": result.outcome,
            "detect_s": result.detect_s,
            "rollback_s": result.rollback_s,
            "client_errors": errors,
            "seconds": round(result.finished - result.started, 1),
            "message": result.message,
            "analyses": [{k: a[k] for k in ("name", "phase", "message")} for a in result.analyses],
        }
        self.releases.append(entry)
        self.log(f"release {component} {result.version}: {result.outcome}, {errors} client errors")

    def operate(self, *args: str, env: dict[str, str] | None = None) -> str:
        """``python -m rehearsal ARGS`` as an operator runs it (logged); its output (StackError
        when it fails)."""
        argv = [sys.executable, "-m", "rehearsal", *args]
        log_command(["python", "-m", "rehearsal", *args], self.options.directory)
        extra = {"ARBX_REHEARSAL_DIR": str(self.options.directory), **(env or {})}
        done = subprocess.run(argv, cwd=ROOT, env={**_env(), **extra}, capture_output=True,
                              text=True, check=False, timeout=900)  # fmt: skip
        out = done.stdout.strip()
        for line in out.splitlines()[-4:]:
            self.log(f"  | {line[:160]}")
        self.exits.append({"command": " ".join(args), "exit": done.returncode})
        if done.returncode != 0:
            raise StackError(f"{' '.join(args)}: {done.stderr.strip()[-300:]}")
        return out

    def manual(self, component: str, version: str) -> None:
        """The one-command rollback, run as an operator runs it, under load."""
        assert self.load is not None
        assert self.controller is not None
        mark = self.load.snapshot()
        start = time.monotonic()
        self.operate("rollback", component, "--to", version)
        took = time.monotonic() - start
        kind, _ = self.controller.strategy(COMPONENTS[component])
        self.releases.append({
            "version": version, "component": component, "strategy": f"{kind}, by hand",
            "outcome": PROMOTED, "detect_s": None, "rollback_s": round(took, 1),
            "client_errors": self.load.errors_since(mark), "seconds": round(took, 1),
            "message": "python -m rehearsal rollback", "analyses": [],
        })  # fmt: skip
        self.log(f"rollback {component} --to {version}: {took:.0f} s")

    def drills(self) -> dict[str, Any]:
        """The operations pages' other commands: status, stages, the kill switch, new keys,
        a database backup restored."""
        assert self.stack is not None
        out: dict[str, Any] = {}
        self.operate("status")
        stage = self.operate("arbx", "stage", "status", "--json")
        out["stage_status"] = json.loads(stage) if stage.startswith("{") else stage
        self.operate("arbx", "kill", "--reason", "rehearsal")
        out["killed"] = self.operate("arbx", "risk")
        self.operate("arbx", "unkill")
        secret = {"ARBX_KEYSTORE_PASSWORD": uuid.uuid4().hex,
                  "ARBX_RELAY_KEYSTORE_PASSWORD": uuid.uuid4().hex}  # fmt: skip
        for role in ("signing", "relay"):
            keystore = f"/var/lib/arbx/keys/{role}-next.json"
            made = self.operate("arbx", "key", "new", "--keystore", keystore, "--role", role,
                                env=secret)  # fmt: skip
            out[f"{role}_key"] = made.splitlines()[-1] if made else ""
        tables = ("runs", "blocks", "opportunities", "api_tokens")
        before = {t: self._count(t) for t in tables}
        self.operate("db", "backup", "arbx.dump")
        self.operate("db", "restore", "arbx.dump")
        after = {t: self._count(t) for t in tables}
        out["restore"] = {"before": before, "after": after}
        out["restore_rows_lost"] = sum(max(0, before[t] - after[t]) for t in tables)
        return out

    def engine_blocks(self) -> dict[str, Any]:
        """What the engines recorded against what the chain says: every block number from the
        first recorded to the newest must be there once (canonical), and the newest near the
        chain's head."""
        assert self.stack is not None
        row = self.stack.sql(
            "SELECT coalesce(min(number), 0), coalesce(max(number), -1), count(DISTINCT number) "
            "FROM blocks WHERE NOT reorged"
        )
        first, last, held = (int(v) for v in row.split("|"))
        missing = max(0, last - first + 1 - held)
        head = self._head()
        self.log(f"engine records: blocks {first}..{last}, {missing} missing, chain head {head}")
        return {"first": first, "last": last, "held": held, "missing": missing, "head": head}

    def _head(self) -> int | None:
        assert self.stack is not None
        name = f"{self.stack.state['prefix']}-arbx-devnet"
        ip = json.loads(podman("inspect", name))[0]["NetworkSettings"]["Networks"]
        address = next(iter(ip.values()))["IPAddress"]
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []})
        request = urllib.request.Request(f"http://{address}:8545", body.encode(),
                                         {"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return int(json.loads(answer.read(10000))["result"], 16)
        except (OSError, ValueError, KeyError):
            return None

    def signatures(self) -> dict[str, Any]:
        """``arbx release audit --json``: signing epochs that overlapped and transactions signed
        outside their epoch (double signatures), when the searcher has the command."""
        assert self.stack is not None
        code, out, err = self.stack.arbx(["release", "audit", "--json"])
        if code == 2 and "invalid choice" in err:
            return {"measured": False, "why": "this searcher has no `arbx release audit`"}
        log_command(["python", "-m", "rehearsal", "arbx", "release", "audit", "--json"],
                    self.options.directory)  # fmt: skip
        try:
            audit = json.loads(out)
        except ValueError:
            return {"measured": False, "why": f"exit {code}: {(err or out).strip()[-200:]}"}
        return {"measured": True, "exit": code, "audit": audit}

    def _count(self, table: str) -> int:
        assert self.stack is not None
        value = self.stack.sql(f"SELECT count(*) FROM {table}")  # table: one of ours
        return int(value) if value.isdigit() else 0

    # the scenario ------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        try:
            self.up()
            assert self.stack is not None
            assert self.controller is not None
            self.controller.deploy("arbx-api", "v1")
            if not self.options.short:
                self.controller.deploy("arbx-web", "v1")
                self.controller.deploy("arbx-engine", "v1")
            token = self.token()
            # the API's clients ask who they are (one indexed lookup: the API's own cost, not
            # the database's); the dashboard's clients load the page and the engine's status
            targets = [Target("api", f"{self.address('arbx-api')}/api/v1/whoami", token)]
            if not self.options.short:
                dashboard = self.address("arbx-dashboard")
                targets += [
                    Target("dashboard", f"{dashboard}/", expect=b"arbx dashboard"),
                    Target("dashboard-api", f"{dashboard}/api/v1/status", token),
                ]
            self.load = Load(targets).start()
            self.release("api", "v2")
            if not self.options.short:
                self.release("web", "v2")
            self.release("api", "v3")
            self.manual("api", "v1")
            if not self.options.short:
                self.manual("web", "v1")
                self.manual("api", "v2")
                self.manual("web", "v2")
            if not self.options.short:
                self.engine_records = self.engine_blocks()
            self.audit = self.signatures()
            self.drill_results = self.drills()
            return self.report()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the clients, the Services and (unless kept) the stack."""
        try:
            if self.load is not None:
                self.load.stop()
            if self.balancer is not None and not self.options.keep:
                self.balancer.stop()
        finally:
            if self.stack is not None and not self.options.keep:
                self.stack.down()

    def report(self) -> dict[str, Any]:
        assert self.load is not None
        report: dict[str, Any] = {
            "releases": self.releases,
            "stages": _stages(self.drill_results.get("stage_status")),
            "double_signatures": _double_signatures(self.audit),
            "records_lost": self.drill_results.get("restore_rows_lost", 0)
            + self.engine_records.get("missing", 0),
            "trades_lost": None,
            "requests": dict(self.load.requests),
            "client_error_samples": list(self.load.samples),
            "answered_by": dict(self.load.releases),
            "scale": self.options.scale,
            "seconds": round(time.monotonic() - self.started, 1),
            "operations": self.drill_results,
            "engine_records": self.engine_records,
            "signatures": self.audit,
            "trades": "none in shadow mode: the staging engine has no signing key",
            "commands": self.exits,
        }
        path = self.options.directory / "report.json"
        path.write_text(json.dumps(report, indent=2))
        return report


def _stages(status: Any) -> list[dict[str, Any]]:
    """The capital stages as ``arbx stage status --json`` shows them: the evidence of the gate
    to the next stage (no promotion happens while the staging engine runs without a key)."""
    if not isinstance(status, dict):
        return []
    return [{
        "from": status.get("stage"), "to": status.get("next"), "outcome": "not promoted",
        "why": status.get("note") or status.get("decision"), "evidence": status,
    }]  # fmt: skip


def _double_signatures(audit: dict[str, Any]) -> int | None:
    """Overlapping epochs plus transactions signed outside their epoch, from the audit."""
    if not audit.get("measured"):
        return None
    body = audit["audit"]
    counted = 0
    for key in ("problems",):
        value = body.get(key) if isinstance(body, dict) else None
        if isinstance(value, list):
            counted += len(value)
        elif isinstance(value, int):
            counted += value
    return counted


def _env() -> dict[str, str]:
    import os  # noqa: PLC0415

    return dict(os.environ)


def table(report: dict[str, Any]) -> str:
    """The report's releases as a table, then its totals."""
    head = ("component", "version", "strategy", "outcome", "detect_s", "rollback_s", "errors")
    rows = [head] + [
        (r["component"], r["version"], r["strategy"], r["outcome"],
         "-" if r["detect_s"] is None else f"{r['detect_s']:.1f}",
         "-" if r["rollback_s"] is None else f"{r['rollback_s']:.1f}", str(r["client_errors"]))
        for r in report["releases"]
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    for stage in report["stages"]:
        lines.append(f"stages: {stage.get('outcome')} ({str(stage.get('why'))[:100]})")
    for key in ("double_signatures", "records_lost", "trades_lost"):
        value = report[key]
        lines.append(f"{key}: {'not measured' if value is None else value}")
    return "\n".join(lines)


def status_lines(directory: Path) -> list[str]:
    """The Rollouts of a running stack, one line each."""
    state = read_state(directory)
    lines = []
    for name, rollout in sorted(state["rollouts"].items()):
        versions: dict[str, int] = {}
        for pod in state["pods"].values():
            if pod["app"] == rollout.get("app"):
                versions[pod["version"]] = versions.get(pod["version"], 0) + 1
        pods = ", ".join(f"{v}: {n}" for v, n in sorted(versions.items())) or "none"
        lines.append(f"{name}: {rollout.get('phase')} stable {rollout.get('stable')} pods {pods}"
                     + (f" ({rollout['message']})" if rollout.get("message") else ""))  # fmt: skip
    return lines


__all__ = ["COMPONENTS", "REPORT_KEYS", "ROLLED_BACK", "Options", "Rehearsal", "table"]
