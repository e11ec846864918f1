"""AnalysisRuns executed as Argo Rollouts executes them, from the AnalysisTemplates of the
rendered manifests.

Per metric: ``initialDelay``, ``interval``, ``count`` (without a count and with an interval a
metric measures until the run is terminated: a background analysis), ``successCondition`` and
``failureCondition`` (``rehearsal.expr``), ``failureLimit`` (default 0), ``inconclusiveLimit``
(default 0), ``consecutiveErrorLimit`` (default 4) and ``dryRun``. A measurement is Successful,
Failed, Inconclusive (neither condition holds) or Error (the provider or the condition failed).
The run fails as soon as one metric fails or errs past its limit, and succeeds when every metric
with a count has completed it.

Providers: ``prometheus`` (an instant query over HTTP), ``job`` (the Job's first container run
by a caller-given runner: podman on the staging network) and ``web`` (an HTTP GET, optionally
narrowed with ``jsonPath``).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rehearsal import expr
from rehearsal.manifests import ManifestError, Manifests, duration

SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR, RUNNING = (
    "Successful", "Failed", "Inconclusive", "Error", "Running",
)  # fmt: skip
MAX_BODY = 1_000_000  # bytes read from a provider's answer
_ARG = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")

# runs a Job metric: (the Job spec with args substituted) -> (succeeded, message)
JobRunner = Callable[[dict[str, Any]], tuple[bool, str]]


class MeasureError(RuntimeError):
    """A provider that could not measure (an Error measurement)."""


@dataclass
class Measurement:
    phase: str
    value: Any
    message: str
    at: float


@dataclass
class MetricRun:
    """One metric of a run and its measurements so far."""

    name: str
    spec: dict[str, Any]
    measurements: list[Measurement] = field(default_factory=list)
    phase: str = RUNNING
    next_at: float = 0.0

    @property
    def count(self) -> int | None:
        if "count" in self.spec:
            return int(self.spec["count"])
        return None if "interval" in self.spec else 1

    def tally(self, phase: str) -> int:
        return sum(1 for m in self.measurements if m.phase == phase)

    def consecutive_errors(self) -> int:
        n = 0
        for m in reversed(self.measurements):
            if m.phase != ERROR:
                break
            n += 1
        return n

    def settle(self) -> None:
        """The metric's phase after its latest measurement (Argo's assessment)."""
        if self.tally(FAILED) > int(self.spec.get("failureLimit", 0)):
            self.phase = FAILED
        elif self.consecutive_errors() > int(self.spec.get("consecutiveErrorLimit", 4)):
            self.phase = ERROR
        elif self.tally(INCONCLUSIVE) > int(self.spec.get("inconclusiveLimit", 0)):
            self.phase = INCONCLUSIVE
        elif self.count is not None and len(self.measurements) >= self.count:
            self.phase = SUCCESSFUL


def substitute(value: Any, args: dict[str, str]) -> Any:
    """``value`` with every ``{{args.NAME}}`` replaced (ManifestError for an unknown name)."""
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in args:
                raise ManifestError(f"the template uses {{{{args.{name}}}}}, which has no value")
            return args[name]

        return _ARG.sub(one, value)
    if isinstance(value, list):
        return [substitute(v, args) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, args) for k, v in value.items()}
    return value


def resolve_args(
    template: dict[str, Any],
    given: list[dict[str, Any]],
    hashes: dict[str, str],
    fields: dict[str, str] | None = None,
) -> dict[str, str]:
    """The template's arguments: its defaults, overridden by the Rollout's ``args``.

    ``hashes`` maps ``Stable``/``Latest`` (``podTemplateHashValue``) to the versions;
    ``fields`` the Rollout's own fields a ``fieldRef`` may name (``metadata.namespace``).
    """
    values: dict[str, str] = {}
    for arg in template.get("spec", {}).get("args", []) or []:
        if "value" in arg:
            values[arg["name"]] = str(arg["value"])
    for arg in given or []:
        if "value" in arg:
            values[arg["name"]] = str(arg["value"])
        elif "podTemplateHashValue" in (arg.get("valueFrom") or {}):
            which = arg["valueFrom"]["podTemplateHashValue"]
            if which not in hashes:
                raise ManifestError(f"podTemplateHashValue {which!r}: not Stable or Latest")
            values[arg["name"]] = hashes[which]
        elif "fieldRef" in (arg.get("valueFrom") or {}):
            path = arg["valueFrom"]["fieldRef"].get("fieldPath", "")
            if path not in (fields or {}):
                raise ManifestError(f"fieldRef {path!r}: not a field the rehearsal provides")
            values[arg["name"]] = (fields or {})[path]
    for arg in template.get("spec", {}).get("args", []) or []:
        if arg["name"] not in values:
            name = template["metadata"]["name"]
            raise ManifestError(f"AnalysisTemplate {name}: argument {arg['name']} has no value")
    return values


def _get(url: str, headers: dict[str, str], timeout: float) -> bytes:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise MeasureError(f"not an http(s) URL: {url[:80]}")
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body = answer.read(MAX_BODY + 1)
    except urllib.error.HTTPError as exc:
        raise MeasureError(f"HTTP {exc.code} from {url[:80]}") from None
    except (OSError, ValueError) as exc:
        raise MeasureError(f"{url[:80]}: {exc}") from None
    if len(body) > MAX_BODY:
        raise MeasureError(f"answer larger than {MAX_BODY} bytes from {url[:80]}")
    return bytes(body)


def prometheus_result(address: str, query: str, timeout: float = 10.0) -> Any:
    """An instant query's result as Argo gives it to conditions: a list of sample values for a
    vector, one value for a scalar."""
    url = f"{address.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        answer = json.loads(_get(url, {}, timeout))
        data = answer["data"]
        kind, result = data["resultType"], data["result"]
        if answer.get("status") != "success":
            raise MeasureError(f"prometheus: {answer.get('error', 'failed')}")
        if kind == "vector":
            return [float(sample["value"][1]) for sample in result]
        if kind == "scalar":
            return float(result[1])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise MeasureError(f"prometheus: an answer of unexpected shape ({exc})") from None
    raise MeasureError(f"prometheus: result type {kind} is not supported")


def _json_path(value: Any, path: str) -> Any:
    """A ``{$.a.b[0]}`` JSONPath of the simple kind web metrics use."""
    inner = path.strip()
    if inner.startswith("{") and inner.endswith("}"):
        inner = inner[1:-1]
    if not inner.startswith("$"):
        raise MeasureError(f"jsonPath {path!r}: must start with $")
    for part in re.findall(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]", inner[1:]):
        key, index = part
        try:
            value = value[key] if key else value[int(index)]
        except (KeyError, IndexError, TypeError):
            raise MeasureError(f"jsonPath {path!r}: not in the answer") from None
    return value


def web_result(spec: dict[str, Any]) -> Any:
    """A web metric's value: the JSON answer (or the part ``jsonPath`` names)."""
    headers = {h["key"]: h["value"] for h in spec.get("headers", []) or []}
    body = _get(str(spec["url"]), headers, float(spec.get("timeoutSeconds", 10)))
    try:
        value = json.loads(body)
    except ValueError:
        value = body.decode("utf-8", "replace")
    return _json_path(value, spec["jsonPath"]) if spec.get("jsonPath") else value


