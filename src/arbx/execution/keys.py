"""Keys: the funded signing key and the relay reputation key, where they come from, never shown.

Each role reads exactly one source; two set at once is a ConfigError, never a guess about which
key signs (the variables are in :data:`ROLE_VARIABLES`):

- signing: an encrypted keystore ``ARBX_SIGNING_KEYSTORE`` (scrypt; its password from
  ``ARBX_KEYSTORE_PASSWORD_FILE`` or ``ARBX_KEYSTORE_PASSWORD``), or a secret file
  ``ARBX_SIGNING_KEY_FILE``, or the variable ``ARBX_SIGNING_KEY`` (hex, 0x optional);
- relay: ``ARBX_RELAY_KEYSTORE`` (password ``ARBX_RELAY_KEYSTORE_PASSWORD[_FILE]``), or
  ``ARBX_RELAY_KEY_FILE``, or ``ARBX_RELAY_KEY``.

Keys never come from the command line (argv is visible to every user of the machine in ``ps``).
A secret file (raw key or password) that its group or others may read is refused. The two roles
must hold different keys: the relay key is a public reputation identity and is never funded.
Shadow mode never resolves the signing key at all (:func:`load_keys` with ``live=False``).

A :class:`Signer` shows its role, address and source in ``repr``/``str`` and refuses to be pickled
or copied; error messages name the variable or file, never its content. As a second line,
``arbx.redaction`` scrubs every loaded key and keystore password from every log record.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Literal, NoReturn, TextIO

from coincurve import PrivateKey
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keyfile.exceptions import EthKeyfileException
from eth_typing import ChecksumAddress
from eth_utils.address import is_checksum_address
from eth_utils.crypto import keccak

from arbx import safejson
from arbx.domain.errors import ConfigError, InputError
from arbx.execution.eip1559 import Eip1559Fields, personal_sign, sign_eip1559
from arbx.redaction import remember_secret, remember_text

log = logging.getLogger(__name__)

Role = Literal["signing", "relay"]
SCRYPT_N: Final = 2**18  # eth-keyfile's default work factor: about 0.7 s to open on 2 vCPU
MIN_PASSWORD: Final = 8  # for keystores we write; any password opens an existing one
MAX_KEYSTORE_BYTES: Final = 64 * 1024  # a version 3 keystore is under 1 KB
SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_GROUP_OTHER_READ: Final = stat.S_IRGRP | stat.S_IROTH


@dataclass(frozen=True, slots=True)
class RoleVariables:
    """The environment variable names one role reads."""

    keystore: str
    password: str
    password_file: str
    key_file: str
    key: str


ROLE_VARIABLES: Final[Mapping[Role, RoleVariables]] = {  # names of variables, not secrets
    "signing": RoleVariables(
        keystore="ARBX_SIGNING_KEYSTORE",
        password="ARBX_KEYSTORE_PASSWORD",  # noqa: S106
        password_file="ARBX_KEYSTORE_PASSWORD_FILE",  # noqa: S106
        key_file="ARBX_SIGNING_KEY_FILE",
        key="ARBX_SIGNING_KEY",
    ),
    "relay": RoleVariables(
        keystore="ARBX_RELAY_KEYSTORE",
        password="ARBX_RELAY_KEYSTORE_PASSWORD",  # noqa: S106
        password_file="ARBX_RELAY_KEYSTORE_PASSWORD_FILE",  # noqa: S106
        key_file="ARBX_RELAY_KEY_FILE",
        key="ARBX_RELAY_KEY",
    ),
}


# -- where a key comes from -----------------------------------------------------------------


class SourceKind(StrEnum):
    """The kinds of place a key may be read from."""

    KEYSTORE = "keystore"
    FILE = "secret file"
    VARIABLE = "variable"
    STDIN = "standard input"


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where a key comes from: a path, a variable name or stdin; never the key itself."""

    kind: SourceKind
    where: str = ""
    role: Role = "signing"  # whose password opens a keystore

    @classmethod
    def keystore(cls, path: str | Path, role: Role = "signing") -> KeySource:
        """An encrypted keystore file, opened with ``role``'s password."""
        return cls(SourceKind.KEYSTORE, str(path), role)

    @classmethod
    def file(cls, path: str | Path) -> KeySource:
        """A secret file holding the key as hex (mode 0600 or stricter)."""
        return cls(SourceKind.FILE, str(path))

    @classmethod
    def variable(cls, name: str) -> KeySource:
        """An environment variable holding the key as hex."""
        return cls(SourceKind.VARIABLE, name)

    @classmethod
    def stdin(cls) -> KeySource:
        """Standard input (no echo on a terminal), for ``arbx key import``."""
        return cls(SourceKind.STDIN, "-")

    def __str__(self) -> str:
        return str(self.kind) if self.kind is SourceKind.STDIN else f"{self.kind} {self.where}"


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _only_one(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The one variable of ``names`` that is set (non-empty), None if none; ConfigError if more."""
    chosen = [name for name in names if environ.get(name, "")]
    if len(chosen) > 1:
        raise ConfigError(f"set only one of {', '.join(chosen)}: they are exclusive")
    return chosen[0] if chosen else None


def key_source(role: Role, environ: Mapping[str, str] | None = None) -> KeySource | None:
    """The one configured source of ``role``'s key, None if there is none."""
    env = _environ(environ)
    names = ROLE_VARIABLES[role]
    chosen = _only_one(env, (names.keystore, names.key_file, names.key))
    if chosen is None:
        return None
    if chosen == names.keystore:
        return KeySource.keystore(env[chosen], role)
    if chosen == names.key_file:
        return KeySource.file(env[chosen])
    return KeySource.variable(chosen)


# -- reading secrets ------------------------------------------------------------------------


def read_secret_file(path: str | Path, what: str) -> str:
    """A secret file's text; ConfigError if group or others may read it, or it is unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)  # the file opened, not whatever the path points to a moment later
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{what} {path} is not a regular file")
        if info.st_mode & _GROUP_OTHER_READ:
            mode = stat.S_IMODE(info.st_mode)
            raise ConfigError(
                f"{what} {path} may be read by group or others (mode {mode:04o}): chmod 600 it"
            )
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(64 * 1024)
    finally:
        os.close(fd)
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text") from None


def _strip_newline(text: str) -> str:
    return text.removesuffix("\n").removesuffix("\r")


def keystore_password(
    role: Role, environ: Mapping[str, str] | None = None, *, prompt: bool = False
) -> str:
    """``role``'s keystore password from its file or variable (or a no-echo prompt on a tty)."""
    env = _environ(environ)
    names = ROLE_VARIABLES[role]
    chosen = _only_one(env, (names.password_file, names.password))
    if chosen == names.password_file:
        password = _strip_newline(read_secret_file(env[chosen], f"{role} keystore password file"))
        remember_text(password)
        return password
    if chosen == names.password:
        remember_text(env[chosen])
        return env[chosen]
    if prompt and sys.stdin.isatty():
        first = getpass.getpass(f"{role} keystore password: ")
        if getpass.getpass("again: ") != first:
            raise ConfigError("the two passwords differ")
        return first
    raise ConfigError(
        f"the {role} keystore needs a password: set {names.password_file} or {names.password}"
    )


def parse_private_key(text: str, what: str) -> bytes:
    """A private key from hex text (0x optional); ConfigError naming ``what``, never the text."""
    digits = text.strip()
    if digits[:2] in ("0x", "0X"):
        digits = digits[2:]
    if len(digits) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise ConfigError(f"{what} does not hold a private key (64 hex digits)")
    key = bytes.fromhex(digits)
    if not 0 < int.from_bytes(key, "big") < SECP256K1_N:
        raise ConfigError(f"{what} holds a number outside the secp256k1 key range")
    return key


def _read_stdin(stdin: TextIO | None) -> str:
    stream = sys.stdin if stdin is None else stdin
    if stream.isatty():
        return getpass.getpass("private key (hex, not echoed): ")
    return stream.read(4096)


def _open_keystore(path: str, password: str) -> bytes:
    """The key in keystore ``path``; ConfigError for a missing file, bad JSON or wrong password."""
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_KEYSTORE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read keystore {path}: {exc.strerror or exc}") from None
    try:
        document = safejson.loads(raw, max_bytes=MAX_KEYSTORE_BYTES, max_depth=8)
    except safejson.JsonError as exc:
        raise ConfigError(f"keystore {path} is not JSON we accept: {exc}") from None
    crypto = document.get("crypto", document.get("Crypto")) if isinstance(document, dict) else None
    if not isinstance(crypto, dict):
        raise ConfigError(f"keystore {path} is not a version 3 keystore")
    try:
        key = bytes(Account.decrypt(document, password))
    except EthKeyfileException as exc:
        if "MAC mismatch" in str(exc):
            raise ConfigError(f"wrong password for keystore {path}") from None
        raise ConfigError(f"keystore {path} cannot be opened: {exc}") from None
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"keystore {path} cannot be opened: malformed") from None
    recorded = document.get("address")
    derived = Account.from_key(key).address
    if isinstance(recorded, str) and recorded.lower().removeprefix("0x") != derived[2:].lower():
        raise ConfigError(f"keystore {path} records another address than its key's")
    return key


