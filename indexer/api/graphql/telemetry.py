"""DIMO's Telemetry API as GraphQL at `/telemetry/query`: `signals`, `signalsLatest`,
`availableSignals`.

One field per DIMO signal (`protocol.dimo_signals.SIGNALS`), null where the platform carries
no such signal. Resolvers are thin over the REST routes' query functions (`series_rows`,
`raw_readings`, `latest_values`) and check every field, on every request, against the
caller's coverage from the rights engine (`indexer.rights`), for the time asked: a vehicle JWT
(`POST /v1/tokens/exchange`) adds nothing to what its licence holds now, it only narrows it to
its privileges. A field the caller may not read answers null with an error naming the missing
privilege. Errors carry `extensions.code`. `docs/indexer.md` ("Telemetry GraphQL") has the
limits and what differs from DIMO.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from functools import lru_cache
from statistics import median
from typing import TYPE_CHECKING, Annotated, Any, Final, NewType, TypeVar

import anyio
import strawberry
from fastapi import Request
from graphql import GraphQLError
from sqlalchemy import Connection, Engine
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.fastapi import BaseContext, GraphQLRouter
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

from apps.events import (
    HARSH_ACCELERATION,
    HARSH_BRAKING,
    HARSH_CORNERING,
    LATERAL,
    DetectorState,
    detect,
)
from indexer.api.access import compose
from indexer.api.auth import TokenClaims
from indexer.api.credentials import latest_vin, may_read_vin
from indexer.api.deps import (
    LoopConnections,
    get_read_engine_of,
    get_rights_cache,
    loop_connections,
    telemetry_db_limiter,
    token_cache,
)
from indexer.api.graphql.execution import LeanExecutor, MsgspecGraphQLRouter
from indexer.api.routes.telemetry_proofs import proof_json
from indexer.config import IndexerSettings
from indexer.exceptions import ApiProblem, IndexerError, InvalidTelemetryQuery, VehicleNotFound
from indexer.queries import (
    CHARGE_POWER,
    IGNITION,
    IS_CHARGING,
    MAX_RAW_READINGS,
    SOC,
    SPEED,
    Aggregation,
    BundleProof,
    ChargingSession,
    Reading,
    Trip,
    bundle_proofs,
    charging_sessions,
    latest_values,
    raw_readings,
    series_rows,
    series_sources,
    trips,
)
from indexer.rights import Coverage, Intervals, RightsCache, clip
from protocol.dimo_signals import (
    LOCATION_BRANCH,
    SIGNALS,
    DimoSignal,
    catalog_privilege,
    dimo_value,
)
from protocol.jwt import JwtError, JwtExpired, VehicleToken, decode_jwt, verify_vehicle_token
from protocol.privileges import (
    ALL_PRIVILEGES,
    DIMO_PRIVILEGES,
    Privilege,
    format_privileges,
    scopes_of_dimo_ids,
)
from protocol.readings import is_text_signal

__all__ = ["MAX_COST", "telemetry_router"]

_T = TypeVar("_T")

#: Most (signal field x interval) cells one query may ask for: the cost of `signals` is the
#: number of signal fields selected times the number of intervals in `[from, to)`; the cost
#: of `signalsLatest` is its number of signal fields.
MAX_COST: Final = 20_000
#: Most cells of a `signals` or `signalsLatest` query whose database work runs in the event
#: loop's own thread, when every one of them is aggregated in SQL (no MED, RAND, TOP, UNIQUE
#: or value filter, which read raw readings): 240 is ten fields over a day of hours, about
#: 8 ms of work. Handing such a query to a worker thread cost more than the query: under 300
#: queries a second with a proof each, 4.41 ms of server CPU a query against 3.4-3.48 inline,
#: and a p99 of 345.1 ms against 31.1-47.6 (docs/performance.md). A bigger query goes to the
#: worker thread, so the loop is never held for long.
INLINE_COST: Final = 240
#: Deepest selection answered (the deepest of the schema is 4: signalsLatest, field, value,
#: latitude).
MAX_DEPTH: Final = 6
#: Most aliases in one query (every field may be asked once per aggregation: 116 x 7).
MAX_ALIASES: Final = 1_000
#: Most tokens one query text may hold.
MAX_TOKENS: Final = 20_000
#: The limits, as the schema publishes them.
SCHEMA_DESCRIPTION: Final = (
    f"Limits: depth {MAX_DEPTH}, {MAX_ALIASES} aliases, {MAX_TOKENS} tokens; cost (signal "
    f"fields x intervals for signals, signal fields for signalsLatest) at most {MAX_COST}."
)

LAT: Final = LOCATION_BRANCH + ".Latitude"
LON: Final = LOCATION_BRANCH + ".Longitude"
#: DIMO's privilege names, by id, as its schema writes them in `Required Privileges`.
DIMO_PRIVILEGE_NAMES: Final = {
    1: "VEHICLE_NON_LOCATION_DATA",
    3: "VEHICLE_CURRENT_LOCATION",
    4: "VEHICLE_ALL_TIME_LOCATION",
}

#: An RFC 3339 time, parsed to unix ms.
Time = NewType("Time", str)


class TelemetryQueryError(GraphQLError):
    """An error of this API: its `extensions.code` says which kind."""

    def __init__(self, code: str, message: str, **more: Any) -> None:
        super().__init__(message, extensions={"code": code, **more})


def _bad(message: str, argument: str) -> TelemetryQueryError:
    return TelemetryQueryError("BAD_REQUEST", message, argument=argument)


# --------------------------------------------------------------------------------------------
# arguments: Go durations and RFC 3339 times
# --------------------------------------------------------------------------------------------

_GO_UNITS: Final = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}
_GO_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_interval(text: str) -> int:
    """A Go duration (`"24h"`, `"1h30m"`, `"90s"`, `"500ms"`) in whole milliseconds.

    Raises:
        TelemetryQueryError: not a Go duration, not positive, or not a whole number of ms.
    """
    pos, total = 0, 0.0
    while pos < len(text):
        m = _GO_PART.match(text, pos)
        if m is None:
            break
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise _bad(
            f"interval {text!r} is not a Go duration; write e.g. '5m', '1h', '24h', '2h45m' "
            "(units ms, s, m, h; days are '24h')",
            "interval",
        )
    ms = round(total)
    if ms < 1 or abs(total - ms) > 1e-6:
        raise _bad(f"interval {text!r} must be a positive whole number of ms", "interval")
    return ms


def parse_time(value: Any) -> int:
    """An RFC 3339 time with its offset (`2024-05-01T00:00:00Z`) as unix ms."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an RFC 3339 time string")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 time (e.g. 2024-05-01T00:00:00Z)") from None
    if at.tzinfo is None:
        raise ValueError(f"{value!r} has no offset; RFC 3339 needs one (Z or +hh:mm)")
    ms = int(at.timestamp() * 1000)
    if ms < 0:
        raise ValueError(f"{value!r} is before 1970")
    return ms


@lru_cache(maxsize=4096)  # interval starts recur across queries (24 an answer)
def _time(ms: int) -> str:
    at = datetime.fromtimestamp(ms / 1000, UTC)
    text = at.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")
    return text.replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------
# the caller
# --------------------------------------------------------------------------------------------


@dataclass
class Caller:
    """Who asks: the address whose rights count, and the scopes its token lets it use."""

    address: str
    scopes: Privilege
    vehicle: int | None  # a vehicle JWT's vehicle; None for a wallet token


