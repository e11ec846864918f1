"""The searcher's Grafana dashboards, in code (grafana-foundation-sdk, Grafana 11.6 builds).

``python deploy/grafana/dashboards.py`` (``make monitoring``) rewrites the JSON dashboards in
``deploy/grafana/dashboards/`` and the provisioning files (one Prometheus data source, one file
provider) in ``deploy/grafana/provisioning/``; the tests regenerate them and compare. Every panel
reads the series that ``arbx.metrics`` exposes, from the engine (job ``arbx-engine``) and the API
(job ``arbx-api``). ``queries()`` lists every panel's PromQL for the tests that evaluate them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as pb
from grafana_foundation_sdk.builders import stat as sb
from grafana_foundation_sdk.builders import timeseries as tb
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    ValueMap,
    ValueMappingResult,
)

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
PROVISIONING = HERE / "provisioning"
DATASOURCE_UID = "arbx-prometheus"
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
DASHBOARD_DIR = "/var/lib/grafana/dashboards/arbx"  # where the provider reads the JSON
E = 'job="arbx-engine"'
A = 'job="arbx-api"'
W = "$__rate_interval"
_ids = [0]  # panel ids, numbered from 1 in each dashboard (``_dashboard`` restarts them)


@dataclass(frozen=True, slots=True)
class Q:
    """One query of a panel: PromQL and its legend."""

    expr: str
    legend: str = ""


def _target(q: Q, ref: str) -> pb.Dataquery:
    t = pb.Dataquery().expr(q.expr).ref_id(ref).datasource(DATASOURCE)
    return t.legend_format(q.legend) if q.legend else t


def _targets(panel: Any, queries: tuple[Q, ...]) -> Any:
    _ids[0] += 1
    panel = panel.id(_ids[0])
    for i, q in enumerate(queries):
        panel = panel.with_target(_target(q, chr(ord("A") + i)))
    return panel


def stat(title: str, *queries: Q, unit: str = "none", mapping: dict[str, str] | None = None) -> Any:
    """A single-value panel."""
    panel = (
        sb.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(4)
        .span(4)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]))
    )
    if mapping:
        options = {k: ValueMappingResult(text=v) for k, v in mapping.items()}
        panel = panel.mappings([ValueMap(options=options)])
    if queries and queries[0].legend.startswith("{{"):
        panel = panel.text_mode(common.BigValueTextMode.NAME)
    return _targets(panel, queries)


def series(title: str, *queries: Q, unit: str = "none", span: int = 12) -> Any:
    """A time-series panel."""
    panel = (
        tb.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(8)
        .span(span)
        .legend(cb.VizLegendOptions().show_legend(True).display_mode(common.LegendDisplayMode.LIST))
    )
    return _targets(panel, queries)


def quantiles(metric: str, job: str, by: str = "") -> tuple[Q, ...]:
    """p50, p90 and p99 of a latency histogram."""
    keys = f"le{', ' + by if by else ''}"
    legend = f"{{{{{by}}}}} " if by else ""
    return tuple(
        Q(
            f"histogram_quantile({q}, sum by ({keys}) (rate({metric}_bucket{{{job}}}[{W}])))",
            f"{legend}p{int(q * 100)}",
        )
        for q in (0.5, 0.9, 0.99)
    )


def overview() -> db.Dashboard:
    """Mode, stage, kill switch, expected and realized profit, inclusion rate."""
    return (
        _dashboard("arbx-overview", "ARBX overview", "The searcher at a glance.")
        .with_panel(stat("Engine up", Q(f"up{{{E}}}"), mapping={"0": "DOWN", "1": "up"}))
        .with_panel(stat("Mode", Q(f"arbx_mode{{{E}}} == 1", "{{mode}}")))
        .with_panel(stat("Capital stage", Q(f"arbx_capital_stage{{{E}}}")))
        .with_panel(
            stat(
                "Kill switch",
                Q(f"arbx_kill_switch_engaged{{{E}}}"),
                mapping={"0": "off", "1": "ENGAGED"},
            )
        )
        .with_panel(
            stat(
                "Heartbeat age",
                Q(f"time() - arbx_engine_heartbeat_timestamp_seconds{{{E}}}"),
                unit="s",
            )
        )
        .with_panel(stat("Signer lock epoch", Q(f"max(arbx_signer_lock_epoch{{{E}}})")))
        .with_panel(
            series(
                "Expected and realized profit (ETH per hour)",
                Q(
                    f"sum(increase(arbx_opportunities_expected_profit_eth_total{{{E}}}[1h]))",
                    "expected, all opportunities",
                ),
                Q(
                    f"sum(increase(arbx_opportunities_capturable_profit_eth_total{{{E}}}[1h]))",
                    "capturable (best pool-disjoint set per block)",
                ),
                Q(
                    f"sum(increase(arbx_bundles_expected_profit_eth_total{{{E}}}[1h]))",
                    "expected, included bundles",
                ),
                Q(
                    f"sum(increase(arbx_bundles_realized_profit_eth_total{{{E}}}[1h]))"
                    f" - sum(increase(arbx_bundles_realized_loss_eth_total{{{E}}}[1h]))",
                    "realized",
                ),
                Q(f"sum(increase(arbx_gas_spent_eth_total{{{E}}}[1h]))", "gas"),
                span=12,
            )
        )
        .with_panel(
            series(
                "Inclusion rate",
                Q(
                    f'sum(rate(arbx_bundles_total{{{E}, outcome="included"}}[15m]))'
                    f' / sum(rate(arbx_bundles_total{{{E}, outcome="sent"}}[15m]))',
                    "included / sent",
                ),
                unit="percentunit",
            )
        )
        .with_panel(
            series(
                "Opportunities per minute",
                Q(f"sum(rate(arbx_opportunities_found_total{{{E}}}[{W}])) * 60", "found"),
                Q(
                    f"sum(rate(arbx_opportunities_capturable_total{{{E}}}[{W}])) * 60",
                    "capturable",
                ),
            )
        )
        .build()
    )


def latency() -> db.Dashboard:
    """Block-to-opportunities, head-to-bundle and RPC latency."""
    return (
        _dashboard("arbx-latency", "ARBX latency", "Where a block's time goes.")
        .with_panel(
            series(
                "Block to opportunities",
                *quantiles("arbx_block_to_opportunities_seconds", E),
                unit="s",
                span=12,
            )
        )
        .with_panel(
            series("Head to bundle", *quantiles("arbx_head_to_bundle_seconds", E), unit="s")
        )
        .with_panel(
            series(
                "RPC latency p99 by method",
                Q(
                    "histogram_quantile(0.99, sum by (le, method)"
                    f" (rate(arbx_rpc_request_duration_seconds_bucket{{{E}}}[{W}])))",
                    "{{method}}",
                ),
                unit="s",
            )
        )
        .build()
    )


def sync_rpc() -> db.Dashboard:
    """Sync lag, pools, parity, reorgs, RPC requests, errors and failovers."""
    return (
        _dashboard("arbx-sync-rpc", "ARBX sync and RPC", "Is the state right and the node fast?")
        .with_panel(
            series(
                "Sync lag (blocks)",
                Q(f"arbx_sync_lag_blocks{{{E}}}", "{{instance}}"),
                span=6,
            )
        )
        .with_panel(
            series(
                "Sync lag (seconds)",
                Q(f"arbx_sync_lag_seconds{{{E}}}", "{{instance}}"),
                unit="s",
                span=6,
            )
        )
        .with_panel(series("Pools tracked", Q(f"arbx_pools_tracked{{{E}}}", "{{instance}}")))
        .with_panel(
            series(
                "Parity checks and failures per minute",
                Q(f"sum(rate(arbx_parity_checks_total{{{E}}}[{W}])) * 60", "checked"),
                Q(f"sum(rate(arbx_parity_failures_total{{{E}}}[{W}])) * 60", "failed"),
            )
        )
        .with_panel(
            series(
                "Reorgs by depth (per hour)",
                Q(f"sum by (depth) (increase(arbx_reorgs_total{{{E}}}[1h]))", "depth {{depth}}"),
            )
        )
        .with_panel(
            series(
                "RPC requests per second",
                Q(
                    f"sum by (endpoint, method) (rate(arbx_rpc_requests_total{{{E}}}[{W}]))",
                    "{{endpoint}} {{method}}",
                ),
                unit="reqps",
            )
        )
        .with_panel(
            series(
                "RPC errors per second",
                Q(
                    f"sum by (endpoint, method) (rate(arbx_rpc_errors_total{{{E}}}[{W}]))",
                    "{{endpoint}} {{method}}",
                ),
                unit="reqps",
            )
        )
        .with_panel(
            series(
                "RPC endpoints up, failovers, hedged reads",
                Q(f"arbx_rpc_endpoint_up{{{E}}}", "endpoint {{endpoint}} up"),
                Q(f"sum(increase(arbx_rpc_failovers_total{{{E}}}[{W}]))", "failovers"),
                Q(f"sum(increase(arbx_rpc_hedges_total{{{E}}}[{W}]))", "hedged reads"),
            )
        )
        .build()
    )


def bundles() -> db.Dashboard:
    """Bundles by builder and outcome; money against the daily caps; the signer lock."""
    return (
        _dashboard("arbx-bundles", "ARBX bundles", "What was sent, and what landed.")
        .with_panel(
            series(
                "Bundles by builder and outcome (per minute)",
                Q(
                    f"sum by (builder, outcome) (rate(arbx_bundles_total{{{E}}}[{W}])) * 60",
                    "{{builder}} {{outcome}}",
                ),
            )
        )
        .with_panel(
            series(
                "Daily gas and loss against the caps (ETH)",
                Q(f"arbx_risk_daily_gas_eth{{{E}}}", "gas today"),
                Q(f"arbx_risk_daily_gas_cap_eth{{{E}}}", "gas cap"),
                Q(f"arbx_risk_daily_loss_eth{{{E}}}", "loss today"),
                Q(f"arbx_risk_daily_loss_cap_eth{{{E}}}", "loss cap"),
            )
        )
        .with_panel(
            series(
                "Signer lock",
                Q(f"arbx_signer_lock_held{{{E}}}", "held {{instance}}"),
                Q(f"arbx_signer_lock_epoch{{{E}}}", "epoch {{instance}}"),
                Q(f"arbx_signer_lock_refused{{{E}}}", "refused {{instance}}"),
            )
        )
        .with_panel(
            series(
                "Blocks since the last inclusion",
                Q(
                    f"arbx_head_block{{{E}}} - arbx_bundles_last_included_block{{{E}}}",
                    "{{instance}}",
                ),
            )
        )
        .build()
    )


def api() -> db.Dashboard:
    """API requests by route template and status, errors, latency, the process."""
    return (
        _dashboard("arbx-api", "ARBX API", "The REST API and the dashboard's backend.")
        .with_panel(
            series(
                "Requests per second by route and status",
                Q(
                    f"sum by (route, status) (rate(arbx_api_requests_total{{{A}}}[{W}]))",
                    "{{route}} {{status}}",
                ),
                unit="reqps",
            )
        )
        .with_panel(
            series(
                "5xx ratio",
                Q(
                    f'sum(rate(arbx_api_requests_total{{{A}, status=~"5.."}}[{W}]))'
                    f" / sum(rate(arbx_api_requests_total{{{A}}}[{W}]))",
                    "5xx",
                ),
                unit="percentunit",
            )
        )
        .with_panel(
            series(
                "Latency by route",
                *quantiles("arbx_api_request_duration_seconds", A, "route"),
                unit="s",
            )
        )
        .with_panel(
            series(
                "Process CPU and memory",
                Q(f"rate(process_cpu_seconds_total{{{A}}}[{W}])", "CPU {{instance}}"),
                Q(f"process_resident_memory_bytes{{{A}}} / 2^30", "RSS GiB {{instance}}"),
            )
        )
        .build()
    )


def _dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    _ids[0] = 0
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["arbx"])
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("utc")
        .editable()
    )


DASHBOARDS = {
    "arbx-overview": overview,
    "arbx-latency": latency,
    "arbx-sync-rpc": sync_rpc,
    "arbx-bundles": bundles,
    "arbx-api": api,
}


def render(name: str) -> str:
    """One dashboard as the committed JSON text."""
    return json.dumps(DASHBOARDS[name](), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def queries() -> Iterator[tuple[str, str, str]]:
    """Every panel query: (dashboard, panel title, PromQL)."""
    for name in DASHBOARDS:
        for panel in json.loads(render(name))["panels"]:
            for target in panel.get("targets", []):
                yield name, panel["title"], target["expr"]


DATASOURCES = f"""\
# Generated by deploy/grafana/dashboards.py (make monitoring); do not edit.
# The Prometheus that scrapes the searcher (deploy/prometheus/prometheus.yml); set its URL.
apiVersion: 1
datasources:
  - name: ARBX Prometheus
    uid: {DATASOURCE_UID}
    type: prometheus
    access: proxy
    url: http://127.0.0.1:9090
    isDefault: true
    jsonData:
      timeInterval: 15s
"""

PROVIDERS = f"""\
# Generated by deploy/grafana/dashboards.py (make monitoring); do not edit.
# Copy deploy/grafana/dashboards/*.json to {DASHBOARD_DIR} (or mount them there).
apiVersion: 1
providers:
  - name: arbx
    folder: ARBX
    type: file
    disableDeletion: true
    allowUiUpdates: false
    updateIntervalSeconds: 60
    options:
      path: {DASHBOARD_DIR}
"""


def files() -> dict[Path, str]:
    """Every generated file and its text."""
    out = {OUT / f"{name}.json": render(name) for name in DASHBOARDS}
    out[PROVISIONING / "datasources" / "arbx.yml"] = DATASOURCES
    out[PROVISIONING / "dashboards" / "arbx.yml"] = PROVIDERS
    return out


def main() -> int:
    """Write the dashboards and the provisioning files."""
    for path, text in files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
