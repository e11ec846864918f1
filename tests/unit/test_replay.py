"""Replay of the shipped devnet window: the same decisions every time (the digest committed
beside it), the format's round trips, and hostile windows and decisions refused with one line."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from arbx import safejson
from arbx.chain.window import (
    MAX_LINE_BYTES,
    VERSION,
    Window,
    read_window,
    window_lines,
    write_window,
)
from arbx.cli import main
from arbx.cli.offline import load_pool_file
from arbx.cli.replay import (
    record_release_replay,
    recorded_decisions,
    replay_window,
    shipped_window,
    window_digest,
)
from arbx.domain.errors import InputError
from arbx.domain.poolfile import parse_pool, pool_document
from arbx.domain.pools import V3Pool
from arbx.engine.replay import compare_decisions, digest, pack_decisions, replay
from arbx.store import make_engine, make_session_factory, migrate, release_repo
from arbx.store.models import ReleaseReplayRow
from arbx.strategies.cyclic import (
    CyclicArbitrage,
    StrategyLimits,
    limits_from_record,
    limits_record,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
WINDOW = shipped_window()  # the package data the image ships
EXPECTED = FIXTURES / "replay" / "expected.txt"


@pytest.fixture(scope="module")
def decisions() -> dict[str, Any]:
    return replay_window(WINDOW)


def test_the_shipped_window_replays_to_the_committed_decisions(
    decisions: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # tests/fixtures/replay/README.md: how expected.txt is regenerated, on purpose
    assert main(["replay", str(WINDOW)]) == 0
    tail = capsys.readouterr().out.splitlines()[-2:]
    assert tail == EXPECTED.read_text().splitlines()
    found = sum(len(b["opportunities"]) for b in decisions["blocks"])
    assert tail == [f"{len(decisions['blocks'])} blocks, {found} opportunities",
                    f"decisions digest: {decisions['digest']}"]  # fmt: skip
    assert found > 0


def test_replaying_twice_and_in_another_process_gives_the_same_bytes(
    decisions: dict[str, Any],
) -> None:
    again = replay_window(WINDOW)
    assert again == decisions
    # another interpreter with another string-hash seed: no set or dict order leaks in
    other = subprocess.run(
        [sys.executable, "-m", "arbx.cli", "replay", str(WINDOW), "--json"],
        capture_output=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert json.loads(other.stdout) == decisions


def test_a_window_written_again_reads_back_the_same(tmp_path: Path) -> None:
    window = read_window(WINDOW)
    copy = tmp_path / "copy.jsonl.gz"
    write_window(window, copy)
    assert copy.read_bytes() == WINDOW.read_bytes()  # same window, same bytes (gzip mtime 0)
    back = read_window(copy)
    assert list(window_lines(back)) == list(window_lines(window))


def test_pool_documents_give_back_the_very_pools() -> None:
    for name in sorted((FIXTURES / "mainnet").glob("*.json")):
        for pool in load_pool_file(name):
            back = parse_pool(pool_document(pool))
            assert back == pool
            if isinstance(pool, V3Pool):
                assert isinstance(back, V3Pool)
                assert dict(back.liquidity_net) == dict(pool.liquidity_net)
                assert dict(back.liquidity_gross) == dict(pool.liquidity_gross)


def test_strategy_settings_round_trip_and_bad_ones_are_named() -> None:
    limits = StrategyLimits(
        base_tokens=("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",),
        max_hops=4,
        max_input={"0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2": 10**30},
        min_net_profit_wei=7,
        builder_share_bps=9000,
        connector_min_pairs=3,
    )
    doc = safejson.loads(safejson.dumps(limits_record(limits)))
    assert limits_from_record(doc) == limits
    with pytest.raises(InputError, match="builder_share_bps"):
        limits_from_record({**doc, "builder_share_bps": 10_001})
    with pytest.raises(InputError, match="max_hops"):
        limits_from_record({**doc, "max_hops": "3.5"})


def test_a_window_the_live_run_repaired_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    window = read_window(WINDOW)
    window.repairs = 2
    path = tmp_path / "repaired.jsonl.gz"
    write_window(window, path)
    assert main(["replay", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("note: the recording run reloaded pools from the node 2 times")
    assert replay_window(path)["window"]["repairs"] == 2


def test_different_settings_decide_differently(decisions: dict[str, Any]) -> None:
    window = read_window(WINDOW)
    limits = replace(limits_from_record(window.settings), builder_share_bps=5000)
    shared = asyncio.run(replay(window, lambda book: CyclicArbitrage(book, limits)))
    differences = compare_decisions(decisions["blocks"], shared["blocks"])
    assert differences, "a builder share of 50% must change the expected profits"
    assert shared["digest"] != decisions["digest"]


# --- compare through the command line ---------------------------------------------------------


def _write_decisions(path: Path, blocks: list[dict[str, Any]]) -> None:
    doc = {"format": "arbx-decisions", "version": 1, "blocks": blocks, "digest": digest(blocks)}
    path.write_text(json.dumps(doc))


def test_compare_names_the_blocks_that_differ_and_exits_1(
    tmp_path: Path, decisions: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    same = tmp_path / "same.json"
    _write_decisions(same, decisions["blocks"])
    assert main(["replay", str(WINDOW), "--compare", str(same)]) == 0
    assert "the same decisions" in capsys.readouterr().out

    blocks = json.loads(json.dumps(decisions["blocks"]))
    busy = next(i for i, b in enumerate(blocks) if b["opportunities"])
    blocks[busy]["opportunities"][0]["net_profit"] = "1"
    blocks[-1]["opportunities"].append(blocks[busy]["opportunities"][0])
    other = tmp_path / "other.json"
    _write_decisions(other, blocks)
    assert main(["replay", str(WINDOW), "--compare", str(other)]) == 1
    out = capsys.readouterr().out.splitlines()
    number = blocks[busy]["number"]
    assert any(f"block {number} " in x and "differs in net_profit" in x for x in out)
    assert any(f"block {blocks[-1]['number']} " in x and "against" in x for x in out)
    assert "2 blocks differ" in out[-2]

    assert main(["replay", str(WINDOW), "--compare", str(other), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["equal"] is False
    assert len(result["differences"]) == 2


def _checkout(folder: Path, script: str) -> Path:
    """A checkout whose ``.venv/bin/arbx`` is ``script`` (a release that answers as given)."""
    arbx = folder / ".venv" / "bin" / "arbx"
    arbx.parent.mkdir(parents=True)
    arbx.write_text("#!/bin/sh\n" + script)
    arbx.chmod(0o755)
    return folder


def test_against_release_replays_with_the_other_checkouts_code(
    tmp_path: Path, decisions: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    this_checkout = Path(__file__).resolve().parents[2]
    assert main(["replay", str(WINDOW), "--against-release", str(this_checkout)]) == 0
    assert "the same decisions" in capsys.readouterr().out

    theirs = tmp_path / "theirs.json"
    _write_decisions(theirs, decisions["blocks"][:-1])
    older = _checkout(tmp_path / "older", f"cat {theirs}\n")
    assert main(["replay", str(WINDOW), "--against-release", str(older)]) == 1
    out = capsys.readouterr().out
    assert f"block {decisions['blocks'][-1]['number']} " in out
    assert "only in ours" in out

    broken = _checkout(tmp_path / "broken", "echo 'arbx: error: no such command' >&2; exit 2\n")
    assert main(["replay", str(WINDOW), "--against-release", str(broken)]) == 2
    assert "its arbx replay failed: arbx: error: no such command" in capsys.readouterr().err
    assert main(["replay", str(WINDOW), "--against-release", str(tmp_path / "none")]) == 2
    assert "no .venv/bin/arbx" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{", "not valid JSON"),
        (b'{"format": "arbx-decisions", "version": 2}', "version 2"),
        (b'{"format": "other"}', "not a decisions document"),
        (b'{"format": "arbx-decisions", "version": 1, "blocks": [1]}', "block #1"),
        (
            b'{"format": "arbx-decisions", "version": 1, "blocks": [], "digest": "sha256:0"}',
            "digest does not match",
        ),
        (b"[" * 100_000, "nested"),
    ],
)
def test_hostile_decisions_end_with_one_line_and_exit_2(
    tmp_path: Path, content: bytes, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "decisions.json"
    path.write_bytes(content)
    assert main(["replay", str(WINDOW), "--compare", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert why in err


# --- hostile windows --------------------------------------------------------------------------


def _lines(window: Path) -> list[bytes]:
    return gzip.decompress(window.read_bytes()).splitlines(keepends=True)


def _gz(lines: list[bytes]) -> bytes:
    return gzip.compress(b"".join(lines))


def _edited(line: bytes, change: Any) -> bytes:
    doc = json.loads(line)
    change(doc)
    return json.dumps(doc).encode() + b"\n"


def _hostile() -> dict[str, tuple[bytes, str]]:
    lines = _lines(WINDOW)
    good = WINDOW.read_bytes()
    first = lines[0]
    step = next(i for i, x in enumerate(lines) if x.startswith(b'{"step"'))
    with_logs = next(i for i, x in enumerate(lines) if b'"topics"' in x)

    def _drop_logs(doc: dict[str, Any]) -> None:
        doc["step"]["logs"] = []

    def _bad_topic(doc: dict[str, Any]) -> None:
        doc["step"]["logs"][0]["logs"][0]["topics"] = ["0x12"]

    return {
        "cut bytes": (good[: len(good) // 2], "truncated or corrupt"),
        "cut at a line": (_gz(lines[:-1]), "truncated"),
        "not gzip": (b'{"format": "arbx-replay-window"}\n', "cannot read the window"),
        "empty": (b"", "truncated"),
        "wrong version": (
            _gz([_edited(first, lambda d: d.update(version=VERSION + 1)), *lines[1:]]),
            f"window version {VERSION + 1}",
        ),
        "other format": (_gz([b'{"format": "x"}\n', *lines[1:]]), "not a replay window"),
        "deep": (_gz([b"[" * 100_000 + b"\n"]), "nested"),
        "huge line": (_gz([first, b" " * (MAX_LINE_BYTES + 10) + b"\n"]), "too large"),
        "bad pool": (
            _gz([first, _edited(lines[1], lambda d: d["pool"].update(address="0x12")), *lines[2:]]),
            "not a 20-byte hex address",
        ),
        "bad log": (
            _gz(
                [*lines[:with_logs], _edited(lines[with_logs], _bad_topic), *lines[with_logs + 1 :]]
            ),
            "bad step",
        ),
        "a step whose logs are missing": (
            _gz(
                [*lines[:with_logs], _edited(lines[with_logs], _drop_logs), *lines[with_logs + 1 :]]
            ),
            "holds no logs of block",
        ),
        "a pool after the steps": (_gz([*lines[: step + 1], lines[1], *lines[step + 1 :]]), "pool"),
        "data after the end": (_gz([*lines, lines[-1]]), "after the 'end' line"),
        "bad settings": (
            _gz([_edited(first, lambda d: d["settings"].update(max_hops=99)), *lines[1:]]),
            "max_hops",
        ),
    }


@pytest.mark.parametrize("case", sorted(_hostile()))
def test_hostile_windows_end_with_one_line_and_exit_2(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    content, why = _hostile()[case]
    path = tmp_path / "window.jsonl.gz"
    path.write_bytes(content)
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("arbx: error: "), err
    assert err.count("\n") == 1, err
    assert why in err


def test_a_missing_window_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["replay", str(tmp_path / "none.jsonl.gz")]) == 2
    assert "cannot read the window" in capsys.readouterr().err


def test_window_dataclass_is_what_the_reader_gives() -> None:
    window = read_window(WINDOW)
    assert isinstance(window, Window)
    assert window.steps
    assert window.pools
    assert window.repairs == 0
    assert [s.head.number for s in window.steps] == sorted(s.head.number for s in window.steps)


# --- the second check before a promotion ------------------------------------------------------


def test_release_compare_replays_the_window_as_a_second_check(
    tmp_path: Path,
    decisions: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ARBX_DATABASE_URL", f"sqlite:///{tmp_path / 'arbx.db'}")
    same, other = tmp_path / "same.json", tmp_path / "other.json"
    _write_decisions(same, decisions["blocks"])
    _write_decisions(other, decisions["blocks"][1:])
    command = ["release", "compare", "--active", "v1", "--preview", "v2", "--min-blocks", "0"]

    main([*command, "--json", "--replay", str(WINDOW), "--replay-decisions", str(same)])
    result = json.loads(capsys.readouterr().out)
    assert result["replay"]["equal"] is True
    assert result["replay"]["digest"] == decisions["digest"]
    assert "replay" not in result["failed"]

    code = main([*command, "--json", "--replay", str(WINDOW), "--replay-decisions", str(other)])
    result = json.loads(capsys.readouterr().out)
    assert code == 1
    assert result["passed"] is False
    assert "replay" in result["failed"]
    first = decisions["blocks"][0]
    assert result["replay"]["differences"] == [
        f"block {first['number']} {first['hash'][:12]}: only in ours"
    ]

    assert main([*command, "--replay", str(WINDOW), "--replay-decisions", str(other)]) == 1
    assert "FAIL replay of" in capsys.readouterr().out

    assert main([*command, "--replay", str(WINDOW)]) == 2
    assert "go together" in capsys.readouterr().err


def test_the_active_releases_recorded_decisions_are_the_shipped_replays_other_side(
    tmp_path: Path,
    decisions: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What an engine records at start (``record_release_replay``) is what ``release compare
    --replay-shipped`` replays against: the same code passes; a release that decides otherwise
    fails with the blocks that differ and its digest, unless that digest is acknowledged."""
    url = f"sqlite:///{tmp_path / 'arbx.db'}"
    monkeypatch.setenv("ARBX_DATABASE_URL", url)
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    try:
        said = record_release_replay(sessions, "v1")
        assert said == (
            "replay: release v1 decided 1248 opportunities on the shipped window's 40 blocks "
            f"({decisions['digest']})"
        )
        assert "recorded its decisions on the shipped window before" in record_release_replay(
            sessions, "v1"
        )
        recorded = recorded_decisions(sessions, "v1", WINDOW)
        assert recorded == (decisions["digest"], decisions["blocks"])
        # an active release whose code decided otherwise: half of every profit to the builder
        window = read_window(WINDOW)
        limits = replace(limits_from_record(window.settings), builder_share_bps=5000)
        shared = asyncio.run(replay(window, lambda book: CyclicArbitrage(book, limits)))
        with sessions.begin() as session:
            added = release_repo.add_release_replay(
                session,
                release="v0",
                window_digest=window_digest(WINDOW),
                digest=shared["digest"],
                blocks=len(shared["blocks"]),
                opportunities=0,
                decisions_gz=pack_decisions(shared["blocks"]),
                at=datetime.now(UTC),
            )
        assert added is True
        with sessions.begin() as session:  # the live comparison itself passes: equal blocks
            for run_id, release in enumerate(("v0", "v1", "v2"), start=1):
                for n in range(1, 5):
                    release_repo.record_block_result(
                        session,
                        release_repo.BlockResultRecord(
                            chain_id=31337,
                            run_id=run_id,
                            release=release,
                            role="active" if release != "v2" else "standby",
                            block_number=n,
                            block_hash="0x" + f"{n:064x}",
                            routes=[("route", 10**18, 10**15)],
                            latency_ms=5.0,
                            errors=0,
                            recorded_at=datetime.now(UTC),
                        ),
                    )
        with sessions.begin() as session:
            session.add(
                ReleaseReplayRow(
                    release="v-bad",
                    window_digest=window_digest(WINDOW),
                    digest=decisions["digest"],
                    blocks=40,
                    opportunities=0,
                    decisions_gz=b"not gzip",
                    recorded_at=datetime.now(UTC),
                )
            )
    finally:
        engine.dispose()
    command = ["release", "compare", "--preview", "v2", "--min-blocks", "0", "--replay-shipped"]

    assert main([*command, "--active", "v1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["replay"]["equal"] is True
    assert result["replay"]["digest"] == result["replay"]["active_digest"] == decisions["digest"]

    assert main([*command, "--active", "v0"]) == 1
    out = capsys.readouterr().out
    (failed,) = [line.strip() for line in out.splitlines() if "FAIL replay" in line]
    n = len(compare_decisions(decisions["blocks"], shared["blocks"]))
    assert failed == (
        "FAIL replay of the shipped window: decisions differ from those of release v0 on "
        f"{n} of 40 blocks; acknowledge a change on purpose with this release's digest "
        f"{decisions['digest']}"
    )
    assert out.count("    e.g. block ") == min(n, 5)

    accept = [*command, "--active", "v0", "--json", "--replay-accept", decisions["digest"]]
    assert main(accept) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["replay"]["equal"], result["replay"]["accepted"]) == (False, True)
    assert result["replay"]["differing_blocks"] == n
    assert result["passed"] is True

    assert main([*command, "--active", "v0", "--replay-accept", shared["digest"]]) == 1
    assert f"the acknowledged digest is {shared['digest']}, not" in capsys.readouterr().out

    assert main([*command, "--active", "v9"]) == 1  # an active release that recorded nothing
    assert "FAIL replay of the shipped window: release v9 recorded no decisions" in (
        capsys.readouterr().out
    )

    assert main([*command, "--active", "v-bad"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("arbx: error: release v-bad's recorded decisions: not gzip")
    assert "\n" not in err

    with pytest.raises(SystemExit) as refused:
        main([*command, "--active", "v1", "--replay-accept", "sha256:zz"])
    assert refused.value.code == 2
    assert "is not a digest" in capsys.readouterr().err
    assert main([*command, "--active", "v1", "--replay", str(WINDOW),
                 "--replay-decisions", str(WINDOW)]) == 2  # fmt: skip
    assert "one or the other" in capsys.readouterr().err
