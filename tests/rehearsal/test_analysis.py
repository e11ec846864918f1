"""The analysis language and AnalysisRun semantics the rehearsal executes the manifests with."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rehearsal.analysis import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
    AnalysisRun,
    resolve_args,
    substitute,
)
from rehearsal.manifests import ManifestError, Manifests, duration

from rehearsal import expr


@pytest.mark.parametrize(
    ("source", "result", "expected"),
    [
        ("result[0] <= 0.01", [0.005], True),
        ("result[0] <= 0.01", [0.02], False),
        ("result[0] <= 0.01", [math.nan], False),
        ("len(result) == 0 || result[0] < 0.5", [], True),
        ("len(result) == 0 || result[0] < 0.5", [0.7], False),
        ("result == 'true'", "true", True),
        ("result.ok && !(result.errors > 0)", {"ok": True, "errors": 0}, True),
        ("asFloat(result) >= 2 and not isNaN(asFloat(result))", "2.5", True),
        ("result[0] * 100 - 1 > 4 / 2", [0.05], True),
        ("-result[0] < 0", [1], True),
    ],
)
def test_conditions_mean_what_argo_means(source: str, result: object, expected: bool) -> None:
    assert expr.condition(source, result) is expected


@pytest.mark.parametrize(
    ("source", "result", "message"),
    [
        ("result[0] <= 0.01", [], "out of range"),
        ("__import__('os')", 1, "unknown name"),
        ("result <= ", 1, "unexpected"),
        ("result[0] <= 'x'", [1.0], "cannot compare"),
        ("result", 1, "needs true or false"),
        ("(" * 60 + "true" + ")" * 60, 1, "nested too deeply"),
        ("x" * 3000, 1, "longer than"),
        ("||".join(["true"] * 199), 1, "needs true or false|"),
        ("result ; 1", 1, "unexpected character"),
    ],
)
def test_bad_conditions_are_one_clear_error(source: str, result: object, message: str) -> None:
    with pytest.raises(expr.ExprError, match=message):
        expr.condition(source, result)


def test_durations() -> None:
    assert duration("10s") == 10
    assert duration("1m30s") == 90
    assert duration("500ms") == 0.5
    assert duration(30) == 30
    assert duration("30") == 30
    with pytest.raises(ManifestError):
        duration("ten")


TEMPLATE = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: sample}
spec:
  args:
    - {name: canary-hash}
    - {name: address, value: "http://127.0.0.1:1"}
  metrics:
    - name: ok
      interval: 50ms
      count: 3
      failureLimit: 1
      successCondition: result.ok == true
      provider:
        web:
          url: "{{args.address}}/{{args.canary-hash}}"
          jsonPath: "{$.data}"
"""


def test_args_come_from_defaults_the_rollout_and_the_pod_template_hash() -> None:
    template = Manifests.parse(TEMPLATE).get("AnalysisTemplate", "sample")
    given = [{"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}]
    args = resolve_args(template, given, {"Stable": "v1", "Latest": "v2"})
    assert args == {"canary-hash": "v2", "address": "http://127.0.0.1:1"}
    with pytest.raises(ManifestError, match="canary-hash has no value"):
        resolve_args(template, [], {})
    with pytest.raises(ManifestError, match="which has no value"):
        substitute("{{args.missing}}", args)


@pytest.fixture
def answers() -> Iterator[tuple[str, list[object]]]:
    """A real HTTP server answering each GET with the next queued JSON body."""
    queue: list[object] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = queue.pop(0) if queue else {"data": {"ok": True}}
            if body == 500:
                self.send_error(500)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", queue
    finally:
        server.shutdown()


def _run(address: str, **overrides: object) -> AnalysisRun:
    manifests = Manifests.parse(TEMPLATE)
    run = AnalysisRun.from_templates(
        "t", manifests, [{"templateName": "sample"}],
        [{"name": "canary-hash", "value": "v2"}], {}, {"address": address}, log=lambda _: None,
    )  # fmt: skip
    run.metrics[0].spec.update(overrides)
    return run


def test_a_run_succeeds_after_its_count(answers: tuple[str, list[object]]) -> None:
    address, queue = answers
    queue += [{"data": {"ok": True}}, {"data": {"ok": False}}, {"data": {"ok": True}}]
    run = _run(address)
    assert run.run(timeout=10) == SUCCESSFUL  # one failure is within failureLimit 1
    assert [m.phase for m in run.metrics[0].measurements] == [SUCCESSFUL, FAILED, SUCCESSFUL]


def test_a_run_fails_past_its_failure_limit(answers: tuple[str, list[object]]) -> None:
    address, queue = answers
    queue += [{"data": {"ok": False}}, {"data": {"ok": False}}]
    run = _run(address)
    assert run.run(timeout=10) == FAILED
    assert len(run.metrics[0].measurements) == 2
    assert "metric ok failed" in run.message


def test_errors_fail_a_run_past_the_consecutive_limit(answers: tuple[str, list[object]]) -> None:
    address, queue = answers
    queue += [500, 500, {"data": {"ok": True}}, 500, 500, 500]
    run = _run(address, consecutiveErrorLimit=2, count=10)
    assert run.run(timeout=10) == FAILED
    assert [m.phase for m in run.metrics[0].measurements] == [ERROR] * 2 + [SUCCESSFUL] + [
        ERROR
    ] * 3


def test_neither_condition_is_inconclusive(answers: tuple[str, list[object]]) -> None:
    address, queue = answers
    queue += [{"data": {"ok": False, "bad": False}}]
    run = _run(address, failureCondition="result.bad")
    assert run.run(timeout=10) == INCONCLUSIVE


def test_a_background_run_measures_until_stopped(answers: tuple[str, list[object]]) -> None:
    address, _ = answers
    run = _run(address)
    del run.metrics[0].spec["count"]
    stop = threading.Event()
    threading.Timer(0.4, stop.set).start()
    assert run.run(stop, timeout=10) == SUCCESSFUL
    assert len(run.metrics[0].measurements) >= 3
