"""Logging for every process, set up in one place: readable lines by default, JSON lines by
setting, secrets scrubbed from every record.

``configure_logging`` is called once at start by ``arbx`` (every command: ``run``, ``api``,
``devnet``, ...) and by the detached devnet market process (which also serves the builder). It
replaces the root logger's handler (standard error, so that standard output stays the command's
own: ``TOKEN=$(arbx token add ...)``), remembers the secrets the environment holds (``ARBX_``
key and password variables, the passwords and query values of URLs) and installs the redaction
filter (``arbx.redaction``) without the 32-byte hex net, so transaction hashes stay readable.

Settings: ``[log]`` in TOML or ``ARBX_LOG__FORMAT=json`` / ``ARBX_LOG__LEVEL=DEBUG``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

from pydantic import BaseModel, ConfigDict, ValidationError

from arbx.domain.errors import ConfigError
from arbx.redaction import RedactionFilter, install_redaction, remember_secret, remember_text
from arbx.scrub import is_hex_key, secret_values

Format = Literal["text", "json"]
Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET: Final = ("alembic",)  # libraries that log at WARNING and above only
_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


class LogSettings(BaseModel):
    """How the process logs: ``text`` lines or ``json`` lines, and from which level."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Format = "text"
    level: Level = "INFO"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                plain = isinstance(value, (int, float, bool, type(None)))
                line[name] = value if plain else str(value)
        if record.exc_info is not None and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False)


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``configure_logging`` installs (so a second call replaces it)."""


def log_settings(environ: Mapping[str, str] | None = None) -> LogSettings:
    """The ``log`` settings from ``ARBX_LOG__FORMAT`` / ``ARBX_LOG__LEVEL``; ConfigError."""
    env = os.environ if environ is None else environ
    values = {
        field: env[f"ARBX_LOG__{field.upper()}"].strip()
        for field in ("format", "level")
        if env.get(f"ARBX_LOG__{field.upper()}", "").strip()
    }
    if "level" in values:
        values["level"] = values["level"].upper()
    try:
        return LogSettings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        variable = f"ARBX_LOG__{where.upper()}"
        raise ConfigError(f"bad setting log.{where} ({variable}): {first['msg']}") from None


def configure_logging(
    settings: LogSettings | None = None,
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> RedactionFilter:
    """Log to standard error in the chosen format, secrets scrubbed. -> the redaction filter."""
    settings = settings or log_settings(environ)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(old)
    handler = _OurHandler(stream or sys.stderr)
    formatter = JsonFormatter() if settings.format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(settings.level)
    for name in QUIET:  # their INFO lines would bury ours (every command runs the migrations)
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    remember_environment(os.environ if environ is None else environ)
    return install_redaction(all_hex32=False)


def remember_environment(environ: Mapping[str, str]) -> None:
    """Have the redaction scrub every secret ``environ`` holds (keys in all their spellings)."""
    for value in secret_values(environ):
        if is_hex_key(value):
            remember_secret(bytes.fromhex(value.removeprefix("0x").removeprefix("0X")))
        else:
            remember_text(value)
