"""`/vehicles/{id}/...`: verified telemetry (series, latest values, raw readings), checked
signal by signal against rights; trips and charging sessions are in `telemetry_sessions`,
proofs in `telemetry_proofs`.

Every route needs a signed-in caller. Its rights on the vehicle (`indexer.rights`: ownership
periods, a live grant, live licences of products the vehicle was opted in to) give, per
privilege, the times it may read; each requested signal is served only inside the times of its
privilege. A request of several signals answers the covered ones and lists the others under
`withheld` with the privilege they lack; a request of which nothing is covered is a 403
problem naming the missing privileges (`missing_scopes`) and the signals. Times are unix ms,
ranges `[start, end)`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from operator import itemgetter
from typing import Annotated, Any, Final, Literal

import anyio
import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from indexer.api.access import privilege_name, split
from indexer.api.deps import (
    MAX_MS,
    Access,
    DbConn,
    End,
    SignalName,
    SignedIn,
    Start,
    VehicleId,
    db_limiter,
    get_read_engine_of,
    get_rights_cache,
)
from indexer.api.encoding import encode_json, finite
from indexer.api.latest import LatestValuesOut, latest_out
from indexer.api.models import (
    COVERED_DOC,
    VALUE_DOC,
    ReadingOut,
    WithheldOut,
    reading_out,
)
from indexer.api.pagination import Keyset, Paging
from indexer.api.params import as_problem, check_known, check_window, unique
from indexer.api.problems import problem_responses
from indexer.queries import (
    Aggregation,
    SeriesPoint,
    check_series_args,
    is_text_signal,
    known_signals,
    raw_readings,
    series_rows,
    signal_series,
)
from indexer.rights import Coverage, Intervals
from indexer.telemetry import readings

#: Default width of a series interval: one hour.
DEFAULT_INTERVAL_MS: Final = 3_600_000
#: Most signals one request may name.
MAX_SIGNALS: Final = 64

router = APIRouter(prefix="/vehicles", tags=["telemetry"])

IntervalMs = Annotated[
    int, Query(ge=1, le=MAX_MS, description="Interval width in ms; intervals align on `start`")
]
Agg = Annotated[
    Literal["avg", "min", "max", "first", "last"] | None,
    Query(description="Aggregation per interval; default avg (last for text signals)"),
]
SignalList = Annotated[
    list[str],
    Query(
        alias="signal",
        min_length=1,
        max_length=MAX_SIGNALS,
        description="VSS names; repeat the parameter for several signals",
    ),
]

# -------------------------------------------------------------------------------------------
# response models
# -------------------------------------------------------------------------------------------


class PointOut(BaseModel):
    """One interval of a series."""

    t: int = Field(description="Interval start, unix ms")
    value: float | str = Field(description="The interval's aggregate; " + VALUE_DOC)
    count: int = Field(description="Readings in the interval")


class SignalSeriesOut(BaseModel):
    """One signal over a time range, aggregated per interval, within the caller's rights."""

    vehicle_id: int = Field(description="The vehicle")
    signal: str = Field(description="VSS name")
    privilege: str = Field(description="The privilege that reads the signal")
    start: int = Field(description="Range start, unix ms")
    end: int = Field(description="Range end, unix ms")
    interval: int = Field(description="Interval width, ms")
    agg: str = Field(description="Aggregation")
    points: list[PointOut] = Field(description="Non-empty intervals, oldest first")
    covered: list[tuple[int, int]] = Field(description=COVERED_DOC)


class SeriesEntryOut(BaseModel):
    """One signal of a multi-signal series."""

    signal: str = Field(description="VSS name")
    privilege: str = Field(description="The privilege that reads the signal")
    agg: str = Field(description="Aggregation")
    points: list[PointOut] = Field(description="Non-empty intervals, oldest first")
    covered: list[tuple[int, int]] = Field(description=COVERED_DOC)


class SeriesOut(BaseModel):
    """Several signals over a time range: the covered ones, and the withheld ones named."""

    vehicle_id: int = Field(description="The vehicle")
    start: int = Field(description="Range start, unix ms")
    end: int = Field(description="Range end, unix ms")
    interval: int = Field(description="Interval width, ms")
    signals: list[SeriesEntryOut] = Field(description="The covered signals, in request order")
    withheld: list[WithheldOut] = Field(description="The signals your rights do not cover")


