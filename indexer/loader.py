"""The batch loader: fetch an anchored batch by CID, verify it, and bulk-load its readings.

For each `BatchAnchored` the loader fetches the content from a `protocol.blobstore` store. For a
public document (`dimo-batch-v2`, no reading values) the values come from the oracle through
the authorised channel (`OracleReadings`). The readings document (the channel's answer, or the
public document of a batch anchored before schema 2) is parsed with
`protocol.batch.parse_content` (which checks every device signature and rebuilds the Merkle
tree), and the loader compares the rebuilt root, count, window and id with the anchored ones, and
checks that each bundle's device was paired to its vehicle over the bundle's window. A batch
that passes is loaded (its bundles into `bundles_index`, its readings with their batch id and
leaf index: COPY on PostgreSQL, executemany elsewhere); one that fails is recorded as
`rejected` with a stable reason code, and nothing of it is stored or served.

Loading is idempotent (the same batch again changes nothing) and `rollback_after` undoes every
batch anchored above a block, for the syncer's reorg handling.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import httpx
from sqlalchemy import Connection, Engine, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from indexer.db import metadata
from indexer.disclosure import BundleFacts
from indexer.exceptions import BatchContentUnavailable
from indexer.schema import pairings
from indexer.telemetry import (
    STATUS_LOADED,
    STATUS_PENDING,
    STATUS_REJECTED,
    TELEMETRY_TABLES,
    batches,
    bundles_index,
    readings,
    readings_text,
    signals,
)
from protocol.batch import (
    PUBLIC_FORMAT,
    READINGS_HEADER,
    InvalidBatchContent,
    document_format,
    parse_content,
    readings_request_header,
)
from protocol.blobstore import (
    BlobCidMismatch,
    BlobCorrupted,
    BlobStore,
    BlobStoreError,
    BlobUnsupported,
)
from protocol.bundle import SignedBundle
from protocol.cid import Cid, InvalidCid
from protocol.crypto import SignatureError
from protocol.eip712 import Eip712Domain
from protocol.vss import CATALOG

if TYPE_CHECKING:
    import sqlite3

    import psycopg

log = logging.getLogger(__name__)

INT64_MAX: Final = 2**63 - 1
#: Signals outside the VSS catalog get ids from here up, in order of first sight.
FIRST_EXTRA_SIGNAL_ID: Final = 1000
#: Catalog signals have fixed ids: 1 + their rank in the sorted catalog.
CATALOG_SIGNAL_IDS: Final[Mapping[str, int]] = {
    name: i + 1 for i, name in enumerate(sorted(CATALOG))
}

_READING_COLUMNS: Final = ("vehicle_id", "signal", "ts", "value", "batch_id", "leaf_index")

ReadingRow = tuple[int, int, int, float, int, int]
TextReadingRow = tuple[int, int, int, str, int, int]


class Rejection(enum.StrEnum):
    """Stable codes of `batches.reason`: why a batch is not served."""

    #: The CID is malformed, or the bytes the store holds under it do not hash to it.
    CID_MISMATCH = "cid-mismatch"
    #: The content is not a well-formed `dimo-batch-v1` document, or a bundle is malformed.
    INVALID_CONTENT = "invalid-content"
    #: A bundle's device signature does not verify.
    BAD_SIGNATURE = "bad-signature"
    #: The content's id is not the anchored batch's id.
    BATCH_ID_MISMATCH = "batch-id-mismatch"
    #: The Merkle root rebuilt from the content differs from the anchored root.
    ROOT_MISMATCH = "root-mismatch"
    #: The content's bundle count or window differs from the anchored ones.
    HEADER_MISMATCH = "header-mismatch"
    #: A bundle's device was not paired to its vehicle over the bundle's window.
    DEVICE_NOT_PAIRED = "device-not-paired"
    #: A bundle names a vehicle id beyond int64, which no minted vehicle has.
    VEHICLE_OUT_OF_RANGE = "vehicle-out-of-range"


@dataclass(frozen=True)
class AnchoredBatch:
    """A `BatchAnchored` event as the syncer hands it over.

    Attributes:
        id: The on-chain batch id.
        root: The anchored Merkle root (32 bytes).
        cid: The content's CID in text form (or 0x hex if the binary CID did not parse).
        count: The anchored number of bundles.
        window_start: Earliest bundle window start, unix ms.
        window_end: Latest bundle window end, unix ms.
        tx_hash: The anchoring transaction, 0x hex.
        block_number: Its block.
    """

    id: int
    root: bytes
    cid: str
    count: int
    window_start: int
    window_end: int
    tx_hash: str
    block_number: int

    @classmethod
    def from_event(cls, args: Mapping[str, Any], tx_hash: str, block_number: int) -> AnchoredBatch:
        """Build from a decoded `BatchAnchored` log's arguments (`cid` in binary form).

        Args:
            args: `id`, `root`, `cid`, `count`, `windowStart`, `windowEnd`.
            tx_hash: The log's transaction hash, 0x hex.
            block_number: The log's block.

        Returns:
            The batch; a CID that does not parse is kept as 0x hex (the loader rejects it).
        """
        raw_cid = bytes(args["cid"])
        try:
            cid = Cid.from_bytes(raw_cid).encode()
        except InvalidCid:
            cid = "0x" + raw_cid.hex()
        return cls(
            id=int(args["id"]),
            root=bytes(args["root"]),
            cid=cid,
            count=int(args["count"]),
            window_start=int(args["windowStart"]),
            window_end=int(args["windowEnd"]),
            tx_hash=tx_hash,
            block_number=block_number,
        )


class PairingCheck(Protocol):
    """Whether `device` was paired to `vehicle_id` over a whole bundle window."""

    def __call__(
        self, device: str, vehicle_id: int, window_start_ms: int, window_end_ms: int
    ) -> bool:
        """True if one pairing of `device` to `vehicle_id` covers the window.

        Args:
            device: The device address (EIP-55).
            vehicle_id: The vehicle the bundle names.
            window_start_ms: The bundle's window start, unix ms (inclusive).
            window_end_ms: Its window end, unix ms (exclusive).
        """
        ...


@dataclass(frozen=True)
class PairingInterval:
    """One pairing of a device to a vehicle, dated by block timestamps (unix seconds).

    Attributes:
        device: The device address (EIP-55).
        vehicle_id: The vehicle.
        paired_at_s: Timestamp of the `DevicePaired` block.
        unpaired_at_s: Timestamp of the `DeviceUnpaired` block, None while paired.
    """

    device: str
    vehicle_id: int
    paired_at_s: int
    unpaired_at_s: int | None = None

    def covers(self, window_start_ms: int, window_end_ms: int) -> bool:
        """Whether this pairing covers `[window_start_ms, window_end_ms)`.

        The pairing must date from no later than the window's start (as the oracle requires
        at ingest). A block timestamp has second resolution, so an unpairing dated second `s`
        counts as in force from `s + 1` s: a window ending within second `s` is still covered.
        """
        if self.paired_at_s * 1000 > window_start_ms:
            return False
        return self.unpaired_at_s is None or window_end_ms <= (self.unpaired_at_s + 1) * 1000


class PairingHistory:
    """A `PairingCheck` over pairing intervals held in memory.

    Build it from intervals, or from the `DevicePaired` / `DeviceUnpaired` events in chain
    order with `from_events`.
    """

    def __init__(self, intervals: Iterable[PairingInterval] = ()) -> None:
        """Index `intervals` by (device, vehicle)."""
        self._by_pair: dict[tuple[str, int], list[PairingInterval]] = {}
        for interval in intervals:
            self._by_pair.setdefault((interval.device.lower(), interval.vehicle_id), []).append(
                interval
            )

    @classmethod
    def from_events(cls, events: Iterable[tuple[str, str, int, int]]) -> PairingHistory:
        """Replay pairing events in chain order.

        Args:
            events: `(kind, device, vehicle_id, block_timestamp_s)` with kind `"DevicePaired"`
                or `"DeviceUnpaired"`, in (block, log index) order.

        Returns:
            The history; a device still paired has an open interval.
        """
        open_: dict[str, PairingInterval] = {}
        closed: list[PairingInterval] = []
        for kind, device, vehicle_id, timestamp_s in events:
            key = device.lower()
            if kind == "DevicePaired":
                if key in open_:
                    closed.append(_close(open_.pop(key), timestamp_s))
                open_[key] = PairingInterval(device, vehicle_id, timestamp_s)
            elif kind == "DeviceUnpaired":
                if key in open_:
                    closed.append(_close(open_.pop(key), timestamp_s))
            else:
                raise ValueError(f"unknown pairing event {kind!r}")
        return cls([*closed, *open_.values()])

    def __call__(
        self, device: str, vehicle_id: int, window_start_ms: int, window_end_ms: int
    ) -> bool:
        """See `PairingCheck`."""
        return any(
            interval.covers(window_start_ms, window_end_ms)
            for interval in self._by_pair.get((device.lower(), vehicle_id), ())
        )


def _close(interval: PairingInterval, at_s: int) -> PairingInterval:
    return PairingInterval(interval.device, interval.vehicle_id, interval.paired_at_s, at_s)


#: Devices per query when `IndexedPairings.prefetch` reads a batch's pairings.
_PREFETCH_CHUNK: Final = 500


class IndexedPairings:
    """A `PairingCheck` over the indexed `pairings` table, read through one connection.

    The syncer uses it inside the transaction that has just written the pairings of the same
    block range, so a batch anchored right after a pairing sees it. The answer does not depend
    on how far the index has gone past the anchoring: a pairing that starts after a window
    never covers it, and one that ends after it still does.
    """

    def __init__(self, conn: Connection) -> None:
        """Read pairings through `conn`."""
        self._conn = conn
        self._cache: dict[tuple[str, int], list[PairingInterval]] = {}

    def __call__(
        self, device: str, vehicle_id: int, window_start_ms: int, window_end_ms: int
    ) -> bool:
        """See `PairingCheck`."""
        key = (device.lower(), vehicle_id)
        if key not in self._cache:
            self.prefetch([key])
        return any(i.covers(window_start_ms, window_end_ms) for i in self._cache[key])

    def prefetch(self, keys: Iterable[tuple[str, int]]) -> None:
        """Read the pairings of many `(device, vehicle)` pairs in a few queries (a batch's
        bundles name thousands), so that the calls for them that follow are cache hits."""
        wanted = {(device.lower(), vehicle_id) for device, vehicle_id in keys} - set(self._cache)
        for key in wanted:
            self._cache[key] = []
        devices = sorted({device for device, _ in wanted})
        for at in range(0, len(devices), _PREFETCH_CHUNK):
            rows = self._conn.execute(
                select(
                    pairings.c.device,
                    pairings.c.vehicle_id,
                    pairings.c.paired_at,
                    pairings.c.unpaired_at,
                ).where(pairings.c.device.in_(devices[at : at + _PREFETCH_CHUNK]))
            )
            for r in rows:
                key = (r.device, int(r.vehicle_id))
                if key in wanted:
                    self._cache[key].append(
                        PairingInterval(r.device, key[1], int(r.paired_at), r.unpaired_at)
                    )


@dataclass(frozen=True)
class BatchOutcome:
    """What became of one batch.

    Attributes:
        batch_id: The batch.
        status: `loaded` or `rejected`.
        reason: The `Rejection` code, None when loaded.
        detail: The rejection explained, None when loaded.
        reading_count: Readings loaded (0 when rejected).
    """

    batch_id: int
    status: str
    reason: str | None
    detail: str | None
    reading_count: int

    @property
    def loaded(self) -> bool:
        """Whether the batch's readings are served."""
        return self.status == STATUS_LOADED


