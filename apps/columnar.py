"""Readings as columns: numpy arrays of times, values and bundle refs, read in bulk.

The applications are pure functions over each signal's readings in time order. At fleet
scale a Python object per reading is the cost, so a signal's readings can also be held as
`Columns`: four parallel arrays (`ts`, `value`, `batch`, `leaf`). `Columns` is a
`Sequence[Reading]` (indexing it gives a `Reading`), so code written for lists keeps
working, and the applications' vectorized paths take its arrays directly (`as_columns`).

`fetch_fleet_columns` reads a block of vehicles' readings in one ordered pass. On PostgreSQL
the server packs each (vehicle, signal)'s columns into binary arrays (`array_send`), parsed
with numpy structured dtypes and split per vehicle and signal with no per-row Python: a few
thousand rows for a million readings. (A binary `COPY ... TO STDOUT` sends one message per
row, and reading those one by one through the driver costs more than the server's packing.)
On SQLite it is a plain fetch into numpy. Both give, per vehicle, the same `AppInputs` as
`indexer.apps.audit.gather_inputs` gives vehicle by vehicle.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, overload

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, select

from indexer.exceptions import InvalidTelemetryQuery
from indexer.queries import Reading, is_text_signal
from indexer.telemetry import bundles_index, signals

if TYPE_CHECKING:
    from indexer.apps.audit import AppInputs

__all__ = [
    "Columns",
    "as_columns",
    "bundle_keys",
    "fetch_fleet_columns",
    "keys_to_refs",
    "seq_sum",
    "trip_spans",
]

#: Per column: its name here, and its element type in PostgreSQL's binary array format
#: (`array_send`: a 20-byte header for one dimension, then each element's length and bytes).
_ARRAY_COLUMNS: Final = (
    ("ts", np.dtype([("length", ">i4"), ("item", ">i8")])),
    ("value", np.dtype([("length", ">i4"), ("item", ">f8")])),
    ("batch", np.dtype([("length", ">i4"), ("item", ">i8")])),
    ("leaf", np.dtype([("length", ">i4"), ("item", ">i4")])),
)
_ARRAY_HEADER: Final = 20

Int64s = NDArray[np.int64]


class Columns(Sequence[Reading]):
    """One signal's readings as parallel arrays, in time order (ties by batch, leaf).

    Attributes:
        ts: Unix ms, int64.
        value: float64 values, or an object array of str for text signals.
        batch: Batch ids, int64.
        leaf: Leaf indexes, int64.
    """

    __slots__ = ("batch", "leaf", "ts", "value")

    def __init__(self, ts: Int64s, value: NDArray[Any], batch: Int64s, leaf: Int64s) -> None:
        self.ts = ts
        self.value = value
        self.batch = batch
        self.leaf = leaf

    @classmethod
    def empty(cls, text: bool = False) -> Columns:
        """No readings (text values when `text`)."""
        z = np.empty(0, np.int64)
        return cls(z, np.empty(0, object if text else np.float64), z, z)

    @classmethod
    def of(cls, readings: Sequence[Any], text: bool | None = None) -> Columns:
        """The columns of `readings` (values are text when `text`, or when the first is).

        Args:
            readings: `Reading`s, or result rows with the same names (`ts`, `value`, ...).
            text: Whether the values are text; None to look at the first.

        Raises:
            InvalidTelemetryQuery: a numeric series holds a value that is not a number.
        """
        n = len(readings)
        if text is None:
            text = n > 0 and isinstance(readings[0].value, str)
        ts = np.fromiter((r.ts for r in readings), np.int64, n)
        batch = np.fromiter((r.batch_id for r in readings), np.int64, n)
        leaf = np.fromiter((r.leaf_index for r in readings), np.int64, n)
        if text:
            value: NDArray[Any] = np.array([str(r.value) for r in readings], dtype=object)
        else:
            try:
                value = np.fromiter((float(r.value) for r in readings), np.float64, n)
            except ValueError as exc:
                raise InvalidTelemetryQuery("value", f"not a number: {exc}") from exc
        return cls(ts, value, batch, leaf)

    @property
    def is_text(self) -> bool:
        """Whether the values are text."""
        return self.value.dtype == object

    def __len__(self) -> int:
        return len(self.ts)

    @overload
    def __getitem__(self, i: int) -> Reading: ...
    @overload
    def __getitem__(self, i: slice) -> Columns: ...
    def __getitem__(self, i: int | slice) -> Reading | Columns:
        if isinstance(i, slice):
            return Columns(self.ts[i], self.value[i], self.batch[i], self.leaf[i])
        v = self.value[i]
        return Reading(
            int(self.ts[i]), v if isinstance(v, str) else float(v), int(self.batch[i]),
            int(self.leaf[i]),
        )  # fmt: skip

    def __iter__(self) -> Iterator[Reading]:
        text = self.is_text
        values = self.value.tolist()
        for t, v, b, leaf in zip(
            self.ts.tolist(), values, self.batch.tolist(), self.leaf.tolist(), strict=True
        ):
            yield Reading(t, str(v) if text else v, b, leaf)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Columns({len(self)} readings)"

    def take(self, index: NDArray[Any]) -> Columns:
        """The readings at `index` (integer positions or a boolean mask), in that order."""
        return Columns(self.ts[index], self.value[index], self.batch[index], self.leaf[index])

    def keys(self) -> Int64s:
        """Each reading's bundle as one int64 key, `batch << 32 | leaf` (see `keys_to_refs`)."""
        return bundle_keys(self.batch, self.leaf)