class ReadingsPageOut(BaseModel):
    """One page of a signal's raw readings, oldest first."""

    vehicle_id: int = Field(description="The vehicle")
    signal: str = Field(description="VSS name")
    privilege: str = Field(description="The privilege that reads the signal")
    start: int = Field(description="Range start, unix ms")
    end: int = Field(description="Range end, unix ms")
    covered: list[tuple[int, int]] = Field(description=COVERED_DOC)
    items: list[ReadingOut] = Field(description="At most `limit` readings")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


def _points(points: Sequence[SeriesPoint]) -> list[dict[str, Any]]:
    return [{"t": p.bucket_start, "value": p.value, "count": p.count} for p in points]


def _json(body: dict[str, Any]) -> Response:
    """`body` as a JSON response, encoded straight from plain values by orjson: a series can
    hold 100,000 points, and building and re-validating a model per point would cost more than
    the query (the route's `response_model` still documents the shape, which the tests check).

    Raises:
        TypeError: a value JSON cannot hold exactly (NaN, infinity, an integer past 64 bits),
            as `json` with `allow_nan=False` would refuse it.
    """
    return Response(encode_json(body), media_type="application/json")


def _default_agg(signal: str, agg: Aggregation | None) -> Aggregation:
    if agg is not None:
        return agg
    return "last" if is_text_signal(signal) else "avg"


# -------------------------------------------------------------------------------------------
# series
# -------------------------------------------------------------------------------------------

_RESPONSES: Final = problem_responses(400, 401, 403, 404)


@router.get(
    "/{vehicle_id}/signals/{signal}",
    response_model=SignalSeriesOut,
    summary="One signal over a time range, aggregated per interval",
    responses=_RESPONSES,
)
async def get_signal_series(
    request: Request,
    vehicle_id: VehicleId,
    signal: SignalName,
    caller: SignedIn,
    start: Start,
    end: End,
    interval: IntervalMs = DEFAULT_INTERVAL_MS,
    agg: Agg = None,
) -> Response:
    """The signal's readings in `[start, end)` that your rights cover, aggregated per interval.

    A 403 problem names the missing privilege when your rights cover none of the range.
    """
    # The hot route: its database work (rights, then the series) runs in one worker thread
    # instead of one per dependency, in autocommit, and its caller is one dependency.
    engine = get_read_engine_of(request)
    cache = get_rights_cache(request)
    now_ms = int(request.app.state.clock() * 1000)

    def work() -> Response:
        with engine.connect() as conn:
            coverage = cache.coverage(conn, vehicle_id, caller, now_ms)
            return _signal_series(conn, coverage, vehicle_id, signal, start, end, interval, agg)

    return await anyio.to_thread.run_sync(work, limiter=db_limiter())


def _signal_series(
    conn: Connection,
    coverage: Coverage,
    vehicle_id: int,
    signal: str,
    start: int,
    end: int,
    interval: int,
    agg: Aggregation | None,
) -> Response:
    check_known(conn, [signal])
    aggregation = _default_agg(signal, agg)
    with as_problem():
        check_series_args([signal], start, end, interval, aggregation)
    covered, _ = split(coverage, [signal], start, end)
    spans = covered[signal]
    with as_problem():
        series = series_rows(
            conn, vehicle_id, [signal], start, end, interval, aggregation, within=spans
        )
    points = series[signal]
    if not is_text_signal(signal):
        finite(map(itemgetter(1), points))
    return _json(
        {
            "vehicle_id": vehicle_id,
            "signal": signal,
            "privilege": privilege_name(signal),
            "start": start,
            "end": end,
            "interval": interval,
            "agg": aggregation,
            "points": [{"t": t, "value": v, "count": n} for t, v, n in points],
            "covered": spans,
        }
    )


