"""Vehicle finance: verified odometer history with tamper signals, usage, and a transparent value
adjustment, as pure, versioned functions of verified readings.

Method `finance/1`:

- Odometer (`Vehicle.TraveledDistance`, ODOMETER). Tamper signals, each listed with its
  times, values and bundles:
  - `decrease`: a reading below the one before by more than `odometer_tolerance_km`;
  - `implausible-jump`: an increase faster than `max_speed_kmh` over the time between the
    readings (plus the tolerance);
  - `gap`: no reading for longer than `gap_days` (with the distance across it);
  - `device-swap`: consecutive readings signed by different devices.
  Signed distance is the sum of increases between consecutive readings that are neither
  across a gap nor a tamper signal. Its share of the latest odometer, and the share of the
  vehicle's life (from the mint on-chain to the window's end) that readings cover, say how
  much of the history is backed by signed data.
- Usage (DRIVING). Trips are runs of activity (speed > 0 or ignition ON/START) no more than
  `trip_gap_s` apart and not broken by ignition OFF/LOCK, kept from `min_trip_s`, as the
  telemetry API segments them. Annual mileage is signed distance over covered days. High
  speed and stop-and-go are shares of moving time (each speed reading stands for the time
  to the next, at most `max_hold_s`) above `high_speed_kmh` and at or below
  `stop_and_go_kmh`.
- Value adjustment (`value_adjustment`): reference value * age factor * mileage factor *
  SoH factor (EVs) * tamper factor, each shown with its formula and inputs:
  - age: `(1 - annual_depreciation) ^ age_years`;
  - mileage: `1 - mileage_rate_per_1000km * (odometer - age * reference_annual_km) / 1000`,
    clamped to [`mileage_factor_min`, `mileage_factor_max`];
  - SoH: `1 + soh_rate_per_point * (SoH - (100 - age * expected_soh_loss_per_year))`;
  - tamper: `tamper_factor` when any decrease or implausible jump is flagged, else 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import numpy as np
from numpy.typing import NDArray

from apps.audit import AppInputs
from apps.battery import BatteryParams, VehicleFacts, battery_report
from apps.columnar import Columns, as_columns, seq_sum, trip_spans
from apps.params import AppParams
from protocol.readings import IGNITION, IGNITION_OFF, IGNITION_ON, ODOMETER, SPEED, Reading

METHOD: Final = "finance/1"
#: The odometer history needs ODOMETER.
REQUIRED: Final = (ODOMETER,)
#: Usage needs DRIVING; without it the usage section is left out.
USAGE_SIGNALS: Final = (SPEED, IGNITION)
SIGNALS: Final = (*REQUIRED, *USAGE_SIGNALS)
MS_PER_DAY: Final = 86_400_000
DAYS_PER_YEAR: Final = 365.25


@dataclass(frozen=True)
class FinanceParams(AppParams):
    """Every number of the odometer checks, the usage figures and the value model.

    Attributes:
        odometer_tolerance_km: Decreases up to this are rounding, not a signal.
        max_speed_kmh: Fastest plausible average speed between two odometer readings.
        gap_days: Longer without an odometer reading is a gap.
        trip_gap_s: Longest pause inside a trip.
        min_trip_s: Shortest trip counted.
        max_hold_s: Longest time a speed reading stands for.
        high_speed_kmh: Speeds above this are high-speed driving.
        stop_and_go_kmh: Moving at or below this is stop-and-go.
        reference_value: The model's reference value (new, same currency as the answer).
        annual_depreciation: Share of value lost per year of age.
        reference_annual_km: Expected distance a year.
        mileage_rate_per_1000km: Value share per 1,000 km above (or below) expectation.
        mileage_factor_min: Lowest mileage factor.
        mileage_factor_max: Highest mileage factor.
        expected_soh_loss_per_year: Expected SoH loss a year, points (the field average).
        soh_rate_per_point: Value share per SoH point above (or below) expectation.
        tamper_factor: Factor applied when the odometer shows a decrease or an implausible jump.
    """

    APP: ClassVar[str] = "finance"

    odometer_tolerance_km: float = 0.2
    max_speed_kmh: float = 250.0
    gap_days: float = 7.0
    trip_gap_s: float = 300.0
    min_trip_s: float = 240.0
    max_hold_s: float = 30.0
    high_speed_kmh: float = 100.0
    stop_and_go_kmh: float = 20.0
    reference_value: float = 40_000.0
    annual_depreciation: float = 0.15
    reference_annual_km: float = 15_000.0
    mileage_rate_per_1000km: float = 0.004
    mileage_factor_min: float = 0.6
    mileage_factor_max: float = 1.15
    expected_soh_loss_per_year: float = 2.05
    soh_rate_per_point: float = 0.01
    tamper_factor: float = 0.8

    def __post_init__(self) -> None:
        checks = {
            "odometer_tolerance_km": 0 <= self.odometer_tolerance_km <= 100,
            "max_speed_kmh": 1 <= self.max_speed_kmh <= 1000,
            "gap_days": 0 < self.gap_days <= 3650,
            "trip_gap_s": 1 <= self.trip_gap_s <= 86_400,
            "min_trip_s": 0 <= self.min_trip_s <= 86_400,
            "max_hold_s": 1 <= self.max_hold_s <= 3600,
            "high_speed_kmh": self.stop_and_go_kmh < self.high_speed_kmh <= 400,
            "stop_and_go_kmh": self.stop_and_go_kmh > 0,
            "reference_value": 0 <= self.reference_value <= 1e12,
            "annual_depreciation": 0 <= self.annual_depreciation < 1,
            "reference_annual_km": 0 < self.reference_annual_km <= 1e6,
            "mileage_rate_per_1000km": 0 <= self.mileage_rate_per_1000km <= 1,
            "mileage_factor_min": 0 <= self.mileage_factor_min <= 1 <= self.mileage_factor_max,
            "mileage_factor_max": self.mileage_factor_max <= 10,
            "expected_soh_loss_per_year": 0 <= self.expected_soh_loss_per_year <= 50,
            "soh_rate_per_point": 0 <= self.soh_rate_per_point <= 1,
            "tamper_factor": 0 <= self.tamper_factor <= 1,
        }
        self.check(checks)


def _ref(r: Reading) -> list[int]:
    return [r.batch_id, r.leaf_index]


def _device_codes(cols: Columns, devices: Mapping[tuple[int, int], str]) -> NDArray[np.int64]:
    """Per reading, a number standing for its bundle's signing device (-1: unknown)."""
    keys, where = np.unique(cols.keys(), return_inverse=True)
    names: dict[str, int] = {}
    codes = []
    for k in keys.tolist():
        d = devices.get((k >> 32, k & 0xFFFFFFFF))
        codes.append(-1 if d is None else names.setdefault(d, len(names)))
    out: NDArray[np.int64] = np.asarray(codes, np.int64)[where.reshape(-1)]
    return out


