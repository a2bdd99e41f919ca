"""Journal writes: accept verified bundles in one transaction per request and issue receipts."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Engine, event, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from oracle.exceptions import BundleRejected, ImplausibleValue, ReplayedSequence
from oracle.tables import BatchState, batches, bundles, devices, odometers
from oracle.verify import ODOMETER, VerifiedBundle

#: `devices.last_sequence` of a device row made only to be locked (no bundle yet).
NO_SEQUENCE = -1


@dataclass(frozen=True, slots=True)
class Receipt:
    """The oracle's answer for a journaled bundle.

    Attributes:
        status: "accepted" the first time, "duplicate" when the identical signed bundle was
            journaled before (then `position` is the original one).
        position: The bundle's journal position.
        leaf_hash: Its Merkle leaf hash.
        device: The signing device (EIP-55).
        sequence: The device's sequence number of the bundle.
    """

    status: Literal["accepted", "duplicate"]
    position: int
    leaf_hash: bytes
    device: str
    sequence: int

    def as_json(self) -> dict[str, Any]:
        """The receipt as the ingest contract's JSON object."""
        return {
            "status": self.status,
            "position": self.position,
            "leaf_hash": "0x" + self.leaf_hash.hex(),
            "device": self.device,
            "sequence": self.sequence,
        }


class RejectionCounter:
    """Rejections by reason code since start (thread-safe, in memory)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, reason: str, n: int = 1) -> None:
        """Counts `n` rejections for `reason`."""
        with self._lock:
            self._counts[reason] += n

    def snapshot(self) -> dict[str, int]:
        """The counts so far, by reason."""
        with self._lock:
            return dict(self._counts)


#: Execution option of a connection that only reads (`reading`): on SQLite its transaction
#: begins deferred and never waits for the write lock.
READ_ONLY = "dimo_read_only"


def reading(engine: Engine) -> Connection:
    """A connection for reads only. On SQLite (WAL) its transaction does not take the write
    lock, so a read never queues behind the ingest's writes; elsewhere it is a plain
    connection."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def _sqlite_immediate(engine: Engine) -> None:
    """Makes SQLite transactions take the write lock at BEGIN (no lock upgrade deadlocks),
    except on `reading` connections."""

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Connection) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


