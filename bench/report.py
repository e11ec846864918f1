"""The results table on stdout and the same results as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.cases import CaseResult
from bench.timing import Timing, format_duration

COLUMNS = ("case", "ours", "degenbot", "target", "met?", "check")


def _time(timing: Timing | None) -> str:
    return format_duration(timing.median) if timing else "-"


def _flag(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "NO"


def table(results: Sequence[CaseResult]) -> str:
    """An aligned text table: one row per case, median times, then each row's notes below."""
    rows = [
        (
            f"{i}. {r.title}",
            _time(r.ours),
            _time(r.degenbot),
            r.target,
            _flag(r.met),
            f"{_flag(r.check)}: {r.summary}" if r.summary else _flag(r.check),
        )
        for i, r in enumerate(results, start=1)
    ]
    widths = [max(len(row[c]) for row in [COLUMNS, *rows]) for c in range(len(COLUMNS))]
    right = {1, 2}  # times align right

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(w) if c in right else cell.ljust(w)
            for c, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    out = [line(COLUMNS), line(["-" * w for w in widths]), *(line(row) for row in rows)]
    notes = [f"  {i}. {note}" for i, r in enumerate(results, start=1) for note in r.notes]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out)


def write_json(path: Path, results: Sequence[CaseResult], meta: dict[str, Any]) -> None:
    """``{"meta": ..., "cases": [...]}`` at ``path``, directories created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "cases": [r.as_dict() for r in results]}
    path.write_text(json.dumps(doc, indent=2) + "\n")
