"""The on-disk queue of signed bundles (SQLite, WAL, synchronous=FULL) kept until receipted.

Rules (also in docs/bridge.md):

- A bundle's sequence number is reserved and committed (`reserve_sequence`) before the bundle
  is signed, so a sequence is never signed twice, even across a crash; a crash between the
  reservation and `put` leaves a gap, which the oracle accepts (sequences only increase).
- A signed bundle is committed (`put`) before any upload; it is deleted only when the oracle's
  receipt says `accepted` or `duplicate` (`acknowledge`). A `rejected` bundle moves to the
  `dead_letters` table with the oracle's problem document (`dead_letter`); nothing signed is
  ever deleted otherwise.
- Bound: at most `max_bundles` signed bundles wait in the outbox. `put` on a full queue
  raises `QueueFullError` rather than dropping anything; the runner checks `has_room()`
  before signing and, while the queue is full, coalesces closed windows (unsigned) into one
  wider window, signed once room returns (`Windower.coalesce`). Memory stays bounded by the
  number of signals, and the operator sees the `queue-full` warnings and `coalesced` count.

The queue is stdlib `sqlite3` rather than SQLAlchemy: it is one embedded file on a device,
never PostgreSQL, and the transactions (`BEGIN IMMEDIATE`, fsync per commit) are explicit.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_bridge.exceptions import QueueError, QueueFullError, SequenceExhaustedError
from protocol.bundle import BUNDLE_LEAF_ENCODING, SignedBundle, bundle_leaf, encode_signed_bundle
from protocol.merkle import standard_leaf_hash

__all__ = ["BundleQueue", "DeadLetter", "QueuedBundle", "leaf_hash"]

_UINT64_MAX = 2**64 - 1
_DECODE = "decode:"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sequences (
    device TEXT PRIMARY KEY,
    next INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    leaf_hash BLOB NOT NULL UNIQUE,
    wire BLOB NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    UNIQUE (device, sequence)
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    leaf_hash BLOB NOT NULL,
    wire BLOB NOT NULL,
    reason TEXT NOT NULL,
    problem TEXT NOT NULL,
    rejected_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


def leaf_hash(signed: SignedBundle) -> bytes:
    """Return the bundle's Merkle leaf hash, as the oracle reports it in a receipt."""
    return standard_leaf_hash(BUNDLE_LEAF_ENCODING, bundle_leaf(signed))


