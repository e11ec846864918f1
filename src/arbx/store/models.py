"""ORM models (SQLAlchemy 2 typed declarative) and the column types they need.

Every on-chain amount is an exact integer that may reach 2^256 - 1, past BIGINT: ``UInt256`` and
``Int256`` store them as NUMERIC(78, 0) on PostgreSQL and, on SQLite (whose numbers are 64-bit
integers or doubles), as fixed-width decimal text that sorts and compares like the number. Times
are timezone-aware UTC datetimes (``UTCDateTime``). The schema itself is created by the Alembic
migrations in ``arbx.store.migrations``; these models must match them (a test checks).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

UINT256_MAX = 2**256 - 1
INT256_MIN = -(2**255)
INT256_MAX = 2**255 - 1
_DIGITS = 78  # len(str(2**256 - 1))
_TEN_DIGITS: int = 10**_DIGITS

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def encode_sortable(value: int) -> str:
    """A decimal string of fixed width whose text order is the integers' order (SQLite storage).

    Non-negative values are zero-padded to 78 digits; a negative ``v`` is ``-`` followed by
    ``10^78 + v`` padded likewise, so every negative sorts before every non-negative and a larger
    magnitude sorts first.
    """
    if value >= 0:
        return f"{value:0{_DIGITS}d}"
    return f"-{_TEN_DIGITS + value:0{_DIGITS}d}"


def decode_sortable(text: str) -> int:
    """The integer that ``encode_sortable`` wrote."""
    if text.startswith("-"):
        return int(text[1:]) - _TEN_DIGITS
    return int(text)


class _ExactInt(TypeDecorator[int]):
    """An exact integer in [low, high]: NUMERIC(78, 0) on PostgreSQL, sortable text elsewhere."""

    impl = Numeric(_DIGITS, 0)
    cache_ok = True
    low = 0
    high = UINT256_MAX

    @property
    def python_type(self) -> type[int]:
        """Values come back as ``int``."""
        return int

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """NUMERIC(78, 0) where the database has exact decimals, else text one digit wider."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(_DIGITS, 0, asdecimal=True))
        return dialect.type_descriptor(String(_DIGITS + 1))

    def _check(self, value: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{type(self).__name__} takes an int, got {type(value).__name__}")
        if not self.low <= value <= self.high:
            raise ValueError(f"{value} is outside {type(self).__name__} [{self.low}, {self.high}]")
        return value

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        """An int as a Decimal (PostgreSQL) or sortable text (SQLite)."""
        if value is None:
            return None
        value = self._check(value)
        if dialect.name == "postgresql":
            return Decimal(value)
        return encode_sortable(value)

    def process_literal_param(self, value: int | None, dialect: Dialect) -> str:
        """The literal SQL for a value (offline migrations, compiled statements)."""
        if value is None:
            return "NULL"
        value = self._check(value)
        if dialect.name == "postgresql":
            return str(value)
        return f"'{encode_sortable(value)}'"

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:  # noqa: ARG002
        """Back to an exact int."""
        if value is None:
            return None
        if isinstance(value, str):
            return decode_sortable(value)
        if isinstance(value, Decimal):
            if value != value.to_integral_value():
                raise ValueError(f"non-integral amount {value} in an integer column")
            return int(value)
        return int(value)


class UInt256(_ExactInt):
    """An unsigned on-chain amount, 0 .. 2^256 - 1, exact."""

    cache_ok = True
    low = 0
    high = UINT256_MAX


class Int256(_ExactInt):
    """A signed amount (a profit may be negative), -2^255 .. 2^255 - 1, exact."""

    cache_ok = True
    low = INT256_MIN
    high = INT256_MAX


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC (microseconds kept); naive input is refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        """Values come back as aware ``datetime`` in UTC."""
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Aware datetime -> UTC (naive UTC on databases without time zones)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass a timezone-aware one")
        value = value.astimezone(UTC)
        if dialect.name == "postgresql":
            return value
        return value.replace(tzinfo=None)

    def process_result_value(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002
    ) -> datetime | None:
        """Stored value -> aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Surrogate keys: 64-bit on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class Base(DeclarativeBase):
    """Declarative base with the constraint naming convention the migrations use."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Chain(Base):
    """An EVM chain, keyed by its chain id."""

    __tablename__ = "chains"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(64))


