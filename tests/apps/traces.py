"""Readings for the insurance and energy tests: simulator segments as VSS readings, and
synthetic traces with a known answer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from device_bridge.simulator import VehicleTrace
from indexer.queries import Reading

SPEED = "Vehicle.Speed"
IGNITION = "Vehicle.LowVoltageSystemState"
IS_CHARGING = "Vehicle.Powertrain.TractionBattery.Charging.IsCharging"
POWER = "Vehicle.Powertrain.TractionBattery.Charging.Power"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
PLUGGED = "Vehicle.Powertrain.TractionBattery.Charging.IsChargingCableConnected"
_IGNITION_NAMES = {0: "OFF", 2: "ACC", 3: "ON", 4: "START"}


def as_readings(samples: Iterable[tuple[int, float | str]], batch_id: int = 1) -> list[Reading]:
    """Samples as readings, each in its own leaf of one batch (leaf = position)."""
    return [Reading(ts, v, batch_id, i) for i, (ts, v) in enumerate(samples)]


def drive_samples(
    trace: VehicleTrace, speed_every: int = 1, ignition_every: int = 10
) -> dict[str, list[tuple[int, float | str]]]:
    """The simulated drives as the bus reports them: speed every `speed_every` samples (0.1 s
    apart), rounded to the 0.01 km/h of the DBCs, and the ignition state every
    `ignition_every` samples and at each change."""
    speed: list[tuple[int, float | str]] = []
    ignition: list[tuple[int, float | str]] = []
    for seg in trace.segments:
        if seg.kind != "drive":
            continue
        step_ms = seg.dt_us // 1000
        t0 = seg.t0 // 1000
        last = None
        for k in range(seg.n):
            ts = t0 + k * step_ms
            if k % speed_every == 0:
                speed.append((ts, round(seg.speed_kmh[k], 2)))
            state = _IGNITION_NAMES[seg.ignition[k]]
            if k % ignition_every == 0 or state != last:
                ignition.append((ts, state))
            last = state
    return {SPEED: speed, IGNITION: ignition}


def braking_trace(
    t0: int, decel_mphps: float, *, cruise_kmh: float = 60.0, hz: int = 10
) -> list[tuple[int, float]]:
    """A drive: 60 s at `cruise_kmh`, a constant braking at `decel_mphps` to a stop, 30 s
    standing, 60 s back at cruise (gentle acceleration), 240 s more cruising."""
    dt = 1 / hz
    rate = decel_mphps * 1.609344  # km/h per s
    out: list[tuple[int, float]] = []
    t = 0.0
    v = 0.0

    def emit(value: float) -> None:
        out.append((t0 + round(t * 1000), value))

    for _ in range(round(20 * hz)):  # gentle start, 3 km/h per s
        v = min(cruise_kmh, v + 3 * dt)
        emit(v)
        t += dt
    for _ in range(round(60 * hz)):
        emit(v)
        t += dt
    while v > 0:
        v = max(0.0, v - rate * dt)
        emit(v)
        t += dt
    for _ in range(round(30 * hz)):
        emit(0.0)
        t += dt
    for _ in range(round(300 * hz)):
        v = min(cruise_kmh, v + 3 * dt)
        emit(v)
        t += dt
    return out


def merged(*series: Sequence[Reading]) -> list[Reading]:
    return sorted((r for s in series for r in s), key=lambda r: (r.ts, r.batch_id, r.leaf_index))


def charge_samples(
    trace: VehicleTrace, every_s: int = 10
) -> dict[str, list[tuple[int, float | str]]]:
    """The simulated charging segments as the bus reports them, one sample every `every_s`:
    charging state, cable, power into the pack (kW) and state of charge."""
    out: dict[str, list[tuple[int, float | str]]] = {
        IS_CHARGING: [],
        PLUGGED: [],
        POWER: [],
        SOC: [],
    }
    for seg in trace.segments:
        if seg.kind != "charge":
            continue
        step = every_s * 1_000_000 // seg.dt_us
        t0 = seg.t0 // 1000
        for k in range(0, seg.n, step):
            ts = t0 + k * seg.dt_us // 1000
            out[IS_CHARGING].append((ts, float(seg.power_kw[k] > 0)))
            out[PLUGGED].append((ts, 1.0))
            out[POWER].append((ts, round(seg.power_kw[k], 3)))
            out[SOC].append((ts, round(seg.soc[k], 2)))
    return out


def evening_charging(
    day0_ms: int,
    days: int,
    kw: float,
    *,
    curtailed: dict[int, tuple[int, int, float]] | None = None,
    weekend_kw: float = 0.0,
    seed: int = 0,
) -> list[tuple[int, float]]:
    """Power readings every 30 s of a car charging every evening from about 17:40 to 22:00
    UTC at `kw` (noise of +-5 %), weekends at `weekend_kw`; on day `d` of `curtailed` it
    draws the given kW over `[from_ms, to_ms)` of that day instead."""
    import random

    rng = random.Random(seed)
    out: list[tuple[int, float]] = []
    for d in range(days):
        base = day0_ms + d * 86_400_000
        weekday = ((base // 86_400_000) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
        level = weekend_kw if weekday >= 5 else kw
        if level <= 0:
            continue
        start = base + 17 * 3_600_000 + rng.randint(30, 50) * 60_000
        for ts in range(start, base + 22 * 3_600_000, 30_000):
            value = level
            if curtailed and d in curtailed:
                a, b, cut = curtailed[d]
                if a <= ts - base < b:
                    value = cut
            out.append((ts, round(value * rng.uniform(0.95, 1.05), 3)))
    return out
