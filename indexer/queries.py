"""Telemetry queries over verified readings: series, latest values, trips, charging, proofs.

One SQLAlchemy Core code path for SQLite and PostgreSQL. Time is unix ms throughout; ranges
are `[start_ms, end_ms)`. Interval aggregation buckets a reading by integer division,
`bucket = start_ms + (ts - start_ms) // interval_ms * interval_ms`. Only readings of loaded
batches exist in the tables, so everything here is served from verified data. Access rights
are the caller's job: the API computes which times the caller may read (`indexer.rights`) and
passes them as `within`, a list of half-open intervals outside which no reading is used.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Dialect,
    Select,
    SmallInteger,
    and_,
    bindparam,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
)

if TYPE_CHECKING:
    import psycopg

from indexer.disclosure import BundleFacts
from indexer.exceptions import InvalidTelemetryQuery, ReadingNotFound
from indexer.loader import CATALOG_SIGNAL_IDS
from indexer.telemetry import batches, bundles_index, readings, readings_text, signals
from protocol.bundle import BUNDLE_LEAF_ENCODING
from protocol.crypto import keccak256
from protocol.merkle import StandardMerkleTree
from protocol.readings import (  # the shared value types, re-exported for the indexer's modules
    CHARGE_POWER as CHARGE_POWER,
)
from protocol.readings import IGNITION as IGNITION
from protocol.readings import IGNITION_OFF as IGNITION_OFF
from protocol.readings import IGNITION_ON as IGNITION_ON
from protocol.readings import IS_CHARGING as IS_CHARGING
from protocol.readings import ODOMETER as ODOMETER
from protocol.readings import SOC as SOC
from protocol.readings import SPEED as SPEED
from protocol.readings import Interval as Interval
from protocol.readings import Reading as Reading
from protocol.readings import Value as Value
from protocol.readings import is_text_signal as is_text_signal
from protocol.readings import segments

Aggregation = Literal["avg", "min", "max", "first", "last"]
AGGREGATIONS: Final[tuple[Aggregation, ...]] = ("avg", "min", "max", "first", "last")
#: Most buckets one series request may ask for, per signal.
MAX_BUCKETS: Final = 100_000
#: Most raw readings one request returns.
MAX_RAW_READINGS: Final = 100_000

#: Per signal name, the intervals its readings may come from (a signal absent: none).
WithinBySignal = Mapping[str, Sequence[Interval]]


def _check_range(start_ms: int, end_ms: int) -> None:
    if start_ms < 0 or end_ms <= start_ms:
        raise InvalidTelemetryQuery(
            "start_ms/end_ms", f"[{start_ms}, {end_ms}) is empty; end must be after start"
        )


def _within(column: Any, within: Sequence[Interval]) -> ColumnElement[bool]:
    """`column` falls in one of `within`'s intervals (which must not be empty)."""
    parts = [and_(column >= a, column < b) for a, b in within]
    return parts[0] if len(parts) == 1 else or_(*parts)


def _check_within(within: Sequence[Interval] | None) -> None:
    for a, b in within or ():
        if b <= a:
            raise InvalidTelemetryQuery("within", f"[{a}, {b}) is empty; drop it from the list")


def signal_ids(conn: Connection, names: Iterable[str]) -> dict[str, int]:
    """Ids of the named signals: catalog signals by their fixed ids (no query; one not loaded
    yet simply has no readings), others if they have ever been loaded (else absent)."""
    wanted = set(names)
    out = {n: CATALOG_SIGNAL_IDS[n] for n in wanted if n in CATALOG_SIGNAL_IDS}
    extra = sorted(wanted - out.keys())
    if extra:
        rows = conn.execute(select(signals.c.name, signals.c.id).where(signals.c.name.in_(extra)))
        out.update({r.name: int(r.id) for r in rows})
    return out


def known_signals(conn: Connection) -> list[str]:
    """Every signal name loaded so far, sorted."""
    return sorted(r[0] for r in conn.execute(select(signals.c.name)))


# -------------------------------------------------------------------------------------------
# raw readings and series
# -------------------------------------------------------------------------------------------


