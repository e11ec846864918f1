"""The release strategies in the rendered manifests, checked offline: the Argo Rollouts and
AnalysisTemplates pass Argo's models and carry no unknown key; every template a Rollout names
exists and gets exactly the arguments it needs; every Prometheus query parses, names only metrics
the code exports, and with its success condition passes a good version and fails a bad one
(``promtool test rules`` on made-up series, the other version's series beside them); every
Service selects pods that exist; the engine's handover fits in the time Argo leaves it."""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from arbx.cli import build_parser
from arbx.metrics import registry
from tests.deploy.model_keys import unknown_keys
from tests.deploy.test_k8s_manifests import BIN, K8S, OVERLAYS, Docs, _models, _one, pod_specs

ROOT = Path(__file__).resolve().parents[2]
ROLLBACK_DOC = ROOT / "docs" / "deploy" / "rollback.md"
ANALYSES = {
    "canary": ("analysis",),
    "blueGreen": ("prePromotionAnalysis", "postPromotionAnalysis"),
}
_ARG = re.compile(r"\{\{\s*args\.([\w-]+)\s*\}\}")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")
_CONDITION = re.compile(r"result\[0\] (<=|>=|==|<|>) (-?[0-9.e+-]+)")


SIGNING = "production+signing"  # production once its settings go live
ALL = (*OVERLAYS, SIGNING)


