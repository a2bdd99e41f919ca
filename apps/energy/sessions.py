"""Energy from power readings, charging sessions and their flexibility."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from apps.columnar import as_columns, seq_sum
from apps.energy.params import EnergyParams
from protocol.readings import Reading, segments


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
    return segments(marks, gap_ms, 0)


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
    for a, b in segments(marks, gap, int(p.session_min_s * 1000)):
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
