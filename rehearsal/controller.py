"""The Argo Rollouts controller stand-in: executes the Rollouts of the rendered manifests on the
staging stack's pods.

- canary (no traffic router): ``setWeight`` by replica counts (new: ceil(replicas x w / 100),
  stable: ceil(replicas x (100 - w) / 100); the new pods come up before stable ones go),
  ``pause`` (with a duration, or until promoted), ``analysis`` steps, and the background
  ``analysis`` from ``startingStep``; a failed analysis aborts: the canary goes to zero pods and
  the stable ones back to full.
- blueGreen: the new pods behind the preview Service, ``prePromotionAnalysis``, the switch of
  the active Service (``autoPromotionEnabled``, else a wait for promote),
  ``postPromotionAnalysis`` (a failure switches back), then the old pods go after
  ``scaleDownDelaySeconds``.
- ``abort``, ``promote`` (``--full`` skips the remaining steps and analyses) and ``undo``, as
  ``kubectl argo rollouts`` offers them.

The pod template is the Rollout's own or its ``workloadRef`` Deployment's. Durations are
multiplied by ``scale`` (the rehearsal's faster clock); queries and conditions are untouched.
"""

from __future__ import annotations

import math
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rehearsal.analysis import FAILED, INCONCLUSIVE, SUCCESSFUL, AnalysisRun
from rehearsal.cluster import Stack, StackError, podman, state_lock, wait_until
from rehearsal.manifests import ManifestError, Manifests, container, duration, readiness

PROMOTED, ROLLED_BACK = "promoted", "rolled_back"


@dataclass
class Result:
    """What one release of one Rollout came to."""

    rollout: str
    version: str
    strategy: str
    outcome: str
    started: float
    finished: float = 0.0
    detected: float | None = None  # when the failed analysis decided
    rolled_back: float | None = None  # when the old version served alone again
    message: str = ""
    analyses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def detect_s(self) -> float | None:
        return None if self.detected is None else round(self.detected - self.started, 1)

    @property
    def rollback_s(self) -> float | None:
        if self.detected is None or self.rolled_back is None:
            return None
        return round(self.rolled_back - self.detected, 1)


class AbortError(Exception):
    """The rollout aborts (a failed analysis or an abort command)."""