class Block(Base):
    """A block header as we saw it; ``reorged`` once it left the canonical chain."""

    __tablename__ = "blocks"
    __table_args__ = (
        UniqueConstraint("chain_id", "hash"),
        Index("ix_blocks_chain_id_number", "chain_id", "number"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chain_id: Mapped[int] = mapped_column(ForeignKey("chains.id"))
    number: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(66))
    parent_hash: Mapped[str] = mapped_column(String(66))
    timestamp: Mapped[int] = mapped_column(BigInteger)  # the header's unix seconds
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    latency_ms: Mapped[float | None] = mapped_column(Float)  # arrival -> block fully processed
    reorged: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)


class TokenRow(Base):
    """An ERC-20 token on one chain."""

    __tablename__ = "tokens"

    chain_id: Mapped[int] = mapped_column(ForeignKey("chains.id"), primary_key=True)
    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    symbol: Mapped[str | None] = mapped_column(String(64))
    decimals: Mapped[int | None] = mapped_column(Integer)


class PoolRow(Base):
    """A pool's static description; its state lives in memory, not here."""

    __tablename__ = "pools"
    __table_args__ = (
        ForeignKeyConstraint(["chain_id", "token0"], ["tokens.chain_id", "tokens.address"]),
        ForeignKeyConstraint(["chain_id", "token1"], ["tokens.chain_id", "tokens.address"]),
    )

    chain_id: Mapped[int] = mapped_column(ForeignKey("chains.id"), primary_key=True)
    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    family: Mapped[str] = mapped_column(String(32))  # 'uniswap_v2' | 'uniswap_v3'
    venue: Mapped[str | None] = mapped_column(String(64))
    token0: Mapped[str] = mapped_column(String(42))
    token1: Mapped[str] = mapped_column(String(42))
    fee: Mapped[int] = mapped_column(Integer)  # bps for V2, pips (millionths) for V3
    tick_spacing: Mapped[int | None] = mapped_column(Integer)
    created_block: Mapped[int | None] = mapped_column(BigInteger)
    last_synced_block: Mapped[int | None] = mapped_column(BigInteger)


