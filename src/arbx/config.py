"""Settings: built once, from an optional TOML file and ``ARBX_...`` environment variables.

The file is ``--config``'s, else the one ``ARBX_SETTINGS`` names. Environment variables win
over the file; nested fields use ``__`` (``ARBX_CHAIN__RPC``,
``ARBX_STRATEGY__MAX_HOPS``). With no file and no variables, the settings describe the embedded
default: a local devnet that ``arbx run`` starts itself. A bad file or value raises
``ConfigError`` with one line naming the field.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from eth_utils.address import is_hex_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from arbx import __version__, safejson
from arbx.api.settings import ApiSettings
from arbx.domain.bidding import BidPolicy
from arbx.domain.errors import ConfigError
from arbx.domain.modes import Mode
from arbx.metrics.settings import MetricsSettings
from arbx.obs.logging import LogSettings
from arbx.risk.settings import RiskSettings

Kind = Literal["uniswap_v2", "uniswap_v3"]
MAX_SETTINGS_BYTES: Final = 1024 * 1024
MAX_SETTINGS_DEPTH: Final = 16
SETTINGS_VARIABLE: Final = "ARBX_SETTINGS"  # the settings file when no --config is given
MAX_PATH_CHARS: Final = 4096


def _address(value: str) -> str:
    if not isinstance(value, str) or not is_hex_address(value):
        raise ValueError(f"{value!r} is not a 20-byte hex address")
    return str(to_checksum_address(value))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChainSettings(_Strict):
    """Which chain, and how to reach it."""

    id: int = Field(31337, ge=1)
    name: str = "devnet"
    rpc: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ws: Annotated[list[str], NoDecode] = Field(default_factory=list)
    multicall: str | None = None
    start_block: int = Field(0, ge=0)
    poll_interval: float = Field(1.0, gt=0)
    timeout: float = Field(3.0, gt=0)
    hedge_after: float = Field(0.5, ge=0)  # a read unanswered this long goes to a 2nd endpoint too

    @field_validator("rpc", "ws", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("rpc", "ws")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://", "ws://", "wss://")):
                raise ValueError(f"{url!r} is not an http(s) or ws(s) URL")
        return value

    @field_validator("multicall")
    @classmethod
    def _multicall(cls, value: str | None) -> str | None:
        return None if value is None else _address(value)


class VenueSettings(_Strict):
    """A DEX deployment to watch."""

    name: str
    kind: Kind
    factory: str
    fee_bps: int = Field(30, ge=0, le=9999)
    init_code_hash: str = ""

    @field_validator("factory")
    @classmethod
    def _factory(cls, value: str) -> str:
        return _address(value)

    @field_validator("init_code_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        if value and (len(value) != 66 or not value.startswith("0x")):
            raise ValueError("init_code_hash must be 0x and 64 hex digits")
        return value.lower()


class StrategySettings(_Strict):
    """The cyclic-arbitrage strategy's limits."""

    base_tokens: list[str] = Field(default_factory=list)
    max_hops: int = Field(3, ge=2, le=6)
    max_input: dict[str, int] = Field(default_factory=dict)
    min_net_profit_wei: int = Field(1, ge=0)
    builder_share_bps: int = Field(0, ge=0, le=10_000)
    priority_fee_wei: int = Field(1_000_000_000, ge=0)
    max_routes: int = Field(200_000, ge=1)
    max_sized_per_block: int = Field(64, ge=1)  # live routes sized exactly per block
    # routes of 4 hops or more pass only through tokens paired with at least this many others
    # (the hubs); None keeps every route. About 4 at mainnet scale (ADR 0027).
    connector_min_pairs: int | None = Field(None, ge=1, le=1_000)

    @field_validator("base_tokens")
    @classmethod
    def _bases(cls, value: list[str]) -> list[str]:
        return [_address(v) for v in value]

    @field_validator("max_input")
    @classmethod
    def _caps(cls, value: dict[str, int]) -> dict[str, int]:
        return {_address(k): v for k, v in value.items()}


class FilterSettings(_Strict):
    """Which discovered pools to keep."""

    allow_tokens: list[str] = Field(default_factory=list)
    deny_tokens: list[str] = Field(default_factory=list)
    min_reserve: int = Field(0, ge=0)

    @field_validator("allow_tokens", "deny_tokens")
    @classmethod
    def _tokens(cls, value: list[str]) -> list[str]:
        return [_address(v) for v in value]


