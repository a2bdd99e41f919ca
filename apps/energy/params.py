"""The published parameters of the energy application (`dimo-energy-v1`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apps.exceptions import AppParameterInvalid
from protocol.readings import CHARGE_POWER, IS_CHARGING, SOC

#: Method version; a change of formula or defaults gets a new one.
VERSION: Final = "dimo-energy-v1"
#: `Charging.IsChargingCableConnected`: plug-in and plug-out.
PLUGGED: Final = "Vehicle.Powertrain.TractionBattery.Charging.IsChargingCableConnected"
#: Signals the session view reads (SoC needs BATTERY, the others CHARGING).
SESSION_SIGNALS: Final = (IS_CHARGING, CHARGE_POWER, PLUGGED, SOC)
#: Signals a settlement reads (CHARGING).
SETTLEMENT_SIGNALS: Final = (CHARGE_POWER, IS_CHARGING)


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
