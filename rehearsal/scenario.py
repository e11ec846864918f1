"""The rehearsal: the staging stack, the releases of v2 and v3, the rollbacks, the report."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rehearsal.cluster import (
    PATCHES,
    Overdue,
    Stack,
    StackError,
    build_version,
    log_command,
    podman,
    read_state,
    registry_tags,
    state_lock,
    wait_until,
)
from rehearsal.controller import PROMOTED, ROLLED_BACK, Controller, Result
from rehearsal.loadgen import Load, Target
from rehearsal.manifests import Manifests, readiness
from rehearsal.service import Balancer, Service
from rehearsal.stack import ROOT, free_port

# the Rollouts each component name stands for (the rollback command's first argument)
COMPONENTS = {"api": "arbx-api", "web": "arbx-web", "engine": "arbx-engine"}
REPORT_KEYS = ("releases", "stages", "double_signatures", "records_lost", "trades_lost")
CONFIG = ("--config", "/etc/arbx/settings.toml")  # the settings as the pods mount them
SETTLE_BLOCKS = 10  # a bundle still open this far past its target block is lost
STAGE_TIMEOUT = 600.0  # seconds for a gate on the devnet (a block a second, small gates; at
# load average 31 the two inclusions of the limited gate took over 300 s)
SHORT_DEADLINE = 1800.0  # seconds for the whole short form (make test): 148 s on a quiet machine,
# each gate alone may wait STAGE_TIMEOUT; past it the run stops with one line and the stack goes
MAX_LOOKUPS = 20_000  # signatures without a bundle record looked up on the chain
MAX_RPC_ANSWER = 10_000_000  # bytes of one JSON-RPC answer from the devnet


@dataclass
class Options:
    directory: Path
    scale: float = 0.1  # the rehearsal's clock: durations of the manifests times this
    short: bool = False  # the short form: one canary that passes, one rolled back, one by hand
    keep: bool = False  # leave the stack running at the end
    deadline: float | None = None  # seconds for the whole run; the short form's is SHORT_DEADLINE
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
    stages: list[dict[str, Any]] = field(default_factory=list)
    closing: threading.Event = field(default_factory=threading.Event)
    engine_epochs: dict[str, Any] = field(default_factory=dict)
    trade_records: dict[str, Any] = field(default_factory=dict)

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
        versions = [("searcher", "v2"), ("searcher", "v3")]
        if not self.options.short:  # the short form releases no dashboard
            versions.append(("web", "v2"))
        for image, version in versions:
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
            "analyses": [
                {k: a[k] for k in ("name", "phase", "message", "jobs")} for a in result.analyses
            ],
        }
        self.releases.append(entry)
        self.log(f"release {component} {result.version}: {result.outcome}, {errors} client errors")

    def operate(self, *args: str, env: dict[str, str] | None = None) -> str:
        """``python -m rehearsal ARGS`` as an operator runs it (logged); its output (StackError
        when it fails)."""
        argv = [sys.executable, "-m", "rehearsal", *args]  # it logs itself in commands.log
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

    # the capital stages ------------------------------------------------------------------------

    def stage_path(self) -> None:
        """The engine v1 live on the devnet: the operators' ceiling at shadow, the executor
        deployed from the devnet's key, the settings live; the engine starts at stage 0 and
        passes the shadow gate, the ceiling is raised (the promotion command) and it enters
        limited 100, passes that gate and scales one step to limited 1000 by itself. Each
        promotion goes into ``stages`` with the gate ``arbx stage status`` showed before it and
        the evidence the engine stored with it."""
        assert self.stack is not None
        assert self.controller is not None
        self.operate("arbx", "mode", "set", "shadow", *CONFIG)
        keys = self.stack.write_devnet_keys()
        key = {"ARBX_SIGNING_KEY_FILE": keys["ARBX_SIGNING_KEY_FILE"]}
        executor = self.operate("arbx", "executor", "deploy", *CONFIG, env=key)
        executor = executor.splitlines()[-1].strip()
        self.operate("live", "--executor", executor)
        self.controller.deploy("arbx-engine", "v1")  # a standby (components/signing)
        self.operate("arbx", "release", "promote", "--to", "v1", *CONFIG)  # the chain's first
        gate = self._stage_status(lambda s: s["stage"]["index"] == 0 and _passed(s))
        command = shlex.join(["arbx", "mode", "set", "limited", *CONFIG])
        self.operate("arbx", "mode", "set", "limited", *CONFIG)
        final = self._stage_status(lambda s: s["stage"]["index"] >= 2)
        names = {s["index"]: s["name"] for s in (gate["stage"], gate["next"], final["stage"])}
        history = final.get("history", [])
        for index, by in ((1, command), (2, "none: the engine's own gate (the ceiling allows)")):
            change = next((c for c in history if c["kind"] == "promotion"
                           and c["to_stage"] == index), None)  # fmt: skip
            entry = {
                "from": names.get(index - 1), "to": names.get(index),
                "outcome": "promoted" if change else "not promoted", "command": by,
                "key": final["key"], "at": change and change["at"],
                "reason": change and change["reason"],
                "evidence": change and change["evidence"],
                # what `arbx stage status` showed the operator before raising the ceiling
                "gate_shown": _gate(gate) if index == 1 else None,
            }  # fmt: skip
            self.stages.append(entry)
            self.log(f"stage: {entry['from']} -> {entry['to']}: {entry['outcome']} ({by})")

    def _stage_status(self, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """``arbx stage status --json`` once ``done`` holds for it (run as operators run it)."""
        assert self.stack is not None
        stack = self.stack

        def look() -> dict[str, Any] | None:
            if self.closing.is_set():  # the run stopped (its deadline): the stack is going
                raise StackError("the stage gate: the rehearsal stopped")
            code, out, _ = stack.arbx(["stage", "status", *CONFIG, "--json"])
            status = json.loads(out) if code == 0 and out.startswith("{") else None
            return status if status is not None and done(status) else None

        wait_until("the stage gate", look, STAGE_TIMEOUT, every=2)
        return dict(json.loads(self.operate("arbx", "stage", "status", *CONFIG, "--json")))

    def engine_releases(self) -> None:
        """The engine's releases by its Rollout (blue/green): v2 as a standby beside v1, the
        pre-promotion analysis (``arbx release compare`` and the preview's metrics), the switch,
        the handover (``arbx release promote`` as the post-promotion analysis: the signer lock
        moves, epoch up); then v3 (0.25 s more per block), whose analysis fails: rolled back
        with no one acting. The signer lock's epochs before and after go into the report."""
        assert self.stack is not None
        before = self._epochs()
        for version in ("v2", "v3"):
            self.release("engine", version)
        self.engine_epochs = {"before": before, "after": self._epochs()}

    def _epochs(self) -> Any:
        """``arbx release status --json``: the releases, the signer lock's epochs, handovers."""
        return json.loads(self.operate("arbx", "release", "status", *CONFIG, "--json"))

    def drills(self) -> dict[str, Any]:
        """The operations pages' other commands: status, stages, the kill switch, new keys."""
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
        return out

    def restore_drill(self) -> dict[str, Any]:
        """A database backup restored, before the engine runs: a restore drops and recreates
        every table in one transaction, which a writing engine deadlocks (restore.md: stop
        the engine first). The rows of each table before and after."""
        tables = ("runs", "blocks", "opportunities", "api_tokens", "engine_controls")
        before = {t: self._count(t) for t in tables}
        self.operate("db", "backup", "arbx.dump")
        self.operate("db", "restore", "arbx.dump")
        after = {t: self._count(t) for t in tables}
        lost = sum(max(0, before[t] - after[t]) for t in tables)
        return {"restore": {"before": before, "after": after}, "restore_rows_lost": lost}

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

    def _devnet(self) -> str:
        """The devnet's JSON-RPC URL on the staging network."""
        assert self.stack is not None
        name = f"{self.stack.state['prefix']}-arbx-devnet"
        ip = json.loads(podman("inspect", name))[0]["NetworkSettings"]["Networks"]
        return f"http://{next(iter(ip.values()))['IPAddress']}:8545"

    def _head(self) -> int | None:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
        try:
            return int(_rpc(self._devnet(), body)["result"], 16)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def unrecorded(self) -> dict[str, Any]:
        """The signatures with no transaction of a bundle recorded (the signer lock records every
        signature; a bundle signed but dropped before it left, late or refused by the fence
        before sending, loses its rows and its nonce is signed again), each looked up on the
        chain: one the chain holds without a record is a trade lost to the records (the
        executor's deployment aside); one it does not hold never left the engine."""
        assert self.stack is not None
        rows = self.stack.sql(
            "SELECT s.tx_hash FROM signatures s WHERE NOT EXISTS "
            "(SELECT 1 FROM transactions t WHERE lower(t.hash) = lower(s.tx_hash)) "
            f"ORDER BY s.id LIMIT {MAX_LOOKUPS}"
        )
        hashes = [h for h in rows.splitlines() if h]
        found: dict[str, Any] = {"total": len(hashes), "not_on_chain": 0, "deployments": 0,
                                 "on_chain_without_record": []}  # fmt: skip
        url = self._devnet()
        for start in range(0, len(hashes), 100):  # JSON-RPC batches
            chunk = hashes[start : start + 100]
            batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_getTransactionByHash",
                      "params": [h]} for i, h in enumerate(chunk)]  # fmt: skip
            answers = {a["id"]: a.get("result") for a in _rpc(url, batch)}
            for i, tx_hash in enumerate(chunk):
                tx = answers.get(i)
                if not tx or tx.get("blockNumber") is None:
                    found["not_on_chain"] += 1
                elif tx.get("to") is None:
                    found["deployments"] += 1
                else:
                    found["on_chain_without_record"].append(tx_hash)
        return found

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

    def trades(self) -> dict[str, Any]:
        """What the engines decided to send and what became of it, from their records against
        the chain's head: a bundle still 'sent' more than ``SETTLE_BLOCKS`` past its target
        block was neither included nor recorded as failed or cancelled: a trade lost. Signed
        transactions no bundle recorded are counted too (the executor's deployment is one)."""
        assert self.stack is not None
        head = self._head()
        if head is None:
            return {"measured": False, "why": "the devnet does not answer"}
        rows = self.stack.sql(
            "SELECT status, count(*), coalesce(max(target_block), -1) FROM bundles "
            f"WHERE status <> 'sent' OR target_block >= {head - SETTLE_BLOCKS} GROUP BY status"
        )
        by_status = {r.split("|")[0]: int(r.split("|")[1]) for r in rows.splitlines() if r}
        lost = int(self.stack.sql(
            f"SELECT count(*) FROM bundles WHERE status = 'sent' AND target_block < "
            f"{head - SETTLE_BLOCKS}"
        ))  # fmt: skip
        unrecorded = self.unrecorded()
        lost += len(unrecorded["on_chain_without_record"])
        self.log(f"trades: {by_status}, {lost} lost, head {head}; signed without a bundle "
                 f"record: {unrecorded}")  # fmt: skip
        return {"measured": True, "head": head, "bundles": by_status, "lost": lost,
                "signed_without_bundle": unrecorded}  # fmt: skip

    def _count(self, table: str) -> int:
        assert self.stack is not None
        value = self.stack.sql(f"SELECT count(*) FROM {table}")  # table: one of ours
        return int(value) if value.isdigit() else 0

    # the scenario ------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        deadline = self.options.deadline
        if deadline is None and self.options.short:
            deadline = SHORT_DEADLINE
        bounded = deadline is not None and threading.current_thread() is threading.main_thread()
        if bounded:
            assert deadline is not None

            def expire(_signum: int, _frame: object) -> None:
                if not self.closing.is_set():  # the teardown is not cut short
                    raise Overdue(f"the rehearsal: not done within {deadline:g} s")

            previous = signal.signal(signal.SIGALRM, expire)
            signal.setitimer(signal.ITIMER_REAL, deadline)
        try:
            return self._run()
        finally:
            if bounded:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)

    def _run(self) -> dict[str, Any]:
        try:
            self.up()
            assert self.stack is not None
            assert self.controller is not None
            self.controller.deploy("arbx-api", "v1")
            if not self.options.short:
                self.controller.deploy("arbx-web", "v1")
            token = self.token()
            restored = self.restore_drill()
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
            climbing: list[BaseException] = []
            engine = threading.Thread(target=_catching(self.stage_path, climbing), daemon=True)
            if self.options.short:
                # the short form climbs the capital stages while the API is released: the gates
                # wait on blocks, and the canary is judged against the stable under the same
                # load (ADR 0034); the full form keeps them apart, the figures of each alone
                engine.start()
            self.release("api", "v2")
            if not self.options.short:
                self.release("web", "v2")
            self.release("api", "v3")
            self.manual("api", "v1")
            if not self.options.short:
                self.manual("web", "v1")
                self.manual("api", "v2")
                self.manual("web", "v2")
            if self.options.short:
                engine.join()
                if climbing:
                    raise climbing[0]
            else:  # the full form: the engine live after the API's releases, then its own
                self.stage_path()
            if not self.options.short:
                self.engine_releases()
            else:
                self.engine_epochs = {"after": self._epochs()}
            if not self.options.short:
                self.engine_records = self.engine_blocks()
            self.audit = self.signatures()
            self.trade_records = self.trades()
            self.drill_results = {**self.drills(), **restored}
            return self.report()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the clients, the Services and (unless kept) the stack."""
        self.closing.set()
        try:
            if self.controller is not None:
                self.controller.settle()
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
            "stages": self.stages,
            "double_signatures": _double_signatures(self.audit),
            "records_lost": self.drill_results.get("restore_rows_lost", 0)
            + self.engine_records.get("missing", 0),
            "trades_lost": self.trade_records.get("lost"),
            "trades": self.trade_records,
            "requests": dict(self.load.requests),
            "client_error_samples": list(self.load.samples),
            "answered_by": dict(self.load.releases),
            "scale": self.options.scale,
            "seconds": round(time.monotonic() - self.started, 1),
            "operations": self.drill_results,
            "engine_records": self.engine_records,
            "signatures": self.audit,
            "engine_epochs": self.engine_epochs,
            "commands": self.exits,
        }
        path = self.options.directory / "report.json"
        path.write_text(json.dumps(report, indent=2))
        return report


def _gate(status: dict[str, Any]) -> dict[str, Any]:
    """The conditions of a stage status's gate, by name: measured, required, passed."""
    return {c["name"]: {k: c[k] for k in ("measured", "required", "passed")}
            for c in status["conditions"]}  # fmt: skip


def _passed(status: dict[str, Any]) -> bool:
    """Every measured condition of the gate to the next stage passes (the ceiling aside)."""
    return bool(status["conditions"]) and all(c["passed"] for c in status["conditions"])


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


def _rpc(url: str, body: Any) -> Any:
    """One JSON-RPC request (or batch) to ``url``; the decoded answer."""
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        raw = answer.read(MAX_RPC_ANSWER + 1)
    if len(raw) > MAX_RPC_ANSWER:
        raise ValueError(f"a JSON-RPC answer over {MAX_RPC_ANSWER} bytes")
    return json.loads(raw)


def _catching(work: Callable[[], None], failures: list[BaseException]) -> Callable[[], None]:
    """``work`` for a thread: what it raises goes into ``failures`` (the caller raises it)."""

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the thread that joins
            failures.append(exc)

    return run


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
        lines.append(f"stage: {stage['from']} -> {stage['to']}: {stage['outcome']}")
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