class Controller:
    """Runs the Rollouts of ``manifests`` on ``stack``."""

    def __init__(
        self,
        stack: Stack,
        manifests: Manifests,
        scale: float = 1.0,
        log: Callable[[str], None] = print,
        hosts: dict[str, str] | None = None,
    ) -> None:
        self.stack = stack
        self.manifests = manifests
        self.scale = scale
        self.log = log
        self.hosts = hosts or {}
        self.background: list[threading.Thread] = []
        self.stopping: list[threading.Thread] = []  # pods being terminated

    # the manifests ----------------------------------------------------------------------------

    def rollout(self, name: str) -> dict[str, Any]:
        return self.manifests.get("Rollout", name)

    def template(self, name: str) -> dict[str, Any]:
        spec = self.rollout(name)["spec"]
        if "template" in spec:
            return dict(spec["template"])
        ref = spec.get("workloadRef") or {}
        if ref.get("kind") != "Deployment":
            raise ManifestError(f"Rollout {name}: neither a template nor a Deployment workloadRef")
        return dict(self.manifests.get("Deployment", ref["name"])["spec"]["template"])

    def app(self, name: str) -> str:
        labels = self.rollout(name)["spec"]["selector"]["matchLabels"]
        return str(labels["app.kubernetes.io/name"])

    def strategy(self, name: str) -> tuple[str, dict[str, Any]]:
        strategy = self.rollout(name)["spec"]["strategy"]
        kind = "canary" if "canary" in strategy else "blueGreen"
        return kind, dict(strategy[kind])

    def replicas(self, name: str) -> int:
        return int(self.rollout(name)["spec"].get("replicas", 1))

    def grace(self, name: str) -> float:
        return float(self.template(name).get("spec", {}).get("terminationGracePeriodSeconds", 30))

    # state ------------------------------------------------------------------------------------

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.stack.state["rollouts"].get(name, {}))

    def _set(self, name: str, **values: Any) -> None:
        with state_lock(self.stack.directory) as state:
            state["rollouts"].setdefault(name, {}).update(values)

    def _select(self, service: str, app: str, version: str | None) -> None:
        with state_lock(self.stack.directory) as state:
            entry = state["services"].setdefault(service, {})
            entry["selector"] = {"app": app, **({"hash": version} if version else {})}

    def _services(self, name: str, stable: str, new: str | None) -> None:
        """Point the Rollout's Services at its versions, as the controller sets selectors."""
        kind, spec = self.strategy(name)
        app = self.app(name)
        if kind == "canary":
            if spec.get("stableService"):
                self._select(spec["stableService"], app, stable)
            if spec.get("canaryService"):
                self._select(spec["canaryService"], app, new or stable)
        else:
            self._select(spec["activeService"], app, stable)
            if spec.get("previewService"):
                self._select(spec["previewService"], app, new or stable)

    # pods -------------------------------------------------------------------------------------

    def scale_to(self, name: str, version: str, count: int) -> None:
        """``count`` ready pods of ``version`` (new ones first waited for, extra ones told to
        stop: out of their Services at once, terminated in the background)."""
        app, template = self.app(name), self.template(name)
        pods = self.stack.pods(app, version)
        path, _, timeout = readiness(template)
        made = [self.stack.run_pod(app, version, template) for _ in range(count - len(pods))]
        for pod in made:
            try:
                wait_until(
                    f"{pod['name']} ready", lambda p=pod: self.serving(p, path, timeout), 180
                )
            except StackError as exc:
                raise StackError(f"{exc}: {self.stack.why_not_ready(pod, path, timeout)}") from None
        extra = pods[: max(0, len(pods) - count)]
        # as Argo scales down: the pods leave their Services at once and terminate (drain, then
        # stop) while the rollout goes on; ``settle`` waits for them
        for pod in extra:
            grace = self.grace(name)
            thread = threading.Thread(target=self.stack.stop_pod, args=(pod["name"], grace))
            thread.start()
            self.stopping.append(thread)

    def settle(self) -> None:
        """Wait for the pods being terminated."""
        while self.stopping:
            self.stopping.pop().join()

    def serving(self, pod: dict[str, Any], path: str, timeout: float) -> bool:
        """The pod passes its readiness probe (within the probe's ``timeoutSeconds``) and, when
        the Services run, they count it ready too (the old pods go only once the new ones
        receive traffic)."""
        if not self.stack.ready(pod, path, timeout):
            return False
        state = self.stack.state
        if not state.get("prober") or pod["app"] not in state.get("probed_apps", []):
            return True  # no Service balances this app's pods (the engine's are headless)
        return bool(state.get("ready", {}).get(pod["name"]))

    def versions(self, name: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for pod in self.stack.pods(self.app(name)):
            counts[pod["version"]] = counts.get(pod["version"], 0) + 1
        return counts

    # deploy -----------------------------------------------------------------------------------

    def deploy(self, name: str, version: str) -> None:
        """The first version of a Rollout: its pods at full count, its Services on them."""
        self._set(name, stable=version, phase="Healthy", history=[version], canary=None,
                  app=self.app(name))  # fmt: skip
        self._services(name, version, None)
        self.scale_to(name, version, self.replicas(name))
        self.log(f"{name}: {version} deployed ({self.replicas(name)} pods)")

    # analysis ---------------------------------------------------------------------------------

    def analysis(
        self, name: str, run_name: str, spec: dict[str, Any], stable: str, latest: str
    ) -> AnalysisRun:
        rollout = self.rollout(name)
        return AnalysisRun.from_templates(
            run_name, self.manifests, spec.get("templates", []), spec.get("args", []),
            {"Stable": stable, "Latest": latest},
            overrides={"prometheus-address": self.stack.state["prometheus"]},
            job_runner=lambda job: self.run_job(job, latest), log=self.log,
            fields={"metadata.namespace": rollout["metadata"].get("namespace", "default"),
                    "metadata.name": name},
            hosts=self.hosts, scale=self.scale,
        )  # fmt: skip

    def run_job(self, job: dict[str, Any], version: str) -> tuple[bool, str]:
        """A Job metric: its container's command in the searcher image of ``version`` on the
        staging network, retried ``backoffLimit`` times, within ``activeDeadlineSeconds``."""
        spec = job.get("spec", {})
        main = container(spec.get("template", {}))
        argv = [str(a) for a in [*main.get("command", []), *main.get("args", [])]]
        if not argv:
            return False, "the Job's container has no command"
        deadline = float(spec.get("activeDeadlineSeconds", 600))
        image = self.stack.image("searcher", version)
        message = ""
        for _ in range(int(spec.get("backoffLimit", 6)) + 1):
            try:
                done = subprocess.run(
                    ["podman", "run", "--rm", "--tls-verify=false", "--no-healthcheck",
                     *self.stack.searcher_flags(version), "--entrypoint", argv[0], image,
                     *argv[1:]],
                    env=_podman_env(), capture_output=True, text=True, timeout=deadline,
                    check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                message = f"no end within activeDeadlineSeconds {deadline:g}"
                continue
            out = (done.stdout.strip() + "\n" + done.stderr.strip()).strip()
            message = job_message(out, done.returncode)
            self.log(f"job {' '.join(argv[:3])}: exit {done.returncode}: {message[:200]}")
            if done.returncode == 0:
                return True, message
        return False, message

    # releases ---------------------------------------------------------------------------------

    def set_image(self, name: str, version: str, full: bool = False) -> Result:
        """Release ``version`` of Rollout ``name`` by its strategy (``full``: promote at once,
        skipping steps, pauses and analyses, as ``promote --full``)."""
        kind, _ = self.strategy(name)
        status = self.status(name)
        stable = status["stable"]
        result = Result(name, version, kind, PROMOTED, time.monotonic())
        self._set(name, canary=version, phase="Progressing", abort=False, promote=False)
        self.log(f"{name}: {stable} -> {version} ({kind}{', full promotion' if full else ''})")
        try:
            if version == stable:
                self.scale_to(name, stable, self.replicas(name))
            elif kind == "canary":
                self._canary(name, stable, version, result, full)
            else:
                self._blue_green(name, stable, version, result, full)
        except AbortError as exc:
            result.outcome, result.message = ROLLED_BACK, str(exc)
            self._set(name, phase="Degraded", canary=None, message=str(exc))
        else:
            history = [*status.get("history", []), version]
            self._set(name, stable=version, canary=None, phase="Healthy", history=history,
                      message="")  # fmt: skip
        result.finished = time.monotonic()
        self.log(f"{name}: {version} {result.outcome} ({result.finished - result.started:.0f} s)")
        return result

    def _wait(self, name: str, seconds: float | None, watch: Callable[[], None]) -> None:
        """A pause: ``seconds`` (None: until promoted), watching analyses and abort requests."""
        end = None if seconds is None else time.monotonic() + seconds
        while end is None or time.monotonic() < end:
            watch()
            status = self.status(name)
            if status.get("abort"):
                raise AbortError("aborted by command")
            if status.get("promote"):
                self._set(name, promote=False)
                return
            time.sleep(0.25)

    def _canary(self, name: str, stable: str, new: str, result: Result, full: bool) -> None:
        _, spec = self.strategy(name)
        replicas = self.replicas(name)
        steps = [] if full else list(spec.get("steps", []))
        background_spec = None if full else spec.get("analysis")
        start_at = int((background_spec or {}).get("startingStep", 0))
        stop = threading.Event()
        runs: list[AnalysisRun] = []
        threads: list[threading.Thread] = []

        def start_background() -> None:
            if background_spec is None or runs:
                return
            run = self.analysis(name, f"{name}-{new}-background", background_spec, stable, new)
            runs.append(run)
            thread = threading.Thread(target=run.run, args=(stop,), daemon=True)
            thread.start()
            threads.append(thread)

        def watch() -> None:
            for run in runs:
                if run.phase in (FAILED, INCONCLUSIVE):
                    result.detected = run.finished or time.monotonic()
                    raise AbortError(f"background analysis {run.phase.lower()}: {run.message}")

        self._services(name, stable, new)
        try:
            for index, step in enumerate(steps):
                if index >= start_at:
                    start_background()
                watch()
                if "setWeight" in step:
                    weight = int(step["setWeight"])
                    self.log(f"{name}: setWeight {weight}")
                    self.scale_to(name, new, math.ceil(replicas * weight / 100))
                    watch()
                    self.scale_to(name, stable, math.ceil(replicas * (100 - weight) / 100))
                elif "pause" in step:
                    pause = step["pause"] or {}
                    seconds = (
                        duration(pause["duration"], "pause") * self.scale
                        if "duration" in pause
                        else None
                    )
                    self.log(f"{name}: pause {pause['duration'] if seconds else 'until promoted'}")
                    self._wait(name, seconds, watch)
                elif "analysis" in step:
                    run = self.analysis(
                        name, f"{name}-{new}-step{index}", step["analysis"], stable, new
                    )
                    phase = run.run()
                    result.analyses.append(_summary(run))
                    if phase != SUCCESSFUL:
                        result.detected = run.finished
                        raise AbortError(f"step analysis {phase.lower()}: {run.message}")
                watch()
            watch()
            self.scale_to(name, new, replicas)
            self._services(name, new, None)
            self.scale_to(name, stable, 0)
        except (AbortError, StackError) as exc:
            self.log(f"{name}: abort: {exc}")
            stop.set()
            if result.detected is None:
                result.detected = time.monotonic()
            self._services(name, stable, None)
            self.scale_to(name, stable, replicas)
            self.scale_to(name, new, 0)
            result.rolled_back = time.monotonic()
            raise AbortError(str(exc)) from None
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
            result.analyses += [_summary(run) for run in runs]

    def _blue_green(self, name: str, active: str, new: str, result: Result, full: bool) -> None:
        _, spec = self.strategy(name)
        replicas = self.replicas(name)
        preview_count = int(spec.get("previewReplicaCount", replicas))
        self._services(name, active, new)
        try:
            self.scale_to(name, new, preview_count)
            if not full and spec.get("prePromotionAnalysis"):
                run = self.analysis(name, f"{name}-{new}-pre", spec["prePromotionAnalysis"],
                                    active, new)  # fmt: skip
                phase = run.run()
                result.analyses.append(_summary(run))
                if phase != SUCCESSFUL:
                    result.detected = run.finished
                    raise AbortError(f"pre-promotion analysis {phase.lower()}: {run.message}")
            if not full and not spec.get("autoPromotionEnabled", True):
                self.log(f"{name}: paused before the switch, until promoted")
                self._wait(name, None, lambda: None)
            self.scale_to(name, new, replicas)
        except (AbortError, StackError) as exc:
            self.log(f"{name}: abort: {exc}")
            if result.detected is None:
                result.detected = time.monotonic()
            self._services(name, active, None)
            self.scale_to(name, new, 0)
            result.rolled_back = time.monotonic()
            raise AbortError(str(exc)) from None
        # the switch
        self._services(name, new, None)
        self.log(f"{name}: active Service switched to {new}")
        if not full and spec.get("postPromotionAnalysis"):
            run = self.analysis(name, f"{name}-{new}-post", spec["postPromotionAnalysis"],
                                active, new)  # fmt: skip
            phase = run.run()
            result.analyses.append(_summary(run))
            if phase != SUCCESSFUL:
                result.detected = run.finished
                self.log(f"{name}: post-promotion analysis {phase.lower()}: switching back")
                self._services(name, active, None)
                self.scale_to(name, new, 0)
                result.rolled_back = time.monotonic()
                raise AbortError(f"post-promotion analysis {phase.lower()}: {run.message}")
        delay = float(spec.get("scaleDownDelaySeconds", 30)) * self.scale
        self.log(f"{name}: {active} scaled down in {delay:.0f} s")
        time.sleep(delay)
        self.scale_to(name, active, 0)

    # commands ---------------------------------------------------------------------------------

    def request(self, name: str, **flag: bool) -> None:
        """Ask the process running Rollout ``name``'s release to abort or promote."""
        self._set(name, **flag)


def _podman_env() -> dict[str, str]:
    from rehearsal.stack import podman_env  # noqa: PLC0415

    return podman_env()


def _summary(run: AnalysisRun) -> dict[str, Any]:
    return {
        "name": run.name,
        "phase": run.phase,
        "message": run.message,
        "metrics": {
            m.name: [
                {"phase": x.phase, "value": x.value if not isinstance(x.value, float) or
                 math.isfinite(x.value) else str(x.value)}
                for x in m.measurements
            ]
            for m in run.metrics
        },
        # what each Job said (arbx release compare: its last line, or its FAIL lines)
        "jobs": {m.name: [x.message for x in m.measurements] for m in run.metrics
                 if "job" in (m.spec.get("provider") or {})},
    }  # fmt: skip


def job_message(out: str, code: int) -> str:
    """What a Job's output says of it: the lines saying FAIL when it failed (``arbx release
    compare`` prints every condition, the failing ones anywhere among them), else its last line."""
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    if not lines:
        return f"exit {code}"
    failed = [line for line in lines if line.startswith("FAIL")] if code != 0 else []
    return "; ".join(failed) if failed else lines[-1]


__all__ = ["PROMOTED", "ROLLED_BACK", "Controller", "Result", "job_message", "podman"]
