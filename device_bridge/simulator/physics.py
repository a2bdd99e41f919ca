"""Battery and vehicle physics: OCV curve, terminal current, traction power, charge taper, heat."""

from __future__ import annotations

import math
from bisect import bisect_right

from device_bridge.simulator.models import ModelSpec

__all__ = [
    "AC_EFFICIENCY",
    "DC_EFFICIENCY",
    "HARSH_BRAKING_MPS2",
    "MPH_PER_S_IN_MPS2",
    "G",
    "ambient_celsius",
    "aux_power_w",
    "battery_current",
    "dc_power_limit_kw",
    "next_temperature",
    "ocv_cell",
    "traction_battery_power_w",
]

G = 9.80665
AIR_DENSITY = 1.2
MPH_PER_S_IN_MPS2 = 0.44704
# A braking event counts as harsh from 7 mph/s (about 3.13 m/s^2), as insurers' scores use.
HARSH_BRAKING_MPS2 = 7 * MPH_PER_S_IN_MPS2
AC_EFFICIENCY = 0.90
DC_EFFICIENCY = 0.95
DRIVE_EFFICIENCY = 0.90
REGEN_EFFICIENCY = 0.70

# NMC cell open-circuit voltage against state of charge (percent -> volts).
_OCV_SOC = (0.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)
_OCV_V = (3.00, 3.35, 3.47, 3.57, 3.63, 3.68, 3.73, 3.80, 3.88, 3.96, 4.06, 4.18)


def ocv_cell(soc: float) -> float:
    """Return one cell's open-circuit voltage at `soc` percent (piecewise linear)."""
    soc = min(100.0, max(0.0, soc))
    i = min(bisect_right(_OCV_SOC, soc), len(_OCV_SOC) - 1)
    s0, s1 = _OCV_SOC[i - 1], _OCV_SOC[i]
    v0, v1 = _OCV_V[i - 1], _OCV_V[i]
    return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)


def battery_current(spec: ModelSpec, soc: float, power_w: float) -> tuple[float, float]:
    """Solve the terminal voltage and current for a battery power.

    The pack is an open-circuit voltage behind a resistance: `V = OCV + I R` and `P = V I`,
    with charging counted positive.

    Args:
        spec: the vehicle model.
        soc: state of charge in percent.
        power_w: power into the pack (negative while discharging).

    Returns:
        (terminal voltage in V, current in A).
    """
    ocv = spec.cells_series * ocv_cell(soc)
    r = spec.resistance_ohm
    current = (-ocv + math.sqrt(max(ocv * ocv + 4 * r * power_w, 0.0))) / (2 * r)
    return ocv + current * r, current


def traction_battery_power_w(spec: ModelSpec, speed: float, accel: float) -> tuple[float, float]:
    """Power the drivetrain draws from the pack for a speed and acceleration.

    Args:
        spec: the vehicle model.
        speed: speed in m/s.
        accel: longitudinal acceleration in m/s^2.

    Returns:
        (power at the wheels in W, power into the pack in W; negative when driving).
    """
    if speed <= 0.0:
        return 0.0, 0.0
    force = (
        spec.mass_kg * accel
        + 0.5 * AIR_DENSITY * spec.cda_m2 * speed * speed
        + spec.crr * spec.mass_kg * G
    )
    wheel = force * speed
    if wheel >= 0:
        wheel = min(wheel, spec.motor_kw * 1000.0)
        return wheel, -wheel / DRIVE_EFFICIENCY
    return wheel, min(-wheel * REGEN_EFFICIENCY, spec.regen_kw * 1000.0)


def aux_power_w(ambient: float) -> float:
    """Power for electronics and climate control at an ambient temperature (Celsius)."""
    heating = min(4000.0, max(0.0, 18.0 - ambient) * 180.0)
    cooling = min(2500.0, max(0.0, ambient - 24.0) * 120.0)
    return 350.0 + heating + cooling


def dc_power_limit_kw(spec: ModelSpec, soc: float) -> float:
    """The pack's DC charging power limit at `soc`: flat to 50 %, easing to 80 %, tapering above.

    Args:
        spec: the vehicle model.
        soc: state of charge in percent.

    Returns:
        Power in kW the pack accepts.
    """
    if soc < 50.0:
        return spec.dc_kw
    if soc < 80.0:
        return spec.dc_kw * (1.0 - 0.3 * (soc - 50.0) / 30.0)
    return spec.dc_kw * 0.7 * max(0.08, float(((100.0 - soc) / 20.0) ** 1.5))


def ambient_celsius(mean: float, seconds_of_day: float) -> float:
    """Ambient temperature: a daily swing of +-5 K around `mean`, warmest at 15:00."""
    return mean + 5.0 * math.sin(2 * math.pi * (seconds_of_day / 3600.0 - 9.0) / 24.0)


def next_temperature(
    spec: ModelSpec, temp: float, ambient: float, current: float, dt: float, managed: bool
) -> float:
    """Advance the pack temperature by `dt` seconds of Joule heating and exchange with the air.

    Args:
        spec: the vehicle model.
        temp: pack temperature in Celsius.
        ambient: ambient temperature in Celsius.
        current: pack current in A.
        dt: seconds.
        managed: the thermal system is on (faster exchange, cooled above 35 C).

    Returns:
        The new temperature.
    """
    heat = current * current * spec.resistance_ohm * dt / (spec.thermal_kj_per_k * 1000.0)
    tau = 1800.0 if managed else 14400.0
    target = ambient
    if managed and temp > 35.0:
        target = min(ambient, 25.0)
        tau = 600.0
    return temp + heat + (target - temp) * min(1.0, dt / tau)
