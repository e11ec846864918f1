"""A logging filter that scrubs secrets from log records, as a second line of defence.

The first line is that no code logs a secret. This one catches mistakes: every key a
:class:`~arbx.execution.keys.Signer` loads is remembered and removed from each record in any of its
spellings (hex with or without 0x in any case, ``repr`` of its bytes, its decimal value), and so is
every password or other secret text remembered with :func:`remember_text` (keystore passwords,
the values of secret variables, a database URL's password: see ``arbx.obs.logging``).

With ``all_hex32``, any standalone run of 64 hex digits is also replaced, since a key nobody loaded
yet looks just like that. The price: transaction, block and bundle hashes are 32-byte hex too, and
would be scrubbed as well. Processes install it without (``arbx.obs.logging.configure_logging``):
hashes stay readable, and the keys that could be logged are the ones remembered; tests that
want the stricter net install it with ``all_hex32=True``.

:func:`install_redaction` wraps the log record factory, so records are scrubbed at creation
whatever handler gets them later, and adds the filter to the root logger's handlers, which also
covers fields passed with ``extra=``.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Final

REDACTED: Final = "[redacted]"
MIN_TEXT: Final = 4
_HEX32: Final = re.compile(r"(?<![0-9a-fA-F])(?:0[xX])?[0-9a-fA-F]{64}(?![0-9a-fA-F])")
_STANDARD_FIELDS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}

_lock = threading.Lock()
_known: list[str] = []  # the spellings of every loaded key
_known_pattern: re.Pattern[str] | None = None


def _spellings(key: bytes) -> list[str]:
    return [re.escape(key.hex()), re.escape(repr(key)[2:-1]), str(int.from_bytes(key, "big"))]


def remember_secret(key: bytes) -> None:
    """Scrub ``key`` (in any spelling) from every record from now on."""
    _remember(_spellings(key))


def remember_text(secret: str) -> None:
    """Scrub ``secret`` (a password, a token: as written, any case) from every record from now on.

    Texts shorter than 4 characters are ignored: scrubbing them would garble every line.
    """
    if len(secret) >= MIN_TEXT:
        _remember([re.escape(secret)])


def _remember(spellings: list[str]) -> None:
    global _known_pattern  # noqa: PLW0603 (one registry for the process, as logging's own)
    with _lock:
        if spellings[0] in _known:
            return
        _known.extend(spellings)
        longest_first = sorted(_known, key=len, reverse=True)
        _known_pattern = re.compile("|".join(longest_first), re.IGNORECASE)


def redact(text: str, *, all_hex32: bool = True) -> str:
    """``text`` with the loaded keys (and, with ``all_hex32``, any 32-byte hex run) replaced."""
    pattern = _known_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    if all_hex32:
        text = _HEX32.sub(REDACTED, text)
    return text


class RedactionFilter(logging.Filter):
    """Rewrites a record's message, traceback, stack and ``extra`` fields without the keys."""

    def __init__(self, *, all_hex32: bool = True) -> None:
        super().__init__()
        self.all_hex32 = all_hex32

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub ``record`` in place; never drops it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad %-arguments: keep what can be shown
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self._scrub(message), None
        if record.exc_info is not None and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
            record.exc_info = None  # formatters use exc_text; the raw exception could leak
        if record.stack_info:
            record.stack_info = self._scrub(record.stack_info)
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD_FIELDS:
                record.__dict__[name] = self._scrub_value(value)
        return True

    def _scrub(self, text: str) -> str:
        return redact(text, all_hex32=self.all_hex32)

    def _scrub_value(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, float)):
            return value
        shown = value if isinstance(value, str) else str(value)
        scrubbed = self._scrub(shown)
        return value if scrubbed == shown else scrubbed


class _Factory:
    """A log record factory that scrubs each record as it is made."""

    def __init__(self, inner: Any, redaction: RedactionFilter) -> None:
        self.inner = inner
        self.redaction = redaction

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.inner(*args, **kwargs)
        self.redaction.filter(record)
        return record


def install_redaction(*, all_hex32: bool = True) -> RedactionFilter:
    """Scrub keys from every log record of the process from now on; the filter installed."""
    redaction = RedactionFilter(all_hex32=all_hex32)
    current = logging.getLogRecordFactory()
    inner = current.inner if isinstance(current, _Factory) else current
    logging.setLogRecordFactory(_Factory(inner, redaction))
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactionFilter)]:
            handler.removeFilter(old)
        handler.addFilter(redaction)
    return redaction


def remove_redaction(redaction: RedactionFilter) -> None:
    """Undo :func:`install_redaction` (for tests)."""
    current = logging.getLogRecordFactory()
    if isinstance(current, _Factory) and current.redaction is redaction:
        logging.setLogRecordFactory(current.inner)
    for handler in logging.getLogger().handlers:
        handler.removeFilter(redaction)