def odometer_history(
    odometer: Sequence[Reading],
    devices: Mapping[tuple[int, int], str],
    params: FinanceParams,
    life_start_ms: int,
    end_ms: int,
) -> dict[str, Any]:
    """The odometer's tamper signals, signed distance and coverage.

    Args:
        odometer: Odometer readings in time order.
        devices: (batch, leaf) -> signing device.
        params: Thresholds.
        life_start_ms: Start of the vehicle's life (its mint on-chain), unix ms.
        end_ms: End of the window, unix ms.
    """
    cols = as_columns(odometer)
    ts, km = cols.ts, cols.value
    signals: list[dict[str, Any]] = []
    gap_ms = params.gap_days * MS_PER_DAY
    dt_ms = np.diff(ts)
    delta = np.diff(km)
    code = _device_codes(cols, devices)
    swap = (code[:-1] >= 0) & (code[1:] >= 0) & (code[:-1] != code[1:])
    gap = dt_ms > gap_ms
    decrease = ~gap & (delta < -params.odometer_tolerance_km)
    jump = (
        ~gap
        & ~decrease
        & (delta > params.max_speed_kmh * dt_ms / 3_600_000 + params.odometer_tolerance_km)
    )
    signed = ~gap & ~decrease & ~jump & (delta > 0)
    signed_km = seq_sum(delta[signed])
    covered_ms = int(dt_ms[~gap].sum())
    for i in np.flatnonzero(swap | gap | decrease | jump).tolist():
        prev, cur = cols[i], cols[i + 1]
        base = {
            "from_ts": prev.ts,
            "to_ts": cur.ts,
            "from_km": float(prev.value),
            "to_km": float(cur.value),
            "inputs": [_ref(prev), _ref(cur)],
        }
        if swap[i]:
            d_prev = devices[(prev.batch_id, prev.leaf_index)]
            d_cur = devices[(cur.batch_id, cur.leaf_index)]
            signals.append(
                {"kind": "device-swap", **base, "from_device": d_prev, "to_device": d_cur}
            )
        if gap[i]:
            signals.append({"kind": "gap", **base, "days": int(dt_ms[i]) / MS_PER_DAY})
        elif decrease[i]:
            signals.append({"kind": "decrease", **base, "delta_km": float(delta[i])})
        elif jump[i]:
            signals.append({"kind": "implausible-jump", **base, "delta_km": float(delta[i])})
    if len(cols) and cols[0].ts - life_start_ms > gap_ms:
        first = cols[0]
        signals.append(
            {
                "kind": "gap",
                "from_ts": life_start_ms,
                "to_ts": first.ts,
                "from_km": None,
                "to_km": float(first.value),
                "inputs": [_ref(first)],
                "days": (first.ts - life_start_ms) / MS_PER_DAY,
            }
        )
    signals.sort(key=lambda s: (s["to_ts"], s["kind"]))
    head = cols[0] if len(cols) else None
    tail = cols[-1] if len(cols) else None
    latest = float(tail.value) if tail else None
    life_ms = max(1, end_ms - life_start_ms)
    kinds = {s["kind"] for s in signals}
    return {
        "readings": len(cols),
        "first": {"ts": head.ts, "km": float(head.value)} if head else None,
        "latest": {"ts": tail.ts, "km": latest} if tail else None,
        "signed_km": signed_km,
        "signed_share_of_odometer": signed_km / latest if latest else None,
        "covered_days": covered_ms / MS_PER_DAY,
        "covered_share_of_life": min(1.0, covered_ms / life_ms),
        "signals": signals,
        "tampered": bool(kinds & {"decrease", "implausible-jump"}),
        "flags": sorted(kinds),
    }