@dataclass
class AnalysisRun:
    """One run of one or more templates (Argo's AnalysisRun)."""

    name: str
    metrics: list[MetricRun]
    dry_run: set[str]
    job_runner: JobRunner | None = None
    log: Callable[[str], None] = print
    hosts: dict[str, str] = field(default_factory=dict)  # Service host:port -> address
    scale: float = 1.0  # durations are multiplied by this (a faster clock; 1 in a cluster)
    phase: str = RUNNING
    message: str = ""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @classmethod
    def from_templates(
        cls,
        name: str,
        manifests: Manifests,
        refs: list[dict[str, Any]],
        given_args: list[dict[str, Any]],
        hashes: dict[str, str],
        overrides: dict[str, str] | None = None,
        job_runner: JobRunner | None = None,
        log: Callable[[str], None] = print,
        fields: dict[str, str] | None = None,
        hosts: dict[str, str] | None = None,
        scale: float = 1.0,
    ) -> AnalysisRun:
        """A run of the templates ``refs`` names (``[{templateName: ...}]``)."""
        metrics: list[MetricRun] = []
        dry: set[str] = set()
        for ref in refs:
            if ref.get("clusterScope"):
                raise ManifestError("ClusterAnalysisTemplates are not part of the staging overlay")
            template = manifests.get("AnalysisTemplate", ref["templateName"])
            args = resolve_args(template, given_args, hashes, fields)
            args.update(overrides or {})
            spec = template.get("spec", {})
            for metric in spec.get("metrics", []) or []:
                metrics.append(MetricRun(metric["name"], substitute(metric, args)))
            dry |= {d["metricName"] for d in spec.get("dryRun", []) or []}
        if not metrics:
            raise ManifestError(f"analysis {name}: the templates define no metric")
        return cls(name, metrics, dry, job_runner, log, hosts=hosts or {}, scale=scale)

    def measure(self, metric: MetricRun) -> Measurement:
        """One measurement of ``metric`` now."""
        spec, now = metric.spec, time.time()
        provider = spec.get("provider") or {}
        try:
            if "prometheus" in provider:
                prom = provider["prometheus"]
                value = prometheus_result(str(prom["address"]), str(prom["query"]))
            elif "web" in provider:
                value = web_result(self._resolved(provider["web"]))
            elif "job" in provider:
                if self.job_runner is None:
                    raise MeasureError("no job runner")
                ok, message = self.job_runner(provider["job"])
                return Measurement(SUCCESSFUL if ok else FAILED, ok, message, now)
            else:
                raise MeasureError(f"provider {sorted(provider)} is not one the manifests use")
        except MeasureError as exc:
            return Measurement(ERROR, None, str(exc), now)
        return self.assess(spec, value, now)

    def _resolved(self, web: dict[str, Any]) -> dict[str, Any]:
        """A web metric whose URL names a Service, sent to that Service's address."""
        parts = urllib.parse.urlsplit(str(web.get("url", "")))
        address = self.hosts.get(parts.netloc)
        if address is None:
            return web
        return {**web, "url": urllib.parse.urlunsplit(parts._replace(netloc=address))}

    @staticmethod
    def assess(spec: dict[str, Any], value: Any, now: float) -> Measurement:
        """The phase of a measured ``value`` under the metric's conditions."""
        success, failure = spec.get("successCondition"), spec.get("failureCondition")
        try:
            if failure and expr.condition(str(failure), value):
                return Measurement(FAILED, value, f"failureCondition {failure} holds", now)
            if success:
                if expr.condition(str(success), value):
                    return Measurement(SUCCESSFUL, value, "", now)
                if failure:
                    return Measurement(INCONCLUSIVE, value, "neither condition holds", now)
                return Measurement(FAILED, value, f"successCondition {success} fails", now)
        except expr.ExprError as exc:
            return Measurement(ERROR, value, f"condition: {exc}", now)
        return Measurement(SUCCESSFUL, value, "", now)

    def step(self) -> float:
        """Measure every metric that is due; the seconds until the next one is."""
        now = time.monotonic()
        for metric in self.metrics:
            if metric.phase != RUNNING:
                continue
            if not metric.measurements and metric.next_at == 0.0:
                delay = duration(metric.spec.get("initialDelay", 0), "initialDelay")
                metric.next_at = self.started + delay * self.scale
            if now < metric.next_at:
                continue
            measured = self.measure(metric)
            metric.measurements.append(measured)
            value = _short(measured.value)
            note = f" ({measured.message})" if measured.message else ""
            self.log(f"analysis {self.name}: {metric.name} = {value} -> {measured.phase}{note}")
            metric.settle()
            interval = metric.spec.get("interval")
            every = duration(interval, "interval") * self.scale if interval else 0.0
            metric.next_at = now + every
        self._decide()
        pending = [m.next_at for m in self.metrics if m.phase == RUNNING]
        return max(0.0, min(pending) - time.monotonic()) if pending else 0.0

    def _decide(self) -> None:
        deciding = [m for m in self.metrics if m.name not in self.dry_run]
        for metric in deciding:
            if metric.phase in (FAILED, ERROR):
                self.phase = FAILED
                last = metric.measurements[-1] if metric.measurements else None
                self.message = f"metric {metric.name} {metric.phase.lower()}" + (
                    f": {last.message or _short(last.value)}" if last else ""
                )
                break
            if metric.phase == INCONCLUSIVE:
                self.phase, self.message = INCONCLUSIVE, f"metric {metric.name} inconclusive"
                break
        else:
            if all(m.phase == SUCCESSFUL for m in deciding if m.count is not None) and all(
                m.count is not None for m in deciding
            ):
                self.phase = SUCCESSFUL
        if self.phase != RUNNING and self.finished is None:
            self.finished = time.monotonic()

    def run(self, stop: threading.Event | None = None, timeout: float = 3600.0) -> str:
        """Measure until the run decides (or ``stop`` is set: a background analysis ended by
        its rollout, Successful unless it failed); its phase."""
        deadline = time.monotonic() + timeout
        while self.phase == RUNNING:
            wait = self.step()
            if self.phase != RUNNING:
                break
            if time.monotonic() > deadline:
                self.phase, self.message = ERROR, f"no decision within {timeout:g} s"
                break
            if stop is not None and stop.wait(min(wait, 0.5) if wait else 0.05):
                self.phase = SUCCESSFUL
            elif stop is None:
                time.sleep(min(wait, 0.5) if wait else 0.05)
        if self.finished is None:
            self.finished = time.monotonic()
        return self.phase


def _short(value: Any) -> str:
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, list):
        return (
            "["
            + ", ".join(_short(v) for v in value[:4])
            + (", ..." if len(value) > 4 else "")
            + "]"
        )
    return str(value)[:80]
