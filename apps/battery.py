"""Battery intelligence: state of health from charging sessions, charging behaviour, fleet view,
and the battery health certificate, as pure, versioned functions of verified readings.

Method `battery-soh/1`, step by step (every threshold is a field of `BatteryParams`):

1. Segments. The pack current (`TractionBattery.CurrentCurrent`, VSS sign: charging
   positive) is cut into runs without a gap longer than `max_gap_s`. A run whose median
   current is above `min_current_a` is a charging session, below `-min_current_a` a
   discharge (drive).
2. Energy. Pack power is voltage (`CurrentVoltage`, the latest reading at most `max_gap_s`
   old) times current; its piecewise-linear integral over time is the energy into (or out of)
   the pack.
3. State of charge. The displayed SoC is quantized (0.5 % on the Kona), so the session is
   measured between SoC *edges*: the first and the last change of the reported value, each
   dated at the midpoint between the last reading of the old value and the first of the new.
   Between two edges the true SoC moved by exactly the difference of the reported values.
4. Capacity. `capacity = energy / (dSoC / 100)`; SoH is capacity over the model's nominal
   energy (`nominal_kwh`). Sessions are kept when dSoC >= `min_soc_delta`, they last at
   least `min_session_s`, and the mean pack temperature is inside
   [`min_temp_c`, `max_temp_c`] when reported (the BMS's SoC is least reliable outside).
   A temperature coefficient `temp_coeff_pct_per_k` normalises each session's capacity to
   `temp_ref_c`; its default is 0: the energy that enters the pack per coulomb-counted SoC
   point barely depends on temperature at charging rates (the loss at cold is on discharge).
5. Estimate. The current SoH is the ratio estimator `sum energy / sum dSoC` over the kept charge
   sessions of the last `recent_days`; its 95 % interval is Student's t on the sessions'
   weighted spread, widened by the SoC quantum's error (`soc_quantum` over dSoC).
6. Degradation. A weighted least-squares line through the sessions' SoH against time gives
   %/year when the sessions span at least `min_fit_days`; the lifetime rate is
   `(100 - SoH) / age`, age from the middle of the model year. Both are reported against
   the published field range (Geotab: 1.8-2.3 %/year on average, up to about 3 %/year with
   heavy DC fast charging).

Discharge runs give a second, independent capacity (`discharge`), reported beside the charge
estimate and not mixed into it: the bridge keeps only the extremes of a window's current, so
integrating a drive's current is coarser than a charge's.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Final

import numpy as np
from numpy.typing import NDArray

from apps.audit import AppInputs
from apps.columnar import Columns, as_columns, seq_sum
from apps.exceptions import CertificateInvalid
from apps.params import AppParams
from protocol.crypto import checksum_address, recover_address, sign_digest
from protocol.eip712 import Eip712Domain, type_hash
from protocol.merkle import StandardMerkleTree
from protocol.readings import CHARGE_POWER, ODOMETER, SOC, Reading

METHOD: Final = "battery-soh/1"
#: `methodVersion` in certificates for METHOD.
METHOD_VERSION: Final = 1

CURRENT: Final = "Vehicle.Powertrain.TractionBattery.CurrentCurrent"
VOLTAGE: Final = "Vehicle.Powertrain.TractionBattery.CurrentVoltage"
TEMP_MIN: Final = "Vehicle.Powertrain.TractionBattery.Temperature.Min"
TEMP_MAX: Final = "Vehicle.Powertrain.TractionBattery.Temperature.Max"
CABLE: Final = "Vehicle.Powertrain.TractionBattery.Charging.IsChargingCableConnected"
#: Signals the SoH needs (all BATTERY).
REQUIRED: Final = (SOC, CURRENT, VOLTAGE)
#: Signals that refine it when the caller may read them: temperatures (BATTERY), odometer
#: (ODOMETER, for the fleet's mileage axis).
OPTIONAL: Final = (TEMP_MIN, TEMP_MAX, ODOMETER)
#: Signals of the charging-behaviour section (CHARGING); it is left out without them.
CHARGING_SIGNALS: Final = (CHARGE_POWER, CABLE)
SIGNALS: Final = (*REQUIRED, *OPTIONAL, *CHARGING_SIGNALS)

Int64s = NDArray[np.int64]
Floats = NDArray[np.float64]

MS_PER_YEAR: Final = 365.25 * 86_400_000
#: Published field degradation, %/year (Geotab, tens of thousands of EVs): average range and
#: the rate seen with heavy DC fast charging.
FIELD_RANGE_PCT_PER_YEAR: Final = (1.8, 2.3)
FIELD_HEAVY_DC_PCT_PER_YEAR: Final = 3.0

#: Nominal usable energy of a new pack, kWh, by (make, model); the simulator's models and
#: the makers' figures. A caller may pass its own `nominal_kwh`.
NOMINAL_KWH: Final[Mapping[tuple[str, str], float]] = {
    ("Hyundai", "Kona Electric"): 64.0,
    ("Tesla", "Model 3"): 75.0,
    ("Nissan", "Leaf"): 40.0,
    ("Hyundai", "Ioniq 5"): 77.4,
}

# Student's t, two-sided 95 %, by degrees of freedom (1..30); 1.96 beyond.
_T95: Final = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t95(dof: int) -> float:
    """Student's t quantile for a two-sided 95 % interval with `dof` degrees of freedom."""
    return _T95[dof - 1] if 1 <= dof <= len(_T95) else 1.96