class Run(Base):
    """One run of the engine (shadow or otherwise), from start to finish."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    mode: Mapped[str] = mapped_column(String(16))  # 'shadow', later 'live', ...
    chain_id: Mapped[int] = mapped_column(ForeignKey("chains.id"))
    settings_json: Mapped[dict[str, Any] | None] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16))  # 'running', 'ok', 'failed', ...
    blocks_seen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    summary_json: Mapped[dict[str, Any] | None] = mapped_column(Json)


class OpportunityRow(Base):
    """An opportunity found in one block of one run, with its sizes and expected profit."""

    __tablename__ = "opportunities"
    __table_args__ = (
        Index("ix_opportunities_run_id_id", "run_id", "id"),
        Index("ix_opportunities_block_number", "block_number"),
        Index("ix_opportunities_route_key", "route_key"),
        Index("ix_opportunities_net_profit", "net_profit"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("runs.id"))
    chain_id: Mapped[int] = mapped_column(ForeignKey("chains.id"))
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    route_key: Mapped[str] = mapped_column(String(1024))
    pools_json: Mapped[list[str]] = mapped_column(Json)
    tokens_json: Mapped[list[str]] = mapped_column(Json)
    amount_in: Mapped[int] = mapped_column(UInt256())
    amounts_json: Mapped[list[str]] = mapped_column(Json)  # after each hop, decimal strings
    amount_out: Mapped[int] = mapped_column(UInt256())
    gross_profit: Mapped[int] = mapped_column(Int256())
    gas_units: Mapped[int] = mapped_column(BigInteger)
    gas_cost: Mapped[int] = mapped_column(UInt256())
    builder_payment: Mapped[int] = mapped_column(UInt256())
    net_profit: Mapped[int] = mapped_column(Int256())
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    latency_ms: Mapped[float] = mapped_column(Float)  # block arrival -> opportunity found
    status: Mapped[str] = mapped_column(String(32))  # 'found', 'simulated_ok', ...
    # In its block's best pool-disjoint set (arbx.domain.capture); None: written before 0004
    capturable: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class ParityCheck(Base):
    """A comparison of our pool states with the chain's at one block."""

    __tablename__ = "parity_checks"
    __table_args__ = (Index("ix_parity_checks_run_id_id", "run_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("runs.id"))
    block_number: Mapped[int] = mapped_column(BigInteger)
    pools_checked: Mapped[int] = mapped_column(Integer)
    failures: Mapped[int] = mapped_column(Integer)
    detail_json: Mapped[Any | None] = mapped_column(Json)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- execution and risk (revision 0002) -------------------------------------------------------


class BundleRow(Base):
    """A bundle sent to builders for one target block, and how it ended."""

    __tablename__ = "bundles"
    __table_args__ = (
        Index("ix_bundles_run_id_id", "run_id", "id"),
        Index("ix_bundles_signer_sent_at", "signer", "sent_at"),
        Index("ix_bundles_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("runs.id"))
    opportunity_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("opportunities.id"))
    signer: Mapped[str | None] = mapped_column(String(42))  # the signing key's address
    builders_json: Mapped[list[str]] = mapped_column(Json)
    target_block: Mapped[int] = mapped_column(BigInteger)
    replacement_uuid: Mapped[str | None] = mapped_column(String(64))
    bundle_hash: Mapped[str | None] = mapped_column(String(66))
    # 'sent' until settled, then 'included' | 'not_included' | 'reverted' | 'state_moved' |
    # 'sim_failed'
    status: Mapped[str] = mapped_column(String(16))
    tx_hashes_json: Mapped[list[str]] = mapped_column(Json)
    included_block: Mapped[int | None] = mapped_column(BigInteger)
    included_block_hash: Mapped[str | None] = mapped_column(String(66))
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    gas_cost: Mapped[int | None] = mapped_column(UInt256())  # wei paid, from the receipts
    expected_net_profit: Mapped[int] = mapped_column(Int256())
    realized_profit: Mapped[int | None] = mapped_column(Int256())  # from receipts and balances
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TransactionRow(Base):
    """A signed transaction of a bundle (the same one may ride in bundles for several blocks)."""

    __tablename__ = "transactions"
    __table_args__ = (
        UniqueConstraint("bundle_id", "hash"),
        Index("ix_transactions_hash", "hash"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bundle_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bundles.id"))
    hash: Mapped[str] = mapped_column(String(66))
    nonce: Mapped[int] = mapped_column(BigInteger)
    from_address: Mapped[str] = mapped_column(String(42))
    to_address: Mapped[str | None] = mapped_column(String(42))
    gas_limit: Mapped[int] = mapped_column(BigInteger)
    max_fee: Mapped[int] = mapped_column(UInt256())
    priority_fee: Mapped[int] = mapped_column(UInt256())
    status: Mapped[str] = mapped_column(String(16))  # 'pending' | 'included' | 'reverted' | ...
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    effective_gas_price: Mapped[int | None] = mapped_column(UInt256())


class RiskStateRow(Base):
    """The risk state of one signing key on one chain: mode, capital stage, why.

    The kill switch is not here but in ``kill_switch``: it is set without knowing the key.
    """

    __tablename__ = "risk_state"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    key_address: Mapped[str] = mapped_column(String(42), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    stage: Mapped[int] = mapped_column(Integer)
    stage_entered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(1024))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KillSwitchRow(Base):
    """The operator's kill switch for one chain (``chain_id`` 0: every chain)."""

    __tablename__ = "kill_switch"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    engaged: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(1024))
    actor: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StageHistoryRow(Base):
    """A stage change, or a limit breach (``kind`` 'breach', from = to), with its evidence."""

    __tablename__ = "stage_history"
    __table_args__ = (
        Index("ix_stage_history_chain_id_key_address_at", "chain_id", "key_address", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    key_address: Mapped[str] = mapped_column(String(42))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    from_stage: Mapped[int] = mapped_column(Integer)
    to_stage: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # 'promotion' | 'demotion' | 'breach' | 'manual'
    reason: Mapped[str] = mapped_column(String(1024))
    evidence_json: Mapped[Any | None] = mapped_column(Json)


class SignerLease(Base):
    """Who may sign with a key: the holder, a fencing epoch, and (SQLite) when the lease ends."""

    __tablename__ = "signer_leases"

    key_address: Mapped[str] = mapped_column(String(42), primary_key=True)
    holder_id: Mapped[str] = mapped_column(String(128))
    epoch: Mapped[int] = mapped_column(BigInteger)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    renewed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # None: held by a PG lock


class AuditLog(Base):
    """Who changed what, and the state before and after."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    before_json: Mapped[Any | None] = mapped_column(Json)
    after_json: Mapped[Any | None] = mapped_column(Json)


# --- API (revision 0003) ----------------------------------------------------------------------


class ExactSum(TypeDecorator[int]):
    """An exact sum of amounts: unbounded NUMERIC on PostgreSQL, decimal text elsewhere."""

    impl = Numeric()
    cache_ok = True

    @property
    def python_type(self) -> type[int]:
        """Values come back as ``int``."""
        return int

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """NUMERIC without a precision (a sum may pass 78 digits), else text."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(String(100))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        """An int as a Decimal (PostgreSQL) or decimal text."""
        if value is None:
            return None
        return Decimal(value) if dialect.name == "postgresql" else str(int(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:  # noqa: ARG002
        """Back to an exact int."""
        return None if value is None else int(value)


class ApiTokenRow(Base):
    """A bearer token of the API: only its SHA-256 is stored, with its name and role."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("name"), UniqueConstraint("token_hash"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # 'viewer' | 'operator'
    token_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the token
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EngineControlsRow(Base):
    """What operators set for the engine of a chain through the API or the command line."""

    __tablename__ = "engine_controls"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    mode_ceiling: Mapped[str | None] = mapped_column(String(16))  # None: the configured mode
    limits_json: Mapped[dict[str, Any] | None] = mapped_column(Json)  # None: configured limits
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(128))


class HeartbeatRow(Base):
    """The last sign of life of a component (the engine) on a chain, and how far it got."""

    __tablename__ = "heartbeats"

    component: Mapped[str] = mapped_column(String(32), primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    head_block: Mapped[int | None] = mapped_column(BigInteger)
    synced_block: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class PnlOpportunityDaily(Base):
    """Opportunities per run and UTC day (PostgreSQL keeps it by trigger; empty on SQLite)."""

    __tablename__ = "pnl_opportunity_daily"

    run_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD
    opportunities: Mapped[int] = mapped_column(BigInteger)
    expected_net_profit: Mapped[int] = mapped_column(ExactSum())
    capturable_opportunities: Mapped[int] = mapped_column(BigInteger, server_default="0")
    capturable_net_profit: Mapped[int] = mapped_column(ExactSum(), server_default="0")


class PnlBundleDaily(Base):
    """Bundles per run, UTC day of sending and dimension ('all', 'route', 'builder') label.

    PostgreSQL keeps it by trigger; it stays empty on SQLite, where the API sums the bundles.
    """

    __tablename__ = "pnl_bundle_daily"

    run_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD
    dim: Mapped[str] = mapped_column(String(8), primary_key=True)
    label: Mapped[str] = mapped_column(String(1024), primary_key=True)
    bundles: Mapped[int] = mapped_column(BigInteger)
    included: Mapped[int] = mapped_column(BigInteger)
    expected_net_profit: Mapped[int] = mapped_column(ExactSum())  # of the included bundles
    realized_profit: Mapped[int] = mapped_column(ExactSum())
    gas_cost: Mapped[int] = mapped_column(ExactSum())


# Revision 0003: a page of one route's opportunities walks the first index; the engine finds the
# ids of a block's new opportunities by their block hash (repo.add_opportunities) with the second.
Index("ix_opportunities_route_key_id", OpportunityRow.route_key, OpportunityRow.id)
Index("ix_opportunities_block_hash", OpportunityRow.block_hash)


# --- releases (revision 0005) -----------------------------------------------------------------


class BlockResultRow(Base):
    """What one engine (active or standby, under its release) made of one block."""

    __tablename__ = "block_results"
    __table_args__ = (
        Index(
            "ix_block_results_release_chain_id_block_number", "release", "chain_id", "block_number"
        ),
        Index("ix_block_results_run_id_block_number", "run_id", "block_number"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    run_id: Mapped[int] = mapped_column(BigInteger)
    release: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # 'active' | 'standby'
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    opportunities: Mapped[int] = mapped_column(Integer)
    expected_net_profit: Mapped[int] = mapped_column(Int256())
    # [[route_key, amount_in, net_profit], ...], best first, at most ROUTES_KEPT, decimal strings
    routes_json: Mapped[list[list[str]]] = mapped_column(Json)
    latency_ms: Mapped[float] = mapped_column(Float)
    parity_checked: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # None: not yet
    parity_failures: Mapped[int] = mapped_column(Integer, server_default="0")
    errors: Mapped[int] = mapped_column(Integer, server_default="0")  # faults since the last block
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SignerEpochRow(Base):
    """One holding of a signing key: from its acquisition to its release (None: still held)."""

    __tablename__ = "signer_epochs"
    __table_args__ = (UniqueConstraint("key_address", "epoch"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_address: Mapped[str] = mapped_column(String(42))
    epoch: Mapped[int] = mapped_column(BigInteger)
    holder_id: Mapped[str] = mapped_column(String(128))
    release: Mapped[str | None] = mapped_column(String(64))
    chain_id: Mapped[int | None] = mapped_column(BigInteger)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_kind: Mapped[str | None] = mapped_column(String(16))  # 'released' | 'taken_over'


class SignatureRow(Base):
    """A transaction signed with a key, in the epoch the signer held it under."""

    __tablename__ = "signatures"
    __table_args__ = (Index("ix_signatures_key_address_epoch", "key_address", "epoch"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_address: Mapped[str] = mapped_column(String(42))
    epoch: Mapped[int] = mapped_column(BigInteger)
    holder_id: Mapped[str] = mapped_column(String(128))
    tx_hash: Mapped[str] = mapped_column(String(66))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReleaseHandoverRow(Base):
    """A request to hand the signer lock of a chain to a release, and how far it got."""

    __tablename__ = "release_handovers"
    __table_args__ = (Index("ix_release_handovers_chain_id_state", "chain_id", "state"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    to_release: Mapped[str] = mapped_column(String(64))
    # 'requested' -> 'released' (the old holder let go) -> 'done' (the new one holds it);
    # or 'expired' (nobody acted in time), 'failed' (the new one could not take it: reason)
    state: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    requested_by: Mapped[str] = mapped_column(String(128))
    key_address: Mapped[str | None] = mapped_column(String(42))
    from_release: Mapped[str | None] = mapped_column(String(64))
    from_holder: Mapped[str | None] = mapped_column(String(128))
    from_epoch: Mapped[int | None] = mapped_column(BigInteger)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    to_holder: Mapped[str | None] = mapped_column(String(128))
    to_epoch: Mapped[int | None] = mapped_column(BigInteger)
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(1024))


# --- self-scoring (revision 0006) -------------------------------------------------------------


class OpportunityScoreRow(Base):
    """What became of one opportunity over the blocks after it (``arbx.domain.scoring``)."""

    __tablename__ = "opportunity_scores"
    __table_args__ = (
        UniqueConstraint("opportunity_id"),
        Index("ix_opportunity_scores_run_id_outcome", "run_id", "outcome"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(BigInteger)
    run_id: Mapped[int] = mapped_column(BigInteger)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    # 'captured_us' | 'captured_other' | 'still_open' | 'closed' | 'never_real'
    outcome: Mapped[str] = mapped_column(String(16))
    window: Mapped[int] = mapped_column(Integer)  # blocks looked at after the opportunity's
    decided_block: Mapped[int | None] = mapped_column(BigInteger)
    taker: Mapped[str | None] = mapped_column(String(42))  # who took it, if someone else
    taker_tx: Mapped[str | None] = mapped_column(String(66))
    taker_profit: Mapped[int | None] = mapped_column(Int256())  # in ``token``
    token: Mapped[str | None] = mapped_column(String(42))
    scored_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- the routes of a bundle (revision 0007) ----------------------------------------------------


class BundleRouteRow(Base):
    """One route a bundle's transaction carries (``executeMany`` carries several): the route key
    and expected net profit of the opportunity it was sized for, how self-scoring matches it."""

    __tablename__ = "bundle_routes"
    __table_args__ = (UniqueConstraint("bundle_id", "position"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bundle_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bundles.id"))
    position: Mapped[int] = mapped_column(Integer)  # its place in the transaction, from 0
    route_key: Mapped[str] = mapped_column(String(1024))
    net_profit: Mapped[int] = mapped_column(Int256())  # at the strategy's share, as found


# --- what each release decided on the shipped window (revision 0008) ---------------------------


class ReleaseReplayRow(Base):
    """A release's decisions on a recorded window (its engine replays the window its image ships
    at start): the active side of ``arbx release compare --replay-shipped`` (ADR 0037)."""

    __tablename__ = "release_replays"
    __table_args__ = (UniqueConstraint("release", "window_digest"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    release: Mapped[str] = mapped_column(String(64))
    window_digest: Mapped[str] = mapped_column(String(71))  # sha256: of the window file's bytes
    digest: Mapped[str] = mapped_column(String(71))  # the decisions' digest (arbx replay)
    blocks: Mapped[int] = mapped_column(Integer)
    opportunities: Mapped[int] = mapped_column(Integer)
    decisions_gz: Mapped[bytes] = mapped_column(LargeBinary)  # the blocks, canonical JSON, gzip
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