def _render(path: Path) -> Docs:
    text = subprocess.run(
        [BIN / "kubectl", "kustomize", path], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Docs]:
    """Each overlay rendered by the pinned kubectl's kustomize, and production with the signing
    component added as its kustomization.yaml says (a copy of the overlay, pointed at the base
    and the component; the checkout is left as it is)."""
    docs = {overlay: _render(K8S / "overlays" / overlay) for overlay in OVERLAYS}
    copy_dir = tmp_path_factory.mktemp("overlay") / "production"
    shutil.copytree(K8S / "overlays" / "production", copy_dir)
    kustomization = yaml.safe_load((copy_dir / "kustomization.yaml").read_text())
    base = os.path.relpath(K8S / "base", copy_dir)
    kustomization["resources"] = [
        base if r == "../../base" else r for r in kustomization["resources"]
    ]
    kustomization["components"] = [os.path.relpath(K8S / "components" / "signing", copy_dir)]
    (copy_dir / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    docs[SIGNING] = _render(copy_dir)
    return docs


def _kind(docs: Docs, kind: str) -> Docs:
    return [d for d in docs if d["kind"] == kind]


def _analyses(rollout: dict[str, Any]) -> list[dict[str, Any]]:
    """The analysis blocks of a Rollout's strategy (background, pre- and post-promotion)."""
    ((strategy, spec),) = rollout["spec"]["strategy"].items()
    return [spec[key] for key in ANALYSES[strategy] if key in spec]


def _queries(template: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric name, query, successCondition) of each Prometheus metric of a template."""
    return [
        (m["name"], m["provider"]["prometheus"]["query"], m["successCondition"])
        for m in template["spec"]["metrics"]
        if "prometheus" in m["provider"]
    ]


def _exported() -> set[str]:
    """Every sample name the engine's and the API's registries can expose."""
    names: set[str] = set()
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
        "summary": ("", "_sum", "_count"),
        "info": ("_info",),
    }
    for reg in (registry.ENGINE, registry.API):
        assert isinstance(reg, CollectorRegistry)
        for family in reg.collect():
            names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


# --- models and keys -------------------------------------------------------------------------
def test_rollouts_and_templates_are_in_every_overlay(rendered: dict[str, Docs]) -> None:
    for overlay, docs in rendered.items():
        rollouts = {d["metadata"]["name"]: d for d in _kind(docs, "Rollout")}
        assert set(rollouts) == {"arbx-api", "arbx-web", "arbx-engine"}, overlay
        assert set(rollouts["arbx-api"]["spec"]["strategy"]) == {"canary"}
        assert set(rollouts["arbx-web"]["spec"]["strategy"]) == {"blueGreen"}
        assert set(rollouts["arbx-engine"]["spec"]["strategy"]) == {"blueGreen"}
        templates = {d["metadata"]["name"] for d in _kind(docs, "AnalysisTemplate")}
        assert templates == {
            "arbx-api-canary", "arbx-web-preview", "arbx-engine-preview", "arbx-engine-handover"
        }  # fmt: skip
        providers = {
            key
            for t in _kind(docs, "AnalysisTemplate")
            for m in t["spec"]["metrics"]
            for key in m["provider"]
        }
        assert providers == {"prometheus", "job", "web"}
        for doc in _kind(docs, "Rollout") + _kind(docs, "AnalysisTemplate"):
            assert unknown_keys(doc) == [], (overlay, doc["metadata"]["name"])


def test_the_models_refuse_a_wrong_rollout_and_the_walk_an_unknown_key(
    rendered: dict[str, Docs],
) -> None:
    docs = rendered["production"]
    engine = copy.deepcopy(_one(docs, "Rollout", "arbx-engine"))
    del engine["spec"]["strategy"]["blueGreen"]["activeService"]
    template = copy.deepcopy(_one(docs, "AnalysisTemplate", "arbx-api-canary"))
    template["spec"]["metrics"][0]["interval"] = 30  # a duration is a string
    result = _models([engine, template])
    assert result.returncode == 1
    assert "Rollout/arbx-engine: invalid" in result.stdout
    assert "activeService" in result.stdout
    assert "AnalysisTemplate/arbx-api-canary: invalid" in result.stdout
    # keys the validators accept silently, and the walk finds
    engine = copy.deepcopy(_one(docs, "Rollout", "arbx-engine"))
    engine["spec"]["strategy"]["blueGreen"]["scaleDownDelaySecond"] = 600
    engine["spec"]["workloadRef"]["scaledown"] = "never"
    assert _models([engine]).returncode == 0
    assert sorted(unknown_keys(engine)) == [
        "/spec/strategy/blueGreen/scaleDownDelaySecond",
        "/spec/workloadRef/scaledown",
    ]
    template = copy.deepcopy(_one(docs, "AnalysisTemplate", "arbx-engine-preview"))
    metrics = template["spec"]["metrics"]
    metrics[1]["sucessCondition"] = "result[0] == 0"
    job_pod = metrics[0]["provider"]["job"]["spec"]["template"]["spec"]
    job_pod["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    assert _models([template]).returncode == 0
    assert sorted(unknown_keys(template)) == [
        "/spec/metrics/0/provider/job/spec/template/spec/containers/0/securityContext"
        "/readOnlyRootFileSystem",
        "/spec/metrics/1/sucessCondition",
    ]


# --- references --------------------------------------------------------------------------------
@pytest.mark.parametrize("overlay", ALL)
def test_every_template_a_rollout_names_exists_with_the_args_it_is_given(
    rendered: dict[str, Docs], overlay: str
) -> None:
    docs = rendered[overlay]
    templates = {d["metadata"]["name"]: d for d in _kind(docs, "AnalysisTemplate")}
    used = set()
    for rollout in _kind(docs, "Rollout"):
        for analysis in _analyses(rollout):
            given = {a["name"] for a in analysis.get("args", [])}
            for ref in analysis["templates"]:
                name = ref["templateName"]
                assert name in templates, f"{rollout['metadata']['name']} names {name}"
                used.add(name)
                declared = templates[name]["spec"]["args"]
                assert given <= {a["name"] for a in declared}, f"{name}: unknown args"
                needed = {a["name"] for a in declared if "value" not in a and "valueFrom" not in a}
                assert needed <= given, f"{name} needs {needed - given}"
            for arg in analysis.get("args", []):
                assert ("value" in arg) != ("valueFrom" in arg), arg
                source = arg.get("valueFrom", {})
                assert set(source) <= {"podTemplateHashValue", "fieldRef"}, arg
                if "podTemplateHashValue" in source:
                    assert source["podTemplateHashValue"] in {"Stable", "Latest"}
    unused = set(templates) - used  # the handover waits for components/signing
    assert unused == (set() if overlay == SIGNING else {"arbx-engine-handover"}), unused
    for name, template in templates.items():
        declared = {a["name"] for a in template["spec"]["args"]}
        referenced = set(_ARG.findall(yaml.safe_dump(template["spec"]["metrics"])))
        assert referenced == declared, f"{name}: declared {declared}, used {referenced}"


@pytest.mark.parametrize("overlay", ALL)
def test_services_select_pods_that_exist_and_rollouts_their_templates(
    rendered: dict[str, Docs], overlay: str
) -> None:
    docs = rendered[overlay]
    deployments = {d["metadata"]["name"]: d for d in _kind(docs, "Deployment")}
    pod_labels = [
        d["spec"]["template"]["metadata"]["labels"]
        for d in docs
        if d["kind"] in {"Deployment", "Job"}
    ]
    services = {d["metadata"]["name"]: d for d in _kind(docs, "Service")}
    for name, service in services.items():
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), name
    for rollout in _kind(docs, "Rollout"):
        name = rollout["metadata"]["name"]
        ref = rollout["spec"]["workloadRef"]
        assert (ref["apiVersion"], ref["kind"]) == ("apps/v1", "Deployment")
        template = deployments[ref["name"]]["spec"]
        labels = template["template"]["metadata"]["labels"]
        assert rollout["spec"]["selector"] == template["selector"], name
        assert rollout["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        assert "template" not in rollout["spec"], name
        ((_, spec),) = rollout["spec"]["strategy"].items()
        keys = ("activeService", "previewService", "stableService", "canaryService")
        for key in (k for k in keys if k in spec):
            service = services[spec[key]]
            assert service["spec"]["selector"].items() <= labels.items(), (name, key)
            assert service["metadata"]["labels"]["app.kubernetes.io/name"] == spec[key]
    # the Ingress sends traffic to Services that exist: the dashboard's active one, all the API
    ingress = _one(docs, "Ingress", "arbx")
    for path in ingress["spec"]["rules"][0]["http"]["paths"]:
        assert path["backend"]["service"]["name"] in services
    web = _one(docs, "Rollout", "arbx-web")["spec"]["strategy"]["blueGreen"]
    assert web["activeService"] == "arbx-dashboard"


@pytest.mark.parametrize("overlay", ALL)
def test_prometheus_scrapes_every_pod_once_with_its_pod_template_hash(
    rendered: dict[str, Docs], overlay: str
) -> None:
    docs = rendered[overlay]
    monitor = _one(docs, "ServiceMonitor", "arbx")["spec"]
    assert monitor["podTargetLabels"] == ["rollouts-pod-template-hash"]
    (expression,) = monitor["selector"]["matchExpressions"]
    scraped = {
        s["metadata"]["name"]
        for s in _kind(docs, "Service")
        if expression["key"] in s["metadata"]["labels"]
        and s["metadata"]["labels"][expression["key"]] in expression["values"]
    }
    assert expression["operator"] == "In"
    assert scraped == {"arbx-engine", "arbx-api"}  # every pod of the Rollout; not -preview etc.
    for name in scraped:
        service = _one(docs, "Service", name)
        assert set(service["spec"]["selector"]) == {"app.kubernetes.io/name"}


# --- the engine's release ------------------------------------------------------------------------
@pytest.mark.parametrize("overlay", ALL)
def test_the_engine_preview_is_judged_then_handed_the_lock_in_time(
    rendered: dict[str, Docs], overlay: str
) -> None:
    docs = rendered[overlay]
    green = _one(docs, "Rollout", "arbx-engine")["spec"]["strategy"]["blueGreen"]
    assert green["autoPromotionEnabled"] is True
    (pre,) = green["prePromotionAnalysis"]["templates"]
    assert pre["templateName"] == "arbx-engine-preview"
    hashes = {
        a["name"]: a["valueFrom"]["podTemplateHashValue"]
        for a in green["prePromotionAnalysis"]["args"]
    }
    assert hashes == {"preview-hash": "Latest", "active-hash": "Stable"}
    pods = pod_specs(docs)
    (compare,) = pods["arbx-engine-preview/compare"]["containers"]
    assert compare["command"] + compare["args"][:2] == ["arbx", "release", "compare"]
    filled = {"active-hash": "a1", "preview-hash": "p1", "replay-accept": ""}
    argv = [_fill(a, filled) for a in compare["args"]]
    assert "{{args.active-hash}}" in compare["args"]
    assert "{{args.preview-hash}}" in compare["args"]
    parsed = build_parser().parse_args(argv)
    assert (parsed.active, parsed.preview) == ("a1", "p1")
    # the second check: the preview's code replays the shipped window against the decisions the
    # active engine recorded; a difference fails unless the Rollout passes the acknowledged
    # digest (the template's default is none)
    assert parsed.replay_shipped is True
    accept = compare["args"][compare["args"].index("--replay-accept") + 1]
    assert accept == "{{args.replay-accept}}"
    declared = _one(docs, "AnalysisTemplate", "arbx-engine-preview")["spec"]["args"]
    assert {"name": "replay-accept", "value": ""} in declared
    assert "replay-accept" not in {a["name"] for a in green["prePromotionAnalysis"]["args"]}
    (engine,) = _one(docs, "Deployment", "arbx-engine")["spec"]["template"]["spec"]["containers"]
    release = next(e for e in engine["env"] if e["name"] == "ARBX_RELEASE")
    assert release["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['rollouts-pod-template-hash']"
    )
    if overlay != SIGNING:  # shadow: nothing signs, no standby, no signer lock to hand over
        assert "--standby" not in engine["args"]
        assert "postPromotionAnalysis" not in green
        return
    assert "--standby" in engine["args"]
    (post,) = green["postPromotionAnalysis"]["templates"]
    assert post["templateName"] == "arbx-engine-handover"
    handover = _one(docs, "AnalysisTemplate", "arbx-engine-handover")["spec"]["metrics"]
    (metric,) = handover
    job = metric["provider"]["job"]["spec"]
    (promote,) = job["template"]["spec"]["containers"]
    assert promote["command"] + promote["args"][:2] == ["arbx", "release", "promote"]
    options = dict(zip(promote["args"][2::2], promote["args"][3::2], strict=True))
    assert options["--to"] == "{{args.preview-hash}}"
    # Argo cancels a post-promotion analysis still running when scaleDownDelaySeconds ends, and
    # the old engine must still be there to release the lock: promote < Job deadline < delay
    job_deadline = job["activeDeadlineSeconds"]
    assert int(options["--timeout"]) < job_deadline < green["scaleDownDelaySeconds"]
    for name in ("arbx-engine-preview/compare", "arbx-engine-handover/handover"):
        (container,) = pods[name]["containers"]
        assert container["image"] == _engine_image(docs), name
        env = {e["name"]: e for e in container["env"]}
        assert env["ARBX_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "arbx-secrets"
        config = next(v for v in pods[name]["volumes"] if v["name"] == "settings")
        assert config["configMap"]["name"] == _one_kind(docs, "ConfigMap")["metadata"]["name"]


@pytest.mark.parametrize("overlay", ALL)
def test_every_arbx_command_in_the_manifests_is_one_arbx_takes(
    rendered: dict[str, Docs], overlay: str
) -> None:
    """The pods' and the analysis Jobs' command lines (the templates' arguments filled in as
    Argo would) parse with arbx's own parser; the engine always starts as a standby."""
    parser = build_parser()
    seen = {}
    for name, pod in pod_specs(rendered[overlay]).items():
        for container in pod["containers"]:
            if container.get("command") != ["arbx"]:
                continue
            argv = [_fill(a, {"preview-hash": "7c9f5d4b8", "active-hash": "5d8b7c6f4",
                              "replay-accept": ""})
                    for a in container["args"]]  # fmt: skip
            seen[name] = parser.parse_args(argv)
    assert {"arbx-engine", "arbx-api", "arbx-migrate"} <= set(seen)
    assert seen["arbx-engine-preview/compare"].preview == "7c9f5d4b8"
    assert seen["arbx-engine-preview/compare"].replay_accept is None  # empty: none acknowledged
    if overlay == SIGNING:  # a live mode: standbys, and the handover
        assert seen["arbx-engine"].standby is True
        assert seen["arbx-engine-handover/handover"].to == "7c9f5d4b8"


def _engine_image(docs: Docs) -> str:
    (engine,) = _one(docs, "Deployment", "arbx-engine")["spec"]["template"]["spec"]["containers"]
    return str(engine["image"])


def _one_kind(docs: Docs, kind: str) -> dict[str, Any]:
    (doc,) = _kind(docs, kind)
    return doc


@pytest.mark.parametrize("overlay", ALL)
def test_the_analysis_jobs_may_reach_the_database_and_dns(
    rendered: dict[str, Docs], overlay: str
) -> None:
    docs = rendered[overlay]
    policies = {p["metadata"]["name"]: p["spec"] for p in _kind(docs, "NetworkPolicy")}
    database = next(
        rule["to"]
        for rule in policies["arbx-engine"]["egress"]
        if {"protocol": "TCP", "port": 5432} in rule["ports"]
    )
    for template in _kind(docs, "AnalysisTemplate"):
        for metric in template["spec"]["metrics"]:
            if "job" not in metric["provider"]:
                continue
            labels = metric["provider"]["job"]["spec"]["template"]["metadata"]["labels"]
            egress = [
                rule
                for policy in policies.values()
                if _selects(policy["podSelector"], labels) and "Egress" in policy["policyTypes"]
                for rule in policy.get("egress", [])
            ]
            ports = {p["port"] for rule in egress for p in rule["ports"]}
            assert {53, 5432} <= ports, (template["metadata"]["name"], ports)
            assert any(
                rule["to"] == database for rule in egress if rule["ports"][0]["port"] == 5432
            )


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


# --- the queries ---------------------------------------------------------------------------------
def test_every_query_names_exported_metrics_and_selects_one_version(
    rendered: dict[str, Docs],
) -> None:
    exported = _exported()
    assert "arbx_api_requests_total" in exported  # the walk of the registries found the API's
    for template in _kind(rendered["production"], "AnalysisTemplate"):
        for name, query, condition in _queries(template):
            selected = set(_SELECTOR.findall(query))
            assert selected, name
            assert selected <= exported, f"{name}: {selected - exported} not exported"
            for selector in re.findall(r"\{[^}]*\}", query.replace("{{", "<").replace("}}", ">")):
                assert re.search(r'rollouts_pod_template_hash="<args\.[\w-]+>"', selector), name
            assert _CONDITION.fullmatch(condition), f"{name}: {condition}"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: make prometheus (apt-get install prometheus) first")
    return path


def _fill(query: str, args: dict[str, str]) -> str:
    return _ARG.sub(lambda m: args[m.group(1)], query)


def test_every_query_parses(rendered: dict[str, Docs], tmp_path: Path) -> None:
    rules = [
        {"record": f"arbx:analysis:{template['metadata']['name']}:{name}".replace("-", "_"),
         "expr": _fill(query, _SAMPLE_ARGS)}
        for template in _kind(rendered["production"], "AnalysisTemplate")
        for name, query, _ in _queries(template)
    ]  # fmt: skip
    assert len(rules) == 7
    path = tmp_path / "analysis.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "analysis", "rules": rules}]}))
    result = subprocess.run(
        [_promtool(), "check", "rules", path], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    bad = copy.deepcopy(rules)
    bad[0]["expr"] = bad[0]["expr"].replace(")", "", 1)
    path.write_text(yaml.safe_dump({"groups": [{"name": "analysis", "rules": bad}]}))
    result = subprocess.run(
        [_promtool(), "check", "rules", path], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0


_SAMPLE_ARGS = {"canary-hash": "c1", "stable-hash": "s1", "preview-hash": "p1", "active-hash": "a1"}
_API = 'job="arbx-api", rollouts_pod_template_hash="{h}", route="{r}", method="GET"'
_ENGINE = 'job="arbx-engine", rollouts_pod_template_hash="{h}"'


def _api(h: str, route: str, status: str, step: float) -> dict[str, str]:
    labels = _API.format(h=h, r=route)
    return {"series": f'arbx_api_requests_total{{{labels}, status="{status}"}}',
            "values": f"0+{step:g}x40"}  # fmt: skip


def _latency(h: str, within: str, step: float) -> list[dict[str, str]]:
    """A histogram whose every request took up to ``within`` seconds (one bucket)."""
    labels = _API.format(h=h, r="/api/v1/opportunities")
    bounds = ("0.05", "0.5", "1", "2", "+Inf")
    return [
        {"series": f'arbx_api_request_duration_seconds_bucket{{{labels}, le="{le}"}}',
         "values": f"0+{step:g}x40" if float(le) >= float(within) else "0x40"}
        for le in bounds
    ]  # fmt: skip


def _engine(
    h: str, parity: int, errors: int, requests: int, lag: int, lock: int = 0
) -> list[dict[str, str]]:
    labels = _ENGINE.format(h=h)
    return [
        {"series": f'arbx_signer_lock_held{{{labels}, signer="0xab"}}', "values": f"{lock}x40"},
        {"series": f"arbx_parity_failures_total{{{labels}}}", "values": f"{parity}x40"},
        {"series": f'arbx_rpc_errors_total{{{labels}, endpoint="0", method="eth_call"}}',
         "values": f"{errors}x40"},
        {"series": f'arbx_rpc_requests_total{{{labels}, endpoint="0", method="eth_call"}}',
         "values": f"{requests}x40"},
        {"series": f"arbx_sync_lag_blocks{{{labels}}}", "values": f"{lag}x40"},
    ]  # fmt: skip


# Each scenario: input series, then per metric whether its success condition holds (1) or not (0).
# The other version's series sit beside the judged one's and must not count.
SCENARIOS: dict[str, tuple[str, list[dict[str, str]], dict[str, int]]] = {
    "a healthy canary beside a failing stable": (
        "arbx-api-canary",
        [
            _api("c1", "/api/v1/opportunities", "200", 40),
            _api("c1", "/readyz", "503", 5),  # a draining pod's probe: not a client's error
            _api("s1", "/api/v1/opportunities", "500", 40),
            *_latency("c1", "0.05", 40),
            *_latency("s1", "+Inf", 40),
        ],
        {"error-ratio": 1, "slow-share-vs-stable": 1, "p99-latency": 1},
    ),
    "a canary that fails one request in five and is slow": (
        "arbx-api-canary",
        [
            _api("c1", "/api/v1/opportunities", "200", 32),
            _api("c1", "/api/v1/opportunities", "500", 8),
            _api("s1", "/api/v1/opportunities", "200", 40),
            *_latency("c1", "2", 40),
            *_latency("s1", "0.05", 40),
        ],
        {"error-ratio": 0, "slow-share-vs-stable": 0, "p99-latency": 0},
    ),
    "a good canary as slow as the loaded stable beside it": (
        "arbx-api-canary",
        [
            _api("c1", "/api/v1/opportunities", "200", 40),
            _api("s1", "/api/v1/opportunities", "200", 40),
            *_latency("c1", "1", 40),
            *_latency("s1", "1", 40),
        ],
        # the comparison passes it, and its p99 (just under 1 s) is under the ceiling
        {"error-ratio": 1, "slow-share-vs-stable": 1, "p99-latency": 1},
    ),
    "a canary over the p99 ceiling, as slow as the stable beside it": (
        "arbx-api-canary",
        [
            _api("c1", "/api/v1/opportunities", "200", 40),
            _api("s1", "/api/v1/opportunities", "200", 40),
            *_latency("c1", "2", 40),
            *_latency("s1", "2", 40),
        ],
        # the comparison cannot see it (both slow); the absolute ceiling fails it
        {"error-ratio": 1, "slow-share-vs-stable": 1, "p99-latency": 0},
    ),
    "a canary slower on every request than the stable beside it": (
        "arbx-api-canary",
        [
            _api("c1", "/api/v1/opportunities", "200", 40),
            _api("s1", "/api/v1/opportunities", "200", 40),
            *_latency("c1", "1", 40),
            *_latency("s1", "0.5", 40),
        ],
        {"error-ratio": 1, "slow-share-vs-stable": 0, "p99-latency": 1},
    ),
    "a slow canary with no stable request to compare": (
        "arbx-api-canary",
        [_api("c1", "/api/v1/opportunities", "200", 40), *_latency("c1", "1", 40)],
        {"error-ratio": 1, "slow-share-vs-stable": 0, "p99-latency": 1},
    ),
    "a canary too new to judge": (
        "arbx-api-canary",
        [
            _api("c1", "/api/v1/opportunities", "200", 2),
            _api("s1", "/api/v1/opportunities", "200", 40),
            *_latency("c1", "2", 2),
            *_latency("s1", "0.05", 40),
        ],
        # two slow requests (a pod's first, say): neither latency check judges them yet
        {"error-ratio": 1, "slow-share-vs-stable": 1, "p99-latency": 1},
    ),
    "a canary no client has reached yet": (
        "arbx-api-canary",
        [_api("c1", "/readyz", "200", 5), _api("s1", "/api/v1/opportunities", "500", 40)],
        {"error-ratio": 1, "slow-share-vs-stable": 1, "p99-latency": 1},
    ),
    "a sound preview beside an active engine with parity failures": (
        "arbx-engine-preview",
        [*_engine("p1", 0, 2, 400, 0), *_engine("a1", 5, 300, 400, 9, lock=1)],
        {
            "preview-parity-failures": 1,
            "preview-error-ratio": 1,
            "preview-follows": 1,
            "preview-holds-no-lock": 1,
        },
    ),
    "a preview that drifts from the chain, fails its node and lags": (
        "arbx-engine-preview",
        [*_engine("p1", 2, 100, 400, 7, lock=1), *_engine("a1", 0, 0, 400, 0)],
        {
            "preview-parity-failures": 0,
            "preview-error-ratio": 0,
            "preview-follows": 0,
            "preview-holds-no-lock": 0,
        },
    ),
    "a preview Prometheus does not scrape": (
        "arbx-engine-preview",
        [*_engine("a1", 0, 0, 400, 0, lock=1)],
        {
            "preview-parity-failures": 1,
            "preview-error-ratio": 1,
            "preview-follows": 0,
            "preview-holds-no-lock": 1,
        },
    ),
}


def test_each_query_and_condition_passes_a_good_version_and_fails_a_bad_one(
    rendered: dict[str, Docs], tmp_path: Path
) -> None:
    """The success condition ``result[0] OP X`` becomes the PromQL ``(query) OP bool X``: 1 where
    Argo would count the measurement successful, 0 where it would count a failure."""
    templates = {d["metadata"]["name"]: d for d in _kind(rendered["staging"], "AnalysisTemplate")}
    tests = []
    for scenario, (template, series, expected) in SCENARIOS.items():
        queries = {name: (q, c) for name, q, c in _queries(templates[template])}
        assert set(expected) == set(queries), scenario
        cases = []
        for name, outcome in expected.items():
            query, condition = queries[name]
            match = _CONDITION.fullmatch(condition)
            assert match is not None
            expr = f"({_fill(query, _SAMPLE_ARGS)}) {match[1]} bool {match[2]}"
            cases.append({"expr": expr, "eval_time": "8m", "exp_samples": [
                {"labels": "{}", "value": outcome}]})  # fmt: skip
        tests.append({"name": scenario, "interval": "15s", "input_series": series,
                      "promql_expr_test": cases})  # fmt: skip
    path = tmp_path / "analysis.test.yml"
    path.write_text(
        yaml.safe_dump({"rule_files": [], "evaluation_interval": "15s", "tests": tests})
    )
    result = subprocess.run(
        [_promtool(), "test", "rules", path], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- rolling back ------------------------------------------------------------------------------
_NESTED = re.compile(r"\$\((kubectl [^)]*)\)")


def _commands(text: str) -> list[list[str]]:
    """The kubectl commands in the shell blocks of a Markdown page, as words (one inside
    ``$(...)`` is a command of its own)."""
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    commands = []
    for line in (line.strip() for block in blocks for line in block.splitlines()):
        if not line.startswith("kubectl "):
            continue
        commands += [shlex.split(nested) for nested in _NESTED.findall(line)]
        commands.append(shlex.split(_NESTED.sub("NESTED", line)))
    return commands


def _namespace(words: list[str]) -> tuple[str, list[str]]:
    """The ``-n`` option's value and the words without it."""
    at = words.index("-n")
    return words[at + 1], words[:at] + words[at + 2 :]


def test_every_rollback_command_names_what_the_manifests_make(rendered: dict[str, Docs]) -> None:
    by_namespace = {docs[0]["metadata"]["namespace"]: docs for docs in rendered.values()}
    commands = _commands(ROLLBACK_DOC.read_text())
    verbs: dict[str, set[str]] = {}
    for words in commands:
        namespace, rest = _namespace(words)
        assert namespace in by_namespace, words
        docs = by_namespace[namespace]
        names = {(d["kind"], d["metadata"]["name"]) for d in docs}
        if rest[:3] == ["kubectl", "argo", "rollouts"]:
            verb, args = rest[3], [w for w in rest[4:] if not w.startswith("-")]
            if verb in {"get", "retry"}:
                assert args[0] == "rollout", words
                args = args[1:]
            assert verb in {"abort", "undo", "promote", "retry", "status", "get", "set"}, words
            if verb == "set":
                assert args[0] == "image", words
                rollout, assignment = args[1], args[2]
                container, image = assignment.split("=", 1)
                ref = _one(docs, "Rollout", rollout)["spec"]["workloadRef"]["name"]
                pod = _one(docs, "Deployment", ref)["spec"]["template"]["spec"]
                (declared,) = [c for c in pod["containers"] if c["name"] == container]
                assert image.rsplit(":", 1)[0] == declared["image"].rsplit(":", 1)[0], words
            else:
                rollout = args[0]
            assert ("Rollout", rollout) in names, words
            verbs.setdefault(rollout, set()).add(verb)
        elif rest[1] in {"rollout", "scale"}:
            target = rest[3] if rest[1] == "rollout" else rest[2]
            kind, _, name = target.partition("/")
            assert kind == "deployment", words
            assert ("Deployment", name) in names, words
        elif rest[1] == "exec":
            kind, _, name = rest[2].partition("/")
            assert kind == "svc", words
            assert ("Service", name) in names, words
            assert rest[3:6] == ["--", "arbx", "release"], words
            build_parser().parse_args([w.replace("NESTED", "7c9f5d4b8") for w in rest[5:]])
        elif rest[1] == "get":
            assert rest[2] == "rollout", words
            assert ("Rollout", rest[3]) in names, words
        else:
            raise AssertionError(f"a command the test does not know: {words}")
    # one command per component, for stopping a release and for going back after one
    for rollout in ("arbx-api", "arbx-web", "arbx-engine"):
        assert {"abort", "undo", "set"} <= verbs[rollout], rollout
