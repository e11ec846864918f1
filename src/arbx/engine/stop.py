"""Stopping a running engine from outside: SIGTERM, then wait until the process has ended.

The engine's SIGTERM handler stops the block loop (the block in hand is finished, no new one
is taken, so nothing more is signed), releases the signer lock and records the run. A
Kubernetes preStop hook runs ``arbx stop --pid 1`` so that this has happened before the pod's
network and volumes go away.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from arbx.domain.errors import ConfigError


def stop_process(pid: int, timeout: float, poll: float = 0.1) -> bool:
    """SIGTERM ``pid`` and wait up to ``timeout`` s for it to end. -> ended (or was not running)."""
    if pid < 1:  # 0 and negative numbers signal whole process groups
        raise ConfigError(f"not a process id: {pid}")
    if not 0 <= timeout <= 3600:
        raise ConfigError(f"the timeout must be 0 to 3600 s, not {timeout:g}")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    except PermissionError:
        raise ConfigError(f"not allowed to signal process {pid}") from None
    deadline = time.monotonic() + timeout
    while _running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def _running(pid: int) -> bool:
    """Whether ``pid`` is alive (a zombie, ended but not yet reaped, counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: the signal answered, so it runs
    return stat.rpartition(")")[2].split()[0] != "Z"
