"""`/vehicles/{id}/...`: verified telemetry and proofs, checked signal by signal against rights.

Every route needs a signed-in caller. Its rights on the vehicle (`indexer.rights`: ownership
periods, a live grant, live licences of products the vehicle was opted in to) give, per
privilege, the times it may read; each requested signal is served only inside the times of its
privilege. A request of several signals answers the covered ones and lists the others under
`withheld` with the privilege they lack; a request of which nothing is covered is a 403
problem naming the missing privileges (`missing_scopes`) and the signals. Times are unix ms,
ranges `[start, end)`.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, Final, Literal

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from indexer.api.deps import Caller, Clock, DbConn, db_limiter, get_engine_of
from indexer.api.pagination import Keyset, Paging
from indexer.api.problems import problem_responses
from indexer.disclosure import decide
from indexer.exceptions import (
    BadTelemetryQuery,
    InvalidTelemetryQuery,
    PrivilegeMissing,
    ReadingNotFound,
    ReadingNotServed,
    UnknownSignalName,
)
from indexer.queries import (
    CHARGE_POWER,
    IGNITION,
    IS_CHARGING,
    ODOMETER,
    SOC,
    SPEED,
    Aggregation,
    Reading,
    SeriesPoint,
    charging_sessions,
    check_series_args,
    is_text_signal,
    known_signals,
    latest_values,
    raw_readings,
    reading_proof,
    signal_ids,
    signal_series,
    trips,
)
from indexer.rights import (
    Coverage,
    Intervals,
    RightsCache,
    clip,
    contains,
    intersect,
    signal_privilege,
)
from indexer.telemetry import readings
from protocol.disclosure import DisclosedBundle
from protocol.vss import CATALOG

#: Largest id of a vehicle (the index stores ids as 64-bit integers).
INT64_MAX: Final = (1 << 63) - 1
#: Largest time accepted, unix ms (the largest integer a JSON number holds exactly).
MAX_MS: Final = (1 << 53) - 1
#: Default width of a series interval: one hour.
DEFAULT_INTERVAL_MS: Final = 3_600_000
#: Most signals one request may name.
MAX_SIGNALS: Final = 64

router = APIRouter(prefix="/vehicles", tags=["telemetry"])
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

VehicleId = Annotated[int, Path(ge=0, le=INT64_MAX, description="Vehicle token id")]
SignalName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9_.]+$",
        description="COVESA VSS name, e.g. Vehicle.Speed",
        examples=["Vehicle.Speed"],
    ),
]
Start = Annotated[int, Query(ge=0, le=MAX_MS, description="Range start, unix ms, inclusive")]
End = Annotated[int, Query(ge=1, le=MAX_MS, description="Range end, unix ms, exclusive")]
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

_COVERED = "The times served, `[from, to)` pairs in unix ms (the rest is outside your rights)"
_VALUE = "A number (booleans as 0/1) or, for text signals, text"


class PointOut(BaseModel):
    """One interval of a series."""

    t: int = Field(description="Interval start, unix ms")
    value: float | str = Field(description="The interval's aggregate; " + _VALUE)
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
    covered: list[tuple[int, int]] = Field(description=_COVERED)


class WithheldOut(BaseModel):
    """A requested signal of which the caller's rights cover nothing."""

    signal: str = Field(description="VSS name")
    missing_scope: str = Field(description="The privilege it needs")


class SeriesEntryOut(BaseModel):
    """One signal of a multi-signal series."""

    signal: str = Field(description="VSS name")
    privilege: str = Field(description="The privilege that reads the signal")
    agg: str = Field(description="Aggregation")
    points: list[PointOut] = Field(description="Non-empty intervals, oldest first")
    covered: list[tuple[int, int]] = Field(description=_COVERED)


class SeriesOut(BaseModel):
    """Several signals over a time range: the covered ones, and the withheld ones named."""

    vehicle_id: int = Field(description="The vehicle")
    start: int = Field(description="Range start, unix ms")
    end: int = Field(description="Range end, unix ms")
    interval: int = Field(description="Interval width, ms")
    signals: list[SeriesEntryOut] = Field(description="The covered signals, in request order")
    withheld: list[WithheldOut] = Field(description="The signals your rights do not cover")


class ReadingOut(BaseModel):
    """One verified reading and the bundle that carries it."""

    t: int = Field(description="Reading time, unix ms")
    value: float | str = Field(description=_VALUE)
    batch_id: int = Field(description="The anchored batch")
    leaf_index: int = Field(description="The bundle's index in the batch")