@dataclass(frozen=True)
class BatteryParams(AppParams):
    """Every number the method uses; all are inputs, echoed in the result.

    Attributes:
        nominal_kwh: Usable energy of the new pack (the SoH's 100 %).
        min_current_a: |current| above which the pack charges or discharges.
        max_gap_s: Longest gap between current readings inside one session.
        min_soc_delta: Fewest SoC points between the session's SoC edges.
        min_session_s: Shortest session kept.
        min_temp_c: Sessions colder than this (mean pack temperature) are left out.
        max_temp_c: Sessions hotter than this are left out.
        temp_coeff_pct_per_k: Capacity change per kelvin below `temp_ref_c`, percent.
        temp_ref_c: Temperature the capacity is normalised to.
        soc_quantum: Resolution of the reported SoC, points.
        dc_min_kw: Mean charging power above which a session is DC fast charging.
        recent_days: The current SoH uses the sessions of the window's last this many days.
        min_fit_days: Shortest span of sessions for a degradation fit.
        high_soc: SoC at or above which time counts as "high".
        low_soc: SoC at or below which time counts as "low".
        max_hold_s: Longest time a reading stands for when counting time at SoC or temperature.
    """

    APP: ClassVar[str] = "battery"

    nominal_kwh: float
    min_current_a: float = 1.0
    max_gap_s: float = 120.0
    min_soc_delta: float = 15.0
    min_session_s: float = 600.0
    min_temp_c: float = 0.0
    max_temp_c: float = 45.0
    temp_coeff_pct_per_k: float = 0.0
    temp_ref_c: float = 25.0
    soc_quantum: float = 0.5
    dc_min_kw: float = 12.0
    recent_days: float = 90.0
    min_fit_days: float = 30.0
    high_soc: float = 90.0
    low_soc: float = 20.0
    max_hold_s: float = 900.0

    def __post_init__(self) -> None:
        checks = {
            "nominal_kwh": 1 <= self.nominal_kwh <= 1000,
            "min_current_a": 0 < self.min_current_a <= 100,
            "max_gap_s": 1 <= self.max_gap_s <= 3600,
            "min_soc_delta": 1 <= self.min_soc_delta <= 100,
            "min_session_s": 0 <= self.min_session_s <= 86_400,
            "min_temp_c": -50 <= self.min_temp_c < self.max_temp_c <= 100,
            "temp_coeff_pct_per_k": 0 <= self.temp_coeff_pct_per_k <= 5,
            "temp_ref_c": -20 <= self.temp_ref_c <= 60,
            "soc_quantum": 0 <= self.soc_quantum <= 10,
            "dc_min_kw": 0 < self.dc_min_kw <= 1000,
            "recent_days": 1 <= self.recent_days <= 3650,
            "min_fit_days": 1 <= self.min_fit_days <= 3650,
            "low_soc": 0 <= self.low_soc < self.high_soc <= 100,
            "max_hold_s": 1 <= self.max_hold_s <= 86_400,
        }
        self.check(checks)


@dataclass(frozen=True)
class VehicleFacts:
    """What the chain says about the vehicle (VehicleId: make, model, year)."""

    make: str
    model: str
    year: int

    def age_years(self, at_ms: int) -> float:
        """Years from the middle of the model year to `at_ms` (never negative)."""
        mid = (self.year - 1970 + 0.5) * MS_PER_YEAR
        return max(0.0, (at_ms - mid) / MS_PER_YEAR)


def nominal_kwh_of(make: str, model: str) -> float | None:
    """The catalogued nominal pack energy of a model, or None."""
    return NOMINAL_KWH.get((make, model))


# -------------------------------------------------------------------------------------------
# sessions
# -------------------------------------------------------------------------------------------


def _run_bounds(ts: Int64s, max_gap_ms: int) -> list[int]:
    """Start indexes of the runs of `ts` without a gap above `max_gap_ms`, and the end."""
    breaks = np.flatnonzero(np.diff(ts) > max_gap_ms) + 1
    return [0, *breaks.tolist(), len(ts)]


