"""The staging manifests as Kubernetes would receive them: ``kubectl kustomize`` of the staging
overlay with the signing component (its engine trades on the devnet), read as YAML. Rollouts,
AnalysisTemplates and Services are looked up by kind and name; nothing here keeps a second copy
of a query or a condition."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGING = ROOT / "deploy" / "k8s" / "overlays" / "staging"
SIGNING = ROOT / "deploy" / "k8s" / "components" / "signing"
MAX_RENDERED = 4_000_000  # bytes: a rendered overlay is a few hundred kilobytes

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class ManifestError(ValueError):
    """A manifest that is missing or says something the rehearsal cannot execute."""


def duration(value: Any, what: str = "duration") -> float:
    """Seconds of a Kubernetes/Argo duration: ``30``, ``"30"``, ``"10s"``, ``"1m30s"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value or len(value) > 32:
        raise ManifestError(f"{what}: not a duration: {str(value)[:40]!r}")
    if value.isdigit():
        return float(value)
    pos, total = 0, 0.0
    for match in _DURATION.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value):
        raise ManifestError(f"{what}: not a duration: {value!r}")
    return total


def render(overlay: Path = STAGING, signing: bool = True) -> str:
    """``kubectl kustomize OVERLAY``'s output; with ``signing``, the overlay with the component
    an overlay adds when its engine signs (``components/signing``: standbys and the handover),
    as its comment says to add it: the staging engine trades on the devnet."""
    with tempfile.TemporaryDirectory(prefix="arbx-overlay-") as tmp:
        target = overlay
        if signing:
            target = Path(tmp) / overlay.name
            shutil.copytree(overlay, target)
            path = target / "kustomization.yaml"
            kustomization = yaml.safe_load(path.read_text())
            kustomization["resources"] = [
                r if (target / r).exists() else os.path.relpath((overlay / r).resolve(), target)
                for r in kustomization.get("resources", [])
            ]
            kustomization["components"] = [
                *kustomization.get("components", []),
                os.path.relpath(SIGNING, target),
            ]
            path.write_text(yaml.safe_dump(kustomization))
        done = subprocess.run(
            ["kubectl", "kustomize", str(target)], capture_output=True, text=True, check=False,
            timeout=120,
        )  # fmt: skip
    if done.returncode != 0:
        line = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ManifestError(f"kubectl kustomize {overlay}: {line}")
    return done.stdout


@dataclass
class Manifests:
    """The rendered objects, by kind and name."""

    objects: list[dict[str, Any]]

    @classmethod
    def parse(cls, text: str) -> Manifests:
        """Objects from a multi-document YAML stream."""
        if len(text) > MAX_RENDERED:
            raise ManifestError(f"rendered manifests larger than {MAX_RENDERED} bytes")
        try:
            docs = [d for d in yaml.safe_load_all(text) if d]
        except yaml.YAMLError as exc:
            raise ManifestError(
                f"rendered manifests: not YAML: {str(exc).splitlines()[0]}"
            ) from None
        if not all(isinstance(d, dict) for d in docs):
            raise ManifestError("rendered manifests: a document is not a mapping")
        return cls(docs)

    @classmethod
    def staging(cls) -> Manifests:
        """The staging overlay (``ARBX_REHEARSAL_OVERLAY`` names another), rendered now."""
        return cls.parse(render(Path(os.environ.get("ARBX_REHEARSAL_OVERLAY", str(STAGING)))))

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        """The object of ``kind`` named ``name``, or None."""
        for obj in self.objects:
            if obj.get("kind") == kind and obj.get("metadata", {}).get("name") == name:
                return obj
        return None

    def get(self, kind: str, name: str) -> dict[str, Any]:
        """The object of ``kind`` named ``name`` (ManifestError when the overlay has none)."""
        obj = self.find(kind, name)
        if obj is None:
            raise ManifestError(f"the staging overlay renders no {kind} {name}")
        return obj

    def names(self, kind: str) -> list[str]:
        """The names of every object of ``kind``."""
        return [o["metadata"]["name"] for o in self.objects if o.get("kind") == kind]


def container(template: dict[str, Any]) -> dict[str, Any]:
    """The first container of a pod template (a Rollout's or a Job's)."""
    try:
        containers = template["spec"]["containers"]
        first = containers[0]
    except (KeyError, IndexError, TypeError):
        raise ManifestError("a pod template without containers") from None
    if not isinstance(first, dict):
        raise ManifestError("a pod template's container is not a mapping")
    return first


def readiness(template: dict[str, Any]) -> tuple[str, float, float]:
    """The readiness probe of a pod template: HTTP path, period and timeout (Kubernetes's
    defaults: 10 s and 1 s)."""
    probe = container(template).get("readinessProbe") or {}
    http = probe.get("httpGet") or {}
    period, timeout = probe.get("periodSeconds", 10), probe.get("timeoutSeconds", 1)
    return str(http.get("path", "/")), float(period), float(timeout)