def raw_readings(
    conn: Connection,
    vehicle_id: int,
    signal: str,
    start_ms: int,
    end_ms: int,
    limit: int = MAX_RAW_READINGS,
    *,
    within: Sequence[Interval] | None = None,
    after: tuple[int, int, int] | None = None,
) -> list[Reading]:
    """A signal's readings for a vehicle over `[start_ms, end_ms)`, oldest first.

    Args:
        conn: A connection to the index.
        vehicle_id: The vehicle.
        signal: The VSS name.
        start_ms: Range start, unix ms, inclusive.
        end_ms: Range end, unix ms, exclusive.
        limit: Most readings returned.
        within: Only readings inside these intervals; None for no such bound.
        after: Only readings after this `(ts, batch_id, leaf_index)` in the order returned
            (keyset pagination: the last reading of the previous page).

    Raises:
        InvalidTelemetryQuery: an empty range or interval, or a limit out of
            1..MAX_RAW_READINGS.
    """
    _check_range(start_ms, end_ms)
    _check_within(within)
    if not 1 <= limit <= MAX_RAW_READINGS:
        raise InvalidTelemetryQuery("limit", f"{limit} is not in 1..{MAX_RAW_READINGS}")
    if within is not None and not within:
        return []
    ids = signal_ids(conn, [signal])
    if signal not in ids:
        return []
    table = readings_text if is_text_signal(signal) else readings
    cond = [
        table.c.vehicle_id == vehicle_id,
        table.c.signal == ids[signal],
        table.c.ts >= start_ms,
        table.c.ts < end_ms,
    ]
    if within is not None:
        cond.append(_within(table.c.ts, within))
    if after is not None:
        cond.append(table.c.ts >= after[0])
        cond.append(
            tuple_(table.c.ts, table.c.batch_id, table.c.leaf_index)
            > tuple_(literal(after[0]), literal(after[1]), literal(after[2]))
        )
    rows = conn.execute(
        select(table.c.ts, table.c.value, table.c.batch_id, table.c.leaf_index)
        .where(*cond)
        .order_by(table.c.ts, table.c.batch_id, table.c.leaf_index)
        .limit(limit)
    )
    return [Reading(int(r.ts), r.value, int(r.batch_id), int(r.leaf_index)) for r in rows]


@dataclass(frozen=True)
class SeriesPoint:
    """One interval of a series.

    Attributes:
        bucket_start: The interval's start, unix ms.
        value: The aggregate of the readings in `[bucket_start, bucket_start + interval)`.
        count: How many readings the interval holds.
    """

    bucket_start: int
    value: Value
    count: int