@dataclass
class CheckedBatch:
    """A batch after the checks, before it is written.

    Attributes:
        batch: The anchored batch.
        reason: The rejection code, or None if every check passed.
        detail: The rejection explained.
        bundles: The verified signed bundles in leaf order (empty when rejected).
        wires: Their wire forms, same order.
    """

    batch: AnchoredBatch
    reason: Rejection | None = None
    detail: str | None = None
    bundles: list[SignedBundle] = field(default_factory=list)
    wires: list[bytes] = field(default_factory=list)


def _rejected(batch: AnchoredBatch, reason: Rejection, detail: str) -> CheckedBatch:
    return CheckedBatch(batch, reason, detail)


def _content_rejection(exc: InvalidBatchContent) -> Rejection:
    # parse_content raises `from None`: the underlying error is still the context.
    cause = exc.__context__
    if isinstance(cause, SignatureError):
        return Rejection.BAD_SIGNATURE
    return Rejection.INVALID_CONTENT


ReadingsSource = Callable[["AnchoredBatch"], bytes]
"""Returns an anchored batch's readings document (`dimo-batch-v1`), or raises
`BatchContentUnavailable`."""


class OracleReadings:
    """The authorised channel: the oracle's `GET /v1/batches/{id}/readings`.

    Each request carries an EIP-712 `ReadBatch(batchId, issuedAt)` signature by this
    indexer's key, whose address the oracle lists in `DIMO_ORACLE_INDEXERS`.
    """

    def __init__(
        self, url: str, private_key: str, domain: Eip712Domain, timeout_s: float = 60.0
    ) -> None:
        """Bind the oracle's URL, this indexer's key and the DIMO domain."""
        self.url = url.rstrip("/")
        self._key = private_key
        self.domain = domain
        self._client = httpx.Client(timeout=timeout_s)

    def __call__(self, batch: AnchoredBatch) -> bytes:
        """Fetch a batch's readings document.

        Raises:
            BatchContentUnavailable: the oracle is unreachable or refuses (the batch stays
                pending and is retried).
        """
        header = readings_request_header(self.domain, self._key, batch.id, int(time.time() * 1000))
        try:
            response = self._client.get(
                f"{self.url}/v1/batches/{batch.id}/readings", headers={READINGS_HEADER: header}
            )
        except httpx.HTTPError as exc:
            raise BatchContentUnavailable(batch.id, batch.cid, f"oracle: {exc}") from exc
        if response.status_code != 200:
            raise BatchContentUnavailable(
                batch.id,
                batch.cid,
                f"the oracle answered {response.status_code}: {response.text[:300]}",
            )
        return response.content

    def close(self) -> None:
        """Release the HTTP client."""
        self._client.close()


