"""The Kubernetes manifests, checked offline: every overlay renders with kustomize, passes the
API server's schemas for the targeted version (no unknown field), passes checkov with no failed
check, and its custom resources pass their models; plus what the deployment promises (one
engine, an API that never drops below its count, hardened pods, no secret in git)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from arbx.config import load_settings
from tests.deploy.model_keys import unknown_keys

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("staging", "production", "production-base")
KUBERNETES = "1.33.0"  # the version the manifests target (docs/deploy/README.md)
BIN = Path(sys.executable).parent
CHECKOV = ROOT / ".venv-deploy" / "bin" / "checkov"
CUSTOM = {"monitoring.coreos.com/v1", "external-secrets.io/v1", "argoproj.io/v1alpha1"}
WORKLOADS = {"Deployment", "StatefulSet", "Job"}

Docs = list[dict[str, Any]]


def staging_secret(tmp: Path) -> dict[str, Any]:
    """The staging Secret as ``secrets/`` makes it, from a copy of the example ``secrets.env``
    (the real one is git-ignored; the checkout is left as it is)."""
    source = K8S / "overlays" / "staging" / "secrets"
    shutil.copyfile(source / "kustomization.yaml", tmp / "kustomization.yaml")
    shutil.copyfile(source / "secrets.env.example", tmp / "secrets.env")
    text = subprocess.run(
        [BIN / "kubectl", "kustomize", tmp], check=True, capture_output=True, text=True
    ).stdout
    (secret,) = [d for d in yaml.safe_load_all(text) if d]
    return dict(secret)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Docs]]:
    """Each overlay rendered by the pinned kubectl's kustomize: (file, documents)."""
    out = tmp_path_factory.mktemp("rendered")
    result = {}
    for overlay in OVERLAYS:
        text = subprocess.run(
            [BIN / "kubectl", "kustomize", K8S / "overlays" / overlay],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        path = out / f"{overlay}.yaml"
        path.write_text(text)
        result[overlay] = (path, [d for d in yaml.safe_load_all(text) if d])
    return result


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "kubernetes-validate", "-k", KUBERNETES, "--strict", "--quiet", path],
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_overlay_passes_the_schemas_strictly(rendered: dict[str, tuple[Path, Docs]]) -> None:
    for overlay, (path, _) in rendered.items():
        result = _validate(path)
        assert result.returncode == 0, f"{overlay}: {result.stdout}{result.stderr}"