@dataclass
class TelemetryContext(BaseContext):
    """What resolvers get: the engine, the rights cache, the request's clock and token."""

    engine: Engine
    rights: RightsCache
    settings: IndexerSettings
    jwt_key: bytes
    now_ms: int
    bearer: str | None
    token_claims: Callable[[str], TokenClaims]
    loop: LoopConnections

    async def run(self, fn: Callable[[Connection], Any], *, small: bool = False) -> Any:
        """Run `fn` with a connection: in a worker thread (`TELEMETRY_DB_CONCURRENCY` of them a
        process), or, when the caller says its work is `small` (`INLINE_COST`), in the event
        loop's own thread, which it then holds for that long, with the loop's own connection
        (`LoopConnections`)."""

        if small:
            return await self.loop.run(fn)

        def job() -> Any:
            with self.engine.connect() as conn:
                return fn(conn)

        return await anyio.to_thread.run_sync(job, limiter=telemetry_db_limiter())

    def caller(self, token_id: int) -> Caller:
        """The caller, from the bearer token, for a query of vehicle `token_id`.

        Raises:
            TelemetryQueryError: no token, a bad or expired one, or a vehicle JWT of another
                vehicle.
        """
        if self.bearer is None:
            raise TelemetryQueryError(
                "UNAUTHENTICATED",
                "send Authorization: Bearer <vehicle JWT> from POST /v1/tokens/exchange "
                "(or a wallet token from POST /auth/login)",
            )
        try:
            use = decode_jwt(self.bearer, self.jwt_key).get("token_use")
            if use is None:
                wallet = self.token_claims(self.bearer)
                return Caller(wallet.address, ALL_PRIVILEGES, None)
            token = verify_vehicle_token(
                self.bearer, self.jwt_key, self.settings.siwe_uri, self.now_ms / 1000
            )
        except JwtExpired as exc:
            raise TelemetryQueryError(
                "UNAUTHENTICATED",
                f"the token expired at unix time {exc.expired_at}; exchange a new vehicle JWT",
                expiredAt=exc.expired_at,
            ) from exc
        except (JwtError, IndexerError) as exc:
            raise TelemetryQueryError("UNAUTHENTICATED", f"the token is refused: {exc}") from exc
        return _vehicle_caller(token, token_id)


def _vehicle_caller(token: VehicleToken, token_id: int) -> Caller:
    if token.vehicle_id != token_id or not token.asset.endswith(f":{token_id}"):
        raise TelemetryQueryError(
            "FORBIDDEN",
            f"the vehicle JWT is for {token.asset}, not vehicle {token_id}; exchange one for it",
        )
    known = [i for i in token.privileges if i in DIMO_PRIVILEGES]
    return Caller(token.client_id.lower(), scopes_of_dimo_ids(known), token.vehicle_id)


def _ctx(info: strawberry.Info) -> TelemetryContext:
    ctx = info.context
    assert isinstance(ctx, TelemetryContext)
    return ctx


def _check_token_id(token_id: int) -> None:
    if token_id < 0:
        raise _bad(f"tokenId {token_id} is negative", "tokenId")


# --------------------------------------------------------------------------------------------
# rights per field
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """The caller's coverage of one vehicle, narrowed to its token's scopes."""

    coverage: Coverage
    caller: Caller

    def spans(self, signal: DimoSignal, start: int, end: int) -> Intervals:
        """The times in `[start, end)` the caller may read `signal` (none if not carried)."""
        if signal.vss is None:
            return ((start, end),)
        return clip(self.coverage.of(catalog_privilege(signal.name)), start, end)


def _missing(signal: DimoSignal) -> TelemetryQueryError:
    need = catalog_privilege(signal.name)
    dimo = DIMO_PRIVILEGE_NAMES.get(signal.privilege, str(signal.privilege))
    return TelemetryQueryError(
        "FORBIDDEN",
        f"{signal.name} needs privilege {dimo} (scope {format_privileges(need)}) over the "
        "time asked, which the caller does not hold",
        field=signal.name,
        missingPrivilege=dimo,
        missingScope=format_privileges(need),
    )


def _access_of(conn: Connection, ctx: TelemetryContext, token_id: int, caller: Caller) -> Access:
    try:
        coverage = ctx.rights.coverage(conn, token_id, caller.address, ctx.now_ms)
    except VehicleNotFound as exc:
        raise TelemetryQueryError("NOT_FOUND", str(exc), tokenId=token_id) from exc
    # The token's scopes narrow what the rights give, for the values and for what a proof
    # discloses alike.
    narrowed = {p: spans for p, spans in coverage.by_privilege.items() if p & caller.scopes}
    return Access(replace(coverage, by_privilege=narrowed), caller)


async def _access(info: strawberry.Info, token_id: int) -> Access:
    ctx = _ctx(info)
    _check_token_id(token_id)
    caller = ctx.caller(token_id)
    return await ctx.run(lambda c: _access_of(c, ctx, token_id, caller))  # type: ignore[no-any-return]


async def _with_access(
    info: strawberry.Info,
    token_id: int,
    fn: Callable[[Connection, Access], _T],
    *,
    small: bool = False,
) -> _T:
    """`fn(conn, access)` with the caller's access to vehicle `token_id`, both read with one
    connection in one hop to a worker thread (as `_access`, then `fn`, would in two), or in the
    loop's thread if `small` (`TelemetryContext.run`)."""
    ctx = _ctx(info)
    _check_token_id(token_id)
    caller = ctx.caller(token_id)
    return await ctx.run(  # type: ignore[no-any-return]
        lambda c: fn(c, _access_of(c, ctx, token_id, caller)), small=small
    )


def _small(asked: Sequence[Asked], cost: int) -> bool:
    """Whether a query's database work is small enough for the loop's thread (`INLINE_COST`):
    few cells, each aggregated in SQL."""
    return cost <= INLINE_COST and all(a.agg in _SQL_AGG and a.filter is None for a in asked)


# --------------------------------------------------------------------------------------------
# aggregations
# --------------------------------------------------------------------------------------------


@strawberry.enum(description="Aggregations of a float signal over an interval")
class FloatAggregation(Enum):
    AVG = "AVG"
    MED = "MED"
    MAX = "MAX"
    MIN = "MIN"
    RAND = "RAND"
    FIRST = "FIRST"
    LAST = "LAST"


@strawberry.enum(description="Aggregations of a string signal over an interval")
class StringAggregation(Enum):
    RAND = "RAND"
    TOP = "TOP"
    UNIQUE = "UNIQUE"
    FIRST = "FIRST"
    LAST = "LAST"


@strawberry.enum(description="Aggregations of the location over an interval")
class LocationAggregation(Enum):
    AVG = "AVG"
    RAND = "RAND"
    FIRST = "FIRST"
    LAST = "LAST"


#: The aggregations the series statement runs in SQL (the others run over raw readings).
_SQL_AGG: Final[dict[str, Aggregation]] = {
    "AVG": "avg",
    "MAX": "max",
    "MIN": "min",
    "FIRST": "first",
    "LAST": "last",
}


def _pick(bucket: int, values: Sequence[Any]) -> Any:
    """RAND: one of the interval's values, the same one on every ask (seeded by the bucket)."""
    return values[random.Random(bucket).randrange(len(values))]


def _aggregate(agg: str, values: Sequence[Any], bucket: int) -> Any:
    if agg == "MED":
        return float(median(values))
    if agg == "RAND":
        return _pick(bucket, values)
    if agg == "TOP":
        return Counter(values).most_common(1)[0][0]
    if agg == "UNIQUE":
        return ",".join(sorted({str(v) for v in values}))
    if agg == "AVG":
        return sum(values) / len(values)
    if agg == "MAX":
        return max(values)
    if agg == "MIN":
        return min(values)
    return values[0] if agg == "FIRST" else values[-1]


