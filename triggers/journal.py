"""Reading the oracle's journal (its database, read only; the schema is reflected, not
imported): journaled bundles after a position, and the bundles of confirmed batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, select

from protocol.bundle import Bundle, decode_bundle

__all__ = ["JournalReader", "JournalRow"]

#: The state the oracle gives a batch whose anchor is mined with its confirmations.
CONFIRMED = "confirmed"


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One journaled bundle.

    Attributes:
        position: Its journal position.
        bundle: The decoded bundle (readings by VSS name).
        received_ms: When the oracle journaled it, unix ms.
        leaf_hash: Its Merkle leaf hash (the proof reference with `batch_id`).
        batch_id: Its batch, once claimed.
    """

    position: int
    bundle: Bundle
    received_ms: int
    leaf_hash: bytes
    batch_id: int | None


@dataclass(frozen=True, slots=True)
class AnchoredBatch:
    """A confirmed batch and its bundles, in journal order."""

    id: int
    cid: str | None
    tx_hash: str | None
    rows: Sequence[JournalRow]


class JournalReader:
    """Reads an oracle journal at a SQLAlchemy URL."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.engine: Engine = create_engine(url, **engine_kwargs)
        self._bundles: Table | None = None
        self._batches: Table | None = None

    def _tables(self, conn: Connection) -> tuple[Table, Table] | None:
        if self._bundles is None or self._batches is None:
            meta = MetaData()
            names = set(self.engine.dialect.get_table_names(conn))
            if not {"bundles", "batches"} <= names:
                return None  # the oracle has not created its journal yet
            self._bundles = Table("bundles", meta, autoload_with=conn)
            self._batches = Table("batches", meta, autoload_with=conn)
        return self._bundles, self._batches

    @staticmethod
    def _row(r: Any) -> JournalRow:
        return JournalRow(
            int(r.position),
            decode_bundle(bytes(r.encoding)),
            int(r.received_at),
            bytes(r.leaf_hash),
            None if r.batch_id is None else int(r.batch_id),
        )

    def journaled_after(self, position: int, limit: int) -> list[JournalRow]:
        """Up to `limit` bundles journaled after `position`, in journal order."""
        with self.engine.connect() as conn:
            tables = self._tables(conn)
            if tables is None:
                return []
            b = tables[0]
            rows = conn.execute(
                select(b.c.position, b.c.encoding, b.c.received_at, b.c.leaf_hash, b.c.batch_id)
                .where(b.c.position > position)
                .order_by(b.c.position)
                .limit(limit)
            ).all()
        return [self._row(r) for r in rows]

    def next_anchored(self, after_batch: int) -> AnchoredBatch | None:
        """The first confirmed batch after `after_batch`, with its bundles; None if none yet.

        Batches are confirmed in id order, so a later confirmed batch never skips an earlier.
        """
        with self.engine.connect() as conn:
            tables = self._tables(conn)
            if tables is None:
                return None
            b, t = tables
            batch = conn.execute(
                select(t.c.id, t.c.state, t.c.cid, t.c.tx_hash)
                .where(t.c.id > after_batch)
                .order_by(t.c.id)
                .limit(1)
            ).first()
            if batch is None or batch.state != CONFIRMED:
                return None
            rows = conn.execute(
                select(b.c.position, b.c.encoding, b.c.received_at, b.c.leaf_hash, b.c.batch_id)
                .where(b.c.batch_id == batch.id)
                .order_by(b.c.position)
            ).all()
        return AnchoredBatch(int(batch.id), batch.cid, batch.tx_hash, [self._row(r) for r in rows])