def check_series_args(
    signal_names: Sequence[str],
    start_ms: int,
    end_ms: int,
    interval_ms: int,
    aggregation: str,
) -> None:
    """Checks the arguments of `signal_series` without touching the database.

    Raises:
        InvalidTelemetryQuery: bad range, interval, aggregation, or too many buckets.
    """
    _check_range(start_ms, end_ms)
    if interval_ms <= 0:
        raise InvalidTelemetryQuery("interval_ms", f"{interval_ms} is not positive")
    if -(-(end_ms - start_ms) // interval_ms) > MAX_BUCKETS:
        raise InvalidTelemetryQuery(
            "interval_ms", f"more than {MAX_BUCKETS} intervals; widen the interval"
        )
    if aggregation not in AGGREGATIONS:
        raise InvalidTelemetryQuery("aggregation", f"{aggregation!r} is not one of {AGGREGATIONS}")
    text_names = [n for n in signal_names if is_text_signal(n)]
    if text_names and aggregation not in ("first", "last"):
        raise InvalidTelemetryQuery(
            "aggregation", f"{text_names} hold text; only first and last apply"
        )


def signal_series(
    conn: Connection,
    vehicle_id: int,
    signal_names: Sequence[str],
    start_ms: int,
    end_ms: int,
    interval_ms: int,
    aggregation: Aggregation = "avg",
    *,
    within: Sequence[Interval] | None = None,
) -> dict[str, list[SeriesPoint]]:
    """Signals of a vehicle over a time range, aggregated per interval.

    Args:
        conn: A connection to the index.
        vehicle_id: The vehicle.
        signal_names: VSS names; text signals allow only `first` and `last`.
        start_ms: Range start, unix ms, inclusive; buckets are aligned on it.
        end_ms: Range end, unix ms, exclusive.
        interval_ms: Bucket width in ms.
        aggregation: `avg`, `min`, `max`, `first` or `last` (by time; ties by batch, leaf).
        within: Only readings inside these intervals count; None for no such bound. Buckets
            stay aligned on `start_ms`.

    Returns:
        For each requested signal, its non-empty buckets in time order (an empty list when
        the vehicle has no reading of it in the range).

    Raises:
        InvalidTelemetryQuery: bad range, interval, aggregation, or too many buckets.
    """
    rows = series_rows(
        conn, vehicle_id, signal_names, start_ms, end_ms, interval_ms, aggregation, within=within
    )
    return {
        name: [SeriesPoint(t, value, n) for t, value, n in points] for name, points in rows.items()
    }


#: One non-empty bucket of a series as a plain tuple: (start, unix ms; aggregate; readings).
SeriesRow = tuple[int, Value, int]


def series_rows(
    conn: Connection,
    vehicle_id: int,
    signal_names: Sequence[str],
    start_ms: int,
    end_ms: int,
    interval_ms: int,
    aggregation: Aggregation = "avg",
    *,
    within: Sequence[Interval] | None = None,
) -> dict[str, list[SeriesRow]]:
    """`signal_series` as plain `(bucket start, value, count)` tuples, for callers that encode
    them straight away (the API's hot route): the same statement, run on the driver's cursor.

    The statement of each shape (dialect, table, aggregation, number of signals and of `within`
    intervals) is compiled once; on PostgreSQL it runs as a server-side prepared statement with
    binary results.

    Raises:
        InvalidTelemetryQuery: bad range, interval, aggregation, or too many buckets.
    """
    check_series_args(signal_names, start_ms, end_ms, interval_ms, aggregation)
    out: dict[str, list[SeriesRow]] = {name: [] for name in signal_names}
    _check_within(within)
    if within is not None and not within:
        return out
    ids = signal_ids(conn, out)
    names_by_id = {sid: name for name, sid in ids.items()}
    for is_text in (False, True):
        wanted = [sid for name, sid in ids.items() if is_text_signal(name) == is_text]
        if not wanted:
            continue
        spans = tuple(within) if within is not None else None
        sql, order, fixed = _series_sql(
            conn.dialect, is_text, len(wanted), aggregation, None if spans is None else len(spans)
        )
        params: dict[str, Any] = {
            **fixed,
            "vehicle_id": vehicle_id,
            "start_ms": start_ms,
            "end_ms": end_ms,
            "interval_ms": interval_ms,
        }
        params.update({f"sid_{i}": sid for i, sid in enumerate(wanted)})
        for i, (a, b) in enumerate(spans or ()):
            params[f"w{i}_start"], params[f"w{i}_end"] = a, b
        rows = _driver_rows(conn, sql, order, params)  # ordered by signal, then bucket
        for sid, group in groupby(rows, itemgetter(0)):
            out[names_by_id[sid]] = [
                (start_ms + bucket * interval_ms, value, n) for _, bucket, value, n in group
            ]
    return out


def _driver_rows(
    conn: Connection, sql: str, order: tuple[str, ...] | None, params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """The rows of a compiled statement run on the connection's DBAPI cursor, in the
    connection's transaction (begun by the driver, ended with the connection as usual)."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    if conn.dialect.name == "postgresql":
        with cast("psycopg.Connection[Any]", dbapi).cursor(binary=True) as pg:
            pg.execute(sql, params, prepare=True)
            return pg.fetchall()
    cur = dbapi.cursor()
    try:
        cur.execute(sql, params if order is None else tuple(params[k] for k in order))
        return list(cur.fetchall())
    finally:
        cur.close()


@lru_cache(maxsize=512)
def _series_sql(
    dialect: Dialect, is_text: bool, n_ids: int, aggregation: Aggregation, n_within: int | None
) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
    """The driver SQL of a series statement of this shape, its parameter order when the
    driver's parameters are positional (None when they are named), and the values of the
    statement's own constants (e.g. the `rn = 1` of `first` and `last`)."""
    statement = _series_query(
        readings_text if is_text else readings,
        bindparam("vehicle_id", type_=BigInteger),
        [bindparam(f"sid_{i}", type_=SmallInteger) for i in range(n_ids)],
        bindparam("start_ms", type_=BigInteger),
        bindparam("end_ms", type_=BigInteger),
        bindparam("interval_ms", type_=BigInteger),
        aggregation,
        None
        if n_within is None
        else [
            (bindparam(f"w{i}_start", type_=BigInteger), bindparam(f"w{i}_end", type_=BigInteger))
            for i in range(n_within)
        ],
    )
    compiled = statement.compile(dialect=dialect)
    order = compiled.positiontup if compiled.positional else None
    fixed = {k: v for k, v in compiled.params.items() if v is not None}
    return compiled.string, None if order is None else tuple(order), fixed


def _series_query(
    table: Any,
    vehicle_id: Any,
    ids: Sequence[Any],
    start_ms: Any,
    end_ms: Any,
    interval_ms: Any,
    aggregation: Aggregation,
    within: Sequence[tuple[Any, Any]] | None,
) -> Select[Any]:
    """The series statement; every value is a bound parameter (see `_series_sql`)."""
    bucket = ((table.c.ts - start_ms) // interval_ms).label("bucket")
    where = and_(
        table.c.vehicle_id == vehicle_id,
        table.c.signal.in_(ids),
        table.c.ts >= start_ms,
        table.c.ts < end_ms,
        *([_within(table.c.ts, within)] if within is not None else []),
    )
    if aggregation in ("avg", "min", "max"):
        agg = getattr(func, aggregation)
        return (
            select(
                table.c.signal,
                bucket,
                agg(table.c.value).label("value"),
                func.count().label("n"),
            )
            .where(where)
            .group_by(table.c.signal, bucket)
            .order_by(table.c.signal, bucket)
        )
    ordering = _ranking(table, aggregation)
    partition = (table.c.signal, bucket)
    ranked = (
        select(
            table.c.signal,
            bucket,
            table.c.value,
            func.row_number().over(partition_by=partition, order_by=ordering).label("rn"),
            func.count().over(partition_by=partition).label("n"),
        )
        .where(where)
        .subquery()
    )
    return (
        select(ranked.c.signal, ranked.c.bucket, ranked.c.value, ranked.c.n)
        .where(ranked.c.rn == 1)
        .order_by(ranked.c.signal, ranked.c.bucket)
    )


def _ranking(table: Any, aggregation: str) -> tuple[Any, ...]:
    """The order whose first reading of a bucket is the one `aggregation` selects: `first`
    and `last` by time (then batch and leaf), `min` and `max` by value, then the earliest."""
    if aggregation == "first":
        return (table.c.ts, table.c.batch_id, table.c.leaf_index)
    if aggregation == "last":
        return (table.c.ts.desc(), table.c.batch_id.desc(), table.c.leaf_index.desc())
    value = table.c.value if aggregation == "min" else table.c.value.desc()
    return (value, table.c.ts, table.c.batch_id, table.c.leaf_index)


#: The aggregations whose value is one reading's (`series_sources` finds it).
SELECTING: Final = ("first", "last", "min", "max")


def series_sources(
    conn: Connection,
    vehicle_id: int,
    signal: str,
    start_ms: int,
    end_ms: int,
    interval_ms: int,
    aggregation: Aggregation,
    *,
    within: Sequence[Interval] | None = None,
) -> dict[int, Reading]:
    """Per bucket of `series_rows`, the reading its `first`, `last`, `min` or `max` value is:
    the same buckets and values, with the reading's time, batch and leaf (for its proof).

    Of equal values, `min` and `max` take the earliest reading.

    Raises:
        InvalidTelemetryQuery: as `series_rows`, or an aggregation that selects no reading
            (`avg`).
    """
    check_series_args([signal], start_ms, end_ms, interval_ms, aggregation)
    if aggregation not in SELECTING:
        raise InvalidTelemetryQuery("agg", f"{aggregation} selects no single reading")
    _check_within(within)
    if within is not None and not within:
        return {}
    ids = signal_ids(conn, [signal])
    if signal not in ids:
        return {}
    spans = tuple(within) if within is not None else None
    sql, order, fixed = _sources_sql(
        conn.dialect, is_text_signal(signal), aggregation, None if spans is None else len(spans)
    )
    params: dict[str, Any] = {
        **fixed,
        "vehicle_id": vehicle_id,
        "sid": ids[signal],
        "start_ms": start_ms,
        "end_ms": end_ms,
        "interval_ms": interval_ms,
    }
    for i, (a, b) in enumerate(spans or ()):
        params[f"w{i}_start"], params[f"w{i}_end"] = a, b
    return {
        start_ms + int(bucket) * interval_ms: Reading(int(ts), value, int(batch), int(leaf))
        for bucket, ts, value, batch, leaf in _driver_rows(conn, sql, order, params)
    }


@lru_cache(maxsize=256)
def _sources_sql(
    dialect: Dialect, is_text: bool, aggregation: Aggregation, n_within: int | None
) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
    """The driver SQL of `series_sources`' statement of this shape (as `_series_sql`)."""
    table = readings_text if is_text else readings
    start_ms = bindparam("start_ms", type_=BigInteger)
    bucket = ((table.c.ts - start_ms) // bindparam("interval_ms", type_=BigInteger)).label("bucket")
    within: list[tuple[Any, Any]] | None = (
        None
        if n_within is None
        else [
            (bindparam(f"w{i}_start", type_=BigInteger), bindparam(f"w{i}_end", type_=BigInteger))
            for i in range(n_within)
        ]
    )
    ranked = (
        select(
            bucket,
            table.c.ts,
            table.c.value,
            table.c.batch_id,
            table.c.leaf_index,
            func.row_number()
            .over(partition_by=bucket, order_by=_ranking(table, aggregation))
            .label("rn"),
        )
        .where(
            table.c.vehicle_id == bindparam("vehicle_id", type_=BigInteger),
            table.c.signal == bindparam("sid", type_=SmallInteger),
            table.c.ts >= start_ms,
            table.c.ts < bindparam("end_ms", type_=BigInteger),
            *([_within(table.c.ts, within)] if within is not None else []),
        )
        .subquery()
    )
    statement = (
        select(ranked.c.bucket, ranked.c.ts, ranked.c.value, ranked.c.batch_id, ranked.c.leaf_index)
        .where(ranked.c.rn == 1)
        .order_by(ranked.c.bucket)
    )
    compiled = statement.compile(dialect=dialect)
    order = compiled.positiontup if compiled.positional else None
    fixed = {k: v for k, v in compiled.params.items() if v is not None}
    return compiled.string, None if order is None else tuple(order), fixed


def latest_values(
    conn: Connection,
    vehicle_id: int,
    signal_names: Sequence[str] | None = None,
    before_ms: int | None = None,
    *,
    within: WithinBySignal | None = None,
) -> dict[str, Reading]:
    """Each signal's most recent reading for a vehicle.

    Args:
        conn: A connection to the index.
        vehicle_id: The vehicle.
        signal_names: The signals to look at; None for every signal ever loaded.
        before_ms: Only readings before this time (exclusive), e.g. the end of the caller's
            access; None for no bound.
        within: Per signal, only readings inside these intervals (a signal absent or with
            no interval: none); None for no such bound.

    Returns:
        Signal name -> its latest reading; signals without a reading are absent.
    """
    names = known_signals(conn) if signal_names is None else list(signal_names)
    if within is not None:
        for spans in within.values():
            _check_within(spans)
        names = [n for n in names if within.get(n)]
    ids = signal_ids(conn, names)
    names_by_id = {sid: name for name, sid in ids.items()}
    out: dict[str, Reading] = {}
    for table, text in ((readings, False), (readings_text, True)):
        parts = []
        for name, sid in sorted(ids.items()):
            if is_text_signal(name) != text:
                continue
            cond = [table.c.vehicle_id == vehicle_id, table.c.signal == sid]
            if before_ms is not None:
                cond.append(table.c.ts < before_ms)
            if within is not None:
                spans = within[name]
                cond.append(table.c.ts >= spans[0][0])
                cond.append(_within(table.c.ts, spans))
            one = (
                select(
                    table.c.signal, table.c.ts, table.c.value, table.c.batch_id, table.c.leaf_index
                )
                .where(*cond)
                .order_by(table.c.ts.desc(), table.c.batch_id.desc(), table.c.leaf_index.desc())
                .limit(1)
                .subquery()
            )
            parts.append(select(one))
        if not parts:
            continue
        query = parts[0] if len(parts) == 1 else union_all(*parts)
        for r in conn.execute(query):
            out[names_by_id[int(r.signal)]] = Reading(
                int(r.ts), r.value, int(r.batch_id), int(r.leaf_index)
            )
    return out


# -------------------------------------------------------------------------------------------
# trips and charging sessions
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trip:
    """A drive: activity (ignition on or moving) without a long gap or an ignition-off.

    Attributes:
        start_ms: First active reading, unix ms.
        end_ms: Last active reading, unix ms.
        max_speed_kmh: Highest speed reading in the trip, None without speed readings.
        avg_speed_kmh: Mean of the speed readings in the trip, None without them.
        distance_km: Odometer at the end minus at the start, None without odometer readings.
    """

    start_ms: int
    end_ms: int
    max_speed_kmh: float | None
    avg_speed_kmh: float | None
    distance_km: float | None

    @property
    def duration_s(self) -> float:
        """Length of the trip in seconds."""
        return (self.end_ms - self.start_ms) / 1000


def _readings_within(
    conn: Connection,
    vehicle_id: int,
    signal: str,
    start_ms: int,
    end_ms: int,
    within: WithinBySignal | None,
) -> list[Reading]:
    spans = None if within is None else within.get(signal, ())
    return raw_readings(conn, vehicle_id, signal, start_ms, end_ms, within=spans)


def _series_in(points: Sequence[Reading], start: int, end: int) -> list[float]:
    return [float(p.value) for p in points if start <= p.ts <= end]


def trips(
    conn: Connection,
    vehicle_id: int,
    start_ms: int,
    end_ms: int,
    *,
    gap_s: float = 300,
    min_duration_s: float = 240,
    within: WithinBySignal | None = None,
) -> list[Trip]:
    """Segment a vehicle's readings into trips.

    A reading is active when `Vehicle.Speed` > 0 or `Vehicle.LowVoltageSystemState` is ON or
    START; an OFF or LOCK state ends a trip. Active readings at most `gap_s` apart form one
    trip, kept if it lasts at least `min_duration_s`.

    Args:
        conn: A connection to the index.
        vehicle_id: The vehicle.
        start_ms: Range start, unix ms, inclusive.
        end_ms: Range end, unix ms, exclusive.
        gap_s: Longest pause inside a trip, seconds (default 300).
        min_duration_s: Shortest trip kept, seconds (default 240).
        within: Per signal (speed, ignition state, odometer), only readings inside these
            intervals are used (a signal absent: none of its readings); None for no bound.

    Returns:
        The trips in time order.
    """
    _check_range(start_ms, end_ms)
    if gap_s <= 0 or min_duration_s < 0:
        raise InvalidTelemetryQuery("gap_s/min_duration_s", "gap must be > 0, minimum >= 0")
    speed, ignition, odometer = (
        _readings_within(conn, vehicle_id, name, start_ms, end_ms, within)
        for name in (SPEED, IGNITION, ODOMETER)
    )
    marks: list[tuple[int, bool | None]] = [(r.ts, float(r.value) > 0 or None) for r in speed]
    for r in ignition:
        state = True if r.value in IGNITION_ON else False if r.value in IGNITION_OFF else None
        marks.append((r.ts, state))
    # At one instant an ignition-off wins over motion (False sorts before True).
    marks.sort(key=lambda m: (m[0], m[1] is not False))
    out = []
    for a, b in segments(marks, int(gap_s * 1000), int(min_duration_s * 1000)):
        speeds = _series_in(speed, a, b)
        odo = _series_in(odometer, a, b)
        out.append(
            Trip(
                a,
                b,
                max(speeds) if speeds else None,
                sum(speeds) / len(speeds) if speeds else None,
                odo[-1] - odo[0] if odo else None,
            )
        )
    return out


@dataclass(frozen=True)
class ChargingSession:
    """A run of `IsCharging` true readings.

    Attributes:
        start_ms: First charging reading, unix ms.
        end_ms: Last charging reading, unix ms.
        soc_start: State of charge (percent) at the first reading in the session, or None.
        soc_end: State of charge at the last reading in the session, or None.
        max_power_kw: Highest `Charging.Power` in the session, or None.
    """

    start_ms: int
    end_ms: int
    soc_start: float | None
    soc_end: float | None
    max_power_kw: float | None

    @property
    def soc_added(self) -> float | None:
        """Percentage points of charge added, if the state of charge was reported."""
        if self.soc_start is None or self.soc_end is None:
            return None
        return self.soc_end - self.soc_start


def charging_sessions(
    conn: Connection,
    vehicle_id: int,
    start_ms: int,
    end_ms: int,
    *,
    gap_s: float = 300,
    min_duration_s: float = 60,
    within: WithinBySignal | None = None,
) -> list[ChargingSession]:
    """A vehicle's charging sessions: `Charging.IsCharging` true readings, split by false ones
    and by gaps longer than `gap_s`, kept if they last at least `min_duration_s`.

    `within` bounds each signal's readings (charging state, state of charge, charging power)
    to its intervals, as in `trips`.

    Returns:
        The sessions in time order.
    """
    _check_range(start_ms, end_ms)
    if gap_s <= 0 or min_duration_s < 0:
        raise InvalidTelemetryQuery("gap_s/min_duration_s", "gap must be > 0, minimum >= 0")
    charging, soc, power = (
        _readings_within(conn, vehicle_id, name, start_ms, end_ms, within)
        for name in (IS_CHARGING, SOC, CHARGE_POWER)
    )
    marks: list[tuple[int, bool | None]] = [(r.ts, float(r.value) != 0) for r in charging]
    marks.sort(key=lambda m: (m[0], m[1] is not False))
    out = []
    for a, b in segments(marks, int(gap_s * 1000), int(min_duration_s * 1000)):
        levels = _series_in(soc, a, b)
        powers = _series_in(power, a, b)
        out.append(
            ChargingSession(
                a,
                b,
                levels[0] if levels else None,
                levels[-1] if levels else None,
                max(powers) if powers else None,
            )
        )
    return out


# -------------------------------------------------------------------------------------------
# proofs
# -------------------------------------------------------------------------------------------


Leaf = tuple[str, int, int, int, int, bytes, bytes]


@dataclass(frozen=True)
class BundleProof:
    """Everything needed to check a bundle against the chain.

    `AttestationAnchor.verifyReading(batch_id, leaf, proof)` returns true for it; the wire
    form decodes (`protocol.bundle.decode_signed_bundle`) to the bundle whose device
    signature is `signature` and whose readings include the reading asked about.

    Attributes:
        batch_id: The anchored batch.
        leaf_index: The bundle's index in the batch content.
        wire: The signed bundle's wire form (CBOR).
        signature: The device's EIP-712 signature (65 bytes).
        leaf: `(device, vehicleId, sequence, windowStart, windowEnd, dataHash, sigHash)`.
        proof: The Merkle path from the leaf to the root.
        root: The batch root anchored on-chain.
        cid: The batch content's CID.
        tx_hash: The anchoring transaction.
        block_number: Its block.
        facts: What a disclosure decision needs of the bundle, as stored with it (None for a
            row stored without them: `decide` reads the wire form).
    """

    batch_id: int
    leaf_index: int
    wire: bytes
    signature: bytes
    leaf: Leaf
    proof: list[bytes]
    root: bytes
    cid: str
    tx_hash: str
    block_number: int
    facts: BundleFacts | None = None


@dataclass(frozen=True)
class ReadingProof:
    """A reading and the proof of the bundle that carries it.

    Attributes:
        vehicle_id: The vehicle.
        signal: The VSS name.
        reading: The reading (time, value, batch, leaf).
        bundle: The bundle's proof.
    """

    vehicle_id: int
    signal: str
    reading: Reading
    bundle: BundleProof


_TREES: OrderedDict[tuple[int, bytes], StandardMerkleTree] = OrderedDict()
_TREES_LOCK = threading.Lock()
_TREE_CACHE_SIZE: Final = 64


#: A bundle's stored columns its Merkle leaf is made of (`_leaf_of`'s arguments, in order).
_LEAF_COLUMNS: Final = (
    bundles_index.c.device,
    bundles_index.c.vehicle_id,
    bundles_index.c.sequence,
    bundles_index.c.window_start,
    bundles_index.c.window_end,
    bundles_index.c.data_hash,
    bundles_index.c.signature,
)


def _batch_tree(conn: Connection, batch_id: int, root: bytes) -> StandardMerkleTree:
    """The batch's tree rebuilt from its stored leaves (cached by id and root)."""
    key = (batch_id, root)
    with _TREES_LOCK:
        tree = _TREES.get(key)
        if tree is not None:
            _TREES.move_to_end(key)
            return tree
    rows = conn.execute(
        select(*_LEAF_COLUMNS)
        .where(bundles_index.c.batch_id == batch_id)
        .order_by(bundles_index.c.leaf_index)
    )
    leaves: list[Leaf] = [_leaf(r) for r in rows]
    tree = StandardMerkleTree.of(leaves, BUNDLE_LEAF_ENCODING)
    if tree.root != root:  # the stored rows were altered: refuse to serve a proof
        raise RuntimeError(f"batch {batch_id}: stored leaves do not rebuild the anchored root")
    with _TREES_LOCK:
        _TREES[key] = tree
        while len(_TREES) > _TREE_CACHE_SIZE:
            _TREES.popitem(last=False)
    return tree


def _leaf(r: Any) -> Leaf:
    return _leaf_of(
        r.device, r.vehicle_id, r.sequence, r.window_start, r.window_end, r.data_hash, r.signature
    )


def _leaf_of(
    device: Any, vehicle: Any, seq: Any, start: Any, end: Any, data_hash: Any, signature: Any
) -> Leaf:
    """A bundle's Merkle leaf from its stored columns."""
    return (
        str(device),
        int(vehicle),
        int(seq),
        int(start),
        int(end),
        bytes(data_hash),
        keccak256(bytes(signature)),
    )


def bundle_proof(conn: Connection, batch_id: int, leaf_index: int) -> BundleProof:
    """The proof of bundle `leaf_index` of a loaded batch.

    Raises:
        LookupError: the batch is not loaded or has no such bundle.
    """
    found = bundle_proofs(conn, [(batch_id, leaf_index)]).get((batch_id, leaf_index))
    if found is None:
        raise LookupError(f"no bundle {leaf_index} in a loaded batch {batch_id}")
    return found


def bundle_proofs(
    conn: Connection, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], BundleProof]:
    """The proofs of bundles (batch, leaf index) of loaded batches, read in one statement.

    A key with no such bundle in a loaded batch is absent from the answer.
    """
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows: Iterable[Sequence[Any]]
    if conn.dialect.name == "postgresql":
        # One statement shape for any number of keys, prepared once: a list of pairs in an
        # IN clause is planned anew each time (about 0.35 ms for 24 keys).
        params = {"batches": [b for b, _ in wanted], "leaves": [i for _, i in wanted]}
        rows = _driver_rows(conn, _BUNDLES_BY_KEY_PG, None, params)
    else:
        batch, leaf = bundles_index.c.batch_id, bundles_index.c.leaf_index
        match = (
            (batch == wanted[0][0]) & (leaf == wanted[0][1])
            if len(wanted) == 1
            else tuple_(batch, leaf).in_(wanted)
        )
        rows = conn.execute(
            select(*_BUNDLE_PROOF_COLUMNS)
            .join(batches, batches.c.id == bundles_index.c.batch_id)
            .where(match)
        )
    out: dict[tuple[int, int], BundleProof] = {}
    for batch_id, leaf_index, device, vehicle, seq, start, end, data_hash, sig, wire, *more in rows:
        root, cid, tx_hash, block_number, facts = bytes(more[0]), *more[1:]
        key = (int(batch_id), int(leaf_index))
        out[key] = BundleProof(
            batch_id=key[0],
            leaf_index=key[1],
            wire=bytes(wire),
            signature=bytes(sig),
            leaf=_leaf_of(device, vehicle, seq, start, end, data_hash, sig),
            proof=_batch_tree(conn, key[0], root).proof(key[1]),
            root=root,
            cid=cid,
            tx_hash=tx_hash,
            block_number=int(block_number),
            facts=None if facts is None else BundleFacts.decode(facts),
        )
    return out


#: `bundle_proofs`' columns, in the order it reads them.
_BUNDLE_PROOF_COLUMNS: Final = (
    bundles_index.c.batch_id,
    bundles_index.c.leaf_index,
    *_LEAF_COLUMNS,
    bundles_index.c.wire,
    batches.c.root,
    batches.c.cid,
    batches.c.tx_hash,
    batches.c.block_number,
    bundles_index.c.disclosure,
)
_BUNDLES_BY_KEY_PG: Final = (
    "SELECT "
    + ", ".join(f"{'b' if c.table is batches else 'i'}.{c.name}" for c in _BUNDLE_PROOF_COLUMNS)
    + " FROM unnest(%(batches)s::bigint[], %(leaves)s::integer[]) AS k(batch_id, leaf_index) "
    "JOIN bundles_index AS i ON i.batch_id = k.batch_id AND i.leaf_index = k.leaf_index "
    "JOIN batches AS b ON b.id = i.batch_id"
)


def reading_proof(conn: Connection, vehicle_id: int, signal: str, ts: int) -> ReadingProof:
    """The proof of a served reading: its bundle, signature, Merkle path, root and anchor tx.

    When several bundles carry a reading of the signal at `ts`, the first by (batch, leaf).

    Raises:
        ReadingNotFound: no served reading of `signal` for the vehicle at `ts`.
    """
    found = raw_readings(conn, vehicle_id, signal, ts, ts + 1, limit=1)
    if not found:
        raise ReadingNotFound(vehicle_id, signal, ts)
    return proof_of_reading(conn, vehicle_id, signal, found[0])


def proof_of_reading(
    conn: Connection, vehicle_id: int, signal: str, reading: Reading
) -> ReadingProof:
    """The proof of a reading already read from the index (its batch and leaf known)."""
    return ReadingProof(
        vehicle_id, signal, reading, bundle_proof(conn, reading.batch_id, reading.leaf_index)
    )