class BatchLoader:
    """Verifies anchored batches and loads their readings.

    `load` does both for one batch in its own transaction; `check` and `write` split the
    two so the syncer can verify outside its transaction and write inside it.
    """

    def __init__(
        self,
        engine: Engine,
        store: BlobStore,
        domain: Eip712Domain,
        paired: PairingCheck,
        readings: ReadingsSource | None = None,
    ) -> None:
        """Create a loader.

        Args:
            engine: The index database (tables from `indexer.telemetry`).
            store: Where batch contents are fetched by CID.
            domain: The DIMO EIP-712 domain bundles are signed in (the AttestationAnchor's).
            paired: Says whether a device was paired to a vehicle over a window.
            readings: The channel a public (`dimo-batch-v2`) batch's reading values come
                through (`OracleReadings`); None loads only batches published with values.
        """
        self.engine = engine
        self.store = store
        self.domain = domain
        self.paired = paired
        self.readings = readings
        self._signal_ids: dict[str, int] = {}

    # ---------------------------------------------------------------------------------------
    # checks
    # ---------------------------------------------------------------------------------------

    def check(self, batch: AnchoredBatch, paired: PairingCheck | None = None) -> CheckedBatch:
        """Fetch and verify a batch; write nothing.

        Args:
            batch: The anchored batch.
            paired: The pairing check to use instead of the loader's own.

        Returns:
            The verified bundles, or the reason the batch is rejected.

        Raises:
            BatchContentUnavailable: the store could not serve the content now (absent,
                unreachable, timed out); retry later, the batch is not decided.
        """
        try:
            raw = self.store.get(batch.cid)
        except (InvalidCid, BlobCorrupted, BlobCidMismatch, BlobUnsupported) as exc:
            return _rejected(batch, Rejection.CID_MISMATCH, str(exc))
        except BlobStoreError as exc:
            raise BatchContentUnavailable(batch.id, batch.cid, str(exc)) from exc
        if document_format(raw) == PUBLIC_FORMAT:
            # The public document holds no value: read the values through the authorised
            # channel. Everything in them is checked below as for any readings document (each
            # device signature, and a tree with the anchored root), so the public document,
            # which commits to the same root, needs no second check here.
            if self.readings is None:
                raise BatchContentUnavailable(
                    batch.id, batch.cid, "no readings channel (DIMO_INDEXER_ORACLE_URL) is set"
                )
            raw = self.readings(batch)
        try:
            content = parse_content(raw, self.domain, batch.id)
        except InvalidBatchContent as exc:
            return _rejected(batch, _content_rejection(exc), exc.reason)
        if content.batch_id != batch.id:
            return _rejected(
                batch,
                Rejection.BATCH_ID_MISMATCH,
                f"the content is batch {content.batch_id}, anchored as batch {batch.id}",
            )
        if content.tree.root != batch.root:
            return _rejected(
                batch,
                Rejection.ROOT_MISMATCH,
                f"the content's tree has root 0x{content.tree.root.hex()}, the anchored root "
                f"is 0x{batch.root.hex()}",
            )
        header = (len(content.bundles), content.window_start, content.window_end)
        anchored = (batch.count, batch.window_start, batch.window_end)
        if header != anchored:
            return _rejected(
                batch,
                Rejection.HEADER_MISMATCH,
                f"the content has (count, windowStart, windowEnd) {header}, anchored {anchored}",
            )
        signed = content.signed
        is_paired = paired or self.paired
        if isinstance(is_paired, IndexedPairings):
            is_paired.prefetch((s.bundle.device, s.bundle.vehicle_id) for s in signed)
        for index, item in enumerate(signed):
            b = item.bundle
            if b.vehicle_id > INT64_MAX:
                return _rejected(
                    batch,
                    Rejection.VEHICLE_OUT_OF_RANGE,
                    f"bundle {index} names vehicle {b.vehicle_id}, beyond int64",
                )
            if not is_paired(b.device, b.vehicle_id, b.window_start, b.window_end):
                return _rejected(
                    batch,
                    Rejection.DEVICE_NOT_PAIRED,
                    f"bundle {index}: device {b.device} was not paired to vehicle "
                    f"{b.vehicle_id} over [{b.window_start}, {b.window_end}) ms",
                )
        return CheckedBatch(batch, bundles=signed, wires=list(content.bundles))

    # ---------------------------------------------------------------------------------------
    # writes
    # ---------------------------------------------------------------------------------------

    def load(self, batch: AnchoredBatch) -> BatchOutcome:
        """Check and write one batch in its own transaction (a no-op if already loaded).

        Raises:
            BatchContentUnavailable: see `check`.
        """
        with self.engine.connect() as conn:
            known = _recorded(conn, batch)
        if known is not None and known.status != STATUS_PENDING:
            return known
        checked = self.check(batch)
        with self.engine.begin() as conn:
            return self.write(conn, checked)

    def write(self, conn: Connection, checked: CheckedBatch) -> BatchOutcome:
        """Record a checked batch inside the caller's transaction.

        Writing the same batch again changes nothing and returns what was recorded. A batch
        id recorded with a different root, CID, transaction or block (a reorg the caller did
        not roll back) is replaced.

        Args:
            conn: A connection in a transaction.
            checked: The result of `check`.

        Returns:
            The outcome.
        """
        batch = checked.batch
        known = _recorded(conn, batch)
        if known is not None and known.status != STATUS_PENDING:
            return known
        _delete_batches(conn, batches.c.id == batch.id)
        row = _batch_row(batch)
        if checked.reason is not None:
            conn.execute(
                insert(batches).values(
                    **row,
                    status=STATUS_REJECTED,
                    reason=checked.reason.value,
                    detail=checked.detail,
                    reading_count=0,
                )
            )
            log.warning("batch %d rejected: %s: %s", batch.id, checked.reason, checked.detail)
            return BatchOutcome(batch.id, STATUS_REJECTED, checked.reason.value, checked.detail, 0)
        ids = self.signal_ids(conn, {s for b in checked.bundles for s in b.bundle.readings})
        numeric, text = split_readings(batch.id, checked.bundles, ids)
        conn.execute(
            insert(batches).values(
                **row,
                status=STATUS_LOADED,
                reason=None,
                detail=None,
                reading_count=len(numeric) + len(text),
            )
        )
        conn.execute(
            insert(bundles_index), bundle_index_rows(batch.id, checked.bundles, checked.wires)
        )
        bulk_insert(conn, "readings", numeric)
        bulk_insert(conn, "readings_text", text)
        return BatchOutcome(batch.id, STATUS_LOADED, None, None, len(numeric) + len(text))

    def record_pending(self, conn: Connection, batch: AnchoredBatch, detail: str) -> BatchOutcome:
        """Record a batch whose content could not be fetched as `pending` (serves nothing).

        A later `write` of the same batch, once checked, replaces the row.

        Args:
            conn: A connection in a transaction.
            batch: The anchored batch.
            detail: Why the content could not be fetched.

        Returns:
            The pending outcome.
        """
        known = _recorded(conn, batch)
        if known is not None:
            return known
        _delete_batches(conn, batches.c.id == batch.id)
        conn.execute(
            insert(batches).values(
                **_batch_row(batch),
                status=STATUS_PENDING,
                reason="content-unavailable",
                detail=detail,
                reading_count=0,
            )
        )
        log.warning("batch %d pending: %s", batch.id, detail)
        return BatchOutcome(batch.id, STATUS_PENDING, "content-unavailable", detail, 0)

    def signal_ids(self, conn: Connection, names: Iterable[str]) -> dict[str, int]:
        """The ids of signal `names`, registering the ones not yet in `signals`.

        Catalog signals get fixed ids (`CATALOG_SIGNAL_IDS`), others the next free id from
        `FIRST_EXTRA_SIGNAL_ID` up, so a clean sync and a resumed one agree.
        """
        wanted = set(names)
        missing = wanted - self._signal_ids.keys()
        if missing:
            self._signal_ids.update(
                {r.name: r.id for r in conn.execute(select(signals.c.name, signals.c.id))}
            )
            missing = wanted - self._signal_ids.keys()
        if missing:
            next_extra = max([FIRST_EXTRA_SIGNAL_ID - 1, *self._signal_ids.values()])
            new: list[dict[str, Any]] = []
            for name in sorted(missing):
                sid = CATALOG_SIGNAL_IDS.get(name)
                if sid is None:
                    next_extra += 1
                    sid = next_extra
                new.append({"id": sid, "name": name})
            conn.execute(_insert_ignoring_conflicts(conn, signals), new)
            self._signal_ids.update(
                {r.name: r.id for r in conn.execute(select(signals.c.name, signals.c.id))}
            )
            still = wanted - self._signal_ids.keys()
            if still:  # a concurrent loader took an id first; the next attempt picks another
                raise RuntimeError(f"signal ids for {sorted(still)} collided; retry the batch")
        return {name: self._signal_ids[name] for name in wanted}