def _run_medians(values: Floats, bounds: Sequence[int]) -> list[float]:
    """The median of each run of `values` (as `statistics.median` gives it)."""
    starts = np.asarray(bounds[:-1], np.int64)
    counts = np.diff(np.asarray(bounds, np.int64))
    run = np.repeat(np.arange(len(starts)), counts)
    ordered = values[np.lexsort((values, run))]
    mid = starts + counts // 2
    even = (counts % 2) == 0
    below = ordered[np.where(even, mid - 1, mid)]
    return np.where(even, (below + ordered[mid]) / 2, ordered[mid]).tolist()  # type: ignore[no-any-return]


def _latest_before(times: Int64s, values: Floats, at: Int64s, max_age: int) -> Floats:
    """Per time in `at`: the latest value at or before it at most `max_age` old, else the
    first after it within the same bound, else NaN."""
    n = len(times)
    if n == 0:
        return np.full(len(at), np.nan)
    i = np.searchsorted(times, at, side="right") - 1
    before = np.clip(i, 0, n - 1)
    after = np.clip(i + 1, 0, n - 1)
    ok_before = (i >= 0) & (at - times[before] <= max_age)
    ok_after = (i + 1 < n) & (times[after] - at <= max_age)
    return np.where(ok_before, values[before], np.where(ok_after, values[after], np.nan))


def _run_sums(terms: Floats, run: Int64s, runs: int) -> Floats:
    """Per run, the sum of its `terms` (grouped by `run`, in order) added left to right, as a
    Python loop adds them: rows of a zero-padded matrix, accumulated along each row."""
    counts = np.bincount(run, minlength=runs)
    if not len(terms):
        return np.zeros(runs)
    width = int(counts.max())
    if runs * width > 4_000_000:  # one very long run among many: sum run by run
        cuts = np.cumsum(counts)[:-1].tolist()
        return np.array([seq_sum(part) for part in np.split(terms, cuts)])
    position = np.arange(len(terms)) - np.repeat(np.cumsum(counts) - counts, counts)
    matrix = np.zeros((runs, width))
    matrix[run, position] = terms
    return np.cumsum(matrix, axis=1)[:, -1]


@dataclass(frozen=True)
class _Power:
    """Pack power at the current readings that have a voltage, with the run of each, and the
    steps between consecutive such readings of one run (`t0`-`t1`, `v0`-`v1`, `run`)."""

    kept: NDArray[np.int64]
    t0: Int64s
    t1: Int64s
    v0: Floats
    v1: Floats
    run: Int64s
    runs: int

    @classmethod
    def of(cls, ts: Int64s, kw: Floats, run: Int64s, runs: int) -> _Power:
        keep = ~np.isnan(kw)
        t, p, r = ts[keep], kw[keep], run[keep]
        same = r[1:] == r[:-1]
        kept = np.bincount(r, minlength=runs)
        return cls(kept, t[:-1][same], t[1:][same], p[:-1][same], p[1:][same], r[:-1][same], runs)

    def integrals(self, a: NDArray[Any], b: NDArray[Any]) -> Floats:
        """Per run, the integral of the piecewise-linear power over [a, b] (kW*ms)."""
        t0, t1, v0, v1 = self.t0, self.t1, self.v0, self.v1
        lo, hi = np.maximum(a[self.run], t0), np.minimum(b[self.run], t1)
        ok = (hi > lo) & (t1 != t0)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (v1 - v0) / (t1 - t0)
            terms = (v0 + slope * (lo - t0) + v0 + slope * (hi - t0)) / 2 * (hi - lo)
        return _run_sums(np.where(ok, terms, 0.0), self.run, self.runs)


def _edges(
    soc: Columns, starts: Int64s, ends: Int64s, gap: int
) -> tuple[Int64s, Floats, Floats, Floats, Floats]:
    """Per run: how many changes the reported SoC makes from `gap` before it to `gap` after,
    and (time, value) of the first and the last, each dated at the midpoint between the last
    reading of the old value and the first of the new."""
    ts, values = soc.ts, soc.value
    lo = np.searchsorted(ts, starts - gap, side="left")
    hi = np.searchsorted(ts, ends + gap, side="right")
    change = np.flatnonzero(values[1:] != values[:-1])  # between readings k and k + 1
    first = np.searchsorted(change, lo, side="left")
    stop = np.searchsorted(change, hi - 1, side="left")
    count = np.maximum(stop - first, 0)
    if not len(change):
        nothing = np.zeros(len(starts))
        return count, nothing, nothing, nothing, nothing
    ka = change[np.clip(first, 0, len(change) - 1)]
    kb = change[np.clip(stop - 1, 0, len(change) - 1)]
    return (
        count,
        (ts[ka] + ts[ka + 1]) / 2,
        values[ka + 1],
        (ts[kb] + ts[kb + 1]) / 2,
        values[kb + 1],
    )