def _buckets(rows: Iterable[tuple[int, Any]], start: int, interval: int) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for ts, value in rows:
        out.setdefault(start + (ts - start) // interval * interval, []).append(value)
    return out


#: Most readings MED, RAND, TOP, UNIQUE and a filtered field aggregate (one fewer than a
#: page of `raw_readings`, so that a full page shows there are more).
_MAX_RAW: Final = MAX_RAW_READINGS - 1


def _raw(
    conn: Connection, vehicle: int, vss: str, start: int, end: int, within: Intervals
) -> list[tuple[int, Any]]:
    rows = raw_readings(conn, vehicle, vss, start, end, MAX_RAW_READINGS, within=within)
    if len(rows) > _MAX_RAW:
        raise _bad(
            f"more than {_MAX_RAW} readings of {vss} in the window; MED, RAND, TOP, UNIQUE "
            "and a value filter need them all: ask a shorter window",
            "from/to",
        )
    return [(r.ts, r.value) for r in rows]


def _float_series(
    conn: Connection,
    vehicle: int,
    signal: DimoSignal,
    agg: str,
    start: int,
    end: int,
    interval: int,
    within: Intervals,
    only: ValueFilter | None = None,
) -> dict[int, Any]:
    """Bucket start -> the DIMO value of the aggregate, for a float signal of our catalog
    (of the readings `only` lets count, when given: those are filtered here, one by one)."""
    assert signal.vss is not None
    name = signal.name
    if only is not None:
        values = (
            (t, dimo_value(name, v)) for t, v in _raw(conn, vehicle, signal.vss, start, end, within)
        )
        kept = [(t, v) for t, v in values if not isinstance(v, str) and only.passes(v)]
        return {b: _aggregate(agg, vs, b) for b, vs in _buckets(kept, start, interval).items()}
    if agg in _SQL_AGG and not (is_text_signal(signal.vss) and agg not in ("FIRST", "LAST")):
        rows = series_rows(
            conn, vehicle, [signal.vss], start, end, interval, _SQL_AGG[agg], within=within
        )[signal.vss]
        return {t: dimo_value(name, v) for t, v, _ in rows}
    raw = [(t, dimo_value(name, v)) for t, v in _raw(conn, vehicle, signal.vss, start, end, within)]
    return {b: _aggregate(agg, vs, b) for b, vs in _buckets(raw, start, interval).items()}


@strawberry.type(description="A position in WGS 84 (hdop: 0, devices here send none)")
class Location:
    latitude: float
    longitude: float
    hdop: float


def _location_series(
    conn: Connection,
    vehicle: int,
    agg: str,
    start: int,
    end: int,
    interval: int,
    within: Intervals,
) -> dict[int, Location]:
    """Bucket start -> the location: latitude and longitude of the same readings."""
    if agg in ("AVG", "FIRST", "LAST"):
        got = series_rows(
            conn, vehicle, [LAT, LON], start, end, interval, _SQL_AGG[agg], within=within
        )
        lons = {t: v for t, v, _ in got[LON]}
        return {
            t: Location(latitude=float(v), longitude=float(lons[t]), hdop=0.0)
            for t, v, _ in got[LAT]
            if t in lons
        }
    lats = dict(_raw(conn, vehicle, LAT, start, end, within))
    lons = dict(_raw(conn, vehicle, LON, start, end, within))
    pairs = [(t, (v, lons[t])) for t, v in sorted(lats.items()) if t in lons]
    return {
        b: Location(latitude=float(p[0]), longitude=float(p[1]), hdop=0.0)
        for b, vs in _buckets(pairs, start, interval).items()
        for p in [_pick(b, vs)]
    }


# --------------------------------------------------------------------------------------------
# signals: the selection, its cost, its rows
# --------------------------------------------------------------------------------------------


#: Deepest nesting of `or` in a value filter, and most comparisons and listed values one
#: filter may hold in all.
MAX_FILTER_DEPTH: Final = 4
MAX_FILTER_TERMS: Final = 200


@strawberry.input(
    description="Which readings of a float signal an aggregation counts, compared in the "
    "field's unit: a reading counts when it passes every comparison given and, if `or` is "
    f"given, at least one of its filters. `or` nests at most {MAX_FILTER_DEPTH} deep, and a "
    f"filter holds at most {MAX_FILTER_TERMS} comparisons and listed values. An interval with "
    "no reading that counts has no value (null)"
)
class SignalFloatFilter:
    eq: float | None = strawberry.field(default=None, description="equal to")
    neq: float | None = strawberry.field(default=None, description="not equal to")
    gt: float | None = strawberry.field(default=None, description="greater than")
    lt: float | None = strawberry.field(default=None, description="less than")
    gte: float | None = strawberry.field(default=None, description="at least")
    lte: float | None = strawberry.field(default=None, description="at most")
    not_in: list[float] | None = strawberry.field(
        default=None, name="notIn", description="none of these"
    )
    in_: list[float] | None = strawberry.field(default=None, name="in", description="one of these")
    or_: list[SignalFloatFilter] | None = strawberry.field(
        default=None, name="or", description="at least one of these filters"
    )


_COMPARISONS: Final[dict[str, Callable[[float, float], bool]]] = {
    "eq": lambda v, x: v == x,
    "neq": lambda v, x: v != x,
    "gt": lambda v, x: v > x,
    "lt": lambda v, x: v < x,
    "gte": lambda v, x: v >= x,
    "lte": lambda v, x: v <= x,
}
#: GraphQL name -> Python name of `SignalFloatFilter`'s fields.
_FILTER_FIELDS: Final = {
    **{op: op for op in _COMPARISONS},
    "notIn": "not_in",
    "in": "in_",
    "or": "or_",
}


@dataclass(frozen=True)
class ValueFilter:
    """A `SignalFloatFilter`, hashable: it keys the value of the field it filters."""

    compare: tuple[tuple[str, float], ...]
    among: tuple[float, ...] | None
    not_among: tuple[float, ...]
    any_of: tuple[ValueFilter, ...] | None

    def passes(self, value: float) -> bool:
        """Whether a reading of `value` counts."""
        return (
            all(_COMPARISONS[op](value, x) for op, x in self.compare)
            and (self.among is None or value in self.among)
            and value not in self.not_among
            and (self.any_of is None or any(f.passes(value) for f in self.any_of))
        )


def value_filter(raw: Any, depth: int = 1) -> ValueFilter | None:
    """The filter of a field's `filter` argument, as the query gives it (a dict with GraphQL
    names) or as the resolver gets it (`SignalFloatFilter`); None for none.

    Raises:
        TelemetryQueryError: BAD_REQUEST, `or` nested too deep or too many terms.
    """
    if raw is None:
        return None
    get = raw.get if isinstance(raw, dict) else (lambda k: getattr(raw, _FILTER_FIELDS[k]))
    if depth > MAX_FILTER_DEPTH:
        raise _bad(f"a value filter nests `or` more than {MAX_FILTER_DEPTH} deep", "filter")
    compare = tuple((op, float(x)) for op in _COMPARISONS if (x := get(op)) is not None)
    among, subfilters = get("in"), get("or")
    out = ValueFilter(
        compare,
        None if among is None else tuple(float(x) for x in _listed(among)),
        tuple(float(x) for x in _listed(get("notIn"))),
        None
        if subfilters is None
        else tuple(
            f for f in (value_filter(x, depth + 1) for x in _listed(subfilters)) if f is not None
        ),
    )
    if _terms(out) > MAX_FILTER_TERMS:
        raise _bad(f"a value filter holds more than {MAX_FILTER_TERMS} terms", "filter")
    return out


def _listed(value: Any) -> list[Any]:
    """A list argument as GraphQL reads it: a single value stands for a list of it."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _terms(f: ValueFilter) -> int:
    return (
        len(f.compare)
        + len(f.among or ())
        + len(f.not_among)
        + sum(_terms(x) for x in f.any_of or ())
    )


@dataclass(frozen=True)
class Asked:
    """One signal field of a selection, with its aggregation and its value filter."""

    signal: DimoSignal
    agg: str
    filter: ValueFilter | None = None


def _selections(fields: Iterable[Any]) -> Iterable[SelectedField]:
    for f in fields:
        if isinstance(f, SelectedField):
            yield f
        elif isinstance(f, FragmentSpread | InlineFragment):
            yield from _selections(f.selections)


def _asked(info: strawberry.Info, with_agg: bool) -> list[Asked]:
    """The signal fields the query selects under this resolver (each aggregation once)."""
    out: dict[tuple[str, str, ValueFilter | None], Asked] = {}
    for f in _selections(info.selected_fields[0].selections):
        signal = SIGNALS.get(f.name)
        if signal is None:
            continue
        agg = str(f.arguments.get("agg", "")) if with_agg else ""
        agg = agg.rsplit(".", 1)[-1]
        only = value_filter(f.arguments.get("filter")) if with_agg else None
        out[(signal.name, agg, only)] = Asked(signal, agg, only)
    return list(out.values())


def _check_cost(cost: int, what: str) -> None:
    if cost > MAX_COST:
        raise TelemetryQueryError(
            "QUERY_TOO_COMPLEX",
            f"the query costs {cost} ({what}); the limit is {MAX_COST}: ask fewer fields or "
            "a wider interval",
            cost=cost,
            limit=MAX_COST,
        )


@dataclass
class SignalRow:
    """One interval of `signals`: its start, and the values of the fields asked."""

    timestamp: int
    #: (DIMO name, aggregation, value filter) -> the value.
    values: dict[tuple[str, str, ValueFilter | None], Any] = field(default_factory=dict)
    denied: frozenset[str] = frozenset()
    #: (DIMO name, aggregation) -> the proof's JSON, or the error its field answers.
    proofs: dict[tuple[str, str], Any] = field(default_factory=dict)


def _value(root: SignalRow, name: str, agg: Enum, only: ValueFilter | None = None) -> Any:
    if name in root.denied:
        raise _missing(SIGNALS[name])
    return root.values.get((name, str(agg.value), only))


# --------------------------------------------------------------------------------------------
# proofs of aggregated values
# --------------------------------------------------------------------------------------------


@strawberry.enum(
    description="An aggregation whose value a proof is asked for. FIRST, LAST, MIN, MAX and "
    "RAND answer one reading of the interval, whose proof is served; AVG, MED, TOP and UNIQUE "
    "combine readings, so no single proof stands for them: asking is a PROOF_UNAVAILABLE error"
)
class ProofAggregation(Enum):
    FIRST = "FIRST"
    LAST = "LAST"
    MIN = "MIN"
    MAX = "MAX"
    RAND = "RAND"
    AVG = "AVG"
    MED = "MED"
    TOP = "TOP"
    UNIQUE = "UNIQUE"


#: The aggregations a proof stands for, per kind of signal (their value is one reading's).
_PROVABLE: Final = {
    "float": ("FIRST", "LAST", "MIN", "MAX", "RAND"),
    "string": ("FIRST", "LAST", "RAND"),
    "location": ("FIRST", "LAST", "RAND"),
}

_ROW_PROOF_DOC: Final = (
    "The proof of this interval's value of `signal` (a field name, e.g. speed) under `agg`: the "
    "reading the FIRST, LAST, MIN (earliest of equal values), MAX or RAND value is, served as "
    "signalsLatest's proof (the REST proof route's answer; `{latitude, longitude}` for the "
    "location), enough for AttestationAnchor.verifyReading / verifySignal. AVG, MED, TOP and "
    "UNIQUE combine readings: a PROOF_UNAVAILABLE error. Null where the interval has no value; "
    "computed only when asked. Cost: one per interval, as a signal field"
)


def _row_proof(root: SignalRow, signal: str, agg: ProofAggregation) -> JSON | None:
    if signal in root.denied:
        raise _missing(SIGNALS[signal])
    got = root.proofs.get((signal, agg.value))
    if isinstance(got, GraphQLError):
        raise got
    return got


def _proof_json(
    conn: Connection,
    access: Access,
    vss: str,
    ts: int,
    reading: Reading | None = None,
    bundle: BundleProof | None = None,
) -> Any:
    """The REST proof route's answer for the reading of `vss` at `ts` (`reading`, and its
    bundle's proof, if already read), under `access`.

    Raises:
        TelemetryQueryError: FORBIDDEN (not covered, or the bundle cannot be disclosed for this
            signal alone) or NOT_FOUND.
    """
    try:
        return proof_json(
            conn, access.coverage, access.coverage.vehicle_id, vss, ts, reading, bundle
        )
    except ApiProblem as exc:
        code = "FORBIDDEN" if exc.status == 403 else "NOT_FOUND"
        raise TelemetryQueryError(code, str(exc), reason=exc.slug) from exc


def _proofs_asked(info: strawberry.Info) -> list[Asked]:
    """The `proof(signal, agg)` fields the query selects under `signals`, checked.

    Raises:
        TelemetryQueryError: BAD_REQUEST (an unknown signal, or an aggregation the signal does
            not take) or PROOF_UNAVAILABLE (an aggregation that combines readings).
    """
    out: dict[tuple[str, str], Asked] = {}
    for f in _selections(info.selected_fields[0].selections):
        if f.name != "proof":
            continue
        name = str(f.arguments.get("signal", ""))
        agg = str(f.arguments.get("agg", "")).rsplit(".", 1)[-1]
        signal = SIGNALS.get(name)
        if signal is None:
            raise _bad(f"proof: {name!r} is no signal field of this schema", "signal")
        if agg not in _PROVABLE["float"] + ("AVG", "MED", "TOP", "UNIQUE"):
            raise _bad(f"proof: {agg!r} is no aggregation", "agg")
        if agg in ("AVG", "MED", "TOP", "UNIQUE"):
            raise TelemetryQueryError(
                "PROOF_UNAVAILABLE",
                f"proof of {name}(agg: {agg}): {agg} combines the interval's readings, so no "
                "single reading's proof stands for it; ask FIRST, LAST, MIN, MAX or RAND",
                field=name,
                agg=agg,
            )
        if agg not in _PROVABLE[signal.kind]:
            raise _bad(f"proof: {name} takes no {agg} aggregation", "agg")
        out[(name, agg)] = Asked(signal, agg)
    return list(out.values())


def _sources(
    conn: Connection,
    vehicle: int,
    asked: Asked,
    start: int,
    end: int,
    interval: int,
    within: Intervals,
) -> dict[int, dict[str, Reading | int]]:
    """Bucket start -> VSS -> the reading the bucket's value of `asked` is (both coordinates
    for the location; the time alone for RAND's), found as the value itself is."""
    assert asked.signal.vss is not None
    location = asked.signal.kind == "location"
    names = (LAT, LON) if location else (asked.signal.vss,)
    out: dict[int, dict[str, Reading | int]] = {}
    if asked.agg != "RAND":
        agg = _SQL_AGG[asked.agg]
        for vss in names:
            found = series_sources(conn, vehicle, vss, start, end, interval, agg, within=within)
            for bucket, reading in found.items():
                out.setdefault(bucket, {})[vss] = reading
        # A location is answered only where both coordinates are.
        return {b: got for b, got in out.items() if len(got) == len(names)}
    times = [t for t, _ in _raw(conn, vehicle, names[0], start, end, within)]
    if location:  # RAND picks among the readings that have both coordinates
        lons = {t for t, _ in _raw(conn, vehicle, LON, start, end, within)}
        times = [t for t in times if t in lons]
    for bucket, ts in _buckets(((t, t) for t in times), start, interval).items():
        picked: int = _pick(bucket, ts)
        out[bucket] = {vss: picked for vss in names}
    return out


def _row_proofs(
    conn: Connection,
    access: Access,
    vehicle: int,
    asked: Sequence[Asked],
    start: int,
    end: int,
    interval: int,
) -> dict[int, dict[tuple[str, str], Any]]:
    """Bucket start -> (DIMO name, aggregation) -> the proof's JSON, or its error.

    The bundles of the readings found are read in one statement (`bundle_proofs`) for all of
    them, rather than one lookup a proof; a reading whose bundle that does not find is proved
    the one-by-one way (`proof_json`), so its answer, or error, is the same."""
    sources = [
        (a, _sources(conn, vehicle, a, start, end, interval, access.spans(a.signal, start, end)))
        for a in asked
        if a.signal.vss is not None
    ]
    bundles = bundle_proofs(
        conn,
        (
            (got.batch_id, got.leaf_index)
            for _, per_bucket in sources
            for found in per_bucket.values()
            for got in found.values()
            if isinstance(got, Reading)
        ),
    )
    out: dict[int, dict[tuple[str, str], Any]] = {}
    for a, per_bucket in sources:
        assert a.signal.vss is not None
        for bucket, found in per_bucket.items():
            proofs: dict[str, Any] = {}
            try:
                for vss, got in found.items():
                    if isinstance(got, Reading):
                        bundle = bundles.get((got.batch_id, got.leaf_index))
                        proofs[vss] = _proof_json(conn, access, vss, got.ts, got, bundle)
                    else:
                        proofs[vss] = _proof_json(conn, access, vss, got)
            except TelemetryQueryError as exc:
                out.setdefault(bucket, {})[(a.signal.name, a.agg)] = exc
                continue
            answer = (
                {"latitude": proofs[LAT], "longitude": proofs[LON]}
                if a.signal.kind == "location"
                else proofs[a.signal.vss]
            )
            out.setdefault(bucket, {})[(a.signal.name, a.agg)] = JSON(answer)
    return out


def _signal_field(signal: DimoSignal) -> Any:
    doc = (
        f"{signal.name}"
        + (f" ({signal.unit})" if signal.unit else "")
        + (f"; our VSS {signal.vss}" if signal.vss else "; not carried here: always null")
        + f". Required privilege: {DIMO_PRIVILEGE_NAMES[signal.privilege]}"
    )
    name = signal.name
    if signal.kind == "location":

        def loc(root: SignalRow, agg: LocationAggregation) -> Location | None:
            return _value(root, name, agg)  # type: ignore[no-any-return]

        return strawberry.field(resolver=loc, name=name, description=doc)
    if signal.kind == "string":

        def text(root: SignalRow, agg: StringAggregation) -> str | None:
            return _value(root, name, agg)  # type: ignore[no-any-return]

        return strawberry.field(resolver=text, name=name, description=doc)

    def number(
        root: SignalRow,
        agg: FloatAggregation,
        filter: SignalFloatFilter | None = None,
    ) -> float | None:
        value = _value(root, name, agg, None if filter is None else value_filter(filter))
        return None if value is None else float(value)

    return strawberry.field(resolver=number, name=name, description=doc)


def _aggregations_type() -> type:
    attrs: dict[str, Any] = {
        "__doc__": "One interval of a vehicle's signals, aggregated.",
    }

    def timestamp(root: SignalRow) -> Time:
        return Time(_time(root.timestamp))

    attrs["timestamp"] = strawberry.field(
        resolver=timestamp, description="The interval's start (intervals align on `from`)"
    )
    for signal in SIGNALS.values():
        attrs["f_" + signal.name] = _signal_field(signal)
    attrs["proof"] = strawberry.field(resolver=_row_proof, description=_ROW_PROOF_DOC)
    return strawberry.type(type("SignalAggregations", (), attrs))


if TYPE_CHECKING:  # the resolvers' roots, as mypy sees the types built from `SIGNALS`
    SignalAggregations = SignalRow
else:
    SignalAggregations = _aggregations_type()


def _rows(
    conn: Connection,
    access: Access,
    vehicle: int,
    asked: Sequence[Asked],
    start: int,
    end: int,
    interval: int,
) -> list[SignalRow]:
    per: dict[tuple[str, str, ValueFilter | None], dict[int, Any]] = {}
    for a in asked:
        if a.signal.vss is None:
            continue
        within = access.spans(a.signal, start, end)
        if a.signal.kind == "location":
            per[(a.signal.name, a.agg, a.filter)] = _location_series(
                conn, vehicle, a.agg, start, end, interval, within
            )
        else:
            per[(a.signal.name, a.agg, a.filter)] = _float_series(
                conn, vehicle, a.signal, a.agg, start, end, interval, within, a.filter
            )
    stamps = sorted({t for series in per.values() for t in series})
    return [
        SignalRow(t, {key: series[t] for key, series in per.items() if t in series}) for t in stamps
    ]


# --------------------------------------------------------------------------------------------
# signalsLatest
# --------------------------------------------------------------------------------------------


async def _proof(info: strawberry.Info, access: Access, vss: str, ts: int) -> JSON:
    """The REST proof route's answer for the reading of `vss` at `ts`, under `access`."""
    return await _ctx(info).run(  # type: ignore[no-any-return]
        lambda c: JSON(_proof_json(c, access, vss, ts))
    )


_PROOF_DOC: Final = (
    "The reading's proof, as GET /vehicles/{id}/signals/{signal}/readings/{t}/proof serves it "
    "(bundle or per-signal opening, Merkle path, batch and anchoring transaction: enough for "
    "AttestationAnchor.verifyReading / verifySignal); computed only when asked"
)


async def _float_proof(root: SignalFloat, info: strawberry.Info) -> JSON:
    return await _proof(info, root.access, root.vss, root.ts)


async def _location_proof(root: SignalLocation, info: strawberry.Info) -> JSON:
    return JSON(
        {
            "latitude": await _proof(info, root.access, LAT, root.latitude_ts),
            "longitude": await _proof(info, root.access, LON, root.longitude_ts),
        }
    )


@strawberry.type(description="A float signal's latest value")
class SignalFloat:
    timestamp: Time
    value: float
    access: strawberry.Private[Access]
    vss: strawberry.Private[str]
    ts: strawberry.Private[int]
    proof: JSON = strawberry.field(resolver=_float_proof, description=_PROOF_DOC)


@strawberry.type(description="A string signal's latest value")
class SignalString:
    timestamp: Time
    value: str


@strawberry.type(description="The latest location")
class SignalLocation:
    timestamp: Time
    value: Location
    access: strawberry.Private[Access]
    latitude_ts: strawberry.Private[int]
    longitude_ts: strawberry.Private[int]
    proof: JSON = strawberry.field(
        resolver=_location_proof, description="`{latitude, longitude}`: " + _PROOF_DOC
    )


@dataclass
class LatestRow:
    """The latest readings asked for, by DIMO name, and the fields refused."""

    last_seen: int | None
    values: dict[str, Any]
    denied: frozenset[str]


def _latest(root: LatestRow, name: str) -> Any:
    if name in root.denied:
        raise _missing(SIGNALS[name])
    return root.values.get(name)


def _latest_field(signal: DimoSignal) -> Any:
    name = signal.name
    doc = f"{name}'s latest reading the caller may read" + (
        "" if signal.vss else " (not carried here: always null)"
    )
    if signal.kind == "location":

        def loc(root: LatestRow) -> SignalLocation | None:
            return _latest(root, name)  # type: ignore[no-any-return]

        return strawberry.field(resolver=loc, name=name, description=doc)
    if signal.kind == "string":

        def text(root: LatestRow) -> SignalString | None:
            return _latest(root, name)  # type: ignore[no-any-return]

        return strawberry.field(resolver=text, name=name, description=doc)

    def number(root: LatestRow) -> SignalFloat | None:
        return _latest(root, name)  # type: ignore[no-any-return]

    return strawberry.field(resolver=number, name=name, description=doc)


def _collection_type() -> type:
    attrs: dict[str, Any] = {"__doc__": "Each signal's latest value."}

    def last_seen(root: LatestRow) -> Time | None:
        return None if root.last_seen is None else Time(_time(root.last_seen))

    attrs["lastSeen"] = strawberry.field(
        resolver=last_seen, name="lastSeen", description="The latest reading's time"
    )
    for signal in SIGNALS.values():
        attrs["f_" + signal.name] = _latest_field(signal)
    return strawberry.type(type("SignalCollection", (), attrs))


if TYPE_CHECKING:
    SignalCollection = LatestRow
else:
    SignalCollection = _collection_type()


def _latest_row(
    conn: Connection, access: Access, vehicle: int, asked: Sequence[Asked]
) -> LatestRow:
    now = access.coverage.now_ms
    within: dict[str, Intervals] = {}
    denied: set[str] = set()
    for a in asked:
        if a.signal.vss is None:
            continue
        spans = access.spans(a.signal, 0, now + 1)
        if not spans:
            denied.add(a.signal.name)
        for vss in (LAT, LON) if a.signal.kind == "location" else (a.signal.vss,):
            within[vss] = spans
    found = latest_values(conn, vehicle, list(within), within=within)
    values: dict[str, Any] = {}
    seen = [r.ts for r in found.values()]
    for a in asked:
        name, vss_or_none = a.signal.name, a.signal.vss
        if a.signal.kind == "location":
            lat, lon = found.get(LAT), found.get(LON)
            if lat is not None and lon is not None:
                at = max(lat.ts, lon.ts)
                values[name] = SignalLocation(
                    timestamp=Time(_time(at)),
                    value=Location(latitude=float(lat.value), longitude=float(lon.value), hdop=0.0),
                    access=access,
                    latitude_ts=lat.ts,
                    longitude_ts=lon.ts,
                )
        elif vss_or_none is not None and vss_or_none in found:
            r = found[vss_or_none]
            values[name] = SignalFloat(
                timestamp=Time(_time(r.ts)),
                value=float(dimo_value(name, r.value)),
                access=access,
                vss=vss_or_none,
                ts=r.ts,
            )
    return LatestRow(max(seen) if seen else None, values, frozenset(denied))


def _available(conn: Connection, access: Access, vehicle: int) -> list[str]:
    now = access.coverage.now_ms
    within: dict[str, Intervals] = {}
    for s in SIGNALS.values():
        if s.vss is None:
            continue
        spans = access.spans(s, 0, now + 1)
        for vss in (LAT, LON) if s.kind == "location" else (s.vss,):
            within[vss] = spans
    found = latest_values(conn, vehicle, list(within), within=within)
    return sorted(
        s.name
        for s in SIGNALS.values()
        if s.vss is not None
        and ((LAT in found and LON in found) if s.kind == "location" else s.vss in found)
    )


# --------------------------------------------------------------------------------------------
# vinVCLatest: the index of credentials (indexer.api.credentials)
# --------------------------------------------------------------------------------------------


@strawberry.type(name="VINVC", description="A VIN credential the oracle quorum signed")
class VinVc:
    vehicle_token_id: int | None = strawberry.field(description="The vehicle's token id")
    vin: str | None = strawberry.field(description="The VIN the paired device read (Mode 09)")
    recorded_by: str | None = strawberry.field(description="The device that read it")
    recorded_at: Time | None = strawberry.field(description="When the device read it")
    country_code: str | None = strawberry.field(description="Not known here: always null")
    vehicle_contract_address: str | None = strawberry.field(description="The VehicleId NFT")
    valid_from: Time | None = strawberry.field(description="Start of validity")
    valid_to: Time | None = strawberry.field(description="End of validity")
    raw_vc: str = strawberry.field(
        name="rawVC", description="The W3C credential with its quorum proof, canonical JSON"
    )
    cid: str = strawberry.field(description="Its CID in the content store (ours)")


async def _vin_vc_latest(info: strawberry.Info, token_id: int) -> VinVc | None:
    access = await _access(info, token_id)
    ctx = _ctx(info)
    if not may_read_vin(access.coverage, ctx.now_ms):
        raise TelemetryQueryError(
            "FORBIDDEN",
            "vinVCLatest needs privilege VEHICLE_VIN_CREDENTIAL (id 5, scope VIN) now, which "
            "the caller does not hold",
            field="vinVCLatest",
            missingPrivilege="VEHICLE_VIN_CREDENTIAL",
            missingScope="VIN",
        )
    found = await ctx.run(lambda c: latest_vin(c, token_id))
    if found is None:
        return None
    return VinVc(
        vehicle_token_id=found.vehicle_token_id,
        vin=found.vin,
        recorded_by=found.recorded_by,
        recorded_at=None if found.recorded_at_ms is None else Time(_time(found.recorded_at_ms)),
        country_code=None,
        vehicle_contract_address=found.vehicle_contract_address,
        valid_from=Time(_time(found.valid_from_ms)),
        valid_to=None if found.valid_to_ms is None else Time(_time(found.valid_to_ms)),
        raw_vc=found.raw_vc,
        cid=found.cid,
    )


# --------------------------------------------------------------------------------------------
# the query type
# --------------------------------------------------------------------------------------------


@strawberry.input(description="Which readings count")
class SignalFilter:
    source: str | None = strawberry.field(
        default=None,
        description="DIMO's source filter: accepted, and every reading here is from the "
        "vehicle's paired device, so it filters nothing",
    )


def _window(start: int, end: int) -> None:
    if end <= start:
        raise _bad(f"from {_time(start)} is not before to {_time(end)}", "from/to")


async def _signals(
    info: strawberry.Info,
    token_id: int,
    interval: str,
    from_: Annotated[Time, strawberry.argument(name="from")],
    to: Time,
    filter: SignalFilter | None = None,
) -> list[SignalAggregations] | None:
    start, end = parse_time(from_), parse_time(to)
    _window(start, end)
    width = parse_interval(interval)
    asked = _asked(info, with_agg=True)
    proved = _proofs_asked(info)
    intervals = -(-(end - start) // width)
    n = len(asked) + len(proved)
    cost = n * intervals
    _check_cost(cost, f"{n} signal and proof fields x {intervals} intervals")

    def work(conn: Connection, access: Access) -> list[SignalRow]:
        refused = {
            a.signal.name
            for a in (*asked, *proved)
            if a.signal.vss and not access.spans(a.signal, start, end)
        }
        wanted = (*asked, *proved)
        if wanted and refused and all(a.signal.name in refused for a in wanted):
            raise _missing(next(a.signal for a in wanted if a.signal.name in refused))
        readable = [a for a in asked if a.signal.name not in refused]
        try:
            rows = _rows(conn, access, token_id, readable, start, end, width)
            proofs = _row_proofs(
                conn,
                access,
                token_id,
                [a for a in proved if a.signal.name not in refused],
                start,
                end,
                width,
            )
        except InvalidTelemetryQuery as exc:
            raise _bad(str(exc), exc.argument) from exc
        have = {row.timestamp for row in rows}
        rows += [SignalRow(t) for t in proofs if t not in have]  # only proofs asked
        denied = frozenset(refused)
        for row in rows:
            row.denied = denied
            row.proofs = proofs.get(row.timestamp, {})
        return sorted(rows, key=lambda r: r.timestamp)

    return await _with_access(info, token_id, work, small=_small((*asked, *proved), cost))


async def _signals_latest(
    info: strawberry.Info, token_id: int, filter: SignalFilter | None = None
) -> SignalCollection | None:
    asked = _asked(info, with_agg=False)
    _check_cost(len(asked), f"{len(asked)} signal fields")
    # One statement of index probes, one a signal: small up to `INLINE_COST` fields.
    return await _with_access(
        info,
        token_id,
        lambda c, a: _latest_row(c, a, token_id, asked),
        small=len(asked) <= INLINE_COST,
    )


async def _available_signals(
    info: strawberry.Info, token_id: int, filter: SignalFilter | None = None
) -> list[str] | None:
    # One statement of index probes, one a signal of the catalog: always small.
    return await _with_access(info, token_id, lambda c, a: _available(c, a, token_id), small=True)


# --------------------------------------------------------------------------------------------
# segments: trips by ignition, charging sessions
# --------------------------------------------------------------------------------------------

#: Widest window `segments` and `events` read (DIMO's limit for segments).
MAX_SEGMENT_WINDOW_MS: Final = 31 * 86_400_000


@strawberry.enum(description="How segments are found")
class DetectionMechanism(Enum):
    IGNITION = strawberry.enum_value(
        "ignitionDetection",
        name="ignitionDetection",
        description="Trips: speed > 0 or ignition on, split by an ignition-off or a gap "
        "(GET /vehicles/{id}/trips). Needs DRIVING (VEHICLE_NON_LOCATION_DATA)",
    )
    FREQUENCY = strawberry.enum_value(
        "frequencyAnalysis", name="frequencyAnalysis", description="Not served here"
    )
    CHANGE_POINT = strawberry.enum_value(
        "changePointDetection", name="changePointDetection", description="Not served here"
    )
    IDLING = strawberry.enum_value("idling", name="idling", description="Not served here")
    REFUEL = strawberry.enum_value("refuel", name="refuel", description="Not served here")
    RECHARGE = strawberry.enum_value(
        "recharge",
        name="recharge",
        description="Charging sessions: runs of IsCharging true "
        "(GET /vehicles/{id}/charging-sessions). Needs CHARGING (VEHICLE_NON_LOCATION_DATA)",
    )


#: Per mechanism served: default longest gap and shortest segment, s (the REST routes').
_SEGMENT_DEFAULTS: Final = {"ignitionDetection": (300, 240), "recharge": (300, 60)}


@strawberry.input(description="Segment detection parameters")
class SegmentConfig:
    max_gap_seconds: int | None = strawberry.field(
        default=None,
        description="Longest pause inside a segment, s (1..86400; default 300)",
    )
    min_segment_duration_seconds: int | None = strawberry.field(
        default=None,
        description="Shortest segment kept, s (0..604800; default 240 for trips, 60 for charging)",
    )


@dataclass(frozen=True)
class SegmentRow:
    """One segment found, and what its location fields need."""

    start_ms: int
    end_ms: int
    gap_ms: int
    from_ms: int
    to_ms: int
    access: Access

    @property
    def ongoing(self) -> bool:
        """Whether its last activity is less than the gap before `to` (it may go on)."""
        return self.end_ms + self.gap_ms > self.to_ms


def _segment_location(root: SegmentRow, info: strawberry.Info, at_end: bool) -> Any:
    location = SIGNALS["currentLocationCoordinates"]
    spans = root.access.spans(location, root.start_ms, root.end_ms + 1)
    if not spans:
        raise _missing(location)

    def work(conn: Connection) -> SignalLocation | None:
        vehicle = root.access.coverage.vehicle_id
        if at_end:
            found = latest_values(
                conn,
                vehicle,
                [LAT, LON],
                before_ms=root.end_ms + 1,
                within={LAT: spans, LON: spans},
            )
            lat, lon = found.get(LAT), found.get(LON)
        else:
            first = raw_readings(
                conn, vehicle, LAT, root.start_ms, root.end_ms + 1, 1, within=spans
            )
            lat = first[0] if first else None
            pair = [] if lat is None else raw_readings(conn, vehicle, LON, lat.ts, lat.ts + 1, 1)
            lon = pair[0] if pair else None
        if lat is None or lon is None or lat.ts < root.start_ms:
            return None
        return SignalLocation(
            timestamp=Time(_time(max(lat.ts, lon.ts))),
            value=Location(latitude=float(lat.value), longitude=float(lon.value), hdop=0.0),
            access=root.access,
            latitude_ts=lat.ts,
            longitude_ts=lon.ts,
        )

    return _ctx(info).run(work)


def _segment_start_time(root: Segment) -> Time:
    return Time(_time(root.row.start_ms))


def _segment_end_time(root: Segment) -> Time | None:
    return None if root.row.ongoing else Time(_time(root.row.end_ms))


def _segment_duration(root: Segment) -> int:
    end = root.row.to_ms if root.row.ongoing else root.row.end_ms
    return (end - root.row.start_ms) // 1000


def _segment_ongoing(root: Segment) -> bool:
    return root.row.ongoing


def _segment_early(root: Segment) -> bool:
    return root.row.start_ms - root.row.gap_ms < root.row.from_ms


async def _segment_start(root: Segment, info: strawberry.Info) -> SignalLocation | None:
    return await _segment_location(root.row, info, at_end=False)  # type: ignore[no-any-return]


async def _segment_end(root: Segment, info: strawberry.Info) -> SignalLocation | None:
    return await _segment_location(root.row, info, at_end=True)  # type: ignore[no-any-return]


@strawberry.type(
    description="A segment: a trip (ignitionDetection) or a charging session (recharge)"
)
class Segment:
    row: strawberry.Private[SegmentRow]
    start_time: Time = strawberry.field(
        resolver=_segment_start_time, description="The segment's first active reading"
    )
    end_time: Time | None = strawberry.field(
        resolver=_segment_end_time,
        description="Its last active reading; null while it is ongoing",
    )
    duration_seconds: int = strawberry.field(
        resolver=_segment_duration,
        description="Seconds from start to end (to `to` while ongoing)",
    )
    is_ongoing: bool = strawberry.field(
        resolver=_segment_ongoing,
        description="True if its last activity is less than the gap before `to`: it may go on "
        "after the range",
    )
    started_before_range: bool = strawberry.field(
        resolver=_segment_early,
        description="True if its first activity is less than the gap after `from`: it may "
        "have begun before the range (the start is then approximate)",
    )
    start: SignalLocation | None = strawberry.field(
        resolver=_segment_start,
        description="The first location in the segment, with its proof when asked. Needs "
        "VEHICLE_ALL_TIME_LOCATION over the segment: else null with a FORBIDDEN error",
    )
    end: SignalLocation | None = strawberry.field(
        resolver=_segment_end, description="The last location in the segment, as `start`"
    )


def _range(from_: str, to: str) -> tuple[int, int]:
    start, end = parse_time(from_), parse_time(to)
    _window(start, end)
    if end - start > MAX_SEGMENT_WINDOW_MS:
        raise _bad(f"from/to span more than {MAX_SEGMENT_WINDOW_MS // 86_400_000} days", "from/to")
    return start, end


def _segment_params(mechanism: str, config: SegmentConfig | None) -> tuple[int, int]:
    if mechanism not in _SEGMENT_DEFAULTS:
        raise _bad(
            f"mechanism {mechanism} is not served here; ask ignitionDetection (trips) or "
            "recharge (charging sessions)",
            "mechanism",
        )
    gap, shortest = _SEGMENT_DEFAULTS[mechanism]
    if config is not None and config.max_gap_seconds is not None:
        gap = config.max_gap_seconds
        if not 1 <= gap <= 86_400:
            raise _bad(f"maxGapSeconds {gap} is not in 1..86400", "config.maxGapSeconds")
    if config is not None and config.min_segment_duration_seconds is not None:
        shortest = config.min_segment_duration_seconds
        if not 0 <= shortest <= 604_800:
            raise _bad(
                f"minSegmentDurationSeconds {shortest} is not in 0..604800",
                "config.minSegmentDurationSeconds",
            )
    return gap, shortest


def _forbidden(exc: ApiProblem) -> TelemetryQueryError:
    return TelemetryQueryError(
        "FORBIDDEN",
        f"{exc} (DIMO privilege VEHICLE_NON_LOCATION_DATA)",
        missingPrivilege="VEHICLE_NON_LOCATION_DATA",
        reason=exc.slug,
    )


async def _segments(
    info: strawberry.Info,
    token_id: int,
    from_: Annotated[Time, strawberry.argument(name="from")],
    to: Time,
    mechanism: DetectionMechanism,
    config: SegmentConfig | None = None,
) -> list[Segment] | None:
    start, end = _range(from_, to)
    gap_s, min_s = _segment_params(str(mechanism.value), config)
    access = await _access(info, token_id)
    trip = mechanism is DetectionMechanism.IGNITION
    required, optional = ([SPEED, IGNITION], []) if trip else ([IS_CHARGING], [SOC, CHARGE_POWER])
    try:
        _, within, _ = compose(access.coverage, required, optional, start, end)
    except ApiProblem as exc:
        raise _forbidden(exc) from exc

    def work(conn: Connection) -> list[Segment]:
        found: Sequence[Trip | ChargingSession] = (
            trips(conn, token_id, start, end, gap_s=gap_s, min_duration_s=min_s, within=within)
            if trip
            else charging_sessions(
                conn, token_id, start, end, gap_s=gap_s, min_duration_s=min_s, within=within
            )
        )
        to_ms = min(end, access.coverage.now_ms)
        return [
            Segment(row=SegmentRow(s.start_ms, s.end_ms, gap_s * 1000, start, to_ms, access))
            for s in found
        ]

    return await _ctx(info).run(work)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# events: harsh braking, acceleration and cornering
# --------------------------------------------------------------------------------------------

#: Our detections (`apps.events`, the insurance score's thresholds) by DIMO's event names,
#: with the signal each is derived from and its unit.
_EVENTS: Final = {
    HARSH_BRAKING: ("HarshBraking", SPEED, "mph/s"),
    HARSH_ACCELERATION: ("HarshAcceleration", SPEED, "mph/s"),
    HARSH_CORNERING: ("HarshCornering", LATERAL, "m/s^2"),
}
#: The source of every event here: the insurance app's detection.
EVENT_SOURCE: Final = "dimo-insurance-v1"

Int64 = NewType("Int64", int)


@strawberry.input(description="Filter type for string values (all given must hold)")
class StringValueFilter:
    eq: str | None = None
    neq: str | None = None
    in_: list[str] | None = strawberry.field(default=None, name="in")
    not_in: list[str] | None = strawberry.field(default=None, name="notIn")

    def matches(self, value: str) -> bool:
        """Whether `value` passes every condition given."""
        return (
            (self.eq is None or value == self.eq)
            and (self.neq is None or value != self.neq)
            and (self.in_ is None or value in self.in_)
            and (self.not_in is None or value not in self.not_in)
        )


@strawberry.input(description="Which events")
class EventFilter:
    name: StringValueFilter | None = None
    source: StringValueFilter | None = None


@strawberry.type(description="A vehicle event")
class Event:
    timestamp: Time = strawberry.field(description="When it occurred (the completing reading)")
    name: str = strawberry.field(description="HarshBraking, HarshAcceleration or HarshCornering")
    source: str = strawberry.field(description=f"Who detected it: {EVENT_SOURCE}")
    duration_ns: Int64 = strawberry.field(description="Its duration, ns (the speed step)")
    metadata: str | None = strawberry.field(
        description='JSON: {"value": peak rate, "unit": "mph/s" or "m/s^2"}'
    )


def _event_readings(
    conn: Connection, vehicle: int, vss: str, start: int, end: int, within: Intervals
) -> list[tuple[int, object]]:
    return [(t, v) for t, v in _raw(conn, vehicle, vss, start, end, within)] if within else []


async def _events(
    info: strawberry.Info,
    token_id: int,
    from_: Annotated[Time, strawberry.argument(name="from")],
    to: Time,
    filter: EventFilter | None = None,
) -> list[Event] | None:
    start, end = _range(from_, to)
    access = await _access(info, token_id)
    spans = {vss: clip(access.coverage.for_signal(vss), start, end) for vss in (SPEED, LATERAL)}
    if not any(spans.values()):
        raise TelemetryQueryError(
            "FORBIDDEN",
            "events are derived from speed and lateral acceleration, which need privilege "
            "VEHICLE_NON_LOCATION_DATA (scope DRIVING) over the time asked",
            missingPrivilege="VEHICLE_NON_LOCATION_DATA",
            missingScope="DRIVING",
        )

    def work(conn: Connection) -> list[Event]:
        samples = {
            vss: _event_readings(conn, token_id, vss, start, end, spans[vss]) for vss in spans
        }
        out = []
        for e in detect(samples, DetectorState()):
            if e.name not in _EVENTS:
                continue
            name, _, unit = _EVENTS[e.name]
            if filter is not None and not (
                (filter.name is None or filter.name.matches(name))
                and (filter.source is None or filter.source.matches(EVENT_SOURCE))
            ):
                continue
            out.append(
                Event(
                    timestamp=Time(_time(e.ts)),
                    name=name,
                    source=EVENT_SOURCE,
                    duration_ns=Int64(e.duration_ms * 1_000_000),
                    metadata=json.dumps({"value": e.value, "unit": unit}),
                )
            )
        return out

    return await _ctx(info).run(work)  # type: ignore[no-any-return]


@strawberry.type(description="DIMO's Telemetry API. " + SCHEMA_DESCRIPTION)
class Query:
    """DIMO's Telemetry API (`filter` is DIMO's source filter: accepted, filters nothing)."""

    signals: list[SignalAggregations] | None = strawberry.field(
        resolver=_signals,
        description="A vehicle's signals per interval in [from, to), intervals aligned on "
        f"from. Cost: signal fields x intervals, at most {MAX_COST}.",
    )
    signals_latest: SignalCollection | None = strawberry.field(
        resolver=_signals_latest, description="Each signal's latest value the caller may read"
    )
    available_signals: list[str] | None = strawberry.field(
        resolver=_available_signals,
        description="The signals this vehicle has readings of that the caller may read",
    )
    vin_vc_latest: VinVc | None = strawberry.field(
        resolver=_vin_vc_latest,
        name="vinVCLatest",
        description="The vehicle's latest VIN credential (POST /v2/attestation/vin/{tokenId} "
        "issues it); needs privilege VEHICLE_VIN_CREDENTIAL",
    )
    segments: list[Segment] | None = strawberry.field(
        resolver=_segments,
        description="Trips (mechanism ignitionDetection) or charging sessions (recharge) in "
        "[from, to), at most 31 days; other mechanisms are a BAD_REQUEST error. Needs the "
        "privilege of the signals they are found from; their locations need the location's",
    )
    events: list[Event] | None = strawberry.field(
        resolver=_events,
        description="Harsh braking and acceleration (from speed) and harsh cornering (from "
        "lateral acceleration), as the insurance app detects them, in [from, to), at most 31 "
        "days; each only where the caller may read the signal it is derived from",
    )


async def telemetry_context(request: Request) -> TelemetryContext:
    """The context of one GraphQL request, from the app's state (as the REST routes use it)."""
    state = request.app.state
    settings: IndexerSettings = state.settings
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    bearer = credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None
    now = state.clock()

    def claims(token: str) -> TokenClaims:
        return token_cache(state).verify(token, state.jwt_key, settings.siwe_domain, now)

    return TelemetryContext(
        engine=get_read_engine_of(request),
        rights=get_rights_cache(request),
        settings=settings,
        jwt_key=state.jwt_key,
        now_ms=int(now * 1000),
        bearer=bearer,
        token_claims=claims,
        loop=loop_connections(request),
    )


def telemetry_schema(
    executor: type[StrawberryGraphQLCoreExecutionContext] = LeanExecutor,
) -> strawberry.Schema:
    """The Telemetry API's schema, with its limits, run by `executor`: `LeanExecutor` (see
    `indexer.api.graphql.execution`) unless a test compares it with Strawberry's own."""
    rules = [
        *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
    ]
    schema = strawberry.Schema(
        query=Query,
        config=StrawberryConfig(
            scalar_map={
                Int64: strawberry.scalar(
                    name="Int64",
                    description="A 64-bit integer (GraphQL's Int has 32 bits)",
                    serialize=int,
                    parse_value=int,
                ),
                Time: strawberry.scalar(
                    name="Time",
                    description="An RFC 3339 time with its offset, e.g. 2024-05-01T00:00:00Z",
                    serialize=str,
                    parse_value=lambda v: (parse_time(v), v)[1],
                ),
            }
        ),
        execution_context_class=executor,
        # The limiters' rules are made once, so that every request adds the same rule classes
        # and the validation cache (keyed by the rules too) answers a query text seen before
        # (made per request, each request validated its query again: about 3 ms).
        extensions=[
            lambda: AddValidationRules(rules),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
        ],
    )
    return schema


def telemetry_router() -> GraphQLRouter[TelemetryContext, None]:
    """The Telemetry API's router: POST (and GraphiQL on GET) at `/telemetry/query`."""
    return MsgspecGraphQLRouter(
        telemetry_schema(),
        path="/telemetry/query",
        context_getter=telemetry_context,
        tags=["dimo-telemetry"],
        include_in_schema=False,
    )
