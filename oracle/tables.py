"""The oracle's durable journal: accepted bundles, per-device state, and batches.

One SQLAlchemy Core schema for SQLite (the embedded default, WAL, synchronous=FULL) and
PostgreSQL (by URL). A bundle's journal position is its row id; a bundle belongs to at most
one batch (`batch_id`), which is how every journaled bundle is anchored exactly once.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    event,
)

metadata = MetaData()

#: Accepted bundles in journal order. `encoding` is the bundle's canonical CBOR (what
#: `dataHash` hashes); with `signature` it rebuilds the signed bundle exactly.
bundles = Table(
    "bundles",
    metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("device", String(42), nullable=False),  # checksum address
    Column("sequence", BigInteger, nullable=False),
    Column("vehicle_id", BigInteger, nullable=False),
    Column("window_start", BigInteger, nullable=False),  # unix ms
    Column("window_end", BigInteger, nullable=False),  # unix ms
    Column("data_hash", LargeBinary(32), nullable=False),
    Column("signature", LargeBinary(65), nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False, unique=True),
    Column("encoding", LargeBinary, nullable=False),
    Column("received_at", BigInteger, nullable=False),  # unix ms
    Column("batch_id", BigInteger, nullable=True),  # set once, when a batch claims it
    UniqueConstraint("device", "sequence", name="uq_bundles_device_sequence"),
    Index("ix_bundles_unbatched", "batch_id", "position"),
)

#: Highest accepted sequence per device (sequences must strictly increase).
devices = Table(
    "devices",
    metadata,
    Column("device", String(42), primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
)

#: Highest odometer reading accepted per vehicle (it must never go back).
odometers = Table(
    "odometers",
    metadata,
    Column("vehicle_id", BigInteger, primary_key=True),
    Column("max_km", Float, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
)


class BatchState(enum.StrEnum):
    """The persisted states a batch moves through, in order."""

    BUILT = "built"  # bundles claimed, tree built, root known
    STORED = "stored"  # content in the blob store, CID known
    SIGNED = "signed"  # quorum signatures gathered
    SUBMITTED = "submitted"  # anchor transaction sent (tx hash, nonce known)
    CONFIRMED = "confirmed"  # anchor transaction mined with enough confirmations


#: Batches, keyed by their on-chain id (strictly sequential from 1).
batches = Table(
    "batches",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("state", String(16), nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("count", Integer, nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=False),
    Column("cid", String(128), nullable=True),
    Column("signatures", LargeBinary, nullable=True),
    Column("tx_hash", String(66), nullable=True),
    Column("tx_nonce", BigInteger, nullable=True),
    Column("tx_fee_per_gas", BigInteger, nullable=True),
    Column("block_number", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_batches_state", "state"),
)


def open_journal(url: str, **engine_kwargs: Any) -> Engine:
    """Opens (and creates) the journal at a SQLAlchemy `url`.

    SQLite gets WAL and synchronous=FULL, so a committed bundle survives a crash or power
    loss before its receipt is returned; PostgreSQL commits are durable by default.
    """
    engine = create_engine(url, **engine_kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

    metadata.create_all(engine)
    return engine