class LatestOut(BaseModel):
    """A signal's most recent reading within the caller's rights."""

    signal: str = Field(description="VSS name")
    t: int = Field(description="Reading time, unix ms")
    value: float | str = Field(description=_VALUE)
    batch_id: int = Field(description="The anchored batch")
    leaf_index: int = Field(description="The bundle's index in the batch")


class LatestValuesOut(BaseModel):
    """Each signal's latest value the caller may read."""

    vehicle_id: int = Field(description="The vehicle")
    at: int = Field(description="The API's time of the answer, unix ms")
    values: list[LatestOut] = Field(description="Covered signals with a reading")
    withheld: list[WithheldOut] = Field(description="The signals your rights do not cover")


class ReadingsPageOut(BaseModel):
    """One page of a signal's raw readings, oldest first."""

    vehicle_id: int = Field(description="The vehicle")
    signal: str = Field(description="VSS name")
    privilege: str = Field(description="The privilege that reads the signal")
    start: int = Field(description="Range start, unix ms")
    end: int = Field(description="Range end, unix ms")
    covered: list[tuple[int, int]] = Field(description=_COVERED)
    items: list[ReadingOut] = Field(description="At most `limit` readings")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


class TripOut(BaseModel):
    """A drive: activity without a long gap or an ignition-off."""

    start: int = Field(description="First active reading, unix ms")
    end: int = Field(description="Last active reading, unix ms")
    duration_s: float = Field(description="Seconds from start to end")
    max_speed_kmh: float | None = Field(description="Highest speed, km/h")
    avg_speed_kmh: float | None = Field(description="Mean of the speed readings, km/h")
    distance_km: float | None = Field(
        description="Odometer difference, km; null without odometer readings or rights"
    )


class TripsOut(BaseModel):
    """A vehicle's trips over a time range, within the caller's rights."""

    vehicle_id: int = Field(description="The vehicle")
    start: int = Field(description="Range start, unix ms")
    end: int = Field(description="Range end, unix ms")
    gap_s: float = Field(description="Longest pause inside a trip, s")
    min_s: float = Field(description="Shortest trip kept, s")
    covered: list[tuple[int, int]] = Field(description=_COVERED)
    trips: list[TripOut] = Field(description="Trips, oldest first")
    withheld: list[WithheldOut] = Field(description="Signals left out (their fields are null)")


class ChargingSessionOut(BaseModel):
    """A run of charging readings."""

    start: int = Field(description="First charging reading, unix ms")
    end: int = Field(description="Last charging reading, unix ms")
    duration_s: float = Field(description="Seconds from start to end")
    soc_start: float | None = Field(description="State of charge at the start, percent")
    soc_end: float | None = Field(description="State of charge at the end, percent")
    soc_added: float | None = Field(description="Percentage points added")
    max_power_kw: float | None = Field(description="Highest charging power, kW")


class ChargingSessionsOut(BaseModel):
    """A vehicle's charging sessions over a time range, within the caller's rights."""

    vehicle_id: int = Field(description="The vehicle")
    start: int = Field(description="Range start, unix ms")
    end: int = Field(description="Range end, unix ms")
    gap_s: float = Field(description="Longest pause inside a session, s")
    min_s: float = Field(description="Shortest session kept, s")
    covered: list[tuple[int, int]] = Field(description=_COVERED)
    sessions: list[ChargingSessionOut] = Field(description="Sessions, oldest first")
    withheld: list[WithheldOut] = Field(description="Signals left out (their fields are null)")


class LeafOut(BaseModel):
    """The Merkle leaf of a bundle, the `leaf` argument of `AttestationAnchor.verifyReading`."""

    device: str = Field(description="The signing device, EIP-55 address")
    vehicle_id: int = Field(description="The vehicle")
    sequence: int = Field(description="The device's bundle sequence")
    window_start: int = Field(description="Bundle window start, unix ms")
    window_end: int = Field(description="Bundle window end, unix ms")
    data_hash: str = Field(
        description="Schema 1: keccak256 of the readings' CBOR; schema 2: the root of the "
        "bundle's signal tree; 0x hex"
    )
    signature_hash: str = Field(description="keccak256 of the device signature, 0x hex")


class BatchOut(BaseModel):
    """The anchored batch holding the bundle."""

    id: int = Field(description="On-chain batch id")
    root: str = Field(description="Merkle root anchored on-chain, 0x hex")
    cid: str = Field(description="CID of the batch content")
    tx_hash: str = Field(description="Anchoring transaction, 0x hex")
    block_number: int = Field(description="Block of the anchoring transaction")