def as_columns(readings: Sequence[Reading]) -> Columns:
    """`readings` as `Columns` (itself when it already is)."""
    return readings if isinstance(readings, Columns) else Columns.of(readings)


def bundle_keys(batch: Int64s, leaf: Int64s) -> Int64s:
    """`batch << 32 | leaf`: one sortable int64 per (batch id, leaf index)."""
    return (batch << 32) | leaf


def keys_to_refs(keys: Int64s) -> list[list[int]]:
    """`[batch_id, leaf_index]` of each distinct key of `bundle_keys`, sorted."""
    u = np.unique(keys)
    return np.stack((u >> 32, u & 0xFFFFFFFF), axis=1).tolist()  # type: ignore[no-any-return]


def seq_sum(values: NDArray[np.float64]) -> float:
    """The sum of `values` added left to right, as a Python loop adds them (bit for bit)."""
    return float(np.cumsum(values)[-1]) if len(values) else 0.0


def trip_spans(
    ts: Int64s,
    moving: NDArray[np.bool_],
    on_ts: Int64s,
    off_ts: Int64s,
    gap_ms: float,
    min_ms: float,
) -> tuple[Int64s, Int64s]:
    """Trip starts and ends (inclusive), as `indexer.queries.trips` segments them.

    Active marks are the speed readings at `ts` where `moving`, and ignition ON/START at
    `on_ts`; OFF/LOCK marks at `off_ts` end a trip. A trip is a run of active marks at most
    `gap_ms` apart with no end mark between them, kept if it lasts `min_ms`.
    """
    when = np.concatenate((ts[moving], on_ts, off_ts))
    if not len(when):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    state = np.concatenate(
        (np.ones(int(moving.sum()) + len(on_ts), dtype=bool), np.zeros(len(off_ts), dtype=bool))
    )
    order = np.lexsort((state, when))  # by time; at one instant the end mark first
    when, state = when[order], state[order]
    prev_state = np.concatenate(([False], state[:-1]))
    prev_when = np.concatenate(([when[0]], when[:-1]))
    starts_here = state & (~prev_state | (when - prev_when > gap_ms))
    active = np.flatnonzero(state)
    first = starts_here[active]
    begins = when[active][first]
    last_of_run = np.concatenate((np.flatnonzero(first)[1:] - 1, [len(active) - 1]))
    ends = when[active][last_of_run.astype(np.int64)]
    keep = ends - begins >= min_ms
    return begins[keep], ends[keep]


# -------------------------------------------------------------------------------------------
# reading a block of vehicles
# -------------------------------------------------------------------------------------------


def _signal_ids(conn: Connection, names: Sequence[str]) -> dict[str, int]:
    rows = conn.execute(select(signals.c.name, signals.c.id).where(signals.c.name.in_(names)))
    return {str(r.name): int(r.id) for r in rows}


