"""The Grafana dashboards: reproducible from code, provisioned, and every query valid PromQL."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.monitoring.conftest import load, run_promtool

dashboards = load("grafana/dashboards.py")


def test_committed_dashboards_and_provisioning_are_what_the_code_generates() -> None:
    generated = dashboards.files()
    on_disk = set((dashboards.OUT).glob("*.json"))
    assert on_disk == {p for p in generated if p.suffix == ".json"}, "stray or missing dashboard"
    for path, text in generated.items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} is stale: make monitoring"


def test_provisioning_points_grafana_at_the_dashboards_and_the_data_source() -> None:
    sources = yaml.safe_load((dashboards.PROVISIONING / "datasources" / "arbx.yml").read_text())
    providers = yaml.safe_load((dashboards.PROVISIONING / "dashboards" / "arbx.yml").read_text())
    assert sources["apiVersion"] == providers["apiVersion"] == 1
    (source,) = sources["datasources"]
    assert (source["type"], source["uid"]) == ("prometheus", dashboards.DATASOURCE_UID)
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == dashboards.DASHBOARD_DIR
    for name in dashboards.DASHBOARDS:
        doc = json.loads(dashboards.render(name))
        assert doc["uid"] == name
        ids = [p["id"] for p in doc["panels"]]
        assert len(set(ids)) == len(ids)
        for panel in doc["panels"]:
            assert panel["datasource"]["uid"] == dashboards.DATASOURCE_UID, panel["title"]
            assert panel["targets"], panel["title"]


def test_the_dashboards_show_what_operators_need() -> None:
    text = {name: dashboards.render(name) for name in dashboards.DASHBOARDS}
    wanted = {
        "arbx-overview": [
            "arbx_mode",
            "arbx_capital_stage",
            "arbx_kill_switch_engaged",
            "arbx_opportunities_expected_profit_eth_total",
            "arbx_bundles_realized_profit_eth_total",
            'outcome=\\"included\\"',
        ],
        "arbx-latency": ["arbx_block_to_opportunities_seconds", "arbx_head_to_bundle_seconds"],
        "arbx-sync-rpc": [
            "arbx_sync_lag_blocks",
            "arbx_sync_lag_seconds",
            "arbx_parity_failures_total",
            "arbx_reorgs_total",
            "arbx_rpc_errors_total",
            "arbx_rpc_failovers_total",
        ],
        "arbx-bundles": ["sum by (builder, outcome) (rate(arbx_bundles_total"],
        "arbx-api": ["arbx_api_requests_total", "arbx_api_request_duration_seconds_bucket"],
    }
    for name, needles in wanted.items():
        for needle in needles:
            assert needle in text[name], f"{name} lacks {needle}"


def test_every_panel_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    rules = [
        {"record": f"arbx:panel:{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, (_, _, expr) in enumerate(dashboards.queries())
    ]
    assert len(rules) >= 30
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    out = run_promtool(promtool, "check", "rules", str(path))
    assert f"SUCCESS: {len(rules)} rules found" in out