@dataclass(frozen=True)
class Session:
    """One charge or discharge run and what it says about capacity."""

    kind: str  # "charge" or "discharge"
    start: int
    end: int
    soc_start: float | None
    soc_end: float | None
    energy_kwh: float | None
    mean_power_kw: float
    temp_c: float | None
    capacity_kwh: float | None
    soh_percent: float | None
    used: bool
    reason: str
    dc: bool

    @property
    def soc_delta(self) -> float:
        """Points of SoC between the edges (0 without them)."""
        if self.soc_start is None or self.soc_end is None:
            return 0.0
        return abs(self.soc_end - self.soc_start)

    def as_dict(self) -> dict[str, Any]:
        """The session as JSON."""
        return {f: getattr(self, f) for f in _SESSION_FIELDS}


_SESSION_FIELDS: Final = tuple(f.name for f in fields(Session))


def sessions(inputs: AppInputs, params: BatteryParams) -> list[Session]:
    """Every charge and discharge run with its capacity estimate and why it is kept or not."""
    gap = int(params.max_gap_s * 1000)
    current = as_columns(inputs.get(CURRENT))
    if not len(current):
        return []
    volt = as_columns(inputs.get(VOLTAGE))
    soc = as_columns(inputs.get(SOC))
    temp_cols = [as_columns(inputs.get(name)) for name in (TEMP_MIN, TEMP_MAX)]
    temp_t = np.concatenate([c.ts for c in temp_cols])
    temp_v = np.concatenate([c.value for c in temp_cols]).astype(np.float64)
    order = np.lexsort((temp_v, temp_t))
    temp_t, temp_v = temp_t[order], temp_v[order]
    c_t, c_v = current.ts, current.value
    bounds = _run_bounds(c_t, gap)
    medians = np.asarray(_run_medians(c_v, bounds))
    chosen = np.flatnonzero(np.abs(medians) > params.min_current_a)
    first = np.asarray(bounds[:-1], np.int64)[chosen]
    last = np.asarray(bounds[1:], np.int64)[chosen] - 1
    starts, ends = c_t[first], c_t[last]
    # The chosen runs' readings, each with its run's number among them.
    counts = last - first + 1
    at = np.repeat(first - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
    run = np.repeat(np.arange(len(chosen)), counts)
    # Pack power (kW) at each current reading, NaN without a recent enough voltage.
    kw = _latest_before(volt.ts, volt.value, c_t[at], gap) * c_v[at] / 1000.0
    power = _Power.of(c_t[at], kw, run, len(chosen))
    mean_kw = np.abs(power.integrals(starts, ends)) / np.maximum(1, ends - starts)
    n_edges, ta, soc_a_of, tb, soc_b_of = _edges(soc, starts, ends, gap)
    measured = (n_edges >= 2) & (power.kept > 1)
    energies = np.abs(power.integrals(ta, tb)) / 3_600_000.0
    rows = zip(
        medians[chosen].tolist(),
        starts.tolist(),
        ends.tolist(),
        np.where(power.kept > 1, mean_kw, 0.0).tolist(),
        measured.tolist(),
        energies.tolist(),
        soc_a_of.tolist(),
        soc_b_of.tolist(),
        strict=True,
    )
    out = []
    for med, start, end, mean, has_energy, kwh, at_a, at_b in rows:
        kind = "charge" if med > 0 else "discharge"
        temp = None
        if len(temp_t):
            i0 = np.searchsorted(temp_t, start, side="left")
            i1 = np.searchsorted(temp_t, end, side="right")
            in_temps = temp_v[i0:i1].tolist()
            temp = statistics.fmean(in_temps) if in_temps else None
        energy = soc_a = soc_b = capacity = soh = None
        reason = "ok"
        if has_energy:
            soc_a, soc_b, energy = at_a, at_b, kwh
            delta = abs(soc_b - soc_a)
            if delta > 0:
                capacity = energy / (delta / 100.0)
                if temp is not None and temp < params.temp_ref_c:
                    capacity /= 1 - params.temp_coeff_pct_per_k / 100 * (params.temp_ref_c - temp)
                soh = capacity / params.nominal_kwh * 100.0
        if soh is None:
            reason = "no-soc-edges"
        elif abs((soc_b or 0) - (soc_a or 0)) < params.min_soc_delta:
            reason = "soc-delta-too-small"
        elif end - start < params.min_session_s * 1000:
            reason = "too-short"
        elif temp is not None and not params.min_temp_c <= temp <= params.max_temp_c:
            reason = "temperature-out-of-range"
        out.append(
            Session(
                kind=kind,
                start=start,
                end=end,
                soc_start=soc_a,
                soc_end=soc_b,
                energy_kwh=energy,
                mean_power_kw=mean,
                temp_c=temp,
                capacity_kwh=capacity,
                soh_percent=soh,
                used=reason == "ok",
                reason=reason,
                dc=kind == "charge" and mean >= params.dc_min_kw,
            )
        )
    return out


def _estimate(kept: Sequence[Session], params: BatteryParams) -> dict[str, Any] | None:
    """Ratio estimate of capacity over sessions with its 95 % interval, or None."""
    if not kept:
        return None
    weights = [s.soc_delta for s in kept]
    total_w = sum(weights)
    caps = [s.capacity_kwh or 0.0 for s in kept]
    capacity = sum(c * w for c, w in zip(caps, weights, strict=True)) / total_w
    soh = capacity / params.nominal_kwh * 100.0
    n = len(kept)
    # Quantum error: each edge is exact to the quantum, so dSoC is off by at most one quantum.
    quantum = soh * params.soc_quantum / total_w * math.sqrt(n)
    if n >= 2:
        sohs = [s.soh_percent or 0.0 for s in kept]
        var = sum(w * (x - soh) ** 2 for x, w in zip(sohs, weights, strict=True)) / total_w
        n_eff = total_w**2 / sum(w * w for w in weights)
        stderr = math.sqrt(var * n / max(n - 1, 1) / n_eff)
        half = t95(n - 1) * stderr + quantum
    else:
        half = soh * params.soc_quantum / max(total_w, 1e-9) * 2 + 2.0
    return {
        "percent": soh,
        "ci95": [soh - half, soh + half],
        "capacity_kwh": capacity,
        "sessions_used": n,
        "method": "charge-energy",
    }


def _fit(kept: Sequence[Session], params: BatteryParams) -> tuple[float, float] | None:
    """Weighted least-squares slope of SoH over time, %/year, and its standard error."""
    if len(kept) < 3:
        return None
    xs = [(s.start + s.end) / 2 / MS_PER_YEAR for s in kept]
    if (max(xs) - min(xs)) * 365.25 < params.min_fit_days:
        return None
    ys = [s.soh_percent or 0.0 for s in kept]
    ws = [s.soc_delta for s in kept]
    sw = sum(ws)
    mx = sum(w * x for w, x in zip(ws, xs, strict=True)) / sw
    my = sum(w * y for w, y in zip(ws, ys, strict=True)) / sw
    sxx = sum(w * (x - mx) ** 2 for w, x in zip(ws, xs, strict=True))
    if sxx <= 0:
        return None
    slope = sum(w * (x - mx) * (y - my) for w, x, y in zip(ws, xs, ys, strict=True)) / sxx
    resid = sum(w * (y - my - slope * (x - mx)) ** 2 for w, x, y in zip(ws, xs, ys, strict=True))
    stderr = math.sqrt(resid / (len(kept) - 2) / sxx) if len(kept) > 2 else math.inf
    return -slope, stderr


def _assess(rate: float | None, dc_share: float | None) -> str:
    if rate is None:
        return "unknown"
    lo, hi = FIELD_RANGE_PCT_PER_YEAR
    top = FIELD_HEAVY_DC_PCT_PER_YEAR if (dc_share or 0) >= 0.5 else hi
    if rate < lo:
        return "below-field-range"
    return "within-field-range" if rate <= top else "above-field-range"


# -------------------------------------------------------------------------------------------
# charging behaviour
# -------------------------------------------------------------------------------------------


def _held_time(points: Sequence[Reading], max_hold_ms: int, end_ms: int) -> tuple[Floats, Int64s]:
    """Values of the readings and the ms each stands for: until the next, at most `max_hold_ms`."""
    cols = as_columns(points)
    nxt = np.append(cols.ts[1:], np.int64(end_ms))
    return cols.value.astype(np.float64), np.clip(nxt - cols.ts, 0, max_hold_ms)


def charging_behaviour(
    inputs: AppInputs, runs: Sequence[Session], params: BatteryParams, end_ms: int
) -> dict[str, Any]:
    """DC fast-charging share, time at high and low SoC, and pack temperature exposure."""
    charges = [s for s in runs if s.kind == "charge"]
    energy = [s for s in charges if s.energy_kwh is not None]
    dc_energy = sum(s.energy_kwh or 0.0 for s in energy if s.dc)
    all_energy = sum(s.energy_kwh or 0.0 for s in energy)
    hold = int(params.max_hold_s * 1000)
    soc, soc_ms = _held_time(inputs.get(SOC), hold, end_ms)
    observed = int(soc_ms.sum())
    high = int(soc_ms[soc >= params.high_soc].sum())
    low = int(soc_ms[soc <= params.low_soc].sum())
    temp, temp_ms = _held_time(inputs.get(TEMP_MAX), hold, end_ms)
    below = temp < 0
    cool = ~below & (temp < 10)
    mild = ~below & ~cool & (temp <= 35)
    hot = ~(below | cool | mild)  # as a chain of ifs: NaN lands here
    bands = {
        key: int(temp_ms[mask].sum())
        for key, mask in (
            ("below_0c", below),
            ("0_to_10c", cool),
            ("10_to_35c", mild),
            ("above_35c", hot),
        )
    }
    return {
        "sessions": len(charges),
        "dc_sessions": sum(1 for s in charges if s.dc),
        "dc_share_sessions": (sum(1 for s in charges if s.dc) / len(charges)) if charges else None,
        "dc_share_energy": dc_energy / all_energy if all_energy > 0 else None,
        "energy_charged_kwh": all_energy,
        "hours_observed": observed / 3_600_000,
        "share_time_high_soc": high / observed if observed else None,
        "share_time_low_soc": low / observed if observed else None,
        "temperature_hours": {k: ms / 3_600_000 for k, ms in bands.items()},
    }


# -------------------------------------------------------------------------------------------
# the report
# -------------------------------------------------------------------------------------------


def battery_report(
    inputs: AppInputs,
    params: BatteryParams,
    vehicle: VehicleFacts,
    start_ms: int,
    end_ms: int,
    *,
    with_charging: bool = True,
) -> dict[str, Any]:
    """The battery report of one vehicle over `[start_ms, end_ms)`: a pure function.

    Args:
        inputs: Verified readings of `SIGNALS` (any may be missing).
        params: The method's parameters.
        vehicle: Make, model and year (from the chain).
        start_ms: Window start, unix ms.
        end_ms: Window end, unix ms.
        with_charging: Include the charging-behaviour section (the caller may read CHARGING).

    Returns:
        JSON: method, parameters, SoH with its interval, degradation, the sessions (used or
        not, with the reason), the discharge check, and the charging behaviour.
    """
    runs = sessions(inputs, params)
    charges = [s for s in runs if s.kind == "charge"]
    kept = [s for s in charges if s.used]
    recent_from = end_ms - params.recent_days * 86_400_000
    recent = [s for s in kept if s.end >= recent_from] or kept
    soh = _estimate(recent, params)
    discharge = _estimate([s for s in runs if s.kind == "discharge" and s.used], params)
    if discharge is not None:
        discharge["method"] = "discharge-energy"
    behaviour = charging_behaviour(inputs, runs, params, end_ms) if with_charging else None
    fit = _fit(kept, params)
    age = vehicle.age_years(end_ms)
    lifetime = (100.0 - soh["percent"]) / age if soh is not None and age >= 0.5 else None
    odometer = inputs.get(ODOMETER)
    dc_share = behaviour["dc_share_energy"] if behaviour else None
    return {
        "app": "battery",
        "method": METHOD,
        "parameters": params.as_dict(),
        "vehicle": {
            "make": vehicle.make,
            "model": vehicle.model,
            "year": vehicle.year,
            "age_years": age,
            "odometer_km": float(odometer[-1].value) if odometer else None,
        },
        "soh": soh,
        "degradation": {
            "fit_pct_per_year": fit[0] if fit else None,
            "fit_stderr": fit[1] if fit and math.isfinite(fit[1]) else None,
            "lifetime_pct_per_year": lifetime,
            "field_range_pct_per_year": list(FIELD_RANGE_PCT_PER_YEAR),
            "field_heavy_dc_pct_per_year": FIELD_HEAVY_DC_PCT_PER_YEAR,
            "assessment": _assess(fit[0] if fit else lifetime, dc_share),
        },
        "sessions": [s.as_dict() for s in charges],
        "discharge": discharge,
        "charging": behaviour,
    }


# -------------------------------------------------------------------------------------------
# fleet view
# -------------------------------------------------------------------------------------------


def percentile_rank(values: Sequence[float], x: float) -> float:
    """Share of `values` below `x` plus half of those equal, in percent."""
    if not values:
        return math.nan
    below = sum(1 for v in values if v < x)
    equal = sum(1 for v in values if v == x)
    return (below + 0.5 * equal) / len(values) * 100.0


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    pos = q * (len(sorted_values) - 1)
    i = int(pos)
    j = min(i + 1, len(sorted_values) - 1)
    return sorted_values[i] + (sorted_values[j] - sorted_values[i]) * (pos - i)


def fleet_view(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """SoH against age and mileage by make, model and year, with each vehicle's percentile.

    Args:
        entries: Per vehicle: `vehicle_id`, `make`, `model`, `year`, `soh` (percent or None),
            `age_years`, `odometer_km` (or None).

    Returns:
        Groups (count, median, p10, p90, mean age and mileage, and the SoH loss per year of
        age), and per vehicle its SoH and percentile within its group.
    """
    groups: dict[tuple[str, str, int], list[Mapping[str, Any]]] = {}
    for e in entries:
        if e.get("soh") is not None:
            groups.setdefault((e["make"], e["model"], int(e["year"])), []).append(e)
    out_groups = []
    vehicles: list[dict[str, Any]] = []
    for (make, model, year), members in sorted(groups.items()):
        sohs = sorted(float(m["soh"]) for m in members)
        ages = [float(m["age_years"]) for m in members]
        miles = [float(m["odometer_km"]) for m in members if m.get("odometer_km") is not None]
        mean_age = statistics.fmean(ages)
        out_groups.append(
            {
                "make": make,
                "model": model,
                "year": year,
                "count": len(sohs),
                "soh_median": _quantile(sohs, 0.5),
                "soh_p10": _quantile(sohs, 0.1),
                "soh_p90": _quantile(sohs, 0.9),
                "age_years_mean": mean_age,
                "odometer_km_mean": statistics.fmean(miles) if miles else None,
                "loss_pct_per_year": (100 - statistics.fmean(sohs)) / mean_age
                if mean_age >= 0.5
                else None,
            }
        )
        for m in members:
            vehicles.append(
                {
                    "vehicle_id": int(m["vehicle_id"]),
                    "make": make,
                    "model": model,
                    "year": year,
                    "soh": float(m["soh"]),
                    "age_years": float(m["age_years"]),
                    "odometer_km": m.get("odometer_km"),
                    "percentile": percentile_rank(sohs, float(m["soh"])),
                }
            )
    vehicles.sort(key=lambda v: int(v["vehicle_id"]))
    return {
        "field_range_pct_per_year": list(FIELD_RANGE_PCT_PER_YEAR),
        "groups": out_groups,
        "vehicles": vehicles,
    }


# -------------------------------------------------------------------------------------------
# battery health certificate
# -------------------------------------------------------------------------------------------

CERTIFICATE_TYPE: Final = (
    "BatteryCertificate(uint256 vehicleId,uint16 sohBps,uint16 lowerBps,uint16 upperBps,"
    "uint32 methodVersion,uint64 windowStart,uint64 windowEnd,bytes32 inputsRoot)"
)
CERTIFICATE_TYPEHASH: Final = type_hash(CERTIFICATE_TYPE)
CERTIFICATE_FIELDS: Final = (
    {"name": "vehicleId", "type": "uint256"},
    {"name": "sohBps", "type": "uint16"},
    {"name": "lowerBps", "type": "uint16"},
    {"name": "upperBps", "type": "uint16"},
    {"name": "methodVersion", "type": "uint32"},
    {"name": "windowStart", "type": "uint64"},
    {"name": "windowEnd", "type": "uint64"},
    {"name": "inputsRoot", "type": "bytes32"},
)
#: Leaf encoding of the inputs tree: (batch id, leaf index) of each input bundle.
INPUT_LEAF_ENCODING: Final = ("uint64", "uint32")


def inputs_root(refs: Sequence[tuple[int, int]]) -> bytes:
    """The StandardMerkleTree root over the input bundles' (batch id, leaf index), sorted.

    Raises:
        CertificateInvalid: no inputs.
    """
    if not refs:
        raise CertificateInvalid("a certificate needs at least one input bundle")
    return StandardMerkleTree.of(sorted(refs), INPUT_LEAF_ENCODING).root


def _bps(percent: float) -> int:
    return max(0, min(10_000, round(percent * 100)))


@dataclass(frozen=True)
class Certificate:
    """A battery health statement (SoH and interval in basis points of the nominal energy)."""

    vehicle_id: int
    soh_bps: int
    lower_bps: int
    upper_bps: int
    method_version: int
    window_start: int
    window_end: int
    inputs_root: bytes

    def __post_init__(self) -> None:
        if not self.lower_bps <= self.soh_bps <= self.upper_bps <= 10_000:
            raise CertificateInvalid("needs lower <= soh <= upper <= 10000 basis points")
        if self.window_end <= self.window_start:
            raise CertificateInvalid("the data window is empty")
        if len(self.inputs_root) != 32:
            raise CertificateInvalid("inputs_root is 32 bytes")

    @classmethod
    def of(
        cls,
        vehicle_id: int,
        report: Mapping[str, Any],
        start_ms: int,
        end_ms: int,
        refs: Sequence[tuple[int, int]],
    ) -> Certificate:
        """The certificate of a battery report.

        Raises:
            CertificateInvalid: the report has no SoH (no usable session).
        """
        soh = report.get("soh")
        if not soh:
            raise CertificateInvalid("the report has no state of health: no usable session")
        lo, hi = soh["ci95"]
        return cls(
            vehicle_id,
            _bps(soh["percent"]),
            _bps(lo),
            _bps(hi),
            METHOD_VERSION,
            start_ms,
            end_ms,
            inputs_root(refs),
        )

    def struct_hash(self) -> bytes:
        """EIP-712 `hashStruct`, as the contract computes it."""
        from protocol.crypto import keccak256

        return keccak256(
            CERTIFICATE_TYPEHASH
            + self.vehicle_id.to_bytes(32, "big")
            + self.soh_bps.to_bytes(32, "big")
            + self.lower_bps.to_bytes(32, "big")
            + self.upper_bps.to_bytes(32, "big")
            + self.method_version.to_bytes(32, "big")
            + self.window_start.to_bytes(32, "big")
            + self.window_end.to_bytes(32, "big")
            + self.inputs_root
        )

    def digest(self, domain: Eip712Domain) -> bytes:
        """The EIP-712 digest the oracles sign (domain: the BatteryCertificates contract)."""
        return domain.digest(self.struct_hash())

    def as_tuple(self) -> tuple[int, int, int, int, int, int, int, bytes]:
        """The certificate as the contract's struct argument."""
        return (
            self.vehicle_id,
            self.soh_bps,
            self.lower_bps,
            self.upper_bps,
            self.method_version,
            self.window_start,
            self.window_end,
            self.inputs_root,
        )

    def as_dict(self) -> dict[str, Any]:
        """The certificate as JSON (camelCase, as the typed data)."""
        return {
            "vehicleId": self.vehicle_id,
            "sohBps": self.soh_bps,
            "lowerBps": self.lower_bps,
            "upperBps": self.upper_bps,
            "methodVersion": self.method_version,
            "windowStart": self.window_start,
            "windowEnd": self.window_end,
            "inputsRoot": "0x" + self.inputs_root.hex(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Certificate:
        """A certificate from `as_dict` output."""
        return cls(
            int(data["vehicleId"]),
            int(data["sohBps"]),
            int(data["lowerBps"]),
            int(data["upperBps"]),
            int(data["methodVersion"]),
            int(data["windowStart"]),
            int(data["windowEnd"]),
            bytes.fromhex(str(data["inputsRoot"])[2:]),
        )


def sign_certificate(
    certificate: Certificate, private_keys: Sequence[bytes | str], domain: Eip712Domain
) -> bytes:
    """The oracles' signatures of a certificate, concatenated in ascending signer order.

    This is what each oracle signer does once it has recomputed the report from the verified
    inputs itself; `BatteryCertificates.verifyCertificate` accepts the result when at least
    the quorum's threshold of current oracles signed.
    """
    digest = certificate.digest(domain)
    signed = [
        (int(recover_address(digest, sig), 16), sig)
        for sig in (sign_digest(digest, k) for k in private_keys)
    ]
    return b"".join(sig for _, sig in sorted(signed))


def certificate_signers(
    certificate: Certificate, signatures: bytes, domain: Eip712Domain
) -> list[str]:
    """The addresses that signed a certificate (off-chain check; the contract is the judge).

    Raises:
        CertificateInvalid: the signatures are not a whole number of 65-byte signatures.
    """
    if len(signatures) % 65 or not signatures:
        raise CertificateInvalid("signatures are concatenated 65-byte signatures")
    digest = certificate.digest(domain)
    return [
        checksum_address(recover_address(digest, signatures[i : i + 65]))
        for i in range(0, len(signatures), 65)
    ]


# -------------------------------------------------------------------------------------------
# served context -> result (the same call for the API and the audit)
# -------------------------------------------------------------------------------------------


def battery_context(
    vehicle: VehicleFacts, params: BatteryParams, *, with_charging: bool
) -> dict[str, Any]:
    """The context a served battery result states, from which `compute` recomputes it."""
    return {
        "vehicle": {"make": vehicle.make, "model": vehicle.model, "year": vehicle.year},
        "parameters": params.as_dict(),
        "with_charging": with_charging,
    }


def compute(
    inputs: AppInputs, context: Mapping[str, Any], start_ms: int, end_ms: int
) -> dict[str, Any]:
    """The battery result of `inputs` under a served `context` (see `battery_context`)."""
    v = context["vehicle"]
    return battery_report(
        inputs,
        BatteryParams.from_dict(context["parameters"]),
        VehicleFacts(str(v["make"]), str(v["model"]), int(v["year"])),
        start_ms,
        end_ms,
        with_charging=bool(context["with_charging"]),
    )
