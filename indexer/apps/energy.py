"""Grid integration: charging sessions and their flexibility, grid regions declared by owners,
and demand-response settlement against the "10 of 10" baseline, with OpenADR 3 resources.

Pure, versioned functions of verified readings (`VERSION`); the API (`/apps/energy/...`)
gathers the readings a caller may use and stores the OpenADR objects in the tables below.

**Power.** `Charging.Power` readings (kW into the car) are held from one reading to the next,
at most `max_hold_s`; past that, and where there is no reading, the car draws nothing (its
buses sleep when it is not charging). Energy over a window is the integral of that step
function clipped to the window.

**Sessions.** Runs of `Charging.IsCharging` true (the indexer's segmentation, as
`indexer.queries.charging_sessions`). Plug-in and plug-out are the first and last
`IsChargingCableConnected` true readings of the run of such readings around the session, or
the session's own ends when the car does not report the cable. Flexibility: charging at the
session's peak power needs `energy / peak` hours; the rest of the plugged time is slack. The
energy that could move is `min(energy, peak * slack)` kWh, and the load that could be shed is
the mean power while charging (kW), for as long as the slack lasts.

**Baseline ("10 of 10").** The baseline of an event window is the mean energy over the same
local clock window on the 10 most recent comparable days before it (weekdays for a weekday,
weekend days for a weekend day) in the last `lookback_days`, skipping days of other events of
the same programme and days the caller may not read. Fewer than `min_baseline_days` such
days: no settlement for that vehicle. Delivered energy is baseline minus actual; a vehicle
with no power or charging reading inside the window delivered nothing measurable (a silent
device is not a reduction).

**Regions.** The owner declares a vehicle's grid region with an EIP-712 signature
`GridRegion(uint256 vehicleId,string region,uint64 issuedAt)` under the DIMO domain of the
`VehicleId` contract. The API stores it; anyone can check it. It needs no position; a
declaration by a former owner no longer counts.

**Geometric regions.** A utility may publish a region as a GeoJSON (RFC 7946) Polygon or
MultiPolygon in WGS 84 longitude/latitude, with a name. A vehicle is placed where its load is:
at the instant of its first `IsCharging` true reading in the window that the caller may read
(where it charges), or at the window start if there is none, it is at its latest position
fix (a `CurrentLocation.Latitude` and `.Longitude` reading at the same time) at or before
that instant and no older than `position_max_age_s` (a parked car's device sleeps). The point is in
the region if it is in a polygon's exterior ring and in none of its holes (even-odd rule, exact
arithmetic; a point on a ring counts as inside). Rings must be closed; their orientation is not
used. A region crossing the antimeridian must be split there into a MultiPolygon, as RFC 7946
asks; no wrapping is done. Position placement needs LOCATION: a vehicle whose position the
caller may not read falls back to its owner's declaration of the region's name, or is
withheld. Results name the method of each placement and the readings behind it
(`PLACEMENT_VERSION`), never the coordinates.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from itertools import pairwise
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from apps.columnar import as_columns, keys_to_refs, seq_sum
from indexer.db import metadata
from indexer.exceptions import AppParameterInvalid
from indexer.queries import (
    CHARGE_POWER,
    IS_CHARGING,
    SOC,
    Reading,
    _segments,  # the indexer's own session segmentation, so sessions here are the API's
)
from protocol.crypto import keccak256, recover_address
from protocol.eip712 import Eip712Domain, type_hash

#: Method version; a change of formula or defaults gets a new one.
VERSION: Final = "dimo-energy-v1"
#: `Charging.IsChargingCableConnected`: plug-in and plug-out.
PLUGGED: Final = "Vehicle.Powertrain.TractionBattery.Charging.IsChargingCableConnected"
#: Signals the session view reads (SoC needs BATTERY, the others CHARGING).
SESSION_SIGNALS: Final = (IS_CHARGING, CHARGE_POWER, PLUGGED, SOC)
#: Signals a settlement reads (CHARGING).
SETTLEMENT_SIGNALS: Final = (CHARGE_POWER, IS_CHARGING)
#: EIP-712 type of an owner's grid region declaration.
GRID_REGION_TYPE: Final = "GridRegion(uint256 vehicleId,string region,uint64 issuedAt)"
GRID_REGION_TYPEHASH: Final = type_hash(GRID_REGION_TYPE)
#: What a region name may look like (e.g. an ENTSO-E bidding zone, a utility's area code).
REGION_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
#: Method version of the placement of vehicles in geometric regions.
PLACEMENT_VERSION: Final = "dimo-geo-placement-v1"
#: The position signals (LOCATION).
LATITUDE: Final = "Vehicle.CurrentLocation.Latitude"
LONGITUDE: Final = "Vehicle.CurrentLocation.Longitude"
POSITION_SIGNALS: Final = (LATITUDE, LONGITUDE)
#: Most vertices a published geometric region may have, over all its rings.
MAX_AREA_VERTICES: Final = 20_000
_DAY_MS: Final = 86_400_000

# -------------------------------------------------------------------------------------------
# storage: declarations and OpenADR 3 objects
# -------------------------------------------------------------------------------------------

#: The owner's signed grid region of each vehicle (the latest declaration).
grid_regions = Table(
    "app_grid_regions",
    metadata,
    Column("vehicle_id", BigInteger, primary_key=True),
    Column("region", String(64), nullable=False, index=True),
    # The owner who signed, lowercase 0x address, and when (unix s, signed).
    Column("owner", String(42), nullable=False),
    Column("issued_at", BigInteger, nullable=False),
    Column("signature", LargeBinary, nullable=False),
)

#: OpenADR 3 programs, as JSON, with the utility that published each.
oadr_programs = Table(
    "app_oadr_programs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", String(42), nullable=False, index=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
)

#: OpenADR 3 events: a region, a window and a requested reduction.
oadr_events = Table(
    "app_oadr_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("program_id", Integer, ForeignKey("app_oadr_programs.id"), nullable=False, index=True),
    Column("owner", String(42), nullable=False),
    Column("region", String(64), nullable=False, index=True),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("requested_kw", Float, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
)

#: OpenADR 3 reports: the settlement of an event, with the full result.
oadr_reports = Table(
    "app_oadr_reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", Integer, ForeignKey("app_oadr_events.id"), nullable=False, index=True),
    Column("owner", String(42), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Column("settlement", Text, nullable=False),
)

ENERGY_TABLES: Final = (grid_regions, oadr_programs, oadr_events, oadr_reports)

#: Geometric regions published by utilities (immutable: a new shape gets a new name).
geo_regions = Table(
    "app_geo_regions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", String(42), nullable=False),
    Column("name", String(64), nullable=False),
    # The area as canonical GeoJSON (`GeoArea.as_geojson`, `dumps`).
    Column("geometry", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    UniqueConstraint("owner", "name"),
)

#: Tables added after `ENERGY_TABLES` (migration 0008; `ENERGY_TABLES` stays what 0006 made).
GEO_REGION_TABLES: Final = (geo_regions,)


# -------------------------------------------------------------------------------------------
# parameters
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnergyParams:
    """The published parameters of sessions, baselines and settlement.

    Attributes:
        max_hold_s: Longest a power reading holds without a newer one, s.
        session_gap_s: Longest pause inside a charging session, s.
        session_min_s: Shortest session kept, s.
        baseline_days: Comparable days the baseline averages (10 of "10 of 10").
        lookback_days: How far back comparable days are looked for.
        min_baseline_days: Fewest comparable days a settlement needs.
        timezone: IANA zone whose local days and clock times the baseline follows.
        price_dimo_per_kwh: What the utility pays per delivered kWh, DIMO.
        position_max_age_s: Oldest a position fix may be to place a vehicle (geometric
            regions), s before the instant it is placed at.
    """

    max_hold_s: float = 120.0
    session_gap_s: float = 300.0
    session_min_s: float = 60.0
    baseline_days: int = 10
    lookback_days: int = 45
    min_baseline_days: int = 5
    timezone: str = "UTC"
    price_dimo_per_kwh: float = 0.0
    position_max_age_s: float = 86_400.0

    def __post_init__(self) -> None:
        for name in ("max_hold_s", "session_gap_s", "position_max_age_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise AppParameterInvalid(name, f"{value!r} must be a positive number")
        for name in ("session_min_s", "price_dimo_per_kwh"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise AppParameterInvalid(name, f"{value!r} must be a number >= 0")
        if not 1 <= self.baseline_days <= 60:
            raise AppParameterInvalid("baseline_days", f"{self.baseline_days} is not in 1..60")
        if not self.baseline_days <= self.lookback_days <= 366:
            raise AppParameterInvalid(
                "lookback_days", f"{self.lookback_days} is not in baseline_days..366"
            )
        if not 1 <= self.min_baseline_days <= self.baseline_days:
            raise AppParameterInvalid(
                "min_baseline_days", f"{self.min_baseline_days} is not in 1..baseline_days"
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise AppParameterInvalid(
                "timezone", f"{self.timezone!r} is not an IANA time zone, e.g. Europe/Berlin"
            ) from None

    def as_dict(self) -> dict[str, Any]:
        """The parameters as JSON-able data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnergyParams:
        """Parameters from `as_dict`'s form; unknown names are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AppParameterInvalid(unknown[0], f"not a parameter; known: {sorted(known)}")
        return cls(**dict(data))


# -------------------------------------------------------------------------------------------
# energy from power readings
# -------------------------------------------------------------------------------------------


def energy_kwh(
    power: Sequence[Reading], start_ms: int, end_ms: int, max_hold_s: float
) -> tuple[float, Sequence[Reading]]:
    """Energy drawn over `[start_ms, end_ms)` from `Charging.Power` readings (kW).

    Each reading holds until the next one or for `max_hold_s`, whichever comes first.

    Args:
        power: Readings sorted by time (a list or `Columns`); those before the window may
            hold into it.
        start_ms: Window start, unix ms.
        end_ms: Window end, unix ms.
        max_hold_s: Longest hold, s.

    Returns:
        The energy in kWh, and the readings that contributed to it (in time order): those
        that hold for some time inside the window, and those in it that hold for none.
    """
    cols = as_columns(power)
    hold = int(max_hold_s * 1000)
    # A reading older than the hold cannot reach the window: start after those.
    first = int(np.searchsorted(cols.ts, start_ms - hold, side="left"))
    stop = max(first, int(np.searchsorted(cols.ts, end_ms, side="left")))
    ts = cols.ts[first:stop]
    until = ts + hold
    following = cols.ts[first + 1 : stop + 1]  # the next reading of each (the last may have none)
    until[: len(following)] = np.minimum(until[: len(following)], following)
    a, b = np.maximum(ts, start_ms), np.minimum(until, end_ms)
    holds = b > a
    total = seq_sum(cols.value[first:stop][holds] * (b - a)[holds] / 3_600_000)
    return total, cols[first:stop].take(holds | (ts >= start_ms))


# -------------------------------------------------------------------------------------------
# sessions and flexibility
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """One charging session and how flexible it was.

    Attributes:
        plug_in_ms: First cable-connected reading (or the session start), unix ms.
        plug_out_ms: Last cable-connected reading (or the session end), unix ms.
        start_ms: First charging reading, unix ms.
        end_ms: Last charging reading, unix ms.
        energy_kwh: Energy into the car while charging.
        peak_kw: Highest power reading in the session.
        mean_kw: Energy over the charging time.
        soc_start: State of charge at the first reading in the session, percent, or None.
        soc_end: State of charge at the last reading in the session, or None.
        plugged_h: Hours plugged in.
        needed_h: Hours the energy needs at peak power.
        slack_h: Plugged hours not needed.
        shiftable_kwh: Energy that could move in time, `min(energy, peak * slack)`.
        sheddable_kw: Load that could be shed while the slack lasts (the mean power).
    """

    plug_in_ms: int
    plug_out_ms: int
    start_ms: int
    end_ms: int
    energy_kwh: float
    peak_kw: float
    mean_kw: float
    soc_start: float | None
    soc_end: float | None
    plugged_h: float
    needed_h: float
    slack_h: float
    shiftable_kwh: float
    sheddable_kw: float


def _plug_runs(plugged: Sequence[Reading], gap_ms: int) -> list[tuple[int, int]]:
    marks: list[tuple[int, bool | None]] = [(r.ts, float(r.value) != 0) for r in plugged]
    marks.sort(key=lambda m: (m[0], m[1] is not False))
    return _segments(marks, gap_ms, 0)


def sessions(
    is_charging: Sequence[Reading],
    power: Sequence[Reading],
    soc: Sequence[Reading],
    plugged: Sequence[Reading],
    params: EnergyParams | None = None,
) -> list[Session]:
    """A vehicle's charging sessions with their flexibility, from verified readings.

    Args:
        is_charging: `Charging.IsCharging` readings, sorted by time.
        power: `Charging.Power` readings (kW), sorted.
        soc: State of charge readings (percent), sorted; may be empty (no BATTERY right).
        plugged: `IsChargingCableConnected` readings, sorted; may be empty.
        params: The parameters; None for the defaults.

    Returns:
        The sessions in time order.
    """
    p = params or EnergyParams()
    gap = int(p.session_gap_s * 1000)
    marks: list[tuple[int, bool | None]] = [(r.ts, float(r.value) != 0) for r in is_charging]
    marks.sort(key=lambda m: (m[0], m[1] is not False))
    plug_runs = _plug_runs(plugged, gap)
    power, soc = as_columns(power), as_columns(soc)
    out = []
    for a, b in _segments(marks, gap, int(p.session_min_s * 1000)):
        kwh, _ = energy_kwh(power, a, b + 1, p.max_hold_s)
        peaks = power.value[(power.ts >= a) & (power.ts <= b)].tolist()
        levels = soc.value[(soc.ts >= a) & (soc.ts <= b)].tolist()
        plug_in, plug_out = a, b
        for pa, pb in plug_runs:
            if pa <= b and pb >= a:
                plug_in, plug_out = min(pa, a), max(pb, b)
                break
        peak = max(peaks) if peaks else 0.0
        hours = (b - a) / 3_600_000
        plugged_h = (plug_out - plug_in) / 3_600_000
        needed_h = kwh / peak if peak > 0 else 0.0
        slack_h = max(0.0, plugged_h - needed_h)
        mean = kwh / hours if hours > 0 else 0.0
        out.append(
            Session(
                plug_in,
                plug_out,
                a,
                b,
                round(kwh, 6),
                round(peak, 6),
                round(mean, 6),
                levels[0] if levels else None,
                levels[-1] if levels else None,
                round(plugged_h, 6),
                round(needed_h, 6),
                round(slack_h, 6),
                round(min(kwh, peak * slack_h), 6),
                round(mean if slack_h > 0 else 0.0, 6),
            )
        )
    return out


def flexibility_summary(per_vehicle: Mapping[int, Sequence[Session]]) -> dict[str, Any]:
    """Totals of sessions over vehicles (a region's flexibility)."""
    all_sessions = [s for ss in per_vehicle.values() for s in ss]
    return {
        "vehicles": len(per_vehicle),
        "vehicles_with_sessions": sum(1 for ss in per_vehicle.values() if ss),
        "sessions": len(all_sessions),
        "energy_kwh": round(sum(s.energy_kwh for s in all_sessions), 6),
        "shiftable_kwh": round(sum(s.shiftable_kwh for s in all_sessions), 6),
        "plugged_h": round(sum(s.plugged_h for s in all_sessions), 6),
        "slack_h": round(sum(s.slack_h for s in all_sessions), 6),
        "mean_sheddable_kw": round(
            sum(s.sheddable_kw * s.slack_h for s in all_sessions)
            / max(1e-9, sum(s.slack_h for s in all_sessions)),
            6,
        )
        if all_sessions
        else 0.0,
    }


# -------------------------------------------------------------------------------------------
# baseline and settlement
# -------------------------------------------------------------------------------------------


def _local_day(ts_ms: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(zone)


def local_date(ts_ms: int, timezone: str) -> str:
    """The local date (`YYYY-MM-DD`) of a unix ms time in an IANA zone."""
    return _local_day(ts_ms, ZoneInfo(timezone)).date().isoformat()


def _is_weekend(day: datetime) -> bool:
    return day.weekday() >= 5


def comparable_windows(
    start_ms: int,
    end_ms: int,
    params: EnergyParams,
    *,
    excluded_days: Sequence[str] = (),
) -> list[tuple[int, int]]:
    """The same local clock window on the comparable days before the event, newest first.

    Args:
        start_ms: Event window start, unix ms.
        end_ms: Event window end, unix ms.
        params: `timezone` and `lookback_days` are used.
        excluded_days: Local dates (`YYYY-MM-DD`) to skip (days of other events).

    Returns:
        Up to `lookback_days` windows `(start_ms, end_ms)` on days of the event's day type,
        newest first; the caller keeps the first `baseline_days` it may read.
    """
    zone = ZoneInfo(params.timezone)
    local_start = _local_day(start_ms, zone)
    duration = end_ms - start_ms
    weekend = _is_weekend(local_start)
    skip = set(excluded_days)
    out = []
    for k in range(1, params.lookback_days + 1):
        day = (local_start.replace(tzinfo=None) - timedelta(days=k)).replace(tzinfo=zone)
        if _is_weekend(day) != weekend or day.date().isoformat() in skip:
            continue
        a = int(day.timestamp() * 1000)
        out.append((a, a + duration))
    return out


@dataclass(frozen=True)
class VehicleDelivery:
    """One vehicle's delivered reduction in an event.

    Attributes:
        vehicle_id: The vehicle.
        status: `settled`, or why not: `no-data` (no reading in the window),
            `too-few-baseline-days`.
        baseline_windows: The comparable windows averaged, `[start_ms, end_ms]`.
        baseline_day_kwh: Energy in each of them.
        baseline_kwh: Their mean.
        actual_kwh: Energy in the event window.
        delivered_kwh: Baseline minus actual (negative: more load than usual).
        delivered_kw: Delivered energy over the window's hours.
        paid_kwh: `max(0, delivered_kwh)` when settled, else 0.
        inputs: `[batch_id, leaf_index]` of every bundle a reading came from.
    """

    vehicle_id: int
    status: str
    baseline_windows: list[list[int]]
    baseline_day_kwh: list[float]
    baseline_kwh: float
    actual_kwh: float
    delivered_kwh: float
    delivered_kw: float
    paid_kwh: float
    inputs: list[list[int]]

    def as_dict(self) -> dict[str, Any]:
        """`dataclasses.asdict` of the delivery, without its generic deep copy (a settlement
        lists thousands of vehicles with thousands of inputs each)."""
        return {
            "vehicle_id": self.vehicle_id,
            "status": self.status,
            "baseline_windows": [list(w) for w in self.baseline_windows],
            "baseline_day_kwh": list(self.baseline_day_kwh),
            "baseline_kwh": self.baseline_kwh,
            "actual_kwh": self.actual_kwh,
            "delivered_kwh": self.delivered_kwh,
            "delivered_kw": self.delivered_kw,
            "paid_kwh": self.paid_kwh,
            "inputs": [list(ref) for ref in self.inputs],
        }


def deliver(
    vehicle_id: int,
    start_ms: int,
    end_ms: int,
    windows: Sequence[tuple[int, int]],
    power: Sequence[Reading],
    is_charging: Sequence[Reading],
    params: EnergyParams,
) -> VehicleDelivery:
    """One vehicle's delivered reduction over `[start_ms, end_ms)` against its baseline.

    Args:
        vehicle_id: The vehicle.
        start_ms: Event window start, unix ms.
        end_ms: Event window end, unix ms.
        windows: The comparable windows the caller may read, newest first (the first
            `baseline_days` are used).
        power: `Charging.Power` readings covering the event and baseline windows (and up to
            `max_hold_s` before each), sorted.
        is_charging: `Charging.IsCharging` readings, sorted.
        params: The parameters.
    """
    chosen = list(windows[: params.baseline_days])
    power, charging = as_columns(power), as_columns(is_charging)
    days: list[float] = []
    used: list[NDArray[np.int64]] = []
    for a, b in chosen:
        kwh, readings = energy_kwh(power, a, b, params.max_hold_s)
        days.append(round(kwh, 6))
        used.append(as_columns(readings).keys())
    actual, readings = energy_kwh(power, start_ms, end_ms, params.max_hold_s)
    used.append(as_columns(readings).keys())
    seen = charging.take((charging.ts >= start_ms) & (charging.ts < end_ms))
    used.append(seen.keys())
    in_window = bool(((power.ts >= start_ms) & (power.ts < end_ms)).any()) or len(seen) > 0
    baseline = sum(days) / len(days) if days else 0.0
    delivered = baseline - actual
    hours = (end_ms - start_ms) / 3_600_000
    if len(days) < params.min_baseline_days:
        status = "too-few-baseline-days"
    elif not in_window:
        status = "no-data"
    else:
        status = "settled"
    return VehicleDelivery(
        vehicle_id,
        status,
        [[a, b] for a, b in chosen],
        days,
        round(baseline, 6),
        round(actual, 6),
        round(delivered, 6),
        round(delivered / hours, 6),
        round(max(0.0, delivered), 6) if status == "settled" else 0.0,
        keys_to_refs(np.concatenate(used)),
    )


def settle(
    event: Mapping[str, Any],
    deliveries: Sequence[VehicleDelivery],
    params: EnergyParams,
    *,
    withheld: Sequence[Mapping[str, Any]] = (),
    placement: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The settlement of a demand-response event from its vehicles' deliveries.

    Args:
        event: `id`, `program_id`, `region`, `start_ms`, `end_ms`, `requested_kw`.
        deliveries: One per participating vehicle.
        params: The parameters (the price is `price_dimo_per_kwh`).
        withheld: Vehicles of the region left out, with the reason (e.g. not covered).
        placement: For a geometric region, how its vehicles were placed (`placement_record`);
            the settlement then carries it as `placement`.

    Returns:
        The settlement: per vehicle delivered kWh with inputs, totals against the request,
        and the payment in DIMO (wei) per vehicle.
    """
    hours = (int(event["end_ms"]) - int(event["start_ms"])) / 3_600_000
    settled = [d for d in deliveries if d.status == "settled"]
    delivered = sum(d.paid_kwh for d in settled)
    price_wei = round(params.price_dimo_per_kwh * 10**18)
    wei = {d.vehicle_id: round(d.paid_kwh * price_wei) for d in settled if d.paid_kwh > 0}
    amounts = [
        {"vehicle_id": d.vehicle_id, "kwh": d.paid_kwh, "wei": str(wei[d.vehicle_id])}
        for d in settled
        if d.vehicle_id in wei
    ]
    requested = float(event["requested_kw"])
    extra = {} if placement is None else {"placement": dict(placement)}
    return {
        **extra,
        "version": VERSION,
        "event_id": int(event["id"]),
        "program_id": int(event["program_id"]),
        "region": str(event["region"]),
        "start_ms": int(event["start_ms"]),
        "end_ms": int(event["end_ms"]),
        "requested_kw": requested,
        "params": params.as_dict(),
        "baseline": f"mean of the same window on the {params.baseline_days} most recent "
        "comparable days (weekday/weekend), other event days skipped",
        "vehicles": [d.as_dict() for d in sorted(deliveries, key=lambda d: d.vehicle_id)],
        "withheld": list(withheld),
        "totals": {
            "vehicles": len(deliveries),
            "settled": len(settled),
            "delivered_kwh": round(delivered, 6),
            "delivered_kw": round(delivered / hours, 6),
            "share_of_request": round(delivered / hours / requested, 6) if requested > 0 else 0.0,
        },
        "payment": {
            "currency": "DIMO",
            "price_dimo_per_kwh": params.price_dimo_per_kwh,
            "total_wei": str(sum(wei.values())),
            "amounts": amounts,
        },
    }


def load_profile(
    power: Sequence[Reading],
    start_ms: int,
    end_ms: int,
    windows: Sequence[tuple[int, int]],
    params: EnergyParams,
    step_ms: int = 300_000,
) -> tuple[list[float], list[float]]:
    """A vehicle's mean load per `step_ms` bucket of the event window, and its baseline's.

    Returns:
        `(actual_kw, baseline_kw)`, one value per bucket from `start_ms`; the baseline of a
        bucket is the mean over `windows` (the first `baseline_days`) of the same bucket.
    """
    chosen = list(windows[: params.baseline_days])
    power = as_columns(power)
    actual: list[float] = []
    baseline: list[float] = []
    for a in range(start_ms, end_ms, step_ms):
        b = min(a + step_ms, end_ms)
        span_h = (b - a) / 3_600_000
        actual.append(energy_kwh(power, a, b, params.max_hold_s)[0] / span_h)
        days = [
            energy_kwh(power, w + (a - start_ms), w + (b - start_ms), params.max_hold_s)[0]
            for w, _ in chosen
        ]
        baseline.append(sum(days) / len(days) / span_h if days else 0.0)
    return actual, baseline


def delivery_chart(settlement: Mapping[str, Any]) -> bytes:
    """Delivered load against the baseline of a settled event, as PNG."""
    import matplotlib.pyplot as plt

    from indexer.apps.charts import png

    profile = settlement["profile"]
    step_h = profile["step_ms"] / 3_600_000
    xs = [i * step_h for i in range(len(profile["actual_kw"]))]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.step(xs, profile["baseline_kw"], where="post", color="tab:gray", label="baseline (10 of 10)")
    ax.step(xs, profile["actual_kw"], where="post", color="tab:blue", label="measured load")
    ax.fill_between(
        xs,
        profile["actual_kw"],
        profile["baseline_kw"],
        step="post",
        color="tab:green",
        alpha=0.25,
        label="delivered reduction",
    )
    requested = [b - settlement["requested_kw"] for b in profile["baseline_kw"]]
    ax.step(xs, requested, where="post", color="tab:red", ls="--", lw=0.8, label="requested")
    totals = settlement["totals"]
    ax.set_title(
        f"Event {settlement['event_id']} in {settlement['region']}: "
        f"{totals['delivered_kwh']:.1f} kWh delivered by {totals['settled']} vehicles"
    )
    ax.set_xlabel(f"hours from {iso(settlement['start_ms'])}")
    ax.set_ylabel("load, kW")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return png(fig)


# -------------------------------------------------------------------------------------------
# grid region declarations
# -------------------------------------------------------------------------------------------


def region_digest(domain: Eip712Domain, vehicle_id: int, region: str, issued_at: int) -> bytes:
    """The EIP-712 digest an owner signs to declare `region` for `vehicle_id`."""
    struct = (
        GRID_REGION_TYPEHASH
        + vehicle_id.to_bytes(32, "big")
        + keccak256(region.encode())
        + issued_at.to_bytes(32, "big")
    )
    return domain.digest(keccak256(struct))


def region_typed_data(
    domain: Eip712Domain, vehicle_id: int, region: str, issued_at: int
) -> dict[str, Any]:
    """The declaration as `eth_signTypedData_v4` JSON (what a wallet shows the owner)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "GridRegion": [
                {"name": "vehicleId", "type": "uint256"},
                {"name": "region", "type": "string"},
                {"name": "issuedAt", "type": "uint64"},
            ],
        },
        "primaryType": "GridRegion",
        "domain": domain.as_dict(),
        "message": {"vehicleId": vehicle_id, "region": region, "issuedAt": issued_at},
    }


def region_signer(
    domain: Eip712Domain, vehicle_id: int, region: str, issued_at: int, signature: bytes
) -> str:
    """The address that signed a declaration (EIP-55).

    Raises:
        SignatureError: the signature is malformed or recovers no key.
    """
    return recover_address(region_digest(domain, vehicle_id, region, issued_at), signature)


# -------------------------------------------------------------------------------------------
# geometric regions: areas, point in polygon, placement by position
# -------------------------------------------------------------------------------------------

#: A ring of `(longitude, latitude)` vertices, closed (the first vertex repeated last).
Ring = tuple[tuple[float, float], ...]


def _coordinate(value: Any, low: float, high: float, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: {value!r} is not a number")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{where}: {value!r} is not in [{low}, {high}]")
    return number


def _ring(raw: Any, where: str) -> Ring:
    if not isinstance(raw, list) or len(raw) < 4:
        raise ValueError(f"{where}: a linear ring is a list of at least 4 positions")
    out = []
    for i, position in enumerate(raw):
        if not isinstance(position, list) or not 2 <= len(position) <= 3:
            raise ValueError(f"{where}[{i}]: a position is [longitude, latitude(, altitude)]")
        lon = _coordinate(position[0], -180.0, 180.0, f"{where}[{i}][0] (longitude)")
        lat = _coordinate(position[1], -90.0, 90.0, f"{where}[{i}][1] (latitude)")
        out.append((lon, lat))
    if out[0] != out[-1]:
        raise ValueError(f"{where}: the ring is not closed (its last position must be its first)")
    if len(set(out)) < 3:
        raise ValueError(f"{where}: the ring has fewer than 3 distinct positions")
    return tuple(out)


@dataclass(frozen=True)
class GeoArea:
    """A geometric grid region: polygons of WGS 84 `(longitude, latitude)` rings.

    Attributes:
        polygons: Each polygon's exterior ring first, then its holes.
    """

    polygons: tuple[tuple[Ring, ...], ...]

    @classmethod
    def from_geojson(cls, data: Any) -> GeoArea:
        """The area of a GeoJSON Polygon or MultiPolygon geometry (or a Feature holding one).

        Raises:
            ValueError: not such a geometry, a ring not closed or too short, a coordinate out
                of range, or more than `MAX_AREA_VERTICES` vertices.
        """
        if isinstance(data, dict) and data.get("type") == "Feature":
            data = data.get("geometry")
        if not isinstance(data, dict) or data.get("type") not in ("Polygon", "MultiPolygon"):
            raise ValueError("a GeoJSON Polygon or MultiPolygon geometry is required")
        coords = data.get("coordinates")
        polys = [coords] if data["type"] == "Polygon" else coords
        if not isinstance(polys, list) or not polys:
            raise ValueError("coordinates: at least one polygon is required")
        out = []
        for p, rings in enumerate(polys):
            if not isinstance(rings, list) or not rings:
                raise ValueError(f"coordinates[{p}]: a polygon is a non-empty list of rings")
            out.append(tuple(_ring(r, f"coordinates[{p}][{k}]") for k, r in enumerate(rings)))
        area = cls(tuple(out))
        if area.vertices() > MAX_AREA_VERTICES:
            raise ValueError(f"the area has more than {MAX_AREA_VERTICES} vertices")
        return area

    def vertices(self) -> int:
        """How many positions the rings hold."""
        return sum(len(r) for rings in self.polygons for r in rings)

    def as_geojson(self) -> dict[str, Any]:
        """The area as a GeoJSON MultiPolygon (or Polygon, when it has one polygon)."""
        polys = [[[list(v) for v in ring] for ring in rings] for rings in self.polygons]
        if len(polys) == 1:
            return {"type": "Polygon", "coordinates": polys[0]}
        return {"type": "MultiPolygon", "coordinates": polys}

    def bbox(self) -> list[float]:
        """`[west, south, east, north]` of the exterior rings."""
        xs = [x for rings in self.polygons for x, _ in rings[0]]
        ys = [y for rings in self.polygons for _, y in rings[0]]
        return [min(xs), min(ys), max(xs), max(ys)]

    def contains(self, lon: float, lat: float) -> bool:
        """Whether the point is in the area: in some polygon's exterior ring and in none of its
        holes; a point on any ring counts as inside."""
        for rings in self.polygons:
            outer = _ring_side(rings[0], lon, lat)
            if outer < 0:
                continue
            if outer == 0:
                return True
            sides = [_ring_side(hole, lon, lat) for hole in rings[1:]]
            if all(side <= 0 for side in sides):
                return True
        return False


def _ring_side(ring: Ring, x: float, y: float) -> int:
    """1 if `(x, y)` is inside the ring (even-odd rule), 0 on it, -1 outside; exact."""
    inside = False
    px, py = Fraction(x), Fraction(y)
    for (ax, ay), (bx, by) in pairwise(ring):
        in_box = min(ax, bx) <= x <= max(ax, bx) and min(ay, by) <= y <= max(ay, by)
        straddles = (ay > y) != (by > y)
        if not (in_box or straddles):
            continue
        fax, fay = Fraction(ax), Fraction(ay)
        cross = (Fraction(bx) - fax) * (py - fay) - (px - fax) * (Fraction(by) - fay)
        if in_box and cross == 0:
            return 0
        # The edge crosses the horizontal line through the point right of it.
        if straddles and (cross > 0) == (by > ay):
            inside = not inside
    return 1 if inside else -1


@dataclass(frozen=True)
class Placement:
    """Where one vehicle was placed for a window, and how.

    Attributes:
        vehicle_id: The vehicle.
        method: `position` (its position fix) or `declared` (its owner's declaration).
        inside: Whether it is in the region.
        at_ms: The instant it was placed at: its first charging reading in the window, else
            the window start (None for a declaration).
        fix_ms: Time of the position fix used (None for a declaration).
        inputs: `[batch_id, leaf_index]` of the readings behind it: the latitude and longitude
            of the fix, and the charging reading that set `at_ms` if one did.
    """

    vehicle_id: int
    method: str
    inside: bool
    at_ms: int | None
    fix_ms: int | None
    inputs: list[list[int]]


def placement_instant(is_charging: Sequence[Reading], start_ms: int, end_ms: int) -> int:
    """Where the load is: the first `IsCharging` true reading in `[start_ms, end_ms)`, else
    `start_ms`."""
    for r in is_charging:
        if start_ms <= r.ts < end_ms and float(r.value) != 0:
            return r.ts
    return start_ms


def latest_fix(
    lat: Sequence[Reading], lon: Sequence[Reading], at_ms: int, max_age_ms: int
) -> tuple[Reading, Reading] | None:
    """The latest (latitude, longitude) pair of readings at one time in `[at_ms - max_age_ms,
    at_ms]`; of several at that time, the one of the latest bundle. None if there is none."""
    lons: dict[int, Reading] = {}
    for r in lon:
        if at_ms - max_age_ms <= r.ts <= at_ms:
            lons[r.ts] = max(r, lons.get(r.ts, r), key=lambda x: (x.batch_id, x.leaf_index))
    best: tuple[Reading, Reading] | None = None
    for r in lat:
        if r.ts not in lons:
            continue
        if best is None or (r.ts, r.batch_id, r.leaf_index) > (
            best[0].ts,
            best[0].batch_id,
            best[0].leaf_index,
        ):
            best = (r, lons[r.ts])
    return best


def place_by_position(
    vehicle_id: int,
    area: GeoArea,
    lat: Sequence[Reading],
    lon: Sequence[Reading],
    is_charging: Sequence[Reading],
    start_ms: int,
    end_ms: int,
    params: EnergyParams,
) -> Placement | None:
    """A vehicle's placement in `area` for `[start_ms, end_ms)` from its verified positions.

    Args:
        vehicle_id: The vehicle.
        area: The geometric region.
        lat: `CurrentLocation.Latitude` readings (degrees), sorted.
        lon: `CurrentLocation.Longitude` readings (degrees), sorted.
        is_charging: `Charging.IsCharging` readings in the window that the caller may read
            (none: the vehicle is placed at the window start).
        start_ms: Window start, unix ms.
        end_ms: Window end, unix ms.
        params: `position_max_age_s` is used.

    Returns:
        The placement (method `position`), or None when no fix is recent enough.
    """
    at = placement_instant(is_charging, start_ms, end_ms)
    fix = latest_fix(lat, lon, at, int(params.position_max_age_s * 1000))
    if fix is None:
        return None
    refs = {(fix[0].batch_id, fix[0].leaf_index), (fix[1].batch_id, fix[1].leaf_index)}
    refs |= {(r.batch_id, r.leaf_index) for r in is_charging if r.ts == at and float(r.value)}
    inside = area.contains(float(fix[1].value), float(fix[0].value))
    return Placement(vehicle_id, "position", inside, at, fix[0].ts, [list(x) for x in sorted(refs)])


def declared_placement(vehicle_id: int) -> Placement:
    """A vehicle placed in the region by its owner's declaration of the region's name."""
    return Placement(vehicle_id, "declared", True, None, None, [])


def placement_record(
    region_id: int,
    name: str,
    area: GeoArea,
    placements: Sequence[Placement],
    withheld: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """How the vehicles of a geometric region were placed, as a result carries it."""
    return {
        "version": PLACEMENT_VERSION,
        "region_id": region_id,
        "name": name,
        "geometry": area.as_geojson(),
        "vehicles": [asdict(p) for p in sorted(placements, key=lambda p: p.vehicle_id)],
        "withheld": list(withheld),
    }


# -------------------------------------------------------------------------------------------
# OpenADR 3 objects
# -------------------------------------------------------------------------------------------

_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration_ms(text: str) -> int:
    """An ISO 8601 duration of days, hours, minutes and seconds (`PT2H`, `P1DT30M`) in ms.

    Raises:
        ValueError: not such a duration, or zero.
    """
    m = _DURATION.match(text)
    if m is None or text in ("P", "PT"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration like PT2H")
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    ms = round((((d * 24 + h) * 60 + mi) * 60 + s) * 1000)
    if ms <= 0:
        raise ValueError(f"{text!r} is empty")
    return ms


def iso(ms: int) -> str:
    """Unix ms as an RFC 3339 UTC time (`2026-01-01T18:00:00.000Z`)."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def openadr_report(
    report_id: int, event: Mapping[str, Any], settlement: Mapping[str, Any], client: str, now: int
) -> dict[str, Any]:
    """The settlement as an OpenADR 3 REPORT: per vehicle, baseline, usage and delivery."""
    window = {
        "start": iso(int(event["start_ms"])),
        "duration": f"PT{(int(event['end_ms']) - int(event['start_ms'])) // 1000}S",
    }
    return {
        "id": str(report_id),
        "objectType": "REPORT",
        "createdDateTime": iso(now),
        "modificationDateTime": iso(now),
        "programID": str(event["program_id"]),
        "eventID": str(event["id"]),
        "clientName": client,
        "reportName": f"settlement of event {event['id']} ({VERSION})",
        "payloadDescriptors": [
            {"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": t, "units": "KWH"}
            for t in ("BASELINE", "USAGE", "DELIVERED")
        ],
        "resources": [
            {
                "resourceName": f"vehicle:{v['vehicle_id']}",
                "intervalPeriod": window,
                "intervals": [
                    {
                        "id": 0,
                        "payloads": [
                            {"type": "BASELINE", "values": [v["baseline_kwh"]]},
                            {"type": "USAGE", "values": [v["actual_kwh"]]},
                            {"type": "DELIVERED", "values": [v["paid_kwh"]]},
                        ],
                    }
                ],
            }
            for v in settlement["vehicles"]
        ],
    }


def dumps(data: Any) -> str:
    """Canonical JSON text (stored bodies)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