class SignalOpeningOut(BaseModel):
    """One signal of a schema-2 bundle, opened: the `opening` argument of
    `AttestationAnchor.verifySignal` (see docs/protocol.md)."""

    name: str = Field(description="The signal's VSS name")
    salt: str = Field(description="Its secret 32-byte salt in this bundle, 0x hex")
    samples: str = Field(description="Canonical CBOR of its samples [[ts, value], ...], 0x hex")
    proof: list[str] = Field(description="Path from its leaf to the bundle's dataHash, 0x hex")


class CommitmentOut(BaseModel):
    """A signal of a schema-2 bundle as everyone may see it: its name and salted commitment."""

    name: str = Field(description="The signal's VSS name")
    commitment: str = Field(description="keccak256(salt || samples), 0x hex")


def leaf_out(leaf: tuple[str, int, int, int, int, bytes, bytes]) -> LeafOut:
    """The served form of a batch leaf."""
    device, vehicle, sequence, window_start, window_end, data_hash, sig_hash = leaf
    return LeafOut(
        device=device,
        vehicle_id=vehicle,
        sequence=sequence,
        window_start=window_start,
        window_end=window_end,
        data_hash=_hex(data_hash),
        signature_hash=_hex(sig_hash),
    )


def openings_out(opened: DisclosedBundle) -> tuple[list[CommitmentOut], list[SignalOpeningOut]]:
    """The served form of a schema-2 disclosure: every commitment, the opened signals."""
    commitments = [CommitmentOut(name=n, commitment=_hex(c)) for n, c in opened.commitments.items()]
    return commitments, [SignalOpeningOut(**o.as_json()) for o in opened.openings]


class ProofOut(BaseModel):
    """A reading with everything needed to check it against the chain.

    `verifyReading(batch.id, leaf, proof)` on `AttestationAnchor` returns true. A schema-1
    bundle is served whole: `bundle_wire` decodes (`protocol.bundle.decode_signed_bundle`) to a
    bundle holding the reading, whose EIP-712 signature `signature` recovers to `leaf.device`.
    A schema-2 bundle is served by its `opening` of the reading's signal alone:
    `verifySignal(batch.id, leaf, proof, opening)` returns true, and `commitments` names the
    bundle's other signals without their values; `bundle_wire` is sent only to a caller whose
    rights cover every signal of the bundle.
    """

    vehicle_id: int = Field(description="The vehicle")
    signal: str = Field(description="VSS name")
    reading: ReadingOut = Field(description="The reading")
    schema_version: int = Field(description="The bundle's schema: 1 (whole) or 2 (per signal)")
    bundle_wire: str | None = Field(
        description="The signed bundle's wire form (CBOR), 0x hex: schema 1 always; schema 2 "
        "only when your rights cover every signal of the bundle, else null"
    )
    signature: str = Field(description="The device's EIP-712 signature, 65 bytes, 0x hex")
    leaf_index: int = Field(description="The bundle's index in the batch")
    leaf: LeafOut = Field(description="The bundle's Merkle leaf")
    proof: list[str] = Field(description="Merkle path from the leaf to the root, 0x hex")
    batch: BatchOut = Field(description="The anchored batch")
    opening: SignalOpeningOut | None = Field(
        default=None, description="Schema 2: the reading's signal opened; null for schema 1"
    )
    commitments: list[CommitmentOut] | None = Field(
        default=None,
        description="Schema 2: every signal of the bundle, name and commitment; null for 1",
    )


# -------------------------------------------------------------------------------------------
# rights
# -------------------------------------------------------------------------------------------

_cache_lock = threading.Lock()


def get_rights_cache(request: Request) -> RightsCache:
    """The app's cache of rights facts (made on first use)."""
    state = request.app.state
    cache = getattr(state, "rights_cache", None)
    if cache is None:
        with _cache_lock:
            cache = getattr(state, "rights_cache", None)
            if cache is None:
                settings = state.settings
                cache = RightsCache(checkpoint_ttl_s=settings.rights_checkpoint_ttl_s)
                state.rights_cache = cache
    assert isinstance(cache, RightsCache)
    return cache


async def _rights_cache(request: Request) -> RightsCache:
    """`get_rights_cache` as a dependency run on the event loop (it does no I/O)."""
    return get_rights_cache(request)