def _insert_ignoring_conflicts(conn: Connection, table: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return insert(table)


def bundle_index_rows(
    batch_id: int, bundles: Sequence[SignedBundle], wires: Sequence[bytes]
) -> list[dict[str, Any]]:
    """The `bundles_index` rows of a batch's bundles (leaf index = position), with their wire
    forms and what a disclosure decision needs of them."""
    return [
        {
            "batch_id": batch_id,
            "leaf_index": i,
            "device": s.bundle.device,
            "vehicle_id": s.bundle.vehicle_id,
            "sequence": s.bundle.sequence,
            "window_start": s.bundle.window_start,
            "window_end": s.bundle.window_end,
            "data_hash": s.bundle.data_hash,
            "signature": s.signature,
            "wire": wire,
            "disclosure": BundleFacts.of_times(
                s.bundle.schema_version,
                {name: [ts for ts, _ in samples] for name, samples in s.bundle.readings.items()},
            ).encode(),
        }
        for i, (s, wire) in enumerate(zip(bundles, wires, strict=True))
    ]


def split_readings(
    batch_id: int, bundles: Sequence[SignedBundle], signal_ids: Mapping[str, int]
) -> tuple[list[ReadingRow], list[TextReadingRow]]:
    """The reading rows of a batch's bundles: numeric (booleans as 0/1) and text.

    Args:
        batch_id: The batch.
        bundles: Its verified bundles, in leaf order.
        signal_ids: Id of every signal they name.

    Returns:
        Rows `(vehicle_id, signal, ts, value, batch_id, leaf_index)` for `readings` and for
        `readings_text`.
    """
    numeric: list[ReadingRow] = []
    text: list[TextReadingRow] = []
    for leaf_index, signed in enumerate(bundles):
        b = signed.bundle
        vehicle = b.vehicle_id
        for name, samples in b.readings.items():
            sid = signal_ids[name]
            for ts, value in samples:
                if type(value) is str:
                    text.append((vehicle, sid, ts, value, batch_id, leaf_index))
                else:
                    numeric.append((vehicle, sid, ts, float(value), batch_id, leaf_index))
    return numeric, text


def bulk_insert(conn: Connection, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Append reading rows to `readings` or `readings_text` in the caller's transaction.

    On PostgreSQL this is one `COPY ... FROM STDIN` through psycopg's `cursor.copy`, on SQLite
    one sqlite3 `executemany` of the rows as they are (the columns are plain numbers and text,
    so SQLAlchemy's per-row parameter processing would only cost time), both on the
    connection's own DBAPI connection, so they share the transaction; elsewhere SQLAlchemy's
    executemany.
    """
    if not rows:
        return
    target = {"readings": readings, "readings_text": readings_text}[table]
    if conn.dialect.name == "postgresql":
        dbapi = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
        cols = ", ".join(_READING_COLUMNS)
        with dbapi.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" for _ in _READING_COLUMNS)
        cursor = cast("sqlite3.Connection", conn.connection.dbapi_connection).cursor()
        try:
            cursor.executemany(
                f"INSERT INTO {table} ({', '.join(_READING_COLUMNS)}) VALUES ({marks})", rows
            )
        finally:
            cursor.close()
        return
    conn.execute(insert(target), [dict(zip(_READING_COLUMNS, row, strict=True)) for row in rows])


# -------------------------------------------------------------------------------------------
# bookkeeping: idempotency and reorg rollback
# -------------------------------------------------------------------------------------------


def _batch_row(batch: AnchoredBatch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "root": batch.root,
        "cid": batch.cid,
        "count": batch.count,
        "window_start": batch.window_start,
        "window_end": batch.window_end,
        "tx_hash": batch.tx_hash,
        "block_number": batch.block_number,
    }


def pending_batches(conn: Connection) -> list[AnchoredBatch]:
    """The batches recorded as `pending`, by id."""
    rows = conn.execute(
        select(batches).where(batches.c.status == STATUS_PENDING).order_by(batches.c.id)
    )
    return [
        AnchoredBatch(
            id=int(r.id),
            root=bytes(r.root),
            cid=r.cid,
            count=int(r._mapping["count"]),
            window_start=int(r.window_start),
            window_end=int(r.window_end),
            tx_hash=r.tx_hash,
            block_number=int(r.block_number),
        )
        for r in rows
    ]


def _recorded(conn: Connection, batch: AnchoredBatch) -> BatchOutcome | None:
    """The recorded outcome of exactly this anchored batch, or None."""
    row = conn.execute(select(batches).where(batches.c.id == batch.id)).first()
    if row is None:
        return None
    same = (bytes(row.root), row.cid, row.tx_hash, row.block_number) == (
        batch.root,
        batch.cid,
        batch.tx_hash,
        batch.block_number,
    )
    if not same:
        return None
    return BatchOutcome(row.id, row.status, row.reason, row.detail, row.reading_count)


def _delete_batches(conn: Connection, where: Any) -> list[int]:
    ids = [r[0] for r in conn.execute(select(batches.c.id).where(where))]
    if not ids:
        return []
    for table in (readings, readings_text, bundles_index):
        conn.execute(delete(table).where(table.c.batch_id.in_(ids)))
    conn.execute(delete(batches).where(batches.c.id.in_(ids)))
    return ids


def rollback_after(conn: Connection, block_number: int) -> list[int]:
    """Delete every batch anchored in a block above `block_number`, with all its rows.

    The syncer calls this in the transaction that rolls its own tables back on a reorg.

    Args:
        conn: A connection in a transaction.
        block_number: The last block that stays.

    Returns:
        The ids of the batches removed.
    """
    return _delete_batches(conn, batches.c.block_number > block_number)


def loaded_batch_ids(conn: Connection) -> list[int]:
    """Ids of the batches whose readings are served, ascending."""
    return [
        r[0]
        for r in conn.execute(
            select(batches.c.id).where(batches.c.status == STATUS_LOADED).order_by(batches.c.id)
        )
    ]


def reading_count(conn: Connection) -> int:
    """Numeric plus text readings stored."""
    n = conn.execute(select(func.count()).select_from(readings)).scalar_one()
    t = conn.execute(select(func.count()).select_from(readings_text)).scalar_one()
    return int(n) + int(t)


def create_tables(engine: Engine) -> None:
    """Create the telemetry tables if absent (the fallback where Alembic is not run)."""
    metadata.create_all(engine, tables=list(TELEMETRY_TABLES))


__all__ = [
    "AnchoredBatch",
    "BatchLoader",
    "BatchOutcome",
    "CheckedBatch",
    "IndexedPairings",
    "PairingCheck",
    "PairingHistory",
    "PairingInterval",
    "Rejection",
    "bulk_insert",
    "create_tables",
    "loaded_batch_ids",
    "pending_batches",
    "reading_count",
    "rollback_after",
    "split_readings",
]
