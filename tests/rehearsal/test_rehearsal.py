"""The rehearsal's short form on podman: the staging stack from the built images, the engine
live on the devnet climbing the capital stages (shadow, limited 100, limited 1000) through its
gates, the API's canary of v2 passing its analysis from the manifests, v3 (slower) rolled back
by its failed analysis with no one acting, the one-command rollback to v1 under load, then the
operations pages' commands; the pages are checked against the commands it ran."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
from rehearsal.cluster import Overdue, podman
from rehearsal.scenario import REPORT_KEYS, Options, Rehearsal
from rehearsal.stack import ROOT, build_images

pytestmark = [pytest.mark.e2e, pytest.mark.containers]

PAGES = ROOT / "docs" / "operations"
ENTRY_POINTS = ("make rehearse",)  # the rehearsal itself
ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


@pytest.fixture(scope="module")
def rehearsed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    if shutil.which("podman") is None or shutil.which("prometheus") is None:
        pytest.fail("podman and prometheus are missing: run `make images` and `make prometheus`")
    build_images()
    directory = tmp_path_factory.mktemp("rehearsal")
    report = Rehearsal(Options(directory, scale=0.05, short=True)).run()
    print(json.dumps({k: report[k] for k in ("releases", "requests", "seconds")}, indent=1))
    return report, directory


def test_a_canary_passes_a_bad_release_rolls_back_and_a_rollback_takes_one_command(
    rehearsed: tuple[dict[str, Any], Path],
) -> None:
    report, directory = rehearsed
    on_disk = json.loads((directory / "report.json").read_text())
    assert set(REPORT_KEYS) <= set(on_disk)
    for entry in on_disk["releases"]:
        assert {"version", "component", "strategy", "outcome", "detect_s", "rollback_s",
                "client_errors"} <= set(entry)  # fmt: skip
    good, bad, manual = report["releases"]
    assert (good["version"], good["strategy"], good["outcome"]) == ("v2", "canary", "promoted")
    assert [a["phase"] for a in good["analyses"]] == ["Successful"]
    assert (bad["version"], bad["outcome"]) == ("v3", "rolled_back")
    assert "slow-share-vs-stable" in bad["message"]  # slower than the stable beside it
    assert bad["detect_s"] is not None
    assert bad["rollback_s"] is not None
    assert bad["rollback_s"] <= 60
    assert (manual["version"], manual["outcome"]) == ("v1", "promoted")
    # the clients saw no error in any of them, and answers came from v2 and v3 while they served
    assert [r["client_errors"] for r in report["releases"]] == [0, 0, 0], report[
        "client_error_samples"
    ]
    assert report["requests"]["api"] > 100
    assert {"v2", "v3"} <= set(report["answered_by"])
    # the drills: every command succeeded; the restore kept every row
    assert all(c["exit"] == 0 for c in report["commands"]), report["commands"]
    assert report["records_lost"] == 0
    assert report["operations"]["restore"]["before"]["api_tokens"] >= 1


def test_the_engine_climbs_the_stages_through_its_gates_with_the_evidence(
    rehearsed: tuple[dict[str, Any], Path],
) -> None:
    report, _ = rehearsed
    into_limited, scaled = report["stages"]
    assert (into_limited["from"], into_limited["to"]) == ("shadow", "limited 100")
    assert into_limited["command"] == "arbx mode set limited --config /etc/arbx/settings.toml"
    assert (scaled["from"], scaled["to"]) == ("limited 100", "limited 1000")
    # what the operator saw before raising the ceiling: the shadow gate passed, nothing sent
    shown = into_limited["gate_shown"]
    assert shown
    assert all(c["passed"] for c in shown.values()), shown
    assert int(shown["parity checks"]["measured"]) >= 1
    assert "bundles included" not in shown
    for stage in (into_limited, scaled):
        assert stage["outcome"] == "promoted"
        conditions = stage["evidence"]["conditions"]  # what the engine stored with it
        assert conditions
        assert all(c["passed"] for c in conditions), conditions
    assert scaled["evidence"]["included"] >= 2  # bundles the devnet's builder included
    assert into_limited["key"] == scaled["key"]
    assert report["trades_lost"] == 0, report["trades"]
    # every signature without a bundle record is the executor's deployment or a transaction the
    # chain never saw (signed, then dropped before it left: late, or refused by the last fence)
    unrecorded = report["trades"]["signed_without_bundle"]
    assert unrecorded["on_chain_without_record"] == [], unrecorded
    assert unrecorded["deployments"] == 1, unrecorded
    assert unrecorded["total"] == unrecorded["deployments"] + unrecorded["not_on_chain"]
    assert report["trades"]["bundles"].get("included", 0) >= 2


def _page_commands() -> list[tuple[str, str]]:
    found = []
    for page in sorted(PAGES.glob("*.md")):
        for block in re.findall(r"```(?:sh|bash|shell)\n(.*?)```", page.read_text(), re.S):
            for line in block.splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    found.append((page.name, line.strip()))
    return found


def test_every_command_of_the_operations_pages_is_one_the_rehearsal_ran(
    rehearsed: tuple[dict[str, Any], Path],
) -> None:
    _, directory = rehearsed
    ran = {
        tuple(shlex.split(line)) for line in (directory / "commands.log").read_text().splitlines()
    }
    commands = _page_commands()
    assert len(commands) >= 8
    for page, line in commands:
        if line.startswith(ENTRY_POINTS):
            continue
        assert any(_same(shlex.split(line), command) for command in ran), (
            f"{page}: {line!r} is not a command the rehearsal ran"
        )


def _same(page: list[str], ran: tuple[str, ...]) -> bool:
    """A page's command is one that ran: word for word, where ``0x...`` on the page stands for
    the address a run printed (a contract deployed on that run's chain)."""
    return len(page) == len(ran) and all(
        word == done or (word == "0x..." and ADDRESS.fullmatch(done) is not None)
        for word, done in zip(page, ran, strict=True)
    )


def test_a_run_past_its_deadline_stops_in_one_line_and_takes_its_stack_down(
    tmp_path: Path,
) -> None:
    """The bound that keeps the short form from hanging CI: a real run given 20 s stops inside
    its work with one line, and what it had started (the network, PostgreSQL, the devnet, the
    registry) is gone."""
    if shutil.which("podman") is None or shutil.which("prometheus") is None:
        pytest.fail("podman and prometheus are missing: run `make images` and `make prometheus`")
    build_images()
    before = set(podman("ps", "-a", "--format", "{{.Names}}").split())
    with pytest.raises(Overdue, match=r"^the rehearsal: not done within 20 s$"):
        Rehearsal(Options(tmp_path, scale=0.05, short=True, deadline=20.0)).run()
    assert not (tmp_path / "state.json").exists()
    left = set(podman("ps", "-a", "--format", "{{.Names}}").split()) - before
    assert not {name for name in left if name.startswith("arbxrh")}, left