def test_strict_validation_refuses_an_unknown_field(
    rendered: dict[str, tuple[Path, Docs]], tmp_path: Path
) -> None:
    _, docs = rendered["production"]
    engine = copy.deepcopy(_one(docs, "Deployment", "arbx-engine"))
    engine["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(engine))
    result = _validate(path)
    assert result.returncode != 0
    assert "readOnlyRootFileSystem" in result.stdout + result.stderr


def test_checkov_finds_no_failed_check_and_every_skip_says_why(
    rendered: dict[str, tuple[Path, Docs]], tmp_path: Path
) -> None:
    assert CHECKOV.exists(), "checkov is installed by `make setup` into .venv-deploy"
    for overlay, (path, _) in rendered.items():
        shutil.copy(path, tmp_path / f"{overlay}.yaml")
    result = subprocess.run(
        [
            CHECKOV,
            *("--framework", "kubernetes", "--skip-download", "--quiet", "--compact"),
            *("-d", tmp_path, "-o", "json"),
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        check=False,
    )
    report = json.loads(result.stdout)
    assert report["summary"]["failed"] == 0, result.stdout
    assert report["summary"]["passed"] > 300
    for check in report["results"].get("skipped_checks", []):
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 10, f"{check['check_id']} skipped without a reason"


def test_custom_resources_pass_their_models(rendered: dict[str, tuple[Path, Docs]]) -> None:
    custom = [d for _, docs in rendered.values() for d in docs if d["apiVersion"] in CUSTOM]
    kinds = {d["kind"] for d in custom}
    assert kinds == {
        "ServiceMonitor", "PrometheusRule", "ExternalSecret", "Rollout", "AnalysisTemplate"
    }  # fmt: skip
    assert _models(custom).returncode == 0, _models(custom).stdout
    for doc in custom:
        assert unknown_keys(doc) == [], doc["kind"]


def test_model_checks_refuse_a_wrong_type_and_an_unknown_key(
    rendered: dict[str, tuple[Path, Docs]],
) -> None:
    monitor = copy.deepcopy(_one(rendered["production"][1], "ServiceMonitor", "arbx"))
    monitor["spec"]["endpoints"] = "metrics"
    result = _models([monitor])
    assert result.returncode == 1
    assert "ServiceMonitor/arbx: invalid" in result.stdout
    secret = copy.deepcopy(_one(rendered["production"][1], "ExternalSecret", "arbx-secrets"))
    secret["spec"]["data"][0]["remoteRef"]["kee"] = "x"
    secret["spec"]["refreshIntervall"] = "1h"
    assert sorted(unknown_keys(secret)) == ["/spec/data/0/remoteRef/kee", "/spec/refreshIntervall"]


def _models(docs: Docs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", K8S / "validate-custom.mjs"],
        input=json.dumps(docs),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def pod_specs(docs: Docs) -> dict[str, dict[str, Any]]:
    """Every pod spec the manifests make, by workload name: the built-in workloads' templates
    and the Job metrics of the AnalysisTemplates (as ``template/metric``)."""
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs if d["kind"] in WORKLOADS
    }
    for template in (d for d in docs if d["kind"] == "AnalysisTemplate"):
        for metric in template["spec"]["metrics"]:
            if "job" in metric["provider"]:
                name = f"{template['metadata']['name']}/{metric['name']}"
                pods[name] = metric["provider"]["job"]["spec"]["template"]["spec"]
    return pods


def _one(docs: Docs, kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_engine_is_one_signer_and_the_api_never_drops_below_its_count(
    rendered: dict[str, tuple[Path, Docs]], overlay: str
) -> None:
    _, docs = rendered[overlay]
    assert not [d for d in docs if d["kind"] == "StatefulSet"]
    engine = _one(docs, "Rollout", "arbx-engine")
    assert engine["spec"]["replicas"] == 1
    assert set(engine["spec"]["strategy"]) == {"blueGreen"}
    template = _one(docs, "Deployment", "arbx-engine")
    assert template["spec"]["replicas"] == 0  # the Rollout runs the engine, never this
    pod = template["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["lifecycle"]["preStop"]["exec"]["command"][:2] == ["arbx", "stop"]
    api = _one(docs, "Rollout", "arbx-api")
    assert api["spec"]["replicas"] >= 2
    assert api["spec"]["strategy"]["canary"]["maxUnavailable"] == 0
    deployment = _one(docs, "Deployment", "arbx-api")
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    assert probe["path"].startswith("/readyz")
    assert _one(docs, "PodDisruptionBudget", "arbx-api")["spec"]["minAvailable"] >= 1
    autoscaler = _one(docs, "HorizontalPodAutoscaler", "arbx-api")["spec"]
    assert autoscaler["minReplicas"] >= 2
    assert autoscaler["scaleTargetRef"] == {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "arbx-api"
    }  # fmt: skip
    ingress = _one(docs, "Ingress", "arbx")["spec"]
    assert ingress["tls"][0]["hosts"] == [ingress["rules"][0]["host"]]
    routes = {
        p["path"]: p["backend"]["service"]["name"] for p in ingress["rules"][0]["http"]["paths"]
    }
    assert routes == {"/api": "arbx-api", "/": "arbx-dashboard"}
    namespaces = {d["metadata"].get("namespace") for d in docs}
    assert len(namespaces) == 1
    assert None not in namespaces


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_hardened_and_bounded(
    rendered: dict[str, tuple[Path, Docs]], overlay: str
) -> None:
    _, docs = rendered[overlay]
    pods = pod_specs(docs)
    assert {
        "arbx-engine", "arbx-api", "arbx-dashboard", "arbx-migrate",
        "arbx-engine-preview/compare",
        "arbx-engine-handover/handover",
    } <= set(pods)  # fmt: skip
    for name, pod in pods.items():
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert set(container["resources"]) == {"requests", "limits"}, name
        assert any(
            p["spec"]["podSelector"] == {}
            and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            for p in docs
            if p["kind"] == "NetworkPolicy"
        )


def test_settings_come_from_the_overlays_file_and_secrets_never_from_git(
    rendered: dict[str, tuple[Path, Docs]], tmp_path: Path
) -> None:
    for overlay, (_, docs) in rendered.items():
        (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
        assert config["metadata"]["name"].startswith("arbx-settings-")  # hashed: rolls pods
        settings_file = K8S / "overlays" / overlay / "settings.toml"
        assert config["data"]["settings.toml"] == settings_file.read_text()
        settings = load_settings(settings_file)
        assert settings.metrics.host == "0.0.0.0"
        assert settings.api.host == "0.0.0.0"
        assert tomllib.loads(settings_file.read_text())["chain"]["id"] == settings.chain.id
    secrets = [d for d in rendered["production"][1] if d["kind"] == "Secret"]
    assert secrets == []  # only ExternalSecrets: the operator makes the Secrets
    assert [d for d in rendered["staging"][1] if d["kind"] == "Secret"] == []  # made apart
    staging = staging_secret(tmp_path)
    assert (staging["metadata"]["name"], staging["metadata"]["namespace"]) == (
        "arbx-secrets",
        "arbx-staging",
    )
    assert set(staging["data"]) == {"ARBX_DATABASE_URL"}
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", K8S / "overlays" / "staging" / "secrets" / "secrets.env"],
        cwd=ROOT,
        check=False,
    )
    assert ignored.returncode == 0
    chains = {
        overlay: load_settings(K8S / "overlays" / overlay / "settings.toml").chain.id
        for overlay in OVERLAYS
    }
    assert chains == {"staging": 31337, "production": 1, "production-base": 8453}
