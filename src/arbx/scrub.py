"""What may leave a process: settings, URLs and environments with their secrets taken out.

- ``scrub_url``: a URL without its password, its query values (``?apikey=...``) and path segments
  that look like access tokens (``/v3/<project id>``); scheme, host, port and path stay readable.
- ``scrub_text``: every URL inside a text, scrubbed.
- ``public_settings``: the settings as stored with a run and printed by ``arbx report``: fields
  named like secrets masked, every URL scrubbed.
- ``child_environ``: the environment for a child process (anvil, the market, node): variables
  named like secrets (key, password, token, ...) dropped, URLs in the others scrubbed.
- ``secret_values``: the secret texts an environment holds, for the log redaction to remember.

Pure (standard library only), so that every layer may use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final
from urllib.parse import SplitResult, parse_qsl, quote, urlsplit

MASK: Final = "***"
# Variable names that hold secrets (ARBX_SIGNING_KEY, ARBX_KEYSTORE_PASSWORD_FILE, API_TOKEN, ...)
SECRET_VARIABLE: Final = re.compile(
    r"KEY|PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|MNEMONIC|CREDENTIAL|PRIVATE|AUTH", re.IGNORECASE
)
# Settings field names that hold secrets (``max_input`` keys are token addresses: not these)
SECRET_FIELD: Final = re.compile(
    r"password|passwd|passphrase|secret|token|mnemonic|credential|private_key|api_key",
    re.IGNORECASE,
)
_URL: Final = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s'\"<>]+")
# A path segment of 20+ letters and digits with at least one digit: an API key in the path
_TOKEN_SEGMENT: Final = re.compile(r"(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{20,}")
_NETWORK_SCHEMES: Final = frozenset({"http", "https", "ws", "wss"})
_HEX_KEY: Final = re.compile(r"(?:0[xX])?[0-9a-fA-F]{64}")


def scrub_url(url: str) -> str:
    """``url`` without its password, query values or (network URLs) token-like path segments."""
    try:
        parts = urlsplit(url)
        netloc = _netloc(parts)
    except ValueError:
        return MASK
    network = parts.scheme.lower() in _NETWORK_SCHEMES  # a file's path is no token
    path = "/".join(
        MASK if network and _TOKEN_SEGMENT.fullmatch(segment) else segment
        for segment in parts.path.split("/")
    )
    names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    query = "&".join(f"{quote(name, safe='')}={MASK}" for name in names)
    head = f"{parts.scheme}:" if parts.scheme else ""
    if url[len(head) :].startswith("//"):
        head += "//" + netloc
    return head + path + (f"?{query}" if query else "") + (f"#{MASK}" if parts.fragment else "")


def _netloc(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    if parts.username is None:
        return host
    user = parts.username if parts.password is None else f"{parts.username}:{MASK}"
    return f"{user}@{host}"


def scrub_text(text: str) -> str:
    """``text`` with every URL in it scrubbed (see ``scrub_url``)."""
    return _URL.sub(lambda m: scrub_url(m.group(0)), text)


def public_settings(data: Any) -> Any:
    """Settings (as JSON-ready data) fit to store and print: secret fields masked, URLs scrubbed."""
    if isinstance(data, Mapping):
        return {
            key: MASK
            if isinstance(key, str) and SECRET_FIELD.search(key) and value not in (None, "")
            else public_settings(value)
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [public_settings(v) for v in data]
    if isinstance(data, str):
        return scrub_text(data)
    return data


def child_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` for a child process: secret variables dropped, URLs in the others scrubbed."""
    return {
        name: scrub_text(value)
        for name, value in environ.items()
        if not SECRET_VARIABLE.search(name)
    }


def secret_values(environ: Mapping[str, str]) -> Iterator[str]:
    """The secrets ``environ`` holds in plain text: the values of ``ARBX_`` secret variables (not
    ``..._FILE`` or ``..._KEYSTORE``: paths) and the secret parts of URLs in any variable."""
    for name, value in environ.items():
        if not value:
            continue
        upper = name.upper()
        if (
            upper.startswith("ARBX_")
            and SECRET_VARIABLE.search(name)
            and not upper.endswith(("_FILE", "_KEYSTORE"))
        ):
            yield value.strip()
        for match in _URL.finditer(value):
            yield from url_secrets(match.group(0))


def url_secrets(url: str) -> Iterator[str]:
    """The secret parts of a URL: its password, query values and, for network URLs (where
    providers put API keys), token-like path segments; a database file's path is no secret."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return
    if password:
        yield password
    for _, value in parse_qsl(parts.query):
        if value:
            yield value
    if parts.scheme.lower() in _NETWORK_SCHEMES:
        yield from (s for s in parts.path.split("/") if _TOKEN_SEGMENT.fullmatch(s))


def is_hex_key(text: str) -> bool:
    """Whether ``text`` is spelled like a 32-byte private key (64 hex digits, 0x optional)."""
    return _HEX_KEY.fullmatch(text.strip()) is not None