def _trips(
    speed: Sequence[Reading], ignition: Sequence[Reading], params: FinanceParams
) -> list[tuple[int, int]]:
    sp, ign = as_columns(speed), as_columns(ignition)
    state = ign.value.tolist()
    on = ign.ts[np.fromiter((v in IGNITION_ON for v in state), bool, len(state))]
    off = ign.ts[np.fromiter((v in IGNITION_OFF for v in state), bool, len(state))]
    begins, ends = trip_spans(
        sp.ts,
        sp.value.astype(np.float64) > 0,
        on,
        off,
        params.trip_gap_s * 1000,
        params.min_trip_s * 1000,
    )
    return list(zip(begins.tolist(), ends.tolist(), strict=True))


def usage(
    inputs: AppInputs, signed_km: float, covered_days: float, params: FinanceParams
) -> dict[str, Any]:
    """Annual mileage, trips per week, high-speed and stop-and-go shares."""
    speed = as_columns(inputs.get(SPEED))
    trips = _trips(speed, inputs.get(IGNITION), params)
    hold = params.max_hold_s * 1000
    ts, v = speed.ts, speed.value
    nxt = np.append(ts[1:], ts[-1:])  # the last reading stands for no time
    ms = np.minimum(nxt - ts, hold)
    go = v > 0
    fast = v > params.high_speed_kmh
    moving = seq_sum(ms[go])
    high = seq_sum(ms[go & fast])
    crawl = seq_sum(ms[go & ~fast & (v <= params.stop_and_go_kmh)])
    span_days = (int(ts[-1]) - int(ts[0])) / MS_PER_DAY if len(ts) > 1 else 0.0
    return {
        "annual_km": signed_km / covered_days * DAYS_PER_YEAR if covered_days >= 1 else None,
        "trips": len(trips),
        "trips_per_week": len(trips) / span_days * 7 if span_days >= 1 else None,
        "moving_hours": moving / 3_600_000,
        "share_high_speed": high / moving if moving else None,
        "share_stop_and_go": crawl / moving if moving else None,
    }