@router.get(
    "/{vehicle_id}/series",
    response_model=SeriesOut,
    summary="Several signals over a time range, aggregated per interval",
    responses=_RESPONSES,
)
def get_series(
    vehicle_id: VehicleId,
    coverage: Access,
    conn: DbConn,
    signal: SignalList,
    start: Start,
    end: End,
    interval: IntervalMs = DEFAULT_INTERVAL_MS,
    agg: Agg = None,
) -> Response:
    """The covered signals' readings, aggregated per interval; the others under `withheld`.

    Each signal is served over the times its own privilege covers (`covered`). A 403 problem
    names the missing privileges when your rights cover none of the signals.
    """
    names = unique(signal)
    check_known(conn, names)
    with as_problem():
        for name in names:
            check_series_args([name], start, end, interval, _default_agg(name, agg))
    covered, withheld = split(coverage, names, start, end)
    groups: dict[tuple[Intervals, Aggregation], list[str]] = defaultdict(list)
    for name, spans in covered.items():
        groups[(spans, _default_agg(name, agg))].append(name)
    points: dict[str, list[dict[str, Any]]] = {}
    for (spans, aggregation), members in groups.items():
        with as_problem():
            got = signal_series(
                conn, vehicle_id, members, start, end, interval, aggregation, within=spans
            )
        points.update({name: _points(got[name]) for name in members})
    return _json(
        {
            "vehicle_id": vehicle_id,
            "start": start,
            "end": end,
            "interval": interval,
            "signals": [
                {
                    "signal": name,
                    "privilege": privilege_name(name),
                    "agg": _default_agg(name, agg),
                    "points": points[name],
                    "covered": covered[name],
                }
                for name in covered
            ],
            "withheld": [w.model_dump() for w in withheld],
        }
    )


@router.get(
    "/{vehicle_id}/latest",
    response_model=LatestValuesOut,
    summary="Each signal's latest value you may read",
    responses=_RESPONSES,
)
def get_latest(
    vehicle_id: VehicleId,
    coverage: Access,
    conn: DbConn,
    signal: Annotated[
        list[str] | None,
        Query(
            max_length=MAX_SIGNALS,
            description="VSS names (repeat the parameter); default: every signal loaded",
        ),
    ] = None,
) -> LatestValuesOut:
    """The latest reading of each signal inside the times your rights cover.

    Without `signal`, every signal the index has loaded is looked at, and the ones your rights
    do not cover are listed under `withheld`.
    """
    names = unique(signal) if signal else known_signals(conn)
    check_known(conn, names)
    return latest_out(conn, vehicle_id, coverage, names)


READINGS: Final = Keyset(
    "vehicle-readings", readings.c.ts, readings.c.batch_id, readings.c.leaf_index
)


@router.get(
    "/{vehicle_id}/readings",
    response_model=ReadingsPageOut,
    summary="A signal's raw readings, each with its batch and leaf",
    responses=_RESPONSES,
)
def get_readings(
    vehicle_id: VehicleId,
    coverage: Access,
    conn: DbConn,
    paging: Paging,
    signal: Annotated[
        str,
        Query(min_length=1, max_length=256, description="VSS name", examples=["Vehicle.Speed"]),
    ],
    start: Start,
    end: End,
) -> ReadingsPageOut:
    """The signal's verified readings in `[start, end)` that your rights cover, oldest first.

    Each reading names its batch and leaf, whose proof is at
    `/vehicles/{id}/signals/{signal}/readings/{t}/proof`.
    """
    check_known(conn, [signal])
    check_window(start, end)
    after = READINGS.decode(paging.cursor) if paging.cursor is not None else None
    covered, _ = split(coverage, [signal], start, end)
    spans = covered[signal]
    with as_problem():
        rows = raw_readings(
            conn,
            vehicle_id,
            signal,
            start,
            end,
            paging.limit + 1,
            within=spans,
            after=None if after is None else (int(after[0]), int(after[1]), int(after[2])),
        )
    kept = rows[: paging.limit]
    more = len(rows) > paging.limit
    last = kept[-1] if kept else None
    return ReadingsPageOut(
        vehicle_id=vehicle_id,
        signal=signal,
        privilege=privilege_name(signal),
        start=start,
        end=end,
        covered=list(spans),
        items=[reading_out(r) for r in kept],
        next_cursor=(
            READINGS.encode((last.ts, last.batch_id, last.leaf_index))
            if more and last is not None
            else None
        ),
    )