class Journal:
    """Accepts verified bundles into the journal (the `oracle.tables` tables).

    Each `accept` call is one transaction: the device rows are locked (PostgreSQL
    `SELECT ... FOR UPDATE`; SQLite `BEGIN IMMEDIATE`) before sequences and duplicates are
    checked, so concurrent workers cannot both accept the same sequence, and the transaction
    commits before receipts are returned.
    """

    def __init__(self, engine: Engine) -> None:
        """Wraps a journal engine made by `oracle.tables.open_journal`.

        Call before the engine's first connection (SQLite transactions are set up here).
        """
        self.engine = engine
        self.dialect = engine.dialect.name
        if self.dialect == "sqlite":
            _sqlite_immediate(engine)
        self._insert: Any = pg_insert if self.dialect == "postgresql" else sqlite_insert
        # Statements built once and run with one parameter set per row (executemany): a
        # multi-row VALUES would be compiled again for every row count.
        new_device = self._insert(devices)
        self._new_devices = new_device.on_conflict_do_nothing(index_elements=["device"])
        self._upsert_devices = new_device.on_conflict_do_update(
            index_elements=["device"], set_={"last_sequence": new_device.excluded.last_sequence}
        )
        odometer = self._insert(odometers)
        self._upsert_odometers = odometer.on_conflict_do_update(
            index_elements=["vehicle_id"],
            set_={"max_km": odometer.excluded.max_km, "at_ms": odometer.excluded.at_ms},
        )

    def accept(
        self, verified: Sequence[VerifiedBundle], now_ms: int | None = None
    ) -> list[Receipt | BundleRejected]:
        """Journals verified bundles, in order, in one transaction.

        Args:
            verified: Bundles that passed `oracle.verify`.
            now_ms: The `received_at` to record (default: now).

        Returns:
            One item per bundle: its `Receipt`, or a `ReplayedSequence` or `ImplausibleValue`
            (odometer below the vehicle's maximum) rejection.
        """
        if not verified:
            return []
        received = int(time.time() * 1000) if now_ms is None else now_ms
        device_keys = sorted({v.device for v in verified})
        vehicle_keys = sorted(
            {v.signed.bundle.vehicle_id for v in verified if v.odometer is not None}
        )
        with self.engine.begin() as conn:
            last = self._lock_devices(conn, device_keys)
            known = {
                row.leaf_hash: row
                for row in conn.execute(
                    select(bundles.c.leaf_hash, bundles.c.position).where(
                        bundles.c.leaf_hash.in_([v.leaf_hash for v in verified])
                    )
                )
            }
            maxima = self._lock_odometers(conn, vehicle_keys)
            out: list[Receipt | BundleRejected | None] = []
            rows: list[dict[str, Any]] = []
            pending: dict[bytes, int] = {}  # leaf hash -> index in `rows`
            row_index: list[int] = []  # index in `out` of each row
            odo_new: dict[int, tuple[float, int]] = {}
            for v in verified:
                b = v.signed.bundle
                if v.leaf_hash in known:
                    out.append(
                        Receipt(
                            "duplicate",
                            int(known[v.leaf_hash].position),
                            v.leaf_hash,
                            b.device,
                            b.sequence,
                        )
                    )
                    continue
                if v.leaf_hash in pending:
                    out.append(None)  # filled in once the first copy has its position
                    continue
                if b.sequence <= last.get(b.device, NO_SEQUENCE):
                    out.append(ReplayedSequence(b.device, b.sequence, last[b.device]))
                    continue
                if v.odometer is not None:
                    first, last_km, at_ms = v.odometer
                    floor = maxima.get(b.vehicle_id)
                    if floor is not None and first < floor:
                        out.append(
                            ImplausibleValue(
                                ODOMETER,
                                first,
                                f"vehicle {b.vehicle_id} already reported {floor} km",
                            )
                        )
                        continue
                    maxima[b.vehicle_id] = last_km
                    odo_new[b.vehicle_id] = (last_km, at_ms)
                last[b.device] = b.sequence
                pending[v.leaf_hash] = len(rows)
                row_index.append(len(out))
                out.append(None)
                rows.append(
                    {
                        "device": b.device,
                        "sequence": b.sequence,
                        "vehicle_id": b.vehicle_id,
                        "window_start": b.window_start,
                        "window_end": b.window_end,
                        "data_hash": b.data_hash,
                        "signature": v.signed.signature,
                        "leaf_hash": v.leaf_hash,
                        "encoding": b.encoding,
                        "received_at": received,
                    }
                )
            positions: list[int] = []
            if rows:
                result = conn.execute(
                    insert(bundles).returning(bundles.c.position, sort_by_parameter_order=True),
                    rows,
                )
                positions = [int(p) for p in result.scalars().all()]
                self._save_devices(conn, {r["device"]: last[r["device"]] for r in rows})
                self._save_odometers(conn, odo_new)
        for i, position in zip(row_index, positions, strict=True):
            v = verified[i]
            out[i] = Receipt("accepted", position, v.leaf_hash, v.device, v.sequence)
        receipts: list[Receipt | BundleRejected] = []
        for i, item in enumerate(out):
            if item is None:  # an identical copy later in the same request
                v = verified[i]
                first_receipt = out[row_index[pending[v.leaf_hash]]]
                assert isinstance(first_receipt, Receipt)
                item = Receipt(
                    "duplicate", first_receipt.position, v.leaf_hash, v.device, v.sequence
                )
            receipts.append(item)
        return receipts

    # ----------------------------------------------------------------------------------------

    def _lock_devices(self, conn: Connection, keys: list[str]) -> dict[str, int]:
        if self.dialect == "postgresql":
            # Make the rows exist, then lock them in a fixed order (no deadlocks).
            conn.execute(
                self._new_devices, [{"device": d, "last_sequence": NO_SEQUENCE} for d in keys]
            )
            query = select(devices).where(devices.c.device.in_(keys)).order_by(devices.c.device)
            rows = conn.execute(query.with_for_update())
        else:
            rows = conn.execute(select(devices).where(devices.c.device.in_(keys)))
        return {row.device: int(row.last_sequence) for row in rows}

    def _lock_odometers(self, conn: Connection, keys: list[int]) -> dict[int, float]:
        if not keys:
            return {}
        query = select(odometers.c.vehicle_id, odometers.c.max_km).where(
            odometers.c.vehicle_id.in_(keys)
        )
        if self.dialect == "postgresql":
            query = query.order_by(odometers.c.vehicle_id).with_for_update()
        return {int(r.vehicle_id): float(r.max_km) for r in conn.execute(query)}

    def _save_devices(self, conn: Connection, last: dict[str, int]) -> None:
        conn.execute(
            self._upsert_devices, [{"device": d, "last_sequence": s} for d, s in last.items()]
        )

    def _save_odometers(self, conn: Connection, new: dict[int, tuple[float, int]]) -> None:
        if not new:
            return
        conn.execute(
            self._upsert_odometers,
            [{"vehicle_id": k, "max_km": km, "at_ms": at} for k, (km, at) in new.items()],
        )

    # ----------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Journal depth (unbatched bundles), batches by state and the last anchored batch."""
        with reading(self.engine) as conn:
            depth = conn.execute(
                select(func.count()).select_from(bundles).where(bundles.c.batch_id.is_(None))
            ).scalar_one()
            by_state = {state.value: 0 for state in BatchState}
            for state, count in conn.execute(
                select(batches.c.state, func.count()).group_by(batches.c.state)
            ):
                by_state[str(state)] = int(count)
            last = conn.execute(
                select(batches.c.id, batches.c.tx_hash, batches.c.block_number)
                .where(batches.c.state == BatchState.CONFIRMED.value)
                .order_by(batches.c.id.desc())
                .limit(1)
            ).first()
        return {
            "journal_depth": int(depth),
            "batches_by_state": by_state,
            "last_anchor": (
                None
                if last is None
                else {"id": int(last.id), "tx_hash": last.tx_hash, "block": last.block_number}
            ),
        }

    def get(self, position: int) -> dict[str, Any] | None:
        """The journal row at `position`, or None."""
        with reading(self.engine) as conn:
            row = conn.execute(select(bundles).where(bundles.c.position == position)).first()
        return None if row is None else dict(row._mapping)