def read_private_key(
    source: KeySource, environ: Mapping[str, str] | None = None, *, stdin: TextIO | None = None
) -> bytes:
    """The 32-byte key at ``source``; ConfigError with one line naming the source, not the key."""
    env = _environ(environ)
    if source.kind is SourceKind.KEYSTORE:
        return _open_keystore(source.where, keystore_password(source.role, env))
    if source.kind is SourceKind.FILE:
        return parse_private_key(read_secret_file(source.where, "key file"), str(source))
    if source.kind is SourceKind.VARIABLE:
        if not env.get(source.where, ""):
            raise ConfigError(f"variable {source.where} is not set")
        return parse_private_key(env[source.where], str(source))
    return parse_private_key(_read_stdin(stdin), str(source))


# -- signers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A signed transaction: the raw bytes for ``eth_sendRawTransaction`` and its hash."""

    raw: bytes
    hash: bytes
    nonce: int
    sender: ChecksumAddress

    @property
    def raw_hex(self) -> str:
        """The raw transaction as 0x-prefixed hex."""
        return "0x" + self.raw.hex()

    @property
    def hash_hex(self) -> str:
        """The transaction hash as 0x-prefixed hex."""
        return "0x" + self.hash.hex()


class Signer:
    """A loaded key: its role, address and source; its repr and str never show the key."""

    __slots__ = ("_account", "_secp", "role", "source")

    def __init__(self, account: LocalAccount, role: Role, source: str) -> None:
        self._account = account
        self._secp = PrivateKey(bytes(account.key))  # libsecp256k1's handle, for the hot path
        self.role: Role = role
        self.source = source
        remember_secret(bytes(account.key))

    @property
    def address(self) -> ChecksumAddress:
        """The key's checksummed address."""
        return self._account.address

    def __repr__(self) -> str:
        name, source = type(self).__name__, self.source
        return f"{name}(role={self.role!r}, address={self.address}, source={source!r})"

    __str__ = __repr__

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError(f"a {type(self).__name__} holds a key: it is never pickled or copied")

    def __copy__(self) -> NoReturn:
        self.__reduce_ex__(None)

    def __deepcopy__(self, memo: object) -> NoReturn:
        self.__reduce_ex__(None)