@dataclass(frozen=True, slots=True)
class QueuedBundle:
    """One signed bundle waiting for its receipt.

    Attributes:
        id: row id; order of `put`.
        device: the signing device.
        sequence: the bundle's sequence.
        window_start: unix ms.
        window_end: unix ms.
        leaf_hash: the Merkle leaf hash the receipt must echo.
        wire: `encode_signed_bundle` bytes, sent as they are.
        attempts: uploads tried so far.
    """

    id: int
    device: str
    sequence: int
    window_start: int
    window_end: int
    leaf_hash: bytes
    wire: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A bundle the oracle rejected, with its problem document."""

    id: int
    device: str
    sequence: int
    window_start: int
    window_end: int
    leaf_hash: bytes
    wire: bytes
    reason: str
    problem: dict[str, Any]
    rejected_at: float


class BundleQueue:
    """A durable FIFO of signed bundles; safe to share between the sealer and uploader threads."""

    def __init__(self, path: str | Path, *, max_bundles: int = 50_000) -> None:
        """Open (creating if needed) the queue database.

        Args:
            path: the SQLite file; parent directories are created.
            max_bundles: most signed bundles the outbox holds.

        Raises:
            QueueError: the file cannot be opened or is not a queue database.
        """
        self.path = Path(path)
        self.max_bundles = max_bundles
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise QueueError(self.path, str(exc)) from None
        self._depth = self._scalar("SELECT COUNT(*) FROM outbox")

    # -- plumbing --------------------------------------------------------------------------

    def _scalar(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        with self._lock:
            try:
                row = self._db.execute(sql, args).fetchone()
            except sqlite3.Error as exc:
                raise QueueError(self.path, str(exc)) from None
        return int(row[0]) if row and row[0] is not None else 0

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise QueueError(self.path, str(exc)) from None
            self._changed.notify_all()

    @staticmethod
    def _count(db: sqlite3.Connection, name: str, n: int = 1) -> None:
        db.execute(
            "INSERT INTO counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> BundleQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sequences and bundles -------------------------------------------------------------

    def reserve_sequence(self, device: str) -> int:
        """Return the device's next sequence number, committed as used before returning.

        Raises:
            SequenceExhaustedError: the sequence would leave uint64.
            QueueError: the database cannot be written.
        """
        with self._tx() as db:
            row = db.execute("SELECT next FROM sequences WHERE device = ?", (device,)).fetchone()
            sequence = int(row[0]) if row else 1
            if sequence > _UINT64_MAX:
                raise SequenceExhaustedError(self.path, device)
            # sqlite stores signed 64-bit integers; 2**63 and above are kept as text
            db.execute(
                "INSERT INTO sequences(device, next) VALUES (?, ?) "
                "ON CONFLICT(device) DO UPDATE SET next = excluded.next",
                (device, sequence + 1 if sequence + 1 < 2**63 else str(sequence + 1)),
            )
        return sequence

    def next_sequence(self, device: str) -> int:
        """Return the sequence `reserve_sequence` would hand out next (without reserving)."""
        with self._lock:
            row = self._db.execute(
                "SELECT next FROM sequences WHERE device = ?", (device,)
            ).fetchone()
        return int(row[0]) if row else 1

    def has_room(self) -> bool:
        """Whether another signed bundle fits under `max_bundles`."""
        return self._depth < self.max_bundles

    def ensure_room(self) -> None:
        """Raise `QueueFullError` if the queue is full."""
        if not self.has_room():
            raise QueueFullError(self.path, self.max_bundles)

    def put(self, signed: SignedBundle) -> int:
        """Store a signed bundle durably (committed with fsync) and return its row id.

        Raises:
            QueueFullError: `max_bundles` are waiting; nothing was stored.
            QueueError: the database cannot be written, or the bundle is queued already.
        """
        bundle = signed.bundle
        with self._tx() as db:
            if self._depth >= self.max_bundles:
                raise QueueFullError(self.path, self.max_bundles)
            cursor = db.execute(
                "INSERT INTO outbox(device, sequence, window_start, window_end, leaf_hash, wire, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    bundle.device,
                    bundle.sequence,
                    bundle.window_start,
                    bundle.window_end,
                    leaf_hash(signed),
                    encode_signed_bundle(signed),
                    time.time(),
                ),
            )
            self._count(db, "sealed")
            self._depth += 1
        return int(cursor.lastrowid or 0)

    def depth(self) -> int:
        """The number of bundles waiting for a receipt."""
        return self._depth

    def peek(self, limit: int) -> list[QueuedBundle]:
        """Return up to `limit` waiting bundles, oldest first, without removing them."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, device, sequence, window_start, window_end, leaf_hash, wire, attempts "
                "FROM outbox ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [QueuedBundle(*row) for row in rows]

    def wait_for_bundles(self, timeout: float) -> bool:
        """Block until the outbox is non-empty or `timeout` passes; return whether it is."""
        with self._changed:
            if self._depth == 0:
                self._changed.wait(timeout)
            return self._depth > 0

    # -- receipts --------------------------------------------------------------------------

    def acknowledge(self, row_id: int, status: str) -> None:
        """Delete a bundle the oracle journaled (`accepted` or `duplicate`)."""
        if status not in ("accepted", "duplicate"):
            raise ValueError(f"acknowledge takes accepted/duplicate receipts, not {status!r}")
        with self._tx() as db:
            deleted = db.execute("DELETE FROM outbox WHERE id = ?", (row_id,)).rowcount
            if deleted:
                self._count(db, status)
                self._depth -= 1

    def dead_letter(self, row_id: int, problem: Mapping[str, Any]) -> None:
        """Move a rejected bundle to `dead_letters` with the oracle's problem document."""
        reason = str(problem.get("reason") or problem.get("type") or "unknown")
        with self._tx() as db:
            moved = db.execute(
                "INSERT INTO dead_letters(device, sequence, window_start, window_end, leaf_hash, "
                "wire, reason, problem, rejected_at) SELECT device, sequence, window_start, "
                "window_end, leaf_hash, wire, ?, ?, ? FROM outbox WHERE id = ?",
                (reason, json.dumps(dict(problem), sort_keys=True), time.time(), row_id),
            ).rowcount
            if moved:
                db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
                self._count(db, "rejected")
                self._depth -= 1

    def record_attempt(self, row_ids: list[int], error: str | None) -> None:
        """Count an upload attempt of these rows and remember its error, if any."""
        with self._tx() as db:
            db.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                [(error, i) for i in row_ids],
            )

    def dead_letters(self) -> list[DeadLetter]:
        """Every rejected bundle, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, device, sequence, window_start, window_end, leaf_hash, wire, reason, "
                "problem, rejected_at FROM dead_letters ORDER BY id"
            ).fetchall()
        return [
            DeadLetter(
                id=row[0],
                device=row[1],
                sequence=row[2],
                window_start=row[3],
                window_end=row[4],
                leaf_hash=row[5],
                wire=row[6],
                reason=row[7],
                problem=json.loads(row[8]),
                rejected_at=row[9],
            )
            for row in rows
        ]

    def counters(self) -> dict[str, int]:
        """Totals since the queue was created: sealed, accepted, duplicate, rejected."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, value FROM counters WHERE name NOT LIKE ?", (_DECODE + "%",)
            ).fetchall()
        totals = {"sealed": 0, "accepted": 0, "duplicate": 0, "rejected": 0}
        totals.update({name: int(value) for name, value in rows})
        return totals

    def add_decode_counts(self, counts: Mapping[str, int]) -> None:
        """Add to the decoder's totals kept with the queue (e.g. implausible values by signal).

        Args:
            counts: name (such as `implausible Vehicle.Speed <- CLU11.CF_Clu_Vanz`) -> count.
        """
        if not counts:
            return
        with self._tx() as db:
            for name, n in counts.items():
                self._count(db, _DECODE + name, n)

    def decode_counts(self) -> dict[str, int]:
        """The decoder's totals since the queue was created (see `add_decode_counts`)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, value FROM counters WHERE name LIKE ? ORDER BY name",
                (_DECODE + "%",),
            ).fetchall()
        return {name.removeprefix(_DECODE): int(value) for name, value in rows}
