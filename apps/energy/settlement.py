"""Demand-response settlement against the "10 of 10" baseline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from apps.columnar import as_columns, keys_to_refs
from apps.energy.params import VERSION, EnergyParams
from apps.energy.sessions import energy_kwh
from protocol.readings import Reading


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