def vehicle_coverage(
    vehicle_id: VehicleId,
    caller: Caller,
    conn: DbConn,
    clock: Clock,
    cache: Annotated[RightsCache, Depends(_rights_cache)],
) -> Coverage:
    """The caller's rights on the path's vehicle now.

    Raises:
        TokenRejected: no signed-in caller (401).
        VehicleNotFound: no such vehicle is indexed (404).
    """
    return cache.coverage(conn, vehicle_id, caller, int(clock() * 1000))


#: The caller's coverage of the path's vehicle.
Access = Annotated[Coverage, Depends(vehicle_coverage)]


def _privilege_name(signal: str) -> str:
    return str(signal_privilege(signal).name)


def _check_known(conn: Connection, names: Sequence[str]) -> None:
    """Raises `UnknownSignalName` for names neither in the catalog nor ever loaded."""
    extra = [n for n in names if n not in CATALOG]
    if extra:
        loaded = signal_ids(conn, extra)
        unknown = [n for n in extra if n not in loaded]
        if unknown:
            raise UnknownSignalName(unknown)


def _check_range(start: int, end: int) -> None:
    if end <= start:
        raise BadTelemetryQuery("start/end", f"[{start}, {end}) is empty; end must be after start")


@contextmanager
def _as_problem() -> Iterator[None]:
    """Turns a query's `InvalidTelemetryQuery` into the 400 problem."""
    try:
        yield
    except InvalidTelemetryQuery as err:
        raise BadTelemetryQuery(err.argument, err.reason) from err


def _split(
    coverage: Coverage, names: Sequence[str], start: int, end: int
) -> tuple[dict[str, Intervals], list[WithheldOut]]:
    """The covered signals with their covered times in `[start, end)`, and the withheld ones.

    Raises:
        PrivilegeMissing: none of `names` is covered at all.
    """
    covered: dict[str, Intervals] = {}
    withheld: list[WithheldOut] = []
    for name in names:
        spans = clip(coverage.for_signal(name), start, end)
        if spans:
            covered[name] = spans
        else:
            withheld.append(WithheldOut(signal=name, missing_scope=_privilege_name(name)))
    if names and not covered:
        _deny(coverage, withheld)
    return covered, withheld


def _deny(coverage: Coverage, withheld: Sequence[WithheldOut]) -> None:
    missing: dict[str, list[str]] = defaultdict(list)
    for w in withheld:
        missing[w.missing_scope].append(w.signal)
    raise PrivilegeMissing(coverage.vehicle_id, dict(missing))


def _unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _points(points: Sequence[SeriesPoint]) -> list[dict[str, Any]]:
    return [{"t": p.bucket_start, "value": p.value, "count": p.count} for p in points]


def _json(body: dict[str, Any]) -> Response:
    """`body` as a JSON response, serialized directly: a series can hold 100,000 points, and
    building and re-validating a model per point would cost more than the query (the route's
    `response_model` still documents the shape, which the tests check)."""
    return Response(_dumps(body), media_type="application/json")


def _default_agg(signal: str, agg: Aggregation | None) -> Aggregation:
    if agg is not None:
        return agg
    return "last" if is_text_signal(signal) else "avg"


