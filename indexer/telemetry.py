"""Tables of verified telemetry: anchored batches, their bundles and the readings they hold.

`batches` keeps one row per `BatchAnchored` the loader has seen, `loaded` or `rejected` (with a
stable reason code and a human detail). Only a loaded batch has rows in `bundles_index`
(what a proof needs: the wire form, the device signature and the leaf fields) and in the
readings tables.

Readings are narrow: `(vehicle_id, signal, ts, value, batch_id, leaf_index)`, the signal as a
small integer from `signals`. Values are stored as binary64 floats: floats as they are,
integers converted (exact up to 2^53, which every catalog integer signal fits), booleans as
0.0/1.0. Text values (VSS `string` signals such as `Vehicle.LowVoltageSystemState`) go to
`readings_text`, of the same shape with a text value, so the numeric table stays narrow.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
)

from indexer.db import metadata

#: `batches.status` of a batch whose readings are loaded and served.
STATUS_LOADED: Final = "loaded"
#: `batches.status` of a batch that failed a check; nothing of it is served.
STATUS_REJECTED: Final = "rejected"
#: `batches.status` of a batch whose content the blob store could not serve yet: undecided,
#: serves nothing, and is retried until it is loaded or rejected.
STATUS_PENDING: Final = "pending"

batches = Table(
    "batches",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False, comment="on-chain batch id"),
    Column("root", LargeBinary(32), nullable=False, comment="the anchored Merkle root"),
    Column("cid", String(128), nullable=False, comment="content CID (text form)"),
    Column("count", Integer, nullable=False, comment="anchored number of bundles"),
    Column("window_start", BigInteger, nullable=False, comment="unix ms, inclusive"),
    Column("window_end", BigInteger, nullable=False, comment="unix ms"),
    Column("tx_hash", String(66), nullable=False, comment="anchoring transaction, 0x hex"),
    Column("block_number", BigInteger, nullable=False, comment="block of the anchoring tx"),
    Column("status", String(16), nullable=False, comment="loaded | rejected | pending"),
    Column("reason", String(64), nullable=True, comment="rejection code, NULL when loaded"),
    Column("detail", Text, nullable=True, comment="rejection explained for a human"),
    Column("reading_count", BigInteger, nullable=False, comment="readings loaded (0 if rejected)"),
    Index(None, "block_number"),
)

signals = Table(
    "signals",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("name", String(256), nullable=False, unique=True, comment="VSS path"),
)

readings = Table(
    "readings",
    metadata,
    Column("vehicle_id", BigInteger, nullable=False),
    Column("signal", SmallInteger, nullable=False, comment="signals.id"),
    Column("ts", BigInteger, nullable=False, comment="unix ms"),
    Column("value", Double, nullable=False, comment="number; booleans as 0/1"),
    Column("batch_id", BigInteger, nullable=False),
    Column("leaf_index", Integer, nullable=False, comment="the bundle's index in the batch"),
    # Covering on PostgreSQL: a series, its first, last, min or max reading (ranked by time,
    # batch and leaf) and a proof's sources are index-only scans, not one heap page a reading.
    Index(
        None, "vehicle_id", "signal", "ts", postgresql_include=["value", "batch_id", "leaf_index"]
    ),
    Index(None, "batch_id"),
)

readings_text = Table(
    "readings_text",
    metadata,
    Column("vehicle_id", BigInteger, nullable=False),
    Column("signal", SmallInteger, nullable=False, comment="signals.id"),
    Column("ts", BigInteger, nullable=False, comment="unix ms"),
    Column("value", Text, nullable=False),
    Column("batch_id", BigInteger, nullable=False),
    Column("leaf_index", Integer, nullable=False),
    Index(None, "vehicle_id", "signal", "ts"),
    Index(None, "batch_id"),
)

bundles_index = Table(
    "bundles_index",
    metadata,
    Column("batch_id", BigInteger, nullable=False),
    Column("leaf_index", Integer, nullable=False, comment="index in the content and the tree"),
    Column("device", String(42), nullable=False, comment="EIP-55 address"),
    Column("vehicle_id", BigInteger, nullable=False),
    Column("sequence", Numeric(20, 0), nullable=False, comment="uint64"),
    Column("window_start", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=False),
    Column("data_hash", LargeBinary(32), nullable=False),
    Column("signature", LargeBinary(65), nullable=False, comment="the device's EIP-712 signature"),
    Column("wire", LargeBinary, nullable=False, comment="the signed bundle's wire form"),
    Column(
        "disclosure",
        Text,
        nullable=True,
        comment="what a disclosure decision needs of the bundle (indexer.disclosure.BundleFacts, "
        "JSON); null: read from the wire",
    ),
    PrimaryKeyConstraint("batch_id", "leaf_index"),
    Index(None, "vehicle_id", "window_start"),
)

#: The tables this module owns, in dependency-free creation order.
TELEMETRY_TABLES: Final = (batches, signals, readings, readings_text, bundles_index)