def value_adjustment(
    params: FinanceParams,
    age_years: float,
    odometer_km: float | None,
    soh_percent: float | None,
    tampered: bool,
) -> dict[str, Any]:
    """The documented value model: every factor with its formula and inputs.

    Returns:
        `reference_value`, `factors` (name, value, formula, inputs), `value` and
        `adjustment` (value - reference).
    """
    factors = []
    age_f = (1 - params.annual_depreciation) ** age_years
    factors.append(
        {
            "name": "age",
            "value": age_f,
            "formula": "(1 - annual_depreciation) ^ age_years",
            "inputs": {"annual_depreciation": params.annual_depreciation, "age_years": age_years},
        }
    )
    expected_km = age_years * params.reference_annual_km
    if odometer_km is not None and not tampered:
        raw = 1 - params.mileage_rate_per_1000km * (odometer_km - expected_km) / 1000
        mileage_f = min(params.mileage_factor_max, max(params.mileage_factor_min, raw))
    else:
        mileage_f = 1.0
    factors.append(
        {
            "name": "mileage",
            "value": mileage_f,
            "formula": "clamp(1 - mileage_rate_per_1000km * (odometer_km - age_years * "
            "reference_annual_km) / 1000, mileage_factor_min, mileage_factor_max); 1 without "
            "a trustworthy odometer",
            "inputs": {
                "odometer_km": odometer_km,
                "expected_km": expected_km,
                "mileage_rate_per_1000km": params.mileage_rate_per_1000km,
                "reference_annual_km": params.reference_annual_km,
            },
        }
    )
    expected_soh = 100 - age_years * params.expected_soh_loss_per_year
    soh_f = 1 + params.soh_rate_per_point * (soh_percent - expected_soh) if soh_percent else 1.0
    factors.append(
        {
            "name": "battery",
            "value": soh_f,
            "formula": "1 + soh_rate_per_point * (soh - (100 - age_years * "
            "expected_soh_loss_per_year)); 1 without a SoH",
            "inputs": {
                "soh": soh_percent,
                "expected_soh": expected_soh,
                "soh_rate_per_point": params.soh_rate_per_point,
            },
        }
    )
    tamper_f = params.tamper_factor if tampered else 1.0
    factors.append(
        {
            "name": "odometer-integrity",
            "value": tamper_f,
            "formula": "tamper_factor if the odometer decreased or jumped implausibly, else 1",
            "inputs": {"tampered": tampered, "tamper_factor": params.tamper_factor},
        }
    )
    value = params.reference_value
    for f in factors:
        value *= f["value"]
    return {
        "reference_value": params.reference_value,
        "factors": factors,
        "value": value,
        "adjustment": value - params.reference_value,
    }


def finance_report(
    inputs: AppInputs,
    params: FinanceParams,
    *,
    age_years: float,
    life_start_ms: int,
    end_ms: int,
    battery: Mapping[str, Any] | None = None,
    with_usage: bool = True,
) -> dict[str, Any]:
    """The finance report of one vehicle: a pure function of verified readings.

    Args:
        inputs: Verified readings of `SIGNALS`.
        params: Thresholds and the value model's parameters.
        age_years: The vehicle's age at `end_ms` (from its model year).
        life_start_ms: The vehicle's mint on-chain, unix ms.
        end_ms: Window end, unix ms.
        battery: For EVs whose caller may read BATTERY, the battery report's SoH section
            and certificate reference (`{"soh": ..., "method": ...}`); None otherwise.
        with_usage: Include usage (the caller may read DRIVING).
    """
    odo = odometer_history(inputs.get(ODOMETER), inputs.devices, params, life_start_ms, end_ms)
    latest = odo["latest"]["km"] if odo["latest"] else None
    soh = battery["soh"]["percent"] if battery and battery.get("soh") else None
    return {
        "app": "finance",
        "method": METHOD,
        "parameters": params.as_dict(),
        "odometer": odo,
        "usage": usage(inputs, odo["signed_km"], odo["covered_days"], params)
        if with_usage
        else None,
        "battery": dict(battery) if battery else None,
        "value": value_adjustment(params, age_years, latest, soh, odo["tampered"]),
    }


# -------------------------------------------------------------------------------------------
# served context -> result (the same call for the API and the audit)
# -------------------------------------------------------------------------------------------


def finance_context(
    vehicle: VehicleFacts,
    life_start_ms: int,
    params: FinanceParams,
    battery_params: BatteryParams | None,
    *,
    with_usage: bool,
) -> dict[str, Any]:
    """The context a served finance result states, from which `compute` recomputes it.

    `battery_params` is None when the caller may not read BATTERY (or the model has no
    catalogued pack): the result then has no battery section.
    """
    return {
        "vehicle": {"make": vehicle.make, "model": vehicle.model, "year": vehicle.year},
        "life_start_ms": life_start_ms,
        "parameters": params.as_dict(),
        "battery_parameters": battery_params.as_dict() if battery_params else None,
        "with_usage": with_usage,
    }


def compute(
    inputs: AppInputs, context: Mapping[str, Any], start_ms: int, end_ms: int
) -> dict[str, Any]:
    """The finance result of `inputs` under a served `context` (see `finance_context`)."""
    v = context["vehicle"]
    vehicle = VehicleFacts(str(v["make"]), str(v["model"]), int(v["year"]))
    battery = None
    if context.get("battery_parameters"):
        report = battery_report(
            inputs,
            BatteryParams.from_dict(context["battery_parameters"]),
            vehicle,
            start_ms,
            end_ms,
            with_charging=False,
        )
        battery = {"method": report["method"], "soh": report["soh"]}
    return finance_report(
        inputs,
        FinanceParams.from_dict(context["parameters"]),
        age_years=vehicle.age_years(end_ms),
        life_start_ms=int(context["life_start_ms"]),
        end_ms=end_ms,
        battery=battery,
        with_usage=bool(context["with_usage"]),
    )