class BuilderSettings(_Strict):
    """A block builder (or relay) that takes Flashbots-style bundles."""

    name: str
    url: str
    uuid_field: Literal["replacementUuid", "uuid"] | None = "replacementUuid"
    cancel: Literal["eth_cancelBundle", "empty_bundle"] | None = "eth_cancelBundle"
    supports_call_bundle: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


class BiddingSettings(_Strict):
    """The builder's share per route from the rivals self-scoring saw on its pools (ADR 0033).

    Off: every route pays ``strategy.builder_share_bps``. On: that share where no rival was
    seen within ``execution.contested_memory_blocks``; where one was and what it paid the
    coinbase per gas is known (``follow_payments``), the least share that pays ``outbid_bps``
    more per gas than the most a rival paid there; where only sightings are known,
    ``contested_bps``, ``step_bps`` more for each further sighting; at most ``max_bps``, and
    never more than leaves the route its gas.
    """

    enabled: bool = False
    contested_bps: int = Field(5_000, ge=0, le=10_000)
    step_bps: int = Field(1_000, ge=0, le=10_000)
    max_bps: int = Field(8_000, ge=0, le=10_000)
    follow_payments: bool = True
    outbid_bps: int = Field(1_000, ge=0, le=10_000)

    def policy(self, quiet_bps: int, memory_blocks: int) -> BidPolicy | None:
        """The policy, with ``quiet_bps`` where no rival was seen; None when off."""
        if not self.enabled:
            return None
        return BidPolicy(
            quiet_bps=quiet_bps,
            contested_bps=self.contested_bps,
            step_bps=self.step_bps,
            max_bps=self.max_bps,
            memory_blocks=memory_blocks,
            follow_payments=self.follow_payments,
            outbid_bps=self.outbid_bps,
        )


class ExecutionSettings(_Strict):
    """How live modes trade: the executor contract, the builders, the safety margins."""

    executor: str | None = None  # the deployed ArbExecutor owned by the signing key
    builders: list[BuilderSettings] = Field(default_factory=list)
    blocks_ahead: int = Field(0, ge=0, le=10)
    slippage_bps: int = Field(0, ge=0, le=10_000)
    # also wait for a builder's eth_callBundle before sending (the node's eth_call of the exact
    # signed transaction always runs): a builder's simulation costs its round trip (ADR 0023)
    simulate_at_builders: bool = False
    # pool-disjoint routes sent together in one executeMany transaction (1: one route a block);
    # at most the contract's MAX_ROUTES (ADR 0033)
    routes_per_block: int = Field(1, ge=1, le=8)
    # which routes join the block's best: "all" pool-disjoint ones, or only "contested" ones (a
    # rival was seen on their pools within contested_memory_blocks: waiting may lose them)
    extra_routes: Literal["all", "contested"] = "all"
    contested_memory_blocks: int = Field(100, ge=1, le=100_000)
    extra_min_net_wei: int = Field(0, ge=0)  # the least expected net profit of a route joining
    bidding: BiddingSettings = Field(default_factory=BiddingSettings)

    @field_validator("executor")
    @classmethod
    def _executor(cls, value: str | None) -> str | None:
        return None if value is None else _address(value)


RELEASE_PATTERN: Final = r"^[A-Za-z0-9._-]{1,64}$"


class ReleaseSettings(_Strict):
    """Releases of the engine: the pre-promotion comparison's rules and the handover's pace.

    ``arbx release compare`` passes a preview when, over the blocks both engines processed with
    the same hash: there are at least ``min_blocks``; at most ``max_differing_ratio_bps`` of them
    (500: 5%) show other routes, or sizes or expected profits off by more than ``tolerance_bps``
    (10: 0.1%); the preview's median detection latency is at most ``latency_ratio_bps`` (20000:
    twice) the active's plus ``latency_slack_ms``; and the preview had no parity failure and no
    error on them. The first ``warmup_blocks`` of each run of either engine are left out.
    """

    min_blocks: int = Field(20, ge=1)
    tolerance_bps: int = Field(10, ge=0, le=10_000)
    max_differing_ratio_bps: int = Field(500, ge=0, le=10_000)
    latency_ratio_bps: int = Field(20_000, ge=10_000)
    latency_slack_ms: float = Field(10.0, ge=0)
    warmup_blocks: int = Field(2, ge=0)  # first blocks of each engine's run left out
    handover_poll_s: float = Field(0.5, gt=0, le=60)  # how often engines look for a request
    promote_timeout_s: float = Field(60.0, gt=0)


