"""A private PostgreSQL server for the suite: ``initdb`` and ``pg_ctl`` from the system's
PostgreSQL into a temporary folder, on a free port, restarted at will."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from arbx.devnet.anvil import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (/usr/lib/postgresql/*/bin)")
    return found[-1]


def available() -> bool:
    """Whether initdb and pg_ctl are installed."""
    return bool(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))


def _as_owner() -> list[str]:
    """PostgreSQL refuses to run as root: as root, its commands run as the ``postgres`` user."""
    if os.geteuid() != 0:
        return []
    pwd.getpwnam("postgres")  # KeyError when there is no such user
    return ["runuser", "-u", "postgres", "--"]


class PrivatePostgres:
    """One cluster in a folder of its own, served on 127.0.0.1:``port`` (trust auth, user
    ``chaos``); ``remove`` deletes it."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="arbx-chaos-pg-"))
        self.data = self.folder / "pgdata"
        self.port = free_port()
        self.log = self.folder / "postgres.log"
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)

    def url(self, port: int | None = None, database: str = "chaos") -> str:
        """The SQLAlchemy URL of ``database`` (through ``port``, e.g. a proxy's)."""
        return f"postgresql+psycopg://chaos@127.0.0.1:{port or self.port}/{database}"

    def init(self) -> None:
        """Make the cluster and its database."""
        subprocess.run(
            [*_as_owner(), _bin("initdb"), "-D", str(self.data), "-U", "chaos", "-A", "trust",
             "-E", "UTF8"],
            check=True, capture_output=True,
        )  # fmt: skip
        self.start()
        subprocess.run(
            [*_as_owner(), _bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
             "chaos", "chaos"],
            check=True, capture_output=True,
        )  # fmt: skip

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*_as_owner(), _bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o",
             options, "-w", "start"],
            check=True, capture_output=True, env={**os.environ, "LC_ALL": "C"},
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back and disconnect every session; ``immediate``:
        as a crash)."""
        subprocess.run(
            [*_as_owner(), _bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"],
            check=False, capture_output=True,
        )  # fmt: skip

    def remove(self) -> None:
        """Stop the server and delete its folder."""
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