def _where(vehicle_ids: Sequence[int], sig: Sequence[int], start_ms: int, end_ms: int) -> str:
    lo, hi = min(vehicle_ids), max(vehicle_ids)
    if len(set(vehicle_ids)) == hi - lo + 1:
        who = f"vehicle_id BETWEEN {lo} AND {hi}"
    else:
        who = f"vehicle_id IN ({','.join(str(int(v)) for v in sorted(set(vehicle_ids)))})"
    sigs = ",".join(str(int(s)) for s in sig)
    return f"{who} AND signal IN ({sigs}) AND ts >= {int(start_ms)} AND ts < {int(end_ms)}"


_ORDER: Final = "ORDER BY vehicle_id, signal, ts, batch_id, leaf_index"


def _aggregate_numeric(raw: Any, where: str) -> dict[str, NDArray[Any]]:
    """The numeric readings matching `where`, as one binary array per vehicle, signal and
    column (PostgreSQL).

    A few thousand rows of packed arrays instead of a row (or a COPY message) per reading:
    the driver's per-row work is the cost a block of a million readings cannot afford.
    """
    # Ordered as the index is (ties in time, rare, are put in order below), so the server
    # streams the index into the arrays without a sort.
    sql = (
        "SELECT vehicle_id, signal, array_send(array_agg(ts)), array_send(array_agg(value)), "
        "array_send(array_agg(batch_id)), array_send(array_agg(leaf_index)) FROM ("
        "SELECT vehicle_id, signal, ts, value, batch_id, leaf_index FROM readings "
        f"WHERE {where} ORDER BY vehicle_id, signal, ts) r "
        "GROUP BY vehicle_id, signal ORDER BY vehicle_id, signal"
    )
    with raw.cursor(binary=True) as cur:
        # JIT compiling and parallel workers cost more than they save on a block's scan, and
        # a block's sort (if the planner sorts) fits in memory.
        cur.execute("SET LOCAL jit = off")
        cur.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        cur.execute("SET LOCAL work_mem = '64MB'")
        cur.execute(sql)
        rows = cur.fetchall()
    counts = np.array([(len(r[2]) - _ARRAY_HEADER) // 12 for r in rows], np.int64)
    out: dict[str, NDArray[Any]] = {
        "vehicle": np.repeat(np.array([r[0] for r in rows], np.int64), counts),
        "signal": np.repeat(np.array([r[1] for r in rows], np.int64), counts),
    }
    for k, (name, dtype) in enumerate(_ARRAY_COLUMNS):
        blob = b"".join(bytes(r[2 + k])[_ARRAY_HEADER:] for r in rows)
        items = np.frombuffer(blob, dtype)
        if len(items) != counts.sum() or (items["length"] != dtype["item"].itemsize).any():
            raise InvalidTelemetryQuery("readings", f"the server's {name} arrays are malformed")
        out[name] = items["item"].astype(np.float64 if name == "value" else np.int64)
    return _in_order(out)


def _in_order(got: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
    """The rows sorted by (vehicle, signal, ts, batch, leaf), if they are not already.

    The server aggregates a subquery sorted by (vehicle, signal, ts), which keeps that order
    in practice; this checks it (one pass) rather than rely on it, and orders ties in time.
    """
    keys = [got[k] for k in ("vehicle", "signal", "ts", "batch", "leaf")]
    before = np.zeros(max(0, len(keys[0]) - 1), bool)  # a pair whose second comes first
    tied = np.ones_like(before)
    for key in keys:
        step = np.diff(key)
        before |= tied & (step < 0)
        tied &= step == 0
    if not before.any():
        return got
    order = np.lexsort(keys[::-1])
    return {k: v[order] for k, v in got.items()}


def _fetch(raw: Any, table: str, where: str, text: bool) -> dict[str, NDArray[Any]]:
    """The readings of `table` matching `where`, by a plain fetch (any database)."""
    cur = raw.cursor()
    try:
        cur.execute(
            f"SELECT vehicle_id, signal, ts, value, batch_id, leaf_index FROM {table} "
            f"WHERE {where} {_ORDER}"
        )
        rows = cur.fetchall()
    finally:
        cur.close()
    cols = list(zip(*rows, strict=True)) if rows else [()] * 6
    return {
        "vehicle": np.array(cols[0], np.int64),
        "signal": np.array(cols[1], np.int64),
        "ts": np.array(cols[2], np.int64),
        "value": np.array([str(v) for v in cols[3]], object)
        if text
        else np.array(cols[3], np.float64),
        "batch": np.array(cols[4], np.int64),
        "leaf": np.array(cols[5], np.int64),
    }


def _split(
    got: Mapping[str, NDArray[Any]], names: Mapping[int, str], out: Mapping[int, AppInputs]
) -> None:
    """Puts each (vehicle, signal) run of the sorted rows into `out[vehicle].series`."""
    vehicle, signal = got["vehicle"], got["signal"]
    if not len(vehicle):
        return
    change = np.flatnonzero((np.diff(vehicle) != 0) | (np.diff(signal) != 0)) + 1
    bounds = np.concatenate(([0], change, [len(vehicle)])).tolist()
    for a, b in itertools.pairwise(bounds):
        v, s = int(vehicle[a]), int(signal[a])
        if v in out and s in names:
            out[v].series[names[s]] = Columns(
                got["ts"][a:b], got["value"][a:b], got["batch"][a:b], got["leaf"][a:b]
            )


def fetch_fleet_columns(
    conn: Connection,
    vehicle_ids: Sequence[int],
    signal_names: Sequence[str],
    start_ms: int,
    end_ms: int,
    *,
    devices: bool = True,
) -> dict[int, AppInputs]:
    """Every vehicle's readings of `signal_names` in `[start_ms, end_ms)`, as `Columns`.

    The same inputs as `indexer.apps.audit.gather_fleet_inputs` (which calls this), read in
    one ordered pass per table: a binary COPY on PostgreSQL, a plain fetch elsewhere.

    Args:
        conn: A connection to the index.
        vehicle_ids: The vehicles (a block of a batch job).
        signal_names: The signals to read.
        start_ms: Window start, unix ms, inclusive.
        end_ms: Window end, unix ms, exclusive.
        devices: Also look up each input bundle's signing device (`AppInputs.devices`).

    Returns:
        Vehicle id -> its `AppInputs` (vehicles without readings map to empty inputs).

    Raises:
        InvalidTelemetryQuery: the server's COPY output is not as expected.
    """
    from indexer.apps.audit import AppInputs  # audit imports this module

    out = {int(v): AppInputs() for v in vehicle_ids}
    if not out:
        return out
    ids = _signal_ids(conn, list(signal_names))
    raw = conn.connection.dbapi_connection
    assert raw is not None
    pg = conn.dialect.name == "postgresql"
    for text in (False, True):
        wanted = {ids[n]: n for n in signal_names if n in ids and is_text_signal(n) == text}
        if not wanted:
            continue
        where = _where(list(out), sorted(wanted), start_ms, end_ms)
        table = "readings_text" if text else "readings"
        got = _aggregate_numeric(raw, where) if pg and not text else _fetch(raw, table, where, text)
        _split(got, wanted, out)
    for inp in out.values():
        inp.series = dict(sorted(inp.series.items()))
    keys = [k for inp in out.values() for k in inp.key_arrays()] if devices else []
    if keys:
        signers = _devices(conn, list(out), np.concatenate(keys))
        for inp in out.values():
            inp.devices = {ref: signers[ref] for ref in inp.refs() if ref in signers}
    return out


def _devices(
    conn: Connection, vehicle_ids: Sequence[int], keys: Int64s
) -> dict[tuple[int, int], str]:
    """(batch, leaf) -> signing device of the bundles behind `keys` (the vehicles' bundles)."""
    batches = keys >> 32
    lo, hi = int(batches.min()), int(batches.max())
    v_lo, v_hi = min(vehicle_ids), max(vehicle_ids)
    rows = conn.execute(
        select(
            bundles_index.c.batch_id,
            bundles_index.c.leaf_index,
            bundles_index.c.device,
            bundles_index.c.vehicle_id,
        ).where(
            bundles_index.c.vehicle_id >= v_lo,
            bundles_index.c.vehicle_id <= v_hi,
            bundles_index.c.batch_id >= lo,
            bundles_index.c.batch_id <= hi,
        )
    )
    wanted = set(vehicle_ids)
    return {(int(b), int(leaf)): str(device) for b, leaf, device, vid in rows if int(vid) in wanted}
