"""Transparent usage-based insurance: trips, driving events and a published 0-100 score.

Everything here is a pure, versioned function of verified readings of two DRIVING signals,
`Vehicle.Speed` and `Vehicle.LowVoltageSystemState`; location is never read. The same
function runs for the insurer (through the API) and for the driver who audits it from proofs
(`dimo apps insurance --audit`), and over an exported file, offline (`--verify`).

**Trips** are the indexer's (`indexer.queries.trips`): a reading is active when speed > 0 or
the ignition is ON/START, an OFF/LOCK ends a trip, active readings at most `trip_gap_s` apart
form one trip, kept if it lasts `trip_min_s`.

**Steps.** Inside a trip, two consecutive speed readings at most `max_step_s` apart form a
step; its acceleration is `(v2 - v1) / dt`. A longer gap is no step: nothing is measured
across it. A step's acceleration is the mean over the step, so an event found is real (the
car reached at least that rate at some instant); with sparse readings short events can be
missed, never invented.

**Events** (runs of consecutive steps):

- `harsh_braking`: deceleration >= `harsh_braking_mphps` (default 7 mph/s, about 0.32 g,
  the threshold of published usage-based programmes).
- `harsh_acceleration`: acceleration >= `harsh_acceleration_mphps` (default 7 mph/s).
- `high_speed`: speed at the step's start above `high_speed_kmh` (default 130 km/h). There
  is no map data, so this is an absolute speed, not a speed over the local limit.
- `night`: the step starts between `night_start_hour` and `night_end_hour` (default 00:00 to
  04:00) local time in `timezone` (an IANA name).

**Exposure.** Distance is the integral of speed over the steps (km; no ODOMETER privilege
needed), driving time the sum of the steps' durations.

**Score** (published formula; every weight is a parameter):

    score = clamp(100 - P_braking - P_acceleration - P_high_speed - P_night - P_mileage, 0, 100)
    P_braking      = braking_weight      * harsh brakings per 100 km
    P_acceleration = acceleration_weight * harsh accelerations per 100 km
    P_high_speed   = high_speed_weight   * percent of driving time above high_speed_kmh
    P_night        = night_weight        * percent of driving time at night
    P_mileage      = mileage_weight      * max(0, km per 30 days - reference_km_per_30d) / 1000

Rates per 100 km divide by `max(distance, min_distance_km)`, so a short window cannot blow a
single event up. The result lists its inputs: every bundle `(batch_id, leaf_index)` a reading
came from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from apps.audit import AppInputs
from apps.columnar import Columns, keys_to_refs, trip_spans
from apps.exceptions import AppParameterInvalid
from protocol.readings import IGNITION, IGNITION_OFF, IGNITION_ON, SPEED

#: Method version; a change of formula or defaults gets a new one.
VERSION: Final = "dimo-insurance-v1"
#: The signals the score reads (both need DRIVING).
SIGNALS: Final = (SPEED, IGNITION)
#: 1 mph/s in km/h per second.
KMH_PER_S_PER_MPHPS: Final = 1.609344
#: Event kinds, in the order a trip lists its counts.
EVENT_KINDS: Final = ("harsh_braking", "harsh_acceleration", "high_speed", "night")
_HOUR_MS: Final = 3_600_000
_QUARTER_HOUR_MS: Final = 900_000
_DAY_MS: Final = 86_400_000


class ReadingLike(Protocol):
    """What the score reads of a reading: `indexer.queries.Reading`, or a result row with the
    same names (batch jobs pass rows as they come)."""

    @property
    def ts(self) -> int: ...
    @property
    def value(self) -> float | str: ...
    @property
    def batch_id(self) -> int: ...
    @property
    def leaf_index(self) -> int: ...


# -------------------------------------------------------------------------------------------
# parameters
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreParams:
    """The published parameters of the score (defaults are `VERSION`'s).

    Attributes:
        harsh_braking_mphps: Deceleration that makes a harsh braking, mph/s.
        harsh_acceleration_mphps: Acceleration that makes a harsh acceleration, mph/s.
        high_speed_kmh: Speed above which driving counts as high-speed exposure, km/h.
        night_start_hour: Local hour night driving starts (inclusive), 0-23.
        night_end_hour: Local hour night driving ends (exclusive), 1-24.
        timezone: IANA time zone of "local time", e.g. "Europe/Berlin".
        max_step_s: Longest gap between two speed readings that still forms a step, s.
        trip_gap_s: Longest pause inside a trip, s (as `indexer.queries.trips`).
        trip_min_s: Shortest trip kept, s.
        braking_weight: Points per harsh braking per 100 km.
        acceleration_weight: Points per harsh acceleration per 100 km.
        high_speed_weight: Points per percent of driving time above `high_speed_kmh`.
        night_weight: Points per percent of driving time at night.
        mileage_weight: Points per 1,000 km per 30 days above the reference.
        reference_km_per_30d: Mileage that costs nothing, km per 30 days (15,000 km a year).
        min_distance_km: Least distance rates per 100 km divide by, km.
    """

    harsh_braking_mphps: float = 7.0
    harsh_acceleration_mphps: float = 7.0
    high_speed_kmh: float = 130.0
    night_start_hour: int = 0
    night_end_hour: int = 4
    timezone: str = "UTC"
    max_step_s: float = 12.0
    trip_gap_s: float = 300.0
    trip_min_s: float = 240.0
    braking_weight: float = 5.0
    acceleration_weight: float = 2.0
    high_speed_weight: float = 1.0
    night_weight: float = 0.5
    mileage_weight: float = 2.0
    reference_km_per_30d: float = 1250.0
    min_distance_km: float = 10.0

    def __post_init__(self) -> None:
        for name in (
            "harsh_braking_mphps",
            "harsh_acceleration_mphps",
            "high_speed_kmh",
            "max_step_s",
            "trip_gap_s",
            "min_distance_km",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise AppParameterInvalid(name, f"{value!r} must be a positive number")
        for name in (
            "trip_min_s",
            "braking_weight",
            "acceleration_weight",
            "high_speed_weight",
            "night_weight",
            "mileage_weight",
            "reference_km_per_30d",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise AppParameterInvalid(name, f"{value!r} must be a number >= 0")
        if not 0 <= self.night_start_hour < self.night_end_hour <= 24:
            raise AppParameterInvalid(
                "night_start_hour/night_end_hour",
                f"need 0 <= start < end <= 24, got {self.night_start_hour}-{self.night_end_hour}",
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise AppParameterInvalid(
                "timezone", f"{self.timezone!r} is not an IANA time zone, e.g. Europe/Berlin"
            ) from None

    def as_dict(self) -> dict[str, Any]:
        """The parameters as JSON-able data (the `params` of a result)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreParams:
        """Parameters from `as_dict`'s form; unknown names are refused.

        Raises:
            AppParameterInvalid: an unknown name or a bad value.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AppParameterInvalid(unknown[0], f"not a parameter; known: {sorted(known)}")
        return cls(**dict(data))


# -------------------------------------------------------------------------------------------
# results
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One driving event with the readings behind it.

    Attributes:
        kind: One of `EVENT_KINDS`.
        start_ms: Time of the first reading of the event, unix ms.
        end_ms: Time of its last reading, unix ms.
        value: For harsh events the peak rate in mph/s; for high speed the top speed in km/h;
            for night driving the distance in km.
        duration_s: Time the event lasted (sum of its steps), s.
        readings: `[ts, value, batch_id, leaf_index]` of its speed readings: every one for
            harsh events; the first, the peak and the last for exposure runs (all of them are
            among the result's inputs).
        reading_count: How many speed readings the event spans.
    """

    kind: str
    start_ms: int
    end_ms: int
    value: float
    duration_s: float
    readings: list[list[Any]]
    reading_count: int


@dataclass(frozen=True)
class TripScore:
    """One trip's exposure and events.

    Attributes:
        start_ms: First active reading, unix ms.
        end_ms: Last active reading, unix ms.
        distance_km: Integral of speed over the trip's steps.
        driving_s: Sum of the trip's steps.
        high_speed_s: Time above `high_speed_kmh`.
        night_s: Time at night.
        counts: Events per kind.
        events: The events, in time order.
    """

    start_ms: int
    end_ms: int
    distance_km: float
    driving_s: float
    high_speed_s: float
    night_s: float
    counts: dict[str, int]
    events: list[Event]


@dataclass(frozen=True)
class InsuranceScore:
    """A vehicle's driving score over a window, with its breakdown and inputs.

    Attributes:
        version: `VERSION`.
        vehicle_id: The vehicle.
        start_ms: Window start, unix ms (inclusive).
        end_ms: Window end, unix ms (exclusive).
        params: The parameters used.
        score: 0 to 100, higher is safer.
        penalties: Points taken off per term of the formula.
        exposure: Totals: distance, driving time, events, rates.
        trips: Per-trip breakdown.
        inputs: `[batch_id, leaf_index]` of every bundle a reading came from, sorted.
        reading_count: Speed and ignition readings read.
    """

    version: str
    vehicle_id: int
    start_ms: int
    end_ms: int
    params: dict[str, Any]
    score: float
    penalties: dict[str, float]
    exposure: dict[str, float]
    trips: list[TripScore]
    inputs: list[list[int]]
    reading_count: int = field(default=0)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-able data (what the API serves and the audit compares)."""
        return asdict(self)


# -------------------------------------------------------------------------------------------
# the pure function
# -------------------------------------------------------------------------------------------


class _LocalHours:
    """Local hour of a unix ms time in one zone; the offset cached per UTC hour."""

    def __init__(self, zone: str) -> None:
        self.zone = ZoneInfo(zone)
        self.offsets: dict[int, int] = {}

    def hour(self, ts: int) -> int:
        key = ts // _HOUR_MS
        offset = self.offsets.get(key)
        if offset is None:
            moment = datetime.fromtimestamp(key * 3600, UTC).astimezone(self.zone)
            delta = moment.utcoffset()
            offset = 0 if delta is None else int(delta.total_seconds() * 1000)
            self.offsets[key] = offset
        return ((ts + offset) // _HOUR_MS) % 24


def _trip_spans(
    speed: Columns, ignition: Sequence[ReadingLike], p: ScoreParams
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Trip starts and ends (inclusive), as `indexer.queries.trips` segments them
    (`apps.columnar.trip_spans`)."""
    ign = _columns(ignition)
    state = ign.value.tolist()
    on = ign.ts[np.fromiter((v in IGNITION_ON for v in state), bool, len(state))]
    off = ign.ts[np.fromiter((v in IGNITION_OFF for v in state), bool, len(state))]
    return trip_spans(
        speed.ts,
        speed.value > 0,
        on,
        off,
        int(p.trip_gap_s * 1000),
        int(p.trip_min_s * 1000),
    )


def _columns(readings: Sequence[ReadingLike]) -> Columns:
    """Readings (or result rows named like them) as `Columns`."""
    if isinstance(readings, Columns):
        return readings
    return Columns.of(readings)


def _runs(flag: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """`[first, end)` step indexes of the runs of true in `flag`."""
    edges = np.diff(np.concatenate(([0], flag.view(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


class _RunStats:
    """Sums, peaks and the first peak's index of step values over runs `[first, end)`, exactly
    as `values[first:end].sum()`, `.max()` and `.argmax()` give them run by run."""

    def __init__(self, firsts: np.ndarray[Any, Any], ends: np.ndarray[Any, Any]) -> None:
        # reduceat over [first, end, first, end, ...]: every other segment is a run.
        self.bounds = np.stack((firsts, ends), axis=1).reshape(-1)
        self.firsts = firsts
        self.lengths = ends - firsts
        offsets = np.cumsum(self.lengths) - self.lengths
        self.offsets = offsets
        self.steps = np.repeat(firsts - offsets, self.lengths) + np.arange(int(self.lengths.sum()))

    def sums(self, values: np.ndarray[Any, Any]) -> list[float]:
        """Each run's `values[first:end].sum()`, bit for bit: runs of one or two values (most
        events) at once, longer ones one by one (numpy sums those in its own order)."""
        out = np.add.reduceat(np.append(values, 0.0), self.bounds)[::2]
        for i in np.flatnonzero(self.lengths > 2).tolist():
            first = int(self.firsts[i])
            out[i] = values[first : first + int(self.lengths[i])].sum()
        return out.tolist()  # type: ignore[no-any-return]

    def peaks(self, values: np.ndarray[Any, Any]) -> tuple[list[float], list[int]]:
        """Each run's largest value and the step of its first occurrence."""
        top = np.maximum.reduceat(np.append(values, 0.0), self.bounds)[::2]
        inside = values[self.steps]
        at_top = np.where(inside == np.repeat(top, self.lengths), self.steps, len(values))
        at = np.minimum.reduceat(at_top, self.offsets)
        for i in np.flatnonzero(at == len(values)).tolist():  # a NaN in the run: as argmax does
            first = int(self.firsts[i])
            at[i] = first + int(np.argmax(values[first : first + int(self.lengths[i])]))
            top[i] = values[at[i]]
        return top.tolist(), at.tolist()


def harsh_steps(rate_kmhps: Any, p: ScoreParams) -> tuple[Any, Any]:
    """Whether steps of acceleration `rate_kmhps` (km/h per s; a float or an array) are a harsh
    braking and a harsh acceleration. The one definition the score and the triggers'
    `behavior.harshBraking` / `behavior.harshAcceleration` events share."""
    return (
        -rate_kmhps >= p.harsh_braking_mphps * KMH_PER_S_PER_MPHPS,
        rate_kmhps >= p.harsh_acceleration_mphps * KMH_PER_S_PER_MPHPS,
    )


def _trip_scores(
    speed: Sequence[ReadingLike], ignition: Sequence[ReadingLike], p: ScoreParams
) -> list[TripScore]:
    """Every trip's exposure and events (vectorized over the speed readings).

    Step `j` joins speed readings `j` and `j + 1` of one trip no more than `max_step_s`
    apart; every figure below is a sum or a run over such steps.
    """
    speed = _columns(speed)
    if not len(speed):
        trips_only = _trip_spans(Columns.empty(), ignition, p)
        return [
            TripScore(int(a), int(b), 0.0, 0.0, 0.0, 0.0, dict.fromkeys(EVENT_KINDS, 0), [])
            for a, b in zip(*trips_only, strict=True)
        ]
    ts, vs = speed.ts, speed.value
    begins, ends = _trip_spans(speed, ignition, p)
    n_trips = len(begins)
    if n_trips == 0:
        return []
    slot = np.searchsorted(begins, ts, side="right") - 1
    inside = (slot >= 0) & (ts <= ends[np.maximum(slot, 0)])
    trip_of = np.where(inside, slot, -1)
    dt_ms = np.diff(ts)
    valid = (
        (trip_of[:-1] >= 0)
        & (trip_of[:-1] == trip_of[1:])
        & (dt_ms > 0)
        & (dt_ms <= p.max_step_s * 1000)
    )
    dt = dt_ms / 1000
    v0, v1 = vs[:-1], vs[1:]
    step_km = np.where(valid, (v0 + v1) / 2 * dt / 3600, 0.0)
    step_s = np.where(valid, dt, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(valid, (v1 - v0) / np.where(dt > 0, dt, 1.0), 0.0)
    hours = _LocalHours(p.timezone)
    quarter = ts[:-1] // _QUARTER_HOUR_MS  # zone offsets are whole quarter hours
    keys, where = np.unique(quarter, return_inverse=True)
    local = np.array([hours.hour(int(k) * _QUARTER_HOUR_MS) for k in keys], dtype=np.int64)
    hour = local[where]
    braking, accelerating = harsh_steps(rate, p)
    flags = {
        "harsh_braking": valid & braking,
        "harsh_acceleration": valid & accelerating,
        "high_speed": valid & (v0 > p.high_speed_kmh),
        "night": valid & (hour >= p.night_start_hour) & (hour < p.night_end_hour),
    }
    measures = {
        "harsh_braking": -rate / KMH_PER_S_PER_MPHPS,
        "harsh_acceleration": rate / KMH_PER_S_PER_MPHPS,
        "high_speed": v0,
        "night": np.zeros_like(v0),
    }
    step_trip = np.where(valid, trip_of[:-1], n_trips)
    sums = {
        name: np.bincount(step_trip, weights=w, minlength=n_trips + 1)[:n_trips]
        for name, w in (
            ("km", step_km),
            ("s", step_s),
            ("fast", np.where(flags["high_speed"], step_s, 0.0)),
            ("night", np.where(flags["night"], step_s, 0.0)),
        )
    }
    events: list[list[Event]] = [[] for _ in range(n_trips)]
    rows = (ts.tolist(), vs.tolist(), speed.batch.tolist(), speed.leaf.tolist())

    def shown_at(i: int) -> list[Any]:
        return [rows[0][i], rows[1][i], rows[2][i], rows[3][i]]

    for kind in EVENT_KINDS:
        starts, stops = _runs(flags[kind])
        if not len(starts):
            continue
        stats = _RunStats(starts, stops)
        peaks, tops = stats.peaks(measures[kind])
        durations = stats.sums(step_s)
        distances = stats.sums(step_km) if kind == "night" else peaks
        trips = trip_of[starts].tolist()
        runs = zip(
            starts.tolist(), stops.tolist(), peaks, tops, durations, distances, trips, strict=True
        )
        for first, end, peak, at, duration, distance, trip in runs:
            if kind in ("harsh_braking", "harsh_acceleration"):
                shown = [shown_at(i) for i in range(first, end + 1)]
                value = peak
            else:
                shown = [shown_at(i) for i in sorted({first, at, end})]
                value = peak if kind == "high_speed" else distance
            events[trip].append(
                Event(
                    kind,
                    rows[0][first],
                    rows[0][end],
                    round(value, 6),
                    round(duration, 3),
                    shown,
                    end + 1 - first,
                )
            )
    out = []
    for t in range(n_trips):
        found = sorted(events[t], key=lambda e: (e.start_ms, EVENT_KINDS.index(e.kind)))
        out.append(
            TripScore(
                int(begins[t]),
                int(ends[t]),
                round(float(sums["km"][t]), 6),
                round(float(sums["s"][t]), 3),
                round(float(sums["fast"][t]), 3),
                round(float(sums["night"][t]), 3),
                {k: sum(1 for e in found if e.kind == k) for k in EVENT_KINDS},
                found,
            )
        )
    return out


def _bundle_refs(*series: Sequence[ReadingLike]) -> list[list[int]]:
    """`[batch_id, leaf_index]` of every bundle the readings come from, sorted, unique."""
    keys = [_columns(s).keys() for s in series if len(s)]
    return keys_to_refs(np.concatenate(keys)) if keys else []


def score(
    vehicle_id: int,
    start_ms: int,
    end_ms: int,
    speed: Sequence[ReadingLike],
    ignition: Sequence[ReadingLike],
    params: ScoreParams | None = None,
) -> InsuranceScore:
    """The driving score of a vehicle over `[start_ms, end_ms)` from its verified readings.

    Args:
        vehicle_id: The vehicle.
        start_ms: Window start, unix ms, inclusive.
        end_ms: Window end, unix ms, exclusive.
        speed: `Vehicle.Speed` readings (km/h) in the window, sorted by (ts, batch, leaf).
        ignition: `Vehicle.LowVoltageSystemState` readings in the window, sorted likewise.
        params: The published parameters; None for `VERSION`'s defaults.

    Returns:
        The score, its penalties, exposure, per-trip breakdown and inputs.

    Raises:
        AppParameterInvalid: an empty window.
    """
    p = params or ScoreParams()
    if end_ms <= start_ms:
        raise AppParameterInvalid("start/end", f"[{start_ms}, {end_ms}) is empty")
    speed, ignition = _columns(speed), _columns(ignition)
    trips = _trip_scores(speed, ignition, p)
    km = sum(t.distance_km for t in trips)
    seconds = sum(t.driving_s for t in trips)
    n_brake = sum(t.counts["harsh_braking"] for t in trips)
    n_accel = sum(t.counts["harsh_acceleration"] for t in trips)
    fast_s = sum(t.high_speed_s for t in trips)
    night_s = sum(t.night_s for t in trips)
    per_100 = 100 / max(km, p.min_distance_km)
    km_30d = km * 30 * _DAY_MS / (end_ms - start_ms)
    share = 100 / seconds if seconds > 0 else 0.0
    penalties = {
        "braking": p.braking_weight * n_brake * per_100,
        "acceleration": p.acceleration_weight * n_accel * per_100,
        "high_speed": p.high_speed_weight * fast_s * share,
        "night": p.night_weight * night_s * share,
        "mileage": p.mileage_weight * max(0.0, km_30d - p.reference_km_per_30d) / 1000,
    }
    penalties = {k: round(v, 6) for k, v in penalties.items()}
    value = min(100.0, max(0.0, 100.0 - sum(penalties.values())))
    inputs = _bundle_refs(speed, ignition)
    return InsuranceScore(
        version=VERSION,
        vehicle_id=vehicle_id,
        start_ms=start_ms,
        end_ms=end_ms,
        params=p.as_dict(),
        score=round(value, 4),
        penalties=penalties,
        exposure={
            "trips": len(trips),
            "distance_km": round(km, 6),
            "driving_s": round(seconds, 3),
            "km_per_30d": round(km_30d, 6),
            "harsh_braking": n_brake,
            "harsh_acceleration": n_accel,
            "harsh_braking_per_100km": round(n_brake * per_100, 6),
            "harsh_acceleration_per_100km": round(n_accel * per_100, 6),
            "high_speed_s": round(fast_s, 3),
            "night_s": round(night_s, 3),
        },
        trips=trips,
        inputs=inputs,
        reading_count=len(speed) + len(ignition),
    )


def compute(
    inputs: AppInputs, context: Mapping[str, Any], start_ms: int, end_ms: int
) -> dict[str, Any]:
    """`score` in the applications' audit form: inputs and served context to the result."""
    return score(
        int(context["vehicle_id"]),
        start_ms,
        end_ms,
        inputs.get(SPEED),
        inputs.get(IGNITION),
        ScoreParams.from_dict(context["params"]),
    ).to_dict()
