"""The alert rules: generated from one source, valid, documented, and proven by promtool."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.monitoring.conftest import DEPLOY, ROOT, load, run_promtool

alerts = load("prometheus/alerts.py")
UNIT_TESTS = DEPLOY / "prometheus" / "tests" / "arbx-alerts.test.yml"


def test_committed_rules_are_what_the_source_generates() -> None:
    assert alerts.RULES_FILE.read_text(encoding="utf-8") == alerts.rules_yaml(), (
        "rules file is stale: make monitoring"
    )
    assert alerts.OPERATOR_FILE.read_text(encoding="utf-8") == alerts.operator_yaml(), (
        "PrometheusRule is stale: make monitoring"
    )


def test_the_prometheus_rule_carries_the_same_groups() -> None:
    plain = yaml.safe_load(alerts.RULES_FILE.read_text(encoding="utf-8"))
    operator = yaml.safe_load(alerts.OPERATOR_FILE.read_text(encoding="utf-8"))
    assert operator["apiVersion"] == "monitoring.coreos.com/v1"
    assert operator["kind"] == "PrometheusRule"
    assert operator["spec"]["groups"] == plain["groups"]


@pytest.mark.parametrize("alert", alerts.ALERTS, ids=lambda a: a.name)
def test_every_alert_has_a_severity_a_summary_and_a_runbook(alert: object) -> None:
    rule = alerts._rule(alert, "production")
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["annotations"]["summary"]
    url = rule["annotations"]["runbook_url"]
    page = ROOT / url
    assert page.is_file(), f"{url} is missing"
    text = page.read_text(encoding="utf-8")
    assert text.startswith(f"# {rule['alert']}\n")
    for section in ("**Means.**", "**Check.**", "**Act"):
        assert section in text, f"{url} lacks {section}"
    assert re.search(r"`arbx [a-z]", text), f"{url} names no arbx command to act with"


def test_promtool_accepts_the_config_and_both_profiles(promtool: str, tmp_path: Path) -> None:
    out = run_promtool(promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert f"SUCCESS: {len(alerts.ALERTS)} rules found" in out
    short = tmp_path / "test-profile.yml"
    assert alerts.main(["--profile", "test", "--out", str(short)]) == 0
    run_promtool(promtool, "check", "rules", str(short))
    fors = {r["for"] for g in yaml.safe_load(short.read_text())["groups"] for r in g["rules"]}
    assert fors <= {"0s", alerts.TEST_FOR}


def test_promtool_unit_tests_pass(promtool: str) -> None:
    out = run_promtool(promtool, "test", "rules", str(UNIT_TESTS))
    assert "SUCCESS" in out


def test_every_alert_is_tested_firing_and_silent() -> None:
    doc = yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))
    fires: set[str] = set()
    silent: set[str] = set()
    for case in doc["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {a.name for a in alerts.ALERTS}
    assert names - fires == set(), "alerts never shown firing"
    assert names - silent == set(), "alerts never shown silent"
