"""Unknown keys in a custom resource, found with the field lists of the @kubernetes-models types.

The models' compiled validators check types and required fields but accept any extra key (a
misspelt ``intervall`` would pass and be ignored by the operator). Each model ships a TypeScript
declaration whose class lists every field, inherited ones included, with its type; this walks a
resource against those lists. Fields typed as maps (``{ [key: string]: ... }``) or as inline
objects are not walked further; scalar aliases (Duration, Quantity, IntOrString) end the walk.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

MODELS = Path(__file__).resolve().parents[2] / "node_modules" / "@kubernetes-models"
PACKAGES = {
    "monitoring.coreos.com": "prometheus-operator",
    "external-secrets.io": "external-secrets",
    "argoproj.io": "argo-rollouts",
}

_FIELD = re.compile(r'^    "(?P<key>[^"]+)"\??: (?P<type>.+?);?$')
_IMPORT = re.compile(r'^import \{ (?P<name>\w+) \} from "(?P<path>[^"]+)";$', re.MULTILINE)
_ARRAY = re.compile(r"^Array<(?P<item>.+)>$")

Fields = dict[str, tuple[str, Path]]  # key -> (type, the declaration file naming it)


@cache
def _fields(path: Path) -> Fields | None:
    """The fields of the class declared in ``path``; None when it declares no class (a scalar)."""
    text = path.read_text()
    start = text.find("export declare class ")
    if start < 0:
        return None
    fields: Fields = {}
    for line in text[start:].splitlines()[1:]:
        if line.startswith(("    constructor(", "}")):
            break
        match = _FIELD.match(line)
        if match:
            fields[match["key"]] = (match["type"], path)
    return fields


def _resolve(type_name: str, where: Path) -> Path | None:
    """The declaration file of ``type_name`` as ``where`` imports it."""
    for match in _IMPORT.finditer(where.read_text()):
        if match["name"] != type_name:
            continue
        target = match["path"]
        if target.startswith("."):
            return (where.parent / target).with_suffix("").with_suffix(".d.ts")
        return MODELS.parent / f"{target.removesuffix('.js')}.d.ts"
    return None


def unknown_keys(resource: dict[str, Any]) -> list[str]:
    """Paths of the keys in ``resource`` that its kind's model does not declare."""
    group, _, version = resource["apiVersion"].partition("/")
    path = MODELS / PACKAGES[group] / group / version / f"{resource['kind']}.d.ts"
    if not path.is_file():
        return [f"/: no model for {resource['apiVersion']} {resource['kind']}"]
    found: list[str] = []
    _walk(resource, path, "", found)
    return found


def _walk(value: Any, declaration: Path, at: str, found: list[str]) -> None:
    fields = _fields(declaration)
    if fields is None or not isinstance(value, dict):
        return
    for key, item in value.items():
        if key not in fields:
            found.append(f"{at}/{key}")
            continue
        type_text, where = fields[key]
        _walk_typed(item, type_text, where, f"{at}/{key}", found)


def _walk_typed(value: Any, type_text: str, where: Path, at: str, found: list[str]) -> None:
    array = _ARRAY.match(type_text)
    if array:
        for index, item in enumerate(value if isinstance(value, list) else []):
            _walk_typed(item, array["item"], where, f"{at}/{index}", found)
        return
    if not re.fullmatch(r"I\w+", type_text):
        return  # a scalar, a union of literals, a map or an inline object
    target = _resolve(type_text, where)
    if target is not None and target.is_file():
        _walk(value, target, at, found)