def _reading_out(r: Reading) -> ReadingOut:
    return ReadingOut(t=r.ts, value=r.value, batch_id=r.batch_id, leaf_index=r.leaf_index)


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


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
    caller: Caller,
    clock: Clock,
    start: Start,
    end: End,
    interval: IntervalMs = DEFAULT_INTERVAL_MS,
    agg: Agg = None,
) -> Response:
    """The signal's readings in `[start, end)` that your rights cover, aggregated per interval.

    A 403 problem names the missing privilege when your rights cover none of the range.
    """
    # The hot route: its database work (rights, then the series) runs in one worker thread
    # instead of one per dependency.
    engine = get_engine_of(request)
    cache = get_rights_cache(request)
    now_ms = int(clock() * 1000)

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
    _check_known(conn, [signal])
    aggregation = _default_agg(signal, agg)
    with _as_problem():
        check_series_args([signal], start, end, interval, aggregation)
    covered, _ = _split(coverage, [signal], start, end)
    spans = covered[signal]
    with _as_problem():
        series = signal_series(
            conn, vehicle_id, [signal], start, end, interval, aggregation, within=spans
        )
    return _json(
        {
            "vehicle_id": vehicle_id,
            "signal": signal,
            "privilege": _privilege_name(signal),
            "start": start,
            "end": end,
            "interval": interval,
            "agg": aggregation,
            "points": _points(series[signal]),
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
    names = _unique(signal)
    _check_known(conn, names)
    with _as_problem():
        for name in names:
            check_series_args([name], start, end, interval, _default_agg(name, agg))
    covered, withheld = _split(coverage, names, start, end)
    groups: dict[tuple[Intervals, Aggregation], list[str]] = defaultdict(list)
    for name, spans in covered.items():
        groups[(spans, _default_agg(name, agg))].append(name)
    points: dict[str, list[dict[str, Any]]] = {}
    for (spans, aggregation), members in groups.items():
        with _as_problem():
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
                    "privilege": _privilege_name(name),
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
    names = _unique(signal) if signal else known_signals(conn)
    _check_known(conn, names)
    covered, withheld = _split(coverage, names, 0, coverage.now_ms)
    found = latest_values(conn, vehicle_id, list(covered), within=covered)
    return LatestValuesOut(
        vehicle_id=vehicle_id,
        at=coverage.now_ms,
        values=[
            LatestOut(
                signal=name,
                t=found[name].ts,
                value=found[name].value,
                batch_id=found[name].batch_id,
                leaf_index=found[name].leaf_index,
            )
            for name in covered
            if name in found
        ],
        withheld=withheld,
    )


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
    _check_known(conn, [signal])
    _check_range(start, end)
    after = READINGS.decode(paging.cursor) if paging.cursor is not None else None
    covered, _ = _split(coverage, [signal], start, end)
    spans = covered[signal]
    with _as_problem():
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
        privilege=_privilege_name(signal),
        start=start,
        end=end,
        covered=list(spans),
        items=[_reading_out(r) for r in kept],
        next_cursor=(
            READINGS.encode((last.ts, last.batch_id, last.leaf_index))
            if more and last is not None
            else None
        ),
    )


# -------------------------------------------------------------------------------------------
# trips and charging sessions
# -------------------------------------------------------------------------------------------


def _compose(
    coverage: Coverage,
    required: Sequence[str],
    optional: Sequence[str],
    start: int,
    end: int,
) -> tuple[Intervals, dict[str, Intervals], list[WithheldOut]]:
    """Times all `required` signals are covered, each signal's times within them, the withheld.

    Raises:
        PrivilegeMissing: the required signals are not all covered at a common time.
    """
    base: Intervals = ((start, end),)
    for name in required:
        base = intersect(base, coverage.for_signal(name))
    if not base:
        lacking = [n for n in required if not clip(coverage.for_signal(n), start, end)]
        _deny(
            coverage,
            [
                WithheldOut(signal=n, missing_scope=_privilege_name(n))
                for n in (lacking or required)
            ],
        )
    within = dict.fromkeys(required, base)
    withheld: list[WithheldOut] = []
    for name in optional:
        spans = intersect(base, coverage.for_signal(name))
        if spans:
            within[name] = spans
        else:
            withheld.append(WithheldOut(signal=name, missing_scope=_privilege_name(name)))
    return base, within, withheld


GapS = Annotated[
    float, Query(gt=0, le=86_400, description="Longest pause inside a trip or session, seconds")
]
MinS = Annotated[float, Query(ge=0, le=86_400 * 7, description="Shortest one kept, seconds")]


@router.get(
    "/{vehicle_id}/trips",
    response_model=TripsOut,
    summary="Trips: segments by ignition and speed",
    responses=_RESPONSES,
)
def get_trips(
    vehicle_id: VehicleId,
    coverage: Access,
    conn: DbConn,
    start: Start,
    end: End,
    gap_s: GapS = 300,
    min_s: MinS = 240,
) -> TripsOut:
    """Trips in `[start, end)`: speed > 0 or ignition on, split by gaps and ignition-off.

    Needs the privilege of speed and ignition state (DRIVING) for the times served; the
    odometer (ODOMETER) only fills `distance_km`.
    """
    _check_range(start, end)
    base, within, withheld = _compose(coverage, [SPEED, IGNITION], [ODOMETER], start, end)
    with _as_problem():
        found = trips(
            conn, vehicle_id, start, end, gap_s=gap_s, min_duration_s=min_s, within=within
        )
    return TripsOut(
        vehicle_id=vehicle_id,
        start=start,
        end=end,
        gap_s=gap_s,
        min_s=min_s,
        covered=list(base),
        trips=[
            TripOut(
                start=t.start_ms,
                end=t.end_ms,
                duration_s=t.duration_s,
                max_speed_kmh=t.max_speed_kmh,
                avg_speed_kmh=t.avg_speed_kmh,
                distance_km=t.distance_km,
            )
            for t in found
        ],
        withheld=withheld,
    )


@router.get(
    "/{vehicle_id}/charging-sessions",
    response_model=ChargingSessionsOut,
    summary="Charging sessions",
    responses=_RESPONSES,
)
def get_charging_sessions(
    vehicle_id: VehicleId,
    coverage: Access,
    conn: DbConn,
    start: Start,
    end: End,
    gap_s: GapS = 300,
    min_s: MinS = 60,
) -> ChargingSessionsOut:
    """Charging sessions in `[start, end)`: runs of `Charging.IsCharging` true.

    Needs CHARGING for the times served; state of charge (BATTERY) and charging power
    (CHARGING) only fill their fields.
    """
    _check_range(start, end)
    base, within, withheld = _compose(coverage, [IS_CHARGING], [SOC, CHARGE_POWER], start, end)
    with _as_problem():
        found = charging_sessions(
            conn, vehicle_id, start, end, gap_s=gap_s, min_duration_s=min_s, within=within
        )
    return ChargingSessionsOut(
        vehicle_id=vehicle_id,
        start=start,
        end=end,
        gap_s=gap_s,
        min_s=min_s,
        covered=list(base),
        sessions=[
            ChargingSessionOut(
                start=c.start_ms,
                end=c.end_ms,
                duration_s=(c.end_ms - c.start_ms) / 1000,
                soc_start=c.soc_start,
                soc_end=c.soc_end,
                soc_added=c.soc_added,
                max_power_kw=c.max_power_kw,
            )
            for c in found
        ],
        withheld=withheld,
    )


# -------------------------------------------------------------------------------------------
# proofs
# -------------------------------------------------------------------------------------------


@router.get(
    "/{vehicle_id}/signals/{signal}/readings/{ts}/proof",
    response_model=ProofOut,
    summary="The proof of one reading: bundle, signature, Merkle path, root, anchoring tx",
    responses=_RESPONSES,
)
def get_reading_proof(
    vehicle_id: VehicleId,
    signal: SignalName,
    ts: Annotated[int, Path(ge=0, le=MAX_MS, description="The reading's time, unix ms")],
    coverage: Access,
    conn: DbConn,
) -> ProofOut:
    """Everything needed to check the reading of `signal` at `ts` against the chain.

    Only for a reading your rights cover: a 403 `privilege-missing` problem otherwise, decided
    before anything is looked up; then a 404 when there is no such reading. A schema-2 bundle
    is served by the opening of `signal` alone (its samples and salt; the other signals as
    names and commitments), provided your rights cover every reading of `signal` in the bundle;
    the whole bundle goes only to a caller covering all of its signals. A schema-1 leaf commits
    to the bundle's whole encoding, so its proof is served only if your rights cover every
    reading of the bundle. Otherwise a 403 `bundle-not-disclosable` problem names the signals
    you may not read, never their values (`indexer.disclosure.decide`).
    """
    _check_known(conn, [signal])
    if not contains(coverage.for_signal(signal), ts):
        _deny(coverage, [WithheldOut(signal=signal, missing_scope=_privilege_name(signal))])
    try:
        found = reading_proof(conn, vehicle_id, signal, ts)
    except ReadingNotFound:
        raise ReadingNotServed(vehicle_id, signal, ts) from None
    b = found.bundle
    served = decide(b.wire, coverage, (vehicle_id, b.batch_id, b.leaf_index), wanted=[signal])
    opening: SignalOpeningOut | None = None
    commitments: list[CommitmentOut] | None = None
    if served.opened is not None:
        commitments, opened = openings_out(served.opened)
        opening = opened[0]
    return ProofOut(
        vehicle_id=vehicle_id,
        signal=signal,
        reading=_reading_out(found.reading),
        schema_version=served.signed.bundle.schema_version,
        bundle_wire=_hex(b.wire) if served.whole else None,
        signature=_hex(b.signature),
        leaf_index=b.leaf_index,
        leaf=leaf_out(b.leaf),
        proof=[_hex(p) for p in b.proof],
        batch=BatchOut(
            id=b.batch_id,
            root=_hex(b.root),
            cid=b.cid,
            tx_hash=b.tx_hash,
            block_number=b.block_number,
        ),
        opening=opening,
        commitments=commitments,
    )
