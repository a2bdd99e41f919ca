"""The indexer's side of the applications: their inputs gathered from SQL.

`gather_inputs` reads one vehicle's readings a caller may use; `fetch_fleet_columns` reads a
block of vehicles' readings in one ordered pass as `apps.columnar.Columns`. On PostgreSQL
the server packs each (vehicle, signal)'s columns into binary arrays (`array_send`), parsed
with numpy structured dtypes and split per vehicle and signal with no per-row Python: a few
thousand rows for a million readings. (A binary `COPY ... TO STDOUT` sends one message per
row, and reading those one by one through the driver costs more than the server's packing.)
On SQLite it is a plain fetch into numpy. Both give, per vehicle, the same `AppInputs` as
`gather_inputs` gives vehicle by vehicle, and as an auditor rebuilds from proofs
(`apps.audit.fetch_and_verify_inputs`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, select, tuple_

from apps.audit import AppInputs, Ref, sorted_series
from apps.battery import VehicleFacts
from apps.columnar import Columns
from indexer import schema
from indexer.exceptions import InvalidTelemetryQuery, VehicleNotFound
from indexer.queries import MAX_RAW_READINGS, raw_readings
from indexer.telemetry import bundles_index, signals
from protocol.readings import Interval, Reading, is_text_signal

__all__ = [
    "bundle_rows",
    "fetch_fleet_columns",
    "gather_fleet_inputs",
    "gather_inputs",
    "vehicle_facts",
]

Int64s = NDArray[np.int64]

#: Per column: its name here, and its element type in PostgreSQL's binary array format
#: (`array_send`: a 20-byte header for one dimension, then each element's length and bytes).
_ARRAY_COLUMNS: Final = (
    ("ts", np.dtype([("length", ">i4"), ("item", ">i8")])),
    ("value", np.dtype([("length", ">i4"), ("item", ">f8")])),
    ("batch", np.dtype([("length", ">i4"), ("item", ">i8")])),
    ("leaf", np.dtype([("length", ">i4"), ("item", ">i4")])),
)
_ARRAY_HEADER: Final = 20

# -------------------------------------------------------------------------------------------
# one vehicle
# -------------------------------------------------------------------------------------------


def gather_inputs(
    conn: Connection,
    vehicle_id: int,
    signal_names: Sequence[str],
    start_ms: int,
    end_ms: int,
    within: Mapping[str, Sequence[Interval]],
) -> AppInputs:
    """The readings of `signal_names` a caller may use, from the index.

    Args:
        conn: A connection to the index.
        vehicle_id: The vehicle.
        signal_names: The signals the application reads.
        start_ms: Window start, unix ms, inclusive.
        end_ms: Window end, unix ms, exclusive.
        within: Per signal, the times the caller's rights cover (a signal absent: none).

    Returns:
        The readings and, for every bundle they come from, its signing device.
    """
    series: dict[str, list[Reading]] = {}
    for name in signal_names:
        spans = list(within.get(name, ()))
        if not spans:
            continue
        got: list[Reading] = []
        after: tuple[int, int, int] | None = None
        while True:
            page = raw_readings(
                conn,
                vehicle_id,
                name,
                start_ms,
                end_ms,
                MAX_RAW_READINGS,
                within=spans,
                after=after,
            )
            got += page
            if len(page) < MAX_RAW_READINGS:
                break
            last = page[-1]
            after = (last.ts, last.batch_id, last.leaf_index)
        if got:
            series[name] = got
    inputs = AppInputs(sorted_series(series))
    inputs.devices = _devices(conn, inputs.refs())
    return inputs


def _devices(conn: Connection, refs: Sequence[Ref]) -> dict[Ref, str]:
    out: dict[Ref, str] = {}
    batch_ids = sorted({b for b, _ in refs})
    wanted = set(refs)
    for i in range(0, len(batch_ids), 500):
        rows = conn.execute(
            select(
                bundles_index.c.batch_id, bundles_index.c.leaf_index, bundles_index.c.device
            ).where(bundles_index.c.batch_id.in_(batch_ids[i : i + 500]))
        )
        for r in rows:
            key = (int(r.batch_id), int(r.leaf_index))
            if key in wanted:
                out[key] = str(r.device)
    return out


def gather_fleet_inputs(
    conn: Connection,
    vehicle_ids: Sequence[int],
    signal_names: Sequence[str],
    start_ms: int,
    end_ms: int,
    *,
    devices: bool = True,
) -> dict[int, AppInputs]:
    """Every vehicle's readings of `signal_names` in `[start_ms, end_ms)`, in one ordered pass.

    For fleet views and batch jobs whose rights were checked as a whole (a licence holder's
    vehicles); per-caller time limits are `gather_inputs`'s job. The readings come as
    `apps.columnar.Columns` (packed arrays on PostgreSQL; see `fetch_fleet_columns`);
    `devices=False` skips the signing devices (`AppInputs.devices` stays empty).

    Returns:
        Vehicle id -> its inputs (vehicles without readings map to empty inputs).
    """
    return fetch_fleet_columns(conn, vehicle_ids, signal_names, start_ms, end_ms, devices=devices)


def bundle_rows(conn: Connection, refs: Sequence[Ref]) -> dict[Ref, Any]:
    """The `bundles_index` rows of these (batch, leaf) pairs (the absent ones are left out)."""
    out: dict[Ref, Any] = {}
    for i in range(0, len(refs), 500):
        part = list(refs[i : i + 500])
        rows = conn.execute(
            select(bundles_index).where(
                tuple_(bundles_index.c.batch_id, bundles_index.c.leaf_index).in_(part)
            )
        )
        for r in rows:
            out[(int(r.batch_id), int(r.leaf_index))] = r
    return out


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

    The same inputs as `gather_fleet_inputs` (which calls this), read in
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
        signers = _fleet_devices(conn, list(out), np.concatenate(keys))
        for inp in out.values():
            inp.devices = {ref: signers[ref] for ref in inp.refs() if ref in signers}
    return out


def _fleet_devices(
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


def vehicle_facts(conn: Connection, vehicle_id: int) -> tuple[VehicleFacts, int]:
    """The vehicle's make, model and year, and its mint time (unix ms), from the index.

    Raises:
        VehicleNotFound: no such vehicle is indexed.
    """
    row = conn.execute(
        select(
            schema.models.c.make,
            schema.models.c.model,
            schema.vehicles.c.year,
            schema.vehicles.c.minted_at,
        )
        .join(schema.models, schema.models.c.id == schema.vehicles.c.model_id)
        .where(schema.vehicles.c.id == vehicle_id)
    ).first()
    if row is None:
        raise VehicleNotFound(vehicle_id)
    return VehicleFacts(str(row.make), str(row.model), int(row.year)), int(row.minted_at) * 1000
