"""The deployment file of a devnet: what was deployed where, the accounts, and the processes.

Written by the world builder (``./data/devnet.json`` by default) and read by the market simulator,
``arbx devnet down`` and the searcher. It holds addresses only: no private key is ever written
(anvil's dev keys are public, but the searcher's key is still loaded the way a real one is).
Amounts and prices here are for simulation (floats); on-chain amounts are never stored.

The searcher's key (anvil account 9) goes, only when asked, into a secret file of its own
(:func:`write_searcher_key`, mode 0600, ``devnet-searcher.key`` next to the deployment file by
convention), which ``ARBX_SIGNING_KEY_FILE`` can name. ``builder_url`` (added in format 1; absent
in older files, read as None) is the local builder the devnet's blocks go through.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from eth_account import Account

from arbx import safejson
from arbx.domain.errors import ConfigError

MAX_DEPLOYMENT_BYTES = 16 * 1024 * 1024

FORMAT_VERSION = 1
DEFAULT_FILE = Path("data") / "devnet.json"
SEARCHER_ACCOUNT_INDEX = 9  # anvil's last default account: the bot's, never used by the devnet
SEARCHER_KEY_FILE = "devnet-searcher.key"  # its conventional name, next to the deployment file
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"  # anvil's default
VenueKind = Literal["uniswap_v2", "uniswap_v3"]


@dataclass(frozen=True)
class TokenRecord:
    """A deployed ERC-20 (TestToken) and the USD price it was listed at."""

    symbol: str
    name: str
    address: str
    decimals: int
    price_usd: float


@dataclass(frozen=True)
class VenueRecord:
    """A DEX: its factory, router, pool init code hash and (V2 only) fee in basis points."""

    name: str
    kind: VenueKind
    factory: str
    router: str
    init_code_hash: str
    fee_bps: int | None  # None for V3: each pool has its own fee


@dataclass(frozen=True)
class PoolRecord:
    """A pool: its venue, sorted tokens, fee (hundredths of a bip; V2 3000) and seeded TVL."""

    address: str
    venue: str
    kind: VenueKind
    token0: str
    token1: str
    fee: int
    tick_spacing: int  # 0 for V2
    tvl_weth: float


@dataclass(frozen=True)
class V3Periphery:
    """The Uniswap V3 periphery contracts."""

    position_manager: str
    swap_router: str
    quoter: str


@dataclass(frozen=True)
class Accounts:
    """Who does what: anvil account 0 deploys, 1..5 trade, the last one is the searcher's."""

    deployer: str
    traders: tuple[str, ...]
    searcher: str
    searcher_index: int = SEARCHER_ACCOUNT_INDEX
    note: str = (
        f"anvil account {SEARCHER_ACCOUNT_INDEX} is reserved for the searcher bot; "
        "the deployer and the market simulator never use it. No key is stored here."
    )


@dataclass(frozen=True)
class Deployment:
    """Everything a devnet holds, where to reach it, and the processes that run it."""

    chain_id: int
    rpc_url: str
    ws_url: str
    start_block: int
    seed: int
    eth_usd: float
    weth: str
    multicall: str
    tokens: tuple[TokenRecord, ...]
    venues: tuple[VenueRecord, ...]
    v3: V3Periphery
    pools: tuple[PoolRecord, ...]
    accounts: Accounts
    block_time: float | None = None  # None or 0: the simulator mines ("manual" pacing)
    anvil_pid: int | None = None
    market_pid: int | None = None
    builder_url: str | None = None  # the local builder: bundles, and every block goes through it
    version: int = FORMAT_VERSION

    def token(self, symbol: str) -> TokenRecord:
        """The token with ``symbol`` (WETH is not in ``tokens``)."""
        for record in self.tokens:
            if record.symbol == symbol:
                return record
        raise ConfigError(f"no token {symbol!r} in the deployment")

    def venue(self, name: str) -> VenueRecord:
        """The venue called ``name``."""
        for record in self.venues:
            if record.name == name:
                return record
        raise ConfigError(f"no venue {name!r} in the deployment")

    def with_pids(self, anvil_pid: int | None, market_pid: int | None) -> Deployment:
        """A copy that names the processes running the devnet."""
        return replace(self, anvil_pid=anvil_pid, market_pid=market_pid)

    def to_json(self) -> dict[str, Any]:
        """The file's JSON document."""
        return asdict(self)


def save_deployment(deployment: Deployment, path: Path) -> None:
    """Write the deployment file atomically (the folder is created if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(deployment.to_json(), indent=2) + "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.fchmod(handle, 0o644)  # addresses only: readable by other tools (mkstemp makes it 0600)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    Path(temporary).replace(path)


def write_searcher_key(path: Path, address: str) -> None:
    """Write anvil account 9's key as hex to ``path`` (mode 0600); it must be ``address``'s."""
    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(
        ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{SEARCHER_ACCOUNT_INDEX}"
    )
    if account.address.lower() != address.lower():
        raise ConfigError(
            f"anvil account {SEARCHER_ACCOUNT_INDEX} is {address}, not the test mnemonic's "
            f"{account.address}: the key file is not written"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)  # as mkstemp made it: the owner's only
            out.write(f"0x{bytes(account.key).hex()}\n")
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_deployment(path: Path) -> Deployment:
    """Read a deployment file; one ConfigError line if it is missing or malformed."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_DEPLOYMENT_BYTES + 1)
        doc = safejson.loads(raw, max_bytes=MAX_DEPLOYMENT_BYTES, max_depth=16)
    except FileNotFoundError:
        raise ConfigError(f"no devnet deployment file at {path}: run `arbx devnet up`") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except safejson.JsonError as exc:
        raise ConfigError(f"{path} is not a devnet deployment file (bad JSON: {exc})") from None
    try:
        return _parse(doc)
    except KeyError as exc:
        raise ConfigError(f"{path} is not a devnet deployment file: no {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path} is not a valid devnet deployment file: {exc}") from None


def _parse(doc: Any) -> Deployment:
    if not isinstance(doc, dict):
        raise TypeError("top level is not an object")
    if doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"format version {doc.get('version')!r}, expected {FORMAT_VERSION}")
    accounts = dict(doc["accounts"])
    accounts["traders"] = tuple(accounts["traders"])
    venues = tuple(VenueRecord(**v) for v in doc["venues"])
    for venue in venues:
        if venue.kind not in ("uniswap_v2", "uniswap_v3"):
            raise ValueError(f"unknown venue kind {venue.kind!r}")
    deployment = Deployment(
        **{
            **doc,
            "tokens": tuple(TokenRecord(**t) for t in doc["tokens"]),
            "venues": venues,
            "v3": V3Periphery(**doc["v3"]),
            "pools": tuple(PoolRecord(**p) for p in doc["pools"]),
            "accounts": Accounts(**accounts),
        }
    )
    for name in ("chain_id", "start_block", "seed"):
        if not isinstance(getattr(deployment, name), int):
            raise TypeError(f"{name} is not an integer")
    return deployment