class TxSigner(Signer):
    """The funded key: signs transactions, each after ``guard`` (e.g. the signer lock) allows it,
    and tells ``witness`` the hash of each one signed (the signer lock's record of signatures)."""

    __slots__ = ("_guard", "_witness")

    def __init__(
        self,
        account: LocalAccount,
        source: str,
        *,
        guard: Callable[[], None] | None = None,
        witness: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(account, "signing", source)
        self._guard = guard
        self._witness = witness

    def sign_transaction(self, tx: Mapping[str, Any]) -> SignedTx:
        """Sign a transaction dict (type 2 for EIP-1559); InputError for a malformed one."""
        if self._guard is not None:
            self._guard()  # raises when this process may not sign (lost its lock)
        fields = dict(tx)
        sender = fields.pop("from", None)
        if sender is not None and str(sender).lower() != self.address.lower():
            raise InputError(f"transaction from {sender} cannot be signed by {self.address}")
        direct = _eip1559_fields(fields)
        if direct is not None:  # the executor's calls: the same bytes, ten times faster
            raw = sign_eip1559(self._secp, direct)
            result = SignedTx(raw, keccak(raw), direct.nonce, self.address)
        else:
            try:
                signed = self._account.sign_transaction(fields)
            except (TypeError, ValueError) as exc:
                raise InputError(f"cannot sign the transaction: {exc}") from None
            result = SignedTx(
                bytes(signed.raw_transaction), bytes(signed.hash), fields["nonce"], self.address
            )
        if self._witness is not None:
            self._witness(result.hash_hex)
        return result


class RelaySigner(Signer):
    """The relay reputation key: signs request bodies for relays, never transactions."""

    __slots__ = ()

    def __init__(self, account: LocalAccount, source: str) -> None:
        super().__init__(account, "relay", source)

    def sign_text(self, text: str) -> str:
        """EIP-191 personal-sign of ``text``: the 65-byte signature as 0x-prefixed hex."""
        return "0x" + personal_sign(self._secp, text).hex()

    def flashbots_signature(self, body: bytes) -> str:
        """The ``X-Flashbots-Signature`` value for a request body: ``address:signature``."""
        return f"{self.address}:{self.sign_text('0x' + keccak(body).hex())}"


_EIP1559_KEYS: Final = frozenset(
    {"type", "chainId", "nonce", "to", "value", "data", "gas", "maxFeePerGas"}
    | {"maxPriorityFeePerGas", "accessList"}
)
_EIP1559_INTS: Final = ("chainId", "nonce", "value", "gas", "maxFeePerGas", "maxPriorityFeePerGas")


def _eip1559_fields(tx: Mapping[str, Any]) -> Eip1559Fields | None:
    """The fields of a plain type-2 call (checksummed ``to``, bytes data, no access list) signed
    directly; None for anything else, which eth-account signs (or refuses) instead."""
    if tx.keys() != _EIP1559_KEYS or type(tx["type"]) is not int or tx["type"] != 2:
        return None
    if any(type(tx[name]) is not int or tx[name] < 0 for name in _EIP1559_INTS):
        return None
    to, data = tx["to"], tx["data"]
    if type(data) is not bytes or tx["accessList"] != [] or not isinstance(to, str):
        return None
    if not is_checksum_address(to):
        return None
    return Eip1559Fields(
        tx["chainId"],
        tx["nonce"],
        tx["maxPriorityFeePerGas"],
        tx["maxFeePerGas"],
        tx["gas"],
        bytes.fromhex(to[2:]),
        tx["value"],
        data,
    )


def _account(key: bytes) -> LocalAccount:
    account: LocalAccount = Account.from_key(key)
    return account


def load_tx_signer(
    environ: Mapping[str, str] | None = None,
    *,
    guard: Callable[[], None] | None = None,
    witness: Callable[[str], None] | None = None,
) -> TxSigner:
    """The funded signing key from its one configured source; ConfigError if none or bad."""
    source = key_source("signing", environ)
    if source is None:
        names = ROLE_VARIABLES["signing"]
        raise ConfigError(
            f"live mode needs the signing key: set {names.keystore}, {names.key_file} "
            f"or {names.key}"
        )
    signer = TxSigner(
        _account(read_private_key(source, environ)), str(source), guard=guard, witness=witness
    )
    log.info("loaded the signing key %s from %s", signer.address, source)
    return signer


def load_relay_signer(environ: Mapping[str, str] | None = None) -> RelaySigner | None:
    """The relay reputation key from its one configured source, None if none is configured."""
    source = key_source("relay", environ)
    if source is None:
        return None
    signer = RelaySigner(_account(read_private_key(source, environ)), str(source))
    log.info("loaded the relay key %s from %s", signer.address, source)
    return signer


@dataclass(frozen=True, slots=True)
class Keys:
    """The keys of a run: the signing key only when live; the relay key when configured."""

    signer: TxSigner | None
    relay: RelaySigner | None


def load_keys(
    environ: Mapping[str, str] | None = None,
    *,
    live: bool,
    guard: Callable[[], None] | None = None,
    witness: Callable[[str], None] | None = None,
) -> Keys:
    """The run's keys: live needs both, different; shadow never reads the signing key."""
    relay = load_relay_signer(environ)
    if not live:
        log.info("shadow mode: the signing key is not loaded")
        return Keys(signer=None, relay=relay)
    if relay is None:
        names = ROLE_VARIABLES["relay"]
        raise ConfigError(
            f"live mode needs a relay reputation key: set {names.keystore}, {names.key_file} "
            f"or {names.key}"
        )
    signer = load_tx_signer(environ, guard=guard, witness=witness)
    if signer.address == relay.address:
        raise ConfigError(
            f"the signing key and the relay key are the same ({signer.address}): the relay key "
            "is a public identity and must be a separate, unfunded key"
        )
    return Keys(signer=signer, relay=relay)


# -- keystores for `arbx key new` / `arbx key import` ---------------------------------------


def _write_keystore(path: Path, key: bytes, password: str, scrypt_n: int) -> ChecksumAddress:
    """Encrypt ``key`` (scrypt) into a new file ``path``, mode 0600; refuses to overwrite."""
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"a keystore password needs at least {MIN_PASSWORD} characters")
    if scrypt_n < 2 or scrypt_n & (scrypt_n - 1):
        raise ConfigError(f"scrypt n must be a power of two, not {scrypt_n}")
    document = Account.encrypt(key, password, kdf="scrypt", iterations=scrypt_n)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} already exists: refusing to overwrite a keystore") from None
    except OSError as exc:
        raise ConfigError(f"cannot create keystore {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(document, stream)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    address: ChecksumAddress = Account.from_key(key).address
    log.info("wrote keystore %s for %s", path, address)
    return address


def new_keystore(path: str | Path, password: str, *, scrypt_n: int = SCRYPT_N) -> ChecksumAddress:
    """Create a fresh key in a new keystore at ``path`` (mode 0600); its address."""
    key = bytes(Account.create().key)
    return _write_keystore(Path(path), key, password, scrypt_n)


def import_keystore(
    path: str | Path,
    source: KeySource,
    password: str,
    *,
    scrypt_n: int = SCRYPT_N,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
) -> ChecksumAddress:
    """Encrypt the key read from a secret file, a variable or stdin into a new keystore."""
    if source.kind is SourceKind.KEYSTORE:
        raise ConfigError("import reads a raw key (a secret file or stdin), not a keystore")
    key = read_private_key(source, environ, stdin=stdin)
    return _write_keystore(Path(path), key, password, scrypt_n)
