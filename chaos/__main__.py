"""``python -m chaos [FAULT ...]``: the whole fault suite (or the named faults); the report in
build/chaos/report.json and a table. Exit 1 when a target is missed."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from chaos.suite import FULL, SHORT, run_suite, table, write


def main(argv: list[str]) -> int:
    """Run the suite; 0 when every fault survived with nothing sent twice, lost or out of
    parity."""
    names = list(argv) or list(FULL)
    if names == ["short"]:
        names = list(SHORT)
    unknown = [n for n in names if n not in FULL and n not in SHORT]
    if unknown:
        print(f"chaos: unknown fault {unknown[0]!r} (known: {', '.join(FULL)})", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="arbx-chaos-") as folder:
        report = asyncio.run(run_suite(Path(folder), names))
    write(report)
    print()
    print(table(report))
    for finding in report["findings"][:20]:
        print("  " + finding)
    missed = (
        not all(x["survived"] for x in report["faults"])
        or report["crashes"] or report["double_sends"] or report["lost_records"]
        or report["parity_failures"]
    )  # fmt: skip
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
