"""The rehearsal's later searcher versions are patches of v1's files (``rehearsal/patches``):
each must apply to today's sources exactly (the build applies them with no fuzz) and give
Python that compiles, or the release it stands for never starts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from rehearsal.cluster import PATCHES

SOURCES = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize("patch", sorted(PATCHES.glob("searcher-*.patch")), ids=lambda p: p.stem)
def test_a_searcher_version_applies_to_today_s_sources_and_compiles(
    patch: Path, tmp_path: Path
) -> None:
    files = [
        line.split()[1].split("/", 1)[1]
        for line in patch.read_text().splitlines()
        if line.startswith("+++ ")
    ]
    assert files
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SOURCES / name, tmp_path / name)
    done = subprocess.run(
        ["patch", "-p1", "--forward", "--fuzz=0", "--no-backup-if-mismatch", "-i", str(patch)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    for name in files:
        patched = tmp_path / name
        compile(patched.read_text(), str(patched), "exec")  # SyntaxError fails the test
        assert patched.read_text() != (SOURCES / name).read_text()
