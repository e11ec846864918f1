"""The metrics: Prometheus names that promtool accepts, bounded labels, the engine's endpoint."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from arbx.cli.args import port
from arbx.config import load_settings
from arbx.domain.errors import ConfigError
from arbx.metrics import record
from arbx.metrics.registry import API, ENGINE, LATENCY_BUCKETS
from arbx.metrics.server import MetricsServer, exposition, serving
from arbx.metrics.settings import MetricsSettings
from tests.monitoring.conftest import run_promtool

ROOT = Path(__file__).resolve().parents[2]
ADDR = "0x00000000000000000000000000000000000000aa"


def _exercise_every_helper() -> None:
    record.engine_started("0.1.0", "devnet")
    record.head_seen(105)
    record.observe_block(100, 0.004, block_timestamp=int(time.time()) - 3)
    record.pools_tracked(12)
    record.parity_checked(12, 0)
    record.reorg(2)
    record.reorg(9)
    record.discovery_refused("emitter")
    record.discovery_refused("not a reason")
    record.rpc_request(record.endpoint_label(0), "eth_getLogs", True, 0.003)
    record.rpc_request(record.endpoint_label(1, "backup"), "eth_call", False, 0.2)
    record.rpc_failover()
    record.opportunities_found(3, 2 * 10**15)
    record.opportunities_capturable(1, 10**15)
    record.bundle_outcome("local", "sent")
    record.bundle_outcome("local", "included")
    record.head_to_bundle(0.012)
    record.bundle_settled(
        block=101, expected_wei=10**15, realized_wei=9 * 10**14, gas_wei=10**14, included=True
    )
    record.mode("limited", 1)
    record.kill_switch(False)
    record.risk_day(gas_wei=10**14, gas_cap_wei=5 * 10**16, loss_wei=0, loss_cap_wei=10**17)
    record.signer_lock(ADDR, epoch=3, holder="host:42:abcd1234")
    record.api_request("/api/v1/status", "GET", 200, 0.002)


_FRESH = """
import sys
from arbx.metrics.registry import API, ENGINE
from arbx.metrics.server import exposition
from tests.monitoring.test_metrics import _exercise_every_helper
_exercise_every_helper()
sys.stdout.buffer.write(exposition(ENGINE) + b"\\0" + exposition(API))
"""


def _fresh_expositions() -> tuple[bytes, bytes]:
    """The engine's and the API's expositions after every helper ran once, in a new process
    (the registries are the process's own: other tests in this one have moved them)."""
    done = subprocess.run(
        [sys.executable, "-c", _FRESH], capture_output=True, check=True, cwd=ROOT, timeout=60
    )
    engine, api = done.stdout.split(b"\0")
    return engine, api


def test_what_the_engine_and_the_api_expose_passes_promtool(promtool: str) -> None:
    engine_text, api_text = _fresh_expositions()
    for text in (engine_text, api_text):
        out = run_promtool(promtool, "check", "metrics", stdin=text)
        assert "error" not in out.lower()
        assert b"process_resident_memory_bytes" in text  # the process's own metrics
    engine = engine_text.decode()
    for name in (
        "arbx_block_to_opportunities_seconds_bucket",
        "arbx_head_to_bundle_seconds_bucket",
        "arbx_sync_lag_blocks 5.0",
        "arbx_pools_tracked 12.0",
        'arbx_reorgs_total{depth="5+"} 1.0',
        'arbx_discovery_refused_total{reason="other"} 1.0',
        'arbx_rpc_errors_total{endpoint="backup",method="eth_call"} 1.0',
        'arbx_bundles_total{builder="local",outcome="included"} 1.0',
        'arbx_mode{mode="limited"} 1.0',
        f'arbx_signer_lock_epoch{{signer="{ADDR}"}} 3.0',
        "arbx_bundles_last_included_block 101.0",
    ):
        assert name in engine, name
    assert "arbx_api_requests_total" not in engine  # each process exposes its own


def test_latency_buckets_resolve_one_millisecond_to_two_seconds() -> None:
    assert LATENCY_BUCKETS[0] == 0.001
    assert LATENCY_BUCKETS[-1] == 2.0
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)


def test_labels_stay_bounded() -> None:
    record.rpc_request("https://node.example/v3/SECRETKEY", "eth_call", True, 0.01)
    record.bundle_outcome("builder with spaces", "weird")
    record.api_request("not-a-template", "BREW", 418, 0.01)
    engine, api = exposition(ENGINE).decode(), exposition(API).decode()
    assert "SECRETKEY" not in engine
    assert 'arbx_rpc_requests_total{endpoint="other",method="eth_call"}' in engine
    assert 'arbx_bundles_total{builder="other",outcome="other"} 1.0' in engine
    assert 'arbx_api_requests_total{method="other",route="unmatched",status="418"} 1.0' in api
    assert record.endpoint_label(2, "https://x") == "2"


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def test_the_engine_serves_metrics_and_health_on_its_own_port() -> None:
    server = MetricsServer("127.0.0.1", 0, max_age=30).start()
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        status, ctype, body = _get(server.url)
        assert status == 200
        assert ctype.startswith("text/plain; version=")
        assert b"arbx_engine_heartbeat_timestamp_seconds" in body
        record.heartbeat()
        health = server.url.replace("/metrics", "/healthz")
        status, _, body = _get(health)
        assert (status, body[:2]) == (200, b"ok")
        record.heartbeat(time.time() - 100)
        status, _, body = _get(health)
        assert status == 503
        assert body.startswith(b"heartbeat stale")
        assert _get(server.url.replace("/metrics", "/other"))[0] == 404
        with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{server.port}"):
            MetricsServer("127.0.0.1", server.port)
    finally:
        record.heartbeat()
        server.close()


def test_the_metrics_port_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().metrics.port == 9464
    monkeypatch.setenv("ARBX_METRICS__PORT", "9100")
    assert load_settings().metrics.port == 9100
    monkeypatch.setenv("ARBX_METRICS__PORT", "70000")
    with pytest.raises(ConfigError, match=r"metrics\.port"):
        load_settings()


def test_a_taken_port_is_one_error_or_any_free_port_for_a_local_run() -> None:
    first = MetricsServer("127.0.0.1", 0).start()
    try:
        taken = MetricsSettings(port=first.port)
        with pytest.raises(ConfigError, match="cannot serve metrics"), serving(taken):
            pass
        with serving(taken, any_port_if_taken=True) as other:
            assert other is not None
            assert other.port != first.port
            assert _get(other.url)[0] == 200
        with serving(MetricsSettings(enabled=False)) as off:
            assert off is None
    finally:
        first.close()


@pytest.mark.parametrize("text", ["65536", "²", "-1", "80a", "123456"])
def test_the_metrics_port_option_refuses_what_is_not_a_port(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not a port"):
        port(text)
    assert port("0") == 0
    assert port("9464") == 9464