class Settings(BaseSettings):
    """Everything a run needs; ``load_settings`` builds it."""

    model_config = SettingsConfigDict(
        env_prefix="ARBX_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    mode: Mode = "shadow"
    database_url: str = "sqlite:///./data/arbx.db"
    chain: ChainSettings = Field(default_factory=ChainSettings)
    venues: list[VenueSettings] = Field(default_factory=list)
    strategy: StrategySettings = Field(default_factory=StrategySettings)
    filters: FilterSettings = Field(default_factory=FilterSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    release: str = Field(__version__, pattern=RELEASE_PATTERN)  # this process's release
    standby: bool = False  # follow in shadow beside the active engine until promoted
    releases: ReleaseSettings = Field(default_factory=ReleaseSettings)

    @property
    def embedded(self) -> bool:
        """True when no chain is configured: ``arbx run`` starts its own devnet."""
        return not self.chain.rpc

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.chain.rpc and not self.venues:
            raise ValueError("a configured chain needs at least one venue")
        if self.chain.rpc and not self.strategy.base_tokens:
            raise ValueError("a configured chain needs strategy.base_tokens")
        if self.chain.rpc and self.mode != "shadow":
            if self.execution.executor is None:
                raise ValueError("a live mode needs execution.executor (the deployed contract)")
            if not self.execution.builders:
                raise ValueError("a live mode needs execution.builders to send bundles to")
        names = [v.name for v in self.venues]
        if len(set(names)) != len(names):
            raise ValueError("venue names must be unique")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],  # noqa: ARG003
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first, then values passed in (from the TOML file)."""
        return env_settings, init_settings


def read_settings_file(path: Path) -> dict[str, Any]:
    """The TOML file at ``path``, bounded in size and nesting before and after it is parsed.

    The TOML parser recurses in Python: a file of ``[[[[...`` would exhaust the interpreter's
    stack, and a deep structure would then reach code that recurses over settings.
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SETTINGS_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_SETTINGS_BYTES:
        raise ConfigError(f"settings file {path} is over {MAX_SETTINGS_BYTES} bytes")
    too_deep = ConfigError(f"settings file {path} nests deeper than {MAX_SETTINGS_DEPTH} levels")
    if safejson.nesting_depth(raw) > MAX_SETTINGS_DEPTH:  # arrays and inline tables
        raise too_deep
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except ValueError as exc:  # TOMLDecodeError, bad UTF-8, an integer past 4,300 digits
        raise ConfigError(f"settings file {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise too_deep from None
    if safejson.value_depth(data) > MAX_SETTINGS_DEPTH:  # dotted keys nest without brackets
        raise too_deep
    return data


def check_environment(environ: Mapping[str, str]) -> None:
    """ConfigError for an ``ARBX_`` variable too large or too deep to decode as JSON.

    Structured settings in variables are decoded by the standard JSON decoder, which recurses
    on the C stack. The message names the variable, never its value (it may be a secret).
    """
    for name, value in environ.items():
        if not name.upper().startswith("ARBX_"):
            continue
        raw = value.encode(errors="surrogateescape")
        if len(raw) > MAX_SETTINGS_BYTES or safejson.nesting_depth(raw) > MAX_SETTINGS_DEPTH:
            raise ConfigError(
                f"variable {name} is over {MAX_SETTINGS_BYTES} bytes or nests deeper than "
                f"{MAX_SETTINGS_DEPTH} levels"
            )


def settings_path(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The settings file: ``path`` (``--config``) when given, else the one ``ARBX_SETTINGS``
    names, else None (the environment alone)."""
    if path is not None:
        return path
    named = (os.environ if environ is None else environ).get(SETTINGS_VARIABLE, "").strip()
    if not named:
        return None
    if len(named) > MAX_PATH_CHARS or "\x00" in named:
        raise ConfigError(f"variable {SETTINGS_VARIABLE} is not a file path")
    return Path(named)


def load_settings(path: Path | None = None) -> Settings:
    """Settings from ``path`` (TOML; else the file ``ARBX_SETTINGS`` names) and the environment;
    ConfigError with one clear line."""
    check_environment(os.environ)
    path = settings_path(path)
    data: dict[str, Any] = {} if path is None else read_settings_file(path)
    try:
        return Settings(**data)
    except SettingsError as exc:
        raise ConfigError(f"bad ARBX_ environment variable: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        source = f"{path} or ARBX_ variables" if path is not None else "ARBX_ variables"
        raise ConfigError(f"bad setting {where} ({source}): {first['msg']}") from None
